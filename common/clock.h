/* clock.h - the monotonic clock, in the units callers want (one copy instead of one per file).
 *
 * CLOCK_MONOTONIC: never jumps with the wall clock, so deadlines, timeouts, pacing and speed
 * figures survive NTP steps. Any thread; no allocation (the step loop may call it).
 */
#ifndef S4KWS_COMMON_CLOCK_H
#define S4KWS_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t s4k_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double s4k_mono_s(void)
{
	return (double)s4k_mono_ns() * 1e-9;
}

#endif
