/* classify_work.c - the worker threads of `s4kws classify` (see classify_work.h).
 *
 * DESIGN: N workers take input items by an atomic counter. Each owns its engine workspaces (a
 * conv workspace for clips, a scanner for long files, a stream for --mode stream) per model,
 * over models shared read-only by all threads; with --native-rate a model whose step sizes are
 * scaled for an input rate is loaded once, under the run's lock, by the first worker that needs
 * it. A file is decoded by audio/audiofile in bounded blocks, mixed to mono (or one pass per
 * channel with --channels each) and resampled to the model's rate (or left at its own). The
 * first CLIP_MAX_S (3 s) of samples decide the kind: a clip (that long or shorter) is classified
 * once (daemon/clip: its loudest window, padded to the window, preroll zeros in front); anything
 * longer is scanned by spot/scan (by default with the steppers, as live mode runs, so that
 * classify and listen agree), whose per-hop posteriors go through spot/spot, the same
 * detection rules as live mode. An item's records (or one error
 * record: a bad file never stops the run) go into its result slot, which is then marked done
 * under the run's lock for the printer.
 */
#define _GNU_SOURCE
#include "classify_work.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio/audiofile.h"
#include "classify_report.h"
#include "spot/clip.h"
#include "cmd.h"

#define READ_BLOCK 8192           /* samples per af_read_mono() while scanning */
#define POST_BUF 65536            /* bytes of --posteriors lines a worker collects per write */

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

/* ---- models ---- */

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
		s->m = cmd_load_model(r->o->model_path, (double)r->model_rate / in_rate, e, sizeof e);
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
int cwork_pp_setup(const struct run *r, const struct s4m_model *m, struct pp_config *pc,
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
	int rc = cwork_pp_setup(w->r, e->m, &pc, kw, err, errlen);
	if (rc == 0) {
		for (int k = 0; k < K; k++)
			labels[k] = s4m_label(e->m, k);
		pc.labels = labels;
		struct scan_sink sink = {.detection = on_detection, .user = w};
		if (w->r->post)
			sink.posterior = on_posterior;
		e->scan = scan_new(e->m, w->r->o->scan_mode, &pc, w->r->o->chunk,
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
			w->qpath = crep_csv_quoted(it->path, &w->qlen);
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

struct cwork_pool {
	struct worker *ws;            /* (jobs) */
	pthread_t *th;                /* (started) */
	int jobs, started;
};

static void pool_free(struct cwork_pool *p)
{
	for (int i = 0; i < p->jobs; i++) {
		for (int k = 0; k < p->ws[i].n_eng; k++)
			engine_fini(&p->ws[i].eng[k]);
		free(p->ws[i].samples);
		free(p->ws[i].logits);
		free(p->ws[i].pbuf);
		free(p->ws[i].qpath);
	}
	free(p->ws);
	free(p->th);
	free(p);
}

struct cwork_pool *cwork_start(struct run *r, int jobs, char *err, size_t errlen)
{
	if (jobs <= 0) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		jobs = nc > 0 ? (int)nc : 1;
	}
	if ((size_t)jobs > r->n_items)
		jobs = r->n_items ? (int)r->n_items : 1;
	struct cwork_pool *p = calloc(1, sizeof *p);
	if (p) {
		p->jobs = jobs;
		p->ws = calloc((size_t)jobs, sizeof *p->ws);
		p->th = calloc((size_t)jobs, sizeof *p->th);
	}
	if (!p || !p->ws || !p->th) {
		s4k_seterr(err, errlen, "out of memory");
		if (p)
			pool_free(p);
		return NULL;
	}
	for (int i = 0; i < jobs; i++) {
		struct worker *w = &p->ws[i];
		w->r = r;
		w->logits = malloc((size_t)r->K * sizeof *w->logits);
		if (!w->logits || (r->post && !(w->pbuf = malloc(POST_BUF))))
			break;
		if (pthread_create(&p->th[i], NULL, worker_main, w) != 0)
			break;
		p->started++;
	}
	if (p->started == 0) {
		s4k_seterr(err, errlen, "cannot start a worker thread");
		pool_free(p);
		return NULL;
	}
	return p;
}

void cwork_join(struct cwork_pool *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->started; i++)
		pthread_join(p->th[i], NULL);
	pool_free(p);
}
