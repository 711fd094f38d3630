/* hot.h - S4_HOT: the attribute of the hot loops.
 *
 * Hot loops get an AVX2+FMA clone next to the baseline one, picked once by the dynamic linker
 * (GCC target_clones / ifunc); elsewhere only the baseline. Not under ThreadSanitizer: the ifunc
 * resolver runs during relocation, before the TSan runtime is up, and its instrumented code
 * crashes there (the binary segfaulted before main).
 */
#ifndef S4KWS_COMMON_HOT_H
#define S4KWS_COMMON_HOT_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define S4_HOT __attribute__((target_clones("arch=x86-64-v3", "default"), noinline))
#else
#define S4_HOT __attribute__((noinline))
#endif

#endif
