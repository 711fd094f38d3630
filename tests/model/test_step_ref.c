/* test_step_ref.c - the tiled stepper against the one it replaced: `test_step_ref MODEL...`.
 *
 * s4k_step() keeps its state and coefficients in channel tiles, split re/im (model/s4k.h). The
 * reference here is the stepper it replaced, kept verbatim in spirit: state (H, N2) interleaved
 * complex, the same near-identity recurrence over the (H, N2) coefficient arrays G, dB, dC (S4D)
 * or W, G, DP, DB, c2, dC (DPLR), and each output a dot product over a channel's row with eight
 * partial sums. For every block of every model given, both run the same 4000 steps of Gaussian
 * input (every channel its own sequence, as a block sees after its norm) from a zero state; the
 * outputs must agree to 1e-5 of the reference's peak. s4k_step_rows() (runs of 1 to 40 steps at
 * once, as s4m_stream_push uses it) must give s4k_step()'s outputs to 1e-6 of the peak (it does
 * the same arithmetic in another loop order). The largest errors per model are printed.
 */
#define _GNU_SOURCE
#include <complex.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "model/s4m_impl.h"

#define STEPS 4000

static uint64_t rng = 0x2545f4914f6cdd1dull;

static double grand(void) /* Gaussian, Box-Muller on a 64-bit LCG */
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	double a = ((rng >> 11) + 0.5) / 9007199254740992.0;
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	double b = ((rng >> 11) + 0.5) / 9007199254740992.0;
	return sqrt(-2 * log(a)) * cos(2 * M_PI * b);
}

/* Re Σ_n a_n b_n over n2 complex entries, eight partial sums over the interleaved floats. */
static float dot_re(const float complex *ac, const float complex *bc, int n2)
{
	const float *a = (const float *)ac, *b = (const float *)bc;
	float acc[8] = { 0 };
	int n = 2 * n2, j = 0;
	for (; j + 8 <= n; j += 8)
		for (int l = 0; l < 8; l++)
			acc[l] += a[j + l] * b[j + l];
	for (; j < n; j++)
		acc[j & 7] += a[j] * b[j];
	return (acc[0] + acc[2] + acc[4] + acc[6]) - (acc[1] + acc[3] + acc[5] + acc[7]);
}

/* The previous s4k_step(): x (H, N2) interleaved complex. */
static void ref_step(const struct s4k_step *st, float complex *x, const float *u, float *y)
{
	for (int h = 0; h < st->H; h++) {
		size_t o = (size_t)h * st->N2;
		const float complex *G = st->G + o;
		float complex *xh = x + o;
		float uh = u[h];
		if (st->family == S4K_DIAG) {
			for (int n = 0; n < st->N2; n++) {
				float gr = crealf(G[n]), gi = cimagf(G[n]);
				float xr = crealf(xh[n]), xi = cimagf(xh[n]);
				float nr = xr + ((gr * xr - gi * xi) + crealf(st->dB[o + n]) * uh);
				float ni = xi + ((gr * xi + gi * xr) + cimagf(st->dB[o + n]) * uh);
				xh[n] = nr + ni * I;
			}
			y[h] = 2 * dot_re(st->dC + o, xh, st->N2);
			continue;
		}
		float w = 2 * dot_re(st->W + o, xh, st->N2) + st->c2[h] * uh;
		for (int n = 0; n < st->N2; n++) {
			float gr = crealf(G[n]), gi = cimagf(G[n]);
			float xr = crealf(xh[n]), xi = cimagf(xh[n]);
			float complex DP = st->DP[o + n], DB = st->DB[o + n];
			float dr = (gr * xr - gi * xi) - crealf(DP) * w + crealf(DB) * uh;
			float di = (gr * xi + gi * xr) - cimagf(DP) * w + cimagf(DB) * uh;
			xh[n] = (xr + dr) + (xi + di) * I;
		}
		y[h] = dot_re(st->dC + o, xh, st->N2);
	}
}

/* Largest |new - ref| over the peak |ref| for one step structure; *rows_err: the same for
 * s4k_step_rows() (runs of 1 to 40 steps) against s4k_step(). */
static double compare(const struct s4k_step *st, double *rows_err)
{
	enum { RMAX = 40 };
	int H = st->H;
	size_t sl = s4k_state_len(st);
	float complex *xn = calloc(sl, sizeof *xn), *xr = calloc(sl, sizeof *xr),
		      *xm = calloc(sl, sizeof *xm);
	float *u = malloc((size_t)RMAX * H * sizeof *u), *yn = malloc((size_t)RMAX * H * sizeof *yn),
	      *yr = malloc((size_t)H * sizeof *yr), *ym = malloc((size_t)RMAX * H * sizeof *ym);
	double err = 0, merr = 0, peak = 0;
	for (int t = 0, R = 1; t < STEPS; t += R, R = R % RMAX + 1) {
		for (int h = 0; h < R * H; h++)
			u[h] = (float)grand();
		s4k_step_rows(st, xm, u, ym, (size_t)R);
		for (int r = 0; r < R; r++) {
			s4k_step(st, xn, u + r * H, yn + r * H);
			ref_step(st, xr, u + r * H, yr);
			for (int h = 0; h < H; h++) {
				err = fmax(err, fabs((double)yn[r * H + h] - yr[h]));
				merr = fmax(merr, fabs((double)ym[r * H + h] - yn[r * H + h]));
				peak = fmax(peak, fabs((double)yr[h]));
			}
		}
	}
	free(xn);
	free(xr);
	free(xm);
	free(u);
	free(yn);
	free(yr);
	free(ym);
	*rows_err = peak > 0 ? merr / peak : merr;
	return peak > 0 ? err / peak : err;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("usage: test_step_ref MODEL.safetensors...\n");
		return 2;
	}
	for (int a = 1; a < argc; a++) {
		char err[S4K_ERR_LEN];
		struct s4m_model *m = s4m_load(argv[a], 1.0, err, sizeof err);
		CHECK(m != NULL, "%s", err);
		if (!m)
			continue;
		double worst = 0, worst_rows = 0;
		for (int i = 0; i < m->n_blocks; i++) {
			if (!m->b[i].has_step)
				continue;
			double er;
			double e = compare(&m->b[i].step, &er);
			CHECK(e <= 1e-5, "%s block %d: step off the reference by %g of its peak", argv[a],
			      i, e);
			CHECK(er <= 1e-6, "%s block %d: s4k_step_rows off s4k_step by %g of the peak",
			      argv[a], i, er);
			worst = fmax(worst, e);
			worst_rows = fmax(worst_rows, er);
		}
		printf("%s: %d blocks, %s, max |new - reference| %.3g of the peak over %d steps, "
		       "rows vs one by one %.3g\n", argv[a], m->n_blocks, m->dplr ? "DPLR" : "S4D",
		       worst, STEPS, worst_rows);
		s4m_free(m);
	}
	return CHECK_DONE();
}
