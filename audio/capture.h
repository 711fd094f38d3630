/* capture.h - PortAudio capture into a lock-free ring.
 *
 * Usage:
 *   capture_init(err, sizeof err);                        // Pa_Initialize (main thread)
 *   struct capture_device devs[64];
 *   int n = capture_list(devs, 64, err, sizeof err);      // inputs, channels, supported rates
 *   struct capture_params p = {.device = "USB", .channels = 2, .rate = 16000,
 *                              .frames_per_buffer = 320, .max_frames = 0};
 *   struct capture *c = capture_open(&p, &ring, &wake, err, sizeof err);
 *   capture_rate(c);                                      // 16000, or the device's own rate
 *   capture_start(c, err, sizeof err);
 *   while (capture_poll(c, err, sizeof err) == CAPTURE_RUNNING) ... // main loop, every ~200 ms
 *   capture_close(c);
 *   capture_fini();                                       // Pa_Terminate
 *
 * Samples are captured as 16-bit integers (the one format every ALSA device, including the
 * `type file` test PCM, delivers bit-exactly), converted to floats in [-1, 1) and written to the
 * ring as interleaved frames. The callback only converts, writes to the ring, bumps atomic
 * counters and posts the wake semaphore: it never allocates, locks, blocks or logs. When the
 * ring is full the new frames are dropped (counted by the ring as overruns).
 * Threads: everything but the callback runs on one control thread (the main thread);
 * capture_close() may leave a stuck close to a thread of its own (see below).
 */
#ifndef S4KWS_AUDIO_CAPTURE_H
#define S4KWS_AUDIO_CAPTURE_H

#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

#define CAPTURE_MAX_RATES 10

struct capture_device {
	int index;                    /* PortAudio device index (what --device INDEX takes) */
	char name[256];
	char api[64];                 /* host API, e.g. "ALSA" */
	int max_channels;             /* input channels */
	double default_rate;          /* Hz */
	int n_rates;
	int rates[CAPTURE_MAX_RATES]; /* common rates it accepts for 16-bit mono input, Hz */
};

struct capture_params {
	const char *device;           /* NULL/"": default input; digits: index; else a name substring
	                                 (an exact name match wins) */
	int channels;                 /* >= 1 */
	int rate;                     /* wanted Hz (the model's); the device's own rate otherwise */
	unsigned frames_per_buffer;   /* callback period, frames */
	uint64_t max_frames;          /* stop after this many frames (0: never) */
	double max_s;                 /* or after this many seconds at the rate opened (0: never);
	                                 the smaller limit wins when both are set */
	double stall_s;               /* no callback for this long while running = error (0: 5 s) */
};

enum capture_state { CAPTURE_RUNNING = 0, CAPTURE_DONE = 1, CAPTURE_ERROR = 2 };

struct capture;

/* Initialise / terminate PortAudio (reference counted). Re-initialising rescans devices, which is
 * how a reconnected device is found again. capture_init returns 0 or -EIO with a sentence. */
int capture_init(char *err, size_t errlen);
/* 1 (the default): ALSA's and JACK's own diagnostics are dropped (dozens of lines per device
 * scan on a machine without a sound card); 0: they go to stderr as the libraries print them
 * (for --log-level debug). Takes effect at the next capture_init() that initialises PortAudio. */
void capture_set_quiet(int quiet);
void capture_fini(void);

/* Fill up to max input devices; returns how many there are (may exceed max) or -EIO. */
int capture_list(struct capture_device *out, int max, char *err, size_t errlen);

/* Find the device and open a 16-bit input stream at p->rate if the device supports it, else at
 * its default rate. ring must have room for several periods; wake (may be NULL) is posted after
 * every callback. Returns NULL with one sentence in err (no such device, too few channels,
 * open failure). */
struct capture *capture_open(const struct capture_params *p, struct ring *ring, sem_t *wake,
			     char *err, size_t errlen);
int capture_rate(const struct capture *c);            /* Hz the stream runs at */
const char *capture_name(const struct capture *c);    /* the device's name */
int capture_start(struct capture *c, char *err, size_t errlen);
/* Check the stream: running, done (max_frames delivered), or error (stream error, stopped by
 * itself, or no callback for stall_s) with a sentence in err. */
enum capture_state capture_poll(struct capture *c, char *err, size_t errlen);
uint64_t capture_frames(const struct capture *c);     /* frames delivered to the ring or dropped */
uint64_t capture_overflows(const struct capture *c);  /* callbacks flagged paInputOverflow */
/* Stop and close (NULL is fine). Returns within about a second even when the driver holds the
 * stream's thread in a blocking read (a quiet device behind a blocking plugin): the close then
 * finishes on its own thread once the driver lets go, and until it has, capture_open() refuses
 * with a sentence naming the device and capture_init()/capture_fini() do not rescan (no other
 * PortAudio call may run beside the stuck one). The callback stops writing to the ring as soon
 * as capture_close() is called. */
void capture_close(struct capture *c);
/* Closes still waiting for a driver to let go (0 normally). */
int capture_closing(void);

#endif
