/* detector.c - inference thread: frames from the ring, S4 steppers, posteriors, detections.
 *
 * DESIGN. The thread sleeps on the wake semaphore (at most 50 ms, so it also notices control
 * flags), then drains the ring in blocks of BLOCK frames. If the input rate differs from the
 * model's, the interleaved block goes through one libsamplerate converter for all channels.
 * Model-rate frames collect in `pend`; every time a whole hop is there, each channel's samples
 * are de-interleaved into x, pushed through that channel's s4m_relay (all channels share the
 * one immutable model), its softmax read and fed to that channel's post-processing, and the
 * detections go to the events store with sample-accurate offsets. The time one hop takes for
 * all channels goes into a histogram; the totals give the real-time factor.
 *
 * With several channels the steppers of one hop can run on several threads (det_config.threads):
 * worker w steps the channels c with c % T == w into its own scratch and the channel's detection
 * slots, all of them together (s4m_relay_batch_push: every block over all its channels' rows at
 * once, each channel's numbers those of stepping it alone; 6-10 % less CPU per channel at 4 to
 * 64 channels, docs/performance.md); the inference thread is worker 0, and two barriers per hop
 * hand the hop out and collect it. The barriers are the only waits in the step path, and only between the stepping threads;
 * detections are emitted by the inference thread after the second barrier, in channel order,
 * so ids are in the same order whatever the thread count.
 *
 * With a saver (--save-dir), every channel's model-rate samples also go into a history ring
 * long enough for save_pre + save_post samples; a detection waits in a small pending list until
 * save_post samples after its decision point have arrived (or the input ends or changes), then
 * its clip is copied out of the ring and handed to the saver's writer thread (a copy, no wait).
 *
 * Microphone arrays hear one word on every channel: with det_config.dedup, a keyword decided on
 * one channel is not published for another channel within dedup samples (the first channel in
 * time wins; within one hop, the lowest channel). Counted in det_stats.deduplicated.
 *
 * Decisions are spot/spot.h's: each channel's posteriors go to spot_hop() on whichever thread
 * stepped it, and spot_decide() runs after the hop's barrier on the inference thread.
 * Second opinion (--verify, spot/verify.h): the verifier (~50 MB for the default model, most
 * of it the conv workspace) exists only if verify was on at start; SIGHUP may change its
 * settings or turn it off and on again, not create it. Every hop's frames go into its history;
 * with verify > 0 a channel's postproc detections are candidates that wait in it until the
 * keyword's window has arrived and are emitted only if it agrees (the rejected are counted).
 * Its one conv workspace belongs to the inference thread, which judges the candidates of every
 * channel after the hop's barrier, in the order they were decided. Pending candidates are
 * judged with what there is when the input ends or changes.
 *
 * Mute (POST /v1/mute) is one atomic deadline (CLOCK_MONOTONIC ns) that emit() compares with the
 * clock, only when a detection happens: a muted detection is counted, nothing else.
 *
 * Control (input rate change, input done, new post-processing settings, stop) arrives through
 * a mutex-protected `ctl` block and an atomic "something changed" flag checked between blocks
 * and hops, so the compute path itself takes no lock. Statistics are published the other way:
 * the thread copies its counters into `pub` under the mutex after each block. The only
 * allocations after detector_new() are a new resampler when the input rate changes.
 */
#include "detector.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/err.h"
#include "log.h"

#define BLOCK 4096 /* input frames read from the ring at once */
#define MAX_PENDING 64 /* detections waiting for their post-roll; more are dropped (counted) */

struct pending {
	struct ev_detection e;    /* as published (id, time) */
	uint64_t at;              /* decision point, frames since the detector started */
};

struct worker {
	struct detector *d;
	int w;                    /* steps the channels c with c % T == w */
	int S;                    /* how many: c = w + i T, i < S */
	pthread_t th;
	float *x;                 /* (S, hop) its channels' samples */
	const float **xp;         /* (S) rows of x */
	struct s4m_relay **rl;    /* (S) their steppers, set once in detector_new */
	struct s4m_batch *batch;  /* steps them together (model/s4m.h) */
	float *probs;             /* (K) */
};

const double det_hist_bounds[DET_HIST_BUCKETS] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
						  0.005,   0.01,   0.025,   0.05,   0.1};

struct ctl {
	int rate;                 /* requested input rate (0: unchanged) */
	enum rs_quality q;
	int input_done;
	int stop;
	int have_pc;              /* kw holds new post-processing settings */
	struct pp_config pc;
	struct pp_kw *kw;         /* (K) */
};

struct detector {
	const struct s4m_model *m;
	_Atomic int64_t mute_until; /* CLOCK_MONOTONIC ns; 0: not muted (detector_mute) */
	_Atomic uint64_t beats;     /* turns of the inference loop (detector_beats: the watchdog) */
	char *names;              /* (C, EV_NAME_LEN) channel names, or NULL */
	int C, K;
	size_t hop;
	int rate;                 /* model rate, Hz */
	struct ring *ring;
	sem_t *wake;
	struct events *ev;
	pthread_t th;
	int started;

	pthread_mutex_t mu;       /* guards ctl, pub, pub_scores and pub_hops */
	struct ctl ctl;
	struct det_stats pub;
	float *pub_scores;        /* (C, K) smoothed posteriors as of the last publish() */
	uint64_t pub_hops;
	_Atomic int changed;

	/* inference thread only */
	struct s4m_relay **st;    /* (C) */
	struct spot *spot;        /* decisions of every channel (spot/spot.h) */
	int can_verify;           /* verify was on at start: it can be changed live */
	int T;                    /* stepping threads, the inference thread included */
	struct worker *wk;        /* (T); wk[0] is the inference thread's */
	pthread_barrier_t go, done;
	sem_t ready;              /* posted once per helper when all of them exist */
	int n_workers_started;    /* helper threads running (T - 1 once started) */
	int quit;                 /* helpers exit at the next `go` (written before it) */
	const float *frame;       /* (hop, C) the hop being stepped (written before `go`) */
	struct rs rs;
	int rs_on;
	int in_rate;
	float *in;                /* (BLOCK, C) */
	float *rsout;             /* (rs_cap, C) */
	size_t rs_cap;
	float *pend;              /* (pend_cap, C) model-rate frames not yet hopped */
	size_t pend_len, pend_cap;
	uint64_t base;            /* frames processed before the last reset */
	/* clips (saver != NULL) */
	struct saver *saver;
	size_t save_pre, save_post;
	float *hist;              /* (C, hist_len) ring of model-rate samples; frame f at f % hist_len */
	size_t hist_len;
	uint64_t hist_from;       /* first frame of the current stream (no clip reaches before it) */
	float *clip;              /* (save_pre + save_post) scratch */
	struct pending pend_clips[MAX_PENDING];
	int n_pending;
	/* cross-channel de-duplication (dedup > 0) */
	size_t dedup;
	uint64_t *last_at;        /* (K) decision frame of the keyword's last published detection + 1
	                             (0: none yet) */
	int *last_ch;             /* (K) its channel */
	int eof, input_done;
	struct det_stats s;
};

static void emit(void *user, int ch, const struct pp_detection *pd);
static void rejected(void *user, int ch, const struct pp_detection *pd, float score);

struct detector *detector_new(const struct det_config *c, char *err, size_t errlen)
{
	if (!s4m_streamable(c->m)) {
		s4k_seterr(err, errlen, "this model is bidirectional and cannot run live (file mode only)");
		return NULL;
	}
	if (c->channels < 1 || c->hop < s4m_hop(c->m) || c->hop % s4m_hop(c->m)) {
		s4k_seterr(err, errlen, "bad detector settings: %d channels, hop %zu samples (model hop %zu)",
			   c->channels, c->hop, s4m_hop(c->m));
		return NULL;
	}
	if (pp_validate(c->pc, err, errlen) < 0)
		return NULL;
	struct detector *d = calloc(1, sizeof *d);
	if (!d) {
		s4k_seterr(err, errlen, "out of memory for the detector");
		return NULL;
	}
	d->m = c->m;
	d->C = c->channels;
	d->K = s4m_n_labels(c->m);
	d->hop = c->hop;
	d->rate = c->pc->rate;
	d->ring = c->ring;
	d->wake = c->wake;
	d->ev = c->ev;
	d->in_rate = d->rate;
	pthread_mutex_init(&d->mu, NULL);
	size_t C = (size_t)d->C;
	d->st = calloc(C, sizeof *d->st);
	d->in = malloc((size_t)BLOCK * C * sizeof *d->in);
	d->pend_cap = d->hop;
	d->pend = malloc(d->pend_cap * C * sizeof *d->pend);
	d->T = c->threads > 0 ? c->threads : 1;
	if (d->T > d->C)
		d->T = d->C;
	d->wk = calloc((size_t)d->T, sizeof *d->wk);
	d->ctl.kw = malloc((size_t)d->K * sizeof *d->ctl.kw);
	d->pub_scores = calloc(C * (size_t)d->K, sizeof *d->pub_scores);
	if (c->channel_names) {
		d->names = calloc(C, EV_NAME_LEN);
		for (size_t i = 0; d->names && i < C; i++)
			snprintf(d->names + i * EV_NAME_LEN, EV_NAME_LEN, "%s",
				 c->channel_names[i] ? c->channel_names[i] : "");
	}
	d->dedup = c->dedup;
	if (d->dedup) {
		d->last_at = calloc((size_t)d->K, sizeof *d->last_at);
		d->last_ch = calloc((size_t)d->K, sizeof *d->last_ch);
	}
	if (c->saver) {
		d->saver = c->saver;
		d->save_pre = c->save_pre;
		d->save_post = c->save_post;
		d->hist_len = c->save_pre + c->save_post + d->hop;
		d->hist = calloc(C * d->hist_len, sizeof *d->hist);
		d->clip = malloc((c->save_pre + c->save_post + 1) * sizeof *d->clip);
	}
	if (!d->st || !d->in || !d->pend || !d->wk || !d->ctl.kw ||
	    !d->pub_scores || (c->channel_names && !d->names) || (d->saver && (!d->hist || !d->clip)) ||
	    (d->dedup && (!d->last_at || !d->last_ch))) {
		s4k_seterr(err, errlen, "out of memory for the detector");
		detector_free(d);
		return NULL;
	}
	for (int w = 0; w < d->T; w++) {
		struct worker *wk = &d->wk[w];
		wk->d = d;
		wk->w = w;
		wk->S = (d->C - w + d->T - 1) / d->T;
		wk->x = malloc((size_t)wk->S * d->hop * sizeof *wk->x);
		wk->xp = calloc((size_t)wk->S, sizeof *wk->xp);
		wk->rl = calloc((size_t)wk->S, sizeof *wk->rl);
		wk->probs = malloc((size_t)d->K * sizeof *wk->probs);
		if (!wk->x || !wk->xp || !wk->rl || !wk->probs) {
			s4k_seterr(err, errlen, "out of memory for the detector");
			detector_free(d);
			return NULL;
		}
		for (int i = 0; i < wk->S; i++)
			wk->xp[i] = wk->x + (size_t)i * d->hop;
		if (wk->S && !(wk->batch = s4m_batch_new(c->m, wk->S, err, errlen))) {
			detector_free(d);
			return NULL;
		}
	}
	/* with verify, candidates wait for hop-sized pieces; 2 s covers an end estimated long
	 * before the decision */
	struct spot_sink sink = {.user = d, .detection = emit, .rejected = rejected};
	d->spot = spot_new(c->m, d->C, c->pc, 2 * (size_t)d->rate + d->hop, &sink, err, errlen);
	if (!d->spot) {
		detector_free(d);
		return NULL;
	}
	d->can_verify = spot_verifying(d->spot);
	for (size_t i = 0; i < C; i++)
		if (!(d->st[i] = s4m_relay_new(c->m, c->period, err, errlen))) {
			detector_free(d);
			return NULL;
		}
	for (int w = 0; w < d->T; w++) /* each worker's relays, in its channel order */
		for (int j = 0; j < d->wk[w].S; j++)
			d->wk[w].rl[j] = d->st[w + j * d->T];
	d->s.in_rate = d->rate;
	d->pub = d->s;
	return d;
}

/* (Re)build the resampler for in_rate -> model rate; 0 or -errno. Inference thread. */
static int set_rate(struct detector *d, int in_rate, enum rs_quality q)
{
	char err[S4K_ERR_LEN];
	if (d->rs_on) {
		rs_fini(&d->rs);
		d->rs_on = 0;
	}
	free(d->rsout);
	d->rsout = NULL;
	d->in_rate = in_rate;
	d->s.in_rate = in_rate;
	size_t need = d->hop;
	if (in_rate != d->rate) {
		if (rs_init(&d->rs, in_rate, d->rate, d->C, q, err, sizeof err) < 0) {
			log_msg(LOGL_ERROR, "cannot resample %d Hz to %d Hz: %s", in_rate, d->rate, err);
			return -EINVAL;
		}
		d->rs_on = 1;
		d->rs_cap = rs_max_out(&d->rs, BLOCK);
		d->rsout = malloc(d->rs_cap * (size_t)d->C * sizeof *d->rsout);
		if (!d->rsout)
			return -ENOMEM;
		need += d->rs_cap;
	} else {
		need += BLOCK;
	}
	if (need > d->pend_cap) {
		float *p = realloc(d->pend, need * (size_t)d->C * sizeof *p);
		if (!p)
			return -ENOMEM;
		d->pend = p;
		d->pend_cap = need;
	}
	return 0;
}

/* New stream: zero states, warm-up again; offsets keep counting. */
static void flush_clips(struct detector *d, int all);

static void reset_streams(struct detector *d)
{
	spot_finish(d->spot); /* with what the old stream gave */
	flush_clips(d, 1);
	spot_reset(d->spot);
	d->hist_from = d->s.frames;
	for (int c = 0; c < d->C; c++)
		s4m_relay_reset(d->st[c]);
	d->base = d->s.frames;
	d->pend_len = 0;
	d->s.resets++;
}

void detector_mute(struct detector *d, int64_t until)
{
	atomic_store(&d->mute_until, until);
}

int64_t detector_muted_until(struct detector *d)
{
	int64_t u = atomic_load(&d->mute_until);
	return u && s4k_mono_ns() < u ? u : 0;
}

static void emit(void *user, int ch, const struct pp_detection *pd)
{
	struct detector *d = user;
	/* muted (POST /v1/mute): counted, not published; the clock is read only on a detection */
	int64_t mu = atomic_load_explicit(&d->mute_until, memory_order_relaxed);
	if (mu && s4k_mono_ns() < mu) {
		d->s.muted++;
		return;
	}
	if (d->dedup) {
		uint64_t at = d->base + pd->sample, *last = &d->last_at[pd->label];
		if (*last && d->last_ch[pd->label] != ch && at + 1 - *last <= d->dedup) {
			d->s.deduplicated++;
			return;
		}
		*last = at + 1;
		d->last_ch[pd->label] = ch;
	}
	struct ev_detection e;
	memset(&e, 0, sizeof e);
	snprintf(e.keyword, sizeof e.keyword, "%s", s4m_label(d->m, pd->label));
	e.channel = ch;
	if (d->names)
		memcpy(e.channel_name, d->names + (size_t)ch * EV_NAME_LEN, EV_NAME_LEN);
	e.score = pd->score;
	e.verify = pd->verify;
	double r = (double)d->rate;
	e.offset = (double)(d->base + pd->sample) / r;
	e.start = (double)(d->base + pd->start) / r;
	e.end = (double)(d->base + pd->end) / r;
	int rc = events_add(d->ev, &e);
	d->s.detections++;
	if (d->saver) {
		if (d->n_pending < MAX_PENDING)
			d->pend_clips[d->n_pending++] = (struct pending){e, d->base + pd->sample};
		else
			saver_drop(d->saver);
	}
	if (rc < 0)
		log_msg(LOGL_WARN, "detection %llu could not be written to the log: %s",
			(unsigned long long)e.id, strerror(-rc));
	/* info level: a user running `listen --input FILE` sees each detection on the terminal */
	log_msg(LOGL_INFO, "detection %llu: %s on channel %d%s%s%s, score %.3f, at %.3f s",
		(unsigned long long)e.id, e.keyword, ch, e.channel_name[0] ? " (" : "", e.channel_name,
		e.channel_name[0] ? ")" : "", (double)e.score, e.offset);
}

/* Copy one hop of frames (hop, C) into the history ring; frame index = d->s.frames onwards. */
static void keep_history(struct detector *d, const float *f)
{
	const size_t C = (size_t)d->C, L = d->hist_len;
	for (size_t i = 0; i < d->hop; i++) {
		size_t at = (size_t)((d->s.frames + i) % L);
		for (size_t c = 0; c < C; c++)
			d->hist[c * L + at] = f[i * C + c];
	}
}

/* Hand the pending clips whose post-roll has arrived (all: every one, with what there is) to
 * the saver. A clip is [at - save_pre, at + save_post), cut to the current stream and to what
 * the ring still holds. */
static void flush_clips(struct detector *d, int all)
{
	if (!d->saver)
		return;
	const uint64_t now = d->s.frames, L = d->hist_len;
	int kept = 0;
	for (int i = 0; i < d->n_pending; i++) {
		struct pending *p = &d->pend_clips[i];
		if (!all && now < p->at + d->save_post) {
			d->pend_clips[kept++] = *p;
			continue;
		}
		uint64_t a = p->at > d->save_pre ? p->at - d->save_pre : 0;
		uint64_t b = p->at + d->save_post < now ? p->at + d->save_post : now;
		if (a < d->hist_from)
			a = d->hist_from;
		if (now > L && a < now - L)
			a = now - L;
		const float *h = d->hist + (size_t)p->e.channel * L;
		size_t n = 0;
		for (uint64_t f = a; f < b; f++)
			d->clip[n++] = h[f % L];
		if (n)
			saver_submit(d->saver, &p->e, d->clip, n);
	}
	d->n_pending = kept;
}

/* A candidate the second opinion turned down: counted, and said at debug level. */
static void rejected(void *user, int ch, const struct pp_detection *pd, float score)
{
	struct detector *d = user;
	d->s.rejected++;
	log_msg(LOGL_DEBUG, "candidate %s on channel %d (score %.3f) rejected by the second opinion (%.3f)",
		s4m_label(d->m, pd->label), ch, (double)pd->score, (double)score);
}

/* Worker w's share of one hop: its channels through their steppers, stepped together (their
 * weights read once for all of them), then each through the post-processing. */
static void step_channels(struct detector *d, struct worker *wk)
{
	const size_t C = (size_t)d->C, hop = d->hop;
	const float *f = d->frame;
	for (int j = 0; j < wk->S; j++) {
		size_t c = (size_t)wk->w + (size_t)j * (size_t)d->T;
		float *x = wk->x + (size_t)j * hop; // (hop) channel c
		for (size_t i = 0; i < hop; i++)
			x[i] = f[i * C + c];
	}
	if (wk->S)
		s4m_relay_batch_push(wk->batch, wk->rl, wk->S, wk->xp, hop);
	for (int j = 0; j < wk->S; j++) {
		s4m_relay_scores(wk->rl[j], wk->probs);
		spot_hop(d->spot, wk->w + j * d->T, wk->probs);
	}
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct detector *d = wk->d;
	while (sem_wait(&d->ready) < 0 && errno == EINTR)
		;
	if (d->quit)
		return NULL;
	for (;;) {
		pthread_barrier_wait(&d->go);
		if (d->quit)
			break;
		step_channels(d, wk);
		pthread_barrier_wait(&d->done);
	}
	return NULL;
}

/* Step every channel over the whole hops in pend. */
static void run_hops(struct detector *d)
{
	const size_t C = (size_t)d->C, hop = d->hop;
	size_t off = 0;
	while (d->pend_len - off >= hop) {
		double t0 = s4k_mono_s();
		d->frame = d->pend + off * C;
		if (d->saver)
			keep_history(d, d->frame);
		spot_audio(d->spot, d->frame, hop);
		if (d->T > 1)
			pthread_barrier_wait(&d->go);
		step_channels(d, &d->wk[0]);
		if (d->T > 1)
			pthread_barrier_wait(&d->done);
		spot_decide(d->spot); /* channel by channel: the sink sees one order whatever -j */
		double dt = s4k_mono_s() - t0;
		size_t b = 0;
		while (b < DET_HIST_BUCKETS && dt > det_hist_bounds[b])
			b++;
		d->s.hist[b]++;
		d->s.hist_sum += dt;
		d->s.busy_s += dt;
		d->s.hops++;
		d->s.frames += hop;
		off += hop;
		if (d->n_pending)
			flush_clips(d, 0);
	}
	memmove(d->pend, d->pend + off * C, (d->pend_len - off) * C * sizeof *d->pend);
	d->pend_len -= off;
}

/* Append n input frames (at in_rate) to pend, through the resampler if needed, then hop. */
static void feed(struct detector *d, const float *in, size_t n, int last)
{
	const size_t C = (size_t)d->C;
	if (!d->rs_on) {
		memcpy(d->pend + d->pend_len * C, in, n * C * sizeof *in);
		d->pend_len += n;
		run_hops(d);
		return;
	}
	for (;;) {
		size_t used = 0;
		long got = rs_process(&d->rs, in, n, &used, d->rsout, d->rs_cap, last);
		if (got < 0) {
			log_msg(LOGL_ERROR, "resampler failed (%ld); resetting it", got);
			rs_reset(&d->rs);
			return;
		}
		memcpy(d->pend + d->pend_len * C, d->rsout, (size_t)got * C * sizeof *d->rsout);
		d->pend_len += (size_t)got;
		run_hops(d);
		in += used * C;
		n -= used;
		if (n == 0 && (!last || got == 0))
			break;
		if (n && !used && !got)
			break; /* cannot make progress: leave the rest (should not happen) */
	}
}

/* Take control requests (lock held briefly). */
static void take_control(struct detector *d, int *stop)
{
	pthread_mutex_lock(&d->mu);
	struct ctl c = d->ctl;
	d->ctl.rate = 0;
	d->ctl.have_pc = 0;
	if (c.have_pc) {
		/* copy the settings out while holding the lock: kw is overwritten by the next call */
		struct pp_config pc = c.pc;
		pc.kw = c.kw;
		char err[S4K_ERR_LEN];
		if (spot_reconfigure(d->spot, &pc, err, sizeof err) < 0)
			log_msg(LOGL_ERROR, "new detection settings refused: %s", err);
	}
	pthread_mutex_unlock(&d->mu);
	*stop = c.stop;
	if (c.rate) {
		if (set_rate(d, c.rate, c.q) < 0)
			log_msg(LOGL_ERROR, "input at %d Hz cannot be processed", c.rate);
		reset_streams(d);
		d->eof = 0;
		d->input_done = 0;
	}
	if (c.input_done)
		d->input_done = 1;
}

static void publish(struct detector *d)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	d->s.cpu_s = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
	for (int w = 1; w <= d->n_workers_started; w++) {
		clockid_t cid;
		if (pthread_getcpuclockid(d->wk[w].th, &cid) == 0 && clock_gettime(cid, &ts) == 0)
			d->s.cpu_s += (double)ts.tv_sec + ts.tv_nsec * 1e-9;
	}
	d->s.audio_s = (double)d->s.frames / d->rate;
	d->s.rtf = d->s.audio_s > 0 ? d->s.busy_s / d->s.audio_s : 0;
	d->s.eof = d->eof;
	pthread_mutex_lock(&d->mu);
	d->pub = d->s;
	for (int c = 0; c < d->C; c++) {
		const float *sm = spot_smoothed(d->spot, c);
		if (sm)
			memcpy(d->pub_scores + (size_t)c * (size_t)d->K, sm, (size_t)d->K * sizeof *sm);
		else
			memset(d->pub_scores + (size_t)c * (size_t)d->K, 0, (size_t)d->K * sizeof *sm);
	}
	d->pub_hops = spot_hops(d->spot);
	pthread_mutex_unlock(&d->mu);
}

/* Read and process what is in the ring, at most max_blocks blocks (0: all); returns frames
 * read. The budget keeps statistics and control flowing while a fast producer keeps the ring
 * full. */
static size_t drain(struct detector *d, int max_blocks)
{
	const size_t C = (size_t)d->C;
	size_t total = 0;
	for (int b = 0; !max_blocks || b < max_blocks; b++) {
		size_t avail = ring_readable(d->ring) / C;
		if (avail == 0)
			break;
		size_t n = avail < BLOCK ? avail : BLOCK;
		ring_read(d->ring, d->in, n * C);
		feed(d, d->in, n, 0);
		total += n;
	}
	return total;
}

static void *thread_main(void *arg)
{
	struct detector *d = arg;
	int stop = 0;
	for (;;) {
		atomic_fetch_add_explicit(&d->beats, 1, memory_order_relaxed);
		if (atomic_exchange(&d->changed, 0))
			take_control(d, &stop);
		size_t got = drain(d, 16);
		int more = got >= 16 * (size_t)BLOCK;
		if (d->input_done && !d->eof && ring_readable(d->ring) < (size_t)d->C) {
			/* the end of the input: flush the resampler; the partial last hop is dropped */
			if (d->rs_on)
				feed(d, NULL, 0, 1);
			spot_finish(d->spot); /* no more audio is coming */
			flush_clips(d, 1); /* nor post-roll */
			d->eof = 1;
			got = 1;
		}
		if (got)
			publish(d);
		if (stop)
			break;
		if (more)
			continue;
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += 50 * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		while (sem_timedwait(d->wake, &dl) < 0 && errno == EINTR)
			;
	}
	drain(d, 0);
	spot_finish(d->spot);
	flush_clips(d, 1);
	publish(d);
	return NULL;
}

/* Stop and join the helper threads (they wait at `go`). */
static void stop_workers(struct detector *d)
{
	if (!d->n_workers_started)
		return;
	d->quit = 1;
	pthread_barrier_wait(&d->go);
	for (int w = 1; w <= d->n_workers_started; w++)
		pthread_join(d->wk[w].th, NULL);
	d->n_workers_started = 0;
	pthread_barrier_destroy(&d->go);
	pthread_barrier_destroy(&d->done);
	sem_destroy(&d->ready);
}

int detector_start(struct detector *d, char *err, size_t errlen)
{
	int rc = 0;
	if (d->T > 1) {
		/* helpers first (the inference thread's first hop needs them); they wait on `ready`
		 * so that a failed start can still send the ones already running home */
		if (sem_init(&d->ready, 0, 0) < 0) {
			int e = errno;
			s4k_seterr(err, errlen, "cannot set up the stepping threads: %s", strerror(e));
			return -e;
		}
		if ((rc = pthread_barrier_init(&d->go, NULL, (unsigned)d->T)) == 0 &&
		    (rc = pthread_barrier_init(&d->done, NULL, (unsigned)d->T)) != 0)
			pthread_barrier_destroy(&d->go);
		if (rc) {
			sem_destroy(&d->ready);
			s4k_seterr(err, errlen, "cannot set up the stepping threads: %s", strerror(rc));
			return -rc;
		}
		d->quit = 0;
		int w = 1;
		for (; w < d->T; w++)
			if ((rc = pthread_create(&d->wk[w].th, NULL, worker_main, &d->wk[w])) != 0)
				break;
		if (rc) {
			d->quit = 1;
			for (int k = 1; k < w; k++)
				sem_post(&d->ready);
			for (int k = 1; k < w; k++)
				pthread_join(d->wk[k].th, NULL);
			pthread_barrier_destroy(&d->go);
			pthread_barrier_destroy(&d->done);
			sem_destroy(&d->ready);
			s4k_seterr(err, errlen, "cannot start a stepping thread: %s", strerror(rc));
			return -rc;
		}
		for (int k = 1; k < d->T; k++)
			sem_post(&d->ready);
		d->n_workers_started = d->T - 1;
	}
	rc = pthread_create(&d->th, NULL, thread_main, d);
	if (rc) {
		stop_workers(d);
		s4k_seterr(err, errlen, "cannot start the inference thread: %s", strerror(rc));
		return -rc;
	}
	d->started = 1;
	return 0;
}

static void poke(struct detector *d)
{
	atomic_store(&d->changed, 1);
	sem_post(d->wake);
}

void detector_set_input(struct detector *d, int rate, enum rs_quality q)
{
	pthread_mutex_lock(&d->mu);
	d->ctl.rate = rate;
	d->ctl.q = q;
	d->ctl.input_done = 0;
	pthread_mutex_unlock(&d->mu);
	if (!d->started) {
		/* before the thread runs, apply it here (no race: nobody else touches the state) */
		int stop;
		atomic_store(&d->changed, 0);
		take_control(d, &stop);
		d->s.resets = 0;
		d->pub = d->s;
		return;
	}
	poke(d);
}

void detector_input_done(struct detector *d)
{
	pthread_mutex_lock(&d->mu);
	d->ctl.input_done = 1;
	pthread_mutex_unlock(&d->mu);
	poke(d);
}

int detector_reconfigure(struct detector *d, const struct pp_config *pc, char *err, size_t errlen)
{
	if (pp_validate(pc, err, errlen) < 0)
		return -EINVAL;
	if (pc->rate != d->rate || pc->hop != d->hop || pc->n_labels != d->K) {
		s4k_seterr(err, errlen, "new detection settings change the rate, hop or labels; restart instead");
		return -EINVAL;
	}
	if (pc->verify > 0 && !d->can_verify) { /* fixed at detector_new: safe to read here */
		s4k_seterr(err, errlen, "verify was off at start; restart the daemon to turn it on");
		return -EINVAL;
	}
	pthread_mutex_lock(&d->mu);
	d->ctl.pc = *pc;
	memcpy(d->ctl.kw, pc->kw, (size_t)d->K * sizeof *d->ctl.kw);
	d->ctl.pc.kw = d->ctl.kw;
	d->ctl.have_pc = 1;
	pthread_mutex_unlock(&d->mu);
	poke(d);
	return 0;
}

uint64_t detector_beats(struct detector *d)
{
	return atomic_load_explicit(&d->beats, memory_order_relaxed);
}

void detector_stats(struct detector *d, struct det_stats *out)
{
	pthread_mutex_lock(&d->mu);
	*out = d->pub;
	pthread_mutex_unlock(&d->mu);
}

int detector_scores(struct detector *d, float *out, size_t n, uint64_t *hops)
{
	size_t need = (size_t)d->C * (size_t)d->K;
	if (n < need)
		return -EINVAL;
	pthread_mutex_lock(&d->mu);
	memcpy(out, d->pub_scores, need * sizeof *out);
	*hops = d->pub_hops;
	pthread_mutex_unlock(&d->mu);
	return 0;
}

int detector_threads(const struct detector *d)
{
	return d->T;
}

void detector_stop(struct detector *d)
{
	if (!d || !d->started)
		return;
	pthread_mutex_lock(&d->mu);
	d->ctl.stop = 1;
	pthread_mutex_unlock(&d->mu);
	poke(d);
	pthread_join(d->th, NULL);
	d->started = 0;
	stop_workers(d);
}

void detector_free(struct detector *d)
{
	if (!d)
		return;
	detector_stop(d);
	for (int i = 0; d->st && i < d->C; i++)
		s4m_relay_free(d->st[i]);
	spot_free(d->spot);
	if (d->rs_on)
		rs_fini(&d->rs);
	free(d->st);
	free(d->in);
	free(d->rsout);
	free(d->pend);
	for (int w = 0; d->wk && w < d->T; w++) {
		free(d->wk[w].x);
		free(d->wk[w].xp);
		free(d->wk[w].rl);
		s4m_batch_free(d->wk[w].batch);
		free(d->wk[w].probs);
	}
	free(d->wk);
	free(d->ctl.kw);
	free(d->hist);
	free(d->clip);
	free(d->pub_scores);
	free(d->names);
	free(d->last_at);
	free(d->last_ch);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
