/* bench_speed.c - how fast a model runs: `bench_speed MODEL [seconds]`.
 *
 * Design: one program, plain clocks, honest ratios. Audio is synthetic (noise bursts over a
 * low hum, deterministic), the cost of the engine does not depend on the content.
 *   step mode:  one stream fed `seconds` of audio in 10 ms pushes; then 4, 16 and 64 streams stepped
 *               together on the same thread (s4m_relay_batch_push, as the daemon's inference
 *               thread does) and, for comparison, one after the other. Real-time factor per
 *               channel = audio seconds / CPU seconds (CLOCK_PROCESS_CPUTIME_ID, one thread).
 *   conv mode:  clips of window + preroll samples (a 1 s clip classified on its own), on one
 *               thread (CPU time) and on T threads with one workspace each (wall time,
 *               CLOCK_MONOTONIC); throughput in clips/s and in x real time counting the clip's
 *               window (the audio a user hands in; the preroll is zeros added by s4kws).
 *   scan:       a long recording scanned in chunks, x real time on one thread: carried chunks
 *               of twice the longest kernel as file mode does for causal models
 *               (s4m_conv_carry_scan), and 30 s chunks with the receptive-field pre-context
 *               (s4m_conv_scan; what file mode did before, and still does for bidirectional
 *               models), with the ratio of the two.
 * Threads default to the number of online CPUs; S4KWS_BENCH_THREADS overrides.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spot/postproc.h" /* PP_DEF_RESTART_MS */
#include "model/s4m.h"

#define RELAY_MS 2000 /* restart period of the two-stepper figures */

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void)
{
	return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static double wall_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static void make_audio(float *x, size_t n, int sr)
{
	uint64_t s = 88172645463325252ULL;
	for (size_t t = 0; t < n; t++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		double noise = (double)(s >> 11) * 0x1p-53 - 0.5;
		double burst = fmod((double)t / sr, 1.3) < 0.5 ? 0.5 : 0.02;
		x[t] = (float)(burst * noise + 0.05 * sin(2 * M_PI * 120.0 * (double)t / sr));
	}
}

struct conv_job {
	const struct s4m_model *m;
	const float *clip;
	size_t len;
	int n_clips;
	int failed;
	pthread_barrier_t *start;   /* all workspaces made before the clock starts */
	double wall;                /* seconds of this thread's compute loop */
};

/* A lone clip as s4kws classify does it: primed (the preroll's share precomputed) when the
 * workspace allows it, else the whole [preroll | window] input. */
static int lone_clip(struct s4m_conv *cv, const float *clip, size_t len, float *logits)
{
	size_t w = s4m_conv_primed(cv);
	return w ? s4m_conv_logits_primed(cv, clip + len - w, w, logits)
		 : s4m_conv_logits(cv, clip, len, logits);
}

/* Clips per CPU second of one thread, for at least `secs` CPU seconds and 3 clips. */
static double clip_rate_1(struct s4m_conv *cv, const float *clip, size_t len, int primed, double secs)
{
	float logits[4096];
	size_t w = s4m_conv_primed(cv);
	int nclips = 0;
	double c0 = cpu_s();
	do {
		if (primed)
			s4m_conv_logits_primed(cv, clip + len - w, w, logits);
		else
			s4m_conv_logits(cv, clip, len, logits);
	} while (++nclips < 3 || cpu_s() - c0 < secs);
	return nclips / (cpu_s() - c0);
}

static void *conv_worker(void *arg)
{
	struct conv_job *j = arg;
	char err[S4K_ERR_LEN];
	struct s4m_conv *cv = s4m_conv_new(j->m, j->len, err, sizeof err);
	j->failed = !cv || s4m_conv_prime(cv, err, sizeof err) < 0;
	pthread_barrier_wait(j->start);
	double w0 = wall_s();
	float logits[4096];
	for (int i = 0; cv && i < j->n_clips; i++)
		if (lone_clip(cv, j->clip, j->len, logits) < 0)
			j->failed = 1;
	j->wall = wall_s() - w0;
	s4m_conv_free(cv);
	return NULL;
}

/* `ns` relays restarting every `period` samples (0: never) over x (n samples) in pushes of
 * `hop`, stepped one after the other or, with a batch, together as listen's inference thread
 * does (s4m_relay_batch_push); CPU seconds, or -1 after a message. */
static double step_run(const struct s4m_model *m, size_t period, int ns, struct s4m_batch *batch,
		       const float *x, size_t n, size_t hop)
{
	char err[S4K_ERR_LEN];
	struct s4m_relay **st = calloc((size_t)ns, sizeof *st);
	const float **xs = calloc((size_t)ns, sizeof *xs);
	for (int i = 0; st && xs && i < ns; i++)
		if (!(st[i] = s4m_relay_new(m, period, err, sizeof err))) {
			fprintf(stderr, "bench_speed: %s\n", err);
			return -1;
		}
	if (!st || !xs) {
		fprintf(stderr, "bench_speed: out of memory\n");
		return -1;
	}
	double c0 = cpu_s();
	for (size_t p = 0; p + hop <= n; p += hop) {
		if (batch) {
			for (int i = 0; i < ns; i++)
				xs[i] = x + p;
			s4m_relay_batch_push(batch, st, ns, xs, hop);
		} else
			for (int i = 0; i < ns; i++)
				s4m_relay_push(st[i], x + p, hop);
	}
	double cpu = cpu_s() - c0;
	float probs[4096];
	s4m_relay_scores(st[0], probs);
	for (int i = 0; i < ns; i++)
		s4m_relay_free(st[i]);
	free(st);
	free(xs);
	return cpu;
}

/* One line for ns channels: stepped together (listen's way) and, for several, one after the
 * other; 0, or the exit status 1 after a message. */
static int step_channels(const struct s4m_model *m, size_t period, int ns, const float *x, size_t n, size_t hop)
{
	char err[S4K_ERR_LEN];
	struct s4m_batch *b = s4m_batch_new(m, ns, err, sizeof err);
	if (!b) {
		fprintf(stderr, "bench_speed: %s\n", err);
		return 1;
	}
	double alone = ns > 1 ? step_run(m, period, ns, NULL, x, n, hop) : 0;
	double cpu = step_run(m, period, ns, b, x, n, hop);
	s4m_batch_free(b);
	if (cpu < 0 || alone < 0)
		return 1;
	double audio = (double)(n / hop * hop) / s4m_sample_rate(m);
	printf("  %2d channel%s: %8.1f x real time per channel (%.3f CPU s for %.1f s x %d), "
	       "%.1f%% of one core for %d live channel%s",
	       ns, ns > 1 ? "s" : " ", audio * ns / cpu, cpu, audio, ns,
	       100.0 * cpu / audio, ns, ns > 1 ? "s" : "");
	if (ns > 1)
		printf("; one after the other %.1f x (together / apart %.3f)", audio * ns / alone, cpu / alone);
	printf("\n");
	return 0;
}

/* Step mode: one stepper per channel, and the relay of --restart-ms (two per channel), for 1, 4,
 * 16 and 64 channels (the relay up to 16). 0, or the exit status 1 after a message. */
static int step_mode(const struct s4m_model *m, const float *x, size_t n, double secs)
{
	if (!s4m_streamable(m)) {
		printf("\nstep mode: not available (bidirectional model)\n");
		return 0;
	}
	const int counts[] = {1, 4, 16, 64};
	int sr = s4m_sample_rate(m);
	size_t mh = s4m_hop(m), hop = (size_t)sr / 100; /* 10 ms pushes */
	size_t half = (size_t)(RELAY_MS / 2000.0 * sr / (double)mh + 0.5) * mh;
	const size_t periods[] = {0, 2 * (half ? half : mh)};
	for (int q = 0; q < 2; q++) {
		if (q == 0)
			printf("\nstep mode, one stepper per channel (%.1f s of audio per stream, 10 ms pushes, "
			       "one thread; listen's default is %s):\n", secs, PP_DEF_RESTART_MS ? "two" : "this");
		else
			printf("\nstep mode, two steppers per channel (restart-ms %d; listen's default is %s):\n",
			       RELAY_MS, PP_DEF_RESTART_MS ? "this" : "one");
		for (int c = 0; c < (q == 0 ? 4 : 3); c++) {
			int rc = step_channels(m, periods[q], counts[c], x, n, hop);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Conv mode, lone clips on one thread: whole input, and primed where the workspace allows it
 * (with the largest logit difference between the two). *clip_rate: clips per CPU second as
 * s4kws classify runs them. 0, or the exit status 1 after a message. */
static int conv_one_thread(const struct s4m_model *m, const float *clip, size_t len, double secs,
			   double *clip_rate)
{
	char err[S4K_ERR_LEN];
	int sr = s4m_sample_rate(m);
	size_t W = s4m_window(m), P = s4m_preroll(m);
	struct s4m_conv *cv = s4m_conv_new(m, len, err, sizeof err);
	if (!cv) {
		fprintf(stderr, "bench_speed: %s\n", err);
		return 1;
	}
	float logits[4096];
	if (s4m_conv_prime(cv, err, sizeof err) < 0) {
		fprintf(stderr, "bench_speed: %s\n", err);
		return 1;
	}
	lone_clip(cv, clip, len, logits); /* warm-up */
	int primed = s4m_conv_primed(cv) != 0;
	double whole_rate = clip_rate_1(cv, clip, len, 0, secs / 5);
	*clip_rate = primed ? clip_rate_1(cv, clip, len, 1, secs / 5) : whole_rate;
	printf("\nconv mode, clips of %zu samples (%.2f s window + %.2f s preroll):\n", len,
	       (double)W / sr, (double)P / sr);
	printf("  1 thread, whole input:     %8.1f clips/s = %8.1f x real time (window audio); %.2f ms per clip\n",
	       whole_rate, whole_rate * W / sr, 1e3 / whole_rate);
	if (primed) {
		float lw[4096], lp[4096];
		s4m_conv_logits(cv, clip, len, lw);
		lone_clip(cv, clip, len, lp);
		double d = 0;
		for (int k = 0; k < s4m_n_labels(m); k++)
			d = fmax(d, fabs((double)lw[k] - lp[k]));
		printf("  1 thread, primed preroll:  %8.1f clips/s = %8.1f x real time (window audio); %.2f ms per clip"
		       " (%.2fx the whole input; max |logit diff| %.2g)\n", *clip_rate, *clip_rate * W / sr,
		       1e3 / *clip_rate, *clip_rate / whole_rate, d);
	}
	s4m_conv_free(cv);
	return 0;
}

/* Conv mode, lone clips on `threads` threads, `per` clips each: wall clock of the slowest. */
static void conv_threads(const struct s4m_model *m, const float *clip, size_t len, int threads, int per)
{
	int sr = s4m_sample_rate(m);
	size_t W = s4m_window(m);
	pthread_t *tid = calloc((size_t)threads, sizeof *tid);
	struct conv_job *jobs = calloc((size_t)threads, sizeof *jobs);
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)threads);
	for (int i = 0; i < threads; i++) {
		jobs[i] = (struct conv_job){m, clip, len, per, 0, &start, 0};
		pthread_create(&tid[i], NULL, conv_worker, &jobs[i]);
	}
	int failed = 0;
	double wall = 0, c1 = cpu_s();
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		failed |= jobs[i].failed;
		wall = jobs[i].wall > wall ? jobs[i].wall : wall;
	}
	double cpu_all = cpu_s() - c1;
	double rate = (double)per * threads / wall;
	printf("  %d threads: %8.1f clips/s = %8.1f x real time (window audio), wall clock of the slowest thread"
	       " (%.1f clips per CPU second; the machine's other load counts against the wall clock)%s\n",
	       threads, rate, rate * W / sr, (double)per * threads / cpu_all, failed ? " (FAILED)" : "");
	pthread_barrier_destroy(&start);
	free(tid);
	free(jobs);
}

/* Carried chunks of twice the longest kernel over x (total samples); rt_pre: the pre-context
 * scan's x real time, which this one is compared with. */
static void scan_carried(const struct s4m_model *m, const float *x, size_t total, double rt_pre)
{
	char err[S4K_ERR_LEN];
	int sr = s4m_sample_rate(m);
	size_t cc = 2 * s4m_conv_carry_min(m);
	float *cout = malloc(cc / s4m_hop(m) * (size_t)s4m_n_labels(m) * sizeof *cout);
	struct s4m_conv *cw = cout ? s4m_conv_new(m, cc, err, sizeof err) : NULL;
	if (cw && s4m_conv_carry_init(cw, err, sizeof err) == 0) {
		double c0 = cpu_s();
		for (size_t k = 0; k + cc <= total; k += cc)
			s4m_conv_carry_scan(cw, x + k, cc, cout, cc / s4m_hop(m));
		double cpu = cpu_s() - c0;
		double rt = (double)(total / cc * cc) / sr / cpu;
		printf("conv-mode scan, carried chunks of %.2f s: %.1f x real time, 1 thread "
		       "(%.2fx the pre-context scan)\n", (double)cc / sr, rt, rt / rt_pre);
	} else {
		printf("conv-mode scan, carried chunks: not run (%s)\n", cout ? err : "out of memory");
	}
	s4m_conv_free(cw);
	free(cout);
}

/* Conv mode, a long recording (x, n samples, repeated to 2 minutes) scanned in 30 s chunks with
 * the receptive-field pre-context, then in carried chunks (causal models). */
static void scan_long(const struct s4m_model *m, const float *x, size_t n)
{
	char err[S4K_ERR_LEN];
	int sr = s4m_sample_rate(m);
	size_t W = s4m_window(m);
	size_t pre = s4m_receptive_field(m) + W - s4m_hop(m), chunk = 30 * (size_t)sr;
	chunk = chunk / s4m_hop(m) * s4m_hop(m);
	size_t total = chunk * 4, buflen = pre + chunk;
	float *longx = malloc((pre + total) * sizeof *longx);
	memset(longx, 0, pre * sizeof *longx);
	for (size_t i = 0; i < total; i++)
		longx[pre + i] = x[i % n];
	size_t steps = buflen / s4m_hop(m);
	float *out = malloc(steps * (size_t)s4m_n_labels(m) * sizeof *out);
	struct s4m_conv *cv = s4m_conv_new(m, buflen, err, sizeof err);
	if (cv && out) {
		double c0 = cpu_s();
		for (size_t k = 0; k < total; k += chunk)
			s4m_conv_scan(cv, longx + k, buflen, out, steps);
		double cpu = cpu_s() - c0;
		double rt_pre = (double)total / sr / cpu;
		printf("\nconv-mode scan of a long recording (30 s chunks + %.2f s pre-context): %.1f x real time, 1 thread\n",
		       (double)pre / sr, rt_pre);
		scan_carried(m, longx + pre, total, rt_pre); /* over the same audio */
	}
	s4m_conv_free(cv);
	free(out);
	free(longx);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: bench_speed MODEL [seconds of audio per step-mode run, default 10]\n");
		return 2;
	}
	double secs = argc == 3 ? atof(argv[2]) : 10.0;
	if (!(secs > 0 && secs < 1e5)) {
		fprintf(stderr, "bench_speed: bad number of seconds '%s'\n", argv[2]);
		return 2;
	}
	char err[S4K_ERR_LEN];
	double t0 = wall_s();
	struct s4m_model *m = s4m_load(argv[1], 1.0, err, sizeof err);
	if (!m) {
		fprintf(stderr, "bench_speed: %s\n", err);
		return 1;
	}
	double t_load = wall_s() - t0;
	int sr = s4m_sample_rate(m);
	size_t n = (size_t)(secs * sr);
	float *x = malloc(n * sizeof *x);
	if (!x)
		return 1;
	make_audio(x, n, sr);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = getenv("S4KWS_BENCH_THREADS") ? atoi(getenv("S4KWS_BENCH_THREADS")) : (int)ncpu;
	if (threads < 1)
		threads = 1;

	printf("model %s: %s, %zu parameters, loaded in %.3f s\n", argv[1],
	       s4m_meta(m, "name") ? s4m_meta(m, "name") : "(no name)", s4m_n_params(m), t_load);
	printf("FLOPs per input sample: step %.0f, conv %.0f (clip of %zu samples)\n", s4m_flops_step(m),
	       s4m_flops_conv(m, s4m_window(m) + s4m_preroll(m)), s4m_window(m) + s4m_preroll(m));
	int rc = step_mode(m, x, n, secs);
	if (rc)
		return rc;

	/* a lone clip: the start of the audio as its window, after a preroll of zeros */
	size_t W = s4m_window(m), P = s4m_preroll(m), len = W + P;
	float *clip = calloc(len, sizeof *clip);
	memcpy(clip + P, x, (W < n ? W : n) * sizeof *clip);
	double clip_rate;
	rc = conv_one_thread(m, clip, len, secs, &clip_rate);
	if (rc)
		return rc;
	if (threads > 1) /* about as long as each one-thread run: secs / 5 */
		conv_threads(m, clip, len, threads, (int)(clip_rate * secs / 5) + 1);
	scan_long(m, x, n);
	free(clip);
	free(x);
	s4m_free(m);
	return 0;
}
