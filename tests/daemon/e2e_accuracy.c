/* e2e_accuracy.c - end-to-end keyword spotting check of `s4kws listen` on a generated stream.
 *
 * usage: e2e_accuracy --s4kws BIN --data SPEECH_COMMANDS_DIR [--model FILE] [--minutes M]
 *                     [--seed N] [--min-recall R] [--max-false F] [--tolerance-ms T]
 *                     [--keep DIR] [--build-only] [--agree [--agree-ms MS]] [--input FILE]
 *                     [--word WORD] [-- LISTEN_ARGS...]
 *
 * 1. Builds a stream from the validation clips (never the training ones): keyword clips (the
 *    ten keyword folders of val/) and non-keyword speech (val/_unknown_), in a seeded random
 *    order, separated by 1.2 to 2.5 s of background noise (random stretches of
 *    _background_noise_/, scaled to -50 to -30 dBFS RMS). The true end of each keyword is
 *    where the clip's 10 ms energy last exceeds a tenth of its peak (the clip's trailing
 *    silence does not count). The stream goes to stream.wav, the truth to truth.csv (keyword,
 *    start_s, end_s, clip; filler lines have keyword "-").
 * 2. Runs `s4kws listen --input stream.wav` (as fast as the CPU allows) on 127.0.0.1, reads the
 *    detections over HTTP (/v1/detections, paged with since/limit) and over SSE (/v1/events
 *    from id 0), and checks that both give the same detections.
 * 3. Matches detections to keywords: a detection of the same keyword whose reported `end` is
 *    within +-tolerance (300 ms) of the true end; each keyword and each detection is used at most
 *    once. Prints recall, false detections (all unmatched ones, and how many fell on filler),
 *    the end-estimate error and the decision delay (offset - true end).
 * 4. With --agree, runs `s4kws classify --format json` (conv mode, the same model and LISTEN_ARGS)
 *    on the same audio and requires the same detections: the same keywords in the same order,
 *    each decided within --agree-ms (default: one hop, from the daemon's status) of listen's. With --input FILE the stream is
 *    that file instead (no truth: only the agreement is checked).
 * With --word WORD the stream's only keyword is WORD, its clips every real recording of it in
 * train/_unknown_ and val/_unknown_ (WORD_*), the non-keyword speech the other val clips: a
 * model that learned WORD from synthetic speech alone is measured on real voices (bench/proxy.sh).
 * Exit status: 0 when recall >= min-recall and false detections <= max-false (scaled to the
 * stream length per 10 minutes), 1 otherwise, 77 (skipped) when the model or data is missing,
 * 2 on usage errors. With --min-recall 0 and --max-false -1 only the plumbing is checked.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audio/audiofile.h"
#include "client.h"

#define RATE 16000
#define MAX_EV 4096

static const char *const sc_keywords[] = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"};
#define N_KW 10
/* the stream's keywords: the ten, or the one --word */
static const char *keywords[N_KW] = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"};
static int n_kw = N_KW;

struct truth {
	int kw;                /* index into keywords, -1 for filler */
	double start, end;     /* s in the stream (speech part) */
	char clip[512];
	int found;             /* matched by a detection */
};

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}
static double rnd01(void)
{
	return (double)rnd() / 4294967296.0;
}

struct list {
	char **p;
	size_t n, cap;
};

/* The audio files of dir, sorted; with want > 0 only those whose name starts with prefix, with
 * want < 0 only the others (prefix NULL: all). */
static void list_dir_if(const char *dir, struct list *l, const char *prefix, int want)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	size_t pl = prefix ? strlen(prefix) : 0;
	size_t n0 = l->n;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !af_is_audio_name(e->d_name))
			continue;
		if (prefix && (strncmp(e->d_name, prefix, pl) == 0) != (want > 0))
			continue;
		if (l->n == l->cap) {
			l->cap = l->cap ? 2 * l->cap : 256;
			l->p = realloc(l->p, l->cap * sizeof *l->p);
		}
		if (asprintf(&l->p[l->n], "%s/%s", dir, e->d_name) > 0)
			l->n++;
	}
	closedir(d);
	/* readdir order is not stable: sort for reproducibility (what this call added) */
	for (size_t i = n0 + 1; i < l->n; i++)
		for (size_t j = i; j > n0 && strcmp(l->p[j - 1], l->p[j]) > 0; j--) {
			char *t = l->p[j];
			l->p[j] = l->p[j - 1];
			l->p[j - 1] = t;
		}
}

static void list_dir(const char *dir, struct list *l)
{
	list_dir_if(dir, l, NULL, 0);
}

static void list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->p[i]);
	free(l->p);
	memset(l, 0, sizeof *l);
}

static float *load(const char *path, size_t *n)
{
	char err[256];
	struct af_file *f = af_open(path, err, sizeof err);
	float *x = NULL;
	if (!f || af_set_output(f, AF_MIX, RATE, RS_BEST, err, sizeof err) < 0 ||
	    af_load(f, (size_t)RATE * 200, &x, n, err, sizeof err) < 0) {
		fprintf(stderr, "e2e: %s: %s\n", path, err);
		free(x);
		x = NULL;
	}
	af_close(f);
	return x;
}

/* Speech extent of a clip: 10 ms frames whose RMS exceeds a tenth of the peak frame's. */
static void speech_extent(const float *x, size_t n, size_t *s, size_t *e)
{
	size_t nf = n / 160;
	double peak = 0;
	double *r = calloc(nf ? nf : 1, sizeof *r);
	for (size_t f = 0; f < nf; f++) {
		double a = 0;
		for (size_t i = 0; i < 160; i++)
			a += (double)x[f * 160 + i] * x[f * 160 + i];
		r[f] = sqrt(a / 160);
		if (r[f] > peak)
			peak = r[f];
	}
	*s = 0;
	*e = n;
	size_t first = nf, last = 0;
	for (size_t f = 0; f < nf; f++)
		if (r[f] >= 0.1 * peak) {
			if (first == nf)
				first = f;
			last = f;
		}
	if (first < nf) {
		*s = first * 160;
		*e = (last + 1) * 160;
	}
	free(r);
}

struct buf {
	float *x;
	size_t n, cap;
};

static void append(struct buf *b, const float *x, size_t n, float gain)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->x = realloc(b->x, b->cap * sizeof *b->x);
	}
	for (size_t i = 0; i < n; i++)
		b->x[b->n + i] = x ? x[i] * gain : 0;
	b->n += n;
}

/* Build stream.wav and truth.csv in dir. Returns the number of truth entries or -1. */
static int build(const char *data, const char *dir, double minutes, const char *word, struct truth *tr,
		 int max_tr)
{
	char p[1024];
	struct list kw[N_KW], unk = {0}, noise = {0};
	memset(kw, 0, sizeof kw);
	if (word) {
		/* every real clip of the word (train/ and val/ _unknown_/WORD_*) is a keyword; the
		 * other val clips, the ten keywords' included, are non-keyword speech */
		char prefix[64];
		snprintf(prefix, sizeof prefix, "%s_", word);
		for (int t = 0; t < 2; t++) {
			snprintf(p, sizeof p, "%s/%s/_unknown_", data, t ? "val" : "train");
			list_dir_if(p, &kw[0], prefix, 1);
		}
		snprintf(p, sizeof p, "%s/val/_unknown_", data);
		list_dir_if(p, &unk, prefix, -1);
		for (int k = 0; k < N_KW; k++) {
			snprintf(p, sizeof p, "%s/val/%s", data, sc_keywords[k]);
			list_dir(p, &unk);
		}
		if (!kw[0].n) {
			fprintf(stderr, "e2e: no clips named %s* in %s/{train,val}/_unknown_\n", prefix, data);
			return -1;
		}
	} else
		for (int k = 0; k < N_KW; k++) {
			snprintf(p, sizeof p, "%s/val/%s", data, keywords[k]);
			list_dir(p, &kw[k]);
			if (!kw[k].n) {
				fprintf(stderr, "e2e: no clips in %s\n", p);
				return -1;
			}
		}
	if (!word) {
		snprintf(p, sizeof p, "%s/val/_unknown_", data);
		list_dir(p, &unk);
	}
	snprintf(p, sizeof p, "%s/_background_noise_", data);
	list_dir(p, &noise);
	if (!unk.n || !noise.n) {
		fprintf(stderr, "e2e: need val/_unknown_ and _background_noise_ under %s\n", data);
		return -1;
	}
	float *nz[16];
	size_t nn[16];
	double nrms[16];
	size_t n_noise = noise.n < 16 ? noise.n : 16;
	for (size_t i = 0; i < n_noise; i++) {
		if (!(nz[i] = load(noise.p[i], &nn[i])))
			return -1;
		double a = 0;
		for (size_t j = 0; j < nn[i]; j++)
			a += (double)nz[i][j] * nz[i][j];
		nrms[i] = sqrt(a / (double)(nn[i] ? nn[i] : 1)) + 1e-9;
	}
	size_t used_kw[N_KW] = {0}, used_unk = 0;
	/* shuffle each list once; take clips in that order (no clip twice until a list is used up) */
	struct list *all[N_KW + 1];
	for (int k = 0; k < N_KW; k++)
		all[k] = &kw[k];
	all[N_KW] = &unk;
	for (int k = 0; k <= N_KW; k++)
		for (size_t i = all[k]->n; i > 1; i--) {
			size_t j = rnd() % i;
			char *t = all[k]->p[i - 1];
			all[k]->p[i - 1] = all[k]->p[j];
			all[k]->p[j] = t;
		}
	struct buf b = {0};
	int nt = 0;
	double total = minutes * 60;
	while ((double)b.n / RATE < total && nt < max_tr) {
		/* gap of background noise */
		size_t g = (size_t)((1.2 + 1.3 * rnd01()) * RATE);
		size_t which = rnd() % n_noise;
		size_t at = nn[which] > g ? rnd() % (nn[which] - g) : 0;
		/* noise at -50 to -30 dBFS RMS (speech clips are around -20 dBFS) */
		float level = (float)(pow(10, (-50 + 20 * rnd01()) / 20) / nrms[which]);
		append(&b, nz[which] + at, g < nn[which] ? g : nn[which], level);
		/* a keyword (60 %) or non-keyword speech */
		int k = rnd01() < 0.6 ? (int)(rnd() % (unsigned)n_kw) : -1;
		const char *clip = k >= 0 ? kw[k].p[used_kw[k]++ % kw[k].n] : unk.p[used_unk++ % unk.n];
		size_t n;
		float *x = load(clip, &n);
		if (!x)
			return -1;
		size_t s, e;
		speech_extent(x, n, &s, &e);
		tr[nt].kw = k;
		tr[nt].start = (double)(b.n + s) / RATE;
		tr[nt].end = (double)(b.n + e) / RATE;
		snprintf(tr[nt].clip, sizeof tr[nt].clip, "%s", clip);
		nt++;
		append(&b, x, n, 1.0f);
		free(x);
	}
	append(&b, NULL, 2 * RATE, 0); /* trailing second of silence so the last keyword can fire */
	snprintf(p, sizeof p, "%s/stream.wav", dir);
	SF_INFO si = {.samplerate = RATE, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *sf = sf_open(p, SFM_WRITE, &si);
	if (!sf) {
		fprintf(stderr, "e2e: cannot write %s\n", p);
		return -1;
	}
	sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
	sf_write_float(sf, b.x, (sf_count_t)b.n);
	sf_close(sf);
	snprintf(p, sizeof p, "%s/truth.csv", dir);
	FILE *f = fopen(p, "w");
	fprintf(f, "keyword,start_s,end_s,clip\n");
	for (int i = 0; i < nt; i++)
		fprintf(f, "%s,%.4f,%.4f,%s\n", tr[i].kw >= 0 ? keywords[tr[i].kw] : "-", tr[i].start, tr[i].end,
			tr[i].clip);
	fclose(f);
	int nk = 0;
	for (int i = 0; i < nt; i++)
		nk += tr[i].kw >= 0;
	printf("stream: %.1f s, %d keywords, %d non-keyword clips (%s/stream.wav)\n", (double)b.n / RATE, nk, nt - nk,
	       dir);
	free(b.x);
	for (size_t i = 0; i < n_noise; i++)
		free(nz[i]);
	for (int k = 0; k <= N_KW; k++)
		list_free(all[k]);
	list_free(&noise);
	return nt;
}

struct det {
	long long id;
	char kw[48];
	double offset, end, score;
};

static size_t parse_dets(json_t *arr, struct det *d, size_t n, size_t max)
{
	for (size_t i = 0; i < json_array_size(arr) && n < max; i++) {
		json_t *e = json_array_get(arr, i);
		d[n].id = json_integer_value(json_object_get(e, "id"));
		snprintf(d[n].kw, sizeof d[n].kw, "%s", json_string_value(json_object_get(e, "keyword")));
		d[n].offset = json_number_value(json_object_get(e, "offset"));
		d[n].end = json_number_value(json_object_get(e, "end"));
		d[n].score = json_number_value(json_object_get(e, "score"));
		n++;
	}
	return n;
}

/* --agree: classify's detections of wav (conv mode) against listen's d[0..n), same keywords
 * in the same order, offsets within tol s. 1 when they agree. */
static int agree(const char *bin, const char *model, const char *wav, char **extra, int n_extra,
		 const struct det *d, size_t n, double tol)
{
	char cmd[8192];
	int k = snprintf(cmd, sizeof cmd, "'%s' classify --format json", bin);
	if (model)
		k += snprintf(cmd + k, sizeof cmd - (size_t)k, " --model '%s'", model);
	for (int i = 0; i < n_extra && k < (int)sizeof cmd - 600; i++)
		k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s'", extra[i]);
	snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s' 2>/dev/null", wav);
	static struct det c[MAX_EV];
	size_t nc = 0;
	FILE *f = popen(cmd, "r");
	static char line[1 << 22];
	while (f && fgets(line, sizeof line, f)) {
		json_error_t je;
		json_t *o = json_loads(line, 0, &je);
		nc = parse_dets(json_object_get(o, "detections"), c, nc, MAX_EV);
		json_decref(o);
	}
	int st = f ? pclose(f) : -1;
	int same = st == 0 && nc == n;
	double worst = 0;
	for (size_t i = 0; i < n && i < nc; i++) {
		double dt = fabs(c[i].offset - d[i].offset);
		int ok = !strcmp(c[i].kw, d[i].kw) && dt <= tol;
		if (!ok)
			printf("  differs: listen %s at %.3f s, classify %s at %.3f s\n", d[i].kw, d[i].offset, c[i].kw,
			       c[i].offset);
		same &= ok;
		worst = dt > worst ? dt : worst;
	}
	printf("classify vs listen --input: %zu and %zu detections, largest time difference %.1f ms: "
	       "%s\n", nc, n, 1000 * worst, same ? "the same" : "DIFFERENT");
	return same;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *bin = NULL, *data = NULL, *model = NULL, *keep = NULL, *input = NULL, *word = NULL;
	double minutes = 10, min_recall = 0.9, max_false = 2, tol = 0.3, agree_tol = -1;
	int build_only = 0, extra = argc, check_agree = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--")) {
			extra = i + 1;
			break;
		} else if (!strcmp(a, "--build-only"))
			build_only = 1;
		else if (!strcmp(a, "--agree"))
			check_agree = 1;
		else if (!v)
			goto usage;
		else if (!strcmp(a, "--s4kws"))
			bin = v, i++;
		else if (!strcmp(a, "--data"))
			data = v, i++;
		else if (!strcmp(a, "--model"))
			model = v, i++;
		else if (!strcmp(a, "--keep"))
			keep = v, i++;
		else if (!strcmp(a, "--minutes"))
			minutes = atof(v), i++;
		else if (!strcmp(a, "--seed"))
			rng = 88172645463325252ull ^ (uint64_t)strtoull(v, NULL, 10) * 0x9E3779B97F4A7C15ull, i++;
		else if (!strcmp(a, "--min-recall"))
			min_recall = atof(v), i++;
		else if (!strcmp(a, "--max-false"))
			max_false = atof(v), i++;
		else if (!strcmp(a, "--tolerance-ms"))
			tol = atof(v) / 1000, i++;
		else if (!strcmp(a, "--agree-ms"))
			agree_tol = atof(v) / 1000, i++;
		else if (!strcmp(a, "--input"))
			input = v, i++;
		else if (!strcmp(a, "--word"))
			word = v, i++;
		else
			goto usage;
	}
	if ((!data && !input) || (!bin && !build_only) || minutes <= 0 || (input && build_only))
		goto usage;
	struct stat st;
	if (!input && stat(data, &st) < 0) {
		printf("e2e: no data at %s: skipped\n", data);
		return 77;
	}
	if (model && stat(model, &st) < 0) {
		printf("e2e: no model at %s (not trained yet?): skipped\n", model);
		return 77;
	}
	char dir[600];
	if (keep) {
		mkdir(keep, 0755);
		snprintf(dir, sizeof dir, "%s", keep);
	} else {
		snprintf(dir, sizeof dir, "/tmp/s4kws-e2e-XXXXXX");
		if (!mkdtemp(dir))
			return 1;
	}
	static struct truth tr[MAX_EV];
	if (word) {
		if (strlen(word) > 40 || strchr(word, '/')) {
			fprintf(stderr, "e2e: --word %s: a word of at most 40 characters, no '/'\n", word);
			return 2;
		}
		keywords[0] = word;
		n_kw = 1;
	}
	int nt = input ? 0 : build(data, dir, minutes, word, tr, MAX_EV);
	if (nt < 0)
		return 1;
	if (build_only)
		return 0;

	/* run the daemon */
	char pf[700], ef[700], wav[700];
	snprintf(pf, sizeof pf, "%s/port", dir);
	snprintf(ef, sizeof ef, "%s/listen.log", dir);
	snprintf(wav, sizeof wav, "%s", input ? input : "");
	if (!input)
		snprintf(wav, sizeof wav, "%s/stream.wav", dir);
	unlink(pf);
	const char *av[96];
	int k = 0;
	av[k++] = bin;
	av[k++] = "listen";
	if (model) {
		av[k++] = "--model";
		av[k++] = model;
	}
	av[k++] = "--input";
	av[k++] = wav;
	av[k++] = "--port";
	av[k++] = "0";
	av[k++] = "--port-file";
	av[k++] = pf;
	av[k++] = "--history";
	av[k++] = "100000";
	for (int i = extra; i < argc && k < 94; i++)
		av[k++] = argv[i];
	av[k] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int e = open(ef, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(e, 2);
		execv(bin, (char **)av);
		_exit(127);
	}
	int port = 0;
	for (int i = 0; i < 600 && !port; i++) {
		FILE *f = fopen(pf, "r");
		if (f) {
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "e2e: s4kws listen exited; see %s\n", ef);
			return 1;
		}
		if (!port)
			usleep(50000);
	}
	int sse = sse_open(port, "/v1/events?since=0", NULL);
	/* wait for eof */
	json_t *status = NULL;
	int eof = 0;
	for (int i = 0; i < 36000 && !eof; i++) {
		struct resp r;
		http_req(port, "GET", "/v1/status", NULL, NULL, 0, &r);
		json_error_t je;
		json_decref(status);
		status = json_loads(r.body, 0, &je);
		free(r.body);
		const char *s = json_string_value(json_object_get(json_object_get(status, "input"), "state"));
		eof = s && !strcmp(s, "eof");
		if (s && !strcmp(s, "error"))
			break;
		if (!eof)
			usleep(100000);
	}
	if (!eof) {
		fprintf(stderr, "e2e: the input did not reach eof; see %s\n", ef);
		kill(pid, SIGKILL);
		return 1;
	}
	/* detections over HTTP, paged */
	static struct det dh[MAX_EV], ds[MAX_EV];
	size_t nh = 0;
	long long since = 0;
	for (;;) {
		char url[128];
		snprintf(url, sizeof url, "/v1/detections?since=%lld&limit=100", since);
		struct resp r;
		http_req(port, "GET", url, NULL, NULL, 0, &r);
		json_error_t je;
		json_t *o = json_loads(r.body, 0, &je);
		free(r.body);
		size_t before = nh;
		nh = parse_dets(json_object_get(o, "detections"), dh, nh, MAX_EV);
		long long last = json_integer_value(json_object_get(o, "last_id"));
		json_decref(o);
		if (nh == before || last <= since)
			break;
		since = last;
	}
	/* the same over SSE */
	size_t ns = 0;
	if (nh) {
		static char acc[1 << 22];
		size_t len = 0;
		char want[64];
		snprintf(want, sizeof want, "id: %lld\n", dh[nh - 1].id);
		int got = sse_read_until(sse, acc, sizeof acc, &len, want, 10000);
		/* read on until the record with that id is complete */
		char *last = strstr(acc, want);
		if (got && last)
			sse_read_until(sse, acc, sizeof acc, &len, "}\n\n", 2000);
		for (char *q = strstr(acc, "data: "); q; q = strstr(q + 6, "data: ")) {
			char *e = strchr(q, '\n');
			if (!e)
				break;
			json_error_t je;
			json_t *o = json_loadb(q + 6, (size_t)(e - q - 6), 0, &je);
			json_t *arr = json_array();
			json_array_append(arr, o);
			ns = parse_dets(arr, ds, ns, MAX_EV);
			json_decref(arr);
			json_decref(o);
		}
	}
	close(sse);
	kill(pid, SIGTERM);
	int wst;
	waitpid(pid, &wst, 0);
	int same = ns == nh;
	for (size_t i = 0; same && i < nh; i++)
		same = ds[i].id == dh[i].id && !strcmp(ds[i].kw, dh[i].kw) && fabs(ds[i].end - dh[i].end) < 1e-9;
	printf("detections: %zu over HTTP, %zu over SSE: %s\n", nh, ns, same ? "identical" : "DIFFERENT");
	if (check_agree) { /* within one hop (the daemon's, from its status) unless --agree-ms */
		double hop_s = json_number_value(json_object_get(json_object_get(status, "model"), "hop_ms")) / 1000;
		same &= agree(bin, model, wav, argv + extra, argc - extra, dh, nh,
			      agree_tol >= 0 ? agree_tol : hop_s + 1e-4);
	}
	if (input) {
		json_decref(status);
		if (!keep)
			rmdir(dir);
		return same ? 0 : 1;
	}

	/* match */
	int nk = 0;
	static int used[MAX_EV];
	static double delays[MAX_EV], errs[MAX_EV];
	int matched = 0, on_filler = 0;
	for (int t = 0; t < nt; t++) {
		if (tr[t].kw < 0)
			continue;
		nk++;
		int best = -1;
		for (size_t j = 0; j < nh; j++)
			if (!used[j] && !strcmp(dh[j].kw, keywords[tr[t].kw]) && fabs(dh[j].end - tr[t].end) <= tol &&
			    (best < 0 || fabs(dh[j].end - tr[t].end) < fabs(dh[best].end - tr[t].end)))
				best = (int)j;
		if (best >= 0) {
			used[best] = 1;
			delays[matched] = dh[best].offset - tr[t].end;
			errs[matched] = dh[best].end - tr[t].end;
			matched++;
			tr[t].found = 1;
		}
	}
	/* why each missed keyword was missed: the nearest detection within 1 s of its true end */
	int miss_none = 0, miss_other = 0, miss_time = 0;
	for (int t = 0; t < nt; t++) {
		if (tr[t].kw < 0 || tr[t].found)
			continue;
		int near = -1;
		for (size_t j = 0; j < nh; j++)
			if (fabs(dh[j].end - tr[t].end) <= 1.0 &&
			    (near < 0 || fabs(dh[j].end - tr[t].end) < fabs(dh[near].end - tr[t].end)))
				near = (int)j;
		const char *base = strrchr(tr[t].clip, '/');
		if (near < 0) {
			miss_none++;
			printf("  missed: %-6s ending at %8.3f s (%s): no detection within 1 s\n",
			       keywords[tr[t].kw], tr[t].end, base ? base + 1 : tr[t].clip);
		} else {
			int same_kw = !strcmp(dh[near].kw, keywords[tr[t].kw]);
			miss_time += same_kw;
			miss_other += !same_kw;
			printf("  missed: %-6s ending at %8.3f s (%s): nearest detection %s, end %+.0f ms\n",
			       keywords[tr[t].kw], tr[t].end, base ? base + 1 : tr[t].clip, dh[near].kw,
			       1000 * (dh[near].end - tr[t].end));
		}
	}
	int nfalse = 0;
	for (size_t j = 0; j < nh; j++) {
		if (used[j])
			continue;
		nfalse++;
		const char *what = "noise";
		for (int t = 0; t < nt; t++)
			if (dh[j].end >= tr[t].start - 0.3 && dh[j].end <= tr[t].end + 1.0) {
				what = tr[t].kw < 0 ? "non-keyword speech" : keywords[tr[t].kw];
				on_filler += tr[t].kw < 0;
				break;
			}
		printf("  false: %-6s at %8.3f s (end %8.3f, score %.3f) near %s\n", dh[j].kw, dh[j].offset, dh[j].end,
		       dh[j].score, what);
	}
	qsort(delays, (size_t)matched, sizeof *delays, cmp_double);
	qsort(errs, (size_t)matched, sizeof *errs, cmp_double);
	double mean_d = 0, mean_e = 0;
	for (int i = 0; i < matched; i++) {
		mean_d += delays[i];
		mean_e += errs[i];
	}
	double stream_min = json_number_value(json_object_get(status, "audio_s")) / 60;
	double recall = nk ? (double)matched / nk : 0;
	printf("keywords: %d, found %d: recall %.1f %%\n", nk, matched, 100 * recall);
	printf("missed: %d with no detection within 1 s, %d with another keyword detected, %d with the "
	       "same keyword outside the tolerance\n", miss_none, miss_other, miss_time);
	printf("false detections: %d (%d on non-keyword speech) in %.1f min\n", nfalse, on_filler, stream_min);
	if (matched) {
		printf("decision delay after the true end: mean %.0f ms, median %.0f ms, 90th percentile %.0f ms\n",
		       1000 * mean_d / matched, 1000 * delays[matched / 2], 1000 * delays[(int)(0.9 * (matched - 1))]);
		printf("reported end - true end: mean %+.0f ms, median %+.0f ms\n", 1000 * mean_e / matched,
		       1000 * errs[matched / 2]);
	}
	printf("real-time factor: %.4f (inference thread CPU %.1f s for %.1f s of audio)\n",
	       json_number_value(json_object_get(status, "real_time_factor")),
	       json_number_value(json_object_get(status, "inference_cpu_s")),
	       json_number_value(json_object_get(status, "audio_s")));
	json_decref(status);
	int ok = same && recall >= min_recall && (max_false < 0 || nfalse <= max_false * stream_min / 10.0);
	printf("%s (need recall >= %.0f %%, false <= %.1f per 10 min)\n", ok ? "PASS" : "FAIL", 100 * min_recall,
	       max_false);
	if (!keep && ok) {
		char p[700];
		static const char *const files[] = {"stream.wav", "truth.csv", "port", "listen.log"};
		for (size_t i = 0; i < 4; i++) {
			snprintf(p, sizeof p, "%s/%s", dir, files[i]);
			unlink(p);
		}
		rmdir(dir);
	}
	return ok ? 0 : 1;
usage:
	fprintf(stderr, "usage: e2e_accuracy --s4kws BIN --data SPEECH_COMMANDS_DIR [--model FILE] [--minutes M] "
			"[--seed N]\n       [--min-recall R] [--max-false F] [--tolerance-ms T] [--keep DIR] "
			"[--build-only]\n       [--agree [--agree-ms MS]] [--input FILE] [--word WORD] [-- LISTEN_ARGS]\n");
	return 2;
}
