/* s4m_impl.h - internals shared by s4m_load.c (reading a file), s4m.c (building the model),
 * s4m_conv.c (convolution mode), s4m_stream.c (step mode) and s4m_flops.c. Not a public
 * header: only model/ includes it. Helpers shared across these files carry the s4m__ prefix.
 */
#ifndef S4KWS_MODEL_S4M_IMPL_H
#define S4KWS_MODEL_S4M_IMPL_H

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/hot.h"
#include "s4k.h"
#include "s4m.h"

#define S4M_NORM_EPS 1e-5f

/* One residual block, weights in float for the hot paths. */
struct s4m__block {
	int H;               /* width */
	int Hout;            /* width after widen (H if none) */
	int pool;            /* pooling factor after the block */
	size_t cum;          /* cumpool(i): input samples per step of this block */
	size_t klen;         /* conv kernel taps (at the model rate) */
	float *norm_a;       /* (H) LayerNorm gamma, or folded BatchNorm scale */
	float *norm_b;       /* (H) LayerNorm beta, or folded BatchNorm shift */
	float *D;            /* (H) skip */
	float *out_w;        /* (2H, H) */
	float *out_wT;       /* (H, 2H) the same, transposed for the step-mode matvec */
	float *out_b;        /* (2H) */
	float *widen_w;      /* (Hout, H) or NULL */
	float *widen_wT;     /* (H, Hout) transposed, or NULL */
	float *widen_b;      /* (Hout) */
	double *K;           /* (H, klen) causal kernel */
	double *Kb;          /* (H, klen) backward kernel (bidirectional) or NULL */
	struct s4k_step step;/* step-mode coefficients */
	int has_step;
};

/* Kernel spectra for one block at one FFT length, shared by every conv workspace that uses
 * that length. Immutable once published in the model's cache list. */
struct s4m__spec {
	struct s4m__spec *next;
	int block;
	size_t nfft;         /* FFT length */
	size_t taps;         /* kernel taps transformed (<= klen) */
	float *re_im;        /* (H, nfft/2+1) complex, interleaved re/im, already scaled by 1/nfft */
};

struct s4m_model {
	double rate;
	int sample_rate;
	int n_labels;
	char **labels;                /* (n_labels) */
	float *thresholds;            /* (n_labels) recommended detection thresholds, NaN = none */
	char **meta;                  /* (2 * n_meta): key, value, ... */
	size_t n_meta;
	int n_blocks;
	struct s4m__block *b;         /* (n_blocks) */
	int batchnorm;                /* 0: LayerNorm, 1: BatchNorm folded into norm_a/norm_b */
	int prenorm, final_norm, bidir, decoder_last;
	int N2;                       /* complex modes per channel */
	int dplr;
	size_t hop;                   /* total pool */
	size_t Wf;                    /* decoder window in final steps */
	size_t preroll;               /* input samples */
	size_t n_params;
	double min_margin;
	float *enc_w, *enc_b;         /* (H0), (H0) */
	float *fn_a, *fn_b;           /* (Hlast) final norm (folded for batch), or NULL */
	float *dec_w, *dec_b;         /* (K, Hlast), (K) */
	int Hlast;
	int Hmax;                     /* max width over blocks */
	pthread_mutex_t spec_lock;    /* guards the spectra cache below (load-time work only) */
	struct s4m__spec *spec;
};

/* Norm over channels for one step: LayerNorm (eps 1e-5) or folded eval BatchNorm. */
static inline void s4m__norm1(const float *x, float *y, int H, int batch,
			      const float *restrict a, const float *restrict b)
{
	if (batch) {
		for (int h = 0; h < H; h++)
			y[h] = x[h] * a[h] + b[h];
		return;
	}
	float mean = 0.f, var = 0.f;
	for (int h = 0; h < H; h++)
		mean += x[h];
	mean /= (float)H;
	for (int h = 0; h < H; h++)
		var += (x[h] - mean) * (x[h] - mean);
	float r = 1.f / sqrtf(var / (float)H + S4M_NORM_EPS);
	for (int h = 0; h < H; h++)
		y[h] = (x[h] - mean) * r * a[h] + b[h];
}

/* exp(x) in float, about 1 ulp (Cody-Waite reduction and the Cephes expf polynomial), written
 * without calls or branches so that loops over it vectorize; libm's expf is a call per element.
 * Inputs are clamped to [-87, 88], where the result is a normal float; NaN takes the lower
 * bound (the comparisons are written so that it fails them), so the exponent bits stay defined. */
static inline float s4m__expf(float x)
{
	x = x >= -87.f ? x : -87.f;
	x = x <= 88.f ? x : 88.f;
	float k = x * 1.44269504088896341f + 12582912.f; /* round(x / ln 2) by the 1.5*2^23 trick */
	k -= 12582912.f;
	float r = x - k * 0.693359375f;                  /* ln 2 = 0.693359375 - 2.12194440e-4 */
	r = r + k * 2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.f;
	union { uint32_t i; float f; } sc = {.i = (uint32_t)((int32_t)k + 127) << 23};
	return p * sc.f;
}

/* GELU with the erf form of torch.nn.GELU(): 0.5 x (1 + erf(x / sqrt 2)). erf by Abramowitz &
 * Stegun 7.1.26 (absolute error <= 1.5e-7, the approximation PyTorch's vectorized CPU erf uses),
 * arranged so that 1 + erf(z) for z < 0 is computed directly as erfc(|z|) without cancellation.
 * Branch-free: the conv-mode loop over time vectorizes. */
static inline float s4m__gelu(float x)
{
	float z = (x < 0 ? -x : x) * 0.70710678118654752f;
	float t = 1.f / (1.f + 0.3275911f * z);
	float q = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
			t * (-1.453152027f + t * 1.061405429f))));
	float c = q * s4m__expf(-z * z);   /* erfc(z), z >= 0 */
	return 0.5f * x * (x < 0 ? c : 2.f - c);
}

static inline float s4m__sigmoid(float x)
{
	return 1.f / (1.f + s4m__expf(-x));
}

/* Hot loops: an AVX2+FMA clone next to the baseline one (common/hot.h). */
#define S4M_HOT S4_HOT

/* A batch's capacity and its scratch arrays of stream and input pointers (s4m_stream.c), for
 * s4m_relay_batch_push. */
int s4m__batch_max(const struct s4m_batch *b);
struct s4m_stream **s4m__batch_slots(struct s4m_batch *b);
const float **s4m__batch_xs(struct s4m_batch *b);

/* Smallest even FFT length >= need of the form 2^a 3^b (s4m_conv.c). */
size_t s4m__fft_len(size_t need);

/* A weights file's configuration as parsed from its metadata (s4m_load.c), what s4m__build
 * takes: the model takes over labels and thresholds (set to NULL here). */
struct s4m__cfg {
	int sample_rate;
	char **labels;
	int n_labels;
	float *thresholds;      /* (n_labels), NaN = none */
	int dplr;
	enum s4k_disc disc;
	int dt_tf;              /* 0 exp, 1 softplus */
	int real_tf;            /* 0 exp, 1 relu, 2 none */
	int d_state, n_ssm;
	int nb;
	long *widths, *pools, *l_kernel;
	int batch, prenorm, final_norm, bidir, dec_last;
	long decoder_window, l_max, preroll;
};

/* Build m (allocated, rate and spec_lock set) from a checked file and its configuration
 * (s4m.c). 0 or -errno with err; m is then partly built and goes to s4m_free(). */
struct st_file;
int s4m__build(struct s4m_model *m, const struct st_file *f, struct s4m__cfg *c, char *err, size_t errlen);

#endif
