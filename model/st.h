/* st.h - a strict safetensors reader: mmap a file (or take a buffer), check every byte of the
 * header, and hand out named tensors.
 *
 * Usage:
 *   char err[S4K_ERR_LEN];
 *   struct st_file *f = st_open("model.safetensors", err, sizeof err);
 *   if (!f) { fprintf(stderr, "%s\n", err); ... }
 *   const struct st_tensor *t = st_find(f, "encoder.weight");
 *   double *w = malloc(t->numel * sizeof *w);
 *   st_read_f64(t, w);                          // F32 or F64 -> double, any alignment
 *   const char *v = st_meta(f, "format");       // __metadata__ value or NULL
 *   st_close(f);
 *
 * The file is hostile input. st_open() checks: the 8-byte header length against the file size
 * and a 100 MB cap; the header is a JSON object without duplicate keys; every entry has a
 * string dtype (F32 or F64 only), an integer shape of rank <= 4 and two integer data_offsets;
 * begin <= end lie inside the data area; end - begin == numel * itemsize (overflow-checked);
 * no two tensors overlap; `__metadata__`, when present, maps strings to strings. Any failure
 * gives NULL and one sentence in err naming the tensor or key. Gaps between tensors are
 * allowed (they are never read). Values are not checked here (see st_read_f64 / st_check_finite).
 *
 * Nothing here is thread-aware: an st_file belongs to one thread; its tensors are read-only.
 */
#ifndef S4KWS_MODEL_ST_H
#define S4KWS_MODEL_ST_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

#define ST_MAX_RANK 4
#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024) /* bytes of JSON we accept */

enum st_dtype { ST_F32 = 0, ST_F64 = 1 };

struct st_tensor {
	const char *name;             /* NUL-terminated, owned by the st_file */
	enum st_dtype dtype;
	int rank;                     /* 0..ST_MAX_RANK */
	int64_t shape[ST_MAX_RANK];   /* entries past rank are 1 */
	size_t numel;                 /* product of shape (1 for rank 0) */
	const unsigned char *data;    /* numel * itemsize bytes, little endian, maybe unaligned */
	size_t nbytes;
};

struct st_file;

/* Map a file read-only and check its header. NULL + err on failure. */
struct st_file *st_open(const char *path, char *err, size_t errlen);
/* The same over a caller's buffer, which must outlive the st_file (it is not copied). */
struct st_file *st_open_buffer(const void *buf, size_t len, char *err, size_t errlen);
void st_close(struct st_file *f);

size_t st_count(const struct st_file *f);                        /* number of tensors */
const struct st_tensor *st_tensor_at(const struct st_file *f, size_t i); /* in header order */
const struct st_tensor *st_find(const struct st_file *f, const char *name); /* NULL if absent */

/* __metadata__: value of key (NULL if absent), and enumeration in header order. */
const char *st_meta(const struct st_file *f, const char *key);
size_t st_meta_count(const struct st_file *f);
const char *st_meta_key(const struct st_file *f, size_t i);
const char *st_meta_value(const struct st_file *f, size_t i);

/* Copy a tensor's values into out[numel] as double (F32 widened exactly). */
void st_read_f64(const struct st_tensor *t, double *out);
/* 0 if every value is finite, else -EINVAL with "tensor 'X' holds a NaN or infinite value at
 * index i." in err. */
int st_check_finite(const struct st_tensor *t, char *err, size_t errlen);

/* "F32" / "F64" */
const char *st_dtype_name(enum st_dtype d);

#endif
