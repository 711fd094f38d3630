/* mkmodel.c - write a random model with the default architecture, for benchmarks and command
 * tests when no trained model is at hand: `mkmodel OUT.safetensors [s4d|dplr] [seed]`.
 * `mkmodel --tiny OUT.safetensors s4d|dplr|bidir|batch` writes a model of a few hundred bytes
 * (two blocks of width 2-3, d_state 2), the seeds of the fuzzing corpus (tests/fuzz/corpus).
 *
 * Architecture of the planned default model: widths [16,64,64,64,64], pools [4,4,1,1,1],
 * d_state 64, LayerNorm prenorm with a final norm, pool decoder over 16000 samples, l_max 24000,
 * preroll 8000, 12 labels. The weights are random (tests/model/modelgen.c), so the outputs mean
 * nothing; the cost and the numerics are those of a real model of that shape.
 */
#include <stdlib.h>
#include <string.h>

#include "modelgen.h"

static int tiny(const char *out, const char *kind)
{
	struct mg_opts o = mg_defaults();
	o.d_state = 2;
	o.n_ssm = 1;
	o.nb = 2;
	o.widths[0] = 2;
	o.widths[1] = 3;
	o.pools[0] = 2;
	o.pools[1] = 1;
	o.decoder_window = 8;
	o.l_max = 16;
	o.preroll = 4;
	o.n_labels = 2;
	o.dplr = !strcmp(kind, "dplr");
	o.l_kernel[0] = o.dplr ? 16 : 0;
	o.bidir = !strcmp(kind, "bidir");
	o.batch = o.dec_last = !strcmp(kind, "batch");
	o.prenorm = !o.batch;
	struct mg_file f = {0};
	mg_random_model(&f, &o);
	int rc = mg_write(&f, out);
	mg_free(&f);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--tiny"))
		return tiny(argv[2], argv[3]);
	if (argc < 2 || argc > 4 || (argc >= 3 && strcmp(argv[2], "s4d") && strcmp(argv[2], "dplr"))) {
		fprintf(stderr, "usage: mkmodel OUT.safetensors [s4d|dplr] [seed]\n");
		return 2;
	}
	struct mg_opts o = mg_defaults();
	o.dplr = argc >= 3 && !strcmp(argv[2], "dplr");
	o.seed = argc >= 4 ? strtoull(argv[3], NULL, 10) : 1;
	o.d_state = 64;
	o.n_ssm = 64;
	o.nb = 5;
	const int w[] = {16, 64, 64, 64, 64}, p[] = {4, 4, 1, 1, 1};
	for (int i = 0; i < 5; i++) {
		o.widths[i] = w[i];
		o.pools[i] = p[i];
		o.l_kernel[i] = 0;
	}
	o.decoder_window = 16000;
	o.l_max = 24000;
	o.preroll = 8000;
	o.n_labels = 12;
	struct mg_file f = {0};
	mg_random_model(&f, &o);
	mg_meta_set(&f, "name", o.dplr ? "random-dplr-default-shape" : "random-s4d-default-shape");
	int rc = mg_write(&f, argv[1]);
	mg_free(&f);
	if (rc) {
		fprintf(stderr, "mkmodel: cannot write %s\n", argv[1]);
		return 1;
	}
	return 0;
}
