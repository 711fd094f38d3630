/* resample.h - sample-rate conversion (libsamplerate), streaming or whole buffers.
 *
 * Usage:
 *   struct rs r;
 *   if (rs_init(&r, 44100, 16000, 1, RS_BEST, err, sizeof err) < 0) ...   // caller storage
 *   size_t used;
 *   long n = rs_process(&r, in, n_in, &used, out, rs_max_out(&r, n_in), 0);   // any block sizes
 *   ...                                              // feed in[used..] again next time
 *   n = rs_process(&r, NULL, 0, &used, out, max, 1); // at end of input: flush (repeat until 0)
 *   rs_fini(&r);
 *
 *   float *y; size_t ny;                             // or all at once (file mode, tests)
 *   rs_buffer(x, nx, 8000, 16000, 1, RS_BEST, &y, &ny, err, sizeof err);  // mono; free(y)
 *
 * Frames are interleaved when channels > 1. When the rates are equal the converter is a plain
 * copy (bit exact, no delay). libsamplerate's output is time-aligned with its input (the filter
 * delay is compensated internally), so n input frames always give about n * out_rate / in_rate
 * output frames in total, the last of them only after the flush.
 * Threads: a struct rs belongs to one thread at a time; rs_process() never allocates or locks.
 */
#ifndef S4KWS_AUDIO_RESAMPLE_H
#define S4KWS_AUDIO_RESAMPLE_H

#include <stddef.h>

/* Converter quality, best to cheapest (libsamplerate's converter types). */
enum rs_quality {
	RS_BEST = 0,     /* SRC_SINC_BEST_QUALITY: 97 dB SNR, 97 % bandwidth; about 2 Msamples/s */
	RS_MEDIUM = 1,   /* SRC_SINC_MEDIUM_QUALITY: 97 dB, 90 % bandwidth */
	RS_FASTEST = 2,  /* SRC_SINC_FASTEST: 97 dB, 80 % bandwidth */
	RS_LINEAR = 4,   /* SRC_LINEAR: cheap, aliasing; only for tests and emergencies */
};

struct rs {
	void *src;           /* SRC_STATE *, NULL when in_rate == out_rate (copy) */
	int in_rate, out_rate;  /* Hz */
	int channels;
	double ratio;        /* out_rate / in_rate */
	int done;            /* the flush has been fully delivered */
};

/* Prepare a converter from in_rate to out_rate (Hz, each 1..768000, ratio within 1/256..256)
 * for `channels` interleaved channels (1..1024). Returns 0, -EINVAL (bad rates or channels;
 * sentence in err) or -ENOMEM. On failure r needs no rs_fini(). */
int rs_init(struct rs *r, int in_rate, int out_rate, int channels, enum rs_quality q,
	    char *err, size_t errlen);
void rs_fini(struct rs *r);
/* Forget all buffered input: the next rs_process() starts a new stream. No allocation. */
void rs_reset(struct rs *r);

/* Upper bound of the frames one rs_process() call can write for n_in input frames (flush
 * included), for sizing `out`. */
size_t rs_max_out(const struct rs *r, size_t n_in);

/* Convert: reads up to n_in frames from in (frames x channels), sets *used to the frames it
 * consumed, writes up to max_out frames to out and returns how many (0 is normal while the
 * filter fills). last = 1 marks the end of input: call again with last = 1 (in may then be NULL)
 * until it returns 0 to get every output frame. Returns -EINVAL on misuse (max_out == 0 with
 * input left, or input after the end) or -EIO on a libsamplerate error. No allocation. */
long rs_process(struct rs *r, const float *in, size_t n_in, size_t *used,
		float *out, size_t max_out, int last);

/* Whole-buffer conversion into a new malloc()ed buffer (*out, *n_out frames, caller frees;
 * *out is a valid malloc()ed pointer even when *n_out == 0). Returns 0, -EINVAL or -ENOMEM. */
int rs_buffer(const float *in, size_t n_in, int in_rate, int out_rate, int channels,
	      enum rs_quality q, float **out, size_t *n_out, char *err, size_t errlen);

#endif
