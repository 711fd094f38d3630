/* test_stream_batch.c - several streams stepped together (s4m_batch_push, s4m_relay_batch_push)
 * give each stream exactly what stepping it alone gives.
 *
 * Random models (S4D and DPLR, pools of 1, 2 and 4 that leave a chunk's rows uneven per block,
 * pre- and post-norm, widths that change from block to block); five streams with different inputs pushed in random lengths of 1 to
 * 700 samples, the same length for all in a call: every stream's logits must equal (bit for
 * bit) those of a twin pushed alone, and the push must report that it batched. Then the fall
 * backs: one stream reset out of phase, more streams than the batch holds, relays with restarts
 * and relays whose restarts are out of step: still equal, reported as not batched where they
 * are not.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"
#include "model/s4m.h"
#include "modelgen.h"

#define NS 5

static int same_logits(const float *a, const float *b, int K)
{
	return !memcmp(a, b, (size_t)K * sizeof *a);
}

/* Streams: batch (bs) against alone (as), all of them equal after a push of n from offset p. */
static int streams_equal(struct s4m_stream **bs, struct s4m_stream **as, int S, int K)
{
	int ok = 1;
	for (int j = 0; j < S; j++) {
		float a[64], b[64];
		s4m_stream_logits(bs[j], b);
		s4m_stream_logits(as[j], a);
		ok &= same_logits(a, b, K) && s4m_stream_samples(bs[j]) == s4m_stream_samples(as[j]);
	}
	return ok;
}

static int relays_equal(struct s4m_relay **br, struct s4m_relay **ar, int S, int K)
{
	int ok = 1;
	for (int j = 0; j < S; j++) {
		float a[64], b[64];
		s4m_relay_logits(br[j], b);
		s4m_relay_logits(ar[j], a);
		ok &= same_logits(a, b, K) && s4m_relay_samples(br[j]) == s4m_relay_samples(ar[j]);
	}
	return ok;
}

static void run(int it, uint64_t *s)
{
	struct mg_opts o = mg_defaults();
	o.seed = mg_rand(s);
	o.dplr = it % 3 == 2;
	o.prenorm = it % 2;
	o.nb = 2 + it % 3;
	static const int ws[] = {4, 8, 12, 16};
	static const int ps[] = {1, 2, 4};
	for (int i = 0; i < o.nb; i++) {
		o.widths[i] = ws[mg_rand(s) % 4];
		o.pools[i] = ps[mg_rand(s) % 3];
	}
	/* lengths that every total pool (at most 64) divides */
	o.decoder_window = 1600;
	o.l_max = 3200;
	o.preroll = 1280;
	o.l_kernel[0] = o.dplr ? 3200 : 0;
	struct mg_file f = {0};
	mg_random_model(&f, &o);
	size_t len;
	unsigned char *buf = mg_serialize(&f, &len);
	char err[S4K_ERR_LEN] = "";
	struct s4m_model *m = s4m_load_buffer(buf, len, 1.0, err, sizeof err);
	free(buf);
	mg_free(&f);
	CHECK(m != NULL, "model %d: %s", it, err);
	if (!m)
		return;
	const int K = s4m_n_labels(m);
	const size_t n = 12000, P = 2 * s4m_hop(m) * 6;
	float *x[NS];
	const float *xs[NS];
	struct s4m_stream *bs[NS], *as[NS];
	struct s4m_relay *br[NS], *ar[NS];
	struct s4m_batch *b = s4m_batch_new(m, NS, err, sizeof err), *small = s4m_batch_new(m, 2, err, sizeof err);
	int made = b && small;
	for (int j = 0; j < NS; j++) {
		x[j] = malloc(n * sizeof *x[j]);
		for (size_t t = 0; x[j] && t < n; t++)
			x[j][t] = (float)(0.2 * mg_normal(s));
		bs[j] = s4m_stream_new(m, err, sizeof err);
		as[j] = s4m_stream_new(m, err, sizeof err);
		br[j] = s4m_relay_new(m, P, err, sizeof err);
		ar[j] = s4m_relay_new(m, P, err, sizeof err);
		made &= x[j] && bs[j] && as[j] && br[j] && ar[j];
	}
	CHECK(made, "model %d: %s", it, err);
	int together = 1, equal = 1, steps = 0;
	for (size_t p = 0; made && p < n / 2;) {
		size_t k = 1 + mg_rand(s) % 700;
		k = k < n / 2 - p ? k : n / 2 - p;
		for (int j = 0; j < NS; j++) {
			xs[j] = x[j] + p;
			s4m_stream_push(as[j], xs[j], k);
			s4m_relay_push(ar[j], xs[j], k);
		}
		together &= s4m_batch_push(b, bs, NS, xs, k);
		together &= s4m_relay_batch_push(b, br, NS, xs, k);
		equal &= streams_equal(bs, as, NS, K) && relays_equal(br, ar, NS, K);
		p += k;
		steps++;
	}
	CHECK(made && together, "model %d: streams and relays in phase were not stepped together", it);
	CHECK(made && equal, "model %d: streams stepped together differ from streams stepped alone "
			     "(%d pushes)", it, steps);
	if (!made)
		goto out;
	/* stream 2 and relay 2 start over 7 samples late: out of phase, one at a time, still equal */
	s4m_stream_reset(bs[2]);
	s4m_stream_reset(as[2]);
	s4m_relay_reset(br[2]);
	s4m_relay_reset(ar[2]);
	s4m_stream_push(bs[2], x[2], 7);
	s4m_stream_push(as[2], x[2], 7);
	s4m_relay_push(br[2], x[2], 7);
	s4m_relay_push(ar[2], x[2], 7);
	int apart = 0;
	equal = 1;
	for (size_t p = n / 2; p < n / 2 + 3000; p += 300) {
		for (int j = 0; j < NS; j++) {
			xs[j] = x[j] + p;
			s4m_stream_push(as[j], xs[j], 300);
			s4m_relay_push(ar[j], xs[j], 300);
		}
		apart += !s4m_relay_batch_push(b, br, NS, xs, 300);
		s4m_batch_push(b, bs, NS, xs, 300);
		equal &= streams_equal(bs, as, NS, K) && relays_equal(br, ar, NS, K);
	}
	CHECK(apart == 10 && equal, "model %d: relays out of step: %d of 10 pushes one at a time, %s", it,
	      apart, equal ? "equal" : "DIFFERENT");
	/* more streams than the batch holds: one at a time */
	xs[0] = x[0] + n - 500;
	xs[1] = x[1] + n - 500;
	xs[2] = x[3] + n - 500;
	struct s4m_stream *three[3] = {bs[0], bs[1], bs[3]}, *three_a[3] = {as[0], as[1], as[3]};
	int batched = s4m_batch_push(small, three, 3, xs, 500);
	for (int j = 0; j < 3; j++)
		s4m_stream_push(three_a[j], xs[j], 500);
	CHECK(!batched && streams_equal(three, three_a, 3, K), "model %d: 3 streams in a batch of 2", it);
out:
	for (int j = 0; j < NS; j++) {
		free(x[j]);
		s4m_stream_free(bs[j]);
		s4m_stream_free(as[j]);
		s4m_relay_free(br[j]);
		s4m_relay_free(ar[j]);
	}
	s4m_batch_free(b);
	s4m_batch_free(small);
	s4m_free(m);
}

int main(void)
{
	uint64_t s = 2025;
	for (int it = 0; it < 9; it++)
		run(it, &s);
	char err[S4K_ERR_LEN] = "";
	struct mg_file f = {0};
	struct mg_opts o = mg_defaults();
	mg_random_model(&f, &o);
	size_t len;
	unsigned char *buf = mg_serialize(&f, &len);
	struct s4m_model *m = s4m_load_buffer(buf, len, 1.0, err, sizeof err);
	free(buf);
	mg_free(&f);
	CHECK(m && !s4m_batch_new(m, 0, err, sizeof err) && strstr(err, "out of range"),
	      "a batch of 0 streams is refused: %s", err);
	s4m_free(m);
	return CHECK_DONE();
}
