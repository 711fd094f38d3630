/* s4m_load.c - open an s4kws weights file: s4m_load(), s4m_load_buffer().
 *
 * Design: loading is three passes over a safetensors file opened by st.c. (1) The metadata is
 * parsed into a plain configuration (struct s4m__cfg), refusing unknown values by name. (2) From
 * that configuration we derive the complete list of tensors docs/format.md allows, with their
 * shapes; every one must be present with that shape and finite values, and nothing else may be.
 * (3) s4m__build (s4m.c) builds the model, and a causal model is run once over a test signal
 * (step mode, s4m_stream.c): weights that give non-finite scores are refused, since every
 * answer from them would be made up.
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

/* ---- metadata ---- */


static void cfg_free(struct s4m__cfg *c)
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

static int meta_labels(const struct st_file *f, struct s4m__cfg *c, char *err, size_t errlen)
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
static int meta_thresholds(const struct st_file *f, struct s4m__cfg *c, char *err, size_t errlen)
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

static int parse_cfg(const struct st_file *f, struct s4m__cfg *c, char *err, size_t errlen)
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

static int norm_wants(struct wantlist *l, const struct s4m__cfg *c, const char *prefix, int64_t H)
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

static int build_wants(struct wantlist *l, const struct s4m__cfg *c)
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
	struct s4m__cfg c = {0};
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
	if (s4m__build(m, f, &c, err, errlen) < 0 || probe(m, err, errlen) < 0) {
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
