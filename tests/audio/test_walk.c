/* test_walk.c - walk_: files, recursive directories in sorted order with hidden and non-audio
 * names skipped, symlink loops, @lists with comments and blank lines, "-" from a stream,
 * missing paths and lists as error items, order preserved across inputs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/walk.h"
#include "tests/check.h"

static char dir[256];

static const char *p(const char *name)
{
	static char b[8][512];
	static int k;
	k = (k + 1) % 8;
	snprintf(b[k], sizeof b[k], "%s/%s", dir, name);
	return b[k];
}

static void touch(const char *name)
{
	FILE *f = fopen(p(name), "w");
	if (f)
		fclose(f);
}

/* 1 when item i has this path suffix and no error (want_err 0) or an error (want_err 1). */
static int item_is(const struct walk_list *wl, size_t i, const char *suffix, int want_err)
{
	if (i >= wl->n)
		return 0;
	size_t a = strlen(wl->items[i].path), b = strlen(suffix);
	return a >= b && !strcmp(wl->items[i].path + a - b, suffix) &&
	       (wl->items[i].error != NULL) == want_err;
}

static void dump(const struct walk_list *wl)
{
	for (size_t i = 0; i < wl->n; i++)
		printf("  [%zu] %s%s%s\n", i, wl->items[i].path, wl->items[i].error ? " ERROR " : "",
		       wl->items[i].error ? wl->items[i].error : "");
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/test_walk.XXXXXX", P_tmpdir);
	if (!mkdtemp(dir))
		return 1;
	mkdir(p("d"), 0755);
	mkdir(p("d/sub"), 0755);
	mkdir(p("d/.git"), 0755);
	mkdir(p("d/a_dir"), 0755);
	touch("d/b.wav");
	touch("d/a.FLAC");
	touch("d/readme.txt");
	touch("d/.hidden.wav");
	touch("d/sub/z.ogg");
	touch("d/sub/c.mp3");
	touch("d/.git/x.wav");
	touch("d/a_dir/m.wav");
	if (symlink("..", p("d/sub/loop")) != 0)
		printf("symlink failed\n");

	struct walk_list wl;
	char err[256];
	walk_init(&wl);
	CHECK_EQ(walk_add(&wl, p("d"), NULL, err, sizeof err), 0);
	/* byte order: "a.FLAC" < "a_dir" < "b.wav" < "sub"; loop reported, not followed */
	CHECK(item_is(&wl, 0, "d/a.FLAC", 0), "0");
	CHECK(item_is(&wl, 1, "d/a_dir/m.wav", 0), "1");
	CHECK(item_is(&wl, 2, "d/b.wav", 0), "2");
	CHECK(item_is(&wl, 3, "d/sub/c.mp3", 0), "3");
	CHECK(item_is(&wl, 4, "d/sub/loop", 1), "4 loop");
	CHECK(item_is(&wl, 5, "d/sub/z.ogg", 0), "5");
	CHECK_EQ(wl.n, 6);
	if (wl.n != 6)
		dump(&wl);
	if (wl.n > 4 && wl.items[4].error)
		CHECK(strstr(wl.items[4].error, "loop") != NULL, "%s", wl.items[4].error);
	walk_fini(&wl);

	/* a list file: comments, blank lines, CRLF, a directory, a missing file, a text file named
	 * explicitly (taken as given: opening it will report it) */
	FILE *l = fopen(p("list.txt"), "w");
	fprintf(l, "# comment\n\n%s\r\n%s\n%s\n%s/d/readme.txt\n", p("d/b.wav"), p("d/a_dir"),
		p("nope.wav"), dir);
	fclose(l);
	walk_init(&wl);
	char at[600];
	snprintf(at, sizeof at, "@%s", p("list.txt"));
	CHECK_EQ(walk_add(&wl, at, NULL, err, sizeof err), 0);
	CHECK_EQ(walk_add(&wl, "@/nonexistent/list.txt", NULL, err, sizeof err), 0);
	CHECK(item_is(&wl, 0, "d/b.wav", 0), "list 0");
	CHECK(item_is(&wl, 1, "d/a_dir/m.wav", 0), "list 1");
	CHECK(item_is(&wl, 2, "nope.wav", 0), "list 2: missing files are opened (and fail) later");
	CHECK(item_is(&wl, 3, "d/readme.txt", 0), "list 3");
	CHECK(item_is(&wl, 4, "@/nonexistent/list.txt", 1), "list 4");
	CHECK_EQ(wl.n, 5);
	if (wl.n != 5)
		dump(&wl);
	walk_fini(&wl);

	/* "-" reads the list from the given stream; NULL stream is an error item */
	char text[600];
	snprintf(text, sizeof text, "%s\n\n%s", p("d/sub/z.ogg"), p("d/a.FLAC"));  /* no final \n */
	FILE *m = fmemopen(text, strlen(text), "r");
	walk_init(&wl);
	CHECK_EQ(walk_add(&wl, "-", m, err, sizeof err), 0);
	CHECK_EQ(walk_add(&wl, "-", NULL, err, sizeof err), 0);
	fclose(m);
	CHECK(item_is(&wl, 0, "d/sub/z.ogg", 0), "stdin 0");
	CHECK(item_is(&wl, 1, "d/a.FLAC", 0), "stdin 1");
	CHECK(item_is(&wl, 2, "-", 1), "stdin 2");
	CHECK_EQ(wl.n, 3);
	walk_fini(&wl);

	/* an unreadable directory (skipped when running as root, which reads anything) */
	if (geteuid() != 0) {
		mkdir(p("locked"), 0000);
		walk_init(&wl);
		walk_add(&wl, p("locked"), NULL, err, sizeof err);
		CHECK(item_is(&wl, 0, "locked", 1), "unreadable directory");
		walk_fini(&wl);
		chmod(p("locked"), 0755);
	}

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return CHECK_DONE();
}
