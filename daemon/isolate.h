/* isolate.h - decode untrusted audio (HTTP uploads) in a short-lived child process.
 *
 * Usage:
 *   float *x; size_t n; uint64_t bad;
 *   int status = iso_decode(body, len, 16000, max_rate, max_frames, &x, &n, &bad, err, sizeof err);
 *   // 0: x (n mono samples at 16 kHz, caller frees), bad = samples replaced (af_scrubbed);
 *   // else an HTTP status (400 damaged, 413 too long, 415 not audio, 500) and one sentence in err
 *
 * The daemon decodes with libsndfile and the codecs behind it (libvorbis, libFLAC, libopus,
 * mpg123), which are not written for hostile input: libvorbis 1.3.7 leaks 5.8 KB on every
 * damaged Ogg file, so that anyone who reaches the port could exhaust the daemon's memory. The
 * decoder therefore runs in a forked child with its own limits (address space, CPU time, no
 * files); the samples come back through a pipe and the child exits, taking any leak or crash
 * with it. Cost: one fork per upload (about a millisecond for this process), no copy of the
 * upload (the child reads the parent's pages). A crash, a kill by a limit or a child that takes
 * longer than ISO_TIMEOUT_S is one sentence and a 400/500, never the daemon's problem.
 * Threads: any thread; each call has its own child.
 */
#ifndef S4KWS_DAEMON_ISOLATE_H
#define S4KWS_DAEMON_ISOLATE_H

#include <stddef.h>
#include <stdint.h>

#define ISO_TIMEOUT_S 30          /* wall-clock limit for one decode */
#define ISO_MAX_AS (1024u << 20)  /* the child's address space, bytes */

int iso_decode(const void *body, size_t len, int rate, int max_rate, size_t max_frames, float **x,
	       size_t *n, uint64_t *scrubbed, char *err, size_t errlen);

/* Whether a decoding child is confined: forks a child that installs the same filter and tries
 * to open a file and a socket. 1: both refused; 0: not confined (no seccomp here, or an
 * AddressSanitizer build); -1: the probe could not run. For tests and `s4kws info`-style checks. */
int iso_confined(void);

#endif
