/* clip.h - classify one short clip the way the model was trained: pad, preroll, run, report.
 *
 * Usage:
 *   struct s4m_conv *cv = s4m_conv_new(m, clip_input_len(m, 0), err, sizeof err);
 *   json_t *o;
 *   if (clip_classify_json(m, cv, x, n, 3, &o, err, sizeof err) < 0) ...   // n <= s4m_window(m)
 *   // o = {"label":"yes","score":0.97,"scores":{"yes":0.97,...},"logits":[...],"top":[...]}
 *   json_decref(o);
 *
 *   float logits[K], *buf = malloc(clip_input_len(m, nctx) * sizeof *buf);
 *   clip_logits_conv(m, cv, x, n, ctx, nctx, buf, logits, err, sizeof err);  // explicit form
 *   clip_logits_stream(m, st, x, n, ctx, nctx, logits);                      // same input, steppers
 *
 * The model input for a clip x[0..n) (n <= window samples at the model's rate) is
 *     [ preroll zeros | x | zeros up to the window ]      (s4m_preroll + s4m_window samples)
 * i.e. the clip padded after its end to the window, as Speech Commands clips are padded, with
 * s4m_preroll() zeros in front. With a context (ctx, nctx samples of other audio, e.g. to
 * measure a clip heard after unrelated speech) the context replaces the preroll zeros:
 *     [ ctx | x | zeros up to the window ]                (nctx + s4m_window samples)
 * Conv mode runs s4m_conv_logits over that input from a zero state; stream mode pushes the
 * same samples through s4m_stream from a reset and reads the logits of the last window.
 * Threads: the model may be shared; a workspace, stream or buffer belongs to one thread.
 */
#ifndef S4KWS_DAEMON_CLIP_H
#define S4KWS_DAEMON_CLIP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "model/s4m.h"

/* Samples of the model input for a clip with nctx context samples (0 = preroll zeros). This
 * is the max_len a conv workspace for clips needs. */
size_t clip_input_len(const struct s4m_model *m, size_t nctx);

/* Write the model input (see above) into buf (clip_input_len(m, nctx) floats) and return its
 * length, or -E2BIG when n > s4m_window(m), -EINVAL when n == 0. */
long clip_build(const struct s4m_model *m, const float *x, size_t n, const float *ctx,
		size_t nctx, float *buf);

/* Logits (n_labels) of a clip in conv mode; buf is scratch of clip_input_len(m, nctx) floats
 * and cv must accept that length. Returns 0, -E2BIG or -EINVAL with a sentence in err. */
int clip_logits_conv(const struct s4m_model *m, struct s4m_conv *cv, const float *x, size_t n,
		     const float *ctx, size_t nctx, float *buf, float *logits, char *err,
		     size_t errlen);
/* The same in step mode over the same samples (the stream is reset first). No allocation. */
int clip_logits_stream(const struct s4m_model *m, struct s4m_stream *st, const float *x,
		       size_t n, const float *ctx, size_t nctx, float *logits, char *err,
		       size_t errlen);

/* Recordings up to CLIP_MAX_S seconds are classified as clips: a user's recording of one
 * command is usually 1-3 s (leading and trailing silence, encoder padding and delay), and its
 * label is that of its loudest one-second window, which is how Speech Commands cut its clips
 * out of longer recordings. Longer ones are scanned for detections. */
#define CLIP_MAX_S 3.0
#define CLIP_STRIDE_S 0.01 /* candidate windows of a longer clip start this far apart */

/* Samples (at `rate` Hz, the model's rate or a native rate) up to which a recording is a clip:
 * CLIP_MAX_S, and at least the model window plus 1/64 (resampling slack, dropped). */
size_t clip_max_len(const struct s4m_model *m, int rate);

/* 1 when a recording of n samples is judged by one window of it (it is longer than the window
 * plus 1/64 of resampling slack), 0 when it is classified whole (the slack dropped). */
int clip_windowed(const struct s4m_model *m, size_t n);

/* The first sample of the loudest window (most energy, the earliest of equals) of a recording
 * x[0..n) among those starting at multiples of CLIP_STRIDE_S and the one ending at the end;
 * 0 when n is at most the window plus 1/64 (one clip, the slack dropped). */
size_t clip_loudest(const struct s4m_model *m, const float *x, size_t n, int rate);

/* Logits of a recording of up to clip_max_len samples as a clip: its loudest window
 * (clip_loudest, first sample in *start) classified as a lone clip, in conv mode with cv and
 * buf as in clip_logits_conv, or in stream mode when st is not NULL. Returns 0 or a negative
 * errno with a sentence in err. */
int clip_best_logits(const struct s4m_model *m, struct s4m_conv *cv, struct s4m_stream *st,
		     const float *x, size_t n, int rate, const float *ctx, size_t nctx, float *buf,
		     float *logits, size_t *start, char *err, size_t errlen);

/* Add to a file-mode record (clip or scan) that `n` decoded samples were not finite numbers
 * (or absurdly large) and were replaced by zeros (audio/audiofile.h af_scrubbed): keys
 * "nonfinite_samples" and "warning" (one sentence). */
void clip_note_scrubbed(json_t *rec, uint64_t n);

/* A new JSON object for logits (n_labels): "label" (argmax), "score" (its softmax
 * probability), "scores" (object label -> probability, model order), "logits" (array) and,
 * when top_k > 0, "top" (array of {"label","score"}, best first, at most top_k). NULL on no
 * memory. Also returns the argmax in *label when label is not NULL. */
json_t *clip_json(const struct s4m_model *m, const float *logits, int top_k, int *label);

struct pp_detection;
/* A new JSON object for one detection of a long recording (file mode and POST /v1/classify):
 * "start", "end" and "offset" (where it was decided) in seconds of the model-rate samples
 * (rate Hz), "keyword", "score", "channel". NULL on no memory. */
json_t *clip_detection_json(const struct s4m_model *m, int rate, const struct pp_detection *d,
			    int channel);

/* One clip -> JSON object (clip_logits_conv without context, then clip_json). cv must accept
 * clip_input_len(m, 0) samples. Returns 0, -E2BIG (longer than the window), -EINVAL or
 * -ENOMEM with a sentence in err. The caller owns *out. */
int clip_classify_json(const struct s4m_model *m, struct s4m_conv *cv, const float *x, size_t n,
		       int top_k, json_t **out, char *err, size_t errlen);

#endif
