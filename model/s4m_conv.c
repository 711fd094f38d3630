/* s4m_conv.c - convolution mode: the whole network over a buffer of samples, with FFT
 * convolutions (FFTW3, float, real-to-complex).
 *
 * Design: activations are kept channel-major, (H, L) row-major, so that the SSM convolution of
 * all H channels is one batched FFTW plan (plan_many over H rows) and every position-wise layer
 * (norm over channels, Linear, GLU, pooling, widen) is a loop whose inner index runs over time,
 * contiguous in memory, which the compiler vectorizes. The Linear(H -> 2H) + GLU + residual is
 * done in time tiles of TILE steps so the (2H, TILE) gate block stays in cache.
 *
 * A workspace is made for a maximum input length. For each block it fixes one FFT length,
 * nfft >= Lmax + taps (taps = min(Lmax, kernel length)), which is exact linear convolution for
 * every shorter input too, so one plan pair and one kernel spectrum per block serve every call.
 * Kernel spectra are computed in double from the model's double kernels, scaled by 1/nfft,
 * stored as float, and cached in the model per (block, nfft, taps): workspaces of the same
 * length (one per thread in file mode) share them. Plans are made under the global FFTW lock;
 * the compute calls only execute plans, so they never allocate, lock or plan. The lock is
 * s4k_fftw_lock(), the one process-wide FFTW planner lock of the engine.
 *
 * Bidirectional models (converted official checkpoints) add the backward kernel flipped at the
 * end of the FFT buffer: y[t] += sum_j kb[j] z[t+1+j], the official layout
 * k = pad(k0, (0, L)) + pad(flip(k1), (L, 0)) written for any nfft >= L + taps.
 *
 * Primed lone clips: a lone clip is [preroll zeros | window], and the zeros are the same for
 * every clip. Every layer is position-wise except the causal SSM convolution, so each block's
 * output over the window is its convolution of the window's own input plus a fixed sequence,
 * the convolution of the preroll's block input carried into the window. s4m_conv_prime() computes
 * that sequence once per block (one forward pass over zeros; worth it for a workspace that
 * classifies many clips, not for one clip) and s4m_conv_logits_primed() then
 * runs the network over the window alone, with FFTs sized for the window: the same logits for
 * 40 % of the work with a 1.5 s preroll and a 1 s window. Causal models only (a backward kernel
 * would carry the window into the preroll), with preroll and window whole decoder steps.
 * s4m_conv_prime_window() primes for another window length: the segments of a scan with restarts
 * ([preroll | 2 s] per second of audio, daemon/scan.c) then run on their 2 s alone. Their
 * per-step decoder means reach back into the preroll, whose final steps' logits are the same for
 * every segment too, so the capture keeps the last Wf of them (ptail).
 *
 * Carried scans (s4m_conv_carry_init): a long recording in chunks, each block keeping the last
 * klen steps of its SSM input (after the prenorm) from the chunks before, and the decoder the
 * last Wf steps' logits. A block's SSM output over a chunk is then the linear convolution of
 * [history | chunk] read from position klen on (overlap-save), and every other layer is
 * position-wise, so each sample goes through the network once and the per-step logits are those
 * of one whole-recording s4m_conv_scan() from its start (whose kernels forget lags beyond klen
 * too). A workspace for chunks of C >= max_i klen_i * cum_i samples already has the FFT length
 * this needs: nfft >= C / cum_i + klen_i. Causal models only.
 */
#include "s4m_impl.h"

#include <errno.h>
#include <fftw3.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define TILE 128 /* time steps per GLU tile */
/* FFTW_ESTIMATE: FFTW_MEASURE took 9.5 s of planning for the default model's workspace and
 * gave no measurable speed-up (19.1 vs 20.3 ms per clip), so plans are estimated. */
#define S4M_FFTW_FLAGS FFTW_ESTIMATE

size_t s4m__fft_len(size_t need)
{
	/* 2^a 3^b only: with FFTW_ESTIMATE plans these sizes ran 20-30% faster than the nearest
	 * sizes with factors 5 or 7 (e.g. 49152 vs 48000 points, 12288 vs 12000, batches of 16/64) */
	if (need < 2)
		need = 2;
	size_t best = SIZE_MAX;
	for (size_t p3 = 1; p3 < SIZE_MAX / 3 && p3 / 2 < need; p3 *= 3) {
		size_t n = 2 * p3;          /* even, for the r2c layout */
		while (n < need)
			n *= 2;
		if (n < best)
			best = n;
	}
	return best;
}

struct cblk {
	size_t Lmax;            /* steps of this block for a max_len input */
	size_t nfft, nspec;     /* FFT length, nfft/2+1 */
	size_t rs, cs;          /* row strides of fr (floats) and fc (complex): padded by 64 bytes so
				   that rows never sit a multiple of 4 KiB apart (cache-set aliasing) */
	const float *spec;      /* (H, nspec) complex interleaved, scaled by 1/nfft (model cache) */
	fftwf_plan fwd, inv;    /* batched over H rows of fr <-> fc */
};

struct s4m_conv {
	const struct s4m_model *m;
	size_t max_len;
	struct cblk *cb;        /* (n_blocks) */
	struct cblk *pcb;       /* (n_blocks) plans and spectra for the window alone, or NULL */
	float *prime;           /* preroll's share of each block's SSM output over the window:
				   block i at prime + poff[i], (H_i, window / cum_i) */
	size_t *poff;           /* (n_blocks) */
	size_t pwin;            /* window samples of a primed call (0: not primed) */
	float *ptail;           /* (K, ntail) logits of the preroll's last ntail final steps */
	size_t ntail;           /* min(preroll steps, Wf); 0 for a last-step decoder */
	float **hist;           /* carried scans: (n_blocks) block i's last klen_i SSM inputs,
				   (H_i, klen_i), zeros at the start; NULL when not set up */
	float *ctail;           /* carried scans: (K, Wf) logits of the last cnt final steps */
	size_t cnt;             /* min(csteps, Wf) */
	uint64_t csteps;        /* carried scans: final steps since the last reset */
	float *ua, *ub;         /* activations, each (act_len) floats: (H, L) of any stage */
	float *z;               /* (act_len) normalized block input (prenorm) */
	float *fr;              /* (fr_len) FFT real rows (H, rs), nfft used */
	fftwf_complex *fc;      /* (fc_len) FFT spectra rows (H, cs), nspec used */
	float *mean, *rstd;     /* (max_len) LayerNorm statistics per step */
	float *g;               /* (2 Hmax, TILE) GLU tile */
	float *lg;              /* (K, Lf_max) per-step logits */
	double *acc;            /* (K) window sums */
};

/* ---- kernel spectra cache (model-wide, under spec_lock) ---- */

static const float *get_spec(const struct s4m_model *cm, int i, size_t nfft, size_t taps,
			     char *err, size_t errlen)
{
	struct s4m_model *m = (struct s4m_model *)cm; /* the cache is the model's one mutable part */
	const struct s4m__block *b = &m->b[i];
	const float *res = NULL;
	pthread_mutex_lock(&m->spec_lock);
	for (struct s4m__spec *s = m->spec; s; s = s->next) {
		if (s->block == i && s->nfft == nfft && s->taps == taps) {
			res = s->re_im;
			goto out;
		}
	}
	size_t nspec = nfft / 2 + 1;
	struct s4m__spec *s = calloc(1, sizeof *s);
	double *in = fftw_alloc_real(nfft);
	fftw_complex *out = fftw_alloc_complex(nspec);
	float *re_im = malloc((size_t)b->H * nspec * 2 * sizeof *re_im);
	fftw_plan p = NULL;
	if (s && in && out && re_im) {
		s4k_fftw_lock();
		p = fftw_plan_dft_r2c_1d((int)nfft, in, out, FFTW_ESTIMATE);
		s4k_fftw_unlock();
	}
	if (!p) {
		s4k_seterr(err, errlen, "out of memory while preparing the kernel spectra.");
		free(s);
		free(re_im);
		goto done;
	}
	double scale = 1.0 / (double)nfft;
	for (int h = 0; h < b->H; h++) {
		const double *k = b->K + (size_t)h * b->klen;
		memset(in, 0, nfft * sizeof *in);
		memcpy(in, k, taps * sizeof *in);
		if (b->Kb) {
			const double *kb = b->Kb + (size_t)h * b->klen;
			for (size_t j = 0; j < taps; j++)
				in[nfft - 1 - j] += kb[j];
		}
		fftw_execute(p);
		float *o = re_im + (size_t)h * nspec * 2;
		for (size_t k2 = 0; k2 < nspec; k2++) {
			/* fftw_complex is double complex here (<complex.h> comes first) */
			o[2 * k2] = (float)(creal(out[k2]) * scale);
			o[2 * k2 + 1] = (float)(cimag(out[k2]) * scale);
		}
	}
	s->block = i;
	s->nfft = nfft;
	s->taps = taps;
	s->re_im = re_im;
	s->next = m->spec;
	m->spec = s;
	res = re_im;
done:
	if (p) {
		s4k_fftw_lock();
		fftw_destroy_plan(p);
		s4k_fftw_unlock();
	}
	fftw_free(in);
	fftw_free(out);
out:
	pthread_mutex_unlock(&m->spec_lock);
	return res;
}

/* ---- workspace ---- */

void s4m_conv_free(struct s4m_conv *cv)
{
	if (!cv)
		return;
	s4k_fftw_lock();
	for (int i = 0; i < cv->m->n_blocks; i++) {
		struct cblk *cs[2] = { cv->cb ? &cv->cb[i] : NULL, cv->pcb ? &cv->pcb[i] : NULL };
		for (int j = 0; j < 2; j++) {
			if (cs[j] && cs[j]->fwd)
				fftwf_destroy_plan(cs[j]->fwd);
			if (cs[j] && cs[j]->inv)
				fftwf_destroy_plan(cs[j]->inv);
		}
	}
	s4k_fftw_unlock();
	free(cv->cb);
	free(cv->pcb);
	fftwf_free(cv->prime);
	fftwf_free(cv->ptail);
	if (cv->hist)
		for (int i = 0; i < cv->m->n_blocks; i++)
			fftwf_free(cv->hist[i]);
	free(cv->hist);
	fftwf_free(cv->ctail);
	free(cv->poff);
	fftwf_free(cv->ua);
	fftwf_free(cv->ub);
	fftwf_free(cv->z);
	fftwf_free(cv->fr);
	fftwf_free(cv->fc);
	fftwf_free(cv->mean);
	fftwf_free(cv->rstd);
	fftwf_free(cv->g);
	fftwf_free(cv->lg);
	free(cv->acc);
	free(cv);
}

/* FFT length, row strides and kernel spectrum of block i for inputs of up to Lmax of its steps:
 * nfft >= Lmax + taps makes the circular convolution a linear one for every shorter input. */
static int size_cblk(const struct s4m_model *m, int i, size_t Lmax, struct cblk *c, char *err,
		     size_t errlen)
{
	const struct s4m__block *b = &m->b[i];
	c->Lmax = Lmax;
	size_t taps = Lmax < b->klen ? Lmax : b->klen;
	c->nfft = s4m__fft_len(Lmax + taps);
	c->nspec = c->nfft / 2 + 1;
	c->rs = c->nfft + 16;
	c->cs = c->nspec + 8;
	c->spec = get_spec(m, i, c->nfft, taps, err, errlen);
	return c->spec ? 0 : -ENOMEM;
}

/* The batched transforms of one block over the workspace's fr/fc rows (FFTW lock held). */
static void plan_cblk(struct s4m_conv *cv, struct cblk *c, int H)
{
	int n = (int)c->nfft;
	c->fwd = fftwf_plan_many_dft_r2c(1, &n, H, cv->fr, NULL, 1, (int)c->rs, cv->fc, NULL, 1,
					 (int)c->cs, S4M_FFTW_FLAGS);
	c->inv = fftwf_plan_many_dft_c2r(1, &n, H, cv->fc, NULL, 1, (int)c->cs, cv->fr, NULL, 1,
					 (int)c->rs, S4M_FFTW_FLAGS);
}

static int plan_all(struct s4m_conv *cv, struct cblk *cbs, char *err, size_t errlen)
{
	s4k_fftw_lock();
	for (int i = 0; i < cv->m->n_blocks; i++)
		plan_cblk(cv, &cbs[i], cv->m->b[i].H);
	s4k_fftw_unlock();
	for (int i = 0; i < cv->m->n_blocks; i++) {
		if (!cbs[i].fwd || !cbs[i].inv) {
			s4k_seterr(err, errlen, "FFTW could not plan a transform of length %zu.", cbs[i].nfft);
			return -ENOMEM;
		}
	}
	return 0;
}

enum fwd_mode { FWD_PLAIN, FWD_PRIMED, FWD_CAPTURE, FWD_CARRIED };
static float *forward(struct s4m_conv *cv, const float *x, size_t n, int last, size_t *Lout,
		      enum fwd_mode mode);
static float *features(struct s4m_conv *cv, const float *x, size_t n, size_t *Lf,
		       enum fwd_mode mode);
static void linear_cols(const float *restrict W, const float *restrict bias, int O, int In,
			const float *restrict in, size_t in_stride, float *restrict out,
			size_t out_stride, size_t L);

/* Set up primed calls on a window of W input samples (see the top of the file) when the model
 * allows it; 0 when it does not apply, a negative errno when it does and setting it up failed. */
int s4m_conv_prime_window(struct s4m_conv *cv, size_t W, char *err, size_t errlen)
{
	const struct s4m_model *m = cv->m;
	if (cv->pwin)
		return 0;
	size_t P = m->preroll;
	if (m->bidir || P == 0 || W == 0 || P % m->hop || W % m->hop || P + W > cv->max_len)
		return 0;
	size_t tot = 0;
	if (!(cv->pcb = calloc((size_t)m->n_blocks, sizeof *cv->pcb)) ||
	    !(cv->poff = calloc((size_t)m->n_blocks, sizeof *cv->poff)))
		goto oom;
	for (int i = 0; i < m->n_blocks; i++) {
		cv->poff[i] = tot;
		tot += (size_t)m->b[i].H * (W / m->b[i].cum);
		int rc = size_cblk(m, i, W / m->b[i].cum, &cv->pcb[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	int rc = plan_all(cv, cv->pcb, err, errlen);
	if (rc < 0)
		return rc;
	size_t np = P / m->hop, nt = m->decoder_last ? 0 : np < m->Wf ? np : m->Wf;
	int K = m->n_labels;
	float *zeros = calloc(P + W, sizeof *zeros);
	if (!(cv->prime = fftwf_alloc_real(tot)) || !zeros ||
	    (nt && !(cv->ptail = fftwf_alloc_real((size_t)K * nt)))) {
		free(zeros);
		goto oom;
	}
	cv->pwin = W;   /* forward() reads it while capturing */
	size_t Lf;
	const float *u = features(cv, zeros, P + W, &Lf, FWD_CAPTURE);
	if (nt)   /* (K, nt): the decoder on the final features of preroll steps np - nt .. np - 1 */
		linear_cols(m->dec_w, m->dec_b, K, m->Hlast, u + (np - nt), Lf, cv->ptail, nt, nt);
	cv->ntail = nt;
	free(zeros);
	return 0;
oom:
	s4k_seterr(err, errlen, "out of memory for a conv workspace's preroll.");
	return -ENOMEM;
}

int s4m_conv_prime(struct s4m_conv *cv, char *err, size_t errlen)
{
	return s4m_conv_prime_window(cv, s4m_window(cv->m), err, errlen);
}

struct s4m_conv *s4m_conv_new(const struct s4m_model *m, size_t max_len, char *err, size_t errlen)
{
	if (max_len < m->hop || max_len > ((size_t)1 << 28)) {
		s4k_seterr(err, errlen, "conv workspace length %zu is outside [%zu, %zu] samples.",
			   max_len, m->hop, (size_t)1 << 28);
		return NULL;
	}
	struct s4m_conv *cv = calloc(1, sizeof *cv);
	if (!cv || !(cv->cb = calloc((size_t)m->n_blocks, sizeof *cv->cb))) {
		free(cv);
		s4k_seterr(err, errlen, "out of memory for a conv workspace.");
		return NULL;
	}
	cv->m = m;
	cv->max_len = max_len;

	size_t act = (size_t)m->b[0].H * max_len, fr_len = 0, fc_len = 0;
	for (int i = 0; i < m->n_blocks; i++) {
		const struct s4m__block *b = &m->b[i];
		struct cblk *c = &cv->cb[i];
		if (size_cblk(m, i, max_len / b->cum, c, err, errlen) < 0)
			goto fail;
		size_t a = (size_t)(b->H > b->Hout ? b->H : b->Hout) * c->Lmax;
		if (a > act)
			act = a;
		if ((size_t)b->H * c->rs > fr_len)
			fr_len = (size_t)b->H * c->rs;
		if ((size_t)b->H * c->cs > fc_len)
			fc_len = (size_t)b->H * c->cs;
	}
	size_t Lf = max_len / m->hop;
	cv->ua = fftwf_alloc_real(act);
	cv->ub = fftwf_alloc_real(act);
	cv->z = fftwf_alloc_real(act);
	cv->fr = fftwf_alloc_real(fr_len);
	cv->fc = fftwf_alloc_complex(fc_len);
	cv->mean = fftwf_alloc_real(max_len);
	cv->rstd = fftwf_alloc_real(max_len);
	cv->g = fftwf_alloc_real((size_t)2 * m->Hmax * TILE);
	cv->lg = fftwf_alloc_real((size_t)m->n_labels * Lf);
	cv->acc = calloc((size_t)m->n_labels, sizeof *cv->acc);
	if (!cv->ua || !cv->ub || !cv->z || !cv->fr || !cv->fc || !cv->mean || !cv->rstd || !cv->g ||
	    !cv->lg || !cv->acc) {
		s4k_seterr(err, errlen, "out of memory for a conv workspace of %zu samples.", max_len);
		goto fail;
	}
	if (plan_all(cv, cv->cb, err, errlen) < 0)
		goto fail;
	return cv;
fail:
	s4m_conv_free(cv);
	return NULL;
}

size_t s4m_conv_max_len(const struct s4m_conv *cv)
{
	return cv->max_len;
}

/* ---- layers on (H, L) activations ---- */


/* The elementwise kernels below are separate functions so that each gets the AVX2 clone and
 * its loop vectorizes on its own. */

S4M_HOT
static void spec_mul(float *restrict x, const float *restrict k, size_t nspec)
{
	/* x *= k, complex, interleaved (re, im) */
	for (size_t f = 0; f < nspec; f++) {
		float xr = x[2 * f], xi = x[2 * f + 1], kr = k[2 * f], ki = k[2 * f + 1];
		x[2 * f] = xr * kr - xi * ki;
		x[2 * f + 1] = xr * ki + xi * kr;
	}
}

S4M_HOT
static void gelu_skip(float *restrict y, const float *restrict z, float d, size_t L)
{
	for (size_t t = 0; t < L; t++)
		y[t] = s4m__gelu(y[t] + d * z[t]);
}

S4M_HOT
static void add_row(float *restrict y, const float *restrict p, size_t L)
{
	for (size_t t = 0; t < L; t++)
		y[t] += p[t];
}

S4M_HOT
static void glu_add(float *restrict u, const float *restrict ga, const float *restrict gb, size_t L)
{
	for (size_t t = 0; t < L; t++)
		u[t] += ga[t] * s4m__sigmoid(gb[t]);
}

S4M_HOT
static void affine_row(const float *x, float *y, float a, float b, size_t L)
{
	for (size_t t = 0; t < L; t++)
		y[t] = x[t] * a + b;
}

S4M_HOT
static void ln_stats(const float *restrict x, size_t L, int H, float *restrict mean,
		     float *restrict rstd)
{
	/* mean and 1/std over H rows of x, per step; two passes as in the step-mode norm */
	for (size_t t = 0; t < L; t++)
		mean[t] = rstd[t] = 0.f;
	for (int h = 0; h < H; h++)
		for (size_t t = 0; t < L; t++)
			mean[t] += x[(size_t)h * L + t];
	float inv = 1.f / (float)H;
	for (size_t t = 0; t < L; t++)
		mean[t] *= inv;
	for (int h = 0; h < H; h++)
		for (size_t t = 0; t < L; t++) {
			float d = x[(size_t)h * L + t] - mean[t];
			rstd[t] += d * d;
		}
	for (size_t t = 0; t < L; t++)
		rstd[t] = 1.f / sqrtf(rstd[t] * inv + S4M_NORM_EPS);
}

S4M_HOT
static void ln_apply(const float *x, float *y, const float *restrict mean,
		     const float *restrict rstd, float a, float b, size_t L)
{
	for (size_t t = 0; t < L; t++)
		y[t] = (x[t] - mean[t]) * rstd[t] * a + b;
}

/* y = norm(x) over channels at each step; x == y allowed. */
static void norm_cols(struct s4m_conv *cv, const float *x, float *y, int H, size_t L,
		      const float *a, const float *b)
{
	if (!cv->m->batchnorm)
		ln_stats(x, L, H, cv->mean, cv->rstd);
	for (int h = 0; h < H; h++) {
		if (cv->m->batchnorm)
			affine_row(x + (size_t)h * L, y + (size_t)h * L, a[h], b[h], L);
		else
			ln_apply(x + (size_t)h * L, y + (size_t)h * L, cv->mean, cv->rstd, a[h], b[h], L);
	}
}

/* out (O, L) = W (O, In) @ in (In, L) + bias, rows of length L with the given strides.
 * Register tiles of 4 output rows x 8 steps (GNU C vectors of 8 floats: two SSE registers, or
 * one AVX register): each loaded input vector feeds 4 rows and the accumulators stay in
 * registers (a plain row-by-row axpy is bound by L1 stores). Every output is still summed over
 * i in increasing order, so results do not depend on the tiling. */
typedef float v8sf __attribute__((vector_size(32)));

/* unaligned vector load/store (macros: a function returning a 32-byte vector changes the ABI
 * between the baseline and the AVX clone, which GCC warns about) */
#define LOAD8(v, p) memcpy(&(v), (p), sizeof(v8sf))
#define STORE8(p, v) memcpy((p), &(v), sizeof(v8sf))


S4M_HOT
static void linear_cols(const float *restrict W, const float *restrict bias, int O, int In,
			const float *restrict in, size_t in_stride, float *restrict out,
			size_t out_stride, size_t L)
{
	size_t t = 0;
	for (; t + 8 <= L; t += 8) {
		int o = 0;
		for (; o + 4 <= O; o += 4) {
			const float *restrict w0 = W + (size_t)o * In, *restrict w1 = w0 + In,
					      *restrict w2 = w1 + In, *restrict w3 = w2 + In;
			v8sf a0 = bias[o] + (v8sf){0}, a1 = bias[o + 1] + (v8sf){0},
			     a2 = bias[o + 2] + (v8sf){0}, a3 = bias[o + 3] + (v8sf){0};
			for (int i = 0; i < In; i++) {
				v8sf x;
				LOAD8(x, in + (size_t)i * in_stride + t);
				a0 += w0[i] * x;
				a1 += w1[i] * x;
				a2 += w2[i] * x;
				a3 += w3[i] * x;
			}
			STORE8(out + (size_t)o * out_stride + t, a0);
			STORE8(out + (size_t)(o + 1) * out_stride + t, a1);
			STORE8(out + (size_t)(o + 2) * out_stride + t, a2);
			STORE8(out + (size_t)(o + 3) * out_stride + t, a3);
		}
		for (; o < O; o++) {
			v8sf a = bias[o] + (v8sf){0};
			for (int i = 0; i < In; i++) {
				v8sf x;
				LOAD8(x, in + (size_t)i * in_stride + t);
				a += W[(size_t)o * In + i] * x;
			}
			STORE8(out + (size_t)o * out_stride + t, a);
		}
	}
	for (; t < L; t++) {
		for (int o = 0; o < O; o++) {
			float acc = bias[o];
			for (int i = 0; i < In; i++)
				acc += W[(size_t)o * In + i] * in[(size_t)i * in_stride + t];
			out[(size_t)o * out_stride + t] = acc;
		}
	}
}

/* Causal (and backward) SSM convolution of z (H, L): the result is in the first L entries of
 * each fr row (row stride c->rs). */
/* The filled fr rows (H of them) convolved with the block's kernel spectra, in place. */
static void conv_rows(struct s4m_conv *cv, const struct cblk *c, int H)
{
	size_t nspec = c->nspec, cs = c->cs;
	fftwf_execute(c->fwd);
	for (int h = 0; h < H; h++)
		spec_mul((float *)(cv->fc + (size_t)h * cs), c->spec + (size_t)h * nspec * 2, nspec);
	fftwf_execute(c->inv);
}

static void ssm_conv(struct s4m_conv *cv, const struct cblk *c, const float *z, int H, size_t L)
{
	size_t nfft = c->nfft, rs = c->rs;
	/* fr rows = z rows zero-padded to nfft */
	for (int h = 0; h < H; h++) {
		float *row = cv->fr + (size_t)h * rs;
		memcpy(row, z + (size_t)h * L, L * sizeof *row);
		memset(row + L, 0, (nfft - L) * sizeof *row);
	}
	conv_rows(cv, c, H);
}

/* Carried scans: the SSM convolution of [hist (H, T) | z (H, L)] into the fr rows (the chunk's
 * outputs at T .. T + L - 1; nfft >= T + L, so lags up to T never wrap into them), then hist
 * becomes the last T columns of that input. */
static void ssm_conv_carried(struct s4m_conv *cv, const struct cblk *c, const float *z, int H,
			     size_t L, float *hist, size_t T)
{
	size_t nfft = c->nfft, rs = c->rs;
	for (int h = 0; h < H; h++) {
		float *restrict row = cv->fr + (size_t)h * rs, *restrict hr = hist + (size_t)h * T;
		const float *zr = z + (size_t)h * L;
		memcpy(row, hr, T * sizeof *row);
		memcpy(row + T, zr, L * sizeof *row);
		memset(row + T + L, 0, (nfft - T - L) * sizeof *row);
		if (L >= T) {
			memcpy(hr, zr + L - T, T * sizeof *hr);
		} else {
			memmove(hr, hr + L, (T - L) * sizeof *hr);
			memcpy(hr + T - L, zr, L * sizeof *hr);
		}
	}
	conv_rows(cv, c, H);
}

/* One residual block on u (H, L), in place, with the transforms of c. prime (H, L), when not
 * NULL, is added to the SSM convolution: the share of input that came before u (primed).
 * hist (H, klen), when not NULL, is the SSM input that came before u (carried scans). */
static void block_conv(struct s4m_conv *cv, const struct cblk *c, int i, float *u, size_t L,
		       const float *prime, float *hist)
{
	const struct s4m_model *m = cv->m;
	const struct s4m__block *b = &m->b[i];
	int H = b->H;
	size_t rs = c->rs, off = hist ? b->klen : 0;   /* where u's outputs start in fr rows */

	const float *z = u;
	if (m->prenorm) {
		norm_cols(cv, u, cv->z, H, L, b->norm_a, b->norm_b);
		z = cv->z;
	}
	if (hist)
		ssm_conv_carried(cv, c, z, H, L, hist, b->klen);
	else
		ssm_conv(cv, c, z, H, L);
	if (prime)
		for (int h = 0; h < H; h++)
			add_row(cv->fr + (size_t)h * rs, prime + (size_t)h * L, L);

	/* y = gelu(conv + D z), in place in the L entries from off of each fr row */
	for (int h = 0; h < H; h++)
		gelu_skip(cv->fr + (size_t)h * rs + off, z + (size_t)h * L, b->D[h], L);

	/* u += GLU(out(y)), in time tiles */
	for (size_t t0 = 0; t0 < L; t0 += TILE) {
		size_t tl = L - t0 < TILE ? L - t0 : TILE;
		linear_cols(b->out_w, b->out_b, 2 * H, H, cv->fr + off + t0, rs, cv->g, TILE, tl);
		for (int h = 0; h < H; h++)
			glu_add(u + (size_t)h * L + t0, cv->g + (size_t)h * TILE,
				cv->g + (size_t)(H + h) * TILE, tl);
	}
	if (!m->prenorm)
		norm_cols(cv, u, u, H, L, b->norm_a, b->norm_b);
}

/* While priming: the block input u (H, L) holds [preroll | window]; keep the SSM convolution
 * of its preroll part alone, over the window's steps, in the block's prime rows. */
static void capture_prime(struct s4m_conv *cv, int i, const float *u, size_t L)
{
	const struct s4m_model *m = cv->m;
	const struct s4m__block *b = &m->b[i];
	int H = b->H;
	size_t Lp = m->preroll / b->cum, Lc = cv->pwin / b->cum;   /* Lp + Lc == L */
	float *z = cv->z;
	if (m->prenorm)
		norm_cols(cv, u, z, H, L, b->norm_a, b->norm_b);
	else
		memcpy(z, u, (size_t)H * L * sizeof *z);
	for (int h = 0; h < H; h++)
		memset(z + (size_t)h * L + Lp, 0, Lc * sizeof *z);
	ssm_conv(cv, &cv->cb[i], z, H, L);
	for (int h = 0; h < H; h++)
		memcpy(cv->prime + cv->poff[i] + (size_t)h * Lc, cv->fr + (size_t)h * cv->cb[i].rs + Lp,
		       Lc * sizeof *z);
}

/* Encoder and blocks 0..last on x[0..n). Returns the activation, (Hout_last, *Lout).
 * FWD_PRIMED: x is a primed clip's window (n == pwin); FWD_CAPTURE: x is [preroll | window]
 * zeros and the prime rows are filled on the way; FWD_CARRIED: x is the next chunk of a carried
 * scan, the blocks' histories are read and moved on. */
static float *forward(struct s4m_conv *cv, const float *x, size_t n, int last, size_t *Lout,
		      enum fwd_mode mode)
{
	const struct s4m_model *m = cv->m;
	float *u = cv->ua, *v = cv->ub;
	int H0 = m->b[0].H;
	size_t L = n;
	for (int h = 0; h < H0; h++) {
		float *restrict r = u + (size_t)h * L;
		float w = m->enc_w[h], bb = m->enc_b[h];
		for (size_t t = 0; t < L; t++)
			r[t] = w * x[t] + bb;
	}
	for (int i = 0; i <= last; i++) {
		const struct s4m__block *b = &m->b[i];
		if (mode == FWD_CAPTURE)
			capture_prime(cv, i, u, L);
		if (mode == FWD_PRIMED)
			block_conv(cv, &cv->pcb[i], i, u, L, cv->prime + cv->poff[i], NULL);
		else
			block_conv(cv, &cv->cb[i], i, u, L, NULL,
				   mode == FWD_CARRIED ? cv->hist[i] : NULL);
		size_t p = (size_t)b->pool, L2 = L / p;
		if (p > 1) {
			/* mean of each window of p steps, floor(L / p) steps; in place is safe because
			 * the write index h*L2 + j never passes the read index h*L + j*p */
			float inv = 1.f / (float)p;
			for (int h = 0; h < b->H; h++) {
				for (size_t j = 0; j < L2; j++) {
					const float *s = u + (size_t)h * L + j * p;
					float acc = 0.f;
					for (size_t k = 0; k < p; k++)
						acc += s[k];
					u[(size_t)h * L2 + j] = acc * inv;
				}
			}
		}
		L = L2;
		if (b->widen_w) {
			linear_cols(b->widen_w, b->widen_b, b->Hout, b->H, u, L, v, L, L);
			float *t = u;
			u = v;
			v = t;
		}
	}
	*Lout = L;
	return u;
}

/* Final features (Hlast, Lf) after the final norm. */
static float *features(struct s4m_conv *cv, const float *x, size_t n, size_t *Lf,
		       enum fwd_mode mode)
{
	const struct s4m_model *m = cv->m;
	float *u = forward(cv, x, n, m->n_blocks - 1, Lf, mode);
	if (m->final_norm)
		norm_cols(cv, u, u, m->Hlast, *Lf, m->fn_a, m->fn_b);
	return u;
}

static int bad_len(const struct s4m_conv *cv, size_t n)
{
	return n < cv->m->hop || n > cv->max_len;
}

static void decode(struct s4m_conv *cv, const float *u, size_t Lf, float *logits);

int s4m_conv_logits(struct s4m_conv *cv, const float *x, size_t n, float *logits)
{
	if (bad_len(cv, n))
		return -EINVAL;
	size_t Lf;
	const float *u = features(cv, x, n, &Lf, FWD_PLAIN);
	decode(cv, u, Lf, logits);
	return 0;
}

size_t s4m_conv_primed(const struct s4m_conv *cv)
{
	return cv->pwin;
}

int s4m_conv_logits_primed(struct s4m_conv *cv, const float *x, size_t n, float *logits)
{
	/* the lone-clip decoder reads the window's own last Wf steps only */
	if (cv->pwin == 0 || n != cv->pwin || (!cv->m->decoder_last && n < s4m_window(cv->m)))
		return -EINVAL;
	size_t Lf;
	const float *u = features(cv, x, n, &Lf, FWD_PRIMED);
	decode(cv, u, Lf, logits);
	return 0;
}

/* Logits from the final features u (Hlast, Lf): the decoder over the last window or step. */
static void decode(struct s4m_conv *cv, const float *u, size_t Lf, float *logits)
{
	const struct s4m_model *m = cv->m;
	int Hl = m->Hlast, K = m->n_labels;
	size_t w = m->decoder_last ? 1 : (Lf < m->Wf ? Lf : m->Wf), t0 = Lf - w;
	/* f = mean of the last w steps (pool) or the last step; reuse mean[] as f (Hl <= max_len
	 * is not guaranteed, so use the GLU tile, which holds 2 Hmax * TILE >= Hl floats) */
	float *f = cv->g;
	for (int h = 0; h < Hl; h++) {
		const float *r = u + (size_t)h * Lf + t0;
		double s = 0;
		for (size_t t = 0; t < w; t++)
			s += r[t];
		f[h] = (float)(s / (double)w);
	}
	for (int k = 0; k < K; k++) {
		double s = m->dec_b[k];
		for (int h = 0; h < Hl; h++)
			s += (double)m->dec_w[(size_t)k * Hl + h] * f[h];
		logits[k] = (float)s;
	}
}

long s4m_conv_features(struct s4m_conv *cv, const float *x, size_t n, float *out, size_t max_steps)
{
	if (bad_len(cv, n) || n / cv->m->hop > max_steps)
		return -EINVAL;
	size_t Lf;
	const float *u = features(cv, x, n, &Lf, FWD_PLAIN);
	int Hl = cv->m->Hlast;
	for (size_t t = 0; t < Lf; t++)
		for (int h = 0; h < Hl; h++)
			out[t * Hl + h] = u[(size_t)h * Lf + t];
	return (long)Lf;
}

/* out (Lf, K): the pool decoder's mean over the last Wf steps ending at each of the Lf steps
 * whose logits are in cv->lg (K, Lf), these steps coming after np earlier ones of which the last
 * nt (>= min(np, Wf)) have their logits in tail (K rows of stride ts, nt used); fewer than Wf at
 * the very start. */
static void window_means(struct s4m_conv *cv, size_t Lf, const float *tail, size_t ts, size_t nt,
			 uint64_t np, float *out)
{
	const struct s4m_model *m = cv->m;
	int K = m->n_labels;
	for (int k = 0; k < K; k++) {
		const float *r = cv->lg + (size_t)k * Lf, *tl = nt ? tail + (size_t)k * ts : NULL;
		double s = 0;
		for (size_t j = 0; j < nt; j++)
			s += tl[j];
		for (size_t t = 0; t < Lf; t++) {
			uint64_t g = np + t;   /* step index from the start of the whole input */
			s += r[t];
			if (g >= m->Wf) {
				uint64_t i = g - m->Wf;
				s -= i >= np ? r[i - np] : tl[i - (np - nt)];
			}
			uint64_t cnt = g + 1 < m->Wf ? g + 1 : m->Wf;
			out[t * K + k] = (float)(s / (double)cnt);
		}
	}
}

/* Per-step logits out (Lf, K) of the final features u (Hlast, Lf) after np earlier steps (see
 * window_means). */
static long scan_decode(struct s4m_conv *cv, const float *u, size_t Lf, const float *tail,
			size_t ts, size_t nt, uint64_t np, float *out)
{
	const struct s4m_model *m = cv->m;
	int K = m->n_labels;
	/* per-step logits (K, Lf); the pool decoder's window mean of logits equals the logits of
	 * the window mean of features because the decoder is affine */
	linear_cols(m->dec_w, m->dec_b, K, m->Hlast, u, Lf, cv->lg, Lf, Lf);
	if (m->decoder_last) {
		for (size_t t = 0; t < Lf; t++)
			for (int k = 0; k < K; k++)
				out[t * K + k] = cv->lg[(size_t)k * Lf + t];
		return (long)Lf;
	}
	window_means(cv, Lf, tail, ts, nt, np, out);
	return (long)Lf;
}

long s4m_conv_scan(struct s4m_conv *cv, const float *x, size_t n, float *out, size_t max_steps)
{
	if (bad_len(cv, n) || n / cv->m->hop > max_steps)
		return -EINVAL;
	size_t Lf;
	const float *u = features(cv, x, n, &Lf, FWD_PLAIN);
	return scan_decode(cv, u, Lf, NULL, 0, 0, 0, out);
}

long s4m_conv_scan_primed(struct s4m_conv *cv, const float *x, size_t n, float *out,
			  size_t max_steps)
{
	if (cv->pwin == 0 || n != cv->pwin || n / cv->m->hop > max_steps)
		return -EINVAL;
	size_t Lf;
	const float *u = features(cv, x, n, &Lf, FWD_PRIMED);
	return scan_decode(cv, u, Lf, cv->ptail, cv->ntail, cv->ntail, cv->m->preroll / cv->m->hop,
			   out);
}

size_t s4m_conv_carry_min(const struct s4m_model *m)
{
	size_t need = m->hop;
	for (int i = 0; i < m->n_blocks; i++)
		if (m->b[i].klen * m->b[i].cum > need)
			need = m->b[i].klen * m->b[i].cum;
	return (need + m->hop - 1) / m->hop * m->hop;
}

int s4m_conv_carry_init(struct s4m_conv *cv, char *err, size_t errlen)
{
	const struct s4m_model *m = cv->m;
	if (cv->hist)
		return 0;
	if (m->bidir) {
		s4k_seterr(err, errlen, "a bidirectional model cannot scan in carried chunks.");
		return -EINVAL;
	}
	if (cv->max_len < s4m_conv_carry_min(m)) {
		s4k_seterr(err, errlen, "carried chunks of %zu samples are shorter than the longest "
			   "kernel (%zu samples).", cv->max_len, s4m_conv_carry_min(m));
		return -EINVAL;
	}
	if (!(cv->hist = calloc((size_t)m->n_blocks, sizeof *cv->hist)) ||
	    !(cv->ctail = fftwf_alloc_real((size_t)m->n_labels * m->Wf)))
		goto oom;
	for (int i = 0; i < m->n_blocks; i++)
		if (!(cv->hist[i] = fftwf_alloc_real((size_t)m->b[i].H * m->b[i].klen)))
			goto oom;
	s4m_conv_carry_reset(cv);
	return 0;
oom:   /* not set up at all, so that a later call starts over */
	if (cv->hist)
		for (int i = 0; i < m->n_blocks; i++)
			fftwf_free(cv->hist[i]);
	free(cv->hist);
	fftwf_free(cv->ctail);
	cv->hist = NULL;
	cv->ctail = NULL;
	s4k_seterr(err, errlen, "out of memory for a carried scan's history.");
	return -ENOMEM;
}

void s4m_conv_carry_reset(struct s4m_conv *cv)
{
	const struct s4m_model *m = cv->m;
	if (!cv->hist)
		return;
	for (int i = 0; i < m->n_blocks; i++)
		memset(cv->hist[i], 0, (size_t)m->b[i].H * m->b[i].klen * sizeof *cv->hist[i]);
	cv->cnt = 0;
	cv->csteps = 0;
}

long s4m_conv_carry_scan(struct s4m_conv *cv, const float *x, size_t n, float *out,
			 size_t max_steps)
{
	const struct s4m_model *m = cv->m;
	if (!cv->hist || n == 0 || n % m->hop || n > cv->max_len || n / m->hop > max_steps)
		return -EINVAL;
	size_t Lf, W = m->Wf;
	const float *u = features(cv, x, n, &Lf, FWD_CARRIED);
	long steps = scan_decode(cv, u, Lf, cv->ctail, W, cv->cnt, cv->csteps, out);
	/* the decoder's tail: the last min(all steps, Wf) logits of [tail | these], per label */
	size_t cnt = cv->cnt + Lf < W ? cv->cnt + Lf : W, fresh = Lf < cnt ? Lf : cnt,
	       keep = cnt - fresh;
	for (int k = 0; !m->decoder_last && k < m->n_labels; k++) {
		float *row = cv->ctail + (size_t)k * W;
		memmove(row, row + cv->cnt - keep, keep * sizeof *row);
		memcpy(row + keep, cv->lg + (size_t)k * Lf + Lf - fresh, fresh * sizeof *row);
	}
	cv->cnt = cnt;
	cv->csteps += Lf;
	return steps;
}

long s4m_conv_block_output(struct s4m_conv *cv, const float *x, size_t n, int block, float *out,
			   size_t max_elems)
{
	const struct s4m_model *m = cv->m;
	if (block < 0 || block >= m->n_blocks || n > cv->max_len)
		return -EINVAL;
	const struct s4m__block *b = &m->b[block];
	size_t L = n / (b->cum * (size_t)b->pool);
	if (L == 0 || L * (size_t)b->Hout > max_elems)
		return -EINVAL;
	size_t Lo;
	const float *u = forward(cv, x, n, block, &Lo, FWD_PLAIN);
	memcpy(out, u, Lo * (size_t)b->Hout * sizeof *out);
	return (long)Lo;
}
