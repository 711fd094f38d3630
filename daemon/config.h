/* config.h - every option of `s4kws listen`, from one table: CLI flags, config file, --help.
 *
 * Usage:
 *   struct cfg c;
 *   char err[S4K_ERR_LEN];
 *   int rc = cfg_parse(&c, argc, argv, err, sizeof err);  // defaults, then --config FILE, then flags
 *   if (rc == CFG_HELP) { char *h = cfg_help(); fputs(h, stdout); free(h); return 0; }
 *   if (rc < 0) { fprintf(stderr, "s4kws listen: %s\n", err); return 2; }
 *   double t = cfg_kw_get(&c.threshold, "yes");           // per-keyword value or the default
 *
 * An option is `--name value`, `--name=value`, or for booleans `--name` alone; in the file it is
 * `name = value` (inih syntax: `#` or `;` comments, no sections). Per-keyword options
 * (threshold, smooth-ms, min-ms, refractory-ms) take `--threshold 0.7` (default for every
 * keyword), `--threshold yes=0.8` (one keyword; repeatable) or `threshold.yes = 0.8` in the file.
 * Later settings win: file over defaults, flags over the file. Every value is range-checked;
 * the first bad one is refused with one sentence naming the option (and file line).
 * Threads: pure functions over caller storage; call from one thread at a time.
 */
#ifndef S4KWS_DAEMON_CONFIG_H
#define S4KWS_DAEMON_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>

#define CFG_MAX_FILE 1048576 /* bytes: a longer file is not a config file */
#define CFG_HELP 1          /* cfg_parse(): --help was given */
#define CFG_MAX_KW 64       /* per-keyword overrides per option */
#define CFG_KW_NAME 48      /* longest keyword name + 1 */

struct cfg_kwval {
	char name[CFG_KW_NAME];
	double value;
};

/* A per-keyword option: a default and overrides by label name. */
struct cfg_kw {
	double def;
	int def_set;             /* def was given (config file or flag), not the table's default */
	int n;
	struct cfg_kwval v[CFG_MAX_KW];
};

struct cfg {
	/* model and audio */
	char model[1024];        /* weights file; "" = the default model */
	char config[1024];       /* the file read (CLI only) */
	char device[256];        /* capture device: index or name substring; "" = default */
	int channels;            /* 0 = auto (device: 1, file: its channels) */
	char input[1024];        /* file or "-" (raw S16_LE stdin) instead of a device */
	int input_rate;          /* Hz of raw stdin input; 0 = the model's rate */
	int realtime;            /* pace file input at real speed */
	double duration;         /* stop the input after this many seconds; 0 = never */
	int frames_per_buffer;   /* PortAudio period, frames */
	char channel_names[1024]; /* comma-separated, one per channel; "" = none */
	int ring_ms;             /* capture ring length, ms of audio */
	double retry_max;        /* longest back-off between device reopen attempts, s */
	double device_stall;     /* a device silent this long (no callback) has failed, s */
	/* HTTP */
	char bind[64];           /* listen address */
	int port;                /* 0 = any free port */
	char port_file[1024];    /* write the bound port here (for tests and scripts) */
	char token[256];         /* Bearer token; required unless bind is loopback (after cfg_parse:
				  * from --token, --token-file or S4KWS_TOKEN) */
	char token_file[1024];   /* read the token from this file */
	char cors_origin[256];   /* Access-Control-Allow-Origin for this origin ("*": any); "" = off */
	int max_connections;
	int http_timeout;        /* idle connection timeout, s */
	int max_body;            /* POST /v1/classify body limit, bytes */
	int classify_jobs;       /* concurrent POST /v1/classify decodes */
	int sse_clients;         /* concurrent /v1/events streams */
	double heartbeat;        /* SSE heartbeat period, s */
	/* detections */
	int history;             /* detections kept in memory */
	char log[1024];          /* append-only JSON-lines detection log; "" = none */
	char save_dir[1024];     /* a WAV clip of every detection goes here; "" = none */
	double save_pre_ms;      /* clip audio before the decision point, ms */
	double save_post_ms;     /* clip audio after it, ms */
	double dedup_ms;         /* cross-channel de-duplication window, ms (0 = off) */
	char on_detect[1024];    /* shell command run for every detection; "" = none */
	int wyoming_port;        /* Wyoming wake-word server port; -1 = off, 0 = any free port */
	char wyoming_bind[64];   /* its listen address */
	int wyoming_clients;     /* concurrent Wyoming clients */
	double on_detect_timeout_ms; /* kill an on-detect command after this, ms */
	int log_level;           /* enum log_level */
	double hop_ms;           /* posterior evaluation period, ms (rounded to the model's hop) */
	double restart_ms;       /* stepper restart period, ms (0 = never; daemon/scan.h) */
	int inference_threads;   /* threads stepping the channels (0 = one per core) */
	struct cfg_kw threshold; /* smoothed posterior needed, (0, 1] */
	struct cfg_kw smooth_ms;
	struct cfg_kw min_ms;
	struct cfg_kw refractory_ms;
	double warmup_ms;
	double latency_ms;
	double word_ms;
	double onset;            /* fraction of the threshold where a rise starts, for `end` */
	int require_top;
	double verify;           /* second-opinion probability (daemon/verify.h); 0 = off */
	double verify_after_ms;  /* its window ends this long after the estimated end, ms */
	/* MQTT (daemon/mqtt.h) */
	char mqtt[512];          /* broker URL mqtt[s]://[user@]host[:port]; "" = off */
	char mqtt_password_file[1024];
	char mqtt_password[256]; /* not an option: read from mqtt-password-file by cfg_parse() */
	char mqtt_ca_file[1024]; /* CA certificates (PEM) for mqtts://; "" = the system's */
	char mqtt_topic[256];    /* topic prefix; "" = s4kws/<hostname> */
	int mqtt_discovery;      /* publish Home Assistant discovery configs */
	char mqtt_discovery_prefix[128];
	int mqtt_hermes;         /* also publish hermes/hotword/<keyword>/detected */
	int mqtt_queue;          /* detections kept while the broker is away */
	double mqtt_retry_max;   /* longest wait between reconnection attempts, s */
};

/* Fill c with every option's default. */
void cfg_defaults(struct cfg *c);
/* Set one option from text: name as in the file ("port", "threshold", "threshold.yes").
 * Returns 0 or -EINVAL (unknown name or bad value; one sentence in err). */
int cfg_set(struct cfg *c, const char *name, const char *value, char *err, size_t errlen);
/* Apply a config file on top of c. Returns 0, -ENOENT/-EACCES (cannot open) or -EINVAL
 * (sentence with the line number). */
int cfg_load_file(struct cfg *c, const char *path, char *err, size_t errlen);
/* Defaults, then the file of --config (if any), then the other flags of argv[1..argc), then the
 * secrets: the token from token-file, else from $S4KWS_TOKEN when no --token was given (a flag
 * shows in ps; a file or the environment does not), and mqtt_password from
 * mqtt-password-file. argv[0] is the command name. Returns 0, CFG_HELP, or a negative errno with
 * err set. */
int cfg_parse(struct cfg *c, int argc, char **argv, char *err, size_t errlen);
/* The first line of a small file holding a secret, without its line end, into buf (len bytes).
 * 0, or a negative errno with one sentence naming the file (never the secret) in err. */
int cfg_read_secret(const char *path, char *buf, size_t len, char *err, size_t errlen);
/* --help text generated from the table (malloc'ed; the caller frees). NULL on no memory. */
char *cfg_help(void);

/* Per-keyword lookup: the override for label, else the default. */
double cfg_kw_get(const struct cfg_kw *k, const char *label);
/* The detection settings of a model's K labels into kw (K): each of threshold, smooth-ms, min-ms
 * and refractory-ms is the keyword's override, else the option's value where the file or a flag
 * gave one; else, for the threshold only, model_thr[k] (the model's own tuned threshold,
 * s4m_thresholds) where it is not NaN; else the table's default. model_thr may be NULL. */
struct pp_kw;
void cfg_pp_kw(const struct cfg *c, const char *const *labels, const float *model_thr, int K,
	       struct pp_kw *kw);
/* All detection settings: cfg_pp_kw() into kw (K), then pc = pp_config_default(rate, hop,
 * labels, kw) with the warm-up, latency, word length, onset, require-top and verify options.
 * pc keeps the labels and kw pointers; check it with pp_validate(). */
struct pp_config;
void cfg_pp_config(const struct cfg *c, const char *const *labels, const float *model_thr, int K,
		   int rate, size_t hop, struct pp_kw *kw, struct pp_config *pc);
/* Check that every per-keyword override names one of labels[0..n): 0 or -EINVAL + sentence. */
int cfg_check_keywords(const struct cfg *c, const char *const *labels, int n, char *err,
		       size_t errlen);
/* 1 when the address is a loopback address (127.0.0.0/8, ::1, localhost). */
int cfg_is_loopback(const char *addr);
/* A listen address: an IPv4 or IPv6 literal or "localhost", with port, into *ss (family set)
 * and *len. 0, or -EINVAL when addr is neither. */
int cfg_sockaddr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len);

/* After a SIGHUP re-read into nc: every option read only at start takes old's value again;
 * changed(name, user) is called for each whose value nc had changed (may be NULL). */
void cfg_keep_restart(struct cfg *nc, const struct cfg *old, void (*changed)(const char *name, void *user),
		      void *user);

#endif
