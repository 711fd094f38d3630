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
 * Everything here is pure computation: no threads, no I/O, no globals. Parameters are the
 * continuous-time ones of docs/format.md, already transformed (dt after dt_transform, A with
 * its sign) and broadcast to H channels (row h % n_ssm done by the caller). Load-time work is
 * in double; only s4k_step() runs in float.
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
 * Nyquist-node singularity. Returns 0, -EINVAL (bad params, message in err) or -ENOMEM. */
int s4k_kernel(const struct s4k_params *p, long L, double *K /* (H, L) */, char *err, size_t errlen);

/* Float step-mode coefficients, computed in double at init. Immutable after init; shared by
 * every stream. */
struct s4k_step {
	int H, N2;
	enum s4k_family family;
	float complex *dA;   /* (H, N2)  S4D: state transition.  DPLR: unused (NULL) */
	float complex *dB;   /* (H, N2)  S4D: input vector.      DPLR: 2*B  */
	float complex *dC;   /* (H, N2)  output; S4D: y = 2 Re(dC.x); DPLR: y = Re(dC.x) with dC = 2*Cbar[:N2] */
	float complex *Dl;   /* (H, N2)  DPLR linear step: 1/(2/dt - A) */
	float complex *El;   /* (H, N2)  DPLR: 2/dt + A */
	float complex *P;    /* (H, N2)  DPLR */
	float complex *Q;    /* (H, N2)  DPLR: conj(P) */
	float complex *R;    /* (H, N2)  DPLR: Q*Dl / (1 + 2 Re sum(Q*Dl*P)) */
	double min_margin;   /* min over modes of 1 - |dA| (S4D) or of the dense Abar's spectral bound
	                        estimate (DPLR); values below ~1e-6 mean float32 states can drift */
	void *mem;           /* one allocation behind all arrays */
};

int s4k_step_init(struct s4k_step *st, const struct s4k_params *p, char *err, size_t errlen);
void s4k_step_fini(struct s4k_step *st);

/* Number of float complex state entries one stream needs (H * N2). */
size_t s4k_state_len(const struct s4k_step *st);

/* One time step for all channels: x <- dA x + dB u; y = readout (without the D*u skip).
 * Hot path: no allocation, no locks. scratch needs H*N2 complex for DPLR (may be NULL for S4D). */
void s4k_step(const struct s4k_step *restrict st, float complex *restrict x /* (H, N2) */,
	      const float *restrict u /* (H) */, float *restrict y /* (H) */,
	      float complex *restrict scratch /* (H, N2) or NULL */);

#endif
