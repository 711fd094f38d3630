/* test_s4m.c - the network: convolution mode against a naive double reference, step mode
 * against convolution mode, scanning, chunked scanning and the API contracts.
 *
 * 1. naive: for random small models (both kernel families, every norm/decoder option, pools,
 *    widen, bidirectional), conv-mode logits equal a direct O(L * taps) double implementation of
 *    docs/format.md written here from the generator's weights and the model's kernels.
 * 2. stream == conv: many random models and many random 1-second inputs; step mode after W
 *    samples from a zero state gives the scores of conv mode on those W samples (<= 1e-4).
 * 3. scan: per-step logits equal step mode after every hop; the last row equals conv_logits.
 * 4. chunked scanning with s4m_receptive_field() of pre-context equals a whole-input run.
 * 5. contracts: bidirectional models refuse streaming, rate 2 models agree too, bad lengths.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "tests/check.h"
#include "model/s4m.h"
#include "modelgen.h"

static double max_score_err, max_logit_err, max_naive_err, max_scan_err, max_chunk_err;

static struct s4m_model *load(const struct mg_file *f, double rate)
{
	size_t len;
	unsigned char *buf = mg_serialize(f, &len);
	char err[S4K_ERR_LEN] = "";
	struct s4m_model *m = s4m_load_buffer(buf, len, rate, err, sizeof err);
	CHECK(m != NULL, "load: %s", err);
	free(buf);
	return m;
}

static void softmax(const float *l, double *p, int K)
{
	double mx = l[0], s = 0;
	for (int k = 1; k < K; k++)
		mx = l[k] > mx ? l[k] : mx;
	for (int k = 0; k < K; k++)
		s += (p[k] = exp(l[k] - mx));
	for (int k = 0; k < K; k++)
		p[k] /= s;
}

/* A random model from o, loaded at rate 1; on failure (a CHECK already failed) f is freed. */
static struct s4m_model *make_model(struct mg_file *f, const struct mg_opts *o)
{
	mg_random_model(f, o);
	struct s4m_model *m = load(f, 1.0);
	if (!m)
		mg_free(f);
	return m;
}

/* Kernels of L samples in every block (and C~ attuned to them where it was attuned before). */
static void set_l_max(struct mg_opts *o, long L)
{
	o->l_max = L;
	long cum = 1;
	for (int i = 0; i < o->nb; i++) {
		o->l_kernel[i] = o->l_kernel[i] ? L / cum : 0;
		cum *= o->pools[i];
	}
}

/* Random options: every switch random, sizes small enough for a fast suite. */
static struct mg_opts random_opts(uint64_t *s, int dplr, long W)
{
	struct mg_opts o = mg_defaults();
	o.seed = mg_rand(s);
	o.dplr = dplr;
	o.bilinear = (int)(mg_rand(s) % 2);
	o.softplus = (int)(mg_rand(s) % 2);
	o.real_tf = (int)(mg_rand(s) % 3);
	o.d_state = 2 * (1 + (int)(mg_rand(s) % (dplr ? 8 : 16)));
	o.n_ssm = (int)(mg_rand(s) % 4); /* 0: one row per channel */
	o.nb = 1 + (int)(mg_rand(s) % 4);
	static const int ws[] = {4, 6, 8, 12, 16};
	static const int ps[] = {1, 2, 4};
	long total = 1;
	for (int i = 0; i < o.nb; i++) {
		o.widths[i] = ws[mg_rand(s) % 5];
		o.pools[i] = total < 32 ? ps[mg_rand(s) % 3] : 1;
		total *= o.pools[i];
	}
	o.batch = (int)(mg_rand(s) % 2);
	o.prenorm = (int)(mg_rand(s) % 2);
	o.final_norm = (int)(mg_rand(s) % 2);
	o.dec_last = (int)(mg_rand(s) % 4 == 0);
	o.decoder_window = W;
	o.l_max = W + total * (long)(mg_rand(s) % 3) * 1000;
	o.preroll = 0;
	o.n_labels = 2 + (int)(mg_rand(s) % 10);
	o.enc_gain = 0.5 + 2 * mg_uniform(s);
	long cum = 1;
	for (int i = 0; i < o.nb; i++) {
		/* DPLR: C~ raw (0), attuned to this block's kernel length, or to something else */
		int r = (int)(mg_rand(s) % 3);
		o.l_kernel[i] = r == 0 ? 0 : r == 1 ? o.l_max / cum : 1000 + (long)(mg_rand(s) % 5000);
		cum *= o.pools[i];
	}
	return o;
}

/* Input samples per decoder step of a model made from o. */
static long total_pool(const struct mg_opts *o)
{
	long pool = 1;
	for (int i = 0; i < o->nb; i++)
		pool *= o->pools[i];
	return pool;
}

/* Raise *e to the largest |score difference| and *el to the largest relative logit difference
 * between logits a (tested) and b (reference), K labels. */
static void logit_diff(const float *a, const float *b, size_t K, double *e, double *el)
{
	double pa[64], pb[64];
	softmax(a, pa, (int)K);
	softmax(b, pb, (int)K);
	for (size_t k = 0; k < K; k++) {
		*e = fmax(*e, fabs(pa[k] - pb[k]));
		*el = fmax(*el, fabs(a[k] - b[k]) / (1 + fabs(b[k])));
	}
}

static void random_input(uint64_t *s, float *x, size_t n)
{
	int kind = (int)(mg_rand(s) % 4);
	double a = 0.01 + mg_uniform(s), f0 = 50 + 4000 * mg_uniform(s);
	for (size_t t = 0; t < n; t++) {
		double v;
		switch (kind) {
		case 0: v = a * mg_normal(s); break;                            /* noise */
		case 1: v = a * sin(2 * M_PI * f0 * (double)t / 16000 * (1 + (double)t / n)); break; /* sweep */
		case 2: v = (t > n / 3 && t < n / 2) ? a * mg_normal(s) : 0; break;  /* burst in silence */
		default: v = a * (mg_uniform(s) < 0.001 ? 1 : 0) + 0.01 * a * mg_normal(s); /* clicks */
		}
		x[t] = (float)v;
	}
}

/* ---- naive reference: docs/format.md in double, direct convolution ---- */

static double wv(struct mg_file *f, const char *name, size_t i)
{
	return (double)(float)mg_find(f, name)->v[i]; /* as stored (F32) */
}

static void naive_norm(struct mg_file *f, const struct mg_opts *o, const char *prefix, double *u,
		       int H, size_t L)
{
	char n[64];
	for (size_t t = 0; t < L; t++) {
		double mean = 0, var = 0;
		for (int h = 0; h < H; h++)
			mean += u[h * L + t];
		mean /= H;
		for (int h = 0; h < H; h++)
			var += (u[h * L + t] - mean) * (u[h * L + t] - mean);
		var /= H;
		for (int h = 0; h < H; h++) {
			snprintf(n, sizeof n, "%s.weight", prefix);
			double w = wv(f, n, (size_t)h);
			snprintf(n, sizeof n, "%s.bias", prefix);
			double b = wv(f, n, (size_t)h);
			double *x = &u[h * L + t];
			if (o->batch) {
				snprintf(n, sizeof n, "%s.running_mean", prefix);
				double rm = wv(f, n, (size_t)h);
				snprintf(n, sizeof n, "%s.running_var", prefix);
				double rv = wv(f, n, (size_t)h);
				*x = (*x - rm) / sqrt(rv + 1e-5) * w + b;
			} else {
				*x = (*x - mean) / sqrt(var + 1e-5) * w + b;
			}
		}
	}
}

static void naive_logits(const struct s4m_model *m, struct mg_file *f, const struct mg_opts *o,
			 const float *x, size_t n, double *logits)
{
	char nm[64];
	size_t L = n;
	int H = o->widths[0];
	double *u = malloc(sizeof *u * (size_t)64 * n), *z = malloc(sizeof *z * 64 * n),
	       *y = malloc(sizeof *y * 64 * n);
	for (int h = 0; h < H; h++)
		for (size_t t = 0; t < L; t++)
			u[h * L + t] = wv(f, "encoder.weight", (size_t)h) * x[t] + wv(f, "encoder.bias", (size_t)h);
	for (int i = 0; i < o->nb; i++) {
		struct s4m_block_info bi;
		s4m_block_info(m, i, &bi);
		H = o->widths[i];
		size_t taps = L < bi.kernel_len ? L : bi.kernel_len;
		const double *K = s4m_block_kernel(m, i, 0), *Kb = s4m_block_kernel(m, i, 1);
		memcpy(z, u, sizeof *z * (size_t)H * L);
		snprintf(nm, sizeof nm, "blocks.%d.norm", i);
		if (o->prenorm)
			naive_norm(f, o, nm, z, H, L);
		for (int h = 0; h < H; h++) {
			snprintf(nm, sizeof nm, "blocks.%d.ssm.D", i);
			double D = wv(f, nm, (size_t)h);
			for (size_t t = 0; t < L; t++) {
				double s = D * z[h * L + t];
				for (size_t j = 0; j < taps && j <= t; j++)
					s += K[h * bi.kernel_len + j] * z[h * L + t - j];
				for (size_t j = 0; Kb && j < taps && t + 1 + j < L; j++)
					s += Kb[h * bi.kernel_len + j] * z[h * L + t + 1 + j];
				y[h * L + t] = 0.5 * s * (1 + erf(s / sqrt(2)));
			}
		}
		for (size_t t = 0; t < L; t++) {
			for (int h = 0; h < H; h++) {
				double a = 0, g = 0;
				snprintf(nm, sizeof nm, "blocks.%d.out.bias", i);
				a = wv(f, nm, (size_t)h);
				g = wv(f, nm, (size_t)(H + h));
				snprintf(nm, sizeof nm, "blocks.%d.out.weight", i);
				for (int k = 0; k < H; k++) {
					a += wv(f, nm, (size_t)(h * H + k)) * y[k * L + t];
					g += wv(f, nm, (size_t)((H + h) * H + k)) * y[k * L + t];
				}
				u[h * L + t] += a / (1 + exp(-g));
			}
		}
		snprintf(nm, sizeof nm, "blocks.%d.norm", i);
		if (!o->prenorm)
			naive_norm(f, o, nm, u, H, L);
		size_t p = (size_t)o->pools[i], L2 = L / p;
		for (int h = 0; h < H; h++)
			for (size_t j = 0; j < L2; j++) {
				double s = 0;
				for (size_t k = 0; k < p; k++)
					s += u[h * L + j * p + k];
				z[h * L2 + j] = s / (double)p;
			}
		L = L2;
		memcpy(u, z, sizeof *u * (size_t)H * L);
		if (i + 1 < o->nb && o->widths[i + 1] != H) {
			int Hn = o->widths[i + 1];
			snprintf(nm, sizeof nm, "widen.%d.weight", i);
			for (int k = 0; k < Hn; k++)
				for (size_t t = 0; t < L; t++) {
					char bn[64];
					snprintf(bn, sizeof bn, "widen.%d.bias", i);
					double s = wv(f, bn, (size_t)k);
					for (int h = 0; h < H; h++)
						s += wv(f, nm, (size_t)(k * H + h)) * u[h * L + t];
					z[k * L + t] = s;
				}
			memcpy(u, z, sizeof *u * (size_t)Hn * L);
		}
	}
	H = o->widths[o->nb - 1];
	if (o->final_norm)
		naive_norm(f, o, "final_norm", u, H, L);
	size_t Wf = (size_t)o->decoder_window / s4m_hop(m), w = o->dec_last ? 1 : (L < Wf ? L : Wf);
	for (int k = 0; k < o->n_labels; k++) {
		double s = wv(f, "decoder.bias", (size_t)k);
		for (int h = 0; h < H; h++) {
			double fh = 0;
			for (size_t t = L - w; t < L; t++)
				fh += u[h * L + t];
			s += wv(f, "decoder.weight", (size_t)(k * H + h)) * fh / (double)w;
		}
		logits[k] = s;
	}
	free(u);
	free(z);
	free(y);
}

static void test_naive(void)
{
	uint64_t s = 11;
	for (int it = 0; it < 16; it++) {
		struct mg_opts o = random_opts(&s, it % 2, 256);
		o.l_max = 128 * (1 + it % 3);      /* shorter than the input sometimes: truncation */
		o.l_max -= o.l_max % 64;
		o.decoder_window = 64 * (1 + it % 3);
		o.bidir = it % 4 == 3;
		long cum = 1;
		for (int i = 0; i < o.nb; i++) {
			o.pools[i] = o.pools[i] > 2 ? 2 : o.pools[i];
			o.l_kernel[i] = o.l_kernel[i] ? o.l_max / cum : 0;
			cum *= o.pools[i];
		}
		struct mg_file f = {0};
		struct s4m_model *m = make_model(&f, &o);
		if (!m)
			continue;
		size_t n = 300 + (size_t)(mg_rand(&s) % 200);
		float *x = malloc(n * sizeof *x), lg[16];
		double ref[16];
		random_input(&s, x, n);
		char err[S4K_ERR_LEN];
		struct s4m_conv *cv = s4m_conv_new(m, 600, err, sizeof err);
		CHECK(cv != NULL, "conv_new: %s", err);
		if (cv && n >= s4m_hop(m)) {
			CHECK(s4m_conv_logits(cv, x, n, lg) == 0, "conv_logits");
			naive_logits(m, &f, &o, x, n, ref);
			double e = 0;
			for (int k = 0; k < o.n_labels; k++)
				e = fmax(e, fabs(lg[k] - ref[k]));
			CHECK(e < 2e-4, "model %d (%s%s): conv vs naive logits differ by %g", it,
			      o.dplr ? "dplr" : "s4d", o.bidir ? ", bidirectional" : "", e);
			max_naive_err = fmax(max_naive_err, e);
		}
		s4m_conv_free(cv);
		if (o.bidir) {
			struct s4m_stream *st = s4m_stream_new(m, err, sizeof err);
			CHECK(!st && strstr(err, "bidirectional"), "bidirectional stream: '%s'", err);
			s4m_stream_free(st);
		}
		free(x);
		s4m_free(m);
		mg_free(&f);
	}
	printf("conv vs naive double reference: max |logit diff| %.3g over 16 models\n", max_naive_err);
}

/* Step mode after W samples from zero vs conv mode on those W samples. */
static void compare_stream_conv(const char *what, const struct s4m_model *m, uint64_t *s, int n_inputs)
{
	char err[S4K_ERR_LEN];
	size_t W = s4m_window(m);
	int K = s4m_n_labels(m);
	float *x = malloc(W * sizeof *x), lc[64], ls[64];
	double pc[64], ps[64];
	struct s4m_conv *cv = s4m_conv_new(m, W, err, sizeof err);
	struct s4m_stream *st = s4m_stream_new(m, err, sizeof err);
	CHECK(cv && st, "%s: %s", what, err);
	for (int r = 0; cv && st && r < n_inputs; r++) {
		random_input(s, x, W);
		s4m_stream_reset(st);
		size_t steps = s4m_stream_push(st, x, W / 3);
		steps += s4m_stream_push(st, x + W / 3, W - W / 3);   /* any split */
		CHECK(steps == W / s4m_hop(m), "%s: %zu steps", what, steps);
		CHECK(s4m_stream_samples(st) == W, "samples");
		s4m_stream_logits(st, ls);
		s4m_conv_logits(cv, x, W, lc);
		softmax(lc, pc, K);
		softmax(ls, ps, K);
		float probs[64];
		s4m_stream_scores(st, probs);
		double es = 0, el = 0, sm = 0;
		for (int k = 0; k < K; k++) {
			es = fmax(es, fabs(pc[k] - ps[k]));
			el = fmax(el, fabs(lc[k] - ls[k]));
			sm = fmax(sm, fabs(probs[k] - ps[k]));
		}
		CHECK(es <= 1e-4, "%s input %d: scores differ by %g (logits by %g)", what, r, es, el);
		CHECK(sm < 1e-6, "%s: stream_scores is not softmax(stream_logits)", what);
		max_score_err = fmax(max_score_err, es);
		max_logit_err = fmax(max_logit_err, el);
	}
	s4m_stream_free(st);
	s4m_conv_free(cv);
	free(x);
}

static void test_stream_vs_conv(void)
{
	uint64_t s = 2024;
	int n_models = 0;
	clock_t c0 = clock();
	for (int it = 0; it < 40; it++) {
		struct mg_opts o = random_opts(&s, it % 2, 16000);
		struct mg_file f = {0};
		mg_random_model(&f, &o);
		struct s4m_model *m = load(&f, 1.0);
		if (m) {
			char what[128];
			snprintf(what, sizeof what, "model %d (%s %s, %d blocks, %s%s%s)", it,
				 o.dplr ? "dplr" : "s4d", o.bilinear ? "bilinear" : "zoh", o.nb,
				 o.batch ? "batch" : "layer", o.prenorm ? " prenorm" : " postnorm",
				 o.dec_last ? ", last" : "");
			compare_stream_conv(what, m, &s, 5);
			n_models++;
		}
		s4m_free(m);
		mg_free(&f);
	}
	printf("stream vs conv: %d models x 5 one-second inputs: max |score diff| %.3g, max |logit diff| %.3g (%.1f s CPU)\n",
	       n_models, max_score_err, max_logit_err, (double)(clock() - c0) / CLOCKS_PER_SEC);
}

/* Rate 2: a 16 kHz model fed 8 kHz; sizes halve and both modes still agree. */
static void test_rate(void)
{
	uint64_t s = 99;
	for (int dplr = 0; dplr < 2; dplr++) {
		struct mg_opts o = random_opts(&s, dplr, 16000);
		struct mg_file f = {0};
		mg_random_model(&f, &o);
		struct s4m_model *m = load(&f, 2.0);
		if (m) {
			CHECK(s4m_window(m) == 8000, "rate 2 window %zu", s4m_window(m));
			struct s4m_block_info bi;
			s4m_block_info(m, 0, &bi);
			CHECK(bi.kernel_len == (size_t)o.l_max / 2, "rate 2 kernel length %zu", bi.kernel_len);
			compare_stream_conv(dplr ? "rate 2 dplr" : "rate 2 s4d", m, &s, 2);
		}
		s4m_free(m);
		mg_free(&f);
	}
}

/* Scan rows equal step mode after every hop; last row equals conv_logits. */
static void test_scan(void)
{
	uint64_t s = 5;
	char err[S4K_ERR_LEN];
	for (int it = 0; it < 4; it++) {
		struct mg_opts o = random_opts(&s, it % 2, 1600);
		o.l_max = 4000;
		o.dec_last = it >= 2;
		struct mg_file f = {0};
		struct s4m_model *m = make_model(&f, &o);
		if (!m)
			continue;
		size_t n = 4000, hop = s4m_hop(m), steps = n / hop;
		int K = s4m_n_labels(m);
		float *x = malloc(n * sizeof *x), *out = malloc(steps * (size_t)K * sizeof *out), ls[64], lc[64];
		random_input(&s, x, n);
		struct s4m_conv *cv = s4m_conv_new(m, n, err, sizeof err);
		struct s4m_stream *st = s4m_stream_new(m, err, sizeof err);
		CHECK(s4m_conv_scan(cv, x, n, out, steps - 1) == -EINVAL, "scan must refuse a short buffer");
		long r = s4m_conv_scan(cv, x, n, out, steps);
		CHECK(r == (long)steps, "scan returned %ld, expected %zu", r, steps);
		double e = 0;
		for (size_t j = 0; j < steps; j++) {
			s4m_stream_push(st, x + j * hop, hop);
			s4m_stream_logits(st, ls);
			for (int k = 0; k < K; k++)
				e = fmax(e, fabs(ls[k] - out[j * (size_t)K + k]));
		}
		CHECK(e < 2e-4, "scan vs stream per hop: %g", e);
		max_scan_err = fmax(max_scan_err, e);
		s4m_conv_logits(cv, x, n, lc);
		double e2 = 0;
		for (int k = 0; k < K; k++)
			e2 = fmax(e2, fabs(lc[k] - out[(steps - 1) * (size_t)K + k]));
		CHECK(e2 < 1e-5, "scan last row vs conv_logits: %g", e2);
		CHECK(s4m_conv_logits(cv, x, n + 1, lc) == -EINVAL, "too long input accepted");
		CHECK(s4m_conv_logits(cv, x, hop - 1, lc) == -EINVAL || hop == 1, "too short input accepted");
		s4m_stream_free(st);
		s4m_conv_free(cv);
		free(x);
		free(out);
		s4m_free(m);
		mg_free(&f);
	}
	printf("scan vs stream after every hop: max |logit diff| %.3g\n", max_scan_err);
}

/* Long input scanned in chunks with receptive_field of pre-context == one whole run. */
static void test_chunks(void)
{
	uint64_t s = 77;
	char err[S4K_ERR_LEN];
	for (int it = 0; it < 4; it++) {
		struct mg_opts o = random_opts(&s, it % 2, 1024);
		set_l_max(&o, 1024);
		struct mg_file f = {0};
		struct s4m_model *m = make_model(&f, &o);
		if (!m)
			continue;
		size_t n = 12000, hop = s4m_hop(m), Hl = (size_t)o.widths[o.nb - 1];
		size_t rf = s4m_receptive_field(m), steps = n / hop;
		CHECK(rf % hop == 0 && rf > 0, "receptive field %zu", rf);
		float *x = malloc(n * sizeof *x), *whole = malloc(steps * Hl * sizeof *whole);
		random_input(&s, x, n);
		struct s4m_conv *cv = s4m_conv_new(m, n, err, sizeof err);
		CHECK(s4m_conv_features(cv, x, n, whole, steps) == (long)steps, "whole features");
		s4m_conv_free(cv);
		/* chunks of 1000 kept samples (a multiple of hop) with rf samples before them */
		size_t keep = 1000 / hop * hop, clen = keep + rf;
		float *ch = malloc(clen * Hl / hop * sizeof *ch + Hl * sizeof *ch);
		cv = s4m_conv_new(m, clen, err, sizeof err);
		double e = 0;
		for (size_t k0 = 0; k0 < n; k0 += keep) {
			size_t c0 = k0 > rf ? k0 - rf : 0, c1 = k0 + keep < n ? k0 + keep : n;
			c1 = c1 / hop * hop;
			if (c1 <= k0)
				break;
			long r = s4m_conv_features(cv, x + c0, c1 - c0, ch, clen / hop);
			CHECK(r == (long)((c1 - c0) / hop), "chunk features");
			for (size_t j = k0 / hop; j < c1 / hop; j++)
				for (size_t h = 0; h < Hl; h++)
					e = fmax(e, fabs(ch[(j - c0 / hop) * Hl + h] - whole[j * Hl + h]));
		}
		CHECK(e < 1e-4, "chunked features differ from the whole run by %g", e);
		max_chunk_err = fmax(max_chunk_err, e);
		s4m_conv_free(cv);
		free(x);
		free(whole);
		free(ch);
		s4m_free(m);
		mg_free(&f);
	}
	printf("chunked scanning (pre-context = receptive field) vs whole run: max |feature diff| %.3g\n",
	       max_chunk_err);
}

static void test_contracts(void)
{
	struct mg_opts o = mg_defaults();
	struct mg_file f = {0};
	mg_random_model(&f, &o);
	struct s4m_model *m = load(&f, 1.0);
	char err[S4K_ERR_LEN];
	if (!m) {
		mg_free(&f);
		return;
	}
	CHECK(s4m_conv_new(m, 4, err, sizeof err) == NULL && strstr(err, "outside"), "tiny workspace: %s", err);
	struct s4m_conv *cv = s4m_conv_new(m, 1600, err, sizeof err);
	CHECK(s4m_conv_max_len(cv) == 1600, "max_len");
	struct s4m_block_info bi;
	CHECK(s4m_block_info(m, 3, &bi) == -EINVAL, "block 3 of 3");
	CHECK(s4m_block_info(m, 1, &bi) == 0 && bi.width == 12 && bi.cumpool == 4 && bi.kernel_len == 600 &&
	      bi.pool == 2 && bi.out_width == 12, "block 1 info");
	CHECK(s4m_block_info(m, 0, &bi) == 0 && bi.out_width == 12, "widen 8 -> 12");
	CHECK(s4m_block_kernel(m, 0, 1) == NULL, "no backward kernel");
	CHECK(isfinite(s4m_min_margin(m)) && s4m_min_margin(m) > 0 && s4m_min_margin(m) < 1, "margin %g",
	      s4m_min_margin(m));
	CHECK(s4m_flops_step(m) > 0 && s4m_flops_conv(m, 1600) > 0, "flops");
	/* a NaN sample is taken as 0 in step mode */
	struct s4m_stream *st = s4m_stream_new(m, err, sizeof err), *st0 = s4m_stream_new(m, err, sizeof err);
	float xs[64] = {0.1f, 0.2f}, l1[8] = {0}, l2[8] = {0};
	s4m_stream_push(st0, xs, 64);
	xs[5] = NAN;
	s4m_stream_push(st, xs, 64);
	s4m_stream_logits(st, l1);
	s4m_stream_logits(st0, l2);
	CHECK(!memcmp(l1, l2, sizeof l1) && isfinite(l1[0]), "NaN sample not taken as 0");
	s4m_stream_free(st);
	s4m_stream_free(st0);
	float *x = calloc(1600, sizeof *x), *o2 = malloc(1600 * 12 * sizeof *o2);
	long L = s4m_conv_block_output(cv, x, 1600, 0, o2, 1600 * 12);
	CHECK(L == 400, "block 0 output steps %ld", L);
	CHECK(s4m_conv_block_output(cv, x, 1600, 0, o2, 10) == -EINVAL, "small capacity accepted");
	CHECK(s4m_conv_block_output(cv, x, 1600, 3, o2, 1600 * 12) == -EINVAL, "bad block accepted");
	free(x);
	free(o2);
	s4m_conv_free(cv);
	s4m_free(m);
	/* finite weights that overflow (a flipped exponent byte): refused at load, not answered */
	struct mg_tensor *dw = mg_find(&f, "decoder.weight");
	for (size_t i = 0; dw && i < dw->numel; i++)
		dw->v[i] = 3e38;
	size_t blen;
	unsigned char *buf = mg_serialize(&f, &blen);
	m = s4m_load_buffer(buf, blen, 1.0, err, sizeof err);
	CHECK(!m && strstr(err, "non-finite scores on a test signal"), "overflowing weights: %s", m ? "loaded" : err);
	s4m_free(m);
	free(buf);
	mg_free(&f);
}

/* Workspaces made and used on several threads at once (shared spectra cache, FFTW planner
 * lock) give bit-identical logits to a lone workspace. */
struct thr {
	const struct s4m_model *m;
	const float *x;
	size_t n;
	float lg[64];
	int ok;
};

static void *thr_run(void *arg)
{
	struct thr *t = arg;
	char err[S4K_ERR_LEN];
	struct s4m_conv *cv = s4m_conv_new(t->m, t->n, err, sizeof err);
	t->ok = cv && s4m_conv_logits(cv, t->x, t->n, t->lg) == 0;
	s4m_conv_free(cv);
	return NULL;
}

static void test_threads(void)
{
	uint64_t s = 31;
	for (int dplr = 0; dplr < 2; dplr++) {
		struct mg_opts o = random_opts(&s, dplr, 4000);
		struct mg_file f = {0};
		struct s4m_model *m = make_model(&f, &o);
		if (!m)
			continue;
		size_t n = 4000;
		float *x = malloc(n * sizeof *x), ref[64];
		random_input(&s, x, n);
		struct thr t[4];
		pthread_t tid[4];
		for (int i = 0; i < 4; i++) {
			t[i] = (struct thr){.m = m, .x = x, .n = n};
			pthread_create(&tid[i], NULL, thr_run, &t[i]);
		}
		for (int i = 0; i < 4; i++)
			pthread_join(tid[i], NULL);
		char err[S4K_ERR_LEN];
		struct s4m_conv *cv = s4m_conv_new(m, n, err, sizeof err);
		s4m_conv_logits(cv, x, n, ref);
		for (int i = 0; i < 4; i++)
			CHECK(t[i].ok && !memcmp(t[i].lg, ref, (size_t)s4m_n_labels(m) * sizeof *ref),
			      "thread %d: logits differ from a lone workspace", i);
		s4m_conv_free(cv);
		free(x);
		s4m_free(m);
		mg_free(&f);
	}
}

/* The relay (two steppers restarted in turn) against its documented conv-mode equivalent at
 * every hop, period 0 against a plain stream, and s4m_stream_copy. */
static void test_relay(void)
{
	uint64_t s = 77;
	double max_err = 0;
	int checked = 0;
	for (int it = 0; it < 6; it++) {
		struct mg_opts o = random_opts(&s, it % 2, 1600);
		/* kernels longer than any input below, so that conv mode forgets no lag the steppers keep */
		set_l_max(&o, 8192);
		long pool = total_pool(&o);
		o.preroll = (1000 + 37 * it) / pool * pool; /* a lone clip's zeros: whole decoder steps */
		struct mg_file f = {0};
		struct s4m_model *m = make_model(&f, &o);
		if (!m)
			continue;
		char err[S4K_ERR_LEN];
		size_t hop = s4m_hop(m), K = (size_t)s4m_n_labels(m);
		size_t h = (1200 + hop - 1) / hop * hop, period = 2 * h, pre = s4m_preroll(m);
		CHECK(pre > 0, "model %d has a preroll", it);
		size_t n = 4 * period + 3 * hop;
		float *x = malloc(n * sizeof *x), *buf = malloc((pre + period + hop) * sizeof *buf);
		random_input(&s, x, n);
		struct s4m_relay *r = s4m_relay_new(m, period, err, sizeof err);
		struct s4m_relay *r0 = s4m_relay_new(m, 0, err, sizeof err);
		struct s4m_stream *st = s4m_stream_new(m, err, sizeof err);
		struct s4m_conv *cv = s4m_conv_new(m, pre + period + hop, err, sizeof err);
		CHECK(r && r0 && st && cv && s4m_relay_period(r) == period, "relay setup: %s", err);
		if (!r || !r0 || !st || !cv)
			goto next;
		int plain_same = 1;
		for (size_t t = hop; t <= n; t += hop) {
			size_t a = (size_t)(mg_rand(&s) % hop); /* any split of the hop */
			s4m_relay_push(r, x + t - hop, a);
			s4m_relay_push(r, x + t - hop + a, hop - a);
			s4m_relay_push(r0, x + t - hop, hop);
			s4m_stream_push(st, x + t - hop, hop);
			float lr[64], l0[64], ls[64], lc[64];
			s4m_relay_logits(r0, l0);
			s4m_stream_logits(st, ls);
			plain_same &= !memcmp(l0, ls, K * sizeof *l0);
			/* conv check: about 300 hops per model, and every hop next to a restart */
			size_t stride = n / hop / 300 + 1;
			if ((t / hop) % stride && t % h > hop && t % h + hop < h)
				continue;
			size_t from = t / h >= 1 ? (t / h - 1) * h : 0;
			memset(buf, 0, pre * sizeof *buf);
			memcpy(buf + pre, x + from, (t - from) * sizeof *buf);
			s4m_conv_logits(cv, buf, pre + t - from, lc);
			s4m_relay_logits(r, lr);
			double pc[64], pr[64], e = 0;
			softmax(lc, pc, (int)K);
			softmax(lr, pr, (int)K);
			for (size_t k = 0; k < K; k++)
				e = fmax(e, fabs(pc[k] - pr[k]));
			CHECK(e <= 1e-4, "model %d, relay after %zu samples (restart at %zu): scores differ from conv by %g",
			      it, t, from, e);
			max_err = fmax(max_err, e);
			checked++;
		}
		CHECK(plain_same, "model %d: relay with period 0 differs from a plain stream", it);
		CHECK(s4m_relay_samples(r) == n, "relay samples %llu", (unsigned long long)s4m_relay_samples(r));

		/* a copy continues exactly as the original */
		struct s4m_stream *c = s4m_stream_new(m, err, sizeof err);
		if (c) {
			s4m_stream_reset(st);
			s4m_stream_push(st, x, n / 2 + 5);
			s4m_stream_copy(c, st);
			s4m_stream_push(st, x + n / 2, n / 2);
			s4m_stream_push(c, x + n / 2, n / 2);
			float a1[64], a2[64];
			s4m_stream_logits(st, a1);
			s4m_stream_logits(c, a2);
			CHECK(!memcmp(a1, a2, K * sizeof *a1) && s4m_stream_samples(c) == s4m_stream_samples(st),
			      "model %d: a copied stream diverges", it);
			s4m_stream_free(c);
		}
		/* reset starts over: the same pushes give the same scores */
		float b1[64], b2[64];
		s4m_relay_logits(r, b1);
		s4m_relay_reset(r);
		CHECK(s4m_relay_samples(r) == 0, "relay reset");
		s4m_relay_push(r, x, n);
		s4m_relay_logits(r, b2);
		CHECK(!memcmp(b1, b2, K * sizeof *b1), "model %d: relay after reset differs", it);
	next:
		s4m_relay_free(r);
		s4m_relay_free(r0);
		s4m_stream_free(st);
		s4m_conv_free(cv);
		free(x);
		free(buf);
		if (it == 0) {
			char e2[S4K_ERR_LEN] = "";
			CHECK(s4m_relay_new(m, hop, e2, sizeof e2) == NULL && strstr(e2, "restart period"),
			      "a period of one hop is refused: '%s'", e2);
			CHECK(hop == 1 || s4m_relay_new(m, 2 * hop + 2, e2, sizeof e2) == NULL,
			      "a period that is not twice a multiple of the hop is refused");
		}
		s4m_free(m);
		mg_free(&f);
	}
	printf("relay vs conv: %d hops checked, max |score diff| %.3g\n", checked, max_err);
}

/* Primed lone clips: s4m_conv_logits_primed(window) equals s4m_conv_logits([preroll zeros |
 * window]) on random causal models (S4D and DPLR, kernels shorter and longer than the input,
 * pre- and post-norm), and is off where it cannot be exact (bidirectional, a
 * workspace shorter than preroll + window). */
static void test_primed(void)
{
	uint64_t s = 4242;
	double max_err = 0;
	int checked = 0, primed_models = 0;
	for (int it = 0; it < 12; it++) {
		struct mg_opts o = random_opts(&s, it % 2, 1600);
		o.bidir = it % 6 == 5;
		if (it % 3 == 1)
			set_l_max(&o, 8192);   /* kernels longer than the input */
		long pool = total_pool(&o);
		o.preroll = (800 + 53 * it) / pool * pool;   /* the loader wants whole decoder steps */
		struct mg_file f = {0};
		struct s4m_model *m = make_model(&f, &o);
		if (!m)
			continue;
		char err[S4K_ERR_LEN];
		size_t pre = s4m_preroll(m), w = s4m_window(m), K = (size_t)s4m_n_labels(m);
		int expect = !o.bidir;
		struct s4m_conv *cv = s4m_conv_new(m, pre + w, err, sizeof err);
		struct s4m_conv *small = s4m_conv_new(m, pre + w - 1, err, sizeof err);
		float *buf = calloc(pre + w, sizeof *buf);
		CHECK(cv && small && buf, "model %d: workspaces: %s", it, err);
		CHECK(!cv || s4m_conv_primed(cv) == 0, "model %d: not primed until asked", it);
		CHECK((!cv || s4m_conv_prime(cv, err, sizeof err) == 0) &&
		      (!small || s4m_conv_prime(small, err, sizeof err) == 0), "model %d: prime: %s", it, err);
		if (!cv || !small || !buf)
			goto next;
		CHECK((s4m_conv_primed(cv) == w) == expect, "model %d (%s, preroll %zu, hop %zu): primed %zu, "
		      "expected %s", it, o.bidir ? "bidirectional" : "causal", pre, s4m_hop(m),
		      s4m_conv_primed(cv), expect ? "the window" : "0");
		CHECK(s4m_conv_primed(small) == 0, "model %d: a workspace shorter than preroll + window "
		      "is not primed", it);
		if (!s4m_conv_primed(cv))
			goto next;
		primed_models++;
		CHECK(s4m_conv_logits_primed(cv, buf + pre, w - 1, (float[64]){0}) == -EINVAL,
		      "model %d: a primed call of the wrong length is refused", it);
		for (int r = 0; r < 6; r++) {
			size_t n = r == 0 ? w : w / (size_t)(2 + r) + (size_t)r;   /* clip, zero-padded */
			memset(buf, 0, (pre + w) * sizeof *buf);
			random_input(&s, buf + pre, n);
			float lp[64], lc[64];
			CHECK(s4m_conv_logits_primed(cv, buf + pre, w, lp) == 0, "primed call");
			CHECK(s4m_conv_logits(cv, buf, pre + w, lc) == 0, "plain call");
			double e = 0, el = 0;
			logit_diff(lp, lc, K, &e, &el);
			CHECK(e <= 1e-5 && el <= 1e-4, "model %d clip %d: primed differs from the whole "
			      "input: scores %g, logits %g (relative)", it, r, e, el);
			max_err = fmax(max_err, e);
			checked++;
		}
	next:
		s4m_conv_free(cv);
		s4m_conv_free(small);
		free(buf);
		s4m_free(m);
		mg_free(&f);
	}
	CHECK(primed_models >= 4, "only %d primed models", primed_models);
	printf("primed vs whole input: %d clips on %d models, max |score diff| %.3g\n", checked,
	       primed_models, max_err);
}

/* s4m_conv_scan_primed() on a window of W samples gives the per-step logits that s4m_conv_scan()
 * gives for the same steps of [preroll zeros | window]: windows longer and shorter than the
 * decoder's, prerolls shorter and longer than it (the decoder means reach into the preroll's
 * captured tail, all of it or its last Wf steps), pool and last-step decoders. */
static void test_primed_scan(void)
{
	uint64_t s = 5150;
	double max_err = 0;
	int models = 0, long_preroll = 0;
	for (int it = 0; it < 12; it++) {
		struct mg_opts o = random_opts(&s, it % 2, 1600);
		o.dec_last = it % 4 == 3;
		long pool = total_pool(&o);
		o.preroll = (it % 3 == 0 ? 2600 + 37 * it : 300 + 53 * it) / pool * pool;
		struct mg_file f = {0};
		struct s4m_model *m = make_model(&f, &o);
		if (!m)
			continue;
		char err[S4K_ERR_LEN];
		size_t pre = s4m_preroll(m), hop = s4m_hop(m), K = (size_t)s4m_n_labels(m);
		size_t W = it % 2 ? 3200 / hop * hop : 700 / hop * hop;   /* 2 s-like and short */
		struct s4m_conv *cv = s4m_conv_new(m, pre + W, err, sizeof err);
		size_t steps = (pre + W) / hop;
		float *buf = calloc(pre + W, sizeof *buf), *whole = malloc(steps * K * sizeof *whole),
		      *part = malloc(steps * K * sizeof *part);
		CHECK(cv && buf && whole && part, "model %d: workspace: %s", it, err);
		if (!cv || !buf || !whole || !part)
			goto next;
		CHECK(s4m_conv_scan_primed(cv, buf + pre, W, part, steps) == -EINVAL,
		      "model %d: a scan before priming is refused", it);
		CHECK(s4m_conv_prime_window(cv, W, err, sizeof err) == 0 && s4m_conv_primed(cv) == W,
		      "model %d: primed for %zu samples: %zu (%s)", it, W, s4m_conv_primed(cv), err);
		CHECK(s4m_conv_scan_primed(cv, buf + pre, W - hop, part, steps) == -EINVAL,
		      "model %d: a primed scan of the wrong length is refused", it);
		if (W < s4m_window(m) && !o.dec_last)
			CHECK(s4m_conv_logits_primed(cv, buf + pre, W, part) == -EINVAL, "model %d: "
			      "a lone-clip call on a window shorter than the decoder's is refused", it);
		models++;
		long_preroll += pre / hop >= s4m_window(m) / hop;
		for (int r = 0; r < 3; r++) {
			memset(buf, 0, (pre + W) * sizeof *buf);
			random_input(&s, buf + pre, W - (size_t)r * hop);
			long nw = s4m_conv_scan(cv, buf, pre + W, whole, steps);
			long np = s4m_conv_scan_primed(cv, buf + pre, W, part, steps);
			CHECK(nw == (long)steps && np == (long)(W / hop), "model %d: %ld and %ld steps", it,
			      nw, np);
			if (nw != (long)steps || np != (long)(W / hop))
				continue;
			double e = 0, el = 0;
			for (long j = 0; j < np; j++)
				logit_diff(part + (size_t)j * K, whole + (size_t)(j + (long)(pre / hop)) * K,
					   K, &e, &el);
			CHECK(e <= 1e-5 && el <= 1e-4, "model %d (preroll %zu, window %zu, hop %zu, %s) "
			      "input %d: primed scan differs: scores %g, logits %g (relative)", it, pre, W,
			      hop, o.dec_last ? "last-step decoder" : "pool decoder", r, e, el);
			max_err = fmax(max_err, e);
		}
	next:
		s4m_conv_free(cv);
		free(buf);
		free(whole);
		free(part);
		s4m_free(m);
		mg_free(&f);
	}
	CHECK(models >= 8 && long_preroll >= 2, "only %d primed models (%d with a preroll of at "
	      "least the decoder window)", models, long_preroll);
	printf("primed scan vs whole input: %d models, max |score diff| %.3g\n", models, max_err);
}

/* Carried scans (s4m_conv_carry_*) give the per-step logits of one whole-input s4m_conv_scan():
 * chunks of varying sizes, shorter and longer than the kernels, both decoders, pre- and
 * post-norm; a reset starts over; bidirectional models and short workspaces are refused. */
static void test_carried(void)
{
	uint64_t s = 9090;
	double max_err = 0;
	int models = 0;
	char err[S4K_ERR_LEN];
	for (int it = 0; it < 10; it++) {
		struct mg_opts o = random_opts(&s, it % 2, 1024);
		o.dec_last = it % 5 == 4;
		o.bidir = it == 7;
		if (it % 3 == 1)
			set_l_max(&o, 3000);   /* kernels longer than some chunks */
		struct mg_file f = {0};
		struct s4m_model *m = make_model(&f, &o);
		if (!m)
			continue;
		size_t n = 14000, hop = s4m_hop(m), K = (size_t)s4m_n_labels(m), steps = n / hop;
		size_t cmin = s4m_conv_carry_min(m), C = cmin + 2 * hop * (size_t)(it % 4);
		float *x = malloc(n * sizeof *x), *whole = malloc(steps * K * sizeof *whole),
		      *part = malloc(steps * K * sizeof *part);
		struct s4m_conv *cw = s4m_conv_new(m, n, err, sizeof err);
		struct s4m_conv *cv = s4m_conv_new(m, C, err, sizeof err);
		struct s4m_conv *cs = cmin > hop ? s4m_conv_new(m, cmin - hop, err, sizeof err) : NULL;
		CHECK(x && whole && part && cw && cv, "model %d: buffers: %s", it, err);
		if (!x || !whole || !part || !cw || !cv)
			goto next;
		if (o.bidir) {
			CHECK(s4m_conv_carry_init(cv, err, sizeof err) == -EINVAL,
			      "model %d: a bidirectional model is refused", it);
			goto next;
		}
		CHECK(s4m_conv_carry_scan(cv, x, hop, part, steps) == -EINVAL, "model %d: a carried "
		      "scan before carry_init is refused", it);
		CHECK(!cs || s4m_conv_carry_init(cs, err, sizeof err) == -EINVAL, "model %d: a "
		      "workspace shorter than the longest kernel (%zu) is refused", it, cmin);
		CHECK(s4m_conv_carry_init(cv, err, sizeof err) == 0, "model %d: carry_init: %s", it, err);
		CHECK(s4m_conv_carry_scan(cv, x, hop + 1, part, steps) == -EINVAL, "model %d: a chunk "
		      "that is not whole steps is refused", it);
		random_input(&s, x, n);
		CHECK(s4m_conv_scan(cw, x, n, whole, steps) == (long)steps, "model %d: whole scan", it);
		models++;
		for (int pass = 0; pass < 2; pass++) {
			/* pass 0: junk first, then a reset; chunk sizes from one hop to C */
			if (pass == 0) {
				CHECK(s4m_conv_carry_scan(cv, x + 5000, 4 * hop, part, steps) == 4,
				      "model %d: junk chunk", it);
				s4m_conv_carry_reset(cv);
			}
			double e = 0, el = 0;
			size_t pos = 0, j = 0, sz = hop;
			while (pos + hop <= n) {
				size_t c = (sz < C ? sz : C) / hop * hop;
				if (c > n - pos)
					c = (n - pos) / hop * hop;
				long r = s4m_conv_carry_scan(cv, x + pos, c, part + j * K, steps - j);
				CHECK(r == (long)(c / hop), "model %d: chunk of %zu: %ld steps", it, c, r);
				if (r != (long)(c / hop))
					break;
				pos += c;
				j += (size_t)r;
				sz = sz * 7 % (C + 1) + hop;
			}
			for (size_t t = 0; t < j; t++)
				logit_diff(part + t * K, whole + t * K, K, &e, &el);
			CHECK(j == steps && e <= 1e-5 && el <= 1e-4, "model %d (%s decoder, %s, kernels "
			      "%zu samples, chunks up to %zu) pass %d: %zu of %zu steps, scores differ by "
			      "%g, logits %g (relative)", it, o.dec_last ? "last-step" : "pool",
			      o.prenorm ? "prenorm" : "postnorm", cmin, C, pass, j, steps, e, el);
			max_err = fmax(max_err, e);
			s4m_conv_carry_reset(cv);
		}
	next:
		s4m_conv_free(cw);
		s4m_conv_free(cv);
		s4m_conv_free(cs);
		free(x);
		free(whole);
		free(part);
		s4m_free(m);
		mg_free(&f);
	}
	CHECK(models >= 6, "only %d models", models);
	printf("carried scan vs whole input: %d models, max |score diff| %.3g\n", models, max_err);
}

int main(void)
{
	test_primed();
	test_primed_scan();
	test_carried();
	test_threads();
	test_contracts();
	test_naive();
	test_scan();
	test_chunks();
	test_rate();
	test_stream_vs_conv();
	test_relay();
	return CHECK_DONE();
}
