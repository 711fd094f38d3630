/* wyoming.h - a Wyoming wake-word server inside `s4kws listen` (Home Assistant, wyoming-satellite).
 *
 * Usage:
 *   struct wy_config wc = {.bind = "127.0.0.1", .port = 10400, .m = model, .pc = &pp_config,
 *                          .hop = 160, .period = 0, .max_clients = 8, .timeout_s = 30,
 *                          .version = "0.1.0"};
 *   struct wyoming *w = wy_start(&wc, err, sizeof err);   // listening; one thread per client
 *   printf("wyoming on port %d\n", wy_port(w));
 *   wy_stats(w, &st);                                     // any thread
 *   wy_stop(w);                                           // closes every connection, joins, frees
 *
 * Protocol (https://github.com/rhasspy/wyoming): each event is one JSON line {"type", "data",
 * "data_length", "payload_length"}, then data_length bytes of JSON merged into data, then
 * payload_length bytes of payload. Served: describe -> info (one wake program, the model's
 * keywords as its models); detect {names} selects keywords (none or absent: all);
 * audio-start {rate, width, channels} starts a stream (a zero-state stepper, warm-up again);
 * audio-chunk (16-bit PCM, any rate and channel count: mixed to mono and resampled; a chunk
 * without audio-start, or in another format, starts a stream) -> detection {name, timestamp:
 * ms of audio since the stream started, at the decision}; audio-stop -> not-detected when the
 * stream had no detection; ping -> pong. detect naming none of the model's keywords gets an
 * `error` {code "unknown-wake-word"} and the stream then detects nothing. Detection rules are
 * the daemon's (threshold, smoothing, verify, ...), and wy_reconfigure() changes them for
 * every client from its next audio chunk. Each client is its own stream with its own stepper
 * over the shared model, decided by spot/spot.h like the capture channels; with `publish`, each
 * detection also goes to the daemon (the events store: ids, /v1/detections, SSE, --log, hooks,
 * MQTT) as channel -1 named "wyoming ADDRESS:PORT", and is not sent when the daemon is muted.
 * Bad input (an over-long line, not JSON, a payload over 4 MiB, width other than 2) gets an
 * `error` event {text, code} and the connection is closed; the server keeps serving.
 */
#ifndef S4KWS_DAEMON_WYOMING_H
#define S4KWS_DAEMON_WYOMING_H

#include <stddef.h>
#include <stdint.h>

#include "model/s4m.h"
#include "events.h"
#include "spot/postproc.h"

struct wy_config {
	const char *bind;            /* IPv4 or IPv6 address */
	int port;                    /* 0: any free port (wy_port() says which) */
	const struct s4m_model *m;   /* shared, streamable */
	const struct pp_config *pc;  /* detection settings at start (copied) */
	size_t hop;                  /* model-rate samples per posterior (multiple of s4m_hop()) */
	size_t period;               /* stepper restart period (0: never), as live mode */
	int max_clients;             /* more are answered with an error event and closed */
	double timeout_s;            /* a client silent this long is disconnected */
	const char *version;         /* reported in info */
	/* Each detection, on the client's thread, before it is sent (NULL: none): returns 0 to
	 * send it, 1 when the daemon is muted (counted in wy_stats.muted, not sent). */
	int (*publish)(void *user, struct ev_detection *e);
	void *publish_user;
};

struct wy_stats {
	int clients;                 /* connected now */
	uint64_t connections;        /* accepted since start */
	uint64_t detections;         /* detection events sent */
	uint64_t errors;             /* connections closed for bad input or I/O errors */
	uint64_t muted;              /* detections not sent because the daemon was muted */
};

struct wyoming;

struct wyoming *wy_start(const struct wy_config *c, char *err, size_t errlen);
int wy_port(const struct wyoming *w);
void wy_stats(struct wyoming *w, struct wy_stats *s);
/* New detection settings (same rate, hop and labels; verify only if on at start) for every
 * client from its next audio chunk. 0 or -EINVAL with err. Any thread. */
int wy_reconfigure(struct wyoming *w, const struct pp_config *pc, char *err, size_t errlen);
void wy_stop(struct wyoming *w);   /* NULL is fine */

#endif
