/* sse_latency.c - how long after a keyword is spoken its event reaches an SSE client.
 *
 * usage: sse_latency --s4kws BIN --stream WAV --truth CSV [--model FILE] [--block-ms 10]
 *                    [--tolerance-ms 300] [-- LISTEN_ARGS...]
 *
 * Design: the program plays the part of a sound card and of a client at once. It starts
 * `s4kws listen --input -` and writes the stream (16 kHz mono, e.g. e2e_accuracy's stream.wav) to
 * its stdin as raw S16_LE in blocks of --block-ms, each block written when its last sample is due
 * by the monotonic clock (T0 + its end), as a capture device delivers audio; meanwhile it reads
 * /v1/events and stamps each event's arrival on the same clock. A detection that matches a true
 * keyword (e2e_accuracy's truth.csv and matching: same keyword, reported end within
 * +-tolerance of the true end, one to one) has
 *     latency = arrival - (T0 + true end)
 * the wait a user sees between finishing the word and hearing of it, and its two parts:
 *     decision delay = offset - true end   (audio the detector needs after the word: model and
 *                                           post-processing, the same at any CPU speed)
 *     wall overhead  = arrival - (T0 + offset)   (delivery of the block that holds the
 *                                           deciding hop, stepping it, SSE: what CPU cost moves)
 * Prints the median, 90th percentile and maximum of each, in ms. Exit 0, or 1 after a message.
 * Not a test: it runs in real time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/daemon/client.h"

#define MAX_KW 4096

struct kw {
	char word[32];
	double end;     /* true end, s in the stream */
	int used;
};

struct ev {
	char word[32];
	double end, offset; /* s in the stream: the reported end, and when it was decided */
	double arrival;     /* s after T0 */
	int kw;             /* matched keyword or -1 */
};

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int load_truth(const char *path, struct kw *k, int max)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fprintf(stderr, "sse_latency: %s: %s\n", path, strerror(errno)), -1;
	char line[2048];
	int n = 0;
	while (fgets(line, sizeof line, f) && n < max) {
		char w[32];
		double s, e;
		if (sscanf(line, "%31[^,],%lf,%lf", w, &s, &e) == 3 && strcmp(w, "-")) {
			snprintf(k[n].word, sizeof k[n].word, "%s", w);
			k[n].end = e;
			k[n++].used = 0;
		}
	}
	fclose(f);
	return n;
}

/* Every complete "data: {...}" line in acc[0..*len) becomes an event stamped `now`; the
 * consumed bytes are removed. */
static void take_events(char *acc, size_t *len, double now, struct ev *ev, int *nev, int max)
{
	char *p = acc, *nl;
	while ((nl = memchr(p, '\n', (size_t)(acc + *len - p)))) {
		if (!strncmp(p, "data: ", 6) && *nev < max) {
			json_error_t je;
			json_t *o = json_loadb(p + 6, (size_t)(nl - p - 6), 0, &je);
			const char *w = json_string_value(json_object_get(o, "keyword"));
			if (w) {
				struct ev *e = &ev[(*nev)++];
				snprintf(e->word, sizeof e->word, "%s", w);
				e->end = json_number_value(json_object_get(o, "end"));
				e->offset = json_number_value(json_object_get(o, "offset"));
				e->arrival = now;
				e->kw = -1;
			}
			json_decref(o);
		}
		p = nl + 1;
	}
	memmove(acc, p, (size_t)(acc + *len - p));
	*len = (size_t)(acc + *len - p);
	acc[*len] = 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void stats(const char *name, double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	printf("%-16s median %6.1f ms   p90 %6.1f ms   max %6.1f ms\n", name, 1000 * v[n / 2],
	       1000 * v[(int)(0.9 * (n - 1))], 1000 * v[n - 1]);
}

/* Starts listen with its stdin on a pipe; returns its pid, *in the pipe's write end, *port. */
static pid_t start_listen(const char *bin, const char *model, char **extra, int n_extra, int *in, int *port)
{
	char pf[] = "/tmp/s4kws-lat-XXXXXX";
	int pfd = mkstemp(pf);
	if (pfd < 0)
		return -1;
	close(pfd);
	unlink(pf);
	int p[2];
	if (pipe(p) < 0)
		return -1;
	const char *av[64];
	int k = 0;
	av[k++] = bin;
	av[k++] = "listen";
	av[k++] = "--input";
	av[k++] = "-";
	av[k++] = "--port";
	av[k++] = "0";
	av[k++] = "--port-file";
	av[k++] = pf;
	if (model) {
		av[k++] = "--model";
		av[k++] = model;
	}
	for (int i = 0; i < n_extra && k < 62; i++)
		av[k++] = extra[i];
	av[k] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[0]);
		close(p[1]);
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 2);
		execv(bin, (char **)av);
		_exit(127);
	}
	close(p[0]);
	*in = p[1];
	*port = 0;
	for (int i = 0; i < 600 && !*port; i++) {
		FILE *f = fopen(pf, "r");
		if (f) {
			if (fscanf(f, "%d", port) != 1)
				*port = 0;
			fclose(f);
		}
		if (!*port)
			usleep(20000);
	}
	unlink(pf);
	return *port ? pid : -1;
}

int main(int argc, char **argv)
{
	const char *bin = NULL, *wav = NULL, *truth = NULL, *model = NULL;
	double block_ms = 10, tol = 0.3;
	int extra = argc;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--")) {
			extra = i + 1;
			break;
		} else if (!strcmp(a, "--s4kws") && v)
			bin = argv[++i];
		else if (!strcmp(a, "--stream") && v)
			wav = argv[++i];
		else if (!strcmp(a, "--truth") && v)
			truth = argv[++i];
		else if (!strcmp(a, "--model") && v)
			model = argv[++i];
		else if (!strcmp(a, "--block-ms") && v)
			block_ms = atof(argv[++i]);
		else if (!strcmp(a, "--tolerance-ms") && v)
			tol = atof(argv[++i]) / 1000;
		else {
			fprintf(stderr, "usage: sse_latency --s4kws BIN --stream WAV --truth CSV [--model FILE] "
					"[--block-ms 10] [--tolerance-ms 300] [-- LISTEN_ARGS...]\n");
			return 1;
		}
	}
	if (!bin || !wav || !truth || !(block_ms >= 1 && block_ms <= 1000)) {
		fprintf(stderr, "sse_latency: --s4kws, --stream and --truth are needed (--block-ms 1..1000)\n");
		return 1;
	}
	static struct kw kw[MAX_KW];
	int nk = load_truth(truth, kw, MAX_KW);
	SF_INFO si = {0};
	SNDFILE *sf = sf_open(wav, SFM_READ, &si);
	if (nk < 0 || !sf || si.channels != 1 || si.samplerate != 16000) {
		fprintf(stderr, "sse_latency: %s: want a 16 kHz mono file%s%s\n", wav, sf ? "" : ": ",
			sf ? "" : sf_strerror(NULL));
		return 1;
	}
	size_t n = (size_t)si.frames;
	short *pcm = malloc(n * sizeof *pcm);
	if (!pcm || sf_readf_short(sf, pcm, (sf_count_t)n) != (sf_count_t)n)
		return fprintf(stderr, "sse_latency: cannot read %s\n", wav), 1;
	sf_close(sf);

	signal(SIGPIPE, SIG_IGN);
	int in, port;
	pid_t pid = start_listen(bin, model, argv + extra, argc - extra, &in, &port);
	if (pid < 0)
		return fprintf(stderr, "sse_latency: %s listen did not start\n", bin), 1;
	int sse = sse_open(port, "/v1/events", NULL);
	if (sse < 0)
		return fprintf(stderr, "sse_latency: no SSE connection\n"), kill(pid, SIGKILL), 1;

	static struct ev ev[MAX_KW];
	int nev = 0;
	static char acc[1 << 20];
	size_t len = 0;
	size_t B = (size_t)(block_ms * 16 + 0.5), sent = 0;
	double t0 = mono_s() + 0.2, tail = 1.5; /* read on 1.5 s after the last block */
	for (;;) {
		double now = mono_s() - t0;
		double due = sent < n ? (double)(sent + (n - sent < B ? n - sent : B)) / 16000 : (double)n / 16000 + tail;
		if (now >= due) {
			if (sent >= n)
				break;
			size_t k = n - sent < B ? n - sent : B;
			if (write(in, pcm + sent, k * sizeof *pcm) != (ssize_t)(k * sizeof *pcm)) {
				fprintf(stderr, "sse_latency: listen stopped reading its stdin\n");
				break;
			}
			sent += k;
			if (sent >= n)
				close(in);
			continue;
		}
		struct pollfd p = {sse, POLLIN, 0};
		int ms = (int)ceil((due - now) * 1000);
		if (poll(&p, 1, ms > 0 ? ms : 0) > 0) {
			ssize_t r = recv(sse, acc + len, sizeof acc - 1 - len, 0);
			if (r <= 0)
				break;
			len += (size_t)r;
			acc[len] = 0;
			take_events(acc, &len, mono_s() - t0, ev, &nev, MAX_KW);
		}
	}
	close(sse);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);

	/* match as e2e_accuracy does: each event to the nearest unused true end of its keyword */
	static double lat[MAX_KW], dec[MAX_KW], wall[MAX_KW];
	int m = 0;
	for (int e = 0; e < nev; e++) {
		int best = -1;
		for (int k = 0; k < nk; k++)
			if (!kw[k].used && !strcmp(kw[k].word, ev[e].word) && fabs(kw[k].end - ev[e].end) <= tol &&
			    (best < 0 || fabs(kw[k].end - ev[e].end) < fabs(kw[best].end - ev[e].end)))
				best = k;
		if (best < 0)
			continue;
		kw[best].used = 1;
		lat[m] = ev[e].arrival - kw[best].end;
		dec[m] = ev[e].offset - kw[best].end;
		wall[m] = ev[e].arrival - ev[e].offset;
		m++;
	}
	printf("%d keywords, %d events, %d matched (blocks of %.0f ms, %.1f s of audio)\n", nk, nev, m,
	       block_ms, (double)n / 16000);
	if (!m)
		return fprintf(stderr, "sse_latency: no event matched a keyword\n"), 1;
	stats("latency", lat, m);
	stats("decision delay", dec, m);
	stats("wall overhead", wall, m);
	free(pcm);
	return 0;
}
