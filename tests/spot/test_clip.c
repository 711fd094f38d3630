/* test_clip.c - clip_: the model input layout (preroll zeros | clip | zero pad; context in place
 * of the preroll), conv and stream logits of the same clip agree, clip_json's keys and values,
 * and the contracts (empty, longer than the window). Random models from tests/model/modelgen. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spot/clip.h"
#include "tests/check.h"
#include "tests/model/modelgen.h"

static struct s4m_model *random_model(uint64_t seed, int dplr, unsigned char **buf)
{
	struct mg_opts o = mg_defaults();
	o.seed = seed;
	o.dplr = dplr;
	struct mg_file f = {0};
	mg_random_model(&f, &o);
	size_t len;
	*buf = mg_serialize(&f, &len);
	mg_free(&f);
	char err[256];
	struct s4m_model *m = s4m_load_buffer(*buf, len, 1.0, err, sizeof err);
	CHECK(m != NULL, "random model: %s", err);
	return m;
}

static void test_layout(const struct s4m_model *m)
{
	size_t w = s4m_window(m), pre = s4m_preroll(m);
	CHECK_EQ(clip_input_len(m, 0), pre + w);
	CHECK_EQ(clip_input_len(m, 123), 123 + w);
	float x[1000], ctx[123], *buf = malloc((pre + w + 123) * sizeof *buf);
	for (int i = 0; i < 1000; i++)
		x[i] = (float)(i + 1);
	for (int i = 0; i < 123; i++)
		ctx[i] = -(float)(i + 1);
	for (size_t i = 0; i < pre + w + 123; i++)
		buf[i] = 7.0f;   /* must all be overwritten */
	long len = clip_build(m, x, 1000, NULL, 0, buf);
	CHECK_EQ(len, (long)(pre + w));
	int ok = 1;
	for (size_t i = 0; i < pre; i++)
		ok &= buf[i] == 0.0f;
	for (size_t i = 0; i < 1000; i++)
		ok &= buf[pre + i] == x[i];
	for (size_t i = pre + 1000; i < pre + w; i++)
		ok &= buf[i] == 0.0f;
	CHECK(ok, "preroll zeros, clip, zero padding");
	len = clip_build(m, x, 1000, ctx, 123, buf);
	CHECK_EQ(len, (long)(123 + w));
	ok = 1;
	for (size_t i = 0; i < 123; i++)
		ok &= buf[i] == ctx[i];
	for (size_t i = 0; i < 1000; i++)
		ok &= buf[123 + i] == x[i];
	for (size_t i = 123 + 1000; i < 123 + w; i++)
		ok &= buf[i] == 0.0f;
	CHECK(ok, "context, clip, zero padding");
	CHECK_EQ(clip_build(m, x, 0, NULL, 0, buf), -EINVAL);
	float *big = calloc(w + 1, sizeof *big);
	CHECK_EQ(clip_build(m, big, w + 1, NULL, 0, buf), -E2BIG);
	free(big);
	free(buf);
}

static void test_modes(const struct s4m_model *m, uint64_t seed)
{
	char err[256];
	size_t w = s4m_window(m), nctx = 3 * s4m_hop(m) + 5;
	int K = s4m_n_labels(m);
	/* one workspace and buffer for both layouts: the longer of preroll and context */
	size_t len = clip_input_len(m, nctx) > clip_input_len(m, 0) ? clip_input_len(m, nctx) :
		clip_input_len(m, 0);
	struct s4m_conv *cv = s4m_conv_new(m, len, err, sizeof err);
	struct s4m_stream *st = s4m_stream_new(m, err, sizeof err);
	CHECK(cv && st, "%s", err);
	if (!cv || !st)
		return;
	float *x = malloc(w * sizeof *x), *ctx = malloc(nctx * sizeof *ctx);
	float *buf = malloc(len * sizeof *buf);
	float *a = malloc((size_t)K * sizeof *a), *b = malloc((size_t)K * sizeof *b);
	uint64_t s = seed;
	for (size_t i = 0; i < w; i++)
		x[i] = (float)(0.3 * mg_normal(&s));
	for (size_t i = 0; i < nctx; i++)
		ctx[i] = (float)(0.3 * mg_normal(&s));
	double worst = 0;
	size_t lens[] = {w, w / 2 + 3, s4m_hop(m)};
	for (int k = 0; k < 3; k++) {
		for (int c = 0; c < 2; c++) {
			CHECK_EQ(clip_logits_conv(m, cv, x, lens[k], c ? ctx : NULL, c ? nctx : 0, buf,
						  a, err, sizeof err), 0);
			CHECK_EQ(clip_logits_stream(m, st, x, lens[k], c ? ctx : NULL, c ? nctx : 0, b,
						    err, sizeof err), 0);
			for (int j = 0; j < K; j++)
				worst = fmax(worst, fabs(a[j] - b[j]));
		}
	}
	CHECK(worst < 1e-3, "conv vs stream logits differ by %g", worst);
	/* a clip shorter than the window equals the same clip zero-padded to the window */
	float *pad = calloc(w, sizeof *pad);
	memcpy(pad, x, (w / 2) * sizeof *x);
	clip_logits_conv(m, cv, x, w / 2, NULL, 0, buf, a, err, sizeof err);
	clip_logits_conv(m, cv, pad, w, NULL, 0, buf, b, err, sizeof err);
	int same = 1;
	for (int j = 0; j < K; j++)
		same &= a[j] == b[j];
	CHECK(same, "padding is zeros after the clip");
	/* the context matters (else the test above proves nothing about it) */
	clip_logits_conv(m, cv, x, w, ctx, nctx, buf, a, err, sizeof err);
	clip_logits_conv(m, cv, x, w, NULL, 0, buf, b, err, sizeof err);
	double d = 0;
	for (int j = 0; j < K; j++)
		d = fmax(d, fabs(a[j] - b[j]));
	CHECK(d > 1e-6, "context changed nothing");
	/* too long */
	float *big = calloc(w + 1, sizeof *big);
	err[0] = 0;
	CHECK_EQ(clip_logits_conv(m, cv, big, w + 1, NULL, 0, buf, a, err, sizeof err), -E2BIG);
	CHECK(strstr(err, "longer than the model window") != NULL, "err: %s", err);
	CHECK_EQ(clip_logits_stream(m, st, big, w + 1, NULL, 0, a, err, sizeof err), -E2BIG);
	free(big);

	/* JSON: keys, argmax, softmax */
	for (int j = 0; j < K; j++)
		a[j] = (float)j * 0.5f - 1.0f;
	a[1] = 5.0f;
	int label = -1;
	json_t *o = clip_json(m, a, 2, &label);
	CHECK(o != NULL, "clip_json");
	CHECK_EQ(label, 1);
	CHECK(!strcmp(json_string_value(json_object_get(o, "label")), s4m_label(m, 1)), "label");
	json_t *sc = json_object_get(o, "scores");
	double sum = 0;
	for (int j = 0; j < K; j++)
		sum += json_real_value(json_object_get(sc, s4m_label(m, j)));
	CHECK(fabs(sum - 1) < 1e-5, "scores sum to %g", sum);
	CHECK_EQ(json_array_size(json_object_get(o, "logits")), K);
	CHECK(fabs(json_real_value(json_array_get(json_object_get(o, "logits"), 1)) - 5.0) < 1e-6,
	      "logit 1");
	CHECK_EQ(json_array_size(json_object_get(o, "top")), 2);
	double p1 = json_real_value(json_object_get(sc, s4m_label(m, 1)));
	CHECK(fabs(json_real_value(json_object_get(o, "score")) - p1) < 1e-9, "score = scores[label]");
	json_decref(o);
	o = clip_json(m, a, 0, NULL);
	CHECK(json_object_get(o, "top") == NULL, "no top without top_k");
	json_decref(o);
	/* clip_classify_json = conv path + clip_json */
	CHECK_EQ(clip_classify_json(m, cv, x, w, 0, &o, err, sizeof err), 0);
	clip_logits_conv(m, cv, x, w, NULL, 0, buf, a, err, sizeof err);
	CHECK(o && fabs(json_real_value(json_array_get(json_object_get(o, "logits"), 0)) - a[0]) < 1e-6,
	      "clip_classify_json logits");
	json_decref(o);

	free(pad);
	free(x);
	free(ctx);
	free(buf);
	free(a);
	free(b);
	s4m_conv_free(cv);
	s4m_stream_free(st);
}

/* clip_loudest: one clip up to the window + 1/64; a longer recording's window holds its
 * loudest part, wherever it is (the start, the middle, the very end) */
static void test_loudest(const struct s4m_model *m)
{
	int rate = s4m_sample_rate(m);
	size_t w = s4m_window(m), n = clip_max_len(m, rate);
	CHECK(n >= (size_t)(CLIP_MAX_S * rate) && n >= w + w / 64, "clip_max_len %zu", n);
	float *x = malloc(n * sizeof *x);
	uint32_t s = 7;
	for (size_t i = 0; i < n; i++) { /* quiet noise */
		s = s * 1664525u + 1013904223u;
		x[i] = 1e-3f * ((float)(s >> 8) / 16777216.0f - 0.5f);
	}
	CHECK_EQ(clip_loudest(m, x, w, rate), 0);
	CHECK_EQ(clip_loudest(m, x, w + w / 64, rate), 0);
	size_t burst = w / 4, at[] = {0, n / 2 - burst / 2, n - burst};
	for (size_t k = 0; k < 3; k++) {
		float *y = malloc(n * sizeof *y);
		memcpy(y, x, n * sizeof *y);
		for (size_t i = at[k]; i < at[k] + burst; i++)
			y[i] += 0.5f;
		size_t a = clip_loudest(m, y, n, rate);
		CHECK(a <= at[k] && a + w >= at[k] + burst && a + w <= n,
		      "burst at %zu..%zu: window %zu..%zu", at[k], at[k] + burst, a, a + w);
		free(y);
	}
	free(x);
}

int main(void)
{
	for (int dplr = 0; dplr < 2; dplr++) {
		unsigned char *buf;
		struct s4m_model *m = random_model(11 + (uint64_t)dplr, dplr, &buf);
		if (!m)
			continue;
		test_layout(m);
		test_modes(m, 5 + (uint64_t)dplr);
		test_loudest(m);
		s4m_free(m);
		free(buf);
	}
	return CHECK_DONE();
}
