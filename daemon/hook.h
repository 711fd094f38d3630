/* hook.h - `--on-detect CMD`: run a command for every detection (LEDs, Home Assistant, scripts).
 *
 * Usage:
 *   struct hook_config hc = {.command = "notify-send \"$S4KWS_KEYWORD\"", .timeout_ms = 10000,
 *                            .ev = ev};
 *   struct hook *h = hook_new(&hc, err, sizeof err);   // starts its thread
 *   ...                                                 // detections go to the events store
 *   hook_stop(h);        // after events_close(): runs what is pending, bounded, then joins
 *   hook_stats(h, &st);  // any thread
 *   hook_free(h);
 *
 * The hook thread follows the events store like an SSE client (from the newest id at start), so
 * the detector never waits for a command. Commands run one at a time, in detection order, as
 * `/bin/sh -c CMD` in their own process group, with the detection's JSON line on stdin and in
 * the environment (S4KWS_ID, S4KWS_KEYWORD, S4KWS_CHANNEL, S4KWS_CHANNEL_NAME, S4KWS_SCORE,
 * S4KWS_TIME, S4KWS_OFFSET, S4KWS_START, S4KWS_END, S4KWS_JSON). A command still running after
 * timeout_ms is killed (its whole group) and counted as failed, as is a non-zero exit. Detections that left the history
 * while commands were busy are counted as skipped, never run late out of order.
 */
#ifndef S4KWS_DAEMON_HOOK_H
#define S4KWS_DAEMON_HOOK_H

#include <stdint.h>

#include "events.h"

struct hook_config {
	const char *command;   /* shell command line, run by /bin/sh -c */
	double timeout_ms;     /* a command running longer is killed */
	struct events *ev;     /* where detections are published (not owned) */
};

struct hook_stats {
	uint64_t run;          /* commands done (counted when they ended, succeeded or not) */
	uint64_t failed;       /* non-zero exit, killed by a signal or by the timeout, or not started */
	uint64_t skipped;      /* detections that left the history before their turn */
};

struct hook;

/* Starts the hook thread. Returns NULL with one sentence in err (no /bin/sh, no memory). */
struct hook *hook_new(const struct hook_config *c, char *err, size_t errlen);
/* Call after events_close(): runs the detections still pending for at most timeout_ms in all,
 * then joins the thread. Idempotent; NULL is a no-op. */
void hook_stop(struct hook *h);
void hook_free(struct hook *h);
void hook_stats(struct hook *h, struct hook_stats *s);

#endif
