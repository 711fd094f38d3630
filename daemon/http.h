/* http.h - the daemon's HTTP API on libmicrohttpd.
 *
 * Usage:
 *   struct http_config hc = {.bind = "127.0.0.1", .port = 8080, .token = "", .max_connections = 32,
 *                            .timeout_s = 30, .max_body = 10 << 20, .classify_jobs = 2,
 *                            .sse_clients = 16, .heartbeat_s = 15};
 *   struct http_hooks hooks = {.ud = app, .status = app_status, .metrics = app_metrics,
 *                              .classify = app_classify};
 *   struct http *h = http_start(&hc, events, &hooks, err, sizeof err);
 *   printf("listening on port %d\n", http_port(h));
 *   ...
 *   events_close(events);   // ends SSE streams
 *   http_stop(h);           // stops accepting, waits for the connection threads
 *
 * Endpoints: GET /healthz and GET / (the live page; neither needs the token), GET /v1/detections,
 * GET /v1/events (SSE), GET /v1/status, GET /v1/scores, GET /metrics, POST /v1/classify,
 * GET/POST/DELETE /v1/mute, GET/PUT /v1/thresholds, POST/DELETE /v1/session (a session cookie
 * that stands for the token, for browsers). Errors are JSON {"error": "one sentence"}
 * with 400 (bad query), 401 (token), 403 (session cookie from another origin), 404, 405 (+Allow),
 * 413 (body too big), 415/400 (audio the classify hook refuses) or 503 (too many streams or
 * classify jobs).
 * Threads: one thread per connection, inside libmicrohttpd, with a connection limit and an idle
 * timeout. Handlers only read the events store and call the hooks; the hooks must be thread-safe
 * and must not touch the live model state (they read a published snapshot).
 */
#ifndef S4KWS_DAEMON_HTTP_H
#define S4KWS_DAEMON_HTTP_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "events.h"

struct http_config {
	const char *bind;         /* IPv4 or IPv6 literal, or "localhost" */
	int port;                 /* 0: any free port (see http_port) */
	const char *token;        /* "" or NULL: no auth; required when bind is not loopback */
	const char *cors_origin;  /* "" or NULL: no CORS headers; "*": any origin; else that origin */
	unsigned max_connections;
	unsigned timeout_s;       /* idle connection timeout */
	size_t max_body;          /* POST /v1/classify body limit, bytes */
	unsigned classify_jobs;   /* classify hooks running at once */
	unsigned sse_clients;     /* /v1/events streams at once */
	double heartbeat_s;       /* SSE heartbeat period */
};

struct http_hooks {
	void *ud;
	/* GET /v1/status body (new reference); NULL gives 500. */
	json_t *(*status)(void *ud);
	/* GET /v1/scores body (new reference): the latest smoothed posteriors; NULL gives 500.
	 * NULL hook: 404. */
	json_t *(*scores)(void *ud);
	/* Append Prometheus text lines for /metrics (the HTTP counters are added by http.c). */
	void (*metrics)(void *ud, FILE *out);
	/* /v1/mute: GET (op 0) reads the mute state, POST (op 1) mutes detections for `seconds`
	 * (0: until DELETE), DELETE (op 2) unmutes; returns the state after it (new reference),
	 * NULL gives 500. NULL hook: 404. */
	json_t *(*mute)(void *ud, int op, double seconds);
	/* /v1/thresholds: set (NULL: only read) per-keyword thresholds from a JSON object
	 * {"keyword": value}; returns every keyword's threshold (new reference), or NULL with one
	 * sentence in err (nothing changed). NULL hook: 404. */
	json_t *(*thresholds)(void *ud, json_t *set, char *err, size_t errlen);
	/* POST /v1/classify[?max_rate=HZ]: decode and classify an audio file body (max_rate: as
	 * `classify --max-rate`, 0 = none; the server has checked it is 0 or 1000..768000). Returns
	 * 200 with *out set (new reference), or a 4xx/5xx status with one sentence in err. NULL
	 * hook: 404. */
	int (*classify)(void *ud, const void *body, size_t len, int max_rate, json_t **out,
			char *err, size_t errlen);
};

struct http;

/* Bind and start serving. Returns NULL with one sentence in err (bad address, port in use,
 * non-loopback bind without a token, ...). ev and hooks must outlive the server. */
struct http *http_start(const struct http_config *c, struct events *ev,
			const struct http_hooks *hooks, char *err, size_t errlen);
/* The bound TCP port. */
int http_port(const struct http *h);
/* Stop accepting, end SSE streams, wait for every connection thread, free. NULL is fine. */
void http_stop(struct http *h);

#endif
