/* s4k_step.c - the float step of S4 / S4D blocks: s4k_step() and s4k_step_rows().
 *
 * DESIGN. The hot path of live mode. s4k_step_init (model/s4k.c) has rounded the coefficients to
 * float once and laid them out in channel tiles (s4k.h); here the steps only read them. The
 * inner loops run over a tile's channels, one channel per vector lane, so there are no shuffles
 * and no horizontal reductions; no allocation, lock or call into a library.
 */
#include "s4k.h"

#include "../common/hot.h"

/* One S4D mode update in the near-identity form: s <- s + (G s + u), the small terms summed
 * first and s added last (u = 0 for the imaginary part). */
#define DIAG_RE(gr, gi, a, b, u) ((a) + ((gr) * (a) - (gi) * (b) + (u)))
#define DIAG_IM(gr, gi, a, b) ((b) + ((gr) * (b) + (gi) * (a)))

/* NM consecutive modes from n of one S4D tile pass (lanes j0 .. j0+L of T) over R steps, NM a
 * constant at each call: the NM recurrences are independent, so NM of them are in flight at
 * once (one mode's update is a chain of four dependent operations, ~14 cycles). */
static inline __attribute__((always_inline)) void
diag_modes(const float *restrict kt, float *restrict st, const float *restrict u, float *restrict y,
	   int H, int T, size_t R, int n, int j0, int L, int NM)
{
	enum { SUB = 16, MAXM = 4 };
	const float *restrict k = kt + (size_t)n * 4 * T + j0; // (NM, 4, T) from lane j0
	float *restrict s = st + (size_t)n * 2 * T + j0;        // (NM, 2, T) from lane j0
	float re[MAXM][SUB], im[MAXM][SUB];                     // the NM modes' states, (L) each
	for (int m = 0; m < NM; m++)
		for (int j = 0; j < L; j++) {
			re[m][j] = s[2 * m * T + j];
			im[m][j] = s[(2 * m + 1) * T + j];
		}
	for (size_t r = 0; r < R; r++) {
		const float *restrict ur = u + r * H + j0;
		float *restrict yr = y + r * H + j0;
		for (int j = 0; j < L; j++) {
			float acc = yr[j];
			for (int m = 0; m < NM; m++) {
				const float *restrict q = k + 4 * m * T; // (4, T): Re G, Im G, Re W, Im W
				float a = re[m][j], b = im[m][j];
				float nr = DIAG_RE(q[j], q[T + j], a, b, ur[j]);
				float ni = DIAG_IM(q[j], q[T + j], a, b);
				re[m][j] = nr;
				im[m][j] = ni;
				acc = acc + (q[2 * T + j] * nr - q[3 * T + j] * ni);
			}
			yr[j] = acc;
		}
	}
	for (int m = 0; m < NM; m++)
		for (int j = 0; j < L; j++) {
			s[2 * m * T + j] = re[m][j];
			s[(2 * m + 1) * T + j] = im[m][j];
		}
}

/* S4D, one tile of T channels over R consecutive steps: u and y are (R, H) from the tile's first
 * channel. The state is s = x / dB (per mode; s4k.h), so the input enters the real part alone:
 * s <- s + G s + u;  y = Re Σ_n (2 dC dB) s. Four modes at a time and 16 lanes at a time, the
 * state stays in registers over the R steps and the coefficients are read from L1; y[r] is
 * summed over the modes in increasing order. */
static inline __attribute__((always_inline)) void
diag_tile_rows(const float *restrict kt, float *restrict st, const float *restrict u,
	       float *restrict y, int H, int N2, int T, size_t R)
{
	enum { SUB = 16 };
	const int L = T < SUB ? T : SUB; // lanes per pass
	for (size_t r = 0; r < R; r++)
		for (int j = 0; j < T; j++)
			y[r * H + j] = 0;
	int n = 0;
	for (; n + 4 <= N2; n += 4)
		for (int j0 = 0; j0 < T; j0 += L)
			diag_modes(kt, st, u, y, H, T, R, n, j0, L, 4);
	for (; n < N2; n++)
		for (int j0 = 0; j0 < T; j0 += L)
			diag_modes(kt, st, u, y, H, T, R, n, j0, L, 1);
}

/* DPLR, one tile of T channels: w = Re Σ (2W) x + c2 u;  x <- x + G x - DP w + DB u;
 * y = Re Σ dC x. w needs every mode of the old state before any mode is updated: two passes. */
static inline __attribute__((always_inline)) void
dplr_tile(const float *restrict kt, const float *restrict c2, float *restrict xt,
	  const float *restrict u, float *restrict y, int N2, int T)
{
	float w[S4K_STEP_TILE], acc[S4K_STEP_TILE]; // (T), (T)
	for (int j = 0; j < T; j++) {
		w[j] = 0;
		acc[j] = 0;
	}
	for (int n = 0; n < N2; n++) {
		const float *restrict k = kt + (size_t)n * 10 * T; // (10, T)
		const float *restrict x = xt + (size_t)n * 2 * T;  // (2, T)
		for (int j = 0; j < T; j++)
			w[j] += k[j] * x[j] - k[T + j] * x[T + j];
	}
	for (int j = 0; j < T; j++)
		w[j] += c2[j] * u[j];
	for (int n = 0; n < N2; n++) {
		const float *restrict k = kt + (size_t)n * 10 * T; // (10, T)
		float *restrict x = xt + (size_t)n * 2 * T;        // (2, T)
		for (int j = 0; j < T; j++) {
			float r = x[j], i = x[T + j];
			float er = (k[2 * T + j] * r - k[3 * T + j] * i) - k[4 * T + j] * w[j] +
				   k[6 * T + j] * u[j];
			float ei = (k[2 * T + j] * i + k[3 * T + j] * r) - k[5 * T + j] * w[j] +
				   k[7 * T + j] * u[j];
			x[j] = r + er;
			x[T + j] = i + ei;
			acc[j] += k[8 * T + j] * (r + er) - k[9 * T + j] * (i + ei);
		}
	}
	for (int j = 0; j < T; j++)
		y[j] = acc[j];
}

/* Channels h0 .. h0+T over R steps, T a constant at each call (s4k_step_rows). DPLR couples the
 * modes within a step, so it goes step by step; tiles are independent channels either way. */
static inline __attribute__((always_inline)) void
tile_rows(const struct s4k_step *restrict st, float *restrict x, const float *restrict u,
	  float *restrict y, size_t R, int h0, int T)
{
	const int H = st->H, N2 = st->N2;
	float *xt = x + (size_t)h0 * N2 * 2; // (N2, 2, T)
	if (st->family == S4K_DIAG) {
		diag_tile_rows(st->k + (size_t)h0 * N2 * 4, xt, u + h0, y + h0, H, N2, T, R);
		return;
	}
	for (size_t r = 0; r < R; r++)
		dplr_tile(st->k + (size_t)h0 * N2 * 10, st->c2 + h0, xt, u + r * H + h0,
			  y + r * H + h0, N2, T);
}

/* R consecutive steps for every channel, u and y (R, H), in the near-identity form documented
 * in s4k.h. State and coefficients are in channel tiles, mode-major inside a tile with the
 * tile's channels contiguous (s4k.h), so the inner loops run over channels: plain real
 * arithmetic, one channel per vector lane, no shuffles, and each y[h] is summed over the modes
 * in its own lane (no horizontal reduction). S4D runs the R steps mode by mode, each mode's
 * coefficients and state read once for all of them: the hot path of s4m_stream_push. */
S4_HOT void s4k_step_rows(const struct s4k_step *restrict st, float complex *restrict xc,
			  const float *restrict u, float *restrict y, size_t R)
{
	float *restrict x = (float *)xc; // tiles of (N2, 2, T)
	for (int h0 = 0, T; h0 < st->H; h0 += T) {
		T = s4k_tile_width(st->H, h0);
		if (T == S4K_STEP_TILE)
			tile_rows(st, x, u, y, R, h0, S4K_STEP_TILE);
		else if (T == 16)
			tile_rows(st, x, u, y, R, h0, 16);
		else if (T == 8)
			tile_rows(st, x, u, y, R, h0, 8);
		else
			tile_rows(st, x, u, y, R, h0, 1);
	}
}

void s4k_step(const struct s4k_step *restrict st, float complex *restrict x, const float *restrict u,
	      float *restrict y)
{
	s4k_step_rows(st, x, u, y, 1);
}
