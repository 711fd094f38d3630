/* listen_http.h - what `s4kws listen` answers over HTTP: the hooks of daemon/http.h (status,
 * scores, metrics, classify uploads, mute, thresholds) over the daemon's parts.
 *
 *   struct listen_view v = {...};            // filled by listen before http_start
 *   struct http_hooks hooks;
 *   listen_http_hooks(&v, &hooks);
 *   struct http *h = http_start(&hc, v.ev, &hooks, err, sizeof err);
 *
 * The view holds pointers to objects owned by the listen command; they outlive the HTTP server
 * (listen stops it before freeing them). The hooks run on libmicrohttpd's threads: they read the
 * parts' published copies (detector_stats, source_status, ...) and the detection settings under
 * `mu`, and build their own conv workspace per upload from the shared model.
 */
#ifndef S4KWS_DAEMON_LISTEN_HTTP_H
#define S4KWS_DAEMON_LISTEN_HTTP_H

#include <pthread.h>
#include <stddef.h>

#include "audio/ring.h"
#include "detector.h"
#include "events.h"
#include "hook.h"
#include "http.h"
#include "model/s4m.h"
#include "mqtt.h"
#include "spot/postproc.h"
#include "saver.h"
#include "source.h"
#include "wyoming.h"

struct listen_view {
	/* the model, immutable */
	struct s4m_model *m;
	const char *model_src;
	const char **labels;       /* (K) */
	int K;
	int rate;                  /* model rate, Hz */
	size_t hop;                /* model-rate samples per posterior */
	size_t period;             /* stepper restart period, model-rate samples (0: never) */
	int C;                     /* channels */
	const char *const *channel_names; /* (C) or NULL */
	/* the parts (NULL where not configured) */
	struct source *src;
	struct detector *det;
	struct events *ev;
	struct ring *ring;
	struct saver *saver;
	const char *save_dir;
	struct hook *hook;
	const char *on_detect;
	struct wyoming *wy;
	const char *wyoming_bind;
	struct mqtt *mqtt;         /* under mu: SIGHUP may replace it */
	const char *log_path;      /* "" without --log */
	/* detection settings, written by the main thread (SIGHUP) and PUT /v1/thresholds */
	pthread_mutex_t *mu;
	struct pp_kw *kw;          /* (K) */
	struct pp_config *pc;
	double t0;                 /* monotonic start, s */
};

void listen_http_hooks(struct listen_view *v, struct http_hooks *out);

#endif
