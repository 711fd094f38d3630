/* cmd_listen.c - `s4kws listen` (the live daemon) and `s4kws devices`.
 *
 * DESIGN. Threads and who owns what:
 *   - main thread: parses the configuration, loads the model, builds everything, then loops on
 *     sigtimedwait() (SIGINT/SIGTERM/SIGHUP are blocked in every thread, so signals are only
 *     ever seen here, as plain events) every 200 ms, supervising a capture device through
 *     source_supervise() (reopened with back-off after errors while HTTP keeps serving), pinging
 *     systemd's watchdog and reloading the detection settings on SIGHUP;
 *   - input (daemon/source.c): either PortAudio's callback thread (audio/capture.c) or a thread
 *     that reads a file (audio/audiofile.h, any libsndfile format) or raw S16_LE stdin, optionally
 *     paced at real speed, and waits for room in the ring rather than dropping;
 *   - the inference thread (daemon/detector.c) drains the ring, resamples to the model rate if
 *     needed and runs one s4m_relay (one stepper, or two taking turns) per channel over the
 *     shared model, on `inference-threads` threads;
 *   - with --save-dir, the clip writer (daemon/saver.c) turns detections' audio into WAV files;
 *   - with --on-detect, the hook thread (daemon/hook.c) follows the events store and runs the
 *     command for each detection;
 *   - with --mqtt, the publisher thread (daemon/mqtt.c) follows it too and feeds the broker
 *     (SIGHUP with changed MQTT settings replaces it, under `mu`, which the HTTP hooks take to
 *     read it);
 *   - with --wyoming-port, the Wyoming server (daemon/wyoming.c): an acceptor thread and one
 *     thread per client, each with its own stepper over the shared model; a client's thread
 *     hands its detections to wy_publish() below (mute, then the events store);
 *   - libmicrohttpd's threads (daemon/http.c) answer requests from the events store and from
 *     the hooks of daemon/listen_http.c, which read published copies (detector_stats,
 *     source_status, the detection settings under `mu`) and, for POST /v1/classify, build their
 *     own conv workspace from the shared model.
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
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/clock.h"
#include "audio/capture.h"
#include "audio/ring.h"
#include "config.h"
#include "detector.h"
#include "events.h"
#include "hook.h"
#include "http.h"
#include "listen_http.h"
#include "log.h"
#include "model/s4m.h"
#include "mqtt.h"
#include "spot/postproc.h"
#include "spot/scan.h"
#include "source.h"
#include "wyoming.h"

struct app {
	struct cfg cfg;            /* main thread only once threads run (SIGHUP replaces it) */
	int argc;
	char **argv;
	/* copies the other threads read, fixed at start */
	char log_path[1024];
	char save_dir[1024];
	char on_detect[1024];
	char wy_bind[64];
	char (*ch_names)[EV_NAME_LEN]; /* (C) --channel-names, or NULL */
	const char **ch_name_ptr;  /* (C) pointers into ch_names, for the detector */
	/* model (immutable after start) */
	struct s4m_model *m;
	char model_src[1024];
	int K;
	const char **labels;       /* (K) */
	size_t hop;                /* model-rate samples per posterior */
	size_t period;             /* stepper restart period, model-rate samples (0 = never) */
	int rate;                  /* model rate */
	int C;                     /* channels */
	/* detection settings, under mu (PUT /v1/thresholds and uploads read and write them) */
	pthread_mutex_t mu;
	struct pp_kw *kw;          /* (K) */
	struct pp_config pc;
	/* the parts; each runs threads of its own */
	struct source *src;
	float *ring_store;
	struct ring ring;
	sem_t wake;
	struct events *ev;
	struct detector *det;
	struct saver *saver;       /* --save-dir, or NULL */
	struct hook *hook;         /* --on-detect, or NULL */
	struct wyoming *wy;        /* --wyoming-port, or NULL */
	struct mqtt *mqtt;         /* --mqtt, or NULL; replaced on SIGHUP under mu */
	struct listen_view view;   /* what the HTTP hooks read (daemon/listen_http.h) */
	struct http *http;
	double t0;                 /* monotonic start */
};

/* Wyoming's detections into the daemon, like a capture channel's: dropped while muted, else
 * stored (ids, /v1/detections, SSE, --log, hooks, MQTT). A client's thread. */
static int wy_publish(void *user, struct ev_detection *e)
{
	struct app *a = user;
	int64_t until = detector_muted_until(a->det);
	if (until && s4k_mono_ns() < until)
		return 1;
	int rc = events_add(a->ev, e);
	if (rc < 0)
		log_msg(LOGL_WARN, "detection %llu could not be written to the log: %s", (unsigned long long)e->id,
			strerror(-rc));
	log_msg(LOGL_INFO, "detection %llu: %s from %s, score %.3f, at %.3f s of its stream",
		(unsigned long long)e->id, e->keyword, e->channel_name, (double)e->score, e->offset);
	return 0;
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

/* Once a file or stdin input has been read and processed: one info line with the detections
 * by keyword, the audio length and the speed. Returns 1 when it was written (or the input
 * failed: nothing to summarise), else 0. Main thread. */
static int input_summary(struct app *a, double wall_s)
{
	struct det_stats s;
	detector_stats(a->det, &s);
	struct source_status in;
	source_status(a->src, s.eof, &in);
	if (in.failed)
		return 1;
	if (!in.done || !s.eof)
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
		strcmp(a->cfg.input, "-") ? a->cfg.input : "(stdin)", s.audio_s, a->C > 1 ? " per channel" : "",
		wall_s, wall_s > 0 ? s.audio_s / wall_s : 0, (unsigned long long)s.detections,
		s.detections == 1 ? "" : "s", by);
	return 1;
}

/* ---- MQTT ---- */

static struct mqtt_config mqtt_config_of(const struct cfg *c, const struct app *a, uint64_t after)
{
	return (struct mqtt_config){.url = c->mqtt, .password = c->mqtt_password, .ca_file = c->mqtt_ca_file,
				    .topic = c->mqtt_topic, .discovery = c->mqtt_discovery,
				    .discovery_prefix = c->mqtt_discovery_prefix, .hermes = c->mqtt_hermes,
				    .queue = (size_t)c->mqtt_queue, .retry_max_s = c->mqtt_retry_max, .ev = a->ev,
				    .labels = a->labels, .n_labels = a->K, .channels = a->C,
				    .channel_names = a->ch_name_ptr, .model_name = s4m_meta(a->m, "name"),
				    .version = S4KWS_VERSION, .start_after = after};
}

/* SIGHUP: new MQTT settings replace the publisher (checked first: bad ones keep the old one,
 * whose settings go back into nc). The successor starts after what the old one handed over. */
static void mqtt_reload(struct app *a, struct cfg *nc)
{
	static const size_t offs[][2] = {
#define M(f) {offsetof(struct cfg, f), sizeof(((struct cfg *)0)->f)}
		M(mqtt), M(mqtt_password), M(mqtt_ca_file), M(mqtt_topic), M(mqtt_discovery),
		M(mqtt_discovery_prefix), M(mqtt_hermes), M(mqtt_queue), M(mqtt_retry_max),
#undef M
	};
	int same = 1;
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++)
		same &= !memcmp((char *)nc + offs[i][0], (char *)&a->cfg + offs[i][0], offs[i][1]);
	if (same)
		return;
	char err[S4K_ERR_LEN];
	struct mqtt_config mc = mqtt_config_of(nc, a, 0);
	if (nc->mqtt[0] && mqtt_check(&mc, err, sizeof err) < 0) {
		log_msg(LOGL_ERROR, "SIGHUP: keeping the MQTT settings: %s", err);
		for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++)
			memcpy((char *)nc + offs[i][0], (char *)&a->cfg + offs[i][0], offs[i][1]);
		return;
	}
	mqtt_stop(a->mqtt); /* hands over what it can, then "offline" */
	mc.start_after = a->mqtt ? mqtt_resume_id(a->mqtt) : events_last_id(a->ev);
	struct mqtt *m = nc->mqtt[0] ? mqtt_new(&mc, err, sizeof err) : NULL;
	if (nc->mqtt[0] && !m)
		log_msg(LOGL_ERROR, "SIGHUP: MQTT stays off: %s", err);
	pthread_mutex_lock(&a->mu);
	struct mqtt *old = a->mqtt;
	a->mqtt = a->view.mqtt = m;
	pthread_mutex_unlock(&a->mu);
	mqtt_free(old);
	log_msg(LOGL_INFO, "SIGHUP: MQTT %s", m ? "restarted with the new settings" : "off");
}

/* ---- SIGHUP ---- */

/* cfg_keep_restart's report: the names of the options a SIGHUP could not change. */
struct kept {
	char names[512];
	size_t len;
};

static void note_kept(const char *name, void *user)
{
	struct kept *k = user;
	if (k->len < sizeof k->names)
		k->len += (size_t)snprintf(k->names + k->len, sizeof k->names - k->len, "%s%s", k->len ? ", " : "",
					   name);
}

static void reload(struct app *a)
{
	struct cfg *nc = malloc(sizeof *nc);
	struct pp_kw *kw = malloc((size_t)a->K * sizeof *kw);
	char err[S4K_ERR_LEN];
	struct pp_config pc;
	struct kept kept = {"", 0};
	int rc = (!nc || !kw) ? -ENOMEM : cfg_parse(nc, a->argc, a->argv, err, sizeof err);
	if (rc == -ENOMEM)
		snprintf(err, sizeof err, "out of memory");
	if (rc == 0) {
		/* what is read only at start keeps its running value (the option table says which) */
		cfg_keep_restart(nc, &a->cfg, note_kept, &kept);
		rc = build_pp(nc, a, kw, &pc, err, sizeof err);
	}
	if (rc == 0) {
		/* under mu, so that PUT /v1/thresholds cannot interleave: the detector's settings
		 * and the published copy (kw, pc) stay the same */
		pthread_mutex_lock(&a->mu);
		rc = detector_reconfigure(a->det, &pc, err, sizeof err);
		if (rc == 0 && a->wy) /* same checks as the detector's: does not fail after it */
			rc = wy_reconfigure(a->wy, &pc, err, sizeof err);
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
	mqtt_reload(a, nc);
	if (kept.len)
		log_msg(LOGL_WARN, "SIGHUP: a change of %s takes effect only after a restart", kept.names);
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

static void teardown(struct app *a)
{
	source_stop(a->src);
	detector_stop(a->det); /* drains the ring, hands over the last clips, then joins */
	if (a->ev)
		events_close(a->ev); /* flush the log; SSE streams end */
	hook_stop(a->hook);   /* runs the pending commands, for at most its timeout */
	mqtt_stop(a->mqtt);   /* publishes what is queued and "offline", for at most MQTT_STOP_S */
	http_stop(a->http);
	wy_stop(a->wy); /* closes its clients; they use the model */
	/* only now: a status or metrics request may read the detector's published figures until
	 * the HTTP server has stopped (ThreadSanitizer caught the free racing with one) */
	saver_free(a->saver); /* writes the clips still queued */
	hook_free(a->hook);
	mqtt_free(a->mqtt);
	detector_free(a->det);
	events_free(a->ev);
	source_free(a->src);
	free(a->ring_store);
	free(a->kw);
	free(a->labels);
	free(a->ch_names);
	free(a->ch_name_ptr);
	s4m_free(a->m);
	sem_destroy(&a->wake);
	pthread_mutex_destroy(&a->mu);
}

/* The model, its labels and the detection settings from the configuration. 0 or -errno with
 * err (-EDOM: settings the model cannot take, a usage error). */
static int setup_model(struct app *a, char *err, size_t errlen)
{
	const char *mpath = a->cfg.model[0] ? a->cfg.model : NULL;
	a->m = cmd_load_model(mpath, 1.0, err, errlen);
	if (!a->m)
		return -EINVAL;
	const char *src = cmd_model_source(mpath);
	snprintf(a->model_src, sizeof a->model_src, "%s", src ? src : "");
	if (!s4m_streamable(a->m)) {
		s4k_seterr(err, errlen, "%s is bidirectional and cannot run live; use 's4kws classify'", a->model_src);
		return -EINVAL;
	}
	a->rate = s4m_sample_rate(a->m);
	a->K = s4m_n_labels(a->m);
	a->hop = scan_hop(a->m, a->cfg.hop_ms);
	a->period = scan_period(a->m, a->cfg.restart_ms);
	a->labels = malloc((size_t)a->K * sizeof *a->labels);
	a->kw = malloc((size_t)a->K * sizeof *a->kw);
	if (!a->labels || !a->kw) {
		s4k_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int k = 0; k < a->K; k++)
		a->labels[k] = s4m_label(a->m, k);
	return build_pp(&a->cfg, a, a->kw, &a->pc, err, errlen) < 0 ? -EDOM : 0;
}

/* The input (not started), the channel names and the ring. 0 or -errno with err. */
static int setup_input(struct app *a, char *err, size_t errlen)
{
	if (a->cfg.input[0] && a->cfg.device[0]) {
		s4k_seterr(err, errlen, "--device and --input exclude each other: capture from a device or read an input");
		return -EINVAL;
	}
	struct source_config scfg = {.input = a->cfg.input, .device = a->cfg.device, .channels = a->cfg.channels,
				     .input_rate = a->cfg.input_rate, .rate = a->rate, .realtime = a->cfg.realtime,
				     .duration = a->cfg.duration, .frames_per_buffer = a->cfg.frames_per_buffer,
				     .device_stall = a->cfg.device_stall, .retry_max = a->cfg.retry_max};
	a->src = source_open(&scfg, err, errlen);
	if (!a->src)
		return -EINVAL;
	a->C = source_channels(a->src);
	if (parse_channel_names(a, err, errlen) < 0)
		return -EINVAL;
	/* ring: ring-ms of audio at the input rate (48 kHz at least for a device, which may reopen
	 * at another rate) */
	int ring_rate = source_kind(a->src) == SOURCE_DEVICE ? (a->rate > 48000 ? a->rate : 48000)
							      : source_rate(a->src);
	size_t want = (size_t)((double)a->cfg.ring_ms / 1000.0 * ring_rate) * (size_t)a->C;
	if (want < 4 * (size_t)SOURCE_BLOCK * (size_t)a->C) /* a file or stdin writes SOURCE_BLOCK frames */
		want = 4 * (size_t)SOURCE_BLOCK * (size_t)a->C;
	size_t cap = pow2_at_least(want);
	a->ring_store = malloc(cap * sizeof *a->ring_store);
	if (!a->ring_store || ring_init(&a->ring, a->ring_store, cap) < 0) {
		s4k_seterr(err, errlen, "out of memory for a %zu-sample ring", cap);
		return -ENOMEM;
	}
	return 0;
}

/* Where detections go: the events store (and --log), clips, the on-detect hook, MQTT; then the
 * detector, started. 0 or -errno with err. */
static int setup_detection(struct app *a, char *err, size_t errlen)
{
	struct ev_open_info info;
	a->ev = events_new((size_t)a->cfg.history, a->cfg.log, &info, err, errlen);
	if (!a->ev)
		return -EINVAL;
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
		if (!(a->saver = saver_new(&sc, err, errlen)))
			return -EINVAL;
		snprintf(a->save_dir, sizeof a->save_dir, "%s", a->cfg.save_dir);
	}
	if (a->cfg.on_detect[0]) {
		struct hook_config hk = {.command = a->cfg.on_detect,
					 .timeout_ms = a->cfg.on_detect_timeout_ms, .ev = a->ev};
		if (!(a->hook = hook_new(&hk, err, errlen)))
			return -EINVAL;
		snprintf(a->on_detect, sizeof a->on_detect, "%s", a->cfg.on_detect);
	}
	if (a->cfg.mqtt[0]) {
		struct mqtt_config mc = mqtt_config_of(&a->cfg, a, events_last_id(a->ev));
		if (!(a->mqtt = mqtt_new(&mc, err, errlen)))
			return -EINVAL;
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
	if (!(a->det = detector_new(&dc, err, errlen)))
		return -EINVAL;
	detector_set_input(a->det, source_rate(a->src), RS_BEST);
	return detector_start(a->det, err, errlen);
}

/* The Wyoming server (before HTTP: the status hook reads a->wy), then the HTTP server and the
 * port file. 0 or -errno with err. */
static int setup_servers(struct app *a, char *err, size_t errlen)
{
	if (a->cfg.wyoming_port >= 0) {
		struct wy_config wc = {.bind = a->cfg.wyoming_bind, .port = a->cfg.wyoming_port, .m = a->m,
				       .pc = &a->pc, .hop = a->hop, .period = a->period,
				       .max_clients = a->cfg.wyoming_clients,
				       .timeout_s = 300, .version = S4KWS_VERSION, /* satellites may pause */
				       .publish = wy_publish, .publish_user = a};
		if (!(a->wy = wy_start(&wc, err, errlen)))
			return -EINVAL;
		snprintf(a->wy_bind, sizeof a->wy_bind, "%s", a->cfg.wyoming_bind);
		log_msg(LOGL_INFO, "Wyoming wake-word server on %s port %d%s", a->cfg.wyoming_bind,
			wy_port(a->wy), cfg_is_loopback(a->cfg.wyoming_bind) ? ""
			: " (no authentication: keep it on a trusted network)");
	}
	double hb = a->cfg.heartbeat < a->cfg.http_timeout * 0.5 ? a->cfg.heartbeat : a->cfg.http_timeout * 0.5;
	struct http_config hc = {.bind = a->cfg.bind, .port = a->cfg.port, .token = a->cfg.token,
				 .cors_origin = a->cfg.cors_origin,
				 .max_connections = (unsigned)a->cfg.max_connections,
				 .timeout_s = (unsigned)a->cfg.http_timeout, .max_body = (size_t)a->cfg.max_body,
				 .classify_jobs = (unsigned)a->cfg.classify_jobs,
				 .sse_clients = (unsigned)a->cfg.sse_clients, .heartbeat_s = hb};
	a->view = (struct listen_view){.m = a->m, .model_src = a->model_src, .labels = a->labels, .K = a->K,
				       .rate = a->rate, .hop = a->hop, .period = a->period, .C = a->C,
				       .channel_names = a->ch_name_ptr, .src = a->src, .det = a->det, .ev = a->ev,
				       .ring = &a->ring, .saver = a->saver, .save_dir = a->save_dir,
				       .hook = a->hook, .on_detect = a->on_detect, .wy = a->wy,
				       .wyoming_bind = a->wy_bind, .mqtt = a->mqtt, .log_path = a->log_path, .mu = &a->mu,
				       .kw = a->kw, .pc = &a->pc, .t0 = a->t0};
	struct http_hooks hooks;
	listen_http_hooks(&a->view, &hooks);
	if (!(a->http = http_start(&hc, a->ev, &hooks, err, errlen)))
		return -EINVAL;
	if (a->cfg.port_file[0] && write_port_file(a->cfg.port_file, http_port(a->http), err, errlen) < 0)
		return -EIO;
	return 0;
}

/* What a log should say once everything runs: model, channels, URL, thresholds in force. */
static void log_start(const struct app *a)
{
	int v6 = strchr(a->cfg.bind, ':') != NULL; /* an IPv6 address goes in brackets in a URL */
	log_msg(LOGL_INFO, "model %s (%d labels, %d Hz, hop %.1f ms); %d channel%s; http://%s%s%s:%d/", a->model_src,
		a->K, a->rate, 1000.0 * (double)a->hop / a->rate, a->C, a->C == 1 ? "" : "s", v6 ? "[" : "",
		a->cfg.bind, v6 ? "]" : "", http_port(a->http));
	char t[1024];
	size_t n = 0;
	for (int k = 0; k < a->K && n < sizeof t - 64; k++)
		if (a->labels[k][0] != '_')
			n += (size_t)snprintf(t + n, sizeof t - n, "%s%s %.3g", n ? " " : "", a->labels[k],
					      (double)a->kw[k].threshold);
	int tuned = 0;
	for (int k = 0; k < a->K; k++)
		tuned |= !isnan(s4m_thresholds(a->m)[k]);
	log_msg(LOGL_INFO, "thresholds: %s%s", t, tuned ? " (the model's tuned values where no flag or config sets one)" : "");
}

/* The main loop until SIGINT/SIGTERM; under systemd (Type=notify) it says when it is ready,
 * reloading and stopping, and pings the watchdog while the inference thread keeps turning. */
static void main_loop(struct app *a, const sigset_t *sigs)
{
	enum source_kind kind = source_kind(a->src);
	double t_run = s4k_mono_s();
	int summarised = 0;
	uint64_t wd_usec = 0, beats = detector_beats(a->det);
	double wd_last = t_run, wd_every = sd_watchdog_enabled(0, &wd_usec) > 0 ? (double)wd_usec * 1e-6 / 2 : 0;
	sd_notifyf(0, "READY=1\nSTATUS=listening on %s port %d", a->cfg.bind, http_port(a->http));
	for (;;) {
		struct timespec tick = {0, 200000000L};
		int sig = sigtimedwait(sigs, NULL, &tick);
		if (!summarised && (kind == SOURCE_FILE || kind == SOURCE_STDIN))
			summarised = input_summary(a, s4k_mono_s() - t_run);
		if (wd_every > 0 && s4k_mono_s() - wd_last >= wd_every && detector_beats(a->det) != beats) {
			sd_notify(0, "WATCHDOG=1");
			wd_last = s4k_mono_s();
			beats = detector_beats(a->det);
		}
		if (sig == SIGINT || sig == SIGTERM) {
			log_msg(LOGL_INFO, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
			sd_notify(0, "STOPPING=1");
			return;
		}
		if (sig == SIGHUP) {
			sd_notify(0, "RELOADING=1");
			reload(a);
			sd_notify(0, "READY=1");
		}
		source_supervise(a->src);
	}
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
	snprintf(a->log_path, sizeof a->log_path, "%s", a->cfg.log);
	a->t0 = s4k_mono_s();
	pthread_mutex_init(&a->mu, NULL);
	sem_init(&a->wake, 0, 0);
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
	rc = setup_model(a, err, sizeof err);
	if (rc == 0)
		rc = setup_input(a, err, sizeof err);
	if (rc == 0)
		rc = setup_detection(a, err, sizeof err);
	if (rc == 0)
		rc = setup_servers(a, err, sizeof err);
	if (rc == 0) {
		log_start(a);
		rc = source_start(a->src, &a->ring, &a->wake, a->det, err, sizeof err);
	}
	if (rc < 0) {
		fprintf(stderr, "s4kws listen: %s\n", err);
		status = rc == -EDOM ? 2 : 1; /* -EDOM: settings the model cannot take, a usage error */
	} else {
		main_loop(a, &sigs);
		/* a second SIGINT/SIGTERM during the ordered shutdown ends the process at once */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
		status = 0;
	}
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
