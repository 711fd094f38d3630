/* s4k.h - S4 / S4D kernel mathematics: kernels, discretization, the float step.
 *
 * Usage:
 *   struct s4k_params p = { .H = 64, .N2 = 32, .family = S4K_DIAG, .disc = S4K_ZOH,
 *                           .dt = dt, .A = A, .B = B, .C = C, .rate = 1.0 };
 *   double *K = malloc(sizeof *K * 64 * L);
 *   if (s4k_kernel(&p, L, K, err, sizeof err) < 0) ...        // (H, L) impulse response
 *   struct s4k_step st;
 *   if (s4k_step_init(&st, &p, err, sizeof err) < 0) ...       // discretize in double
 *   float complex *x = calloc(s4k_state_len(&st), sizeof *x);  // one per stream
 *   s4k_step(&st, x, u, y);                                    // one time step, all H channels
 *   s4k_step_fini(&st);
 *
 * Everything here is pure computation: no threads, no I/O, no globals (one mutex guards FFTW's
 * planner, see s4k_fftw_lock). Parameters are the continuous-time ones of docs/format.md,
 * already transformed (dt after dt_transform, A with its sign) and broadcast to H channels
 * (row h % n_ssm done by the caller). Load-time work is in double; only s4k_step() runs in
 * float. The step has infinite memory; the kernel is its first L taps exactly.
 */
#ifndef S4KWS_MODEL_S4K_H
#define S4KWS_MODEL_S4K_H

#include <complex.h>
#include <stddef.h>

enum s4k_family { S4K_DIAG = 0, S4K_DPLR = 1 };
enum s4k_disc { S4K_ZOH = 0, S4K_BILINEAR = 1 };

/* One SSM bank: H independent channels of N2 complex modes each (conjugates implied). */
struct s4k_params {
	int H, N2;
	enum s4k_family family;
	enum s4k_disc disc;           /* DPLR: must be S4K_BILINEAR */
	const double *dt;             /* (H)      step size at the training rate, seconds-free units */
	const double complex *A;      /* (H, N2)  diagonal part (continuous time) */
	const double complex *B;      /* (H, N2) */
	const double complex *C;      /* (H, N2)  S4D: C. DPLR: C~ attuned to l_kernel (raw C if 0) */
	const double complex *P;      /* (H, N2)  DPLR only, rank 1; Q = conj(P) */
	long l_kernel;                /* DPLR only: length C~ is attuned to (at the training dt) */
	double rate;                  /* dt multiplier: 1.0 normally, 2.0 for 8 kHz into a 16 kHz model */
};

/* Kernel: K[h*L + l] = impulse response of channel h at lag l, l < L, in double, for the
 * discretization at dt*rate. S4D: Vandermonde. DPLR: Algorithm 1 (Cauchy + Woodbury +
 * inverse FFT at L roots of unity, C~ re-attuned to L when L != l_kernel), evaluated without the
 * Nyquist-node singularity. C~ is used as given when L == l_kernel and rate == 1; otherwise C̄ is
 * recovered at the training dt (dense N x N solve, O(N^3 log l_kernel) per channel) and
 * re-attuned to L steps of dt*rate. Valid: 1 <= H <= 65536, 1 <= N2 <= 4096 (S4D) or 128
 * (DPLR), 1 <= L <= 2^26, finite parameters, dt > 0, rate > 0, Re A <= 0. Returns 0, -EINVAL
 * (bad params, one sentence in err) or -ENOMEM. Any thread; the caller owns K. */
int s4k_kernel(const struct s4k_params *p, long L, double *K /* (H, L) */, char *err, size_t errlen);

/* Float step-mode coefficients, computed in double at init. Immutable after init; shared by
 * every stream. */
struct s4k_step {
	int H, N2;
	enum s4k_family family;
	float complex *dA;   /* (H, N2)  S4D: state transition, |dA_float| <= |dA| (not used by
	                        s4k_step, which runs G = dA - 1).  DPLR: unused (NULL) */
	float complex *dB;   /* (H, N2)  S4D: input vector.      DPLR: 2*B  */
	float complex *dC;   /* (H, N2)  output; S4D: y = 2 Re(dC.x); DPLR: y = Re(dC.x) with dC = 2*Cbar[:N2] */
	float complex *Dl;   /* (H, N2)  DPLR linear step: 1/(2/dt - A) */
	float complex *El;   /* (H, N2)  DPLR: 2/dt + A */
	float complex *P;    /* (H, N2)  DPLR */
	float complex *Q;    /* (H, N2)  DPLR: conj(P) */
	float complex *R;    /* (H, N2)  DPLR: Q*Dl / (1 + 2 Re sum(Q*Dl*P)) */
	/* What s4k_step() actually runs: the same recurrences, rearranged in double around the
	 * identity so that float rounding perturbs Abar - I rather than Abar (for slow modes,
	 * 1 - |dA| ~ 1e-4, rounding dA itself to float would move the decay rate by ~1e-4):
	 *   S4D:  x <- x + G.x + dB u;                      y = 2 Re sum(dC.x)
	 *   DPLR: w = 2 Re sum(W.x) + c2 u;  x <- x + G.x - DP w + DB u;   y = Re sum(dC.x)
	 * (DPLR: algebraically the linear step above with s and the two Woodbury sums fused.) */
	float complex *G;    /* (H, N2)  S4D: dA - 1.  DPLR: Dl.El - 1 = 2 A.Dl */
	float complex *W;    /* (H, N2)  DPLR: Q.(2 + G) / (1 + 2 Re sum(Q*Dl*P)) */
	float complex *DP;   /* (H, N2)  DPLR: Dl.P */
	float complex *DB;   /* (H, N2)  DPLR: Dl.2B */
	float *c2;           /* (H)      DPLR: 2 Re sum(R.2B) */
	/* The coefficients as s4k_step() reads them: split re/im and in tiles of channels (32, then
	 * 16, 8, 1 to cover H; tile h0..h0+T starts at float h0 * N2 * rows), mode-major inside a
	 * tile with its T channels contiguous, so the loop over a tile's channels vectorizes without
	 * shuffles and every channel's output sum stays in its own vector lane (no horizontal
	 * reductions). Per mode n of a tile, rows of T floats:
	 *   S4D:  Re G, Im G, Re 2dC.dB, Im 2dC.dB                               (rows = 4)
	 *   DPLR: Re 2W, Im 2W, Re G, Im G, Re DP, Im DP, Re DB, Im DB, Re dC, Im dC   (rows = 10)
	 * S4D steps s = x / dB per mode instead of x (the same recurrence, diagonal: s <- s + G s + u,
	 * y = 2 Re sum(dC.dB.s)), so the real input enters the real part alone and dB is not read.
	 * (2dC.dB is formed in double from the float dC and dB; the factors 2 are exact.) */
	float *k;
	double min_margin;   /* S4D: min over modes of 1 - |dA| (exact, in double). DPLR: min over
	                        channels of 1 - rho(Abar), rho^8192 estimated by power iteration on
	                        Abar^8192 in double (values above ~0.04 read 0.041). Below ~1e-6,
	                        float32 states integrate rounding noise (drift): warn or reset. S4D
	                        G is rounded so that |1 + G_float| <= |dA| (never expansive). */
	void *mem;           /* one allocation behind all arrays */
};

/* Discretize at dt*rate (DPLR: C̄ recovered with the training dt first). Same validation and
 * return codes as s4k_kernel(). On failure st is zeroed (s4k_step_fini() is still safe). */
int s4k_step_init(struct s4k_step *st, const struct s4k_params *p, char *err, size_t errlen);
void s4k_step_fini(struct s4k_step *st);

/* Number of float complex state entries one stream needs (H * N2, both families). The state is
 * opaque: s4k_step() keeps it as floats in the channel tiles of k, (N2, 2, T) per tile: per mode
 * the real parts of the tile's T channels, then their imaginary parts; S4D holds s = x / dB (see
 * k). Zero is the zero state; copy it with memcpy. */
size_t s4k_state_len(const struct s4k_step *st);

/* One time step for all channels: x <- Abar x + Bbar u; y = readout of the updated state (without
 * the D*u skip), so an impulse from a zero state gives y = K[0], K[1], ...
 * Hot path: no allocation, no locks, any thread (st is read-only); the DPLR step works in place. */
void s4k_step(const struct s4k_step *restrict st, float complex *restrict x /* (H N2), opaque */,
	      const float *restrict u /* (H) */, float *restrict y /* (H) */);

/* R consecutive time steps, as R calls of s4k_step() with u and y (R, H) row by row, the same
 * numbers; S4D reads each mode's coefficients once for all R steps. Same rules as s4k_step(). */
void s4k_step_rows(const struct s4k_step *restrict st, float complex *restrict x /* (H N2), opaque */,
		   const float *restrict u /* (R, H) */, float *restrict y /* (R, H) */, size_t R);

/* FFTW's planner (fftw_plan_*, fftw_destroy_plan, double and float) is not thread-safe. Every
 * caller in s4kws that makes or destroys a plan holds this one process-wide lock around it;
 * s4k_kernel() takes it itself (do not call s4k_kernel() while holding it). */
void s4k_fftw_lock(void);
void s4k_fftw_unlock(void);

/* The step's channel tiles (see k above): 32 channels (four AVX2 registers of floats), then
 * 16, 8 and 1 to cover the rest of H. The width of the tile that starts at channel h0. */
#define S4K_STEP_TILE 32
static inline int s4k_tile_width(int H, int h0)
{
	int left = H - h0;
	return left >= S4K_STEP_TILE ? S4K_STEP_TILE : left >= 16 ? 16 : left >= 8 ? 8 : 1;
}

#endif
