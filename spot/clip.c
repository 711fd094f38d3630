/* clip.c - the one place that decides how a lone clip is presented to the model.
 *
 * DESIGN: file mode (s4kws classify, --eval) and the daemon's POST /v1/classify must classify a
 * clip identically, and conv and stream mode must see exactly the same samples, or their
 * agreement and the accuracy figures mean nothing. So the padding rule lives here once:
 * the clip, padded with zeros after its end to the decoder window (Speech Commands pads short
 * clips the same way), preceded by s4m_preroll() zeros (what training put before a lone clip)
 * or by caller-supplied context audio. Conv mode builds that input in a caller buffer; stream
 * mode pushes the same pieces without building it (zeros come from a static block), so the
 * stream path allocates nothing. (Conv mode then skips the preroll's computation when the
 * workspace has it precomputed: s4m_conv_logits_primed.) Scores are the softmax of the logits
 * (pp_softmax, shared with the detection post-processing).
 */
#include "clip.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "postproc.h"

#define CLIP_ZEROS 4096

static const float zeros[CLIP_ZEROS];

size_t clip_input_len(const struct s4m_model *m, size_t nctx)
{
	return (nctx ? nctx : s4m_preroll(m)) + s4m_window(m);
}

long clip_build(const struct s4m_model *m, const float *x, size_t n, const float *ctx,
		size_t nctx, float *buf)
{
	size_t w = s4m_window(m);
	if (n == 0)
		return -EINVAL;
	if (n > w)
		return -E2BIG;
	size_t head = nctx ? nctx : s4m_preroll(m);
	if (nctx)
		memcpy(buf, ctx, nctx * sizeof *buf);
	else
		memset(buf, 0, head * sizeof *buf);
	memcpy(buf + head, x, n * sizeof *buf);
	memset(buf + head + n, 0, (w - n) * sizeof *buf);
	return (long)(head + w);
}

static int too_long(const struct s4m_model *m, size_t n, char *err, size_t errlen)
{
	size_t w = s4m_window(m);
	double hz = s4m_sample_rate(m) / s4m_rate(m);
	s4k_seterr(err, errlen, "the clip (%zu samples, %.3f s) is longer than the model window "
		   "(%zu samples, %.3f s)", n, n / hz, w, w / hz);
	return -E2BIG;
}

int clip_logits_conv(const struct s4m_model *m, struct s4m_conv *cv, const float *x, size_t n,
		     const float *ctx, size_t nctx, float *buf, float *logits, char *err,
		     size_t errlen)
{
	long len = clip_build(m, x, n, ctx, nctx, buf);
	if (len == -E2BIG)
		return too_long(m, n, err, errlen);
	if (len < 0) {
		s4k_seterr(err, errlen, "the clip is empty");
		return -EINVAL;
	}
	/* a lone clip runs on its window alone when the workspace has the preroll's share
	 * precomputed (s4m_conv_primed): the same logits, a third of the work */
	size_t pw = nctx ? 0 : s4m_conv_primed(cv);
	int rc = pw == s4m_window(m) ? s4m_conv_logits_primed(cv, buf + len - pw, pw, logits)
				     : s4m_conv_logits(cv, buf, (size_t)len, logits);
	if (rc < 0) {
		s4k_seterr(err, errlen, "the engine refused a %ld-sample input (workspace too small?)",
			   len);
		return -EINVAL;
	}
	return 0;
}

static void push_zeros(struct s4m_stream *st, size_t n)
{
	while (n) {
		size_t k = n < CLIP_ZEROS ? n : CLIP_ZEROS;
		s4m_stream_push(st, zeros, k);
		n -= k;
	}
}

int clip_logits_stream(const struct s4m_model *m, struct s4m_stream *st, const float *x,
		       size_t n, const float *ctx, size_t nctx, float *logits, char *err,
		       size_t errlen)
{
	size_t w = s4m_window(m);
	if (n > w)
		return too_long(m, n, err, errlen);
	if (n == 0) {
		s4k_seterr(err, errlen, "the clip is empty");
		return -EINVAL;
	}
	s4m_stream_reset(st);
	if (nctx)
		s4m_stream_push(st, ctx, nctx);
	else
		push_zeros(st, s4m_preroll(m));
	s4m_stream_push(st, x, n);
	push_zeros(st, w - n);
	s4m_stream_logits(st, logits);
	return 0;
}

size_t clip_max_len(const struct s4m_model *m, int rate)
{
	size_t w = s4m_window(m), lim = (size_t)(CLIP_MAX_S * rate);
	return lim > w + w / 64 ? lim : w + w / 64;
}

int clip_windowed(const struct s4m_model *m, size_t n)
{
	size_t w = s4m_window(m);
	return n > w + w / 64;
}

size_t clip_loudest(const struct s4m_model *m, const float *x, size_t n, int rate)
{
	size_t w = s4m_window(m), stride = (size_t)(CLIP_STRIDE_S * rate);
	if (!clip_windowed(m, n))
		return 0;
	if (stride == 0)
		stride = 1;
	/* energy of x[a, a + w) from a running sum, in double: 3 s of float squares */
	double e = 0, best = -1;
	size_t at = 0, a = 0;
	for (size_t i = 0; i < w; i++)
		e += (double)x[i] * x[i];
	for (;;) {
		if (e > best) {
			best = e;
			at = a;
		}
		if (a + w >= n)
			break;
		size_t next = a + stride + w <= n ? a + stride : n - w; /* the last window ends at the end */
		for (size_t i = a; i < next; i++)
			e += (double)x[i + w] * x[i + w] - (double)x[i] * x[i];
		a = next;
	}
	return at;
}

int clip_best_logits(const struct s4m_model *m, struct s4m_conv *cv, struct s4m_stream *st,
		     const float *x, size_t n, int rate, const float *ctx, size_t nctx, float *buf,
		     float *logits, size_t *start, char *err, size_t errlen)
{
	size_t w = s4m_window(m);
	*start = clip_loudest(m, x, n, rate);
	if (n > w) /* the slack past the window is dropped; longer: the loudest window */
		n = w;
	return st ? clip_logits_stream(m, st, x + *start, n, ctx, nctx, logits, err, errlen)
		  : clip_logits_conv(m, cv, x + *start, n, ctx, nctx, buf, logits, err, errlen);
}

void clip_note_scrubbed(json_t *rec, uint64_t n)
{
	char w[200];
	snprintf(w, sizeof w, "%llu sample%s not a finite number (or beyond +-64) replaced by zeros; "
		 "the answer rests on the rest of the audio", (unsigned long long)n, n == 1 ? "" : "s");
	json_object_set_new(rec, "nonfinite_samples", json_integer((json_int_t)n));
	json_object_set_new(rec, "warning", json_string(w));
}

json_t *clip_detection_json(const struct s4m_model *m, int rate, const struct pp_detection *d,
			    int channel)
{
	json_t *o = json_pack("{s:f, s:f, s:f, s:s, s:f, s:i}", "start", (double)d->start / rate, "end",
			      (double)d->end / rate, "offset", (double)d->sample / rate, "keyword",
			      s4m_label(m, d->label), "score", (double)d->score, "channel", channel);
	if (o && d->verify > 0) /* the second opinion's probability (--verify) */
		json_object_set_new(o, "verify", json_real((double)d->verify));
	return o;
}

json_t *clip_json(const struct s4m_model *m, const float *logits, int top_k, int *label)
{
	int K = s4m_n_labels(m);
	float *p = malloc((size_t)K * sizeof *p);
	json_t *o = json_object(), *scores = json_object(), *lg = json_array();
	if (!p || !o || !scores || !lg)
		goto oom;
	pp_softmax(logits, K, p);
	int best = 0;
	for (int k = 1; k < K; k++)
		if (logits[k] > logits[best])
			best = k;
	for (int k = 0; k < K; k++) {
		if (json_object_set_new(scores, s4m_label(m, k), json_real(p[k])) ||
		    json_array_append_new(lg, json_real(isfinite(logits[k]) ? logits[k] : 0.0)))
			goto oom;
	}
	if (json_object_set_new(o, "label", json_string(s4m_label(m, best))) ||
	    json_object_set_new(o, "score", json_real(p[best])) ||
	    json_object_set_new(o, "scores", scores) ||
	    json_object_set_new(o, "logits", lg))
		goto oom_set;
	scores = lg = NULL;
	if (top_k > 0) {
		json_t *top = json_array();
		if (!top || json_object_set_new(o, "top", top))
			goto oom_set;
		/* selection by repeated max: K is small (tens of labels) */
		unsigned char *used = calloc((size_t)K, 1);
		if (!used)
			goto oom_set;
		for (int t = 0; t < top_k && t < K; t++) {
			int b = -1;
			for (int k = 0; k < K; k++)
				if (!used[k] && (b < 0 || p[k] > p[b]))
					b = k;
			used[b] = 1;
			json_t *e = json_pack("{s:s, s:f}", "label", s4m_label(m, b), "score", (double)p[b]);
			if (!e || json_array_append_new(top, e)) {
				free(used);
				goto oom_set;
			}
		}
		free(used);
	}
	free(p);
	if (label)
		*label = best;
	return o;
oom:
	json_decref(scores);
	json_decref(lg);
oom_set:
	json_decref(o);
	free(p);
	return NULL;
}

int clip_classify_json(const struct s4m_model *m, struct s4m_conv *cv, const float *x, size_t n,
		       int top_k, json_t **out, char *err, size_t errlen)
{
	*out = NULL;
	int K = s4m_n_labels(m);
	size_t len = clip_input_len(m, 0);
	float *buf = malloc(len * sizeof *buf), *logits = malloc((size_t)K * sizeof *logits);
	if (!buf || !logits) {
		free(buf);
		free(logits);
		s4k_seterr(err, errlen, "out of memory classifying a clip");
		return -ENOMEM;
	}
	int rc = clip_logits_conv(m, cv, x, n, NULL, 0, buf, logits, err, errlen);
	if (rc == 0) {
		*out = clip_json(m, logits, top_k, NULL);
		if (!*out) {
			s4k_seterr(err, errlen, "out of memory building JSON");
			rc = -ENOMEM;
		}
	}
	free(buf);
	free(logits);
	return rc;
}
