/* source.h - the live daemon's audio input: a capture device, a file, raw stdin, or none.
 *
 *   struct source *s = source_open(&cfg, err, len);     // decide the kind, open a file
 *   ... source_channels(s), source_rate(s) size the ring and the detector ...
 *   source_start(s, &ring, &wake, det, err, len);        // thread (file, stdin) or stream (device)
 *   loop: source_supervise(s);                           // main thread, every ~200 ms
 *   source_status(s, eof, &st);                          // any thread: a published copy
 *   source_stop(s); ... detector_stop(det); ... source_free(s);
 *
 * A file or stdin is read on a thread of the source's own, which waits for room in the ring
 * rather than dropping audio; a device is PortAudio's callback (audio/capture.c), supervised by
 * source_supervise on the main thread: on an error or a stall it publishes the error, closes the
 * stream and reopens it after a doubling back-off. Either way the source tells the detector the
 * input rate and when the input has ended.
 */
#ifndef S4KWS_DAEMON_SOURCE_H
#define S4KWS_DAEMON_SOURCE_H

#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/ring.h"
#include "common/err.h"
#include "detector.h"

#define SOURCE_BLOCK 2048  /* frames per file/stdin read and ring write */

enum source_kind { SOURCE_DEVICE, SOURCE_FILE, SOURCE_STDIN, SOURCE_NONE };

struct source_config {
	const char *input;        /* "" device, "-" stdin, "none", or a file path */
	const char *device;       /* PortAudio device name or index ("" default) */
	int channels;             /* 0: the file's own, or 1 */
	int input_rate;           /* stdin's rate, Hz (0: the model's) */
	int rate;                 /* the model rate, Hz: what a device is asked for */
	int realtime;             /* pace a file or stdin at real speed */
	double duration;          /* stop after this many seconds of input (0: never) */
	int frames_per_buffer;    /* PortAudio period, frames */
	double device_stall;      /* a device silent this long has failed, s */
	double retry_max;         /* longest back-off between reopen attempts, s */
};

/* A published copy of the input's state. */
struct source_status {
	const char *kind;         /* "device", "file", "stdin", "none" */
	char state[16];           /* "starting", "running", "eof" (read and processed), "error", "none" */
	char error[S4K_ERR_LEN];  /* the last error, or "" */
	char name[1024];          /* device name, path, "stdin (raw S16_LE)" or "none" */
	int rate;                 /* input rate, Hz */
	uint64_t frames;          /* frames read (a device: including the open stream's) */
	uint64_t retries;         /* device reopen attempts */
	uint64_t overflows;       /* device: paInputOverflow callbacks */
	int done;                 /* the input has ended (not necessarily processed) */
	int failed;               /* the state is "error" */
};

/* Open the input named by c (a file is opened here, a device only by source_start). NULL with
 * one sentence in err. */
struct source *source_open(const struct source_config *c, char *err, size_t errlen);
enum source_kind source_kind(const struct source *s);
int source_channels(const struct source *s);
/* Input rate, Hz (a device's is the model rate until it opens at another). */
int source_rate(const struct source *s);
/* Start delivering into ring (interleaved float frames), posting wake; det is told the input
 * rate and the end of input. A device that cannot open is an error state retried later, not a
 * failure here. 0 or -errno with err. */
int source_start(struct source *s, struct ring *ring, sem_t *wake, struct detector *det, char *err,
		 size_t errlen);
/* Main thread: supervise a device (reopen with back-off, end at --duration); no-op otherwise. */
void source_supervise(struct source *s);
/* Any thread. eof: the detector has processed all it was given (det_stats.eof). */
void source_status(struct source *s, int eof, struct source_status *out);
/* Stop reading (join the thread, close the device). Main thread. */
void source_stop(struct source *s);
void source_free(struct source *s);

#endif
