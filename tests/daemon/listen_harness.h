/* listen_harness.h - what the black-box tests of `s4kws listen` share (test_listen.c,
 * test_listen_api.c, test_listen_wyoming.c): the temporary folder and its test audio, starting and
 * stopping the real binary with --port 0 --port-file, JSON over the plain-socket client of
 * client.h, and the reference, `s4kws classify --mode stream` over the same file.
 *
 * The audio is generated here (a chirp with tremolo, then amplitude-modulated noise:
 * deterministic, no data files), and the model is a small random test model, so which keywords
 * fire is arbitrary; what the tests check is that every path reports exactly the detections
 * that the reference (the same steppers and post-processing over the same samples) finds.
 * listen_setup() writes the audio and computes the reference (ref_mono); listen_cleanup()
 * removes the folder unless a check failed. One translation unit per test program, so the
 * state below is static and the functions static inline.
 */
#ifndef S4KWS_TESTS_DAEMON_LISTEN_HARNESS_H
#define S4KWS_TESTS_DAEMON_LISTEN_HARNESS_H

#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sndfile.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "tests/check.h"
#include "client.h"

static const char *bin, *model;
static char dir[] = "/tmp/s4kws-test-listen-XXXXXX";

/* detection settings giving a detection every 1.4 s of the test signal with the random test model,
 * whose "yes" posterior swings between about 0.35 and 0.38 with it */
#define DET "--threshold", "1", "--threshold", "yes=0.365", "--refractory-ms", "300", "--warmup-ms", "200"
static const char *const det_args[] = {DET, NULL};

static inline char *path(const char *name)
{
	static char buf[8][600];
	static int i;
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
	return buf[i];
}

/* ---- test audio ---- */

static inline uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s;
}

/* n samples at rate: 0.7 s chirps (300 -> 2500 Hz) alternating with 0.7 s of quiet noise, so
 * that even a random model's posteriors rise and fall every 1.4 s */
static inline float *make_signal(size_t n, int rate)
{
	float *x = malloc(n * sizeof *x);
	uint32_t s = 7;
	double ph = 0;
	for (size_t i = 0; i < n; i++) {
		double t = (double)i / rate, seg = fmod(t, 1.4);
		double v;
		if (seg < 0.7) {
			ph += 2 * M_PI * (300 + 2200 * seg / 0.7) / rate;
			v = 0.6 * sin(ph);
		} else {
			v = 0.1 * ((double)(lcg(&s) >> 8) / 16777216.0 - 0.5);
		}
		x[i] = (float)(round(v * 32767) / 32768); /* exactly representable in 16 bits */
	}
	return x;
}

static inline void write_wav(const char *p, const float *x, size_t frames, int ch, int rate)
{
	SF_INFO si = {.samplerate = rate, .channels = ch, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *f = sf_open(p, SFM_WRITE, &si);
	sf_write_float(f, x, (sf_count_t)(frames * (size_t)ch));
	sf_close(f);
}

static inline void write_raw(const char *p, const float *x, size_t n, size_t pad)
{
	FILE *f = fopen(p, "wb");
	for (size_t i = 0; i < n + pad; i++) {
		int16_t v = i < n ? (int16_t)lrintf(x[i] * 32768) : 0;
		fwrite(&v, 2, 1, f);
	}
	fclose(f);
}

/* ---- running the daemon ---- */

struct proc {
	pid_t pid;
	int port;
	char err[600];
};

/* Start `s4kws listen --model M --port 0 --port-file P ARGS...` (args NULL-terminated, several
 * lists). stdin from in_path if set. Returns 0 when the port file appeared. */
static inline int start(struct proc *p, const char *in_path, const char *const *a1, const char *const *a2)
{
	static int n;
	char pf[600];
	snprintf(pf, sizeof pf, "%s/port%d", dir, ++n);
	snprintf(p->err, sizeof p->err, "%s/stderr%d.txt", dir, n);
	const char *argv[80];
	int k = 0;
	argv[k++] = bin;
	argv[k++] = "listen";
	argv[k++] = "--model";
	argv[k++] = model;
	argv[k++] = "--port";
	argv[k++] = "0";
	argv[k++] = "--port-file";
	argv[k++] = pf;
	for (int i = 0; a1 && a1[i] && k < 78; i++)
		argv[k++] = a1[i];
	for (int i = 0; a2 && a2[i] && k < 78; i++)
		argv[k++] = a2[i];
	argv[k] = NULL;
	p->pid = fork();
	if (p->pid == 0) {
		int e = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(e, 2);
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
		dup2(in, 0);
		execv(bin, (char **)argv);
		_exit(127);
	}
	p->port = 0;
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(pf, "r");
		if (f) {
			int ok = fscanf(f, "%d", &p->port) == 1;
			fclose(f);
			if (ok)
				return 0;
		}
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

/* Send sig and wait (5 s); returns the exit status, or -1. */
static inline int stop(struct proc *p, int sig)
{
	if (p->pid <= 0)
		return -1;
	kill(p->pid, sig);
	for (int i = 0; i < 100; i++) {
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(50000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	p->pid = 0;
	return -1;
}

static inline int file_has(const char *p, const char *needle)
{
	FILE *f = fopen(p, "r");
	if (!f)
		return 0;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return strstr(buf, needle) != NULL;
}

static inline json_t *get_json(int port, const char *url, const char *extra, int *status)
{
	struct resp r;
	http_req(port, "GET", url, extra, NULL, 0, &r);
	json_error_t je;
	json_t *o = json_loads(r.body, 0, &je);
	if (status)
		*status = r.status;
	free(r.body);
	return o;
}

/* GET /metrics answers 200 and has the sample line "NAME VALUE\n" (and a second one if given). */
static inline int metrics_have(int port, const char *name, unsigned long long v, const char *name2,
			unsigned long long v2)
{
	struct resp r;
	http_req(port, "GET", "/metrics", NULL, NULL, 0, &r);
	char a[160], b[160];
	snprintf(a, sizeof a, "\n%s %llu\n", name, v);
	snprintf(b, sizeof b, "\n%s %llu\n", name2 ? name2 : "", v2);
	int ok = r.status == 200 && r.body && strstr(r.body, a) && (!name2 || strstr(r.body, b));
	free(r.body);
	return ok;
}

static inline const char *jstr(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);
	if (path2)
		v = json_object_get(v, path2);
	const char *r = json_string_value(v);
	return r ? r : "(missing)"; /* a daemon that did not answer fails the checks, not the test */
}

static inline double jnum(json_t *o, const char *k1, const char *k2)
{
	json_t *v = json_object_get(o, k1);
	if (k2)
		v = json_object_get(v, k2);
	return json_number_value(v);
}

/* Poll /v1/status until the input state is `want` (30 s: sanitizer builds on a busy machine are
 * slow). Returns the status (caller frees). */
static inline json_t *wait_state(int port, const char *want, const char *extra)
{
	json_t *o = NULL;
	for (int i = 0; i < 600; i++) {
		json_decref(o);
		o = get_json(port, "/v1/status", extra, NULL);
		const char *s = jstr(o, "input", "state");
		if (s && !strcmp(s, want))
			return o;
		usleep(50000);
	}
	return o;
}

/* ---- the reference: s4kws classify --mode stream over the same file ---- */

struct dets {
	size_t n;
	char kw[256][48];
	int ch[256];
	double score[256], start[256], end[256], offset[256], verify[256]; /* verify: 0 when absent */
	long long id[256];
};

/* Append detection e (a JSON object of classify's or the daemon's) on channel ch; at most 256
 * (id: 0 where e has none, as in classify's output). */
static inline void add_det(struct dets *d, json_t *e, int ch)
{
	if (d->n >= 256)
		return;
	snprintf(d->kw[d->n], 48, "%s", json_string_value(json_object_get(e, "keyword")));
	d->ch[d->n] = ch;
	d->score[d->n] = json_number_value(json_object_get(e, "score"));
	d->start[d->n] = json_number_value(json_object_get(e, "start"));
	d->end[d->n] = json_number_value(json_object_get(e, "end"));
	d->offset[d->n] = json_number_value(json_object_get(e, "offset"));
	d->verify[d->n] = json_number_value(json_object_get(e, "verify"));
	d->id[d->n] = json_integer_value(json_object_get(e, "id"));
	d->n++;
}

static inline void reference_with(const char *wav, const char *const *extra, struct dets *d)
{
	char cmd[2048];
	int k = snprintf(cmd, sizeof cmd, "'%s' classify --model '%s' --mode stream --format json --channels each", bin,
			 model);
	for (int i = 0; det_args[i]; i++)
		k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s'", det_args[i]);
	for (int i = 0; extra && extra[i]; i++)
		k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s'", extra[i]);
	snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s' 2>/dev/null", wav);
	FILE *f = popen(cmd, "r");
	memset(d, 0, sizeof *d);
	char line[1 << 16];
	while (f && fgets(line, sizeof line, f)) {
		json_error_t je;
		json_t *o = json_loads(line, 0, &je);
		json_t *arr = json_object_get(o, "detections");
		int ch = json_is_integer(json_object_get(o, "channel")) ? (int)json_integer_value(json_object_get(o, "channel")) : 0;
		for (size_t i = 0; i < json_array_size(arr); i++)
			add_det(d, json_array_get(arr, i), ch);
		json_decref(o);
	}
	if (f)
		pclose(f);
}

static inline void reference(const char *wav, struct dets *d)
{
	reference_with(wav, NULL, d);
}

static inline void from_array(json_t *arr, struct dets *d)
{
	memset(d, 0, sizeof *d);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *e = json_array_get(arr, i);
		add_det(d, e, (int)json_integer_value(json_object_get(e, "channel")));
	}
}

/* Every detection the daemon holds (GET /v1/detections, up to 1000) into d. */
static inline void fetch_dets(int port, struct dets *d)
{
	json_t *o = get_json(port, "/v1/detections?limit=1000", NULL, NULL);
	from_array(json_object_get(o, "detections"), d);
	json_decref(o);
}

/* Same detections as the reference, in some order by (channel, start)? Both are in decision
 * order per channel; the daemon interleaves channels, so compare as multisets. */
static inline int same_dets(const struct dets *ref, const struct dets *got, int channel_override, const char *what)
{
	int ok = ref->n == got->n;
	if (!ok)
		printf("%s: %zu detections, reference %zu\n", what, got->n, ref->n);
	for (size_t i = 0; ok && i < ref->n; i++) {
		int found = 0;
		for (size_t j = 0; j < got->n && !found; j++)
			found = !strcmp(ref->kw[i], got->kw[j]) &&
				(channel_override >= 0 ? got->ch[j] == channel_override : got->ch[j] == ref->ch[i]) &&
				fabs(ref->start[i] - got->start[j]) < 1e-6 && fabs(ref->end[i] - got->end[j]) < 1e-6 &&
				fabs(ref->score[i] - got->score[j]) < 1e-4;
		if (!found) {
			printf("%s: reference detection %zu (%s ch %d end %.4f score %.4f) missing\n", what, i, ref->kw[i],
			       ref->ch[i], ref->end[i], ref->score[i]);
			ok = 0;
		}
	}
	return ok;
}


/* the reference detections of mono.wav, from listen_setup() */
static struct dets ref_mono;

/* argv: S4KWS_BINARY MODEL. Writes 6 s of mono audio at 16 kHz (+ raw, padded raw, stereo,
 * 48 kHz) and a 1 s clip into a new temporary folder, and computes ref_mono. Returns 0, or 2
 * after a usage line. */
static inline int listen_setup(int argc, char **argv, const char *prog)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s S4KWS MODEL\n", prog);
		return 2;
	}
	bin = argv[1];
	model = argv[2];
	if (!mkdtemp(dir))
		return 2;
	size_t n = 96000;
	float *x = make_signal(n, 16000);
	write_wav(path("mono.wav"), x, n, 1, 16000);
	write_raw(path("mono.raw"), x, n, 0);
	write_raw(path("mono_padded.raw"), x, n, 32000);
	write_wav(path("clip.wav"), x + 16000, 16000, 1, 16000);
	float *st = calloc(2 * n, sizeof *st);
	for (size_t i = 0; i < n; i++)
		st[2 * i + 1] = x[i];
	write_wav(path("stereo.wav"), st, n, 2, 16000);
	for (size_t i = 0; i < n; i++)
		st[2 * i] = x[i];
	write_wav(path("both.wav"), st, n, 2, 16000);
	free(st);
	float *x48 = make_signal(3 * n, 48000);
	write_wav(path("mono48k.wav"), x48, 3 * n, 1, 48000);
	free(x48);
	free(x);
	reference(path("mono.wav"), &ref_mono);
	CHECK(ref_mono.n >= 3, "the reference finds %zu detections (need a few for a meaningful test)", ref_mono.n);
	return 0;
}

/* Remove the test files (the daemons' logs stay when a check failed); returns CHECK_DONE(). */
static inline int listen_cleanup(void)
{
	static const char *const files[] = {"mono.wav", "mono.raw", "mono_padded.raw", "clip.wav", "stereo.wav",
					    "mono48k.wav", "det.jsonl", "asound.conf", "s4kws.conf", "odd.raw", "both.wav"};
	for (size_t i = 0; i < sizeof files / sizeof files[0] && !check_failed; i++)
		unlink(path(files[i]));
	for (int i = 1; i < 40; i++) {
		char b[64];
		snprintf(b, sizeof b, "port%d", i);
		unlink(path(b));
		snprintf(b, sizeof b, "stderr%d.txt", i);
		if (!check_failed)
			unlink(path(b));
	}
	if (!check_failed)
		rmdir(dir);
	else
		printf("daemon logs kept in %s\n", dir);
	return CHECK_DONE();
}

#endif
