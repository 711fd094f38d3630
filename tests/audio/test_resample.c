/* test_resample.c - rs_: exact copy at equal rates, lengths, sine fidelity, streaming in odd
 * blocks equals the whole-buffer call, stereo channel independence, argument checks. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/resample.h"
#include "tests/check.h"

static float *sine(size_t n, double f, int rate, double amp)
{
	float *x = malloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(amp * sin(2 * M_PI * f * (double)i / rate));
	return x;
}

/* Largest error against the ideal sine, away from the edges (the filter rings there). */
static double sine_err(const float *y, size_t n, double f, int rate, double amp)
{
	double worst = 0;
	for (size_t i = n / 10; i < n - n / 10; i++) {
		double e = fabs(y[i] - amp * sin(2 * M_PI * f * (double)i / rate));
		if (e > worst)
			worst = e;
	}
	return worst;
}

static void test_copy(void)
{
	float *x = sine(1000, 440, 16000, 0.5), *y;
	size_t ny;
	char err[256];
	CHECK_EQ(rs_buffer(x, 1000, 16000, 16000, 1, RS_BEST, &y, &ny, err, sizeof err), 0);
	CHECK_EQ(ny, 1000);
	CHECK(!memcmp(x, y, 1000 * sizeof *x), "equal rates must copy bit for bit");
	free(y);
	free(x);
}

static void test_rates(void)
{
	static const int rates[][2] = {{44100, 16000}, {8000, 16000}, {48000, 16000},
				       {16000, 22050}, {11025, 16000}};
	for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
		int a = rates[k][0], b = rates[k][1];
		size_t n = (size_t)a;   /* one second */
		float *x = sine(n, 1000, a, 0.5), *y;
		size_t ny;
		char err[256] = "";
		int rc = rs_buffer(x, n, a, b, 1, RS_BEST, &y, &ny, err, sizeof err);
		CHECK_EQ(rc, 0);
		/* one second in, one second out, to within a frame or two */
		CHECK(labs((long)ny - b) <= 2, "%d -> %d Hz: %zu frames out", a, b, ny);
		double e = sine_err(y, ny < (size_t)b ? ny : (size_t)b, 1000, b, 0.5);
		CHECK(e < 1e-3, "%d -> %d Hz: 1 kHz sine error %g", a, b, e);
		free(y);
		free(x);
	}
}

/* Streaming with awkward block sizes gives the same samples as one call. */
static void test_stream_equals_buffer(void)
{
	size_t n = 44100 * 2;
	float *x = malloc(n * sizeof *x);
	unsigned s = 12345;
	for (size_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = (float)((int)(s >> 16 & 0xffff) - 32768) / 32768.0f * 0.3f;
	}
	float *ref;
	size_t nref;
	char err[256];
	CHECK_EQ(rs_buffer(x, n, 44100, 16000, 1, RS_BEST, &ref, &nref, err, sizeof err), 0);

	struct rs r;
	CHECK_EQ(rs_init(&r, 44100, 16000, 1, RS_BEST, err, sizeof err), 0);
	float *y = malloc((nref + 1024) * sizeof *y);
	size_t pos = 0, ny = 0, blk = 1;
	int guard = 0;
	for (;;) {
		size_t used, take = pos + blk > n ? n - pos : blk;
		size_t room = 37;   /* small output room forces partial consumption */
		if (ny + room > nref + 1024)
			room = nref + 1024 - ny;
		long got = rs_process(&r, x + pos, take, &used, y + ny, room, pos + take == n);
		CHECK(got >= 0, "rs_process returned %ld", got);
		if (got < 0 || ++guard > 1000000)
			break;
		pos += used;
		ny += (size_t)got;
		blk = blk * 7 % 1999 + 1;
		if (got == 0 && pos == n && used == 0)
			break;
	}
	rs_fini(&r);
	CHECK_EQ(ny, nref);
	double worst = 0;
	for (size_t i = 0; i < ny && i < nref; i++)
		if (fabs(y[i] - ref[i]) > worst)
			worst = fabs(y[i] - ref[i]);
	CHECK(worst < 1e-6, "streaming differs from whole buffer by %g", worst);
	free(y);
	free(ref);
	free(x);
}

static void test_stereo(void)
{
	size_t n = 8000;
	float *x = malloc(2 * n * sizeof *x);
	for (size_t i = 0; i < n; i++) {
		x[2 * i] = (float)(0.5 * sin(2 * M_PI * 500 * (double)i / 8000));
		x[2 * i + 1] = 0.0f;
	}
	float *y;
	size_t ny;
	char err[256];
	CHECK_EQ(rs_buffer(x, n, 8000, 16000, 2, RS_BEST, &y, &ny, err, sizeof err), 0);
	CHECK(labs((long)ny - 16000) <= 2, "%zu frames", ny);
	double left = 0, right = 0;
	for (size_t i = 0; i < ny; i++) {
		left = fmax(left, fabs(y[2 * i]));
		right = fmax(right, fabs(y[2 * i + 1]));
	}
	CHECK(left > 0.45 && left < 0.55, "left peak %g", left);
	CHECK(right < 1e-6, "silent right channel picked up %g", right);
	free(y);
	free(x);
}

static void test_args(void)
{
	struct rs r;
	char err[256] = "";
	CHECK_EQ(rs_init(&r, 0, 16000, 1, RS_BEST, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "0 Hz") != NULL, "err: %s", err);
	err[0] = 0;
	CHECK_EQ(rs_init(&r, 16000, 16000, 0, RS_BEST, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "channels") != NULL, "err: %s", err);
	err[0] = 0;
	CHECK_EQ(rs_init(&r, 10, 16000, 1, RS_BEST, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "256") != NULL, "err: %s", err);
	CHECK_EQ(rs_init(&r, 16000, 8000, 1, (enum rs_quality)3, err, sizeof err), -EINVAL);
	/* empty input is fine */
	float *y;
	size_t ny;
	CHECK_EQ(rs_buffer(NULL, 0, 8000, 16000, 1, RS_BEST, &y, &ny, err, sizeof err), 0);
	CHECK_EQ(ny, 0);
	CHECK(y != NULL, "empty result must still be a buffer");
	free(y);
}

int main(void)
{
	test_copy();
	test_rates();
	test_stream_equals_buffer();
	test_stereo();
	test_args();
	return CHECK_DONE();
}
