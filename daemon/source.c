/* source.c - the live daemon's audio input (see source.h).
 *
 * DESIGN. One object, one owner: the main thread opens, starts, supervises and stops it; the
 * file/stdin thread or PortAudio's callback writes the ring; any thread may read the published
 * state, which lives under `mu` (the HTTP threads never touch the capture object or the file).
 * A file or stdin source waits for room in the ring (2 ms naps) instead of dropping audio, and
 * with `realtime` sleeps until each block is due. A device is reopened after errors and stalls
 * with a doubling back-off (0.5 s up to retry_max) and a rescan of PortAudio's device list, so
 * that a device unplugged and plugged in again is found; the state says "running" only once the
 * reopened stream has delivered audio. --duration counts input audio across reopens.
 */
#define _GNU_SOURCE
#include "source.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audio/audiofile.h"
#include "audio/capture.h"
#include "common/clock.h"
#include "log.h"

static const char *const kind_names[] = {"device", "file", "stdin", "none"};

struct source {
	struct source_config c;    /* strings point at the copies below */
	char input[1024];
	char device[1024];
	enum source_kind kind;
	int C;                     /* channels */
	int rate;                  /* model rate */
	int realtime;
	struct ring *ring;
	sem_t *wake;
	struct detector *det;
	/* file and stdin */
	struct af_file *af;
	int af_mix;                /* read the file as a mono mix */
	int in_rate;
	uint64_t max_frames;       /* --duration in input frames (0: none) */
	pthread_t thread;
	int started;
	_Atomic int stop;
	/* device (main thread) */
	struct capture *cap;
	int cap_up;                /* the open stream has delivered audio */
	double backoff, retry_at;
	/* published state (mu) */
	pthread_mutex_t mu;
	char state[16];
	char state_err[S4K_ERR_LEN];
	char in_name[1024];
	uint64_t retries;
	uint64_t in_frames;        /* frames read (device: by closed streams) */
	int src_done;
	int pub_rate;
	uint64_t pub_frames;       /* device: in_frames + the open stream's frames */
	uint64_t overflows, pub_overflows; /* device: paInputOverflow callbacks (closed, all) */
};

static void set_state(struct source *s, const char *state, const char *err)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->state, sizeof s->state, "%s", state);
	snprintf(s->state_err, sizeof s->state_err, "%s", err ? err : "");
	pthread_mutex_unlock(&s->mu);
}

/* ---- file and stdin ---- */

/* Wait for room for n elements; 0, or -1 when asked to stop. */
static int wait_room(struct source *s, size_t n)
{
	while (ring_writable(s->ring) < n) {
		if (atomic_load(&s->stop))
			return -1;
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Write frames to the ring (waiting for room), pace them if --realtime. 0 or -1 (stop). */
static int emit_frames(struct source *s, const float *x, size_t frames, double t_start, uint64_t *sent)
{
	const size_t C = (size_t)s->C;
	while (frames) {
		size_t n = frames < SOURCE_BLOCK ? frames : SOURCE_BLOCK;
		if (wait_room(s, n * C) < 0)
			return -1;
		ring_write(s->ring, x, n * C);
		sem_post(s->wake);
		*sent += n;
		pthread_mutex_lock(&s->mu);
		s->in_frames = *sent;
		pthread_mutex_unlock(&s->mu);
		x += n * C;
		frames -= n;
		if (s->realtime) {
			double due = t_start + (double)*sent / s->in_rate;
			double now = s4k_mono_s();
			if (due > now) {
				struct timespec ts = {(time_t)(due - now), (long)(fmod(due - now, 1.0) * 1e9)};
				nanosleep(&ts, NULL);
			}
		}
	}
	return 0;
}

/* The end of a file or stdin source: report a failure (err, or NULL at a clean end), mark the
 * source done and let the detector drain what is left in the ring. */
static void source_done(struct source *s, const char *err)
{
	if (err) {
		log_msg(LOGL_ERROR, "input %s: %s", strcmp(s->input, "-") ? s->input : "(stdin)", err);
		set_state(s, "error", err);
	}
	pthread_mutex_lock(&s->mu);
	s->src_done = 1;
	pthread_mutex_unlock(&s->mu);
	detector_input_done(s->det);
}

static void *file_thread(void *arg)
{
	struct source *s = arg;
	const size_t C = (size_t)s->C;
	float *buf = malloc((size_t)SOURCE_BLOCK * C * sizeof *buf);
	char err[S4K_ERR_LEN] = "";
	uint64_t sent = 0;
	double t_start = s4k_mono_s();
	long n = buf ? 1 : -ENOMEM;
	if (!buf)
		snprintf(err, sizeof err, "out of memory");
	while (n > 0 && !atomic_load(&s->stop)) {
		size_t want = SOURCE_BLOCK;
		if (s->max_frames && s->max_frames - sent < want)
			want = (size_t)(s->max_frames - sent);
		if (want == 0)
			break;
		n = s->af_mix ? af_read_mono(s->af, buf, want, err, sizeof err) : af_read(s->af, buf, want, err, sizeof err);
		if (n > 0 && emit_frames(s, buf, (size_t)n, t_start, &sent) < 0)
			break;
	}
	free(buf);
	uint64_t bad = af_scrubbed(s->af);
	if (bad) /* the file's own fault, said once: the detections rest on the rest of it */
		log_msg(LOGL_WARN, "%s: %llu sample%s not a finite number (or beyond +-64) replaced by zeros",
			s->input, (unsigned long long)bad, bad == 1 ? "" : "s");
	source_done(s, n < 0 ? err : NULL);
	return NULL;
}

static void *stdin_thread(void *arg)
{
	struct source *s = arg;
	const size_t C = (size_t)s->C;
	const size_t frame_bytes = 2 * C;
	unsigned char *raw = malloc((size_t)SOURCE_BLOCK * frame_bytes);
	float *buf = malloc((size_t)SOURCE_BLOCK * C * sizeof *buf);
	size_t have = 0; /* bytes in raw */
	uint64_t sent = 0;
	double t_start = s4k_mono_s();
	char err[S4K_ERR_LEN] = "";
	int failed = !raw || !buf;
	if (failed)
		snprintf(err, sizeof err, "out of memory");
	while (!failed && !atomic_load(&s->stop)) {
		struct pollfd p = {STDIN_FILENO, POLLIN, 0};
		int pr = poll(&p, 1, 200);
		if (pr < 0 && errno != EINTR) {
			snprintf(err, sizeof err, "cannot read stdin: %s", strerror(errno));
			failed = 1;
			break;
		}
		if (pr <= 0)
			continue;
		ssize_t r = read(STDIN_FILENO, raw + have, (size_t)SOURCE_BLOCK * frame_bytes - have);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(err, sizeof err, "cannot read stdin: %s", strerror(errno));
			failed = 1;
			break;
		}
		if (r == 0) {
			if (have) /* a partial last frame cannot be played: say so, the rest counted */
				log_msg(LOGL_WARN, "stdin ended inside a frame: its last %zu byte%s (less than "
					"one %zu-byte S16_LE frame of %zu channel%s) ignored", have,
					have == 1 ? "" : "s", frame_bytes, C, C == 1 ? "" : "s");
			break;
		}
		have += (size_t)r;
		size_t frames = have / frame_bytes;
		if (s->max_frames && s->max_frames - sent < frames)
			frames = (size_t)(s->max_frames - sent);
		for (size_t i = 0; i < frames * C; i++) {
			int16_t v = (int16_t)(raw[2 * i] | raw[2 * i + 1] << 8); /* S16_LE */
			buf[i] = (float)v * (1.0f / 32768.0f);
		}
		if (emit_frames(s, buf, frames, t_start, &sent) < 0)
			break;
		memmove(raw, raw + frames * frame_bytes, have - frames * frame_bytes);
		have -= frames * frame_bytes;
		if (s->max_frames && sent >= s->max_frames)
			break;
	}
	free(raw);
	free(buf);
	source_done(s, failed ? err : NULL);
	return NULL;
}

/* ---- capture device (main thread) ---- */

static int device_open(struct source *s, char *err, size_t errlen)
{
	/* --duration counts audio since the start, across reopens (at the last rate) */
	double left = s->c.duration > 0 ? s->c.duration - (double)s->in_frames / s->in_rate : 0;
	struct capture_params p = {.device = s->c.device, .channels = s->C, .rate = s->rate,
				   .frames_per_buffer = (unsigned)s->c.frames_per_buffer,
				   .max_s = left > 0 ? left : 0, .stall_s = s->c.device_stall};
	struct capture *c = capture_open(&p, s->ring, s->wake, err, errlen);
	if (!c)
		return -ENODEV;
	s->in_rate = capture_rate(c);
	detector_set_input(s->det, s->in_rate, RS_MEDIUM);
	if (capture_start(c, err, errlen) < 0) {
		capture_close(c);
		return -EIO;
	}
	s->cap = c;
	s->cap_up = 0; /* the state says "running" once audio arrives (source_supervise) */
	pthread_mutex_lock(&s->mu);
	snprintf(s->in_name, sizeof s->in_name, "%s", capture_name(c));
	s->pub_rate = s->in_rate;
	pthread_mutex_unlock(&s->mu);
	if (s->in_rate != s->rate)
		log_msg(LOGL_INFO, "capturing from '%s' at %d Hz, resampled to %d Hz", capture_name(c), s->in_rate,
			s->rate);
	else
		log_msg(LOGL_INFO, "capturing %d channel%s from '%s' at %d Hz", s->C, s->C == 1 ? "" : "s",
			capture_name(c), s->in_rate);
	return 0;
}

static void device_failed(struct source *s, const char *why)
{
	s->backoff = s->backoff > 0 ? s->backoff * 2 : 0.5;
	if (s->backoff > s->c.retry_max)
		s->backoff = s->c.retry_max;
	/* reported before the close, which can take a while with a driver that hangs */
	set_state(s, "error", why);
	log_msg(LOGL_ERROR, "%s; retrying in %.1f s", why, s->backoff);
	if (s->cap) {
		pthread_mutex_lock(&s->mu);
		s->in_frames += capture_frames(s->cap);
		s->overflows += capture_overflows(s->cap);
		s->pub_frames = s->in_frames;
		pthread_mutex_unlock(&s->mu);
	}
	capture_close(s->cap); /* at most about a second, see audio/capture.h */
	s->cap = NULL;
	s->retry_at = s4k_mono_s() + s->backoff;
}

void source_supervise(struct source *s)
{
	if (s->kind != SOURCE_DEVICE)
		return;
	char err[S4K_ERR_LEN];
	if (s->cap) {
		enum capture_state cs = capture_poll(s->cap, err, sizeof err);
		/* counters for status: the HTTP threads never touch the capture object */
		pthread_mutex_lock(&s->mu);
		s->pub_frames = s->in_frames + capture_frames(s->cap);
		s->pub_overflows = s->overflows + capture_overflows(s->cap);
		pthread_mutex_unlock(&s->mu);
		if (cs == CAPTURE_DONE && !s->src_done) {
			pthread_mutex_lock(&s->mu);
			s->src_done = 1;
			s->in_frames += capture_frames(s->cap);
			s->overflows += capture_overflows(s->cap);
			pthread_mutex_unlock(&s->mu);
			capture_close(s->cap);
			s->cap = NULL;
			detector_input_done(s->det);
			log_msg(LOGL_INFO, "capture reached --duration %.3f s", s->c.duration);
		} else if (cs == CAPTURE_ERROR) {
			device_failed(s, err);
		} else if (cs == CAPTURE_RUNNING) {
			uint64_t f = capture_frames(s->cap);
			if (!s->cap_up && f > 0) {
				s->cap_up = 1;
				set_state(s, "running", NULL);
				if (s->backoff > 0)
					log_msg(LOGL_INFO, "'%s' delivers audio again", capture_name(s->cap));
			}
			if (s->backoff > 0 && f > (uint64_t)s->in_rate)
				s->backoff = 0; /* a second of audio since the reopen: the device works again */
		}
		return;
	}
	if (s->src_done || s4k_mono_s() < s->retry_at)
		return;
	/* rescan: a device that was unplugged and plugged in again gets a new PortAudio list */
	pthread_mutex_lock(&s->mu);
	s->retries++;
	pthread_mutex_unlock(&s->mu);
	capture_fini();
	if (capture_init(err, sizeof err) < 0 || device_open(s, err, sizeof err) < 0)
		device_failed(s, err);
}

/* Decide the kind and open a file (not started). 0 or -errno with err. */
static int open_input(struct source *s, char *err, size_t errlen)
{
	const struct source_config *c = &s->c;
	if (c->input[0] && c->device[0]) {
		s4k_seterr(err, errlen, "--device and --input exclude each other: capture from a device or read an input");
		return -EINVAL;
	}
	if (!c->input[0]) {
		s->kind = SOURCE_DEVICE;
		s->C = c->channels ? c->channels : 1;
		s->in_rate = s->pub_rate = s->rate;
		return 0;
	}
	if (!strcmp(c->input, "none")) {
		/* no local audio: the daemon serves Wyoming clients (and HTTP) only */
		s->kind = SOURCE_NONE;
		s->C = 1;
		s->in_rate = s->pub_rate = s->rate;
		snprintf(s->in_name, sizeof s->in_name, "none");
		return 0;
	}
	if (!strcmp(c->input, "-")) {
		s->kind = SOURCE_STDIN;
		s->C = c->channels ? c->channels : 1;
		s->in_rate = c->input_rate ? c->input_rate : s->rate;
		snprintf(s->in_name, sizeof s->in_name, "stdin (raw S16_LE)");
	} else {
		s->kind = SOURCE_FILE;
		char e[S4K_ERR_LEN];
		s->af = af_open(c->input, e, sizeof e);
		if (!s->af) { /* name the file, as classify does */
			s4k_seterr(err, errlen, "--input %s: %s", c->input, e);
			return -EINVAL;
		}
		const struct af_info *fi = af_info(s->af);
		s->in_rate = fi->rate;
		if (!c->channels || c->channels == fi->channels) {
			s->C = fi->channels;
		} else if (c->channels == 1) {
			s->C = 1;
			s->af_mix = 1;
			if (af_set_output(s->af, AF_MIX, 0, RS_BEST, err, errlen) < 0)
				return -EINVAL;
		} else {
			s4k_seterr(err, errlen, "%s has %d channels; --channels must be 0, 1 (mix) or %d", c->input,
				   fi->channels, fi->channels);
			return -EINVAL;
		}
		if (s->C > 64) {
			s4k_seterr(err, errlen, "%s has %d channels; at most 64 are supported", c->input, s->C);
			return -EINVAL;
		}
		snprintf(s->in_name, sizeof s->in_name, "%s", c->input);
	}
	if (c->duration > 0)
		s->max_frames = (uint64_t)llround(c->duration * s->in_rate);
	s->pub_rate = s->in_rate;
	return 0;
}


struct source *source_open(const struct source_config *c, char *err, size_t errlen)
{
	struct source *s = calloc(1, sizeof *s);
	if (!s) {
		s4k_seterr(err, errlen, "out of memory");
		return NULL;
	}
	s->c = *c;
	snprintf(s->input, sizeof s->input, "%s", c->input ? c->input : "");
	snprintf(s->device, sizeof s->device, "%s", c->device ? c->device : "");
	s->c.input = s->input;
	s->c.device = s->device;
	s->rate = c->rate;
	s->realtime = c->realtime;
	pthread_mutex_init(&s->mu, NULL);
	snprintf(s->state, sizeof s->state, "starting");
	if (open_input(s, err, errlen) < 0) {
		source_free(s);
		return NULL;
	}
	return s;
}

enum source_kind source_kind(const struct source *s) { return s->kind; }
int source_channels(const struct source *s) { return s->C; }
int source_rate(const struct source *s) { return s->in_rate; }

int source_start(struct source *s, struct ring *ring, sem_t *wake, struct detector *det, char *err,
		 size_t errlen)
{
	s->ring = ring;
	s->wake = wake;
	s->det = det;
	if (s->kind == SOURCE_DEVICE) {
		capture_set_quiet(log_get_level() < LOGL_DEBUG); /* ALSA/JACK chatter only for debugging */
		if (capture_init(err, errlen) < 0 || device_open(s, err, errlen) < 0)
			device_failed(s, err); /* keep serving; the main loop retries */
		return 0;
	}
	if (s->kind == SOURCE_NONE) {
		set_state(s, "none", NULL);
		return 0;
	}
	if (s->in_rate != s->rate)
		log_msg(LOGL_INFO, "%s: %d Hz, resampled to %d Hz", s->in_name, s->in_rate, s->rate);
	set_state(s, "running", NULL);
	int e = pthread_create(&s->thread, NULL, s->kind == SOURCE_FILE ? file_thread : stdin_thread, s);
	if (e) {
		s4k_seterr(err, errlen, "cannot start the input thread: %s", strerror(e));
		return -e;
	}
	s->started = 1;
	return 0;
}

void source_status(struct source *s, int eof, struct source_status *out)
{
	pthread_mutex_lock(&s->mu);
	out->kind = kind_names[s->kind];
	out->failed = !strcmp(s->state, "error");
	/* "eof" only once everything read has also been processed */
	snprintf(out->state, sizeof out->state, "%s", s->src_done && eof && !out->failed ? "eof" : s->state);
	memcpy(out->error, s->state_err, sizeof out->error);
	memcpy(out->name, s->in_name, sizeof out->name);
	out->rate = s->pub_rate;
	out->frames = s->kind == SOURCE_DEVICE ? s->pub_frames : s->in_frames;
	out->retries = s->retries;
	out->overflows = s->pub_overflows;
	out->done = s->src_done;
	pthread_mutex_unlock(&s->mu);
}

void source_stop(struct source *s)
{
	if (!s)
		return;
	if (s->started) {
		atomic_store(&s->stop, 1);
		pthread_join(s->thread, NULL);
		s->started = 0;
	}
	if (s->cap) {
		capture_close(s->cap);
		s->cap = NULL;
	}
	if (s->kind == SOURCE_DEVICE && s->ring)
		capture_fini();
	s->ring = NULL;
}

void source_free(struct source *s)
{
	if (!s)
		return;
	source_stop(s);
	af_close(s->af);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
