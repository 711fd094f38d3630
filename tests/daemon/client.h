/* client.h - a tiny blocking HTTP/1.1 client over plain sockets for the daemon tests.
 *
 * http_req() sends one request with "Connection: close" and reads the whole response (5 s
 * limit); sse_open()/sse_read_until() read a Server-Sent Events stream incrementally. Only
 * what the tests need: no TLS, no redirects, Content-Length or close-delimited bodies (chunked
 * bodies are returned raw, which is enough for substring checks). wy_send()/wy_recv() speak the
 * Wyoming protocol's event lines (with jansson.h included before this header).
 */
#ifndef S4KWS_TESTS_DAEMON_CLIENT_H
#define S4KWS_TESTS_DAEMON_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct resp {
	int status;            /* 0: no response (refused, closed) */
	char head[8192];       /* status line and headers */
	char *body;            /* malloc'ed, NUL-terminated */
	size_t len;
};

static inline int64_t client_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int client_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until EOF or timeout into a growing buffer; returns bytes read. */
static inline size_t read_all(int fd, char **buf, int timeout_ms)
{
	size_t len = 0, cap = 65536;
	*buf = malloc(cap + 1);
	int64_t end = client_ms() + timeout_ms;
	for (;;) {
		int64_t left = end - client_ms();
		if (left <= 0)
			break;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int)left) <= 0)
			break;
		if (len == cap) {
			cap *= 2;
			*buf = realloc(*buf, cap + 1);
		}
		ssize_t r = recv(fd, *buf + len, cap - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	(*buf)[len] = 0;
	return len;
}

static inline void parse_resp(char *raw, size_t n, struct resp *r)
{
	memset(r, 0, sizeof *r);
	char *sep = strstr(raw, "\r\n\r\n");
	if (n < 12 || strncmp(raw, "HTTP/1.", 7) || !sep) {
		r->body = calloc(1, 1);
		free(raw);
		return;
	}
	r->status = atoi(raw + 9);
	size_t hl = (size_t)(sep - raw);
	if (hl >= sizeof r->head)
		hl = sizeof r->head - 1;
	memcpy(r->head, raw, hl);
	r->head[hl] = 0;
	r->len = n - (size_t)(sep + 4 - raw);
	r->body = malloc(r->len + 1);
	memcpy(r->body, sep + 4, r->len);
	r->body[r->len] = 0;
	free(raw);
}

/* One request. extra: more header lines, each ending in \r\n (or NULL). */
static inline int http_req(int port, const char *method, const char *path, const char *extra,
			   const void *body, size_t blen, struct resp *r)
{
	memset(r, 0, sizeof *r);
	int fd = client_connect(port);
	if (fd < 0) {
		r->body = calloc(1, 1);
		return -1;
	}
	char head[4096];
	int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
			 method, path, extra ? extra : "");
	if (body)
		n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", blen);
	n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
	send_all(fd, head, (size_t)n);
	if (body && blen)
		send_all(fd, body, blen); /* may fail when the server refused early: fine */
	char *raw;
	size_t got = read_all(fd, &raw, 5000);
	close(fd);
	parse_resp(raw, got, r);
	return 0;
}

/* Header value (case-insensitive name) from r->head into out, or 0 if absent. */
static inline int resp_header(const struct resp *r, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
			const char *v = p + 3 + nl;
			while (*v == ' ')
				v++;
			size_t i = 0;
			while (v[i] && v[i] != '\r' && i + 1 < len) {
				out[i] = v[i];
				i++;
			}
			out[i] = 0;
			return 1;
		}
	}
	return 0;
}

/* Open an SSE stream; returns the socket or -1. */
static inline int sse_open(int port, const char *path, const char *extra)
{
	int fd = client_connect(port);
	if (fd < 0)
		return -1;
	char head[2048];
	int n = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n",
			 path, extra ? extra : "");
	send_all(fd, head, (size_t)n);
	return fd;
}

/* Append stream bytes to *acc until `needle` appears or timeout; returns 1 if found. */
static inline int sse_read_until(int fd, char *acc, size_t cap, size_t *len, const char *needle,
				 int timeout_ms)
{
	int64_t end = client_ms() + timeout_ms;
	while (!strstr(acc, needle)) {
		int64_t left = end - client_ms();
		if (left <= 0 || *len + 1 >= cap)
			return 0;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int)left) <= 0)
			return 0;
		ssize_t r = recv(fd, acc + *len, cap - 1 - *len, 0);
		if (r <= 0)
			return 0;
		*len += (size_t)r;
		acc[*len] = 0;
	}
	return 1;
}

#ifdef JANSSON_H
/* Send one Wyoming event: header line (with payload_length when len > 0), then the payload. */
static inline int wy_send(int fd, const char *type, const char *data_json, const void *payload, size_t len)
{
	char h[512];
	int n = len ? snprintf(h, sizeof h, "{\"type\":\"%s\",\"data\":%s,\"payload_length\":%zu}\n", type,
			       data_json ? data_json : "{}", len)
		    : snprintf(h, sizeof h, "{\"type\":\"%s\",\"data\":%s}\n", type, data_json ? data_json : "{}");
	return send_all(fd, h, (size_t)n) < 0 || (len && send_all(fd, payload, len) < 0) ? -1 : 0;
}

/* Read one event line (no data/payload sections expected from the server) within timeout_ms:
 * a new JSON reference, or NULL on timeout or close. */
static inline json_t *wy_recv(int fd, int timeout_ms)
{
	static char line[1 << 16];
	size_t n = 0;
	int64_t end = client_ms() + timeout_ms;
	while (n < sizeof line - 1) {
		struct pollfd pf = {fd, POLLIN, 0};
		int left = (int)(end - client_ms());
		if (left <= 0 || poll(&pf, 1, left) <= 0)
			return NULL;
		ssize_t k = recv(fd, line + n, 1, 0);
		if (k <= 0)
			return NULL;
		if (line[n] == '\n') {
			line[n] = 0;
			json_error_t je;
			return json_loads(line, 0, &je);
		}
		n++;
	}
	return NULL;
}

/* describe -> info: its wake program's models (a new reference; NULL when no info came). */
static inline json_t *wy_describe_models(int fd)
{
	wy_send(fd, "describe", NULL, NULL, 0);
	json_t *info = wy_recv(fd, 5000);
	json_t *wake = json_object_get(json_object_get(info, "data"), "wake");
	json_t *models = json_incref(json_object_get(json_array_get(wake, 0), "models"));
	const char *type = json_string_value(json_object_get(info, "type"));
	int ok = type && !strcmp(type, "info");
	json_decref(info);
	if (!ok) {
		json_decref(models);
		return NULL;
	}
	return models;
}
#endif

#endif
