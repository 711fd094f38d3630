/* s4m.c - load an s4kws weights file into an immutable model.
 *
 * Design: loading is three passes over a safetensors file opened by st.c. (1) The metadata is
 * parsed into a plain configuration, refusing unknown values by name. (2) From that
 * configuration we derive the complete list of tensors docs/format.md allows, with their
 * shapes; every one must be present with that shape and finite values, and nothing else may be.
 * (3) The model is built: weights are converted to float for the hot paths, BatchNorm is folded
 * into a per-channel affine map, and each block's SSM parameters are transformed (dt, real part),
 * broadcast over channels (row h % n_ssm) and handed to s4k.c, which returns the conv kernel
 * (double, at this block's length) and the float step coefficients. Nothing of the file is kept
 * after load except a copy of its metadata, so s4m_load_buffer's buffer may go away too.
 *
 * Conv mode (s4m_conv.c) and step mode (s4m_stream.c) only read the model. The one mutable
 * part is the cache of kernel spectra, filled under spec_lock by s4m_conv_new().
 */
#define _GNU_SOURCE
#include "s4m_impl.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st.h"

/* Caps that keep a hostile but well-formed file from asking for absurd amounts of memory. */
#define MAX_BLOCKS 64
#define MAX_WIDTH 4096
#define MAX_DSTATE 1024
#define MAX_LABELS 4096
#define MAX_POOL 1024
#define MAX_TOTAL_POOL 65536
#define MAX_LMAX (1L << 22)
#define MAX_WINDOW (1L << 24)
#define MAX_KERNEL_DOUBLES ((size_t)32 << 20)   /* 256 MB of kernels over all blocks */

/* ---- metadata ---- */

struct cfg {
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

static void cfg_free(struct cfg *c)
{
	if (c->labels)
		for (int i = 0; i < c->n_labels; i++)
			free(c->labels[i]);
	free(c->labels);
	free(c->thresholds);
	free(c->widths);
	free(c->pools);
	free(c->l_kernel);
}

static const char *meta_req(const struct st_file *f, const char *key, char *err, size_t errlen)
{
	const char *v = st_meta(f, key);
	if (!v)
		s4k_seterr(err, errlen, "metadata lacks the key '%s' (docs/format.md lists it).", key);
	return v;
}

/* Strict decimal: digits only, value in [lo, hi]. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
	if (!*s || strlen(s) > 18)
		return -1;
	long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int meta_long(const struct st_file *f, const char *key, long lo, long hi, long *out,
		     char *err, size_t errlen)
{
	const char *v = meta_req(f, key, err, errlen);
	if (!v)
		return -EINVAL;
	if (parse_long(v, lo, hi, out) < 0) {
		s4k_seterr(err, errlen, "metadata '%s' is '%.40s', expected an integer from %ld to %ld.",
			   key, v, lo, hi);
		return -EINVAL;
	}
	return 0;
}

/* One of a fixed list of words; refuses others by name. */
static int meta_choice(const struct st_file *f, const char *key, const char *const *words, int n,
		       int *out, char *err, size_t errlen)
{
	const char *v = meta_req(f, key, err, errlen);
	if (!v)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		if (!strcmp(v, words[i])) {
			*out = i;
			return 0;
		}
	}
	char list[128] = "";
	for (int i = 0; i < n; i++) {
		size_t l = strlen(list);
		snprintf(list + l, sizeof list - l, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
			 words[i]);
	}
	s4k_seterr(err, errlen, "unsupported %s '%.40s' (%s%s).", key, v, n == 1 ? "only " : "expected ",
		   list);
	return -ENOTSUP;
}

static int meta_bool(const struct st_file *f, const char *key, int *out, char *err, size_t errlen)
{
	const char *v = meta_req(f, key, err, errlen);
	if (!v)
		return -EINVAL;
	if (strcmp(v, "true") && strcmp(v, "false")) {
		s4k_seterr(err, errlen, "metadata '%s' is '%.40s', expected true or false.", key, v);
		return -EINVAL;
	}
	*out = !strcmp(v, "true");
	return 0;
}

/* A JSON array of integers in [lo, hi]; n_want < 0 accepts any length >= 1. */
static int meta_longs(const struct st_file *f, const char *key, int n_want, long lo, long hi,
		      long **out, int *n_out, char *err, size_t errlen)
{
	const char *v = meta_req(f, key, err, errlen);
	if (!v)
		return -EINVAL;
	json_t *a = json_loads(v, JSON_DECODE_ANY, NULL);
	int rc = -EINVAL;
	if (!a || !json_is_array(a)) {
		s4k_seterr(err, errlen, "metadata '%s' is not a JSON array of integers.", key);
		goto out;
	}
	size_t n = json_array_size(a);
	if (n == 0 || n > MAX_BLOCKS || (n_want >= 0 && n != (size_t)n_want)) {
		if (n_want >= 0)
			s4k_seterr(err, errlen, "metadata '%s' has %zu entries, expected %d (one per block).",
				   key, n, n_want);
		else
			s4k_seterr(err, errlen, "metadata '%s' has %zu entries, expected 1 to %d.", key, n,
				   MAX_BLOCKS);
		goto out;
	}
	*out = calloc(n, sizeof **out);
	if (!*out) {
		rc = -ENOMEM;
		s4k_seterr(err, errlen, "out of memory.");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(a, i);
		if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi) {
			s4k_seterr(err, errlen, "metadata '%s' entry %zu is not an integer from %ld to %ld.",
				   key, i, lo, hi);
			goto out;
		}
		(*out)[i] = (long)json_integer_value(e);
	}
	*n_out = (int)n;
	rc = 0;
out:
	json_decref(a);
	return rc;
}

static int meta_labels(const struct st_file *f, struct cfg *c, char *err, size_t errlen)
{
	const char *v = meta_req(f, "labels", err, errlen);
	if (!v)
		return -EINVAL;
	json_t *a = json_loads(v, JSON_DECODE_ANY, NULL);
	int rc = -EINVAL;
	if (!a || !json_is_array(a)) {
		s4k_seterr(err, errlen, "metadata 'labels' is not a JSON array of strings.");
		goto out;
	}
	size_t n = json_array_size(a);
	if (n < 1 || n > MAX_LABELS) {
		s4k_seterr(err, errlen, "metadata 'labels' has %zu entries, expected 1 to %d.", n,
			   MAX_LABELS);
		goto out;
	}
	c->labels = calloc(n, sizeof *c->labels);
	if (!c->labels) {
		rc = -ENOMEM;
		s4k_seterr(err, errlen, "out of memory.");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(a, i);
		if (!json_is_string(e) || !*json_string_value(e)) {
			s4k_seterr(err, errlen, "metadata 'labels' entry %zu is not a non-empty string.", i);
			goto out;
		}
		c->labels[i] = strdup(json_string_value(e));
		c->n_labels = (int)i + 1;
		if (!c->labels[i]) {
			rc = -ENOMEM;
			s4k_seterr(err, errlen, "out of memory.");
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(a);
	return rc;
}

/* Optional 'thresholds': {"keyword": P, ...}, each key a label of the model that does not start
 * with '_' (those never fire), each P a number in (0, 1]. Missing: every entry NaN. */
static int meta_thresholds(const struct st_file *f, struct cfg *c, char *err, size_t errlen)
{
	c->thresholds = malloc((size_t)c->n_labels * sizeof *c->thresholds);
	if (!c->thresholds) {
		s4k_seterr(err, errlen, "out of memory.");
		return -ENOMEM;
	}
	for (int i = 0; i < c->n_labels; i++)
		c->thresholds[i] = NAN;
	const char *v = st_meta(f, "thresholds");
	if (!v)
		return 0;
	json_t *o = json_loads(v, JSON_DECODE_ANY, NULL);
	int rc = -EINVAL;
	if (!o || !json_is_object(o)) {
		s4k_seterr(err, errlen, "metadata 'thresholds' is not a JSON object of keyword: threshold.");
		goto out;
	}
	const char *key;
	json_t *val;
	json_object_foreach(o, key, val) {
		int k = -1;
		for (int i = 0; i < c->n_labels && k < 0; i++)
			if (!strcmp(c->labels[i], key))
				k = i;
		if (k < 0 || key[0] == '_') {
			s4k_seterr(err, errlen, "metadata 'thresholds' names '%.40s', which is not a keyword of "
				   "this model.", key);
			goto out;
		}
		double t = json_is_number(val) ? json_number_value(val) : NAN;
		if (!(t > 0 && t <= 1)) {
			s4k_seterr(err, errlen, "metadata 'thresholds' gives '%.40s' a value that is not a "
				   "number in (0, 1].", key);
			goto out;
		}
		c->thresholds[k] = (float)t;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

static int parse_cfg(const struct st_file *f, struct cfg *c, char *err, size_t errlen)
{
	static const char *const w_kernel[] = {"s4d", "dplr"},
				 *const w_disc[] = {"zoh", "bilinear"},
				 *const w_dt[] = {"exp", "softplus"},
				 *const w_real[] = {"exp", "relu", "none"},
				 *const w_norm[] = {"layer", "batch"}, *const w_act[] = {"gelu"},
				 *const w_out[] = {"glu"}, *const w_dec[] = {"pool", "last"};
	int rc, dummy;
	long v;

	if (st_meta_count(f) == 0) {
		s4k_seterr(err, errlen,
			   "file has no __metadata__, so it is not an s4kws weights file (docs/format.md).");
		return -EINVAL;
	}
	const char *fmt = st_meta(f, "format");
	if (!fmt) {
		s4k_seterr(err, errlen, "metadata lacks the key 'format', so this is not an s4kws weights file.");
		return -EINVAL;
	}
	if (strcmp(fmt, "s4kws")) {
		s4k_seterr(err, errlen, "metadata 'format' is '%.40s', not 's4kws'.", fmt);
		return -EINVAL;
	}
	const char *ver = meta_req(f, "format_version", err, errlen);
	if (!ver)
		return -EINVAL;
	if (strcmp(ver, "1")) {
		s4k_seterr(err, errlen, "unsupported format_version '%.40s' (this build reads version 1).",
			   ver);
		return -ENOTSUP;
	}

	if ((rc = meta_long(f, "sample_rate", 1, 1000000, &v, err, errlen)))
		return rc;
	c->sample_rate = (int)v;
	if ((rc = meta_labels(f, c, err, errlen)) || (rc = meta_thresholds(f, c, err, errlen)))
		return rc;
	if ((rc = meta_choice(f, "kernel", w_kernel, 2, &c->dplr, err, errlen)))
		return rc;
	if (c->dplr && !st_meta(f, "disc")) {
		c->disc = S4K_BILINEAR;
	} else {
		if ((rc = meta_choice(f, "disc", w_disc, 2, &dummy, err, errlen)))
			return rc;
		c->disc = dummy ? S4K_BILINEAR : S4K_ZOH;
		if (c->dplr && c->disc != S4K_BILINEAR) {
			s4k_seterr(err, errlen, "unsupported disc 'zoh' for kernel 'dplr' (dplr is always bilinear).");
			return -ENOTSUP;
		}
	}
	if ((rc = meta_choice(f, "dt_transform", w_dt, 2, &c->dt_tf, err, errlen)) ||
	    (rc = meta_choice(f, "real_transform", w_real, 3, &c->real_tf, err, errlen)))
		return rc;
	if ((rc = meta_long(f, "d_state", 2, MAX_DSTATE, &v, err, errlen)))
		return rc;
	if (v % 2) {
		s4k_seterr(err, errlen, "metadata 'd_state' is %ld; it must be even (N/2 conjugate pairs).", v);
		return -EINVAL;
	}
	c->d_state = (int)v;
	/* 0: one row per channel (S = the block's width) */
	if ((rc = meta_long(f, "n_ssm", 0, MAX_WIDTH, &v, err, errlen)))
		return rc;
	c->n_ssm = (int)v;
	if ((rc = meta_longs(f, "widths", -1, 1, MAX_WIDTH, &c->widths, &c->nb, err, errlen)))
		return rc;
	int nb2;
	if ((rc = meta_longs(f, "pools", c->nb, 1, MAX_POOL, &c->pools, &nb2, err, errlen)))
		return rc;
	if ((rc = meta_choice(f, "norm", w_norm, 2, &c->batch, err, errlen)) ||
	    (rc = meta_bool(f, "prenorm", &c->prenorm, err, errlen)) ||
	    (rc = meta_bool(f, "final_norm", &c->final_norm, err, errlen)) ||
	    (rc = meta_choice(f, "activation", w_act, 1, &dummy, err, errlen)) ||
	    (rc = meta_choice(f, "output", w_out, 1, &dummy, err, errlen)) ||
	    (rc = meta_bool(f, "bidirectional", &c->bidir, err, errlen)) ||
	    (rc = meta_choice(f, "decoder", w_dec, 2, &c->dec_last, err, errlen)))
		return rc;

	long total = 1;
	for (int i = 0; i < c->nb; i++) {
		total *= c->pools[i];
		if (total > MAX_TOTAL_POOL) {
			s4k_seterr(err, errlen, "metadata 'pools' multiply to more than %d.", MAX_TOTAL_POOL);
			return -EINVAL;
		}
	}
	if ((rc = meta_long(f, "l_max", 1, MAX_LMAX, &c->l_max, err, errlen)) ||
	    (rc = meta_long(f, "decoder_window", 1, MAX_WINDOW, &c->decoder_window, err, errlen)) ||
	    (rc = meta_long(f, "preroll", 0, MAX_WINDOW, &c->preroll, err, errlen)))
		return rc;
	const char *mult[] = {"l_max", "decoder_window", "preroll"};
	long vals[] = {c->l_max, c->decoder_window, c->preroll};
	for (int i = 0; i < 3; i++) {
		if (vals[i] % total) {
			s4k_seterr(err, errlen, "metadata '%s' (%ld) is not a multiple of the total pool %ld.",
				   mult[i], vals[i], total);
			return -EINVAL;
		}
	}
	if (c->dplr || st_meta(f, "l_kernel")) {
		if ((rc = meta_longs(f, "l_kernel", c->nb, 0, MAX_LMAX, &c->l_kernel, &nb2, err, errlen)))
			return rc;
		for (int i = 0; i < c->nb && !c->dplr; i++) {
			if (c->l_kernel[i]) {
				s4k_seterr(err, errlen, "metadata 'l_kernel' entry %d is %ld; it must be 0 for kernel 's4d'.",
					   i, c->l_kernel[i]);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* ---- the tensors docs/format.md allows for a configuration ---- */

struct want {
	char name[48];
	int rank;
	int64_t shape[4];
};

struct wantlist {
	struct want *w;
	size_t n, cap;
};

static int want_add(struct wantlist *l, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
		    const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static int want_add(struct wantlist *l, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
		    const char *fmt, ...)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct want *w = realloc(l->w, cap * sizeof *w);
		if (!w)
			return -ENOMEM;
		l->w = w;
		l->cap = cap;
	}
	struct want *w = &l->w[l->n++];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->name, sizeof w->name, fmt, ap);
	va_end(ap);
	w->rank = rank;
	w->shape[0] = d0;
	w->shape[1] = d1;
	w->shape[2] = d2;
	w->shape[3] = d3;
	return 0;
}

static int norm_wants(struct wantlist *l, const struct cfg *c, const char *prefix, int64_t H)
{
	int rc = 0;
	rc |= want_add(l, 1, H, 1, 1, 1, "%s.weight", prefix);
	rc |= want_add(l, 1, H, 1, 1, 1, "%s.bias", prefix);
	if (c->batch) {
		rc |= want_add(l, 1, H, 1, 1, 1, "%s.running_mean", prefix);
		rc |= want_add(l, 1, H, 1, 1, 1, "%s.running_var", prefix);
	}
	return rc;
}

static int build_wants(struct wantlist *l, const struct cfg *c)
{
	int64_t H0 = c->widths[0], N2 = c->d_state / 2, K = c->n_labels;
	int rc = 0;
	rc |= want_add(l, 2, H0, 1, 1, 1, "encoder.weight");
	rc |= want_add(l, 1, H0, 1, 1, 1, "encoder.bias");
	for (int i = 0; i < c->nb; i++) {
		int64_t H = c->widths[i], S = c->n_ssm ? c->n_ssm : H;
		char p[32];
		snprintf(p, sizeof p, "blocks.%d.norm", i);
		rc |= norm_wants(l, c, p, H);
		rc |= want_add(l, 2, H, 1, 1, 1, "blocks.%d.ssm.inv_dt", i);
		rc |= want_add(l, 2, S, N2, 1, 1, "blocks.%d.ssm.A_real", i);
		rc |= want_add(l, 2, S, N2, 1, 1, "blocks.%d.ssm.A_imag", i);
		rc |= want_add(l, 3, S, N2, 2, 1, "blocks.%d.ssm.B", i);
		if (c->dplr)
			rc |= want_add(l, 3, S, N2, 2, 1, "blocks.%d.ssm.P", i);
		if (c->bidir)
			rc |= want_add(l, 4, 2, H, N2, 2, "blocks.%d.ssm.C", i);
		else
			rc |= want_add(l, 3, H, N2, 2, 1, "blocks.%d.ssm.C", i);
		rc |= want_add(l, 1, H, 1, 1, 1, "blocks.%d.ssm.D", i);
		rc |= want_add(l, 2, 2 * H, H, 1, 1, "blocks.%d.out.weight", i);
		rc |= want_add(l, 1, 2 * H, 1, 1, 1, "blocks.%d.out.bias", i);
		if (i + 1 < c->nb && c->widths[i + 1] != H) {
			rc |= want_add(l, 2, c->widths[i + 1], H, 1, 1, "widen.%d.weight", i);
			rc |= want_add(l, 1, c->widths[i + 1], 1, 1, 1, "widen.%d.bias", i);
		}
	}
	int64_t Hl = c->widths[c->nb - 1];
	if (c->final_norm)
		rc |= norm_wants(l, c, "final_norm", Hl);
	rc |= want_add(l, 2, K, Hl, 1, 1, "decoder.weight");
	rc |= want_add(l, 1, K, 1, 1, 1, "decoder.bias");
	return rc ? -ENOMEM : 0;
}

static void shape_str(char *buf, size_t len, int rank, const int64_t *shape)
{
	size_t o = (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < rank && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
}

/* Every wanted tensor present with its shape and finite values; nothing else. */
static int check_tensors(const struct st_file *f, const struct wantlist *l, char *err, size_t errlen)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct want *w = &l->w[i];
		const struct st_tensor *t = st_find(f, w->name);
		if (!t) {
			s4k_seterr(err, errlen, "tensor '%s' is missing.", w->name);
			return -EINVAL;
		}
		int same = t->rank == w->rank;
		for (int k = 0; same && k < w->rank; k++)
			same = t->shape[k] == w->shape[k];
		if (!same) {
			char a[96], b[96];
			shape_str(a, sizeof a, t->rank, t->shape);
			shape_str(b, sizeof b, w->rank, w->shape);
			s4k_seterr(err, errlen, "tensor '%s' has shape %s; the metadata requires %s.", w->name,
				   a, b);
			return -EINVAL;
		}
		int rc = st_check_finite(t, err, errlen);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < st_count(f); i++) {
		const struct st_tensor *t = st_tensor_at(f, i);
		size_t k = 0;
		while (k < l->n && strcmp(l->w[k].name, t->name))
			k++;
		if (k == l->n) {
			char nb[64];
			size_t j = 0;
			for (; t->name[j] && j < sizeof nb - 4; j++)
				nb[j] = ((unsigned char)t->name[j] < 0x20) ? '?' : t->name[j];
			strcpy(nb + j, t->name[j] ? "..." : "");
			s4k_seterr(err, errlen, "unexpected tensor '%s' (not part of this model's format).", nb);
			return -EINVAL;
		}
	}
	return 0;
}

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
static int load_ssm(struct s4m_model *m, const struct st_file *f, const struct cfg *c, int i,
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

static int build(struct s4m_model *m, const struct st_file *f, struct cfg *c, char *err, size_t errlen)
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

/* Weights that pass every shape and finiteness check can still be garbage (a few flipped bytes
 * of a float's exponent): run a causal model's steppers over half a second of a fixed noisy
 * tone and refuse the file when a logit is not finite, since every answer would be made up.
 * About 1 % of a second of CPU for the default model. Bidirectional models are not probed. */
static int probe(const struct s4m_model *m, char *err, size_t errlen)
{
	if (m->bidir)
		return 0;
	char e[S4K_ERR_LEN];
	struct s4m_stream *st = s4m_stream_new(m, e, sizeof e);
	float x[256], *lg = malloc((size_t)m->n_labels * sizeof *lg);
	if (!st || !lg) {
		s4m_stream_free(st);
		free(lg);
		s4k_seterr(err, errlen, "out of memory while loading the model.");
		return -ENOMEM;
	}
	uint32_t r = 12345;
	size_t n = (size_t)m->sample_rate / 2;
	int ok = 1;
	for (size_t i = 0; i < n && ok; i += 256) {
		for (int j = 0; j < 256; j++) {
			r = r * 1664525u + 1013904223u;
			x[j] = 0.3f * sinf(0.07f * (float)(i + (size_t)j)) + 0.1f * ((float)(r >> 8) / 16777216.0f - 0.5f);
		}
		s4m_stream_push(st, x, 256);
		s4m_stream_logits(st, lg);
		for (int k = 0; k < m->n_labels; k++)
			ok &= isfinite(lg[k]);
	}
	s4m_stream_free(st);
	free(lg);
	if (!ok) {
		s4k_seterr(err, errlen, "the weights give non-finite scores on a test signal (a damaged file, "
			   "or values far outside any trained model's), so every answer would be made up.");
		return -EINVAL;
	}
	return 0;
}

static struct s4m_model *load_file(const struct st_file *f, double rate, char *err, size_t errlen)
{
	struct cfg c = {0};
	struct wantlist wl = {0};
	struct s4m_model *m = NULL;

	if (!(rate > 0 && rate <= 64)) {
		s4k_seterr(err, errlen, "rate %g is outside (0, 64].", rate);
		return NULL;
	}
	if (parse_cfg(f, &c, err, errlen) < 0)
		goto fail;
	if (build_wants(&wl, &c) < 0) {
		s4k_seterr(err, errlen, "out of memory while checking tensors.");
		goto fail;
	}
	if (check_tensors(f, &wl, err, errlen) < 0)
		goto fail;
	m = calloc(1, sizeof *m);
	if (!m) {
		s4k_seterr(err, errlen, "out of memory while loading the model.");
		goto fail;
	}
	pthread_mutex_init(&m->spec_lock, NULL);
	m->rate = rate;
	if (build(m, f, &c, err, errlen) < 0 || probe(m, err, errlen) < 0) {
		s4m_free(m);
		m = NULL;
	}
fail:
	free(wl.w);
	cfg_free(&c);
	return m;
}

struct s4m_model *s4m_load_buffer(const void *buf, size_t len, double rate, char *err, size_t errlen)
{
	struct st_file *f = st_open_buffer(buf, len, err, errlen);
	if (!f)
		return NULL;
	struct s4m_model *m = load_file(f, rate, err, errlen);
	st_close(f);
	return m;
}

struct s4m_model *s4m_load(const char *path, double rate, char *err, size_t errlen)
{
	char e2[S4K_ERR_LEN];
	struct st_file *f = st_open(path, e2, sizeof e2);
	struct s4m_model *m = f ? load_file(f, rate, e2, sizeof e2) : NULL;
	st_close(f);
	if (!m) {
		/* the path is already in open errors; add it to the others */
		if (!strncmp(e2, "cannot ", 7) || strstr(e2, "' is not a regular file"))
			s4k_seterr(err, errlen, "%s", e2);
		else
			s4k_seterr(err, errlen, "%s: %s", path, e2);
	}
	return m;
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
