/* s4k.c - S4 / S4D kernel mathematics: kernels, discretization, the float step's coefficients.
 *
 * DESIGN. Everything that happens once per model (kernels, discretization, recovering C̄ from
 * the trained C̃) runs in double; only s4k_step() (model/s4k_step.c) runs in float, on
 * coefficients rounded once here (s4k_step_init).
 *
 * S4D kernels are Vandermonde sums K[l] = Re Σ_n W_n dA_n^l (W = 2·C·dB). Powers are never
 * formed by a 16000-long product chain: with R ≈ √L, dA^(qR+r) = exp(qR·log dA)·exp(r·log dA),
 * both factors from exp() of an exactly scaled logarithm, so every term carries a few ulps of
 * error whatever l is. log dA is exact for ZOH (dt·A) and computed with log1p/atan2 for bilinear.
 *
 * DPLR kernels use Algorithm 1 of the S4 paper: the truncated generating function
 * Σ_{l<L} K_l ω^l = C̃ (I − Āω)^{-1} B̄ at the L roots of unity ω_k = exp(−2πik/L), k ≤ L/2,
 * is a rank-1 Woodbury correction of diagonal Cauchy sums, followed by an inverse real FFT.
 * The textbook form divides by (1 + ω), infinite at the Nyquist node ω = −1 of an even L. We
 * multiply every Cauchy term through by (1 + ω): with a = 2(1 − ω), b = 1 + ω and
 * r'[x,y] = Σ_n v_n/(a − Λ̃_n b) + conj(v_n)/(a − conj(Λ̃_n) b), the kernel spectrum is
 *   K̂ = 2·(r'[B,C̃] − b·r'[B,Q]·r'[P,C̃] / (1 + b·r'[P,Q])),
 * which is exactly the official r[B,C̃] − r[B,Q]r[P,C̃]/(1 + r[P,Q]) times 2/(1 + ω) and has
 * no division by b anywhere (the nodes ω = ±1 are set exactly). The denominators a − Λ̃b vanish
 * only if an eigenvalue of Ā lies on the unit circle; Re Λ < 0 excludes that, and a kernel that
 * is not finite (Re Λ = 0 exactly on a node) is refused.
 *
 * C̃ (the trained C) is attuned to l_kernel steps at the training dt: C̃ = C̄ (I − Ā^l_kernel)
 * (row vectors). When the kernel length or the rate differs, or for the step, we recover C̄
 * with a dense solve and re-attune. The dense work is done on the real N×N matrix of Ā in the
 * coordinates w = [Re x; Im x] of the N/2 stored modes (the conjugate-extended space is a real
 * vector space of dimension N, and Ā maps it to itself): it is the same map as the complex
 * N×N matrix of the reference code, at a quarter of the arithmetic, and real LU with partial
 * pivoting suffices. Its columns are built like the official _setup_state: push each basis
 * vector through the O(N) Woodbury step in double. The squares Ā^(2^j) are computed once per
 * (channel, dt) and shared by Ā^l_kernel (a matrix product over the set bits), C̄ Ā^L (vector
 * products only) and the margin estimate.
 *
 * The float step. Rounding dA itself to float moves 1 − |dA| by up to 6e-8, i.e. by 1e-4
 * relative for a mode with margin 6e-4 — a visibly different decay. s4k_step() therefore runs
 * the same recurrence written around the identity, x ← x + (Ā − I)x + B̄u, with Ā − I computed
 * without cancellation in double (S4D: G = expm1(log dA); DPLR: G = Dl·El − 1 = 2Λ·Dl, and the
 * Woodbury sums fused into one, see s4k.h). Float rounding then perturbs Ā − I relatively,
 * and the remaining error is the rounding of the state itself (measured: ≤ 4e-5 of the output
 * peak over 16000 steps for margins down to 1e-4, see tests/model/test_s4k.c).
 *
 * Drift policy. A mode with 1 − |dA| below float resolution cannot be represented faithfully;
 * rounding to nearest could even give |1 + G_float| > 1, a mode that grows forever. For S4D we
 * round G (and dA) so that |1 + G_float| ≤ |dA| always (stepping toward the origin by one ulp
 * when needed): the stored operator is never expansive, at the price of a leak of at most one
 * ulp per step for near-integrator modes. min_margin reports the closest approach to 1 so that
 * callers can warn or reset long-running streams (state rounding noise is still integrated
 * over ~1/margin steps). For DPLR, min_margin is 1 − ρ(Ā), ρ^8192 estimated by power iteration
 * on Ā^8192 in double (ρ ≤ 1 is guaranteed by Re Λ ≤ 0 and Q = conj(P): A + A^H ≤ 0, so the
 * Cayley transform Ā is a contraction); margins above ~0.04 are reported as 0.041 (Ā^8192
 * has then flushed to zero), which is irrelevant for drift.
 *
 * Layout of the step. s4k_step() reads a copy of the coefficients made at init (s4k_step.k) and
 * keeps the state in the same shape: tiles of 32 channels (then 16, 8, 1), split re/im,
 * mode-major inside a tile with the tile's channels contiguous. Every inner loop then runs over
 * channels, one channel per vector lane: no shuffles, and each output is summed over the modes
 * in its lane (the C·x readout is fused into the state update; no horizontal reduction). S4D
 * steps s = x/dB mode by mode (s ← s + G·s + u, y = 2 Re Σ C·dB·s): the same diagonal recurrence
 * with the real input on the real part alone, two multiplies fewer per mode. s4k_step_rows()
 * runs R consecutive steps: S4D mode by mode, so a mode's coefficients and state are read once
 * for all R steps and two modes' recurrences are in flight at once.
 *
 * Threads: nothing here keeps state except the mutex behind s4k_fftw_lock(), which guards
 * FFTW's planner (plan creation and destruction are not thread-safe in FFTW).
 */
#include "s4k.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#include "../common/err.h"
#include "../common/hot.h"

#ifndef CMPLX /* glibc's <complex.h> defines CMPLX/CMPLXF for GCC only */
#define CMPLX(x, y) ((union { double complex z; double p[2]; }){ .p = { (x), (y) } }).z
#endif
#ifndef CMPLXF
#define CMPLXF(x, y) ((union { float complex z; float p[2]; }){ .p = { (x), (y) } }).z
#endif

#define DIAG_MAX_N2 4096
#define DPLR_MAX_N2 128 /* N = 256: dense work is N^3 per squaring */
#define MAX_L (1L << 26)
#define MAX_H 65536
#define MARGIN_SQUARINGS 13 /* DPLR margin from Ā^(2^13) */
#define FLUSH 1e-150         /* |entries| below this in Ā^k are set to 0: no denormals */

static pthread_mutex_t fftw_mutex = PTHREAD_MUTEX_INITIALIZER;

void s4k_fftw_lock(void)
{
	pthread_mutex_lock(&fftw_mutex);
}

void s4k_fftw_unlock(void)
{
	pthread_mutex_unlock(&fftw_mutex);
}

/* ---------------------------------------------------------------- validation */

static int cfinite(double complex z)
{
	return isfinite(creal(z)) && isfinite(cimag(z));
}

static int check_params(const struct s4k_params *p, char *err, size_t errlen)
{
	if (!p)
		return s4k_seterr(err, errlen, "no SSM parameters were given."), -EINVAL;
	if (p->family != S4K_DIAG && p->family != S4K_DPLR)
		return s4k_seterr(err, errlen, "SSM family %d is unknown (want S4D or DPLR).",
				  (int)p->family), -EINVAL;
	if (p->disc != S4K_ZOH && p->disc != S4K_BILINEAR)
		return s4k_seterr(err, errlen, "discretization %d is unknown (want zoh or bilinear).",
				  (int)p->disc), -EINVAL;
	if (p->family == S4K_DPLR && p->disc != S4K_BILINEAR)
		return s4k_seterr(err, errlen,
				  "the DPLR kernel is defined for the bilinear discretization only, not zoh."),
		       -EINVAL;
	int maxn2 = p->family == S4K_DPLR ? DPLR_MAX_N2 : DIAG_MAX_N2;
	if (p->H < 1 || p->H > MAX_H)
		return s4k_seterr(err, errlen, "H = %d channels is out of range (1..%d).", p->H, MAX_H),
		       -EINVAL;
	if (p->N2 < 1 || p->N2 > maxn2)
		return s4k_seterr(err, errlen, "N/2 = %d modes is out of range (1..%d for %s).", p->N2,
				  maxn2, p->family == S4K_DPLR ? "DPLR" : "S4D"), -EINVAL;
	if (!p->dt || !p->A || !p->B || !p->C || (p->family == S4K_DPLR && !p->P))
		return s4k_seterr(err, errlen, "an SSM parameter array (dt, A, B, C%s) is missing.",
				  p->family == S4K_DPLR ? " or P" : ""), -EINVAL;
	if (!isfinite(p->rate) || p->rate <= 0)
		return s4k_seterr(err, errlen, "the rate %g is not a positive finite number.", p->rate),
		       -EINVAL;
	if (p->family == S4K_DPLR && (p->l_kernel < 0 || p->l_kernel > MAX_L))
		return s4k_seterr(err, errlen, "l_kernel = %ld is out of range (0..%ld).", p->l_kernel,
				  MAX_L), -EINVAL;
	for (int h = 0; h < p->H; h++) {
		double dt = p->dt[h];
		if (!isfinite(dt) || dt <= 0 || !isfinite(dt * p->rate) || dt * p->rate <= 0)
			return s4k_seterr(err, errlen,
					  "channel %d: dt = %g is not a positive finite step size.", h, dt),
			       -EINVAL;
		for (int n = 0; n < p->N2; n++) {
			size_t i = (size_t)h * p->N2 + n;
			const char *bad = !cfinite(p->A[i]) ? "A" : !cfinite(p->B[i]) ? "B"
					: !cfinite(p->C[i]) ? "C"
					: (p->P && p->family == S4K_DPLR && !cfinite(p->P[i])) ? "P" : NULL;
			if (bad)
				return s4k_seterr(err, errlen, "channel %d, mode %d: %s is not finite.", h, n,
						  bad), -EINVAL;
			if (creal(p->A[i]) > 0)
				return s4k_seterr(err, errlen,
						  "channel %d, mode %d: Re A = %g is positive, the SSM would be unstable.",
						  h, n, creal(p->A[i])), -EINVAL;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- S4D */

/* exp(z), with results below 1e-150 in modulus set to exactly 0: a product of two such
 * factors stays a normal double (no slow denormal arithmetic), and terms that small are
 * far below double resolution of any kernel worth computing. */
static double complex cexp_flush(double complex z)
{
	if (creal(z) < -345.0)
		return 0;
	double m = exp(creal(z));
	return CMPLX(m * cos(cimag(z)), m * sin(cimag(z)));
}

/* exp(z) - 1 without cancellation: Re = expm1(x) cos y - 2 sin^2(y/2), Im = e^x sin y. */
static double complex cexpm1(double complex z)
{
	double x = creal(z), y = cimag(z), s = sin(y / 2);
	return CMPLX(expm1(x) * cos(y) - 2 * s * s, exp(x) * sin(y));
}

/* (exp(z) - 1) / z, accurate for small |z| and at z = 0. */
static double complex expm1_over_z(double complex z)
{
	if (cabs(z) < 1e-4)
		return 1 + z / 2 + z * z / 6 + z * z * z / 24;
	return cexpm1(z) / z;
}

/* One S4D mode at step size dt: log dA (so dA^l = exp(l·logdA)) and dB. */
static void diag_disc(enum s4k_disc disc, double dt, double complex A, double complex B,
		      double complex *logdA, double complex *dB)
{
	double complex z = dt * A;
	if (disc == S4K_ZOH) {
		*logdA = z;
		*dB = B * dt * expm1_over_z(z);
		return;
	}
	/* bilinear: dA = (1 + h)/(1 - h), h = z/2; |1 ± h|^2 = 1 ± 2 Re h + |h|^2 */
	double hr = creal(z) / 2, hi = cimag(z) / 2, h2 = hr * hr + hi * hi;
	double lmod = 0.5 * (log1p(2 * hr + h2) - log1p(-2 * hr + h2));
	double arg = atan2(hi, 1 + hr) - atan2(-hi, 1 - hr);
	*logdA = CMPLX(lmod, arg);
	*dB = B * dt / (1 - z / 2);
}

/* K[0..L) = Re Σ_n W_n exp(l·lam_n), chunked powers of chunk R. pr, pi: (R) scratch. */
static void vandermonde(int N2, const double complex *W, const double complex *lam, long L,
			long R, double *restrict K, double *restrict pr, double *restrict pi)
{
	memset(K, 0, sizeof *K * (size_t)L);
	for (int n = 0; n < N2; n++) {
		if (W[n] == 0)
			continue;
		for (long r = 0; r < R; r++) { /* r = 0 apart: lam may be −inf (bilinear dA = 0) */
			double complex e = r == 0 ? 1 : cexp_flush((double)r * lam[n]);
			pr[r] = creal(e);
			pi[r] = cimag(e);
		}
		for (long q0 = 0; q0 < L; q0 += R) {
			double complex c = W[n] * (q0 == 0 ? 1 : cexp_flush((double)q0 * lam[n]));
			if (cabs(c) < 1e-150)
				break; /* Re lam <= 0: every later chunk is smaller still */
			double cr = creal(c), ci = cimag(c);
			long cnt = L - q0 < R ? L - q0 : R;
			double *restrict k = K + q0;
			for (long r = 0; r < cnt; r++)
				k[r] += cr * pr[r] - ci * pi[r];
		}
	}
}

static int diag_kernel(const struct s4k_params *p, long L, double *K, char *err, size_t errlen)
{
	int N2 = p->N2;
	long R = (long)ceil(sqrt((double)L));
	if (R < 16)
		R = 16;
	double complex *W = malloc(sizeof *W * 2 * (size_t)N2);
	double *pw = malloc(sizeof *pw * 2 * (size_t)R);
	if (!W || !pw) {
		free(W);
		free(pw);
		return s4k_seterr(err, errlen, "out of memory for the S4D kernel."), -ENOMEM;
	}
	double complex *lam = W + N2;
	for (int h = 0; h < p->H; h++) {
		double dt = p->dt[h] * p->rate;
		for (int n = 0; n < N2; n++) {
			size_t i = (size_t)h * N2 + n;
			double complex dB;
			diag_disc(p->disc, dt, p->A[i], p->B[i], &lam[n], &dB);
			W[n] = 2 * p->C[i] * dB;
		}
		vandermonde(N2, W, lam, L, R, K + (size_t)h * L, pw, pw + R);
	}
	free(W);
	free(pw);
	return 0;
}

/* ---------------------------------------------------------------- DPLR: O(N) step in double */

/* Woodbury "linear" step coefficients of one channel at step size dt (s4-reference §1.6). */
struct lin {
	int N2;
	double complex *Dl, *El, *R, *P, *B2; /* (N2) each; B2 = 2B */
	double den;                           /* 1 + 2 Re Σ Q Dl P (>= 1) */
};

static void lin_setup(struct lin *c, double dt, const double complex *Lam, const double complex *P,
		      const double complex *B)
{
	double den = 1;
	for (int n = 0; n < c->N2; n++) {
		c->Dl[n] = 1 / (2 / dt - Lam[n]);
		c->El[n] = 2 / dt + Lam[n];
		c->P[n] = P[n];
		c->B2[n] = 2 * B[n];
		den += 2 * creal(P[n] * conj(P[n])) * creal(c->Dl[n]); /* 2 Re Σ Q Dl P, Q = conj P */
	}
	for (int n = 0; n < c->N2; n++)
		c->R[n] = conj(P[n]) * c->Dl[n] / den; /* den >= 1: Re Dl > 0 */
	c->den = den;
}

/* x <- Ā x + B̄ u in double (full space, N2 stored modes). */
static void lin_step(const struct lin *c, double complex *x, double u)
{
	double qx = 0, rs = 0;
	for (int n = 0; n < c->N2; n++)
		qx += creal(conj(c->P[n]) * x[n]);
	qx *= 2;
	for (int n = 0; n < c->N2; n++) {
		x[n] = c->El[n] * x[n] - c->P[n] * qx + c->B2[n] * u;
		rs += creal(c->R[n] * x[n]);
	}
	rs *= 2;
	for (int n = 0; n < c->N2; n++)
		x[n] = c->Dl[n] * (x[n] - c->P[n] * rs);
}

/* ---------------------------------------------------------------- DPLR: dense real work */

/* Workspace for the dense N×N real matrices (row-major), N = 2·N2. sq[j] = Ā^(2^j) for the
 * channel and step size last built (sq[0] = Ā); squares are made on demand and shared by
 * every power of that Ā (C̄ recovery, re-attuning, the margin). */
struct dense {
	int N, jmax;     /* sq[0..jmax] allocated */
	int nsq;         /* sq[0..nsq-1] valid */
	int h;           /* channel and step size of sq[0], h = -1: none */
	double dt;
	double **sq;     /* (jmax+1) pointers to (N,N) */
	double *Pw, *T;  /* (N,N) power, scratch */
	double *v, *v2;  /* (N) */
	int *piv;        /* (N) */
	double complex *x; /* (N2) */
	struct lin lin;  /* O(N) step coefficients at (h, dt) */
	void *mem;
};

static void dense_free(struct dense *d)
{
	free(d->mem);
	free(d->sq);
	free(d->piv);
	free(d->x);
	memset(d, 0, sizeof *d);
}

static int bits(long e) /* index of the highest set bit, e >= 1 */
{
	int j = 0;
	while (e >>= 1)
		j++;
	return j;
}

/* emax: the largest exponent any power will use (at least 2^MARGIN_SQUARINGS). */
static int dense_alloc(struct dense *d, int N2, long emax)
{
	size_t N = 2 * (size_t)N2;
	memset(d, 0, sizeof *d);
	d->N = (int)N;
	d->jmax = bits(emax < (1L << MARGIN_SQUARINGS) ? (1L << MARGIN_SQUARINGS) : emax);
	d->h = -1;
	size_t nmat = (size_t)d->jmax + 1 + 2;
	d->mem = malloc(sizeof(double) * (nmat * N * N + 2 * N));
	d->sq = malloc(sizeof *d->sq * ((size_t)d->jmax + 1));
	d->piv = malloc(sizeof *d->piv * N);
	d->x = malloc(sizeof *d->x * (size_t)N2 * 6);
	if (!d->mem || !d->sq || !d->piv || !d->x) {
		dense_free(d);
		return -ENOMEM;
	}
	double *m = d->mem;
	for (int j = 0; j <= d->jmax; j++)
		d->sq[j] = m + (size_t)j * N * N;
	d->Pw = m + ((size_t)d->jmax + 1) * N * N;
	d->T = d->Pw + N * N;
	d->v = d->T + N * N;
	d->v2 = d->v + N;
	d->lin = (struct lin){ .N2 = N2, .Dl = d->x + N2, .El = d->x + 2 * N2, .R = d->x + 3 * N2,
			       .P = d->x + 4 * N2, .B2 = d->x + 5 * N2 };
	return 0;
}

/* sq[0] = dense real matrix of Ā for channel h at step size dt, in coordinates [Re x; Im x]
 * (column j = image of basis vector j under the O(N) step); d->lin is left at (h, dt). */
static void dense_abar(struct dense *d, const struct s4k_params *p, int h, double dt)
{
	if (d->h == h && d->dt == dt)
		return;
	int N2 = p->N2, N = d->N;
	size_t o = (size_t)h * N2;
	double *M = d->sq[0];
	lin_setup(&d->lin, dt, p->A + o, p->P + o, p->B + o);
	for (int j = 0; j < N; j++) {
		memset(d->x, 0, sizeof *d->x * N2);
		d->x[j % N2] = j < N2 ? 1 : I;
		lin_step(&d->lin, d->x, 0);
		for (int i = 0; i < N2; i++) {
			M[(size_t)i * N + j] = creal(d->x[i]);
			M[(size_t)(i + N2) * N + j] = cimag(d->x[i]);
		}
	}
	d->h = h;
	d->dt = dt;
	d->nsq = 1;
}

/* C = A·B (N,N), C distinct from A and B; tiny entries flushed to 0 (no denormals; they are
 * negligible next to the identity in I − Ā^L and next to C̄ in C̄ Ā^L). */
static void matmul(int N, const double *restrict A, const double *restrict B, double *restrict C)
{
	for (int i = 0; i < N; i++) {
		double *restrict c = C + (size_t)i * N;
		memset(c, 0, sizeof *c * N);
		for (int k = 0; k < N; k++) {
			double a = A[(size_t)i * N + k];
			if (a == 0)
				continue;
			const double *restrict b = B + (size_t)k * N;
			for (int j = 0; j < N; j++)
				c[j] += a * b[j];
		}
		for (int j = 0; j < N; j++)
			if (fabs(c[j]) < FLUSH)
				c[j] = 0;
	}
}

static void dense_squares(struct dense *d, int j)
{
	for (; d->nsq <= j; d->nsq++)
		matmul(d->N, d->sq[d->nsq - 1], d->sq[d->nsq - 1], d->sq[d->nsq]);
}

/* d->Pw = Ā^e, e >= 1, as the product of the squares of its set bits. */
static void dense_pow(struct dense *d, long e)
{
	int N = d->N, first = 1;
	size_t nn = (size_t)N * N;
	dense_squares(d, bits(e));
	for (int j = 0; e; j++, e >>= 1) {
		if (!(e & 1))
			continue;
		if (first) {
			memcpy(d->Pw, d->sq[j], sizeof *d->Pw * nn);
			first = 0;
		} else {
			matmul(N, d->Pw, d->sq[j], d->T);
			memcpy(d->Pw, d->T, sizeof *d->Pw * nn);
		}
	}
}

/* out = c·Ā^e (row vector, N), e >= 1, with vector-matrix products only. */
static void dense_vecpow(struct dense *d, const double *c, long e, double *out)
{
	int N = d->N;
	double *t = d->v2 == out ? d->v : d->v2; /* scratch distinct from out */
	dense_squares(d, bits(e));
	memcpy(out, c, sizeof *out * N);
	for (int j = 0; e; j++, e >>= 1) {
		if (!(e & 1))
			continue;
		const double *S = d->sq[j];
		memset(t, 0, sizeof *t * N);
		for (int i = 0; i < N; i++) {
			double ci = out[i];
			const double *row = S + (size_t)i * N;
			for (int k = 0; k < N; k++)
				t[k] += ci * row[k];
		}
		memcpy(out, t, sizeof *out * N);
	}
}

/* Solve A x = b in place (A (N,N) destroyed, b -> x) by LU with partial pivoting.
 * Returns -1 when a pivot is negligible against the largest entry. */
static int lu_solve(int N, double *restrict A, double *restrict b, int *piv)
{
	double amax = 0;
	for (size_t i = 0; i < (size_t)N * N; i++)
		amax = fmax(amax, fabs(A[i]));
	if (!(amax > 0))
		return -1;
	for (int k = 0; k < N; k++) {
		int pk = k;
		for (int i = k + 1; i < N; i++)
			if (fabs(A[(size_t)i * N + k]) > fabs(A[(size_t)pk * N + k]))
				pk = i;
		if (fabs(A[(size_t)pk * N + k]) < 1e-14 * amax)
			return -1;
		piv[k] = pk;
		if (pk != k) {
			for (int j = 0; j < N; j++) {
				double s = A[(size_t)k * N + j];
				A[(size_t)k * N + j] = A[(size_t)pk * N + j];
				A[(size_t)pk * N + j] = s;
			}
			double s = b[k]; b[k] = b[pk]; b[pk] = s;
		}
		double inv = 1 / A[(size_t)k * N + k];
		for (int i = k + 1; i < N; i++) {
			double f = A[(size_t)i * N + k] * inv;
			if (f == 0)
				continue;
			for (int j = k + 1; j < N; j++)
				A[(size_t)i * N + j] -= f * A[(size_t)k * N + j];
			b[i] -= f * b[k];
		}
	}
	for (int k = N - 1; k >= 0; k--) {
		double s = b[k];
		for (int j = k + 1; j < N; j++)
			s -= A[(size_t)k * N + j] * b[j];
		b[k] = s / A[(size_t)k * N + k];
	}
	return 0;
}

/* C̄ of channel h (N2 complex): C̄ = (I − (Ā^l_kernel)^T)^{-1} C̃ at the training dt, or the raw C
 * when l_kernel == 0. In real coordinates the output functional is c = [2 Re C̄; −2 Im C̄] and
 * C̃ = C̄ (I − Ā^l) reads c̃ = c (I − M^l), i.e. (I − M^l)^T c = c̃. */
static int dplr_cbar(struct dense *d, const struct s4k_params *p, int h, double complex *cbar,
		     char *err, size_t errlen)
{
	int N2 = p->N2, N = d->N;
	const double complex *C = p->C + (size_t)h * N2;
	if (p->l_kernel == 0) {
		memcpy(cbar, C, sizeof *cbar * N2);
		return 0;
	}
	dense_abar(d, p, h, p->dt[h]);
	dense_pow(d, p->l_kernel);
	double *A = d->T, *c = d->v;
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++) /* A = (I − Pw)^T */
			A[(size_t)i * N + j] = (i == j) - d->Pw[(size_t)j * N + i];
	for (int n = 0; n < N2; n++) {
		c[n] = 2 * creal(C[n]);
		c[n + N2] = -2 * cimag(C[n]);
	}
	if (lu_solve(N, A, c, d->piv) < 0)
		return s4k_seterr(err, errlen,
				  "channel %d: C~ cannot be turned back into C (I - Abar^%ld is singular: "
				  "a mode does not decay over l_kernel steps).", h, p->l_kernel), -EINVAL;
	for (int n = 0; n < N2; n++)
		cbar[n] = CMPLX(c[n] / 2, -c[n + N2] / 2);
	return 0;
}

/* C̃ attuned to L steps at step size dt: C̃_L = C̄ (I − Ā_dt^L). */
static void dplr_attune(struct dense *d, const struct s4k_params *p, int h, double dt, long L,
			const double complex *cbar, double complex *ct)
{
	int N2 = p->N2;
	double *c = d->v, *cp = d->v2;
	dense_abar(d, p, h, dt);
	for (int n = 0; n < N2; n++) {
		c[n] = 2 * creal(cbar[n]);
		c[n + N2] = -2 * cimag(cbar[n]);
	}
	dense_vecpow(d, c, L, cp); /* cp = c Ā^L (uses d->v as scratch only after reading c) */
	for (int n = 0; n < N2; n++) {
		double re = 2 * creal(cbar[n]) - cp[n], im = -2 * cimag(cbar[n]) - cp[n + N2];
		ct[n] = CMPLX(re / 2, -im / 2);
	}
}

/* 1 − ρ(Ā) for the Ā in sq[0]: ρ^8192 = ρ(sq[13]), estimated by power iteration (the
 * log-growth of a normalised vector over 30 iterations after 30 to settle). If the square
 * has flushed to 0, ρ^8192 < 1e-150 and the bound 1 − 1e-150^(1/8192) ≈ 0.04 is returned. */
static double dense_margin(struct dense *d)
{
	int N = d->N, J = MARGIN_SQUARINGS;
	double m = ldexp(1, J), bound = -expm1(log(FLUSH) / m);
	dense_squares(d, J);
	const double *S = d->sq[J];
	double *v = d->Pw, *w = d->Pw + N, acc = 0; /* Pw is free scratch here */
	for (int i = 0; i < N; i++)
		v[i] = 1 + 0.5 * sin(1.7 * i + 0.3);
	const int warm = 30, its = 30;
	for (int it = 0; it < warm + its; it++) {
		double f = 0, vn = 0;
		for (int i = 0; i < N; i++) {
			double s = 0;
			for (int k = 0; k < N; k++)
				s += S[(size_t)i * N + k] * v[k];
			w[i] = s;
			f += s * s;
			vn += v[i] * v[i];
		}
		f = sqrt(f);
		if (!(f > 0))
			return bound;
		if (it >= warm)
			acc += log(f / sqrt(vn));
		for (int i = 0; i < N; i++)
			v[i] = w[i] / f;
	}
	double margin = -expm1(acc / its / m);
	return margin > bound ? bound : margin;
}

/* ---------------------------------------------------------------- DPLR kernel: Algorithm 1 */

/* The O(L·N) part of Algorithm 1 for one mode n: for every node k,
 * d1 = 1/(a − Λ̃ b), d2 = 1/(a − conj(Λ̃) b) and r'[t] += v_t d1 + conj(v_t) d2 for the four
 * pairs t = (B,C̃), (B,Q), (P,C̃), (P,Q); (a0,a1) = (re,im) of t = 0, etc. A function of its own
 * so that the restrict parameters let the compiler vectorize over k. */
static void cauchy_acc(long nk, const double *restrict ar, const double *restrict ai,
		       const double *restrict br, const double *restrict bi, double lr, double li,
		       const double *restrict vr, const double *restrict vi, double *restrict a0,
		       double *restrict a1, double *restrict a2, double *restrict a3,
		       double *restrict a4, double *restrict a5, double *restrict a6,
		       double *restrict a7)
{
	const double v0r = vr[0], v0i = vi[0], v1r = vr[1], v1i = vi[1];
	const double v2r = vr[2], v2i = vi[2], v3r = vr[3], v3i = vi[3];
	for (long k = 0; k < nk; k++) {
		double lbr = lr * br[k] - li * bi[k], lbi = lr * bi[k] + li * br[k];
		double x1r = ar[k] - lbr, x1i = ai[k] - lbi;
		double cbr = lr * br[k] + li * bi[k], cbi = lr * bi[k] - li * br[k];
		double x2r = ar[k] - cbr, x2i = ai[k] - cbi;
		double m1 = 1 / (x1r * x1r + x1i * x1i), m2 = 1 / (x2r * x2r + x2i * x2i);
		double d1r = x1r * m1, d1i = -x1i * m1, d2r = x2r * m2, d2i = -x2i * m2;
		/* v d1 + conj(v) d2 = vr(d1+d2) − vi(d1i−d2i) + i[vr(d1i+d2i) + vi(d1r−d2r)] */
		double sr = d1r + d2r, si = d1i + d2i, dr = d1r - d2r, di = d1i - d2i;
		a0[k] += v0r * sr - v0i * di;
		a1[k] += v0r * si + v0i * dr;
		a2[k] += v1r * sr - v1i * di;
		a3[k] += v1r * si + v1i * dr;
		a4[k] += v2r * sr - v2i * di;
		a5[k] += v2r * si + v2i * dr;
		a6[k] += v3r * sr - v3i * di;
		a7[k] += v3r * si + v3i * dr;
	}
}

static int dplr_kernel(const struct s4k_params *p, long L, double *K, char *err, size_t errlen)
{
	int N2 = p->N2, rc = 0;
	long nk = L / 2 + 1; /* half spectrum of a real length-L signal */
	struct dense d;
	double *ab = malloc(sizeof *ab * 12 * (size_t)nk);
	double complex *cv = malloc(sizeof *cv * 2 * (size_t)N2);
	fftw_complex *in = fftw_malloc(sizeof *in * (size_t)nk);
	double *out = fftw_malloc(sizeof *out * (size_t)L);
	fftw_plan plan = NULL;
	long emax = L > p->l_kernel ? L : p->l_kernel;
	if (dense_alloc(&d, N2, emax) < 0 || !ab || !cv || !in || !out) {
		rc = -ENOMEM;
		s4k_seterr(err, errlen, "out of memory for the DPLR kernel (L = %ld).", L);
		goto done;
	}
	s4k_fftw_lock();
	plan = fftw_plan_dft_c2r_1d((int)L, in, out, FFTW_ESTIMATE);
	s4k_fftw_unlock();
	if (!plan) {
		rc = -ENOMEM;
		s4k_seterr(err, errlen, "FFTW could not plan an inverse FFT of length %ld.", L);
		goto done;
	}
	/* nodes: a = 2(1 − ω), b = 1 + ω, ω = exp(−iθ), θ = 2πk/L; half-angle forms keep
	 * 1 − cos θ and 1 + cos θ accurate near both ends */
	double *ar = ab, *ai = ab + nk, *br = ab + 2 * nk, *bi = ab + 3 * nk;
	double *acc = ab + 4 * nk; /* 8 arrays (nk): re/im of r'[B,C], r'[B,Q], r'[P,C], r'[P,Q] */
	for (long k = 0; k < nk; k++) {
		double th = 2 * M_PI * (double)k / (double)L;
		double s2 = sin(th / 2), c2 = cos(th / 2), s = sin(th);
		ar[k] = 4 * s2 * s2;
		ai[k] = 2 * s;
		br[k] = 2 * c2 * c2;
		bi[k] = -s;
		if (2 * k == L) { /* the Nyquist node exactly: ω = −1, a = 4, b = 0 */
			ar[k] = 4;
			ai[k] = br[k] = bi[k] = 0;
		}
	}
	ar[0] = ai[0] = bi[0] = 0; /* ω = 1 exactly: a = 0, b = 2 */
	br[0] = 2;
	double complex *ct = cv, *cbar = cv + N2;
	for (int h = 0; h < p->H; h++) {
		size_t o = (size_t)h * N2;
		double dt = p->dt[h] * p->rate;
		if (p->rate == 1.0 && L == p->l_kernel) {
			memcpy(ct, p->C + o, sizeof *ct * N2);
		} else {
			rc = dplr_cbar(&d, p, h, cbar, err, errlen);
			if (rc < 0)
				goto done;
			dplr_attune(&d, p, h, dt, L, cbar, ct);
		}
		memset(acc, 0, sizeof *acc * 8 * (size_t)nk);
		for (int n = 0; n < N2; n++) {
			double complex lam = dt * p->A[o + n], Pn = p->P[o + n], Bn = p->B[o + n];
			double complex Qn = conj(Pn);
			double complex v[4] = { Bn * ct[n] * dt, Bn * Qn * dt, Pn * ct[n] * dt,
						Pn * Qn * dt };
			double lr = creal(lam), li = cimag(lam);
			double vr[4], vi[4];
			for (int t = 0; t < 4; t++) {
				vr[t] = creal(v[t]);
				vi[t] = cimag(v[t]);
			}
			cauchy_acc(nk, ar, ai, br, bi, lr, li, vr, vi, acc, acc + nk, acc + 2 * nk,
				   acc + 3 * nk, acc + 4 * nk, acc + 5 * nk, acc + 6 * nk, acc + 7 * nk);
		}
		for (long k = 0; k < nk; k++) {
			double complex rbc = CMPLX(acc[k], acc[nk + k]);
			double complex rbq = CMPLX(acc[2 * nk + k], acc[3 * nk + k]);
			double complex rpc = CMPLX(acc[4 * nk + k], acc[5 * nk + k]);
			double complex rpq = CMPLX(acc[6 * nk + k], acc[7 * nk + k]);
			double complex b = CMPLX(br[k], bi[k]);
			double complex kh = 2 * (rbc - b * rbq * rpc / (1 + b * rpq));
			in[k] = kh; /* fftw_complex is double complex: <complex.h> came first */
		}
		fftw_execute_dft_c2r(plan, in, out);
		double *Kh = K + (size_t)h * L, inv = 1.0 / (double)L;
		for (long l = 0; l < L; l++)
			Kh[l] = out[l] * inv;
	}
done:
	if (plan) {
		s4k_fftw_lock();
		fftw_destroy_plan(plan);
		s4k_fftw_unlock();
	}
	fftw_free(in);
	fftw_free(out);
	free(ab);
	free(cv);
	dense_free(&d);
	return rc;
}

int s4k_kernel(const struct s4k_params *p, long L, double *K, char *err, size_t errlen)
{
	int rc = check_params(p, err, errlen);
	if (rc < 0)
		return rc;
	if (L < 1 || L > MAX_L)
		return s4k_seterr(err, errlen, "the kernel length %ld is out of range (1..%ld).", L,
				  MAX_L), -EINVAL;
	if (!K)
		return s4k_seterr(err, errlen, "no output buffer was given for the kernel."), -EINVAL;
	rc = p->family == S4K_DIAG ? diag_kernel(p, L, K, err, errlen)
				   : dplr_kernel(p, L, K, err, errlen);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < (size_t)p->H * (size_t)L; i++)
		if (!isfinite(K[i]))
			return s4k_seterr(err, errlen,
					  "channel %zu: the kernel is not finite at lag %zu (parameters out "
					  "of double range, or a mode on the unit circle).", i / (size_t)L,
					  i % (size_t)L), -EINVAL;
	return 0;
}

/* ---------------------------------------------------------------- step mode */

/* Round z to float complex with |result| <= |z| (see the drift policy above). */
static float complex to_float_shrink(double complex z)
{
	float re = (float)creal(z), im = (float)cimag(z);
	double m = cabs(z);
	for (int i = 0; i < 8 && hypot((double)re, (double)im) > m; i++) {
		re = nextafterf(re, 0);
		im = nextafterf(im, 0);
	}
	return CMPLXF(re, im);
}

/* Round g = dA - 1 to float with |1 + g_float| <= m = |dA|: move 1 + g toward the origin. */
static float complex to_float_shrink_m1(double complex g, double m)
{
	float re = (float)creal(g), im = (float)cimag(g);
	for (int i = 0; i < 8 && cabs(CMPLX(1 + (double)re, (double)im)) > m; i++) {
		re = nextafterf(re, 1 + (double)re > 0 ? -INFINITY : INFINITY);
		im = nextafterf(im, 0);
	}
	return CMPLXF(re, im);
}

/* 0 when every float coefficient is finite, else -EINVAL naming the channel. The block is
 * narr complex (H, N2) arrays, then (DPLR) c2 (H), then k. */
static int check_float(const struct s4k_step *st, int narr, char *err, size_t errlen)
{
	size_t hn = (size_t)st->H * st->N2, nf = 2 * narr * hn;
	const float *m = st->mem;
	for (size_t i = 0; i < nf; i++)
		if (!isfinite(m[i]))
			return s4k_seterr(err, errlen,
					  "channel %zu: a step coefficient overflows single precision.",
					  (i / 2 % hn) / (size_t)st->N2), -EINVAL;
	for (int h = 0; st->c2 && h < st->H; h++)
		if (!isfinite(st->c2[h]))
			return s4k_seterr(err, errlen,
					  "channel %d: a step coefficient overflows single precision.", h),
			       -EINVAL;
	size_t rows = st->family == S4K_DIAG ? 4 : 10;
	for (int h0 = 0, T; h0 < st->H; h0 += T) {
		T = s4k_tile_width(st->H, h0);
		const float *kt = st->k + (size_t)h0 * st->N2 * rows; // (N2, rows, T)
		for (size_t i = 0; i < (size_t)st->N2 * rows * T; i++)
			if (!isfinite(kt[i]))
				return s4k_seterr(err, errlen,
						  "channel %zu: a step coefficient overflows single precision.",
						  h0 + i % (size_t)T), -EINVAL;
	}
	return 0;
}

/* Fill st->k, the tiled split re/im copy that s4k_step() reads (layout in s4k.h), from the
 * (H, N2) complex arrays. S4D's readout 2 dC.dB is formed in double from the float dC and dB. */
static void pack(struct s4k_step *st)
{
	const int H = st->H, N2 = st->N2;
	int diag = st->family == S4K_DIAG, rows = diag ? 4 : 10;
	const float complex *src[5] = { st->W, st->G, st->DP, st->DB, st->dC }; /* each (H, N2) */
	float f[5] = { 2, 1, 1, 1, 1 };
	if (diag)
		src[0] = st->G, f[0] = 1, src[1] = NULL; /* G, then 2 dC.dB */
	for (int h0 = 0, T; h0 < H; h0 += T) {
		T = s4k_tile_width(H, h0);
		float *kt = st->k + (size_t)h0 * N2 * rows; // (N2, rows, T)
		for (int n = 0; n < N2; n++)
			for (int r = 0; r < rows / 2; r++) {
				float *re = kt + ((size_t)n * rows + 2 * r) * T, *im = re + T;
				for (int j = 0; j < T; j++) {
					size_t i = (size_t)(h0 + j) * N2 + n;
					float complex v = src[r] ? f[r] * src[r][i] :
						(float complex)(2 * (double complex)st->dC[i] * st->dB[i]);
					re[j] = crealf(v);
					im[j] = cimagf(v);
				}
			}
	}
}

size_t s4k_state_len(const struct s4k_step *st)
{
	return (size_t)st->H * (size_t)st->N2;
}

void s4k_step_fini(struct s4k_step *st)
{
	if (!st)
		return;
	free(st->mem);
	memset(st, 0, sizeof *st);
}

int s4k_step_init(struct s4k_step *st, const struct s4k_params *p, char *err, size_t errlen)
{
	if (!st)
		return s4k_seterr(err, errlen, "no step structure was given."), -EINVAL;
	memset(st, 0, sizeof *st);
	int rc = check_params(p, err, errlen);
	if (rc < 0)
		return rc;
	int H = p->H, N2 = p->N2;
	size_t hn = (size_t)H * N2, narr = p->family == S4K_DIAG ? 4 : 11;
	size_t nk = p->family == S4K_DIAG ? 2 : 5; /* the packed k: 2 nk floats per (h, n) */
	/* narr complex arrays (H, N2), then c2 (H) floats (alignment of float complex = float),
	 * then k */
	size_t c2len = ((size_t)H + 1) / 2;
	float complex *m = calloc((narr + nk) * hn + c2len, sizeof *m);
	if (!m)
		return s4k_seterr(err, errlen, "out of memory for the step coefficients."), -ENOMEM;
	*st = (struct s4k_step){ .H = H, .N2 = N2, .family = p->family, .mem = m,
				 .k = (float *)(m + narr * hn + c2len), .min_margin = INFINITY };
	if (p->family == S4K_DIAG) {
		st->dA = m;
		st->dB = m + hn;
		st->dC = m + 2 * hn;
		st->G = m + 3 * hn;
		for (int h = 0; h < H; h++) {
			double dt = p->dt[h] * p->rate;
			for (int n = 0; n < N2; n++) {
				size_t i = (size_t)h * N2 + n;
				double complex lam, dB;
				diag_disc(p->disc, dt, p->A[i], p->B[i], &lam, &dB);
				double mod = exp(creal(lam)); /* |dA| */
				st->dA[i] = to_float_shrink(cexp_flush(lam));
				st->G[i] = to_float_shrink_m1(cexpm1(lam), mod);
				st->dB[i] = (float complex)dB;
				st->dC[i] = (float complex)p->C[i];
				double margin = -expm1(creal(lam));
				if (margin < st->min_margin)
					st->min_margin = margin;
			}
		}
		pack(st);
		rc = check_float(st, (int)narr, err, errlen);
		if (rc < 0)
			s4k_step_fini(st);
		return rc;
	}
	st->dB = m;
	st->dC = m + hn;
	st->Dl = m + 2 * hn;
	st->El = m + 3 * hn;
	st->P = m + 4 * hn;
	st->Q = m + 5 * hn;
	st->R = m + 6 * hn;
	st->G = m + 7 * hn;
	st->W = m + 8 * hn;
	st->DP = m + 9 * hn;
	st->DB = m + 10 * hn;
	st->c2 = (float *)(m + 11 * hn);
	struct dense d;
	double complex *cbar = malloc(sizeof *cbar * (size_t)N2);
	if (!cbar || dense_alloc(&d, N2, p->l_kernel) < 0) {
		free(cbar);
		s4k_step_fini(st);
		return s4k_seterr(err, errlen, "out of memory for the step coefficients."), -ENOMEM;
	}
	for (int h = 0; h < H; h++) {
		size_t o = (size_t)h * N2;
		rc = dplr_cbar(&d, p, h, cbar, err, errlen); /* at the training dt */
		if (rc < 0)
			break;
		dense_abar(&d, p, h, p->dt[h] * p->rate); /* also leaves d.lin at dt·rate */
		double margin = dense_margin(&d);
		if (margin < st->min_margin)
			st->min_margin = margin;
		const struct lin *c = &d.lin;
		double c2 = 0;
		for (int n = 0; n < N2; n++) {
			double complex G = 2 * p->A[o + n] * c->Dl[n]; /* Dl El - 1, no cancellation */
			st->dB[o + n] = (float complex)c->B2[n];
			st->dC[o + n] = (float complex)(2 * cbar[n]);
			st->Dl[o + n] = (float complex)c->Dl[n];
			st->El[o + n] = (float complex)c->El[n];
			st->P[o + n] = (float complex)c->P[n];
			st->Q[o + n] = (float complex)conj(c->P[n]);
			st->R[o + n] = (float complex)c->R[n];
			st->G[o + n] = (float complex)G;
			st->W[o + n] = (float complex)(conj(c->P[n]) * (2 + G) / c->den);
			st->DP[o + n] = (float complex)(c->Dl[n] * c->P[n]);
			st->DB[o + n] = (float complex)(c->Dl[n] * c->B2[n]);
			c2 += 2 * creal(c->R[n] * c->B2[n]);
		}
		st->c2[h] = (float)c2;
	}
	free(cbar);
	dense_free(&d);
	if (rc == 0) {
		pack(st);
		rc = check_float(st, (int)narr, err, errlen);
	}
	if (rc < 0)
		s4k_step_fini(st);
	return rc;
}
