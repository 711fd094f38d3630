/* spot.c - per-channel keyword decisions (see spot.h).
 *
 * DESIGN: a hop's detections per channel are first collected (spot_hop, parallel over channels)
 * and then handed on in channel order (spot_decide, one thread), so that the sink sees the same
 * order whatever thread stepped which channel. With verify on, a candidate joins the queue; a
 * full queue (VF_PENDING) is judged at once with what there is rather than dropping anything.
 * Verify is switched by its threshold: 0 turns it off live (candidates then go straight to the
 * sink, and what waits is judged first), a positive value needs the queue built at spot_new.
 */
#include "spot.h"

#include <errno.h>
#include <stdlib.h>

#include "../common/err.h"
#include "verify.h"

struct spot {
	const struct s4m_model *m;
	int C;
	struct spot_sink sink;
	struct pp **pp;               /* (C) */
	struct pp_detection *out;     /* (C, PP_MAX_OUT) candidates of the current hop */
	int *nout;                    /* (C) */
	struct vf *vf;                /* second opinion over all channels, or NULL */
	float verify;                 /* its threshold; 0: off */
};

static int set_verify(struct spot *s, const struct pp_config *pc, char *err, size_t errlen)
{
	if (pc->verify > 0 && !s->vf) {
		s4k_seterr(err, errlen, "verify was off at start; restart the daemon to turn it on");
		return -EINVAL;
	}
	if (pc->verify > 0 && vf_set(s->vf, pc->verify, vf_samples(s->m, pc->verify_after_ms)) < 0) {
		s4k_seterr(err, errlen, "verify must be in (0, 1] and verify-after-ms 0 to %g", VF_MAX_AFTER_MS);
		return -EINVAL;
	}
	if (!(pc->verify > 0) && s->verify > 0)
		spot_finish(s); /* turned off: what waits is judged under the old settings */
	s->verify = pc->verify > 0 ? pc->verify : 0;
	return 0;
}

struct spot *spot_new(const struct s4m_model *m, int channels, const struct pp_config *pc, size_t lag,
		      const struct spot_sink *sink, char *err, size_t errlen)
{
	if (channels < 1 || pp_validate(pc, err, errlen) < 0) {
		if (channels < 1)
			s4k_seterr(err, errlen, "a spotter needs at least one channel");
		return NULL;
	}
	struct spot *s = calloc(1, sizeof *s);
	if (!s) {
		s4k_seterr(err, errlen, "out of memory for a spotter");
		return NULL;
	}
	s->m = m;
	s->C = channels;
	s->sink = *sink;
	s->pp = calloc((size_t)channels, sizeof *s->pp);
	s->out = calloc((size_t)channels * PP_MAX_OUT, sizeof *s->out);
	s->nout = calloc((size_t)channels, sizeof *s->nout);
	if (!s->pp || !s->out || !s->nout) {
		s4k_seterr(err, errlen, "out of memory for a spotter");
		spot_free(s);
		return NULL;
	}
	for (int c = 0; c < channels; c++)
		if (!(s->pp[c] = pp_new(pc, err, errlen))) {
			spot_free(s);
			return NULL;
		}
	if ((pc->verify > 0 && !(s->vf = vf_new(m, channels, lag, err, errlen))) ||
	    set_verify(s, pc, err, errlen) < 0) {
		spot_free(s);
		return NULL;
	}
	return s;
}

void spot_free(struct spot *s)
{
	if (!s)
		return;
	for (int c = 0; s->pp && c < s->C; c++)
		pp_free(s->pp[c]);
	vf_free(s->vf);
	free(s->pp);
	free(s->out);
	free(s->nout);
	free(s);
}

int spot_reconfigure(struct spot *s, const struct pp_config *pc, char *err, size_t errlen)
{
	if (pp_validate(pc, err, errlen) < 0)
		return -EINVAL;
	if (set_verify(s, pc, err, errlen) < 0) /* refuses before it changes anything */
		return -EINVAL;
	for (int c = 0; c < s->C; c++)
		if (pp_reconfigure(s->pp[c], pc, err, errlen) < 0)
			return -EINVAL; /* validated above: not reached */
	return 0;
}

void spot_reset(struct spot *s)
{
	spot_finish(s); /* with what the old stream gave */
	if (s->vf)
		vf_reset(s->vf);
	for (int c = 0; c < s->C; c++) {
		pp_reset(s->pp[c]);
		s->nout[c] = 0;
	}
}

void spot_audio(struct spot *s, const float *frames, size_t n)
{
	if (s->vf)
		vf_push(s->vf, frames, n);
}

void spot_hop(struct spot *s, int ch, const float *probs)
{
	s->nout[ch] = pp_push(s->pp[ch], probs, s->out + (size_t)ch * PP_MAX_OUT, PP_MAX_OUT);
}

/* Judge the waiting candidates whose window has arrived (all: every one, with what there is). */
static void judge(struct spot *s, int all)
{
	struct vf_result r[VF_MAX_OUT];
	int n;
	do {
		n = vf_poll(s->vf, all, r, VF_MAX_OUT);
		for (int i = 0; i < n; i++) {
			if (r[i].accepted)
				s->sink.detection(s->sink.user, r[i].channel, &r[i].d);
			else if (s->sink.rejected)
				s->sink.rejected(s->sink.user, r[i].channel, &r[i].d, r[i].score);
		}
	} while (n == VF_MAX_OUT || (all && n && vf_pending(s->vf)));
}

void spot_decide(struct spot *s)
{
	for (int c = 0; c < s->C; c++) {
		for (int k = 0; k < s->nout[c]; k++) {
			const struct pp_detection *d = &s->out[(size_t)c * PP_MAX_OUT + (size_t)k];
			if (!(s->verify > 0)) {
				s->sink.detection(s->sink.user, c, d);
				continue;
			}
			while (vf_add(s->vf, c, d) < 0)
				judge(s, 1); /* the queue is full: judge the waiting ones now */
		}
		s->nout[c] = 0;
	}
	if (s->vf && vf_pending(s->vf))
		judge(s, 0);
}

void spot_finish(struct spot *s)
{
	if (s->vf && vf_pending(s->vf))
		judge(s, 1);
}

const float *spot_smoothed(const struct spot *s, int ch) { return pp_smoothed(s->pp[ch]); }
uint64_t spot_hops(const struct spot *s) { return pp_hops(s->pp[0]); }
int spot_verifying(const struct spot *s) { return s->verify > 0; }
