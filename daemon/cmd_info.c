/* cmd_info.c - `s4kws info`: what a weights file holds and what it costs to run.
 *
 * Design: everything printed comes from the loaded model through the s4m_ API (the loader has
 * already validated the file, so info never prints numbers the engine would not use): the
 * metadata, the block structure, the parameter count, FLOPs per input sample in step mode and in
 * conv mode (for one clip of window + preroll samples), and the drift check - the smallest
 * 1 - |dA| over all SSM modes; below 1e-6 a float32 state is nearly a pure integrator and can
 * drift in a stream that never resets. JSON output is one object built with jansson.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "common/hot.h"
#include "model/s4m.h"
#include "spot/postproc.h" /* PP_DEF_THRESHOLD */

#define DRIFT_MARGIN 1e-6

/* Metadata keys shown in their own lines; the rest are listed as "other metadata". */
static const char *const known_keys[] = {
	"format", "format_version", "name", "sample_rate", "labels", "kernel", "disc",
	"dt_transform", "real_transform", "d_state", "n_ssm", "widths", "pools", "norm",
	"prenorm", "final_norm", "activation", "output", "bidirectional", "decoder",
	"decoder_window", "l_max", "l_kernel", "preroll", "thresholds",
};

static const char *meta_or(const struct s4m_model *m, const char *key, const char *def)
{
	const char *v = s4m_meta(m, key);
	return v ? v : def;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: s4kws info [--model FILE] [--format text|json]\n\n"
		   "Print a model's metadata, labels, blocks, parameter count, FLOPs per input sample\n"
		   "in step and conv mode, and the float32 drift check (min 1-|dA|).\n"
		   "Without --model: $S4KWS_MODEL, else the default model embedded in s4kws; --model NAME:\n"
		   "another built-in model (wake, when the build had weights/s4kws-wake.safetensors).\n");
}

static json_t *info_json(const struct s4m_model *m, const char *source, size_t clip)
{
	json_t *o = json_object(), *labels = json_array(), *blocks = json_array(), *meta = json_object();
	for (int k = 0; k < s4m_n_labels(m); k++)
		json_array_append_new(labels, json_string(s4m_label(m, k)));
	for (int i = 0; i < s4m_n_blocks(m); i++) {
		struct s4m_block_info bi;
		s4m_block_info(m, i, &bi);
		json_array_append_new(blocks, json_pack("{s:i, s:i, s:i, s:I, s:I, s:f}", "width", bi.width,
							"out_width", bi.out_width, "pool", bi.pool,
							"cumpool", (json_int_t)bi.cumpool, "kernel_len",
							(json_int_t)bi.kernel_len, "min_margin", bi.min_margin));
	}
	for (size_t i = 0; s4m_meta_key(m, i); i++)
		json_object_set_new(meta, s4m_meta_key(m, i), json_string(s4m_meta(m, s4m_meta_key(m, i))));
	json_object_set_new(o, "model", json_string(source));
	json_object_set_new(o, "name", json_string(meta_or(m, "name", "")));
	json_object_set_new(o, "sample_rate", json_integer(s4m_sample_rate(m)));
	json_object_set_new(o, "labels", labels);
	json_t *thr = json_object(); /* the model's tuned detection thresholds, where it has them */
	for (int k = 0; k < s4m_n_labels(m); k++)
		if (!isnan(s4m_thresholds(m)[k]))
			json_object_set_new(thr, s4m_label(m, k), json_real(round(s4m_thresholds(m)[k] * 1e6) / 1e6));
	json_object_set_new(o, "thresholds", thr);
	json_object_set_new(o, "blocks", blocks);
	json_object_set_new(o, "n_params", json_integer((json_int_t)s4m_n_params(m)));
	json_object_set_new(o, "hop", json_integer((json_int_t)s4m_hop(m)));
	json_object_set_new(o, "window", json_integer((json_int_t)s4m_window(m)));
	json_object_set_new(o, "preroll", json_integer((json_int_t)s4m_preroll(m)));
	json_object_set_new(o, "receptive_field", json_integer((json_int_t)s4m_receptive_field(m)));
	json_object_set_new(o, "streamable", json_boolean(s4m_streamable(m)));
	json_object_set_new(o, "flops_step", json_real(s4m_flops_step(m)));
	json_object_set_new(o, "flops_conv", json_real(s4m_flops_conv(m, clip)));
	json_object_set_new(o, "flops_conv_len", json_integer((json_int_t)clip));
	if (s4m_streamable(m) && s4m_preroll(m)) /* per clip: only the window is computed */
		json_object_set_new(o, "flops_clip_primed",
				    json_real(s4m_flops_conv(m, s4m_window(m)) * (double)s4m_window(m)));
	json_object_set_new(o, "min_margin", json_real(s4m_min_margin(m)));
	json_object_set_new(o, "drift_ok", json_boolean(s4m_min_margin(m) >= DRIFT_MARGIN));
	json_object_set_new(o, "metadata", meta);
	return o;
}

static void info_text(const struct s4m_model *m, const char *source, size_t clip)
{
	int sr = s4m_sample_rate(m);
	printf("model:          %s\n", source);
	printf("name:           %s\n", meta_or(m, "name", "(none)"));
	printf("format:         %s version %s\n", meta_or(m, "format", "?"), meta_or(m, "format_version", "?"));
	printf("sample rate:    %d Hz\n", sr);
	printf("labels (%d):    ", s4m_n_labels(m));
	for (int k = 0; k < s4m_n_labels(m); k++)
		printf("%s%s", k ? " " : "", s4m_label(m, k));
	printf("\n");
	printf("kernel:         %s, disc %s, d_state %s, n_ssm %s, dt %s, real part %s\n",
	       meta_or(m, "kernel", "?"), meta_or(m, "disc", "bilinear"), meta_or(m, "d_state", "?"),
	       meta_or(m, "n_ssm", "?"), meta_or(m, "dt_transform", "?"), meta_or(m, "real_transform", "?"));
	printf("layers:         %s norm, %s, final norm %s, %s + %s, %s\n", meta_or(m, "norm", "?"),
	       !strcmp(meta_or(m, "prenorm", ""), "true") ? "prenorm" : "postnorm",
	       meta_or(m, "final_norm", "?"), meta_or(m, "activation", "?"), meta_or(m, "output", "?"),
	       s4m_bidirectional(m) ? "bidirectional (file mode only)" : "causal");
	printf("decoder:        %s, window %zu samples (%.3f s), hop %zu samples (%.2f ms), preroll %zu\n",
	       meta_or(m, "decoder", "?"), s4m_window(m), (double)s4m_window(m) / sr, s4m_hop(m),
	       1000.0 * (double)s4m_hop(m) / sr, s4m_preroll(m));
	printf("thresholds:     ");
	int any = 0;
	for (int k = 0; k < s4m_n_labels(m); k++)
		if (!isnan(s4m_thresholds(m)[k]))
			printf("%s%s %.3g", any++ ? " " : "", s4m_label(m, k), s4m_thresholds(m)[k]);
	printf(any ? " (tuned for this model; --threshold overrides)\n"
		   : "none in the file (--threshold, default " PP_STR(PP_DEF_THRESHOLD) ")\n");
	printf("blocks (%d):\n  %5s %6s %6s %5s %8s %12s %12s\n", s4m_n_blocks(m), "block", "width",
	       "widen", "pool", "cumpool", "kernel taps", "min 1-|dA|");
	for (int i = 0; i < s4m_n_blocks(m); i++) {
		struct s4m_block_info bi;
		s4m_block_info(m, i, &bi);
		printf("  %5d %6d %6d %5d %8zu %12zu %12.3g\n", i, bi.width, bi.out_width, bi.pool,
		       bi.cumpool, bi.kernel_len, bi.min_margin);
	}
	printf("receptive field: %zu samples (how far back a conv-mode score reaches)\n",
	       s4m_receptive_field(m));
	printf("parameters:     %zu\n", s4m_n_params(m));
	double fs = s4m_flops_step(m), fc = s4m_flops_conv(m, clip);
	printf("FLOPs/sample:   step mode %.0f (%.1f MFLOP per second of audio)\n", fs, fs * sr / 1e6);
	printf("                conv mode %.0f (clip of %zu samples: %.1f MFLOP)\n", fc, clip,
	       fc * (double)clip / 1e6);
	if (s4m_streamable(m) && s4m_preroll(m))
		printf("                lone clip with the preroll's share precomputed (classify): %.1f MFLOP\n",
		       s4m_flops_conv(m, s4m_window(m)) * (double)s4m_window(m) / 1e6);
	printf("hot loops:      %s\n", s4_hot_path());
	double mm = s4m_min_margin(m);
	printf("drift check:    min 1-|dA| = %.3g: %s\n", mm,
	       mm >= DRIFT_MARGIN ? "ok (float32 states decay)"
				  : "WARNING: some modes are near-integrators in float32; long streams may drift, reset them periodically");
	for (size_t i = 0; s4m_meta_key(m, i); i++) {
		const char *k = s4m_meta_key(m, i);
		size_t j = 0;
		while (j < sizeof known_keys / sizeof known_keys[0] && strcmp(known_keys[j], k))
			j++;
		if (j == sizeof known_keys / sizeof known_keys[0]) {
			const char *v = s4m_meta(m, k);
			printf("metadata %s: %.100s%s\n", k, v, strlen(v) > 100 ? "..." : "");
		}
	}
}

int cmd_info(int argc, char **argv)
{
	const char *model = NULL, *format = "text";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if ((!strcmp(argv[i], "--model") || !strcmp(argv[i], "-m")) && i + 1 < argc) {
			model = argv[++i];
		} else if (!strncmp(argv[i], "--model=", 8)) {
			model = argv[i] + 8;
		} else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
			format = argv[++i];
		} else if (!strncmp(argv[i], "--format=", 9)) {
			format = argv[i] + 9;
		} else {
			fprintf(stderr, "s4kws info: unknown or incomplete option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (strcmp(format, "text") && strcmp(format, "json")) {
		fprintf(stderr, "s4kws info: unknown format '%s' (text or json)\n", format);
		return 2;
	}
	char err[S4K_ERR_LEN];
	struct s4m_model *m = cmd_load_model(model, 1.0, err, sizeof err);
	if (!m) {
		fprintf(stderr, "s4kws info: %s\n", err);
		return 1;
	}
	const char *source = cmd_model_source(model);
	size_t clip = s4m_window(m) + s4m_preroll(m);
	if (!strcmp(format, "json")) {
		json_t *o = info_json(m, source, clip);
		char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		info_text(m, source, clip);
	}
	s4m_free(m);
	return 0;
}
