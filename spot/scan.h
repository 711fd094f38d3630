/* scan.h - a recording of any length in, per-hop posteriors and keyword detections out.
 *
 * Usage:
 *   struct pp_config pc;                                   // spot/postproc.h
 *   pp_config_default(&pc, s4m_sample_rate(m), scan_hop(m, 10.0), K, labels, kw);
 *   struct scan_sink sink = { .detection = on_det, .user = ctx };   // .posterior optional
 *   struct scan *sc = scan_new(m, SCAN_CONV, &pc, 0, scan_period(m, 2000), &sink, err, sizeof err);
 *   while ((n = af_read_mono(f, buf, 4096, ...)) > 0)
 *           scan_push(sc, buf, n);                         // any block size
 *   scan_finish(sc);                                       // the last partial chunk
 *   scan_free(sc);
 *
 * SCAN_CONV runs the convolution engine over chunks of the recording whose posteriors equal one
 * whole-file run from a zero state to float rounding, so memory is one chunk whatever the
 * length: carried chunks (s4m_conv_carry_*, each sample through the network once) for causal
 * models, chunks preceded by enough real audio (s4m_receptive_field + decoder window) for
 * bidirectional ones. SCAN_STREAM
 * runs the recurrent steppers over the same samples (what the live daemon does). With a restart
 * period both bound the audio behind each posterior the same way (model/s4m_relay.c): the
 * steppers are an s4m_relay, conv mode runs one segment per restart. Either way the
 * hop-th posterior vector (softmax of the pool decoder over the window ending there) goes to
 * daemon/postproc, the same post-processing as live mode, and its detections to the sink.
 * Sample positions count from the first sample pushed (after scan_new or scan_reset).
 * Threads: one scan belongs to one thread at a time; the model may be shared.
 */
#ifndef S4KWS_DAEMON_SCAN_H
#define S4KWS_DAEMON_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "model/s4m.h"
#include "postproc.h"
#include "spot.h"

enum scan_mode { SCAN_CONV = 0, SCAN_STREAM = 1 };

struct scan_sink {
	/* each detection, in the order decided; may be NULL */
	void (*detection)(void *user, const struct pp_detection *d);
	/* every hop's posterior vector probs (K) after `sample` samples; may be NULL */
	void (*posterior)(void *user, uint64_t sample, const float *probs);
	void *user;
};

struct scan;

/* Samples per posterior: hop_ms rounded to a whole number (>= 1) of the model's hop. */
size_t scan_hop(const struct s4m_model *m, double hop_ms);
/* Restart period in samples for period_ms (0 = never): a multiple of twice the model's hop. */
size_t scan_period(const struct s4m_model *m, double period_ms);
/* Default conv chunk, input samples: twice the longest kernel for carried chunks, the
 * pre-context for bidirectional models; at least 2 s. */
size_t scan_default_chunk(const struct s4m_model *m);

/* Build a scanner. pc must have the model's rate and labels count and a hop that is a multiple
 * of s4m_hop(m); chunk (conv mode; 0 = scan_default_chunk) is rounded up to a multiple of the
 * hop and to at least s4m_conv_carry_min (carried) or the pre-context; period (samples, from scan_period; 0 = none) bounds the
 * audio behind every posterior as model/s4m_relay does, in both modes. The sink is copied. Returns NULL with one sentence in
 * err (bad config, stream mode on a bidirectional model, no memory). */
struct scan *scan_new(const struct s4m_model *m, enum scan_mode mode, const struct pp_config *pc,
		      size_t chunk, size_t period, const struct scan_sink *sink, char *err, size_t errlen);
void scan_free(struct scan *sc);
/* Conv mode with restarts: precompute the segments' preroll share (s4m_conv_prime_window, one
 * segment's work, allocates and plans), so that every later whole segment runs on its own
 * samples alone: the same posteriors for about 60 % of the work with a 1.5 s preroll and 2 s
 * segments. Worth it for a scanner that will see more than a few seconds of audio. A no-op
 * (0) for other modes or models it does not apply to; else 0 or a negative errno with err. */
int scan_prime(struct scan *sc, char *err, size_t errlen);
/* Start a new recording: zero state, postproc warm-up again. No allocation. */
void scan_reset(struct scan *sc);

/* Feed n samples at the model's rate. Returns 0 or -EINVAL (engine refused a chunk). */
int scan_push(struct scan *sc, const float *x, size_t n);
/* Process what is buffered (conv mode); samples after the last whole hop are dropped.
 * Returns 0 or -EINVAL. Call once at the end of a recording. */
int scan_finish(struct scan *sc);
/* Samples pushed since the last reset. */
uint64_t scan_samples(const struct scan *sc);
/* Bytes the scanner holds (engine workspace not included). */
size_t scan_mem(const struct scan *sc);

#endif
