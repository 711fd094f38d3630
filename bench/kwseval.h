/* kwseval.h - score keyword detections on recordings with known keyword ends (bench tools).
 *
 * Usage:
 *   struct kwe_rec r;
 *   kwe_load(m, "stream.wav", "truth.csv", hop, restart_ms, &r, err, sizeof err);  // streams
 *   kwe_load(m, "speech.wav", NULL, hop, restart_ms, &r, err, sizeof err);         // keyword-free
 *   struct kwe_setting st = {.smooth = 100, .min = 100, .onset = 0.75f};           // + st.thr[k]
 *   struct kwe_tally t;  kwe_tally_init(&t, n_recordings);
 *   kwe_score(&r, 1, &st, m, hop, latency_ms, 0.3, 0, &t);   // recall, false, delays
 *   kwe_rec_free(&r);
 *
 * A recording's posteriors are computed once, as the daemon computes them (one s4m_relay with
 * the given restart period, a posterior vector every `hop` samples); every setting is then a
 * pass of daemon/postproc over them. Matching is e2e_accuracy's: a detection of the same
 * keyword whose reported end lies within +-tolerance of a true end, one to one; every other
 * detection is false. A recording without truth (keyword-free audio) has only false ones.
 * TRUTH.csv is e2e_accuracy's (keyword,start_s,end_s,clip; filler lines have keyword "-").
 * Threads: none shared; the tally's buffers belong to the caller.
 */
#ifndef S4KWS_BENCH_KWSEVAL_H
#define S4KWS_BENCH_KWSEVAL_H

#include <stddef.h>

#include "model/s4m.h"

#define KWE_MAX_LABELS 64
#define KWE_MAX_TRUTH 8192
#define KWE_MAX_DET 65536

struct kwe_truth {
	int label;  /* model label index */
	double end; /* s */
};

struct kwe_rec {
	const char *path;
	float *post;  /* (nh, K) posteriors */
	size_t nh;
	double minutes;
	struct kwe_truth *tr; /* (nt); NULL for keyword-free audio */
	int nt;
};

struct kwe_det {
	int label;
	double end, offset; /* s: estimated keyword end, decision time */
};

/* One post-processing setting. */
struct kwe_setting {
	float thr[KWE_MAX_LABELS]; /* per label */
	float smooth, min, onset;  /* ms, ms, fraction */
};

/* Tallies of one setting over a set of recordings. */
struct kwe_tally {
	int hits[KWE_MAX_LABELS], falses[KWE_MAX_LABELS], truths[KWE_MAX_LABELS];
	int matched, nfalse, nt;
	double minutes;
	double *delays, *errs; /* (KWE_MAX_TRUTH x recordings), s */
};

/* Read wav (any format and rate, mixed to mono at the model rate), compute its posteriors and
 * read its truth (csv; NULL: keyword-free). 0, or -1 with one sentence in err. */
int kwe_load(const struct s4m_model *m, const char *wav, const char *csv, size_t hop, double restart_ms,
	     struct kwe_rec *r, char *err, size_t errlen);
void kwe_rec_free(struct kwe_rec *r);

/* The settings a user gets from this model with no flags: the file's thresholds where it has
 * them, else the default threshold; the default smoothing, minimum duration and onset. */
void kwe_setting_default(const struct s4m_model *m, struct kwe_setting *st);

/* The detections of one recording under one setting into det (<= KWE_MAX_DET); returns how many. */
int kwe_detect(const struct kwe_rec *r, const struct kwe_setting *st, const struct s4m_model *m,
	       size_t hop, double latency_ms, struct kwe_det *det);

/* Buffers for n recordings; 0 or -1 (no memory). kwe_tally_free releases them. */
int kwe_tally_init(struct kwe_tally *t, int n);
void kwe_tally_free(struct kwe_tally *t);

/* Score one setting over recordings rs (n). With show, print every miss and false detection
 * with the nearest keyword or detection. tol in s. */
void kwe_score(const struct kwe_rec *rs, int n, const struct kwe_setting *st, const struct s4m_model *m,
	       size_t hop, double latency_ms, double tol, int show, struct kwe_tally *t);

/* Median of v (n), sorting v; 0 for n = 0. */
double kwe_median(double *v, int n);

#endif
