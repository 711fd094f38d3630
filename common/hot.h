/* hot.h - S4_HOT: the attribute of the hot loops; s4_hot_path(): which of their copies runs.
 *
 * Hot loops get an AVX-512 (x86-64-v4) and an AVX2+FMA (x86-64-v3) clone next to the portable
 * baseline, picked once by the dynamic linker by the CPU's features (GCC target_clones /
 * ifunc); elsewhere (ARM64, clang builds) only the portable code. Not under ThreadSanitizer: the
 * ifunc resolver runs during relocation, before the TSan runtime is up, and its instrumented
 * code crashes there (the binary segfaulted before main).
 */
#ifndef S4KWS_COMMON_HOT_H
#define S4KWS_COMMON_HOT_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define S4_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), noinline))
#define S4_HOT_CLONES 1
#else
#define S4_HOT __attribute__((noinline))
#define S4_HOT_CLONES 0
#endif

/* The copy of the hot loops this CPU runs, by the resolver's own rule (the highest level the
 * CPU supports), for `s4kws info` and the benchmarks. */
static inline const char *s4_hot_path(void)
{
#if S4_HOT_CLONES
	__builtin_cpu_init();
	if (__builtin_cpu_supports("x86-64-v4"))
		return "avx512 (x86-64-v4 clone)";
	if (__builtin_cpu_supports("x86-64-v3"))
		return "avx2+fma (x86-64-v3 clone)";
#endif
	return "portable (baseline C)";
}

#endif
