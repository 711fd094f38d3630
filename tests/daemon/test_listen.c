/* test_listen.c - black-box tests of `s4kws listen` over real sockets.
 *
 * usage: test_listen S4KWS_BINARY MODEL
 *
 * Each case starts the real binary on 127.0.0.1 with --port 0 --port-file, talks to it with the
 * plain-socket client of client.h and stops it with a signal. The audio is generated here (a
 * chirp with tremolo, then amplitude-modulated noise: deterministic, no data files), and the
 * model is a small random test model, so which keywords fire is arbitrary; what is checked is
 * that every path reports exactly the detections that `s4kws classify --mode stream` (the same
 * steppers and post-processing over the same samples) finds in the same audio:
 *   - --input FILE: /v1/detections, SSE from the start, SSE resumed with Last-Event-ID, the
 *     JSON-lines log, /v1/status (eof, audio seconds, rate) and /metrics agree;
 *   - --input - (raw S16_LE on stdin), a 2-channel file (keyword audio on channel 1 only),
 *     and the real PortAudio path on an ALSA `type file` PCM (--device, --duration) give the
 *     same detections; a 48 kHz file is resampled;
 *   - the log survives a restart (ids continue); --realtime paces the input;
 *   - a missing device is reported in status with retries while HTTP keeps serving;
 *   - a device that goes quiet mid-stream (the ALSA file PCM reading a FIFO whose writer, a
 *     thread here, pauses with the FIFO still open) is reported in status as an error after
 *     --device-stall, retried with back-off while HTTP keeps serving, and captures again once
 *     audio flows; SIGTERM while the capture is blocked in the driver still exits promptly;
 *   - non-loopback binds need --token; POST /v1/classify matches `s4kws classify` for a clip
 *     and refuses damaged or foreign data; SIGHUP keeps the old settings when the new file is
 *     invalid and applies a valid one; --help and bad flags.
 */
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

static char *path(const char *name)
{
	static char buf[8][600];
	static int i;
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
	return buf[i];
}

/* ---- test audio ---- */

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s;
}

/* n samples at rate: 0.7 s chirps (300 -> 2500 Hz) alternating with 0.7 s of quiet noise, so
 * that even a random model's posteriors rise and fall every 1.4 s */
static float *make_signal(size_t n, int rate)
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

static void write_wav(const char *p, const float *x, size_t frames, int ch, int rate)
{
	SF_INFO si = {.samplerate = rate, .channels = ch, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *f = sf_open(p, SFM_WRITE, &si);
	sf_write_float(f, x, (sf_count_t)(frames * (size_t)ch));
	sf_close(f);
}

static void write_raw(const char *p, const float *x, size_t n, size_t pad)
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
static int start(struct proc *p, const char *in_path, const char *const *a1, const char *const *a2)
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
static int stop(struct proc *p, int sig)
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

static int file_has(const char *p, const char *needle)
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

static json_t *get_json(int port, const char *url, const char *extra, int *status)
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
static int metrics_have(int port, const char *name, unsigned long long v, const char *name2,
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

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);
	if (path2)
		v = json_object_get(v, path2);
	const char *r = json_string_value(v);
	return r ? r : "(missing)"; /* a daemon that did not answer fails the checks, not the test */
}

static double jnum(json_t *o, const char *k1, const char *k2)
{
	json_t *v = json_object_get(o, k1);
	if (k2)
		v = json_object_get(v, k2);
	return json_number_value(v);
}

/* Poll /v1/status until the input state is `want` (30 s: sanitizer builds on a busy machine are
 * slow). Returns the status (caller frees). */
static json_t *wait_state(int port, const char *want, const char *extra)
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

static void reference_with(const char *wav, const char *const *extra, struct dets *d)
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
		for (size_t i = 0; i < json_array_size(arr) && d->n < 256; i++) {
			json_t *e = json_array_get(arr, i);
			snprintf(d->kw[d->n], 48, "%s", json_string_value(json_object_get(e, "keyword")));
			d->ch[d->n] = ch;
			d->score[d->n] = json_number_value(json_object_get(e, "score"));
			d->start[d->n] = json_number_value(json_object_get(e, "start"));
			d->end[d->n] = json_number_value(json_object_get(e, "end"));
			d->offset[d->n] = json_number_value(json_object_get(e, "offset"));
			d->verify[d->n] = json_number_value(json_object_get(e, "verify"));
			d->n++;
		}
		json_decref(o);
	}
	if (f)
		pclose(f);
}

static void reference(const char *wav, struct dets *d)
{
	reference_with(wav, NULL, d);
}

static void from_array(json_t *arr, struct dets *d)
{
	memset(d, 0, sizeof *d);
	for (size_t i = 0; i < json_array_size(arr) && d->n < 256; i++) {
		json_t *e = json_array_get(arr, i);
		snprintf(d->kw[d->n], 48, "%s", json_string_value(json_object_get(e, "keyword")));
		d->ch[d->n] = (int)json_integer_value(json_object_get(e, "channel"));
		d->score[d->n] = json_number_value(json_object_get(e, "score"));
		d->start[d->n] = json_number_value(json_object_get(e, "start"));
		d->end[d->n] = json_number_value(json_object_get(e, "end"));
		d->offset[d->n] = json_number_value(json_object_get(e, "offset"));
		d->verify[d->n] = json_number_value(json_object_get(e, "verify"));
		d->id[d->n] = json_integer_value(json_object_get(e, "id"));
		d->n++;
	}
}

/* Every detection the daemon holds (GET /v1/detections, up to 1000) into d. */
static void fetch_dets(int port, struct dets *d)
{
	json_t *o = get_json(port, "/v1/detections?limit=1000", NULL, NULL);
	from_array(json_object_get(o, "detections"), d);
	json_decref(o);
}

/* Same detections as the reference, in some order by (channel, start)? Both are in decision
 * order per channel; the daemon interleaves channels, so compare as multisets. */
static int same_dets(const struct dets *ref, const struct dets *got, int channel_override, const char *what)
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

/* ---- cases ---- */

static struct dets ref_mono;
static size_t n_mono;

static void test_file_input(void)
{
	const char *wav = path("mono.wav");
	struct proc p;
	const char *args[] = {"--input", wav, "--log", path("det.jsonl"), "--heartbeat", "0.2", "--realtime", NULL};
	/* realtime: 6 s of audio must take >= ~6 s; a live SSE stream from id 0 sees them all */
	int64_t t0 = client_ms();
	CHECK(start(&p, NULL, args, det_args) == 0, "start: see %s", p.err);
	int fd = sse_open(p.port, "/v1/events?since=0", NULL);
	json_t *st = wait_state(p.port, "eof", NULL);
	int64_t dt = client_ms() - t0;
	CHECK(st && !strcmp(jstr(st, "input", "state"), "eof"), "eof reached");
	CHECK(dt >= 5500, "--realtime paced 6 s of audio: %lld ms", (long long)dt);
	CHECK_NEAR(json_number_value(json_object_get(st, "audio_s")), 6.0, 0.011);
	CHECK(json_integer_value(json_object_get(st, "channels")) == 1 &&
		      json_integer_value(json_object_get(json_object_get(st, "input"), "rate")) == 16000 &&
		      !strcmp(jstr(st, "input", "kind"), "file") && json_integer_value(json_object_get(st, "overruns")) == 0 &&
		      json_integer_value(json_object_get(st, "dropped_samples")) == 0 &&
		      json_is_number(json_object_get(st, "real_time_factor")) &&
		      json_array_size(json_object_get(json_object_get(st, "model"), "labels")) == 12,
	      "status fields");
	json_decref(st);

	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	struct dets got;
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref_mono, &got, -1, "file input"), "file input = classify --mode stream");
	n_mono = got.n;
	CHECK(json_integer_value(json_object_get(o, "last_id")) == (json_int_t)got.n, "last_id");
	int aligned = 1;
	for (size_t i = 0; i < got.n; i++) {
		double s = got.offset[i] * 16000;
		aligned &= fabs(s - round(s / 160) * 160) < 1e-3 && got.offset[i] >= got.end[i] && got.id[i] == (long long)i + 1;
	}
	CHECK(aligned, "offsets are whole hops of samples, after the end estimate; ids 1..n");
	json_decref(o);

	/* the SSE stream opened at the start saw every detection, in order */
	char acc[1 << 16] = "";
	size_t len = 0;
	char last[32];
	snprintf(last, sizeof last, "id: %zu\n", got.n);
	CHECK(sse_read_until(fd, acc, sizeof acc, &len, last, 3000), "SSE got all %zu: %s", got.n, acc);
	int in_order = 1;
	const char *q = acc;
	for (size_t i = 1; i <= got.n; i++) {
		char idl[96];
		snprintf(idl, sizeof idl, "id: %zu\nevent: detection\ndata: {\"id\":%zu,", i % 100000, i % 100000);
		const char *f = strstr(q, idl);
		in_order &= f != NULL;
		if (f)
			q = f;
	}
	CHECK(in_order, "SSE ids in order with data");
	CHECK(sse_read_until(fd, acc, sizeof acc, &len, ": heartbeat", 2000), "heartbeat");
	/* resume with Last-Event-ID: 2 */
	char acc2[1 << 16] = "";
	size_t len2 = 0;
	int fd2 = sse_open(p.port, "/v1/events", "Last-Event-ID: 2\r\n");
	CHECK(sse_read_until(fd2, acc2, sizeof acc2, &len2, last, 3000) && !strstr(acc2, "id: 2\n") &&
		      strstr(acc2, "id: 3\n"),
	      "resume after 2: %s", acc2);
	/* /metrics agrees */
	struct resp r;
	http_req(p.port, "GET", "/metrics", NULL, NULL, 0, &r);
	CHECK(strstr(r.body, "s4kws_audio_seconds_total 6.0") && strstr(r.body, "s4kws_step_seconds_count 600\n") &&
		      strstr(r.body, "s4kws_detections_total{keyword=") && strstr(r.body, "s4kws_input_up 0\n"),
	      "metrics: %s", r.body);
	free(r.body);
	/* /v1/scores: the last hop's smoothed posteriors, a distribution over the 12 labels */
	json_t *sc = get_json(p.port, "/v1/scores", NULL, NULL);
	json_t *c0 = json_array_get(json_object_get(sc, "channels"), 0);
	json_t *scores = json_object_get(c0, "scores");
	double sum = 0, best = -1;
	const char *bk = "", *key;
	json_t *val;
	json_object_foreach(scores, key, val) {
		double v = json_number_value(val);
		sum += v;
		if (v > best) {
			best = v;
			bk = key;
		}
	}
	CHECK(json_array_size(json_object_get(sc, "channels")) == 1 && json_object_size(scores) == 12 &&
		      fabs(sum - 1) < 1e-3 && json_integer_value(json_object_get(sc, "hops")) == 600 &&
		      !strcmp(jstr(c0, "top", "label"), bk),
	      "scores: 12 labels summing to %g, top %s, hops %lld", sum, bk,
	      (long long)json_integer_value(json_object_get(sc, "hops")));
	json_decref(sc);
	/* SIGTERM with two SSE clients connected: prompt, clean exit */
	int64_t t1 = client_ms();
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(client_ms() - t1 < 3000, "shutdown took %lld ms", (long long)(client_ms() - t1));
	close(fd);
	close(fd2);
	/* the terminal at the default log level: a line per detection and a summary at the end */
	char want[256];
	snprintf(want, sizeof want, "info: detection %zu: %s on channel 0, score ", got.n, got.kw[got.n - 1]);
	CHECK(got.n > 0 && file_has(p.err, want), "stderr has '%s'", want);
	snprintf(want, sizeof want, "mono.wav done: 6.0 s of audio in ");
	CHECK(file_has(p.err, want), "stderr has '%s'", want);
	snprintf(want, sizeof want, "real time); %zu detection%s: ", got.n, got.n == 1 ? "" : "s");
	CHECK(file_has(p.err, want), "stderr has '%s'", want);

	/* the log: whole lines, one per detection; a restart continues the ids */
	FILE *f = fopen(path("det.jsonl"), "r");
	char line[4096];
	size_t lines = 0;
	int whole = 1;
	while (f && fgets(line, sizeof line, f)) {
		lines++;
		whole &= line[strlen(line) - 1] == '\n' && line[0] == '{';
	}
	if (f)
		fclose(f);
	CHECK(lines == got.n && whole, "log has %zu whole lines for %zu detections", lines, got.n);
	const char *args2[] = {"--input", wav, "--log", path("det.jsonl"), NULL};
	CHECK(start(&p, NULL, args2, det_args) == 0, "restart");
	json_decref(wait_state(p.port, "eof", NULL));
	o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	json_t *arr = json_object_get(o, "detections");
	CHECK(json_array_size(arr) == 2 * got.n &&
		      json_integer_value(json_object_get(json_array_get(arr, (size_t)got.n), "id")) == (json_int_t)got.n + 1,
	      "history reloaded from the log and ids continue: %zu", json_array_size(arr));
	json_decref(o);
	CHECK(file_has(p.err, "continuing after detection"), "restart message");
	CHECK_EQ(stop(&p, SIGINT), 0);
}

/* A float file with a NaN and a 3e38 in it: the detections of the same file with zeros there,
 * and one warning line that says how many samples were replaced */
static void test_nonfinite_input(void)
{
	size_t n = 6 * 16000;
	float *x = make_signal(n, 16000);
	SF_INFO si = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
	x[16000] = 0.0f;
	x[40000] = 0.0f;
	SNDFILE *f = sf_open(path("zeroed.wav"), SFM_WRITE, &si);
	sf_write_float(f, x, (sf_count_t)n);
	sf_close(f);
	x[16000] = NAN;
	x[40000] = 3e38f;
	f = sf_open(path("nan.wav"), SFM_WRITE, &si);
	sf_write_float(f, x, (sf_count_t)n);
	sf_close(f);
	free(x);
	struct dets want, got;
	const char *nan_wav = path("nan.wav"), *zero_wav = path("zeroed.wav");
	for (int k = 0; k < 2; k++) {
		struct proc p;
		const char *args[] = {"--input", k ? nan_wav : zero_wav, NULL};
		CHECK(start(&p, NULL, args, det_args) == 0, "start: see %s", p.err);
		json_decref(wait_state(p.port, "eof", NULL));
		fetch_dets(p.port, k ? &got : &want);
		CHECK_EQ(stop(&p, SIGTERM), 0);
		CHECK(k == 0 || file_has(p.err, "nan.wav: 2 samples not a finite number (or beyond +-64) replaced by zeros"),
		      "the warning in %s", p.err);
	}
	CHECK(want.n > 0 && same_dets(&want, &got, -1, "NaN input"), "NaN input = zeroed input (%zu, %zu)", want.n, got.n);
	unlink(nan_wav);
	unlink(zero_wav);
}

/* Type=notify: with NOTIFY_SOCKET (a datagram socket of the test's own, as systemd makes) the
 * daemon says READY=1, pings WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1 / READY=1 around
 * SIGHUP and STOPPING=1 on SIGTERM */
static void test_sd_notify(void)
{
	const char *sp = path("notify.sock");
	unlink(sp);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sp);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "notify socket");
	setenv("NOTIFY_SOCKET", sp, 1);
	setenv("WATCHDOG_USEC", "600000", 1);
	struct proc p;
	const char *args[] = {"--input", "none", NULL};
	int started = start(&p, NULL, args, det_args) == 0;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	CHECK(started, "start: see %s", p.err);
	char all[4096] = "";
	size_t len = 0;
	int64_t t0 = client_ms();
	int hup = 0, stopped = 0;
	while (client_ms() - t0 < 5000 && !strstr(all, "STOPPING=1")) {
		struct pollfd pw = {fd, POLLIN, 0};
		if (poll(&pw, 1, 100) == 1) {
			ssize_t n = recv(fd, all + len, sizeof all - 1 - len, 0);
			if (n > 0) {
				len += (size_t)n;
				all[len++] = '|';
				all[len] = 0;
			}
		}
		if (!hup && strstr(all, "WATCHDOG=1")) {
			kill(p.pid, SIGHUP);
			hup = 1;
		}
		if (!stopped && strstr(all, "RELOADING=1|READY=1")) {
			CHECK_EQ(stop(&p, SIGTERM), 0); /* the datagram stays queued for us */
			stopped = 1;
		}
	}
	CHECK(!strncmp(all, "READY=1\nSTATUS=listening on 127.0.0.1 port ", 43) && strstr(all, "WATCHDOG=1") &&
		      strstr(all, "RELOADING=1|READY=1") && strstr(all, "STOPPING=1"),
	      "notifications: %s", all);
	if (!stopped)
		stop(&p, SIGKILL);
	close(fd);
	unlink(sp);
}

static long rss_kb(pid_t pid)
{
	char p[64], line[256];
	snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
	FILE *f = fopen(p, "r");
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

/* Damaged Ogg uploads (libvorbis 1.3.7 leaks 5.8 KB on each when it decodes in the daemon):
 * every one a 4xx, and the daemon's memory flat (decoded in a child process, daemon/isolate.h) */
static void test_upload_leak(void)
{
	size_t n = 32000;
	float *x = make_signal(n, 16000);
	SF_INFO si = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_OGG | SF_FORMAT_VORBIS};
	SNDFILE *f = sf_open(path("ok.ogg"), SFM_WRITE, &si);
	sf_write_float(f, x, (sf_count_t)n);
	sf_close(f);
	free(x);
	static char body[1 << 16];
	FILE *of = fopen(path("ok.ogg"), "rb");
	size_t len = of ? fread(body, 1, sizeof body, of) : 0;
	if (of)
		fclose(of);
	for (size_t i = 200; i < 500 && i < len; i++) /* in the Vorbis setup header: refused at open */
		body[i] ^= 0x5a;
	unlink(path("ok.ogg"));
	struct proc p;
	const char *args[] = {"--input", "none", NULL};
	CHECK(start(&p, NULL, args, det_args) == 0, "start: see %s", p.err);
	long before = 0;
	int bad = 0;
	for (int i = 0; i < 420; i++) {
		if (i == 20) /* after the allocator has warmed up */
			before = rss_kb(p.pid);
		struct resp r;
		http_req(p.port, "POST", "/v1/classify", "Content-Type: audio/ogg\r\n", body, len, &r);
		if (i == 0)
			printf("damaged Ogg upload: %d %.120s\n", r.status, r.body);
		bad += r.status < 400 || r.status >= 500;
		free(r.body);
	}
	long after = rss_kb(p.pid);
	printf("400 damaged Ogg uploads: RSS %ld -> %ld KiB\n", before, after);
	CHECK(bad == 0, "%d answers were not 4xx", bad);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory resident: RSS means nothing there */
	CHECK(before > 0 && after - before < 1024, "RSS grew %ld KiB over 400 damaged uploads", after - before);
#endif
	CHECK_EQ(stop(&p, SIGTERM), 0);
}

/* SIGTERM while POST /v1/classify computes: the answer is still sent (the server drains its
 * in-flight requests before it stops), and the daemon exits cleanly */
static void test_drain(void)
{
#ifdef __SANITIZE_ADDRESS__ /* long enough that its scan is still running when SIGTERM comes;
			      * the instrumented steppers scan 60 s in 34 s (0.7 s in a normal
			      * build), so 15 s keeps the drain inside its bound */
	size_t n = 15 * 16000;
#else
	size_t n = 240 * 16000;
#endif
	float *x = make_signal(n, 16000);
	write_wav(path("long.wav"), x, n, 1, 16000);
	free(x);
	FILE *f = fopen(path("long.wav"), "rb");
	size_t len = 2 * n + 44;
	char *body = malloc(len);
	len = f ? fread(body, 1, len, f) : 0;
	if (f)
		fclose(f);
	struct proc p;
	const char *args[] = {"--input", "none", NULL};
	CHECK(start(&p, NULL, args, det_args) == 0, "start: see %s", p.err);
	int fd = client_connect(p.port);
	char head[256];
	snprintf(head, sizeof head, "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", len);
	send_all(fd, head, strlen(head));
	send_all(fd, body, len);
	usleep(300000); /* the upload is in; its scan (several seconds of audio a second) runs */
	int64_t t0 = client_ms();
	kill(p.pid, SIGTERM);
	char *raw;
	size_t got = read_all(fd, &raw, 20000);
	close(fd);
	struct resp r;
	parse_resp(raw, got, &r);
	CHECK(r.status == 200 && strstr(r.body, "\"detections\""), "answer after SIGTERM: %d %.100s", r.status, r.body);
	free(r.body);
	/* it stops by itself (a second SIGTERM would end it at once, by design) */
	int st = -1, done = 0;
	while (!done && client_ms() - t0 < 15000) {
		done = waitpid(p.pid, &st, WNOHANG) == p.pid;
		if (!done)
			usleep(20000);
	}
	CHECK(done && WIFEXITED(st) && WEXITSTATUS(st) == 0, "clean exit after the drain (status %d)", st);
	printf("SIGTERM during an upload: answered and stopped in %lld ms\n", (long long)(client_ms() - t0));
	CHECK(client_ms() - t0 < 12000, "drained and stopped in %lld ms", (long long)(client_ms() - t0));
	if (!done)
		stop(&p, SIGKILL);
	p.pid = 0;
	free(body);
	unlink(path("long.wav"));
}

static void test_stdin_and_channels(void)
{
	struct proc p;
	struct dets got;
	/* raw S16_LE on stdin */
	const char *a1[] = {"--input", "-", NULL};
	CHECK(start(&p, path("mono.raw"), a1, det_args) == 0, "start stdin");
	json_t *st = wait_state(p.port, "eof", NULL);
	CHECK(!strcmp(jstr(st, "input", "kind"), "stdin"), "kind stdin");
	json_decref(st);
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref_mono, &got, -1, "stdin"), "stdin = file");
	json_decref(o);
	CHECK(!file_has(p.err, "inside a frame"), "whole frames: no warning");
	stop(&p, SIGTERM);

	/* 3 bytes: one frame and a half; the half is reported, not silently dropped */
	FILE *f3 = fopen(path("odd.raw"), "wb");
	CHECK(f3 && fwrite("\x01\x00\x02", 1, 3, f3) == 3 && fclose(f3) == 0, "write odd.raw");
	CHECK(start(&p, path("odd.raw"), a1, det_args) == 0, "start stdin, 3 bytes");
	st = wait_state(p.port, "eof", NULL);
	CHECK(jnum(st, "input", "frames") == 1, "one frame read: %g", jnum(st, "input", "frames"));
	json_decref(st);
	CHECK(file_has(p.err, "stdin ended inside a frame: its last 1 byte"), "odd byte reported (%s)", p.err);
	stop(&p, SIGTERM);

	/* two channels: silence on 0, the signal on 1 */
	const char *a2[] = {"--input", path("stereo.wav"), NULL};
	CHECK(start(&p, NULL, a2, det_args) == 0, "start stereo");
	json_decref(wait_state(p.port, "eof", NULL));
	o = get_json(p.port, "/v1/detections?channel=1&limit=1000", NULL, NULL);
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref_mono, &got, 1, "stereo channel 1"), "channel 1 = mono");
	json_decref(o);
	struct dets ref2;
	reference(path("stereo.wav"), &ref2);
	o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref2, &got, -1, "stereo"), "both channels = classify --channels each");
	json_decref(o);
	stop(&p, SIGTERM);

	/* the same with every thread count: same detections, same id order */
	struct dets by_threads[3];
	const char *nthreads[3] = {"1", "2", "5"};
	for (int t = 0; t < 3; t++) {
		const char *a[] = {"--input", path("stereo.wav"), "--inference-threads", nthreads[t], NULL};
		CHECK(start(&p, NULL, a, det_args) == 0, "start stereo, %s threads", nthreads[t]);
		st = wait_state(p.port, "eof", NULL);
		CHECK(json_integer_value(json_object_get(st, "inference_threads")) == (t == 0 ? 1 : 2),
		      "status: inference_threads for --inference-threads %s", nthreads[t]);
		json_decref(st);
		o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
		from_array(json_object_get(o, "detections"), &by_threads[t]);
		json_decref(o);
		stop(&p, SIGTERM);
		int same = by_threads[t].n == ref2.n && by_threads[t].n == by_threads[0].n;
		for (size_t i = 0; same && i < by_threads[t].n; i++)
			same = !strcmp(by_threads[t].kw[i], by_threads[0].kw[i]) &&
			       by_threads[t].ch[i] == by_threads[0].ch[i] &&
			       by_threads[t].id[i] == by_threads[0].id[i] &&
			       by_threads[t].end[i] == by_threads[0].end[i];
		CHECK(same, "--inference-threads %s: the detections and their id order of one thread", nthreads[t]);
	}

	/* 48 kHz input is resampled to the model rate */
	const char *a3[] = {"--input", path("mono48k.wav"), NULL};
	CHECK(start(&p, NULL, a3, det_args) == 0, "start 48k");
	st = wait_state(p.port, "eof", NULL);
	CHECK(json_integer_value(json_object_get(json_object_get(st, "input"), "rate")) == 48000 &&
		      fabs(json_number_value(json_object_get(st, "audio_s")) - 6.0) < 0.011,
	      "48 kHz: audio_s %g", json_number_value(json_object_get(st, "audio_s")));
	CHECK(file_has(p.err, "resampled to 16000 Hz"), "resampling logged");
	json_decref(st);
	stop(&p, SIGTERM);
}

static void test_alsa_device(void)
{
	/* the real PortAudio path: an ALSA file PCM replaying the same samples, stopped by --duration */
	const char *conf = path("asound.conf");
	FILE *f = fopen(conf, "w");
	fprintf(f, "pcm.kwsfile {\n type file\n slave.pcm { type null }\n file \"/dev/null\"\n"
		   " infile \"%s\"\n format \"raw\"\n}\npcm.!default \"kwsfile\"\n",
		path("mono_padded.raw"));
	fclose(f);
	setenv("ALSA_CONFIG_PATH", conf, 1);
	struct proc p;
	const char *a[] = {"--device", "kwsfile", "--duration", "6", "--frames-per-buffer", "320", "--ring-ms", "10000", NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start device: see %s", p.err);
	json_t *st = wait_state(p.port, "eof", NULL);
	CHECK(st && !strcmp(jstr(st, "input", "state"), "eof") && !strcmp(jstr(st, "input", "name"), "kwsfile") &&
		      !strcmp(jstr(st, "input", "kind"), "device"),
	      "device at eof after --duration");
	CHECK_NEAR(json_number_value(json_object_get(st, "audio_s")), 6.0, 0.011);
	CHECK_EQ(json_integer_value(json_object_get(st, "overruns")), 0);
	json_decref(st);
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	struct dets got;
	from_array(json_object_get(o, "detections"), &got);
	CHECK(same_dets(&ref_mono, &got, -1, "ALSA device"), "device capture = file (bit-exact capture)");
	json_decref(o);
	CHECK_EQ(stop(&p, SIGTERM), 0);

	/* `s4kws devices` lists it */
	char cmd[700];
	snprintf(cmd, sizeof cmd, "'%s' devices 2>/dev/null", bin);
	FILE *pf = popen(cmd, "r");
	char buf[8192] = "";
	size_t n = fread(buf, 1, sizeof buf - 1, pf);
	buf[n] = 0;
	CHECK(pclose(pf) == 0 && strstr(buf, "kwsfile") && strstr(buf, "16000"), "devices: %s", buf);

	/* a device that does not exist: HTTP serves, status says error, retries go on */
	const char *b[] = {"--device", "no-such-mic", "--retry-max", "0.3", NULL};
	CHECK(start(&p, NULL, b, NULL) == 0, "start with a missing device");
	usleep(1500000);
	int code;
	st = get_json(p.port, "/v1/status", NULL, &code);
	const char *e = jstr(st, "input", "error");
	CHECK(code == 200 && !strcmp(jstr(st, "input", "state"), "error") && e && strstr(e, "no-such-mic") &&
		      json_integer_value(json_object_get(json_object_get(st, "input"), "retries")) >= 2,
	      "missing device reported with retries");
	json_decref(st);
	struct resp r;
	http_req(p.port, "GET", "/healthz", NULL, NULL, 0, &r);
	CHECK_EQ(r.status, 200);
	free(r.body);
	CHECK(file_has(p.err, "retrying in"), "logged");
	CHECK_EQ(stop(&p, SIGTERM), 0);
	unsetenv("ALSA_CONFIG_PATH");
}

/* ---- a microphone that goes quiet: an ALSA file PCM reading a FIFO ---- */

struct feeder {
	int fd;                    /* the FIFO, O_RDWR | O_NONBLOCK */
	const int16_t *x;          /* audio to loop over */
	size_t n;
	_Atomic int on, stop;
	pthread_t t;
};

/* Write one 320-frame period (640 bytes: one atomic pipe write) every 20 ms while `on`: a
 * device delivering audio at about real time. Paused, it writes nothing but keeps the FIFO
 * open, so the capture blocks in read() as on a device that went quiet. */
static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	size_t pos = 0;
	while (!atomic_load(&f->stop)) {
		if (atomic_load(&f->on)) {
			if (pos + 320 > f->n)
				pos = 0;
			if (write(f->fd, f->x + pos, 640) == 640)
				pos += 320;
		}
		usleep(20000);
	}
	return NULL;
}

/* Poll /v1/status until audio_s >= want (timeout_s); returns the last audio_s. */
static double wait_audio(int port, double want, double timeout_s)
{
	double a = -1;
	int64_t t0 = client_ms();
	while (client_ms() - t0 < (int64_t)(timeout_s * 1000)) {
		json_t *o = get_json(port, "/v1/status", NULL, NULL);
		a = jnum(o, "audio_s", NULL);
		json_decref(o);
		if (a >= want)
			break;
		usleep(50000);
	}
	return a;
}

static void test_device_stall(void)
{
	char fifo[600];
	snprintf(fifo, sizeof fifo, "%s", path("mic.fifo"));
	CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
	/* O_RDWR: a writer always exists, so opening the PCM (PortAudio probes it at every rescan)
	 * never blocks, and the capture never sees EOF (after which the plugin returns garbage) */
	struct feeder f = {.fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)};
	CHECK(f.fd >= 0, "open the FIFO");
	FILE *rf = fopen(path("mono.raw"), "rb");
	static int16_t audio[96000];
	f.n = rf ? fread(audio, 2, 96000, rf) : 0;
	f.x = audio;
	if (rf)
		fclose(rf);
	const char *conf = path("asound.conf");
	FILE *cf = fopen(conf, "w");
	fprintf(cf, "pcm.kwsfile {\n type file\n slave.pcm { type null }\n file \"/dev/null\"\n"
		    " infile \"%s\"\n format \"raw\"\n}\npcm.!default \"kwsfile\"\n", fifo);
	fclose(cf);
	setenv("ALSA_CONFIG_PATH", conf, 1);
	atomic_store(&f.on, 1);
	pthread_create(&f.t, NULL, feeder_main, &f);
	struct proc p;
	const char *a[] = {"--device", "kwsfile", "--device-stall", "1", "--retry-max", "0.5", NULL};
	CHECK(start(&p, NULL, a, NULL) == 0, "start on the FIFO device: see %s", p.err);

	/* 1. live */
	json_t *st = wait_state(p.port, "running", NULL);
	CHECK(st && !strcmp(jstr(st, "input", "state"), "running") && !strcmp(jstr(st, "input", "name"), "kwsfile"),
	      "running on the FIFO device");
	json_decref(st);
	double a1 = wait_audio(p.port, 1.0, 10);
	CHECK(a1 >= 1.0, "audio flows: %g s", a1);

	/* 2. quiet: error after --device-stall, retried, HTTP keeps serving */
	atomic_store(&f.on, 0);
	int64_t t0 = client_ms();
	st = wait_state(p.port, "error", NULL);
	int64_t dt = client_ms() - t0;
	const char *e = jstr(st, "input", "error");
	CHECK(st && !strcmp(jstr(st, "input", "state"), "error") && e && strstr(e, "no audio from 'kwsfile'"),
	      "stall reported: %s", e ? e : "(no error)");
	CHECK(dt >= 900 && dt < 6000, "stall reported after %lld ms (--device-stall 1)", (long long)dt);
	double a_quiet = jnum(st, "audio_s", NULL);
	json_decref(st);
	json_int_t retries = 0;
	int code = 0, all_error = 1;
	t0 = client_ms();
	while (retries < 3 && client_ms() - t0 < 10000) {
		st = get_json(p.port, "/v1/status", NULL, &code);
		retries = json_integer_value(json_object_get(json_object_get(st, "input"), "retries"));
		all_error &= code == 200 && !strcmp(jstr(st, "input", "state"), "error");
		json_decref(st);
		usleep(100000);
	}
	CHECK(retries >= 3 && all_error, "retried %lld times while quiet, status 200 and 'error' throughout",
	      (long long)retries);
	struct resp r;
	http_req(p.port, "GET", "/healthz", NULL, NULL, 0, &r);
	CHECK_EQ(r.status, 200);
	free(r.body);
	http_req(p.port, "GET", "/metrics", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && strstr(r.body, "s4kws_input_up 0\n") &&
		      !strstr(r.body, "s4kws_input_retries_total 0\n"),
	      "metrics while quiet: %s", r.body);
	free(r.body);
	st = get_json(p.port, "/v1/status", NULL, NULL);
	CHECK(jnum(st, "audio_s", NULL) < a_quiet + 0.1, "no audio while quiet: %g then %g", a_quiet,
	      jnum(st, "audio_s", NULL));
	json_decref(st);

	/* 3. back: reopened, running, audio counts on */
	atomic_store(&f.on, 1);
	st = wait_state(p.port, "running", NULL);
	CHECK(st && !strcmp(jstr(st, "input", "state"), "running") &&
		      json_is_null(json_object_get(json_object_get(st, "input"), "error")),
	      "running again, error cleared");
	json_decref(st);
	double a2 = wait_audio(p.port, a_quiet + 1.0, 10);
	CHECK(a2 >= a_quiet + 1.0, "audio flows again: %g s after %g s", a2, a_quiet);
	CHECK(file_has(p.err, "no audio from 'kwsfile'") && file_has(p.err, "retrying in") &&
		      file_has(p.err, "'kwsfile' delivers audio again"),
	      "stall, retries and recovery logged (%s)", p.err);

	/* 4. SIGTERM while the capture thread is blocked in the driver: prompt, clean exit */
	atomic_store(&f.on, 0);
	usleep(300000);
	t0 = client_ms();
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(client_ms() - t0 < 4000, "shutdown took %lld ms", (long long)(client_ms() - t0));

	atomic_store(&f.stop, 1);
	pthread_join(f.t, NULL);
	close(f.fd);
	unlink(fifo);
	unsetenv("ALSA_CONFIG_PATH");
}

/* POST FILE to URL (bearer token "abc") and compare the answer with `s4kws classify --format
 * json EXTRA FILE` less its "file" key; dets: a recording, whose first detection must carry an
 * offset. Returns the answer as sorted JSON text (caller frees) or NULL. */
static char *upload_matches(int port, const char *url, const char *file, const char *extra, int dets)
{
	static char body[1 << 20];
	FILE *cf = fopen(file, "rb");
	size_t blen = cf ? fread(body, 1, sizeof body, cf) : 0;
	if (cf)
		fclose(cf);
	struct resp r;
	http_req(port, "POST", url, "Authorization: Bearer abc\r\nContent-Type: audio/wav\r\n", body, blen, &r);
	json_error_t je;
	json_t *got = json_loads(r.body, 0, &je);
	char cmd[1600];
	snprintf(cmd, sizeof cmd, "'%s' classify --model '%s' --format json %s '%s' 2>/dev/null", bin, model, extra,
		 file);
	FILE *pf = popen(cmd, "r");
	static char line[1 << 14];
	if (!fgets(line, sizeof line, pf))
		line[0] = 0;
	pclose(pf);
	json_t *want = json_loads(line, 0, &je);
	json_object_del(want, "file");
	char *gs = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
	char *ws = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
	json_t *d0 = json_array_get(json_object_get(got, "detections"), 0);
	CHECK(r.status == 200 && gs && ws && !strcmp(gs, ws) && (!dets || json_is_number(json_object_get(d0, "offset"))),
	      "upload %s of %s (%d):\n got  %s\n want %s", url, file, r.status, gs, ws);
	free(ws);
	json_decref(got);
	json_decref(want);
	free(r.body);
	return gs;
}

static void test_auth_classify_reload(void)
{
	struct proc p;
	/* non-loopback bind without a token is refused at start */
	const char *a0[] = {"--input", path("mono.wav"), "--bind", "0.0.0.0", NULL};
	CHECK(start(&p, NULL, a0, NULL) != 0, "0.0.0.0 without --token refused");
	CHECK(file_has(p.err, "token"), "one sentence about the token");
	/* a missing input file is named; a threshold for a label the model lacks is a usage error */
	const char *a1[] = {"--input", "/nonexistent/in.wav", NULL};
	CHECK(start(&p, NULL, a1, NULL) != 0 && file_has(p.err, "--input /nonexistent/in.wav: cannot open"),
	      "missing input named: see %s", p.err);
	const char *a2[] = {"--input", path("mono.wav"), "--threshold", "maybe=0.5", NULL};
	CHECK(start(&p, NULL, a2, NULL) != 0 && file_has(p.err, "threshold: 'maybe' is not a keyword"),
	      "unknown keyword: see %s", p.err);
	/* an IPv6 address is written in brackets in the URL it logs (where ::1 exists) */
	const char *a3[] = {"--input", path("mono.wav"), "--bind", "::1", NULL};
	if (start(&p, NULL, a3, NULL) == 0) {
		CHECK(file_has(p.err, "http://[::1]:"), "bracketed URL: see %s", p.err);
		CHECK_EQ(stop(&p, SIGTERM), 0);
	}

	const char *conf = path("s4kws.conf");
	FILE *f = fopen(conf, "w");
	fprintf(f, "# test config\nthreshold = 0.2\nrequire-top = false\nrefractory-ms = 300\ntoken = abc\nbind = 0.0.0.0\n");
	fclose(f);
	const char *a[] = {"--input", path("mono.wav"), "--config", conf, NULL};
	CHECK(start(&p, NULL, a, NULL) == 0, "start with --config: %s", p.err);
	int code;
	json_t *o = get_json(p.port, "/v1/status", NULL, &code);
	CHECK_EQ(code, 401);
	json_decref(o);
	o = get_json(p.port, "/v1/status", "Authorization: Bearer abc\r\n", &code);
	CHECK_EQ(code, 200);
	json_decref(o);

	/* POST /v1/classify: a 1 s clip gives the same record as `s4kws classify --format json`;
	 * ?max_rate=8000 the same as --max-rate 8000 (and, on a 16 kHz clip, not the same as
	 * without it); a 6 s recording: detections, the same as `s4kws classify` with the same
	 * settings */
	char *plain = upload_matches(p.port, "/v1/classify", path("clip.wav"), "--top 3", 0);
	char *lim = upload_matches(p.port, "/v1/classify?max_rate=8000", path("clip.wav"), "--top 3 --max-rate 8000", 0);
	CHECK(plain && lim && strcmp(plain, lim), "?max_rate=8000 changed nothing:\n %s\n %s", plain, lim);
	free(plain);
	free(lim);
	char extra[600];
	snprintf(extra, sizeof extra, "--config '%s'", conf);
	free(upload_matches(p.port, "/v1/classify", path("mono.wav"), extra, 1));
	/* damaged uploads: foreign data, a WAV cut to 2000 bytes, nothing */
	struct resp r;
	static char body[1 << 20];
	FILE *cf = fopen(path("mono.wav"), "rb");
	CHECK(cf && fread(body, 1, sizeof body, cf) > 2000, "read mono.wav");
	if (cf)
		fclose(cf);
	http_req(p.port, "POST", "/v1/classify", "Authorization: Bearer abc\r\n", "hello, not audio", 16, &r);
	CHECK(r.status == 415 && strstr(r.body, "\"error\""), "foreign data: %d %s", r.status, r.body);
	free(r.body);
	http_req(p.port, "POST", "/v1/classify", "Authorization: Bearer abc\r\n", body, 2000, &r);
	CHECK(r.status == 400 && strstr(r.body, "truncated"), "truncated WAV: %d %s", r.status, r.body);
	free(r.body);
	http_req(p.port, "POST", "/v1/classify", "Authorization: Bearer abc\r\n", body, 0, &r);
	CHECK_EQ(r.status, 400);
	free(r.body);

	/* SIGHUP: an invalid file keeps the old settings; a valid one is applied */
	f = fopen(conf, "w");
	fprintf(f, "threshold = 7\ntoken = abc\nbind = 0.0.0.0\n");
	fclose(f);
	kill(p.pid, SIGHUP);
	usleep(400000);
	CHECK(file_has(p.err, "keeping the old one") && file_has(p.err, "threshold: 7 is out of range"),
	      "invalid reload refused in one sentence");
	o = get_json(p.port, "/v1/status", "Authorization: Bearer abc\r\n", &code);
	CHECK_EQ(code, 200);
	json_decref(o);
	/* a file starting with a NUL byte is refused too (it read as empty: all defaults) */
	f = fopen(conf, "wb");
	fwrite("\0threshold = 0.5\n", 1, 17, f);
	fclose(f);
	kill(p.pid, SIGHUP);
	usleep(400000);
	CHECK(file_has(p.err, ":1: a NUL byte"), "NUL reload refused in one sentence");
	o = get_json(p.port, "/v1/status", "Authorization: Bearer abc\r\n", &code);
	CHECK_EQ(code, 200); /* the token is still required: the old settings are kept */
	json_decref(o);
	o = get_json(p.port, "/v1/status", NULL, &code);
	CHECK_EQ(code, 401);
	json_decref(o);
	f = fopen(conf, "w");
	fprintf(f, "threshold = 0.9\nthreshold.yes = 0.95\ntoken = abc\nbind = 0.0.0.0\n");
	fclose(f);
	kill(p.pid, SIGHUP);
	usleep(400000);
	CHECK(file_has(p.err, "detection settings reloaded from"), "valid reload applied");
	CHECK_EQ(stop(&p, SIGTERM), 0);

	/* --help and bad flags */
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "'%s' listen --help", bin);
	FILE *pf = popen(cmd, "r");
	size_t n = fread(body, 1, sizeof body - 1, pf);
	body[n] = 0;
	CHECK(pclose(pf) == 0 && strstr(body, "--threshold") && strstr(body, "--token") && strstr(body, "--input"),
	      "--help");
	/* with stderr the journal stream (JOURNAL_STREAM = its device:inode), lines carry syslog
	 * priorities ("<6>info: ..."); a JOURNAL_STREAM of another file changes nothing */
	const char *jf = path("journal.txt");
	snprintf(cmd, sizeof cmd, ": > '%s'; JOURNAL_STREAM=$(stat -c %%d:%%i '%s') timeout 2 '%s' listen --model '%s' "
		 "--input none --port 0 2>> '%s'; JOURNAL_STREAM=1:2 timeout 2 '%s' listen --model '%s' --input none "
		 "--port 0 2>> '%s'", jf, jf, bin, model, jf, bin, model, jf);
	CHECK(system(cmd) != -1, "journal run");
	CHECK(file_has(jf, "<6>info: model "), "journal priorities: see %s", jf);
	CHECK(file_has(jf, "]: info: model "), "plain lines elsewhere: see %s", jf);
	unlink(jf);
	/* `s4kws devices` says what it found, without ALSA's and JACK's probing chatter (about a
	 * hundred lines on a machine without a sound card) */
	snprintf(cmd, sizeof cmd, "'%s' devices 2>&1", bin);
	pf = popen(cmd, "r");
	n = fread(body, 1, sizeof body - 1, pf);
	body[n] = 0;
	pclose(pf);
	CHECK(!strstr(body, "ALSA lib") && !strstr(body, "Jack") && !strstr(body, "jack server"),
	      "devices: library chatter: %.300s", body);
	snprintf(cmd, sizeof cmd, "'%s' listen --port 99999 2>/dev/null", bin);
	CHECK(WEXITSTATUS(system(cmd)) == 2, "bad flag: exit 2");
	snprintf(cmd, sizeof cmd, "'%s' listen --model '%s' --threshold nosuchword=0.5 2>/dev/null", bin, model);
	CHECK(WEXITSTATUS(system(cmd)) == 2, "unknown keyword: a usage error, exit 2");
}

/* --save-dir: one WAV per detection holding exactly the samples around its decision point, on
 * the detection's own channel; the detection JSON in its comment; a bad folder refused. */
static void test_save_dir(void)
{
	struct proc p;
	char cdir[600];
	snprintf(cdir, sizeof cdir, "%s/clips", dir);
	CHECK(mkdir(cdir, 0700) == 0, "mkdir %s", cdir);
	const char *a[] = {"--input", path("stereo.wav"), "--save-dir", cdir, "--save-pre-ms", "1000",
			   "--save-post-ms", "300", NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start with --save-dir: %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	struct dets got;
	fetch_dets(p.port, &got);
	CHECK(got.n >= 3, "%zu detections", got.n);
	json_int_t saved = -1;
	for (int i = 0; i < 100 && saved != (json_int_t)got.n; i++) {
		json_t *o = get_json(p.port, "/v1/status", NULL, NULL);
		saved = json_integer_value(json_object_get(json_object_get(o, "clips"), "saved"));
		json_decref(o);
		usleep(50000);
	}
	CHECK(saved == (json_int_t)got.n, "status: %lld clips saved for %zu detections", (long long)saved, got.n);
	CHECK(metrics_have(p.port, "s4kws_clips_saved_total", got.n, "s4kws_clips_dropped_total", 0),
	      "metrics count the clips");
	CHECK_EQ(stop(&p, SIGTERM), 0);

	SF_INFO si = {0};
	SNDFILE *sf = sf_open(path("stereo.wav"), SFM_READ, &si);
	float *all = malloc((size_t)si.frames * 2 * sizeof *all);
	CHECK(sf && all && sf_readf_float(sf, all, si.frames) == si.frames, "read stereo.wav");
	sf_close(sf);
	size_t files = 0;
	for (size_t i = 0; i < got.n && all; i++) {
		char pat[800];
		snprintf(pat, sizeof pat, "%s/*-%lld-%s-ch%d.wav", cdir, got.id[i], got.kw[i], got.ch[i]);
		glob_t g;
		int found = glob(pat, 0, NULL, &g) == 0 && g.gl_pathc == 1;
		CHECK(found, "one clip for detection %lld (%s)", got.id[i], pat);
		if (!found) {
			globfree(&g);
			continue;
		}
		SF_INFO ci = {0};
		SNDFILE *cf = sf_open(g.gl_pathv[0], SFM_READ, &ci);
		long long at = llround(got.offset[i] * 16000), a0 = at - 16000 > 0 ? at - 16000 : 0;
		long long b0 = at + 4800 < si.frames ? at + 4800 : si.frames;
		CHECK(cf && ci.samplerate == 16000 && ci.channels == 1 && ci.frames == b0 - a0,
		      "clip %s: %d Hz, %d ch, %lld frames (want %lld)", g.gl_pathv[0], ci.samplerate, ci.channels,
		      (long long)ci.frames, b0 - a0);
		float *c = malloc((size_t)(ci.frames > 0 ? ci.frames : 1) * sizeof *c);
		double err = 0;
		if (cf && c && sf_readf_float(cf, c, ci.frames) == ci.frames)
			for (sf_count_t j = 0; j < ci.frames; j++)
				err = fmax(err, fabs(c[j] - all[(a0 + j) * 2 + got.ch[i]]));
		else
			err = 1;
		CHECK(err <= 1.0 / 32768 + 1e-6, "clip %lld: the detection's samples (max error %g)", got.id[i], err);
		const char *cm = cf ? sf_get_string(cf, SF_STR_COMMENT) : NULL;
		char idk[40];
		snprintf(idk, sizeof idk, "\"id\":%lld,", got.id[i]);
		CHECK(cm && strstr(cm, idk) && strstr(cm, got.kw[i]), "clip comment: %s", cm ? cm : "(none)");
		if (cf)
			sf_close(cf);
		free(c);
		unlink(g.gl_pathv[0]);
		files++;
		globfree(&g);
	}
	free(all);
	CHECK(rmdir(cdir) == 0, "no other files in %s (%zu clips checked)", cdir, files);

	const char *b[] = {"--input", path("mono.wav"), "--save-dir", "/nonexistent/clips", NULL};
	CHECK(start(&p, NULL, b, det_args) != 0, "a missing --save-dir is refused at start");
	CHECK(file_has(p.err, "save-dir /nonexistent/clips: No such file or directory"), "one sentence (%s)", p.err);
}

/* --dedup-ms: the same word on both channels is reported once, on channel 0; the rest counted */
static void test_dedup(void)
{
	struct proc p;
	for (int on = 0; on < 2; on++) {
		const char *a[] = {"--input", path("both.wav"), "--dedup-ms", on ? "500" : "0", NULL};
		CHECK(start(&p, NULL, a, det_args) == 0, "start, dedup %d", on);
		json_t *st = wait_state(p.port, "eof", NULL);
		json_int_t dd = json_integer_value(json_object_get(st, "deduplicated"));
		json_decref(st);
		struct dets got;
		fetch_dets(p.port, &got);
		CHECK(metrics_have(p.port, "s4kws_deduplicated_total", (unsigned long long)dd, NULL, 0),
		      "metrics: %lld deduplicated", (long long)dd);
		CHECK_EQ(stop(&p, SIGTERM), 0);
		if (!on) {
			CHECK(got.n == 2 * ref_mono.n && dd == 0, "no dedup: %zu detections (2 x %zu), %lld left out",
			      got.n, ref_mono.n, (long long)dd);
			continue;
		}
		CHECK(same_dets(&ref_mono, &got, -1, "dedup") && dd == (json_int_t)ref_mono.n,
		      "dedup: the mono detections, all on channel 0; %lld left out", (long long)dd);
		int ch0 = 1;
		for (size_t i = 0; i < got.n; i++)
			ch0 &= got.ch[i] == 0;
		CHECK(ch0, "dedup: channel 0 wins ties");
	}
}

/* --verify: the live detector's second opinion agrees with file mode's (classify --mode stream
 * with the same flags): the same detections, decided once the window after the estimated end
 * had arrived (the first one at the stream's first whole window); the candidates it rejects are
 * counted in status and metrics, and with the confirmed ones they add up to the unverified
 * reference's; --verify 1 (a lone-clip probability of 1 does not happen on this model) leaves none. */
static void test_verify(void)
{
	const char *const vals[] = {"0.001", "1"};
	for (int i = 0; i < 2; i++) {
		/* onset 0.99: each end estimate just before its crossing (this model's score never
		 * drops below the default onset), so the candidates are judged on different windows */
		const char *va[] = {"--verify", vals[i], "--verify-after-ms", "200", "--onset", "0.99", NULL};
		struct dets want, got;
		reference_with(path("mono.wav"), va, &want);
		const char *a[] = {"--input", path("mono.wav"), "--verify", vals[i], "--verify-after-ms", "200",
				   "--onset", "0.99", NULL};
		struct proc p;
		CHECK(start(&p, NULL, a, det_args) == 0, "start, verify %s", vals[i]);
		json_t *st = wait_state(p.port, "eof", NULL);
		json_int_t rej = json_integer_value(json_object_get(st, "verify_rejected"));
		json_decref(st);
		fetch_dets(p.port, &got);
		CHECK(metrics_have(p.port, "s4kws_verify_rejected_total", (unsigned long long)rej, NULL, 0),
		      "metrics: %lld rejected", (long long)rej);
		CHECK_EQ(stop(&p, SIGTERM), 0);
		CHECK(same_dets(&want, &got, -1, "verify"), "verify %s: the file-mode reference's detections", vals[i]);
		CHECK(got.n + (size_t)rej == ref_mono.n, "verify %s: %zu confirmed + %lld rejected = %zu candidates",
		      vals[i], got.n, (long long)rej, ref_mono.n);
		for (size_t j = 0; j < got.n; j++) {
			CHECK(got.offset[j] >= got.end[j] + 0.2 - 1e-3, "decided at %.3f s, after the window "
			      "ending %.3f s", got.offset[j], got.end[j] + 0.2);
			CHECK(got.verify[j] >= 0.001 && fabs(got.verify[j] - want.verify[j]) < 1e-3,
			      "its second opinion %g (file mode %g)", got.verify[j], want.verify[j]);
		}
		for (size_t j = 0; j < ref_mono.n; j++)
			CHECK(ref_mono.verify[j] == 0, "no verify key without --verify");
		if (i == 0)
			CHECK(got.n > 0, "verify %s: some confirmed (%zu)", vals[i], got.n);
		else
			CHECK(got.n == 0 && rej > 0, "verify 1: %zu detections, %lld rejected", got.n, (long long)rej);
	}
}

/* /v1/mute: with detections muted, the same audio (stdin through a FIFO, so that the mute is in
 * place before any audio) gives no detection, and every one the reference finds is counted as
 * muted; DELETE unmutes; a timed mute ends by itself; bad requests get 400 / 405. */
/* Start the daemon reading raw stdin from a FIFO that nothing is written to yet: the caller
 * changes settings first, then feed_fifo() sends mono.raw and ends the input. */
static int start_fifo(struct proc *p, const char *name, int *w)
{
	const char *fifo = path(name);
	unlink(fifo);
	CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
	*w = open(fifo, O_RDWR | O_CLOEXEC); /* the daemon's open for reading does not block */
	const char *a[] = {"--input", "-", NULL};
	return *w >= 0 && start(p, fifo, a, det_args) == 0 ? 0 : -1;
}

static void feed_fifo(int w)
{
	FILE *f = fopen(path("mono.raw"), "rb");
	static char buf[1 << 16];
	size_t n;
	while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
		CHECK(write(w, buf, n) == (ssize_t)n, "write to the FIFO");
	if (f)
		fclose(f);
	close(w);
}

static void test_mute(void)
{
	struct proc p;
	int w;
	CHECK(start_fifo(&p, "mute.fifo", &w) == 0, "start on a FIFO: %s", p.err);
	struct resp r;
	http_req(p.port, "POST", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"muted\":true") && strstr(r.body, "\"remaining_s\":null"),
	      "POST /v1/mute: %d %s", r.status, r.body ? r.body : "");
	free(r.body);
	feed_fifo(w);
	json_t *st = wait_state(p.port, "eof", NULL);
	json_int_t muted = json_integer_value(json_object_get(st, "muted_detections"));
	CHECK(json_is_true(json_object_get(json_object_get(st, "mute"), "muted")), "status says muted");
	json_decref(st);
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	size_t nd = json_array_size(json_object_get(o, "detections"));
	json_decref(o);
	CHECK(nd == 0 && muted == (json_int_t)ref_mono.n, "muted: %zu detections published, %lld muted (want 0, %zu)",
	      nd, (long long)muted, ref_mono.n);
	CHECK(metrics_have(p.port, "s4kws_muted_detections_total", ref_mono.n, "s4kws_muted", 1), "metrics: muted");
	http_req(p.port, "DELETE", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"muted\":false"), "DELETE /v1/mute: %s", r.body ? r.body : "");
	free(r.body);
	http_req(p.port, "POST", "/v1/mute?seconds=0.4", NULL, NULL, 0, &r);
	json_error_t je;
	o = r.body ? json_loads(r.body, 0, &je) : NULL;
	double rem = json_number_value(json_object_get(o, "remaining_s"));
	CHECK(r.status == 200 && json_is_true(json_object_get(o, "muted")) && rem > 0 && rem <= 0.4,
	      "POST /v1/mute?seconds=0.4: %s", r.body ? r.body : "");
	json_decref(o);
	free(r.body);
	usleep(600000);
	http_req(p.port, "GET", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"muted\":false"), "a timed mute ends: %s", r.body ? r.body : "");
	free(r.body);
	http_req(p.port, "POST", "/v1/mute?seconds=-3", NULL, NULL, 0, &r);
	CHECK(r.status == 400 && r.body && strstr(r.body, "seconds"), "bad seconds: %d", r.status);
	free(r.body);
	/* one number syntax (no hex: 0x10 was 16 s) and no mute too short to mean anything */
	static const char *const bad_secs[] = {"0x10", "1e-300", "inf", "nan", "5s", ""};
	for (size_t i = 0; i < sizeof bad_secs / sizeof bad_secs[0]; i++) {
		char url[64];
		snprintf(url, sizeof url, "/v1/mute?seconds=%s", bad_secs[i]);
		http_req(p.port, "POST", url, NULL, NULL, 0, &r);
		CHECK(r.status == 400, "%s: %d", url, r.status);
		free(r.body);
	}
	http_req(p.port, "GET", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"muted\":false"), "still not muted: %s", r.body ? r.body : "");
	free(r.body);
	http_req(p.port, "PUT", "/v1/mute", NULL, NULL, 0, &r);
	CHECK(r.status == 405, "PUT /v1/mute: %d", r.status);
	free(r.body);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	unlink(path("mute.fifo"));
}

/* PUT /v1/thresholds: raising "yes" to 1 before the audio leaves no detection (the reference
 * has several at 0.365); GET reads the values back; bad requests change nothing. */
static void test_thresholds(void)
{
	struct proc p;
	int w;
	CHECK(start_fifo(&p, "thr.fifo", &w) == 0, "start on a FIFO: %s", p.err);
	struct resp r;
	const char *up = "{\"yes\": 1}";
	http_req(p.port, "PUT", "/v1/thresholds", "Content-Type: application/json\r\n", up, strlen(up), &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"yes\":1") && strstr(r.body, "\"no\":1"),
	      "PUT /v1/thresholds: %d %s", r.status, r.body ? r.body : "");
	free(r.body);
	static const char *const bad[] = {"{\"nope\": 0.5}", "{\"yes\": 2}", "{\"yes\": \"high\"}",
					  "{\"_silence_\": 0.5}", "[0.5]", "{\"yes\": 0.5, \"bogus\": 1}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		http_req(p.port, "PUT", "/v1/thresholds", NULL, bad[i], strlen(bad[i]), &r);
		CHECK(r.status == 400 && r.body && strstr(r.body, "error"), "bad body %s: %d", bad[i], r.status);
		free(r.body);
	}
	static char big[20000];
	memset(big, ' ', sizeof big);
	big[0] = '{';
	big[sizeof big - 1] = '}';
	http_req(p.port, "PUT", "/v1/thresholds", NULL, big, sizeof big, &r);
	CHECK(r.status == 413, "a 20 kB body: %d", r.status);
	free(r.body);
	http_req(p.port, "POST", "/v1/thresholds", NULL, up, strlen(up), &r);
	CHECK(r.status == 405, "POST /v1/thresholds: %d", r.status);
	free(r.body);
	http_req(p.port, "GET", "/v1/thresholds", NULL, NULL, 0, &r);
	CHECK(r.status == 200 && r.body && strstr(r.body, "\"yes\":1"), "GET: the rejected bodies changed nothing: %s",
	      r.body ? r.body : "");
	free(r.body);
	feed_fifo(w);
	json_decref(wait_state(p.port, "eof", NULL));
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	size_t nd = json_array_size(json_object_get(o, "detections"));
	json_decref(o);
	CHECK(nd == 0 && ref_mono.n > 0, "yes at 1: %zu detections (%zu at 0.365)", nd, ref_mono.n);
	CHECK(file_has(p.err, "thresholds set over HTTP: yes=1"), "the change is logged (%s)", p.err);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	unlink(path("thr.fifo"));
}

/* Copy the safetensors file src to dst with the metadata key `key` set to `val` (the tensors'
 * bytes unchanged). 0 or -1. */
static int copy_with_meta(const char *src, const char *dst, const char *key, const char *val)
{
	FILE *f = fopen(src, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = len > 8 ? malloc((size_t)len) : NULL;
	int ok = b && fread(b, 1, (size_t)len, f) == (size_t)len;
	fclose(f);
	uint64_t n = 0;
	for (int i = 7; ok && i >= 0; i--)
		n = n << 8 | b[i];
	json_t *h = ok && n <= (uint64_t)len - 8 ? json_loadb((const char *)b + 8, (size_t)n, 0, NULL) : NULL;
	json_t *meta = json_object_get(h, "__metadata__");
	char *text = meta && !json_object_set_new(meta, key, json_string(val)) ? json_dumps(h, JSON_COMPACT) : NULL;
	FILE *o = text ? fopen(dst, "wb") : NULL;
	if (o) {
		size_t hl = strlen(text), pad = (8 - hl % 8) % 8;
		unsigned char l8[8];
		for (int i = 0; i < 8; i++)
			l8[i] = (unsigned char)((hl + pad) >> (8 * i));
		ok = fwrite(l8, 1, 8, o) == 8 && fwrite(text, 1, hl, o) == hl && fwrite("        ", 1, pad, o) == pad &&
		     fwrite(b + 8 + n, 1, (size_t)len - 8 - n, o) == (size_t)len - 8 - n;
		ok = fclose(o) == 0 && ok;
	}
	free(text);
	json_decref(h);
	free(b);
	return o && ok ? 0 : -1;
}

/* A model file's own thresholds (metadata 'thresholds') apply where no flag sets one: the test
 * model carrying the reference's thresholds finds the reference's detections with no
 * --threshold flag, and GET /v1/thresholds shows them; a --threshold flag still wins. */
static void test_model_thresholds(void)
{
	char copy[600], wav[600];
	const char *own = model;
	snprintf(copy, sizeof copy, "%s", path("thr_model.safetensors"));
	snprintf(wav, sizeof wav, "%s", path("mono.wav"));
	CHECK(copy_with_meta(model, copy, "thresholds",
			     "{\"yes\":0.365,\"no\":1,\"up\":1,\"down\":1,\"left\":1,\"right\":1,\"on\":1,"
			     "\"off\":1,\"stop\":1,\"go\":1}") == 0,
	      "write a copy of the model with thresholds");
	model = copy;
	static const char *const args[] = {"--input", NULL, "--refractory-ms", "300", "--warmup-ms", "200", NULL};
	const char *a[7];
	memcpy(a, args, sizeof a);
	a[1] = wav;
	struct proc p;
	CHECK(start(&p, NULL, a, NULL) == 0, "start with the model's thresholds: see %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	json_t *t = get_json(p.port, "/v1/thresholds", NULL, NULL);
	CHECK(fabs(jnum(t, "thresholds", "yes") - 0.365) < 1e-6 && jnum(t, "thresholds", "go") == 1,
	      "GET /v1/thresholds: the model's (yes %g, go %g)", jnum(t, "thresholds", "yes"), jnum(t, "thresholds", "go"));
	json_decref(t);
	struct dets got;
	fetch_dets(p.port, &got);
	CHECK(same_dets(&ref_mono, &got, -1, "model thresholds"), "the model's thresholds = the reference's flags");
	CHECK_EQ(stop(&p, SIGTERM), 0);
	static const char *const over[] = {"--threshold", "1", NULL};
	CHECK(start(&p, NULL, a, over) == 0, "start with --threshold 1: see %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	fetch_dets(p.port, &got);
	CHECK(got.n == 0 && ref_mono.n > 0, "--threshold 1 beats the model's thresholds: %zu detections", got.n);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	model = own;
	unlink(copy);
}

/* ---- Wyoming ---- */

/* Stream the signal x (n samples at rate, mono, as S16_LE) in chunks and collect the detection
 * timestamps (ms) until count arrived or 3 s of silence from the server. */
static size_t wy_stream(int port, const float *x, size_t n, int rate, const char *names, double *ms,
			size_t max, int *not_detected)
{
	int fd = client_connect(port);
	char fmt[128];
	snprintf(fmt, sizeof fmt, "{\"rate\":%d,\"width\":2,\"channels\":1}", rate);
	char det[256];
	snprintf(det, sizeof det, "{\"names\":%s}", names);
	wy_send(fd, "detect", det, NULL, 0);
	/* audio-start with its data in the additional-data section (data_length), as newer
	 * clients send it */
	char hdr[256];
	int hl = snprintf(hdr, sizeof hdr, "{\"type\":\"audio-start\",\"data_length\":%zu}\n%s", strlen(fmt), fmt);
	send_all(fd, hdr, (size_t)hl);
	int16_t chunk[1000];
	for (size_t i = 0; i < n; i += 1000) {
		size_t k = n - i < 1000 ? n - i : 1000;
		for (size_t j = 0; j < k; j++)
			chunk[j] = (int16_t)lrintf(fmaxf(-32768.f, fminf(32767.f, x[i + j] * 32768.f)));
		wy_send(fd, "audio-chunk", NULL, chunk, k * 2); /* the format of audio-start */
	}
	wy_send(fd, "audio-stop", NULL, NULL, 0);
	size_t got = 0;
	*not_detected = 0;
	json_t *e;
	while ((e = wy_recv(fd, 3000))) {
		const char *t = json_string_value(json_object_get(e, "type"));
		json_t *d = json_object_get(e, "data");
		if (t && !strcmp(t, "detection") && got < max) {
			const char *nm = json_string_value(json_object_get(d, "name"));
			CHECK(nm && !strcmp(nm, "yes"), "detection name %s", nm ? nm : "(none)");
			ms[got++] = (double)json_integer_value(json_object_get(d, "timestamp"));
		}
		if (t && !strcmp(t, "not-detected"))
			*not_detected = 1;
		json_decref(e);
		if (*not_detected)
			break;
	}
	close(fd);
	return got;
}

/* The Wyoming detection times ms[0..got) are the reference's decision points within tol_ms. */
static int same_times(const double *ms, size_t got, const struct dets *ref, double tol_ms)
{
	int same = got == ref->n;
	for (size_t i = 0; same && i < got; i++)
		same = fabs(ms[i] - 1000 * ref->offset[i]) <= tol_ms;
	return same;
}

/* --input none --wyoming-port 0: a Wyoming client gets info, and for the test signal streamed
 * at 16 kHz exactly the detections of the live reference (same ms); at 48 kHz (resampled) the
 * same number within 30 ms; a stream without a selected keyword gives not-detected; a bad header gets an error event
 * without harming the server. */
static void test_wyoming(void)
{
	struct proc p;
	const char *a[] = {"--input", "none", "--wyoming-port", "0", "--log", path("wy.jsonl"), NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start a Wyoming server: %s", p.err);
	json_t *st = get_json(p.port, "/v1/status", NULL, NULL);
	int wport = (int)json_integer_value(json_object_get(json_object_get(st, "wyoming"), "port"));
	CHECK(wport > 0 && !strcmp(jstr(st, "input", "state"), "none"), "status: wyoming port %d, input %s", wport,
	      jstr(st, "input", "state"));
	json_decref(st);
	st = get_json(p.port, "/v1/scores", NULL, NULL);
	CHECK(st && json_array_size(json_object_get(st, "channels")) == 0, "--input none: no channel in /v1/scores");
	json_decref(st);

	int fd = client_connect(wport);
	json_t *models = wy_describe_models(fd);
	int has_yes = 0;
	for (size_t i = 0; i < json_array_size(models); i++)
		has_yes |= !strcmp(json_string_value(json_object_get(json_array_get(models, i), "name")), "yes");
	CHECK(models && has_yes, "describe -> info with the keywords as wake models");
	json_decref(models);
	close(fd);

	SF_INFO si = {0};
	SNDFILE *sf = sf_open(path("mono.wav"), SFM_READ, &si);
	float *x = malloc((size_t)si.frames * sizeof *x);
	CHECK(sf && x && sf_readf_float(sf, x, si.frames) == si.frames, "read mono.wav");
	sf_close(sf);
	double ms[256];
	int nd = 0;
	size_t got = wy_stream(wport, x, (size_t)si.frames, 16000, "[\"yes\"]", ms, 256, &nd);
	CHECK(same_times(ms, got, &ref_mono, 1) && !nd, "16 kHz stream: %zu detections (reference %zu), the same times", got, ref_mono.n);
	/* the daemon's own: /v1/detections and the log have them, named after the client */
	json_t *dl = get_json(p.port, "/v1/detections", NULL, NULL);
	json_t *arr = json_object_get(dl, "detections");
	size_t named = 0;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *d = json_array_get(arr, i);
		const char *cn = json_string_value(json_object_get(d, "channel_name"));
		named += cn && !strncmp(cn, "wyoming 127.0.0.1:", 18) &&
			 json_integer_value(json_object_get(d, "channel")) == -1 &&
			 fabs(json_number_value(json_object_get(d, "offset")) * 1000 - ms[i < got ? i : 0]) <= 1;
	}
	CHECK(got && named == got && json_array_size(arr) == got,
	      "Wyoming detections in /v1/detections (%zu of %zu, channel -1, named, same offsets)", named, got);
	json_decref(dl);
	CHECK(file_has(path("wy.jsonl"), "\"channel_name\":\"wyoming 127.0.0.1:"), "and in the --log file");

	sf = sf_open(path("mono48k.wav"), SFM_READ, &si);
	float *x48 = malloc((size_t)si.frames * sizeof *x48);
	CHECK(sf && x48 && sf_readf_float(sf, x48, si.frames) == si.frames, "read mono48k.wav");
	sf_close(sf);
	got = wy_stream(wport, x48, (size_t)si.frames, 48000, "[]", ms, 256, &nd);
	CHECK(same_times(ms, got, &ref_mono, 30), "48 kHz stream, resampled: %zu detections (reference %zu) within 30 ms", got, ref_mono.n);
	free(x48);

	/* only "no", which the test settings never let fire: audio-stop answers not-detected */
	got = wy_stream(wport, x, 16000, 16000, "[\"no\"]", ms, 256, &nd);
	CHECK(got == 0 && nd, "no selected keyword said: not-detected (%zu detections)", got);
	free(x);

	fd = client_connect(wport);
	send_all(fd, "this is not json\n", 17);
	json_t *e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(e, "type")), "error") &&
	      !strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "code")), "bad-event"),
	      "a bad header gets an error event");
	json_decref(e);
	CHECK(wy_recv(fd, 5000) == NULL, "and the connection is closed");
	close(fd);
	fd = client_connect(wport);
	wy_send(fd, "audio-chunk", "{\"rate\":16000,\"width\":2,\"channels\":1}", NULL, 0);
	send_all(fd, "{\"type\":\"audio-chunk\",\"payload_length\":99999999}\n", 50);
	e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(e, "type")), "error"), "an oversize payload is refused");
	json_decref(e);
	close(fd);

	st = get_json(p.port, "/v1/status", NULL, NULL);
	json_t *w = json_object_get(st, "wyoming");
	CHECK(json_integer_value(json_object_get(w, "connections")) == 6 &&
	      json_integer_value(json_object_get(w, "errors")) == 2 &&
	      json_integer_value(json_object_get(w, "detections")) == (json_int_t)(2 * ref_mono.n),
	      "status counts: %s", json_dumps(w, 0));
	json_decref(st);
	/* a rate beyond any integer type is refused, not wrapped (2^32 + 16000 was 16000) */
	fd = client_connect(wport);
	wy_send(fd, "audio-start", "{\"rate\":4294983296,\"width\":2,\"channels\":1}", NULL, 0);
	e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "code")), "unsupported-format"),
	      "rate 4294983296 refused");
	json_decref(e);
	close(fd);

	/* ping -> pong with its text; detect naming no keyword of the model -> an error event */
	fd = client_connect(wport);
	wy_send(fd, "ping", "{\"text\":\"hi\"}", NULL, 0);
	e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(e, "type")), "pong") &&
	      !strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "text")), "hi"), "ping -> pong");
	json_decref(e);
	wy_send(fd, "detect", "{\"names\":[\"ok_nabu\"]}", NULL, 0);
	e = wy_recv(fd, 5000);
	CHECK(e && !strcmp(json_string_value(json_object_get(json_object_get(e, "data"), "code")), "unknown-wake-word"),
	      "detect ok_nabu -> error unknown-wake-word");
	json_decref(e);
	close(fd);

	/* mute and PUT /v1/thresholds reach Wyoming clients */
	struct resp rr;
	http_req(p.port, "POST", "/v1/mute", NULL, NULL, 0, &rr);
	free(rr.body);
	float *x2 = malloc(320000 * sizeof *x2); // up to 20 s of mono.wav
	sf = sf_open(path("mono.wav"), SFM_READ, &si);
	sf_count_t nf = sf && x2 ? sf_readf_float(sf, x2, si.frames < 320000 ? si.frames : 320000) : 0;
	sf_close(sf);
	got = wy_stream(wport, x2, (size_t)nf, 16000, "[\"yes\"]", ms, 256, &nd);
	st = get_json(p.port, "/v1/status", NULL, NULL);
	json_int_t muted = json_integer_value(json_object_get(json_object_get(st, "wyoming"), "muted"));
	json_decref(st);
	CHECK(got == 0 && nd && muted > 0, "muted: nothing sent, not-detected (%zu detections, %lld muted)", got,
	      (long long)muted);
	http_req(p.port, "DELETE", "/v1/mute", NULL, NULL, 0, &rr);
	free(rr.body);
	const char *up = "{\"yes\": 1}";
	http_req(p.port, "PUT", "/v1/thresholds", "Content-Type: application/json\r\n", up, strlen(up), &rr);
	CHECK(rr.status == 200, "PUT /v1/thresholds yes=1: %d", rr.status);
	free(rr.body);
	got = wy_stream(wport, x2, (size_t)nf, 16000, "[\"yes\"]", ms, 256, &nd);
	CHECK(got == 0 && nd, "threshold 1 reaches the Wyoming client: %zu detections", got);
	free(x2);
	CHECK_EQ(stop(&p, SIGTERM), 0);
}

/* --verify on a Wyoming client: the detections of the file-mode reference with the same flags,
 * at the same times (where they were decided); --verify 1: none, and audio-stop says
 * not-detected after judging the candidates still waiting. */
static void test_verify_wyoming(void)
{
	SF_INFO si = {0};
	SNDFILE *sf = sf_open(path("mono.wav"), SFM_READ, &si);
	float *x = malloc((size_t)si.frames * sizeof *x);
	CHECK(sf && x && sf_readf_float(sf, x, si.frames) == si.frames, "read mono.wav");
	sf_close(sf);
	const char *const vals[] = {"0.001", "1"};
	for (int i = 0; i < 2; i++) {
		const char *va[] = {"--verify", vals[i], "--verify-after-ms", "200", "--onset", "0.99", NULL};
		struct dets want;
		reference_with(path("mono.wav"), va, &want);
		const char *a[] = {"--input", "none", "--wyoming-port", "0", "--verify", vals[i], "--verify-after-ms",
				   "200", "--onset", "0.99", NULL};
		struct proc p;
		CHECK(start(&p, NULL, a, det_args) == 0, "start a Wyoming server with verify %s: %s", vals[i], p.err);
		json_t *st = get_json(p.port, "/v1/status", NULL, NULL);
		int wport = (int)json_integer_value(json_object_get(json_object_get(st, "wyoming"), "port"));
		json_decref(st);
		double ms[256];
		int nd = 0;
		size_t got = wy_stream(wport, x, (size_t)si.frames, 16000, "[\"yes\"]", ms, 256, &nd);
		CHECK(same_times(ms, got, &want, 1), "Wyoming, verify %s: %zu detections (reference %zu), the same times", vals[i], got, want.n);
		if (i == 1)
			CHECK(got == 0 && nd, "verify 1: no detection, not-detected (%zu)", got);
		CHECK_EQ(stop(&p, SIGTERM), 0);
	}
	free(x);
}

/* --channel-names: every detection carries its channel's name, over HTTP and in the log (and
 * back after a restart); a wrong count is refused at start in one sentence. */
static void test_channel_names(void)
{
	struct proc p;
	const char *logp = path("names.jsonl");
	unlink(logp);
	const char *a[] = {"--input", path("both.wav"), "--channel-names", " kitchen , hall", "--log", logp, NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start with --channel-names: %s", p.err);
	json_t *st = wait_state(p.port, "eof", NULL);
	json_t *cn = json_object_get(st, "channel_names");
	CHECK(json_array_size(cn) == 2 && !strcmp(json_string_value(json_array_get(cn, 0)), "kitchen") &&
	      !strcmp(json_string_value(json_array_get(cn, 1)), "hall"), "status lists the names");
	json_decref(st);
	json_t *o = get_json(p.port, "/v1/detections?limit=1000", NULL, NULL);
	json_t *arr = json_object_get(o, "detections");
	size_t ok = 0, n = json_array_size(arr);
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(arr, i);
		const char *nm = json_string_value(json_object_get(d, "channel_name"));
		int ch = (int)json_integer_value(json_object_get(d, "channel"));
		ok += nm && !strcmp(nm, ch == 0 ? "kitchen" : "hall");
	}
	json_decref(o);
	CHECK(n == 2 * ref_mono.n && ok == n, "%zu of %zu detections carry their channel's name", ok, n);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(file_has(logp, "\"channel_name\":\"hall\""), "the log has the names");
	/* restart on the same log: the reloaded history keeps them */
	const char *b[] = {"--input", path("both.wav"), "--channel-names", "kitchen,hall", "--log", logp,
			   "--duration", "0.1", NULL};
	CHECK(start(&p, NULL, b, det_args) == 0, "restart: %s", p.err);
	o = get_json(p.port, "/v1/detections?limit=1", NULL, NULL);
	json_t *d0 = json_array_get(json_object_get(o, "detections"), 0);
	CHECK(d0 && json_string_value(json_object_get(d0, "channel_name")), "a reloaded detection keeps its name");
	json_decref(o);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	unlink(logp);
	const char *c[] = {"--input", path("both.wav"), "--channel-names", "a,b,c", NULL};
	CHECK(start(&p, NULL, c, det_args) != 0, "three names for two channels are refused");
	CHECK(file_has(p.err, "channel-names has more names than the 2 channels"), "one sentence (%s)", p.err);
}

/* Poll /v1/status until on_detect.run reaches want (10 s); returns the on_detect object's
 * figures in run/failed/skipped. */
static void hook_figures(int port, long long want, long long *run, long long *failed, long long *skipped)
{
	for (int i = 0; i < 200; i++) {
		json_t *o = get_json(port, "/v1/status", NULL, NULL);
		json_t *h = json_object_get(o, "on_detect");
		*run = json_integer_value(json_object_get(h, "run"));
		*failed = json_integer_value(json_object_get(h, "failed"));
		*skipped = json_integer_value(json_object_get(h, "skipped"));
		json_decref(o);
		if (*run >= want)
			return;
		usleep(50000);
	}
}

/* --on-detect: one command per detection, in order, with the detection on stdin and in the
 * environment; a failing command is counted and the rest go on; a hung one is killed with its
 * process group after the timeout, and shutdown stays bounded. */
static void test_on_detect(void)
{
	struct proc p;
	char cmd[1400];
	snprintf(cmd, sizeof cmd,
		 "cat >> %s; printf '%%s %%s %%s %%s\\n' \"$S4KWS_ID\" \"$S4KWS_KEYWORD\" \"$S4KWS_CHANNEL\" "
		 "\"$S4KWS_SCORE\" >> %s; [ \"$S4KWS_ID\" != 2 ] || exit 3",
		 path("hook.jsonl"), path("hook.env"));
	const char *a[] = {"--input", path("mono.wav"), "--on-detect", cmd, NULL};
	CHECK(start(&p, NULL, a, det_args) == 0, "start with --on-detect: %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	struct dets got;
	fetch_dets(p.port, &got);
	CHECK(got.n == ref_mono.n && got.n >= 3, "%zu detections", got.n);
	long long run = 0, failed = 0, skipped = 0;
	hook_figures(p.port, (long long)got.n, &run, &failed, &skipped);
	CHECK(run == (long long)got.n && failed == 1 && skipped == 0,
	      "status: on_detect run %lld (want %zu), failed %lld (want 1: detection 2 exits 3), skipped %lld",
	      run, got.n, failed, skipped);
	CHECK(metrics_have(p.port, "s4kws_on_detect_runs_total", got.n, "s4kws_on_detect_failures_total", 1),
	      "metrics count the commands");
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(file_has(p.err, "on-detect: the command for detection 2 (") && file_has(p.err, "exited with status 3"),
	      "the failure is logged in one line (%s)", p.err);

	/* stdin: the detections' JSON lines, in order; environment: the same id, keyword, channel */
	FILE *fj = fopen(path("hook.jsonl"), "r"), *fe = fopen(path("hook.env"), "r");
	CHECK(fj && fe, "the command wrote its files");
	size_t k = 0;
	char line[2048], el[256];
	while (fj && fe && fgets(line, sizeof line, fj) && fgets(el, sizeof el, fe)) {
		json_error_t je;
		json_t *d = json_loads(line, 0, &je);
		long long id = json_integer_value(json_object_get(d, "id"));
		const char *kw = json_string_value(json_object_get(d, "keyword"));
		double score = json_number_value(json_object_get(d, "score"));
		long long eid = -1;
		char ekw[64] = "";
		int ech = -1;
		double escore = -1;
		int ok = sscanf(el, "%lld %63s %d %lf", &eid, ekw, &ech, &escore) == 4;
		CHECK(k < got.n && d && kw && id == got.id[k] && !strcmp(kw, got.kw[k]) &&
		      fabs(score - got.score[k]) < 1e-9 && json_number_value(json_object_get(d, "end")) == got.end[k],
		      "stdin line %zu is detection %lld: %s", k, k < got.n ? got.id[k] : -1LL, line);
		CHECK(ok && k < got.n && eid == got.id[k] && !strcmp(ekw, got.kw[k]) && ech == got.ch[k] &&
		      fabs(escore - got.score[k]) < 1e-4, "environment line %zu: %s", k, el);
		json_decref(d);
		k++;
	}
	CHECK(k == got.n, "%zu command runs recorded for %zu detections", k, got.n);
	if (fj)
		fclose(fj);
	if (fe)
		fclose(fe);
	unlink(path("hook.jsonl"));
	unlink(path("hook.env"));

	/* a hung command: killed after 1 s with what it started in the background (a loaded machine
	 * may kill a shell before it wrote its child's pid: at least one pid is required) */
	snprintf(cmd, sizeof cmd, "sleep 30 & echo $! >> %s; wait", path("hook.pids"));
	const char *b[] = {"--input", path("mono.wav"), "--on-detect", cmd, "--on-detect-timeout-ms", "1000", NULL};
	CHECK(start(&p, NULL, b, det_args) == 0, "start with a hanging --on-detect: %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	hook_figures(p.port, (long long)got.n, &run, &failed, &skipped);
	CHECK(run == (long long)got.n && failed == run, "hung commands: run %lld, failed %lld (want %zu each)",
	      run, failed, got.n);
	CHECK_EQ(stop(&p, SIGTERM), 0);
	CHECK(file_has(p.err, "was still running after 1000 ms and was killed"), "the kill is logged (%s)", p.err);
	FILE *fp = fopen(path("hook.pids"), "r");
	int pids = 0, alive = 0;
	long pid;
	while (fp && fscanf(fp, "%ld", &pid) == 1) {
		pids++;
		int gone = 0;
		for (int i = 0; i < 40 && !gone; i++) {
			gone = kill((pid_t)pid, 0) < 0 && errno == ESRCH;
			if (!gone)
				usleep(50000);
		}
		alive += !gone;
	}
	if (fp)
		fclose(fp);
	unlink(path("hook.pids"));
	CHECK(pids >= 1 && pids <= (int)got.n && alive == 0, "%d background children started, %d still alive",
	      pids, alive);

	/* shutdown while a command hangs: bounded by the timeout, exit 0 */
	const char *c[] = {"--input", path("mono.wav"), "--on-detect", "sleep 30", "--on-detect-timeout-ms", "1500", NULL};
	CHECK(start(&p, NULL, c, det_args) == 0, "start: %s", p.err);
	json_decref(wait_state(p.port, "eof", NULL));
	CHECK_EQ(stop(&p, SIGTERM), 0);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: test_listen S4KWS MODEL\n");
		return 2;
	}
	bin = argv[1];
	model = argv[2];
	if (!mkdtemp(dir))
		return 1;
	/* audio: 6 s mono at 16 kHz (+ raw, padded raw, stereo, 48 kHz) and a 1 s clip */
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

	test_file_input();
	test_nonfinite_input();
	test_sd_notify();
	test_drain();
	test_upload_leak();
	test_stdin_and_channels();
	test_alsa_device();
	test_device_stall();
	test_auth_classify_reload();
	test_save_dir();
	test_dedup();
	test_verify();
	test_on_detect();
	test_mute();
	test_model_thresholds();
	test_thresholds();
	test_channel_names();
	test_wyoming();
	test_verify_wyoming();

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
