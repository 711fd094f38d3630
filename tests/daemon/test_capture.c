/* test_capture.c - the real PortAudio/ALSA capture path without a sound card.
 *
 * An ALSA `type file` PCM (../shared/reference/feasibility.md section 2) replays a raw S16_LE
 * file as a capture device. The self-contained ALSA configuration is written at test time
 * and selected with ALSA_CONFIG_PATH; it must define pcm.!default or PortAudio 19.6 aborts. The
 * file is a known LCG signal padded with silence (the plugin delivers garbage after EOF), and
 * capture stops after a known number of frames (max_frames). The test checks that every sample
 * reaches the ring bit-exactly for 1 and 2 channels, that a full ring drops new frames and
 * counts overruns, that the device list shows the PCM and its rates, and that an unknown device
 * is refused with a sentence.
 *
 * A device that goes quiet mid-stream: the same PCM reads a FIFO (mkfifo) that this test keeps
 * open for writing (O_RDWR, so opening the PCM, which PortAudio does while probing, never
 * blocks) and stops feeding. PortAudio's thread then blocks in the plugin's read(): capture_poll
 * must report the stall, capture_close must return anyway (PortAudio alone would join that
 * thread until data comes), capture_open must refuse while the old stream is stuck, and once
 * data flows again the stuck close finishes and the device reopens and delivers audio.
 */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audio/capture.h"
#include "audio/ring.h"
#include "tests/check.h"

static char dir[] = "/tmp/s4kws-test-capture-XXXXXX";
static char conf[600], raw[600], fifo[600];

static const char asound[] =
	"pcm.kwsfile {\n"
	"    type file\n"
	"    slave.pcm { type null }\n"
	"    file \"/dev/null\"\n"
	"    infile { @func getenv vars [ KWS_CAPTURE_FILE ] default \"/dev/zero\" }\n"
	"    format \"raw\"\n"
	"}\n"
	"pcm.!default \"kwsfile\"\n";

static int16_t lcg_sample(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (int16_t)(*s >> 16);
}

/* Write frames*ch LCG samples then pad_frames*ch zeros; returns the samples (caller frees). */
static int16_t *write_raw(size_t frames, int ch, size_t pad_frames)
{
	size_t n = frames * (size_t)ch;
	int16_t *x = malloc(n * sizeof *x);
	uint32_t s = 12345;
	for (size_t i = 0; i < n; i++)
		x[i] = lcg_sample(&s);
	FILE *f = fopen(raw, "wb");
	fwrite(x, sizeof *x, n, f);
	int16_t *z = calloc(pad_frames * (size_t)ch, sizeof *z);
	fwrite(z, sizeof *z, pad_frames * (size_t)ch, f);
	free(z);
	fclose(f);
	return x;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 2;
	while (p < n)
		p *= 2;
	return p;
}

/* Capture `frames` frames of ch channels into a ring of cap elements (0: big enough) without
 * reading until done. Returns the ring's contents count; *out gets them. */
static size_t capture_run(int ch, size_t frames, size_t cap, float **out, struct ring *r, char *err)
{
	if (!cap)
		cap = pow2_at_least(frames * (size_t)ch);
	float *store = malloc(cap * sizeof *store);
	ring_init(r, store, cap);
	sem_t wake;
	sem_init(&wake, 0, 0);
	struct capture_params p = {.device = "kwsfile", .channels = ch, .rate = 16000,
				   .frames_per_buffer = 320, .max_frames = frames};
	*out = NULL;
	struct capture *c = capture_open(&p, r, &wake, err, 256);
	CHECK(c != NULL, "open: %s", err);
	if (!c) {
		free(store);
		return 0;
	}
	CHECK_EQ(capture_rate(c), 16000);
	CHECK(strcmp(capture_name(c), "kwsfile") == 0, "%s", capture_name(c));
	CHECK_EQ(capture_start(c, err, 256), 0);
	enum capture_state st = CAPTURE_RUNNING;
	for (int i = 0; i < 500 && st == CAPTURE_RUNNING; i++) {
		usleep(10000);
		st = capture_poll(c, err, 256);
	}
	CHECK(st == CAPTURE_DONE, "state %d: %s", st, err);
	CHECK_EQ(capture_frames(c), frames);
	int posts = 0;
	while (sem_trywait(&wake) == 0)
		posts++;
	CHECK(posts > 0, "the callback posts the wake semaphore");
	double t0 = now_s();
	capture_close(c);
	CHECK(now_s() - t0 < 0.9, "closing a finished stream took %.2f s", now_s() - t0);
	CHECK_EQ(capture_closing(), 0);
	sem_destroy(&wake);
	size_t n = ring_readable(r);
	*out = malloc((n ? n : 1) * sizeof **out);
	ring_read(r, *out, n);
	free(store);
	return n;
}

static void test_exact(int ch)
{
	char err[256];
	size_t frames = 48000; /* 3 s */
	int16_t *ref = write_raw(frames, ch, 32000);
	setenv("KWS_CAPTURE_FILE", raw, 1);
	CHECK_EQ(capture_init(err, sizeof err), 0);
	struct ring r;
	float *got;
	size_t n = capture_run(ch, frames, 0, &got, &r, err);
	CHECK_EQ(n, frames * (size_t)ch);
	size_t bad = 0, first_bad = SIZE_MAX;
	for (size_t i = 0; i < n && i < frames * (size_t)ch; i++)
		if (got[i] * 32768.0f != (float)ref[i]) {
			bad++;
			if (first_bad == SIZE_MAX)
				first_bad = i;
		}
	CHECK(bad == 0, "%d ch: %zu of %zu samples differ, first at %zu", ch, bad, n, first_bad);
	CHECK_EQ(ring_overruns(&r), 0);
	free(got);
	free(ref);
	capture_fini();
}

static void test_overrun(void)
{
	char err[256];
	size_t frames = 32000;
	int16_t *ref = write_raw(frames, 1, 16000);
	setenv("KWS_CAPTURE_FILE", raw, 1);
	capture_init(err, sizeof err);
	struct ring r;
	float *got;
	size_t n = capture_run(1, frames, 4096, &got, &r, err); /* nobody reads: the ring fills up */
	CHECK(n <= 4096 && n >= 4096 - 320, "ring holds %zu", n);
	CHECK(ring_overruns(&r) > 0, "overruns counted");
	CHECK_EQ(ring_dropped(&r) + n, frames);
	int same = 1;
	for (size_t i = 0; i < n; i++)
		same &= got[i] * 32768.0f == (float)ref[i];
	CHECK(same, "what was kept is the start of the signal (new frames are dropped)");
	free(got);
	free(ref);
	capture_fini();
}

static void test_list_and_errors(void)
{
	char err[256];
	capture_init(err, sizeof err);
	struct capture_device devs[32];
	int n = capture_list(devs, 32, err, sizeof err);
	int found = 0;
	for (int i = 0; i < n && i < 32; i++)
		if (!strcmp(devs[i].name, "kwsfile")) {
			found = 1;
			int has16k = 0;
			for (int k = 0; k < devs[i].n_rates; k++)
				has16k |= devs[i].rates[k] == 16000;
			CHECK(has16k && devs[i].max_channels >= 2, "kwsfile: %d ch, %d rates", devs[i].max_channels,
			      devs[i].n_rates);
			CHECK(!strcmp(devs[i].api, "ALSA"), "api %s", devs[i].api);
			/* the same device by index */
			char idx[16];
			snprintf(idx, sizeof idx, "%d", devs[i].index);
			struct ring r;
			static float store[4096];
			ring_init(&r, store, 4096);
			struct capture_params p = {.device = idx, .channels = 1, .rate = 16000, .frames_per_buffer = 160};
			struct capture *c = capture_open(&p, &r, NULL, err, sizeof err);
			CHECK(c && !strcmp(capture_name(c), "kwsfile"), "by index %s: %s", idx, err);
			capture_close(c);
		}
	CHECK(found, "kwsfile listed among %d devices", n);
	struct ring r;
	static float store[4096];
	ring_init(&r, store, 4096);
	struct capture_params p = {.device = "no-such-device", .channels = 1, .rate = 16000, .frames_per_buffer = 160};
	CHECK(capture_open(&p, &r, NULL, err, sizeof err) == NULL && strstr(err, "no-such-device"), "%s", err);
	p.device = "9999";
	CHECK(capture_open(&p, &r, NULL, err, sizeof err) == NULL && strstr(err, "9999"), "%s", err);
	p.device = "kwsfile";
	p.channels = 100000;
	CHECK(capture_open(&p, &r, NULL, err, sizeof err) == NULL && strstr(err, "channel"), "%s", err);
	capture_fini();
}

/* Write up to `frames` frames of 16-bit noise to the non-blocking FIFO, one period (640 bytes,
 * an atomic pipe write) at a time; returns the frames written. */
static size_t feed(int fd, size_t frames)
{
	static uint32_t s = 99;
	int16_t period[320];
	size_t done = 0;
	while (done + 320 <= frames) {
		for (int i = 0; i < 320; i++)
			period[i] = lcg_sample(&s);
		if (write(fd, period, sizeof period) != (ssize_t)sizeof period)
			break; /* full */
		done += 320;
	}
	return done;
}

static void test_stall(void)
{
	char err[256];
	CHECK(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo);
	int fd = open(fifo, O_RDWR | O_NONBLOCK);
	CHECK(fd >= 0, "open %s", fifo);
	setenv("KWS_CAPTURE_FILE", fifo, 1);
	CHECK_EQ(capture_init(err, sizeof err), 0);
	struct ring r;
	static float store[1 << 16];
	ring_init(&r, store, 1 << 16);
	struct capture_params p = {.device = "kwsfile", .channels = 1, .rate = 16000, .frames_per_buffer = 320,
				   .stall_s = 0.5};
	struct capture *c = capture_open(&p, &r, NULL, err, sizeof err);
	CHECK(c != NULL, "open on the FIFO: %s", err);
	if (!c) {
		close(fd);
		capture_fini();
		return;
	}
	CHECK_EQ(capture_start(c, err, sizeof err), 0);
	/* live: 0.4 s of audio in two bursts, read as it comes */
	enum capture_state st = CAPTURE_RUNNING;
	feed(fd, 3200);
	for (int i = 0; i < 20 && st == CAPTURE_RUNNING; i++) {
		usleep(10000);
		st = capture_poll(c, err, sizeof err);
	}
	feed(fd, 3200);
	for (int i = 0; i < 200 && st == CAPTURE_RUNNING && capture_frames(c) < 6400 - 320; i++) {
		usleep(10000);
		st = capture_poll(c, err, sizeof err);
	}
	CHECK(st == CAPTURE_RUNNING && capture_frames(c) >= 6400 - 320, "live: state %d, %llu frames: %s", st,
	      (unsigned long long)capture_frames(c), err);
	/* quiet: the FIFO stays open, nothing comes; the stall is reported after stall_s */
	double t0 = now_s();
	while (st == CAPTURE_RUNNING && now_s() - t0 < 5) {
		usleep(10000);
		st = capture_poll(c, err, sizeof err);
	}
	double dt = now_s() - t0;
	CHECK(st == CAPTURE_ERROR && strstr(err, "no audio from 'kwsfile'"), "stall: state %d: %s", st, err);
	CHECK(dt >= 0.4 && dt < 2.5, "stall reported after %.2f s (stall_s 0.5)", dt);
	/* the close returns although PortAudio's thread is blocked in read() */
	t0 = now_s();
	capture_close(c);
	dt = now_s() - t0;
	CHECK(dt < 2.0, "capture_close returned after %.2f s", dt);
	/* while the old stream is stuck, nothing opens (no PortAudio call beside the stuck close) */
	capture_fini();
	CHECK_EQ(capture_init(err, sizeof err), 0);
	c = capture_open(&p, &r, NULL, err, sizeof err);
	CHECK(c == NULL && strstr(err, "stuck") && strstr(err, "kwsfile"), "open while stuck: %s", err);
	capture_close(c);
	/* data again: the stuck close finishes (its callback writes nothing more), the device reopens */
	size_t before = ring_readable(&r);
	c = NULL;
	t0 = now_s();
	while (!c && now_s() - t0 < 5) {
		feed(fd, 320);
		usleep(20000);
		capture_fini();
		if (capture_init(err, sizeof err) == 0)
			c = capture_open(&p, &r, NULL, err, sizeof err);
	}
	CHECK(c != NULL, "reopened after %.2f s: %s", now_s() - t0, err);
	CHECK_EQ(ring_readable(&r), before);
	if (c) {
		CHECK_EQ(capture_start(c, err, sizeof err), 0);
		st = CAPTURE_RUNNING;
		t0 = now_s();
		while (st == CAPTURE_RUNNING && capture_frames(c) < 3200 && now_s() - t0 < 5) {
			feed(fd, 640);
			usleep(20000);
			st = capture_poll(c, err, sizeof err);
		}
		CHECK(st == CAPTURE_RUNNING && capture_frames(c) >= 3200, "audio again: state %d, %llu frames: %s", st,
		      (unsigned long long)capture_frames(c), err);
		capture_close(c); /* blocked in read() again once the FIFO is drained: left stuck */
	}
	t0 = now_s();
	while (capture_closing() && now_s() - t0 < 5) {
		feed(fd, 320);
		usleep(20000);
	}
	CHECK_EQ(capture_closing(), 0);
	capture_fini();
	close(fd);
	unlink(fifo);
	setenv("KWS_CAPTURE_FILE", "/dev/zero", 1);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	snprintf(conf, sizeof conf, "%s/asound.conf", dir);
	snprintf(raw, sizeof raw, "%s/input.raw", dir);
	snprintf(fifo, sizeof fifo, "%s/mic.fifo", dir);
	FILE *f = fopen(conf, "w");
	fputs(asound, f);
	fclose(f);
	setenv("ALSA_CONFIG_PATH", conf, 1);
	setenv("KWS_CAPTURE_FILE", "/dev/zero", 1);
	test_list_and_errors();
	test_exact(1);
	test_exact(2);
	test_overrun();
	test_stall();
	unlink(conf);
	unlink(raw);
	rmdir(dir);
	return CHECK_DONE();
}
