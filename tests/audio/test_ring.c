/* test_ring.c - audio/ring: single-thread edge cases, then two threads with sequence numbers.
 *
 * The stress part moves blocks of random length (1..1000 elements) whose elements carry
 * consecutive sequence numbers (exact in float up to 2^24, taken modulo 2^24). In the lossless
 * run the producer retries when the ring is full and the consumer must see every number in
 * order; in the lossy run the producer never retries, so drops happen, and the consumer must
 * still see whole blocks only, in order, with received + dropped = sent.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/ring.h"
#include "tests/check.h"

static void test_init(void)
{
	static float s[16];
	struct ring r;
	CHECK(ring_init(&r, s, 0) == -EINVAL, "cap 0");
	CHECK(ring_init(&r, s, 1) == -EINVAL, "cap 1");
	CHECK(ring_init(&r, s, 12) == -EINVAL, "cap 12 is not a power of two");
	CHECK(ring_init(&r, NULL, 16) == -EINVAL, "NULL storage");
	CHECK(ring_init(&r, s, 16) == 0, "cap 16");
	CHECK(ring_readable(&r) == 0 && ring_writable(&r) == 16, "empty");
}

static void test_single_thread(void)
{
	static float s[8];
	float in[16], out[16];
	for (int i = 0; i < 16; i++)
		in[i] = (float)i;
	struct ring r;
	ring_init(&r, s, 8);
	CHECK(ring_read(&r, out, 4) == 0, "read from empty");
	CHECK(ring_write(&r, in, 0) == 0, "empty write");
	CHECK(ring_write(&r, in, 9) == -ENOSPC, "more than capacity");
	CHECK(ring_overruns(&r) == 1 && ring_dropped(&r) == 9, "overrun counted");
	CHECK(ring_readable(&r) == 0, "nothing stored by a dropped write");
	CHECK(ring_write(&r, in, 5) == 0, "write 5");
	CHECK(ring_write(&r, in + 5, 4) == -ENOSPC, "4 more do not fit (3 free): all or nothing");
	CHECK(ring_readable(&r) == 5, "still 5");
	CHECK(ring_write(&r, in + 5, 3) == 0, "fill exactly");
	CHECK(ring_writable(&r) == 0 && ring_readable(&r) == 8, "full");
	CHECK(ring_read(&r, out, 3) == 3 && out[0] == 0 && out[2] == 2, "read 3");
	CHECK(ring_write(&r, in + 8, 3) == 0, "wraps around the end");
	CHECK(ring_read(&r, out, 16) == 8, "read all (asks for more than there is)");
	int ok = 1;
	for (int i = 0; i < 8; i++)
		ok &= out[i] == (float)(i + 3);
	CHECK(ok, "order across the wrap");
	CHECK(ring_overruns(&r) == 2 && ring_dropped(&r) == 13, "counters: %u %lu", ring_overruns(&r),
	      (unsigned long)ring_dropped(&r));
	ring_write(&r, in, 6);
	CHECK(ring_discard(&r) == 6 && ring_readable(&r) == 0, "discard");
}

/* Counters near 2^32: the fill level stays right when head wraps before tail. */
static void test_counter_wrap(void)
{
	static float s[4];
	float in[3] = {1, 2, 3}, out[3];
	struct ring r;
	ring_init(&r, s, 4);
	atomic_store(&r.head, UINT32_MAX - 1);
	atomic_store(&r.tail, UINT32_MAX - 1);
	CHECK(ring_write(&r, in, 3) == 0, "write across 2^32");
	CHECK(ring_readable(&r) == 3 && ring_writable(&r) == 1, "levels across 2^32");
	CHECK(ring_read(&r, out, 3) == 3 && out[0] == 1 && out[2] == 3, "read across 2^32");
	CHECK(atomic_load(&r.head) == 1 && atomic_load(&r.tail) == 1, "wrapped");
}

#define SEQ_MOD (1u << 24)
#define N_ELEMS 20000000u

struct stress {
	struct ring r;
	int lossy;
	uint64_t sent, blocks;
	_Atomic int done;
};

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static void *producer(void *arg)
{
	struct stress *st = arg;
	static float blk[1024];
	uint32_t seed = 1, seq = 0;
	uint64_t sent = 0;
	while (sent < N_ELEMS) {
		size_t n = 1 + lcg(&seed) % 1000;
		/* lossy: each block starts with its length, then sequence numbers */
		for (size_t i = 0; i < n; i++)
			blk[i] = (float)((seq + i) % SEQ_MOD);
		if (st->lossy)
			blk[0] = (float)n + 0.5f; /* marker: block length, never an integer */
		while (ring_write(&st->r, blk, n) < 0) {
			if (st->lossy)
				break;
			sched_yield();
		}
		seq = (seq + (uint32_t)n) % SEQ_MOD;
		sent += n;
		st->blocks++;
	}
	st->sent = sent;
	atomic_store(&st->done, 1);
	return NULL;
}

static void stress(int lossy, size_t cap)
{
	struct stress st;
	memset(&st, 0, sizeof st);
	float *store = malloc(cap * sizeof *store);
	ring_init(&st.r, store, cap);
	st.lossy = lossy;
	pthread_t th;
	pthread_create(&th, NULL, producer, &st);
	static float out[4096];
	uint32_t expect = 0;
	uint64_t got = 0, bad = 0, left = 0; /* left: elements still due in the current block */
	int have_prev = 0;
	float prev = 0;
	for (;;) {
		int done = atomic_load(&st.done);
		size_t n = ring_read(&st.r, out, 1 + (got * 7) % 4096);
		for (size_t i = 0; i < n; i++) {
			float v = out[i];
			if (lossy && left == 0) {
				/* must be a block header: its length + 0.5 */
				uint64_t len = (uint64_t)v;
				if ((float)len + 0.5f != v || len < 1 || len > 1000)
					bad++;
				left = len - 1;
				have_prev = 0;
				continue;
			}
			if (lossy) {
				/* inside a block the numbers are consecutive */
				if (have_prev && v != (float)(((uint32_t)prev + 1) % SEQ_MOD))
					bad++;
				prev = v;
				have_prev = 1;
				left--;
				continue;
			}
			if (v != (float)expect)
				bad++;
			expect = (expect + 1) % SEQ_MOD;
		}
		got += n;
		if (n == 0) {
			if (done && ring_readable(&st.r) == 0)
				break;
			sched_yield();
		}
	}
	pthread_join(th, NULL);
	if (!lossy) {
		CHECK(bad == 0, "%lu elements out of sequence", (unsigned long)bad);
		CHECK(got == st.sent, "got %lu of %lu",
		      (unsigned long)got, (unsigned long)st.sent);
	} else {
		CHECK(bad == 0, "%lu bad block headers", (unsigned long)bad);
		CHECK(left == 0, "ended inside a block");
		CHECK(got + ring_dropped(&st.r) == st.sent, "received %lu + dropped %lu != sent %lu",
		      (unsigned long)got, (unsigned long)ring_dropped(&st.r), (unsigned long)st.sent);
		printf("lossy run: %lu blocks, %u dropped (%lu elements)\n", (unsigned long)st.blocks,
		       ring_overruns(&st.r), (unsigned long)ring_dropped(&st.r));
	}
	free(store);
}

int main(void)
{
	test_init();
	test_single_thread();
	test_counter_wrap();
	stress(0, 4096);
	stress(1, 2048);
	return CHECK_DONE();
}
