/* events.c - detection store shared by the detector (writer) and the HTTP threads (readers).
 *
 * DESIGN. One mutex guards a ring of the newest `capacity` detections, a per (keyword, channel)
 * count table and the next id; one condition variable (CLOCK_MONOTONIC) wakes SSE streams when
 * a detection arrives or the store closes. Readers copy what they need out under the lock and
 * format JSON after releasing it, so a slow client never holds the writer up. Ids are strictly
 * increasing, so a query for "id > since" is a binary search over the ring.
 *
 * The JSON-lines log is written by events_add() outside the lock (only the detector thread
 * adds): one write(2) per line on an O_APPEND descriptor. If the write comes back short (disk
 * full), the file is truncated back to its previous length so no torn line stays behind. At
 * startup the tail of an existing log (last 1 MiB) is read: an incomplete last line (a crash
 * in the middle of a write on a filesystem without atomic appends) is cut off, a whole last
 * line without its newline gets one, the last id becomes the starting point, and the newest
 * detections refill the history. A file with no detection line there is not a log: refused
 * untouched (pointing --log at a recording must not cost its last megabyte).
 */
#define _GNU_SOURCE
#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/err.h"

#define MAX_COUNT_ROWS 4096
#define TAIL_BYTES (1 << 20)

struct events {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ev_detection *ring;  /* (capacity) */
	size_t cap, len, head;      /* head: slot of the oldest */
	uint64_t next_id;
	int closed;
	struct ev_counts *counts;   /* (MAX_COUNT_ROWS) */
	size_t n_counts;
	int fd;                     /* log, or -1 */
	uint64_t log_errors;
};

void events_format_time(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)s * 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	char tmp[40];
	strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", tmp, frac);
}

/* Seconds rounded to 100 ns, so the JSON shows 12.3456875 rather than float noise (printed with
 * 15 significant digits: exact for 16 kHz sample positions up to 10^8 s). */
static double round_100ns(double s)
{
	return round(s * 1e7) / 1e7;
}

json_t *events_to_json(const struct ev_detection *d)
{
	char t[40];
	events_format_time(d->time_ms, t, sizeof t);
	json_t *o = json_pack("{s:I, s:s, s:i, s:f, s:s, s:f, s:f, s:f}", "id", (json_int_t)d->id,
			      "keyword", d->keyword, "channel", d->channel, "score",
			      round((double)d->score * 1e4) / 1e4, "time", t, "offset", round_100ns(d->offset),
			      "start", round_100ns(d->start), "end", round_100ns(d->end));
	if (o && d->channel_name[0])
		json_object_set_new(o, "channel_name", json_string(d->channel_name));
	if (o && d->verify > 0)
		json_object_set_new(o, "verify", json_real(round((double)d->verify * 1e4) / 1e4));
	return o;
}

/* Parse "2026-11-29T09:15:52.123Z" back to ms since the epoch. */
static int parse_time(const char *s, int64_t *ms)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int frac = 0;
	if (!p || sscanf(p, ".%3dZ", &frac) != 1)
		return -EINVAL;
	*ms = (int64_t)timegm(&tm) * 1000 + frac;
	return 0;
}

int events_from_json_line(const char *line, size_t len, struct ev_detection *d)
{
	json_error_t je;
	json_t *o = json_loadb(line, len, 0, &je);
	if (!o)
		return -EINVAL;
	json_int_t id = 0;
	const char *kw = NULL, *t = NULL;
	int ch = 0;
	double score = 0, off = 0, st = 0, en = 0;
	int rc = json_unpack(o, "{s:I, s:s, s:i, s:F, s:s, s:F, s:F, s:F}", "id", &id, "keyword",
			     &kw, "channel", &ch, "score", &score, "time", &t, "offset", &off, "start",
			     &st, "end", &en);
	if (rc == 0 && (id < 1 || strlen(kw) >= EV_KW_LEN || parse_time(t, &d->time_ms) < 0))
		rc = -1;
	if (rc == 0) {
		d->id = (uint64_t)id;
		snprintf(d->keyword, sizeof d->keyword, "%s", kw);
		d->channel = ch;
		d->score = (float)score;
		d->offset = off;
		d->start = st;
		d->end = en;
		const char *cn = json_string_value(json_object_get(o, "channel_name"));
		snprintf(d->channel_name, sizeof d->channel_name, "%s", cn ? cn : "");
		double v = json_number_value(json_object_get(o, "verify")); /* 0 when absent */
		d->verify = v > 0 && v <= 1 ? (float)v : 0.0f;
	}
	json_decref(o);
	return rc == 0 ? 0 : -EINVAL;
}

static void count(struct events *ev, const struct ev_detection *d)
{
	for (size_t i = 0; i < ev->n_counts; i++)
		if (ev->counts[i].channel == d->channel && !strcmp(ev->counts[i].keyword, d->keyword)) {
			ev->counts[i].count++;
			return;
		}
	if (ev->n_counts == MAX_COUNT_ROWS)
		return;
	struct ev_counts *c = &ev->counts[ev->n_counts++];
	memcpy(c->keyword, d->keyword, sizeof c->keyword);
	c->channel = d->channel;
	c->count = 1;
}

/* Append to the ring (lock held). */
static void store(struct events *ev, const struct ev_detection *d)
{
	if (ev->len < ev->cap) {
		ev->ring[(ev->head + ev->len) % ev->cap] = *d;
		ev->len++;
	} else {
		ev->ring[ev->head] = *d;
		ev->head = (ev->head + 1) % ev->cap;
	}
}

/* One line of the log's tail: a detection goes into the history (ids must increase and stay
 * below EV_MAX_ID); returns 1 for a detection, 0 for a line that is not one, -1 for an id the
 * log cannot continue from. */
static int take_line(struct events *ev, const char *line, size_t len, struct ev_open_info *info)
{
	struct ev_detection d;
	memset(&d, 0, sizeof d);
	if (events_from_json_line(line, len, &d) < 0 || d.id < ev->next_id)
		return 0;
	if (d.id >= EV_MAX_ID)
		return -1;
	store(ev, &d); /* not counted: the counts are of this run (Prometheus counters) */
	ev->next_id = d.id + 1;
	info->loaded++;
	return 1;
}

/* Read the tail of an existing log (the last TAIL_BYTES): refill the history and continue after
 * the last id. Nothing is changed in a file that holds no detection line there (it is not a
 * detection log: refused) or whose ids cannot be continued. An unterminated last line that is
 * a whole detection gets its newline; one that is not (a write cut by a crash) is cut off. */
static int recover(struct events *ev, const char *path, struct ev_open_info *info, char *err, size_t errlen)
{
	struct stat stt;
	if (fstat(ev->fd, &stt) < 0 || stt.st_size == 0)
		return 0;
	off_t size = stt.st_size;
	off_t from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
	size_t n = (size_t)(size - from);
	char *buf = malloc(n + 1);
	if (!buf) {
		s4k_seterr(err, errlen, "out of memory reading the detection log");
		return -ENOMEM;
	}
	ssize_t got = pread(ev->fd, buf, n, from);
	if (got != (ssize_t)n) {
		free(buf);
		s4k_seterr(err, errlen, "cannot read the detection log: %s", strerror(got < 0 ? errno : EIO));
		return -EIO;
	}
	size_t keep = n; /* [0, keep) ends with a newline; [keep, n) is an unterminated last line */
	while (keep > 0 && buf[keep - 1] != '\n')
		keep--;
	/* lines: skip the first one when it may be partial (read started mid-file) */
	size_t pos = 0, text = 0;
	if (from > 0) {
		while (pos < keep && buf[pos] != '\n')
			pos++;
		pos++;
	}
	int found = 0, rc = 0, last = 0;
	while (pos < n && rc >= 0) {
		size_t e = pos;
		while (e < n && buf[e] != '\n')
			e++;
		if (e > pos) {
			text++;
			rc = take_line(ev, buf + pos, e - pos, info);
			found += rc > 0;
			if (rc == 0 && e <= keep)
				info->bad_lines++;
			last = e == n && rc > 0; /* the unterminated last line is a detection */
		}
		pos = e + 1;
	}
	free(buf);
	if (rc < 0) {
		s4k_seterr(err, errlen, "%s: its last id is too large to continue from (ids stay below "
			   "2^53, so that every JSON reader gets them exactly): start a new log", path);
		return -ERANGE;
	}
	if (!found && text) {
		s4k_seterr(err, errlen, "%s is not a detection log (no detection line in its last %d KiB); "
			   "it was left as it is: give a new or empty file", path, TAIL_BYTES / 1024);
		return -EINVAL;
	}
	if (keep < n && last) {
		if (write(ev->fd, "\n", 1) != 1) {
			s4k_seterr(err, errlen, "cannot end the last line of the detection log: %s", strerror(errno));
			return -EIO;
		}
	} else if (keep < n) {
		if (ftruncate(ev->fd, from + (off_t)keep) < 0) {
			s4k_seterr(err, errlen, "cannot cut the torn last line of the detection log: %s",
				   strerror(errno));
			return -EIO;
		}
		info->torn_bytes = n - keep;
	}
	if (info->loaded > ev->cap)
		info->loaded = ev->cap;
	info->last_id = ev->next_id - 1;
	return 0;
}

struct events *events_new(size_t capacity, const char *log_path, struct ev_open_info *info,
			  char *err, size_t errlen)
{
	struct ev_open_info dummy;
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof *info);
	if (capacity < 1) {
		s4k_seterr(err, errlen, "detection history must hold at least one detection");
		return NULL;
	}
	struct events *ev = calloc(1, sizeof *ev);
	if (!ev || !(ev->ring = calloc(capacity, sizeof *ev->ring)) ||
	    !(ev->counts = calloc(MAX_COUNT_ROWS, sizeof *ev->counts))) {
		if (ev)
			free(ev->ring);
		free(ev);
		s4k_seterr(err, errlen, "out of memory for a history of %zu detections", capacity);
		return NULL;
	}
	ev->cap = capacity;
	ev->next_id = 1;
	ev->fd = -1;
	pthread_mutex_init(&ev->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ev->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (log_path && *log_path) {
		ev->fd = open(log_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (ev->fd < 0) {
			s4k_seterr(err, errlen, "cannot open detection log %s: %s", log_path,
				   strerror(errno));
			events_free(ev);
			return NULL;
		}
		if (recover(ev, log_path, info, err, errlen) < 0) {
			events_free(ev);
			return NULL;
		}
	}
	return ev;
}

void events_close(struct events *ev)
{
	pthread_mutex_lock(&ev->mu);
	ev->closed = 1;
	pthread_cond_broadcast(&ev->cv);
	pthread_mutex_unlock(&ev->mu);
	if (ev->fd >= 0)
		fdatasync(ev->fd);
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	if (ev->fd >= 0)
		close(ev->fd);
	pthread_cond_destroy(&ev->cv);
	pthread_mutex_destroy(&ev->mu);
	free(ev->counts);
	free(ev->ring);
	free(ev);
}

char *events_dump(const struct ev_detection *d)
{
	json_t *o = events_to_json(d);
	char *s = o ? json_dumps(o, EV_JSON_FLAGS) : NULL;
	json_decref(o);
	return s;
}

static int write_line(struct events *ev, const struct ev_detection *d)
{
	char *s = events_dump(d);
	if (!s)
		return -ENOMEM;
	size_t len = strlen(s);
	char *line = realloc(s, len + 2);
	if (!line) {
		free(s);
		return -ENOMEM;
	}
	line[len++] = '\n';
	off_t before = lseek(ev->fd, 0, SEEK_END);
	ssize_t w;
	do
		w = write(ev->fd, line, len);
	while (w < 0 && errno == EINTR);
	int rc = 0;
	if (w != (ssize_t)len) {
		rc = w < 0 ? -errno : -ENOSPC;
		if (w > 0 && before >= 0 && ftruncate(ev->fd, before) < 0)
			rc = -EIO;
	}
	free(line);
	return rc;
}

int events_add(struct events *ev, struct ev_detection *d)
{
	if (d->time_ms == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		d->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	pthread_mutex_lock(&ev->mu);
	d->id = ev->next_id++;
	store(ev, d);
	count(ev, d);
	pthread_cond_broadcast(&ev->cv);
	pthread_mutex_unlock(&ev->mu);
	if (ev->fd < 0)
		return 0;
	int rc = write_line(ev, d);
	if (rc < 0) {
		pthread_mutex_lock(&ev->mu);
		ev->log_errors++;
		pthread_mutex_unlock(&ev->mu);
	}
	return rc;
}

/* Index (0 = oldest) of the first stored detection with id > since (lock held). */
static size_t first_after(const struct events *ev, uint64_t since)
{
	size_t lo = 0, hi = ev->len;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ev->ring[(ev->head + mid) % ev->cap].id <= since)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t events_query(struct events *ev, uint64_t since, int channel, const char *keyword,
		    struct ev_detection *out, size_t max, uint64_t *cursor)
{
	size_t n = 0;
	pthread_mutex_lock(&ev->mu);
	uint64_t newest = ev->next_id - 1;
	uint64_t cur = since > newest ? newest : since;
	for (size_t i = first_after(ev, since); i < ev->len; i++) {
		const struct ev_detection *d = &ev->ring[(ev->head + i) % ev->cap];
		if (n == max)
			break;
		cur = d->id;
		if (channel >= 0 && d->channel != channel)
			continue;
		if (keyword && strcmp(keyword, d->keyword))
			continue;
		out[n++] = *d;
	}
	if (n < max)
		cur = newest > since ? newest : cur;
	pthread_mutex_unlock(&ev->mu);
	if (cursor)
		*cursor = cur;
	return n;
}

uint64_t events_last_id(struct events *ev)
{
	pthread_mutex_lock(&ev->mu);
	uint64_t id = ev->next_id - 1;
	pthread_mutex_unlock(&ev->mu);
	return id;
}

int events_wait(struct events *ev, uint64_t after, int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	int rc = 0;
	pthread_mutex_lock(&ev->mu);
	for (;;) {
		if (ev->closed) {
			rc = -ESHUTDOWN;
			break;
		}
		if (ev->next_id - 1 > after) {
			rc = 1;
			break;
		}
		if (pthread_cond_timedwait(&ev->cv, &ev->mu, &dl) == ETIMEDOUT) {
			rc = ev->closed ? -ESHUTDOWN : (ev->next_id - 1 > after);
			break;
		}
	}
	pthread_mutex_unlock(&ev->mu);
	return rc;
}

size_t events_counts(struct events *ev, struct ev_counts *out, size_t max)
{
	pthread_mutex_lock(&ev->mu);
	size_t n = ev->n_counts < max ? ev->n_counts : max;
	memcpy(out, ev->counts, n * sizeof *out);
	pthread_mutex_unlock(&ev->mu);
	return n;
}

uint64_t events_log_errors(struct events *ev)
{
	pthread_mutex_lock(&ev->mu);
	uint64_t n = ev->log_errors;
	pthread_mutex_unlock(&ev->mu);
	return n;
}
