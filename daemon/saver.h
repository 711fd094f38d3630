/* saver.h - the audio of every detection as a WAV file (--save-dir), written off the audio path.
 *
 * Usage:
 *   struct saver_config sc = {.dir = "/var/lib/s4kws/clips", .rate = 16000, .max_samples = 32000};
 *   struct saver *s = saver_new(&sc, err, sizeof err);   // checks the folder, starts the writer
 *   saver_submit(s, &detection, x, n);                   // inference thread: copy, signal, return
 *   struct saver_stats st; saver_stats(s, &st);          // any thread
 *   saver_free(s);                                       // writes what is queued, joins
 *
 * Files: DIR/<UTC time>-<id>-<keyword>-ch<channel>.wav, 16-bit PCM mono at the model's rate
 * (the samples the model heard), with the detection as JSON in the WAV comment. Each file is
 * written under a temporary name and renamed, so DIR never holds a torn clip.
 * Threads: saver_submit() from one producer thread only (lock-free single-producer queue of
 * SAVER_SLOTS clips; no allocation, no blocking: a full queue drops the clip and counts it);
 * the writer thread owns the files; saver_stats() from anywhere.
 */
#ifndef S4KWS_DAEMON_SAVER_H
#define S4KWS_DAEMON_SAVER_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"

#define SAVER_SLOTS 16 /* clips waiting to be written at most */

struct saver_config {
	const char *dir;        /* existing, writable folder */
	int rate;               /* Hz of the samples */
	size_t max_samples;     /* longest clip */
};

struct saver_stats {
	uint64_t saved;         /* files written */
	uint64_t dropped;       /* clips not queued: the writer was SAVER_SLOTS clips behind */
	uint64_t errors;        /* files that could not be written (logged) */
};

struct saver;

/* NULL with one sentence in err (folder missing or not writable, no memory, no thread). */
struct saver *saver_new(const struct saver_config *c, char *err, size_t errlen);
/* Queue the clip x (n samples, n <= max_samples, copied) of detection e (copied; e->id set).
 * 0, or -EAGAIN when the queue is full (counted as dropped). Never allocates or blocks. */
int saver_submit(struct saver *s, const struct ev_detection *e, const float *x, size_t n);
/* Count a clip the caller could not even submit (e.g. its own bookkeeping was full). */
void saver_drop(struct saver *s);
void saver_stats(struct saver *s, struct saver_stats *out);
/* Write what is queued, stop the writer, free. NULL is fine. */
void saver_free(struct saver *s);

#endif
