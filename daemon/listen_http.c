/* listen_http.c - the HTTP hooks of `s4kws listen` (see listen_http.h).
 *
 * DESIGN. An adapter and nothing else: each hook turns the published state of the daemon's parts
 * into the JSON or Prometheus text that docs/http.md documents, or hands a request (mute,
 * thresholds, an upload) to the part that owns it. Any HTTP thread may run any hook at once, so
 * nothing here keeps state: the detector, the source, the events store and the saver publish
 * copies under their own locks, and the detection settings are copied under `mu`. An upload is
 * decoded in a child process (daemon/isolate.h), then classified as a clip (its loudest window,
 * spot/clip.h) or scanned with the steppers and the live settings (spot/scan.h), as
 * `classify` and the live channels run, on a workspace of its own.
 */
#define _GNU_SOURCE
#include "listen_http.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spot/clip.h"
#include "common/clock.h"
#include "isolate.h"
#include "log.h"
#include "spot/scan.h"

#define CLASSIFY_MAX_S 600.0      /* longest decoded POST /v1/classify upload, s */

/* The mute state as JSON: {"muted": bool, "remaining_s": s, or null when muted until DELETE}. */
static json_t *mute_json(struct listen_view *v)
{
	int64_t u = v->det ? detector_muted_until(v->det) : 0;
	json_t *rem = json_null();
	if (u && u != INT64_MAX) {
		double r = (double)(u - s4k_mono_ns()) * 1e-9;
		rem = json_real(r > 0 ? round(r * 1e3) / 1e3 : 0);
	}
	return json_pack("{s:b, s:o}", "muted", u != 0, "remaining_s", rem);
}

/* The MQTT publisher's figures into *s; 0 when there is none. */
static int view_mqtt_stats(struct listen_view *v, struct mqtt_stats *s)
{
	pthread_mutex_lock(v->mu);
	int on = v->mqtt != NULL;
	if (on)
		mqtt_stats(v->mqtt, s);
	pthread_mutex_unlock(v->mu);
	return on;
}

static json_t *hook_status(void *ud)
{
	struct listen_view *v = ud;
	struct det_stats s;
	detector_stats(v->det, &s);
	struct source_status in;
	source_status(v->src, s.eof, &in);
	const char *logpath = v->log_path;
	json_t *labels = json_array();
	for (int k = 0; k < v->K; k++)
		json_array_append_new(labels, json_string(v->labels[k]));
	const char *mname = s4m_meta(v->m, "name");
	json_t *model = json_pack("{s:s, s:s, s:o, s:i, s:I, s:f, s:f, s:f, s:I}", "name", mname ? mname : "",
				  "source", v->model_src, "labels", labels, "sample_rate", v->rate, "hop_samples",
				  (json_int_t)v->hop, "hop_ms", 1000.0 * (double)v->hop / v->rate, "window_s",
				  (double)s4m_window(v->m) / v->rate, "restart_s", (double)v->period / v->rate,
				  "params", (json_int_t)s4m_n_params(v->m));
	json_t *input = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "kind", in.kind, "name", in.name, "state",
				  in.state, "rate", in.rate, "frames", (json_int_t)in.frames, "retries",
				  (json_int_t)in.retries);
	json_object_set_new(input, "error", in.error[0] ? json_string(in.error) : json_null());
	if (source_kind(v->src) == SOURCE_DEVICE)
		json_object_set_new(input, "overflows", json_integer((json_int_t)in.overflows));
	/* detections of this run, from the events store (the detector's count is published later) */
	struct ev_counts cnt[512];
	size_t nc = events_counts(v->ev, cnt, 512);
	uint64_t total = 0;
	for (size_t i = 0; i < nc; i++)
		total += cnt[i].count;
	json_t *o = json_pack("{s:s, s:o, s:i, s:o, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I}", "version",
			      S4KWS_VERSION, "model", model, "channels", v->C, "input", input, "uptime_s",
			      s4k_mono_s() - v->t0, "audio_s", s.audio_s, "real_time_factor", s.rtf,
			      "real_time_factor_per_channel", s.rtf / v->C, "overruns",
			      (json_int_t)ring_overruns(v->ring), "dropped_samples",
			      (json_int_t)ring_dropped(v->ring), "detections", (json_int_t)total,
			      "last_id", (json_int_t)events_last_id(v->ev));
	if (o) {
		json_object_set_new(o, "inference_cpu_s", json_real(s.cpu_s));
		json_object_set_new(o, "inference_threads", json_integer(v->det ? detector_threads(v->det) : 0));
		json_object_set_new(o, "deduplicated", json_integer((json_int_t)s.deduplicated));
		json_object_set_new(o, "verify_rejected", json_integer((json_int_t)s.rejected));
		json_object_set_new(o, "mute", mute_json(v));
		if (v->channel_names) {
			json_t *cn = json_array();
			for (int c = 0; c < v->C; c++)
				json_array_append_new(cn, json_string(v->channel_names[c]));
			json_object_set_new(o, "channel_names", cn);
		}
		json_object_set_new(o, "muted_detections", json_integer((json_int_t)s.muted));
	}
	if (o && v->saver) {
		struct saver_stats ss;
		saver_stats(v->saver, &ss);
		json_object_set_new(o, "clips", json_pack("{s:s, s:I, s:I, s:I}", "dir", v->save_dir, "saved",
							  (json_int_t)ss.saved, "dropped", (json_int_t)ss.dropped,
							  "errors", (json_int_t)ss.errors));
	}
	if (o && v->wy) {
		struct wy_stats ws;
		wy_stats(v->wy, &ws);
		json_object_set_new(o, "wyoming", json_pack("{s:s, s:i, s:i, s:I, s:I, s:I, s:I}", "bind",
							    v->wyoming_bind, "port", wy_port(v->wy), "clients",
							    ws.clients, "connections", (json_int_t)ws.connections,
							    "detections", (json_int_t)ws.detections, "errors",
							    (json_int_t)ws.errors, "muted", (json_int_t)ws.muted));
	}
	if (o && v->hook) {
		struct hook_stats hs;
		hook_stats(v->hook, &hs);
		json_object_set_new(o, "on_detect", json_pack("{s:s, s:I, s:I, s:I}", "command", v->on_detect,
							      "run", (json_int_t)hs.run, "failed",
							      (json_int_t)hs.failed, "skipped", (json_int_t)hs.skipped));
	}
	struct mqtt_stats ms;
	if (o && view_mqtt_stats(v, &ms))
		json_object_set_new(o, "mqtt", json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:s?}", "broker",
							 ms.broker, "topic", ms.topic, "connected", ms.connected,
							 "queued", (json_int_t)ms.queued, "published",
							 (json_int_t)ms.published, "dropped", (json_int_t)ms.dropped,
							 "connects", (json_int_t)ms.connects, "error",
							 ms.error[0] ? ms.error : NULL));
	if (o && logpath[0])
		json_object_set_new(o, "log", json_pack("{s:s, s:I}", "path", logpath, "errors",
							  (json_int_t)events_log_errors(v->ev)));
	return o;
}

/* /v1/mute: e.g. while the device's own speaker plays (no echo cancellation), or a meeting. */
static json_t *hook_mute(void *ud, int op, double seconds)
{
	struct listen_view *v = ud;
	if (!v->det)
		return NULL;
	if (op == 1) {
		int64_t until = INT64_MAX;
		if (seconds > 0)
			until = s4k_mono_ns() + (int64_t)llround(seconds * 1e9);
		detector_mute(v->det, until);
		if (seconds > 0)
			log_msg(LOGL_INFO, "muted for %.3f s (POST /v1/mute)", seconds);
		else
			log_msg(LOGL_INFO, "muted until DELETE /v1/mute");
	} else if (op == 2) {
		detector_mute(v->det, 0);
		log_msg(LOGL_INFO, "unmuted (DELETE /v1/mute)");
	}
	return mute_json(v);
}

/* /v1/thresholds: every keyword's threshold; with `set`, change some first (all or none). Live
 * from the next hop; a SIGHUP re-reads the configuration and its thresholds win again. */
static json_t *hook_thresholds(void *ud, json_t *set, char *err, size_t errlen)
{
	struct listen_view *v = ud;
	struct pp_kw *kw = malloc((size_t)v->K * sizeof *kw);
	if (!kw) {
		s4k_seterr(err, errlen, "out of memory");
		return NULL;
	}
	char changed[512] = "";
	size_t cl = 0;
	int rc = 0;
	pthread_mutex_lock(v->mu);
	memcpy(kw, v->kw, (size_t)v->K * sizeof *kw);
	const char *key;
	json_t *val;
	json_object_foreach(set, key, val) {
		int k = 0;
		while (k < v->K && (strcmp(v->labels[k], key) || v->labels[k][0] == '_'))
			k++;
		double t = json_number_value(val);
		if (k == v->K) {
			s4k_seterr(err, errlen, "'%s' is not a keyword of this model", key);
			rc = -EINVAL;
			break;
		}
		if (!json_is_number(val) || !(t >= 0.001 && t <= 1)) {
			s4k_seterr(err, errlen, "the threshold of '%s' must be a number from 0.001 to 1", key);
			rc = -EINVAL;
			break;
		}
		kw[k].threshold = (float)t;
		if (cl < sizeof changed)
			cl += (size_t)snprintf(changed + cl, sizeof changed - cl, " %s=%g", key, t);
	}
	if (rc == 0 && set) {
		struct pp_config pc = *v->pc;
		pc.kw = kw;
		rc = detector_reconfigure(v->det, &pc, err, errlen);
		if (rc == 0 && v->wy) /* same checks as the detector's: does not fail after it */
			rc = wy_reconfigure(v->wy, &pc, err, errlen);
		if (rc == 0)
			memcpy(v->kw, kw, (size_t)v->K * sizeof *kw);
	}
	json_t *o = NULL;
	if (rc == 0) {
		json_t *t = json_object();
		for (int k = 0; k < v->K; k++)
			if (v->labels[k][0] != '_')
				json_object_set_new(t, v->labels[k], json_real(round((double)v->kw[k].threshold * 1e6) / 1e6));
		o = json_pack("{s:o}", "thresholds", t);
	}
	pthread_mutex_unlock(v->mu);
	free(kw);
	if (rc == 0 && set && changed[0])
		log_msg(LOGL_INFO, "thresholds set over HTTP:%s", changed);
	return o;
}

/* GET /v1/scores: every channel's smoothed posteriors as the detector last published them, so
 * that a user tuning thresholds can watch the margins (poll it, e.g. 10 times a second). */
static json_t *hook_scores(void *ud)
{
	struct listen_view *v = ud;
	size_t n = (size_t)v->C * (size_t)v->K;
	float *p = malloc(n * sizeof *p);
	uint64_t hops = 0;
	struct det_stats s;
	if (!p || detector_scores(v->det, p, n, &hops) < 0) {
		free(p);
		return NULL;
	}
	detector_stats(v->det, &s);
	json_t *chs = json_array();
	/* --input none has no channel of its own (uploads and Wyoming clients are scored apart) */
	for (int c = 0; chs && source_kind(v->src) != SOURCE_NONE && c < v->C; c++) {
		const float *pc = p + (size_t)c * (size_t)v->K;
		json_t *sc = json_object();
		int best = 0;
		for (int k = 0; sc && k < v->K; k++) {
			json_object_set_new(sc, v->labels[k], json_real(pc[k]));
			if (pc[k] > pc[best])
				best = k;
		}
		json_array_append_new(chs, json_pack("{s:i, s:o, s:{s:s, s:f}}", "channel", c, "scores", sc, "top",
						     "label", v->labels[best], "score", (double)pc[best]));
	}
	free(p);
	/* (no smoothing window here: it is per keyword, and v->pc belongs to the main thread) */
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
	struct listen_view *v = ud;
	struct det_stats s;
	detector_stats(v->det, &s);
	struct ev_counts cnt[512];
	size_t n = events_counts(v->ev, cnt, 512);
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
	       "Blocks of captured audio dropped because inference fell behind.", ring_overruns(v->ring));
	metric(f, "s4kws_dropped_samples_total", "counter", "Samples in those blocks (all channels).",
	       ring_dropped(v->ring));
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
	struct source_status in;
	source_status(v->src, s.eof, &in);
	metric(f, "s4kws_input_up", "gauge", "1 while the input delivers audio.", !strcmp(in.state, "running"));
	metric(f, "s4kws_input_retries_total", "counter", "Attempts to reopen a failed capture device.",
	       in.retries);
	if (v->saver) {
		struct saver_stats ss;
		saver_stats(v->saver, &ss);
		metric(f, "s4kws_clips_saved_total", "counter", "Detection clips written to --save-dir.", ss.saved);
		metric(f, "s4kws_clips_dropped_total", "counter",
		       "Detection clips dropped because the writer fell behind.", ss.dropped);
		metric(f, "s4kws_clip_errors_total", "counter", "Detection clips that could not be written.",
		       ss.errors);
	}
	if (v->hook) {
		struct hook_stats hs;
		hook_stats(v->hook, &hs);
		metric(f, "s4kws_on_detect_runs_total", "counter", "On-detect commands run (counted when they end).",
		       hs.run);
		metric(f, "s4kws_on_detect_failures_total", "counter",
		       "On-detect commands that failed, timed out or did not start.", hs.failed);
		metric(f, "s4kws_on_detect_skipped_total", "counter",
		       "Detections whose command never ran (history wrapped or shutdown).", hs.skipped);
	}
	if (v->wy) {
		struct wy_stats ws;
		wy_stats(v->wy, &ws);
		metric(f, "s4kws_wyoming_clients", "gauge", "Connected Wyoming clients.", (uint64_t)ws.clients);
		metric(f, "s4kws_wyoming_connections_total", "counter", "Wyoming connections accepted.",
		       ws.connections);
		metric(f, "s4kws_wyoming_detections_total", "counter", "Detection events sent to Wyoming clients.",
		       ws.detections);
		metric(f, "s4kws_wyoming_errors_total", "counter", "Wyoming connections closed for bad input.",
		       ws.errors);
		metric(f, "s4kws_wyoming_muted_total", "counter",
		       "Wyoming detections not sent because detections were muted.", ws.muted);
	}
	struct mqtt_stats ms;
	if (view_mqtt_stats(v, &ms)) {
		metric(f, "s4kws_mqtt_connected", "gauge", "1 while the MQTT broker has accepted the connection.",
		       (uint64_t)ms.connected);
		metric(f, "s4kws_mqtt_queued", "gauge", "Detections waiting for the MQTT broker.", ms.queued);
		metric(f, "s4kws_mqtt_published_total", "counter", "Detections handed to the MQTT broker (QoS 1).",
		       ms.published);
		metric(f, "s4kws_mqtt_dropped_total", "counter",
		       "Detections never published to MQTT: the queue was full (oldest dropped) or they left "
		       "the history first.", ms.dropped);
		metric(f, "s4kws_mqtt_connects_total", "counter", "Connections the MQTT broker accepted.",
		       ms.connects);
	}
	metric(f, "s4kws_muted", "gauge", "1 while detections are muted (POST /v1/mute).",
	       v->det && detector_muted_until(v->det) ? 1 : 0);
	metric(f, "s4kws_muted_detections_total", "counter", "Detections not reported because they were muted.",
	       s.muted);
	fprintf(f, "# HELP s4kws_channels Channels being spotted.\n# TYPE s4kws_channels gauge\ns4kws_channels %d\n",
		v->C);
	fprintf(f, "# HELP s4kws_uptime_seconds Seconds since start.\n# TYPE s4kws_uptime_seconds gauge\n"
		   "s4kws_uptime_seconds %.3f\n", s4k_mono_s() - v->t0);
}

struct upload_sink {
	json_t *dets;
	const struct listen_view *v;
};

static void on_upload_detection(void *user, const struct pp_detection *d)
{
	struct upload_sink *u = user;
	json_array_append_new(u->dets, clip_detection_json(u->v->m, u->v->rate, d, 0));
}

/* POST /v1/classify: the file-mode JSON of one uploaded file (a clip, or detections when it is
 * longer than the model window), band-limited like `classify --max-rate` when max_rate > 0.
 * Own workspace per request, from the shared model. */
static int hook_classify(void *ud, const void *body, size_t len, int max_rate, json_t **out, char *err,
			 size_t errlen)
{
	struct listen_view *v = ud;
	char e[S4K_ERR_LEN];
	float *x = NULL;
	size_t n = 0;
	uint64_t scrubbed = 0;
	/* decoded in a child process (daemon/isolate.h): a codec's leak or crash stays there */
	int status = iso_decode(body, len, v->rate, max_rate, (size_t)(CLASSIFY_MAX_S * v->rate), &x, &n,
				&scrubbed, err, errlen);
	if (status)
		return status;
	double dur = (double)n / v->rate;
	size_t win = s4m_window(v->m);
	if (n < s4m_hop(v->m)) {
		s4k_seterr(err, errlen, "the upload holds %.4f s of audio, too short to classify", dur);
		free(x);
		return 400;
	}
	json_t *rec = NULL;
	if (n <= clip_max_len(v->m, v->rate)) { /* a clip: its loudest window (daemon/clip.h) */
		struct s4m_conv *cv = s4m_conv_new(v->m, clip_input_len(v->m, 0), e, sizeof e);
		float *buf = malloc(clip_input_len(v->m, 0) * sizeof *buf);
		float *lg = malloc((size_t)v->K * sizeof *lg);
		size_t at = 0;
		if (cv && buf && lg &&
		    clip_best_logits(v->m, cv, NULL, x, n, v->rate, NULL, 0, buf, lg, &at, e, sizeof e) == 0)
			rec = clip_json(v->m, lg, 3, NULL);
		else if (!cv || !buf || !lg)
			s4k_seterr(e, sizeof e, "out of memory");
		if (rec) {
			json_object_set_new(rec, "duration", json_real(dur));
			if (clip_windowed(v->m, n))
				json_object_set_new(rec, "window", json_pack("[f, f]", (double)at / v->rate,
									     (double)(at + win) / v->rate));
		}
		free(lg);
		free(buf);
		s4m_conv_free(cv);
	} else {
		struct pp_kw *kw = malloc((size_t)v->K * sizeof *kw);
		struct pp_config pc;
		struct upload_sink us = {json_array(), v};
		struct scan *sc = NULL;
		if (kw) {
			pthread_mutex_lock(v->mu);
			memcpy(kw, v->kw, (size_t)v->K * sizeof *kw);
			pc = *v->pc;
			pthread_mutex_unlock(v->mu);
			pc.kw = kw;
			struct scan_sink sink = {.detection = on_upload_detection, .user = &us};
			sc = scan_new(v->m, SCAN_STREAM, &pc, 0, v->period, &sink, e, sizeof e);
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

void listen_http_hooks(struct listen_view *v, struct http_hooks *out)
{
	*out = (struct http_hooks){.ud = v, .status = hook_status, .scores = hook_scores,
				   .metrics = hook_metrics, .classify = hook_classify, .mute = hook_mute,
				   .thresholds = hook_thresholds};
}
