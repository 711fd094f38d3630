/* verify.c - second opinion on candidate detections (daemon/verify.h).
 *
 * DESIGN. A live stepper's scores rest on everything it has heard, and a word after other speech
 * scores lower than the same word alone; on the end-to-end streams most misses at the default
 * threshold are words whose score peaked between 0.4 and 0.8. Lowering the threshold finds them
 * but also lets through the stepper's confusions. The convolution engine can classify the word's
 * own window as a lone clip (zeros before it, what the model was trained and evaluated on) for
 * about one clip's cost (~10 ms), and only candidates pay it. So postproc fires at a low
 * threshold, and a candidate is reported only if that second opinion agrees.
 *
 * Every channel's samples go into a history ring of (channels, L) floats, sample f of a channel
 * at f % L; a candidate waits in a FIFO until the window [end + after - W, end + after) has
 * arrived, then that window is copied out (zeros before the stream start and, when forced, after
 * the last sample) and run through s4m_conv_logits_primed: the preroll's share was computed once
 * in vf_new, so the call runs on the W samples alone. One conv workspace serves all channels, as
 * one thread owns the verifier. Everything is allocated in vf_new.
 */
#include "verify.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

struct cand {
	int ch;
	uint64_t at;             /* the window ends here (exclusive), samples since reset */
	struct pp_detection d;
};

struct vf {
	const struct s4m_model *m;
	int C, K;
	size_t W;                /* window, samples */
	size_t L;                /* ring length per channel, samples */
	size_t max_after;        /* samples */
	float threshold;         /* (0, 1] */
	size_t after;            /* samples past the estimated end */
	uint64_t n;              /* samples pushed since reset (per channel) */
	float *ring;             /* (C, L) */
	float *x;                /* (preroll + W) window, preroll zeros first (unprimed engines) */
	float *logits, *probs;   /* (K) */
	struct s4m_conv *cv;
	int primed;
	struct cand q[VF_PENDING];
	int head, len;
};

size_t vf_samples(const struct s4m_model *m, double ms)
{
	double s = ms * s4m_sample_rate(m) / s4m_rate(m) / 1000.0;
	return s > 0 ? (size_t)(s + 0.5) : 0;
}

struct vf *vf_new(const struct s4m_model *m, int channels, size_t lag, char *err, size_t errlen)
{
	if (s4m_bidirectional(m)) {
		s4k_seterr(err, errlen, "--verify needs a causal model: a bidirectional model's window "
			   "would depend on audio after it");
		return NULL;
	}
	if (channels < 1) {
		s4k_seterr(err, errlen, "a verifier needs at least one channel");
		return NULL;
	}
	struct vf *v = calloc(1, sizeof *v);
	if (!v) {
		s4k_seterr(err, errlen, "out of memory for the verifier");
		return NULL;
	}
	v->m = m;
	v->C = channels;
	v->K = s4m_n_labels(m);
	v->W = s4m_window(m);
	v->max_after = vf_samples(m, VF_MAX_AFTER_MS);
	v->L = v->W + v->max_after + lag;
	v->threshold = 1.0f;
	size_t pre = s4m_preroll(m);
	v->ring = calloc((size_t)v->C * v->L, sizeof *v->ring);
	v->x = calloc(pre + v->W, sizeof *v->x);
	v->logits = malloc((size_t)v->K * sizeof *v->logits);
	v->probs = malloc((size_t)v->K * sizeof *v->probs);
	if (!v->ring || !v->x || !v->logits || !v->probs) {
		s4k_seterr(err, errlen, "out of memory for the verifier's %zu-sample history",
			   (size_t)v->C * v->L);
		vf_free(v);
		return NULL;
	}
	v->cv = s4m_conv_new(m, pre + v->W, err, errlen);
	if (!v->cv || s4m_conv_prime(v->cv, err, errlen) < 0) {
		vf_free(v);
		return NULL;
	}
	v->primed = s4m_conv_primed(v->cv) == v->W;
	return v;
}

void vf_free(struct vf *v)
{
	if (!v)
		return;
	if (v->cv)
		s4m_conv_free(v->cv);
	free(v->ring);
	free(v->x);
	free(v->logits);
	free(v->probs);
	free(v);
}

int vf_set(struct vf *v, float threshold, size_t after)
{
	if (!(threshold > 0.0f && threshold <= 1.0f) || after > v->max_after)
		return -EINVAL;
	v->threshold = threshold;
	v->after = after;
	return 0;
}

void vf_reset(struct vf *v)
{
	memset(v->ring, 0, (size_t)v->C * v->L * sizeof *v->ring);
	v->n = 0;
	v->head = v->len = 0;
}

void vf_push(struct vf *v, const float *restrict frames, size_t n)
{
	const size_t C = (size_t)v->C, L = v->L;
	/* frames: (n, C) interleaved -> ring: (C, L); non-finite samples as 0, as the steppers take them */
	for (size_t i = 0; i < n; i++) {
		size_t at = (size_t)((v->n + i) % L);
		for (size_t c = 0; c < C; c++) {
			float x = frames[i * C + c];
			v->ring[c * L + at] = isfinite(x) ? x : 0.0f;
		}
	}
	v->n += n;
}

int vf_pending(const struct vf *v)
{
	return v->len;
}

int vf_add(struct vf *v, int ch, const struct pp_detection *d)
{
	if (v->len == VF_PENDING)
		return -ENOSPC;
	struct cand *c = &v->q[(v->head + v->len) % VF_PENDING];
	c->ch = ch < 0 ? 0 : ch >= v->C ? v->C - 1 : ch;
	c->d = *d;
	c->at = d->end + v->after;
	if (c->at < v->W)
		c->at = v->W; /* a word at the very start: the stream's first window */
	v->len++;
	return 0;
}

/* Judge candidate c: copy its window out of the ring and classify it. */
static void judge(struct vf *v, const struct cand *c, struct vf_result *r)
{
	const size_t W = v->W, L = v->L;
	uint64_t at = c->at;
	/* the ring holds [n - L, n): a window older than that is moved to the oldest one held */
	if (v->n > L && at - W < v->n - L)
		at = v->n - L + W;
	const size_t pre = v->primed ? 0 : s4m_preroll(v->m);
	float *restrict x = v->x + pre; /* (W) window */
	const float *restrict h = v->ring + (size_t)c->ch * L;
	for (size_t i = 0; i < W; i++) {
		uint64_t f = at - W + i; /* at >= W */
		x[i] = f < v->n ? h[f % L] : 0.0f;
	}
	if (v->primed)
		s4m_conv_logits_primed(v->cv, x, W, v->logits);
	else
		s4m_conv_logits(v->cv, v->x, pre + W, v->logits);
	pp_softmax(v->logits, v->K, v->probs);
	int top = 0;
	for (int k = 1; k < v->K; k++)
		if (v->probs[k] > v->probs[top])
			top = k;
	const int k = c->d.label >= 0 && c->d.label < v->K ? c->d.label : 0;
	r->channel = c->ch;
	r->score = v->probs[k];
	r->accepted = top == k && v->probs[k] >= v->threshold;
	r->d = c->d;
	r->d.verify = r->score; /* an accepted one has score >= threshold > 0 */
	uint64_t when = at < v->n ? at : v->n; /* decided once the window was in (or forced) */
	if (when > r->d.sample)
		r->d.sample = when;
}

int vf_poll(struct vf *v, int all, struct vf_result *out, int max_out)
{
	int n = 0;
	while (v->len && n < max_out) {
		const struct cand *c = &v->q[v->head];
		if (!all && c->at > v->n)
			break;
		judge(v, c, &out[n++]);
		v->head = (v->head + 1) % VF_PENDING;
		v->len--;
	}
	return n;
}
