/* test_cli.c - black-box tests of `s4kws classify` (file mode).
 *
 * usage: test_cli S4KWS FIXTURES_DIR TRAINED_MODEL [long-seconds]
 * Runs the real binary on real files made at test time with sox from the 16 kHz FLAC clips in
 * FIXTURES_DIR (Speech Commands val clips, "<label>+<name>.flac"), in a scratch directory under
 * the current (build) directory. The model is TRAINED_MODEL when that file exists, else a random
 * model written here with tests/model/modelgen (labels then mean little, so the label checks are
 * the same but only the exact-equality checks carry weight).
 *
 * Covered: WAV / FLAC / Ogg Vorbis / 44.1 kHz stereo / 8 kHz inputs against the 16 kHz WAV
 * originals; --native-rate; --max-rate; conv vs stream mode; --channels each; -j ordering; @list and "-";
 * corrupt, truncated, empty, zero-frame, 10 ms and missing files alone and in a directory with
 * good files (exit status, every good file reported, one stderr line per bad file); a long
 * recording (default 3600 s) with keywords inserted, against a 60 s one: same peak RSS (the
 * scan is bounded) and the right duration; --eval (json keys, confusion sums, misclassified,
 * --plot PNG, stream mode with --stream-context); csv shape; --posteriors (rows per hop, against
 * the detections of the same run); usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sndfile.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "common/hot.h"
#include "tests/check.h"
#include "tests/model/modelgen.h"

static const char *exe, *fixtures;
static char model[1024], dir[512];
static int trained;   /* a trained model: labels and detections mean something */

#define MAX_CLIPS 64
static char *clips[MAX_CLIPS];   /* base names without .flac */
static int n_clips;

/* Run a shell command line; stdout/stderr to the given files. Returns the exit status (or
 * 128 + signal) and the child's peak RSS in KiB. */
static int sh(long *rss_kb, const char *fmt, ...)
{
	char cmd[16384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	if (wait4(pid, &st, 0, &ru) < 0)
		return -1;
	if (rss_kb)
		*rss_kb = ru.ru_maxrss;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	char *b = malloc((size_t)n + 1);
	size_t got = fread(b, 1, (size_t)n, f);
	b[got] = 0;
	fclose(f);
	return b;
}

/* JSON lines of a file into an array. */
static json_t *jlines(const char *path)
{
	json_t *a = json_array();
	char *t = slurp(path), *save = NULL;
	for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *o = json_loads(l, 0, &e);
		CHECK(o != NULL, "not JSON: %.200s", l);
		if (o)
			json_array_append_new(a, o);
	}
	free(t);
	return a;
}

static const char *js(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* Record whose "file" ends with suffix (NULL if none). */
static json_t *find_rec(json_t *a, const char *suffix)
{
	size_t i, b = strlen(suffix);
	json_t *o;
	json_array_foreach(a, i, o) {
		const char *f = js(o, "file");
		size_t n = strlen(f);
		if (n >= b && !strcmp(f + n - b, suffix))
			return o;
	}
	return NULL;
}

static double max_logit_diff(json_t *a, json_t *b)
{
	json_t *la = json_object_get(a, "logits"), *lb = json_object_get(b, "logits");
	if (!la || !lb || json_array_size(la) != json_array_size(lb))
		return INFINITY;
	double m = 0;
	for (size_t k = 0; k < json_array_size(la); k++)
		m = fmax(m, fabs(json_real_value(json_array_get(la, k)) -
				 json_real_value(json_array_get(lb, k))));
	return m;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_fixtures(void)
{
	DIR *d = opendir(fixtures);
	CHECK(d != NULL, "cannot open %s", fixtures);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) && n_clips < MAX_CLIPS) {
		size_t n = strlen(de->d_name);
		if (n > 5 && !strcmp(de->d_name + n - 5, ".flac") && strchr(de->d_name, '+'))
			clips[n_clips++] = strndup(de->d_name, n - 5);
	}
	closedir(d);
	qsort(clips, (size_t)n_clips, sizeof *clips, cmp_str);
}

/* ---- formats and rates ---- */

/* Classify the set "<dir>/<kind>/<clip><ext>" via an @list; returns the JSON records. */
static json_t *classify_set(const char *kind, const char *ext, const char *extra)
{
	char list[600];
	snprintf(list, sizeof list, "%s/%s.list", dir, kind);
	FILE *f = fopen(list, "w");
	for (int i = 0; i < n_clips; i++)
		fprintf(f, "%s/%s/%s%s\n", dir, kind, clips[i], ext);
	fclose(f);
	int rc = sh(NULL, "exec '%s' classify --model '%s' --format json -j 2 %s @'%s' > '%s/%s.out' "
		    "2> '%s/%s.err'", exe, model, extra, list, dir, kind, dir, kind);
	CHECK_EQ(rc, 0);
	char out[600];
	snprintf(out, sizeof out, "%s/%s.out", dir, kind);
	json_t *a = jlines(out);
	CHECK_EQ(json_array_size(a), n_clips);
	return a;
}

static void test_formats(void)
{
	static const struct { const char *kind, *ext, *sox; } sets[] = {
		{"wav16", ".wav", "%s"},
		{"flac", ".flac", "%s"},
		{"ogg", ".ogg", "-C 5 %s"},
		{"st44", ".wav", "-r 44100 -c 2 %s"},
		{"w8", ".wav", "-r 8000 %s"},
	};
	char cmd[8192];
	for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
		snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s'", dir, sets[s].kind);
		CHECK_EQ(sh(NULL, "%s", cmd), 0);
		for (int i = 0; i < n_clips; i++) {
			char out[1024], opts[1200];
			snprintf(out, sizeof out, "'%s/%s/%s%s'", dir, sets[s].kind, clips[i], sets[s].ext);
			snprintf(opts, sizeof opts, sets[s].sox, out);
			int rc = sh(NULL, "sox '%s/%s.flac' %s 2>/dev/null", fixtures, clips[i], opts);
			CHECK(rc == 0, "sox failed making %s", out);
		}
	}
	json_t *ref = classify_set("wav16", ".wav", "");
	for (size_t s = 1; s < sizeof sets / sizeof sets[0]; s++) {
		json_t *a = classify_set(sets[s].kind, sets[s].ext, "");
		int agree = 0;
		double worst = 0;
		for (int i = 0; i < n_clips; i++) {
			char suf[600], suf2[600];
			snprintf(suf, sizeof suf, "/%s.wav", clips[i]);
			snprintf(suf2, sizeof suf2, "/%s%s", clips[i], sets[s].ext);
			json_t *r = find_rec(ref, suf), *o = find_rec(a, suf2);
			if (!r || !o) {
				CHECK(0, "%s: missing record for %s", sets[s].kind, clips[i]);
				continue;
			}
			CHECK(!json_object_get(o, "error"), "%s: %s", clips[i], js(o, "error"));
			agree += !strcmp(js(r, "label"), js(o, "label"));
			worst = fmax(worst, max_logit_diff(r, o));
		}
		printf("%-5s vs 16 kHz WAV: labels agree on %d/%d clips, max |logit diff| %.3g\n",
		       sets[s].kind, agree, n_clips, worst);
		/* lossless at the same rate: the very same samples, so the very same logits */
		if (!strcmp(sets[s].kind, "flac"))
			CHECK(worst == 0.0, "flac logits differ from wav by %g", worst);
		/* the rest: at least 90 % of the fixtures (a broken reader or resampler flips most
		 * labels of a trained model; a codec or the 8 kHz band limit flips the odd clip near a
		 * decision boundary: 1-2 % of val, measured by bench/filemode_agreement.sh) */
		CHECK(agree * 10 >= n_clips * 9, "%s: labels agree on only %d/%d", sets[s].kind, agree,
		      n_clips);
		json_decref(a);
	}
	/* 8 kHz with --native-rate: runs, one label per clip; report agreement */
	json_t *nat = classify_set("w8", ".wav", "--native-rate");
	int agree = 0;
	for (int i = 0; i < n_clips; i++) {
		char suf[600];
		snprintf(suf, sizeof suf, "/%s.wav", clips[i]);
		json_t *r = find_rec(ref, suf), *o = find_rec(nat, suf);
		CHECK(o && !json_object_get(o, "error"), "native %s", clips[i]);
		if (r && o)
			agree += !strcmp(js(r, "label"), js(o, "label"));
	}
	printf("8 kHz --native-rate vs 16 kHz WAV: labels agree on %d/%d clips%s\n", agree, n_clips,
	       trained ? "" : " (random model)");
	json_decref(nat);

	/* --max-rate 8000: the 16 kHz WAVs are first resampled to 8 kHz, so they reach the model
	 * with the band the 8 kHz copies have; the two sets then differ only by sox's and
	 * libsamplerate's 8 kHz filters (on all 912 val clips: labels agree on 912, median
	 * |logit diff| 0.004, largest 0.18; without the option 889) */
	json_t *ref8 = classify_set("wav16", ".wav", "--max-rate 8000");
	json_t *w8m = classify_set("w8", ".wav", "--max-rate 8000");
	json_t *w8d = classify_set("w8", ".wav", "");
	double dm = 0, dd = 0;
	agree = 0;
	for (int i = 0; i < n_clips; i++) {
		char suf[600];
		snprintf(suf, sizeof suf, "/%s.wav", clips[i]);
		json_t *r = find_rec(ref8, suf), *o = find_rec(w8m, suf);
		json_t *r0 = find_rec(ref, suf), *o0 = find_rec(w8d, suf);
		if (!r || !o || !r0 || !o0) {
			CHECK(0, "--max-rate: missing record for %s", clips[i]);
			continue;
		}
		agree += !strcmp(js(r, "label"), js(o, "label"));
		dm = fmax(dm, max_logit_diff(r, o));
		dd = fmax(dd, max_logit_diff(r0, o0));
	}
	printf("--max-rate 8000: 8 kHz vs 16 kHz WAV labels agree on %d/%d, max |logit diff| %.3g "
	       "(without: %.3g)\n", agree, n_clips, dm, dd);
	CHECK_EQ(agree, n_clips);
	CHECK(dm < 0.5, "--max-rate 8000: logits of the 8 kHz and 16 kHz sets differ by %g", dm);
	CHECK(dm < dd, "--max-rate 8000 (%g) is not closer than without it (%g)", dm, dd);
	json_decref(ref8);
	json_decref(w8m);
	json_decref(w8d);

	/* stream mode over the same samples agrees with conv mode */
	json_t *st = classify_set("wav16", ".wav", "--mode stream");
	double worst = 0;
	int same = 0;
	for (int i = 0; i < n_clips; i++) {
		char suf[600];
		snprintf(suf, sizeof suf, "/%s.wav", clips[i]);
		json_t *r = find_rec(ref, suf), *o = find_rec(st, suf);
		if (r && o) {
			worst = fmax(worst, max_logit_diff(r, o));
			same += !strcmp(js(r, "label"), js(o, "label"));
		}
	}
	printf("stream vs conv: max |logit diff| %.3g, same label %d/%d\n", worst, same, n_clips);
	CHECK(worst < 1e-3, "stream vs conv logits differ by %g", worst);
	json_decref(st);

	/* --channels each: left = clip 0, right = clip 1, each equals its clip alone */
	if (n_clips >= 2) {
		CHECK_EQ(sh(NULL, "sox -M '%s/wav16/%s.wav' '%s/wav16/%s.wav' '%s/lr.wav'", dir, clips[0],
			    dir, clips[1], dir), 0);
		CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json --channels each "
			    "'%s/lr.wav' > '%s/lr.out'", exe, model, dir, dir), 0);
		char p[600];
		snprintf(p, sizeof p, "%s/lr.out", dir);
		json_t *a = jlines(p);
		CHECK_EQ(json_array_size(a), 2);
		for (int c = 0; c < 2 && json_array_size(a) == 2; c++) {
			json_t *o = json_array_get(a, (size_t)c);
			char suf[600];
			snprintf(suf, sizeof suf, "/%s.wav", clips[c]);
			CHECK_EQ(json_integer_value(json_object_get(o, "channel")), c);
			double d = max_logit_diff(o, find_rec(ref, suf));
			CHECK(d < 1e-6, "channel %d differs from its clip alone by %g", c, d);
		}
		json_decref(a);
	}
	json_decref(ref);
}

/* ---- recordings a little longer than the window: still clips ---- */

/* POST every file of the set to a running `s4kws listen` and check each answer's label and
 * window against `classify`'s record. */
static void post_set(int port, const char *kind, const char *ext, json_t *recs)
{
	int same = 0;
	for (int i = 0; i < n_clips; i++) {
		char out[700], name[600];
		snprintf(name, sizeof name, "%s%s", clips[i], ext);
		snprintf(out, sizeof out, "%s/%s/%s.json", dir, kind, clips[i]);
		int rc = sh(NULL, "curl -s -o '%s' --data-binary @'%s/%s/%s' http://127.0.0.1:%d/v1/classify", out,
			    dir, kind, name, port);
		char *t = slurp(out);
		json_error_t e;
		json_t *got = t ? json_loads(t, 0, &e) : NULL;
		json_t *want = find_rec(recs, name);
		same += rc == 0 && got && want && !strcmp(js(got, "label"), js(want, "label")) &&
			(json_object_get(got, "window") ? json_equal(json_object_get(got, "window"), json_object_get(want, "window"))
							 : !json_object_get(want, "window"));
		json_decref(got);
		free(t);
	}
	CHECK(same == n_clips, "POST /v1/classify of the %s set: %d/%d answers as classify's", kind, same, n_clips);
}

static void test_longer_clips(void)
{
	/* each fixture clip as an MP3 (about 1.08 s after the encoder's padding), with 0.3 s of
	 * silence after it (1.3 s WAV) and with 0.4 s before and 0.6 s after it (2 s FLAC): each
	 * is a clip whose label comes from its loudest one-second window (daemon/clip.h), and with a
	 * trained model that is the plain clip's label */
	static const struct { const char *kind, *ext, *sox; } sets[] = {
		{"mp3", ".mp3", "%s"},
		{"pad13", ".wav", "%s pad 0 0.3"},
		{"pad20", ".flac", "%s pad 0.4 0.6"},
	};
	json_t *ref = classify_set("wav16", ".wav", "");
	char pf[600], pidf[600];
	snprintf(pf, sizeof pf, "%s/listen.port", dir);
	snprintf(pidf, sizeof pidf, "%s/listen.pid", dir);
	int port = 0;
	CHECK_EQ(sh(NULL, "'%s' listen --model '%s' --input none --port 0 --port-file '%s' 2>'%s/listen.err' & "
		    "echo $! > '%s'", exe, model, pf, dir, pidf), 0);
	for (int t = 0; t < 600 && !port; t++) { /* up to 60 s (sanitizer builds, a loaded machine) */
		char *p = slurp(pf);
		port = p ? atoi(p) : 0;
		free(p);
		if (!port)
			usleep(100000);
	}
	CHECK(port > 0, "listen wrote no port file");
	for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
		CHECK_EQ(sh(NULL, "mkdir -p '%s/%s'", dir, sets[s].kind), 0);
		for (int i = 0; i < n_clips; i++) {
			char out[1024], opts[1200];
			snprintf(out, sizeof out, "'%s/%s/%s%s'", dir, sets[s].kind, clips[i], sets[s].ext);
			snprintf(opts, sizeof opts, sets[s].sox, out);
			CHECK(sh(NULL, "sox '%s/%s.flac' %s 2>/dev/null", fixtures, clips[i], opts) == 0,
			      "sox failed making %s", out);
		}
		json_t *a = classify_set(sets[s].kind, sets[s].ext, "");
		int clipped = 0, agree = 0;
		for (int i = 0; i < n_clips; i++) {
			char name[600];
			snprintf(name, sizeof name, "%s%s", clips[i], sets[s].ext);
			json_t *o = find_rec(a, name);
			snprintf(name, sizeof name, "%s.wav", clips[i]);
			json_t *r = find_rec(ref, name);
			json_t *win = json_object_get(o, "window");
			double d = json_number_value(json_object_get(o, "duration"));
			/* a window is reported where the recording is longer than 1 s + 1/64 */
			clipped += js(o, "label")[0] && (d <= 1.0 + 1.0 / 64 ? !win :
				   json_array_size(win) == 2 && fabs(json_number_value(json_array_get(win, 1)) -
								     json_number_value(json_array_get(win, 0)) - 1.0) < 1e-6);
			agree += r && !strcmp(js(o, "label"), js(r, "label"));
		}
		CHECK(clipped == n_clips, "%s: %d/%d classified as clips with a 1 s window", sets[s].kind, clipped, n_clips);
		if (trained)
			CHECK(agree == n_clips, "%s: %d/%d labels as the 1 s clip's", sets[s].kind, agree, n_clips);
		printf("%s: %d/%d clips, %d/%d labels as the 1 s clip's\n", sets[s].kind, clipped, n_clips, agree, n_clips);
		if (port > 0)
			post_set(port, sets[s].kind, sets[s].ext, a);
		json_decref(a);
	}
	json_decref(ref);
	sh(NULL, "kill $(cat '%s') 2>/dev/null", pidf);
}

/* ---- ordering, lists, csv ---- */

static void test_order_lists(void)
{
	char a[600], b[600], c[600];
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' -j 1 '%s/wav16' > '%s/j1.txt'", exe, model,
		    dir, dir), 0);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' -j 3 '%s/wav16' > '%s/j3.txt'", exe, model,
		    dir, dir), 0);
	CHECK_EQ(sh(NULL, "ls '%s'/wav16/*.wav | '%s' classify --model '%s' -j 2 - > '%s/stdin.txt'",
		    dir, exe, model, dir), 0);
	/* options may follow the inputs (GNU argument order) */
	CHECK_EQ(sh(NULL, "exec '%s' classify '%s/wav16' --model '%s' -j 2 > '%s/after.txt'", exe,
		    dir, model, dir), 0);
	snprintf(a, sizeof a, "%s/j1.txt", dir);
	snprintf(b, sizeof b, "%s/j3.txt", dir);
	snprintf(c, sizeof c, "%s/stdin.txt", dir);
	char *x = slurp(a), *y = slurp(b), *z = slurp(c);
	CHECK(strlen(x) > 0 && !strcmp(x, y), "-j 1 and -j 3 print different output");
	CHECK(!strcmp(x, z), "a list on stdin prints differently from the directory");
	snprintf(c, sizeof c, "%s/after.txt", dir);
	char *w = slurp(c);
	CHECK(!strcmp(x, w), "options after the inputs change the output");
	free(w);
	int lines = 0;
	for (char *p = x; *p; p++)
		lines += *p == '\n';
	CHECK_EQ(lines, n_clips);
	/* directory order is sorted: the first line is the first clip */
	char first[600];
	snprintf(first, sizeof first, "%s/wav16/%s.wav\t", dir, clips[0]);
	CHECK(!strncmp(x, first, strlen(first)), "first line: %.100s", x);
	free(x);
	free(y);
	free(z);

	/* csv: header + one row per input, 7 + K columns everywhere; a 5 s recording without
	 * detections has its row too (no label, no error) */
	CHECK_EQ(sh(NULL, "sox -n -r 16000 -c 1 -b 16 '%s/quiet5.wav' trim 0 5", dir), 0);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format csv '%s/wav16' '%s/quiet5.wav' > '%s/o.csv'",
		    exe, model, dir, dir, dir), 0);
	snprintf(a, sizeof a, "%s/o.csv", dir);
	char *t = slurp(a), *save = NULL;
	int rows = 0, cols0 = -1, ok = 1;
	for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save), rows++) {
		int cols = 1;
		for (char *p = l; *p; p++)
			cols += *p == ',';
		if (cols0 < 0)
			cols0 = cols;
		ok &= cols == cols0;
	}
	CHECK(ok && cols0 > 7, "csv rows have different column counts (%d)", cols0);
	CHECK_EQ(rows, n_clips + 2);
	CHECK(!strncmp(t, "file,channel,start,end,label,score,error,", 41), "csv header");
	free(t);
	t = slurp(a);
	char quiet[700];
	snprintf(quiet, sizeof quiet, "\n%s/quiet5.wav,0,,,,,,", dir);
	CHECK(t && strstr(t, quiet), "csv row of the recording without detections");
	free(t);
}

/* ---- shards and resumed runs ---- */

/* The lines of a file, sorted, as one string (caller frees). */
static char *sorted_lines(const char *path)
{
	char *t = slurp(path), *save = NULL, *lines[512];
	int n = 0;
	for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l && n < 512; l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	qsort(lines, (size_t)n, sizeof *lines, cmp_str);
	size_t len = 1;
	for (int i = 0; i < n; i++)
		len += strlen(lines[i]) + 1;
	char *out = calloc(len, 1);
	for (int i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
	}
	free(t);
	return out;
}

static void test_shards(void)
{
	/* four shards together are exactly one full run (any -j); a run cut short and resumed with
	 * --skip-done adds exactly the rest; a bad shard is a usage error */
	char full[600], parts[600], part[600];
	snprintf(full, sizeof full, "%s/full.jsonl", dir);
	snprintf(parts, sizeof parts, "%s/shards.jsonl", dir);
	snprintf(part, sizeof part, "%s/part.jsonl", dir);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json '%s/wav16' > '%s'", exe, model, dir, full), 0);
	for (int k = 1; k <= 4; k++)
		CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json -j %d --shard %d/4 '%s/wav16' >> '%s' "
			    "2>/dev/null", exe, model, k, k, dir, parts), 0);
	char *a = sorted_lines(full), *b = sorted_lines(parts);
	CHECK(a && b && strlen(a) > 100 && !strcmp(a, b), "4 shards = 1 run");
	free(b);
	CHECK_EQ(sh(NULL, "head -n 7 '%s' > '%s' && printf '{\"file\":\"cut' >> '%s'", full, part, part), 0);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json --skip-done '%s' '%s/wav16' > '%s.rest' "
		    "2> '%s.err'", exe, model, part, dir, part, part), 0);
	CHECK_EQ(sh(NULL, "head -n 7 '%s' | cat - '%s.rest' > '%s.all'", full, part, part), 0);
	char all[700], errf[700];
	snprintf(all, sizeof all, "%s.all", part);
	snprintf(errf, sizeof errf, "%s.err", part);
	b = sorted_lines(all);
	CHECK(b && !strcmp(a, b), "7 lines + the resumed run = 1 run");
	char *e = slurp(errf);
	char want[128];
	snprintf(want, sizeof want, "%d of %d inputs to do; 7 already answered", n_clips - 7, n_clips);
	CHECK(e && strstr(e, want), "resume message: %s", e ? e : "");
	free(e);
	free(a);
	free(b);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --shard 5/4 '%s/wav16' > /dev/null 2>&1", exe, model, dir), 2);
	/* --progress: a readable speed, and the bar is erased at the end (results stay, not the bar) */
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --progress -j 1 '%s/wav16' > /dev/null 2> '%s/prog.err'", exe,
		    model, dir, dir), 0);
	snprintf(errf, sizeof errf, "%s/prog.err", dir);
	e = slurp(errf);
	size_t el = e ? strlen(e) : 0;
	CHECK(e && strstr(e, "x real time") && el >= 4 && !strcmp(e + el - 4, "\r\033[K"), "progress bar: %s", e ? e : "");
	free(e);
}

/* ---- non-finite samples ---- */

/* Copy the float WAV src to dst with samples at positions at[] (frames, mono) set to v. */
static int poke_wav(const char *src, const char *dst, const size_t *at, int n_at, float v)
{
	SF_INFO in = {0};
	SNDFILE *a = sf_open(src, SFM_READ, &in);
	if (!a)
		return -1;
	float *x = malloc((size_t)in.frames * sizeof *x);
	sf_count_t n = x ? sf_readf_float(a, x, in.frames) : 0;
	sf_close(a);
	for (int k = 0; k < n_at; k++)
		if ((sf_count_t)at[k] < n)
			x[at[k]] = v;
	SF_INFO out = {.samplerate = in.samplerate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
	SNDFILE *b = sf_open(dst, SFM_WRITE, &out);
	if (b)
		sf_writef_float(b, x, n);
	sf_close(b);
	free(x);
	return b && n > 0 ? 0 : -1;
}

static void test_nonfinite(void)
{
	/* a 1 s clip and a recording of every fixture clip with a NaN (and a 3e38) in them: both
	 * modes give what they give for the same files with those samples at zero, and say so */
	char base[600], clip[600], nan[4][700];
	snprintf(base, sizeof base, "%s/nan-base.wav", dir);
	snprintf(clip, sizeof clip, "%s/nan-clip.wav", dir);
	char cmd[16384];
	size_t l = (size_t)snprintf(cmd, sizeof cmd, "sox");
	for (int i = 0; i < n_clips && l < sizeof cmd - 1200; i++)
		l += (size_t)snprintf(cmd + l, sizeof cmd - l, " '%s/%s.flac'", fixtures, clips[i]);
	snprintf(cmd + l, sizeof cmd - l, " -e floating-point -b 32 '%s'", base);
	CHECK_EQ(sh(NULL, "%s", cmd), 0);
	CHECK_EQ(sh(NULL, "sox '%s/%s.flac' -e floating-point -b 32 '%s'", fixtures, clips[0], clip), 0);
	size_t at[] = {32000, 100000, 100001};
	const char *names[4] = {"nan-rec.wav", "zero-rec.wav", "nan-clip1.wav", "zero-clip1.wav"};
	for (int k = 0; k < 4; k++)
		snprintf(nan[k], sizeof nan[k], "%s/%s", dir, names[k]);
	CHECK_EQ(poke_wav(base, nan[0], at, 1, NAN), 0);
	CHECK_EQ(poke_wav(nan[0], nan[0], at + 1, 2, 3e38f), 0);
	CHECK_EQ(poke_wav(base, nan[1], at, 3, 0.0f), 0);
	size_t at1[] = {8000};
	CHECK_EQ(poke_wav(clip, nan[2], at1, 1, NAN), 0);
	CHECK_EQ(poke_wav(clip, nan[3], at1, 1, 0.0f), 0);
	for (int mode = 0; mode < 2; mode++) {
		char out[700];
		snprintf(out, sizeof out, "%s/nan.out", dir);
		CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --mode %s --format json '%s' '%s' '%s' '%s' > '%s' "
			    "2> '%s/nan.err'", exe, model, mode ? "stream" : "conv", nan[0], nan[1], nan[2], nan[3],
			    out, dir), 0);
		json_t *a = jlines(out);
		json_t *r[4];
		for (int k = 0; k < 4; k++)
			r[k] = find_rec(a, names[k]);
		CHECK(r[0] && r[1] && r[2] && r[3], "four records");
		if (!(r[0] && r[1] && r[2] && r[3])) {
			json_decref(a);
			continue;
		}
		json_t *d0 = json_object_get(r[0], "detections"), *d1 = json_object_get(r[1], "detections");
		CHECK(json_array_size(d0) > 0 && json_equal(d0, d1), "%s: the same detections (%zu, %zu)",
		      mode ? "stream" : "conv", json_array_size(d0), json_array_size(d1));
		CHECK(json_integer_value(json_object_get(r[0], "nonfinite_samples")) == 3 &&
			      json_is_string(json_object_get(r[0], "warning")) && !json_object_get(r[1], "warning"),
		      "the recording's warning");
		CHECK(!strcmp(js(r[2], "label"), js(r[3], "label")) &&
			      fabs(json_number_value(json_object_get(r[2], "score")) -
				   json_number_value(json_object_get(r[3], "score"))) < 1e-6 &&
			      json_integer_value(json_object_get(r[2], "nonfinite_samples")) == 1,
		      "the clip: %s %s", js(r[2], "label"), js(r[3], "label"));
		char *e = slurp(strcat(strcpy(out, dir), "/nan.err"));
		CHECK(e && strstr(e, "nan-rec.wav: warning: 3 samples not a finite number"), "stderr: %s", e ? e : "");
		free(e);
		json_decref(a);
	}
}

/* ---- bad inputs ---- */

static void test_bad(void)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd,
		 "set -e; d='%s/mixed'; mkdir -p \"$d/sub\"; "
		 "cp '%s/wav16/%s.wav' \"$d/a_good.wav\"; cp '%s/flac/%s.flac' \"$d/sub/z_good.flac\"; "
		 "head -c 3000 /dev/urandom > \"$d/corrupt.wav\"; "
		 "head -c 12000 '%s/wav16/%s.wav' > \"$d/trunc.wav\"; "
		 "head -c 6000 '%s/flac/%s.flac' > \"$d/trunc.flac\"; "
		 ": > \"$d/empty.wav\"; "
		 "sox -n -r 16000 -b 16 -c 1 \"$d/ms10.wav\" synth 0.01 sine 440; "
		 "sox -n -r 16000 -b 16 -c 1 \"$d/zero.wav\" trim 0 0; "
		 "echo 'not audio' > \"$d/notes.txt\"",
		 dir, dir, clips[0], dir, clips[1], dir, clips[2], dir, clips[3]);
	CHECK_EQ(sh(NULL, "%s", cmd), 0);
	int rc = sh(NULL, "exec '%s' classify --model '%s' --format json '%s/mixed' '%s/missing.wav' "
		    "> '%s/mixed.out' 2> '%s/mixed.err'", exe, model, dir, dir, dir, dir);
	CHECK_EQ(rc, 1);
	char p[600];
	snprintf(p, sizeof p, "%s/mixed.out", dir);
	json_t *a = jlines(p);
	static const struct { const char *name, *why; } bad[] = {
		{"corrupt.wav", "not an audio format"}, {"trunc.wav", "truncated"},
		{"trunc.flac", "truncated"}, {"empty.wav", "empty"}, {"ms10.wav", "too short"},
		{"zero.wav", "empty"}, {"missing.wav", "No such file"},
	};
	snprintf(p, sizeof p, "%s/mixed.err", dir);
	char *err = slurp(p);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char suf[64];
		snprintf(suf, sizeof suf, "/%s", bad[i].name);
		json_t *o = find_rec(a, suf);
		CHECK(o && strstr(js(o, "error"), bad[i].why), "%s: error '%s' lacks '%s'", bad[i].name,
		      o ? js(o, "error") : "(no record)", bad[i].why);
		CHECK(strstr(err, suf) != NULL, "stderr does not name %s", bad[i].name);
	}
	int lines = 0;
	for (char *q = err; *q; q++)
		lines += *q == '\n';
	CHECK_EQ(lines, (long)(sizeof bad / sizeof bad[0]));   /* one line per bad file */
	free(err);
	json_t *g1 = find_rec(a, "/a_good.wav"), *g2 = find_rec(a, "/sub/z_good.flac");
	CHECK(g1 && json_object_get(g1, "label") && !json_object_get(g1, "error"), "good wav");
	CHECK(g2 && json_object_get(g2, "label") && !json_object_get(g2, "error"), "good flac");
	CHECK(find_rec(a, "/notes.txt") == NULL, "non-audio names in directories are skipped");
	CHECK_EQ(json_array_size(a), 2 + sizeof bad / sizeof bad[0]);
	/* input order: the directory (sorted, recursive) then missing.wav */
	const char *last = js(json_array_get(a, json_array_size(a) - 1), "file");
	CHECK(strstr(last, "missing.wav") != NULL, "last record %s", last);
	CHECK(strstr(js(json_array_get(a, 0), "file"), "a_good.wav") != NULL, "first record");
	json_decref(a);

	/* a directory without audio files is a failed run, not a silent success */
	CHECK_EQ(sh(NULL, "mkdir -p '%s/noaudio' && echo x > '%s/noaudio/a.txt' && exec '%s' classify "
		    "--model '%s' '%s/noaudio' > /dev/null 2>&1", dir, dir, exe, model, dir), 1);
	/* all good: exit 0; usage errors: exit 2 */
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' '%s/mixed/a_good.wav' > /dev/null", exe,
		    model, dir), 0);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --mode foo x.wav 2> /dev/null", exe, model),
		 2);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' 2> /dev/null", exe, model), 2);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model /nonexistent.safetensors x.wav 2> /dev/null",
		    exe), 2);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --threshold nokw=0.5 x.wav 2> /dev/null",
		    exe, model), 2);
}

/* ---- long recordings ---- */

static void make_long(const char *name, int seconds)
{
	/* quiet pink noise with three clips inserted at 20 %, 50 % and 80 % of the length */
	CHECK_EQ(sh(NULL, "sox -n -r 16000 -b 16 -c 1 '%s/noise_%s.flac' synth %d pinknoise vol 0.02 "
		    "2>/dev/null && sox -m '%s/noise_%s.flac' "
		    "\"|sox '%s/wav16/%s.wav' -p pad %d\" \"|sox '%s/wav16/%s.wav' -p pad %d\" "
		    "\"|sox '%s/wav16/%s.wav' -p pad %d\" '%s/%s' 2>/dev/null && rm '%s/noise_%s.flac'",
		    dir, name, seconds, dir, name, dir, clips[n_clips - 2], seconds / 5, dir,
		    clips[n_clips - 4], seconds / 2, dir, clips[n_clips - 6], seconds * 4 / 5, dir,
		    name, dir, name), 0);
}

static void test_long(int seconds)
{
	make_long("long60.flac", 60);
	make_long("longN.flac", seconds);
	long rss60 = 0, rssN = 0;
	CHECK_EQ(sh(&rss60, "exec '%s' classify --model '%s' --format json -j 1 '%s/long60.flac' > "
		    "'%s/long60.out'", exe, model, dir, dir), 0);
	CHECK_EQ(sh(&rssN, "exec '%s' classify --model '%s' --format json -j 1 '%s/longN.flac' > "
		    "'%s/longN.out'", exe, model, dir, dir), 0);
	char p[600];
	snprintf(p, sizeof p, "%s/longN.out", dir);
	json_t *a = jlines(p);
	json_t *o = json_array_get(a, 0);
	CHECK(o && json_is_array(json_object_get(o, "detections")), "long file: no detections array");
	CHECK(o && fabs(json_real_value(json_object_get(o, "duration")) - seconds) < 0.01,
	      "duration %g", o ? json_real_value(json_object_get(o, "duration")) : -1.0);
	size_t i;
	json_t *d;
	int fields = 1;
	json_array_foreach(json_object_get(o, "detections"), i, d)
		fields &= json_is_number(json_object_get(d, "start")) &&
			json_is_number(json_object_get(d, "end")) &&
			json_real_value(json_object_get(d, "offset")) > json_real_value(json_object_get(d, "start")) &&
			json_real_value(json_object_get(d, "offset")) <= seconds &&
			json_is_string(json_object_get(d, "keyword")) &&
			json_is_number(json_object_get(d, "score")) &&
			json_is_integer(json_object_get(d, "channel"));
	CHECK(fields, "detection fields");
	printf("long recordings: 60 s peak RSS %ld KiB, %d s peak RSS %ld KiB, %zu detections\n",
	       rss60, seconds, rssN, json_array_size(json_object_get(o, "detections")));
	/* with a trained model the three inserted keywords are found where they were put */
	snprintf(p, sizeof p, "%s/long60.out", dir);
	json_t *b = jlines(p);
	json_t *dets = json_object_get(json_array_get(b, 0), "detections");
	int found = 0;
	for (int k = 0; k < 3; k++) {
		const char *c = clips[n_clips - 2 - 2 * k];
		char kw[64];
		snprintf(kw, sizeof kw, "%.*s", (int)(strchr(c, '+') - c), c);
		double at = k == 0 ? 12 : k == 1 ? 30 : 48;   /* make_long: 20 %, 50 %, 80 % of 60 s */
		int hit = 0;
		json_array_foreach(dets, i, d)
			hit |= !strcmp(js(d, "keyword"), kw) &&
			       json_real_value(json_object_get(d, "end")) > at - 0.5 &&
			       json_real_value(json_object_get(d, "start")) < at + 1.5;
		printf("  '%s' inserted at %.0f s: %s\n", kw, at, hit ? "detected" : "not detected");
		found += hit;
	}
	if (trained)
		CHECK(found >= 2, "only %d of the 3 inserted keywords detected", found);
	/* --summary: the recording's detections per hour and the two clips' labels, on stderr */
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --summary -j 1 '%s/long60.flac' '%s/wav16/%s.wav' "
		    "'%s/wav16/%s.wav' > /dev/null 2> '%s/summary.err'", exe, model, dir, dir, clips[0], dir,
		    clips[1], dir), 0);
	snprintf(p, sizeof p, "%s/summary.err", dir);
	char *sum = slurp(p);
	size_t nd = json_array_size(dets);
	char want[256], want2[128];
	snprintf(want, sizeof want, "recordings scanned: 1, 0.017 h of audio, %zu detection%s", nd, nd == 1 ? "" : "s");
	snprintf(want2, sizeof want2, ", %.1f per hour", nd * 60.0);
	CHECK(sum && strstr(sum, "summary: 3 records, 0 failed") && strstr(sum, "clips classified: 2 (") &&
		      strstr(sum, want) && (!nd || strstr(sum, want2)),
	      "--summary (want '%s%s'):\n%s", want, nd ? want2 : "", sum ? sum : "(none)");
	free(sum);
	json_decref(b);
	CHECK(rssN < rss60 + rss60 / 10 + 8192, "memory grows with the length: %ld vs %ld KiB", rssN,
	      rss60);
	json_decref(a);
}

/* ---- eval ---- */

static void test_eval(void)
{
	/* a Speech Commands layout from the fixture names "<label>+<rest>.flac" */
	CHECK_EQ(sh(NULL, "set -e; for f in '%s'/*+*.flac; do b=$(basename \"$f\"); l=${b%%%%+*}; "
		    "mkdir -p '%s/ev/'\"$l\"; cp \"$f\" '%s/ev/'\"$l/\"; done", fixtures, dir, dir), 0);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json --eval '%s/ev' --plot "
		    "'%s/cm.png' > '%s/ev.json'", exe, model, dir, dir, dir), 0);
	/* a PNG that cannot be written is refused before the evaluation runs: no output at all */
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json --eval '%s/ev' --plot "
		    "/nonexistent/cm.png > '%s/ev-bad.json' 2> '%s/ev-bad.err'", exe, model, dir, dir, dir), 2);
	char eb[700];
	snprintf(eb, sizeof eb, "%s/ev-bad.json", dir);
	char *ej = slurp(eb);
	snprintf(eb, sizeof eb, "%s/ev-bad.err", dir);
	char *ee = slurp(eb);
	CHECK(ej && !*ej && ee && strstr(ee, "--plot: cannot write '/nonexistent/cm.png'"), "bad --plot: %s",
	      ee ? ee : "");
	free(ej);
	free(ee);
	char p[600];
	snprintf(p, sizeof p, "%s/ev.json", dir);
	json_t *a = jlines(p);
	json_t *o = json_array_get(a, 0);
	CHECK(o != NULL, "no eval output");
	if (o) {
		CHECK_EQ(json_integer_value(json_object_get(o, "n")), n_clips);
		json_t *cm = json_object_get(o, "confusion"), *pc = json_object_get(o, "per_class");
		long sum = 0, diag = 0;
		for (size_t t = 0; t < json_array_size(cm); t++)
			for (size_t q = 0; q < json_array_size(json_array_get(cm, t)); q++) {
				long v = (long)json_integer_value(json_array_get(json_array_get(cm, t), q));
				sum += v;
				diag += t == q ? v : 0;
			}
		CHECK_EQ(sum, n_clips);
		double acc = json_real_value(json_object_get(o, "accuracy"));
		CHECK(fabs(acc - (double)diag / n_clips) < 1e-6, "accuracy %g vs diag %ld", acc, diag);
		CHECK_EQ(json_array_size(json_object_get(o, "misclassified")), n_clips - diag);
		/* the 95 % Wilson interval, recomputed here: it holds the accuracy, and its bounds
		 * solve |acc - q| = z sqrt(q (1 - q) / n) (the score test's boundary) */
		json_t *ci = json_object_get(o, "accuracy_ci95");
		CHECK(json_array_size(ci) == 2, "accuracy_ci95 is not a pair");
		double lo = json_real_value(json_array_get(ci, 0)), hi = json_real_value(json_array_get(ci, 1));
		CHECK(0 <= lo && lo <= acc && acc <= hi && hi <= 1, "ci %g-%g around %g", lo, hi, acc);
		for (int e = 0; e < 2; e++) {
			double q = e ? hi : lo, z = 1.959964;
			if (q > 0 && q < 1)
				CHECK(fabs(fabs(acc - q) - z * sqrt(q * (1 - q) / n_clips)) < 1e-4,
				      "ci bound %g is not a Wilson bound for %ld/%d", q, diag, n_clips);
		}
		json_t *yes = json_object_get(pc, "yes");
		CHECK(yes && json_object_get(yes, "precision") && json_object_get(yes, "recall") &&
		      json_object_get(yes, "f1"), "per_class keys");
		printf("eval on the fixtures: accuracy %.3f (%ld/%d)\n", acc, diag, n_clips);
	}
	json_decref(a);
	struct stat sb;
	snprintf(p, sizeof p, "%s/cm.png", dir);
	CHECK(stat(p, &sb) == 0 && sb.st_size > 2000, "no confusion PNG");

	/* stream mode after 0.5 s of other clips == conv mode on the same samples (0.5 s + the 1 s
	 * window fit the conv kernels' 1.5 s; beyond that conv mode forgets what stream mode
	 * remembers, so only stream mode is meaningful there) */
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json --eval '%s/ev' "
		    "--stream-context 0.5 > '%s/evc.json'", exe, model, dir, dir), 0);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json --eval '%s/ev' --mode stream "
		    "--stream-context 0.5 > '%s/evs.json'", exe, model, dir, dir), 0);
	char q[600];
	snprintf(p, sizeof p, "%s/evc.json", dir);
	snprintf(q, sizeof q, "%s/evs.json", dir);
	json_t *c = jlines(p), *s = jlines(q);
	json_t *cc = json_object_get(json_array_get(c, 0), "confusion");
	json_t *sc = json_object_get(json_array_get(s, 0), "confusion");
	CHECK(cc && sc && json_equal(cc, sc), "stream and conv eval with context disagree");
	CHECK(json_real_value(json_object_get(json_array_get(s, 0), "context_s")) == 0.5, "context_s");
	json_decref(c);
	json_decref(s);
	/* stream mode after 2 s of a noise file: runs over every clip */
	CHECK_EQ(sh(NULL, "sox -n -r 16000 -b 16 -c 1 '%s/ctx.wav' synth 5 pinknoise vol 0.1 && "
		    "exec '%s' classify --model '%s' --format json --eval '%s/ev' --mode stream "
		    "--stream-context 2 --context-file '%s/ctx.wav' > '%s/evfs.json'", dir, exe, model,
		    dir, dir, dir), 0);
	snprintf(p, sizeof p, "%s/evfs.json", dir);
	s = jlines(p);
	CHECK_EQ(json_integer_value(json_object_get(json_array_get(s, 0), "n")), n_clips);
	json_decref(s);
	/* a folder that is not a label is refused */
	CHECK_EQ(sh(NULL, "mkdir -p '%s/ev/notalabel' && exec '%s' classify --model '%s' --eval "
		    "'%s/ev' > /dev/null 2> '%s/evbad.err'", dir, exe, model, dir, dir), 2);
	snprintf(p, sizeof p, "%s/evbad.err", dir);
	char *e = slurp(p);
	CHECK(strstr(e, "notalabel") != NULL, "eval error: %s", e);
	free(e);
}

/* ---- --posteriors ---- */

/* Split one CSV line in place at commas outside quotes; quotes are removed. Returns the count. */
static int csv_split(char *line, char **f, int max)
{
	int n = 0, q = 0;
	char *w = line, *start = line;
	for (char *c = line;; c++) {
		if (*c == '"') {
			if (q && c[1] == '"') {
				*w++ = '"';
				c++;
			} else {
				q = !q;
			}
			continue;
		}
		if ((*c == ',' && !q) || !*c || *c == '\n') {
			int last = !*c || *c == '\n';
			*w = 0;
			if (n < max)
				f[n++] = start;
			if (last)
				break;
			start = ++w;
			continue;
		}
		*w++ = *c;
	}
	return n;
}

/* Every hop's posterior of the scanned recordings, CSV: the rows of each file are its hops in
 * order (offset = hop x (i + 1)), each row a probability vector, no rows for a clip, a path
 * with a comma quoted; and with one-hop smoothing every detection of the same run sits on a
 * row where its keyword is the top label with the detection's score. */
static void test_posteriors(void)
{
	CHECK_EQ(sh(NULL, "cp '%s/long60.flac' '%s/long, copy.flac'", dir, dir), 0);
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --format json -j 2 --smooth-ms 0 --min-ms 0 "
		    "--refractory-ms 0 --posteriors '%s/post.csv' '%s/long60.flac' '%s/wav16/%s.wav' "
		    "'%s/long, copy.flac' > '%s/post.json'", exe, model, dir, dir, dir, clips[0], dir, dir), 0);
	char p[600];
	snprintf(p, sizeof p, "%s/post.json", dir);
	json_t *a = jlines(p);
	snprintf(p, sizeof p, "%s/post.csv", dir);
	FILE *f = fopen(p, "r");
	CHECK(f != NULL, "--posteriors wrote no file");
	if (!f || !a) {
		json_decref(a);
		return;
	}
	char line[8192], *fl[64];
	int K = 12, bad_sum = 0, bad_order = 0, bad_shape = 0, n_other = 0;
	CHECK(fgets(line, sizeof line, f) && csv_split(line, fl, 64) == 3 + K &&
		      !strcmp(fl[0], "file") && !strcmp(fl[2], "offset") && !strcmp(fl[3], "yes") &&
		      !strcmp(fl[3 + K - 1], "_unknown_"), "--posteriors header");
	/* per recording: row count, offsets and probabilities (60 s / 12 ms = 5000 rows) */
	enum { MAXR = 6000 };
	static float pr[2][MAXR][12];
	static double off[2][MAXR];
	int rows[2] = {0, 0};
	char names[2][600];
	snprintf(names[0], sizeof names[0], "%s/long60.flac", dir);
	snprintf(names[1], sizeof names[1], "%s/long, copy.flac", dir);
	while (fgets(line, sizeof line, f)) {
		int n = csv_split(line, fl, 64);
		if (n != 3 + K) {
			bad_shape++;
			continue;
		}
		int which = !strcmp(fl[0], names[0]) ? 0 : !strcmp(fl[0], names[1]) ? 1 : -1;
		if (which < 0) {
			n_other++;
			continue;
		}
		int i = rows[which]++;
		if (i >= MAXR)
			continue;
		off[which][i] = atof(fl[2]);
		double sum = 0;
		for (int k = 0; k < K; k++)
			sum += pr[which][i][k] = (float)atof(fl[3 + k]);
		bad_sum += fabs(sum - 1) > 2e-4 || strcmp(fl[1], "0");
		bad_order += fabs(off[which][i] - 0.012 * (i + 1)) > 1e-6;
	}
	fclose(f);
	CHECK(!bad_shape && !n_other, "%d malformed rows, %d rows of other files (the clip has none)",
	      bad_shape, n_other);
	CHECK(rows[0] == 5000 && rows[1] == 5000, "rows per 60 s recording: %d and %d (want 5000)",
	      rows[0], rows[1]);
	CHECK(!bad_sum && !bad_order, "%d rows not summing to 1 (or not channel 0), %d out of order",
	      bad_sum, bad_order);
	int same = 1;
	for (int i = 0; i < 5000 && same; i++)
		for (int k = 0; k < K; k++)
			same &= pr[0][i][k] == pr[1][i][k];
	CHECK(same, "the two copies' posteriors differ");
	/* the detections of long60.flac against the rows: each one's row (its offset) has its
	 * keyword as the top label, with the detection's score (one-hop smoothing, one-hop minimum) */
	json_t *rec = json_array_get(a, 0), *dets = json_object_get(rec, "detections");
	size_t i;
	json_t *d;
	int matched = 0;
	json_array_foreach(dets, i, d) {
		double o = json_real_value(json_object_get(d, "offset"));
		int row = (int)lround(o / 0.012) - 1;
		int k = 0;
		static const char *kw[] = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"};
		while (k < 10 && strcmp(kw[k], js(d, "keyword")))
			k++;
		if (row < 0 || row >= 5000 || k == 10)
			continue;
		int top = 1;
		for (int j = 0; j < K; j++)
			top &= pr[0][row][j] <= pr[0][row][k];
		matched += top && fabs(pr[0][row][k] - json_real_value(json_object_get(d, "score"))) < 2e-5;
	}
	CHECK(matched == (int)json_array_size(dets), "%d of %zu detections are a top-label row with "
	      "their score", matched, json_array_size(dets));
	printf("--posteriors: 2 x %d rows, %zu detections matched to their rows\n", rows[0],
	       json_array_size(dets));
	json_decref(a);
	/* an unwritable file is a usage error before any work */
	CHECK_EQ(sh(NULL, "exec '%s' classify --model '%s' --posteriors /nonexistent/dir/p.csv '%s/long60.flac' "
		    "> /dev/null 2> '%s/post.err'", exe, model, dir, dir), 2);
	snprintf(p, sizeof p, "%s/post.err", dir);
	char *e = slurp(p);
	CHECK(e && strstr(e, "--posteriors: cannot write '/nonexistent/dir/p.csv'"), "error: %s", e ? e : "");
	free(e);
}

/* `info` names the copy of the hot loops this CPU runs, by the dynamic linker's rule */
static void test_info_dispatch(void)
{
	CHECK_EQ(sh(NULL, "'%s' info --model '%s' > '%s/info.txt' 2>&1", exe, model, dir), 0);
	char path[1024];
	snprintf(path, sizeof path, "%s/info.txt", dir);
	char *t = slurp(path);
	const char *want = "hot loops:      portable";
#if S4_HOT_CLONES /* the build has the clones (common/hot.h); which one runs is the CPU's to say */
	__builtin_cpu_init();
	want = __builtin_cpu_supports("x86-64-v4") ? "hot loops:      avx512"
	       : __builtin_cpu_supports("x86-64-v3") ? "hot loops:      avx2" : "hot loops:      portable";
#endif
	CHECK(t && strstr(t, want), "info names the hot-loop copy (%s): %s", want, t ? t : "(no output)");
	free(t);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: test_cli S4KWS FIXTURES TRAINED_MODEL [long-seconds]\n");
		return 2;
	}
	exe = argv[1];
	fixtures = argv[2];
	int seconds = argc > 4 ? atoi(argv[4]) : 3600;
	if (getenv("S4KWS_TEST_LONG_S"))
		seconds = atoi(getenv("S4KWS_TEST_LONG_S"));
	if (sh(NULL, "command -v sox > /dev/null") != 0) {
		printf("sox is not installed: skipped\n");
		return 77;
	}
	snprintf(dir, sizeof dir, "filemode-cli.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	char *abs = realpath(dir, NULL);
	snprintf(dir, sizeof dir, "%s", abs);
	free(abs);
	trained = access(argv[3], R_OK) == 0;
	if (trained) {
		snprintf(model, sizeof model, "%s", argv[3]);
	} else {
		/* the shipped model's shape with random weights */
		struct mg_opts o = mg_defaults();
		o.seed = 3;
		o.nb = 4;
		int w[4] = {16, 64, 64, 64}, pl[4] = {4, 4, 1, 1};
		for (int i = 0; i < 4; i++) {
			o.widths[i] = w[i];
			o.pools[i] = pl[i];
		}
		o.d_state = 64;
		o.n_ssm = 64;
		o.decoder_window = 16000;
		o.l_max = 24000;
		o.preroll = 8000;
		o.n_labels = 12;
		struct mg_file f = {0};
		mg_random_model(&f, &o);
		mg_meta_set(&f, "labels", "[\"yes\",\"no\",\"up\",\"down\",\"left\",\"right\",\"on\","
			    "\"off\",\"stop\",\"go\",\"_silence_\",\"_unknown_\"]");
		snprintf(model, sizeof model, "%s/random.safetensors", dir);
		CHECK_EQ(mg_write(&f, model), 0);
		mg_free(&f);
	}
	printf("model: %s%s\n", model, trained ? "" : " (random weights: no trained model yet)");
	list_fixtures();
	CHECK(n_clips >= 12, "only %d fixture clips", n_clips);
	test_info_dispatch();
	if (n_clips >= 12) {
		test_formats();
		test_longer_clips();
		test_nonfinite();
		test_shards();
		test_order_lists();
		test_bad();
		test_eval();
		test_long(seconds);
		test_posteriors();
	}
	int status = CHECK_DONE();
	if (status == 0)
		sh(NULL, "rm -rf '%s'", dir);
	else
		printf("files kept in %s\n", dir);
	return status;
}
