/* modelgen.h - test helper: build s4kws weights files in memory from C and write them as
 * safetensors, so tests need no Python and can make valid models, then break them on purpose.
 *
 * Usage:
 *   struct mg_opts o = mg_defaults();  o.dplr = 1;  o.seed = 7;
 *   struct mg_file f = {0};
 *   mg_random_model(&f, &o);              // every tensor of docs/format.md, random values
 *   mg_meta_set(&f, "activation", "relu");  // break something
 *   size_t len; unsigned char *buf = mg_serialize(&f, &len);
 *   ... s4m_load_buffer(buf, len, 1.0, err, sizeof err) ...
 *   free(buf); mg_free(&f);
 */
#ifndef S4KWS_TESTS_MODEL_MODELGEN_H
#define S4KWS_TESTS_MODEL_MODELGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { MG_F32 = 0, MG_F64 = 1 };

struct mg_tensor {
	char name[64];
	int dtype;            /* MG_F32 / MG_F64 */
	int rank;
	int64_t shape[4];
	size_t numel;
	double *v;            /* (numel) values, written in dtype */
};

struct mg_file {
	struct mg_tensor *t;
	size_t n;
	char *key[64], *val[64];
	size_t nmeta;
	int no_meta;          /* 1: write no __metadata__ at all */
};

#define MG_MAX_BLOCKS 8

struct mg_opts {
	uint64_t seed;
	int dplr;             /* 0 s4d, 1 dplr */
	int bilinear;         /* s4d: 0 zoh, 1 bilinear */
	int softplus;         /* dt_transform: 0 exp, 1 softplus */
	int real_tf;          /* 0 exp, 1 relu, 2 none */
	int d_state, n_ssm;
	int nb;
	int widths[MG_MAX_BLOCKS], pools[MG_MAX_BLOCKS];
	long l_kernel[MG_MAX_BLOCKS];
	int batch, prenorm, final_norm, bidir, dec_last;
	long decoder_window, l_max, preroll;
	int n_labels;
	int dtype;            /* MG_F32 or MG_F64 for every tensor */
	double enc_gain;      /* encoder weight scale */
};

struct mg_opts mg_defaults(void);
void mg_random_model(struct mg_file *f, const struct mg_opts *o);
void mg_free(struct mg_file *f);

void mg_meta_set(struct mg_file *f, const char *key, const char *val);
void mg_meta_del(struct mg_file *f, const char *key);
struct mg_tensor *mg_add(struct mg_file *f, const char *name, int dtype, int rank, int64_t d0,
			 int64_t d1, int64_t d2, int64_t d3);
struct mg_tensor *mg_find(struct mg_file *f, const char *name);
void mg_del(struct mg_file *f, const char *name);

/* The safetensors bytes (malloc'd). */
unsigned char *mg_serialize(const struct mg_file *f, size_t *len);
int mg_write(const struct mg_file *f, const char *path);
/* Raw helpers for hand-made headers: 8-byte length + header + data bytes. */
unsigned char *mg_raw(const char *header, const void *data, size_t datalen, size_t *len);

/* Deterministic random numbers for tests. */
uint64_t mg_rand(uint64_t *s);
double mg_uniform(uint64_t *s);   /* [0, 1) */
double mg_normal(uint64_t *s);

#endif
