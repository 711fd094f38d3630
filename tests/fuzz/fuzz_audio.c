/* fuzz_audio.c - libFuzzer entry point for the decoding of untrusted audio: any bytes through
 * the steps an upload takes in its decoding child (daemon/isolate.c): af_open_memory()
 * (libsndfile: WAV, FLAC, Ogg, MP3, ...), a mono mix resampled to 16 kHz (libsamplerate),
 * band-limited to 8 kHz, and af_load() of at most 2 s. Besides "no crash" (ASan/UBSan; the
 * codecs' own known leaks are why uploads are decoded in a child, so leak checking is off for
 * this target): a refusal is one line, and every decoded sample is a finite number in [-64, 64]
 * (audio/audiofile.c replaces the others with zeros and counts them).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audiofile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	struct af_file *f = af_open_memory(data, size, err, sizeof err);
	if (!f) {
		size_t n = strnlen(err, sizeof err);
		if (n == 0 || memchr(err, '\n', n))
			abort();
		return 0;
	}
	float *x = NULL;
	size_t n = 0;
	int rc = af_set_output(f, AF_MIX, 16000, RS_BEST, err, sizeof err);
	if (rc == 0)
		rc = af_limit_rate(f, 8000, err, sizeof err);
	if (rc == 0)
		rc = af_load(f, 2 * 16000, &x, &n, err, sizeof err);
	if (rc == 0) {
		if (n > 2 * 16000)
			abort();
		for (size_t i = 0; i < n; i++)
			if (!isfinite(x[i]) || fabsf(x[i]) > 64.0f)
				abort();
	} else if (!err[0] || memchr(err, '\n', strnlen(err, sizeof err))) {
		abort();
	}
	free(x);
	af_close(f);
	return 0;
}
