/* test_postproc.c - detection post-processing: thresholds, smoothing, minimum run, refractory
 * period, warm-up, re-arming, non-keyword labels, top-label rule, reconfigure, no allocation.
 *
 * Synthetic posterior sequences at 16 kHz with a 160-sample hop (10 ms): every duration in ms
 * below is a whole number of hops, so the expected hop indices are exact.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "spot/postproc.h"

/* Count allocations made by anyone, to prove pp_push() makes none (not under ASan, which
 * owns malloc itself). */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 1
#endif
#if COUNT_ALLOCS
static long n_allocs;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void *malloc(size_t n)
{
	n_allocs++;
	return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
	n_allocs++;
	return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
	n_allocs++;
	return __libc_realloc(p, n);
}
#else
static long n_allocs; /* stays 0: the count is only checked without ASan */
#endif

enum { K = 5, YES = 0, NO = 1, SIL = 2, UNK = 3, GO = 4 };
static const char *const labels[K] = {"yes", "no", "_silence_", "_unknown_", "go"};

static struct pp_kw kw[K];
static struct pp_config cfg;

static void setup(void)
{
	for (int k = 0; k < K; k++)
		pp_kw_default(&kw[k]);
	pp_config_default(&cfg, 16000, 160, K, labels, kw);
	for (int k = 0; k < K; k++) {
		kw[k].threshold = 0.5f;
		kw[k].smooth_ms = 10;      /* 1 hop: no smoothing unless a test asks */
		kw[k].min_ms = 30;         /* 3 hops */
		kw[k].refractory_ms = 500; /* 50 hops */
	}
	cfg.warmup_ms = 200;               /* 20 hops */
	cfg.latency_ms = 0;
	cfg.onset = 0.5f;
	cfg.word_ms = 500;
}

/* Posterior with `p` on label k and the rest spread over _silence_. */
static void vec(float *v, int k, float p)
{
	for (int i = 0; i < K; i++)
		v[i] = 0;
	v[SIL] = 1 - p;
	v[k] += p;
}

/* Push hops [from, to) of label k at level p; collect detections. Returns the count. */
static int run(struct pp *pp, int k, float p, int nhops, struct pp_detection *det, int maxdet, int *ndet)
{
	float v[K];
	struct pp_detection d[PP_MAX_OUT];
	int total = 0;
	for (int i = 0; i < nhops; i++) {
		vec(v, k, p);
		int n = pp_push(pp, v, d, PP_MAX_OUT);
		for (int j = 0; j < n; j++) {
			if (*ndet < maxdet)
				det[(*ndet)++] = d[j];
			total++;
		}
	}
	return total;
}

static void test_basic(void)
{
	char err[256];
	setup();
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	CHECK(pp != NULL, "%s", err);
	struct pp_detection det[16];
	int nd = 0;
	run(pp, SIL, 1, 80, det, 16, &nd);          /* hops 0..79: silence */
	run(pp, YES, 0.9f, 30, det, 16, &nd);       /* hops 80..109: yes */
	run(pp, SIL, 1, 40, det, 16, &nd);
	CHECK_EQ(nd, 1);
	CHECK_EQ(det[0].label, YES);
	CHECK_EQ(det[0].hop, 82);                    /* third consecutive hop above */
	CHECK_EQ(det[0].sample, 83 * 160);
	CHECK_NEAR(det[0].score, 0.9, 1e-6);
	CHECK_EQ(det[0].end, 81 * 160);              /* first hop of the run, M = 1: no delay */
	CHECK_EQ(det[0].start, 81 * 160 - 8000);     /* word_ms = 500 */
	CHECK_EQ(pp_hops(pp), 150);
	pp_free(pp);

	/* the model's latency moves the end estimate earlier, never below 0 */
	cfg.latency_ms = 100;
	pp = pp_new(&cfg, err, sizeof err);
	nd = 0;
	run(pp, SIL, 1, 80, det, 16, &nd);
	run(pp, YES, 0.9f, 30, det, 16, &nd);
	CHECK_EQ(nd, 1);
	CHECK_EQ(det[0].end, 81 * 160 - 1600);
	pp_free(pp);
}

/* A slow rise: the end is where the score left the floor, not where it crossed the threshold. */
static void test_onset(void)
{
	char err[256];
	static const float ramp[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 0.9f, 0.9f};
	const float onsets[] = {1.0f, 0.5f, 0.1f};
	const int rise_hop[] = {84, 82, 80}; /* first hop >= onset x 0.5: 0.5, 0.3, 0.1 (80 + index) */
	for (int o = 0; o < 3; o++) {
		setup();
		cfg.onset = onsets[o];
		struct pp *pp = pp_new(&cfg, err, sizeof err);
		CHECK(pp != NULL, "%s", err);
		struct pp_detection det[4];
		int nd = 0;
		run(pp, SIL, 1, 80, det, 4, &nd);
		float v[K];
		struct pp_detection d[PP_MAX_OUT];
		for (size_t i = 0; i < sizeof ramp / sizeof ramp[0]; i++) {
			vec(v, YES, ramp[i]);
			int n = pp_push(pp, v, d, PP_MAX_OUT);
			if (n > 0 && nd < 4)
				det[nd++] = d[0];
		}
		CHECK_EQ(nd, 1);
		CHECK_EQ(det[0].hop, 86);           /* hops 84, 85, 86 at or above 0.5 */
		CHECK_EQ(det[0].end, (uint64_t)(rise_hop[o] + 1) * 160);
		pp_free(pp);
	}
	/* out-of-range onset is refused */
	setup();
	cfg.onset = 0;
	CHECK(pp_new(&cfg, err, sizeof err) == NULL, "onset 0 refused");
	CHECK(strstr(err, "onset") != NULL, "error names the onset: %s", err);
}

static void test_nonkeywords_never_fire(void)
{
	char err[256];
	setup();
	kw[SIL].threshold = 0.01f;
	kw[UNK].threshold = 0.01f;
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	struct pp_detection det[4];
	int nd = 0;
	run(pp, SIL, 1, 200, det, 4, &nd);
	run(pp, UNK, 1, 200, det, 4, &nd);
	CHECK_EQ(nd, 0);
	pp_free(pp);
}

static void test_warmup(void)
{
	char err[256];
	setup();
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	struct pp_detection det[4];
	int nd = 0;
	run(pp, YES, 1, 60, det, 4, &nd);           /* high from the very start */
	CHECK_EQ(nd, 1);
	CHECK_EQ(det[0].hop, 22);                    /* warm-up 20 hops, then 3 above */
	/* reset starts warm-up again and counts hops from 0 */
	pp_reset(pp);
	nd = 0;
	CHECK_EQ(pp_hops(pp), 0);
	run(pp, YES, 1, 10, det, 4, &nd);
	CHECK_EQ(nd, 0);
	run(pp, SIL, 1, 20, det, 4, &nd);
	run(pp, YES, 1, 5, det, 4, &nd);
	CHECK_EQ(nd, 1);
	CHECK_EQ(det[0].hop, 32);
	pp_free(pp);
}

static void test_min_hops_and_smoothing(void)
{
	char err[256];
	setup();
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	struct pp_detection det[4];
	int nd = 0;
	run(pp, SIL, 1, 30, det, 4, &nd);
	run(pp, YES, 1, 2, det, 4, &nd);            /* two hops: one short of min_ms */
	run(pp, SIL, 1, 10, det, 4, &nd);
	CHECK_EQ(nd, 0);
	pp_free(pp);

	/* smoothing over 3 hops: one spike of 1.0 averages to 0.33 < 0.5 */
	setup();
	kw[YES].smooth_ms = 30;
	kw[YES].min_ms = 10;
	pp = pp_new(&cfg, err, sizeof err);
	nd = 0;
	run(pp, SIL, 1, 30, det, 4, &nd);
	run(pp, YES, 1, 1, det, 4, &nd);
	run(pp, SIL, 1, 5, det, 4, &nd);
	CHECK_EQ(nd, 0);
	/* two hops of 1.0 reach 0.67 on the second: fires there (hop 36 + 1 = 37) */
	run(pp, YES, 1, 2, det, 4, &nd);
	CHECK_EQ(nd, 1);
	CHECK_EQ(det[0].hop, 37);
	CHECK_NEAR(det[0].score, 2.0 / 3.0, 1e-6);
	/* end: the rise began at hop 36 (1/3 >= onset 0.5 x 0.5; hop 35 was 0), less (M-1)/2 = 1 hop
	 * of smoothing delay */
	CHECK_EQ(det[0].end, 37 * 160 - 160);
	const float *sm = pp_smoothed(pp);
	CHECK(sm != NULL, "smoothed vector");
	CHECK_NEAR(sm[YES], 2.0 / 3.0, 1e-6);
	pp_free(pp);
}

static void test_refractory_and_rearm(void)
{
	char err[256];
	setup();
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	struct pp_detection det[8];
	int nd = 0;
	run(pp, SIL, 1, 30, det, 8, &nd);
	run(pp, YES, 1, 200, det, 8, &nd);          /* one long plateau: one detection, no re-fire */
	CHECK_EQ(nd, 1);
	run(pp, SIL, 1, 1, det, 8, &nd);
	run(pp, YES, 1, 10, det, 8, &nd);           /* dropped once: re-armed, refractory is over */
	CHECK_EQ(nd, 2);
	CHECK_EQ(det[1].hop, 233);
	run(pp, SIL, 1, 20, det, 8, &nd);           /* within 50 hops of the last one */
	run(pp, YES, 1, 10, det, 8, &nd);
	CHECK_EQ(nd, 2);
	run(pp, SIL, 1, 30, det, 8, &nd);           /* now 50+ hops later */
	run(pp, YES, 1, 10, det, 8, &nd);
	CHECK_EQ(nd, 3);
	/* refractory is per keyword: "no" right after "yes" fires */
	run(pp, SIL, 1, 2, det, 8, &nd);
	run(pp, NO, 1, 5, det, 8, &nd);
	CHECK_EQ(nd, 4);
	CHECK_EQ(det[3].label, NO);
	pp_free(pp);
}

static void test_per_keyword_threshold_and_top(void)
{
	char err[256];
	setup();
	kw[YES].threshold = 0.8f;
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	struct pp_detection det[8];
	int nd = 0;
	run(pp, SIL, 1, 30, det, 8, &nd);
	run(pp, YES, 0.7f, 10, det, 8, &nd);        /* below yes's own threshold */
	run(pp, NO, 0.7f, 10, det, 8, &nd);         /* above no's */
	CHECK_EQ(nd, 1);
	CHECK_EQ(det[0].label, NO);
	pp_free(pp);

	/* two keywords above a low threshold: only the top one counts */
	setup();
	for (int k = 0; k < K; k++)
		kw[k].threshold = 0.3f;
	pp = pp_new(&cfg, err, sizeof err);
	float v[K] = {0.35f, 0.45f, 0.2f, 0, 0};
	struct pp_detection d[PP_MAX_OUT];
	nd = 0;
	for (int i = 0; i < 40; i++)
		for (int n = pp_push(pp, v, d, PP_MAX_OUT), j = 0; j < n; j++)
			det[nd++] = d[j];
	CHECK_EQ(nd, 1);
	CHECK_EQ(det[0].label, NO);
	pp_free(pp);
	cfg.require_top = 0;
	pp = pp_new(&cfg, err, sizeof err);
	nd = 0;
	for (int i = 0; i < 40; i++)
		for (int n = pp_push(pp, v, d, PP_MAX_OUT), j = 0; j < n; j++)
			det[nd++] = d[j];
	CHECK_EQ(nd, 2);
	CHECK(nd == 2 && det[0].hop == det[1].hop, "both on the same hop");
	/* max_out limits what is written */
	pp_reset(pp);
	int wrote = 0;
	for (int i = 0; i < 40; i++)
		wrote += pp_push(pp, v, d, 1);
	CHECK_EQ(wrote, 1);
	pp_free(pp);
}

static void test_bad_values(void)
{
	char err[256];
	float nanv[K] = {NAN, NAN, NAN, NAN, NAN};
	setup();
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	struct pp_detection d[PP_MAX_OUT];
	int n = 0;
	for (int i = 0; i < 100; i++)
		n += pp_push(pp, nanv, d, PP_MAX_OUT);
	CHECK_EQ(n, 0);
	pp_free(pp);

	setup();
	kw[GO].threshold = 0;
	err[0] = 0;
	CHECK(pp_new(&cfg, err, sizeof err) == NULL, "threshold 0 accepted");
	CHECK(strstr(err, "'go'") != NULL, "error names the label: %s", err);
	kw[GO].threshold = 1.5f;
	CHECK_EQ(pp_validate(&cfg, err, sizeof err), -EINVAL);
	kw[GO].threshold = NAN;
	CHECK_EQ(pp_validate(&cfg, err, sizeof err), -EINVAL);
	kw[GO].threshold = 0.5f;
	kw[GO].smooth_ms = 10000;                    /* 1000 hops > PP_MAX_SMOOTH */
	CHECK_EQ(pp_validate(&cfg, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "smoothing") != NULL, "%s", err);
	kw[GO].smooth_ms = 10;
	kw[GO].refractory_ms = -1;
	CHECK_EQ(pp_validate(&cfg, err, sizeof err), -EINVAL);
	kw[GO].refractory_ms = 500;
	cfg.hop = 0;
	CHECK_EQ(pp_validate(&cfg, err, sizeof err), -EINVAL);
	cfg.hop = 160;
	cfg.warmup_ms = INFINITY;
	CHECK_EQ(pp_validate(&cfg, err, sizeof err), -EINVAL);
	cfg.warmup_ms = 200;
	CHECK_EQ(pp_validate(&cfg, err, sizeof err), 0);
}

static void test_reconfigure(void)
{
	char err[256];
	setup();
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	struct pp_detection det[8];
	int nd = 0;
	run(pp, SIL, 1, 30, det, 8, &nd);
	run(pp, YES, 0.7f, 10, det, 8, &nd);
	CHECK_EQ(nd, 1);
	kw[YES].threshold = 0.9f;
	CHECK_EQ(pp_reconfigure(pp, &cfg, err, sizeof err), 0);
	run(pp, SIL, 1, 100, det, 8, &nd);
	run(pp, YES, 0.7f, 10, det, 8, &nd);
	CHECK_EQ(nd, 1);                             /* 0.7 no longer enough */
	/* changing the hop is refused and leaves the instance as it was */
	cfg.hop = 320;
	kw[YES].threshold = 0.5f;
	CHECK_EQ(pp_reconfigure(pp, &cfg, err, sizeof err), -EINVAL);
	cfg.hop = 160;
	kw[YES].threshold = 0.5f;
	kw[NO].threshold = 2;                        /* invalid: nothing applied */
	CHECK_EQ(pp_reconfigure(pp, &cfg, err, sizeof err), -EINVAL);
	run(pp, SIL, 1, 100, det, 8, &nd);
	run(pp, YES, 0.7f, 10, det, 8, &nd);
	CHECK_EQ(nd, 1);
	CHECK_EQ(pp_ms_to_hops(pp, 1000), 100);
	pp_free(pp);
}

static void test_no_alloc(void)
{
	char err[256];
	setup();
	kw[YES].smooth_ms = 640;                     /* the full 64-hop window */
	long at_new = n_allocs;
	struct pp *pp = pp_new(&cfg, err, sizeof err);
	if (COUNT_ALLOCS) /* the counter works: pp_new allocates exactly once */
		CHECK_EQ(n_allocs - at_new, 1);
	float v[K];
	struct pp_detection d[PP_MAX_OUT];
	long before = n_allocs;
	int n = 0;
	for (int i = 0; i < 100000; i++) {
		vec(v, (i / 97) % 2 ? YES : GO, (float)(i % 13) / 12.0f);
		n += pp_push(pp, v, d, PP_MAX_OUT);
		if (i == 50000)
			pp_reset(pp);
	}
	CHECK_EQ(pp_reconfigure(pp, &cfg, err, sizeof err), 0);
	long after = n_allocs;
	CHECK_EQ(after - before, 0);
	CHECK(n > 0, "some detections in the long run");
	pp_free(pp);
}

static void test_softmax(void)
{
	float l[4] = {1000, 999, -1000, 0}, p[4];
	pp_softmax(l, 4, p);
	CHECK_NEAR(p[0] + p[1] + p[2] + p[3], 1, 1e-6);
	CHECK_NEAR(p[0] / p[1], exp(1.0), 1e-3);
	float z[3] = {0, 0, 0};
	pp_softmax(z, 3, p);
	CHECK_NEAR(p[2], 1.0 / 3, 1e-7);
}

int main(void)
{
	test_basic();
	test_onset();
	test_nonkeywords_never_fire();
	test_warmup();
	test_min_hops_and_smoothing();
	test_refractory_and_rearm();
	test_per_keyword_threshold_and_top();
	test_bad_values();
	test_reconfigure();
	test_no_alloc();
	test_softmax();
	return CHECK_DONE();
}
