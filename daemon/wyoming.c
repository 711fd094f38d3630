/* wyoming.c - Wyoming wake-word server: TCP clients stream audio, detections go back.
 *
 * DESIGN: Home Assistant and wyoming-satellite talk to wake-word engines over the Wyoming
 * protocol (see wyoming.h); serving it lets them use s4kws with no glue. One acceptor thread
 * polls the listening socket and a stop pipe; each client gets a thread of its own (at most
 * max_clients; a slot array, so that wy_stop() can shut every socket down and join). A client
 * thread owns everything of its stream: a stepper relay over the shared read-only model, a
 * post-processing instance, a resampler and its buffers, all allocated when the connection
 * starts, so audio chunks are processed without allocating. Reads go through a 64 KiB buffer
 * with SO_RCVTIMEO as the idle timeout; every length in a header is bounded before anything is
 * read, so a hostile client costs at most one connection's buffers and then an error event.
 * Writes use MSG_NOSIGNAL: a client that went away just ends its thread.
 * With verify on (daemon/verify.h), each client also has a verifier (~50 MB for the default
 * model): its detections are candidates until their window is in and confirmed, and audio-stop
 * judges the ones still waiting before it says not-detected.
 */
#define _GNU_SOURCE
#include "wyoming.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../common/err.h"
#include "audio/resample.h"
#include "config.h"
#include "events.h"
#include "log.h"
#include "spot/spot.h"

#define WY_LINE_MAX 65536            /* header line and data section, bytes */
#define WY_PAYLOAD_MAX (4u << 20)    /* one audio chunk, bytes */
#define WY_MAX_CH 16                 /* channels of client audio */

struct wyoming;

struct wconn {
	struct wyoming *w;
	int fd;
	pthread_t thr;
	int used;                    /* slot taken (under w->mu) */
	int done;                    /* thread finished; joinable (under w->mu) */
	/* stream state (client thread) */
	struct s4m_relay *st;
	struct spot *spot;           /* decisions (spot/spot.h): its sink sends the detections */
	int send_failed;             /* a detection could not be sent: the connection ends */
	unsigned gen;                /* generation of the settings the spotter has */
	char name[EV_NAME_LEN];      /* "wyoming ADDRESS:PORT": the detection's channel name */
	struct rs rs;
	int rs_ok;
	int rate, width, channels;   /* current stream format; rate 0: no stream */
	uint64_t samples;            /* model-rate samples pushed since audio-start */
	int detected;                /* detections in this stream */
	unsigned char *want;         /* (K) 1: report this label */
	float *mono, *res, *hopbuf, *probs;
	size_t hop_fill;
	size_t mono_cap, res_cap;
	/* input buffer */
	char *rb;
	size_t rpos, rlen;
	unsigned char *payload;
};

struct wyoming {
	const struct s4m_model *m;
	struct pp_config pc;         /* under mu (wy_reconfigure), copied by clients at gen changes */
	struct pp_kw *kw;            /* (K) copy */
	_Atomic unsigned gen;        /* bumped by wy_reconfigure */
	int (*publish)(void *user, struct ev_detection *e);
	void *publish_user;
	const char **labels;         /* (K) the model's */
	int K;
	size_t hop, period;
	double timeout_s;
	char version[32];
	int lfd, port;
	int stop_pipe[2];
	pthread_t acc;
	int acc_started;
	pthread_mutex_t mu;
	struct wconn *c;             /* (max_clients) */
	int max_clients;
	_Atomic int clients;
	_Atomic uint64_t connections, detections, errors, muted;
};

/* ---- I/O ---- */

static int send_event(struct wconn *c, const char *type, json_t *data)
{
	json_t *o = json_pack("{s:s}", "type", type);
	if (o && data)
		json_object_set_new(o, "data", data);
	else
		json_decref(data);
	char *s = o ? json_dumps(o, EV_JSON_FLAGS) : NULL;
	json_decref(o);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	s[n] = '\n'; /* the terminator becomes the line end: n + 1 bytes go out */
	int rc = 0;
	for (size_t off = 0; off < n + 1;) {
		ssize_t k = send(c->fd, s + off, n + 1 - off, MSG_NOSIGNAL);
		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			rc = -EIO;
			break;
		}
		off += (size_t)k;
	}
	free(s);
	return rc;
}

static int send_error(struct wconn *c, const char *code, const char *text)
{
	log_msg(LOGL_WARN, "wyoming: client closed: %s", text);
	atomic_fetch_add(&c->w->errors, 1);
	send_event(c, "error", json_pack("{s:s, s:s}", "text", text, "code", code));
	return -EPROTO;
}

/* Fill the read buffer; 1 read more, 0 orderly close, -1 error or timeout. */
static int fill(struct wconn *c)
{
	if (c->rpos > 0) {
		memmove(c->rb, c->rb + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	if (c->rlen == WY_LINE_MAX)
		return -1;
	for (;;) {
		ssize_t k = recv(c->fd, c->rb + c->rlen, WY_LINE_MAX - c->rlen, 0);
		if (k > 0) {
			c->rlen += (size_t)k;
			return 1;
		}
		if (k == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* One line without its '\n' into line (NUL-terminated). 1, 0 at a clean end, -1 error,
 * -2 too long. */
static int read_line(struct wconn *c, char *line)
{
	for (;;) {
		char *nl = memchr(c->rb + c->rpos, '\n', c->rlen - c->rpos);
		if (nl) {
			size_t n = (size_t)(nl - (c->rb + c->rpos));
			memcpy(line, c->rb + c->rpos, n);
			line[n] = 0;
			c->rpos += n + 1;
			return 1;
		}
		if (c->rlen - c->rpos >= WY_LINE_MAX - 1)
			return -2;
		int f = fill(c);
		if (f <= 0)
			return f == 0 && c->rlen == c->rpos ? 0 : -1;
	}
}

static int read_exact(struct wconn *c, unsigned char *dst, size_t n)
{
	while (n) {
		if (c->rpos == c->rlen && fill(c) <= 0)
			return -1;
		size_t k = c->rlen - c->rpos < n ? c->rlen - c->rpos : n;
		memcpy(dst, c->rb + c->rpos, k);
		c->rpos += k;
		dst += k;
		n -= k;
	}
	return 0;
}

/* ---- events ---- */

static json_t *info_json(struct wyoming *w)
{
	json_t *att = json_pack("{s:s, s:s}", "name", "s4kws", "url", "https://github.com/s4kws/s4kws");
	json_t *models = json_array();
	const char *mname = s4m_meta(w->m, "name");
	for (int k = 0; k < w->K; k++) {
		if (w->labels[k][0] == '_')
			continue;
		char desc[160];
		snprintf(desc, sizeof desc, "keyword '%s' of %s", w->labels[k], mname ? mname : "the model");
		json_array_append_new(models, json_pack("{s:s, s:[s], s:O, s:b, s:s, s:s, s:s}", "name",
							w->labels[k], "languages", "en", "attribution", att,
							"installed", 1, "description", desc, "version",
							w->version, "phrase", w->labels[k]));
	}
	json_t *prog = json_pack("{s:s, s:O, s:b, s:s, s:s, s:o}", "name", "s4kws", "attribution", att,
				 "installed", 1, "description",
				 "s4kws: keyword spotting with S4 state-space models", "version", w->version,
				 "models", models);
	json_decref(att);
	return json_pack("{s:[o]}", "wake", prog);
}

/* Report one detection to the daemon (which may be muted) and to the client. */
static int send_detection(struct wconn *c, const struct pp_detection *d)
{
	struct wyoming *w = c->w;
	double r = s4m_sample_rate(w->m) / s4m_rate(w->m);
	if (w->publish) {
		struct ev_detection e = {.channel = -1, .score = d->score, .verify = d->verify,
					 .offset = (double)d->sample / r, .start = (double)d->start / r,
					 .end = (double)d->end / r};
		snprintf(e.keyword, sizeof e.keyword, "%s", w->labels[d->label]);
		memcpy(e.channel_name, c->name, sizeof e.channel_name);
		if (w->publish(w->publish_user, &e) > 0) {
			atomic_fetch_add(&w->muted, 1);
			return 0;
		}
	}
	long long ms = llround((double)d->sample * 1000.0 / r);
	c->detected++;
	atomic_fetch_add(&w->detections, 1);
	log_msg(LOGL_DEBUG, "wyoming: %s at %lld ms, score %.3f", w->labels[d->label], ms, (double)d->score);
	return send_event(c, "detection", json_pack("{s:s, s:I}", "name", w->labels[d->label],
						     "timestamp", (json_int_t)ms));
}

/* spot's sink: a wanted keyword's detection goes to the client. */
static void on_detection(void *user, int ch, const struct pp_detection *d)
{
	struct wconn *c = user;
	if (c->want[d->label] && !c->send_failed && send_detection(c, d) < 0)
		c->send_failed = 1;
}

/* Judge what still waits (end of stream); -EIO when a detection could not be sent. */
static int finish_stream(struct wconn *c)
{
	spot_finish(c->spot);
	return c->send_failed ? -EIO : 0;
}

/* Start a stream in the given format (audio-start, or a chunk in a new format). */
static int stream_start(struct wconn *c, int rate, int width, int channels)
{
	struct wyoming *w = c->w;
	if (width != 2)
		return send_error(c, "unsupported-width", "only 16-bit audio (width 2) is supported");
	if (rate < 1000 || rate > 384000 || channels < 1 || channels > WY_MAX_CH)
		return send_error(c, "unsupported-format", "audio rate must be 1000-384000 Hz and channels 1-16");
	if (c->rs_ok)
		rs_fini(&c->rs);
	c->rs_ok = 0;
	char err[S4K_ERR_LEN];
	if (finish_stream(c) < 0) /* what the previous stream left waiting */
		return -EIO;
	if (rs_init(&c->rs, rate, s4m_sample_rate(w->m), 1, RS_MEDIUM, err, sizeof err) < 0)
		return send_error(c, "resampler", err);
	c->rs_ok = 1;
	c->rate = rate;
	c->width = width;
	c->channels = channels;
	c->samples = 0;
	c->detected = 0;
	c->hop_fill = 0;
	s4m_relay_reset(c->st);
	spot_reset(c->spot);
	return 0;
}

/* Model-rate samples into the stepper, hop by hop, detections out. */
static int push_model(struct wconn *c, const float *x, size_t n)
{
	struct wyoming *w = c->w;
	unsigned gen = atomic_load(&w->gen);
	if (gen != c->gen) { /* new settings (SIGHUP, PUT /v1/thresholds): from this chunk on */
		char err[S4K_ERR_LEN];
		pthread_mutex_lock(&w->mu);
		struct pp_config pc = w->pc; /* kw and labels are w's, read under the lock */
		if (spot_reconfigure(c->spot, &pc, err, sizeof err) < 0)
			log_msg(LOGL_WARN, "wyoming: new detection settings refused: %s", err);
		pthread_mutex_unlock(&w->mu);
		c->gen = gen;
	}
	while (n) {
		size_t k = w->hop - c->hop_fill < n ? w->hop - c->hop_fill : n;
		memcpy(c->hopbuf + c->hop_fill, x, k * sizeof *x);
		c->hop_fill += k;
		x += k;
		n -= k;
		if (c->hop_fill < w->hop)
			break;
		c->hop_fill = 0;
		spot_audio(c->spot, c->hopbuf, w->hop);
		s4m_relay_push(c->st, c->hopbuf, w->hop);
		s4m_relay_scores(c->st, c->probs);
		c->samples += w->hop;
		spot_hop(c->spot, 0, c->probs);
		spot_decide(c->spot);
		if (c->send_failed)
			return -EIO;
	}
	return 0;
}

/* A format field of an event: absent or not an integer 0, beyond +-10^9 -1 (refused by
 * stream_start; a cast would wrap 2^32 + 16000 to 16000). */
static int format_field(json_t *data, const char *key)
{
	json_int_t x = json_integer_value(json_object_get(data, key));
	return x < -1000000000 || x > 1000000000 ? -1 : (int)x;
}

static int audio_chunk(struct wconn *c, json_t *data, const unsigned char *p, size_t len)
{
	int rate = format_field(data, "rate");
	int width = format_field(data, "width");
	int ch = format_field(data, "channels");
	if (!c->rate || (rate && (rate != c->rate || width != c->width || ch != c->channels))) {
		if (!rate)
			return send_error(c, "no-format", "audio-chunk without rate, width and channels before any audio-start");
		if (stream_start(c, rate, width, ch) < 0)
			return -EPROTO;
	}
	size_t fb = (size_t)c->channels * 2, frames = len / fb;
	if (len % fb)
		return send_error(c, "partial-frame", "an audio chunk holds a partial sample frame");
	/* input frames per block: the mono buffer, and what the resampler can write for them */
	size_t blk = c->mono_cap;
	while (blk > 16 && rs_max_out(&c->rs, blk) > c->res_cap)
		blk /= 2;
	for (size_t f0 = 0; f0 < frames;) {
		size_t nf = frames - f0 < blk ? frames - f0 : blk;
		for (size_t i = 0; i < nf; i++) {
			float s = 0;
			for (int k = 0; k < c->channels; k++) {
				const unsigned char *b = p + ((f0 + i) * (size_t)c->channels + (size_t)k) * 2;
				s += (float)(int16_t)(uint16_t)(b[0] | b[1] << 8);
			}
			c->mono[i] = s / (32768.0f * (float)c->channels);
		}
		f0 += nf;
		size_t off = 0;
		while (off < nf) {
			size_t used = 0;
			long out = rs_process(&c->rs, c->mono + off, nf - off, &used, c->res, c->res_cap, 0);
			if (out < 0)
				return send_error(c, "resampler", "the resampler failed");
			if (push_model(c, c->res, (size_t)out) < 0)
				return -EIO;
			off += used;
			if (!used && !out)
				break;
		}
	}
	return 0;
}

static int handle_event(struct wconn *c, const char *type, json_t *data, const unsigned char *p, size_t len)
{
	struct wyoming *w = c->w;
	if (!strcmp(type, "describe"))
		return send_event(c, "info", info_json(w));
	if (!strcmp(type, "detect")) {
		json_t *names = json_object_get(data, "names");
		int any = 0;
		memset(c->want, 0, (size_t)w->K);
		for (size_t i = 0; json_is_array(names) && i < json_array_size(names); i++) {
			const char *n = json_string_value(json_array_get(names, i));
			for (int k = 0; n && k < w->K; k++)
				if (w->labels[k][0] != '_' && !strcmp(n, w->labels[k]))
					c->want[k] = 1, any = 1;
		}
		if (json_is_array(names) && json_array_size(names) && !any) {
			/* none of ours: nothing will be detected (audio-stop answers not-detected) */
			char text[512];
			size_t tl = (size_t)snprintf(text, sizeof text, "no wake word of this model is named in "
						     "detect; it has:");
			for (int k = 0; k < w->K && tl < sizeof text - 64; k++)
				if (w->labels[k][0] != '_')
					tl += (size_t)snprintf(text + tl, sizeof text - tl, " %s", w->labels[k]);
			return send_event(c, "error", json_pack("{s:s, s:s}", "text", text, "code",
								"unknown-wake-word"));
		}
		if (!any) /* none asked for: every keyword */
			for (int k = 0; k < w->K; k++)
				c->want[k] = w->labels[k][0] != '_';
		return 0;
	}
	if (!strcmp(type, "ping")) { /* the protocol's keep-alive: pong, with the ping's text */
		const char *t = json_string_value(json_object_get(data, "text"));
		return send_event(c, "pong", t ? json_pack("{s:s}", "text", t) : json_object());
	}
	if (!strcmp(type, "audio-start"))
		return stream_start(c, format_field(data, "rate"), format_field(data, "width"),
				    format_field(data, "channels"));
	if (!strcmp(type, "audio-chunk"))
		return audio_chunk(c, data, p, len);
	if (!strcmp(type, "audio-stop")) {
		if (finish_stream(c) < 0) /* no more audio is coming */
			return -EIO;
		int rc = c->rate && !c->detected ? send_event(c, "not-detected", json_object()) : 0;
		c->rate = 0;
		return rc;
	}
	return 0; /* other events (transcript, ...) are not ours: ignored, as the protocol asks */
}

/* ---- connections ---- */

/* At the end of a connection; the slot is cleared when the next client takes it. */
static void conn_free_stream(struct wconn *c)
{
	s4m_relay_free(c->st);
	spot_free(c->spot);
	if (c->rs_ok)
		rs_fini(&c->rs);
	free(c->want);
	free(c->mono);
	free(c->res);
	free(c->hopbuf);
	free(c->probs);
	free(c->rb);
	free(c->payload);
}

static void *conn_main(void *arg)
{
	struct wconn *c = arg;
	struct wyoming *w = c->w;
	char err[S4K_ERR_LEN];
	char *line = malloc(WY_LINE_MAX);
	c->mono_cap = 4096;
	c->res_cap = 65536; /* model-rate samples per resampler call; blocks are cut to fit */
	c->st = s4m_relay_new(w->m, w->period, err, sizeof err);
	struct spot_sink sink = {.user = c, .detection = on_detection};
	pthread_mutex_lock(&w->mu);
	c->gen = atomic_load(&w->gen);
	c->spot = spot_new(w->m, 1, &w->pc, w->hop, &sink, err, sizeof err);
	pthread_mutex_unlock(&w->mu);
	c->send_failed = 0;
	if (!c->spot) {
		send_error(c, "no-memory", "out of memory for a Wyoming client's detector");
		goto out;
	}
	c->want = malloc((size_t)w->K);
	c->mono = malloc(c->mono_cap * sizeof *c->mono);
	c->res = malloc(c->res_cap * sizeof *c->res);
	c->hopbuf = malloc(w->hop * sizeof *c->hopbuf);
	c->probs = malloc((size_t)w->K * sizeof *c->probs);
	c->rb = malloc(WY_LINE_MAX);
	c->payload = malloc(WY_PAYLOAD_MAX);
	c->rpos = c->rlen = 0;
	c->rate = 0;
	if (!line || !c->st || !c->want || !c->mono || !c->res || !c->hopbuf || !c->probs ||
	    !c->rb || !c->payload) {
		send_error(c, "no-memory", "out of memory for a Wyoming client");
		goto out;
	}
	for (int k = 0; k < w->K; k++)
		c->want[k] = w->labels[k][0] != '_';
	for (;;) {
		int r = read_line(c, line);
		if (r == 0)
			break;
		if (r == -2) {
			send_error(c, "line-too-long", "an event header is longer than 64 KiB");
			break;
		}
		if (r < 0)
			break; /* timeout, reset or shutdown */
		if (!line[0])
			continue;
		json_error_t je;
		json_t *h = json_loads(line, 0, &je);
		const char *type = json_string_value(json_object_get(h, "type"));
		json_t *dl = json_object_get(h, "data_length"), *pl = json_object_get(h, "payload_length");
		json_int_t dlen = json_is_integer(dl) ? json_integer_value(dl) : 0;
		json_int_t plen = json_is_integer(pl) ? json_integer_value(pl) : 0;
		int bad = !json_is_object(h) || !type || (dl && !json_is_null(dl) && !json_is_integer(dl)) ||
			  (pl && !json_is_null(pl) && !json_is_integer(pl));
		if (bad || dlen < 0 || dlen >= WY_LINE_MAX || plen < 0 || plen > (json_int_t)WY_PAYLOAD_MAX) {
			json_decref(h);
			send_error(c, "bad-event", bad ? "an event header is not a JSON object with a type"
						       : "an event's data or payload length is out of range (data < 64 KiB, payload <= 4 MiB)");
			break;
		}
		json_t *data = json_object_get(h, "data");
		data = json_is_object(data) ? json_incref(data) : json_object();
		if (dlen > 0) {
			if (read_exact(c, (unsigned char *)line, (size_t)dlen) < 0) {
				json_decref(data);
				json_decref(h);
				break;
			}
			json_t *extra = json_loadb(line, (size_t)dlen, 0, &je);
			if (json_is_object(extra))
				json_object_update(data, extra);
			json_decref(extra);
		}
		int rc = plen > 0 ? read_exact(c, c->payload, (size_t)plen) : 0;
		if (rc == 0)
			rc = handle_event(c, type, data, c->payload, (size_t)plen);
		json_decref(data);
		json_decref(h);
		if (rc < 0)
			break;
	}
out:
	free(line);
	conn_free_stream(c);
	pthread_mutex_lock(&w->mu); /* wy_stop() shuts sockets down under the same lock */
	close(c->fd);
	c->fd = -1;
	c->done = 1;
	pthread_mutex_unlock(&w->mu);
	atomic_fetch_sub(&w->clients, 1);
	return NULL;
}

/* Join finished client threads, free their slots (acceptor thread, or wy_stop). */
static void reap(struct wyoming *w, int all)
{
	for (int i = 0; i < w->max_clients; i++) {
		struct wconn *c = &w->c[i];
		pthread_mutex_lock(&w->mu);
		int join = c->used && (c->done || all);
		pthread_mutex_unlock(&w->mu);
		if (!join)
			continue;
		pthread_join(c->thr, NULL);
		pthread_mutex_lock(&w->mu);
		c->used = 0;
		c->done = 0;
		pthread_mutex_unlock(&w->mu);
	}
}

/* "wyoming ADDRESS:PORT" of a client, cut to fit a channel name. */
static void peer_name(const struct sockaddr_storage *p, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (p->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)p;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
		port = ntohs(s4->sin_port);
	} else if (p->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)p;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
		port = ntohs(s6->sin6_port);
	}
	snprintf(out, len, "wyoming %.16s:%d", a, port);
}

static void *acceptor(void *arg)
{
	struct wyoming *w = arg;
	for (;;) {
		struct pollfd pf[2] = {{w->lfd, POLLIN, 0}, {w->stop_pipe[0], POLLIN, 0}};
		int n = poll(pf, 2, 1000);
		reap(w, 0);
		if (n < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (n <= 0 || !(pf[0].revents & POLLIN))
			continue;
		struct sockaddr_storage peer;
		socklen_t pl = sizeof peer;
		int fd = accept4(w->lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		char pname[EV_NAME_LEN];
		peer_name(&peer, pname, sizeof pname);
		struct timeval tv = {.tv_sec = (time_t)w->timeout_s,
				     .tv_usec = (suseconds_t)((w->timeout_s - (double)(time_t)w->timeout_s) * 1e6)};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		atomic_fetch_add(&w->connections, 1);
		struct wconn *slot = NULL;
		pthread_mutex_lock(&w->mu);
		for (int i = 0; i < w->max_clients && !slot; i++)
			if (!w->c[i].used)
				slot = &w->c[i];
		if (slot) {
			memset(slot, 0, sizeof *slot);
			slot->used = 1;
			slot->fd = fd;
			slot->w = w;
			memcpy(slot->name, pname, sizeof slot->name);
		}
		pthread_mutex_unlock(&w->mu);
		if (!slot) {
			struct wconn tmp = {.w = w, .fd = fd};
			send_error(&tmp, "too-many-clients", "too many Wyoming clients; try again later");
			close(fd);
			continue;
		}
		atomic_fetch_add(&w->clients, 1);
		if (pthread_create(&slot->thr, NULL, conn_main, slot)) {
			atomic_fetch_sub(&w->clients, 1);
			close(fd);
			pthread_mutex_lock(&w->mu);
			slot->used = 0;
			pthread_mutex_unlock(&w->mu);
		}
	}
	return NULL;
}

struct wyoming *wy_start(const struct wy_config *c, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (cfg_sockaddr(c->bind, c->port, &ss, &sl) < 0) {
		s4k_seterr(err, errlen, "wyoming-bind '%s' is not an IPv4 or IPv6 address", c->bind);
		return NULL;
	}
	struct wyoming *w = calloc(1, sizeof *w);
	if (!w) {
		s4k_seterr(err, errlen, "out of memory for the Wyoming server");
		return NULL;
	}
	w->lfd = -1;
	w->stop_pipe[0] = w->stop_pipe[1] = -1;
	pthread_mutex_init(&w->mu, NULL);
	w->m = c->m;
	w->K = s4m_n_labels(c->m);
	w->hop = c->hop;
	w->period = c->period;
	w->timeout_s = c->timeout_s;
	w->max_clients = c->max_clients;
	w->publish = c->publish;
	w->publish_user = c->publish_user;
	snprintf(w->version, sizeof w->version, "%s", c->version);
	w->kw = malloc((size_t)w->K * sizeof *w->kw);
	w->labels = malloc((size_t)w->K * sizeof *w->labels);
	w->c = calloc((size_t)c->max_clients, sizeof *w->c);
	if (!w->kw || !w->labels || !w->c) {
		s4k_seterr(err, errlen, "out of memory for the Wyoming server");
		goto fail;
	}
	memcpy(w->kw, c->pc->kw, (size_t)w->K * sizeof *w->kw);
	for (int k = 0; k < w->K; k++)
		w->labels[k] = s4m_label(c->m, k);
	w->pc = *c->pc;
	w->pc.kw = w->kw;
	w->pc.labels = w->labels;
	w->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (w->lfd < 0 || setsockopt(w->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(w->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(w->lfd, 16) < 0) {
		s4k_seterr(err, errlen, "cannot listen for Wyoming clients on %s port %d: %s", c->bind, c->port,
			   strerror(errno));
		goto fail;
	}
	struct sockaddr_storage got;
	socklen_t gl = sizeof got;
	getsockname(w->lfd, (struct sockaddr *)&got, &gl);
	w->port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
						 : ((struct sockaddr_in6 *)&got)->sin6_port);
	if (pipe2(w->stop_pipe, O_CLOEXEC) < 0 || pthread_create(&w->acc, NULL, acceptor, w)) {
		s4k_seterr(err, errlen, "cannot start the Wyoming server thread");
		goto fail;
	}
	w->acc_started = 1;
	return w;
fail:
	wy_stop(w);
	return NULL;
}

int wy_port(const struct wyoming *w)
{
	return w->port;
}

void wy_stats(struct wyoming *w, struct wy_stats *s)
{
	s->clients = atomic_load(&w->clients);
	s->connections = atomic_load(&w->connections);
	s->detections = atomic_load(&w->detections);
	s->errors = atomic_load(&w->errors);
	s->muted = atomic_load(&w->muted);
}

int wy_reconfigure(struct wyoming *w, const struct pp_config *pc, char *err, size_t errlen)
{
	if (pp_validate(pc, err, errlen) < 0)
		return -EINVAL;
	if (pc->n_labels != w->K || pc->hop != w->pc.hop || pc->rate != w->pc.rate) {
		s4k_seterr(err, errlen, "new detection settings change the rate, hop or labels; restart instead");
		return -EINVAL;
	}
	if (pc->verify > 0 && !(w->pc.verify > 0)) {
		s4k_seterr(err, errlen, "verify was off at start; restart the daemon to turn it on");
		return -EINVAL;
	}
	pthread_mutex_lock(&w->mu);
	memcpy(w->kw, pc->kw, (size_t)w->K * sizeof *w->kw);
	struct pp_config n = *pc;
	n.kw = w->kw;
	n.labels = w->labels;
	n.verify = pc->verify > 0 ? pc->verify : 0;
	w->pc = n;
	atomic_fetch_add(&w->gen, 1);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

void wy_stop(struct wyoming *w)
{
	if (!w)
		return;
	if (w->acc_started) {
		if (write(w->stop_pipe[1], "x", 1) < 0)
			(void)0;
		pthread_join(w->acc, NULL);
	}
	/* wake every client thread (its recv returns 0), then join */
	pthread_mutex_lock(&w->mu);
	for (int i = 0; w->c && i < w->max_clients; i++)
		if (w->c[i].used && w->c[i].fd >= 0)
			shutdown(w->c[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&w->mu);
	if (w->c)
		reap(w, 1);
	if (w->lfd >= 0)
		close(w->lfd);
	for (int i = 0; i < 2; i++)
		if (w->stop_pipe[i] >= 0)
			close(w->stop_pipe[i]);
	pthread_mutex_destroy(&w->mu);
	free(w->c);
	free(w->kw);
	free(w->labels);
	free(w);
}
