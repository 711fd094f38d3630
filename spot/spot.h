/* spot.h - per-channel keyword decisions: posterior vectors in, detections out through a sink.
 * The one place where a hop's posteriors become a detection, for the live detector, every
 * Wyoming client and file-mode scans alike.
 *
 *   struct spot_sink sink = {.user = me, .detection = on_det, .rejected = on_rej};
 *   struct spot *s = spot_new(model, channels, &pc, lag, &sink, err, sizeof err);
 *   per hop:  spot_audio(s, frames, hop);           // (hop, channels): what verify judges
 *             spot_hop(s, ch, probs);               // each channel's posteriors (K)
 *             spot_decide(s);                       // candidates -> sink, or queued for verify
 *   end:      spot_finish(s);                       // judge what still waits, with what there is
 *   spot_free(s);
 *
 * Each channel has a post-processing instance (spot/postproc.h); with pc->verify > 0 at
 * spot_new, candidates wait in one second-opinion queue over all channels (spot/verify.h) until
 * their window has arrived, `lag` samples at most behind the newest pushed audio, and reach the
 * sink only when accepted; otherwise they reach it at once. The sink sees detections in decision
 * order, channel by channel within a hop; positions count samples since spot_new/spot_reset.
 * Threads: one owner thread, except that spot_hop() for different channels may run on different
 * threads at once (the live detector steps channels in parallel) as long as spot_decide() runs
 * after all of them. Nothing here allocates, locks or logs after spot_new().
 */
#ifndef S4KWS_SPOT_SPOT_H
#define S4KWS_SPOT_SPOT_H

#include <stddef.h>
#include <stdint.h>

#include "model/s4m.h"
#include "postproc.h"

struct spot_sink {
	void *user;
	/* A detection of channel ch: `sample` is where it was decided (moved to where the second
	 * opinion judged it, with verify). */
	void (*detection)(void *user, int ch, const struct pp_detection *d);
	/* A candidate the second opinion turned down (score: its probability there); may be NULL. */
	void (*rejected)(void *user, int ch, const struct pp_detection *d, float score);
};

struct spot;

/* NULL with one sentence in err (bad settings, no memory, verify with a bidirectional model). */
struct spot *spot_new(const struct s4m_model *m, int channels, const struct pp_config *pc, size_t lag,
		      const struct spot_sink *sink, char *err, size_t errlen);
void spot_free(struct spot *s);
/* New settings from the next hop (thresholds, smoothing, verify threshold and window; verify
 * cannot be turned on when it was off at spot_new). 0 or -EINVAL with err, nothing changed. */
int spot_reconfigure(struct spot *s, const struct pp_config *pc, char *err, size_t errlen);
/* New stream: what waits is judged first (spot_finish), then every channel warms up again and
 * positions restart from 0. */
void spot_reset(struct spot *s);
/* The hop's audio, (n, channels) interleaved: the history the second opinion reads. */
void spot_audio(struct spot *s, const float *frames, size_t n);
/* Channel ch's posterior vector (K) for this hop. */
void spot_hop(struct spot *s, int ch, const float *probs);
/* The hop's candidates of every channel to the sink or the verify queue; then the queued ones
 * whose window has arrived are judged. */
void spot_decide(struct spot *s);
/* Judge every waiting candidate now (end of input, or before the stream changes). */
void spot_finish(struct spot *s);
/* Channel ch's smoothed posteriors (K) as of its last hop; hops since the reset. */
const float *spot_smoothed(const struct spot *s, int ch);
uint64_t spot_hops(const struct spot *s);
/* 1 when the second opinion is on. */
int spot_verifying(const struct spot *s);

#endif
