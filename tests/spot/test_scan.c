/* test_scan.c - scan_: conv-mode scanning in chunks of any size gives the posteriors of one
 * whole-input s4m_conv_scan (to float rounding) at every hop, whatever the push block sizes;
 * stream mode gives the same posteriors within step-vs-conv tolerance; detections do not depend
 * on the chunking; reset starts over; bad configurations are refused; with verify, exactly the
 * detections that their lone-clip window confirms come out. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spot/postproc.h"
#include "spot/scan.h"
#include "spot/verify.h"
#include "tests/check.h"
#include "tests/model/modelgen.h"

struct rec {
	size_t n, cap;
	uint64_t *at;
	float *p;           /* (cap, K) */
	int K;
	int ndet;
	struct pp_detection det[256];
};

static void on_post(void *u, uint64_t sample, const float *probs)
{
	struct rec *r = u;
	if (r->n == r->cap)
		return;
	r->at[r->n] = sample;
	memcpy(r->p + r->n * (size_t)r->K, probs, (size_t)r->K * sizeof *probs);
	r->n++;
}

static void on_det(void *u, const struct pp_detection *d)
{
	struct rec *r = u;
	if (r->ndet < 256)
		r->det[r->ndet++] = *d;
}

static void rec_init(struct rec *r, size_t cap, int K)
{
	memset(r, 0, sizeof *r);
	r->cap = cap;
	r->K = K;
	r->at = malloc(cap * sizeof *r->at);
	r->p = malloc(cap * (size_t)K * sizeof *r->p);
}

static void rec_free(struct rec *r)
{
	free(r->at);
	free(r->p);
}

/* Scan x with the given chunk and push-block pattern, after scan_prime() if prime; record
 * posteriors and detections. */
static void run_ex(const struct s4m_model *m, enum scan_mode mode, const struct pp_config *pc,
		   size_t chunk, size_t period, const float *x, size_t n, size_t blk, int prime,
		   struct rec *r)
{
	char err[256];
	struct scan_sink sink = {.detection = on_det, .posterior = on_post, .user = r};
	struct scan *sc = scan_new(m, mode, pc, chunk, period, &sink, err, sizeof err);
	CHECK(sc != NULL, "scan_new: %s", err);
	if (!sc)
		return;
	if (prime)
		CHECK(scan_prime(sc, err, sizeof err) == 0, "scan_prime: %s", err);
	/* a first pass of other audio then a reset: the reset must forget it */
	float junk[3000];
	for (int i = 0; i < 3000; i++)
		junk[i] = (float)sin(i * 0.3);
	scan_push(sc, junk, 3000);
	scan_finish(sc);
	scan_reset(sc);
	r->n = 0;
	r->ndet = 0;
	size_t pos = 0;
	while (pos < n) {
		size_t k = n - pos < blk ? n - pos : blk;
		CHECK_EQ(scan_push(sc, x + pos, k), 0);
		pos += k;
		blk = blk * 3 % 997 + 1;
	}
	CHECK_EQ(scan_finish(sc), 0);
	CHECK_EQ(scan_samples(sc), n);
	scan_free(sc);
}

static void run(const struct s4m_model *m, enum scan_mode mode, const struct pp_config *pc,
		size_t chunk, size_t period, const float *x, size_t n, size_t blk, struct rec *r)
{
	run_ex(m, mode, pc, chunk, period, x, n, blk, 0, r);
}

static void test_model(uint64_t seed, int dplr)
{
	struct mg_opts o = mg_defaults();
	o.seed = seed;
	o.dplr = dplr;
	struct mg_file f = {0};
	mg_random_model(&f, &o);
	size_t blen;
	unsigned char *buf = mg_serialize(&f, &blen);
	mg_free(&f);
	char err[256];
	struct s4m_model *m = s4m_load_buffer(buf, blen, 1.0, err, sizeof err);
	CHECK(m != NULL, "%s", err);
	if (!m) {
		free(buf);
		return;
	}
	int K = s4m_n_labels(m);
	size_t mh = s4m_hop(m);
	size_t hop = scan_hop(m, 10.0);
	CHECK(hop % mh == 0 && hop > 0, "hop %zu", hop);

	/* a long input: many receptive fields */
	size_t n = 20 * (s4m_receptive_field(m) + s4m_window(m)) + 37;
	float *x = malloc(n * sizeof *x);
	uint64_t s = seed * 7 + 1;
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(0.4 * mg_normal(&s) * (0.5 + 0.5 * sin((double)i / 900.0)));

	/* reference: one whole-input conv scan, every hop/mh-th step, softmaxed */
	struct s4m_conv *cv = s4m_conv_new(m, n, err, sizeof err);
	CHECK(cv != NULL, "%s", err);
	size_t steps = n / mh;
	float *lg = malloc(steps * (size_t)K * sizeof *lg);
	long got = s4m_conv_scan(cv, x, n, lg, steps);
	CHECK_EQ(got, (long)steps);
	size_t nref = n / hop;
	float *ref = malloc(nref * (size_t)K * sizeof *ref);
	for (size_t i = 0; i < nref; i++)
		pp_softmax(lg + ((i + 1) * (hop / mh) - 1) * (size_t)K, K, ref + i * (size_t)K);

	const char *labels[64];
	struct pp_kw kw[64];
	for (int k = 0; k < K; k++) {
		labels[k] = s4m_label(m, k);
		pp_kw_default(&kw[k]);
		kw[k].threshold = 1.5f / K;   /* low: random models must fire now and then */
		kw[k].refractory_ms = 50;
	}
	struct pp_config pc;
	pp_config_default(&pc, s4m_sample_rate(m), hop, K, labels, kw);
	pc.warmup_ms = 20;
	pc.require_top = 0;

	struct rec a, b, c;
	rec_init(&a, nref + 10, K);
	rec_init(&b, nref + 10, K);
	rec_init(&c, nref + 10, K);
	run(m, SCAN_CONV, &pc, 0, 0, x, n, 4096, &a);               /* default chunk */
	run(m, SCAN_CONV, &pc, 1, 0, x, n, 1, &b);                  /* smallest chunk, odd blocks */
	run(m, SCAN_STREAM, &pc, 0, 0, x, n, 333, &c);
	CHECK_EQ(a.n, nref);
	CHECK_EQ(b.n, nref);
	CHECK_EQ(c.n, nref);
	/* Conv mode forgets lags beyond each block's kernel, the steppers do not: the two agree
	 * only while no kernel has run out, i.e. for the first `klen` samples. */
	size_t klen = SIZE_MAX;
	for (int i = 0; i < s4m_n_blocks(m); i++) {
		struct s4m_block_info bi;
		s4m_block_info(m, i, &bi);
		if (bi.kernel_len * bi.cumpool < klen)
			klen = bi.kernel_len * bi.cumpool;
	}
	double ea = 0, eb = 0, ec = 0, ec_all = 0;
	int pos_ok = 1;
	for (size_t i = 0; i < nref && i < a.n && i < b.n && i < c.n; i++) {
		pos_ok &= a.at[i] == (i + 1) * hop && b.at[i] == a.at[i] && c.at[i] == a.at[i];
		for (int k = 0; k < K; k++) {
			float r = ref[i * (size_t)K + (size_t)k];
			ea = fmax(ea, fabs(a.p[i * (size_t)K + (size_t)k] - r));
			eb = fmax(eb, fabs(b.p[i * (size_t)K + (size_t)k] - r));
			double d = fabs(c.p[i * (size_t)K + (size_t)k] - r);
			ec_all = fmax(ec_all, d);
			if ((i + 1) * hop <= klen)
				ec = fmax(ec, d);
		}
	}
	CHECK(pos_ok, "posterior positions are (i + 1) * hop");
	CHECK(ea < 1e-5, "default chunks vs whole run: %g", ea);
	CHECK(eb < 1e-5, "small chunks vs whole run: %g", eb);
	CHECK(ec < 1e-3, "stream vs conv within the kernel length: %g", ec);
	printf("model %llu %s: %zu hops; |chunked - whole| %.2g / %.2g, |stream - conv| %.2g in "
	       "the first %zu samples (%.2g after: conv kernels are truncated); %d detections\n",
	       (unsigned long long)seed, dplr ? "dplr" : "s4d", nref, ea, eb, ec, klen, ec_all,
	       a.ndet);
	CHECK(a.ndet > 0, "the low threshold should fire on a random model");
	CHECK_EQ(a.ndet, b.ndet);
	int same = a.ndet == b.ndet;
	for (int i = 0; same && i < a.ndet; i++)
		same = a.det[i].label == b.det[i].label && a.det[i].sample == b.det[i].sample;
	CHECK(same, "detections depend on the chunk size");

	/* Second opinion (daemon/verify.h): each detection of the plain run is judged on the lone
	 * clip x[end + after - W, end + after) (zeros after the input); exactly the ones whose label
	 * is the top one there with p >= verify come out, in order, decided no earlier than the
	 * window's end; in both modes and with small chunks and odd push blocks. */
	{
		/* settings that fire often; the plain run is the reference's input */
		struct pp_kw kv[64];
		for (int k = 0; k < K; k++) {
			kv[k] = kw[k];
			kv[k].threshold = 1.0f / K;
			kv[k].refractory_ms = 300;
		}
		struct pp_config pv = pc;
		pv.kw = kv;
		struct rec base;
		rec_init(&base, nref + 10, K);
		run(m, SCAN_CONV, &pv, 0, 0, x, n, 4096, &base);
		pv.verify = 1.0f / K;
		pv.verify_after_ms = 50;
		size_t W = s4m_window(m), after = vf_samples(m, pv.verify_after_ms), vpre = s4m_preroll(m);
		float *win = calloc(vpre + W, sizeof *win), lgv[64], p[64];
		struct s4m_conv *cw = s4m_conv_new(m, vpre + W, err, sizeof err);
		struct rec want;
		rec_init(&want, 1, K);
		for (int i = 0; cw && i < base.ndet; i++) {
			uint64_t at = base.det[i].end + after;
			at = at < W ? W : at;
			for (size_t j = 0; j < W; j++)
				win[vpre + j] = at - W + j < n ? x[at - W + j] : 0.0f;
			s4m_conv_logits(cw, win, vpre + W, lgv);
			pp_softmax(lgv, K, p);
			int t = 0;
			for (int k = 1; k < K; k++)
				t = p[k] > p[t] ? k : t;
			if (t == base.det[i].label && p[t] >= pv.verify) {
				want.det[want.ndet] = base.det[i];
				if (want.det[want.ndet].sample < (at < n ? at : n))
					want.det[want.ndet].sample = at < n ? at : n;
				want.ndet++;
			}
		}
		CHECK(base.ndet < 256, "room for every detection (%d)", base.ndet);
		CHECK(want.ndet > 0 && want.ndet < base.ndet, "the second opinion keeps some detections "
		      "(%d of %d) on this model", want.ndet, base.ndet);
		const enum scan_mode modes[3] = {SCAN_CONV, SCAN_CONV, SCAN_STREAM};
		const size_t chunks[3] = {0, 1, 0}, blks[3] = {4096, 1, 333};
		for (int r = 0; r < 3; r++) {
			struct rec v;
			rec_init(&v, nref + 10, K);
			run(m, modes[r], &pv, chunks[r], 0, x, n, blks[r], &v);
			/* stream mode's own detections may differ from conv mode's after the kernels run out */
			int ok = v.ndet == want.ndet;
			for (int i = 0; ok && i < v.ndet; i++)
				ok = v.det[i].label == want.det[i].label && v.det[i].end == want.det[i].end &&
				       v.det[i].sample == want.det[i].sample;
			if (modes[r] == SCAN_CONV)
				CHECK(ok, "verified detections, chunk %zu: %d, want %d", chunks[r], v.ndet,
				      want.ndet);
			else
				CHECK(v.ndet > 0 && v.ndet < base.ndet, "stream mode, verified: %d", v.ndet);
			rec_free(&v);
		}
		printf("  verify %.2f: %d of %d detections confirmed\n", (double)pv.verify, want.ndet, base.ndet);
		rec_free(&base);
		s4m_conv_free(cw);
		free(win);
		rec_free(&want);
	}

	/* Restarts (model/s4m_relay.c): the posterior after t samples is the conv scan of
	 * [preroll zeros | x[r .. t)], r = max(0, (t / h - 1) h), in both modes. */
	size_t pre = s4m_preroll(m), h = klen > pre + 4 * mh ? (klen - pre) / 2 / mh * mh : 0;
	if (h > 3 * hop)
		h = 3 * hop + mh; /* several restarts in the input, not on the hop grid */
	if (h) {
		size_t period = 2 * h;
		struct rec d, e, g, q;   /* q: conv, primed segments (scan_prime) */
		rec_init(&d, nref + 10, K);
		rec_init(&e, nref + 10, K);
		rec_init(&g, nref + 10, K);
		rec_init(&q, nref + 10, K);
		run(m, SCAN_CONV, &pc, 0, period, x, n, 4096, &d);
		run(m, SCAN_CONV, &pc, 0, period, x, n, 1, &e);
		run(m, SCAN_STREAM, &pc, 0, period, x, n, 333, &g);
		run_ex(m, SCAN_CONV, &pc, 0, period, x, n, 777, 1, &q);
		CHECK_EQ(d.n, nref);
		CHECK_EQ(e.n, nref);
		CHECK_EQ(g.n, nref);
		CHECK_EQ(q.n, nref);
		float *seg = calloc(pre + period, sizeof *seg), *sl = malloc((pre + period) / mh * (size_t)K * sizeof *sl);
		struct s4m_conv *cs = s4m_conv_new(m, pre + period, err, sizeof err);
		double ed = 0, ee = 0, eg = 0, eq = 0;
		int checked = 0, at_ok = 1;
		for (size_t i = 0; cs && i < nref && i < d.n && i < e.n && i < g.n && i < q.n; i++) {
			size_t t = (i + 1) * hop, r = t / h >= 1 ? (t / h - 1) * h : 0;
			at_ok &= d.at[i] == t && e.at[i] == t && g.at[i] == t && q.at[i] == t;
			if (i % 5 && t % h >= hop)
				continue; /* every 5th hop and every hop just after a restart */
			memcpy(seg + pre, x + r, (t - r) * sizeof *seg);
			long ns = s4m_conv_scan(cs, seg, pre + t - r, sl, (pre + period) / mh);
			float p[64];
			pp_softmax(sl + (size_t)(ns - 1) * (size_t)K, K, p);
			for (int k = 0; k < K; k++) {
				ed = fmax(ed, fabs(d.p[i * (size_t)K + (size_t)k] - p[k]));
				ee = fmax(ee, fabs(e.p[i * (size_t)K + (size_t)k] - p[k]));
				eg = fmax(eg, fabs(g.p[i * (size_t)K + (size_t)k] - p[k]));
				eq = fmax(eq, fabs(q.p[i * (size_t)K + (size_t)k] - p[k]));
			}
			checked++;
		}
		CHECK(at_ok, "restarts: posterior positions are (i + 1) * hop");
		CHECK(ed < 1e-5 && ee < 1e-5, "restarts, conv scan vs direct segments: %g / %g", ed, ee);
		CHECK(eq < 1e-5, "restarts, primed conv scan vs direct segments: %g", eq);
		CHECK(eg < 1e-3, "restarts, stream scan vs direct segments: %g", eg);
		printf("  restart period %zu samples: %d hops checked, |conv - direct| %.2g / %.2g, "
		       "primed %.2g, |stream - direct| %.2g; %d detections\n", period, checked, ed, ee,
		       eq, eg, d.ndet);
		CHECK_EQ(d.ndet, e.ndet);
		CHECK_EQ(d.ndet, q.ndet);
		s4m_conv_free(cs);
		free(seg);
		free(sl);
		rec_free(&d);
		rec_free(&e);
		rec_free(&g);
		rec_free(&q);
	}
	CHECK(scan_new(m, SCAN_CONV, &pc, 0, 2 * mh + 1, NULL, err, sizeof err) == NULL,
	      "a restart period that is not a multiple of twice the hop is refused");

	/* refused configurations */
	struct pp_config bad = pc;
	bad.hop = mh + (mh > 1 ? 1 : 0);
	if (mh > 1)
		CHECK(scan_new(m, SCAN_CONV, &bad, 0, 0, NULL, err, sizeof err) == NULL, "hop not a multiple");
	bad = pc;
	bad.n_labels = K + 1;
	CHECK(scan_new(m, SCAN_CONV, &bad, 0, 0, NULL, err, sizeof err) == NULL, "label count");

	rec_free(&a);
	rec_free(&b);
	rec_free(&c);
	free(ref);
	free(lg);
	free(x);
	s4m_conv_free(cv);
	s4m_free(m);
	free(buf);
}

int main(void)
{
	test_model(3, 0);
	test_model(4, 1);
	return CHECK_DONE();
}
