/* cmd_listen.c - `s4kws listen` (the live daemon) and `s4kws devices`.
 *
 * DESIGN. Threads and who owns what:
 *   - main thread: parses the configuration, loads the model, builds everything, then loops on
 *     sigtimedwait() (SIGINT/SIGTERM/SIGHUP are blocked in every thread, so signals are only
 *     ever seen here, as plain events) every 200 ms, supervising the input: it polls the
 *     capture stream, and on an error (stream error, stopped, or no audio for device-stall
 *     seconds) publishes the error, closes the stream (a close stuck in the driver is left to
 *     finish on its own thread after about a second, audio/capture.h), rescans the devices and
 *     reopens with doubling back-off, while HTTP keeps serving; the input state is "running"
 *     only once the (re)opened stream has delivered audio;
 *   - input: either PortAudio's callback thread (audio/capture.c) or a source thread here that
 *     reads a file (audio/audiofile.h, any libsndfile format) or raw S16_LE stdin, optionally
 *     paced at real speed, and waits for room in the ring rather than dropping;
 *   - the inference thread (daemon/detector.c) drains the ring, resamples to the model rate if
 *     needed and runs one s4m_relay (one stepper, or two taking turns) per channel over the
 *     shared model, on `inference-threads` threads;
 *   - with --save-dir, the clip writer (daemon/saver.c) turns detections' audio into WAV files;
 *   - with --on-detect, the hook thread (daemon/hook.c) follows the events store and runs the
 *     command for each detection;
 *   - with --wyoming-port, the Wyoming server (daemon/wyoming.c): an acceptor thread and one
 *     thread per client, each with its own stepper over the shared model;
 *   - libmicrohttpd's threads (daemon/http.c) answer requests from the events store and from
 *     the hooks below, which read published copies (detector_stats, the input state under
 *     `mu`) and, for POST /v1/classify, build their own conv workspace from the shared model.
 * Cross-thread traffic is the ring, the wake semaphore, the events store and the two
 * mutex-protected snapshots. Shutdown is ordered: stop the input, let the detector drain the
 * ring and stop, flush and close the events log (which ends SSE streams and lets the hook run
 * what is pending, bounded by its timeout), stop HTTP and the Wyoming server, write the queued
 * clips, free (nothing the HTTP hooks read is freed while they can run).
 * A second SIGINT during shutdown kills the process (default action restored).
 */
#define _GNU_SOURCE
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/clock.h"
#include "audio/audiofile.h"
#include "audio/capture.h"
#include "audio/resample.h"
#include "audio/ring.h"
#include "clip.h"
#include "config.h"
#include "detector.h"
#include "events.h"
#include "hook.h"
#include "isolate.h"
#include "http.h"
#include "log.h"
#include "model/s4m.h"
#include "postproc.h"
#include "scan.h"
#include "wyoming.h"

#define SRC_BLOCK 2048            /* frames per source read */
#define CLASSIFY_MAX_S 600.0      /* longest decoded POST /v1/classify upload */

enum input_kind { IN_DEVICE, IN_FILE, IN_STDIN, IN_NONE };
static const char *const kind_names[] = {"device", "file", "stdin", "none"};

struct app {
	struct cfg cfg;            /* main thread only once threads run (SIGHUP replaces it) */
	/* copies the other threads read, fixed at start */
	int realtime;
	char input[1024];
	char log_path[1024];
	struct saver *saver;       /* --save-dir, or NULL; its own thread */
	char save_dir[1024];
	struct hook *hook;         /* --on-detect, or NULL; its own thread */
	struct wyoming *wy;        /* --wyoming-port, or NULL; its own threads */
	char on_detect[1024];
	char cfg_wy_bind[64];      /* copy of wyoming-bind for status */
	char (*ch_names)[EV_NAME_LEN]; /* (C) --channel-names, or NULL */
	const char **ch_name_ptr;  /* (C) pointers into ch_names, for the detector */
	int argc;
	char **argv;
	/* model (immutable after start) */
	struct s4m_model *m;
	char model_src[1024];
	int K;
	const char **labels;       /* (K) */
	size_t hop;                /* model-rate samples per posterior */
	size_t period;             /* stepper restart period, model-rate samples (0 = never) */
	int rate;                  /* model rate */
	int C;                     /* channels */
	/* detection settings: kw under mu (the classify hook copies them) */
	struct pp_kw *kw;          /* (K) */
	struct pp_config pc;
	/* plumbing */
	float *ring_store;
	struct ring ring;
	sem_t wake;
	struct events *ev;
	struct detector *det;
	struct http *http;
	/* input */
	enum input_kind kind;
	struct af_file *af;
	int af_mix;                /* read the file as a mono mix */
	int in_rate;
	uint64_t max_frames;       /* --duration in input frames (0: none) */
	pthread_t src;
	int src_started;
	_Atomic int src_stop;
	struct capture *cap;
	int cap_up;                /* the open stream has delivered audio */
	double backoff, retry_at;
	/* published input state (mu) */
	pthread_mutex_t mu;
	char state[16];            /* "starting", "running", "eof", "error"; a device is "running"
	                              only once its stream delivers audio */
	char state_err[S4K_ERR_LEN];
	char in_name[1024];
	uint64_t retries;
	uint64_t in_frames;        /* frames read from the input (device: by closed streams) */
	int src_done;
	int pub_rate;              /* input rate, for status */
	uint64_t pub_frames;       /* device: in_frames + the open stream's frames */
	uint64_t overflows, pub_overflows; /* device: paInputOverflow callbacks (closed, all) */
	double t0;                 /* monotonic start */
};

static void set_state(struct app *a, const char *state, const char *err)
{
	pthread_mutex_lock(&a->mu);
	snprintf(a->state, sizeof a->state, "%s", state);
	snprintf(a->state_err, sizeof a->state_err, "%s", err ? err : "");
	pthread_mutex_unlock(&a->mu);
}

/* ---- detection settings from the configuration ---- */

static int build_pp(const struct cfg *c, const struct app *a, struct pp_kw *kw, struct pp_config *pc,
		    char *err, size_t errlen)
{
	if (cfg_check_keywords(c, a->labels, a->K, err, errlen) < 0)
		return -EINVAL;
	cfg_pp_config(c, a->labels, s4m_thresholds(a->m), a->K, a->rate, a->hop, kw, pc);
	return pp_validate(pc, err, errlen);
}

/* ---- file and stdin sources ---- */

/* Wait for room for n elements; 0, or -1 when asked to stop. */
static int wait_room(struct app *a, size_t n)
{
	while (ring_writable(&a->ring) < n) {
		if (atomic_load(&a->src_stop))
			return -1;
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Write frames to the ring (waiting for room), pace them if --realtime. 0 or -1 (stop). */
static int emit_frames(struct app *a, const float *x, size_t frames, double t_start, uint64_t *sent)
{
	const size_t C = (size_t)a->C;
	while (frames) {
		size_t n = frames < SRC_BLOCK ? frames : SRC_BLOCK;
		if (wait_room(a, n * C) < 0)
			return -1;
		ring_write(&a->ring, x, n * C);
		sem_post(&a->wake);
		*sent += n;
		pthread_mutex_lock(&a->mu);
		a->in_frames = *sent;
		pthread_mutex_unlock(&a->mu);
		x += n * C;
		frames -= n;
		if (a->realtime) {
			double due = t_start + (double)*sent / a->in_rate;
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
static void source_done(struct app *a, const char *err)
{
	if (err) {
		log_msg(LOGL_ERROR, "input %s: %s", strcmp(a->input, "-") ? a->input : "(stdin)", err);
		set_state(a, "error", err);
	}
	pthread_mutex_lock(&a->mu);
	a->src_done = 1;
	pthread_mutex_unlock(&a->mu);
	detector_input_done(a->det);
}

static void *file_thread(void *arg)
{
	struct app *a = arg;
	const size_t C = (size_t)a->C;
	float *buf = malloc((size_t)SRC_BLOCK * C * sizeof *buf);
	char err[S4K_ERR_LEN] = "";
	uint64_t sent = 0;
	double t_start = s4k_mono_s();
	long n = buf ? 1 : -ENOMEM;
	if (!buf)
		snprintf(err, sizeof err, "out of memory");
	while (n > 0 && !atomic_load(&a->src_stop)) {
		size_t want = SRC_BLOCK;
		if (a->max_frames && a->max_frames - sent < want)
			want = (size_t)(a->max_frames - sent);
		if (want == 0)
			break;
		n = a->af_mix ? af_read_mono(a->af, buf, want, err, sizeof err) : af_read(a->af, buf, want, err, sizeof err);
		if (n > 0 && emit_frames(a, buf, (size_t)n, t_start, &sent) < 0)
			break;
	}
	free(buf);
	uint64_t bad = af_scrubbed(a->af);
	if (bad) /* the file's own fault, said once: the detections rest on the rest of it */
		log_msg(LOGL_WARN, "%s: %llu sample%s not a finite number (or beyond +-64) replaced by zeros",
			a->input, (unsigned long long)bad, bad == 1 ? "" : "s");
	source_done(a, n < 0 ? err : NULL);
	return NULL;
}

static void *stdin_thread(void *arg)
{
	struct app *a = arg;
	const size_t C = (size_t)a->C;
	const size_t frame_bytes = 2 * C;
	unsigned char *raw = malloc((size_t)SRC_BLOCK * frame_bytes);
	float *buf = malloc((size_t)SRC_BLOCK * C * sizeof *buf);
	size_t have = 0; /* bytes in raw */
	uint64_t sent = 0;
	double t_start = s4k_mono_s();
	char err[S4K_ERR_LEN] = "";
	int failed = !raw || !buf;
	if (failed)
		snprintf(err, sizeof err, "out of memory");
	while (!failed && !atomic_load(&a->src_stop)) {
		struct pollfd p = {STDIN_FILENO, POLLIN, 0};
		int pr = poll(&p, 1, 200);
		if (pr < 0 && errno != EINTR) {
			snprintf(err, sizeof err, "cannot read stdin: %s", strerror(errno));
			failed = 1;
			break;
		}
		if (pr <= 0)
			continue;
		ssize_t r = read(STDIN_FILENO, raw + have, (size_t)SRC_BLOCK * frame_bytes - have);
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
		if (a->max_frames && a->max_frames - sent < frames)
			frames = (size_t)(a->max_frames - sent);
		for (size_t i = 0; i < frames * C; i++) {
			int16_t v = (int16_t)(raw[2 * i] | raw[2 * i + 1] << 8); /* S16_LE */
			buf[i] = (float)v * (1.0f / 32768.0f);
		}
		if (emit_frames(a, buf, frames, t_start, &sent) < 0)
			break;
		memmove(raw, raw + frames * frame_bytes, have - frames * frame_bytes);
		have -= frames * frame_bytes;
		if (a->max_frames && sent >= a->max_frames)
			break;
	}
	free(raw);
	free(buf);
	source_done(a, failed ? err : NULL);
	return NULL;
}

/* ---- capture device supervision (main thread) ---- */

static int device_open(struct app *a, char *err, size_t errlen)
{
	/* --duration counts audio since the start, across reopens (at the last rate) */
	double left = a->cfg.duration > 0 ? a->cfg.duration - (double)a->in_frames / a->in_rate : 0;
	struct capture_params p = {.device = a->cfg.device, .channels = a->C, .rate = a->rate,
				   .frames_per_buffer = (unsigned)a->cfg.frames_per_buffer,
				   .max_s = left > 0 ? left : 0, .stall_s = a->cfg.device_stall};
	struct capture *c = capture_open(&p, &a->ring, &a->wake, err, errlen);
	if (!c)
		return -ENODEV;
	a->in_rate = capture_rate(c);
	detector_set_input(a->det, a->in_rate, RS_MEDIUM);
	if (capture_start(c, err, errlen) < 0) {
		capture_close(c);
		return -EIO;
	}
	a->cap = c;
	a->cap_up = 0; /* the state says "running" once audio arrives (device_supervise) */
	pthread_mutex_lock(&a->mu);
	snprintf(a->in_name, sizeof a->in_name, "%s", capture_name(c));
	a->pub_rate = a->in_rate;
	pthread_mutex_unlock(&a->mu);
	if (a->in_rate != a->rate)
		log_msg(LOGL_INFO, "capturing from '%s' at %d Hz, resampled to %d Hz", capture_name(c), a->in_rate,
			a->rate);
	else
		log_msg(LOGL_INFO, "capturing %d channel%s from '%s' at %d Hz", a->C, a->C == 1 ? "" : "s",
			capture_name(c), a->in_rate);
	return 0;
}

static void device_failed(struct app *a, const char *why)
{
	a->backoff = a->backoff > 0 ? a->backoff * 2 : 0.5;
	if (a->backoff > a->cfg.retry_max)
		a->backoff = a->cfg.retry_max;
	/* reported before the close, which can take a while with a driver that hangs */
	set_state(a, "error", why);
	log_msg(LOGL_ERROR, "%s; retrying in %.1f s", why, a->backoff);
	if (a->cap) {
		pthread_mutex_lock(&a->mu);
		a->in_frames += capture_frames(a->cap);
		a->overflows += capture_overflows(a->cap);
		a->pub_frames = a->in_frames;
		pthread_mutex_unlock(&a->mu);
	}
	capture_close(a->cap); /* at most about a second, see audio/capture.h */
	a->cap = NULL;
	a->retry_at = s4k_mono_s() + a->backoff;
}

static void device_supervise(struct app *a)
{
	char err[S4K_ERR_LEN];
	if (a->cap) {
		enum capture_state s = capture_poll(a->cap, err, sizeof err);
		/* counters for status: the HTTP threads never touch the capture object */
		pthread_mutex_lock(&a->mu);
		a->pub_frames = a->in_frames + capture_frames(a->cap);
		a->pub_overflows = a->overflows + capture_overflows(a->cap);
		pthread_mutex_unlock(&a->mu);
		if (s == CAPTURE_DONE && !a->src_done) {
			pthread_mutex_lock(&a->mu);
			a->src_done = 1;
			a->in_frames += capture_frames(a->cap);
			a->overflows += capture_overflows(a->cap);
			pthread_mutex_unlock(&a->mu);
			capture_close(a->cap);
			a->cap = NULL;
			detector_input_done(a->det);
			log_msg(LOGL_INFO, "capture reached --duration %.3f s", a->cfg.duration);
		} else if (s == CAPTURE_ERROR) {
			device_failed(a, err);
		} else if (s == CAPTURE_RUNNING) {
			uint64_t f = capture_frames(a->cap);
			if (!a->cap_up && f > 0) {
				a->cap_up = 1;
				set_state(a, "running", NULL);
				if (a->backoff > 0)
					log_msg(LOGL_INFO, "'%s' delivers audio again", capture_name(a->cap));
			}
			if (a->backoff > 0 && f > (uint64_t)a->in_rate)
				a->backoff = 0; /* a second of audio since the reopen: the device works again */
		}
		return;
	}
	if (a->src_done || s4k_mono_s() < a->retry_at)
		return;
	/* rescan: a device that was unplugged and plugged in again gets a new PortAudio list */
	pthread_mutex_lock(&a->mu);
	a->retries++;
	pthread_mutex_unlock(&a->mu);
	capture_fini();
	if (capture_init(err, sizeof err) < 0 || device_open(a, err, sizeof err) < 0)
		device_failed(a, err);
}

/* Once a file or stdin input has been read and processed: one info line with the detections
 * by keyword, the audio length and the speed. Returns 1 when it was written (or the input
 * failed: nothing to summarise), else 0. Main thread. */
static int input_summary(struct app *a, double wall_s)
{
	struct det_stats s;
	detector_stats(a->det, &s);
	pthread_mutex_lock(&a->mu);
	int done = a->src_done, failed = !strcmp(a->state, "error");
	pthread_mutex_unlock(&a->mu);
	if (failed)
		return 1;
	if (!done || !s.eof)
		return 0;
	struct ev_counts cnt[512];
	size_t n = events_counts(a->ev, cnt, 512);
	char by[1024] = "";
	size_t bl = 0;
	for (int k = 0; k < a->K; k++) { /* per keyword, all channels together, in label order */
		uint64_t c = 0;
		for (size_t i = 0; i < n; i++)
			c += strcmp(cnt[i].keyword, a->labels[k]) ? 0 : cnt[i].count;
		if (c && bl < sizeof by - 64)
			bl += (size_t)snprintf(by + bl, sizeof by - bl, "%s%s %llu", bl ? ", " : ": ", a->labels[k],
					       (unsigned long long)c);
	}
	log_msg(LOGL_INFO, "%s done: %.1f s of audio%s in %.1f s (%.0fx real time); %llu detection%s%s",
		strcmp(a->input, "-") ? a->input : "(stdin)", s.audio_s, a->C > 1 ? " per channel" : "",
		wall_s, wall_s > 0 ? s.audio_s / wall_s : 0, (unsigned long long)s.detections,
		s.detections == 1 ? "" : "s", by);
	return 1;
}

/* ---- HTTP hooks (any HTTP thread) ---- */

/* The input state as reported: "eof" only once everything read has also been processed. */
static void input_state(struct app *a, const struct det_stats *s, char *state, size_t len)
{
	pthread_mutex_lock(&a->mu);
	snprintf(state, len, "%s", a->src_done && s->eof && strcmp(a->state, "error") ? "eof" : a->state);
	pthread_mutex_unlock(&a->mu);
}

/* The mute state as JSON: {"muted": bool, "remaining_s": s, or null when muted until DELETE}. */
static json_t *mute_json(struct app *a)
{
	int64_t u = a->det ? detector_muted_until(a->det) : 0;
	json_t *rem = json_null();
	if (u && u != INT64_MAX) {
		double r = (double)(u - s4k_mono_ns()) * 1e-9;
		rem = json_real(r > 0 ? round(r * 1e3) / 1e3 : 0);
	}
	return json_pack("{s:b, s:o}", "muted", u != 0, "remaining_s", rem);
}

static json_t *hook_status(void *ud)
{
	struct app *a = ud;
	struct det_stats s;
	detector_stats(a->det, &s);
	char state[16], serr[S4K_ERR_LEN], name[1024];
	input_state(a, &s, state, sizeof state);
	pthread_mutex_lock(&a->mu);
	memcpy(serr, a->state_err, sizeof serr);
	memcpy(name, a->in_name, sizeof name);
	uint64_t retries = a->retries;
	uint64_t in_frames = a->kind == IN_DEVICE ? a->pub_frames : a->in_frames;
	uint64_t overflows = a->pub_overflows;
	int in_rate = a->pub_rate;
	pthread_mutex_unlock(&a->mu);
	const char *logpath = a->log_path;
	json_t *labels = json_array();
	for (int k = 0; k < a->K; k++)
		json_array_append_new(labels, json_string(a->labels[k]));
	const char *mname = s4m_meta(a->m, "name");
	json_t *model = json_pack("{s:s, s:s, s:o, s:i, s:I, s:f, s:f, s:f, s:I}", "name", mname ? mname : "",
				  "source", a->model_src, "labels", labels, "sample_rate", a->rate, "hop_samples",
				  (json_int_t)a->hop, "hop_ms", 1000.0 * (double)a->hop / a->rate, "window_s",
				  (double)s4m_window(a->m) / a->rate, "restart_s", (double)a->period / a->rate,
				  "params", (json_int_t)s4m_n_params(a->m));
	json_t *input = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "kind", kind_names[a->kind], "name", name,
				  "state", state, "rate", in_rate, "frames", (json_int_t)in_frames, "retries",
				  (json_int_t)retries);
	json_object_set_new(input, "error", serr[0] ? json_string(serr) : json_null());
	if (a->kind == IN_DEVICE)
		json_object_set_new(input, "overflows", json_integer((json_int_t)overflows));
	/* detections of this run, from the events store (the detector's count is published later) */
	struct ev_counts cnt[512];
	size_t nc = events_counts(a->ev, cnt, 512);
	uint64_t total = 0;
	for (size_t i = 0; i < nc; i++)
		total += cnt[i].count;
	json_t *o = json_pack("{s:s, s:o, s:i, s:o, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I}", "version",
			      S4KWS_VERSION, "model", model, "channels", a->C, "input", input, "uptime_s",
			      s4k_mono_s() - a->t0, "audio_s", s.audio_s, "real_time_factor", s.rtf,
			      "real_time_factor_per_channel", s.rtf / a->C, "overruns",
			      (json_int_t)ring_overruns(&a->ring), "dropped_samples",
			      (json_int_t)ring_dropped(&a->ring), "detections", (json_int_t)total,
			      "last_id", (json_int_t)events_last_id(a->ev));
	if (o) {
		json_object_set_new(o, "inference_cpu_s", json_real(s.cpu_s));
		json_object_set_new(o, "inference_threads", json_integer(a->det ? detector_threads(a->det) : 0));
		json_object_set_new(o, "deduplicated", json_integer((json_int_t)s.deduplicated));
		json_object_set_new(o, "verify_rejected", json_integer((json_int_t)s.rejected));
		json_object_set_new(o, "mute", mute_json(a));
		if (a->ch_names) {
			json_t *cn = json_array();
			for (int c = 0; c < a->C; c++)
				json_array_append_new(cn, json_string(a->ch_names[c]));
			json_object_set_new(o, "channel_names", cn);
		}
		json_object_set_new(o, "muted_detections", json_integer((json_int_t)s.muted));
	}
	if (o && a->saver) {
		struct saver_stats ss;
		saver_stats(a->saver, &ss);
		json_object_set_new(o, "clips", json_pack("{s:s, s:I, s:I, s:I}", "dir", a->save_dir, "saved",
							  (json_int_t)ss.saved, "dropped", (json_int_t)ss.dropped,
							  "errors", (json_int_t)ss.errors));
	}
	if (o && a->wy) {
		struct wy_stats ws;
		wy_stats(a->wy, &ws);
		json_object_set_new(o, "wyoming", json_pack("{s:s, s:i, s:i, s:I, s:I, s:I}", "bind",
							    a->cfg_wy_bind, "port", wy_port(a->wy), "clients",
							    ws.clients, "connections", (json_int_t)ws.connections,
							    "detections", (json_int_t)ws.detections, "errors",
							    (json_int_t)ws.errors));
	}
	if (o && a->hook) {
		struct hook_stats hs;
		hook_stats(a->hook, &hs);
		json_object_set_new(o, "on_detect", json_pack("{s:s, s:I, s:I, s:I}", "command", a->on_detect,
							      "run", (json_int_t)hs.run, "failed",
							      (json_int_t)hs.failed, "skipped", (json_int_t)hs.skipped));
	}
	if (o && logpath[0])
		json_object_set_new(o, "log", json_pack("{s:s, s:I}", "path", logpath, "errors",
							  (json_int_t)events_log_errors(a->ev)));
	return o;
}

/* /v1/mute: e.g. while the device's own speaker plays (no echo cancellation), or a meeting. */
static json_t *hook_mute(void *ud, int op, double seconds)
{
	struct app *a = ud;
	if (!a->det)
		return NULL;
	if (op == 1) {
		int64_t until = INT64_MAX;
		if (seconds > 0)
			until = s4k_mono_ns() + (int64_t)llround(seconds * 1e9);
		detector_mute(a->det, until);
		if (seconds > 0)
			log_msg(LOGL_INFO, "muted for %.3f s (POST /v1/mute)", seconds);
		else
			log_msg(LOGL_INFO, "muted until DELETE /v1/mute");
	} else if (op == 2) {
		detector_mute(a->det, 0);
		log_msg(LOGL_INFO, "unmuted (DELETE /v1/mute)");
	}
	return mute_json(a);
}

/* /v1/thresholds: every keyword's threshold; with `set`, change some first (all or none). Live
 * from the next hop; a SIGHUP re-reads the configuration and its thresholds win again. */
static json_t *hook_thresholds(void *ud, json_t *set, char *err, size_t errlen)
{
	struct app *a = ud;
	struct pp_kw *kw = malloc((size_t)a->K * sizeof *kw);
	if (!kw) {
		s4k_seterr(err, errlen, "out of memory");
		return NULL;
	}
	char changed[512] = "";
	size_t cl = 0;
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	memcpy(kw, a->kw, (size_t)a->K * sizeof *kw);
	const char *key;
	json_t *v;
	json_object_foreach(set, key, v) {
		int k = 0;
		while (k < a->K && (strcmp(a->labels[k], key) || a->labels[k][0] == '_'))
			k++;
		double t = json_number_value(v);
		if (k == a->K) {
			s4k_seterr(err, errlen, "'%s' is not a keyword of this model", key);
			rc = -EINVAL;
			break;
		}
		if (!json_is_number(v) || !(t >= 0.001 && t <= 1)) {
			s4k_seterr(err, errlen, "the threshold of '%s' must be a number from 0.001 to 1", key);
			rc = -EINVAL;
			break;
		}
		kw[k].threshold = (float)t;
		if (cl < sizeof changed)
			cl += (size_t)snprintf(changed + cl, sizeof changed - cl, " %s=%g", key, t);
	}
	if (rc == 0 && set) {
		struct pp_config pc = a->pc;
		pc.kw = kw;
		rc = detector_reconfigure(a->det, &pc, err, errlen);
		if (rc == 0)
			memcpy(a->kw, kw, (size_t)a->K * sizeof *kw);
	}
	json_t *o = NULL;
	if (rc == 0) {
		json_t *t = json_object();
		for (int k = 0; k < a->K; k++)
			if (a->labels[k][0] != '_')
				json_object_set_new(t, a->labels[k], json_real(round((double)a->kw[k].threshold * 1e6) / 1e6));
		o = json_pack("{s:o}", "thresholds", t);
	}
	pthread_mutex_unlock(&a->mu);
	free(kw);
	if (rc == 0 && set && changed[0])
		log_msg(LOGL_INFO, "thresholds set over HTTP:%s", changed);
	return o;
}

/* GET /v1/scores: every channel's smoothed posteriors as the detector last published them, so
 * that a user tuning thresholds can watch the margins (poll it, e.g. 10 times a second). */
static json_t *hook_scores(void *ud)
{
	struct app *a = ud;
	size_t n = (size_t)a->C * (size_t)a->K;
	float *v = malloc(n * sizeof *v);
	uint64_t hops = 0;
	struct det_stats s;
	if (!v || detector_scores(a->det, v, n, &hops) < 0) {
		free(v);
		return NULL;
	}
	detector_stats(a->det, &s);
	json_t *chs = json_array();
	/* --input none has no channel of its own (uploads and Wyoming clients are scored apart) */
	for (int c = 0; chs && a->kind != IN_NONE && c < a->C; c++) {
		const float *p = v + (size_t)c * (size_t)a->K;
		json_t *sc = json_object();
		int best = 0;
		for (int k = 0; sc && k < a->K; k++) {
			json_object_set_new(sc, a->labels[k], json_real(p[k]));
			if (p[k] > p[best])
				best = k;
		}
		json_array_append_new(chs, json_pack("{s:i, s:o, s:{s:s, s:f}}", "channel", c, "scores", sc, "top",
						     "label", a->labels[best], "score", (double)p[best]));
	}
	free(v);
	/* (no smoothing window here: it is per keyword, and a->pc belongs to the main thread) */
	return json_pack("{s:f, s:I, s:o}", "audio_s", s.audio_s, "hops", (json_int_t)hops, "channels", chs);
}

static void prom_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* One Prometheus sample with its HELP and TYPE lines. */
static void metric(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, (unsigned long long)v);
}

static void hook_metrics(void *ud, FILE *f)
{
	struct app *a = ud;
	struct det_stats s;
	detector_stats(a->det, &s);
	struct ev_counts cnt[512];
	size_t n = events_counts(a->ev, cnt, 512);
	fprintf(f, "# HELP s4kws_detections_total Keyword detections, by keyword and channel.\n"
		   "# TYPE s4kws_detections_total counter\n");
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "s4kws_detections_total{keyword=\"");
		prom_escape(f, cnt[i].keyword);
		fprintf(f, "\",channel=\"%d\"} %llu\n", cnt[i].channel, (unsigned long long)cnt[i].count);
	}
	metric(f, "s4kws_deduplicated_total", "counter",
	       "Detections not reported because another channel had the same keyword within dedup-ms.",
	       s.deduplicated);
	metric(f, "s4kws_verify_rejected_total", "counter",
	       "Candidate detections not reported because the second opinion (verify) disagreed.",
	       s.rejected);
	fprintf(f, "# HELP s4kws_audio_seconds_total Seconds of audio processed (per channel).\n"
		   "# TYPE s4kws_audio_seconds_total counter\ns4kws_audio_seconds_total %.6f\n", s.audio_s);
	metric(f, "s4kws_overruns_total", "counter",
	       "Blocks of captured audio dropped because inference fell behind.", ring_overruns(&a->ring));
	metric(f, "s4kws_dropped_samples_total", "counter", "Samples in those blocks (all channels).",
	       ring_dropped(&a->ring));
	fprintf(f, "# HELP s4kws_step_seconds Time to step every channel through one hop and post-process it.\n"
		   "# TYPE s4kws_step_seconds histogram\n");
	uint64_t cum = 0;
	for (int b = 0; b < DET_HIST_BUCKETS; b++) {
		cum += s.hist[b];
		fprintf(f, "s4kws_step_seconds_bucket{le=\"%g\"} %llu\n", det_hist_bounds[b], (unsigned long long)cum);
	}
	cum += s.hist[DET_HIST_BUCKETS];
	fprintf(f, "s4kws_step_seconds_bucket{le=\"+Inf\"} %llu\ns4kws_step_seconds_sum %.9f\n"
		   "s4kws_step_seconds_count %llu\n", (unsigned long long)cum, s.hist_sum, (unsigned long long)cum);
	fprintf(f, "# HELP s4kws_real_time_factor Processing time over audio time, all channels together.\n"
		   "# TYPE s4kws_real_time_factor gauge\ns4kws_real_time_factor %.6f\n", s.rtf);
	char state[16];
	input_state(a, &s, state, sizeof state);
	int up = !strcmp(state, "running");
	pthread_mutex_lock(&a->mu);
	uint64_t retries = a->retries;
	pthread_mutex_unlock(&a->mu);
	metric(f, "s4kws_input_up", "gauge", "1 while the input delivers audio.", (uint64_t)up);
	metric(f, "s4kws_input_retries_total", "counter", "Attempts to reopen a failed capture device.", retries);
	if (a->saver) {
		struct saver_stats ss;
		saver_stats(a->saver, &ss);
		metric(f, "s4kws_clips_saved_total", "counter", "Detection clips written to --save-dir.", ss.saved);
		metric(f, "s4kws_clips_dropped_total", "counter",
		       "Detection clips dropped because the writer fell behind.", ss.dropped);
		metric(f, "s4kws_clip_errors_total", "counter", "Detection clips that could not be written.",
		       ss.errors);
	}
	if (a->hook) {
		struct hook_stats hs;
		hook_stats(a->hook, &hs);
		metric(f, "s4kws_on_detect_runs_total", "counter", "On-detect commands run (counted when they end).",
		       hs.run);
		metric(f, "s4kws_on_detect_failures_total", "counter",
		       "On-detect commands that failed, timed out or did not start.", hs.failed);
		metric(f, "s4kws_on_detect_skipped_total", "counter",
		       "Detections whose command never ran (history wrapped or shutdown).", hs.skipped);
	}
	if (a->wy) {
		struct wy_stats ws;
		wy_stats(a->wy, &ws);
		metric(f, "s4kws_wyoming_clients", "gauge", "Connected Wyoming clients.", (uint64_t)ws.clients);
		metric(f, "s4kws_wyoming_connections_total", "counter", "Wyoming connections accepted.",
		       ws.connections);
		metric(f, "s4kws_wyoming_detections_total", "counter", "Detection events sent to Wyoming clients.",
		       ws.detections);
		metric(f, "s4kws_wyoming_errors_total", "counter", "Wyoming connections closed for bad input.",
		       ws.errors);
	}
	metric(f, "s4kws_muted", "gauge", "1 while detections are muted (POST /v1/mute).",
	       a->det && detector_muted_until(a->det) ? 1 : 0);
	metric(f, "s4kws_muted_detections_total", "counter", "Detections not reported because they were muted.",
	       s.muted);
	fprintf(f, "# HELP s4kws_channels Channels being spotted.\n# TYPE s4kws_channels gauge\ns4kws_channels %d\n",
		a->C);
	fprintf(f, "# HELP s4kws_uptime_seconds Seconds since start.\n# TYPE s4kws_uptime_seconds gauge\n"
		   "s4kws_uptime_seconds %.3f\n", s4k_mono_s() - a->t0);
}

struct upload_sink {
	json_t *dets;
	const struct app *a;
};

static void on_upload_detection(void *user, const struct pp_detection *d)
{
	struct upload_sink *u = user;
	json_array_append_new(u->dets, clip_detection_json(u->a->m, u->a->rate, d, 0));
}

/* POST /v1/classify: the file-mode JSON of one uploaded file (a clip, or detections when it is
 * longer than the model window), band-limited like `classify --max-rate` when max_rate > 0.
 * Own workspace per request, from the shared model. */
static int hook_classify(void *ud, const void *body, size_t len, int max_rate, json_t **out, char *err,
			 size_t errlen)
{
	struct app *a = ud;
	char e[S4K_ERR_LEN];
	float *x = NULL;
	size_t n = 0;
	uint64_t scrubbed = 0;
	/* decoded in a child process (daemon/isolate.h): a codec's leak or crash stays there */
	int status = iso_decode(body, len, a->rate, max_rate, (size_t)(CLASSIFY_MAX_S * a->rate), &x, &n,
				&scrubbed, err, errlen);
	if (status)
		return status;
	double dur = (double)n / a->rate;
	size_t win = s4m_window(a->m);
	if (n < s4m_hop(a->m)) {
		s4k_seterr(err, errlen, "the upload holds %.4f s of audio, too short to classify", dur);
		free(x);
		return 400;
	}
	json_t *rec = NULL;
	if (n <= clip_max_len(a->m, a->rate)) { /* a clip: its loudest window (daemon/clip.h) */
		struct s4m_conv *cv = s4m_conv_new(a->m, clip_input_len(a->m, 0), e, sizeof e);
		float *buf = malloc(clip_input_len(a->m, 0) * sizeof *buf);
		float *lg = malloc((size_t)a->K * sizeof *lg);
		size_t at = 0;
		if (cv && buf && lg &&
		    clip_best_logits(a->m, cv, NULL, x, n, a->rate, NULL, 0, buf, lg, &at, e, sizeof e) == 0)
			rec = clip_json(a->m, lg, 3, NULL);
		else if (!cv || !buf || !lg)
			s4k_seterr(e, sizeof e, "out of memory");
		if (rec) {
			json_object_set_new(rec, "duration", json_real(dur));
			if (clip_windowed(a->m, n))
				json_object_set_new(rec, "window", json_pack("[f, f]", (double)at / a->rate,
									     (double)(at + win) / a->rate));
		}
		free(lg);
		free(buf);
		s4m_conv_free(cv);
	} else {
		struct pp_kw *kw = malloc((size_t)a->K * sizeof *kw);
		struct pp_config pc;
		struct upload_sink us = {json_array(), a};
		struct scan *sc = NULL;
		if (kw) {
			pthread_mutex_lock(&a->mu);
			memcpy(kw, a->kw, (size_t)a->K * sizeof *kw);
			pc = a->pc;
			pthread_mutex_unlock(&a->mu);
			pc.kw = kw;
			struct scan_sink sink = {.detection = on_upload_detection, .user = &us};
			sc = scan_new(a->m, SCAN_CONV, &pc, 0, a->period, &sink, e, sizeof e);
			/* priming costs about one segment (period / 2 of audio each): only for
			 * uploads long enough to win it back */
			if (sc && n >= 4 * a->period && scan_prime(sc, e, sizeof e) < 0) {
				scan_free(sc);
				sc = NULL;
			}
		}
		if (sc && scan_push(sc, x, n) == 0 && scan_finish(sc) == 0) {
			rec = json_pack("{s:f, s:O}", "duration", dur, "detections", us.dets);
		} else if (!sc && !kw) {
			s4k_seterr(e, sizeof e, "out of memory");
		}
		scan_free(sc);
		free(kw);
		json_decref(us.dets);
	}
	free(x);
	if (!rec) {
		s4k_seterr(err, errlen, "classification failed: %s", e);
		return 500;
	}
	if (scrubbed)
		clip_note_scrubbed(rec, scrubbed);
	*out = rec;
	return 200;
}

/* ---- SIGHUP ---- */

static void reload(struct app *a)
{
	struct cfg *nc = malloc(sizeof *nc);
	struct pp_kw *kw = malloc((size_t)a->K * sizeof *kw);
	char err[S4K_ERR_LEN];
	struct pp_config pc;
	int rc = (!nc || !kw) ? -ENOMEM : cfg_parse(nc, a->argc, a->argv, err, sizeof err);
	if (rc == -ENOMEM)
		snprintf(err, sizeof err, "out of memory");
	if (rc == 0)
		rc = build_pp(nc, a, kw, &pc, err, sizeof err);
	if (rc == 0) {
		/* under mu, so that PUT /v1/thresholds cannot interleave: the detector's settings
		 * and the published copy (kw, pc) stay the same */
		pthread_mutex_lock(&a->mu);
		rc = detector_reconfigure(a->det, &pc, err, sizeof err);
		if (rc == 0) {
			memcpy(a->kw, kw, (size_t)a->K * sizeof *kw);
			a->pc = pc;
			a->pc.kw = a->kw;
		}
		pthread_mutex_unlock(&a->mu);
	}
	if (rc != 0) {
		log_msg(LOGL_ERROR, "SIGHUP: the new configuration is invalid, keeping the old one: %s", err);
		free(nc);
		free(kw);
		return;
	}
	log_set_level((enum log_level)nc->log_level);
	static const struct {
		const char *name;
		size_t off, len;
	} restart[] = {
#define R(n, f) {n, offsetof(struct cfg, f), sizeof(((struct cfg *)0)->f)}
		R("model", model), R("device", device), R("channels", channels), R("input", input),
		R("bind", bind), R("port", port), R("token", token), R("log", log), R("history", history),
		R("dedup-ms", dedup_ms), R("on-detect", on_detect), R("wyoming-port", wyoming_port),
		R("wyoming-bind", wyoming_bind), R("channel-names", channel_names),
		R("wyoming-clients", wyoming_clients), R("on-detect-timeout-ms", on_detect_timeout_ms),
		R("save-dir", save_dir), R("save-pre-ms", save_pre_ms), R("save-post-ms", save_post_ms),
		R("hop-ms", hop_ms), R("restart-ms", restart_ms), R("inference-threads", inference_threads), R("ring-ms", ring_ms), R("max-connections", max_connections),
		R("realtime", realtime), R("duration", duration),
#undef R
	};
	for (size_t i = 0; i < sizeof restart / sizeof restart[0]; i++)
		if (memcmp((char *)nc + restart[i].off, (char *)&a->cfg + restart[i].off, restart[i].len))
			log_msg(LOGL_WARN, "SIGHUP: a change of %s takes effect only after a restart", restart[i].name);
	/* keep what cannot change live; take the rest (a->cfg is the main thread's) */
	memcpy(nc->model, a->cfg.model, sizeof nc->model);
	memcpy(nc->device, a->cfg.device, sizeof nc->device);
	memcpy(nc->input, a->cfg.input, sizeof nc->input);
	memcpy(nc->log, a->cfg.log, sizeof nc->log);
	memcpy(nc->save_dir, a->cfg.save_dir, sizeof nc->save_dir);
	nc->save_pre_ms = a->cfg.save_pre_ms;
	memcpy(nc->on_detect, a->cfg.on_detect, sizeof nc->on_detect);
	memcpy(nc->wyoming_bind, a->cfg.wyoming_bind, sizeof nc->wyoming_bind);
	memcpy(nc->channel_names, a->cfg.channel_names, sizeof nc->channel_names);
	nc->wyoming_port = a->cfg.wyoming_port;
	nc->wyoming_clients = a->cfg.wyoming_clients;
	nc->on_detect_timeout_ms = a->cfg.on_detect_timeout_ms;
	nc->dedup_ms = a->cfg.dedup_ms;
	nc->save_post_ms = a->cfg.save_post_ms;
	nc->channels = a->cfg.channels;
	nc->hop_ms = a->cfg.hop_ms;
	nc->restart_ms = a->cfg.restart_ms;
	nc->inference_threads = a->cfg.inference_threads;
	nc->duration = a->cfg.duration;
	a->cfg = *nc;
	log_msg(LOGL_INFO, "SIGHUP: detection settings reloaded%s%s", a->cfg.config[0] ? " from " : "",
		a->cfg.config);
	free(nc);
	free(kw);
}

/* ---- setup and teardown ---- */

static size_t pow2_at_least(size_t n)
{
	size_t p = 1024;
	while (p < n && p < ((size_t)1 << 28))
		p *= 2;
	return p;
}

static int write_port_file(const char *path, int port, char *err, size_t errlen)
{
	char tmp[1100];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
		s4k_seterr(err, errlen, "cannot write the port file %s: %s", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* --channel-names: exactly one name per channel, 1 to 31 printable bytes, no quotes. */
static int parse_channel_names(struct app *a, char *err, size_t errlen)
{
	const char *s = a->cfg.channel_names;
	if (!s[0])
		return 0;
	a->ch_names = calloc((size_t)a->C, sizeof *a->ch_names);
	a->ch_name_ptr = calloc((size_t)a->C, sizeof *a->ch_name_ptr);
	if (!a->ch_names || !a->ch_name_ptr) {
		s4k_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int n = 0;
	for (const char *p = s;; n++) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		while (len && p[0] == ' ')
			p++, len--;
		while (len && p[len - 1] == ' ')
			len--;
		if (n >= a->C) {
			s4k_seterr(err, errlen, "channel-names has more names than the %d channel%s", a->C,
				   a->C == 1 ? "" : "s");
			return -EINVAL;
		}
		int ok = len >= 1 && len < EV_NAME_LEN;
		for (size_t i = 0; ok && i < len; i++)
			ok = (unsigned char)p[i] >= 0x20 && p[i] != '"' && p[i] != '\\' && p[i] != 0x7f;
		if (!ok) {
			s4k_seterr(err, errlen, "channel-names: name %d must be 1 to %d printable characters "
				   "without quotes or backslashes", n + 1, EV_NAME_LEN - 1);
			return -EINVAL;
		}
		memcpy(a->ch_names[n], p, len);
		a->ch_name_ptr[n] = a->ch_names[n];
		if (!e)
			break;
		p = e + 1;
	}
	if (n + 1 != a->C) {
		s4k_seterr(err, errlen, "channel-names has %d name%s for %d channels", n + 1, n ? "s" : "", a->C);
		return -EINVAL;
	}
	return 0;
}

/* Open the input (not started). 0 or -errno with err. */
static int input_setup(struct app *a, char *err, size_t errlen)
{
	const struct cfg *c = &a->cfg;
	if (c->input[0] && c->device[0]) {
		s4k_seterr(err, errlen, "--device and --input exclude each other: capture from a device or read an input");
		return -EINVAL;
	}
	if (!c->input[0]) {
		a->kind = IN_DEVICE;
		a->C = c->channels ? c->channels : 1;
		a->in_rate = a->pub_rate = a->rate;
		return 0;
	}
	if (!strcmp(c->input, "none")) {
		/* no local audio: the daemon serves Wyoming clients (and HTTP) only */
		a->kind = IN_NONE;
		a->C = 1;
		a->in_rate = a->pub_rate = a->rate;
		snprintf(a->in_name, sizeof a->in_name, "none");
		return 0;
	}
	if (!strcmp(c->input, "-")) {
		a->kind = IN_STDIN;
		a->C = c->channels ? c->channels : 1;
		a->in_rate = c->input_rate ? c->input_rate : a->rate;
		snprintf(a->in_name, sizeof a->in_name, "stdin (raw S16_LE)");
	} else {
		a->kind = IN_FILE;
		char e[S4K_ERR_LEN];
		a->af = af_open(c->input, e, sizeof e);
		if (!a->af) { /* name the file, as classify does */
			s4k_seterr(err, errlen, "--input %s: %s", c->input, e);
			return -EINVAL;
		}
		const struct af_info *fi = af_info(a->af);
		a->in_rate = fi->rate;
		if (!c->channels || c->channels == fi->channels) {
			a->C = fi->channels;
		} else if (c->channels == 1) {
			a->C = 1;
			a->af_mix = 1;
			if (af_set_output(a->af, AF_MIX, 0, RS_BEST, err, errlen) < 0)
				return -EINVAL;
		} else {
			s4k_seterr(err, errlen, "%s has %d channels; --channels must be 0, 1 (mix) or %d", c->input,
				   fi->channels, fi->channels);
			return -EINVAL;
		}
		if (a->C > 64) {
			s4k_seterr(err, errlen, "%s has %d channels; at most 64 are supported", c->input, a->C);
			return -EINVAL;
		}
		snprintf(a->in_name, sizeof a->in_name, "%s", c->input);
	}
	if (c->duration > 0)
		a->max_frames = (uint64_t)llround(c->duration * a->in_rate);
	a->pub_rate = a->in_rate;
	return 0;
}

static void teardown(struct app *a)
{
	if (a->src_started) {
		atomic_store(&a->src_stop, 1);
		pthread_join(a->src, NULL);
	}
	if (a->cap) {
		capture_close(a->cap);
		a->cap = NULL;
	}
	if (a->kind == IN_DEVICE)
		capture_fini();
	detector_stop(a->det); /* drains the ring, hands over the last clips, then joins */
	if (a->ev)
		events_close(a->ev); /* flush the log; SSE streams end */
	hook_stop(a->hook);   /* runs the pending commands, for at most its timeout */
	http_stop(a->http);
	wy_stop(a->wy); /* closes its clients; they use the model */
	/* only now: a status or metrics request may read the detector's published figures until
	 * the HTTP server has stopped (ThreadSanitizer caught the free racing with one) */
	saver_free(a->saver); /* writes the clips still queued */
	hook_free(a->hook);
	detector_free(a->det);
	events_free(a->ev);
	af_close(a->af);
	free(a->ring_store);
	free(a->kw);
	free(a->labels);
	free(a->ch_names);
	free(a->ch_name_ptr);
	s4m_free(a->m);
	sem_destroy(&a->wake);
	pthread_mutex_destroy(&a->mu);
}

int cmd_listen(int argc, char **argv)
{
	struct app *a = calloc(1, sizeof *a);
	char err[S4K_ERR_LEN];
	if (!a) {
		fprintf(stderr, "s4kws listen: out of memory\n");
		return 1;
	}
	int rc = cfg_parse(&a->cfg, argc, argv, err, sizeof err);
	if (rc == CFG_HELP) {
		char *h = cfg_help();
		if (h)
			fputs(h, stdout);
		free(h);
		free(a);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		free(a);
		return 2;
	}
	a->argc = argc;
	a->argv = argv;
	a->realtime = a->cfg.realtime;
	snprintf(a->input, sizeof a->input, "%s", a->cfg.input);
	snprintf(a->log_path, sizeof a->log_path, "%s", a->cfg.log);
	a->t0 = s4k_mono_s();
	pthread_mutex_init(&a->mu, NULL);
	sem_init(&a->wake, 0, 0);
	snprintf(a->state, sizeof a->state, "starting");
	log_set_level((enum log_level)a->cfg.log_level);

	/* signals: blocked in every thread (created below), taken synchronously by the main loop */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	int status = 1;
	const char *mpath = a->cfg.model[0] ? a->cfg.model : NULL;
	a->m = cmd_load_model(mpath, 1.0, err, sizeof err);
	if (!a->m) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		goto out;
	}
	const char *src = cmd_model_source(mpath);
	snprintf(a->model_src, sizeof a->model_src, "%s", src ? src : "");
	if (!s4m_streamable(a->m)) {
		fprintf(stderr, "s4kws listen: %s is bidirectional and cannot run live; use 's4kws classify'\n",
			a->model_src);
		goto out;
	}
	a->rate = s4m_sample_rate(a->m);
	a->K = s4m_n_labels(a->m);
	a->hop = scan_hop(a->m, a->cfg.hop_ms);
	a->period = scan_period(a->m, a->cfg.restart_ms);
	a->labels = malloc((size_t)a->K * sizeof *a->labels);
	a->kw = malloc((size_t)a->K * sizeof *a->kw);
	if (!a->labels || !a->kw) {
		fprintf(stderr, "s4kws listen: out of memory\n");
		goto out;
	}
	for (int k = 0; k < a->K; k++)
		a->labels[k] = s4m_label(a->m, k);
	if (build_pp(&a->cfg, a, a->kw, &a->pc, err, sizeof err) < 0) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		status = 2; /* a usage error: settings the model cannot take */
		goto out;
	}
	if (input_setup(a, err, sizeof err) < 0 || parse_channel_names(a, err, sizeof err) < 0) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		goto out;
	}
	/* ring: ring-ms of audio at the input rate (48 kHz at least for a device, which may reopen
	 * at another rate) */
	int ring_rate = a->kind == IN_DEVICE ? (a->rate > 48000 ? a->rate : 48000) : a->in_rate;
	size_t want = (size_t)((double)a->cfg.ring_ms / 1000.0 * ring_rate) * (size_t)a->C;
	if (want < 4 * (size_t)SRC_BLOCK * (size_t)a->C)
		want = 4 * (size_t)SRC_BLOCK * (size_t)a->C; /* the file/stdin source writes SRC_BLOCK frames */
	size_t cap = pow2_at_least(want);
	a->ring_store = malloc(cap * sizeof *a->ring_store);
	if (!a->ring_store || ring_init(&a->ring, a->ring_store, cap) < 0) {
		fprintf(stderr, "s4kws listen: out of memory for a %zu-sample ring\n", cap);
		goto out;
	}
	struct ev_open_info info;
	a->ev = events_new((size_t)a->cfg.history, a->cfg.log, &info, err, sizeof err);
	if (!a->ev) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		goto out;
	}
	if (a->cfg.log[0]) {
		if (info.torn_bytes)
			log_msg(LOGL_WARN, "%s: cut off an incomplete last line (%zu bytes)", a->cfg.log, info.torn_bytes);
		if (info.bad_lines)
			log_msg(LOGL_WARN, "%s: skipped %zu lines that are not detections", a->cfg.log, info.bad_lines);
		if (info.last_id)
			log_msg(LOGL_INFO, "%s: continuing after detection %llu", a->cfg.log,
				(unsigned long long)info.last_id);
	}
	size_t pre = (size_t)llround(a->cfg.save_pre_ms * 1e-3 * a->rate);
	size_t post = (size_t)llround(a->cfg.save_post_ms * 1e-3 * a->rate);
	if (a->cfg.save_dir[0]) {
		struct saver_config sc = {.dir = a->cfg.save_dir, .rate = a->rate,
					  .max_samples = pre + post > 0 ? pre + post : 1};
		a->saver = saver_new(&sc, err, sizeof err);
		if (!a->saver) {
			fprintf(stderr, "s4kws listen: %s\n", err);
			goto out;
		}
		snprintf(a->save_dir, sizeof a->save_dir, "%s", a->cfg.save_dir);
	}
	if (a->cfg.on_detect[0]) {
		struct hook_config hk = {.command = a->cfg.on_detect,
					 .timeout_ms = a->cfg.on_detect_timeout_ms, .ev = a->ev};
		a->hook = hook_new(&hk, err, sizeof err);
		if (!a->hook) {
			fprintf(stderr, "s4kws listen: %s\n", err);
			goto out;
		}
		snprintf(a->on_detect, sizeof a->on_detect, "%s", a->cfg.on_detect);
	}
	struct det_config dc = {.m = a->m, .channels = a->C, .hop = a->hop, .ring = &a->ring, .wake = &a->wake,
				.ev = a->ev, .pc = &a->pc, .period = a->period,
				.threads = a->cfg.inference_threads, .saver = a->saver,
				.save_pre = pre, .save_post = post,
				.dedup = (size_t)llround(a->cfg.dedup_ms * 1e-3 * a->rate),
				.channel_names = a->ch_name_ptr};
	if (dc.threads == 0) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		dc.threads = ncpu > 0 ? (int)(ncpu < 64 ? ncpu : 64) : 1;
	}
	a->det = detector_new(&dc, err, sizeof err);
	if (!a->det) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		goto out;
	}
	detector_set_input(a->det, a->in_rate, RS_BEST);
	if (detector_start(a->det, err, sizeof err) < 0) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		goto out;
	}
	if (a->cfg.wyoming_port >= 0) {
		/* before HTTP: the status hook reads a->wy */
		struct wy_config wc = {.bind = a->cfg.wyoming_bind, .port = a->cfg.wyoming_port, .m = a->m,
				       .pc = &a->pc, .hop = a->hop, .period = a->period,
				       .max_clients = a->cfg.wyoming_clients,
				       .timeout_s = 300, .version = S4KWS_VERSION}; /* satellites may pause */
		a->wy = wy_start(&wc, err, sizeof err);
		if (!a->wy) {
			fprintf(stderr, "s4kws listen: %s\n", err);
			goto out;
		}
		snprintf(a->cfg_wy_bind, sizeof a->cfg_wy_bind, "%s", a->cfg.wyoming_bind);
		log_msg(LOGL_INFO, "Wyoming wake-word server on %s port %d%s", a->cfg.wyoming_bind,
			wy_port(a->wy), cfg_is_loopback(a->cfg.wyoming_bind) ? ""
			: " (no authentication: keep it on a trusted network)");
	}
	double hb = a->cfg.heartbeat < a->cfg.http_timeout * 0.5 ? a->cfg.heartbeat : a->cfg.http_timeout * 0.5;
	struct http_config hc = {.bind = a->cfg.bind, .port = a->cfg.port, .token = a->cfg.token,
				 .max_connections = (unsigned)a->cfg.max_connections,
				 .timeout_s = (unsigned)a->cfg.http_timeout, .max_body = (size_t)a->cfg.max_body,
				 .classify_jobs = (unsigned)a->cfg.classify_jobs,
				 .sse_clients = (unsigned)a->cfg.sse_clients, .heartbeat_s = hb};
	struct http_hooks hooks = {.ud = a, .status = hook_status, .scores = hook_scores,
				   .metrics = hook_metrics, .classify = hook_classify, .mute = hook_mute,
				   .thresholds = hook_thresholds};
	a->http = http_start(&hc, a->ev, &hooks, err, sizeof err);
	if (!a->http) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		goto out;
	}
	if (a->cfg.port_file[0] && write_port_file(a->cfg.port_file, http_port(a->http), err, sizeof err) < 0) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		goto out;
	}
	int v6 = strchr(a->cfg.bind, ':') != NULL; /* an IPv6 address goes in brackets in a URL */
	log_msg(LOGL_INFO, "model %s (%d labels, %d Hz, hop %.1f ms); %d channel%s; http://%s%s%s:%d/", a->model_src,
		a->K, a->rate, 1000.0 * (double)a->hop / a->rate, a->C, a->C == 1 ? "" : "s", v6 ? "[" : "",
		a->cfg.bind, v6 ? "]" : "", http_port(a->http));
	{ /* the thresholds in force, so that a log says which the model's tuning set */
		char t[1024];
		size_t n = 0;
		for (int k = 0; k < a->K && n < sizeof t - 64; k++)
			if (a->labels[k][0] != '_')
				n += (size_t)snprintf(t + n, sizeof t - n, "%s%s %.3g", n ? " " : "", a->labels[k],
						      (double)a->kw[k].threshold);
		int tuned = 0;
		for (int k = 0; k < a->K; k++)
			tuned |= !isnan(s4m_thresholds(a->m)[k]);
		log_msg(LOGL_INFO, "thresholds: %s%s", t,
			tuned ? " (the model's tuned values where no flag or config sets one)" : "");
	}

	/* start the input */
	if (a->kind == IN_DEVICE) {
		capture_set_quiet(log_get_level() < LOGL_DEBUG); /* ALSA/JACK chatter only for debugging */
		if (capture_init(err, sizeof err) < 0 || device_open(a, err, sizeof err) < 0)
			device_failed(a, err); /* keep serving; the main loop retries */
	} else if (a->kind == IN_NONE) {
		set_state(a, "none", NULL);
	} else {
		if (a->in_rate != a->rate)
			log_msg(LOGL_INFO, "%s: %d Hz, resampled to %d Hz", a->in_name, a->in_rate, a->rate);
		set_state(a, "running", NULL);
		int e = pthread_create(&a->src, NULL, a->kind == IN_FILE ? file_thread : stdin_thread, a);
		if (e) {
			fprintf(stderr, "s4kws listen: cannot start the input thread: %s\n", strerror(e));
			goto out;
		}
		a->src_started = 1;
	}

	/* main loop; under systemd (Type=notify) it says when it is ready, reloading and stopping,
	 * and pings the watchdog while the inference thread keeps turning */
	double t_run = s4k_mono_s();
	int summarised = 0;
	uint64_t wd_usec = 0, beats = detector_beats(a->det);
	double wd_last = t_run, wd_every = sd_watchdog_enabled(0, &wd_usec) > 0 ? (double)wd_usec * 1e-6 / 2 : 0;
	sd_notifyf(0, "READY=1\nSTATUS=listening on %s port %d", a->cfg.bind, http_port(a->http));
	for (;;) {
		struct timespec tick = {0, 200000000L};
		int sig = sigtimedwait(&sigs, NULL, &tick);
		if (!summarised && (a->kind == IN_FILE || a->kind == IN_STDIN))
			summarised = input_summary(a, s4k_mono_s() - t_run);
		if (wd_every > 0 && s4k_mono_s() - wd_last >= wd_every && detector_beats(a->det) != beats) {
			sd_notify(0, "WATCHDOG=1");
			wd_last = s4k_mono_s();
			beats = detector_beats(a->det);
		}
		if (sig == SIGINT || sig == SIGTERM) {
			log_msg(LOGL_INFO, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
			sd_notify(0, "STOPPING=1");
			break;
		}
		if (sig == SIGHUP) {
			sd_notify(0, "RELOADING=1");
			reload(a);
			sd_notify(0, "READY=1");
		}
		if (a->kind == IN_DEVICE)
			device_supervise(a);
	}
	/* a second SIGINT/SIGTERM during the ordered shutdown ends the process at once */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	status = 0;
out:
	teardown(a);
	if (status == 0)
		log_msg(LOGL_INFO, "stopped");
	free(a);
	return status;
}

/* ---- s4kws devices ---- */

int cmd_devices(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: s4kws devices\n\nList the audio input devices PortAudio sees: the index and name\n"
			       "that 'listen --device' takes, the host API, input channels, default rate and\n"
			       "the common rates accepted for 16-bit input. ALSA's and JACK's own probing messages\n"
			       "are dropped unless S4KWS_AUDIO_DEBUG is set.\n");
			return 0;
		}
		fprintf(stderr, "s4kws devices: unexpected argument '%s'\n", argv[i]);
		return 2;
	}
	char err[S4K_ERR_LEN];
	capture_set_quiet(!getenv("S4KWS_AUDIO_DEBUG")); /* the libraries' own probing chatter */
	if (capture_init(err, sizeof err) < 0) {
		fprintf(stderr, "s4kws devices: %s\n", err);
		return 1;
	}
	struct capture_device devs[256];
	int n = capture_list(devs, 256, err, sizeof err);
	if (n < 0) {
		fprintf(stderr, "s4kws devices: %s\n", err);
		capture_fini();
		return 1;
	}
	if (n == 0)
		printf("no input devices\n");
	else
		printf("%5s  %-32s %-6s %8s %8s  %s\n", "index", "name", "api", "channels", "default", "rates (Hz)");
	for (int i = 0; i < n && i < 256; i++) {
		printf("%5d  %-32s %-6s %8d %8.0f  ", devs[i].index, devs[i].name, devs[i].api, devs[i].max_channels,
		       devs[i].default_rate);
		for (int r = 0; r < devs[i].n_rates; r++)
			printf("%s%d", r ? " " : "", devs[i].rates[r]);
		printf("\n");
	}
	capture_fini();
	return 0;
}
