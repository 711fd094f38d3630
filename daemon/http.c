/* http.c - libmicrohttpd glue: routing, auth, query parsing, JSON replies, SSE, uploads.
 *
 * DESIGN. libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION; door.c
 * accepts and passes on what starts like a request), under a connection limit and an idle
 * timeout, so a slow or hostile client holds at most its own thread and cannot starve the
 * others; the audio and inference threads are never involved. Handlers read only the events store (mutex-protected
 * copies) and the hooks (a published status snapshot, a classify function that builds its own
 * workspace), so nothing here touches the live model state.
 *
 * /v1/events is a response built from a content-reader callback. The callback runs in the
 * connection's own thread and may block, but never for longer than one heartbeat period (and
 * it wakes at once when the events store closes): it either returns queued "id/event/data"
 * records, a heartbeat comment, or end-of-stream at shutdown. Resumption uses Last-Event-ID
 * (or ?since=). Bodies are read only for POST /v1/classify (up to max_body) and PUT
 * /v1/thresholds (16 KiB); a declared Content-Length above the limit is refused at once with
 * 413, a chunked body that grows past it is drained and refused. Other requests with a body are
 * answered without reading it.
 * Every reply goes through reply(), which counts requests by endpoint and status for /metrics
 * and adds the CORS headers when --cors-origin allows the request's Origin.
 *
 * Browsers. GET / is the live page (page.html, built in), served without the token: it holds no
 * secret and asks for the token itself. An EventSource cannot send an Authorization header, so
 * POST /v1/session with the Bearer token answers with a cookie holding a random session key
 * (32 bytes from getrandom at start, hex; valid until the daemon restarts), HttpOnly and
 * SameSite=Strict, which every endpoint then accepts in place of the token. A cookie-authenticated
 * request that changes something must not come from another origin of the same site (another
 * port of the same host is same-site): when it carries an Origin, that must be this server's.
 */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/err.h"
#include "../common/num.h"
#include "admit.h"
#include "door.h"
#include "config.h"
#include "log.h"

enum ep { EP_HEALTHZ, EP_DETECTIONS, EP_EVENTS, EP_STATUS, EP_SCORES, EP_METRICS, EP_CLASSIFY, EP_MUTE,
	  EP_THRESHOLDS, EP_PAGE, EP_SESSION, EP_OTHER, N_EP };
static const char *const ep_names[N_EP] = {"/healthz", "/v1/detections", "/v1/events", "/v1/status",
					   "/v1/scores", "/metrics", "/v1/classify", "/v1/mute",
					   "/v1/thresholds", "/", "/v1/session", "other"};
#define THRESHOLDS_MAX_BODY 16384 /* PUT /v1/thresholds: a JSON object of keyword: value */
static const int codes[] = {200, 204, 400, 401, 403, 404, 405, 413, 415, 500, 503};
#define N_CODES (sizeof codes / sizeof codes[0])

#define DETECTIONS_MAX_LIMIT 1000
#define SSE_BATCH 64
#define SSE_BUF 65536

#define HTTP_DRAIN_S 10 /* longest wait for in-flight answers at shutdown (the unit allows 15 s) */
#define SESSION_COOKIE "s4kws_session"
#define SESSION_BYTES 32 /* random bytes of the session key; 64 hex digits in the cookie */

/* page.html as built into the binary by daemon/embed.sh */
extern const unsigned char page_html[];
extern const size_t page_html_len;

struct http {
	struct MHD_Daemon *d;
	struct door *door;            /* the listening socket (door.c) */
	char start_msg[256];          /* libmicrohttpd's last message before it started */
	struct events *ev;
	struct http_hooks hooks;
	struct http_config c;
	char token[256];
	char session[2 * SESSION_BYTES + 1]; /* the cookie's value when a token is set, else "" */
	char cors_origin[256];
	int port;
	sem_t jobs;
	struct admit *admit;          /* slow clients cannot hold the slots (daemon/admit.h) */
	_Atomic unsigned sse_open;
	_Atomic int stopping;
	_Atomic int active;           /* requests begun and not yet completed (http_stop drains them) */
	_Atomic uint64_t requests[N_EP][N_CODES + 1]; /* last column: any other status */
};

/* Per-request state (con_cls). */
struct req {
	enum ep ep;
	char *body;
	size_t len, cap;
	int too_big;
};

static void count_req(struct http *h, enum ep ep, unsigned status)
{
	size_t i = 0;
	while (i < N_CODES && codes[i] != (int)status)
		i++;
	atomic_fetch_add(&h->requests[ep][i], 1);
}

/* CORS: the allowed origin gets Access-Control-Allow-Origin on every answer. */
static void add_cors(struct http *h, struct MHD_Connection *conn, struct MHD_Response *r)
{
	if (!h->cors_origin[0])
		return;
	const char *o = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	int any = !strcmp(h->cors_origin, "*");
	if (!o || (!any && strcmp(o, h->cors_origin)))
		return;
	MHD_add_response_header(r, "Access-Control-Allow-Origin", any ? "*" : h->cors_origin);
	MHD_add_response_header(r, "Access-Control-Expose-Headers", "WWW-Authenticate, Allow");
	if (!any)
		MHD_add_response_header(r, "Vary", "Origin");
}

static enum MHD_Result reply(struct http *h, struct MHD_Connection *conn, enum ep ep,
			     unsigned status, struct MHD_Response *r)
{
	if (!r)
		return MHD_NO;
	count_req(h, ep, status);
	add_cors(h, conn, r);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static struct MHD_Response *text_response(const char *text, size_t len, const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	if (r) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	}
	return r;
}

/* A response of a JSON value (steals the reference) and a newline, dumped with the given jansson
 * flags; NULL when out of memory. */
static struct MHD_Response *json_response(json_t *o, size_t flags)
{
	char *s = o ? json_dumps(o, flags) : NULL;
	json_decref(o);
	if (!s)
		return NULL;
	size_t len = strlen(s);
	char *t = realloc(s, len + 2);
	if (t) {
		s = t;
		s[len++] = '\n';
	}
	struct MHD_Response *r = text_response(s, len, "application/json");
	free(s);
	return r;
}

/* Reply with a JSON value (steals the reference), dumped with the given jansson flags. */
static enum MHD_Result reply_json_flags(struct http *h, struct MHD_Connection *conn, enum ep ep,
					unsigned status, json_t *o, size_t flags)
{
	struct MHD_Response *r = json_response(o, flags);
	if (!r)
		return reply(h, conn, ep, 500, text_response("{\"error\":\"out of memory\"}\n", 26,
							      "application/json"));
	return reply(h, conn, ep, status, r);
}

static enum MHD_Result reply_json(struct http *h, struct MHD_Connection *conn, enum ep ep,
				  unsigned status, json_t *o)
{
	return reply_json_flags(h, conn, ep, status, o, EV_JSON_FLAGS);
}

static enum MHD_Result reply_error(struct http *h, struct MHD_Connection *conn, enum ep ep,
				   unsigned status, const char *msg)
{
	return reply_json(h, conn, ep, status, json_pack("{s:s}", "error", msg));
}

static enum MHD_Result reply_405(struct http *h, struct MHD_Connection *conn, enum ep ep,
				 const char *allow)
{
	char msg[128];
	snprintf(msg, sizeof msg, "method not allowed here; use %s", allow);
	json_t *o = json_pack("{s:s}", "error", msg);
	char *s = o ? json_dumps(o, EV_JSON_FLAGS) : NULL;
	json_decref(o);
	if (!s)
		return MHD_NO;
	struct MHD_Response *r = text_response(s, strlen(s), "application/json");
	free(s);
	if (r)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	return reply(h, conn, ep, 405, r);
}

/* a equals the secret s, in time that does not depend on where they differ */
static int same_secret(const char *a, const char *s)
{
	size_t la = strlen(a), ls = strlen(s);
	unsigned char diff = la != ls;
	for (size_t i = 0; i < ls; i++)
		diff |= (unsigned char)(s[i] ^ (i < la ? a[i] : 0));
	return diff == 0;
}

enum auth { AUTH_NONE, AUTH_BEARER, AUTH_COOKIE, AUTH_OPEN };

/* How the request is authorized: "Bearer <token>", the session cookie, or no token is set. */
static enum auth authorized(struct http *h, struct MHD_Connection *conn)
{
	if (!h->token[0])
		return AUTH_OPEN;
	const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (a && !strncasecmp(a, "Bearer ", 7)) {
		a += 7;
		while (*a == ' ')
			a++;
		return same_secret(a, h->token) ? AUTH_BEARER : AUTH_NONE;
	}
	const char *c = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, SESSION_COOKIE);
	return c && same_secret(c, h->session) ? AUTH_COOKIE : AUTH_NONE;
}

/* A cookie-authenticated request that changes something comes from this server's own page: its
 * Origin, when the browser sends one, names this host (http://HOST[:PORT] as in Host). */
static int same_origin(struct MHD_Connection *conn)
{
	const char *o = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (!o)
		return 1;
	if (!host || strncmp(o, "http://", 7))
		return 0;
	return !strcmp(o + 7, host);
}


/* Parse an unsigned decimal query argument; absent leaves *out. 0 or -EINVAL with msg. */
static int arg_u64(struct MHD_Connection *conn, const char *name, uint64_t lo, uint64_t hi,
		   uint64_t *out, char *msg, size_t len)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
	if (!v)
		return 0;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (!*v || *v == '-' || *v == '+' || *end || errno || x < lo || x > hi) {
		snprintf(msg, len, "query parameter %s must be a whole number from %llu to %llu", name,
			 (unsigned long long)lo, (unsigned long long)hi);
		return -EINVAL;
	}
	*out = x;
	return 0;
}

/* Filters shared by /v1/detections and /v1/events. */
struct filter {
	uint64_t since, limit;
	int channel;
	char keyword[EV_KW_LEN];
	int has_keyword, has_since;
};

static int parse_filter(struct MHD_Connection *conn, struct filter *f, char *msg, size_t len)
{
	uint64_t ch = UINT64_MAX;
	f->limit = 100;
	f->has_since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since") != NULL;
	if (arg_u64(conn, "since", 0, INT64_MAX, &f->since, msg, len) < 0 ||
	    arg_u64(conn, "limit", 1, DETECTIONS_MAX_LIMIT, &f->limit, msg, len) < 0 ||
	    arg_u64(conn, "channel", 0, 1023, &ch, msg, len) < 0)
		return -EINVAL;
	f->channel = ch == UINT64_MAX ? -1 : (int)ch;
	const char *kw = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "keyword");
	f->has_keyword = kw != NULL;
	if (kw) {
		if (!*kw || strlen(kw) >= EV_KW_LEN) {
			snprintf(msg, len, "query parameter keyword must be 1 to %d characters", EV_KW_LEN - 1);
			return -EINVAL;
		}
		snprintf(f->keyword, sizeof f->keyword, "%s", kw);
	}
	return 0;
}

static enum MHD_Result get_detections(struct http *h, struct MHD_Connection *conn)
{
	struct filter f;
	memset(&f, 0, sizeof f);
	char msg[160];
	if (parse_filter(conn, &f, msg, sizeof msg) < 0)
		return reply_error(h, conn, EP_DETECTIONS, 400, msg);
	struct ev_detection *d = malloc(f.limit * sizeof *d);
	if (!d)
		return reply_error(h, conn, EP_DETECTIONS, 500, "out of memory");
	uint64_t cursor;
	size_t n = events_query(h->ev, f.since, f.channel, f.has_keyword ? f.keyword : NULL, d,
				f.limit, &cursor);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, events_to_json(&d[i]));
	free(d);
	return reply_json(h, conn, EP_DETECTIONS, 200,
			  json_pack("{s:o, s:I}", "detections", arr, "last_id", (json_int_t)cursor));
}

/* ---- Server-Sent Events ---- */

struct sse {
	struct http *h;
	uint64_t cursor;
	int channel;
	char keyword[EV_KW_LEN];
	int has_keyword;
	char *buf;           /* (SSE_BUF) pending bytes */
	size_t len, off;
	int64_t last_ms;     /* when something was last sent */
	int fd;              /* the client's socket, to notice a hang-up while idle; -1 unknown */
};

/* 1 when the client has closed its end: an SSE client sends nothing after its request, so a
 * readable socket with no data is end of file. */
static int client_gone(int fd)
{
	if (fd < 0)
		return 0;
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void sse_free(void *cls)
{
	struct sse *s = cls;
	atomic_fetch_sub(&s->h->sse_open, 1);
	free(s->buf);
	free(s);
}

/* Fill s->buf with the next records; returns 0 when there were none. */
static size_t sse_fill(struct sse *s)
{
	struct ev_detection d[SSE_BATCH];
	/* keep what fits; the cursor only moves past detections that were formatted */
	size_t n = events_query(s->h->ev, s->cursor, s->channel, s->has_keyword ? s->keyword : NULL, d,
				SSE_BATCH, &s->cursor);
	s->len = s->off = 0;
	for (size_t i = 0; i < n; i++) {
		char *j = events_dump(&d[i]);
		if (!j)
			continue;
		int w = snprintf(s->buf + s->len, SSE_BUF - s->len, "id: %llu\nevent: detection\ndata: %s\n\n",
				 (unsigned long long)d[i].id, j);
		free(j);
		if (w > 0 && (size_t)w < SSE_BUF - s->len)
			s->len += (size_t)w;
	}
	return s->len;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sse *s = cls;
	(void)pos;
	for (;;) {
		if (s->off < s->len) {
			size_t n = s->len - s->off < max ? s->len - s->off : max;
			memcpy(out, s->buf + s->off, n);
			s->off += n;
			s->last_ms = (s4k_mono_ns() / 1000000);
			return (ssize_t)n;
		}
		if (atomic_load(&s->h->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (sse_fill(s))
			continue;
		int64_t wait = (int64_t)(s->h->c.heartbeat_s * 1000) - ((s4k_mono_ns() / 1000000) - s->last_ms);
		if (wait <= 0) {
			s->len = (size_t)snprintf(s->buf, SSE_BUF, ": heartbeat\n\n");
			s->off = 0;
			continue;
		}
		/* sleep until a detection, the heartbeat or shutdown, in slices of 250 ms to notice
		 * a client that went away (its stream slot is then freed without waiting for a write) */
		int rc = events_wait(s->h->ev, s->cursor, (int)(wait < 250 ? wait : 250));
		if (rc < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (rc == 0 && client_gone(s->fd))
			return MHD_CONTENT_READER_END_OF_STREAM; /* a normal end, not an error to log */
	}
}

static enum MHD_Result get_events(struct http *h, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct filter f;
	memset(&f, 0, sizeof f);
	char msg[160];
	if (parse_filter(conn, &f, msg, sizeof msg) < 0)
		return reply_error(h, conn, EP_EVENTS, 400, msg);
	const char *lei = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
	uint64_t cursor = events_last_id(h->ev); /* default: only new detections */
	if (lei) {
		char *end;
		errno = 0;
		unsigned long long x = strtoull(lei, &end, 10);
		if (!*lei || *end || errno || *lei == '-') {
			return reply_error(h, conn, EP_EVENTS, 400,
					   "Last-Event-ID must be the id of a detection (a whole number)");
		}
		cursor = x;
	} else if (f.has_since) {
		cursor = f.since;
	}
	if (atomic_fetch_add(&h->sse_open, 1) >= h->c.sse_clients) {
		atomic_fetch_sub(&h->sse_open, 1);
		return reply_error(h, conn, EP_EVENTS, 503, "too many event streams are open; try again later");
	}
	struct sse *s = calloc(1, sizeof *s);
	if (s)
		s->buf = malloc(SSE_BUF);
	if (!s || !s->buf) {
		if (s)
			free(s);
		atomic_fetch_sub(&h->sse_open, 1);
		return reply_error(h, conn, EP_EVENTS, 500, "out of memory");
	}
	s->h = h;
	s->fd = ci ? ci->connect_fd : -1;
	s->cursor = cursor;
	s->channel = f.channel;
	s->has_keyword = f.has_keyword;
	memcpy(s->keyword, f.keyword, sizeof s->keyword);
	/* first bytes right away: the client sees the stream open, and its retry delay */
	s->len = (size_t)snprintf(s->buf, SSE_BUF, "retry: 2000\n: s4kws events from id %llu\n\n",
				  (unsigned long long)cursor);
	s->last_ms = (s4k_mono_ns() / 1000000);
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
	if (!r) {
		sse_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return reply(h, conn, EP_EVENTS, 200, r);
}

/* ---- status, metrics, classify ---- */

/* GET of a JSON document built by a hook (status, scores); 500 with `missing` when it gives none. */
static enum MHD_Result get_hook_json(struct http *h, struct MHD_Connection *conn, enum ep ep,
				     json_t *(*hook)(void *), const char *missing)
{
	json_t *o = hook ? hook(h->hooks.ud) : NULL;
	if (!o)
		return reply_error(h, conn, ep, 500, missing);
	return reply_json(h, conn, ep, 200, o);
}

/* /v1/mute: GET reads, POST [?seconds=S] mutes (S in (0, 86400]; none: until DELETE), DELETE
 * unmutes. A body is not needed and not read. */
static enum MHD_Result mute(struct http *h, struct MHD_Connection *conn, const char *method)
{
	int op = !strcmp(method, "POST") ? 1 : !strcmp(method, "DELETE") ? 2 : 0;
	double secs = 0;
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "seconds");
	if (op == 1 && v && (s4k_decimal(v, &secs) < 0 || !(secs >= 0.001 && secs <= 86400)))
		return reply_error(h, conn, EP_MUTE, 400,
				   "query parameter seconds must be a decimal number of seconds from 0.001 to "
				   "86400 (leave it out to mute until DELETE /v1/mute)");
	json_t *o = h->hooks.mute(h->hooks.ud, op, secs);
	if (!o)
		return reply_error(h, conn, EP_MUTE, 500, "the mute state is not available");
	return reply_json(h, conn, EP_MUTE, 200, o);
}

static void write_http_metrics(struct http *h, FILE *f)
{
	fprintf(f, "# HELP s4kws_http_requests_total HTTP requests answered, by endpoint and status.\n"
		   "# TYPE s4kws_http_requests_total counter\n");
	for (int e = 0; e < N_EP; e++)
		for (size_t i = 0; i <= N_CODES; i++) {
			uint64_t n = atomic_load(&h->requests[e][i]);
			if (!n && !(e == EP_METRICS && i == 0))
				continue;
			if (i < N_CODES)
				fprintf(f, "s4kws_http_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n",
					ep_names[e], codes[i], (unsigned long long)n);
			else
				fprintf(f, "s4kws_http_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n",
					ep_names[e], (unsigned long long)n);
		}
	fprintf(f, "# HELP s4kws_sse_clients Open /v1/events streams.\n# TYPE s4kws_sse_clients gauge\n"
		   "s4kws_sse_clients %u\n", atomic_load(&h->sse_open));
	struct admit_stats as;
	admit_stats(h->admit, &as);
	struct door_stats ds;
	door_stats(h->door, &ds);
	fprintf(f, "# HELP s4kws_http_connections Open HTTP connections.\n# TYPE s4kws_http_connections gauge\n"
		   "s4kws_http_connections %u\n", as.open);
	fprintf(f, "# HELP s4kws_http_dropped_total HTTP connections shut down: evicted (the oldest still "
		   "sending its request head, to make room), timed_out (a head or body past its deadline), "
		   "refused (every slot was being answered), malformed (a first line that is not a request: "
		   "answered 400).\n# TYPE s4kws_http_dropped_total counter\n"
		   "s4kws_http_dropped_total{reason=\"evicted\"} %llu\n"
		   "s4kws_http_dropped_total{reason=\"timed_out\"} %llu\n"
		   "s4kws_http_dropped_total{reason=\"refused\"} %llu\n"
		   "s4kws_http_dropped_total{reason=\"malformed\"} %llu\n",
		(unsigned long long)(as.evicted + ds.evicted), (unsigned long long)(as.timed_out + ds.timed_out),
		(unsigned long long)as.refused, (unsigned long long)ds.malformed);
}

static enum MHD_Result get_metrics(struct http *h, struct MHD_Connection *conn)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return reply_error(h, conn, EP_METRICS, 500, "out of memory");
	if (h->hooks.metrics)
		h->hooks.metrics(h->hooks.ud, f);
	/* this request is counted before it is answered, so the text includes it */
	count_req(h, EP_METRICS, 200);
	write_http_metrics(h, f);
	if (fclose(f) != 0) {
		free(buf);
		return reply_error(h, conn, EP_METRICS, 500, "out of memory");
	}
	struct MHD_Response *r = text_response(buf, len, "text/plain; version=0.0.4; charset=utf-8");
	free(buf);
	if (!r)
		return MHD_NO;
	add_cors(h, conn, r);
	enum MHD_Result ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result post_classify(struct http *h, struct MHD_Connection *conn, struct req *rq)
{
	if (rq->too_big) {
		char msg[128];
		snprintf(msg, sizeof msg, "the audio file is larger than the limit of %zu bytes", h->c.max_body);
		return reply_error(h, conn, EP_CLASSIFY, 413, msg);
	}
	if (rq->len == 0)
		return reply_error(h, conn, EP_CLASSIFY, 400, "the request body is empty; send an audio file");
	uint64_t max_rate = 0;
	char msg[128];
	if (arg_u64(conn, "max_rate", 1000, 768000, &max_rate, msg, sizeof msg) < 0)
		return reply_error(h, conn, EP_CLASSIFY, 400, msg);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	int rc;
	while ((rc = sem_timedwait(&h->jobs, &dl)) < 0 && errno == EINTR)
		;
	if (rc < 0)
		return reply_error(h, conn, EP_CLASSIFY, 503, "too many classify requests; try again later");
	json_t *out = NULL;
	char err[S4K_ERR_LEN] = "";
	int status = h->hooks.classify(h->hooks.ud, rq->body, rq->len, (int)max_rate, &out, err,
				       sizeof err);
	sem_post(&h->jobs);
	/* the same text as `s4kws classify --format json` (9 significant digits) */
	if (status == 200 && out)
		return reply_json_flags(h, conn, EP_CLASSIFY, 200, out, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(out);
	if (status < 400 || status > 599)
		status = 500;
	return reply_error(h, conn, EP_CLASSIFY, (unsigned)status, err[0] ? err : "classification failed");
}

/* PUT /v1/thresholds: a JSON object {"keyword": threshold, ...} applied together or not at all. */
static enum MHD_Result put_thresholds(struct http *h, struct MHD_Connection *conn, struct req *rq)
{
	if (rq->too_big)
		return reply_error(h, conn, EP_THRESHOLDS, 413, "the body is larger than 16 KiB");
	json_error_t je;
	json_t *in = rq->len ? json_loadb(rq->body, rq->len, 0, &je) : NULL;
	if (!json_is_object(in)) {
		json_decref(in);
		return reply_error(h, conn, EP_THRESHOLDS, 400,
				   "the body must be a JSON object of keyword: threshold, e.g. {\"yes\": 0.9}");
	}
	char err[S4K_ERR_LEN] = "";
	json_t *out = h->hooks.thresholds(h->hooks.ud, in, err, sizeof err);
	json_decref(in);
	if (!out)
		return reply_error(h, conn, EP_THRESHOLDS, 400, err[0] ? err : "the thresholds were not changed");
	return reply_json(h, conn, EP_THRESHOLDS, 200, out);
}

/* ---- the page, the session cookie, CORS preflight ---- */

static enum MHD_Result get_page(struct http *h, struct MHD_Connection *conn)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(page_html_len, (void *)page_html,
								 MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* the page loads nothing from elsewhere and may not be framed (clickjacking the mute) */
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
				"connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	return reply(h, conn, EP_PAGE, 200, r);
}

/* POST /v1/session: the session cookie for a request with the token (the page's way in);
 * DELETE: the cookie is cleared. {"session": true} when there is a token, else false. */
static enum MHD_Result session(struct http *h, struct MHD_Connection *conn, const char *method)
{
	int post = !strcmp(method, "POST");
	if (!post && strcmp(method, "DELETE"))
		return reply_405(h, conn, EP_SESSION, "POST, DELETE");
	struct MHD_Response *r = json_response(json_pack("{s:b}", "session", post && h->token[0]),
					       EV_JSON_FLAGS);
	if (!r)
		return reply_error(h, conn, EP_SESSION, 500, "out of memory");
	if (h->token[0]) {
		char c[sizeof h->session + 96];
		snprintf(c, sizeof c, SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s",
			 post ? h->session : "", post ? "" : "; Max-Age=0");
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, c);
	}
	return reply(h, conn, EP_SESSION, 200, r);
}

/* OPTIONS from a browser about to make a cross-origin request (only with --cors-origin). */
static enum MHD_Result preflight(struct http *h, struct MHD_Connection *conn, enum ep ep)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE");
	MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID");
	MHD_add_response_header(r, "Access-Control-Max-Age", "600");
	return reply(h, conn, ep, 204, r);
}

/* ---- routing ---- */

/* The largest body read for this endpoint and method (0: none is read). */
static size_t body_limit(const struct http *h, enum ep ep, const char *method)
{
	if (ep == EP_CLASSIFY && !strcmp(method, "POST") && h->hooks.classify)
		return h->c.max_body;
	if (ep == EP_THRESHOLDS && !strcmp(method, "PUT") && h->hooks.thresholds)
		return THRESHOLDS_MAX_BODY;
	return 0;
}

static enum ep route(const char *url)
{
	for (int e = 0; e < EP_OTHER; e++)
		if (!strcmp(url, ep_names[e]))
			return (enum ep)e;
	return EP_OTHER;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	(void)version;
	struct req *rq = *con_cls;
	if (!rq) {
		rq = calloc(1, sizeof *rq);
		if (!rq)
			return MHD_NO;
		rq->ep = route(url);
		*con_cls = rq;
		atomic_fetch_add(&h->active, 1);
		if (atomic_load(&h->stopping)) /* a request on a kept-alive connection while draining */
			return reply_error(h, conn, rq->ep, 503, "the daemon is shutting down");
		/* only an authorized classify upload or thresholds update has a body worth reading:
		 * answer the rest now */
		if (!body_limit(h, rq->ep, method) || !authorized(h, conn))
			goto answer;
		admit_phase(conn, ADMIT_BODY);
		/* refuse a declared oversize body before reading it */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > body_limit(h, rq->ep, method)) {
			rq->too_big = 1;
			return rq->ep == EP_CLASSIFY ? post_classify(h, conn, rq) : put_thresholds(h, conn, rq);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		/* body chunk */
		size_t n = *upload_size, max = body_limit(h, rq->ep, method);
		*upload_size = 0;
		if (!max || rq->too_big)
			return MHD_YES;
		if (n > max - rq->len) {
			rq->too_big = 1;
			free(rq->body);
			rq->body = NULL;
			rq->len = rq->cap = 0;
			return MHD_YES;
		}
		if (rq->len + n > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 65536;
			while (cap < rq->len + n)
				cap *= 2;
			if (cap > max)
				cap = max;
			char *b = realloc(rq->body, cap);
			if (!b)
				return MHD_NO;
			rq->body = b;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		return MHD_YES;
	}
answer:
	admit_phase(conn, ADMIT_ANSWER);
	if (!strcmp(method, "OPTIONS") && h->cors_origin[0])
		return preflight(h, conn, rq->ep);
	int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	enum auth au = rq->ep == EP_HEALTHZ || rq->ep == EP_PAGE ? AUTH_OPEN : authorized(h, conn);
	if (au == AUTH_NONE) {
		static const char msg[] = "{\"error\":\"a valid 'Authorization: Bearer' token is required\"}\n";
		struct MHD_Response *r = text_response(msg, sizeof msg - 1, "application/json");
		if (r)
			MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"s4kws\"");
		return reply(h, conn, rq->ep, 401, r);
	}
	if (au == AUTH_COOKIE && !get && !same_origin(conn))
		return reply_error(h, conn, rq->ep, 403, "a request from another site's page; the session "
				   "cookie is only good for this server's own page");
	static const char ok[] = "{\"status\":\"ok\"}\n";
	switch (rq->ep) {
	case EP_HEALTHZ:
		if (!get)
			return reply_405(h, conn, rq->ep, "GET, HEAD");
		return reply(h, conn, rq->ep, 200, text_response(ok, sizeof ok - 1, "application/json"));
	case EP_DETECTIONS:
		return get ? get_detections(h, conn) : reply_405(h, conn, rq->ep, "GET, HEAD");
	case EP_EVENTS:
		return get ? get_events(h, conn) : reply_405(h, conn, rq->ep, "GET");
	case EP_STATUS:
		return get ? get_hook_json(h, conn, rq->ep, h->hooks.status, "status is not available")
			   : reply_405(h, conn, rq->ep, "GET, HEAD");
	case EP_SCORES:
		if (!h->hooks.scores)
			break;
		return get ? get_hook_json(h, conn, rq->ep, h->hooks.scores, "scores are not available")
			   : reply_405(h, conn, rq->ep, "GET, HEAD");
	case EP_METRICS:
		return get ? get_metrics(h, conn) : reply_405(h, conn, rq->ep, "GET, HEAD");
	case EP_MUTE:
		if (!h->hooks.mute)
			break;
		if (!get && strcmp(method, "POST") && strcmp(method, "DELETE"))
			return reply_405(h, conn, rq->ep, "GET, HEAD, POST, DELETE");
		return mute(h, conn, method);
	case EP_THRESHOLDS:
		if (!h->hooks.thresholds)
			break;
		if (get) {
			char err[S4K_ERR_LEN] = "";
			json_t *o = h->hooks.thresholds(h->hooks.ud, NULL, err, sizeof err);
			return o ? reply_json(h, conn, rq->ep, 200, o)
				 : reply_error(h, conn, rq->ep, 500, "the thresholds are not available");
		}
		if (strcmp(method, "PUT"))
			return reply_405(h, conn, rq->ep, "GET, HEAD, PUT");
		return put_thresholds(h, conn, rq);
	case EP_PAGE:
		return get ? get_page(h, conn) : reply_405(h, conn, rq->ep, "GET, HEAD");
	case EP_SESSION:
		return session(h, conn, method);
	case EP_CLASSIFY:
		if (!h->hooks.classify)
			break;
		if (strcmp(method, "POST"))
			return reply_405(h, conn, rq->ep, "POST");
		return post_classify(h, conn, rq);
	default:
		break;
	}
	return reply_error(h, conn, EP_OTHER, 404, "no such endpoint; see /, /v1/status, /v1/detections, "
			   "/v1/events, /v1/scores, /v1/mute, /v1/thresholds, /metrics");
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	(void)toe;
	admit_phase(conn, ADMIT_HEAD); /* a kept-alive connection's next request */
	struct req *rq = *con_cls;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
		atomic_fetch_sub(&h->active, 1);
	}
}

/* The door's hand-off: a connection whose first line starts like a request. */
static void pass_on(void *ud, int fd, const struct sockaddr *peer, socklen_t peer_len)
{
	struct http *h = ud;
	MHD_add_connection(h->d, fd, peer, peer_len); /* on failure it has closed fd */
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http *h = cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = 0;
	if (!h->d) { /* while starting: kept for the one error sentence (e.g. the port is taken) */
		snprintf(h->start_msg, sizeof h->start_msg, "%.*s", (int)sizeof h->start_msg - 1, msg);
		return;
	}
	log_msg(LOGL_INFO, "http: %s", msg);
}

struct http *http_start(const struct http_config *c, struct events *ev,
			const struct http_hooks *hooks, char *err, size_t errlen)
{
	const char *bind = c->bind && *c->bind ? c->bind : "127.0.0.1";
	const char *token = c->token ? c->token : "";
	if (!cfg_is_loopback(bind) && !*token) {
		s4k_seterr(err, errlen, "binding to %s (not loopback) requires a --token", bind);
		return NULL;
	}
	if (strlen(token) >= 256) {
		s4k_seterr(err, errlen, "the token is longer than 255 bytes");
		return NULL;
	}
	if (c->cors_origin && strlen(c->cors_origin) >= 256) {
		s4k_seterr(err, errlen, "the CORS origin is longer than 255 bytes");
		return NULL;
	}
	if (c->heartbeat_s <= 0 || c->max_connections < 1 || c->classify_jobs < 1 || c->sse_clients < 1 ||
	    c->port < 0 || c->port > 65535) {
		s4k_seterr(err, errlen, "invalid HTTP settings");
		return NULL;
	}
	struct sockaddr_storage ss;
	socklen_t sl;
	/* the door (door.c) listens and accepts; libmicrohttpd gets the connections it passes on */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
	if (cfg_sockaddr(bind, c->port, &ss, &sl) < 0) {
		s4k_seterr(err, errlen, "'%s' is not an IPv4 or IPv6 address", bind);
		return NULL;
	}
	struct http *h = calloc(1, sizeof *h);
	if (!h) {
		s4k_seterr(err, errlen, "out of memory starting HTTP");
		return NULL;
	}
	h->ev = ev;
	h->hooks = *hooks;
	h->c = *c;
	h->c.bind = NULL;
	h->c.token = NULL;
	h->c.cors_origin = NULL;
	snprintf(h->token, sizeof h->token, "%s", token);
	snprintf(h->cors_origin, sizeof h->cors_origin, "%s", c->cors_origin ? c->cors_origin : "");
	unsigned char key[SESSION_BYTES];
	if (*token && getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) {
		s4k_seterr(err, errlen, "no random numbers for the session key: %s", strerror(errno));
		free(h);
		return NULL;
	}
	for (size_t i = 0; *token && i < sizeof key; i++)
		snprintf(h->session + 2 * i, 3, "%02x", key[i]);
	memset(key, 0, sizeof key);
	if (!(h->admit = admit_new(c->max_connections, err, errlen))) {
		free(h);
		return NULL;
	}
	char why[200];
	if (!(h->door = door_open((struct sockaddr *)&ss, sl, why, sizeof why))) {
		s4k_seterr(err, errlen, "cannot listen on %s port %d: %s", bind, c->port, why);
		admit_free(h->admit);
		free(h);
		return NULL;
	}
	sem_init(&h->jobs, 0, c->classify_jobs);
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, h,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
				/* admit_notify keeps max_connections; the spare lets a newcomer reach it */
				MHD_OPTION_CONNECTION_LIMIT, admit_hard_limit(c->max_connections),
				MHD_OPTION_NOTIFY_CONNECTION, admit_notify, h->admit,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->timeout_s,
				MHD_OPTION_NOTIFY_COMPLETED, completed, h,
				/* RFC 7230: an HTTP/1.1 request without Host gets 400, not an answer */
				MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
				MHD_OPTION_END);
	if (!h->d || door_start(h->door, pass_on, h, err, errlen) < 0) {
		if (!h->d)
			s4k_seterr(err, errlen, "cannot start HTTP on %s port %d: %s", bind, c->port,
				   h->start_msg[0] ? h->start_msg : "libmicrohttpd failed");
		door_free(h->door);
		if (h->d)
			MHD_stop_daemon(h->d);
		sem_destroy(&h->jobs);
		admit_free(h->admit);
		free(h);
		return NULL;
	}
	h->port = door_port(h->door);
	return h;
}

int http_port(const struct http *h)
{
	return h->port;
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	/* drain: no new connections, new requests get 503, SSE streams end; answers being computed
	 * (POST /v1/classify) are still sent, for up to HTTP_DRAIN_S */
	atomic_store(&h->stopping, 1);
	door_shut(h->door);
	for (int i = 0; i < HTTP_DRAIN_S * 100 && atomic_load(&h->active) > 0; i++)
		usleep(10000);
	MHD_stop_daemon(h->d);
	door_free(h->door);
	admit_free(h->admit);
	sem_destroy(&h->jobs);
	free(h);
}
