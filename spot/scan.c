/* scan.c - chunked convolution-mode (or step-mode) scanning of long recordings into postproc.
 *
 * DESIGN: a ten-hour file must scan in bounded memory and give the posteriors of one
 * whole-file convolution from a zero state. For a causal model the engine carries that state
 * itself (s4m_conv_carry_*, model/s4m_conv.c): every block keeps the last kernel-length steps
 * of its input and the decoder its last window of logits, so the scanner hands it chunks of new
 * samples back to back (pre = 0) and each sample goes through the network once. Bidirectional
 * models cannot be carried (a backward kernel looks ahead); for them, convolution mode forgets
 * lags beyond each block's kernel, so the pool decoder's output at a step depends only on the
 * last
 *     pre = s4m_receptive_field(m) + s4m_window(m) - s4m_hop(m)
 * samples before that step's hop (rounded up to the hop). The scanner therefore keeps one
 * buffer of pre + chunk samples: the first chunk runs from the true start (no pre-context:
 * zeros in front would not equal a zero state, because the decoder would average the features
 * of those zeros), every later chunk runs over [pre samples already seen | chunk new samples]
 * and keeps only the steps that end in the new part. Chunk starts are multiples of the hop, so
 * the pooled steps line up with the whole-file run. Memory is the buffer, the engine's
 * workspace for pre + chunk samples and one (steps, K) logits array.
 *
 * With a restart period P (2h samples; see model/s4m_relay.c), every posterior comes from audio
 * since the last restart but one: stream mode runs an s4m_relay; conv mode runs one segment per
 * restart, [preroll zeros | x[jh .. jh + 2h)], from a zero state, and keeps the steps that end in
 * [jh + h, jh + 2h) (all of them from the start for the first segment); the segment buffer then
 * keeps its last h samples. That is the relay's conv-mode equivalent, so both modes still agree.
 * The preroll is the same zeros before every segment, so after scan_prime() a whole segment runs
 * on its 2h samples alone (s4m_conv_scan_primed) with the preroll's share precomputed.
 *
 * Posteriors are evaluated every `hop` samples (pc->hop, a multiple of the model's own hop,
 * e.g. 10 ms): for conv mode that is every (hop / s4m_hop)-th decoder step of s4m_conv_scan,
 * softmaxed; for stream mode the relay's steppers are pushed hop samples at a time and
 * s4m_relay_scores() read. Both feed spot_hop() (spot/spot.h), so detections follow exactly the
 * live rules.
 *
 * With pc->verify > 0, postproc's detections are candidates for the second opinion of
 * daemon/verify.h, as in live mode: every sample also goes into the verifier's history (pieces
 * of at most PIECE samples, so that a conv chunk's detections are at most one piece plus the
 * buffered chunk behind the newest sample), and a candidate reaches the sink once judged and
 * accepted. scan_finish() judges the ones still waiting, with zeros after the last sample.
 */
#include "scan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

#define PIECE 4096 /* samples pushed into the engine and the verifier at a time */

struct scan {
	const struct s4m_model *m;
	enum scan_mode mode;
	struct scan_sink sink;
	struct spot *spot;       /* decisions: post-processing and the second opinion */
	int K;                   /* labels */
	size_t mhop;             /* model hop: samples per decoder step */
	size_t hop;              /* samples per posterior (multiple of mhop) */
	/* conv mode */
	struct s4m_conv *cv;
	size_t pre;              /* pre-context samples kept in front of each later chunk */
	size_t chunk;            /* new samples per chunk */
	float *buf;              /* (pre + chunk) samples: buf[0] is sample `buf_start` */
	size_t len;              /* samples in buf */
	uint64_t buf_start;      /* global index of buf[0] */
	uint64_t done;           /* global samples whose decoder steps have been emitted */
	float *logits;           /* (max_steps, K) */
	size_t max_steps;
	size_t half;             /* h = restart period / 2, samples; 0 = no restarts */
	size_t npre;             /* preroll zeros in front of each segment (restarts only) */
	int primed;              /* whole segments run primed (scan_prime) */
	int carried;             /* no restarts, causal model: chunks carried (s4m_conv_carry_*) */
	/* stream mode */
	struct s4m_relay *st;
	size_t in_hop;           /* samples pushed since the last posterior */
	/* both */
	float *probs;            /* (K) */
	uint64_t pushed;         /* samples since reset */
};

size_t scan_hop(const struct s4m_model *m, double hop_ms)
{
	size_t mh = s4m_hop(m);
	double want = hop_ms * s4m_sample_rate(m) / s4m_rate(m) / 1000.0 / (double)mh;
	size_t k = want < 1.5 ? 1 : (size_t)(want + 0.5);
	return k * mh;
}

size_t scan_period(const struct s4m_model *m, double ms)
{
	if (!(ms > 0))
		return 0;
	size_t mh = s4m_hop(m);
	double h = ms * s4m_sample_rate(m) / s4m_rate(m) / 2000.0 / (double)mh;
	size_t k = h < 1.5 ? 1 : h > 1e7 ? 10000000 : (size_t)(h + 0.5);
	return 2 * k * mh;
}

static size_t pre_context(const struct s4m_model *m)
{
	size_t mh = s4m_hop(m);
	size_t pre = s4m_receptive_field(m) + s4m_window(m);
	pre = pre > mh ? pre - mh : 0;
	return (pre + mh - 1) / mh * mh;
}

size_t scan_default_chunk(const struct s4m_model *m)
{
	/* Carried chunks (causal models): twice the longest kernel, so a block's FFTs cover at
	 * most 1.5x the new samples; the default model scanned 600 s in 7.27 / 6.74 / 6.77 /
	 * 6.90 s with 3 / 5 / 10 / 20 s chunks at 132 / 149 / 194 / 280 MB peak, so longer buys
	 * nothing. Pre-context chunks (bidirectional): as long as the pre-context, since the
	 * workspace grows with pre + chunk (several hundred bytes per sample) and throughput hardly
	 * changes with longer chunks. At least 2 s of audio either way. */
	size_t c = s4m_bidirectional(m) ? pre_context(m) : 2 * s4m_conv_carry_min(m);
	size_t min = (size_t)(2.0 * s4m_sample_rate(m) / s4m_rate(m));
	return c > min ? c : min;
}

static void on_detection(void *user, int ch, const struct pp_detection *d)
{
	struct scan *sc = user;
	if (sc->sink.detection)
		sc->sink.detection(sc->sink.user, d);
}

struct scan *scan_new(const struct s4m_model *m, enum scan_mode mode, const struct pp_config *pc,
		      size_t chunk, size_t period, const struct scan_sink *sink, char *err, size_t errlen)
{
	size_t mh = s4m_hop(m);
	if (pc->n_labels != s4m_n_labels(m)) {
		s4k_seterr(err, errlen, "post-processing is set up for %d labels but the model has %d",
			   pc->n_labels, s4m_n_labels(m));
		return NULL;
	}
	if (pc->hop == 0 || pc->hop % mh) {
		s4k_seterr(err, errlen, "the posterior hop (%zu samples) must be a multiple of the "
			   "model's hop (%zu samples)", pc->hop, mh);
		return NULL;
	}
	if (period % (2 * mh)) {
		s4k_seterr(err, errlen, "the restart period (%zu samples) must be a multiple of twice "
			   "the model's hop (%zu samples)", period, mh);
		return NULL;
	}
	if (mode != SCAN_CONV && mode != SCAN_STREAM) {
		s4k_seterr(err, errlen, "unknown scan mode %d", (int)mode);
		return NULL;
	}
	struct scan *sc = calloc(1, sizeof *sc);
	if (!sc) {
		s4k_seterr(err, errlen, "out of memory for a scanner");
		return NULL;
	}
	sc->m = m;
	sc->mode = mode;
	if (sink)
		sc->sink = *sink;
	sc->K = s4m_n_labels(m);
	sc->mhop = mh;
	sc->hop = pc->hop;
	sc->probs = malloc((size_t)sc->K * sizeof *sc->probs);
	if (!sc->probs) {
		s4k_seterr(err, errlen, "out of memory for a scanner");
		goto fail;
	}
	sc->half = period / 2;
	/* with verify, a candidate's window may end up to one piece plus the buffered chunk (its
	 * front and its new samples) behind the newest sample */
	size_t lag = PIECE + (mode == SCAN_STREAM ? pc->hop : period ? s4m_preroll(m) + period
			      : 2 * (pre_context(m) + (chunk ? chunk : scan_default_chunk(m))) + pc->hop);
	struct spot_sink ss = {.user = sc, .detection = on_detection};
	sc->spot = spot_new(m, 1, pc, lag, &ss, err, errlen);
	if (!sc->spot)
		goto fail;
	if (mode == SCAN_STREAM) {
		sc->st = s4m_relay_new(m, period, err, errlen);
		if (!sc->st)
			goto fail;
		return sc;
	}
	size_t front; /* samples before each chunk's new ones: pre-context, or a segment's preroll */
	if (period) {
		/* one segment at a time: [preroll zeros | 2h samples] */
		sc->npre = s4m_preroll(m);
		front = sc->npre;
		chunk = period;
	} else if (!s4m_bidirectional(m)) {
		/* carried chunks: no pre-context, every block keeps its own kernel's history */
		sc->carried = 1;
		front = 0;
		if (!chunk)
			chunk = scan_default_chunk(m);
		if (chunk < s4m_conv_carry_min(m))
			chunk = s4m_conv_carry_min(m);
		chunk = (chunk + sc->hop - 1) / sc->hop * sc->hop;
	} else {
		sc->pre = pre_context(m);
		front = sc->pre;
		if (!chunk)
			chunk = scan_default_chunk(m);
		if (chunk < sc->pre)
			chunk = sc->pre;
		chunk = (chunk + sc->hop - 1) / sc->hop * sc->hop;
	}
	sc->chunk = chunk;
	sc->max_steps = (front + chunk) / mh;
	sc->buf = calloc(front + chunk, sizeof *sc->buf); /* zeros: what the segments' preroll is */
	sc->logits = malloc(sc->max_steps * (size_t)sc->K * sizeof *sc->logits);
	if (!sc->buf || !sc->logits) {
		s4k_seterr(err, errlen, "out of memory for a %zu-sample scan chunk", front + chunk);
		goto fail;
	}
	sc->cv = s4m_conv_new(m, front + chunk, err, errlen);
	if (!sc->cv || (sc->carried && s4m_conv_carry_init(sc->cv, err, errlen) < 0))
		goto fail;
	return sc;
fail:
	scan_free(sc);
	return NULL;
}

int scan_prime(struct scan *sc, char *err, size_t errlen)
{
	if (!sc->cv || !sc->half || sc->primed)
		return 0;
	int rc = s4m_conv_prime_window(sc->cv, sc->chunk, err, errlen);
	if (rc < 0)
		return rc;
	sc->primed = s4m_conv_primed(sc->cv) == sc->chunk;
	return 0;
}

void scan_free(struct scan *sc)
{
	if (!sc)
		return;
	spot_free(sc->spot);
	if (sc->cv)
		s4m_conv_free(sc->cv);
	if (sc->st)
		s4m_relay_free(sc->st);
	free(sc->buf);
	free(sc->logits);
	free(sc->probs);
	free(sc);
}

void scan_reset(struct scan *sc)
{
	spot_reset(sc->spot);
	if (sc->st)
		s4m_relay_reset(sc->st);
	if (sc->carried)
		s4m_conv_carry_reset(sc->cv);
	sc->len = 0;
	sc->buf_start = 0;
	sc->done = 0;
	sc->in_hop = 0;
	sc->pushed = 0;
}

uint64_t scan_samples(const struct scan *sc)
{
	return sc->pushed;
}

size_t scan_mem(const struct scan *sc)
{
	return sizeof *sc + (sc->pre + sc->npre + sc->chunk) * sizeof(float) +
	       sc->max_steps * (size_t)sc->K * sizeof(float) + (size_t)sc->K * sizeof(float);
}

/* One posterior vector after `sample` samples: to the sink and to the decisions. */
static void posterior(struct scan *sc, uint64_t sample, const float *probs)
{
	if (sc->sink.posterior)
		sc->sink.posterior(sc->sink.user, sample, probs);
	spot_hop(sc->spot, 0, probs);
	spot_decide(sc->spot);
}

/* Run the engine over buf[0 .. lead + len), where the first lead samples are a segment's preroll
 * zeros (0 for chunks) and buf[lead] is sample buf_start, and emit every step that ends after
 * `done`, at or after `from` and before `limit`. */
static int run_steps(struct scan *sc, size_t lead, uint64_t from, uint64_t limit)
{
	long steps;
	if (sc->carried) {   /* the chunk's whole steps; a shorter tail is the recording's end */
		steps = s4m_conv_carry_scan(sc->cv, sc->buf, sc->len / sc->mhop * sc->mhop, sc->logits,
					    sc->max_steps);
	} else if (lead && sc->primed && sc->len == sc->chunk) {   /* a whole segment, primed */
		steps = s4m_conv_scan_primed(sc->cv, sc->buf + lead, sc->len, sc->logits,
					     sc->max_steps);
		lead = 0;
	} else {
		steps = s4m_conv_scan(sc->cv, sc->buf, lead + sc->len, sc->logits, sc->max_steps);
	}
	if (steps < 0)
		return -EINVAL;
	size_t ratio = sc->hop / sc->mhop, skip = lead / sc->mhop;
	for (long j = (long)skip; j < steps; j++) {
		/* step j's last sample + 1 */
		uint64_t end = sc->buf_start + (uint64_t)(j + 1 - (long)skip) * sc->mhop;
		if (end >= limit)
			break;
		if (end <= sc->done || end < from)
			continue;
		if ((end / sc->mhop) % ratio == 0) {
			pp_softmax(sc->logits + (size_t)j * (size_t)sc->K, sc->K, sc->probs);
			posterior(sc, end, sc->probs);
		}
		sc->done = end;
	}
	return 0;
}

/* Run the buffered chunk, then keep its last `pre` samples as the next chunk's context. */
static int flush_chunk(struct scan *sc)
{
	if (run_steps(sc, 0, 0, UINT64_MAX) < 0)
		return -EINVAL;
	size_t keep = sc->pre < sc->len ? sc->pre : sc->len;
	memmove(sc->buf, sc->buf + sc->len - keep, keep * sizeof *sc->buf);
	sc->buf_start += sc->len - keep;
	sc->len = keep;
	return 0;
}

/* Restarts: run the segment in buf ([npre zeros | len samples from buf_start]) and emit the steps
 * that are its to report: those ending in [buf_start + h, buf_start + 2h) (from 0 for the first
 * segment); a step ending at buf_start + 2h is the next segment's, whose stepper restarted h later. */
static int run_segment(struct scan *sc)
{
	return run_steps(sc, sc->npre, sc->buf_start ? sc->buf_start + sc->half : 0,
			 sc->buf_start + sc->chunk);
}

static int push_segments(struct scan *sc, const float *x, size_t n)
{
	float *seg = sc->buf + sc->npre;
	while (n) {
		size_t take = sc->chunk - sc->len < n ? sc->chunk - sc->len : n;
		memcpy(seg + sc->len, x, take * sizeof *x);
		sc->len += take;
		x += take;
		n -= take;
		if (sc->len == sc->chunk) {
			/* steps ending at buf_start + 2h belong to the next segment: it starts h later */
			if (run_segment(sc) < 0)
				return -EINVAL;
			memmove(seg, seg + sc->half, sc->half * sizeof *seg);
			sc->buf_start += sc->half;
			sc->len = sc->half;
		}
	}
	return 0;
}

static int push_conv(struct scan *sc, const float *x, size_t n)
{
	if (sc->half)
		return push_segments(sc, x, n);
	while (n) {
		/* the buffer holds [pre-context | new]; it is full at pre + chunk (or at chunk for
		 * the very first chunk, which has no pre-context) */
		size_t ctx = sc->buf_start == 0 && sc->done == 0 ? 0 : sc->pre;
		size_t cap = ctx + sc->chunk;
		if (sc->len > cap)   /* cannot happen: the first chunk's buffer is the shortest */
			cap = sc->len;
		size_t take = cap - sc->len < n ? cap - sc->len : n;
		memcpy(sc->buf + sc->len, x, take * sizeof *x);
		sc->len += take;
		x += take;
		n -= take;
		if (sc->len == cap) {
			if (flush_chunk(sc) < 0)
				return -EINVAL;
		}
	}
	return 0;
}

static int push_stream(struct scan *sc, const float *x, size_t n)
{
	while (n) {
		size_t take = sc->hop - sc->in_hop < n ? sc->hop - sc->in_hop : n;
		s4m_relay_push(sc->st, x, take);
		sc->in_hop += take;
		x += take;
		n -= take;
		if (sc->in_hop == sc->hop) {
			sc->in_hop = 0;
			s4m_relay_scores(sc->st, sc->probs);
			posterior(sc, s4m_relay_samples(sc->st), sc->probs);
		}
	}
	return 0;
}

int scan_push(struct scan *sc, const float *x, size_t n)
{
	if (!spot_verifying(sc->spot)) { /* with verify, audio goes to it in pieces */
		sc->pushed += n;
		return sc->mode == SCAN_CONV ? push_conv(sc, x, n) : push_stream(sc, x, n);
	}
	while (n) {
		size_t take = n < PIECE ? n : PIECE;
		spot_audio(sc->spot, x, take);
		sc->pushed += take;
		int rc = sc->mode == SCAN_CONV ? push_conv(sc, x, take) : push_stream(sc, x, take);
		if (rc < 0)
			return rc;
		x += take;
		n -= take;
	}
	return 0;
}

static int finish(struct scan *sc);

int scan_finish(struct scan *sc)
{
	int rc = finish(sc);
	spot_finish(sc->spot); /* no more audio is coming */
	return rc;
}

static int finish(struct scan *sc)
{
	if (sc->mode != SCAN_CONV)
		return 0;
	/* only whole decoder steps exist; a tail shorter than one step has no output */
	uint64_t end = sc->buf_start + sc->len;
	if (sc->half)
		return end - end % sc->mhop > sc->done ? run_segment(sc) : 0;
	if (end - end % sc->mhop <= sc->done || sc->len < sc->mhop)
		return 0;
	return flush_chunk(sc);
}
