/* s4m.h - the s4kws network: load a weights file, run it in convolution or step mode.
 *
 * Usage:
 *   char err[S4K_ERR_LEN];
 *   struct s4m_model *m = s4m_load("weights/s4kws-sc12.safetensors", 1.0, err, sizeof err);
 *   if (!m) { fprintf(stderr, "%s\n", err); ... }
 *
 *   // file mode: one workspace per thread, for inputs of up to max_len samples
 *   struct s4m_conv *cv = s4m_conv_new(m, s4m_window(m) + s4m_preroll(m), err, sizeof err);
 *   s4m_conv_logits(cv, x, n, logits);                 // logits: (n_labels)
 *
 *   // live mode: one stream per audio channel
 *   struct s4m_stream *st = s4m_stream_new(m, err, sizeof err);
 *   s4m_stream_push(st, samples, n);                   // any n; no allocation
 *   s4m_stream_scores(st, probs);                      // softmax over the last window
 *
 * The model is immutable after s4m_load() and may be shared by any number of threads. A
 * conv workspace or a stream belongs to one thread at a time. Plans (FFTW) are made under the
 * engine's FFTW planner lock (s4k_fftw_lock) in s4m_load()/s4m_conv_new(), which may be called
 * from any thread; the compute calls never allocate, lock or plan.
 */
#ifndef S4KWS_MODEL_S4M_H
#define S4KWS_MODEL_S4M_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"

struct s4m_model;
struct s4m_conv;
struct s4m_stream;

/* ---- loading ---- */

/* Load and validate a weights file (docs/format.md). rate multiplies every dt: 1.0 for input
 * at the model's sample rate; sample_rate/input_rate for --native-rate. Returns NULL and one
 * sentence in err on any problem (the sentence names the tensor or key). */
struct s4m_model *s4m_load(const char *path, double rate, char *err, size_t errlen);
/* The same from a buffer (embedded model). Nothing of the buffer is kept after the call. */
struct s4m_model *s4m_load_buffer(const void *buf, size_t len, double rate, char *err, size_t errlen);
void s4m_free(struct s4m_model *m);

/* ---- what a model is: labels, sizes, metadata ---- */

int s4m_sample_rate(const struct s4m_model *m);          /* Hz of the input, as trained */
int s4m_n_labels(const struct s4m_model *m);
const char *s4m_label(const struct s4m_model *m, int i);
const char *s4m_meta(const struct s4m_model *m, const char *key); /* raw metadata value or NULL */
/* (n_labels) detection thresholds recommended by the file's optional metadata 'thresholds' (a
 * JSON object {keyword: P}, P in (0, 1], tuned for this model); NaN where it gives none. */
const float *s4m_thresholds(const struct s4m_model *m);
size_t s4m_window(const struct s4m_model *m);            /* decoder window, input samples */
size_t s4m_preroll(const struct s4m_model *m);           /* zeros put before a lone clip */
size_t s4m_hop(const struct s4m_model *m);               /* total pool: samples per decoder step */
int s4m_streamable(const struct s4m_model *m);           /* 0 for bidirectional models */
size_t s4m_n_params(const struct s4m_model *m);
/* Rate: every size here is in input samples at the model's rate divided by `rate`
 * (s4m_load's rate argument): window = round(decoder_window / rate) and preroll likewise,
 * rounded to a multiple of the hop; block i's conv kernel has round(l_max / cumpool(i) / rate)
 * taps. At rate 1.0 these are the metadata values exactly. */
double s4m_rate(const struct s4m_model *m);
/* Metadata keys in file order: key i, or NULL when i >= their number (values: s4m_meta). */
const char *s4m_meta_key(const struct s4m_model *m, size_t i);
int s4m_n_blocks(const struct s4m_model *m);
int s4m_bidirectional(const struct s4m_model *m);        /* 1 for converted bidirectional models */

/* ---- its structure: blocks, kernels, receptive field, cost ---- */

struct s4m_block_info {
	int width;          /* H of the block */
	int out_width;      /* width after the block's widen (= width when there is none) */
	int pool;           /* average-pooling factor after the block (1 = none) */
	size_t cumpool;     /* input samples per step of this block: product of earlier pools */
	size_t kernel_len;  /* conv-mode kernel taps, in this block's steps */
	double min_margin;  /* min over its modes of 1 - |dA| (see s4k_step.min_margin) */
};
/* Fills bi for block i. Returns 0 or -EINVAL (i out of range). */
int s4m_block_info(const struct s4m_model *m, int i, struct s4m_block_info *bi);
/* Block i's SSM kernel in double, (width, kernel_len) row-major, computed once at load.
 * dir 0: the causal kernel; dir 1: the backward kernel of a bidirectional model (NULL if none). */
const double *s4m_block_kernel(const struct s4m_model *m, int i, int dir);

double s4m_min_margin(const struct s4m_model *m);        /* min 1-|dA| over all modes (drift check) */

/* FLOP estimates (multiply-add = 2, exp/erf = 1): per input sample in step mode, and per input
 * sample of one conv-mode call on len samples. */
double s4m_flops_step(const struct s4m_model *m);
double s4m_flops_conv(const struct s4m_model *m, size_t len);
/* Receptive field and chunked scanning. Conv mode forgets lags beyond each block's kernel, so a decoder step's
 * features depend only on a bounded stretch of input: its own hop samples and the
 * s4m_receptive_field(m) samples before them,
 *     receptive_field = round_up_to_hop( sum_i (kernel_len_i - 1) * cumpool(i) ).
 * To scan a long file in chunks with results equal (to float rounding) to one whole-file run:
 * start every chunk at a multiple of s4m_hop(m) and give it at least receptive_field samples of
 * the real preceding audio (zeros before the file start) in front of the first step you keep.
 * s4m_conv_features is then exact for the kept steps. s4m_conv_scan's pool decoder also averages
 * the previous Wf-1 steps, so it needs receptive_field + s4m_window(m) - s4m_hop(m) samples of
 * pre-context (or use s4m_conv_features and average yourself). Bidirectional models also look
 * ahead by the same amount: give them post-context too. */
size_t s4m_receptive_field(const struct s4m_model *m);

/* ---- convolution mode (file mode: clips, scans) ---- */

/* A workspace for inputs of up to max_len samples. */
struct s4m_conv *s4m_conv_new(const struct s4m_model *m, size_t max_len, char *err, size_t errlen);
void s4m_conv_free(struct s4m_conv *cv);
/* Logits (n_labels) of the whole input x[0..n) from a zero state, decoder over its last
 * window. n must be >= s4m_hop() and <= max_len. Returns 0 or -EINVAL. */
int s4m_conv_logits(struct s4m_conv *cv, const float *x, size_t n, float *logits);
/* A lone clip without its preroll: x is the window (n == s4m_conv_primed(cv)) and the logits
 * are those of s4m_conv_logits() on [s4m_preroll() zeros | x], computed on the window alone with
 * the preroll's share precomputed by s4m_conv_prime() (one forward pass over zeros, at setup:
 * allocates and plans). s4m_conv_primed() is 0 before that, or when the model does not allow it
 * (bidirectional, no preroll) or the workspace is shorter than preroll + window; then callers
 * use s4m_conv_logits(). s4m_conv_prime() returns 0 (also when not applicable) or -ENOMEM. */
int s4m_conv_prime(struct s4m_conv *cv, char *err, size_t errlen);
size_t s4m_conv_primed(const struct s4m_conv *cv);
int s4m_conv_logits_primed(struct s4m_conv *cv, const float *x, size_t n, float *logits);
/* The same for a window of W input samples (a multiple of s4m_hop()) instead of the decoder's:
 * s4m_conv_prime() is this with W = s4m_window(). A workspace is primed once; whether it is
 * primed for W is s4m_conv_primed(cv) == W. s4m_conv_logits_primed() needs W >= s4m_window(). */
int s4m_conv_prime_window(struct s4m_conv *cv, size_t W, char *err, size_t errlen);
/* s4m_conv_scan() of [s4m_preroll() zeros | x] on x alone (n == s4m_conv_primed(cv)): the
 * per-step logits of x's steps only, out[j * n_labels + k] for j < n / s4m_hop(); their decoder
 * means reach back into the preroll as in the whole input. Returns the steps or -EINVAL. */
long s4m_conv_scan_primed(struct s4m_conv *cv, const float *x, size_t n, float *out,
			  size_t max_steps);
/* Carried scans: s4m_conv_scan() of a whole recording from its start, computed in chunks that
 * each go through the network once (every block keeps the last kernel-length steps of its input;
 * see model/s4m_conv.c). s4m_conv_carry_init() sets a workspace up for it (allocates; causal
 * models only, max_len >= s4m_conv_carry_min()); 0, -EINVAL or -ENOMEM with err.
 * s4m_conv_carry_scan() takes the next n samples (a multiple of s4m_hop(), at most max_len) and
 * writes their n / s4m_hop() steps' logits as s4m_conv_scan() does; -EINVAL when not set up or
 * n is wrong. s4m_conv_carry_reset() starts a new recording (no allocation). */
size_t s4m_conv_carry_min(const struct s4m_model *m);
int s4m_conv_carry_init(struct s4m_conv *cv, char *err, size_t errlen);
void s4m_conv_carry_reset(struct s4m_conv *cv);
long s4m_conv_carry_scan(struct s4m_conv *cv, const float *x, size_t n, float *out,
			 size_t max_steps);
/* Per-decoder-step logits over x[0..n): out[(j)*n_labels + k] for every final step j whose
 * window ends there (pool decoder: mean over the last Wf final steps, fewer at the start).
 * Returns the number of steps written (floor(n / hop)) or -EINVAL. */
long s4m_conv_scan(struct s4m_conv *cv, const float *x, size_t n, float *out, size_t max_steps);
/* Same as s4m_conv_scan but only the final features (before the decoder), (steps, Hlast). */
long s4m_conv_features(struct s4m_conv *cv, const float *x, size_t n, float *out, size_t max_steps);

/* Longest input a workspace accepts (its max_len). */
size_t s4m_conv_max_len(const struct s4m_conv *cv);
/* Debugging / golden tests: run the network on x[0..n) up to and including block `block`
 * (after its pooling and widen) and copy that activation, (out_width, L) row-major with
 * L = floor(n / (cumpool(block) * pool(block))), into out (capacity max_elems floats).
 * Returns L, or -EINVAL (bad block, n or capacity). */
long s4m_conv_block_output(struct s4m_conv *cv, const float *x, size_t n, int block, float *out,
			   size_t max_elems);

/* ---- step mode (live mode: one stepper per channel) ---- */

/* Step mode. Fails for bidirectional models. */
struct s4m_stream *s4m_stream_new(const struct s4m_model *m, char *err, size_t errlen);
void s4m_stream_free(struct s4m_stream *st);
void s4m_stream_reset(struct s4m_stream *st);            /* back to the zero state */
/* Feed n samples. Returns the number of decoder steps completed (samples / hop). Non-finite
 * samples are taken as 0 (a NaN would otherwise stay in the state until a reset). */
size_t s4m_stream_push(struct s4m_stream *st, const float *x, size_t n);
/* Logits / softmax scores of the current window (running mean of the last Wf final steps; the
 * last final step for decoder 'last'). Before the first final step: the decoder bias. */
void s4m_stream_logits(const struct s4m_stream *st, float *logits);
void s4m_stream_scores(const struct s4m_stream *st, float *probs);
uint64_t s4m_stream_samples(const struct s4m_stream *st); /* samples pushed since reset */
/* Make dst continue exactly as src would (both from the same model). No allocation. */
void s4m_stream_copy(struct s4m_stream *dst, const struct s4m_stream *src);

/* Several streams of one model stepped together (one inference thread's channels): every
 * block runs over all their rows of a chunk at once, so the weights are read once for all and
 * the 250 Hz blocks, which see 2 or 3 rows per 10 ms push, work on S times as many. Each
 * stream's arithmetic is s4m_stream_push's, so its scores are the same bit for bit. A batch
 * holds the workspace for up to max_streams (allocated here, not in the push); one thread
 * uses it at a time. */
struct s4m_batch;
struct s4m_batch *s4m_batch_new(const struct s4m_model *m, int max_streams, char *err, size_t errlen);
void s4m_batch_free(struct s4m_batch *b);
/* n samples into each stream st[j] from x[j] (j < S <= max_streams). Streams in phase (the
 * same samples pushed since their last reset, modulo the pooling) go together: returns 1;
 * otherwise (or S > max_streams) each is pushed on its own: returns 0. No allocation. */
int s4m_batch_push(struct s4m_batch *b, struct s4m_stream *const *st, int S, const float *const *x, size_t n);

/* Step mode with bounded context (model/s4m_relay.c): two steppers over the same samples,
 * restarted alternately every `period` samples (half a period apart) from a lone clip's start
 * state; scores come from the older one, which has heard period/2 to period samples. period 0:
 * one stepper, never restarted (= s4m_stream). period/2 must be a multiple of s4m_hop(m).
 * Conv-mode equivalent: with h = period/2, the scores after t samples (counted from the reset)
 * are s4m_conv_logits' on [s4m_preroll(m) zeros | x[r .. t)], r = max(0, (t / h - 1) h)
 * (integer division), to float rounding. */
struct s4m_relay;
struct s4m_relay *s4m_relay_new(const struct s4m_model *m, size_t period, char *err, size_t errlen);
void s4m_relay_free(struct s4m_relay *r);
void s4m_relay_reset(struct s4m_relay *r);             /* back to the start state */
size_t s4m_relay_push(struct s4m_relay *r, const float *x, size_t n); /* as s4m_stream_push */
void s4m_relay_logits(const struct s4m_relay *r, float *logits);
void s4m_relay_scores(const struct s4m_relay *r, float *probs);
uint64_t s4m_relay_samples(const struct s4m_relay *r);  /* samples pushed since reset */
/* As s4m_relay_push for each r[j] with x[j], the relays' steppers stepped together
 * (s4m_batch_push) when the relays share the period and are in phase (created or reset
 * together): returns 1 then, 0 when they went one at a time. */
int s4m_relay_batch_push(struct s4m_batch *b, struct s4m_relay *const *r, int S, const float *const *x,
			 size_t n);
size_t s4m_relay_period(const struct s4m_relay *r);

#endif
