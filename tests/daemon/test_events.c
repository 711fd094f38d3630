/* test_events.c - the detection store: ids, bounded history, queries and cursors, waiters,
 * the JSON-lines log (whole lines only, restart recovery, torn-line repair).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/check.h"
#include "daemon/events.h"

static char dir[] = "/tmp/s4kws-test-events-XXXXXX";
static char logpath[600];

static void add(struct events *ev, const char *kw, int ch, double off)
{
	struct ev_detection d;
	memset(&d, 0, sizeof d);
	snprintf(d.keyword, sizeof d.keyword, "%s", kw);
	d.channel = ch;
	d.score = 0.87654f;
	d.offset = off;
	d.end = off - 0.1;
	d.start = off - 0.7;
	CHECK_EQ(events_add(ev, &d), 0);
}

static size_t count_lines(const char *path, int *whole)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int c, last = '\n';
	while (f && (c = fgetc(f)) != EOF) {
		if (c == '\n')
			n++;
		last = c;
	}
	if (f)
		fclose(f);
	*whole = last == '\n';
	return n;
}

static void test_store(void)
{
	char err[256];
	struct events *ev = events_new(4, NULL, NULL, err, sizeof err);
	CHECK(ev != NULL, "%s", err);
	struct ev_detection out[10];
	uint64_t cur = 99;
	CHECK_EQ(events_query(ev, 0, -1, NULL, out, 10, &cur), 0);
	CHECK_EQ(cur, 0);
	add(ev, "yes", 0, 1.0);
	add(ev, "no", 1, 2.0);
	add(ev, "yes", 1, 3.0);
	CHECK_EQ(events_last_id(ev), 3);
	size_t n = events_query(ev, 0, -1, NULL, out, 10, &cur);
	CHECK(n == 3 && out[0].id == 1 && out[2].id == 3 && cur == 3, "n %zu cur %llu", n,
	      (unsigned long long)cur);
	CHECK(out[0].time_ms > 1600000000000LL, "wall time filled in");
	n = events_query(ev, 1, -1, NULL, out, 10, &cur);
	CHECK(n == 2 && out[0].id == 2, "since");
	n = events_query(ev, 0, 1, NULL, out, 10, &cur);
	CHECK(n == 2 && out[0].id == 2 && out[1].id == 3 && cur == 3, "channel filter");
	n = events_query(ev, 0, -1, "yes", out, 10, &cur);
	CHECK(n == 2 && out[1].id == 3, "keyword filter");
	n = events_query(ev, 0, 0, "no", out, 10, &cur);
	CHECK(n == 0 && cur == 3, "nothing matches: cursor still moves to the newest");
	n = events_query(ev, 0, -1, NULL, out, 2, &cur);
	CHECK(n == 2 && cur == 2, "limit: cursor is the last returned (%llu)", (unsigned long long)cur);
	n = events_query(ev, 50, -1, NULL, out, 10, &cur);
	CHECK(n == 0 && cur == 3, "since beyond the newest: cursor resyncs to the newest");
	/* history keeps the newest 4 */
	add(ev, "go", 0, 4.0);
	add(ev, "go", 0, 5.0);
	add(ev, "stop", 0, 6.0);
	n = events_query(ev, 0, -1, NULL, out, 10, &cur);
	CHECK(n == 4 && out[0].id == 3 && out[3].id == 6, "bounded history: %zu from %llu", n,
	      (unsigned long long)out[0].id);
	struct ev_counts cnt[10];
	size_t nc = events_counts(ev, cnt, 10);
	CHECK_EQ(nc, 5); /* yes/0 no/1 yes/1 go/0 stop/0 */
	events_free(ev);
}

static void test_json(void)
{
	struct ev_detection d;
	memset(&d, 0, sizeof d);
	d.id = 42;
	snprintf(d.keyword, sizeof d.keyword, "yes");
	d.channel = 3;
	d.score = 0.912345f;
	d.time_ms = 1700000000123LL;
	d.offset = 12345.0 / 16000;
	d.start = 0.1;
	d.end = 0.7;
	json_t *o = events_to_json(&d);
	char *s = json_dumps(o, EV_JSON_FLAGS);
	CHECK(strstr(s, "\"time\":\"2023-11-14T22:13:20.123Z\""), "%s", s);
	CHECK(strstr(s, "\"offset\":0.7715625"), "sample-accurate offset: %s", s);
	CHECK(strstr(s, "\"score\":0.9123"), "%s", s);
	struct ev_detection back;
	CHECK_EQ(events_from_json_line(s, strlen(s), &back), 0);
	CHECK(back.id == 42 && back.channel == 3 && back.time_ms == d.time_ms && !strcmp(back.keyword, "yes"),
	      "round trip");
	CHECK(!strstr(s, "verify") && back.verify == 0, "no verify key unless verified: %s", s);
	d.verify = 0.8765432f; /* a verified detection carries the second opinion's probability */
	json_t *ov = events_to_json(&d);
	char *sv = json_dumps(ov, EV_JSON_FLAGS);
	json_decref(ov);
	CHECK(sv && strstr(sv, "\"verify\":0.8765"), "%s", sv ? sv : "(null)");
	CHECK(sv && events_from_json_line(sv, strlen(sv), &back) == 0 && fabsf(back.verify - 0.8765f) < 1e-6f,
	      "verify round trip: %g", (double)back.verify);
	free(sv);
	CHECK_EQ(events_from_json_line("{\"id\":1}", 8, &back), -EINVAL);
	CHECK_EQ(events_from_json_line("not json", 8, &back), -EINVAL);
	free(s);
	json_decref(o);
}

static void test_log(void)
{
	char err[256];
	struct ev_open_info info;
	unlink(logpath);
	struct events *ev = events_new(100, logpath, &info, err, sizeof err);
	CHECK(ev != NULL, "%s", err);
	CHECK(info.last_id == 0 && info.loaded == 0, "fresh log");
	for (int i = 0; i < 10; i++)
		add(ev, i % 2 ? "yes" : "no", i % 3, i);
	events_close(ev);
	events_free(ev);
	int whole;
	CHECK_EQ(count_lines(logpath, &whole), 10);
	CHECK(whole, "ends with a newline");

	/* restart: ids continue, history refilled */
	ev = events_new(5, logpath, &info, err, sizeof err);
	CHECK(ev != NULL, "%s", err);
	CHECK_EQ(info.last_id, 10);
	CHECK_EQ(info.loaded, 5);
	CHECK_EQ(events_last_id(ev), 10);
	struct ev_detection out[10];
	uint64_t cur;
	size_t n = events_query(ev, 0, -1, NULL, out, 10, &cur);
	CHECK(n == 5 && out[0].id == 6 && out[4].id == 10, "history from the log");
	add(ev, "go", 0, 11);
	CHECK_EQ(events_last_id(ev), 11);
	events_free(ev);

	/* a torn last line (crash mid-write) and a junk line are dealt with at startup */
	int fd = open(logpath, O_WRONLY | O_APPEND);
	CHECK(write(fd, "garbage line\n{\"id\":12,\"keyword\":\"y", 34) == 34, "append");
	close(fd);
	ev = events_new(100, logpath, &info, err, sizeof err);
	CHECK(ev != NULL, "%s", err);
	CHECK_EQ(info.torn_bytes, 21);
	CHECK_EQ(info.bad_lines, 1);
	CHECK_EQ(info.last_id, 11);
	add(ev, "stop", 1, 12);
	CHECK_EQ(events_last_id(ev), 12);
	events_free(ev);
	CHECK_EQ(count_lines(logpath, &whole), 13);
	CHECK(whole, "whole lines only");

	/* a whole last line without its newline is kept (it was cut off and its id reused) */
	struct stat sb;
	CHECK(stat(logpath, &sb) == 0 && truncate(logpath, sb.st_size - 1) == 0, "drop the last newline");
	ev = events_new(100, logpath, &info, err, sizeof err);
	CHECK(ev != NULL, "%s", err);
	CHECK(info.last_id == 12 && info.torn_bytes == 0, "last line kept: last id %llu, torn %zu",
	      (unsigned long long)info.last_id, info.torn_bytes);
	add(ev, "up", 0, 13);
	CHECK_EQ(events_last_id(ev), 13);
	events_free(ev);
	CHECK_EQ(count_lines(logpath, &whole), 14);
	CHECK(whole, "whole lines after the repair");

	/* files that are not detection logs are refused and left exactly as they were */
	static const char *const foreign[] = {"a text file\nwith lines\n", "RIFF\x24\x08\0\0WAVEfmt \x10\0\0\0",
					      "{\"id\":1}\n{\"not\":\"a detection\"}"};
	static const size_t flen[] = {24, 20, 29};
	char other[700];
	snprintf(other, sizeof other, "%s.other", logpath);
	for (int i = 0; i < 3; i++) {
		FILE *f = fopen(other, "wb");
		fwrite(foreign[i], 1, flen[i], f);
		fclose(f);
		ev = events_new(10, other, &info, err, sizeof err);
		CHECK(ev == NULL && strstr(err, "is not a detection log"), "foreign file %d: %s", i, ev ? "opened" : err);
		events_free(ev);
		CHECK(stat(other, &sb) == 0 && (size_t)sb.st_size == flen[i], "foreign file %d untouched", i);
	}
	/* an id that cannot be continued exactly is refused */
	FILE *f = fopen(other, "w");
	fprintf(f, "{\"id\":9007199254740992,\"keyword\":\"yes\",\"channel\":0,\"score\":0.9,"
		   "\"time\":\"2026-12-04T10:00:00.000Z\",\"offset\":1,\"start\":0.5,\"end\":0.9}\n");
	fclose(f);
	ev = events_new(10, other, &info, err, sizeof err);
	CHECK(ev == NULL && strstr(err, "too large to continue"), "huge id: %s", ev ? "opened" : err);
	events_free(ev);
	unlink(other);

	/* unwritable log: one sentence */
	ev = events_new(10, "/nonexistent-dir/x.jsonl", NULL, err, sizeof err);
	CHECK(ev == NULL && strstr(err, "/nonexistent-dir/x.jsonl"), "%s", err);
	/* a full disk: the write fails, nothing torn is left, the detection is still published */
	ev = events_new(10, "/dev/full", NULL, err, sizeof err);
	if (ev) {
		struct ev_detection d;
		memset(&d, 0, sizeof d);
		snprintf(d.keyword, sizeof d.keyword, "yes");
		CHECK(events_add(ev, &d) < 0, "write to /dev/full fails");
		CHECK_EQ(events_log_errors(ev), 1);
		CHECK_EQ(events_last_id(ev), 1);
		events_free(ev);
	}
}

struct waiter {
	struct events *ev;
	uint64_t after;
	int rc;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	w->rc = events_wait(w->ev, w->after, 5000);
	return NULL;
}

static void test_wait(void)
{
	char err[256];
	struct events *ev = events_new(10, NULL, NULL, err, sizeof err);
	CHECK_EQ(events_wait(ev, 0, 50), 0); /* timeout */
	struct waiter w = {ev, 0, -99};
	pthread_t th;
	pthread_create(&th, NULL, wait_thread, &w);
	usleep(50000);
	add(ev, "yes", 0, 1);
	pthread_join(th, NULL);
	CHECK_EQ(w.rc, 1);
	CHECK_EQ(events_wait(ev, 0, 1000), 1); /* already there */
	w.after = 1;
	w.rc = -99;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_create(&th, NULL, wait_thread, &w);
	usleep(50000);
	events_close(ev);
	pthread_join(th, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_EQ(w.rc, -ESHUTDOWN);
	CHECK((t1.tv_sec - t0.tv_sec) < 2, "close wakes waiters at once");
	events_free(ev);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	snprintf(logpath, sizeof logpath, "%s/det.jsonl", dir);
	test_store();
	test_json();
	test_log();
	test_wait();
	unlink(logpath);
	rmdir(dir);
	return CHECK_DONE();
}
