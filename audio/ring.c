/* ring.c - SPSC float ring with C11 atomics.
 *
 * DESIGN. head and tail count elements since init and wrap at 2^32; because cap divides 2^32,
 * head - tail (unsigned) is always the fill level and index & (cap - 1) the slot. The producer
 * owns head and the consumer owns tail: each loads the other's counter with acquire (to see the
 * data or free space published before it) and publishes its own with release after copying.
 * Copies are at most two memcpy calls (the block may wrap once). The counters of drops are
 * written only by the producer with relaxed atomics; readers accept a slightly stale value.
 */
#include "ring.h"

#include <errno.h>
#include <string.h>

int ring_init(struct ring *r, float *storage, size_t cap)
{
	if (!r || !storage || cap < 2 || cap > (1u << 31) || (cap & (cap - 1)))
		return -EINVAL;
	r->buf = storage;
	r->cap = (uint32_t)cap;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->overruns, 0);
	atomic_init(&r->dropped, 0);
	return 0;
}

size_t ring_writable(const struct ring *r)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	return r->cap - (head - tail);
}

size_t ring_readable(const struct ring *r)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	return head - tail;
}

int ring_write(struct ring *r, const float *x, size_t n)
{
	if (n == 0)
		return 0;
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (n > (size_t)(r->cap - (head - tail))) {
		atomic_fetch_add_explicit(&r->overruns, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&r->dropped, (uint64_t)n, memory_order_relaxed);
		return -ENOSPC;
	}
	uint32_t at = head & (r->cap - 1);
	size_t first = r->cap - at < n ? r->cap - at : n;
	memcpy(r->buf + at, x, first * sizeof *x);
	memcpy(r->buf, x + first, (n - first) * sizeof *x);
	atomic_store_explicit(&r->head, head + (uint32_t)n, memory_order_release);
	return 0;
}

size_t ring_read(struct ring *r, float *out, size_t n)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t avail = head - tail;
	if (n > avail)
		n = avail;
	if (n == 0)
		return 0;
	uint32_t at = tail & (r->cap - 1);
	size_t first = r->cap - at < n ? r->cap - at : n;
	memcpy(out, r->buf + at, first * sizeof *out);
	memcpy(out + first, r->buf, (n - first) * sizeof *out);
	atomic_store_explicit(&r->tail, tail + (uint32_t)n, memory_order_release);
	return n;
}

size_t ring_discard(struct ring *r)
{
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	atomic_store_explicit(&r->tail, head, memory_order_release);
	return head - tail;
}

uint32_t ring_overruns(const struct ring *r)
{
	return atomic_load_explicit(&r->overruns, memory_order_relaxed);
}

uint64_t ring_dropped(const struct ring *r)
{
	return atomic_load_explicit(&r->dropped, memory_order_relaxed);
}
