/* detector.h - the inference thread: ring of input frames -> resampler -> one S4 stepper per
 * channel -> posteriors every hop -> post-processing -> events.
 *
 * Usage:
 *   struct det_config dc = {.m = model, .channels = 2, .hop = scan_hop(model, 10.0),
 *                           .ring = &ring, .wake = &wake, .ev = events, .pc = &pc};
 *   struct detector *d = detector_new(&dc, err, sizeof err);
 *   detector_set_input(d, 48000, RS_MEDIUM);   // the ring now carries 48 kHz frames
 *   detector_start(d, err, sizeof err);
 *   ...                                        // producer writes frames, posts wake
 *   detector_input_done(d);                    // producer finished: drain, then eof
 *   struct det_stats s; detector_stats(d, &s); // any thread: a published copy
 *   detector_stop(d);                          // drain what is in the ring, join
 *   detector_free(d);
 *
 * Offsets in detections count model-rate samples since the detector started (all channels
 * advance together, one interleaved frame at a time); a change of input (device reopened)
 * resets the steppers and post-processing (warm-up again) but not the offsets.
 * Threads: detector_new/start/stop/free on the control thread; set_input, input_done,
 * reconfigure and stats from any thread (they hand over through a mutex and an atomic flag, and
 * the inference thread picks changes up between hops). The inference thread owns the streams,
 * the post-processing state and the resampler; it never blocks on anything but the wake
 * semaphore (50 ms at most) and the events mutex.
 */
#ifndef S4KWS_DAEMON_DETECTOR_H
#define S4KWS_DAEMON_DETECTOR_H

#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/resample.h"
#include "audio/ring.h"
#include "events.h"
#include "model/s4m.h"
#include "spot/postproc.h"
#include "saver.h"
#include "spot/spot.h"

#define DET_HIST_BUCKETS 11
/* Upper bounds (s) of the step-time histogram buckets; the last bucket is +Inf. */
extern const double det_hist_bounds[DET_HIST_BUCKETS];

struct det_config {
	const struct s4m_model *m;  /* shared, immutable; must be streamable */
	int channels;               /* >= 1 */
	size_t hop;                 /* model-rate samples per posterior, a multiple of s4m_hop() */
	struct ring *ring;          /* interleaved frames of `channels` floats */
	sem_t *wake;                /* posted by the producer */
	struct events *ev;          /* where detections go */
	const struct pp_config *pc; /* rate, hop, labels and per-keyword settings (copied) */
	size_t period;              /* stepper restart period, samples (scan_period; 0 = never) */
	int threads;                /* threads stepping the channels (<= 1: the inference thread
	                               alone; more than `channels` are not used) */
	struct saver *saver;        /* NULL, or where each detection's audio goes (not owned) */
	size_t save_pre, save_post; /* model-rate samples before and after the decision point */
	size_t dedup;               /* model-rate samples: a keyword detected on one channel is not
	                               reported on another within this (0: off) */
	const char *const *channel_names; /* (channels) names put in detections, or NULL (copied) */
};

struct det_stats {
	uint64_t frames;            /* model-rate frames processed (per channel) */
	double audio_s;             /* frames / model rate */
	double busy_s;              /* wall time spent stepping, scoring and post-processing */
	double rtf;                 /* busy_s / audio_s for all channels together */
	double cpu_s;               /* CPU time of the inference thread and its stepping helpers
	                               (excludes time they waited or were preempted, unlike busy_s) */
	uint64_t hops;
	uint64_t hist[DET_HIST_BUCKETS + 1]; /* per-hop processing time (all channels), counts */
	double hist_sum;            /* s */
	uint64_t resets;            /* stream resets after input changes */
	int in_rate;                /* Hz of the frames in the ring */
	int eof;                    /* input finished and everything processed */
	uint64_t detections;        /* published by this detector */
	uint64_t deduplicated;      /* detections not published: another channel had them (dedup) */
	uint64_t muted;             /* detections not published: detector_mute() was in effect */
	uint64_t rejected;          /* candidates the second opinion (--verify) did not confirm */
};

struct detector;

/* Allocate streams, post-processing, buffers. NULL with one sentence in err. */
struct detector *detector_new(const struct det_config *c, char *err, size_t errlen);
/* Start the inference thread. 0 or -errno. */
int detector_start(struct detector *d, char *err, size_t errlen);
/* The ring carries frames at rate Hz from now on (a new stream: state is reset). */
void detector_set_input(struct detector *d, int rate, enum rs_quality q);
/* The producer has finished: process what is left, flush the resampler, then report eof. */
void detector_input_done(struct detector *d);
/* New post-processing settings (same rate, hop and labels). Validated here (0 or -EINVAL with a
 * sentence; the old settings stay), applied by the inference thread before its next hop. */
int detector_reconfigure(struct detector *d, const struct pp_config *pc, char *err, size_t errlen);
/* A consistent copy of the counters (published after every block). */
void detector_stats(struct detector *d, struct det_stats *out);
/* Turns of the inference thread's loop so far (at least one every 50 ms while it runs, with or
 * without audio): unchanged for longer means it hangs (the systemd watchdog). Any thread. */
uint64_t detector_beats(struct detector *d);
/* The smoothed posteriors (channels x labels, channel-major) as of the last publication, into
 * out (n floats, at least channels x labels); their hop count since the last reset in *hops.
 * 0, or -EINVAL when n is too small. Any thread. */
int detector_scores(struct detector *d, float *out, size_t n, uint64_t *hops);
/* Mute: no detection is published until `until` (CLOCK_MONOTONIC ns; INT64_MAX: until unmuted,
 * 0: unmute now). Steppers keep running, so scores stay current and nothing needs a warm-up
 * after it (e.g. while the device's own speaker plays). Any thread. */
void detector_mute(struct detector *d, int64_t until);
/* The current mute deadline (0: not muted, or it has passed). Any thread. */
int64_t detector_muted_until(struct detector *d);
/* Threads stepping the channels (det_config.threads, capped at the channel count). */
int detector_threads(const struct detector *d);
/* Process what is still in the ring, stop the thread and join it. */
void detector_stop(struct detector *d);
void detector_free(struct detector *d);

#endif
