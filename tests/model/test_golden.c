/* test_golden.c - the C engine against PyTorch: `test_golden DATADIR golden|official`.
 *
 * golden:   tests/data/golden_{s4d,dplr}.safetensors (models of the PyTorch twin, >= 3 blocks with
 *           pooling) and golden_*_io.safetensors (tests/model/golden.py, double precision): inputs
 *           (B, 16000), logits (B, K), kernel.{i} (Hi, Li) and u.{i} (B, H, L_i) = the output of
 *           block i after its pooling and widen. Checks: kernels to 1e-5 relative (max error over
 *           the max |kernel|), block outputs to 1e-5 relative, conv-mode logits to 1e-4 absolute,
 *           and stream-mode logits to 1e-4 too.
 * official: tests/data/official_s4d.safetensors (tests/model/convert_official.py of the checkpoint in
 *           shared/reference/official-s4d, which the official state-spaces/s4 code wrote and ran
 *           in float64) and official_s4d_ref.safetensors (its 8 inputs and logits): conv and
 *           stream mode reproduce logits_conv to 1e-4 absolute.
 * The maximum errors are printed; missing fixtures are a failure (they are in the repository).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "model/s4m.h"
#include "model/st.h"

static char dir[1024];

static double *read_t(const struct st_file *f, const char *name, const struct st_tensor **tp)
{
	const struct st_tensor *t = st_find(f, name);
	CHECK(t != NULL, "fixture tensor '%s' missing", name);
	if (!t)
		return NULL;
	double *v = malloc(t->numel * sizeof *v);
	st_read_f64(t, v);
	if (tp)
		*tp = t;
	return v;
}

static struct st_file *open_fixture(const char *name)
{
	char path[1200], err[S4K_ERR_LEN];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	struct st_file *f = st_open(path, err, sizeof err);
	CHECK(f != NULL, "fixture: %s", err);
	return f;
}

static struct s4m_model *load_model(const char *name)
{
	char path[1200], err[S4K_ERR_LEN];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	struct s4m_model *m = s4m_load(path, 1.0, err, sizeof err);
	CHECK(m != NULL, "%s", err);
	return m;
}

/* Logits of every input row in conv mode and in stream mode vs ref (B, K), and vs ref2 if given
 * (the official step-mode logits). */
static void check_logits(const char *what, const struct s4m_model *m, const double *x, size_t B,
			 size_t L, const double *ref, const double *ref2, double tol)
{
	char err[S4K_ERR_LEN];
	int K = s4m_n_labels(m);
	struct s4m_conv *cv = s4m_conv_new(m, L, err, sizeof err);
	struct s4m_stream *st = s4m_stream_new(m, err, sizeof err);
	CHECK(cv && st, "%s: %s", what, err);
	if (!cv || !st)
		return;
	float *xf = malloc(L * sizeof *xf), lg[256];
	double ec = 0, es = 0, ec2 = 0, es2 = 0;
	for (size_t b = 0; b < B; b++) {
		for (size_t t = 0; t < L; t++)
			xf[t] = (float)x[b * L + t];
		s4m_conv_logits(cv, xf, L, lg);
		for (int k = 0; k < K; k++) {
			ec = fmax(ec, fabs(lg[k] - ref[b * (size_t)K + (size_t)k]));
			if (ref2)
				ec2 = fmax(ec2, fabs(lg[k] - ref2[b * (size_t)K + (size_t)k]));
		}
		s4m_stream_reset(st);
		s4m_stream_push(st, xf, L);
		s4m_stream_logits(st, lg);
		for (int k = 0; k < K; k++) {
			es = fmax(es, fabs(lg[k] - ref[b * (size_t)K + (size_t)k]));
			if (ref2)
				es2 = fmax(es2, fabs(lg[k] - ref2[b * (size_t)K + (size_t)k]));
		}
	}
	printf("%s: max |logit error| conv %.3g, stream %.3g (%zu inputs, tolerance %g)\n", what, ec, es,
	       B, tol);
	CHECK(ec <= tol, "%s: conv-mode logits off by %g", what, ec);
	CHECK(es <= tol, "%s: stream-mode logits off by %g", what, es);
	if (ref2) {
		printf("%s, against the official step-mode logits: conv %.3g, stream %.3g\n", what, ec2, es2);
		CHECK(ec2 <= tol && es2 <= tol, "%s: off the official step logits by %g / %g", what, ec2, es2);
	}
	free(xf);
	s4m_stream_free(st);
	s4m_conv_free(cv);
}

static void golden(const char *kind)
{
	char name[64];
	snprintf(name, sizeof name, "golden_%s.safetensors", kind);
	struct s4m_model *m = load_model(name);
	snprintf(name, sizeof name, "golden_%s_io.safetensors", kind);
	struct st_file *io = open_fixture(name);
	if (!m || !io) {
		s4m_free(m);
		st_close(io);
		return;
	}
	const struct st_tensor *ti;
	double *x = read_t(io, "inputs", &ti), *lg = read_t(io, "logits", NULL);
	size_t B = (size_t)ti->shape[0], L = (size_t)ti->shape[1];
	char err[S4K_ERR_LEN];
	struct s4m_conv *cv = s4m_conv_new(m, L, err, sizeof err);
	CHECK(cv != NULL, "%s", err);
	float *xf = malloc(L * sizeof *xf);

	for (int i = 0; i < s4m_n_blocks(m); i++) {
		char tn[32];
		snprintf(tn, sizeof tn, "kernel.%d", i);
		const struct st_tensor *tk;
		double *kr = read_t(io, tn, &tk);
		struct s4m_block_info bi;
		s4m_block_info(m, i, &bi);
		const double *kc = s4m_block_kernel(m, i, 0);
		size_t Hk = (size_t)tk->shape[0], Lk = (size_t)tk->shape[1];
		CHECK(Hk == (size_t)bi.width && Lk <= bi.kernel_len, "%s kernel.%d shape", kind, i);
		double e = 0, mx = 0;
		for (size_t h = 0; h < Hk && Lk <= bi.kernel_len; h++)
			for (size_t l = 0; l < Lk; l++) {
				e = fmax(e, fabs(kc[h * bi.kernel_len + l] - kr[h * Lk + l]));
				mx = fmax(mx, fabs(kr[h * Lk + l]));
			}
		printf("%s block %d: kernel (%zu x %zu) max error %.3g relative %.3g;", kind, i, Hk, Lk, e,
		       e / mx);
		CHECK(e <= 1e-5 * mx, "%s kernel.%d relative error %g", kind, i, e / mx);
		free(kr);

		snprintf(tn, sizeof tn, "u.%d", i);
		const struct st_tensor *tu;
		double *ur = read_t(io, tn, &tu);
		size_t Hu = (size_t)tu->shape[1], Lu = (size_t)tu->shape[2];
		float *uc = malloc(Hu * Lu * sizeof *uc);
		double eu = 0, mu = 0;
		for (size_t b = 0; cv && b < B; b++) {
			for (size_t t = 0; t < L; t++)
				xf[t] = (float)x[b * L + t];
			long r = s4m_conv_block_output(cv, xf, L, i, uc, Hu * Lu);
			CHECK(r == (long)Lu && (size_t)bi.out_width == Hu, "%s u.%d shape (%ld steps)", kind, i, r);
			if (r != (long)Lu)
				break;
			for (size_t k = 0; k < Hu * Lu; k++) {
				eu = fmax(eu, fabs(uc[k] - ur[b * Hu * Lu + k]));
				mu = fmax(mu, fabs(ur[b * Hu * Lu + k]));
			}
		}
		printf(" output (%zu x %zu) max error %.3g relative %.3g\n", Hu, Lu, eu, eu / mu);
		CHECK(eu <= 1e-5 * mu, "%s u.%d relative error %g", kind, i, eu / mu);
		free(uc);
		free(ur);
	}
	char what[64];
	snprintf(what, sizeof what, "golden %s", kind);
	check_logits(what, m, x, B, L, lg, NULL, 1e-4);
	free(xf);
	free(x);
	free(lg);
	s4m_conv_free(cv);
	st_close(io);
	s4m_free(m);
}

static void official(void)
{
	struct s4m_model *m = load_model("official_s4d.safetensors");
	struct st_file *io = open_fixture("official_s4d_ref.safetensors");
	if (m && io) {
		const struct st_tensor *ti;
		double *x = read_t(io, "inputs", &ti), *lc = read_t(io, "logits_conv", NULL),
		       *ls = read_t(io, "logits_step", NULL);
		size_t B = (size_t)ti->shape[0], L = (size_t)ti->shape[1];
		check_logits("official s4d vs official logits_conv", m, x, B, L, lc, ls, 1e-4);
		free(x);
		free(lc);
		free(ls);
	}
	st_close(io);
	s4m_free(m);
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[2], "golden") && strcmp(argv[2], "official"))) {
		fprintf(stderr, "usage: test_golden DATADIR golden|official\n");
		return 2;
	}
	snprintf(dir, sizeof dir, "%s", argv[1]);
	if (!strcmp(argv[2], "golden")) {
		golden("s4d");
		golden("dplr");
	} else {
		official();
	}
	return CHECK_DONE();
}
