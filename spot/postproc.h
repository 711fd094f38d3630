/* postproc.h - posterior vectors in, keyword detections out (shared by live and file mode).
 *
 * Usage:
 *   struct pp_kw kw[K];                                  // one entry per model label
 *   for (int k = 0; k < K; k++) pp_kw_default(&kw[k]);
 *   kw[yes].threshold = 0.8f;
 *   struct pp_config c;
 *   pp_config_default(&c, 16000, 160, K, labels, kw);    // rate Hz, hop samples, labels, kw
 *   struct pp *pp = pp_new(&c, err, sizeof err);         // one per channel; NULL + err on bad config
 *   struct pp_detection d[PP_MAX_OUT];
 *   while (s4m_stream_push(st, x, 160)) {                // one posterior vector per hop
 *           s4m_stream_scores(st, probs);
 *           int n = pp_push(pp, probs, d, PP_MAX_OUT);   // 0..n detections decided at this hop
 *   }
 *   pp_free(pp);
 *
 * Rules, per keyword k and per instance (= per channel):
 *   smoothed[k]  = mean of probs[k] over the last smooth_ms (M hops, fewer just after a reset);
 *   a hop is "above" when smoothed[k] >= threshold and, if require_top, k has the highest smoothed
 *   score of all labels (non-keyword labels included);
 *   a detection fires on the hop where k has been above for min_ms (N consecutive hops), unless
 *   the instance is still warming up (warmup_ms after pp_new/pp_reset) or k fired less than
 *   refractory_ms ago; after firing, k must drop below (one hop not above) before it can fire again.
 * Labels whose name starts with '_' (_silence_, _unknown_) never fire. Durations in ms are turned
 * into whole hops with rounding, at least one hop for smooth_ms and min_ms.
 *
 * Positions: the i-th pp_push() since pp_new()/pp_reset() (i = 0, 1, ...) is the posterior after
 * (i + 1) * hop samples; every sample position below counts samples since that reset.
 * Threads: a struct pp belongs to one thread at a time; pp_new() allocates once, pp_push(),
 * pp_reset() and pp_reconfigure() never allocate.
 */
#ifndef S4KWS_DAEMON_POSTPROC_H
#define S4KWS_DAEMON_POSTPROC_H

#include <stddef.h>
#include <stdint.h>

#define PP_MAX_SMOOTH 64   /* longest smoothing window, in hops */
#define PP_MAX_OUT 8       /* enough room for one pp_push() in any sane configuration */

/* Documented defaults, tuned on speech_commands/val (see s4kws.conf and weights/MODEL_CARD.md).
 * The one place they are written: daemon/config.c's option table turns them into its default
 * strings with PP_STR(), pp_kw_default() and pp_config_default() use them as numbers: so each
 * must be a plain literal (-50, not (-50)). */
#define PP_DEF_THRESHOLD 0.8
#define PP_DEF_SMOOTH_MS 100
#define PP_DEF_MIN_MS 100
#define PP_DEF_REFRACTORY_MS 1000
#define PP_DEF_WARMUP_MS 500
#define PP_DEF_LATENCY_MS -50
#define PP_DEF_ONSET 0.75
#define PP_DEF_WORD_MS 600
#define PP_DEF_RESTART_MS 0 /* not post-processing, but tuned with it: see daemon/scan.h */
#define PP_DEF_VERIFY 0           /* second opinion (daemon/verify.h): 0 = off */
#define PP_DEF_VERIFY_AFTER_MS 400
#define PP_STR_(x) #x
#define PP_STR(x) PP_STR_(x)

/* Per-label parameters (ignored for labels starting with '_'). */
struct pp_kw {
	float threshold;      /* smoothed posterior needed to count a hop as above, in (0, 1] */
	float smooth_ms;      /* moving-average window of the posterior, ms (>= 0; rounds to >= 1 hop) */
	float min_ms;         /* time above threshold before firing, ms (>= 0; rounds to >= 1 hop) */
	float refractory_ms;  /* no second detection of this keyword on this channel within this, ms */
};

struct pp_config {
	int rate;                   /* Hz of the samples behind the posteriors (model rate) */
	size_t hop;                 /* samples per posterior vector (> 0) */
	int n_labels;               /* K: length of every posterior vector */
	const char *const *labels;  /* (K) label names; read by pp_new() only, not kept */
	const struct pp_kw *kw;     /* (K) per-label parameters; copied, not kept */
	float warmup_ms;            /* no detection before this much audio after a reset, ms */
	float latency_ms;           /* how long after a keyword's true end its score crosses the
	                               threshold (model-specific, tuned on val); moves `end` earlier */
	float word_ms;              /* typical keyword duration: start = end - word_ms */
	float onset;                /* in (0, 1]: the score's rise towards a detection is taken to start
	                               after its last hop below onset x threshold (for `end`) */
	int require_top;            /* 1: a keyword is above only while it is the top label */
	/* Not used by postproc itself: the second opinion (daemon/verify.h) that the scanner and
	 * the live detector put behind it, configured (and reloaded) with it. */
	float verify;               /* 0: off; else the lone-clip probability a candidate needs, (0, 1] */
	float verify_after_ms;      /* the verified window ends this long after the estimated end */
};

/* One detection, decided at hop `hop`. Sample positions count from the last reset. */
struct pp_detection {
	int label;          /* index into the model labels */
	float score;        /* highest smoothed posterior of this keyword during the run, in [0, 1] */
	uint64_t hop;       /* index of the hop at which it fired (0 = first pp_push after reset) */
	uint64_t sample;    /* position of the decision: (hop + 1) * hop_samples */
	uint64_t start;     /* estimated first sample of the keyword */
	uint64_t end;       /* estimated sample just after the keyword */
	float verify;       /* the second opinion's probability of the keyword (daemon/verify.h),
	                       in (0, 1]; 0: not verified */
};

struct pp;

/* Documented defaults for one keyword (tuned on speech_commands/val; see s4kws.conf). */
void pp_kw_default(struct pp_kw *kw);
/* Fill c with defaults for the given rate, hop and labels; c keeps the labels and kw pointers. */
void pp_config_default(struct pp_config *c, int rate, size_t hop, int n_labels,
		       const char *const *labels, const struct pp_kw *kw);

/* Check a configuration without building anything: 0, or -EINVAL with one sentence naming the
 * offending label or field. Any thread. */
int pp_validate(const struct pp_config *c, char *err, size_t errlen);
/* Build an instance (one allocation). NULL with one sentence in err on a bad config or no memory. */
struct pp *pp_new(const struct pp_config *c, char *err, size_t errlen);
void pp_free(struct pp *pp);
/* Forget all history: the next pp_push() is hop 0 again, warm-up starts over. No allocation. */
void pp_reset(struct pp *pp);
/* Take new per-label parameters, warm-up, latency and word length (for SIGHUP); rate, hop and
 * the labels must be unchanged. History is kept, so smoothing continues seamlessly. Returns 0, or
 * -EINVAL with the instance unchanged. No allocation. */
int pp_reconfigure(struct pp *pp, const struct pp_config *c, char *err, size_t errlen);

/* Feed the posterior vector of the next hop: probs (K), each in [0, 1] (NaN counts as 0).
 * Writes up to max_out detections decided at this hop into out (several keywords may fire on
 * the same hop only when require_top is 0) and returns how many. No allocation, no locks. */
int pp_push(struct pp *pp, const float *probs, struct pp_detection *out, int max_out);

/* Smoothed posterior (K) of the last hop; NULL before the first pp_push(). For status/debug. */
const float *pp_smoothed(const struct pp *pp);
/* Hops pushed since the last reset. */
uint64_t pp_hops(const struct pp *pp);
/* Whole hops that a duration in ms rounds to under this instance's rate and hop. */
unsigned pp_ms_to_hops(const struct pp *pp, float ms);

/* Softmax of n logits into probs (for callers that have logits, e.g. s4m_conv_scan output). */
void pp_softmax(const float *logits, int n, float *probs);

#endif
