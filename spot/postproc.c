/* postproc.c - turn one posterior vector per hop into keyword detections.
 *
 * DESIGN. The streaming decoder already averages features over a one-second window, so its
 * posterior for a keyword rises shortly after the word ends and stays up while the word is
 * inside the window. A detection is the rising edge of that plateau: the moving average of the
 * last M posteriors must stay at or above the keyword's threshold (and, by default, be the top
 * label) for N consecutive hops. After firing, a keyword is disarmed until it drops below again,
 * and a refractory period guards against a plateau that wobbles around the threshold. Nothing
 * fires during the warm-up after a reset, when the decoder has seen too little audio.
 *
 * The last PP_MAX_SMOOTH posterior vectors are kept in a ring of (PP_MAX_SMOOTH, K) floats, and
 * each smoothed value is recomputed from the ring every hop (M <= 64 adds per label) rather than
 * kept as a running sum, so there is no drift over days and a reconfigured window takes effect
 * at once. Everything lives in one allocation made by pp_new(); pp_push() only reads and writes it.
 *
 * Estimates: the keyword's end is where the smoothed score began its final rise - the hop after
 * the last one below onset x threshold - less the moving average's group delay ((M-1)/2 hops)
 * and the model's latency; its start is end - word_ms. Taking the start of the rise rather than
 * the threshold crossing matters for slow rises: a score that needs 400 ms to climb from 0.4
 * to 0.8 would otherwise report an end 400 ms late.
 */
#include "postproc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

/* Per-label state and parameters in hops. */
struct pp_label {
	float threshold;
	float onset_level;     /* onset x threshold */
	unsigned smooth;       /* M, hops, 1..PP_MAX_SMOOTH */
	unsigned min_hops;     /* N, hops, >= 1 */
	unsigned refractory;   /* hops */
	int keyword;           /* 0 for labels starting with '_' */
	/* state */
	unsigned run;          /* consecutive hops above, counted after warm-up */
	uint64_t rise;         /* hop index of the first hop since the score was last below onset_level */
	float run_max;         /* highest smoothed score in the current run */
	int armed;             /* 0 after firing, until one hop not above */
	int fired;             /* fired at least once since reset */
	uint64_t last_fire;    /* hop index of the last detection */
};

struct pp {
	int rate;
	size_t hop;
	int K;
	unsigned warmup;       /* hops */
	float latency_ms, word_ms, onset;
	int require_top;
	uint64_t hops;         /* pushed since reset */
	unsigned head;         /* ring slot the next vector goes to */
	struct pp_label *lab;  /* (K) */
	float *ring;           /* (PP_MAX_SMOOTH, K) */
	float *smoothed;       /* (K) */
};

void pp_kw_default(struct pp_kw *kw)
{
	kw->threshold = (float)PP_DEF_THRESHOLD;
	kw->smooth_ms = (float)PP_DEF_SMOOTH_MS;
	kw->min_ms = (float)PP_DEF_MIN_MS;
	kw->refractory_ms = (float)PP_DEF_REFRACTORY_MS;
}

void pp_config_default(struct pp_config *c, int rate, size_t hop, int n_labels,
		       const char *const *labels, const struct pp_kw *kw)
{
	memset(c, 0, sizeof *c);
	c->rate = rate;
	c->hop = hop;
	c->n_labels = n_labels;
	c->labels = labels;
	c->kw = kw;
	c->warmup_ms = (float)PP_DEF_WARMUP_MS;
	c->latency_ms = (float)PP_DEF_LATENCY_MS;
	c->word_ms = (float)PP_DEF_WORD_MS;
	c->onset = (float)PP_DEF_ONSET;
	c->require_top = 1;
	c->verify = (float)PP_DEF_VERIFY;
	c->verify_after_ms = (float)PP_DEF_VERIFY_AFTER_MS;
}

static unsigned ms_to_hops(int rate, size_t hop, float ms)
{
	double h = (double)ms * rate / 1000.0 / (double)hop;
	if (!(h > 0))
		return 0;
	if (h > 1e9)
		return 1000000000u;
	return (unsigned)lround(h);
}

static int finite_range(float v, float lo, float hi)
{
	return isfinite(v) && v >= lo && v <= hi;
}

int pp_validate(const struct pp_config *c, char *err, size_t errlen)
{
	if (!c || c->n_labels < 1 || !c->labels || !c->kw) {
		s4k_seterr(err, errlen, "post-processing needs at least one label with parameters");
		return -EINVAL;
	}
	if (c->rate < 1000 || c->rate > 384000) {
		s4k_seterr(err, errlen, "post-processing sample rate %d Hz is out of range", c->rate);
		return -EINVAL;
	}
	if (c->hop < 1 || c->hop > (size_t)c->rate) {
		s4k_seterr(err, errlen, "post-processing hop of %zu samples is out of range (1..%d)",
			   c->hop, c->rate);
		return -EINVAL;
	}
	if (!finite_range(c->warmup_ms, 0, 3.6e6f) || !finite_range(c->latency_ms, -10000, 10000) ||
	    !finite_range(c->word_ms, 0, 10000) || !(c->onset > 0 && c->onset <= 1)) {
		s4k_seterr(err, errlen, "post-processing warm-up, latency, word length or onset is out of range");
		return -EINVAL;
	}
	if (!(c->verify >= 0 && c->verify <= 1) || !finite_range(c->verify_after_ms, 0, 1000)) {
		s4k_seterr(err, errlen, "verify must be 0 (off) or in (0, 1] and verify-after-ms 0 to 1000");
		return -EINVAL;
	}
	for (int k = 0; k < c->n_labels; k++) {
		const struct pp_kw *kw = &c->kw[k];
		const char *name = c->labels[k] ? c->labels[k] : "?";
		if (!(kw->threshold > 0 && kw->threshold <= 1)) {
			s4k_seterr(err, errlen, "threshold for '%s' must be in (0, 1], not %g", name,
				   (double)kw->threshold);
			return -EINVAL;
		}
		if (!finite_range(kw->smooth_ms, 0, 1e6f) ||
		    ms_to_hops(c->rate, c->hop, kw->smooth_ms) > PP_MAX_SMOOTH) {
			s4k_seterr(err, errlen, "smoothing window for '%s' must be 0 to %u hops of %zu samples",
				   name, PP_MAX_SMOOTH, c->hop);
			return -EINVAL;
		}
		if (!finite_range(kw->min_ms, 0, 60000)) {
			s4k_seterr(err, errlen, "minimum duration for '%s' must be 0 to 60000 ms", name);
			return -EINVAL;
		}
		if (!finite_range(kw->refractory_ms, 0, 3.6e6f)) {
			s4k_seterr(err, errlen, "refractory period for '%s' must be 0 to 3600000 ms", name);
			return -EINVAL;
		}
	}
	return 0;
}

/* Copy parameters (not state) from a validated config. */
static void apply(struct pp *pp, const struct pp_config *c)
{
	pp->warmup = ms_to_hops(c->rate, c->hop, c->warmup_ms);
	pp->latency_ms = c->latency_ms;
	pp->word_ms = c->word_ms;
	pp->require_top = c->require_top != 0;
	for (int k = 0; k < pp->K; k++) {
		struct pp_label *l = &pp->lab[k];
		unsigned m = ms_to_hops(c->rate, c->hop, c->kw[k].smooth_ms);
		unsigned n = ms_to_hops(c->rate, c->hop, c->kw[k].min_ms);
		l->threshold = c->kw[k].threshold;
		l->onset_level = c->onset * c->kw[k].threshold;
		l->smooth = m < 1 ? 1 : m;
		l->min_hops = n < 1 ? 1 : n;
		l->refractory = ms_to_hops(c->rate, c->hop, c->kw[k].refractory_ms);
	}
}

struct pp *pp_new(const struct pp_config *c, char *err, size_t errlen)
{
	if (pp_validate(c, err, errlen) < 0)
		return NULL;
	size_t K = (size_t)c->n_labels;
	/* one block: struct, labels, ring, smoothed; all members are 8- or 4-byte aligned */
	size_t sz = sizeof(struct pp) + K * sizeof(struct pp_label) +
		    (PP_MAX_SMOOTH + 1) * K * sizeof(float);
	struct pp *pp = calloc(1, sz);
	if (!pp) {
		s4k_seterr(err, errlen, "out of memory for post-processing state");
		return NULL;
	}
	pp->rate = c->rate;
	pp->hop = c->hop;
	pp->K = c->n_labels;
	pp->lab = (struct pp_label *)(pp + 1);
	pp->ring = (float *)(pp->lab + K);
	pp->smoothed = pp->ring + PP_MAX_SMOOTH * K;
	for (size_t k = 0; k < K; k++)
		pp->lab[k].keyword = c->labels[k] && c->labels[k][0] != '_';
	apply(pp, c);
	pp_reset(pp);
	return pp;
}

void pp_free(struct pp *pp)
{
	free(pp);
}

void pp_reset(struct pp *pp)
{
	pp->hops = 0;
	pp->head = 0;
	for (int k = 0; k < pp->K; k++) {
		struct pp_label *l = &pp->lab[k];
		l->run = 0;
		l->rise = 0;
		l->run_max = 0;
		l->armed = 1;
		l->fired = 0;
		l->last_fire = 0;
	}
}

int pp_reconfigure(struct pp *pp, const struct pp_config *c, char *err, size_t errlen)
{
	if (pp_validate(c, err, errlen) < 0)
		return -EINVAL;
	if (c->rate != pp->rate || c->hop != pp->hop || c->n_labels != pp->K) {
		s4k_seterr(err, errlen, "new post-processing settings change the rate, hop or labels");
		return -EINVAL;
	}
	for (int k = 0; k < pp->K; k++) {
		int kwd = c->labels[k] && c->labels[k][0] != '_';
		if (kwd != pp->lab[k].keyword) {
			s4k_seterr(err, errlen, "new post-processing settings change the labels");
			return -EINVAL;
		}
	}
	apply(pp, c);
	return 0;
}

static float clamp01(float v)
{
	if (!(v > 0)) /* also NaN */
		return 0;
	return v > 1 ? 1 : v;
}

int pp_push(struct pp *pp, const float *probs, struct pp_detection *out, int max_out)
{
	const int K = pp->K;
	float *slot = pp->ring + (size_t)pp->head * K;
	for (int k = 0; k < K; k++)
		slot[k] = clamp01(probs[k]);
	pp->head = (pp->head + 1) % PP_MAX_SMOOTH;
	uint64_t hop = pp->hops++;
	unsigned avail = pp->hops < PP_MAX_SMOOTH ? (unsigned)pp->hops : PP_MAX_SMOOTH;

	/* moving averages over each label's own window */
	int top = 0;
	for (int k = 0; k < K; k++) {
		unsigned m = pp->lab[k].smooth < avail ? pp->lab[k].smooth : avail;
		unsigned idx = (pp->head + PP_MAX_SMOOTH - 1) % PP_MAX_SMOOTH;
		float s = 0;
		for (unsigned j = 0; j < m; j++) {
			s += pp->ring[(size_t)idx * K + k];
			idx = (idx + PP_MAX_SMOOTH - 1) % PP_MAX_SMOOTH;
		}
		pp->smoothed[k] = s / (float)m;
		if (pp->smoothed[k] > pp->smoothed[top])
			top = k;
	}

	int n = 0;
	int warm = hop >= pp->warmup;
	for (int k = 0; k < K; k++) {
		struct pp_label *l = &pp->lab[k];
		if (!l->keyword)
			continue;
		float s = pp->smoothed[k];
		if (s < l->onset_level)
			l->rise = hop + 1;
		int above = warm && s >= l->threshold && (!pp->require_top || top == k);
		if (!above) {
			l->run = 0;
			l->armed = 1;
			continue;
		}
		if (l->run == 0)
			l->run_max = s;
		l->run++;
		if (s > l->run_max)
			l->run_max = s;
		if (!l->armed || l->run < l->min_hops)
			continue;
		if (l->fired && hop - l->last_fire < l->refractory)
			continue;
		l->armed = 0;
		l->fired = 1;
		l->last_fire = hop;
		if (n >= max_out)
			continue;
		struct pp_detection *d = &out[n++];
		d->label = k;
		d->score = l->run_max;
		d->verify = 0.0f;
		d->hop = hop;
		d->sample = (hop + 1) * (uint64_t)pp->hop;
		/* first hop of the rise, less the moving average's delay and the model's latency */
		double end = (double)(l->rise + 1) * (double)pp->hop -
			     (l->smooth - 1) * 0.5 * (double)pp->hop -
			     pp->latency_ms * 1e-3 * pp->rate;
		if (end < 0)
			end = 0;
		if (end > (double)d->sample)
			end = (double)d->sample;
		double start = end - pp->word_ms * 1e-3 * pp->rate;
		d->end = (uint64_t)llround(end);
		d->start = start > 0 ? (uint64_t)llround(start) : 0;
	}
	return n;
}

const float *pp_smoothed(const struct pp *pp)
{
	return pp->hops ? pp->smoothed : NULL;
}

uint64_t pp_hops(const struct pp *pp)
{
	return pp->hops;
}

unsigned pp_ms_to_hops(const struct pp *pp, float ms)
{
	return ms_to_hops(pp->rate, pp->hop, ms);
}

void pp_softmax(const float *logits, int n, float *probs)
{
	float mx = -INFINITY;
	for (int i = 0; i < n; i++)
		if (logits[i] > mx)
			mx = logits[i];
	if (!isfinite(mx)) {
		for (int i = 0; i < n; i++)
			probs[i] = 1.0f / (float)n;
		return;
	}
	float sum = 0;
	for (int i = 0; i < n; i++) {
		probs[i] = expf(logits[i] - mx);
		sum += probs[i];
	}
	for (int i = 0; i < n; i++)
		probs[i] /= sum;
}
