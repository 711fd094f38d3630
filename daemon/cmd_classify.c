/* cmd_classify.c - `s4kws classify`: file mode (batch classification, scanning, evaluation).
 *
 * DESIGN: inputs (files, directories, @lists, "-") are expanded by audio/walk into one ordered
 * array of items, and N worker threads take items by an atomic counter. Each worker owns its
 * engine workspaces (a conv workspace for clips, a scanner for long files, a stream for
 * --mode stream) per model, over models shared read-only by all threads. A file is decoded by
 * audio/audiofile in bounded blocks, mixed to mono (or one pass per channel with
 * --channels each) and resampled to the model's rate (or, with --native-rate, left at its own
 * rate and given a model whose step sizes are scaled for it; one model per distinct rate,
 * loaded once under a mutex). The first CLIP_MAX_S (3 s) of samples decide the kind: a clip
 * (that long or shorter) is classified once (daemon/clip: its loudest window, padded to the
 * window, preroll zeros in front); anything longer is scanned in conv mode by daemon/scan, whose
 * per-hop posteriors go through daemon/postproc, the same detection rules as live mode.
 *
 * Each item's result is a JSON array of records (one per channel pass, or one error) stored in
 * its slot; the main thread prints slots strictly in input order as they complete (so output
 * is deterministic whatever -j is), draws the progress bar on a TTY, and in --eval mode
 * accumulates the confusion matrix. A bad file yields an error record and a line on stderr,
 * never a stop; the exit status is 1 when any input failed, 2 for usage or model errors.
 */
#define _GNU_SOURCE /* strdup, getopt_long */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "audio/audiofile.h"
#include "audio/walk.h"
#include "batch.h"
#include "clip.h"
#include "config.h"
#include "model/s4m.h"
#include "plot.h"
#include "postproc.h"
#include "scan.h"

#define MAX_RATES 16              /* distinct native rates per run */
#define READ_BLOCK 8192           /* samples per af_read_mono() while scanning */
#define POST_BUF 65536            /* bytes of --posteriors lines a worker collects per write */

enum fmt { FMT_TEXT, FMT_JSON, FMT_CSV };

struct opts {
	const char *model_path;
	enum scan_mode mode;          /* SCAN_CONV or SCAN_STREAM (also for clips) */
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

/* ---- small helpers ---- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static json_t *error_record(const char *path, int channel, const char *msg)
{
	json_t *o = json_pack("{s:s, s:s}", "file", path, "error", msg);
	if (o && channel >= 0)
		json_object_set_new(o, "channel", json_integer(channel));
	return o;
}

static void csv_field(FILE *out, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\n\r")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

/* csv_field() of s as a malloc'd string of *len bytes; NULL when out of memory. */
static char *csv_quoted(const char *s, size_t *len)
{
	char *q = NULL;
	FILE *f = open_memstream(&q, len);
	if (!f)
		return NULL;
	csv_field(f, s);
	if (fclose(f) != 0) {
		free(q);
		return NULL;
	}
	return q;
}

/* A CSV header: the leading columns, then one per label. */
static void csv_header(FILE *out, const struct run *r, const char *lead)
{
	fputs(lead, out);
	for (int k = 0; k < r->K; k++) {
		fputc(',', out);
		csv_field(out, r->labels[k]);
	}
	fputc('\n', out);
}

/* ---- models ---- */

/* --model FILE, else $S4KWS_MODEL, else the embedded default (daemon/default_model.c). */
static struct s4m_model *load_model(const char *path, double rate, char *err, size_t errlen)
{
	return cmd_load_model(path, rate, err, errlen);
}

/* The model for input at in_rate (native rate) or the base model (slot 0). Thread-safe. */
static struct model_slot *model_for(struct run *r, int in_rate, char *err, size_t errlen)
{
	if (!r->o->native || in_rate == r->model_rate)
		return &r->models[0];
	pthread_mutex_lock(&r->lock);
	struct model_slot *s = NULL;
	for (int i = 0; i < r->n_models; i++)
		if (r->models[i].in_rate == in_rate)
			s = &r->models[i];
	if (!s && r->n_models < MAX_RATES) {
		s = &r->models[r->n_models];
		s->in_rate = in_rate;
		char e[S4K_ERR_LEN];
		s->m = load_model(r->o->model_path, (double)r->model_rate / in_rate, e, sizeof e);
		if (!s->m)
			s->error = strdup(e);
		r->n_models++;
	}
	pthread_mutex_unlock(&r->lock);
	if (!s) {
		s4k_seterr(err, errlen, "more than %d distinct sample rates with --native-rate",
			   MAX_RATES);
		return NULL;
	}
	if (!s->m) {
		s4k_seterr(err, errlen, "cannot load the model for %d Hz input: %s", in_rate,
			   s->error ? s->error : "out of memory");
		return NULL;
	}
	return s;
}

/* ---- per-thread engine state ---- */

struct engine {
	const struct s4m_model *m;
	struct s4m_conv *clip_cv;     /* clip_input_len(m, nctx) */
	struct s4m_stream *st;
	struct scan *scan;
	size_t nctx;                  /* context samples (0 = preroll) */
	float *clip_buf;              /* clip_input_len floats */
	float *ctx;                   /* (nctx) */
};

struct worker {
	struct run *r;
	struct engine eng[MAX_RATES];
	int n_eng;
	float *samples;               /* clip samples / read block */
	size_t cap;
	float *logits;
	json_t *dets;                 /* detections of the current scan */
	int det_channel;
	double det_rate;
	const struct s4m_model *det_model;
	char *pbuf;                   /* (POST_BUF) --posteriors lines not yet written */
	size_t plen;
	char *qpath;                  /* the current file's path, CSV-quoted (qlen bytes) */
	size_t qlen;
};

static void engine_fini(struct engine *e)
{
	if (e->clip_cv)
		s4m_conv_free(e->clip_cv);
	if (e->st)
		s4m_stream_free(e->st);
	scan_free(e->scan);
	free(e->clip_buf);
	free(e->ctx);
	memset(e, 0, sizeof *e);
}

static size_t ctx_samples(const struct run *r, const struct s4m_model *m)
{
	if (r->o->ctx_s <= 0)
		return 0;
	double hz = s4m_sample_rate(m) / s4m_rate(m);
	size_t h = s4m_hop(m);
	size_t n = (size_t)(r->o->ctx_s * hz / (double)h + 0.5) * h;
	return n ? n : h;
}

static struct engine *engine_for(struct worker *w, const struct s4m_model *m, char *err,
				 size_t errlen)
{
	for (int i = 0; i < w->n_eng; i++)
		if (w->eng[i].m == m)
			return &w->eng[i];
	if (w->n_eng == MAX_RATES) {
		s4k_seterr(err, errlen, "too many models in one thread");
		return NULL;
	}
	struct engine *e = &w->eng[w->n_eng];
	memset(e, 0, sizeof *e);
	e->m = m;
	e->nctx = ctx_samples(w->r, m);
	size_t len = clip_input_len(m, e->nctx);
	e->clip_buf = malloc(len * sizeof *e->clip_buf);
	e->ctx = e->nctx ? malloc(e->nctx * sizeof *e->ctx) : NULL;
	if (!e->clip_buf || (e->nctx && !e->ctx)) {
		s4k_seterr(err, errlen, "out of memory for a workspace");
		engine_fini(e);
		return NULL;
	}
	if (w->r->o->mode == SCAN_STREAM) {
		e->st = s4m_stream_new(m, err, errlen);
		if (!e->st) {
			engine_fini(e);
			return NULL;
		}
	} else {
		e->clip_cv = s4m_conv_new(m, len, err, errlen);
		/* a worker classifies many clips: precompute the preroll's share once */
		if (!e->clip_cv || s4m_conv_prime(e->clip_cv, err, errlen) < 0) {
			engine_fini(e);
			return NULL;
		}
	}
	w->n_eng++;
	return e;
}

/* ---- detections ---- */

static void on_detection(void *user, const struct pp_detection *d)
{
	struct worker *w = user;
	/* offset: where it was decided, as in live mode */
	json_t *o = clip_detection_json(w->det_model, w->det_rate, d, w->det_channel);
	if (o)
		json_array_append_new(w->dets, o);
}

/* --posteriors: a worker's lines go to the shared file in whole buffers, so that lines never
 * tear; with -j > 1 the blocks of different files interleave (every line names its file). */
static void post_flush(struct worker *w)
{
	struct run *r = w->r;
	if (!w->plen)
		return;
	pthread_mutex_lock(&r->post_lock);
	errno = 0;
	if (fwrite(w->pbuf, 1, w->plen, r->post) != w->plen && !r->post_errno)
		r->post_errno = errno ? errno : EIO;
	pthread_mutex_unlock(&r->post_lock);
	w->plen = 0;
}

/* One hop's posterior vector (K) after `sample` samples at det_rate: one CSV line. */
static void on_posterior(void *user, uint64_t sample, const float *probs)
{
	struct worker *w = user;
	int K = s4m_n_labels(w->det_model);
	/* the longest line: path, channel and offset (< 48 bytes), K x ",0.12345" (a softmax
	 * probability, or nan, prints at most 8 bytes), newline */
	size_t most = w->qlen + 48 + 8 * (size_t)K + 1;
	if (POST_BUF - w->plen < most)
		post_flush(w);
	char *p = w->pbuf + w->plen, *end = w->pbuf + POST_BUF;
	/* offset in seconds with the precision of one sample at 16 kHz and more */
	int n = snprintf(p, (size_t)(end - p), "%s,%d,%.5f", w->qpath, w->det_channel,
			 (double)sample / w->det_rate);
	for (int k = 0; k < K && n > 0 && n < end - p; k++)
		n += snprintf(p + n, (size_t)(end - p - n), ",%.5f", (double)probs[k]);
	if (n > 0 && n < end - p - 1) {
		p[n++] = '\n';
		w->plen += (size_t)n;
	} else { /* a line longer than the whole buffer (a path of ~64 KB): say so at the end */
		pthread_mutex_lock(&w->r->post_lock);
		if (!w->r->post_errno)
			w->r->post_errno = ENAMETOOLONG;
		pthread_mutex_unlock(&w->r->post_lock);
	}
}

/* Build the postproc configuration of the detection options for model m (input rate hz). */
static int pp_setup(const struct run *r, const struct s4m_model *m, struct pp_config *pc,
		    struct pp_kw *kw, char *err, size_t errlen)
{
	const struct cfg *c = &r->o->det;
	int K = s4m_n_labels(m);
	const char **labels = malloc((size_t)K * sizeof *labels);
	if (!labels)
		return -ENOMEM;
	for (int k = 0; k < K; k++)
		labels[k] = s4m_label(m, k);
	double hz = s4m_sample_rate(m) / s4m_rate(m);
	cfg_pp_config(c, labels, s4m_thresholds(m), K, (int)lround(hz), scan_hop(m, c->hop_ms), kw, pc);
	int rc = pp_validate(pc, err, errlen);
	pc->labels = NULL;
	free(labels);
	return rc;
}

static struct scan *scanner_for(struct worker *w, struct engine *e, char *err, size_t errlen)
{
	if (e->scan) {
		scan_reset(e->scan);
		return e->scan;
	}
	int K = s4m_n_labels(e->m);
	struct pp_kw *kw = malloc((size_t)K * sizeof *kw);
	const char **labels = malloc((size_t)K * sizeof *labels);
	if (!kw || !labels) {
		free(kw);
		free(labels);
		s4k_seterr(err, errlen, "out of memory for a scanner");
		return NULL;
	}
	struct pp_config pc;
	int rc = pp_setup(w->r, e->m, &pc, kw, err, errlen);
	if (rc == 0) {
		for (int k = 0; k < K; k++)
			labels[k] = s4m_label(e->m, k);
		pc.labels = labels;
		struct scan_sink sink = {.detection = on_detection, .user = w};
		if (w->r->post)
			sink.posterior = on_posterior;
		e->scan = scan_new(e->m, w->r->o->mode, &pc, w->r->o->chunk,
				   scan_period(e->m, w->r->o->det.restart_ms), &sink, err, errlen);
		/* one segment's work, once per worker: every later whole segment of every long
		 * file then skips its preroll */
		if (e->scan && scan_prime(e->scan, err, errlen) < 0) {
			scan_free(e->scan);
			e->scan = NULL;
		}
	}
	free(kw);
	free(labels);
	return e->scan;
}

/* ---- context audio for --stream-context ---- */

/* Fill e->ctx (e->nctx samples at hz) for item idx: the tail of other eval clips drawn with the
 * seed, or a seeded stretch of --context-file. Returns 0 or a negative errno with err. */
static int build_context(struct worker *w, struct engine *e, struct model_slot *ms, int hz,
			 size_t idx, char *err, size_t errlen)
{
	struct run *r = w->r;
	uint64_t s = r->o->seed * 0x9e3779b97f4a7c15ULL ^ (uint64_t)idx;
	if (r->o->ctx_file) {
		pthread_mutex_lock(&r->lock);
		if (!ms->ctx_audio && !ms->error) {
			char e2[S4K_ERR_LEN];
			struct af_file *f = af_open(r->o->ctx_file, e2, sizeof e2);
			int rc = f ? af_set_output(f, AF_MIX, hz, r->o->quality, e2, sizeof e2) : -1;
			if (rc == 0)
				rc = af_limit_rate(f, r->o->max_rate, e2, sizeof e2);
			if (rc == 0)
				rc = af_load(f, (size_t)hz * 3600, &ms->ctx_audio, &ms->ctx_len, e2,
					     sizeof e2);
			af_close(f);
			if (rc == 0 && ms->ctx_len < e->nctx) {
				snprintf(e2, sizeof e2, "shorter than the %zu samples of context", e->nctx);
				rc = -EINVAL;
			}
			if (rc < 0) {
				free(ms->ctx_audio);
				ms->ctx_audio = NULL;
				char m2[S4K_ERR_LEN + 64];
				snprintf(m2, sizeof m2, "context file '%s': %s", r->o->ctx_file, e2);
				ms->error = strdup(m2);
			}
		}
		pthread_mutex_unlock(&r->lock);
		if (!ms->ctx_audio) {
			s4k_seterr(err, errlen, "%s", ms->error ? ms->error : "no context audio");
			return -EINVAL;
		}
		size_t off = (size_t)(splitmix(&s) % (ms->ctx_len - e->nctx + 1));
		memcpy(e->ctx, ms->ctx_audio + off, e->nctx * sizeof *e->ctx);
		return 0;
	}
	/* other clips of the evaluation set, whole, concatenated until there is enough; the
	 * context is the last nctx samples of that concatenation */
	size_t win = s4m_window(e->m), cap = e->nctx + 2 * win, have = 0;
	float *acc = malloc(cap * sizeof *acc);
	if (!acc) {
		s4k_seterr(err, errlen, "out of memory for context audio");
		return -ENOMEM;
	}
	for (int tries = 0; have < e->nctx && tries < 256; tries++) {
		size_t j = (size_t)(splitmix(&s) % r->n_items);
		if (j == idx || r->items[j].walk_error)
			continue;
		char e2[S4K_ERR_LEN];
		struct af_file *f = af_open(r->items[j].path, e2, sizeof e2);
		if (!f)
			continue;
		float *x;
		size_t n;
		int rc = af_set_output(f, AF_MIX, hz, r->o->quality, e2, sizeof e2);
		if (rc == 0)
			rc = af_limit_rate(f, r->o->max_rate, e2, sizeof e2);
		if (rc == 0)
			rc = af_load(f, 2 * win, &x, &n, e2, sizeof e2);
		af_close(f);
		if (rc < 0)
			continue;
		memcpy(acc + have, x, n * sizeof *x);
		have += n;
		free(x);
	}
	if (have >= e->nctx) {
		memcpy(e->ctx, acc + have - e->nctx, e->nctx * sizeof *acc);
	} else {
		/* too little other audio in the set: silence before what there is */
		memset(e->ctx, 0, (e->nctx - have) * sizeof *acc);
		memcpy(e->ctx + e->nctx - have, acc, have * sizeof *acc);
	}
	free(acc);
	return 0;
}

/* ---- one item ---- */

static int grow(struct worker *w, size_t n)
{
	if (n <= w->cap)
		return 0;
	float *t = realloc(w->samples, n * sizeof *t);
	if (!t)
		return -ENOMEM;
	w->samples = t;
	w->cap = n;
	return 0;
}

/* Classify or scan one channel pass of an open file. Appends one record to res->records. */
static void one_pass(struct worker *w, struct af_file *f, const struct item *it, size_t idx,
		     int channel, struct result *res)
{
	struct run *r = w->r;
	const struct opts *o = r->o;
	char err[S4K_ERR_LEN];
	const struct af_info *fi = af_info(f);
	int rep_ch = o->each ? channel : -1;
	json_t *rec = NULL;

	/* the rate the audio has after --max-rate: what --native-rate's model is scaled for */
	int in_rate = o->max_rate && fi->rate > o->max_rate ? o->max_rate : fi->rate;
	struct model_slot *ms = model_for(r, in_rate, err, sizeof err);
	if (!ms)
		goto fail;
	const struct s4m_model *m = ms->m;
	int hz = o->native ? in_rate : r->model_rate;
	struct engine *e = engine_for(w, m, err, sizeof err);
	if (!e)
		goto fail;
	if (af_set_output(f, o->each ? channel : AF_MIX, hz, o->quality, err, sizeof err) < 0 ||
	    af_limit_rate(f, o->max_rate, err, sizeof err) < 0)
		goto fail;

	/* read up to the clip limit + 1: fewer means a clip (daemon/clip.h: up to CLIP_MAX_S) */
	size_t win = s4m_window(m);
	size_t clip_max = clip_max_len(m, hz);
	if (grow(w, clip_max + 1) < 0) {
		s4k_seterr(err, sizeof err, "out of memory");
		goto fail;
	}
	size_t n = 0;
	while (n < clip_max + 1) {
		long got = af_read_mono(f, w->samples + n, clip_max + 1 - n, err, sizeof err);
		if (got < 0)
			goto fail;
		if (got == 0)
			break;
		n += (size_t)got;
	}
	size_t min_n = (size_t)ceil(o->min_s * hz);
	if (min_n < s4m_hop(m))
		min_n = s4m_hop(m);
	if (n == 0) {
		s4k_seterr(err, sizeof err, "empty: no audio samples");
		goto fail;
	}
	if (n < min_n) {
		s4k_seterr(err, sizeof err, "too short: %.3f s of audio; the minimum is %.3f s",
			   (double)n / hz, (double)min_n / hz);
		goto fail;
	}

	if (n <= clip_max) {
		const float *ctx = NULL;
		if (e->nctx) {
			if (build_context(w, e, ms, hz, idx, err, sizeof err) < 0)
				goto fail;
			ctx = e->ctx;
		}
		size_t at = 0; /* a clip longer than the window: its loudest window */
		int rc = clip_best_logits(m, e->clip_cv, o->mode == SCAN_STREAM ? e->st : NULL, w->samples, n,
					  hz, ctx, e->nctx, e->clip_buf, w->logits, &at, err, sizeof err);
		if (rc < 0)
			goto fail;
		int label;
		rec = clip_json(m, w->logits, o->top, &label);
		if (!rec) {
			s4k_seterr(err, sizeof err, "out of memory");
			goto fail;
		}
		if (channel <= 0 || !o->each) {
			res->predicted = label;
			json_t *sc = json_object_get(rec, "score");
			res->score = sc ? (float)json_real_value(sc) : 0.0f;
		}
		int windowed = clip_windowed(m, n); /* else the slack past the window is dropped */
		json_object_set_new(rec, "duration", json_real((double)(windowed || n < win ? n : win) / hz));
		if (windowed) /* where the label came from */
			json_object_set_new(rec, "window", json_pack("[f, f]", (double)at / hz, (double)(at + win) / hz));
	} else {
		if (o->eval_dir) {
			s4k_seterr(err, sizeof err, "longer than %.0f s: --eval takes clips", CLIP_MAX_S);
			goto fail;
		}
		struct scan *sc = scanner_for(w, e, err, sizeof err);
		if (!sc)
			goto fail;
		w->dets = json_array();
		w->det_channel = o->each ? channel : 0;
		w->det_rate = hz;
		w->det_model = m;
		if (w->pbuf) { /* this file's path as every --posteriors line starts */
			free(w->qpath);
			w->qpath = csv_quoted(it->path, &w->qlen);
		}
		if (!w->dets || (w->pbuf && !w->qpath)) {
			json_decref(w->dets);
			w->dets = NULL;
			s4k_seterr(err, sizeof err, "out of memory");
			goto fail;
		}
		uint64_t total = n;
		int rc = scan_push(sc, w->samples, n);
		while (rc == 0) {
			long got = af_read_mono(f, w->samples, w->cap, err, sizeof err);
			if (got < 0) {
				json_decref(w->dets);
				w->dets = NULL;
				goto fail;
			}
			if (got == 0)
				break;
			total += (uint64_t)got;
			rc = scan_push(sc, w->samples, (size_t)got);
		}
		if (rc == 0)
			rc = scan_finish(sc);
		post_flush(w);
		if (rc < 0) {
			json_decref(w->dets);
			w->dets = NULL;
			s4k_seterr(err, sizeof err, "the engine refused a chunk while scanning");
			goto fail;
		}
		rec = json_object();
		if (!rec) {
			json_decref(w->dets);
			w->dets = NULL;
			s4k_seterr(err, sizeof err, "out of memory");
			goto fail;
		}
		json_object_set_new(rec, "duration", json_real((double)total / hz));
		json_object_set_new(rec, "detections", w->dets);
		w->dets = NULL;
	}
	if (af_scrubbed(f)) /* an honest answer about the rest, and the reason it may be off */
		clip_note_scrubbed(rec, af_scrubbed(f));
	/* "file" first for readability of json lines */
	json_t *full = json_pack("{s:s}", "file", it->path);
	if (full) {
		if (rep_ch >= 0)
			json_object_set_new(full, "channel", json_integer(rep_ch));
		json_object_update(full, rec);
		json_decref(rec);
		rec = full;
	}
	json_array_append_new(res->records, rec);
	return;
fail:
	json_array_append_new(res->records, error_record(it->path, rep_ch, err));
	res->failed = 1;
}

static void do_item(struct worker *w, size_t idx)
{
	struct run *r = w->r;
	const struct item *it = &r->items[idx];
	struct result *res = &r->res[idx];
	res->records = json_array();
	res->predicted = -1;
	char err[S4K_ERR_LEN];
	if (it->walk_error) {
		json_array_append_new(res->records, error_record(it->path, -1, it->walk_error));
		res->failed = 1;
		return;
	}
	struct af_file *f = af_open(it->path, err, sizeof err);
	if (!f) {
		json_array_append_new(res->records, error_record(it->path, -1, err));
		res->failed = 1;
		return;
	}
	const struct af_info *fi = af_info(f);
	int passes = r->o->each ? fi->channels : 1;
	for (int c = 0; c < passes; c++) {
		if (c > 0 && af_rewind(f, err, sizeof err) < 0) {
			json_array_append_new(res->records, error_record(it->path, c, err));
			res->failed = 1;
			break;
		}
		one_pass(w, f, it, idx, r->o->each ? c : -1, res);
	}
	/* audio seconds of the file (once, however many channel passes) */
	res->audio_s = fi->rate > 0 ? (double)af_frames_read(f) / fi->rate : 0.0;
	af_close(f);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->r;
	for (;;) {
		size_t i = atomic_fetch_add(&r->next, 1);
		if (i >= r->n_items)
			break;
		do_item(w, i);
		pthread_mutex_lock(&r->lock);
		r->res[i].done = 1;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

/* ---- output ---- */

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* --summary: what the records of a run add up to (a record per file, or per channel with
 * --channels each: each channel's audio counts as audio listened to). */
struct summary {
	size_t records, failed, clips, scans;
	double scan_s;                /* seconds of audio scanned as recordings */
	long *label_n, *det_n;        /* (K) clips per predicted label, detections per keyword */
};

static void summary_add(struct summary *s, const struct run *r, json_t *rec)
{
	s->records++;
	if (jstr(rec, "error")) {
		s->failed++;
		return;
	}
	json_t *dets = json_object_get(rec, "detections");
	const char *label = jstr(rec, "label");
	for (int k = 0; label && k < r->K; k++)
		if (!strcmp(label, r->labels[k])) {
			s->clips++;
			s->label_n[k]++;
		}
	if (!dets)
		return;
	s->scans++;
	s->scan_s += json_number_value(json_object_get(rec, "duration"));
	size_t i;
	json_t *d;
	json_array_foreach(dets, i, d) {
		const char *kw = jstr(d, "keyword");
		for (int k = 0; kw && k < r->K; k++)
			if (!strcmp(kw, r->labels[k]))
				s->det_n[k]++;
	}
}

static void summary_print(FILE *f, const struct summary *s, const struct run *r)
{
	fprintf(f, "summary: %zu record%s, %zu failed\n", s->records, s->records == 1 ? "" : "s", s->failed);
	fprintf(f, "  clips classified: %zu", s->clips);
	for (int k = 0, first = 1; k < r->K; k++)
		if (s->label_n[k]) {
			fprintf(f, "%s%s %ld", first ? " (" : ", ", r->labels[k], s->label_n[k]);
			first = 0;
		}
	fprintf(f, "%s\n", s->clips ? ")" : "");
	long total = 0;
	for (int k = 0; k < r->K; k++)
		total += s->det_n[k];
	double h = s->scan_s / 3600;
	fprintf(f, "  recordings scanned: %zu, %.3f h of audio, %ld detection%s", s->scans, h, total,
		total == 1 ? "" : "s");
	if (h > 0)
		fprintf(f, ", %.1f per hour", (double)total / h);
	fprintf(f, "\n");
	for (int k = 0; k < r->K && h > 0; k++)
		if (s->det_n[k])
			fprintf(f, "    %-12s %6ld  %8.1f per hour\n", r->labels[k], s->det_n[k], (double)s->det_n[k] / h);
}

static void print_record(FILE *out, const struct run *r, json_t *rec)
{
	const struct opts *o = r->o;
	const char *file = jstr(rec, "file"), *error = jstr(rec, "error"), *warning = jstr(rec, "warning");
	json_t *ch = json_object_get(rec, "channel");
	if (warning)
		fprintf(stderr, "s4kws classify: %s: warning: %s\n", file, warning);
	if (error) {
		if (ch)
			fprintf(stderr, "s4kws classify: %s (channel %lld): %s\n", file,
				(long long)json_integer_value(ch), error);
		else
			fprintf(stderr, "s4kws classify: %s: %s\n", file, error);
	}
	if (o->format == FMT_JSON) {
		char *s = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
		if (s) {
			fputs(s, out);
			fputc('\n', out);
			free(s);
		}
		return;
	}
	if (error && o->format == FMT_TEXT)
		return;
	json_t *dets = json_object_get(rec, "detections");
	if (o->format == FMT_CSV) {
		if (error) {
			csv_field(out, file);
			fputc(',', out);
			if (ch)
				fprintf(out, "%lld", (long long)json_integer_value(ch));
			fputs(",,,,,", out);
			csv_field(out, error);
			for (int k = 0; k < r->K; k++)
				fputc(',', out);
			fputc('\n', out);
			return;
		}
		if (dets && !json_array_size(dets)) { /* a row for every input: no label, no error */
			csv_field(out, file);
			fprintf(out, ",%lld,,,,,", ch ? (long long)json_integer_value(ch) : 0LL);
			for (int k = 0; k < r->K; k++)
				fputc(',', out);
			fputc('\n', out);
			return;
		}
		if (dets) {
			size_t i;
			json_t *d;
			json_array_foreach(dets, i, d) {
				csv_field(out, file);
				fprintf(out, ",%lld,%.3f,%.3f,",
					(long long)json_integer_value(json_object_get(d, "channel")),
					json_real_value(json_object_get(d, "start")),
					json_real_value(json_object_get(d, "end")));
				csv_field(out, jstr(d, "keyword"));
				fprintf(out, ",%.6f,", json_real_value(json_object_get(d, "score")));
				for (int k = 0; k < r->K; k++)
					fputc(',', out);
				fputc('\n', out);
			}
			return;
		}
		csv_field(out, file);
		fputc(',', out);
		if (ch)
			fprintf(out, "%lld", (long long)json_integer_value(ch));
		fputs(",,,", out);
		csv_field(out, jstr(rec, "label"));
		fprintf(out, ",%.6f,", json_real_value(json_object_get(rec, "score")));
		json_t *sc = json_object_get(rec, "scores");
		for (int k = 0; k < r->K; k++)
			fprintf(out, ",%.6f", json_real_value(json_object_get(sc, r->labels[k])));
		fputc('\n', out);
		return;
	}
	/* text */
	fputs(file, out);
	if (ch)
		fprintf(out, " [channel %lld]", (long long)json_integer_value(ch));
	if (dets) {
		size_t nd = json_array_size(dets), i;
		fprintf(out, "\t%.2f s\t%zu detection%s\n", json_real_value(json_object_get(rec, "duration")),
			nd, nd == 1 ? "" : "s");
		json_t *d;
		json_array_foreach(dets, i, d)
			fprintf(out, "  %9.3f - %9.3f s  %-10s %.3f\n",
				json_real_value(json_object_get(d, "start")),
				json_real_value(json_object_get(d, "end")), jstr(d, "keyword"),
				json_real_value(json_object_get(d, "score")));
		return;
	}
	fprintf(out, "\t%s\t%.3f\t", jstr(rec, "label"), json_real_value(json_object_get(rec, "score")));
	/* classes by decreasing score, --top K of them (all by default) */
	json_t *sc = json_object_get(rec, "scores");
	int K = r->K, shown = o->top > 0 && o->top < K ? o->top : K;
	unsigned char used[1024] = {0};
	for (int t = 0; t < shown && t < 1024; t++) {
		int b = -1;
		for (int k = 0; k < K && k < 1024; k++)
			if (!used[k] && (b < 0 || json_real_value(json_object_get(sc, r->labels[k])) >
						 json_real_value(json_object_get(sc, r->labels[b]))))
				b = k;
		used[b] = 1;
		fprintf(out, "%s%s %.3f", t ? "  " : "", r->labels[b],
			json_real_value(json_object_get(sc, r->labels[b])));
	}
	fputc('\n', out);
}

static void progress(const struct run *r, size_t done, double audio_s, double t0, int final)
{
	if (final) { /* the bar goes (as before each record): what stays on the terminal is the results */
		fputs("\r\033[K", stderr);
		fflush(stderr);
		return;
	}
	double el = s4k_mono_s() - t0;
	double fps = el > 0 ? done / el : 0, rt = el > 0 ? audio_s / el : 0;
	double eta = fps > 0 ? (r->n_items - done) / fps : 0;
	int width = 24, fill = r->n_items ? (int)(width * done / r->n_items) : width;
	char bar[32];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = 0;
	fprintf(stderr, "\r[%s] %zu/%zu files, %.1f files/s, audio at %.0fx real time, %d:%02d left  ", bar,
		done, r->n_items, fps, rt, (int)(eta / 60), (int)eta % 60);
	fflush(stderr);
}

/* ---- evaluation ---- */

/* 0 when every visible sub-folder of dir is named after a label, else -EINVAL + sentence. */
static int check_eval_folders(const char *dir, const char *const *labels, int K, char *err,
			      size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		s4k_seterr(err, errlen, "cannot read '%s': %s", dir, strerror(errno));
		return -EINVAL;
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
			continue;
		int found = 0;
		for (int k = 0; k < K && !found; k++)
			found = !strcmp(labels[k], de->d_name);
		if (!found) {
			char list[1024] = "";
			size_t len = 0;
			for (int k = 0; k < K && len + 2 < sizeof list; k++)
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? " " : "",
							labels[k]);
			s4k_seterr(err, errlen, "folder '%s' is not a label of the model (%s)",
				   de->d_name, list);
			rc = -EINVAL;
		}
	}
	closedir(d);
	return rc;
}

/* The 95 % Wilson score interval of a proportion correct/n: how far the accuracy of a model on
 * this many clips can move by the luck of the draw (912 val clips at 92 %: +-1.8 points). Wilson
 * rather than the normal approximation because it stays inside [0, 1] near 0 and 1. */
static void wilson95(long correct, long n, double *lo, double *hi)
{
	const double z = 1.959964;	// the two-sided 95 % normal quantile
	if (n <= 0) {
		*lo = 0, *hi = 1;
		return;
	}
	double p = (double)correct / (double)n, z2n = z * z / (double)n;
	double mid = (p + z2n / 2) / (1 + z2n);
	double half = z / (1 + z2n) * sqrt(p * (1 - p) / (double)n + z2n / (4.0 * (double)n));
	*lo = fmax(0, mid - half), *hi = fmin(1, mid + half);
}

static void print_eval(const struct run *r, const long *conf, json_t *mis, size_t n_failed,
		       FILE *out)
{
	int K = r->K;
	long n = 0, correct = 0;
	for (int t = 0; t < K; t++)
		for (int p = 0; p < K; p++) {
			n += conf[t * K + p];
			if (t == p)
				correct += conf[t * K + p];
		}
	double acc = n ? (double)correct / n : 0, lo, hi;
	wilson95(correct, n, &lo, &hi);
	json_t *per = json_object(), *cm = json_array(), *lab = json_array();
	for (int k = 0; k < K; k++) {
		long tp = conf[k * K + k], row = 0, col = 0;
		json_t *rowj = json_array();
		for (int j = 0; j < K; j++) {
			row += conf[k * K + j];
			col += conf[j * K + k];
			json_array_append_new(rowj, json_integer(conf[k * K + j]));
		}
		json_array_append_new(cm, rowj);
		json_array_append_new(lab, json_string(r->labels[k]));
		double prec = col ? (double)tp / col : 0, rec = row ? (double)tp / row : 0;
		double f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
		json_object_set_new(per, r->labels[k],
				    json_pack("{s:f, s:f, s:f, s:I}", "precision", prec, "recall", rec,
					      "f1", f1, "n", (json_int_t)row));
	}
	if (r->o->format == FMT_JSON) {
		json_t *o = json_pack("{s:f, s:[f, f], s:I, s:I, s:s, s:o, s:o, s:o, s:o}",
				      "accuracy", acc, "accuracy_ci95", lo, hi, "n", (json_int_t)n,
				      "failed", (json_int_t)n_failed,
				      "mode", r->o->mode == SCAN_STREAM ? "stream" : "conv",
				      "labels", lab, "per_class", per, "confusion", cm,
				      "misclassified", json_incref(mis));
		if (r->o->ctx_s > 0)
			json_object_set_new(o, "context_s", json_real(r->o->ctx_s));
		char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
		if (s) {
			fprintf(out, "%s\n", s);
			free(s);
		}
		json_decref(o);
		return;
	}
	fprintf(out, "accuracy %.4f (%ld/%ld, 95 %% CI %.4f-%.4f)  mode %s%s", acc, correct, n, lo,
		hi, r->o->mode == SCAN_STREAM ? "stream" : "conv", r->o->native ? "  native-rate" : "");
	if (r->o->ctx_s > 0)
		fprintf(out, "  context %.2f s", r->o->ctx_s);
	if (n_failed)
		fprintf(out, "  (%zu files failed)", n_failed);
	fputc('\n', out);
	fprintf(out, "\n%-12s %6s %9s %7s %7s\n", "label", "n", "precision", "recall", "f1");
	for (int k = 0; k < K; k++) {
		json_t *pc = json_object_get(per, r->labels[k]);
		fprintf(out, "%-12s %6lld %9.4f %7.4f %7.4f\n", r->labels[k],
			(long long)json_integer_value(json_object_get(pc, "n")),
			json_real_value(json_object_get(pc, "precision")),
			json_real_value(json_object_get(pc, "recall")),
			json_real_value(json_object_get(pc, "f1")));
	}
	fprintf(out, "\nconfusion (rows: true label, columns: predicted)\n%-12s", "");
	for (int p = 0; p < K; p++)
		fprintf(out, " %6.6s", r->labels[p]);
	fputc('\n', out);
	for (int t = 0; t < K; t++) {
		fprintf(out, "%-12s", r->labels[t]);
		for (int p = 0; p < K; p++)
			fprintf(out, " %6ld", conf[t * K + p]);
		fputc('\n', out);
	}
	size_t i;
	json_t *e;
	fprintf(out, "\nmisclassified (%zu)\n", json_array_size(mis));
	json_array_foreach(mis, i, e)
		fprintf(out, "  %s\t%s -> %s (%.3f)\n", jstr(e, "file"), jstr(e, "true"),
			jstr(e, "predicted"), json_real_value(json_object_get(e, "score")));
	json_decref(per);
	json_decref(cm);
	json_decref(lab);
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: s4kws classify [OPTIONS] AUDIO...\n"
"       s4kws classify --eval DIR [--plot FILE] [OPTIONS]\n"
"\n"
"Classify audio files (clips of up to 3 s) or scan longer recordings for keywords.\n"
"AUDIO is a file (any format libsndfile reads), a directory (audio files below it,\n"
"recursively), @LIST (a text file of paths, one per line) or - (such a list on stdin).\n"
"\n"
"  --model FILE         weights file (default: $S4KWS_MODEL or the built-in model)\n"
"  --mode conv|stream   convolution engine (default) or the recurrent steppers\n"
"  --format text|json|csv  output (default text); json: one object per line; csv: a row\n"
"                       per clip, per detection, and per recording without one (no label)\n"
"  --top K              text: show the K best classes (default all); json: add \"top\"\n"
"  --channels mix|each  mix channels to mono (default) or classify every channel\n"
"  -j, --jobs N         worker threads (default: all cores); output stays in input order\n"
"  --native-rate        feed audio at its own rate to a model with scaled step sizes\n"
"                       instead of resampling (one model per distinct rate)\n"
"  --resample best|medium|fast  libsamplerate converter (default best)\n"
"  --max-rate HZ        first resample input recorded above HZ down to HZ, so that every file\n"
"                       reaches the model with the same band: e.g. 8000 for a collection that\n"
"                       mixes 8 kHz and 16 kHz recordings makes labels independent of a file's\n"
"                       rate (at some cost in accuracy on the wide-band files)\n"
"  --min-duration S     shortest accepted input in seconds (default 0.1)\n"
"  --progress, --no-progress  progress bar on stderr (default: when stderr is a TTY)\n"
"  --summary            at the end, on stderr: how many clips got each label, and for the\n"
"                       recordings scanned their hours of audio and detections per hour\n"
"                       per keyword (on recordings without keywords: false alarms per hour)\n"
"  --posteriors FILE    write every hop's label probabilities of the recordings scanned to\n"
"                       FILE as CSV (file,channel,offset,<labels>; offset in seconds where\n"
"                       the score was computed): for choosing thresholds; clips have none\n"
"  --shard K/N          only the inputs of shard K of N (by a hash of the path: N runs with\n"
"                       1/N .. N/N share out the same inputs exactly, in any order)\n"
"  --skip-done OUT      leave out inputs that OUT, an earlier --format json output, already\n"
"                       answered without error (append to it: >> OUT to resume a run)\n"
"\n");
	/* two strings: ISO C limits one literal to 4095 characters */
	fprintf(f,
"A clip (a recording of up to 3 s) is classified once: up to the model window (1 s, plus\n"
"1/64 slack for resampling) as it is, a longer one by its loudest window (so leading and\n"
"trailing silence and encoder padding do not matter); zeros are appended up to the window\n"
"and the model's preroll zeros put in front, as in training; json keys file, label,\n"
"score, scores (label -> probability), logits, duration, window ([start, end] s of the\n"
"window used, for clips longer than the window) (+ channel with --channels each, top\n"
"with --top). Inputs shorter than --min-duration fail. Samples that are not finite numbers\n"
"(or beyond +-64) are replaced by zeros and counted: nonfinite_samples and a warning, in\n"
"the record of any input and on stderr.\n"
"\n"
"Evaluation (a folder per label, Speech Commands layout):\n"
"  --eval DIR           accuracy (and its 95 %% interval), per-class precision/recall/F1,\n"
"                       confusion, misclassified\n"
"  --plot FILE          also draw the confusion matrix as a PNG\n"
"  --stream-context S   put S seconds of unrelated audio before every clip instead of the\n"
"                       preroll zeros (both modes): other clips of the set, drawn at random\n"
"                       per clip from --seed and the clip's index (not the thread count),\n"
"                       decoded whole and concatenated; the last S seconds of that feed\n"
"                       the model, then the clip padded to the window (conv mode\n"
"                       forgets lags beyond its kernels; stream mode hears it all, with\n"
"                       one stepper: --restart-ms does not apply to clips)\n"
"  --context-file FILE  take those S seconds from a seeded offset of FILE instead\n"
"  --seed N             seed of the context draw (default 1)\n"
"\n"
"Longer recordings are scanned in conv mode (bounded memory) or, with --mode stream, by\n"
"the steppers, both with live mode's restarts if --restart-ms is set (default 0: one\n"
"whole-file run from a zero state); json keys file, duration, detections (start, end,\n"
"offset = where it was decided, in seconds; keyword, score, channel; verify with --verify).\n"
"Detection settings are those of 's4kws listen': --config FILE, --threshold [KW=]P,\n"
"--smooth-ms, --min-ms, --refractory-ms, --warmup-ms, --latency-ms, --onset, --word-ms,\n"
"--require-top, --hop-ms, --restart-ms, --verify, --verify-after-ms;\n"
"  --chunk S            conv-mode scan chunk in seconds, with --restart-ms 0 (default: automatic)\n"
"\n"
"Exit status: 0 all inputs classified, 1 some input failed (each failure is one line on\n"
"stderr naming the file, and an \"error\" record in json/csv), 2 usage or model errors.\n");
}

static const char *const det_opts[] = {
	"threshold", "smooth-ms", "min-ms", "refractory-ms", "warmup-ms", "latency-ms",
	"onset", "word-ms", "require-top", "hop-ms", "restart-ms", "verify", "verify-after-ms",
};
#define N_DET (sizeof det_opts / sizeof det_opts[0])

enum {
	O_MODEL = 256, O_MODE, O_FORMAT, O_TOP, O_CHANNELS, O_NATIVE, O_RESAMPLE, O_MIN, O_EVAL,
	O_PLOT, O_CTX, O_CTXFILE, O_SEED, O_PROGRESS, O_NOPROGRESS, O_CHUNK, O_CONFIG, O_HELP, O_SHARD, O_SKIPDONE,
	O_SUMMARY, O_POSTERIORS, O_MAXRATE,
	O_DET0 = 400,
};

static int parse_num(const char *opt, const char *v, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= lo && d <= hi)) {
		fprintf(stderr, "s4kws classify: %s: '%s' is not a number in %g..%g\n", opt, v, lo, hi);
		return -1;
	}
	*out = d;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o, int *first)
{
	static struct option lo[8 + 32 + N_DET];
	static const struct option base[] = {
		{"model", required_argument, 0, O_MODEL},
		{"mode", required_argument, 0, O_MODE},
		{"format", required_argument, 0, O_FORMAT},
		{"top", required_argument, 0, O_TOP},
		{"channels", required_argument, 0, O_CHANNELS},
		{"jobs", required_argument, 0, 'j'},
		{"native-rate", no_argument, 0, O_NATIVE},
		{"resample", required_argument, 0, O_RESAMPLE},
		{"max-rate", required_argument, 0, O_MAXRATE},
		{"min-duration", required_argument, 0, O_MIN},
		{"eval", required_argument, 0, O_EVAL},
		{"plot", required_argument, 0, O_PLOT},
		{"stream-context", required_argument, 0, O_CTX},
		{"stream-preroll", required_argument, 0, O_CTX},
		{"context-file", required_argument, 0, O_CTXFILE},
		{"seed", required_argument, 0, O_SEED},
		{"progress", no_argument, 0, O_PROGRESS},
		{"no-progress", no_argument, 0, O_NOPROGRESS},
		{"summary", no_argument, 0, O_SUMMARY},
		{"posteriors", required_argument, 0, O_POSTERIORS},
		{"chunk", required_argument, 0, O_CHUNK},
		{"config", required_argument, 0, O_CONFIG},
		{"shard", required_argument, 0, O_SHARD},
		{"skip-done", required_argument, 0, O_SKIPDONE},
		{"help", no_argument, 0, O_HELP},
	};
	size_t nb = sizeof base / sizeof base[0];
	memcpy(lo, base, sizeof base);
	for (size_t i = 0; i < N_DET; i++)
		lo[nb + i] = (struct option){det_opts[i], required_argument, 0, O_DET0 + (int)i};
	memset(&lo[nb + N_DET], 0, sizeof lo[0]);

	memset(o, 0, sizeof *o);
	o->mode = SCAN_CONV;
	o->format = FMT_TEXT;
	o->jobs = 0;
	o->quality = RS_BEST;
	o->min_s = 0.1;
	o->seed = 1;
	o->progress = -1;
	cfg_defaults(&o->det);
	/* detection flags apply after --config wherever they stand: keep them for later */
	int nd = 0;
	const char *dn[64], *dv[64];

	optind = 1;
	opterr = 0;
	int c;
	char err[S4K_ERR_LEN];
	double d;
	while ((c = getopt_long(argc, argv, "j:h", lo, NULL)) != -1) {
		switch (c) {
		case O_MODEL:
			o->model_path = optarg;
			break;
		case O_MODE:
			if (!strcmp(optarg, "conv"))
				o->mode = SCAN_CONV;
			else if (!strcmp(optarg, "stream"))
				o->mode = SCAN_STREAM;
			else {
				fprintf(stderr, "s4kws classify: --mode: '%s' is not conv or stream\n", optarg);
				return -1;
			}
			break;
		case O_FORMAT:
			if (!strcmp(optarg, "text"))
				o->format = FMT_TEXT;
			else if (!strcmp(optarg, "json"))
				o->format = FMT_JSON;
			else if (!strcmp(optarg, "csv"))
				o->format = FMT_CSV;
			else {
				fprintf(stderr, "s4kws classify: --format: '%s' is not text, json or csv\n",
					optarg);
				return -1;
			}
			break;
		case O_TOP:
			if (parse_num("--top", optarg, 1, 1000, &d) < 0)
				return -1;
			o->top = (int)d;
			break;
		case O_CHANNELS:
			if (!strcmp(optarg, "mix"))
				o->each = 0;
			else if (!strcmp(optarg, "each"))
				o->each = 1;
			else {
				fprintf(stderr, "s4kws classify: --channels: '%s' is not mix or each\n", optarg);
				return -1;
			}
			break;
		case 'j':
			if (parse_num("--jobs", optarg, 1, 1024, &d) < 0)
				return -1;
			o->jobs = (int)d;
			break;
		case O_NATIVE:
			o->native = 1;
			break;
		case O_RESAMPLE:
			if (!strcmp(optarg, "best"))
				o->quality = RS_BEST;
			else if (!strcmp(optarg, "medium"))
				o->quality = RS_MEDIUM;
			else if (!strcmp(optarg, "fast"))
				o->quality = RS_FASTEST;
			else {
				fprintf(stderr, "s4kws classify: --resample: '%s' is not best, medium or fast\n",
					optarg);
				return -1;
			}
			break;
		case O_MAXRATE:
			if (parse_num("--max-rate", optarg, 1000, 768000, &d) < 0)
				return -1;
			o->max_rate = (int)d;
			break;
		case O_MIN:
			if (parse_num("--min-duration", optarg, 0, 3600, &o->min_s) < 0)
				return -1;
			break;
		case O_EVAL:
			o->eval_dir = optarg;
			break;
		case O_PLOT:
			o->plot = optarg;
			break;
		case O_CTX:
			if (parse_num("--stream-context", optarg, 0, 600, &o->ctx_s) < 0)
				return -1;
			break;
		case O_CTXFILE:
			o->ctx_file = optarg;
			break;
		case O_SEED:
			if (parse_num("--seed", optarg, 0, 4294967295.0, &d) < 0)
				return -1;
			o->seed = (unsigned long)d;
			break;
		case O_PROGRESS:
			o->progress = 1;
			break;
		case O_NOPROGRESS:
			o->progress = 0;
			break;
		case O_SUMMARY:
			o->summary = 1;
			break;
		case O_POSTERIORS:
			o->post_path = optarg;
			break;
		case O_CHUNK:
			if (parse_num("--chunk", optarg, 0.01, 36000, &d) < 0)
				return -1;
			o->chunk = (size_t)(d * 16000);   /* rescaled to the model rate later */
			break;
		case O_SHARD:
			if (batch_parse_shard(optarg, &o->shard_k, &o->shard_n, err, sizeof err) < 0) {
				fprintf(stderr, "s4kws classify: %s\n", err);
				return -1;
			}
			break;
		case O_SKIPDONE:
			o->skip_done = optarg;
			break;
		case O_CONFIG:
			if (cfg_load_file(&o->det, optarg, err, sizeof err) < 0) {
				fprintf(stderr, "s4kws classify: --config: %s\n", err);
				return -1;
			}
			break;
		case O_HELP:
		case 'h':
			usage(stdout);
			return 1;
		case '?':
			if (optopt)
				fprintf(stderr, "s4kws classify: option -%c needs a value or is unknown\n",
					optopt);
			else
				fprintf(stderr, "s4kws classify: unknown option '%s'\n", argv[optind - 1]);
			return -1;
		default:
			if (c >= O_DET0 && c < O_DET0 + (int)N_DET && nd < 64) {
				dn[nd] = det_opts[c - O_DET0];
				dv[nd++] = optarg;
			}
			break;
		}
	}
	for (int i = 0; i < nd; i++)
		if (cfg_set(&o->det, dn[i], dv[i], err, sizeof err) < 0) {
			fprintf(stderr, "s4kws classify: --%s: %s\n", dn[i], err);
			return -1;
		}
	*first = optind;
	if (o->post_path && o->eval_dir) {
		fprintf(stderr, "s4kws classify: --posteriors writes the scores of scanned recordings; "
			"--eval takes clips\n");
		return -1;
	}
	if (o->plot && !o->eval_dir) {
		fprintf(stderr, "s4kws classify: --plot needs --eval\n");
		return -1;
	}
	if (o->plot) { /* before the evaluation, not after it: its folder must take a new file */
		char *pd = strdup(o->plot), *slash = pd ? strrchr(pd, '/') : NULL;
		const char *dir = !slash ? "." : slash == pd ? "/" : (*slash = 0, pd);
		int ok = pd && access(dir, W_OK | X_OK) == 0;
		if (!ok)
			fprintf(stderr, "s4kws classify: --plot: cannot write '%s' (folder '%s': %s)\n", o->plot,
				dir, strerror(pd ? errno : ENOMEM));
		free(pd);
		if (!ok)
			return -1;
	}
	if (o->ctx_file && o->ctx_s <= 0) {
		fprintf(stderr, "s4kws classify: --context-file needs --stream-context SECONDS\n");
		return -1;
	}
	if (o->ctx_s > 0 && !o->eval_dir && !o->ctx_file) {
		fprintf(stderr, "s4kws classify: --stream-context without --eval needs --context-file\n");
		return -1;
	}
	if (!o->eval_dir && optind >= argc) {
		fprintf(stderr, "s4kws classify: no input files (see --help)\n");
		return -1;
	}
	if (o->eval_dir && optind < argc) {
		fprintf(stderr, "s4kws classify: --eval takes no other inputs\n");
		return -1;
	}
	return 0;
}

/* ---- main ---- */

int cmd_classify(int argc, char **argv)
{
	struct opts o;
	int first;
	int rc = parse_args(argc, argv, &o, &first);
	if (rc != 0)
		return rc > 0 ? 0 : 2;

	char err[S4K_ERR_LEN];
	struct run r;
	memset(&r, 0, sizeof r);
	r.o = &o;
	pthread_mutex_init(&r.lock, NULL);
	pthread_mutex_init(&r.post_lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	r.models[0].m = load_model(o.model_path, 1.0, err, sizeof err);
	if (!r.models[0].m) {
		fprintf(stderr, "s4kws classify: %s\n", err);
		return 2;
	}
	struct s4m_model *m0 = r.models[0].m;
	r.model_rate = s4m_sample_rate(m0);
	r.models[0].in_rate = r.model_rate;
	r.n_models = 1;
	r.K = s4m_n_labels(m0);
	const char **labels = calloc((size_t)r.K, sizeof *labels);
	if (!labels) {
		fprintf(stderr, "s4kws classify: out of memory\n");
		s4m_free(m0);
		return 2;
	}
	for (int k = 0; k < r.K; k++)
		labels[k] = s4m_label(m0, k);
	r.labels = labels;
	int status = 2;
	struct walk_list wl;
	walk_init(&wl);
	long *conf = NULL;
	json_t *mis = NULL;

	if (o.mode == SCAN_STREAM && !s4m_streamable(m0)) {
		fprintf(stderr, "s4kws classify: --mode stream: this model is bidirectional and runs "
			"in conv mode only\n");
		goto out;
	}
	if (o.chunk)
		o.chunk = (size_t)((double)o.chunk / 16000.0 * r.model_rate);
	if (cfg_check_keywords(&o.det, labels, r.K, err, sizeof err) < 0) {
		fprintf(stderr, "s4kws classify: %s\n", err);
		goto out;
	}
	{
		struct pp_config pc;
		struct pp_kw *kw = malloc((size_t)r.K * sizeof *kw);
		if (!kw || pp_setup(&r, m0, &pc, kw, err, sizeof err) < 0) {
			fprintf(stderr, "s4kws classify: %s\n", kw ? err : "out of memory");
			free(kw);
			goto out;
		}
		free(kw);
	}

	/* inputs */
	int *truth = NULL;
	if (o.eval_dir) {
		struct stat sb;
		if (stat(o.eval_dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
			fprintf(stderr, "s4kws classify: --eval: '%s' is not a directory\n", o.eval_dir);
			goto out;
		}
		/* every visible sub-folder must be a label of the model */
		if (check_eval_folders(o.eval_dir, labels, r.K, err, sizeof err) < 0) {
			fprintf(stderr, "s4kws classify: --eval: %s\n", err);
			goto out;
		}
		truth = NULL;
		size_t cap = 0;
		for (int k = 0; k < r.K; k++) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", o.eval_dir, labels[k]);
			if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
				continue;
			size_t before = wl.n;
			if (walk_dir(&wl, path, err, sizeof err) < 0) {
				fprintf(stderr, "s4kws classify: %s\n", err);
				goto out;
			}
			if (wl.n > cap) {
				cap = wl.n * 2;
				int *t = realloc(truth, cap * sizeof *t);
				if (!t) {
					fprintf(stderr, "s4kws classify: out of memory\n");
					free(truth);
					goto out;
				}
				truth = t;
			}
			for (size_t i = before; i < wl.n; i++)
				truth[i] = k;
		}
		if (wl.n == 0) {
			fprintf(stderr, "s4kws classify: --eval: no audio files in sub-folders of '%s' "
				"named after the model's labels\n", o.eval_dir);
			goto out;
		}
	} else {
		for (int i = first; i < argc; i++)
			if (walk_add(&wl, argv[i], stdin, err, sizeof err) < 0) {
				fprintf(stderr, "s4kws classify: %s\n", err);
				goto out;
			}
	}
	if (wl.n == 0) {
		fprintf(stderr, "s4kws classify: no audio files in the inputs (directories are searched "
			"for names ending in an audio extension such as .wav or .flac)\n");
		status = 1;
		goto out;
	}
	struct batch_done *answered = NULL;
	if (o.skip_done && !(answered = batch_done_load(o.skip_done, err, sizeof err))) {
		fprintf(stderr, "s4kws classify: %s\n", err);
		free(truth);
		goto out;
	}
	r.items = calloc(wl.n ? wl.n : 1, sizeof *r.items);
	r.res = calloc(wl.n ? wl.n : 1, sizeof *r.res);
	if (!r.items || !r.res) {
		fprintf(stderr, "s4kws classify: out of memory\n");
		free(truth);
		batch_done_free(answered);
		goto out;
	}
	size_t n_done = 0; /* this shard's inputs, less those already answered */
	for (size_t i = 0; i < wl.n; i++) {
		if (o.shard_n && !batch_in_shard(wl.items[i].path, o.shard_k, o.shard_n))
			continue;
		if (batch_done_has(answered, wl.items[i].path)) {
			n_done++;
			continue;
		}
		r.items[r.n_items].path = wl.items[i].path;
		r.items[r.n_items].walk_error = wl.items[i].error;
		r.items[r.n_items++].truth = truth ? truth[i] : -1;
	}
	free(truth);
	batch_done_free(answered);
	if (o.shard_n || o.skip_done) {
		char sd[1200] = "";
		if (o.skip_done)
			snprintf(sd, sizeof sd, "; %zu already answered in %s", n_done, o.skip_done);
		fprintf(stderr, "s4kws classify: %zu of %zu inputs to do%s%s\n", r.n_items, wl.n,
			o.shard_n ? " in this shard" : "", sd);
	}
	if (!r.n_items) {
		status = 0;
		goto out;
	}

	/* workers */
	int jobs = o.jobs;
	if (jobs <= 0) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		jobs = nc > 0 ? (int)nc : 1;
	}
	if ((size_t)jobs > r.n_items)
		jobs = r.n_items ? (int)r.n_items : 1;
	if (o.post_path) {
		if (!(r.post = fopen(o.post_path, "w"))) {
			fprintf(stderr, "s4kws classify: --posteriors: cannot write '%s': %s\n", o.post_path,
				strerror(errno));
			goto out;
		}
		csv_header(r.post, &r, "file,channel,offset");
	}
	struct worker *ws = calloc((size_t)jobs, sizeof *ws);
	pthread_t *th = calloc((size_t)jobs, sizeof *th);
	if (!ws || !th) {
		fprintf(stderr, "s4kws classify: out of memory\n");
		free(ws);
		free(th);
		goto out;
	}
	int started = 0;
	for (int i = 0; i < jobs; i++) {
		ws[i].r = &r;
		ws[i].logits = malloc((size_t)r.K * sizeof *ws[i].logits);
		if (!ws[i].logits)
			break;
		if (r.post && !(ws[i].pbuf = malloc(POST_BUF)))
			break; /* freed below with the logits */
		if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0)
			break;
		started++;
	}
	if (started == 0) {
		fprintf(stderr, "s4kws classify: cannot start a worker thread\n");
		free(ws[0].logits);
		free(ws[0].pbuf);
		free(ws);
		free(th);
		goto out;
	}

	int show = o.progress < 0 ? isatty(2) : o.progress;
	if (o.format == FMT_CSV && !o.eval_dir)
		csv_header(stdout, &r, "file,channel,start,end,label,score,error");
	if (o.eval_dir) {
		conf = calloc((size_t)r.K * (size_t)r.K, sizeof *conf);
		mis = json_array();
	}
	size_t printed = 0, done = 0, n_failed = 0;
	double audio = 0, t0 = s4k_mono_s(), last = 0;
	struct summary sum = {0};
	if (o.summary && !o.eval_dir) {
		sum.label_n = calloc((size_t)r.K, sizeof(long));
		sum.det_n = calloc((size_t)r.K, sizeof(long));
		if (!sum.label_n || !sum.det_n)
			fprintf(stderr, "s4kws classify: --summary: out of memory; no summary\n");
	}
	pthread_mutex_lock(&r.lock);
	while (printed < r.n_items) {
		while (!r.res[printed].done) {
			if (show) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_nsec += 250000000;
				if (ts.tv_nsec >= 1000000000) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&r.cond, &r.lock, &ts);
			} else {
				pthread_cond_wait(&r.cond, &r.lock);
			}
			if (show) {
				size_t d2 = 0;
				double a2 = 0;
				for (size_t i = printed; i < r.n_items; i++)
					if (r.res[i].done) {
						d2++;
						a2 += r.res[i].audio_s;
					}
				double t = s4k_mono_s();
				if (t - last > 0.2) {
					progress(&r, done + d2, audio + a2, t0, 0);
					last = t;
				}
			}
		}
		struct result *res = &r.res[printed];
		pthread_mutex_unlock(&r.lock);
		done++;
		audio += res->audio_s;
		if (res->failed)
			n_failed++;
		if (o.eval_dir) {
			const struct item *it = &r.items[printed];
			if (!res->failed && res->predicted >= 0 && conf) {
				conf[it->truth * r.K + res->predicted]++;
				if (res->predicted != it->truth)
					json_array_append_new(mis, json_pack("{s:s, s:s, s:s, s:f}", "file",
						it->path, "true", labels[it->truth], "predicted",
						labels[res->predicted], "score", (double)res->score));
			} else {
				size_t i;
				json_t *rec;
				json_array_foreach(res->records, i, rec)
					if (jstr(rec, "error"))
						fprintf(stderr, "s4kws classify: %s: %s\n", jstr(rec, "file"),
							jstr(rec, "error"));
			}
		} else {
			if (show)
				fputs("\r\033[K", stderr);
			size_t i;
			json_t *rec;
			json_array_foreach(res->records, i, rec) {
				print_record(stdout, &r, rec);
				if (sum.label_n && sum.det_n)
					summary_add(&sum, &r, rec);
			}
			fflush(stdout);
		}
		json_decref(res->records);
		res->records = NULL;
		printed++;
		if (show && s4k_mono_s() - last > 0.2) {
			progress(&r, done, audio, t0, 0);
			last = s4k_mono_s();
		}
		pthread_mutex_lock(&r.lock);
	}
	pthread_mutex_unlock(&r.lock);
	if (show)
		progress(&r, done, audio, t0, 1);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < jobs; i++) {
		for (int k = 0; k < ws[i].n_eng; k++)
			engine_fini(&ws[i].eng[k]);
		free(ws[i].samples);
		free(ws[i].logits);
		free(ws[i].pbuf);
		free(ws[i].qpath);
	}
	free(ws);
	free(th);

	status = n_failed ? 1 : 0;
	if (r.post) {
		int e = fclose(r.post) != 0 ? (errno ? errno : EIO) : 0;
		if (r.post_errno || e) {
			fprintf(stderr, "s4kws classify: --posteriors: writing '%s' failed: %s\n",
				o.post_path, strerror(r.post_errno ? r.post_errno : e));
			status = 1;
		}
		r.post = NULL;
	}
	if (sum.label_n && sum.det_n)
		summary_print(stderr, &sum, &r);
	free(sum.label_n);
	free(sum.det_n);
	if (o.eval_dir && conf) {
		print_eval(&r, conf, mis, n_failed, stdout);
		if (o.plot) {
			long n = 0, correct = 0;
			for (int k = 0; k < r.K * r.K; k++)
				n += conf[k];
			for (int k = 0; k < r.K; k++)
				correct += conf[k * r.K + k];
			char title[512];
			snprintf(title, sizeof title, "%s: accuracy %.2f %% of %ld clips (%s mode%s)",
				 o.eval_dir, n ? 100.0 * correct / n : 0.0, n,
				 o.mode == SCAN_STREAM ? "stream" : "conv", o.native ? ", native rate" : "");
			if (plot_confusion_png(o.plot, title, r.K, labels, conf, err, sizeof err) < 0) {
				fprintf(stderr, "s4kws classify: %s\n", err);
				status = 2;
			}
		}
	}
out:
	if (r.post)
		fclose(r.post);
	json_decref(mis);
	free(conf);
	free(r.items);
	free(r.res);
	walk_fini(&wl);
	for (int i = 0; i < r.n_models; i++) {
		if (r.models[i].m)
			s4m_free(r.models[i].m);
		free(r.models[i].ctx_audio);
		free(r.models[i].error);
	}
	free(labels);
	pthread_mutex_destroy(&r.lock);
	pthread_mutex_destroy(&r.post_lock);
	pthread_cond_destroy(&r.cond);
	return status;
}
