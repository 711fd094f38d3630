/* mqtt.c - the MQTT publisher: a thread that follows the events store and feeds a broker.
 *
 * DESIGN. Home automation listens on MQTT, so detections go there, and a fleet of daemons fans in
 * through any broker. The detector must never wait for a network, so the publisher is one more
 * reader of the events store, on a thread of its own that alone owns the libmosquitto handle
 * (mosquitto_loop() is driven here; no library thread). The thread sleeps on the events store,
 * so a detection is published as soon as it is stored, and otherwise turns MQTT_IDLE_MS apart
 * to serve the connection (acknowledgements, keep-alive pings; 5 wake-ups a second). Each turn it
 * copies new detections into a bounded queue (oldest dropped first, counted, as are detections
 * that left the history before it read them), and while connected hands the queue to the
 * library at QoS 1; the library resends what was not acknowledged after a reconnect. The
 * connection is made in the background with a back-off from 0.25 s doubling to retry_max_s,
 * reset once the broker accepts; a connection that gets no CONNACK within MQTT_CONNACK_S is
 * dropped and retried. Every accepted connection first publishes availability "online" and the
 * Home Assistant discovery configs (retained), so a restarted broker without persistence is
 * refilled, and subscribes to the retained configs under its own node id: those of keywords or
 * channels it no longer has (another model, fewer channels, discovery turned off) are cleared,
 * so Home Assistant drops their entities. The last will is "offline" (retained) and a clean stop
 * publishes it too. State
 * changes are logged once each (not each failed attempt), without the password.
 */
#define _GNU_SOURCE
#include "mqtt.h"

#include <errno.h>
#include <math.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/err.h"
#include "log.h"

#define MQTT_SLICE_MS 50     /* I/O wait while connecting and at shutdown, ms */
#define MQTT_IDLE_MS 200     /* longest sleep between turns while connected or away, ms */
#define MQTT_CONNACK_S 10.0  /* a connection not accepted within this is retried, s */
#define MQTT_KEEPALIVE_S 30
#define MQTT_BACKOFF_S 0.25  /* first wait after a failed attempt, s */
#define MQTT_BATCH 64
#define MQTT_TOPIC_LEN 512
#define MQTT_STALE 64        /* stale discovery configs cleared per turn */
#define MQTT_OID_LEN 128

enum mq_state { MQ_DOWN, MQ_CONNECTING, MQ_UP };

struct mqtt {
	/* settings (read-only after mqtt_new) */
	char host[256], user[128], password[256], ca_file[1024], topic[256], node[128], site[128];
	char disc_prefix[128], model_name[64], version[32], broker[300];
	int port, tls, discovery, hermes, channels, n_kw;
	double retry_max_s;
	char (*kw)[EV_KW_LEN];       /* (n_kw) keywords */
	char (*ch_names)[EV_NAME_LEN]; /* (channels) channel names, "" for none */
	struct events *ev;
	/* publisher thread only */
	struct mosquitto *mosq;
	enum mq_state state;
	int ever_connected, down_logged, offline_mid, offline_acked;
	int announce;                /* accepted: availability and discovery still to publish */
	char stale[MQTT_STALE][MQTT_OID_LEN]; /* retained configs of entities this daemon lacks */
	int n_stale;
	double next_try, backoff, connecting_since;
	struct ev_detection *q;      /* (qcap) ring of detections not yet handed to the library */
	size_t qcap, qhead;
	uint64_t cursor;             /* newest id taken from the store */
	pthread_t thr;
	int started, joined;
	/* shared */
	_Atomic int stop, connected;
	_Atomic size_t qlen;
	_Atomic uint64_t published, dropped, connects, resume_id;
	pthread_mutex_t mu;          /* guards error */
	char error[160];             /* why the last attempt failed; "" while connected */
};

/* Topic level text: what MQTT wildcards and level separators would break becomes '_'. */
static void topic_part(char *out, size_t len, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 1 < len; i++)
		out[i] = (s[i] == '/' || s[i] == '+' || s[i] == '#') ? '_' : s[i];
	out[i] = 0;
}

/* A Home Assistant id ([a-zA-Z0-9_-]): anything else becomes '_'. */
static void ha_id(char *out, size_t len, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 1 < len; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '_' || c == '-';
		out[i] = ok ? c : '_';
	}
	out[i] = 0;
}

static void set_error(struct mqtt *m, const char *fmt, const char *what)
{
	pthread_mutex_lock(&m->mu);
	snprintf(m->error, sizeof m->error, fmt, what);
	pthread_mutex_unlock(&m->mu);
}

/* mqtt[s]://[user@]host[:port][/] into m. 0 or -EINVAL with one sentence. */
static int parse_url(struct mqtt *m, const char *url, char *err, size_t errlen)
{
	const char *p;
	if (!strncmp(url, "mqtt://", 7))
		p = url + 7;
	else if (!strncmp(url, "mqtts://", 8))
		p = url + 8, m->tls = 1;
	else {
		s4k_seterr(err, errlen, "mqtt: the URL must start with mqtt:// or mqtts://");
		return -EINVAL;
	}
	m->port = m->tls ? 8883 : 1883;
	const char *at = strchr(p, '@');
	if (at) {
		size_t ul = (size_t)(at - p);
		if (memchr(p, ':', ul)) {
			s4k_seterr(err, errlen, "mqtt: put the password in mqtt-password-file, not in the URL");
			return -EINVAL;
		}
		if (!ul || ul >= sizeof m->user) {
			s4k_seterr(err, errlen, "mqtt: the user name must be 1 to %zu bytes", sizeof m->user - 1);
			return -EINVAL;
		}
		memcpy(m->user, p, ul);
		m->user[ul] = 0;
		p = at + 1;
	}
	const char *hend;
	if (*p == '[') { /* [IPv6]:port */
		hend = strchr(p, ']');
		if (!hend) {
			s4k_seterr(err, errlen, "mqtt: an IPv6 address needs its closing ']'");
			return -EINVAL;
		}
		p++;
	} else {
		hend = p + strcspn(p, ":/");
	}
	size_t hl = (size_t)(hend - p);
	if (!hl || hl >= sizeof m->host) {
		s4k_seterr(err, errlen, "mqtt: the URL names no broker host");
		return -EINVAL;
	}
	memcpy(m->host, p, hl);
	m->host[hl] = 0;
	const char *rest = hend + (*hend == ']');
	if (*rest == ':') {
		char *end;
		errno = 0;
		long port = strtol(rest + 1, &end, 10);
		if (end == rest + 1 || errno || port < 1 || port > 65535 || (*end && strcmp(end, "/"))) {
			s4k_seterr(err, errlen, "mqtt: the port must be a whole number from 1 to 65535");
			return -EINVAL;
		}
		m->port = (int)port;
	} else if (*rest && strcmp(rest, "/")) {
		s4k_seterr(err, errlen, "mqtt: the URL has no place for '%s' (mqtt://[user@]host[:port])", rest);
		return -EINVAL;
	}
	snprintf(m->broker, sizeof m->broker, "%s%s%s:%d", strchr(m->host, ':') ? "[" : "", m->host,
		 strchr(m->host, ':') ? "]" : "", m->port);
	return 0;
}

static int publish(struct mqtt *m, const char *topic, const char *payload, int retain, int *mid)
{
	int rc = mosquitto_publish(m->mosq, mid, topic, (int)strlen(payload), payload, 1, retain);
	if (rc != MOSQ_ERR_SUCCESS)
		log_msg(LOGL_DEBUG, "mqtt: publishing to %s failed: %s", topic, mosquitto_strerror(rc));
	return rc;
}

/* The discovery config of the event entity for keyword k on channel ch (malloc'ed JSON). */
static char *discovery_json(struct mqtt *m, int k, int ch, const char *state_topic, const char *uid)
{
	char name[EV_KW_LEN + EV_NAME_LEN + 16], avail[MQTT_TOPIC_LEN];
	if (m->ch_names[ch][0])
		snprintf(name, sizeof name, "%s (%s)", m->kw[k], m->ch_names[ch]);
	else if (m->channels > 1)
		snprintf(name, sizeof name, "%s (channel %d)", m->kw[k], ch);
	else
		snprintf(name, sizeof name, "%s", m->kw[k]);
	snprintf(avail, sizeof avail, "%s/availability", m->topic);
	/* HA's event entity needs an event_type among event_types: the keyword; the rest of the
	 * detection becomes the event's attributes */
	json_t *o = json_pack(
		"{s:s, s:s, s:s, s:[s], s:s, s:s, s:s, s:s, s:i, s:s,"
		" s:{s:[s], s:s, s:s, s:s, s:s}, s:{s:s, s:s}}",
		"name", name, "unique_id", uid, "state_topic", state_topic, "event_types", m->kw[k],
		"value_template",
		"{{ {'event_type': value_json.keyword, 'score': value_json.score, 'channel': "
		"value_json.channel, 'id': value_json.id, 'time': value_json.time} | tojson }}",
		"availability_topic", avail, "payload_available", "online", "payload_not_available",
		"offline", "qos", 1, "icon", "mdi:account-voice",
		"device", "identifiers", m->node, "name", m->topic, "manufacturer", "s4kws", "model",
		m->model_name, "sw_version", m->version,
		"origin", "name", "s4kws", "sw_version", m->version);
	char *s = o ? json_dumps(o, EV_JSON_FLAGS) : NULL;
	json_decref(o);
	return s;
}

/* The Home Assistant object id of keyword k on channel ch: KEYWORD_chCHANNEL. */
static void object_id(const struct mqtt *m, int k, int ch, char *out, size_t len)
{
	char kid[EV_KW_LEN];
	ha_id(kid, sizeof kid, m->kw[k]);
	snprintf(out, len, "%s_ch%d", kid, ch);
}

/* 1 when oid is one of the entities this daemon announces. */
static int current_entity(const struct mqtt *m, const char *oid)
{
	char o[MQTT_OID_LEN];
	for (int k = 0; m->discovery && k < m->n_kw; k++)
		for (int ch = 0; ch < m->channels; ch++) {
			object_id(m, k, ch, o, sizeof o);
			if (!strcmp(o, oid))
				return 1;
		}
	return 0;
}

/* Availability, the discovery configs and the subscription to the configs of this node (to
 * clear stale ones), on every accepted connection. */
static void announce(struct mqtt *m)
{
	char t[MQTT_TOPIC_LEN], st[MQTT_TOPIC_LEN], kwt[EV_KW_LEN], uid[256], oid[MQTT_OID_LEN];
	snprintf(t, sizeof t, "%s/availability", m->topic);
	publish(m, t, "online", 1, NULL);
	snprintf(t, sizeof t, "%s/event/%s/+/config", m->disc_prefix, m->node);
	mosquitto_subscribe(m->mosq, NULL, t, 1);
	if (!m->discovery)
		return;
	for (int k = 0; k < m->n_kw; k++) {
		topic_part(kwt, sizeof kwt, m->kw[k]);
		for (int ch = 0; ch < m->channels; ch++) {
			snprintf(st, sizeof st, "%s/detection/%s/%d", m->topic, kwt, ch);
			object_id(m, k, ch, oid, sizeof oid);
			snprintf(uid, sizeof uid, "%s_%s", m->node, oid);
			snprintf(t, sizeof t, "%s/event/%s/%s/config", m->disc_prefix, m->node, oid);
			char *js = discovery_json(m, k, ch, st, uid);
			if (js)
				publish(m, t, js, 1, NULL);
			free(js);
		}
	}
}

/* Hand one detection to the library: PREFIX/detection, the per-keyword topic, Hermes. 0 or the
 * libmosquitto error (the detection stays queued). */
static int send_detection(struct mqtt *m, const struct ev_detection *d)
{
	char *js = events_dump(d);
	if (!js)
		return MOSQ_ERR_NOMEM;
	char t[MQTT_TOPIC_LEN], kwt[EV_KW_LEN];
	topic_part(kwt, sizeof kwt, d->keyword);
	snprintf(t, sizeof t, "%s/detection", m->topic);
	int rc = publish(m, t, js, 0, NULL);
	if (rc == MOSQ_ERR_SUCCESS && d->channel >= 0) { /* a Wyoming client's (-1) has no entity */
		snprintf(t, sizeof t, "%s/detection/%s/%d", m->topic, kwt, d->channel);
		publish(m, t, js, 0, NULL);
	}
	if (rc == MOSQ_ERR_SUCCESS)
		atomic_fetch_add(&m->published, 1);
	free(js);
	if (rc == MOSQ_ERR_SUCCESS && m->hermes) {
		const char *site = d->channel_name[0] ? d->channel_name : m->site;
		json_t *h = json_pack("{s:s, s:s, s:s, s:f, s:s, s:n, s:n, s:n, s:n}", "modelId", d->keyword,
				      "modelVersion", "", "modelType", "personal", "currentSensitivity",
				      round((double)d->score * 1e4) / 1e4, "siteId", site, "sessionId",
				      "sendAudioCaptured", "lang", "customEntities");
		char *hs = h ? json_dumps(h, EV_JSON_FLAGS) : NULL;
		json_decref(h);
		snprintf(t, sizeof t, "hermes/hotword/%s/detected", kwt);
		if (hs)
			publish(m, t, hs, 0, NULL);
		free(hs);
	}
	return rc;
}

/* New detections from the store into the queue; the oldest go when it is full. */
static void pull(struct mqtt *m)
{
	struct ev_detection b[MQTT_BATCH];
	size_t n;
	do {
		uint64_t cur;
		n = events_query(m->ev, m->cursor, -1, NULL, b, MQTT_BATCH, &cur);
		for (size_t i = 0; i < n; i++) {
			if (b[i].id > m->cursor + 1) /* the history wrapped past them */
				atomic_fetch_add(&m->dropped, b[i].id - m->cursor - 1);
			m->cursor = b[i].id;
			size_t len = atomic_load(&m->qlen);
			if (len == m->qcap) {
				m->qhead = (m->qhead + 1) % m->qcap;
				len--;
				atomic_fetch_add(&m->dropped, 1);
			}
			m->q[(m->qhead + len) % m->qcap] = b[i];
			atomic_store(&m->qlen, len + 1);
		}
	} while (n == MQTT_BATCH);
	size_t len = atomic_load(&m->qlen);
	atomic_store(&m->resume_id, len ? m->q[m->qhead].id - 1 : m->cursor);
}

static void drain(struct mqtt *m)
{
	size_t len;
	while (m->state == MQ_UP && (len = atomic_load(&m->qlen)) > 0) {
		if (send_detection(m, &m->q[m->qhead]) != MOSQ_ERR_SUCCESS)
			break;
		m->qhead = (m->qhead + 1) % m->qcap;
		atomic_store(&m->qlen, len - 1);
	}
	len = atomic_load(&m->qlen);
	atomic_store(&m->resume_id, len ? m->q[m->qhead].id - 1 : m->cursor);
}

/* The connection is gone or never came: retry after the back-off. Logged once per outage. */
static void went_down(struct mqtt *m, const char *why)
{
	if (m->state == MQ_DOWN)
		return;
	if (m->state == MQ_UP || !m->down_logged)
		log_msg(LOGL_WARN, "mqtt: %s %s (%s); retrying with back-off up to %.3g s",
			m->state == MQ_UP ? "lost the connection to" : "cannot connect to", m->broker, why,
			m->retry_max_s);
	else
		log_msg(LOGL_DEBUG, "mqtt: cannot connect to %s (%s)", m->broker, why);
	m->down_logged = 1;
	set_error(m, "%s", why);
	m->state = MQ_DOWN;
	atomic_store(&m->connected, 0);
	m->next_try = s4k_mono_s() + m->backoff;
	m->backoff = m->backoff * 2 < m->retry_max_s ? m->backoff * 2 : m->retry_max_s;
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
	struct mqtt *m = ud;
	(void)mosq;
	if (rc != 0) { /* refused: the broker closes the connection */
		went_down(m, mosquitto_connack_string(rc));
		return;
	}
	m->state = MQ_UP;
	m->backoff = MQTT_BACKOFF_S;
	m->down_logged = 0;
	set_error(m, "%s", "");
	atomic_fetch_add(&m->connects, 1);
	atomic_store(&m->connected, 1);
	log_msg(LOGL_INFO, "mqtt: connected to %s%s, publishing under %s/", m->broker,
		m->ever_connected ? " again" : "", m->topic);
	m->ever_connected = 1;
	m->announce = 1; /* after mosquitto_loop() returns: not under the library's callback lock */
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
	struct mqtt *m = ud;
	(void)mosq;
	if (!atomic_load(&m->stop))
		went_down(m, rc ? mosquitto_strerror(rc) : "disconnected");
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid)
{
	struct mqtt *m = ud;
	(void)mosq;
	if (m->offline_mid && mid == m->offline_mid)
		m->offline_acked = 1;
}

/* A retained discovery config under this node: noted when its entity is not ours any more (it
 * is cleared after mosquitto_loop() returns, not under the library's callback lock). */
static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg)
{
	struct mqtt *m = ud;
	(void)mosq;
	char pre[MQTT_TOPIC_LEN];
	int n = snprintf(pre, sizeof pre, "%s/event/%s/", m->disc_prefix, m->node);
	if (msg->payloadlen == 0 || strncmp(msg->topic, pre, (size_t)n) || m->n_stale == MQTT_STALE)
		return; /* already cleared, or not a config of this node */
	const char *oid = msg->topic + n, *end = strchr(oid, '/');
	size_t len = end ? (size_t)(end - oid) : 0;
	if (!len || len >= MQTT_OID_LEN || strcmp(end, "/config"))
		return;
	memcpy(m->stale[m->n_stale], oid, len);
	m->stale[m->n_stale][len] = 0;
	if (!current_entity(m, m->stale[m->n_stale]))
		m->n_stale++;
}

/* Clear the stale discovery configs noted by on_message(): an empty retained message. */
static void clear_stale(struct mqtt *m)
{
	char t[MQTT_TOPIC_LEN];
	for (int i = 0; i < m->n_stale; i++) {
		snprintf(t, sizeof t, "%s/event/%s/%s/config", m->disc_prefix, m->node, m->stale[i]);
		if (mosquitto_publish(m->mosq, NULL, t, 0, NULL, 1, true) == MOSQ_ERR_SUCCESS)
			log_msg(LOGL_INFO, "mqtt: removed the Home Assistant entity %s_%s (not a keyword and "
				"channel of this daemon now)", m->node, m->stale[i]);
	}
	m->n_stale = 0;
}

static void on_log(struct mosquitto *mosq, void *ud, int level, const char *msg)
{
	(void)mosq;
	(void)ud;
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
		log_msg(LOGL_DEBUG, "mqtt: libmosquitto: %s", msg);
}

static void try_connect(struct mqtt *m)
{
	int rc = mosquitto_connect_async(m->mosq, m->host, m->port, MQTT_KEEPALIVE_S);
	m->state = MQ_CONNECTING;
	m->connecting_since = s4k_mono_s();
	if (rc != MOSQ_ERR_SUCCESS)
		went_down(m, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
}

/* Shutdown: what is queued and "offline", then a clean disconnect, within MQTT_STOP_S. */
static void finish(struct mqtt *m)
{
	pull(m);
	if (m->state != MQ_UP)
		return;
	drain(m);
	char t[MQTT_TOPIC_LEN];
	snprintf(t, sizeof t, "%s/availability", m->topic);
	int mid = 0;
	if (publish(m, t, "offline", 1, &mid) == MOSQ_ERR_SUCCESS)
		m->offline_mid = mid;
	double until = s4k_mono_s() + MQTT_STOP_S;
	while (m->offline_mid && !m->offline_acked && s4k_mono_s() < until &&
	       mosquitto_loop(m->mosq, MQTT_SLICE_MS, 1) == MOSQ_ERR_SUCCESS)
		;
	mosquitto_disconnect(m->mosq);
	mosquitto_loop(m->mosq, MQTT_SLICE_MS, 1);
	atomic_store(&m->connected, 0);
}

static void *mqtt_main(void *arg)
{
	struct mqtt *m = arg;
	while (!atomic_load(&m->stop)) {
		pull(m);
		double now = s4k_mono_s();
		if (m->state == MQ_DOWN && now >= m->next_try)
			try_connect(m);
		if (m->state == MQ_CONNECTING && now - m->connecting_since > MQTT_CONNACK_S) {
			mosquitto_disconnect(m->mosq);
			went_down(m, "no answer from the broker");
		}
		if (m->state != MQ_DOWN) { /* waits for the socket only while connecting */
			int rc = mosquitto_loop(m->mosq, m->state == MQ_CONNECTING ? MQTT_SLICE_MS : 0, 1);
			if (rc != MOSQ_ERR_SUCCESS && !atomic_load(&m->stop))
				went_down(m, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		}
		if (m->state == MQ_UP && m->announce) {
			m->announce = 0;
			announce(m);
		}
		if (m->state == MQ_UP && m->n_stale)
			clear_stale(m);
		if (m->state == MQ_UP)
			drain(m);
		if (m->state == MQ_CONNECTING)
			continue;
		/* sleep until a detection comes, the next turn or the next attempt */
		double left = m->state == MQ_DOWN ? m->next_try - s4k_mono_s() : 1.0;
		int ms = left <= 0 ? 0 : left * 1e3 > MQTT_IDLE_MS ? MQTT_IDLE_MS : (int)(left * 1e3);
		if (events_wait(m->ev, m->cursor, ms) == -ESHUTDOWN)
			usleep(1000 * (unsigned)ms); /* a closed store no longer sleeps */
	}
	finish(m);
	return NULL;
}

/* Settings into m (everything but the connection). 0 or -EINVAL/-ENOMEM with a sentence. */
static int setup(struct mqtt *m, const struct mqtt_config *c, char *err, size_t errlen)
{
	if (parse_url(m, c->url ? c->url : "", err, errlen) < 0)
		return -EINVAL;
	char host[64] = "localhost";
	gethostname(host, sizeof host - 1);
	if (c->topic && *c->topic) {
		if (strpbrk(c->topic, "+#") || strlen(c->topic) >= sizeof m->topic || c->topic[0] == '/') {
			s4k_seterr(err, errlen, "mqtt-topic: '%s' is not a topic prefix (no +, #, leading /)",
				   c->topic);
			return -EINVAL;
		}
		snprintf(m->topic, sizeof m->topic, "%s", c->topic);
	} else {
		char hp[64];
		topic_part(hp, sizeof hp, host);
		snprintf(m->topic, sizeof m->topic, "s4kws/%s", hp);
	}
	size_t tl = strlen(m->topic);
	while (tl > 1 && m->topic[tl - 1] == '/')
		m->topic[--tl] = 0;
	ha_id(m->node, sizeof m->node, m->topic);
	snprintf(m->site, sizeof m->site, "%s", host);
	if (c->ca_file && *c->ca_file && access(c->ca_file, R_OK) < 0) {
		s4k_seterr(err, errlen, "mqtt-ca-file: cannot read %s: %s", c->ca_file, strerror(errno));
		return -EINVAL;
	}
	snprintf(m->ca_file, sizeof m->ca_file, "%s", c->ca_file ? c->ca_file : "");
	snprintf(m->password, sizeof m->password, "%s", c->password ? c->password : "");
	snprintf(m->disc_prefix, sizeof m->disc_prefix, "%s",
		 c->discovery_prefix && *c->discovery_prefix ? c->discovery_prefix : "homeassistant");
	snprintf(m->model_name, sizeof m->model_name, "%s", c->model_name ? c->model_name : "");
	snprintf(m->version, sizeof m->version, "%s", c->version ? c->version : "");
	m->discovery = c->discovery;
	m->hermes = c->hermes;
	m->retry_max_s = c->retry_max_s > 0 ? c->retry_max_s : 30;
	m->backoff = MQTT_BACKOFF_S;
	m->channels = c->channels > 0 ? c->channels : 1;
	m->ev = c->ev;
	m->cursor = c->start_after;
	atomic_store(&m->resume_id, c->start_after);
	m->qcap = c->queue ? c->queue : 1;
	m->q = malloc(m->qcap * sizeof *m->q);
	m->kw = calloc((size_t)(c->n_labels > 0 ? c->n_labels : 1), sizeof *m->kw);
	m->ch_names = calloc((size_t)m->channels, sizeof *m->ch_names);
	if (!m->q || !m->kw || !m->ch_names) {
		s4k_seterr(err, errlen, "out of memory for the MQTT queue of %zu detections", m->qcap);
		return -ENOMEM;
	}
	for (int k = 0; k < c->n_labels; k++)
		if (c->labels[k] && c->labels[k][0] != '_')
			snprintf(m->kw[m->n_kw++], EV_KW_LEN, "%s", c->labels[k]);
	for (int ch = 0; ch < m->channels && c->channel_names; ch++)
		snprintf(m->ch_names[ch], EV_NAME_LEN, "%s", c->channel_names[ch] ? c->channel_names[ch] : "");
	return 0;
}

/* The libmosquitto client: id, credentials, TLS, last will, callbacks. */
static int make_client(struct mqtt *m, char *err, size_t errlen)
{
	char id[64];
	snprintf(id, sizeof id, "s4kws-%.50s", m->node);
	m->mosq = mosquitto_new(id, true, m);
	if (!m->mosq) {
		s4k_seterr(err, errlen, "mqtt: cannot create the client: %s", strerror(errno));
		return -ENOMEM;
	}
	char will[MQTT_TOPIC_LEN];
	snprintf(will, sizeof will, "%s/availability", m->topic);
	int rc = mosquitto_will_set(m->mosq, will, 7, "offline", 1, true);
	if (rc == MOSQ_ERR_SUCCESS && (m->user[0] || m->password[0]))
		rc = mosquitto_username_pw_set(m->mosq, m->user[0] ? m->user : NULL,
					       m->password[0] ? m->password : NULL);
	if (rc == MOSQ_ERR_SUCCESS && m->tls) {
		rc = m->ca_file[0] ? mosquitto_tls_set(m->mosq, m->ca_file, NULL, NULL, NULL, NULL)
				   : mosquitto_int_option(m->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		s4k_seterr(err, errlen, "mqtt: cannot set up the client: %s", mosquitto_strerror(rc));
		return -EINVAL;
	}
	mosquitto_connect_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
	mosquitto_publish_callback_set(m->mosq, on_publish);
	mosquitto_message_callback_set(m->mosq, on_message);
	mosquitto_log_callback_set(m->mosq, on_log);
	return 0;
}

int mqtt_check(const struct mqtt_config *c, char *err, size_t errlen)
{
	struct mqtt_config one = *c;
	one.queue = 1; /* the queue is the one thing setup allocates by size */
	struct mqtt *m = calloc(1, sizeof *m);
	int rc = m ? setup(m, &one, err, errlen) : -ENOMEM;
	if (rc == -ENOMEM)
		s4k_seterr(err, errlen, "out of memory for MQTT");
	if (m) {
		free(m->q);
		free(m->kw);
		free(m->ch_names);
		free(m);
	}
	return rc;
}

struct mqtt *mqtt_new(const struct mqtt_config *c, char *err, size_t errlen)
{
	struct mqtt *m = calloc(1, sizeof *m);
	if (!m) {
		s4k_seterr(err, errlen, "out of memory for MQTT");
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	mosquitto_lib_init();
	if (setup(m, c, err, errlen) < 0 || make_client(m, err, errlen) < 0) {
		mqtt_free(m);
		return NULL;
	}
	int e = pthread_create(&m->thr, NULL, mqtt_main, m);
	if (e) {
		s4k_seterr(err, errlen, "cannot start the MQTT thread: %s", strerror(e));
		mqtt_free(m);
		return NULL;
	}
	m->started = 1;
	return m;
}

void mqtt_stop(struct mqtt *m)
{
	if (!m || !m->started || m->joined)
		return;
	atomic_store(&m->stop, 1);
	pthread_join(m->thr, NULL);
	m->joined = 1;
}

void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	mqtt_stop(m);
	if (m->mosq)
		mosquitto_destroy(m->mosq);
	mosquitto_lib_cleanup();
	memset(m->password, 0, sizeof m->password);
	pthread_mutex_destroy(&m->mu);
	free(m->q);
	free(m->kw);
	free(m->ch_names);
	free(m);
}

uint64_t mqtt_resume_id(struct mqtt *m)
{
	return atomic_load(&m->resume_id);
}

void mqtt_stats(struct mqtt *m, struct mqtt_stats *s)
{
	snprintf(s->broker, sizeof s->broker, "%s", m->broker);
	snprintf(s->topic, sizeof s->topic, "%s", m->topic);
	pthread_mutex_lock(&m->mu);
	snprintf(s->error, sizeof s->error, "%s", m->error);
	pthread_mutex_unlock(&m->mu);
	s->connected = atomic_load(&m->connected);
	s->queued = atomic_load(&m->qlen);
	s->published = atomic_load(&m->published);
	s->dropped = atomic_load(&m->dropped);
	s->connects = atomic_load(&m->connects);
}
