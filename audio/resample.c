/* resample.c - a thin, caller-owned wrapper around libsamplerate.
 *
 * DESIGN: libsamplerate does the signal processing (band-limited sinc interpolation); this file
 * only adds what both users need. File mode converts whole recordings (often far larger than
 * memory should hold, so streaming in blocks) and live mode converts a capture device's rate to
 * the model's rate block by block on the detector thread. Both use rs_process(), which hides
 * libsamplerate's SRC_DATA bookkeeping (frames used / generated, end of input) and makes equal
 * rates an exact copy, so a 16 kHz file reaches the model bit for bit. The only allocation is
 * src_new() in rs_init(); rs_process() is safe for the real-time path. rs_buffer() is the
 * whole-buffer convenience built on the same streaming call, so both paths give identical
 * samples for the same input.
 */
#include "resample.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <samplerate.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

#define RS_MAX_RATE 768000
#define RS_MAX_CHANNELS 1024

int rs_init(struct rs *r, int in_rate, int out_rate, int channels, enum rs_quality q,
	    char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	if (in_rate < 1 || in_rate > RS_MAX_RATE || out_rate < 1 || out_rate > RS_MAX_RATE) {
		s4k_seterr(err, errlen, "sample rate %d Hz -> %d Hz is outside 1..%d Hz",
			   in_rate, out_rate, RS_MAX_RATE);
		return -EINVAL;
	}
	if (channels < 1 || channels > RS_MAX_CHANNELS) {
		s4k_seterr(err, errlen, "%d channels is outside 1..%d", channels, RS_MAX_CHANNELS);
		return -EINVAL;
	}
	double ratio = (double)out_rate / in_rate;
	if (!src_is_valid_ratio(ratio)) {
		s4k_seterr(err, errlen, "cannot resample %d Hz to %d Hz: the ratio is beyond 256",
			   in_rate, out_rate);
		return -EINVAL;
	}
	if (q != RS_BEST && q != RS_MEDIUM && q != RS_FASTEST && q != RS_LINEAR) {
		s4k_seterr(err, errlen, "unknown resampler quality %d", (int)q);
		return -EINVAL;
	}
	r->in_rate = in_rate;
	r->out_rate = out_rate;
	r->channels = channels;
	r->ratio = ratio;
	if (in_rate == out_rate)
		return 0;
	int e = 0;
	r->src = src_new((int)q, channels, &e);
	if (!r->src) {
		s4k_seterr(err, errlen, "libsamplerate: %s", src_strerror(e));
		return e == 1 /* SRC_ERR_MALLOC_FAILED, not in the public header */ ? -ENOMEM : -EINVAL;
	}
	return 0;
}

void rs_fini(struct rs *r)
{
	if (r->src)
		src_delete(r->src);
	r->src = NULL;
}

void rs_reset(struct rs *r)
{
	if (r->src)
		src_reset(r->src);
	r->done = 0;
}

size_t rs_max_out(const struct rs *r, size_t n_in)
{
	/* ceil(n_in * ratio) plus slack for the frames the filter still holds at the flush. */
	double n = ceil((double)n_in * r->ratio) + 64.0;
	return n >= (double)(SIZE_MAX / 2) ? SIZE_MAX / 2 : (size_t)n;
}

long rs_process(struct rs *r, const float *in, size_t n_in, size_t *used,
		float *out, size_t max_out, int last)
{
	*used = 0;
	if (r->done)
		return n_in ? -EINVAL : 0;
	if (n_in && !in)
		return -EINVAL;
	/* libsamplerate counts frames in long; keep each call well inside that. */
	if (n_in > LONG_MAX / 2)
		n_in = LONG_MAX / 2;
	if (max_out > LONG_MAX / 2)
		max_out = LONG_MAX / 2;
	if (!r->src) {
		size_t n = n_in < max_out ? n_in : max_out;
		if (n)
			memcpy(out, in, n * (size_t)r->channels * sizeof *out);
		*used = n;
		if (last && n == n_in && n == 0)
			r->done = 1;
		return (long)n;
	}
	if (max_out == 0)
		return n_in ? -EINVAL : 0;
	SRC_DATA d = {
		.data_in = in,
		.data_out = out,
		.input_frames = (long)n_in,
		.output_frames = (long)max_out,
		.end_of_input = last ? 1 : 0,
		.src_ratio = r->ratio,
	};
	int e = src_process(r->src, &d);
	if (e)
		return -EIO;
	*used = (size_t)d.input_frames_used;
	/* After the end of input, a call that neither consumes nor produces ends the stream. */
	if (last && d.output_frames_gen == 0 && *used == n_in)
		r->done = 1;
	return d.output_frames_gen;
}

int rs_buffer(const float *in, size_t n_in, int in_rate, int out_rate, int channels,
	      enum rs_quality q, float **out, size_t *n_out, char *err, size_t errlen)
{
	*out = NULL;
	*n_out = 0;
	struct rs r;
	int rc = rs_init(&r, in_rate, out_rate, channels, q, err, errlen);
	if (rc < 0)
		return rc;
	size_t cap = rs_max_out(&r, n_in), n = 0;
	size_t ch = (size_t)channels;
	if (cap > SIZE_MAX / sizeof(float) / ch) {
		rs_fini(&r);
		s4k_seterr(err, errlen, "%zu frames are too many to resample in one buffer", n_in);
		return -ENOMEM;
	}
	float *y = malloc(cap * ch * sizeof *y);
	if (!y) {
		rs_fini(&r);
		s4k_seterr(err, errlen, "out of memory resampling %zu frames", n_in);
		return -ENOMEM;
	}
	size_t pos = 0;
	for (;;) {
		if (cap - n < 256) {
			size_t ncap = cap + cap / 2 + 256;
			float *t = ncap < SIZE_MAX / sizeof(float) / ch ?
				realloc(y, ncap * ch * sizeof *y) : NULL;
			if (!t) {
				free(y);
				rs_fini(&r);
				s4k_seterr(err, errlen, "out of memory resampling %zu frames", n_in);
				return -ENOMEM;
			}
			y = t;
			cap = ncap;
		}
		size_t used;
		long got = rs_process(&r, in ? in + pos * ch : NULL, n_in - pos, &used,
				      y + n * ch, cap - n, 1);
		if (got < 0) {
			free(y);
			rs_fini(&r);
			s4k_seterr(err, errlen, "libsamplerate failed while resampling %d Hz to %d Hz",
				   in_rate, out_rate);
			return (int)got;
		}
		pos += used;
		n += (size_t)got;
		if (got == 0 && pos == n_in)
			break;
	}
	rs_fini(&r);
	*out = y;
	*n_out = n;
	return 0;
}
