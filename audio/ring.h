/* ring.h - lock-free single-producer / single-consumer ring of float samples.
 *
 * Usage:
 *   static float store[1 << 16];                      // caller storage, power-of-two length
 *   struct ring r;
 *   ring_init(&r, store, 1 << 16);
 *   // producer thread (e.g. the PortAudio callback): all or nothing, never blocks
 *   if (ring_write(&r, frames, n * channels) < 0) { ... dropped, counted in r.overruns ... }
 *   // consumer thread
 *   size_t got = ring_read(&r, out, ring_readable(&r) / channels * channels);
 *
 * Indices are free-running uint32_t counters (head: written, tail: read) published with
 * release stores and read with acquire loads, so exactly one producer thread and one consumer
 * thread may use a ring at the same time without locks. Writes are all-or-nothing: a block of
 * whole frames is either stored entirely or dropped (the ring never holds a partial frame), and
 * each drop adds 1 to `overruns` and the block length to `dropped`. Neither side allocates,
 * locks, blocks or logs, so ring_write() is safe in an audio callback.
 */
#ifndef S4KWS_AUDIO_RING_H
#define S4KWS_AUDIO_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct ring {
	float *buf;                   /* (cap) caller storage */
	uint32_t cap;                 /* power of two, <= 2^31 */
	_Atomic uint32_t head;        /* elements ever written (mod 2^32); producer stores */
	_Atomic uint32_t tail;        /* elements ever read (mod 2^32); consumer stores */
	_Atomic uint32_t overruns;    /* blocks dropped because the ring was full; producer adds */
	_Atomic uint64_t dropped;     /* elements in those blocks */
};

/* Set up a ring over storage[cap]; cap must be a power of two between 2 and 2^31.
 * Returns 0 or -EINVAL. Call before either thread uses the ring. */
int ring_init(struct ring *r, float *storage, size_t cap);
/* Producer: store all n elements, or none when fewer than n are free (then count an overrun
 * and return -ENOSPC). n == 0 is a no-op. */
int ring_write(struct ring *r, const float *x, size_t n);
/* Producer: elements that can be written now. */
size_t ring_writable(const struct ring *r);
/* Consumer: elements that can be read now. */
size_t ring_readable(const struct ring *r);
/* Consumer: copy up to n elements into out and consume them; returns how many. */
size_t ring_read(struct ring *r, float *out, size_t n);
/* Consumer: throw away everything currently readable; returns how many. */
size_t ring_discard(struct ring *r);
/* Either thread: counters (approximate while the producer runs). */
uint32_t ring_overruns(const struct ring *r);
uint64_t ring_dropped(const struct ring *r);

#endif
