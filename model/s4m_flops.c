/* s4m_flops.c - floating-point operations per input sample of a model, for `s4kws info` and
 * the benchmarks: step mode (one sample through every block's recurrence) and conv mode over a
 * window of len samples (FFT sizes as s4m_conv.c picks them).
 */
#include "s4m_impl.h"

#include <math.h>

/* ---- FLOP estimates: multiply-add = 2, a transcendental function = 1 ---- */

static double flops_pointwise(const struct s4m_model *m, const struct s4m__block *b)
{
	double H = b->H, normf = m->batchnorm ? 2 * H : 8 * H;
	return normf                 /* norm */
	       + 2 * H               /* D skip */
	       + 4 * H               /* GELU */
	       + 4 * H * H + 2 * H   /* out linear (2H x H) + bias */
	       + 4 * H               /* GLU: sigmoid, multiply */
	       + H                   /* residual */
	       + H;                  /* pool accumulation */
}

double s4m_flops_step(const struct s4m_model *m)
{
	double fl = 2.0 * m->b[0].H; /* encoder */
	for (int i = 0; i < m->n_blocks; i++) {
		const struct s4m__block *b = &m->b[i];
		double ssm = (m->dplr ? 36.0 : 14.0) * m->N2 * b->H;
		double per_step = flops_pointwise(m, b) + ssm;
		if (b->widen_w)
			per_step += (2.0 * b->Hout * b->H + b->Hout) / b->pool;
		fl += per_step / (double)b->cum;
	}
	double Hl = m->Hlast;
	fl += ((m->final_norm ? 8 * Hl : 0) + 3 * Hl) / (double)m->hop; /* final norm, window sum */
	return fl;
}

double s4m_flops_conv(const struct s4m_model *m, size_t len)
{
	if (len < m->hop)
		return 0;
	double fl = 2.0 * m->b[0].H * (double)len;
	for (int i = 0; i < m->n_blocks; i++) {
		const struct s4m__block *b = &m->b[i];
		size_t L = len / b->cum, taps = L < b->klen ? L : b->klen;
		size_t nfft = s4m__fft_len(L + taps + (m->bidir ? 1 : 0));
		double ffts = 2 * 2.5 * (double)nfft * log2((double)nfft) + 6.0 * (double)(nfft / 2 + 1);
		fl += b->H * ffts + flops_pointwise(m, b) * (double)L;
		if (b->widen_w)
			fl += (2.0 * b->Hout * b->H + b->Hout) * (double)(L / (size_t)b->pool);
	}
	size_t Lf = len / m->hop;
	fl += (m->final_norm ? 8.0 * m->Hlast * (double)Lf : 0) + (double)m->Hlast * (double)Lf +
	      2.0 * m->n_labels * m->Hlast;
	return fl / (double)len;
}
