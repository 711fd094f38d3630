/* test_noalloc.c - the compute calls never allocate: s4m_stream_push/logits/scores/reset/copy,
 * s4m_relay_push/scores/logits/reset, s4m_batch_push, s4m_relay_batch_push, s4m_conv_logits/scan/features/logits_primed/scan_primed
 * and s4m_conv_carry_scan/carry_reset, counted
 * with the linker's --wrap of malloc, calloc, realloc, posix_memalign and aligned_alloc (every call from the engine's objects goes through the
 * wrappers below; the count is armed only around the compute calls).
 */
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "model/s4m.h"
#include "modelgen.h"

static int armed;
static long allocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t al, size_t n);
void *__real_aligned_alloc(size_t al, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t al, size_t n);
void *__wrap_aligned_alloc(size_t al, size_t n);

void *__wrap_malloc(size_t n) { allocs += armed; return __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { allocs += armed; return __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { allocs += armed; return __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t al, size_t n) { allocs += armed; return __real_posix_memalign(p, al, n); }
void *__wrap_aligned_alloc(size_t al, size_t n) { allocs += armed; return __real_aligned_alloc(al, n); }

static void run(int dplr)
{
	struct mg_opts o = mg_defaults();
	o.dplr = dplr;
	o.l_kernel[0] = dplr ? 2400 : 0;
	struct mg_file f = {0};
	mg_random_model(&f, &o);
	size_t len;
	unsigned char *buf = mg_serialize(&f, &len);
	char err[S4K_ERR_LEN];
	allocs = 0;
	struct s4m_model *m = s4m_load_buffer(buf, len, 1.0, err, sizeof err);
	CHECK(m != NULL, "%s", err);
	armed = 1;
	s4m_free(s4m_load_buffer(buf, len, 1.0, err, sizeof err));
	armed = 0;
	CHECK(allocs > 0, "the wrappers do not see the engine's allocations (--wrap not in effect)");
	if (!m)
		return;
	size_t n = 16000, W = s4m_window(m), K = (size_t)s4m_n_labels(m);
	float *x = malloc(n * sizeof *x), lg[64], *out = malloc(n * 16 * sizeof *out);
	uint64_t s = 5;
	for (size_t t = 0; t < n; t++)
		x[t] = (float)(0.3 * mg_normal(&s));
	struct s4m_stream *st = s4m_stream_new(m, err, sizeof err);
	size_t P = s4m_preroll(m);
	struct s4m_conv *cv = s4m_conv_new(m, P + W, err, sizeof err);
	CHECK(st && cv, "%s", err);
	CHECK(cv && P > 0 && s4m_conv_primed(cv) == 0 && s4m_conv_prime(cv, err, sizeof err) == 0 &&
	      s4m_conv_primed(cv) == W, "the workspace is primed for lone clips on request");

	allocs = 0;
	armed = 1;
	for (size_t p = 0; p + 160 <= n; p += 160) {
		s4m_stream_push(st, x + p, 160);
		s4m_stream_scores(st, lg);
	}
	s4m_stream_logits(st, lg);
	s4m_stream_reset(st);
	s4m_stream_push(st, x, 1000);
	armed = 0;
	struct s4m_relay *rl = s4m_relay_new(m, 2 * s4m_hop(m) * 4, err, sizeof err);
	struct s4m_stream *cp = s4m_stream_new(m, err, sizeof err);
	CHECK(rl && cp, "%s", err);
	armed = 1;
	for (size_t p = 0; rl && p + 160 <= n; p += 160) {
		s4m_relay_push(rl, x + p, 160);
		s4m_relay_scores(rl, lg);
	}
	if (rl) {
		s4m_relay_logits(rl, lg);
		s4m_relay_reset(rl);
	}
	if (cp)
		s4m_stream_copy(cp, st);
	armed = 0;
	s4m_relay_free(rl);
	s4m_stream_free(cp);
	/* three streams and three relays stepped together */
	struct s4m_batch *bt = s4m_batch_new(m, 3, err, sizeof err);
	struct s4m_stream *bs[3];
	struct s4m_relay *br[3];
	int made = bt != NULL;
	for (int j = 0; j < 3; j++) {
		bs[j] = s4m_stream_new(m, err, sizeof err);
		br[j] = s4m_relay_new(m, 2 * s4m_hop(m) * 4, err, sizeof err);
		made &= bs[j] && br[j];
	}
	CHECK(made, "%s", err);
	const float *xs[3] = {x, x + 160, x + 320};
	armed = 1;
	for (int p = 0; made && p < 20; p++) {
		s4m_batch_push(bt, bs, 3, xs, 160);
		s4m_relay_batch_push(bt, br, 3, xs, 160);
	}
	armed = 0;
	for (int j = 0; j < 3; j++) {
		s4m_stream_free(bs[j]);
		s4m_relay_free(br[j]);
	}
	s4m_batch_free(bt);
	CHECK(allocs == 0, "%s step mode: %ld allocations in push/scores/reset", dplr ? "dplr" : "s4d", allocs);

	armed = 1;
	s4m_conv_logits(cv, x, W, lg);
	s4m_conv_scan(cv, x, W, out, W / s4m_hop(m));
	s4m_conv_features(cv, x, W, out, W / s4m_hop(m));
	s4m_conv_logits_primed(cv, x, W, lg);
	armed = 0;
	CHECK(allocs == 0, "%s conv mode: %ld allocations in logits/scan/features/primed", dplr ? "dplr" : "s4d", allocs);
	(void)K;

	/* carried scans and primed scans of another window, after their set-up */
	size_t C = s4m_conv_carry_min(m), hop = s4m_hop(m);
	struct s4m_conv *cc = s4m_conv_new(m, C, err, sizeof err);
	struct s4m_conv *cw = s4m_conv_new(m, P + 2 * W, err, sizeof err);
	float *cout = malloc((C + 2 * W) / hop * K * sizeof *cout),
	      *cx = calloc(C > 2 * W ? C : 2 * W, sizeof *cx);   /* zeros: cost is content-free */
	CHECK(cc && cw && cout && s4m_conv_carry_init(cc, err, sizeof err) == 0 &&
	      s4m_conv_prime_window(cw, 2 * W, err, sizeof err) == 0 && s4m_conv_primed(cw) == 2 * W,
	      "carried and 2-window primed workspaces: %s", err);
	if (cc && cw && cout && cx && s4m_conv_primed(cw) == 2 * W) {
		memcpy(cx, x, (n < C ? n : C) * sizeof *cx);
		allocs = 0;
		armed = 1;
		long r1 = s4m_conv_carry_scan(cc, cx, C, cout, C / hop);
		long r2 = s4m_conv_carry_scan(cc, cx, hop, cout, 1);
		s4m_conv_carry_reset(cc);
		long r3 = s4m_conv_scan_primed(cw, cx, 2 * W, cout, 2 * W / hop);
		armed = 0;
		CHECK(r1 == (long)(C / hop) && r2 == 1 && r3 == (long)(2 * W / hop),
		      "the carried and primed scans ran: %ld %ld %ld steps", r1, r2, r3);
		CHECK(allocs == 0, "%s conv mode: %ld allocations in carry_scan/carry_reset/"
		      "scan_primed", dplr ? "dplr" : "s4d", allocs);
	}
	s4m_conv_free(cc);
	s4m_conv_free(cw);
	free(cout);
	free(cx);
	s4m_conv_free(cv);
	s4m_stream_free(st);
	free(x);
	free(out);
	free(buf);
	s4m_free(m);
	mg_free(&f);
}

int main(void)
{
	run(0);
	run(1);
	return CHECK_DONE();
}
