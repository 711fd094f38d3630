/* verify.h - a second opinion on keyword detections: the word's own window, classified again as
 * a lone clip in convolution mode (--verify).
 *
 * Usage:
 *   struct vf *v = vf_new(model, channels, lag, err, sizeof err);  // ring, pending list, conv workspace
 *   vf_set(v, 0.7f, vf_samples(model, 400.0));                     // threshold, audio after the end
 *   vf_push(v, frames, n);                                         // (n, channels) interleaved
 *   vf_add(v, ch, &detection);                                     // a candidate from postproc
 *   struct vf_result r[VF_MAX_OUT];
 *   int k = vf_poll(v, 0, r, VF_MAX_OUT);                          // candidates whose window is in
 *   ...                                                            // r[i].accepted: report r[i].d
 *   vf_poll(v, 1, r, VF_MAX_OUT);                                  // end of input: the rest, now
 *   vf_free(v);
 *
 * A candidate of keyword k whose end was estimated at sample e is judged on the window of
 * s4m_window(m) samples that ends `after` samples past e (the samples the model was trained to
 * see a word in), run from a zero state after the model's preroll of zeros, as `s4kws classify`
 * runs a lone clip: accepted when k is the top label there with a probability >= threshold. The
 * candidate waits until that window has arrived, so a verified detection is decided `after`
 * samples after the estimated end at the earliest; its `sample` (decision point) is moved there.
 * Candidates are judged in the order they were added, so detections stay in decision order.
 *
 * Positions count samples since vf_new()/vf_reset(), like the pp_detection positions of a
 * postproc instance reset at the same time. The history ring holds the last
 * window + VF_MAX_AFTER_MS + lag samples per channel: lag is how far behind the newest pushed
 * sample a candidate's window may end when its turn comes (the scanner's chunk, a hop for the
 * live detector); older windows are clamped to the oldest the ring still holds.
 * Threads: one owner thread; vf_new() allocates and plans (FFTW, under the engine's lock), the
 * other calls never allocate, lock or log.
 */
#ifndef S4KWS_DAEMON_VERIFY_H
#define S4KWS_DAEMON_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "model/s4m.h"
#include "postproc.h"

#define VF_MAX_AFTER_MS 1000.0 /* longest `after` (--verify-after-ms) */
#define VF_PENDING 32          /* candidates waiting at most; more are judged at once */
#define VF_MAX_OUT 8           /* enough room for one vf_poll() after one hop */

struct vf_result {
	int channel;
	int accepted;           /* 1: report d; 0: rejected by the second opinion */
	float score;            /* the second opinion's probability of the keyword, [0, 1] */
	struct pp_detection d;  /* the candidate, `sample` moved to where it was judged */
};

struct vf;

/* Samples of `ms` at the model's (effective) rate. */
size_t vf_samples(const struct s4m_model *m, double ms);
/* Build a verifier for `channels` interleaved channels. NULL with one sentence in err (no
 * memory, or a bidirectional model, whose lone-clip windows see the future). */
struct vf *vf_new(const struct s4m_model *m, int channels, size_t lag, char *err, size_t errlen);
void vf_free(struct vf *v);
/* threshold in (0, 1]; after in samples, at most vf_samples(m, VF_MAX_AFTER_MS). Pending
 * candidates keep the window they were given. Returns 0 or -EINVAL. */
int vf_set(struct vf *v, float threshold, size_t after);
/* New stream: history zeroed, positions from 0; pending candidates are dropped (judge them
 * first with vf_poll(v, 1, ...)). */
void vf_reset(struct vf *v);
/* Append n frames of `channels` floats. */
void vf_push(struct vf *v, const float *frames, size_t n);
/* Queue a candidate of channel ch. Returns 0, or -ENOSPC when VF_PENDING are waiting (the
 * caller judges them with vf_poll(v, 1, ...) and adds again). */
int vf_add(struct vf *v, int ch, const struct pp_detection *d);
/* Judge the waiting candidates whose window has arrived (all of them when `all`, with the
 * samples there are: zeros stand for what never came), oldest first, at most max_out. Returns
 * how many were written to out; each is accepted or rejected. */
int vf_poll(struct vf *v, int all, struct vf_result *out, int max_out);
/* Candidates waiting. */
int vf_pending(const struct vf *v);

#endif
