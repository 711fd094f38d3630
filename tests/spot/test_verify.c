/* test_verify.c - vf_: a candidate is judged on exactly the window [end + after - W, end + after)
 * of its own channel, as a lone clip (s4m_conv_logits on [preroll zeros | window]); only once that
 * window has arrived, or when forced, with zeros for what never came; oldest first, so a later
 * window waits for an earlier candidate; accepted iff its keyword is the top label with a
 * probability >= the threshold in force when it is judged; its decision point moves to where it
 * was judged; a full queue, bad settings and a bidirectional model are refused; reset forgets the
 * history; a window older than the ring is clamped to the oldest one held; NaN samples count as
 * 0. Random models (tests/model/modelgen), with a preroll (the primed engine path) and without. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spot/verify.h"
#include "tests/check.h"
#include "tests/model/modelgen.h"

#define C 2

static struct s4m_model *model(uint64_t seed, long preroll, int bidir)
{
	struct mg_opts o = mg_defaults();
	o.seed = seed;
	o.preroll = preroll;
	o.bidir = bidir;
	struct mg_file f = {0};
	mg_random_model(&f, &o);
	size_t len;
	unsigned char *buf = mg_serialize(&f, &len);
	mg_free(&f);
	char err[256];
	struct s4m_model *m = s4m_load_buffer(buf, len, 1.0, err, sizeof err);
	CHECK(m != NULL, "%s", err);
	free(buf);
	return m;
}

/* Probabilities (K) of the lone clip x[at - W .. at) (zeros outside [0, n)), computed directly. */
static void reference(const struct s4m_model *m, const float *x, uint64_t n, uint64_t at, float *probs)
{
	size_t W = s4m_window(m), pre = s4m_preroll(m);
	int K = s4m_n_labels(m);
	float *buf = calloc(pre + W, sizeof *buf), *lg = malloc((size_t)K * sizeof *lg);
	for (size_t i = 0; i < W; i++) {
		int64_t f = (int64_t)at - (int64_t)W + (int64_t)i;
		buf[pre + i] = f >= 0 && (uint64_t)f < n ? x[f] : 0.0f;
	}
	char err[256];
	struct s4m_conv *cv = s4m_conv_new(m, pre + W, err, sizeof err);
	CHECK(cv != NULL, "%s", err);
	CHECK_EQ(s4m_conv_logits(cv, buf, pre + W, lg), 0);
	float mx = lg[0], sum = 0;
	for (int k = 1; k < K; k++)
		mx = lg[k] > mx ? lg[k] : mx;
	for (int k = 0; k < K; k++)
		sum += probs[k] = expf(lg[k] - mx);
	for (int k = 0; k < K; k++)
		probs[k] /= sum;
	s4m_conv_free(cv);
	free(buf);
	free(lg);
}

static int top(const float *p, int K)
{
	int t = 0;
	for (int k = 1; k < K; k++)
		if (p[k] > p[t])
			t = k;
	return t;
}

static struct pp_detection cand(int label, uint64_t end, uint64_t sample)
{
	struct pp_detection d = {.label = label, .score = 0.5f, .hop = 0, .sample = sample,
				 .start = end > 100 ? end - 100 : 0, .end = end};
	return d;
}

static void test_model(uint64_t seed, long preroll)
{
	struct s4m_model *m = model(seed, preroll, 0);
	if (!m)
		return;
	const size_t W = s4m_window(m), lag = 3000;
	const size_t after = vf_samples(m, 100.0);
	const int K = s4m_n_labels(m);
	char err[256];
	struct vf *v = vf_new(m, C, lag, err, sizeof err);
	CHECK(v != NULL, "vf_new: %s", err);
	if (!v) {
		s4m_free(m);
		return;
	}
	CHECK_EQ(vf_set(v, 0.0f, after), -EINVAL);
	CHECK_EQ(vf_set(v, 1.5f, after), -EINVAL);
	CHECK_EQ(vf_set(v, NAN, after), -EINVAL);
	CHECK_EQ(vf_set(v, 0.5f, vf_samples(m, VF_MAX_AFTER_MS) + 1), -EINVAL);
	CHECK_EQ(vf_set(v, 0.5f, after), 0);

	/* two channels of different noise, interleaved; longer than the ring */
	const size_t L = W + vf_samples(m, VF_MAX_AFTER_MS) + lag;
	const size_t n = L + 3 * W + 777;
	float *x = malloc(C * n * sizeof *x), *ch[C];
	uint64_t s = seed * 11 + 5;
	for (int c = 0; c < C; c++)
		ch[c] = malloc(n * sizeof *ch[c]);
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < C; c++)
			x[i * C + c] = ch[c][i] = (float)(0.3 * mg_normal(&s) * (1 + c + sin((double)i / 300.0)));
	float p[64];
	struct vf_result r[VF_MAX_OUT];

	/* 1. channel 1, window ending at e + after: waits for it, then the lone clip's scores */
	uint64_t e = W + 300, at = e + after;
	reference(m, ch[1], n, at, p);
	int k = top(p, K);
	CHECK_EQ(vf_set(v, p[k] * 0.999f, after), 0);
	struct pp_detection d = cand(k, e, e + 20);
	CHECK_EQ(vf_add(v, 1, &d), 0);
	vf_push(v, x, at - 1);
	CHECK_EQ(vf_poll(v, 0, r, VF_MAX_OUT), 0);
	CHECK_EQ(vf_pending(v), 1);
	vf_push(v, x + (at - 1) * C, 1);
	CHECK_EQ(vf_poll(v, 0, r, VF_MAX_OUT), 1);
	CHECK_EQ(vf_pending(v), 0);
	CHECK_EQ(r[0].channel, 1);
	CHECK_NEAR(r[0].score, p[k], 2e-5);
	CHECK(r[0].accepted, "top label %d with %g >= threshold %g", k, (double)r[0].score,
	      (double)(p[k] * 0.999f));
	CHECK_EQ(r[0].d.sample, at);
	CHECK_EQ(r[0].d.end, e);
	CHECK_EQ(r[0].d.label, k);

	/* 2. the same window: rejected above its probability, and for a label that is not the top
	 *    one even with a tiny threshold; accepted decisions keep a later decision point */
	CHECK_EQ(vf_set(v, fminf(1.0f, p[k] * 1.001f + 1e-6f), after), 0);
	CHECK_EQ(vf_add(v, 1, &d), 0);
	CHECK_EQ(vf_poll(v, 0, r, VF_MAX_OUT), 1);
	CHECK(!r[0].accepted, "%g is below threshold %g", (double)r[0].score, (double)(p[k] * 1.001f));
	CHECK_EQ(vf_set(v, 1e-6f, after), 0);
	struct pp_detection d2 = cand((k + 1) % K, e, e + 20);
	CHECK_EQ(vf_add(v, 1, &d2), 0);
	struct pp_detection d3 = cand(k, e, at + 50); /* decided after its window ended */
	CHECK_EQ(vf_add(v, 1, &d3), 0);
	vf_push(v, x + at * C, 60);
	CHECK_EQ(vf_poll(v, 0, r, VF_MAX_OUT), 2);
	CHECK(!r[0].accepted, "label %d is not the top label %d", (k + 1) % K, k);
	CHECK_NEAR(r[0].score, p[(k + 1) % K], 2e-5);
	CHECK(r[1].accepted, "threshold 1e-6, top label");
	CHECK_EQ(r[1].d.sample, at + 50);
	uint64_t pushed = at + 60;

	/* 3. channel 0, and oldest first: a later window holds back an earlier one behind it */
	reference(m, ch[0], n, pushed + 40 + after, p);
	float pa = p[0];
	reference(m, ch[0], n, pushed + 10, p);
	float pb = p[1];
	struct pp_detection da = cand(0, pushed + 40, pushed), db = cand(1, pushed + 10 - after, pushed);
	CHECK_EQ(vf_add(v, 0, &da), 0);
	CHECK_EQ(vf_add(v, 0, &db), 0);
	vf_push(v, x + pushed * C, 20);
	CHECK_EQ(vf_poll(v, 0, r, VF_MAX_OUT), 0);
	vf_push(v, x + (pushed + 20) * C, 20 + after);
	CHECK_EQ(vf_poll(v, 0, r, VF_MAX_OUT), 2);
	CHECK_EQ(r[0].channel, 0);
	CHECK_EQ(r[0].d.label, 0);
	CHECK_NEAR(r[0].score, pa, 2e-5);
	CHECK_EQ(r[1].d.label, 1);
	CHECK_NEAR(r[1].score, pb, 2e-5);
	pushed += 40 + after;

	/* 4. forced at the end of the input: zeros for the samples that never came */
	at = pushed + 200;
	reference(m, ch[1], pushed, at, p);
	struct pp_detection df = cand(2 % K, at - after, pushed);
	CHECK_EQ(vf_add(v, 1, &df), 0);
	CHECK_EQ(vf_poll(v, 0, r, VF_MAX_OUT), 0);
	CHECK_EQ(vf_poll(v, 1, r, VF_MAX_OUT), 1);
	CHECK_NEAR(r[0].score, p[2 % K], 2e-5);
	CHECK_EQ(r[0].d.sample, pushed);

	/* 5. a window older than the ring holds: the oldest window held instead */
	vf_push(v, x + pushed * C, n - pushed);
	reference(m, ch[0], n, n - L + W, p);
	struct pp_detection dold = cand(3 % K, 10, n);
	CHECK_EQ(vf_add(v, 0, &dold), 0);
	CHECK_EQ(vf_poll(v, 0, r, VF_MAX_OUT), 1);
	CHECK_NEAR(r[0].score, p[3 % K], 2e-5);

	/* 6. a full queue is refused, the caller judges */
	for (int i = 0; i < VF_PENDING; i++)
		CHECK_EQ(vf_add(v, 0, &dold), 0);
	CHECK_EQ(vf_add(v, 0, &dold), -ENOSPC);
	int got = 0, g;
	while ((g = vf_poll(v, 1, r, VF_MAX_OUT)) > 0)
		got += g;
	CHECK_EQ(got, VF_PENDING);

	/* 7. reset: positions from 0 and no history (zeros before the new stream's first sample);
	 *    a NaN sample counts as 0 */
	CHECK_EQ(vf_add(v, 0, &dold), 0);
	vf_reset(v);
	CHECK_EQ(vf_pending(v), 0);
	float keep = x[100 * C];
	ch[0][100] = 0.0f;
	x[100 * C] = NAN;
	vf_push(v, x, 500);
	x[100 * C] = keep;
	reference(m, ch[0], 500, 300 + after, p);
	struct pp_detection dz = cand(0, 300, 400);
	CHECK_EQ(vf_add(v, 0, &dz), 0);
	CHECK_EQ(vf_poll(v, 1, r, VF_MAX_OUT), 1);
	CHECK_NEAR(r[0].score, p[0], 2e-5);

	vf_free(v);
	for (int c = 0; c < C; c++)
		free(ch[c]);
	free(x);
	s4m_free(m);
}

int main(void)
{
	test_model(5, 800);  /* a preroll: the primed lone-clip path */
	test_model(6, 0);    /* none: the whole-input path */
	struct s4m_model *m = model(7, 0, 1);
	if (m) {
		char err[256] = "";
		struct vf *v = vf_new(m, 1, 0, err, sizeof err);
		CHECK(v == NULL && strstr(err, "bidirectional"), "bidirectional model: %s", err);
		vf_free(v);
		s4m_free(m);
	}
	return CHECK_DONE();
}
