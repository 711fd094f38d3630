/* batch.c - shard membership by path hash; the set of inputs an earlier output answered.
 *
 * Design: both decisions depend on the input's path string only, never on its position in the
 * run, so shards and resumed runs stay consistent when inputs are listed in another order or
 * by other means (a directory walk on one node, an @list on another). The done set is a sorted
 * array of paths searched with bsearch: millions of lines cost one sort at start-up. Output
 * lines are read with jansson; "file" and "error" are the only keys used.
 */
#include "batch.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

int batch_parse_shard(const char *s, int *k, int *n, char *err, size_t errlen)
{
	char tail;
	if (sscanf(s, "%d/%d%c", k, n, &tail) != 2 || *n < 1 || *n > 1000000 || *k < 1 || *k > *n) {
		s4k_seterr(err, errlen, "--shard: '%s' is not K/N with 1 <= K <= N (e.g. 3/8)", s);
		return -EINVAL;
	}
	return 0;
}

int batch_in_shard(const char *path, int k, int n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a, 64 bits */
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	h ^= h >> 33; /* MurmurHash3's finaliser: FNV's low bits alone split similar paths unevenly */
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return (int)(h % (uint64_t)n) == k - 1;
}

struct batch_done {
	char **path; /* (n) sorted */
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* paths compared without the mark of a record with an error (a leading '\1') */
static int cmp_name(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	return strcmp(x + (x[0] == '\1'), y + (y[0] == '\1'));
}

/* Keep the paths with an error-free record and none with an error: sort by name, then for
 * each run of equal names keep one unless a record of it was marked bad. */
static void settle(struct batch_done *d)
{
	qsort(d->path, d->n, sizeof *d->path, cmp_name);
	size_t w = 0;
	for (size_t i = 0; i < d->n;) {
		size_t j = i;
		int bad = 0;
		const char *name = d->path[i] + (d->path[i][0] == '\1');
		while (j < d->n && !strcmp(d->path[j] + (d->path[j][0] == '\1'), name))
			bad |= d->path[j++][0] == '\1';
		if (!bad) {
			d->path[w++] = d->path[i];
			i++;
		}
		for (; i < j; i++)
			free(d->path[i]);
	}
	d->n = w;
}

struct batch_done *batch_done_load(const char *path, char *err, size_t errlen)
{
	struct batch_done *d = calloc(1, sizeof *d);
	if (!d) {
		s4k_seterr(err, errlen, "out of memory");
		return NULL;
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return d;
		s4k_seterr(err, errlen, "--skip-done: cannot read '%s': %s", path, strerror(errno));
		free(d);
		return NULL;
	}
	size_t cap = 0, len = 0;
	char *line = NULL;
	ssize_t got;
	int oom = 0;
	while (!oom && (got = getline(&line, &len, f)) >= 0) {
		json_t *o = json_loads(line, 0, NULL);
		const char *file = json_string_value(json_object_get(o, "file"));
		if (file) {
			if (d->n == cap) {
				size_t nc = cap ? 2 * cap : 1024;
				char **np = realloc(d->path, nc * sizeof *np);
				oom = !np;
				if (np) {
					d->path = np;
					cap = nc;
				}
			}
			/* records with an error are kept marked, so that their file is redone */
			char *p = oom ? NULL : malloc(strlen(file) + 2);
			if (p) {
				int bad = json_object_get(o, "error") != NULL;
				p[0] = '\1';
				strcpy(p + bad, file);
				d->path[d->n++] = p;
			} else {
				oom = 1;
			}
		}
		json_decref(o);
	}
	free(line);
	fclose(f);
	if (oom) {
		s4k_seterr(err, errlen, "out of memory reading '%s'", path);
		batch_done_free(d);
		return NULL;
	}
	settle(d);
	return d;
}

int batch_done_has(const struct batch_done *d, const char *path)
{
	return d && d->n && bsearch(&path, d->path, d->n, sizeof *d->path, cmp_str) != NULL;
}

size_t batch_done_count(const struct batch_done *d)
{
	return d ? d->n : 0;
}

void batch_done_free(struct batch_done *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->path[i]);
	free(d->path);
	free(d);
}
