/* test_isolate.c - uploads decoded in a confined child (daemon/isolate.c): a WAV in memory
 * decodes to the same samples through the child (with the seccomp filter on), a non-audio body
 * is 415 and a damaged WAV 400, and the child really is confined: opening a file or a socket
 * fails there (not checked under AddressSanitizer, where the filter is not installed).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "daemon/isolate.h"

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }

/* A 16-bit mono 16 kHz WAV of n samples of a 440 Hz tone at half scale. */
static unsigned char *wav(size_t n, size_t *len)
{
	*len = 44 + 2 * n;
	unsigned char *b = calloc(1, *len);
	memcpy(b, "RIFF", 4);
	put32(b + 4, (uint32_t)(*len - 8));
	memcpy(b + 8, "WAVEfmt ", 8);
	put32(b + 16, 16);
	put16(b + 20, 1);
	put16(b + 22, 1);
	put32(b + 24, 16000);
	put32(b + 28, 32000);
	put16(b + 32, 2);
	put16(b + 34, 16);
	memcpy(b + 36, "data", 4);
	put32(b + 40, (uint32_t)(2 * n));
	for (size_t i = 0; i < n; i++)
		put16(b + 44 + 2 * i, (unsigned)(int16_t)lrint(16384 * sin(2 * M_PI * 440 * (double)i / 16000)) & 0xffff);
	return b;
}

int main(void)
{
	size_t len, n = 0;
	unsigned char *b = wav(8000, &len);
	float *x = NULL;
	uint64_t bad = 0;
	char err[256] = "";
	int st = iso_decode(b, len, 16000, 0, 16000 * 10, &x, &n, &bad, err, sizeof err);
	CHECK(st == 0 && n == 8000 && x, "a WAV decodes in the child: status %d, %zu samples, %s", st, n, err);
	double worst = 0;
	for (size_t i = 0; x && i < n; i++) {
		double want = lrint(16384 * sin(2 * M_PI * 440 * (double)i / 16000)) / 32768.0;
		worst = fabs(x[i] - want) > worst ? fabs(x[i] - want) : worst;
	}
	CHECK(worst < 1e-6, "the same samples (largest difference %g)", worst);
	free(x);
	x = NULL;
	st = iso_decode("hello, not audio", 16, 16000, 0, 16000, &x, &n, &bad, err, sizeof err);
	CHECK(st == 415 && !x, "not audio: %d (%s)", st, err);
	memset(b + 20, 0x7f, 16); /* a damaged format chunk */
	st = iso_decode(b, len, 16000, 0, 16000 * 10, &x, &n, &bad, err, sizeof err);
	CHECK(st == 400 || st == 415, "a damaged WAV: %d (%s)", st, err);
	free(x);
	free(b);
#ifdef __SANITIZE_ADDRESS__
	CHECK(iso_confined() == 0, "AddressSanitizer build: no filter");
#else
	CHECK(iso_confined() == 1, "the decoding child cannot open files or sockets");
#endif
	return CHECK_DONE();
}
