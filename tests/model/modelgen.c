/* modelgen.c - random s4kws models and a small safetensors writer, for the model tests.
 *
 * Design: a model is a list of named tensors (values kept in double, written as F32 or F64) and
 * a list of metadata strings, exactly what docs/format.md describes; the header JSON is made
 * with jansson. Random parameters stay in the ranges trained models have (dt in [1e-3, 1e-1],
 * Re A near -0.5, S4D-Lin imaginary parts), so the models are numerically ordinary and a
 * conv-vs-step mismatch is a bug, not an ill-conditioned model.
 */
#include "modelgen.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t mg_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double mg_uniform(uint64_t *s)
{
	return (double)(mg_rand(s) >> 11) * 0x1p-53;
}

double mg_normal(uint64_t *s)
{
	double u = mg_uniform(s), v = mg_uniform(s);
	return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

struct mg_opts mg_defaults(void)
{
	struct mg_opts o = {
		.seed = 1, .d_state = 16, .n_ssm = 2, .nb = 3,
		.widths = {8, 12, 12}, .pools = {4, 2, 1},
		.prenorm = 1, .final_norm = 1,
		.decoder_window = 1600, .l_max = 2400, .preroll = 800,
		.n_labels = 5, .dtype = MG_F32, .enc_gain = 1.0,
	};
	return o;
}

void mg_meta_set(struct mg_file *f, const char *key, const char *val)
{
	for (size_t i = 0; i < f->nmeta; i++) {
		if (!strcmp(f->key[i], key)) {
			free(f->val[i]);
			f->val[i] = strdup(val);
			return;
		}
	}
	if (f->nmeta < 64) {
		f->key[f->nmeta] = strdup(key);
		f->val[f->nmeta] = strdup(val);
		f->nmeta++;
	}
}

void mg_meta_del(struct mg_file *f, const char *key)
{
	for (size_t i = 0; i < f->nmeta; i++) {
		if (!strcmp(f->key[i], key)) {
			free(f->key[i]);
			free(f->val[i]);
			memmove(&f->key[i], &f->key[i + 1], (f->nmeta - i - 1) * sizeof f->key[0]);
			memmove(&f->val[i], &f->val[i + 1], (f->nmeta - i - 1) * sizeof f->val[0]);
			f->nmeta--;
			return;
		}
	}
}

struct mg_tensor *mg_add(struct mg_file *f, const char *name, int dtype, int rank, int64_t d0,
			 int64_t d1, int64_t d2, int64_t d3)
{
	f->t = realloc(f->t, (f->n + 1) * sizeof *f->t);
	struct mg_tensor *t = &f->t[f->n++];
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->dtype = dtype;
	t->rank = rank;
	int64_t d[4] = {d0, d1, d2, d3};
	t->numel = 1;
	for (int i = 0; i < 4; i++) {
		t->shape[i] = i < rank ? d[i] : 1;
		if (i < rank)
			t->numel *= (size_t)d[i];
	}
	t->v = calloc(t->numel ? t->numel : 1, sizeof *t->v);
	return t;
}

struct mg_tensor *mg_find(struct mg_file *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->t[i].name, name))
			return &f->t[i];
	return NULL;
}

void mg_del(struct mg_file *f, const char *name)
{
	struct mg_tensor *t = mg_find(f, name);
	if (!t)
		return;
	free(t->v);
	size_t i = (size_t)(t - f->t);
	memmove(t, t + 1, (f->n - i - 1) * sizeof *t);
	f->n--;
}

void mg_free(struct mg_file *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->t[i].v);
	free(f->t);
	for (size_t i = 0; i < f->nmeta; i++) {
		free(f->key[i]);
		free(f->val[i]);
	}
	memset(f, 0, sizeof *f);
}

unsigned char *mg_raw(const char *header, const void *data, size_t datalen, size_t *len)
{
	size_t hl = strlen(header);
	unsigned char *b = malloc(8 + hl + datalen + 1);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, header, hl);
	if (datalen)
		memcpy(b + 8 + hl, data, datalen);
	*len = 8 + hl + datalen;
	return b;
}

unsigned char *mg_serialize(const struct mg_file *f, size_t *len)
{
	json_t *root = json_object();
	if (!f->no_meta) {
		json_t *meta = json_object();
		for (size_t i = 0; i < f->nmeta; i++)
			json_object_set_new(meta, f->key[i], json_string(f->val[i]));
		json_object_set_new(root, "__metadata__", meta);
	}
	size_t off = 0;
	for (size_t i = 0; i < f->n; i++) {
		const struct mg_tensor *t = &f->t[i];
		json_t *e = json_object(), *sh = json_array(), *of = json_array();
		json_object_set_new(e, "dtype", json_string(t->dtype == MG_F64 ? "F64" : "F32"));
		for (int k = 0; k < t->rank; k++)
			json_array_append_new(sh, json_integer(t->shape[k]));
		json_object_set_new(e, "shape", sh);
		size_t nb = t->numel * (t->dtype == MG_F64 ? 8 : 4);
		json_array_append_new(of, json_integer((json_int_t)off));
		json_array_append_new(of, json_integer((json_int_t)(off + nb)));
		json_object_set_new(e, "data_offsets", of);
		json_object_set_new(root, t->name, e);
		off += nb;
	}
	char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
	unsigned char *b = malloc(8 + hl + pad + off + 1);
	uint64_t H = hl + pad;
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(H >> (8 * i));
	memcpy(b + 8, hdr, hl);
	memset(b + 8 + hl, ' ', pad);
	free(hdr);
	unsigned char *p = b + 8 + H;
	for (size_t i = 0; i < f->n; i++) {
		const struct mg_tensor *t = &f->t[i];
		for (size_t k = 0; k < t->numel; k++) {
			if (t->dtype == MG_F64) {
				memcpy(p, &t->v[k], 8); /* little-endian host (x86, arm64) */
				p += 8;
			} else {
				float x = (float)t->v[k];
				memcpy(p, &x, 4);
				p += 4;
			}
		}
	}
	*len = 8 + H + off;
	return b;
}

int mg_write(const struct mg_file *f, const char *path)
{
	size_t len;
	unsigned char *b = mg_serialize(f, &len);
	FILE *fp = fopen(path, "wb");
	int rc = fp && fwrite(b, 1, len, fp) == len ? 0 : -1;
	if (fp && fclose(fp))
		rc = -1;
	free(b);
	return rc;
}

static void fill_normal(struct mg_tensor *t, uint64_t *s, double mean, double sd)
{
	for (size_t i = 0; i < t->numel; i++)
		t->v[i] = mean + sd * mg_normal(s);
}

static void add_norm(struct mg_file *f, const struct mg_opts *o, uint64_t *s, const char *prefix,
		     int H)
{
	char n[64];
	snprintf(n, sizeof n, "%s.weight", prefix);
	fill_normal(mg_add(f, n, o->dtype, 1, H, 0, 0, 0), s, 1.0, 0.2);
	snprintf(n, sizeof n, "%s.bias", prefix);
	fill_normal(mg_add(f, n, o->dtype, 1, H, 0, 0, 0), s, 0.0, 0.2);
	if (o->batch) {
		snprintf(n, sizeof n, "%s.running_mean", prefix);
		fill_normal(mg_add(f, n, o->dtype, 1, H, 0, 0, 0), s, 0.0, 0.3);
		snprintf(n, sizeof n, "%s.running_var", prefix);
		struct mg_tensor *t = mg_add(f, n, o->dtype, 1, H, 0, 0, 0);
		for (size_t i = 0; i < t->numel; i++)
			t->v[i] = 0.3 + mg_uniform(s);
	}
}

static void list_json(char *buf, size_t len, const long *v, int n)
{
	size_t o = (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%ld", i ? "," : "", v[i]);
	snprintf(buf + o, len - o, "]");
}

void mg_random_model(struct mg_file *f, const struct mg_opts *o)
{
	uint64_t s = o->seed * 0x2545f4914f6cdd1dULL + 12345;
	char b[256], n[64];
	long wl[MG_MAX_BLOCKS], pl[MG_MAX_BLOCKS];
	int N2 = o->d_state / 2, K = o->n_labels;

	mg_meta_set(f, "format", "s4kws");
	mg_meta_set(f, "format_version", "1");
	mg_meta_set(f, "name", "test-model");
	mg_meta_set(f, "sample_rate", "16000");
	size_t p = (size_t)snprintf(b, sizeof b, "[");
	for (int k = 0; k < K; k++)
		p += (size_t)snprintf(b + p, sizeof b - p, "%s\"w%d\"", k ? "," : "", k);
	snprintf(b + p, sizeof b - p, "]");
	mg_meta_set(f, "labels", b);
	mg_meta_set(f, "kernel", o->dplr ? "dplr" : "s4d");
	mg_meta_set(f, "disc", o->dplr || o->bilinear ? "bilinear" : "zoh");
	mg_meta_set(f, "dt_transform", o->softplus ? "softplus" : "exp");
	mg_meta_set(f, "real_transform", o->real_tf == 0 ? "exp" : o->real_tf == 1 ? "relu" : "none");
	snprintf(b, sizeof b, "%d", o->d_state);
	mg_meta_set(f, "d_state", b);
	snprintf(b, sizeof b, "%d", o->n_ssm);
	mg_meta_set(f, "n_ssm", b);
	for (int i = 0; i < o->nb; i++) {
		wl[i] = o->widths[i];
		pl[i] = o->pools[i];
	}
	list_json(b, sizeof b, wl, o->nb);
	mg_meta_set(f, "widths", b);
	list_json(b, sizeof b, pl, o->nb);
	mg_meta_set(f, "pools", b);
	mg_meta_set(f, "norm", o->batch ? "batch" : "layer");
	mg_meta_set(f, "prenorm", o->prenorm ? "true" : "false");
	mg_meta_set(f, "final_norm", o->final_norm ? "true" : "false");
	mg_meta_set(f, "activation", "gelu");
	mg_meta_set(f, "output", "glu");
	mg_meta_set(f, "bidirectional", o->bidir ? "true" : "false");
	mg_meta_set(f, "decoder", o->dec_last ? "last" : "pool");
	snprintf(b, sizeof b, "%ld", o->decoder_window);
	mg_meta_set(f, "decoder_window", b);
	snprintf(b, sizeof b, "%ld", o->l_max);
	mg_meta_set(f, "l_max", b);
	snprintf(b, sizeof b, "%ld", o->preroll);
	mg_meta_set(f, "preroll", b);
	if (o->dplr) {
		list_json(b, sizeof b, o->l_kernel, o->nb);
		mg_meta_set(f, "l_kernel", b);
	}

	int H0 = o->widths[0];
	fill_normal(mg_add(f, "encoder.weight", o->dtype, 2, H0, 1, 0, 0), &s, 0, o->enc_gain);
	fill_normal(mg_add(f, "encoder.bias", o->dtype, 1, H0, 0, 0, 0), &s, 0, 0.1);
	for (int i = 0; i < o->nb; i++) {
		int H = o->widths[i], S = o->n_ssm ? o->n_ssm : H; /* n_ssm 0: one row per channel */
		snprintf(n, sizeof n, "blocks.%d.norm", i);
		add_norm(f, o, &s, n, H);
		snprintf(n, sizeof n, "blocks.%d.ssm.inv_dt", i);
		struct mg_tensor *t = mg_add(f, n, o->dtype, 2, H, 1, 0, 0);
		for (int h = 0; h < H; h++) {
			double dt = exp(log(1e-3) + mg_uniform(&s) * (log(1e-1) - log(1e-3)));
			t->v[h] = o->softplus ? log(expm1(dt)) : log(dt);
		}
		snprintf(n, sizeof n, "blocks.%d.ssm.A_real", i);
		t = mg_add(f, n, o->dtype, 2, S, N2, 0, 0);
		for (size_t k = 0; k < t->numel; k++) {
			double re = 0.5 * exp(0.3 * mg_normal(&s)); /* -Re A */
			t->v[k] = o->real_tf == 0 ? log(re) : o->real_tf == 1 ? re - 1e-4 : re;
		}
		snprintf(n, sizeof n, "blocks.%d.ssm.A_imag", i);
		t = mg_add(f, n, o->dtype, 2, S, N2, 0, 0);
		for (int r = 0; r < S; r++)
			for (int k = 0; k < N2; k++)
				t->v[r * N2 + k] = M_PI * k * (1 + 0.05 * mg_normal(&s)) + 1e-4;
		snprintf(n, sizeof n, "blocks.%d.ssm.B", i);
		t = mg_add(f, n, o->dtype, 3, S, N2, 2, 0);
		for (size_t k = 0; k < t->numel; k += 2) {
			t->v[k] = 1 + 0.3 * mg_normal(&s);
			t->v[k + 1] = 0.3 * mg_normal(&s);
		}
		if (o->dplr) {
			snprintf(n, sizeof n, "blocks.%d.ssm.P", i);
			fill_normal(mg_add(f, n, o->dtype, 3, S, N2, 2, 0), &s, 0, 0.3);
		}
		snprintf(n, sizeof n, "blocks.%d.ssm.C", i);
		if (o->bidir)
			t = mg_add(f, n, o->dtype, 4, 2, H, N2, 2);
		else
			t = mg_add(f, n, o->dtype, 3, H, N2, 2, 0);
		fill_normal(t, &s, 0, sqrt(0.5));
		snprintf(n, sizeof n, "blocks.%d.ssm.D", i);
		fill_normal(mg_add(f, n, o->dtype, 1, H, 0, 0, 0), &s, 0, 1);
		snprintf(n, sizeof n, "blocks.%d.out.weight", i);
		fill_normal(mg_add(f, n, o->dtype, 2, 2 * H, H, 0, 0), &s, 0, 1 / sqrt(H));
		snprintf(n, sizeof n, "blocks.%d.out.bias", i);
		fill_normal(mg_add(f, n, o->dtype, 1, 2 * H, 0, 0, 0), &s, 0, 0.1);
		if (i + 1 < o->nb && o->widths[i + 1] != H) {
			int Hn = o->widths[i + 1];
			snprintf(n, sizeof n, "widen.%d.weight", i);
			fill_normal(mg_add(f, n, o->dtype, 2, Hn, H, 0, 0), &s, 0, 1 / sqrt(H));
			snprintf(n, sizeof n, "widen.%d.bias", i);
			fill_normal(mg_add(f, n, o->dtype, 1, Hn, 0, 0, 0), &s, 0, 0.1);
		}
	}
	int Hl = o->widths[o->nb - 1];
	if (o->final_norm)
		add_norm(f, o, &s, "final_norm", Hl);
	fill_normal(mg_add(f, "decoder.weight", o->dtype, 2, K, Hl, 0, 0), &s, 0, 1 / sqrt(Hl));
	fill_normal(mg_add(f, "decoder.bias", o->dtype, 1, K, 0, 0, 0), &s, 0, 0.1);
}
