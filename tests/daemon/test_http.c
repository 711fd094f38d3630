/* test_http.c - every HTTP endpoint over a real socket on 127.0.0.1: auth, 404, 405, 400 on bad
 * query parameters, /v1/detections filters and cursors, SSE (live, Last-Event-ID resume,
 * filters, heartbeats, stream limit, prompt shutdown), /metrics, POST bodies (exact transfer,
 * 400, 413 declared and chunked, hook errors), the connection limit and idle timeout, the
 * bind rules, and what browsers use: the page at /, the session cookie (and its refusal from
 * another origin) and CORS.
 *
 * The server is the real http.c over the real events store; the hooks are small test functions
 * (status and metrics return fixed content, classify checks the body and answers 415 for
 * anything that does not start with "RIFF"), because this test is about HTTP, not the model:
 * the real hooks are exercised end to end by test_listen.c and test_listen_api.c.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "tests/check.h"
#include "client.h"
#include "daemon/events.h"
#include "daemon/door.h"
#include "daemon/http.h"
#include "daemon/log.h"

static _Atomic int status_calls;

static json_t *hook_status(void *ud)
{
	(void)ud;
	return json_pack("{s:s, s:i}", "input", "running", "calls", ++status_calls);
}

static json_t *hook_scores(void *ud)
{
	(void)ud;
	return json_pack("{s:[{s:i}]}", "channels", "channel", 0);
}

static void hook_metrics(void *ud, FILE *out)
{
	(void)ud;
	fprintf(out, "# TYPE s4kws_test_metric gauge\ns4kws_test_metric 42\n");
}

static uint32_t checksum(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static int hook_classify(void *ud, const void *body, size_t len, int max_rate, json_t **out, char *err,
			 size_t errlen)
{
	(void)ud;
	if (len < 4 || memcmp(body, "RIFF", 4)) {
		snprintf(err, errlen, "the body is not a RIFF file");
		return 415;
	}
	*out = json_pack("{s:I, s:I, s:i}", "bytes", (json_int_t)len, "fnv", (json_int_t)checksum(body, len),
			 "max_rate", max_rate);
	return 200;
}

static void add(struct events *ev, const char *kw, int ch)
{
	struct ev_detection d;
	memset(&d, 0, sizeof d);
	snprintf(d.keyword, sizeof d.keyword, "%s", kw);
	d.channel = ch;
	d.score = 0.9f;
	d.offset = 1.5;
	events_add(ev, &d);
}

static json_t *body_json(const struct resp *r)
{
	json_error_t je;
	return json_loads(r->body, 0, &je);
}

/* Wait until /metrics reports no open event streams (the server noticed the hang-ups). */
static int wait_streams_closed(int port)
{
	for (int i = 0; i < 40; i++) {
		struct resp r;
		http_req(port, "GET", "/metrics", NULL, NULL, 0, &r);
		int zero = strstr(r.body, "s4kws_sse_clients 0\n") != NULL;
		free(r.body);
		if (zero)
			return 1;
		usleep(50000);
	}
	return 0;
}

static struct http_config base_config(void)
{
	struct http_config c = {.bind = "127.0.0.1", .port = 0, .token = "", .max_connections = 16,
				.timeout_s = 5, .max_body = 1 << 20, .classify_jobs = 2, .sse_clients = 2,
				.heartbeat_s = 0.3};
	return c;
}

static const struct http_hooks hooks = {.status = hook_status, .scores = hook_scores, .metrics = hook_metrics,
					.classify = hook_classify};

#define AUTH "Authorization: Bearer tok-123\r\n"

static void test_auth_and_routing(struct events *ev)
{
	char err[256];
	struct http_config c = base_config();
	c.token = "tok-123";
	struct http *h = http_start(&c, ev, &hooks, err, sizeof err);
	CHECK(h != NULL, "%s", err);
	if (!h)
		return;
	int port = http_port(h);
	CHECK(port > 0, "bound port %d", port);
	struct resp r;
	http_req(port, "GET", "/healthz", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && strstr(r.body, "\"ok\""), "healthz without token: %d %s", r.status, r.body);
	free(r.body);
	static const char *const protected_paths[] = {"/v1/status", "/v1/detections", "/metrics", "/v1/events",
						      "/v1/scores", "/nope"};
	for (size_t i = 0; i < 6; i++) {
		http_req(port, "GET", protected_paths[i], NULL, NULL, 0, &r);
		char v[128];
		CHECK(r.status == 401 && resp_header(&r, "WWW-Authenticate", v, sizeof v) && strstr(v, "Bearer"),
		      "%s without token: %d", protected_paths[i], r.status);
		free(r.body);
		http_req(port, "GET", protected_paths[i], "Authorization: Bearer tok-12\r\n", NULL, 0, &r);
		CHECK(r.status == 401, "%s with a wrong token: %d", protected_paths[i], r.status);
		free(r.body);
	}
	http_req(port, "POST", "/v1/classify", "Authorization: Basic dG9rLTEyMw==\r\n", "RIFFxxxx", 8, &r);
	CHECK(r.status == 401, "classify with Basic auth: %d", r.status);
	free(r.body);
	http_req(port, "GET", "/v1/status", AUTH, NULL, 0, &r);
	json_t *o = body_json(&r);
	CHECK(r.status == 200 && o && !strcmp(json_string_value(json_object_get(o, "input")), "running"),
	      "status: %d %s", r.status, r.body);
	char ct[128];
	CHECK(resp_header(&r, "Content-Type", ct, sizeof ct) && !strcmp(ct, "application/json"), "%s", ct);
	json_decref(o);
	free(r.body);
	http_req(port, "GET", "/v1/scores", AUTH, NULL, 0, &r);
	o = body_json(&r);
	CHECK(r.status == 200 && json_array_size(json_object_get(o, "channels")) == 1, "scores: %d %s", r.status,
	      r.body);
	json_decref(o);
	free(r.body);
	http_req(port, "GET", "/nope", AUTH, NULL, 0, &r);
	o = body_json(&r);
	CHECK(r.status == 404 && o && json_is_string(json_object_get(o, "error")), "404: %d %s", r.status, r.body);
	json_decref(o);
	free(r.body);
	static const char *const m405[][3] = {{"POST", "/v1/status", "GET"},   {"DELETE", "/v1/detections", "GET"},
					      {"GET", "/v1/classify", "POST"}, {"PUT", "/metrics", "GET"},
					      {"POST", "/healthz", "GET"},     {"POST", "/v1/events", "GET"},
					      {"POST", "/v1/scores", "GET"}};
	for (size_t i = 0; i < 7; i++) {
		http_req(port, m405[i][0], m405[i][1], AUTH, NULL, 0, &r);
		char allow[64] = "";
		resp_header(&r, "Allow", allow, sizeof allow);
		o = body_json(&r);
		CHECK(r.status == 405 && strstr(allow, m405[i][2]) && o, "%s %s: %d allow '%s'", m405[i][0],
		      m405[i][1], r.status, allow);
		json_decref(o);
		free(r.body);
	}
	http_stop(h);
}

static void test_detections(struct events *ev, int port)
{
	struct resp r;
	/* the store holds ids 1..6: yes/0 no/1 yes/1 go/0 yes/0 stop/2 */
	http_req(port, "GET", "/v1/detections", NULL, NULL, 0, &r);
	json_t *o = body_json(&r);
	json_t *arr = json_object_get(o, "detections");
	CHECK(r.status == 200 && json_array_size(arr) == 6 && json_integer_value(json_object_get(o, "last_id")) == 6,
	      "all: %s", r.body);
	json_t *d0 = json_array_get(arr, 0);
	const char *t = json_string_value(json_object_get(d0, "time"));
	CHECK(json_integer_value(json_object_get(d0, "id")) == 1 &&
		      !strcmp(json_string_value(json_object_get(d0, "keyword")), "yes") &&
		      json_is_integer(json_object_get(d0, "channel")) && json_is_number(json_object_get(d0, "score")) &&
		      json_is_number(json_object_get(d0, "offset")) && json_is_number(json_object_get(d0, "start")) &&
		      json_is_number(json_object_get(d0, "end")) && t && strlen(t) == 24 && t[10] == 'T' && t[23] == 'Z',
	      "fields: %s", r.body);
	json_decref(o);
	free(r.body);

	struct {
		const char *q;
		int n;
		int first, last_id;
	} cases[] = {
		{"/v1/detections?since=4", 2, 5, 6},
		{"/v1/detections?limit=2", 2, 1, 2},
		{"/v1/detections?since=2&limit=2", 2, 3, 4},
		{"/v1/detections?channel=1", 2, 2, 6},
		{"/v1/detections?keyword=yes", 3, 1, 6},
		{"/v1/detections?keyword=yes&channel=0", 2, 1, 6},
		{"/v1/detections?keyword=maybe", 0, 0, 6},
		{"/v1/detections?since=6", 0, 0, 6},
		{"/v1/detections?since=1000", 0, 0, 6},
		{"/v1/detections?keyword=%79es&unknown=1", 3, 1, 6}, /* escaped "yes"; unknown params ignored */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		http_req(port, "GET", cases[i].q, NULL, NULL, 0, &r);
		o = body_json(&r);
		arr = json_object_get(o, "detections");
		int first = (int)json_integer_value(json_object_get(json_array_get(arr, 0), "id"));
		int last = (int)json_integer_value(json_object_get(o, "last_id"));
		CHECK(r.status == 200 && (int)json_array_size(arr) == cases[i].n && first == cases[i].first &&
			      last == cases[i].last_id,
		      "%s: %d n=%zu first=%d last_id=%d", cases[i].q, r.status, json_array_size(arr), first, last);
		json_decref(o);
		free(r.body);
	}
	static const char *const bad[] = {"since=-1", "since=abc", "since=", "since=1.5", "limit=0", "limit=1001",
					  "limit=x", "channel=-2", "channel=z", "channel=5000", "keyword=",
					  "since=99999999999999999999999"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char path[128];
		snprintf(path, sizeof path, "/v1/detections?%s", bad[i]);
		http_req(port, "GET", path, NULL, NULL, 0, &r);
		o = body_json(&r);
		const char *e = json_string_value(json_object_get(o, "error"));
		CHECK(r.status == 400 && e && strstr(e, "query parameter"), "%s: %d %s", bad[i], r.status, r.body);
		json_decref(o);
		free(r.body);
		snprintf(path, sizeof path, "/v1/events?%s", bad[i]);
		if (strncmp(bad[i], "limit", 5)) {
			http_req(port, "GET", path, NULL, NULL, 0, &r);
			CHECK(r.status == 400, "events %s: %d", bad[i], r.status);
			free(r.body);
		}
	}
	(void)ev;
}

static void test_metrics(int port)
{
	struct resp r;
	http_req(port, "GET", "/metrics", NULL, NULL, 0, &r);
	char ct[128] = "";
	resp_header(&r, "Content-Type", ct, sizeof ct);
	CHECK(r.status == 200 && strstr(ct, "text/plain") && strstr(r.body, "s4kws_test_metric 42\n") &&
		      strstr(r.body, "s4kws_http_requests_total{endpoint=\"/v1/detections\",code=\"200\"} 11\n") &&
		      strstr(r.body, "s4kws_http_requests_total{endpoint=\"/v1/detections\",code=\"400\"} 12\n") &&
		      strstr(r.body, "s4kws_http_requests_total{endpoint=\"/metrics\",code=\"200\"} 1\n") &&
		      strstr(r.body, "s4kws_sse_clients 0\n"),
	      "metrics: %d %s", r.status, r.body);
	free(r.body);
}

static void test_classify(int port)
{
	struct resp r;
	size_t n = 300000;
	unsigned char *buf = malloc(n);
	memcpy(buf, "RIFF", 4);
	for (size_t i = 4; i < n; i++)
		buf[i] = (unsigned char)(i * 7919 >> 3);
	http_req(port, "POST", "/v1/classify", "Content-Type: audio/wav\r\n", buf, n, &r);
	json_t *o = body_json(&r);
	CHECK(r.status == 200 && json_integer_value(json_object_get(o, "bytes")) == (json_int_t)n &&
		      json_integer_value(json_object_get(o, "fnv")) == (json_int_t)checksum(buf, n),
	      "exact body transfer: %d %s", r.status, r.body);
	CHECK(json_integer_value(json_object_get(o, "max_rate")) == 0, "no max_rate: %s", r.body);
	json_decref(o);
	free(r.body);
	/* ?max_rate=HZ reaches the hook; out of 1000..768000 or not a number: 400, hook not run */
	http_req(port, "POST", "/v1/classify?max_rate=8000", NULL, buf, 64, &r);
	o = body_json(&r);
	CHECK(r.status == 200 && json_integer_value(json_object_get(o, "max_rate")) == 8000, "max_rate: %d %s",
	      r.status, r.body);
	json_decref(o);
	free(r.body);
	static const char *const bad_rates[] = {"0", "999", "768001", "8k", "-8000", ""};
	for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++) {
		char url[64];
		snprintf(url, sizeof url, "/v1/classify?max_rate=%s", bad_rates[i]);
		http_req(port, "POST", url, NULL, buf, 64, &r);
		CHECK(r.status == 400 && strstr(r.body, "max_rate") && !strstr(r.body, "fnv"), "max_rate=%s: %d %s",
		      bad_rates[i], r.status, r.body);
		free(r.body);
	}
	http_req(port, "POST", "/v1/classify", NULL, "OggS....", 8, &r);
	o = body_json(&r);
	CHECK(r.status == 415 && !strcmp(json_string_value(json_object_get(o, "error")), "the body is not a RIFF file"),
	      "hook error: %d %s", r.status, r.body);
	json_decref(o);
	free(r.body);
	http_req(port, "POST", "/v1/classify", NULL, "", 0, &r);
	CHECK(r.status == 400 && strstr(r.body, "empty"), "empty body: %d %s", r.status, r.body);
	free(r.body);

	/* HTTP/1.1 requires Host (RFC 7230 5.4): 400; HTTP/1.0 needs none */
	static const struct { const char *req; int want; } host[] = {
		{"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 400},
		{"GET /healthz HTTP/1.0\r\n\r\n", 200},
	};
	for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) {
		int hf = client_connect(port);
		send_all(hf, host[i].req, strlen(host[i].req));
		char *hr;
		size_t hn = read_all(hf, &hr, 3000);
		close(hf);
		parse_resp(hr, hn, &r);
		CHECK(r.status == host[i].want, "%.16s without Host: %d", host[i].req, r.status);
		free(r.body);
	}

	/* a first line that is not a request gets an answer, not a silent close (libmicrohttpd alone
	 * closed these); the rest of the line stays libmicrohttpd's to judge */
	static const struct { const char *req; size_t len; int want; } lines[] = {
		{"GARBAGE\r\n\r\n", 0, 400},
		{"GET\r\n\r\n", 0, 400},
		{" GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400},
		{"\x01\x02\x03\r\n\r\n", 0, 400},
		{"\r\n\r\n", 0, 400},
		{"GET", 0, 400}, /* the client stops sending before the method ends */
		{"G\0T /healthz HTTP/1.1\r\n\r\n", 26, 400},
		{"GET /healthz\r\n\r\n", 0, 400},
		{"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 0, 505},
		{"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0, 200},
		{"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n", 0, 200},
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		int lf = client_connect(port);
		send_all(lf, lines[i].req, lines[i].len ? lines[i].len : strlen(lines[i].req));
		shutdown(lf, SHUT_WR);
		char *lr;
		size_t ln = read_all(lf, &lr, 3000);
		close(lf);
		parse_resp(lr, ln, &r);
		CHECK(r.status == lines[i].want, "request line %zu (%.12s): %d, want %d", i, lines[i].req, r.status,
		      lines[i].want);
		free(r.body);
	}
	CHECK(door_judge((const unsigned char *)"GE", 2, 0) == 0 && door_judge((const unsigned char *)"GET ", 4, 0) == 1 &&
	      door_judge((const unsigned char *)"\r\n", 2, 0) == 0 && door_judge((const unsigned char *)"GE", 2, 1) < 0,
	      "door_judge waits for a method, passes one, refuses a cut one");

	/* declared too big: refused before the body is read */
	int fd = client_connect(port);
	const char *head = "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n";
	send_all(fd, head, strlen(head));
	char *raw;
	size_t got = read_all(fd, &raw, 3000);
	close(fd);
	parse_resp(raw, got, &r);
	o = body_json(&r);
	CHECK(r.status == 413 && o && strstr(json_string_value(json_object_get(o, "error")), "limit"),
	      "declared too big: %d %s", r.status, r.body);
	json_decref(o);
	free(r.body);

	/* chunked, grows past the limit: drained, then 413 */
	fd = client_connect(port);
	head = "POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
	send_all(fd, head, strlen(head));
	char chunk_head[32];
	int hl = snprintf(chunk_head, sizeof chunk_head, "%zx\r\n", n);
	for (int i = 0; i < 4; i++) { /* 1.2 MB > 1 MiB */
		send_all(fd, chunk_head, (size_t)hl);
		send_all(fd, buf, n);
		send_all(fd, "\r\n", 2);
	}
	send_all(fd, "0\r\n\r\n", 5);
	got = read_all(fd, &raw, 5000);
	close(fd);
	parse_resp(raw, got, &r);
	CHECK(r.status == 413, "chunked too big: %d %s", r.status, r.body);
	free(r.body);
	free(buf);
}

static void test_sse(struct events *ev, int port)
{
	char acc[65536] = "";
	size_t len = 0;
	/* live: starts after the newest (6), sees 7 */
	int fd = sse_open(port, "/v1/events", NULL);
	CHECK(sse_read_until(fd, acc, sizeof acc, &len, "s4kws events from id 6", 2000), "opening comment: %s", acc);
	CHECK(strstr(acc, "text/event-stream") != NULL, "content type: %s", acc);
	add(ev, "left", 3); /* id 7 */
	CHECK(sse_read_until(fd, acc, sizeof acc, &len, "id: 7\nevent: detection\ndata: {\"id\":7,\"keyword\":\"left\"", 2000),
	      "live event: %s", acc);
	CHECK(!strstr(acc, "id: 6\n"), "no old events without Last-Event-ID");
	/* heartbeat after 0.3 s of silence */
	CHECK(sse_read_until(fd, acc, sizeof acc, &len, ": heartbeat\n\n", 2000), "heartbeat");

	/* resume with Last-Event-ID: 3 -> 4, 5, 6, 7 at once, in order */
	char acc2[65536] = "";
	size_t len2 = 0;
	int fd2 = sse_open(port, "/v1/events", "Last-Event-ID: 3\r\n");
	CHECK(sse_read_until(fd2, acc2, sizeof acc2, &len2, "id: 7\n", 2000), "resume: %s", acc2);
	char *p4 = strstr(acc2, "id: 4\n"), *p5 = strstr(acc2, "id: 5\n"), *p6 = strstr(acc2, "id: 6\n");
	CHECK(p4 && p5 && p6 && p4 < p5 && p5 < p6 && !strstr(acc2, "id: 3\n"), "resumed in order: %s", acc2);

	/* a third stream is over the limit of 2 */
	struct resp r;
	http_req(port, "GET", "/v1/events", NULL, NULL, 0, &r);
	CHECK(r.status == 503, "stream limit: %d", r.status);
	free(r.body);
	close(fd);
	close(fd2);
	CHECK(wait_streams_closed(port), "closed streams are released within 2 s");

	/* filters: keyword and channel, from since=0 */
	char acc3[65536] = "";
	size_t len3 = 0;
	int fd3 = sse_open(port, "/v1/events?since=0&keyword=yes&channel=0", NULL);
	add(ev, "yes", 0); /* id 8 */
	CHECK(sse_read_until(fd3, acc3, sizeof acc3, &len3, "id: 8\n", 3000), "filtered: %s", acc3);
	CHECK(strstr(acc3, "id: 1\n") && strstr(acc3, "id: 5\n") && !strstr(acc3, "id: 2\n") &&
		      !strstr(acc3, "id: 3\n") && !strstr(acc3, "id: 7\n"),
	      "filter yes/0: %s", acc3);
	CHECK(sse_read_until(fd3, acc3, sizeof acc3, &len3, ": heartbeat", 2000), "heartbeat on a filtered stream");
	close(fd3);
	CHECK(wait_streams_closed(port), "closed stream released");
	/* Last-Event-ID must be a number */
	fd3 = sse_open(port, "/v1/events", "Last-Event-ID: x\r\n");
	char *raw;
	size_t got = read_all(fd3, &raw, 2000);
	close(fd3);
	parse_resp(raw, got, &r);
	CHECK(r.status == 400, "bad Last-Event-ID: %d", r.status);
	free(r.body);
}

/* An open stream must not hold up shutdown. */
static void test_sse_shutdown(void)
{
	char err[256];
	struct events *ev = events_new(10, NULL, NULL, err, sizeof err);
	struct http_config c = base_config();
	c.heartbeat_s = 60;
	struct http *h = http_start(&c, ev, &hooks, err, sizeof err);
	int port = http_port(h);
	char acc[4096] = "";
	size_t len = 0;
	int fd = sse_open(port, "/v1/events", NULL);
	CHECK(sse_read_until(fd, acc, sizeof acc, &len, "s4kws events", 2000), "open");
	int64_t t0 = client_ms();
	events_close(ev);
	http_stop(h);
	int64_t dt = client_ms() - t0;
	CHECK(dt < 3000, "shutdown with an open stream took %lld ms", (long long)dt);
	close(fd);
	events_free(ev);
}

/* Idle connections count against the limit until the idle timeout closes them. */
/* One GET; the time it took in ms through *ms. */
static int timed_get(int port, const char *url, double *ms)
{
	struct resp r;
	int64_t t0 = client_ms();
	http_req(port, "GET", url, NULL, NULL, 0, &r);
	*ms = (double)(client_ms() - t0);
	free(r.body);
	return r.status;
}

/* Slow clients cannot hold the slots (daemon/admit.h): at the connection limit a newcomer takes
 * the place of the oldest connection still sending its head; 40 connections trickling a byte
 * every 0.5 s do not keep /healthz or /v1/detections waiting for a second; a head still
 * incomplete after ADMIT_HEAD_S is cut; with every slot being answered a newcomer is refused. */
static void test_limits(void)
{
	char err[256];
	struct events *ev = events_new(10, NULL, NULL, err, sizeof err);
	struct http_config c = base_config();
	c.max_connections = 3;
	struct http *h = http_start(&c, ev, &hooks, err, sizeof err);
	int port = http_port(h);
	int idle[3];
	for (int i = 0; i < 3; i++) {
		idle[i] = client_connect(port);
		send_all(idle[i], "GET /v1/sta", 11); /* a slow client: half a request line */
	}
	usleep(200000);
	double ms;
	CHECK_EQ(timed_get(port, "/healthz", &ms), 200);
	struct resp r;
	http_req(port, "GET", "/metrics", NULL, NULL, 0, &r);
	CHECK(r.body && strstr(r.body, "s4kws_http_dropped_total{reason=\"evicted\"} ") &&
	      !strstr(r.body, "s4kws_http_dropped_total{reason=\"evicted\"} 0\n"),
	      "at the limit, a slow client made room: %s", r.body ? strstr(r.body, "s4kws_http_dropped") : "");
	free(r.body);
	for (int i = 0; i < 3; i++)
		close(idle[i]);
	http_stop(h);

	/* 40 trickling connections against the default 16 slots */
	c = base_config();
	h = http_start(&c, ev, &hooks, err, sizeof err);
	port = http_port(h);
	int tr[40];
	for (int i = 0; i < 40; i++) {
		tr[i] = client_connect(port);
		send(tr[i], "GET /healthz HTTP/1.1\r\nX-Slow: ", 31, MSG_NOSIGNAL);
	}
	double worst = 0;
	int ok = 0;
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 40; i++)
			send(tr[i], "a", 1, MSG_NOSIGNAL); /* one byte: never idle, never done */
		int st = timed_get(port, round % 2 ? "/v1/detections" : "/healthz", &ms);
		if (st != 200)
			printf("round %d: status %d after %.0f ms\n", round, st, ms);
		ok += st == 200;
		worst = ms > worst ? ms : worst;
		usleep(500000);
	}
	CHECK(ok == 8 && worst < 1000, "40 trickling connections: %d/8 answered, slowest %.0f ms", ok, worst);
	for (int i = 0; i < 40; i++)
		close(tr[i]);
	/* a head trickled for longer than ADMIT_HEAD_S (10 s) is cut */
	int slow = client_connect(port);
	int64_t t0 = client_ms();
	int cut = 0;
	while (!cut && client_ms() - t0 < 14000) {
		cut = send(slow, "b", 1, MSG_NOSIGNAL) < 0;
		char b;
		struct pollfd pf = {slow, POLLIN, 0};
		cut |= poll(&pf, 1, 1000) > 0 && recv(slow, &b, 1, MSG_DONTWAIT) <= 0;
	}
	double took = (double)(client_ms() - t0) / 1000;
	CHECK(cut && took > 9 && took < 12.5, "a head trickled for %.1f s was cut: %d", took, cut);
	close(slow);
	http_stop(h);

	/* every slot answering (two event streams): a newcomer is refused at once */
	c = base_config();
	c.max_connections = 2;
	h = http_start(&c, ev, &hooks, err, sizeof err);
	port = http_port(h);
	int s1 = sse_open(port, "/v1/events", NULL), s2 = sse_open(port, "/v1/events", NULL);
	usleep(300000);
	http_req(port, "GET", "/healthz", NULL, NULL, 0, &r);
	CHECK(s1 >= 0 && s2 >= 0 && r.status == 0, "both slots streaming: a third connection is refused (%d)",
	      r.status);
	free(r.body);
	close(s1);
	close(s2);
	http_stop(h);
	events_free(ev);
}

static void test_bind_rules(void)
{
	char err[256];
	struct events *ev = events_new(10, NULL, NULL, err, sizeof err);
	struct http_config c = base_config();
	c.bind = "0.0.0.0";
	struct http *h = http_start(&c, ev, &hooks, err, sizeof err);
	CHECK(h == NULL && strstr(err, "token"), "non-loopback without token: %s", err);
	http_stop(h);
	c.token = "secret";
	h = http_start(&c, ev, &hooks, err, sizeof err);
	CHECK(h != NULL, "0.0.0.0 with a token: %s", err);
	if (h) {
		struct resp r;
		http_req(http_port(h), "GET", "/v1/status", "Authorization: Bearer secret\r\n", NULL, 0, &r);
		CHECK(r.status == 200, "reachable on loopback: %d", r.status);
		free(r.body);
		/* the same port again: in use */
		struct http_config c2 = c;
		c2.port = http_port(h);
		struct http *h2 = http_start(&c2, ev, &hooks, err, sizeof err);
		CHECK(h2 == NULL && strstr(err, "cannot listen") && strstr(err, "Address already in use"),
		      "port in use, the reason in the one sentence: %s", err);
		http_stop(h2);
		http_stop(h);
	}
	c.bind = "999.1.1.1";
	h = http_start(&c, ev, &hooks, err, sizeof err);
	CHECK(h == NULL && strstr(err, "999.1.1.1"), "bad address: %s", err);
	c.bind = "::1";
	c.token = "";
	h = http_start(&c, ev, &hooks, err, sizeof err);
	if (h) { /* IPv6 loopback may be disabled in a container */
		CHECK(http_port(h) > 0, "IPv6 loopback port");
		http_stop(h);
	}
	events_free(ev);
}

/* GET / without the token; POST /v1/session gives a cookie that stands for the token, which a
 * page of another origin cannot use to change anything; DELETE clears it; CORS headers and
 * preflights only for --cors-origin. */
static void test_browser(struct events *ev)
{
	char err[256], v[256];
	struct http_config c = base_config();
	c.token = "tok-123";
	c.cors_origin = "http://dash.example";
	struct http *h = http_start(&c, ev, &hooks, err, sizeof err);
	CHECK(h != NULL, "%s", err);
	if (!h)
		return;
	int port = http_port(h);
	struct resp r;
	http_req(port, "GET", "/", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && strstr(r.body, "<title>s4kws</title>") && strstr(r.body, "EventSource"),
	      "GET / without a token: %d", r.status);
	CHECK(resp_header(&r, "Content-Type", v, sizeof v) && !strcmp(v, "text/html; charset=utf-8"), "%s", v);
	CHECK(resp_header(&r, "Content-Security-Policy", v, sizeof v) && strstr(v, "frame-ancestors 'none'"),
	      "page CSP: %s", v);
	free(r.body);
	http_req(port, "POST", "/v1/session", NULL, NULL, 0, &r);
	CHECK(r.status == 401, "session without the token: %d", r.status);
	free(r.body);
	http_req(port, "POST", "/v1/session", AUTH, NULL, 0, &r);
	char cookie[256] = "";
	CHECK(r.status == 200 && resp_header(&r, "Set-Cookie", v, sizeof v), "session: %d", r.status);
	size_t hex = strncmp(v, "s4kws_session=", 14) ? 0 : strspn(v + 14, "0123456789abcdef");
	CHECK(hex == 64 && strstr(v, "; HttpOnly") && strstr(v, "; SameSite=Strict") && !strstr(v, "tok-123"),
	      "session cookie: %s", v);
	snprintf(cookie, sizeof cookie, "Cookie: other=1; %.*s\r\n", 14 + 64, v);
	free(r.body);
	http_req(port, "GET", "/v1/status", cookie, NULL, 0, &r);
	CHECK(r.status == 200, "status with the cookie: %d", r.status);
	free(r.body);
	http_req(port, "GET", "/v1/status", "Cookie: s4kws_session=00\r\n", NULL, 0, &r);
	CHECK(r.status == 401, "status with a wrong cookie: %d", r.status);
	free(r.body);
	char extra[512];
	snprintf(extra, sizeof extra, "%sOrigin: http://evil.example\r\n", cookie);
	http_req(port, "POST", "/v1/classify", extra, "RIFFxxxx", 8, &r);
	CHECK(r.status == 403, "classify with the cookie from another origin: %d %s", r.status, r.body);
	free(r.body);
	snprintf(extra, sizeof extra, "%sOrigin: http://127.0.0.1\r\n", cookie);
	http_req(port, "POST", "/v1/classify", extra, "RIFFxxxx", 8, &r);
	CHECK(r.status == 200, "classify with the cookie from the page's origin: %d %s", r.status, r.body);
	free(r.body);
	http_req(port, "DELETE", "/v1/session", cookie, NULL, 0, &r);
	CHECK(r.status == 200 && resp_header(&r, "Set-Cookie", v, sizeof v) && strstr(v, "Max-Age=0"),
	      "session DELETE: %d %s", r.status, v);
	free(r.body);
	/* CORS */
	http_req(port, "GET", "/v1/status", AUTH "Origin: http://dash.example\r\n", NULL, 0, &r);
	CHECK(r.status == 200 && resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v) &&
	      !strcmp(v, "http://dash.example"), "CORS for the allowed origin: %d '%s'", r.status, v);
	free(r.body);
	http_req(port, "GET", "/v1/status", AUTH "Origin: http://other.example\r\n", NULL, 0, &r);
	CHECK(r.status == 200 && !resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v),
	      "CORS for another origin: %d", r.status);
	free(r.body);
	http_req(port, "OPTIONS", "/v1/thresholds", "Origin: http://dash.example\r\n"
		 "Access-Control-Request-Method: PUT\r\n", NULL, 0, &r);
	CHECK(r.status == 204 && resp_header(&r, "Access-Control-Allow-Methods", v, sizeof v) &&
	      strstr(v, "PUT") && resp_header(&r, "Access-Control-Allow-Headers", v, sizeof v) &&
	      strstr(v, "Authorization"), "preflight: %d", r.status);
	free(r.body);
	http_stop(h);
	c.cors_origin = NULL; /* off: no CORS headers at all */
	h = http_start(&c, ev, &hooks, err, sizeof err);
	CHECK(h != NULL, "%s", err);
	if (!h)
		return;
	http_req(http_port(h), "GET", "/v1/status", AUTH "Origin: http://dash.example\r\n", NULL, 0, &r);
	CHECK(r.status == 200 && !resp_header(&r, "Access-Control-Allow-Origin", v, sizeof v),
	      "no CORS without cors_origin: %d", r.status);
	free(r.body);
	http_stop(h);
}

int main(void)
{
	log_set_level(LOGL_WARN);
	char err[256];
	struct events *ev = events_new(100, NULL, NULL, err, sizeof err);
	test_auth_and_routing(ev);
	test_browser(ev);
	add(ev, "yes", 0);
	add(ev, "no", 1);
	add(ev, "yes", 1);
	add(ev, "go", 0);
	add(ev, "yes", 0);
	add(ev, "stop", 2);
	struct http_config c = base_config();
	struct http *h = http_start(&c, ev, &hooks, err, sizeof err);
	CHECK(h != NULL, "%s", err);
	if (h) {
		int port = http_port(h);
		test_detections(ev, port);
		test_metrics(port);
		test_classify(port);
		test_sse(ev, port);
		http_stop(h);
	}
	events_free(ev);
	test_sse_shutdown();
	test_limits();
	test_bind_rules();
	return CHECK_DONE();
}
