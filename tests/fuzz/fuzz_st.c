/* fuzz_st.c - libFuzzer entry point for the weights loader: any bytes through
 * s4m_load_buffer() (the strict safetensors reader st.c, then the metadata and tensor checks of
 * s4m.c, then the model build with s4k.c). Invariants checked besides "no crash, no leak, no
 * out-of-bounds read" (ASan/UBSan): a refused input always gets one sentence ending in '.', and
 * an accepted model answers every accessor with finite, consistent values.
 *
 * Built as a fuzzer with clang (-Dfuzz=true), and linked into replay_st (any compiler), which
 * runs a corpus directory through this same function as a regular test.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/s4m.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[S4K_ERR_LEN];
	err[0] = 0;
	struct s4m_model *m = s4m_load_buffer(data, size, 1.0, err, sizeof err);
	if (!m) {
		size_t n = strnlen(err, sizeof err);
		if (n == 0 || n == sizeof err || err[n - 1] != '.' || memchr(err, '\n', n))
			abort(); /* every refusal is one sentence */
		return 0;
	}
	if (s4m_n_labels(m) < 1 || !s4m_label(m, s4m_n_labels(m) - 1) || s4m_hop(m) < 1 ||
	    s4m_window(m) < s4m_hop(m) || s4m_window(m) % s4m_hop(m) || !(s4m_flops_step(m) > 0) ||
	    !isfinite(s4m_flops_conv(m, s4m_window(m))) || s4m_receptive_field(m) % s4m_hop(m))
		abort();
	for (int k = 0; k < s4m_n_labels(m); k++) { /* tuned thresholds: none, or in (0, 1] */
		float t = s4m_thresholds(m)[k];
		if (!isnan(t) && !(t > 0 && t <= 1 && s4m_label(m, k)[0] != '_'))
			abort();
	}
	for (int i = 0; i < s4m_n_blocks(m); i++) {
		struct s4m_block_info bi;
		if (s4m_block_info(m, i, &bi) || !s4m_block_kernel(m, i, 0))
			abort();
	}
	s4m_free(m);
	return 0;
}
