/* test_audiofile.c - af_: every container we write with libsndfile reads back, mixing and
 * channel selection, rate conversion, af_limit_rate's band limit (the band above it gone, the
 * band below and the length kept, bit-exact no-op at or below the limit, rewind, block reads,
 * errors still reported), memory input equals file input, block reads of any size,
 * and every kind of bad input (missing, directory, empty, garbage, truncated WAV / FLAC / Ogg)
 * gives NULL or a negative errno with a sentence, never a crash. Files go to a temp directory. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/audiofile.h"
#include "tests/check.h"

static char dir[256];

static const char *tmp(const char *name)
{
	static char p[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
	return p[k];
}

/* Deterministic test signal: a chirp-ish sum, amplitude below 0.8. */
static float sig(size_t i, int rate, int ch)
{
	double t = (double)i / rate;
	return (float)(0.4 * sin(2 * M_PI * 300 * t * (1 + ch)) + 0.3 * sin(2 * M_PI * 1234 * t));
}

static int write_file(const char *path, int format, int rate, int channels, size_t frames)
{
	SF_INFO in = {.samplerate = rate, .channels = channels, .format = format};
	SNDFILE *f = sf_open(path, SFM_WRITE, &in);
	if (!f) {
		printf("cannot write %s: %s\n", path, sf_strerror(NULL));
		return -1;
	}
	float *b = malloc(frames * (size_t)channels * sizeof *b);
	for (size_t i = 0; i < frames; i++)
		for (int c = 0; c < channels; c++)
			b[i * (size_t)channels + (size_t)c] = sig(i, rate, c);
	sf_writef_float(f, b, (sf_count_t)frames);
	free(b);
	sf_close(f);
	return 0;
}

static long read_all(struct af_file *f, float **out, char *err, size_t errlen)
{
	size_t n;
	int rc = af_load(f, 100000000, out, &n, err, errlen);
	return rc < 0 ? rc : (long)n;
}

/* Read everything with af_read_mono() in blocks of changing odd sizes (1, 14, 183, ...) into a
 * new buffer of room for 2 * expect frames (caller frees). Returns the frames read; the last
 * af_read_mono() result, which should be 0, goes to *last. */
static long read_odd_blocks(struct af_file *f, long expect, float **out, long *last)
{
	char err[256];
	float *y = malloc((size_t)expect * 2 * sizeof *y);
	long n = 0, got;
	size_t blk = 1;
	while ((got = af_read_mono(f, y + n, blk, err, sizeof err)) > 0) {
		n += got;
		blk = blk * 13 % 4093 + 1;
		if (n + (long)blk > 2 * expect)
			blk = 1;
	}
	*last = got;
	*out = y;
	return n;
}

static void test_formats(void)
{
	static const struct { const char *name; int format; double tol; } fm[] = {
		{"a.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1.0 / 16384},
		{"a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1.0 / 16384},
		{"a.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_24, 1e-6},
		{"a.caf", SF_FORMAT_CAF | SF_FORMAT_FLOAT, 1e-7},
		{"a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 0.2},   /* lossy: RMS bound below */
		{"a.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 0.2},
	};
	for (size_t k = 0; k < sizeof fm / sizeof fm[0]; k++) {
		const char *p = tmp(fm[k].name);
		if (write_file(p, fm[k].format, 16000, 1, 16000) < 0) {
			CHECK(0, "could not write %s", fm[k].name);
			continue;
		}
		char err[256] = "";
		struct af_file *f = af_open(p, err, sizeof err);
		CHECK(f != NULL, "%s: %s", fm[k].name, err);
		if (!f)
			continue;
		CHECK_EQ(af_info(f)->rate, 16000);
		CHECK_EQ(af_info(f)->channels, 1);
		float *x;
		long n = read_all(f, &x, err, sizeof err);
		CHECK_EQ(n, 16000);
		double worst = 0, se = 0;
		for (long i = 0; i < n; i++) {
			double e = fabs(x[i] - sig((size_t)i, 16000, 0));
			worst = fmax(worst, e);
			if (i >= 1600 && i < n - 1600)
				se += e * e;
		}
		if (fm[k].tol < 0.1) {
			CHECK(worst <= fm[k].tol, "%s: max error %g", fm[k].name, worst);
		} else {
			/* lossy codecs: RMS error away from the edges (the codec's warm-up), and the
			 * samples must be aligned in time (a one-sample shift of the 1234 Hz tone
			 * alone gives an RMS error near 0.1) */
			double rms = sqrt(se / (double)(n - 3200));
			CHECK(rms <= 0.03, "%s: RMS error %g", fm[k].name, rms);
		}
		free(x);
		af_close(f);
	}
}

static void test_mix_channel_rate(void)
{
	const char *p = tmp("st44.wav");
	write_file(p, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 2, 44100);
	char err[256] = "";
	struct af_file *f = af_open(p, err, sizeof err);
	CHECK(f != NULL, "%s", err);
	if (!f)
		return;
	CHECK_EQ(af_info(f)->channels, 2);
	CHECK_EQ(af_info(f)->frames, 44100);
	float *x;
	long n = read_all(f, &x, err, sizeof err);
	CHECK_EQ(n, 44100);
	double worst = 0;
	for (long i = 0; i < n; i++)
		worst = fmax(worst, fabs(x[i] - 0.5f * (sig((size_t)i, 44100, 0) +
							 sig((size_t)i, 44100, 1))));
	CHECK(worst < 1e-6, "mix error %g", worst);
	free(x);

	CHECK_EQ(af_rewind(f, err, sizeof err), 0);
	CHECK_EQ(af_set_output(f, 1, 0, RS_BEST, err, sizeof err), 0);
	n = read_all(f, &x, err, sizeof err);
	CHECK_EQ(n, 44100);
	worst = 0;
	for (long i = 0; i < n; i++)
		worst = fmax(worst, fabs(x[i] - sig((size_t)i, 44100, 1)));
	CHECK(worst < 1e-6, "channel 1 error %g", worst);
	free(x);

	CHECK_EQ(af_set_output(f, 2, 0, RS_BEST, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "channel 2") != NULL, "err: %s", err);

	/* 44.1 kHz -> 16 kHz of channel 0: a 300 Hz + 1234 Hz tone survives the conversion */
	CHECK_EQ(af_rewind(f, err, sizeof err), 0);
	CHECK_EQ(af_set_output(f, 0, 16000, RS_BEST, err, sizeof err), 0);
	n = read_all(f, &x, err, sizeof err);
	CHECK(labs(n - 16000) <= 2, "%ld frames at 16 kHz", n);
	worst = 0;
	for (long i = 1600; i < n - 1600; i++)
		worst = fmax(worst, fabs(x[i] - sig((size_t)i, 16000, 0)));
	CHECK(worst < 1e-3, "resampled error %g", worst);
	free(x);
	af_close(f);
}

/* Reading in blocks of any size gives the same samples as one load; memory input equals path. */
static void test_blocks_and_memory(void)
{
	const char *p = tmp("long.flac");
	write_file(p, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 22050, 3, 3 * 22050 + 17);
	char err[256] = "";
	struct af_file *f = af_open(p, err, sizeof err);
	CHECK(f != NULL, "%s", err);
	if (!f)
		return;
	af_set_output(f, AF_MIX, 16000, RS_MEDIUM, err, sizeof err);
	float *ref;
	long nref = read_all(f, &ref, err, sizeof err);
	CHECK(nref > 47000, "%ld", nref);
	af_close(f);

	FILE *fp = fopen(p, "rb");
	fseek(fp, 0, SEEK_END);
	long len = ftell(fp);
	rewind(fp);
	unsigned char *buf = malloc((size_t)len);
	CHECK_EQ(fread(buf, 1, (size_t)len, fp), len);
	fclose(fp);
	f = af_open_memory(buf, (size_t)len, err, sizeof err);
	CHECK(f != NULL, "memory: %s", err);
	if (f) {
		af_set_output(f, AF_MIX, 16000, RS_MEDIUM, err, sizeof err);
		float *y;
		long got, n = read_odd_blocks(f, nref, &y, &got);
		CHECK_EQ(got, 0);
		CHECK_EQ(n, nref);
		double worst = 0;
		for (long i = 0; i < n && i < nref; i++)
			worst = fmax(worst, fabs(y[i] - ref[i]));
		CHECK(worst < 1e-6, "block reads differ by %g", worst);
		CHECK_EQ(af_frames_read(f), 3 * 22050 + 17);
		free(y);
		af_close(f);
	}
	free(buf);
	free(ref);

	/* af_load's limit */
	f = af_open(p, err, sizeof err);
	float *x;
	size_t n;
	CHECK_EQ(af_load(f, 1000, &x, &n, err, sizeof err), -EFBIG);
	CHECK(strstr(err, "longer than") != NULL, "err: %s", err);
	af_close(f);
}

static void truncate_half(const char *src, const char *dst)
{
	FILE *a = fopen(src, "rb");
	fseek(a, 0, SEEK_END);
	long len = ftell(a);
	rewind(a);
	char *b = malloc((size_t)len);
	CHECK_EQ(fread(b, 1, (size_t)len, a), len);
	fclose(a);
	FILE *o = fopen(dst, "wb");
	fwrite(b, 1, (size_t)len / 2, o);
	fclose(o);
	free(b);
}

/* Open fails (NULL + sentence containing `want`), or reading fails with -EBADMSG. */
static void expect_bad(const char *path, const char *want)
{
	char err[256] = "";
	struct af_file *f = af_open(path, err, sizeof err);
	if (f) {
		float *x;
		long n = read_all(f, &x, err, sizeof err);
		CHECK(n == -EBADMSG, "%s: read gave %ld, want -EBADMSG", path, n);
		if (n >= 0)
			free(x);
		af_close(f);
	}
	CHECK(strstr(err, want) != NULL, "%s: err '%s' lacks '%s'", path, err, want);
	CHECK(strlen(err) > 10, "%s: no sentence", path);
}

static void test_bad(void)
{
	expect_bad(tmp("missing.wav"), "No such file");
	expect_bad(dir, "directory");
	FILE *e = fopen(tmp("empty.wav"), "wb");
	fclose(e);
	expect_bad(tmp("empty.wav"), "empty");
	FILE *g = fopen(tmp("garbage.wav"), "wb");
	unsigned s = 7;
	for (int i = 0; i < 5000; i++) {
		s = s * 1103515245u + 12345u;
		fputc((int)(s >> 16) & 0xff, g);
	}
	fclose(g);
	expect_bad(tmp("garbage.wav"), "not an audio format");
	FILE *t = fopen(tmp("text.flac"), "wb");
	fputs("this is not a flac file at all, just text\n", t);
	fclose(t);
	expect_bad(tmp("text.flac"), "not an audio format");

	/* truncated copies of valid files */
	truncate_half(tmp("a.wav"), tmp("half.wav"));
	expect_bad(tmp("half.wav"), "truncated");
	truncate_half(tmp("long.flac"), tmp("half.flac"));
	expect_bad(tmp("half.flac"), "truncated");
	truncate_half(tmp("a.ogg"), tmp("half.ogg"));
	expect_bad(tmp("half.ogg"), "truncated");

	/* a zero-frame WAV opens and reads as empty: the caller decides what that means */
	write_file(tmp("zero.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 0);
	char err[256];
	struct af_file *f = af_open(tmp("zero.wav"), err, sizeof err);
	CHECK(f != NULL, "%s", err);
	if (f) {
		float *x;
		CHECK_EQ(read_all(f, &x, err, sizeof err), 0);
		free(x);
		af_close(f);
	}
	CHECK(af_open_memory("", 0, err, sizeof err) == NULL, "empty memory must fail");
	CHECK(af_open_memory("RIFF1234WAVE", 12, err, sizeof err) == NULL, "a bare header must fail");
}

/* af_limit_rate: a 16 kHz file limited to 8 kHz keeps 1 kHz and loses 6 kHz; length, block
 * reads, rewind and channel selection behave as without it; a no-op at or below the limit. */
static float two_tones(size_t i, int rate, int ch)
{
	double t = (double)i / rate;
	return (float)(0.4 * sin(2 * M_PI * (1000 + 500 * ch) * t) + 0.3 * sin(2 * M_PI * 6000 * t));
}

static void test_limit_rate(void)
{
	const size_t N = 40000;   /* 2.5 s at 16 kHz: more than two decode blocks */
	const char *p = tmp("tones16.wav");
	SF_INFO in = {.samplerate = 16000, .channels = 2, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
	SNDFILE *sf = sf_open(p, SFM_WRITE, &in);
	CHECK(sf != NULL, "cannot write %s", p);
	if (!sf)
		return;
	float *b = malloc(N * 2 * sizeof *b);
	for (size_t i = 0; i < N; i++)
		for (int c = 0; c < 2; c++)
			b[i * 2 + (size_t)c] = two_tones(i, 16000, c);
	sf_writef_float(sf, b, (sf_count_t)N);
	sf_close(sf);
	free(b);

	char err[256] = "";
	struct af_file *f = af_open(p, err, sizeof err);
	CHECK(f != NULL, "%s", err);
	if (!f)
		return;
	CHECK_EQ(af_limit_rate(f, -5, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "-5 Hz") != NULL, "err: %s", err);
	CHECK_EQ(af_set_output(f, 0, 16000, RS_BEST, err, sizeof err), 0);
	CHECK_EQ(af_limit_rate(f, 8000, err, sizeof err), 0);
	float *x;
	long n = read_all(f, &x, err, sizeof err);
	CHECK(labs(n - (long)N) <= 2, "%ld frames, want about %zu", n, N);
	/* away from the edges only the 1 kHz tone is left (the 6 kHz one alone is 0.3) */
	double worst = 0;
	for (long i = 1600; i < n - 1600; i++)
		worst = fmax(worst, fabs(x[i] - 0.4 * sin(2 * M_PI * 1000 * (double)i / 16000)));
	CHECK(worst < 2e-3, "band-limited error %g", worst);
	CHECK_EQ(af_frames_read(f), N);

	/* rewind keeps the limit and gives the same samples; so do reads in odd blocks */
	CHECK_EQ(af_rewind(f, err, sizeof err), 0);
	float *y;
	long got, m = read_odd_blocks(f, n, &y, &got);
	CHECK_EQ(got, 0);
	CHECK_EQ(m, n);
	CHECK(m == n && !memcmp(x, y, (size_t)n * sizeof *x), "rewound block reads differ");
	free(y);
	free(x);

	/* channel 1 (1.5 kHz) through the limit, then the limit off again: the exact samples */
	CHECK_EQ(af_rewind(f, err, sizeof err), 0);
	CHECK_EQ(af_set_output(f, 1, 16000, RS_BEST, err, sizeof err), 0);
	n = read_all(f, &x, err, sizeof err);
	worst = 0;
	for (long i = 1600; i < n - 1600; i++)
		worst = fmax(worst, fabs(x[i] - 0.4 * sin(2 * M_PI * 1500 * (double)i / 16000)));
	CHECK(worst < 2e-3, "channel 1 band-limited error %g", worst);
	free(x);
	/* a limit just below the file's rate (its blocks grow by the converter's slack): both
	 * tones pass, nothing is lost at the block joins */
	CHECK_EQ(af_rewind(f, err, sizeof err), 0);
	CHECK_EQ(af_limit_rate(f, 15990, err, sizeof err), 0);
	n = read_all(f, &x, err, sizeof err);
	CHECK(labs(n - (long)N) <= 2, "limit 15990: %ld frames", n);
	worst = 0;
	for (long i = 1600; i < n - 1600; i++)
		worst = fmax(worst, fabs(x[i] - two_tones((size_t)i, 16000, 1)));
	CHECK(worst < 5e-3, "limit 15990: error %g", worst);
	free(x);
	CHECK_EQ(af_rewind(f, err, sizeof err), 0);
	CHECK_EQ(af_limit_rate(f, 0, err, sizeof err), 0);
	n = read_all(f, &x, err, sizeof err);
	CHECK_EQ(n, (long)N);
	worst = 0;
	for (long i = 0; i < n; i++)
		worst = fmax(worst, fabs(x[i] - two_tones((size_t)i, 16000, 1)));
	CHECK(worst == 0.0, "limit off: error %g", worst);
	free(x);
	af_close(f);

	/* at or below the limit nothing changes, bit for bit (an 8 kHz file, limit 8000 and 12000) */
	const char *q = tmp("low8.wav");
	write_file(q, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, 12000);
	float *ref = NULL;
	long nref = -1;
	for (int lim = 0; lim <= 12000; lim += 4000) {
		if (lim == 4000)
			continue;
		f = af_open(q, err, sizeof err);
		CHECK(f != NULL, "%s", err);
		if (!f)
			continue;
		CHECK_EQ(af_limit_rate(f, lim, err, sizeof err), 0);
		CHECK_EQ(af_set_output(f, AF_MIX, 16000, RS_BEST, err, sizeof err), 0);
		n = read_all(f, &x, err, sizeof err);
		if (!ref) {
			ref = x;
			nref = n;
		} else {
			CHECK(n == nref && !memcmp(x, ref, (size_t)n * sizeof *x),
			      "limit %d changed an 8 kHz file", lim);
			free(x);
		}
		af_close(f);
	}
	free(ref);

	/* a truncated FLAC still fails through the extra converter */
	write_file(tmp("long16.flac"), SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, 48000);
	truncate_half(tmp("long16.flac"), tmp("half16.flac"));
	f = af_open(tmp("half16.flac"), err, sizeof err);
	if (f) {
		CHECK_EQ(af_limit_rate(f, 8000, err, sizeof err), 0);
		n = read_all(f, &x, err, sizeof err);
		CHECK(n == -EBADMSG, "truncated FLAC under a limit: %ld", n);
		CHECK(strstr(err, "truncated") != NULL, "err: %s", err);
		if (n >= 0)
			free(x);
		af_close(f);
	}
}

/* Non-finite and absurd samples in a float file: zeros out, counted (af_scrubbed), the same
 * samples as the clean file with those set to zero, for af_read_mono (mix and a channel, with
 * resampling) and af_read; a rewind starts the count again. */
static void test_scrub(void)
{
	const char *bad = tmp("nan.wav"), *good = tmp("zeroed.wav");
	const size_t N = 8000;
	float *b = malloc(2 * N * sizeof *b), *g = malloc(2 * N * sizeof *g);
	for (size_t i = 0; i < N; i++)
		for (size_t c = 0; c < 2; c++)
			b[2 * i + c] = g[2 * i + c] = sig(i, 16000, (int)c);
	size_t at[] = {10, 4000, 4001, 7999}; /* NaN, +inf, 3e38, 65 on channel 1 (65 > AF_MAX_ABS) */
	float val[] = {NAN, INFINITY, 3e38f, 65.0f};
	for (int k = 0; k < 4; k++) {
		b[2 * at[k] + 1] = val[k];
		g[2 * at[k] + 1] = 0.0f;
	}
	b[2 * 20] = -64.0f; /* at the limit: kept */
	g[2 * 20] = -64.0f;
	SF_INFO in = {.samplerate = 16000, .channels = 2, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
	SNDFILE *sb = sf_open(bad, SFM_WRITE, &in);
	SF_INFO in2 = in;
	SNDFILE *sg = sf_open(good, SFM_WRITE, &in2);
	CHECK(sb && sg, "write the float files");
	sf_writef_float(sb, b, (sf_count_t)N);
	sf_writef_float(sg, g, (sf_count_t)N);
	sf_close(sb);
	sf_close(sg);
	char err[256];
	int outs[][2] = {{AF_MIX, 16000}, {1, 16000}, {AF_MIX, 8000}};
	for (int o = 0; o < 3; o++) {
		struct af_file *fb = af_open(bad, err, sizeof err), *fg = af_open(good, err, sizeof err);
		CHECK(fb && fg, "open: %s", err);
		if (!fb || !fg)
			break;
		CHECK_EQ(af_set_output(fb, outs[o][0], outs[o][1], RS_BEST, err, sizeof err), 0);
		CHECK_EQ(af_set_output(fg, outs[o][0], outs[o][1], RS_BEST, err, sizeof err), 0);
		float *xb, *xg;
		long nb = read_all(fb, &xb, err, sizeof err), ng = read_all(fg, &xg, err, sizeof err);
		CHECK(nb > 0 && nb == ng && !memcmp(xb, xg, (size_t)nb * sizeof *xb),
		      "output %d: the scrubbed file reads as the zeroed one (%ld, %ld frames)", o, nb, ng);
		CHECK_EQ(af_scrubbed(fb), 4);
		CHECK_EQ(af_scrubbed(fg), 0);
		CHECK_EQ(af_rewind(fb, err, sizeof err), 0);
		CHECK_EQ(af_scrubbed(fb), 0);
		free(xb);
		free(xg);
		af_close(fb);
		af_close(fg);
	}
	struct af_file *f = af_open(bad, err, sizeof err);
	float *raw = malloc(2 * N * sizeof *raw);
	CHECK(f && af_read(f, raw, N, err, sizeof err) == (long)N && !memcmp(raw, g, 2 * N * sizeof *raw) &&
		      af_scrubbed(f) == 4, "af_read scrubs too");
	if (f)
		af_close(f);
	free(raw);
	free(b);
	free(g);
}

static void test_names(void)
{
	CHECK(af_is_audio_name("x/y.WAV"), "WAV");
	CHECK(af_is_audio_name("y.flac"), "flac");
	CHECK(af_is_audio_name("a.b/y.opus"), "opus");
	CHECK(!af_is_audio_name("readme.txt"), "txt");
	CHECK(!af_is_audio_name("x.wav/readme"), "no extension");
	CHECK(!af_is_audio_name(".wav"), "hidden name only");
}

int main(void)
{
	snprintf(dir, sizeof dir, "%s/test_audiofile.XXXXXX", P_tmpdir);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_formats();
	test_mix_channel_rate();
	test_blocks_and_memory();
	test_bad();
	test_limit_rate();
	test_scrub();
	test_names();
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return CHECK_DONE();
}
