/* classify.h - what the parts of `s4kws classify` share: its options and the state of one run.
 *
 * The command is four files: cmd_classify.c (the run: model, inputs, printing in input order),
 * classify_opts.c (the command line), classify_work.c (worker threads and their engines: one
 * input file each at a time) and classify_report.c (text/JSON/CSV records, progress, summary,
 * evaluation). A run is written by the main thread before the workers start; afterwards the
 * workers write only their items' result slots, the lazily loaded models and the posteriors
 * file, each under the lock named beside it.
 */
#ifndef S4KWS_DAEMON_CLASSIFY_H
#define S4KWS_DAEMON_CLASSIFY_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "audio/resample.h"
#include "config.h"
#include "model/s4m.h"
#include "spot/scan.h"

#define MAX_RATES 16              /* distinct native rates per run */

enum fmt { FMT_TEXT, FMT_JSON, FMT_CSV };

struct opts {
	const char *model_path;
	enum scan_mode mode;          /* clips: SCAN_CONV or SCAN_STREAM */
	enum scan_mode scan_mode;     /* longer recordings: SCAN_STREAM (auto, as listen) or SCAN_CONV */
	int mode_set;                 /* --mode given (not auto) */
	enum fmt format;
	int top;                      /* 0: text shows all classes, json has no "top" */
	int each;                     /* --channels each */
	int jobs;
	int native;
	int max_rate;                 /* --max-rate Hz: higher-rate input is first reduced to it */
	enum rs_quality quality;
	double min_s;                 /* shortest accepted input, seconds */
	const char *eval_dir;
	const char *plot;
	double ctx_s;                 /* --stream-context seconds (0 = preroll zeros) */
	const char *ctx_file;         /* context from this file instead of other eval clips */
	unsigned long seed;
	int progress;                 /* -1 auto (TTY), 0 off, 1 on */
	int summary;                  /* --summary: counts and detections per hour on stderr */
	size_t chunk;                 /* conv scan chunk, samples (0 = default) */
	const char *post_path;        /* --posteriors: every hop's scores of scanned recordings */
	int shard_k, shard_n;         /* --shard K/N (n 0: all inputs) */
	const char *skip_done;        /* --skip-done: an earlier --format json output */
	struct cfg det;               /* detection settings (shared option table with listen) */
};

/* One model per input rate. */
struct model_slot {
	int in_rate;                  /* Hz of the samples fed to it */
	struct s4m_model *m;
	float *ctx_audio;             /* --context-file decoded at in_rate (lazily) */
	size_t ctx_len;
	char *error;                  /* load failure, reported for every file at this rate */
};

struct item {
	const char *path;
	const char *walk_error;
	int truth;                    /* eval: true label index, else -1 */
};

struct result {
	json_t *records;              /* array of objects */
	int failed;
	int predicted;                /* eval */
	float score;
	double audio_s;
	int done;
};

struct run {
	struct opts *o;
	struct item *items;
	size_t n_items;
	struct result *res;
	atomic_size_t next;
	pthread_mutex_t lock;         /* res[].done, models, ctx loading */
	pthread_cond_t cond;
	struct model_slot models[MAX_RATES];
	int n_models;
	int model_rate;               /* Hz the base model was trained at */
	const char *const *labels;
	int K;
	const char *eval_root;
	FILE *post;                   /* --posteriors file (NULL: off) */
	pthread_mutex_t post_lock;    /* whole worker buffers go to it under this lock */
	int post_errno;               /* the first failed write's errno, 0 (under post_lock) */
};

#endif
