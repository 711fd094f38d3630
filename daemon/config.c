/* config.c - the option table of `s4kws listen` and the three things generated from it.
 *
 * DESIGN. Each option is one row {name, type, min, max, default, offset, help}. cfg_defaults()
 * parses every row's default text through the same cfg_set() that the command line and the
 * config file use, so a default can never escape the range checks and the three front ends
 * cannot drift apart. The config file is read with inih (ini_parse_file) and each key/value pair
 * goes through cfg_set(); the --help text is printed from the same rows. Per-keyword options
 * (type KW) keep a default and a small array of name=value overrides inside struct cfg, so a
 * struct cfg is plain data that can be copied, compared and swapped on SIGHUP.
 */
#define _GNU_SOURCE /* open_memstream, strcasecmp */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/err.h"
#include "../common/num.h"
#include "log.h"
#include "spot/postproc.h" /* PP_DEF_*: the detection defaults */

enum opt_type { T_STR, T_INT, T_DBL, T_BOOL, T_KW, T_LEVEL };

/* OPT_CLI: command line only (not in a config file); OPT_RESTART: read at start only, so a
 * SIGHUP keeps the running value (cfg_keep_restart) and says so. */
enum { OPT_CLI = 1, OPT_RESTART = 2 };

struct opt {
	const char *name;
	enum opt_type type;
	double min, max;      /* T_INT, T_DBL, T_KW: inclusive range */
	const char *def;      /* default, as text */
	size_t off;           /* offset of the field in struct cfg */
	size_t size;          /* T_STR: capacity of the char array */
	const char *arg;      /* what the value is, for --help */
	const char *help;
	unsigned flags;       /* OPT_CLI, OPT_RESTART */
};

#define F(field) offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field)

static const struct opt opts[] = {
	/* model and audio input */
	{"model", T_STR, 0, 0, "", F(model), "FILE",
	 "weights file (.safetensors), or the name of a model built into s4kws (default; wake when the build had weights/s4kws-wake.safetensors); empty: $S4KWS_MODEL or the default", OPT_RESTART},
	{"config", T_STR, 0, 0, "", F(config), "FILE",
	 "read options from this file first (flags given on the command line win)", OPT_CLI},
	{"device", T_STR, 0, 0, "", F(device), "NAME|INDEX",
	 "capture device: an index or a substring of the name ('s4kws devices' lists them); empty: the default input", OPT_RESTART},
	{"channels", T_INT, 0, 64, "0", F(channels), "N",
	 "channels to open and spot in, each with its own model state; 0: 1 for a device, all of a file's", OPT_RESTART},
	{"input", T_STR, 0, 0, "", F(input), "FILE|-|none",
	 "read this audio file (any libsndfile format) or '-' (raw S16_LE on stdin) instead of a device; "
	 "'none': no local audio (a Wyoming server only)", OPT_RESTART},
	{"input-rate", T_INT, 0, 768000, "0", F(input_rate), "HZ",
	 "sample rate of raw stdin input; 0: the model's rate", OPT_RESTART},
	{"realtime", T_BOOL, 0, 1, "false", F(realtime), "BOOL",
	 "pace --input at real speed instead of as fast as the CPU allows", OPT_RESTART},
	{"duration", T_DBL, 0, 1e9, "0", F(duration), "SECONDS",
	 "stop the input after this much audio (status then says eof); 0: never", OPT_RESTART},
	{"channel-names", T_STR, 0, 0, "", F(channel_names), "NAME,...",
	 "a name for each channel (e.g. kitchen,hall), put in every detection as channel_name", OPT_RESTART},
	{"frames-per-buffer", T_INT, 16, 65536, "320", F(frames_per_buffer), "FRAMES",
	 "PortAudio period: frames per capture callback", OPT_RESTART},
	{"ring-ms", T_INT, 100, 600000, "2000", F(ring_ms), "MS",
	 "audio buffered between capture and inference before new audio is dropped (counted as overruns)", OPT_RESTART},
	{"retry-max", T_DBL, 0.1, 3600, "30", F(retry_max), "SECONDS",
	 "longest wait between attempts to reopen a failed capture device (back-off doubles from 0.5 s)", OPT_RESTART},
	{"device-stall", T_DBL, 0.1, 3600, "5", F(device_stall), "SECONDS",
	 "a capture device that delivers no audio for this long has failed: it is closed and reopened", OPT_RESTART},
	/* HTTP */
	{"bind", T_STR, 0, 0, "127.0.0.1", F(bind), "ADDR",
	 "HTTP listen address (IPv4 or IPv6); anything but loopback requires --token", OPT_RESTART},
	{"port", T_INT, 0, 65535, "8080", F(port), "PORT", "HTTP port; 0: any free port", OPT_RESTART},
	{"port-file", T_STR, 0, 0, "", F(port_file), "FILE",
	 "write the bound HTTP port to this file once listening", OPT_RESTART},
	{"token", T_STR, 0, 0, "", F(token), "SECRET",
	 "require 'Authorization: Bearer SECRET' on every endpoint but /healthz and the page /; "
	 "a flag shows in ps: prefer --token-file or S4KWS_TOKEN in the environment", OPT_RESTART},
	{"token-file", T_STR, 0, 0, "", F(token_file), "FILE",
	 "read the token from the first line of FILE (keep it mode 0600)", OPT_RESTART},
	{"cors-origin", T_STR, 0, 0, "", F(cors_origin), "ORIGIN",
	 "let pages from ORIGIN (e.g. https://dash.example.org; '*': any) call the API from a "
	 "browser (CORS); empty: off", OPT_RESTART},
	{"max-connections", T_INT, 1, 1024, "32", F(max_connections), "N",
	 "concurrent HTTP connections; more are refused", OPT_RESTART},
	{"http-timeout", T_INT, 1, 3600, "30", F(http_timeout), "SECONDS",
	 "close an HTTP connection idle for this long", OPT_RESTART},
	{"max-body", T_INT, 1024, 1073741824, "10485760", F(max_body), "BYTES",
	 "largest POST /v1/classify body; bigger ones get 413", OPT_RESTART},
	{"classify-jobs", T_INT, 1, 64, "2", F(classify_jobs), "N",
	 "POST /v1/classify requests computed at once; others wait up to 10 s, then get 503", OPT_RESTART},
	{"sse-clients", T_INT, 1, 1024, "16", F(sse_clients), "N",
	 "concurrent /v1/events streams; more get 503", OPT_RESTART},
	{"heartbeat", T_DBL, 0.05, 3600, "15", F(heartbeat), "SECONDS",
	 "SSE comment line sent when no detection happened for this long", OPT_RESTART},
	/* detections */
	{"history", T_INT, 1, 1000000, "1000", F(history), "N",
	 "detections kept in memory for /v1/detections and SSE resume", OPT_RESTART},
	{"log", T_STR, 0, 0, "", F(log), "FILE",
	 "append every detection to this JSON-lines file (ids continue from its last line)", OPT_RESTART},
	{"save-dir", T_STR, 0, 0, "", F(save_dir), "DIR",
	 "write the audio of every detection to DIR as a WAV file (16-bit, model rate, detection "
	 "JSON in its comment), named TIME-ID-KEYWORD-chCHANNEL.wav", OPT_RESTART},
	{"save-pre-ms", T_DBL, 0, 10000, "1500", F(save_pre_ms), "MS",
	 "audio before the decision point in each saved clip", OPT_RESTART},
	{"save-post-ms", T_DBL, 0, 10000, "500", F(save_post_ms), "MS",
	 "audio after the decision point in each saved clip (the clip is written once it arrived)", OPT_RESTART},
	{"on-detect", T_STR, 0, 0, "", F(on_detect), "CMD",
	 "run CMD with /bin/sh for every detection, one at a time, the detection as JSON on stdin and "
	 "in S4KWS_ID, S4KWS_KEYWORD, S4KWS_CHANNEL, S4KWS_CHANNEL_NAME, S4KWS_SCORE, S4KWS_TIME, S4KWS_OFFSET, "
	 "S4KWS_START, S4KWS_END, S4KWS_JSON", OPT_RESTART},
	{"on-detect-timeout-ms", T_DBL, 10, 3600000, "10000", F(on_detect_timeout_ms), "MS",
	 "an on-detect command still running after MS is killed (with its process group)", OPT_RESTART},
	{"wyoming-port", T_INT, -1, 65535, "-1", F(wyoming_port), "PORT",
	 "also serve wake-word detection over the Wyoming protocol (Home Assistant, wyoming-satellite) "
	 "on this TCP port (usually 10400); -1: off, 0: any free port (see /v1/status)", OPT_RESTART},
	{"wyoming-bind", T_STR, 0, 0, "127.0.0.1", F(wyoming_bind), "ADDR",
	 "Wyoming listen address; the protocol has no authentication, so bind other addresses only "
	 "on a trusted network", OPT_RESTART},
	{"wyoming-clients", T_INT, 1, 256, "8", F(wyoming_clients), "N",
	 "concurrent Wyoming clients, each with its own stepper; more get an error event", OPT_RESTART},
	{"log-level", T_LEVEL, 0, 3, "info", F(log_level), "LEVEL",
	 "daemon messages on stderr: error, warn, info or debug", 0},
	{"inference-threads", T_INT, 0, 64, "0", F(inference_threads), "N",
	 "threads stepping the channels; 0: one per core, never more than the channels", OPT_RESTART},
	{"restart-ms", T_DBL, 0, 3600000, PP_STR(PP_DEF_RESTART_MS), F(restart_ms), "MS",
	 "restart each channel's steppers every MS, two taking turns, so that no score depends on "
	 "more than MS of audio, as in training (0 = never)", OPT_RESTART},
	{"dedup-ms", T_DBL, 0, 10000, "0", F(dedup_ms), "MS",
	 "a keyword detected on one channel is not reported again for another channel within MS "
	 "(microphone arrays hear one word on every channel); 0: every channel reports", OPT_RESTART},
	{"hop-ms", T_DBL, 1, 1000, "10", F(hop_ms), "MS",
	 "evaluate the posteriors this often (rounded to a multiple of the model's hop)", OPT_RESTART},
	{"threshold", T_KW, 0.001, 1, PP_STR(PP_DEF_THRESHOLD), F(threshold), "[KW=]P",
	 "smoothed posterior a keyword needs; KW=P sets one keyword (repeatable); where none is given, "
	 "the model's own tuned threshold of each keyword ('s4kws info'), if it has one, else the default", 0},
	{"smooth-ms", T_KW, 0, 1000, PP_STR(PP_DEF_SMOOTH_MS), F(smooth_ms), "[KW=]MS",
	 "moving-average window of the posterior", 0},
	{"min-ms", T_KW, 0, 5000, PP_STR(PP_DEF_MIN_MS), F(min_ms), "[KW=]MS",
	 "time the smoothed posterior must stay above threshold before a detection", 0},
	{"refractory-ms", T_KW, 0, 3600000, PP_STR(PP_DEF_REFRACTORY_MS), F(refractory_ms), "[KW=]MS",
	 "no second detection of the same keyword on the same channel within this time", 0},
	{"warmup-ms", T_DBL, 0, 3600000, PP_STR(PP_DEF_WARMUP_MS), F(warmup_ms), "MS",
	 "no detection in the first MS of audio after start or a device reopen", 0},
	{"latency-ms", T_DBL, -5000, 5000, PP_STR(PP_DEF_LATENCY_MS), F(latency_ms), "MS",
	 "how long after a keyword ends its score starts to rise (negative: before); the "
	 "reported end is the start of the rise minus this", 0},
	{"onset", T_DBL, 0.01, 1, PP_STR(PP_DEF_ONSET), F(onset), "F",
	 "a keyword's end is estimated from where its score rose above F x threshold", 0},
	{"word-ms", T_DBL, 0, 5000, PP_STR(PP_DEF_WORD_MS), F(word_ms), "MS",
	 "typical keyword length, for the reported start (= end - word-ms)", 0},
	{"require-top", T_BOOL, 0, 1, "true", F(require_top), "BOOL",
	 "a keyword counts as above threshold only while it is the most probable label", 0},
	{"verify", T_DBL, 0, 1, PP_STR(PP_DEF_VERIFY), F(verify), "P",
	 "second opinion: a detection is reported only if the keyword's own one-second window, "
	 "classified again as a lone clip, gives it the top probability and at least P (costs one "
	 "clip classification per candidate and verify-after-ms of delay); 0: off", 0},
	{"verify-after-ms", T_DBL, 0, 1000, PP_STR(PP_DEF_VERIFY_AFTER_MS), F(verify_after_ms), "MS",
	 "the verified window ends MS after the keyword's estimated end", 0},
	/* MQTT */
	{"mqtt", T_STR, 0, 0, "", F(mqtt), "URL",
	 "publish detections to this MQTT broker: mqtt://[USER@]HOST[:PORT] or mqtts:// (TLS); "
	 "empty: off", 0},
	{"mqtt-password-file", T_STR, 0, 0, "", F(mqtt_password_file), "FILE",
	 "the MQTT password: the first line of FILE", 0},
	{"mqtt-ca-file", T_STR, 0, 0, "", F(mqtt_ca_file), "FILE",
	 "CA certificates (PEM) that the mqtts:// broker's certificate must chain to; empty: the "
	 "system's", 0},
	{"mqtt-topic", T_STR, 0, 0, "", F(mqtt_topic), "PREFIX",
	 "topic prefix: PREFIX/detection, PREFIX/detection/KEYWORD/CHANNEL, PREFIX/availability; "
	 "empty: s4kws/HOSTNAME", 0},
	{"mqtt-discovery", T_BOOL, 0, 1, "true", F(mqtt_discovery), "BOOL",
	 "publish Home Assistant MQTT discovery: one event entity per keyword and channel", 0},
	{"mqtt-discovery-prefix", T_STR, 0, 0, "homeassistant", F(mqtt_discovery_prefix), "PREFIX",
	 "Home Assistant's discovery prefix", 0},
	{"mqtt-hermes", T_BOOL, 0, 1, "false", F(mqtt_hermes), "BOOL",
	 "also publish hermes/hotword/KEYWORD/detected (Rhasspy's Hermes protocol)", 0},
	{"mqtt-queue", T_INT, 1, 100000, "1000", F(mqtt_queue), "N",
	 "detections kept while the broker is away; beyond, the oldest are dropped (counted)", 0},
	{"mqtt-retry-max", T_DBL, 0.1, 3600, "30", F(mqtt_retry_max), "SECONDS",
	 "longest wait between attempts to reconnect to the broker (back-off doubles from 0.25 s)", 0},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static const struct opt *find(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
			return &opts[i];
	return NULL;
}

static int parse_bool(const char *v, int *out)
{
	static const char *const t[] = {"1", "true", "yes", "on"}, *const f[] = {"0", "false", "no", "off"};
	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(v, t[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(v, f[i])) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_num(const struct opt *o, const char *v, double *out, char *err, size_t errlen)
{
	double d;
	char t[64]; /* trailing blanks of a config value are not part of the number */
	size_t n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	int bad = n >= sizeof t;
	if (!bad) {
		memcpy(t, v, n);
		t[n] = 0;
		bad = (o->type == T_INT ? s4k_whole(t, &d) : s4k_decimal(t, &d)) < 0;
	}
	if (bad) {
		s4k_seterr(err, errlen, "%s: '%s' is not %s", o->name, v,
			   o->type == T_INT ? "a whole number" : "a number");
		return -EINVAL;
	}
	if (d < o->min || d > o->max) {
		s4k_seterr(err, errlen, "%s: %s is out of range (%.10g to %.10g)", o->name, v, o->min, o->max);
		return -EINVAL;
	}
	*out = d;
	return 0;
}

static int valid_kw_name(const char *s, size_t len)
{
	if (len == 0 || len >= CFG_KW_NAME)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] == '=' || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f)
			return 0;
	return 1;
}

static int kw_set(struct cfg_kw *k, const struct opt *o, const char *kw, size_t kwlen,
		  const char *v, char *err, size_t errlen)
{
	double d;
	if (parse_num(o, v, &d, err, errlen) < 0)
		return -EINVAL;
	if (!kw) {
		k->def = d;
		k->def_set = 1;
		return 0;
	}
	if (!valid_kw_name(kw, kwlen)) {
		s4k_seterr(err, errlen, "%s: '%.*s' is not a keyword name", o->name, (int)kwlen, kw);
		return -EINVAL;
	}
	for (int i = 0; i < k->n; i++)
		if (strlen(k->v[i].name) == kwlen && !strncmp(k->v[i].name, kw, kwlen)) {
			k->v[i].value = d;
			return 0;
		}
	if (k->n == CFG_MAX_KW) {
		s4k_seterr(err, errlen, "%s: more than %d per-keyword values", o->name, CFG_MAX_KW);
		return -EINVAL;
	}
	memcpy(k->v[k->n].name, kw, kwlen);
	k->v[k->n].name[kwlen] = 0;
	k->v[k->n].value = d;
	k->n++;
	return 0;
}

int cfg_set(struct cfg *c, const char *name, const char *value, char *err, size_t errlen)
{
	/* "threshold.yes": option threshold, keyword yes */
	const char *dot = strchr(name, '.');
	size_t len = dot ? (size_t)(dot - name) : strlen(name);
	const struct opt *o = find(name, len);
	if (!o || (dot && o->type != T_KW)) {
		s4k_seterr(err, errlen, "unknown option '%s'", name);
		return -EINVAL;
	}
	if (!value)
		value = "";
	char *field = (char *)c + o->off;
	switch (o->type) {
	case T_STR:
		if (strlen(value) >= o->size) {
			s4k_seterr(err, errlen, "%s: value is longer than %zu bytes", o->name, o->size - 1);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case T_INT: {
		double d;
		if (parse_num(o, value, &d, err, errlen) < 0)
			return -EINVAL;
		*(int *)field = (int)d;
		return 0;
	}
	case T_DBL:
		return parse_num(o, value, (double *)field, err, errlen);
	case T_BOOL:
		if (parse_bool(value, (int *)field) < 0) {
			s4k_seterr(err, errlen, "%s: '%s' is not true or false", o->name, value);
			return -EINVAL;
		}
		return 0;
	case T_LEVEL: {
		int lv = log_parse_level(value);
		if (lv < 0) {
			s4k_seterr(err, errlen, "%s: '%s' is not error, warn, info or debug", o->name, value);
			return -EINVAL;
		}
		*(int *)field = lv;
		return 0;
	}
	case T_KW: {
		struct cfg_kw *k = (struct cfg_kw *)field;
		if (dot)
			return kw_set(k, o, dot + 1, strlen(dot + 1), value, err, errlen);
		const char *eq = strchr(value, '=');
		if (eq)
			return kw_set(k, o, value, (size_t)(eq - value), eq + 1, err, errlen);
		return kw_set(k, o, NULL, 0, value, err, errlen);
	}
	}
	return -EINVAL;
}

void cfg_defaults(struct cfg *c)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < N_OPTS; i++) {
		int rc = cfg_set(c, opts[i].name, opts[i].def, NULL, 0);
		(void)rc; /* the table's own defaults; test_config checks they all parse */
		if (opts[i].type == T_KW) /* a table default, not a value that was given */
			((struct cfg_kw *)((char *)c + opts[i].off))->def_set = 0;
	}
}

struct file_ctx {
	struct cfg *c;
	char *err;
	size_t errlen;
	int failed;
};

/* value without an inline comment: a '#' after a space or tab starts one, as on a line of its
 * own (the shipped s4kws.conf says so); trailing blanks before it go too. Into buf. */
static const char *strip_comment(const char *value, char *buf, size_t len)
{
	snprintf(buf, len, "%s", value);
	for (char *p = buf + 1; *p; p++)
		if (*p == '#' && (p[-1] == ' ' || p[-1] == '\t')) {
			while (p > buf && (p[-1] == ' ' || p[-1] == '\t'))
				p--;
			*p = 0;
			break;
		}
	return buf;
}

static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
	struct file_ctx *fc = user;
	if (fc->failed)
		return 0;
	char e[S4K_ERR_LEN], v[4096];
	if (section && *section) {
		s4k_seterr(e, sizeof e, "sections such as [%s] are not used", section);
	} else {
		const char *dot = strchr(name, '.');
		const struct opt *o = find(name, dot ? (size_t)(dot - name) : strlen(name));
		if (o && (o->flags & OPT_CLI))
			s4k_seterr(e, sizeof e, "%s can only be given on the command line", o->name);
		else if (cfg_set(fc->c, name, strip_comment(value, v, sizeof v), e, sizeof e) == 0)
			return 1;
	}
	fc->failed = 1;
	s4k_seterr(fc->err, fc->errlen, "%s", e);
	return 0;
}

int cfg_load_file(struct cfg *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		s4k_seterr(err, errlen, "cannot open config file %s: %s", path, strerror(e));
		return -e;
	}
	/* read it whole first: inih stops a line at a NUL byte without a word, so a damaged file
	 * would be half read (a file starting with NUL as empty: defaults on SIGHUP) */
	char *text = malloc(CFG_MAX_FILE + 1);
	size_t len = text ? fread(text, 1, CFG_MAX_FILE + 1, f) : 0;
	int rerr = ferror(f);
	fclose(f);
	if (!text || rerr || len > CFG_MAX_FILE) {
		s4k_seterr(err, errlen, "%s: %s", path, !text ? "out of memory" : rerr ? "read error"
			   : "longer than " PP_STR(CFG_MAX_FILE) " bytes: not a config file");
		free(text);
		return -EINVAL;
	}
	text[len] = 0;
	const char *nul = memchr(text, 0, len);
	if (nul) {
		int ln = 1;
		for (const char *q = text; q < nul; q++)
			ln += *q == '\n';
		s4k_seterr(err, errlen, "%s:%d: a NUL byte: not a text file", path, ln);
		free(text);
		return -EINVAL;
	}
	char e[S4K_ERR_LEN] = "";
	struct file_ctx fc = {c, e, sizeof e, 0};
	int line = ini_parse_string(text, on_ini_pair, &fc);
	free(text);
	if (line != 0) {
		if (!fc.failed)
			s4k_seterr(e, sizeof e, "syntax error (expected 'name = value')");
		s4k_seterr(err, errlen, "%s:%d: %s", path, line, e);
		return -EINVAL;
	}
	return 0;
}

int cfg_read_secret(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		s4k_seterr(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	/* one line; the rest of the file (a comment, a second line) is not part of the secret */
	char line[1024];
	int ok = fgets(line, sizeof line, f) != NULL;
	fclose(f);
	size_t n = ok ? strcspn(line, "\r\n") : 0;
	while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	int bad = !n || n >= len;
	if (!bad) {
		memcpy(buf, line, n);
		buf[n] = 0;
	}
	memset(line, 0, sizeof line);
	if (bad && n)
		s4k_seterr(err, errlen, "%s: the secret is longer than %zu bytes", path, len - 1);
	else if (bad)
		s4k_seterr(err, errlen, "%s: the first line is empty", path);
	return bad ? -EINVAL : 0;
}

/* The secrets that are not given as values: the token (file, then environment) and the MQTT
 * password. */
static int read_secrets(struct cfg *c, char *err, size_t errlen)
{
	char e[S4K_ERR_LEN];
	if (c->token_file[0]) {
		if (c->token[0]) {
			s4k_seterr(err, errlen, "give the token with token or token-file, not both");
			return -EINVAL;
		}
		int rc = cfg_read_secret(c->token_file, c->token, sizeof c->token, e, sizeof e);
		if (rc < 0) {
			s4k_seterr(err, errlen, "token-file: %s", e);
			return rc;
		}
	} else if (!c->token[0]) {
		const char *t = getenv("S4KWS_TOKEN");
		if (t && *t && strlen(t) >= sizeof c->token) {
			s4k_seterr(err, errlen, "S4KWS_TOKEN is longer than %zu bytes", sizeof c->token - 1);
			return -EINVAL;
		}
		snprintf(c->token, sizeof c->token, "%s", t ? t : "");
	}
	c->mqtt_password[0] = 0;
	if (c->mqtt_password_file[0]) {
		int rc = cfg_read_secret(c->mqtt_password_file, c->mqtt_password, sizeof c->mqtt_password,
					 e, sizeof e);
		if (rc < 0) {
			s4k_seterr(err, errlen, "mqtt-password-file: %s", e);
			return rc;
		}
	}
	return 0;
}

int cfg_parse(struct cfg *c, int argc, char **argv, char *err, size_t errlen)
{
	cfg_defaults(c);
	/* first pass: --help anywhere, and the config file (last --config wins) */
	const char *file = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return CFG_HELP;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			file = argv[++i];
		else if (!strncmp(argv[i], "--config=", 9))
			file = argv[i] + 9;
	}
	if (file) {
		int rc = cfg_load_file(c, file, err, errlen);
		if (rc < 0)
			return rc;
		snprintf(c->config, sizeof c->config, "%s", file);
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) || !a[2]) {
			s4k_seterr(err, errlen, "unexpected argument '%s' (options look like --name value)", a);
			return -EINVAL;
		}
		a += 2;
		const char *eq = strchr(a, '=');
		size_t len = eq ? (size_t)(eq - a) : strlen(a);
		const struct opt *o = find(a, len);
		if (!o) {
			s4k_seterr(err, errlen, "unknown option '--%.*s' (see --help)", (int)len, a);
			return -EINVAL;
		}
		const char *v;
		if (eq)
			v = eq + 1;
		else if (o->type == T_BOOL)
			v = "true";
		else if (i + 1 < argc)
			v = argv[++i];
		else {
			s4k_seterr(err, errlen, "--%s needs a value (%s)", o->name, o->arg);
			return -EINVAL;
		}
		if ((o->flags & OPT_CLI))
			continue; /* --config: already read */
		int rc = cfg_set(c, o->name, v, err, errlen);
		if (rc < 0)
			return rc;
	}
	return read_secrets(c, err, errlen);
}

char *cfg_help(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "usage: s4kws listen [OPTIONS]\n\n"
		   "Spot keywords in live audio (a capture device, or --input) and serve the detections\n"
		   "over HTTP. Every option can also be set in the --config file as 'name = value'.\n\n"
		   "options:\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opts[i];
		char lhs[64];
		if (o->type == T_BOOL) /* a bare --name means true; a value needs '=' */
			snprintf(lhs, sizeof lhs, "--%s[=%s]", o->name, o->arg);
		else
			snprintf(lhs, sizeof lhs, "--%s %s", o->name, o->arg);
		/* at least two blanks after a long lhs: dist/mkdoc.sh splits name and help there */
		fprintf(f, "  %-28s%s%s", lhs, strlen(lhs) < 28 ? " " : "  ", o->help);
		if (o->type == T_INT || o->type == T_DBL || o->type == T_KW)
			fprintf(f, " [%.10g..%.10g]", o->min, o->max);
		if (*o->def)
			fprintf(f, " (default %s)", o->def);
		if (o->flags & OPT_RESTART)
			fprintf(f, " (restart)");
		fprintf(f, "\n");
	}
	fprintf(f, "  %-28s %s\n", "--help", "show this text");
	fprintf(f, "\nSignals: SIGINT/SIGTERM stop in order; SIGHUP re-reads --config and the flags\n"
		   "(thresholds and detection settings apply at once; the old settings stay if the new\n"
		   "ones are invalid; options marked (restart) keep their running value, with a warning).\n");
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

void cfg_keep_restart(struct cfg *nc, const struct cfg *old, void (*changed)(const char *name, void *user),
		      void *user)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opts[i];
		if (!(o->flags & OPT_RESTART))
			continue;
		char *n = (char *)nc + o->off;
		const char *c = (const char *)old + o->off;
		int differs = o->type == T_STR ? strcmp(n, c) != 0 : memcmp(n, c, o->size) != 0;
		if (differs && changed)
			changed(o->name, user);
		memcpy(n, c, o->size);
	}
}

/* The override for label, or NULL. */
static const struct cfg_kwval *kw_find(const struct cfg_kw *k, const char *label)
{
	for (int i = 0; i < k->n; i++)
		if (!strcmp(k->v[i].name, label))
			return &k->v[i];
	return NULL;
}

double cfg_kw_get(const struct cfg_kw *k, const char *label)
{
	const struct cfg_kwval *v = kw_find(k, label);
	return v ? v->value : k->def;
}

void cfg_pp_kw(const struct cfg *c, const char *const *labels, const float *model_thr, int K,
	       struct pp_kw *kw)
{
	for (int k = 0; k < K; k++) {
		const char *l = labels[k];
		double t = cfg_kw_get(&c->threshold, l);
		int given = c->threshold.def_set || kw_find(&c->threshold, l);
		if (!given && model_thr && !isnan(model_thr[k]))
			t = model_thr[k];
		kw[k].threshold = (float)t;
		kw[k].smooth_ms = (float)cfg_kw_get(&c->smooth_ms, l);
		kw[k].min_ms = (float)cfg_kw_get(&c->min_ms, l);
		kw[k].refractory_ms = (float)cfg_kw_get(&c->refractory_ms, l);
	}
}

void cfg_pp_config(const struct cfg *c, const char *const *labels, const float *model_thr, int K,
		   int rate, size_t hop, struct pp_kw *kw, struct pp_config *pc)
{
	cfg_pp_kw(c, labels, model_thr, K, kw);
	pp_config_default(pc, rate, hop, K, labels, kw);
	pc->warmup_ms = (float)c->warmup_ms;
	pc->latency_ms = (float)c->latency_ms;
	pc->word_ms = (float)c->word_ms;
	pc->onset = (float)c->onset;
	pc->require_top = c->require_top;
	pc->verify = (float)c->verify;
	pc->verify_after_ms = (float)c->verify_after_ms;
}

/* The line of the config file at path that sets the per-keyword option opt for kw ("opt.kw = v"
 * or "opt = kw=v"), or 0: inih does not pass line numbers to its handler, so a keyword that the
 * model lacks (known only once it is loaded) is looked up again here. */
static int kw_line(const char *path, const char *opt, const char *kw)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char l[4096];
	size_t ol = strlen(opt), kl = strlen(kw);
	int n = 0, found = 0;
	while (!found && fgets(l, sizeof l, f)) {
		n++;
		const char *p = l + strspn(l, " \t");
		if (strncmp(p, opt, ol))
			continue;
		p += ol;
		if (*p == '.') /* opt.kw = v */
			found = !strncmp(p + 1, kw, kl) && strchr(" \t=", p[1 + kl]);
		else if (strchr(" \t=", *p)) { /* opt = kw=v */
			p += strspn(p, " \t");
			p += *p == '=' ? 1 + strspn(p + 1, " \t") : 0;
			found = !strncmp(p, kw, kl) && strchr(" \t=", p[kl]);
		}
	}
	fclose(f);
	return found ? n : 0;
}

int cfg_check_keywords(const struct cfg *c, const char *const *labels, int n, char *err,
		       size_t errlen)
{
	const struct {
		const char *opt;
		const struct cfg_kw *k;
	} kws[] = {{"threshold", &c->threshold}, {"smooth-ms", &c->smooth_ms},
		   {"min-ms", &c->min_ms}, {"refractory-ms", &c->refractory_ms}};
	for (size_t j = 0; j < sizeof kws / sizeof kws[0]; j++)
		for (int i = 0; i < kws[j].k->n; i++) {
			const char *name = kws[j].k->v[i].name;
			int found = 0;
			for (int l = 0; l < n && !found; l++)
				found = labels[l] && !strcmp(labels[l], name) && name[0] != '_';
			if (!found) {
				int line = c->config[0] ? kw_line(c->config, kws[j].opt, name) : 0;
				if (line > 0) /* given in the config file: say where */
					s4k_seterr(err, errlen, "%s:%d: %s: '%s' is not a keyword of this model",
						   c->config, line, kws[j].opt, name);
				else
					s4k_seterr(err, errlen, "%s: '%s' is not a keyword of this model", kws[j].opt,
						   name);
				return -EINVAL;
			}
		}
	return 0;
}

int cfg_sockaddr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	const char *a = !strcmp(addr, "localhost") ? "127.0.0.1" : addr;
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof *s4;
		return 0;
	}
	if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof *s6;
		return 0;
	}
	return -EINVAL;
}

int cfg_is_loopback(const char *a)
{
	/* by address, not spelling: 0:0:0:0:0:0:0:1 is ::1, ::ffff:127.0.0.2 is IPv4 loopback */
	struct in_addr v4;
	struct in6_addr v6;
	if (!strcmp(a, "localhost"))
		return 1;
	if (inet_pton(AF_INET, a, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, a, &v6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&v6) ||
		       (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
	return 0;
}
