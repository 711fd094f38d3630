/* classify_opts.c - the command line of `s4kws classify` (see classify_opts.h).
 *
 * DESIGN: getopt_long over the file-mode options, plus every detection option of the shared
 * option table (daemon/config.c: thresholds, smoothing, verify, ...) so that classify and listen
 * take the same detection settings, applied after --config whatever their order. Combinations
 * that cannot work are refused here, before any model is loaded or file read, with one sentence.
 */
#define _GNU_SOURCE /* strdup, getopt_long */
#include "classify_opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"


/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: s4kws classify [OPTIONS] AUDIO...\n"
"       s4kws classify --eval DIR [--plot FILE] [OPTIONS]\n"
"\n"
"Classify audio files (clips of up to 3 s) or scan longer recordings for keywords.\n"
"AUDIO is a file (any format libsndfile reads), a directory (audio files below it,\n"
"recursively), @LIST (a text file of paths, one per line) or - (such a list on stdin).\n"
"\n"
"  --model FILE         weights file, or the name of a built-in model (default; wake when built\n"
"                       with one); none given: $S4KWS_MODEL or the default\n"
"  --mode auto|conv|stream  engine: auto (default) classifies clips in convolution mode and\n"
"                       scans longer recordings with the recurrent steppers, as 'listen'\n"
"                       runs, so both report the same detections; conv: convolution for\n"
"                       both (a scan then forgets lags beyond the kernels' length, 2.5 s for\n"
"                       the default model, and can differ from 'listen'); stream: steppers\n"
"                       for both\n"
"  --format text|json|csv  output (default text); json: one object per line; csv: a row\n"
"                       per clip, per detection, and per recording without one (no label)\n"
"  --top K              text: show the K best classes (default all); json: add \"top\"\n"
"  --channels mix|each  mix channels to mono (default) or classify every channel\n"
"  -j, --jobs N         worker threads (default: all cores); output stays in input order\n"
"  --native-rate        feed audio at its own rate to a model with scaled step sizes\n"
"                       instead of resampling (one model per distinct rate)\n"
"  --resample best|medium|fast  libsamplerate converter (default best)\n"
"  --max-rate HZ        first resample input recorded above HZ down to HZ, so that every file\n"
"                       reaches the model with the same band: e.g. 8000 for a collection that\n"
"                       mixes 8 kHz and 16 kHz recordings makes labels independent of a file's\n"
"                       rate (at some cost in accuracy on the wide-band files)\n"
"  --min-duration S     shortest accepted input in seconds (default 0.1)\n"
"  --progress, --no-progress  progress bar on stderr (default: when stderr is a TTY)\n"
"  --summary            at the end, on stderr: how many clips got each label, and for the\n"
"                       recordings scanned their hours of audio and detections per hour\n"
"                       per keyword (on recordings without keywords: false alarms per hour)\n"
"  --posteriors FILE    write every hop's label probabilities of the recordings scanned to\n"
"                       FILE as CSV (file,channel,offset,<labels>; offset in seconds where\n"
"                       the score was computed): for choosing thresholds; clips have none\n"
"  --shard K/N          only the inputs of shard K of N (by a hash of the path: N runs with\n"
"                       1/N .. N/N share out the same inputs exactly, in any order)\n"
"  --skip-done OUT      leave out inputs that OUT, an earlier --format json output, already\n"
"                       answered without error (append to it: >> OUT to resume a run)\n"
"\n");
	/* two strings: ISO C limits one literal to 4095 characters */
	fprintf(f,
"A clip (a recording of up to 3 s) is classified once: up to the model window (1 s, plus\n"
"1/64 slack for resampling) as it is, a longer one by its loudest window (so leading and\n"
"trailing silence and encoder padding do not matter); zeros are appended up to the window\n"
"and the model's preroll zeros put in front, as in training; json keys file, label,\n"
"score, scores (label -> probability), logits, duration, window ([start, end] s of the\n"
"window used, for clips longer than the window) (+ channel with --channels each, top\n"
"with --top). Inputs shorter than --min-duration fail. Samples that are not finite numbers\n"
"(or beyond +-64) are replaced by zeros and counted: nonfinite_samples and a warning, in\n"
"the record of any input and on stderr.\n"
"\n"
"Evaluation (a folder per label, Speech Commands layout):\n"
"  --eval DIR           accuracy (and its 95 %% interval), per-class precision/recall/F1,\n"
"                       confusion, misclassified\n"
"  --plot FILE          also draw the confusion matrix as a PNG\n"
"  --stream-context S   put S seconds of unrelated audio before every clip instead of the\n"
"                       preroll zeros (both modes): other clips of the set, drawn at random\n"
"                       per clip from --seed and the clip's index (not the thread count),\n"
"                       decoded whole and concatenated; the last S seconds of that feed\n"
"                       the model, then the clip padded to the window (conv mode\n"
"                       forgets lags beyond its kernels; stream mode hears it all, with\n"
"                       one stepper: --restart-ms does not apply to clips)\n"
"  --context-file FILE  take those S seconds from a seeded offset of FILE instead\n"
"  --seed N             seed of the context draw (default 1)\n"
"\n"
"Longer recordings are scanned by the steppers (or, with --mode conv, in convolution mode),\n"
"both with live mode's restarts if --restart-ms is set (default 0: one whole-file run\n"
"from a zero state); json keys file, duration, detections (start, end,\n"
"offset = where it was decided, in seconds; keyword, score, channel; verify with --verify).\n"
"Detection settings are those of 's4kws listen': --config FILE, --threshold [KW=]P,\n"
"--smooth-ms, --min-ms, --refractory-ms, --warmup-ms, --latency-ms, --onset, --word-ms,\n"
"--require-top, --hop-ms, --restart-ms, --verify, --verify-after-ms;\n"
"  --chunk S            conv-mode scan chunk in seconds, with --restart-ms 0 (default: automatic)\n"
"\n"
"Exit status: 0 all inputs classified, 1 some input failed (each failure is one line on\n"
"stderr naming the file, and an \"error\" record in json/csv), 2 usage or model errors.\n");
}

static const char *const det_opts[] = {
	"threshold", "smooth-ms", "min-ms", "refractory-ms", "warmup-ms", "latency-ms",
	"onset", "word-ms", "require-top", "hop-ms", "restart-ms", "verify", "verify-after-ms",
};
#define N_DET (sizeof det_opts / sizeof det_opts[0])

enum {
	O_MODEL = 256, O_MODE, O_FORMAT, O_TOP, O_CHANNELS, O_NATIVE, O_RESAMPLE, O_MIN, O_EVAL,
	O_PLOT, O_CTX, O_CTXFILE, O_SEED, O_PROGRESS, O_NOPROGRESS, O_CHUNK, O_CONFIG, O_HELP, O_SHARD, O_SKIPDONE,
	O_SUMMARY, O_POSTERIORS, O_MAXRATE,
	O_DET0 = 400,
};

static int parse_num(const char *opt, const char *v, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= lo && d <= hi)) {
		fprintf(stderr, "s4kws classify: %s: '%s' is not a number in %g..%g\n", opt, v, lo, hi);
		return -1;
	}
	*out = d;
	return 0;
}

/* One file-mode option (not --help, --config or a detection option). 0 or -1 after a message. */
static int take_option(struct opts *o, int c, const char *arg)
{
	char err[S4K_ERR_LEN];
	double d;
	switch (c) {
	case O_MODEL:
		o->model_path = arg;
		break;
	case O_MODE:
		if (!strcmp(arg, "conv"))
			o->mode = o->scan_mode = SCAN_CONV;
		else if (!strcmp(arg, "stream"))
			o->mode = o->scan_mode = SCAN_STREAM;
		else if (!strcmp(arg, "auto"))
			o->mode = SCAN_CONV, o->scan_mode = SCAN_STREAM;
		else {
			fprintf(stderr, "s4kws classify: --mode: '%s' is not auto, conv or stream\n", arg);
			return -1;
		}
		o->mode_set = strcmp(arg, "auto") != 0;
		break;
	case O_FORMAT:
		if (!strcmp(arg, "text"))
			o->format = FMT_TEXT;
		else if (!strcmp(arg, "json"))
			o->format = FMT_JSON;
		else if (!strcmp(arg, "csv"))
			o->format = FMT_CSV;
		else {
			fprintf(stderr, "s4kws classify: --format: '%s' is not text, json or csv\n",
				arg);
			return -1;
		}
		break;
	case O_TOP:
		if (parse_num("--top", arg, 1, 1000, &d) < 0)
			return -1;
		o->top = (int)d;
		break;
	case O_CHANNELS:
		if (!strcmp(arg, "mix"))
			o->each = 0;
		else if (!strcmp(arg, "each"))
			o->each = 1;
		else {
			fprintf(stderr, "s4kws classify: --channels: '%s' is not mix or each\n", arg);
			return -1;
		}
		break;
	case 'j':
		if (parse_num("--jobs", arg, 1, 1024, &d) < 0)
			return -1;
		o->jobs = (int)d;
		break;
	case O_NATIVE:
		o->native = 1;
		break;
	case O_RESAMPLE:
		if (!strcmp(arg, "best"))
			o->quality = RS_BEST;
		else if (!strcmp(arg, "medium"))
			o->quality = RS_MEDIUM;
		else if (!strcmp(arg, "fast"))
			o->quality = RS_FASTEST;
		else {
			fprintf(stderr, "s4kws classify: --resample: '%s' is not best, medium or fast\n",
				arg);
			return -1;
		}
		break;
	case O_MAXRATE:
		if (parse_num("--max-rate", arg, 1000, 768000, &d) < 0)
			return -1;
		o->max_rate = (int)d;
		break;
	case O_MIN:
		if (parse_num("--min-duration", arg, 0, 3600, &o->min_s) < 0)
			return -1;
		break;
	case O_EVAL:
		o->eval_dir = arg;
		break;
	case O_PLOT:
		o->plot = arg;
		break;
	case O_CTX:
		if (parse_num("--stream-context", arg, 0, 600, &o->ctx_s) < 0)
			return -1;
		break;
	case O_CTXFILE:
		o->ctx_file = arg;
		break;
	case O_SEED:
		if (parse_num("--seed", arg, 0, 4294967295.0, &d) < 0)
			return -1;
		o->seed = (unsigned long)d;
		break;
	case O_PROGRESS:
		o->progress = 1;
		break;
	case O_NOPROGRESS:
		o->progress = 0;
		break;
	case O_SUMMARY:
		o->summary = 1;
		break;
	case O_POSTERIORS:
		o->post_path = arg;
		break;
	case O_CHUNK:
		if (parse_num("--chunk", arg, 0.01, 36000, &d) < 0)
			return -1;
		o->chunk = (size_t)(d * 16000);   /* rescaled to the model rate later */
		break;
	case O_SHARD:
		if (batch_parse_shard(arg, &o->shard_k, &o->shard_n, err, sizeof err) < 0) {
			fprintf(stderr, "s4kws classify: %s\n", err);
			return -1;
		}
		break;
	case O_SKIPDONE:
		o->skip_done = arg;
		break;
	case O_CONFIG:
		if (cfg_load_file(&o->det, arg, err, sizeof err) < 0) {
			fprintf(stderr, "s4kws classify: --config: %s\n", err);
			return -1;
		}
		break;
	default:
		break;
	}
	return 0;
}

/* Combinations that cannot work, refused before anything is loaded. 0 or -1 after a message. */
static int check_combinations(const struct opts *o, int argc, int first)
{
	if (o->post_path && o->eval_dir) {
		fprintf(stderr, "s4kws classify: --posteriors writes the scores of scanned recordings; "
			"--eval takes clips\n");
		return -1;
	}
	if (o->plot && !o->eval_dir) {
		fprintf(stderr, "s4kws classify: --plot needs --eval\n");
		return -1;
	}
	if (o->plot) { /* before the evaluation, not after it: its folder must take a new file */
		char *pd = strdup(o->plot), *slash = pd ? strrchr(pd, '/') : NULL;
		const char *dir = !slash ? "." : slash == pd ? "/" : (*slash = 0, pd);
		int ok = pd && access(dir, W_OK | X_OK) == 0;
		if (!ok)
			fprintf(stderr, "s4kws classify: --plot: cannot write '%s' (folder '%s': %s)\n", o->plot,
				dir, strerror(pd ? errno : ENOMEM));
		free(pd);
		if (!ok)
			return -1;
	}
	if (o->ctx_file && o->ctx_s <= 0) {
		fprintf(stderr, "s4kws classify: --context-file needs --stream-context SECONDS\n");
		return -1;
	}
	if (o->ctx_s > 0 && !o->eval_dir && !o->ctx_file) {
		fprintf(stderr, "s4kws classify: --stream-context without --eval needs --context-file\n");
		return -1;
	}
	if (!o->eval_dir && first >= argc) {
		fprintf(stderr, "s4kws classify: no input files (see --help)\n");
		return -1;
	}
	if (o->eval_dir && first < argc) {
		fprintf(stderr, "s4kws classify: --eval takes no other inputs\n");
		return -1;
	}
	return 0;
}

int copts_parse(int argc, char **argv, struct opts *o, int *first)
{
	static struct option lo[8 + 32 + N_DET];
	static const struct option base[] = {
		{"model", required_argument, 0, O_MODEL},
		{"mode", required_argument, 0, O_MODE},
		{"format", required_argument, 0, O_FORMAT},
		{"top", required_argument, 0, O_TOP},
		{"channels", required_argument, 0, O_CHANNELS},
		{"jobs", required_argument, 0, 'j'},
		{"native-rate", no_argument, 0, O_NATIVE},
		{"resample", required_argument, 0, O_RESAMPLE},
		{"max-rate", required_argument, 0, O_MAXRATE},
		{"min-duration", required_argument, 0, O_MIN},
		{"eval", required_argument, 0, O_EVAL},
		{"plot", required_argument, 0, O_PLOT},
		{"stream-context", required_argument, 0, O_CTX},
		{"stream-preroll", required_argument, 0, O_CTX},
		{"context-file", required_argument, 0, O_CTXFILE},
		{"seed", required_argument, 0, O_SEED},
		{"progress", no_argument, 0, O_PROGRESS},
		{"no-progress", no_argument, 0, O_NOPROGRESS},
		{"summary", no_argument, 0, O_SUMMARY},
		{"posteriors", required_argument, 0, O_POSTERIORS},
		{"chunk", required_argument, 0, O_CHUNK},
		{"config", required_argument, 0, O_CONFIG},
		{"shard", required_argument, 0, O_SHARD},
		{"skip-done", required_argument, 0, O_SKIPDONE},
		{"help", no_argument, 0, O_HELP},
	};
	size_t nb = sizeof base / sizeof base[0];
	memcpy(lo, base, sizeof base);
	for (size_t i = 0; i < N_DET; i++)
		lo[nb + i] = (struct option){det_opts[i], required_argument, 0, O_DET0 + (int)i};
	memset(&lo[nb + N_DET], 0, sizeof lo[0]);

	memset(o, 0, sizeof *o);
	o->mode = SCAN_CONV;      /* auto: clips in conv mode, recordings stepped as listen does */
	o->scan_mode = SCAN_STREAM;
	o->format = FMT_TEXT;
	o->jobs = 0;
	o->quality = RS_BEST;
	o->min_s = 0.1;
	o->seed = 1;
	o->progress = -1;
	cfg_defaults(&o->det);
	/* detection flags apply after --config wherever they stand: keep them for later */
	int nd = 0;
	const char *dn[64], *dv[64];

	optind = 1;
	opterr = 0;
	int c;
	char err[S4K_ERR_LEN];
	while ((c = getopt_long(argc, argv, "j:h", lo, NULL)) != -1) {
		switch (c) {
		case O_HELP:
		case 'h':
			usage(stdout);
			return 1;
		case '?':
			if (optopt)
				fprintf(stderr, "s4kws classify: option -%c needs a value or is unknown\n",
					optopt);
			else
				fprintf(stderr, "s4kws classify: unknown option '%s'\n", argv[optind - 1]);
			return -1;
		default:
			if (c < O_DET0) {
				if (take_option(o, c, optarg) < 0)
					return -1;
				break;
			}
			if (c >= O_DET0 && c < O_DET0 + (int)N_DET && nd < 64) {
				dn[nd] = det_opts[c - O_DET0];
				dv[nd++] = optarg;
			}
			break;
		}
	}
	for (int i = 0; i < nd; i++)
		if (cfg_set(&o->det, dn[i], dv[i], err, sizeof err) < 0) {
			fprintf(stderr, "s4kws classify: --%s: %s\n", dn[i], err);
			return -1;
		}
	*first = optind;
	return check_combinations(o, argc, optind);
}
