/* test_s4k.c - kernels and step of model/s4k against independent double-precision references.
 *
 * References are built here from the continuous-time definitions, not from s4k's code paths:
 *   S4D:  dA, dB from exp() / the bilinear formula, impulse response by stepping in double.
 *   DPLR: the dense complex NM×NM A = diag(Λ, conj Λ) − p p^H (p = [P; conj P]), bilinear
 *         Ā = (I − dt/2 A)^{-1}(I + dt/2 A), B̄ = (I − dt/2 A)^{-1} dt [B; conj B] by Gaussian
 *         elimination, a random true output row C̄, the trained C̃ = C̄ (I − Ā^l_kernel) by
 *         complex repeated squaring, and the impulse response Re(C̄ Ā^l B̄) by dense stepping.
 * s4k gets only (Λ, P, B, C̃, l_kernel), so it must recover C̄ itself wherever it needs it.
 * Parameters: S4D-Lin (A_n = −½ − iπn) and random stable A; DPLR from the HiPPO-LegS NPLR
 * (diagonalised here with a complex Jacobi eigensolver) and random stable Λ with random P.
 * dt is log-uniform in [1e-3, 1e-1]. Errors are max |err| / max |reference|.
 */
#include <complex.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fftw3.h>
#include <jansson.h>

#include "common/err.h"
#include "model/s4k.h"
#include "model/st.h"

#ifndef CMPLX /* glibc's <complex.h> defines CMPLX/CMPLXF for GCC only */
#define CMPLX(x, y) ((union { double complex z; double p[2]; }){ .p = { (x), (y) } }).z
#endif
#ifndef CMPLXF
#define CMPLXF(x, y) ((union { float complex z; float p[2]; }){ .p = { (x), (y) } }).z
#endif

static int failures;

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			failures++;                                           \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			printf(__VA_ARGS__);                                  \
			printf("\n");                                         \
		}                                                             \
	} while (0)

#define NM2 32          /* stored modes */
#define NM (2 * NM2)    /* full state size */
#define LBIG 16000
#define LODD 4999

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double urand(void) /* [0, 1) */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * 0x1p-53;
}

static double grand(void)
{
	double u = urand(), v = urand();
	return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static double complex cgrand(void)
{
	return CMPLX(grand(), grand()) / sqrt(2.0);
}

static double log_uniform_dt(void)
{
	return exp(log(1e-3) + urand() * (log(1e-1) - log(1e-3)));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rel_err(const double *a, const double *ref, long n)
{
	double e = 0, m = 0;
	for (long i = 0; i < n; i++) {
		e = fmax(e, fabs(a[i] - ref[i]));
		m = fmax(m, fabs(ref[i]));
	}
	return e / m;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);
	if (!p) {
		printf("out of memory\n");
		exit(1);
	}
	return p;
}

/* ---------------------------------------------------------------- dense complex algebra */

/* Solve A X = Bm for (n,n) A and (n,m) Bm, in place (Bm -> X), Gaussian elimination with
 * partial pivoting. */
static void csolve(int n, int m, double complex *A, double complex *Bm)
{
	for (int k = 0; k < n; k++) {
		int p = k;
		for (int i = k + 1; i < n; i++)
			if (cabs(A[i * n + k]) > cabs(A[p * n + k]))
				p = i;
		for (int j = 0; j < n; j++) {
			double complex s = A[k * n + j]; A[k * n + j] = A[p * n + j]; A[p * n + j] = s;
		}
		for (int j = 0; j < m; j++) {
			double complex s = Bm[k * m + j]; Bm[k * m + j] = Bm[p * m + j]; Bm[p * m + j] = s;
		}
		for (int i = k + 1; i < n; i++) {
			double complex f = A[i * n + k] / A[k * n + k];
			for (int j = k; j < n; j++)
				A[i * n + j] -= f * A[k * n + j];
			for (int j = 0; j < m; j++)
				Bm[i * m + j] -= f * Bm[k * m + j];
		}
	}
	for (int k = n - 1; k >= 0; k--)
		for (int j = 0; j < m; j++) {
			double complex s = Bm[k * m + j];
			for (int i = k + 1; i < n; i++)
				s -= A[k * n + i] * Bm[i * m + j];
			Bm[k * m + j] = s / A[k * n + k];
		}
}

static void cmatmul(int n, const double complex *A, const double complex *B, double complex *C)
{
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			double complex s = 0;
			for (int k = 0; k < n; k++)
				s += A[i * n + k] * B[k * n + j];
			C[i * n + j] = s;
		}
}

/* Dense bilinear Ā (NM,NM) and B̄ (NM) of one DPLR channel on the conjugate-extended space. */
static void dplr_dense(const double complex *Lam, const double complex *P, const double complex *B,
		       double dt, double complex *Abar, double complex *bbar)
{
	static double complex A[NM * NM], M1[NM * NM], X[NM * (NM + 1)];
	double complex lf[NM], pf[NM], bf[NM];
	for (int n = 0; n < NM2; n++) {
		lf[n] = Lam[n]; lf[n + NM2] = conj(Lam[n]);
		pf[n] = P[n]; pf[n + NM2] = conj(P[n]);
		bf[n] = B[n]; bf[n + NM2] = conj(B[n]);
	}
	for (int i = 0; i < NM; i++)
		for (int j = 0; j < NM; j++)
			A[i * NM + j] = (i == j ? lf[i] : 0) - pf[i] * conj(pf[j]);
	for (int i = 0; i < NM; i++) {
		for (int j = 0; j < NM; j++) {
			M1[i * NM + j] = (i == j) - dt / 2 * A[i * NM + j];
			X[i * (NM + 1) + j] = (i == j) + dt / 2 * A[i * NM + j];
		}
		X[i * (NM + 1) + NM] = dt * bf[i];
	}
	csolve(NM, NM + 1, M1, X);
	for (int i = 0; i < NM; i++) {
		for (int j = 0; j < NM; j++)
			Abar[i * NM + j] = X[i * (NM + 1) + j];
		bbar[i] = X[i * (NM + 1) + NM];
	}
}

/* K[l] = Re(c Ā^l b̄), l < L, by stepping x <- Ā x in double (real arithmetic for speed). */
static void dense_impulse(const double complex *Abar, const double complex *bbar,
			  const double complex *cfull, long L, double *K)
{
	static double ar[NM * NM], ai[NM * NM];
	double xr[NM], xi[NM], yr[NM], yi[NM];
	for (int i = 0; i < NM * NM; i++) {
		ar[i] = creal(Abar[i]);
		ai[i] = cimag(Abar[i]);
	}
	for (int i = 0; i < NM; i++) {
		xr[i] = creal(bbar[i]);
		xi[i] = cimag(bbar[i]);
	}
	for (long l = 0; l < L; l++) {
		double k = 0;
		for (int i = 0; i < NM; i++)
			k += creal(cfull[i]) * xr[i] - cimag(cfull[i]) * xi[i];
		K[l] = k;
		for (int i = 0; i < NM; i++) {
			double sr = 0, si = 0;
			const double *rr = ar + i * NM, *ri = ai + i * NM;
			for (int j = 0; j < NM; j++) {
				sr += rr[j] * xr[j] - ri[j] * xi[j];
				si += rr[j] * xi[j] + ri[j] * xr[j];
			}
			yr[i] = sr;
			yi[i] = si;
		}
		memcpy(xr, yr, sizeof xr);
		memcpy(xi, yi, sizeof xi);
	}
}

/* C̃ (NM2) = first half of C̄_full (I − Ā^l). */
static void make_ctilde(const double complex *Abar, const double complex *cfull, long l,
			double complex *ct)
{
	static double complex Pw[NM * NM], Sq[NM * NM], T[NM * NM];
	for (int i = 0; i < NM * NM; i++)
		Pw[i] = (i % (NM + 1)) == 0;
	memcpy(Sq, Abar, sizeof Sq);
	for (long e = l; e; e >>= 1) {
		if (e & 1) {
			cmatmul(NM, Pw, Sq, T);
			memcpy(Pw, T, sizeof T);
		}
		cmatmul(NM, Sq, Sq, T);
		memcpy(Sq, T, sizeof T);
	}
	double complex full[NM];
	for (int j = 0; j < NM; j++) {
		double complex s = cfull[j];
		for (int i = 0; i < NM; i++)
			s -= cfull[i] * Pw[i * NM + j];
		full[j] = s;
	}
	double asym = 0;
	for (int n = 0; n < NM2; n++) {
		ct[n] = full[n];
		asym = fmax(asym, cabs(full[n + NM2] - conj(full[n])));
	}
	CHECK(asym < 1e-9, "C~ is not conjugate-symmetric (%g)", asym);
}

/* HiPPO-LegS NPLR: Λ (NM2, Im < 0), P̃ = V^* P, B̃ = V^* B via a complex Jacobi eigensolver of
 * the Hermitian −iS, where A_legs + P Pᵀ = −½ I + S. */
static void legs_nplr(double complex *Lam, double complex *Pt, double complex *Bt)
{
	static double complex M[NM * NM], V[NM * NM];
	for (int n = 0; n < NM; n++)
		for (int k = 0; k < NM; k++) {
			double s = n > k ? -0.5 : n < k ? 0.5 : 0;
			M[n * NM + k] = -I * s * sqrt(2.0 * n + 1) * sqrt(2.0 * k + 1);
			V[n * NM + k] = n == k;
		}
	for (int sweep = 0; sweep < 50; sweep++) {
		double off = 0;
		for (int p = 0; p < NM; p++)
			for (int q = p + 1; q < NM; q++)
				off += cabs(M[p * NM + q]) * cabs(M[p * NM + q]);
		if (off < 1e-26)
			break;
		for (int p = 0; p < NM; p++)
			for (int q = p + 1; q < NM; q++) {
				double complex m = M[p * NM + q];
				double g = cabs(m);
				if (g < 1e-300)
					continue;
				double complex e = m / g;
				double a = creal(M[p * NM + p]), b = creal(M[q * NM + q]);
				double th = (b - a) / (2 * g);
				double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
				double c = 1 / sqrt(t * t + 1), s = t * c;
				/* G = diag(1, conj e)·[[c, s], [−s, c]] on (p, q); M <- G^H M G, V <- V G */
				double complex gpp = c, gqp = -s * conj(e), gpq = s, gqq = c * conj(e);
				for (int k = 0; k < NM; k++) {
					double complex mp = M[k * NM + p], mq = M[k * NM + q];
					M[k * NM + p] = mp * gpp + mq * gqp;
					M[k * NM + q] = mp * gpq + mq * gqq;
					double complex vp = V[k * NM + p], vq = V[k * NM + q];
					V[k * NM + p] = vp * gpp + vq * gqp;
					V[k * NM + q] = vp * gpq + vq * gqq;
				}
				for (int k = 0; k < NM; k++) {
					double complex mp = M[p * NM + k], mq = M[q * NM + k];
					M[p * NM + k] = conj(gpp) * mp + conj(gqp) * mq;
					M[q * NM + k] = conj(gpq) * mp + conj(gqq) * mq;
				}
			}
	}
	int cnt = 0;
	for (int j = 0; j < NM; j++) {
		double sigma = creal(M[j * NM + j]); /* eigenvalue iσ of S */
		if (sigma >= 0)
			continue;
		if (cnt == NM2)
			break;
		Lam[cnt] = CMPLX(-0.5, sigma);
		double complex pt = 0, bt = 0;
		for (int n = 0; n < NM; n++) {
			pt += conj(V[n * NM + j]) * sqrt(n + 0.5);
			bt += conj(V[n * NM + j]) * sqrt(2.0 * n + 1);
		}
		Pt[cnt] = pt;
		Bt[cnt] = bt;
		cnt++;
	}
	CHECK(cnt == NM2, "LegS NPLR gave %d modes with negative imaginary part, want %d", cnt, NM2);
}

/* ---------------------------------------------------------------- S4D */

static void diag_naive(enum s4k_disc disc, double dt, const double complex *A,
		       const double complex *B, const double complex *C, long L, double *K)
{
	double complex dA[NM2], dB[NM2], x[NM2] = { 0 };
	for (int n = 0; n < NM2; n++) {
		if (disc == S4K_ZOH) {
			dA[n] = cexp(dt * A[n]);
			dB[n] = B[n] * (dA[n] - 1) / A[n];
		} else {
			dA[n] = (1 + dt * A[n] / 2) / (1 - dt * A[n] / 2);
			dB[n] = B[n] * dt / (1 - dt * A[n] / 2);
		}
	}
	for (long l = 0; l < L; l++) {
		double y = 0;
		for (int n = 0; n < NM2; n++) {
			x[n] = dA[n] * x[n] + (l == 0 ? dB[n] : 0);
			y += 2 * creal(C[n] * x[n]);
		}
		K[l] = y;
	}
}

/* Float step responses over L steps vs the double kernel: impulse, and a random input against
 * the double causal convolution (FFT, n = 2L). Returns the larger relative error. */
static double step_vs_kernel(const struct s4k_params *p, const double *K, long L, const char *name)
{
	char err[S4K_ERR_LEN] = "";
	struct s4k_step st;
	int rc = s4k_step_init(&st, p, err, sizeof err);
	CHECK(rc == 0, "%s: s4k_step_init: %s", name, err);
	if (rc)
		return INFINITY;
	int H = p->H;
	size_t sl = s4k_state_len(&st);
	float complex *x = xcalloc(sl, sizeof *x);
	float *u = xcalloc(H, sizeof *u), *y = xcalloc(H, sizeof *y);
	double *yi = xcalloc((size_t)H * L, sizeof *yi), *yr = xcalloc((size_t)H * L, sizeof *yr);
	double *in = xcalloc((size_t)L, sizeof *in);
	for (long t = 0; t < L; t++) { /* impulse */
		for (int h = 0; h < H; h++)
			u[h] = t == 0;
		s4k_step(&st, x, u, y);
		for (int h = 0; h < H; h++)
			yi[(size_t)h * L + t] = y[h];
	}
	memset(x, 0, sl * sizeof *x);
	for (long t = 0; t < L; t++) { /* random input, the same on every channel */
		in[t] = grand();
		for (int h = 0; h < H; h++)
			u[h] = (float)in[t];
		s4k_step(&st, x, u, y);
		for (int h = 0; h < H; h++)
			yr[(size_t)h * L + t] = y[h];
	}
	long nf = 2 * L;
	double *buf = fftw_malloc(sizeof *buf * nf), *ref = xcalloc((size_t)L, sizeof *ref);
	fftw_complex *U = fftw_malloc(sizeof *U * (nf / 2 + 1)), *F = fftw_malloc(sizeof *F * (nf / 2 + 1));
	s4k_fftw_lock();
	fftw_plan fwd = fftw_plan_dft_r2c_1d((int)nf, buf, U, FFTW_ESTIMATE);
	fftw_plan bwd = fftw_plan_dft_c2r_1d((int)nf, U, buf, FFTW_ESTIMATE);
	s4k_fftw_unlock();
	memset(buf, 0, sizeof *buf * nf);
	memcpy(buf, in, sizeof *in * L);
	fftw_execute_dft_r2c(fwd, buf, F);
	double emax_i = 0, emax_r = 0;
	for (int h = 0; h < H; h++) {
		const double *Kh = K + (size_t)h * L;
		emax_i = fmax(emax_i, rel_err(yi + (size_t)h * L, Kh, L));
		memset(buf, 0, sizeof *buf * nf);
		memcpy(buf, Kh, sizeof *Kh * L);
		fftw_execute_dft_r2c(fwd, buf, U);
		for (long k = 0; k <= nf / 2; k++)
			U[k] *= F[k] / (double)nf;
		fftw_execute_dft_c2r(bwd, U, buf);
		memcpy(ref, buf, sizeof *ref * L);
		emax_r = fmax(emax_r, rel_err(yr + (size_t)h * L, ref, L));
	}
	printf("  %-34s float step vs double kernel: impulse %.2e, random input %.2e (margin %.3g)\n",
	       name, emax_i, emax_r, st.min_margin);
	s4k_fftw_lock();
	fftw_destroy_plan(fwd);
	fftw_destroy_plan(bwd);
	s4k_fftw_unlock();
	fftw_free(buf);
	fftw_free(U);
	fftw_free(F);
	free(ref);
	free(in);
	free(x);
	free(u);
	free(y);
	free(yi);
	free(yr);
	s4k_step_fini(&st);
	return fmax(emax_i, emax_r);
}

static void test_diag(void)
{
	enum { H = 4 };
	double dt[H];
	static double complex A[H * NM2], B[H * NM2], C[H * NM2];
	for (int h = 0; h < H; h++) {
		dt[h] = log_uniform_dt();
		for (int n = 0; n < NM2; n++) {
			int i = h * NM2 + n;
			/* channels 0, 1: S4D-Lin; 2, 3: random stable A, incl. slow and fast modes */
			A[i] = h < 2 ? CMPLX(-0.5, -M_PI * n)
				     : CMPLX(-exp(-4 + 6 * urand()), -100 * urand());
			B[i] = h < 2 ? 1 : cgrand();
			C[i] = cgrand();
		}
	}
	dt[0] = 1e-3; /* the extremes of the range */
	dt[1] = 1e-1;
	double *K = xcalloc((size_t)H * LBIG, sizeof *K), *R = xcalloc(LBIG, sizeof *R);
	char err[S4K_ERR_LEN];
	for (int disc = 0; disc < 2; disc++) {
		const char *dn = disc == S4K_ZOH ? "zoh" : "bilinear";
		struct s4k_params p = { .H = H, .N2 = NM2, .family = S4K_DIAG, .disc = disc, .dt = dt,
					.A = A, .B = B, .C = C, .rate = 1.0 };
		long Ls[4] = { LBIG, LODD, LBIG / 2, 1 };
		for (int c = 0; c < 4; c++) {
			long L = Ls[c];
			p.rate = c == 2 ? 2.0 : 1.0;
			double t0 = now();
			int rc = s4k_kernel(&p, L, K, err, sizeof err);
			double t1 = now();
			CHECK(rc == 0, "s4k_kernel: %s", err);
			double e = 0;
			for (int h = 0; h < H; h++) {
				double dte = dt[h] * p.rate;
				diag_naive(disc, dte, A + h * NM2, B + h * NM2, C + h * NM2, L, R);
				e = fmax(e, rel_err(K + (size_t)h * L, R, L));
			}
			printf("  S4D %-8s L=%-5ld rate=%g  kernel vs naive: %.2e  (%.1f ms)\n", dn, L,
			       p.rate, e, 1e3 * (t1 - t0));
			CHECK(e <= 1e-6, "S4D %s L=%ld rate %g: kernel error %g", dn, L, p.rate, e);
			if (c == 0 || c == 2) {
				char name[64];
				snprintf(name, sizeof name, "S4D %s L=%ld rate=%g", dn, L, p.rate);
				double es = step_vs_kernel(&p, K, L, name);
				CHECK(es <= 1e-4, "%s: step error %g", name, es);
			}
		}
	}
	/* margin and the drift policy: a near-integrator mode */
	A[3] = CMPLX(-1e-9, -0.3);
	struct s4k_params p = { .H = H, .N2 = NM2, .family = S4K_DIAG, .disc = S4K_ZOH, .dt = dt,
				.A = A, .B = B, .C = C, .rate = 1.0 };
	struct s4k_step st;
	CHECK(s4k_step_init(&st, &p, err, sizeof err) == 0, "%s", err);
	double want = INFINITY;
	int grew = 0;
	for (int h = 0; h < H; h++)
		for (int n = 0; n < NM2; n++) {
			double complex dA = cexp(dt[h] * A[h * NM2 + n]);
			want = fmin(want, 1 - cabs(dA));
			grew += cabs((double complex)st.dA[h * NM2 + n]) > cabs(dA);
		}
	CHECK(fabs(st.min_margin - want) <= 1e-6 * want + 1e-15, "margin %g, want %g", st.min_margin,
	      want);
	CHECK(grew == 0, "%d float dA have a larger modulus than the exact dA", grew);
	printf("  S4D margin with a near-integrator mode: %.3g (exact %.3g)\n", st.min_margin, want);
	s4k_step_fini(&st);
	free(K);
	free(R);
}

/* ---------------------------------------------------------------- DPLR */

static void test_dplr(void)
{
	enum { H = 3 };
	double dt[H];
	static double complex Lam[H * NM2], P[H * NM2], B[H * NM2], Cb[H * NM2], Ct[H * NM2], Ct2[H * NM2];
	static double complex Abar[H][NM * NM], Abar2[NM * NM], bbar[H][NM], bbar2[NM], cfull[H][NM];
	/* channels 0, 1: LegS NPLR at the two ends of the dt range; 2: random Λ, random P */
	legs_nplr(Lam, P, B);
	memcpy(Lam + NM2, Lam, sizeof *Lam * NM2);
	memcpy(P + NM2, P, sizeof *P * NM2);
	memcpy(B + NM2, B, sizeof *B * NM2);
	dt[0] = 1e-3;
	dt[1] = 1e-1;
	dt[2] = log_uniform_dt();
	for (int n = 0; n < NM2; n++) {
		Lam[2 * NM2 + n] = CMPLX(-exp(-3 + 4 * urand()), -60 * urand());
		P[2 * NM2 + n] = 0.3 * cgrand();
		B[2 * NM2 + n] = cgrand();
	}
	for (int h = 0; h < H; h++) {
		for (int n = 0; n < NM2; n++) {
			Cb[h * NM2 + n] = cgrand();
			cfull[h][n] = Cb[h * NM2 + n];
			cfull[h][n + NM2] = conj(Cb[h * NM2 + n]);
		}
		dplr_dense(Lam + h * NM2, P + h * NM2, B + h * NM2, dt[h], Abar[h], bbar[h]);
		make_ctilde(Abar[h], cfull[h], LBIG, Ct + h * NM2);
		make_ctilde(Abar[h], cfull[h], LODD, Ct2 + h * NM2);
	}
	double *K = xcalloc((size_t)H * LBIG, sizeof *K);
	double *R1 = xcalloc((size_t)H * LBIG, sizeof *R1), *R2 = xcalloc((size_t)H * LBIG / 2, sizeof *R2);
	double t0 = now();
	for (int h = 0; h < H; h++) {
		dense_impulse(Abar[h], bbar[h], cfull[h], LBIG, R1 + (size_t)h * LBIG);
		dplr_dense(Lam + h * NM2, P + h * NM2, B + h * NM2, 2 * dt[h], Abar2, bbar2);
		dense_impulse(Abar2, bbar2, cfull[h], LBIG / 2, R2 + (size_t)h * LBIG / 2);
	}
	printf("  (dense references: %.2f s)\n", now() - t0);
	char err[S4K_ERR_LEN];
	struct {
		const char *name;
		const double complex *C;
		long lk, L;
		double rate;
		const double *ref;
	} cases[] = {
		{ "C~ for L (even L)", Ct, LBIG, LBIG, 1, R1 },
		{ "C~ for L (odd L)", Ct2, LODD, LODD, 1, R1 },
		{ "C~ re-attuned to odd L", Ct, LBIG, LODD, 1, R1 },
		{ "C~ re-attuned to longer L", Ct2, LODD, LBIG, 1, R1 },
		{ "raw C (l_kernel 0)", Cb, 0, LBIG, 1, R1 },
		{ "rate 2", Ct, LBIG, LBIG / 2, 2, R2 },
		{ "re-attuned to L = 2", Ct, LBIG, 2, 1, R1 },
		{ "re-attuned to L = 1", Ct, LBIG, 1, 1, R1 },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct s4k_params p = { .H = H, .N2 = NM2, .family = S4K_DPLR, .disc = S4K_BILINEAR,
					.dt = dt, .A = Lam, .B = B, .C = cases[c].C, .P = P,
					.l_kernel = cases[c].lk, .rate = cases[c].rate };
		long L = cases[c].L;
		t0 = now();
		int rc = s4k_kernel(&p, L, K, err, sizeof err);
		double t1 = now();
		CHECK(rc == 0, "s4k_kernel: %s", err);
		double e = 0;
		long Lref = cases[c].rate == 2 ? LBIG / 2 : LBIG;
		for (int h = 0; h < H; h++) {
			double eh = rel_err(K + (size_t)h * L, cases[c].ref + (size_t)h * Lref, L);
			e = fmax(e, eh);
		}
		printf("  DPLR %-26s L=%-5ld rate=%g  kernel vs naive: %.2e  (%.1f ms)\n",
		       cases[c].name, L, cases[c].rate, e, 1e3 * (t1 - t0));
		CHECK(e <= 1e-6, "DPLR %s: kernel error %g", cases[c].name, e);
		if (c == 0 || c == 5) {
			char name[64];
			snprintf(name, sizeof name, "DPLR L=%ld rate=%g", L, cases[c].rate);
			double es = step_vs_kernel(&p, K, L, name);
			CHECK(es <= 1e-4, "%s: step error %g", name, es);
		}
	}
	/* margin: with P = 0, Ā is diagonal and ρ is known exactly */
	static double complex Z[H * NM2];
	struct s4k_params p = { .H = H, .N2 = NM2, .family = S4K_DPLR, .disc = S4K_BILINEAR, .dt = dt,
				.A = Lam, .B = B, .C = Cb, .P = Z, .l_kernel = 0, .rate = 1 };
	struct s4k_step st;
	CHECK(s4k_step_init(&st, &p, err, sizeof err) == 0, "%s", err);
	double want = INFINITY;
	for (int i = 0; i < H * NM2; i++)
		want = fmin(want, 1 - cabs((1 + dt[i / NM2] * Lam[i] / 2) / (1 - dt[i / NM2] * Lam[i] / 2)));
	CHECK(fabs(st.min_margin - want) <= 1e-3 * want, "DPLR margin %g, want %g", st.min_margin, want);
	printf("  DPLR margin, P = 0: %.6g (exact %.6g)\n", st.min_margin, want);
	s4k_step_fini(&st);
	p.P = P;
	CHECK(s4k_step_init(&st, &p, err, sizeof err) == 0, "%s", err);
	CHECK(st.min_margin > 0 && st.min_margin < 1, "DPLR margin %g", st.min_margin);
	printf("  DPLR margin, LegS and random P: %.6g\n", st.min_margin);
	s4k_step_fini(&st);
	/* LegS alone: A is unitarily similar to HiPPO-LegS, eigenvalues −1..−N, so ρ(Ā) is that of
	 * the eigenvalue −1, although Ā is far from normal */
	p.H = 1;
	CHECK(s4k_step_init(&st, &p, err, sizeof err) == 0, "%s", err);
	want = 1 - (1 - dt[0] / 2) / (1 + dt[0] / 2);
	CHECK(fabs(st.min_margin - want) <= 1e-3 * want, "LegS margin %g, want %g", st.min_margin,
	      want);
	printf("  DPLR margin, LegS dt = %g: %.6g (exact %.6g)\n", dt[0], st.min_margin, want);
	s4k_step_fini(&st);
	free(K);
	free(R1);
	free(R2);
}

/* ---------------------------------------------------------------- error paths */

static void expect_einval(const struct s4k_params *p, long L, const char *what)
{
	char err[S4K_ERR_LEN] = "";
	double K[64];
	int rc = s4k_kernel(p, L, K, err, sizeof err);
	size_t n = strlen(err);
	CHECK(rc == -EINVAL && n > 10 && err[n - 1] == '.', "%s: kernel rc %d, err \"%s\"", what, rc,
	      err);
	printf("  %-28s -> %s\n", what, err);
	if (L == 4) { /* step init shares the validation (L only matters for the kernel) */
		struct s4k_step st;
		err[0] = 0;
		rc = s4k_step_init(&st, p, err, sizeof err);
		CHECK(rc == -EINVAL && strlen(err) > 10 && st.mem == NULL,
		      "%s: step_init rc %d, err \"%s\"", what, rc, err);
		s4k_step_fini(&st);
	}
}

static void test_errors(void)
{
	double dt[2] = { 0.01, 0.01 };
	double complex A[2] = { -0.5 - I, -0.5 - 2 * I }, B[2] = { 1, 1 }, C[2] = { 1, I };
	double complex P[2] = { 0.1, 0.2 };
	struct s4k_params ok = { .H = 2, .N2 = 1, .family = S4K_DIAG, .disc = S4K_ZOH, .dt = dt,
				 .A = A, .B = B, .C = C, .rate = 1.0 };
	char err[S4K_ERR_LEN];
	double K[64];
	CHECK(s4k_kernel(&ok, 4, K, err, sizeof err) == 0, "valid S4D: %s", err);
	struct s4k_params p = ok;
	expect_einval(NULL, 4, "no parameters");
	p.H = 0;
	expect_einval(&p, 4, "H = 0");
	p = ok;
	p.N2 = 0;
	expect_einval(&p, 4, "N2 = 0");
	p = ok;
	expect_einval(&p, 0, "L = 0");
	expect_einval(&p, -5, "L < 0");
	p.family = S4K_DPLR;
	p.P = P;
	p.disc = S4K_ZOH;
	expect_einval(&p, 4, "DPLR with zoh");
	p.disc = S4K_BILINEAR;
	CHECK(s4k_kernel(&p, 4, K, err, sizeof err) == 0, "valid DPLR: %s", err);
	p.N2 = 129;
	expect_einval(&p, 4, "DPLR N2 = 129");
	p.N2 = 1;
	p.l_kernel = -1;
	expect_einval(&p, 4, "l_kernel < 0");
	p.l_kernel = 0;
	p.P = NULL;
	expect_einval(&p, 4, "DPLR without P");
	p = ok;
	p.family = 7;
	expect_einval(&p, 4, "unknown family");
	p = ok;
	p.rate = -1;
	expect_einval(&p, 4, "negative rate");
	p.rate = NAN;
	expect_einval(&p, 4, "NaN rate");
	p = ok;
	dt[1] = NAN;
	expect_einval(&p, 4, "NaN dt");
	dt[1] = 0;
	expect_einval(&p, 4, "dt = 0");
	dt[1] = 0.01;
	A[1] = CMPLX(NAN, 1);
	expect_einval(&p, 4, "NaN in A");
	A[1] = CMPLX(0.5, 1);
	expect_einval(&p, 4, "Re A > 0");
	A[1] = -0.5;
	C[0] = CMPLX(1, INFINITY);
	expect_einval(&p, 4, "infinite C");
	C[0] = 1;
	p.family = S4K_DPLR;
	p.disc = S4K_BILINEAR;
	P[0] = NAN;
	p.P = P;
	expect_einval(&p, 4, "NaN in P");
	P[0] = 0.1;
	p = ok;
	CHECK(s4k_kernel(&p, 4, NULL, err, sizeof err) == -EINVAL, "NULL K accepted");
	B[0] = 1e300; /* finite parameters, but C·B overflows double */
	C[0] = 1e300;
	expect_einval(&p, 4, "kernel overflow");
	C[0] = 1e40; /* fine in double, beyond float range for the step */
	B[0] = 1;
	CHECK(s4k_kernel(&p, 4, K, err, sizeof err) == 0, "C = 1e40: %s", err);
	struct s4k_step st;
	CHECK(s4k_step_init(&st, &p, err, sizeof err) == -EINVAL && st.mem == NULL,
	      "C = 1e40 accepted by the float step");
	printf("  %-28s -> %s\n", "C beyond float range", err);
	B[0] = 1;
	C[0] = 1;
	/* bilinear dt·A = −2 makes dA = 0 exactly (log dA = −inf): K = [2 Re(C dB), 0, 0, ...] */
	double dtz[1] = { 0.01 };
	double complex Az[1] = { -200 }, Bz[1] = { 1 }, Cz[1] = { 0.5 + 0.25 * I };
	struct s4k_params z = { .H = 1, .N2 = 1, .family = S4K_DIAG, .disc = S4K_BILINEAR,
				.dt = dtz, .A = Az, .B = Bz, .C = Cz, .rate = 1 };
	CHECK(s4k_kernel(&z, 40, K, err, sizeof err) == 0 && fabs(K[0] - 0.005) < 1e-15 &&
	      K[1] == 0 && K[39] == 0, "dA = 0: K = %g %g %g (%s)", K[0], K[1], K[39], err);
	struct s4k_step sz;
	CHECK(s4k_step_init(&sz, &z, err, sizeof err) == 0 && sz.min_margin == 1, "dA = 0 step: %s",
	      err);
	s4k_step_fini(&sz);
	/* singular C~ recovery: A = 0 is an integrator, Abar = 1, I - Abar^L is singular */
	double complex A0[1] = { 0 }, P0[1] = { 0 }, B0[1] = { 1 }, C0[1] = { 1 };
	double dt0[1] = { 0.01 };
	struct s4k_params s = { .H = 1, .N2 = 1, .family = S4K_DPLR, .disc = S4K_BILINEAR,
				.dt = dt0, .A = A0, .B = B0, .C = C0, .P = P0, .l_kernel = 100,
				.rate = 1 };
	expect_einval(&s, 4, "singular C~ recovery");
}

/* ---------------------------------------------------------------- golden kernels */

static double *read_tensor(const struct st_file *f, const char *name, size_t want)
{
	const struct st_tensor *t = st_find(f, name);
	CHECK(t && t->numel == want, "tensor %s missing or of the wrong size", name);
	if (!t || t->numel != want)
		return NULL;
	double *v = xcalloc(want, sizeof *v);
	st_read_f64(t, v);
	return v;
}

/* The kernels of every block of the golden models (tests/data, written by tests/model/golden.py)
 * against the PyTorch twin's float64 kernels: an independent implementation of the same
 * contract (docs/format.md: transforms, h % S broadcast, C~ for l_kernel). */
static void test_golden(const char *dir)
{
	const char *names[2] = { "s4d", "dplr" };
	for (int m = 0; m < 2; m++) {
		char path[1024], err[S4K_ERR_LEN];
		snprintf(path, sizeof path, "%s/golden_%s.safetensors", dir, names[m]);
		struct st_file *f = st_open(path, err, sizeof err);
		CHECK(f, "%s", err);
		snprintf(path, sizeof path, "%s/golden_%s_io.safetensors", dir, names[m]);
		struct st_file *io = st_open(path, err, sizeof err);
		CHECK(io, "%s", err);
		if (!f || !io) {
			st_close(f);
			st_close(io);
			continue;
		}
		const char *kn = st_meta(f, "kernel"), *dn = st_meta(f, "disc");
		const char *dtt = st_meta(f, "dt_transform"), *rt = st_meta(f, "real_transform");
		const char *lks = st_meta(f, "l_kernel");
		CHECK(kn && dn && dtt && rt && lks, "golden %s: metadata incomplete", names[m]);
		if (!kn || !dn || !dtt || !rt || !lks) {
			st_close(f);
			st_close(io);
			continue;
		}
		int dplr = strcmp(kn, "dplr") == 0, zoh = strcmp(dn, "zoh") == 0;
		int softplus = strcmp(dtt, "softplus") == 0;
		json_t *lk = json_loads(lks, 0, NULL);
		for (int i = 0;; i++) {
			char nm[128];
			snprintf(nm, sizeof nm, "kernel.%d", i);
			const struct st_tensor *kt = st_find(io, nm);
			if (!kt)
				break;
			int H = (int)kt->shape[0];
			long L = (long)kt->shape[1];
			snprintf(nm, sizeof nm, "blocks.%d.ssm.A_real", i);
			const struct st_tensor *at = st_find(f, nm);
			CHECK(at && at->rank == 2, "%s", nm);
			if (!at)
				break;
			int S = (int)at->shape[0], n2 = (int)at->shape[1];
			double *ref = xcalloc((size_t)H * L, sizeof *ref), *K = xcalloc((size_t)H * L, sizeof *K);
			st_read_f64(kt, ref);
			double *idt, *ar, *ai, *b, *c, *pp = NULL;
			snprintf(nm, sizeof nm, "blocks.%d.ssm.inv_dt", i);
			idt = read_tensor(f, nm, (size_t)H);
			ar = read_tensor(f, at->name, (size_t)S * n2);
			snprintf(nm, sizeof nm, "blocks.%d.ssm.A_imag", i);
			ai = read_tensor(f, nm, (size_t)S * n2);
			snprintf(nm, sizeof nm, "blocks.%d.ssm.B", i);
			b = read_tensor(f, nm, (size_t)S * n2 * 2);
			snprintf(nm, sizeof nm, "blocks.%d.ssm.C", i);
			c = read_tensor(f, nm, (size_t)H * n2 * 2);
			if (dplr) {
				snprintf(nm, sizeof nm, "blocks.%d.ssm.P", i);
				pp = read_tensor(f, nm, (size_t)S * n2 * 2);
			}
			double *dt = xcalloc((size_t)H, sizeof *dt);
			double complex *A = xcalloc((size_t)H * n2, sizeof *A), *B = xcalloc((size_t)H * n2, sizeof *B);
			double complex *C = xcalloc((size_t)H * n2, sizeof *C), *P = xcalloc((size_t)H * n2, sizeof *P);
			for (int h = 0; idt && ar && ai && b && c && (!dplr || pp) && h < H; h++) {
				dt[h] = softplus ? (idt[h] > 20 ? idt[h] : log1p(exp(idt[h]))) : exp(idt[h]);
				for (int n = 0; n < n2; n++) {
					size_t s = (size_t)(h % S) * n2 + n, o = (size_t)h * n2 + n;
					double re = !strcmp(rt, "exp") ? -exp(ar[s])
						  : !strcmp(rt, "relu") ? -(fmax(ar[s], 0) + 1e-4) : -ar[s];
					A[o] = CMPLX(re, -ai[s]);
					B[o] = CMPLX(b[2 * s], b[2 * s + 1]);
					C[o] = CMPLX(c[2 * o], c[2 * o + 1]);
					if (dplr)
						P[o] = CMPLX(pp[2 * s], pp[2 * s + 1]);
				}
			}
			struct s4k_params p = { .H = H, .N2 = n2, .family = dplr ? S4K_DPLR : S4K_DIAG,
						.disc = zoh ? S4K_ZOH : S4K_BILINEAR, .dt = dt, .A = A,
						.B = B, .C = C, .P = dplr ? P : NULL, .rate = 1,
						.l_kernel = (long)json_integer_value(json_array_get(lk, (size_t)i)) };
			int rc = s4k_kernel(&p, L, K, err, sizeof err);
			CHECK(rc == 0, "golden %s block %d: %s", names[m], i, err);
			double e = rel_err(K, ref, (long)H * L);
			printf("  golden %-4s block %d (H=%d, L=%ld, l_kernel %ld): kernel vs PyTorch twin %.2e\n",
			       names[m], i, H, L, p.l_kernel, e);
			CHECK(e <= 1e-9, "golden %s block %d: kernel error %g", names[m], i, e);
			free(ref), free(K), free(idt), free(ar), free(ai), free(b), free(c), free(pp);
			free(dt), free(A), free(B), free(C), free(P);
		}
		json_decref(lk);
		st_close(f);
		st_close(io);
	}
}

/* ---------------------------------------------------------------- threads */

struct kjob {
	const struct s4k_params *p;
	long L;
	double *K;
	int rc;
};

static void *kernel_thread(void *arg)
{
	struct kjob *j = arg;
	char err[S4K_ERR_LEN];
	for (int i = 0; i < 4 && j->rc == 0; i++)
		j->rc = s4k_kernel(j->p, j->L, j->K, err, sizeof err);
	return NULL;
}

/* Concurrent s4k_kernel() calls (each plans and destroys an FFTW plan) give the same bits as
 * a lone call. */
static void test_threads(void)
{
	enum { H = 2, L = 3000 };
	double dt[H] = { 0.01, 0.003 };
	double complex A[H * 8], B[H * 8], C[H * 8], P[H * 8];
	for (int i = 0; i < H * 8; i++) {
		A[i] = CMPLX(-0.1 - urand(), -20 * urand());
		B[i] = cgrand();
		C[i] = cgrand();
		P[i] = 0.3 * cgrand();
	}
	struct s4k_params p = { .H = H, .N2 = 8, .family = S4K_DPLR, .disc = S4K_BILINEAR, .dt = dt,
				.A = A, .B = B, .C = C, .P = P, .l_kernel = 4000, .rate = 1 };
	double *K0 = xcalloc(H * L, sizeof *K0);
	char err[S4K_ERR_LEN];
	CHECK(s4k_kernel(&p, L, K0, err, sizeof err) == 0, "%s", err);
	pthread_t th[4];
	struct kjob jobs[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct kjob){ .p = &p, .L = L, .K = xcalloc(H * L, sizeof(double)) };
		CHECK(pthread_create(&th[i], NULL, kernel_thread, &jobs[i]) == 0, "pthread_create");
	}
	int same = 1;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(jobs[i].rc == 0, "thread %d: rc %d", i, jobs[i].rc);
		same &= memcmp(jobs[i].K, K0, sizeof *K0 * H * L) == 0;
		free(jobs[i].K);
	}
	CHECK(same, "kernels computed in threads differ from the lone call");
	printf("  4 threads x 4 DPLR kernels: %s\n", same ? "identical to the lone call" : "DIFFERENT");
	free(K0);
}

int main(int argc, char **argv)
{
	double t0 = now();
	if (argc != 2) {
		printf("usage: test_s4k DATA_DIR (tests/data, for the golden kernels)\n");
		return 2;
	}
	printf("S4D kernels and steps (N = %d, H = 4):\n", NM);
	test_diag();
	printf("DPLR kernels and steps (N = %d, H = 3):\n", NM);
	test_dplr();
	printf("golden kernels (%s):\n", argv[1]);
	test_golden(argv[1]);
	printf("threads:\n");
	test_threads();
	printf("error paths:\n");
	test_errors();
	printf("%s (%d failures, %.2f s)\n", failures ? "FAILED" : "ok", failures, now() - t0);
	return failures ? 1 : 0;
}
