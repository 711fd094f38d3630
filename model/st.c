/* st.c - strict safetensors reader.
 *
 * Design: the whole file is one read-only mapping (or the caller's buffer). The header is parsed
 * once with jansson into a flat array of struct st_tensor whose data pointers point into the
 * mapping; names and metadata strings are copied so the JSON tree can be freed at once. Every
 * check that protects a later read lives here, in one pass, so code that uses an st_tensor can
 * trust numel, nbytes and data without re-checking: sizes are overflow-checked, offsets are
 * inside the data area and tensors do not overlap. Values are read with memcpy-free byte
 * assembly, so unaligned data and big-endian hosts need no special case.
 *
 * Messages name the tensor or key; names from the file are quoted through pname(), which
 * truncates and replaces control bytes, so a hostile name cannot garble the sentence.
 */
#define _GNU_SOURCE
#include "st.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct st_file {
	void *map;                     /* our mapping, or NULL for a caller's buffer */
	size_t maplen;
	const unsigned char *data;     /* start of the data area */
	size_t datalen;
	struct st_tensor *t;           /* (n) in header order */
	size_t n;
	char **meta;                   /* (2 * nmeta): key, value, key, value, ... */
	size_t nmeta;
};

/* A printable, bounded copy of a name from the file, for messages. */
#define PNAME_LEN 72
static const char *pname(const char *s, char *buf)
{
	size_t i = 0;
	for (; s[i] && i < PNAME_LEN - 4; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	if (s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = 0;
	return buf;
}

static const char *json_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "value";
}

const char *st_dtype_name(enum st_dtype d)
{
	return d == ST_F64 ? "F64" : "F32";
}

static size_t itemsize(enum st_dtype d)
{
	return d == ST_F64 ? 8 : 4;
}

void st_close(struct st_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free((char *)f->t[i].name);
	free(f->t);
	for (size_t i = 0; i < 2 * f->nmeta; i++)
		free(f->meta[i]);
	free(f->meta);
	if (f->map)
		munmap(f->map, f->maplen);
	free(f);
}

/* __metadata__: an object of string values. */
static int parse_meta(struct st_file *f, json_t *obj, char *err, size_t errlen)
{
	char nb[PNAME_LEN];
	if (!json_is_object(obj)) {
		s4k_seterr(err, errlen, "__metadata__ is a JSON %s, not an object of strings.",
			   json_type_name(obj));
		return -EBADMSG;
	}
	size_t n = json_object_size(obj);
	f->meta = calloc(2 * n + 1, sizeof *f->meta);
	if (!f->meta)
		return -ENOMEM;
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		if (!json_is_string(v)) {
			s4k_seterr(err, errlen, "metadata key '%s' is a JSON %s, not a string.",
				   pname(key, nb), json_type_name(v));
			return -EBADMSG;
		}
		char *k = strdup(key), *s = strdup(json_string_value(v));
		f->meta[2 * f->nmeta] = k;
		f->meta[2 * f->nmeta + 1] = s;
		f->nmeta++;
		if (!k || !s)
			return -ENOMEM;
	}
	return 0;
}

/* JSON integer in [0, max], else -1. */
static int64_t json_uint(const json_t *j, int64_t max)
{
	if (!json_is_integer(j))
		return -1;
	json_int_t v = json_integer_value(j);
	return (v < 0 || v > max) ? -1 : (int64_t)v;
}

/* One tensor entry {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}. */
static int parse_tensor(struct st_file *f, const char *name, json_t *e, char *err, size_t errlen)
{
	char nb[PNAME_LEN], kb[PNAME_LEN];
	const char *pn = pname(name, nb);
	struct st_tensor *t = &f->t[f->n];

	if (!*name) {
		s4k_seterr(err, errlen, "a tensor has an empty name.");
		return -EBADMSG;
	}
	if (!json_is_object(e)) {
		s4k_seterr(err, errlen, "tensor '%s' is described by a JSON %s, not an object.", pn,
			   json_type_name(e));
		return -EBADMSG;
	}
	const char *key;
	json_t *v;
	json_object_foreach(e, key, v) {
		if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets")) {
			s4k_seterr(err, errlen, "tensor '%s' has an unknown field '%s'.", pn,
				   pname(key, kb));
			return -EBADMSG;
		}
	}

	json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
	       *off = json_object_get(e, "data_offsets");
	if (!dt || !sh || !off) {
		s4k_seterr(err, errlen, "tensor '%s' lacks the field '%s'.", pn,
			   !dt ? "dtype" : !sh ? "shape" : "data_offsets");
		return -EBADMSG;
	}
	if (!json_is_string(dt)) {
		s4k_seterr(err, errlen, "tensor '%s' has a dtype that is a JSON %s, not a string.", pn,
			   json_type_name(dt));
		return -EBADMSG;
	}
	if (!strcmp(json_string_value(dt), "F32")) {
		t->dtype = ST_F32;
	} else if (!strcmp(json_string_value(dt), "F64")) {
		t->dtype = ST_F64;
	} else {
		s4k_seterr(err, errlen, "tensor '%s' has dtype '%s'; only F32 and F64 are supported.",
			   pn, pname(json_string_value(dt), kb));
		return -ENOTSUP;
	}

	if (!json_is_array(sh)) {
		s4k_seterr(err, errlen, "tensor '%s' has a shape that is a JSON %s, not an array.", pn,
			   json_type_name(sh));
		return -EBADMSG;
	}
	size_t rank = json_array_size(sh);
	if (rank > ST_MAX_RANK) {
		s4k_seterr(err, errlen, "tensor '%s' has rank %zu; at most %d is supported.", pn, rank,
			   ST_MAX_RANK);
		return -ENOTSUP;
	}
	t->rank = (int)rank;
	size_t numel = 1;
	for (int i = 0; i < ST_MAX_RANK; i++) {
		if ((size_t)i >= rank) {
			t->shape[i] = 1;
			continue;
		}
		int64_t d = json_uint(json_array_get(sh, (size_t)i), INT64_MAX);
		if (d < 0) {
			s4k_seterr(err, errlen, "tensor '%s' has shape entry %d that is not a non-negative integer.",
				   pn, i);
			return -EBADMSG;
		}
		t->shape[i] = d;
		if ((uint64_t)d > SIZE_MAX || __builtin_mul_overflow(numel, (size_t)d, &numel)) {
			s4k_seterr(err, errlen, "tensor '%s' has a shape whose element count overflows.", pn);
			return -EBADMSG;
		}
	}
	t->numel = numel;
	size_t nbytes;
	if (__builtin_mul_overflow(numel, itemsize(t->dtype), &nbytes)) {
		s4k_seterr(err, errlen, "tensor '%s' has a shape whose byte size overflows.", pn);
		return -EBADMSG;
	}

	if (!json_is_array(off) || json_array_size(off) != 2) {
		s4k_seterr(err, errlen, "tensor '%s' has data_offsets that are not an array of two integers.",
			   pn);
		return -EBADMSG;
	}
	int64_t b = json_uint(json_array_get(off, 0), INT64_MAX),
		en = json_uint(json_array_get(off, 1), INT64_MAX);
	if (b < 0 || en < 0) {
		s4k_seterr(err, errlen, "tensor '%s' has data_offsets that are not non-negative integers.",
			   pn);
		return -EBADMSG;
	}
	if (b > en || (uint64_t)en > f->datalen) {
		s4k_seterr(err, errlen,
			   "tensor '%s' has data_offsets [%lld, %lld] outside the data area of %zu bytes.",
			   pn, (long long)b, (long long)en, f->datalen);
		return -EBADMSG;
	}
	if ((uint64_t)(en - b) != (uint64_t)nbytes) {
		s4k_seterr(err, errlen,
			   "tensor '%s' has data_offsets spanning %lld bytes but its %s shape needs %zu.",
			   pn, (long long)(en - b), st_dtype_name(t->dtype), nbytes);
		return -EBADMSG;
	}
	t->data = f->data + b;
	t->nbytes = nbytes;
	t->name = strdup(name);
	if (!t->name)
		return -ENOMEM;
	f->n++;
	return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
	const struct st_tensor *x = *(const struct st_tensor *const *)a,
			       *y = *(const struct st_tensor *const *)b;
	return (x->data > y->data) - (x->data < y->data);
}

/* No two non-empty tensors may share a byte. */
static int check_overlap(struct st_file *f, char *err, size_t errlen)
{
	if (f->n < 2)
		return 0;
	const struct st_tensor **s = malloc(f->n * sizeof *s);
	if (!s)
		return -ENOMEM;
	size_t m = 0;
	for (size_t i = 0; i < f->n; i++)
		if (f->t[i].nbytes)
			s[m++] = &f->t[i];
	qsort(s, m, sizeof *s, cmp_by_offset);
	int rc = 0;
	for (size_t i = 1; i < m; i++) {
		if (s[i - 1]->data + s[i - 1]->nbytes > s[i]->data) {
			char a[PNAME_LEN], b[PNAME_LEN];
			s4k_seterr(err, errlen, "tensors '%s' and '%s' overlap in the data area.",
				   pname(s[i - 1]->name, a), pname(s[i]->name, b));
			rc = -EBADMSG;
			break;
		}
	}
	free(s);
	return rc;
}

static int parse(struct st_file *f, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	if (len < 8) {
		s4k_seterr(err, errlen,
			   "file is %zu bytes long, too short for the 8-byte safetensors header length.", len);
		return -EBADMSG;
	}
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | buf[i];
	if (hlen > len - 8) {
		s4k_seterr(err, errlen, "header length %llu exceeds the %zu bytes that follow it in the file.",
			   (unsigned long long)hlen, len - 8);
		return -EBADMSG;
	}
	if (hlen > ST_MAX_HEADER) {
		s4k_seterr(err, errlen, "header length %llu is above the %llu-byte limit.",
			   (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
		return -EBADMSG;
	}
	f->data = buf + 8 + hlen;
	f->datalen = len - 8 - (size_t)hlen;

	json_error_t je;
	json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		/* jansson quotes the offending bytes: made printable, so the sentence stays one line */
		char pb[PNAME_LEN];
		s4k_seterr(err, errlen, "header is not valid JSON: %s (at byte %d).", pname(je.text, pb),
			   je.position);
		return -EBADMSG;
	}
	int rc = 0;
	if (!json_is_object(root)) {
		s4k_seterr(err, errlen, "header is a JSON %s, not an object.", json_type_name(root));
		rc = -EBADMSG;
		goto out;
	}
	f->t = calloc(json_object_size(root) + 1, sizeof *f->t);
	if (!f->t) {
		rc = -ENOMEM;
		goto out;
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		rc = !strcmp(key, "__metadata__") ? parse_meta(f, v, err, errlen)
						  : parse_tensor(f, key, v, err, errlen);
		if (rc)
			goto out;
	}
	rc = check_overlap(f, err, errlen);
out:
	if (rc == -ENOMEM)
		s4k_seterr(err, errlen, "out of memory while reading the safetensors header.");
	json_decref(root);
	return rc;
}

struct st_file *st_open_buffer(const void *buf, size_t len, char *err, size_t errlen)
{
	struct st_file *f = calloc(1, sizeof *f);
	if (!f) {
		s4k_seterr(err, errlen, "out of memory while opening a weights buffer.");
		return NULL;
	}
	if (!buf)
		len = 0;
	if (parse(f, buf, len, err, errlen) < 0) {
		st_close(f);
		return NULL;
	}
	return f;
}

struct st_file *st_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		s4k_seterr(err, errlen, "cannot open '%s': %s.", path, strerror(errno));
		return NULL;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		s4k_seterr(err, errlen, "'%s' is not a regular file.", path);
		close(fd);
		return NULL;
	}
	size_t len = (size_t)sb.st_size;
	if (len < 8) {
		close(fd);
		s4k_seterr(err, errlen,
			   "'%s' is %zu bytes long, too short for the 8-byte safetensors header length.",
			   path, len);
		return NULL;
	}
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	int merr = errno;
	close(fd);
	if (map == MAP_FAILED) {
		s4k_seterr(err, errlen, "cannot map '%s': %s.", path, strerror(merr));
		return NULL;
	}
	struct st_file *f = st_open_buffer(map, len, err, errlen);
	if (!f) {
		munmap(map, len);
		return NULL;
	}
	f->map = map;
	f->maplen = len;
	return f;
}

size_t st_count(const struct st_file *f)
{
	return f->n;
}

const struct st_tensor *st_tensor_at(const struct st_file *f, size_t i)
{
	return i < f->n ? &f->t[i] : NULL;
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->t[i].name, name))
			return &f->t[i];
	return NULL;
}

const char *st_meta(const struct st_file *f, const char *key)
{
	for (size_t i = 0; i < f->nmeta; i++)
		if (!strcmp(f->meta[2 * i], key))
			return f->meta[2 * i + 1];
	return NULL;
}

size_t st_meta_count(const struct st_file *f)
{
	return f->nmeta;
}

const char *st_meta_key(const struct st_file *f, size_t i)
{
	return i < f->nmeta ? f->meta[2 * i] : NULL;
}

const char *st_meta_value(const struct st_file *f, size_t i)
{
	return i < f->nmeta ? f->meta[2 * i + 1] : NULL;
}

/* Little-endian loads, independent of host alignment and byte order. */
static double load_f32(const unsigned char *p)
{
	uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	float x;
	memcpy(&x, &u, sizeof x);
	return x;
}

static double load_f64(const unsigned char *p)
{
	uint64_t u = 0;
	for (int i = 7; i >= 0; i--)
		u = u << 8 | p[i];
	double x;
	memcpy(&x, &u, sizeof x);
	return x;
}

void st_read_f64(const struct st_tensor *t, double *out)
{
	if (t->dtype == ST_F32)
		for (size_t i = 0; i < t->numel; i++)
			out[i] = load_f32(t->data + 4 * i);
	else
		for (size_t i = 0; i < t->numel; i++)
			out[i] = load_f64(t->data + 8 * i);
}

int st_check_finite(const struct st_tensor *t, char *err, size_t errlen)
{
	for (size_t i = 0; i < t->numel; i++) {
		double v = t->dtype == ST_F32 ? load_f32(t->data + 4 * i) : load_f64(t->data + 8 * i);
		if (!isfinite(v)) {
			char nb[PNAME_LEN];
			s4k_seterr(err, errlen, "tensor '%s' holds %s value at index %zu.",
				   pname(t->name, nb), isnan(v) ? "a NaN" : "an infinite", i);
			return -EINVAL;
		}
	}
	return 0;
}
