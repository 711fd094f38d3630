/* fuzz_http.c - libFuzzer entry point for HTTP requests and their query parameters: any bytes
 * sent by one client to a real s4kws HTTP server (daemon/http.c over libmicrohttpd, with the
 * admission guard) on loopback: request lines, headers, query strings (/v1/detections?since=,
 * /v1/mute?seconds=, ...), bodies (PUT /v1/thresholds JSON, POST /v1/classify). The server runs
 * for the whole fuzzing process with small hooks of its own; each input is one connection,
 * written whole, half-closed, and read until the server closes it. First the input's leading
 * bytes (up to a NUL, at most 64) also go through the one number syntax of every query
 * parameter (common/num.h). Checked besides "no crash" (ASan/UBSan): an accepted number is
 * finite and equals strtod's reading (a whole one is integral and below 2^53); every answer
 * begins with an HTTP status line; no connection stays open for 20 s; the server keeps
 * accepting connections.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/num.h"
#include "daemon/events.h"
#include "daemon/http.h"
#include "daemon/log.h"
#include "fuzz_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int port;

static json_t *hook_status(void *ud)
{
	(void)ud;
	return json_pack("{s:s}", "input", "fuzz");
}

static json_t *hook_mute(void *ud, int op, double seconds)
{
	(void)ud;
	if (!(seconds >= 0) || !isfinite(seconds))
		abort(); /* http.c validated it */
	return json_pack("{s:b}", "muted", op == 1);
}

static json_t *hook_thresholds(void *ud, json_t *set, char *err, size_t errlen)
{
	(void)ud;
	(void)err;
	(void)errlen;
	return json_pack("{s:{s:f}, s:i}", "thresholds", "yes", 0.8, "asked", set ? (int)json_object_size(set) : -1);
}

static int hook_classify(void *ud, const void *body, size_t len, int max_rate, json_t **out, char *err,
			 size_t errlen)
{
	(void)ud;
	(void)body;
	if (max_rate < 0)
		abort();
	*out = NULL;
	snprintf(err, errlen, "not classified: %zu bytes", len);
	return 415;
}

static void start_server(void)
{
	char err[256];
	log_set_level(LOGL_ERROR);
	struct events *ev = events_new(100, NULL, NULL, err, sizeof err);
	for (int i = 0; ev && i < 5; i++) {
		struct ev_detection d = {.channel = i % 2, .score = 0.9f, .offset = i};
		snprintf(d.keyword, sizeof d.keyword, "%s", i % 2 ? "yes" : "no");
		events_add(ev, &d);
	}
	static const struct http_hooks hooks = {.status = hook_status, .mute = hook_mute,
						.thresholds = hook_thresholds, .classify = hook_classify};
	struct http_config c = {.bind = "127.0.0.1", .port = 0, .token = "", .max_connections = 8,
				.timeout_s = 2, .max_body = 1 << 16, .classify_jobs = 1, .sse_clients = 2,
				.heartbeat_s = 0.5};
	struct http *h = ev ? http_start(&c, ev, &hooks, err, sizeof err) : NULL; /* lives until exit */
	if (!h) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		exit(2);
	}
	port = http_port(h);
}

static void check_number(const uint8_t *data, size_t size)
{
	char s[65];
	size_t n = 0;
	while (n < size && n < 64 && data[n])
		s[n] = (char)data[n], n++;
	s[n] = 0;
	double v, w;
	if (s4k_decimal(s, &v) == 0 && (!isfinite(v) || strtod(s, NULL) != v))
		abort();
	if (s4k_whole(s, &w) == 0 && (!isfinite(w) || floor(w) != w || fabs(w) >= 9007199254740992.0 ||
				      strtod(s, NULL) != w))
		abort();
}

/* A full buffer: its status line has been seen; keep it, drain the rest. */
static size_t keep_head(const char *buf, size_t len)
{
	(void)buf;
	(void)len;
	return 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_number(data, size);
	if (!port)
		start_server();
	static char got[1 << 16];
	size_t glen = fuzz_exchange(port, data, size, got, sizeof got, keep_head);
	if (glen && strncmp(got, "HTTP/1.", glen < 7 ? glen : 7))
		abort(); /* an answer that is not HTTP */
	return 0;
}
