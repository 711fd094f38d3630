/* s4m.c - build an immutable model from a checked weights file, and read it.
 *
 * Design: s4m_load.c has parsed the metadata and checked every tensor's presence, shape and
 * finiteness; here the model is built: weights are converted to float for the hot paths,
 * BatchNorm is folded into a per-channel affine map, and each block's SSM parameters are
 * transformed (dt, real part), broadcast over channels (row h % n_ssm) and handed to s4k.c,
 * which returns the conv kernel (double, at this block's length) and the float step
 * coefficients. Nothing of the file is kept except a copy of its metadata, so
 * s4m_load_buffer's buffer may go away too.
 *
 * Conv mode (s4m_conv.c) and step mode (s4m_stream.c) only read the model. The one mutable
 * part is the cache of kernel spectra, filled under spec_lock by s4m_conv_new().
 */
#define _GNU_SOURCE
#include "s4m_impl.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st.h"

#define MAX_KERNEL_DOUBLES ((size_t)32 << 20)   /* 256 MB of kernels over all blocks */

/* ---- building ---- */

static double *read_d(const struct st_file *f, const char *name)
{
	const struct st_tensor *t = st_find(f, name);
	double *d = malloc((t->numel ? t->numel : 1) * sizeof *d);
	if (d)
		st_read_f64(t, d);
	return d;
}

static float *read_f(const struct st_file *f, const char *name)
{
	const struct st_tensor *t = st_find(f, name);
	float *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
	double *d = read_d(f, name);
	if (!v || !d) {
		free(v);
		free(d);
		return NULL;
	}
	for (size_t i = 0; i < t->numel; i++)
		v[i] = (float)d[i];
	free(d);
	return v;
}

/* (R, C) -> (C, R) copy. */
static float *transpose(const float *a, int R, int C)
{
	float *t = malloc((size_t)R * (size_t)C * sizeof *t);
	if (t)
		for (int r = 0; r < R; r++)
			for (int c = 0; c < C; c++)
				t[(size_t)c * R + r] = a[(size_t)r * C + c];
	return t;
}

/* Norm parameters: LayerNorm as is; BatchNorm folded into y = a x + b. */
static int load_norm(const struct st_file *f, int batch, const char *prefix, int H, float **a,
		     float **b, char *err, size_t errlen)
{
	char n[64];
	snprintf(n, sizeof n, "%s.weight", prefix);
	double *w = read_d(f, n);
	snprintf(n, sizeof n, "%s.bias", prefix);
	double *bi = read_d(f, n);
	double *mu = NULL, *var = NULL;
	if (batch) {
		snprintf(n, sizeof n, "%s.running_mean", prefix);
		mu = read_d(f, n);
		snprintf(n, sizeof n, "%s.running_var", prefix);
		var = read_d(f, n);
	}
	*a = malloc((size_t)H * sizeof **a);
	*b = malloc((size_t)H * sizeof **b);
	int rc = 0;
	if (!w || !bi || !*a || !*b || (batch && (!mu || !var))) {
		rc = -ENOMEM;
		s4k_seterr(err, errlen, "out of memory.");
		goto out;
	}
	for (int h = 0; h < H; h++) {
		if (batch) {
			if (var[h] < 0) {
				s4k_seterr(err, errlen, "tensor '%s.running_var' is negative at index %d.",
					   prefix, h);
				rc = -EINVAL;
				goto out;
			}
			double s = w[h] / sqrt(var[h] + 1e-5);
			(*a)[h] = (float)s;
			(*b)[h] = (float)(bi[h] - mu[h] * s);
		} else {
			(*a)[h] = (float)w[h];
			(*b)[h] = (float)bi[h];
		}
	}
out:
	free(w);
	free(bi);
	free(mu);
	free(var);
	return rc;
}

static double softplus(double x)
{
	return x > 20 ? x : log1p(exp(x));
}

/* Block i's SSM: transforms, h % S broadcast, kernel(s) and step coefficients via s4k. */
static int load_ssm(struct s4m_model *m, const struct st_file *f, const struct s4m__cfg *c, int i,
		    char *err, size_t errlen)
{
	struct s4m__block *b = &m->b[i];
	int H = b->H, N2 = c->d_state / 2, S = c->n_ssm ? c->n_ssm : H;
	char n[64];
	int rc = -ENOMEM;
	double *inv_dt = NULL, *Ar = NULL, *Ai = NULL, *Bt = NULL, *Pt = NULL, *Ct = NULL, *dt = NULL;
	double complex *A = NULL, *B = NULL, *P = NULL, *C = NULL;
	char e2[S4K_ERR_LEN];

	snprintf(n, sizeof n, "blocks.%d.ssm.inv_dt", i);
	inv_dt = read_d(f, n);
	snprintf(n, sizeof n, "blocks.%d.ssm.A_real", i);
	Ar = read_d(f, n);
	snprintf(n, sizeof n, "blocks.%d.ssm.A_imag", i);
	Ai = read_d(f, n);
	snprintf(n, sizeof n, "blocks.%d.ssm.B", i);
	Bt = read_d(f, n);
	snprintf(n, sizeof n, "blocks.%d.ssm.C", i);
	Ct = read_d(f, n);
	if (c->dplr) {
		snprintf(n, sizeof n, "blocks.%d.ssm.P", i);
		Pt = read_d(f, n);
	}
	size_t HN = (size_t)H * (size_t)N2;
	dt = malloc((size_t)H * sizeof *dt);
	A = malloc(HN * sizeof *A);
	B = malloc(HN * sizeof *B);
	C = malloc(HN * sizeof *C);
	P = c->dplr ? malloc(HN * sizeof *P) : NULL;
	if (!inv_dt || !Ar || !Ai || !Bt || !Ct || !dt || !A || !B || !C || (c->dplr && (!Pt || !P))) {
		s4k_seterr(err, errlen, "out of memory.");
		goto out;
	}

	for (int h = 0; h < H; h++) {
		dt[h] = c->dt_tf ? softplus(inv_dt[h]) : exp(inv_dt[h]);
		if (!(dt[h] > 0) || !isfinite(dt[h])) {
			s4k_seterr(err, errlen,
				   "tensor 'blocks.%d.ssm.inv_dt' gives a step size that is not a positive finite number at index %d.",
				   i, h);
			rc = -EINVAL;
			goto out;
		}
		int s = h % S;
		for (int k = 0; k < N2; k++) {
			size_t j = (size_t)s * N2 + k, o = (size_t)h * N2 + k;
			double ar = Ar[j];
			double re = c->real_tf == 0 ? -exp(ar) : c->real_tf == 1 ? -(fmax(ar, 0) + 1e-4) : -ar;
			A[o] = re - I * Ai[j];
			B[o] = Bt[2 * j] + I * Bt[2 * j + 1];
			if (P)
				P[o] = Pt[2 * j] + I * Pt[2 * j + 1];
			C[o] = Ct[2 * o] + I * Ct[2 * o + 1];
		}
	}
	struct s4k_params p = {
		.H = H, .N2 = N2, .family = c->dplr ? S4K_DPLR : S4K_DIAG, .disc = c->disc,
		.dt = dt, .A = A, .B = B, .C = C, .P = P,
		.l_kernel = c->l_kernel ? c->l_kernel[i] : 0, .rate = m->rate,
	};
	size_t KL = (size_t)H * b->klen;
	b->K = malloc(KL * sizeof *b->K);
	if (!b->K) {
		s4k_seterr(err, errlen, "out of memory.");
		goto out;
	}
	if ((rc = s4k_kernel(&p, (long)b->klen, b->K, e2, sizeof e2)) < 0) {
		s4k_seterr(err, errlen, "block %d: %s", i, e2);
		goto out;
	}
	if ((rc = s4k_step_init(&b->step, &p, e2, sizeof e2)) < 0) {
		s4k_seterr(err, errlen, "block %d: %s", i, e2);
		goto out;
	}
	b->has_step = 1;
	if (c->bidir) {
		for (size_t o = 0; o < HN; o++)
			C[o] = Ct[2 * (HN + o)] + I * Ct[2 * (HN + o) + 1];
		b->Kb = malloc(KL * sizeof *b->Kb);
		rc = -ENOMEM;
		if (!b->Kb) {
			s4k_seterr(err, errlen, "out of memory.");
			goto out;
		}
		if ((rc = s4k_kernel(&p, (long)b->klen, b->Kb, e2, sizeof e2)) < 0) {
			s4k_seterr(err, errlen, "block %d (backward kernel): %s", i, e2);
			goto out;
		}
	}
	for (size_t k = 0; k < KL; k++) {
		if (!isfinite(b->K[k]) || (b->Kb && !isfinite(b->Kb[k]))) {
			s4k_seterr(err, errlen,
				   "block %d: the SSM kernel is not finite (unstable modes in 'blocks.%d.ssm.A_real'?).",
				   i, i);
			rc = -EINVAL;
			goto out;
		}
	}
	rc = 0;
out:
	free(inv_dt);
	free(Ar);
	free(Ai);
	free(Bt);
	free(Pt);
	free(Ct);
	free(dt);
	free(A);
	free(B);
	free(C);
	free(P);
	return rc;
}

void s4m_free(struct s4m_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->n_labels; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->thresholds);
	for (size_t i = 0; i < 2 * m->n_meta; i++)
		free(m->meta[i]);
	free(m->meta);
	for (int i = 0; m->b && i < m->n_blocks; i++) {
		struct s4m__block *b = &m->b[i];
		free(b->norm_a);
		free(b->norm_b);
		free(b->D);
		free(b->out_w);
		free(b->out_wT);
		free(b->widen_wT);
		free(b->out_b);
		free(b->widen_w);
		free(b->widen_b);
		free(b->K);
		free(b->Kb);
		if (b->has_step)
			s4k_step_fini(&b->step);
	}
	free(m->b);
	free(m->enc_w);
	free(m->enc_b);
	free(m->fn_a);
	free(m->fn_b);
	free(m->dec_w);
	free(m->dec_b);
	for (struct s4m__spec *s = m->spec, *nx; s; s = nx) {
		nx = s->next;
		free(s->re_im);
		free(s);
	}
	pthread_mutex_destroy(&m->spec_lock);
	free(m);
}

int s4m__build(struct s4m_model *m, const struct st_file *f, struct s4m__cfg *c, char *err, size_t errlen)
{
	int rc;
	char n[64];
	/* move labels over */
	m->labels = c->labels;
	m->n_labels = c->n_labels;
	c->labels = NULL;
	c->n_labels = 0;
	m->thresholds = c->thresholds;
	c->thresholds = NULL;
	m->sample_rate = c->sample_rate;
	m->n_blocks = c->nb;
	m->batchnorm = c->batch;
	m->prenorm = c->prenorm;
	m->final_norm = c->final_norm;
	m->bidir = c->bidir;
	m->decoder_last = c->dec_last;
	m->N2 = c->d_state / 2;
	m->dplr = c->dplr;

	size_t nm = st_meta_count(f);
	m->meta = calloc(2 * nm + 1, sizeof *m->meta);
	m->b = calloc((size_t)c->nb, sizeof *m->b);
	if (!m->meta || !m->b)
		goto nomem;
	for (size_t i = 0; i < nm; i++) {
		m->meta[2 * i] = strdup(st_meta_key(f, i));
		m->meta[2 * i + 1] = strdup(st_meta_value(f, i));
		m->n_meta = i + 1;
		if (!m->meta[2 * i] || !m->meta[2 * i + 1])
			goto nomem;
	}

	/* sizes at the requested rate */
	size_t cum = 1, kernel_doubles = 0;
	m->Hmax = 0;
	for (int i = 0; i < c->nb; i++) {
		struct s4m__block *b = &m->b[i];
		b->H = (int)c->widths[i];
		b->Hout = i + 1 < c->nb ? (int)c->widths[i + 1] : b->H;
		b->pool = (int)c->pools[i];
		b->cum = cum;
		double kl = (double)c->l_max / (double)cum / m->rate;
		b->klen = kl < 1 ? 1 : (size_t)llround(kl);
		cum *= (size_t)b->pool;
		kernel_doubles += (size_t)b->H * b->klen * (c->bidir ? 2 : 1);
		if (b->H > m->Hmax)
			m->Hmax = b->H;
	}
	if (kernel_doubles > MAX_KERNEL_DOUBLES) {
		s4k_seterr(err, errlen, "the kernels of this model (widths x l_max) would need %zu MB, above the %zu MB limit.",
			   kernel_doubles >> 17, MAX_KERNEL_DOUBLES >> 17);
		return -EINVAL;
	}
	m->hop = cum;
	double wf = (double)c->decoder_window / m->rate / (double)cum;
	m->Wf = wf < 1 ? 1 : (size_t)llround(wf);
	m->preroll = (size_t)llround((double)c->preroll / m->rate / (double)cum) * cum;
	m->Hlast = m->b[c->nb - 1].H;
	if (m->Wf * (size_t)m->Hlast > ((size_t)64 << 20)) {
		s4k_seterr(err, errlen, "metadata 'decoder_window' is too long for this model.");
		return -EINVAL;
	}

	for (size_t i = 0; i < st_count(f); i++) {
		const struct st_tensor *t = st_tensor_at(f, i);
		if (!strstr(t->name, ".running_"))
			m->n_params += t->numel;
	}

	if (!(m->enc_w = read_f(f, "encoder.weight")) || !(m->enc_b = read_f(f, "encoder.bias")) ||
	    !(m->dec_w = read_f(f, "decoder.weight")) || !(m->dec_b = read_f(f, "decoder.bias")))
		goto nomem;
	if (c->final_norm &&
	    (rc = load_norm(f, c->batch, "final_norm", m->Hlast, &m->fn_a, &m->fn_b, err, errlen)))
		return rc;
	m->min_margin = INFINITY;
	for (int i = 0; i < c->nb; i++) {
		struct s4m__block *b = &m->b[i];
		snprintf(n, sizeof n, "blocks.%d.norm", i);
		if ((rc = load_norm(f, c->batch, n, b->H, &b->norm_a, &b->norm_b, err, errlen)))
			return rc;
		snprintf(n, sizeof n, "blocks.%d.ssm.D", i);
		if (!(b->D = read_f(f, n)))
			goto nomem;
		snprintf(n, sizeof n, "blocks.%d.out.weight", i);
		if (!(b->out_w = read_f(f, n)))
			goto nomem;
		snprintf(n, sizeof n, "blocks.%d.out.bias", i);
		if (!(b->out_b = read_f(f, n)))
			goto nomem;
		if (b->Hout != b->H) {
			snprintf(n, sizeof n, "widen.%d.weight", i);
			if (!(b->widen_w = read_f(f, n)))
				goto nomem;
			snprintf(n, sizeof n, "widen.%d.bias", i);
			if (!(b->widen_b = read_f(f, n)))
				goto nomem;
		}
		if (!(b->out_wT = transpose(b->out_w, 2 * b->H, b->H)) ||
		    (b->widen_w && !(b->widen_wT = transpose(b->widen_w, b->Hout, b->H))))
			goto nomem;
		if ((rc = load_ssm(m, f, c, i, err, errlen)))
			return rc;
		if (b->step.min_margin < m->min_margin)
			m->min_margin = b->step.min_margin;
	}
	return 0;
nomem:
	s4k_seterr(err, errlen, "out of memory while loading the model.");
	return -ENOMEM;
}

/* ---- accessors ---- */

double s4m_rate(const struct s4m_model *m) { return m->rate; }
int s4m_sample_rate(const struct s4m_model *m) { return m->sample_rate; }
int s4m_n_labels(const struct s4m_model *m) { return m->n_labels; }
int s4m_n_blocks(const struct s4m_model *m) { return m->n_blocks; }
int s4m_bidirectional(const struct s4m_model *m) { return m->bidir; }
int s4m_streamable(const struct s4m_model *m) { return !m->bidir; }
size_t s4m_window(const struct s4m_model *m) { return m->Wf * m->hop; }
size_t s4m_preroll(const struct s4m_model *m) { return m->preroll; }
size_t s4m_hop(const struct s4m_model *m) { return m->hop; }
size_t s4m_n_params(const struct s4m_model *m) { return m->n_params; }
double s4m_min_margin(const struct s4m_model *m) { return m->min_margin; }

const float *s4m_thresholds(const struct s4m_model *m) { return m->thresholds; }

const char *s4m_label(const struct s4m_model *m, int i)
{
	return i >= 0 && i < m->n_labels ? m->labels[i] : NULL;
}

const char *s4m_meta(const struct s4m_model *m, const char *key)
{
	for (size_t i = 0; i < m->n_meta; i++)
		if (!strcmp(m->meta[2 * i], key))
			return m->meta[2 * i + 1];
	return NULL;
}

const char *s4m_meta_key(const struct s4m_model *m, size_t i)
{
	return i < m->n_meta ? m->meta[2 * i] : NULL;
}

int s4m_block_info(const struct s4m_model *m, int i, struct s4m_block_info *bi)
{
	if (i < 0 || i >= m->n_blocks)
		return -EINVAL;
	const struct s4m__block *b = &m->b[i];
	bi->width = b->H;
	bi->out_width = b->Hout;
	bi->pool = b->pool;
	bi->cumpool = b->cum;
	bi->kernel_len = b->klen;
	bi->min_margin = b->has_step ? b->step.min_margin : NAN;
	return 0;
}

const double *s4m_block_kernel(const struct s4m_model *m, int i, int dir)
{
	if (i < 0 || i >= m->n_blocks)
		return NULL;
	return dir ? m->b[i].Kb : m->b[i].K;
}

size_t s4m_receptive_field(const struct s4m_model *m)
{
	size_t r = 0;
	for (int i = 0; i < m->n_blocks; i++)
		r += (m->b[i].klen - 1) * m->b[i].cum;
	return (r + m->hop - 1) / m->hop * m->hop;
}
