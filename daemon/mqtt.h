/* mqtt.h - publish detections to an MQTT broker, with Home Assistant discovery (libmosquitto).
 *
 * Usage:
 *   struct mqtt_config mc = {.url = "mqtt://ha@broker.lan", .password = "...", .topic = "",
 *                            .discovery = 1, .discovery_prefix = "homeassistant", .queue = 1000,
 *                            .retry_max_s = 30, .ev = ev, .labels = labels, .n_labels = K,
 *                            .channels = C, .model_name = "s4kws-sc12", .version = "0.1.0",
 *                            .start_after = events_last_id(ev)};
 *   struct mqtt *m = mqtt_new(&mc, err, sizeof err);   // checks the URL, starts its thread
 *   ...                                                 // detections go to the events store
 *   struct mqtt_stats st;
 *   mqtt_stats(m, &st);                                 // any thread
 *   mqtt_stop(m);          // publishes "offline" and disconnects (at most MQTT_STOP_S), joins
 *   mqtt_free(m);
 *
 * Topics, PREFIX being mqtt_config.topic or s4kws/HOSTNAME:
 *   PREFIX/availability                 "online" / "offline", retained; "offline" is also the
 *                                       last will, so a killed daemon reads offline
 *   PREFIX/detection                    every detection, the JSON of /v1/detections (QoS 1)
 *   PREFIX/detection/KEYWORD/CHANNEL    the same, per keyword and capture channel (the entities'
 *                                       topics; not for a Wyoming client's detections, channel -1)
 *   DISCOVERY/event/NODE/KEYWORD_CHANNEL/config   Home Assistant discovery, retained: one
 *                                       `event` entity per keyword and channel; the configs
 *                                       of NODE for entities it no longer has are cleared
 *   hermes/hotword/KEYWORD/detected     with .hermes: Rhasspy's Hermes hotword message
 * Keywords are the model's labels that do not start with '_'. Characters that MQTT topics or
 * Home Assistant ids cannot hold are written as '_'.
 * Threads: mqtt_check/new/stop/free from one thread (the main thread); mqtt_stats and
 * mqtt_resume_id from any thread. The publisher never makes the detector wait:
 * it reads the events store like an SSE client.
 */
#ifndef S4KWS_DAEMON_MQTT_H
#define S4KWS_DAEMON_MQTT_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"

#define MQTT_STOP_S 2.0 /* longest wait at shutdown for the last messages to reach the broker */

struct mqtt_config {
	const char *url;              /* mqtt://[user@]host[:port] or mqtts://... (TLS) */
	const char *password;         /* NULL or "": none */
	const char *ca_file;          /* mqtts: PEM CA file; NULL or "": the system's CAs */
	const char *topic;            /* prefix; NULL or "": s4kws/HOSTNAME */
	int discovery;                /* publish Home Assistant discovery configs */
	const char *discovery_prefix; /* usually "homeassistant" */
	int hermes;                   /* also publish hermes/hotword/KEYWORD/detected */
	size_t queue;                 /* detections kept while the broker is away (>= 1) */
	double retry_max_s;           /* longest wait between reconnection attempts */
	struct events *ev;            /* where detections are published (not owned) */
	const char *const *labels;    /* the model's labels (copied) */
	int n_labels;
	int channels;
	const char *const *channel_names; /* NULL, or channels names ("" for none; copied) */
	const char *model_name;       /* for the Home Assistant device (copied) */
	const char *version;          /* the daemon's version (copied) */
	uint64_t start_after;         /* publish the detections with a larger id */
};

struct mqtt_stats {
	char broker[300];             /* host:port */
	char topic[256];              /* the prefix in use */
	char error[160];              /* why the last attempt failed; "" while connected */
	int connected;                /* the broker has accepted the connection */
	uint64_t queued;              /* detections waiting for the broker */
	uint64_t published;           /* detections handed to the broker (QoS 1) */
	uint64_t dropped;             /* never published: queue full (oldest first) or out of history */
	uint64_t connects;            /* connections the broker accepted */
};

struct mqtt;

/* The checks of mqtt_new without starting anything: 0, or -EINVAL with one sentence in err. */
int mqtt_check(const struct mqtt_config *c, char *err, size_t errlen);
/* Check the settings (a URL it can use, the topic, the CA file readable) and start the
 * publisher thread, which connects in the background. Returns NULL with one sentence in err;
 * neither err nor the log ever holds the password. */
struct mqtt *mqtt_new(const struct mqtt_config *c, char *err, size_t errlen);
/* Publish what is queued and "offline" if connected (at most MQTT_STOP_S), disconnect, join the
 * thread. Call after events_close() to publish every last detection. Idempotent; NULL is fine. */
void mqtt_stop(struct mqtt *m);
void mqtt_free(struct mqtt *m);
/* The id after which a successor (SIGHUP with new settings) should start: detections after it
 * have not been handed to the broker. */
uint64_t mqtt_resume_id(struct mqtt *m);
void mqtt_stats(struct mqtt *m, struct mqtt_stats *s);

#endif
