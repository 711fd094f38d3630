/* events.h - the published detections: bounded history, waiters (SSE), JSON-lines log.
 *
 * Usage:
 *   struct ev_open_info info;
 *   struct events *ev = events_new(1000, "detections.jsonl", &info, err, sizeof err);
 *   // detector thread
 *   struct ev_detection d = {.channel = 0, .score = 0.93f, .offset = 12.5, ...};
 *   snprintf(d.keyword, sizeof d.keyword, "yes");
 *   events_add(ev, &d);                        // assigns d.id, logs one whole line
 *   // HTTP threads
 *   struct ev_detection out[100];
 *   uint64_t cursor;
 *   size_t n = events_query(ev, since, -1, NULL, out, 100, &cursor);
 *   events_wait(ev, cursor, 15000);            // SSE: sleep until a newer one or 15 s
 *   events_close(ev);                          // shutdown: wakes every waiter
 *   events_free(ev);
 *
 * Ids start at 1 (or after the last id found in the log) and increase by one per detection;
 * they stay below EV_MAX_ID (2^53: every JSON reader, JavaScript's included, reads them exactly).
 * The history keeps the newest `capacity` detections. All functions may be called from any
 * thread; a mutex guards the store and a condition variable wakes waiters. The log is opened
 * with O_APPEND and each detection is one write(2) of a complete line; a short write is cut
 * back with ftruncate(2), and a torn last line found at startup is cut off, so the file only
 * ever holds whole lines.
 */
#ifndef S4KWS_DAEMON_EVENTS_H
#define S4KWS_DAEMON_EVENTS_H

#define EV_MAX_ID 9007199254740992ull /* 2^53 */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define EV_KW_LEN 48
#define EV_NAME_LEN 32            /* channel name + 1 */

struct ev_detection {
	uint64_t id;              /* assigned by events_add() */
	char keyword[EV_KW_LEN];
	int channel;              /* 0-based */
	char channel_name[EV_NAME_LEN]; /* --channel-names entry, "" when none */
	float score;              /* smoothed posterior, [0, 1] */
	float verify;             /* the second opinion's probability (--verify), (0, 1]; 0: none */
	int64_t time_ms;          /* wall clock, ms since the Unix epoch (events_add() fills it if 0) */
	double offset;            /* s of audio since the stream started, when it was decided */
	double start, end;        /* s, estimated extent of the keyword */
};

struct ev_open_info {
	uint64_t last_id;         /* last id found in the log (0: none) */
	size_t loaded;            /* detections taken from the log into the history */
	size_t torn_bytes;        /* bytes of an incomplete last line that were cut off */
	size_t bad_lines;         /* lines of the log that were not detections (skipped) */
};

struct ev_counts {
	char keyword[EV_KW_LEN];
	int channel;
	uint64_t count;
};

struct events;

/* capacity >= 1 detections in memory; log_path NULL or "" for no log. Returns NULL with one
 * sentence in err (log not writable, no memory). info may be NULL. */
struct events *events_new(size_t capacity, const char *log_path, struct ev_open_info *info,
			  char *err, size_t errlen);
/* Stop waiters (events_wait returns -ESHUTDOWN) and flush the log to disk. Idempotent. */
void events_close(struct events *ev);
void events_free(struct events *ev);

/* Publish a detection: assigns d->id (and d->time_ms if 0), stores it, wakes waiters and appends
 * it to the log. Returns 0, or -EIO/-ENOSPC when the log write failed (the detection is still
 * published; the log keeps whole lines only). */
int events_add(struct events *ev, struct ev_detection *d);

/* Copy up to max detections with id > since, oldest first, optionally only channel (>= 0) and
 * keyword (non-NULL), into out. *cursor gets the id to pass as `since` next time: the newest id
 * looked at (the last one returned when max was reached, else the newest overall). */
size_t events_query(struct events *ev, uint64_t since, int channel, const char *keyword,
		    struct ev_detection *out, size_t max, uint64_t *cursor);
/* Newest id so far (0 when none). */
uint64_t events_last_id(struct events *ev);
/* Block until a detection with id > after exists (1), timeout_ms passes (0) or events_close()
 * was called (-ESHUTDOWN). */
int events_wait(struct events *ev, uint64_t after, int timeout_ms);

/* Per (keyword, channel) totals of this run (detections reloaded from the log do not count): copies up to max rows into out and
 * returns the number of rows copied. */
size_t events_counts(struct events *ev, struct ev_counts *out, size_t max);
/* Log write failures since start. */
uint64_t events_log_errors(struct events *ev);

/* JSON object of a detection (new reference): id, keyword, channel, (channel_name when set,)
 * score, time (RFC 3339 UTC with ms), offset, start, end (, verify when verified). */
json_t *events_to_json(const struct ev_detection *d);
/* Format a wall-clock time (ms since the epoch) as RFC 3339 UTC with ms into buf (>= 25 bytes). */
void events_format_time(int64_t time_ms, char *buf, size_t len);
/* Parse one log line back (for the restart recovery and tests): 0 or -EINVAL. */
int events_from_json_line(const char *line, size_t len, struct ev_detection *d);

/* jansson dump flags used for every JSON text the daemon writes. */
#define EV_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* events_to_json() as text with EV_JSON_FLAGS, without a line end (malloc'ed; the caller frees);
 * NULL when out of memory. The one form of a detection in the log, SSE, hooks, clips and MQTT. */
char *events_dump(const struct ev_detection *d);

#endif
