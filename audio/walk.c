/* walk.c - expand files, directories, @lists and "-" into a flat list of audio files.
 *
 * DESIGN: the classifier wants one ordered array of work items whose index is the output
 * order; walking is cheap next to classifying, so the whole list is built up front. Every
 * input problem is an item with an error sentence rather than a failure, because file mode
 * must report each bad input and carry on; only running out of memory stops the walk.
 * Directories are read with opendir/readdir, sorted with strcmp so the order does not depend
 * on the filesystem, and recursed depth first; the (device, inode) pairs of the directories on
 * the current path are kept so a symlink loop is reported instead of followed forever. Inside
 * directories only names with an audio extension are taken, so a folder with README.txt or
 * cover.jpg next to its recordings is not a folder of errors; a file named explicitly is always
 * tried.
 */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/err.h"
#include "audiofile.h"

#define WALK_MAX_DEPTH 64

void walk_init(struct walk_list *wl)
{
	memset(wl, 0, sizeof *wl);
}

void walk_fini(struct walk_list *wl)
{
	for (size_t i = 0; i < wl->n; i++) {
		free(wl->items[i].path);
		free(wl->items[i].error);
	}
	free(wl->items);
	memset(wl, 0, sizeof *wl);
}

static int push(struct walk_list *wl, const char *path, const char *error, char *err,
		size_t errlen)
{
	if (wl->n == wl->cap) {
		size_t ncap = wl->cap ? wl->cap * 2 : 64;
		struct walk_item *t = ncap < SIZE_MAX / sizeof *t ?
			realloc(wl->items, ncap * sizeof *t) : NULL;
		if (!t)
			goto oom;
		wl->items = t;
		wl->cap = ncap;
	}
	struct walk_item *it = &wl->items[wl->n];
	it->path = strdup(path);
	it->error = error ? strdup(error) : NULL;
	if (!it->path || (error && !it->error)) {
		free(it->path);
		free(it->error);
		goto oom;
	}
	wl->n++;
	return 0;
oom:
	s4k_seterr(err, errlen, "out of memory listing input files");
	return -ENOMEM;
}

static int push_errno(struct walk_list *wl, const char *path, const char *what, int e,
		      char *err, size_t errlen)
{
	char msg[S4K_ERR_LEN];
	snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
	return push(wl, path, msg, err, errlen);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct visit {
	dev_t dev[WALK_MAX_DEPTH];
	ino_t ino[WALK_MAX_DEPTH];
	int depth;
};

static int walk_rec(struct walk_list *wl, const char *dir, struct visit *v, char *err,
		    size_t errlen)
{
	struct stat sb;
	if (stat(dir, &sb) < 0)
		return push_errno(wl, dir, "cannot read directory", errno, err, errlen);
	for (int i = 0; i < v->depth; i++)
		if (v->dev[i] == sb.st_dev && v->ino[i] == sb.st_ino)
			return push(wl, dir, "directory loop (a symlink leads back to a parent); "
				    "not followed", err, errlen);
	if (v->depth == WALK_MAX_DEPTH)
		return push(wl, dir, "directories nested too deeply (more than 64 levels)", err,
			    errlen);
	DIR *d = opendir(dir);
	if (!d)
		return push_errno(wl, dir, "cannot read directory", errno, err, errlen);
	v->dev[v->depth] = sb.st_dev;
	v->ino[v->depth] = sb.st_ino;
	v->depth++;

	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **t = realloc(names, ncap * sizeof *t);
			if (!t) {
				rc = -ENOMEM;
				break;
			}
			names = t;
			cap = ncap;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = -ENOMEM;
			break;
		}
		n++;
		errno = 0;
	}
	int read_errno = errno;
	closedir(d);
	if (rc == 0 && read_errno)
		rc = push_errno(wl, dir, "error while reading directory", read_errno, err, errlen);
	if (rc == -ENOMEM)
		s4k_seterr(err, errlen, "out of memory listing input files");
	if (n > 1)
		qsort(names, n, sizeof *names, cmp_names);

	size_t dlen = strlen(dir);
	int slash = dlen > 0 && dir[dlen - 1] == '/';
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t plen = dlen + 1 + strlen(names[i]) + 1;
		char *p = malloc(plen);
		if (!p) {
			s4k_seterr(err, errlen, "out of memory listing input files");
			rc = -ENOMEM;
			break;
		}
		snprintf(p, plen, slash ? "%s%s" : "%s/%s", dir, names[i]);
		struct stat eb;
		if (stat(p, &eb) < 0) {
			/* a dangling symlink with an audio name is a named input gone missing */
			if (af_is_audio_name(p))
				rc = push_errno(wl, p, "cannot open", errno, err, errlen);
		} else if (S_ISDIR(eb.st_mode)) {
			rc = walk_rec(wl, p, v, err, errlen);
		} else if (af_is_audio_name(p)) {
			rc = push(wl, p, NULL, err, errlen);
		}
		free(p);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	v->depth--;
	return rc;
}

int walk_dir(struct walk_list *wl, const char *dir, char *err, size_t errlen)
{
	struct visit v = {.depth = 0};
	return walk_rec(wl, dir, &v, err, errlen);
}

/* FILE or DIR (no lists). */
static int add_path(struct walk_list *wl, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		return walk_dir(wl, path, err, errlen);
	/* Files (and missing paths) go through as given: opening them reports the reason. */
	return push(wl, path, NULL, err, errlen);
}

static int add_list(struct walk_list *wl, const char *name, FILE *in, char *err, size_t errlen)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while (rc == 0 && (len = getline(&line, &cap, in)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (strlen(line) != (size_t)len) {
			rc = push(wl, name, "the list holds a NUL byte; is it a text file?", err,
				  errlen);
			break;
		}
		rc = add_path(wl, line, err, errlen);
	}
	if (rc == 0 && ferror(in))
		rc = push_errno(wl, name, "error reading the list", errno ? errno : EIO, err,
				errlen);
	free(line);
	return rc;
}

int walk_add(struct walk_list *wl, const char *arg, FILE *list_in, char *err, size_t errlen)
{
	if (!strcmp(arg, "-")) {
		if (!list_in)
			return push(wl, "-", "no list on standard input", err, errlen);
		return add_list(wl, "-", list_in, err, errlen);
	}
	if (arg[0] == '@' && arg[1]) {
		FILE *f = fopen(arg + 1, "r");
		if (!f)
			return push_errno(wl, arg, "cannot open the list", errno, err, errlen);
		struct stat sb;
		if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
			fclose(f);
			return push(wl, arg, "the list is a directory", err, errlen);
		}
		int rc = add_list(wl, arg, f, err, errlen);
		fclose(f);
		return rc;
	}
	return add_path(wl, arg, err, errlen);
}
