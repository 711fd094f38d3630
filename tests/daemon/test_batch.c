/* test_batch.c - batch_: --shard parsing and its partition (every path in exactly one shard,
 * roughly even, independent of order), and the done set of --skip-done (error records and a
 * cut last line do not count; a missing file is empty). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/batch.h"
#include "tests/check.h"

static void test_shard(void)
{
	int k, n;
	char err[256];
	CHECK(batch_parse_shard("3/8", &k, &n, err, sizeof err) == 0 && k == 3 && n == 8, "3/8");
	const char *bad[] = {"0/4", "5/4", "1/0", "2", "1/4x", "a/b", "-1/4", "1/2000000"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(batch_parse_shard(bad[i], &k, &n, err, sizeof err) == -EINVAL && strstr(err, "--shard"),
		      "'%s' refused", bad[i]);
	int count[7] = {0}, once = 1;
	for (int i = 0; i < 7000; i++) {
		char p[64];
		snprintf(p, sizeof p, "/data/clips/speaker%04d/take_%d.flac", i / 7, i % 7);
		int in = 0;
		for (int s = 1; s <= 7; s++)
			if (batch_in_shard(p, s, 7)) {
				in++;
				count[s - 1]++;
			}
		once &= in == 1;
	}
	CHECK(once, "every path in exactly one shard");
	for (int s = 0; s < 7; s++)
		CHECK(count[s] > 850 && count[s] < 1150, "shard %d of 7 holds %d of 7000", s + 1, count[s]);
	CHECK(batch_in_shard("x.wav", 1, 1), "one shard holds everything");
}

static void test_done(void)
{
	char err[256], path[] = "/tmp/s4kws-test-batch-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "{\"file\":\"a.wav\",\"label\":\"yes\"}\n"
		   "{\"file\":\"b.wav\",\"error\":\"corrupt\"}\n"
		   "{\"file\":\"c.wav\",\"channel\":0,\"label\":\"no\"}\n"
		   "{\"file\":\"c.wav\",\"channel\":1,\"error\":\"x\"}\n"
		   "{\"file\":\"d.wav\",\"channel\":0,\"label\":\"no\"}\n"
		   "{\"file\":\"d.wav\",\"channel\":1,\"label\":\"up\"}\n"
		   "{\"file\":\"e.wav\",\"lab");   /* cut by a killed job */
	fclose(f);
	struct batch_done *d = batch_done_load(path, err, sizeof err);
	CHECK(d != NULL, "load: %s", err);
	CHECK(batch_done_has(d, "a.wav") && batch_done_has(d, "d.wav"), "answered inputs");
	CHECK(!batch_done_has(d, "b.wav") && !batch_done_has(d, "c.wav") && !batch_done_has(d, "e.wav") &&
		      !batch_done_has(d, "z.wav"), "errors, a cut line and others are not done");
	CHECK_EQ(batch_done_count(d), 2);
	batch_done_free(d);
	unlink(path);
	d = batch_done_load(path, err, sizeof err);
	CHECK(d && batch_done_count(d) == 0, "a missing output is an empty set");
	batch_done_free(d);
}

int main(void)
{
	test_shard();
	test_done();
	return CHECK_DONE();
}
