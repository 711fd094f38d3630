/* tune_pp.c - sweep the post-processing settings on streams with known keyword offsets.
 *
 * usage: tune_pp MODEL STREAM.wav TRUTH.csv [--also STREAM.wav TRUTH.csv]... [--negative WAV]...
 *                [--hop-ms MS] [--tolerance-ms T] [--latency-ms L] [--restart-ms P]
 *                [--show THRESHOLD,SMOOTH_MS,MIN_MS,ONSET]
 *                [--per-keyword SMOOTH_MS,MIN_MS,ONSET[,MAX_FALSE[,LOWEST]]]
 *
 * STREAM.wav and TRUTH.csv come from `e2e_accuracy --build-only --keep DIR` (validation clips
 * only); --also adds more streams, and every figure is then the sum over all of them;
 * --negative adds a recording without keywords (every detection on it is false), so that a
 * false-detection budget can cover ordinary speech and not only the streams' fillers. The
 * posteriors are computed once per recording, exactly as the daemon does (bench/kwseval.h: one
 * s4m_relay, a posterior vector every hop of scan_hop(model, hop_ms) samples); then every combination of
 * threshold x smoothing x minimum duration x onset is run through daemon/postproc and scored as
 * e2e_accuracy scores it (same keyword, reported end within +-tolerance of the true end, one to
 * one). For each setting it prints recall, false detections, the median decision delay and
 * the median end error (which is what latency-ms should be set to); the best setting with at
 * most 2 false detections per 10 minutes is printed last. --show runs one setting only and lists
 * every miss and every false detection with the nearest keyword. --restart-ms P: the steppers'
 * restart period (model/s4m_relay.c; default the daemon's, 0 = never).
 *
 * --per-keyword: one threshold per keyword, the other settings fixed. A keyword's detections
 * depend only on its own threshold (smoothing, refractory and require-top do not look at the
 * other keywords' thresholds) and are matched only to that keyword's truth, so its hits and
 * false detections are counted once per threshold of the grid; then, for a price lambda of a
 * false detection, every keyword takes the threshold (LOWEST, default 0.40, in steps of 0.05 to
 * 0.95, then 0.97, 0.98, 0.99) that maximises hits - lambda x false. The
 * output lists the sweep over lambda and, last, the thresholds that find the most keywords with
 * at most MAX_FALSE false detections in all (default: as many as the best single threshold
 * of the grid with at most as many false detections as the default threshold), as
 * `--threshold KW=T` flags. Not a test: a tuning aid.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spot/postproc.h"
#include "spot/scan.h"
#include "kwseval.h"
#include "model/s4m.h"

#define MAX_STREAMS 16
#define MAX_THR 16 /* thresholds of a sweep: 8 by default, 13 + 3 with --per-keyword */

/* The command line. The sweep is every combination thr x sm x mn x on; --show and --per-keyword
 * cut the axes they set to one value (and --per-keyword puts its finer grid in thr). */
struct opts {
	const char *model;
	const char *wavs[MAX_STREAMS], *csvs[MAX_STREAMS]; /* csvs[i] NULL: keyword-free */
	int ns;
	double hop_ms, tol, latency, restart_ms; /* ms, s, ms, ms */
	float thr[MAX_THR], sm[4], mn[4], on[4];
	size_t n_thr, n_sm, n_mn, n_on;
	int show, per_kw, max_false; /* max_false < 0: the default threshold's false count */
};

/* What every pass over the recordings needs. */
struct ctx {
	const struct opts *o;
	const struct s4m_model *m;
	const struct kwe_rec *ss; /* o->ns recordings */
	size_t hop;               /* samples between posterior vectors */
	int K;
	const char **labels;
	struct kwe_tally t; /* the latest kwe_score's */
};

/* The sweep's counts per threshold of the grid (the last setting with that threshold: with
 * --per-keyword it is the only one), which the per-keyword search picks from. */
struct sweep {
	int hits[MAX_THR][KWE_MAX_LABELS], falses[MAX_THR][KWE_MAX_LABELS];
	int tot_hits[MAX_THR], tot_false[MAX_THR];
	int truths[KWE_MAX_LABELS], nt;
	double minutes;
	char best[256]; /* "" while no setting is within 2 false per 10 min */
};

/* --per-keyword SMOOTH_MS,MIN_MS,ONSET[,MAX_FALSE[,LOWEST]]: 0, or the exit status 2. */
static int per_keyword_arg(const char *arg, struct opts *o)
{
	float lo = 0.40f;
	if (sscanf(arg, "%f,%f,%f,%d,%f", &o->sm[0], &o->mn[0], &o->on[0], &o->max_false, &lo) < 3 ||
	    !(lo >= 0.05f && lo <= 0.95f)) {
		fprintf(stderr, "tune_pp: --per-keyword takes SMOOTH_MS,MIN_MS,ONSET[,MAX_FALSE[,LOWEST]]\n");
		return 2;
	}
	o->n_sm = o->n_mn = o->n_on = 1;
	o->per_kw = 1;
	o->n_thr = 0; /* a finer grid: LOWEST (0.40), + 0.05, ..., 0.95, 0.97, 0.98, 0.99 */
	for (float t = lo; t < 0.951f && o->n_thr < 13; t += 0.05f)
		o->thr[o->n_thr++] = t;
	o->thr[o->n_thr++] = 0.97f;
	o->thr[o->n_thr++] = 0.98f;
	o->thr[o->n_thr++] = 0.99f;
	return 0;
}

/* 0, or the exit status 2 after a message. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	if (argc < 4) {
		fprintf(stderr, "usage: tune_pp MODEL STREAM.wav TRUTH.csv [--also STREAM.wav TRUTH.csv]... [--negative WAV]... "
				"[--hop-ms MS] [--tolerance-ms T] [--latency-ms L] [--show T,S,M,O] "
				"[--per-keyword S,M,O[,MAX_FALSE]] [--restart-ms P]\n");
		return 2;
	}
	*o = (struct opts){
		.model = argv[1], .wavs = {argv[2]}, .csvs = {argv[3]}, .ns = 1,
		.hop_ms = 10, .tol = 0.3, .latency = PP_DEF_LATENCY_MS, .restart_ms = PP_DEF_RESTART_MS,
		.thr = {0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.85f, 0.9f, 0.95f},
		.sm = {10, 30, 60, 100}, .mn = {10, 30, 60, 100}, .on = {1.0f, 0.75f, 0.5f, 0.25f},
		.n_thr = 8, .n_sm = 4, .n_mn = 4, .n_on = 4, .max_false = -1,
	};
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--hop-ms"))
			o->hop_ms = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--tolerance-ms"))
			o->tol = atof(argv[i + 1]) / 1000;
		else if (!strcmp(argv[i], "--latency-ms"))
			o->latency = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--restart-ms"))
			o->restart_ms = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--also") && i + 2 < argc && o->ns < MAX_STREAMS) {
			o->wavs[o->ns] = argv[i + 1];
			o->csvs[o->ns++] = argv[i + 2];
			i++;
		} else if (!strcmp(argv[i], "--negative") && o->ns < MAX_STREAMS) {
			o->wavs[o->ns] = argv[i + 1];
			o->csvs[o->ns++] = NULL;
		} else if (!strcmp(argv[i], "--show")) {
			if (sscanf(argv[i + 1], "%f,%f,%f,%f", &o->thr[0], &o->sm[0], &o->mn[0], &o->on[0]) != 4) {
				fprintf(stderr, "tune_pp: --show takes THRESHOLD,SMOOTH_MS,MIN_MS,ONSET\n");
				return 2;
			}
			o->n_thr = o->n_sm = o->n_mn = o->n_on = 1;
			o->show = 1;
		} else if (!strcmp(argv[i], "--per-keyword")) {
			if (per_keyword_arg(argv[i + 1], o))
				return 2;
		} else {
			fprintf(stderr, "tune_pp: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	return 0;
}

/* One setting of the sweep: score it, print its line, keep its counts and whether it is the
 * best within 2 false detections per 10 minutes (*best_score: recall less 1 per 1000 s delay). */
static void sweep_setting(struct ctx *c, size_t a, size_t b, size_t d, size_t e, struct sweep *sw,
			  double *best_score)
{
	const struct opts *o = c->o;
	struct kwe_tally *t = &c->t;
	struct kwe_setting st = {.smooth = o->sm[b], .min = o->mn[d], .onset = o->on[e]};
	for (int k = 0; k < c->K; k++)
		st.thr[k] = o->thr[a];
	kwe_score(c->ss, o->ns, &st, c->m, c->hop, o->latency, o->tol, o->show, t);
	memcpy(sw->hits[a], t->hits, sizeof t->hits);
	memcpy(sw->falses[a], t->falses, sizeof t->falses);
	memcpy(sw->truths, t->truths, sizeof t->truths);
	sw->tot_hits[a] = t->matched;
	sw->tot_false[a] = t->nfalse;
	sw->nt = t->nt;
	sw->minutes = t->minutes;
	double rec = t->nt ? (double)t->matched / t->nt : 0;
	double dmed = kwe_median(t->delays, t->matched), emed = kwe_median(t->errs, t->matched);
	printf("%9.2f %6.0f %6.0f %5.2f %7.1f%% %6d %6.0fms %+7.0fms\n", o->thr[a], o->sm[b], o->mn[d],
	       o->on[e], 100 * rec, t->nfalse, 1000 * dmed, 1000 * emed);
	double fp10 = t->nfalse / t->minutes * 10;
	if (fp10 <= 2 && rec - 0.001 * dmed > *best_score) {
		*best_score = rec - 0.001 * dmed;
		snprintf(sw->best, sizeof sw->best,
			 "threshold %.2f smooth-ms %.0f min-ms %.0f onset %.2f: recall %.1f %%, "
			 "%d false, median delay %.0f ms, median end error %+.0f ms",
			 o->thr[a], o->sm[b], o->mn[d], o->on[e], 100 * rec, t->nfalse, 1000 * dmed, 1000 * emed);
	}
}

/* Every combination threshold x smoothing x minimum x onset, one line each. */
static void sweep(struct ctx *c, struct sweep *sw)
{
	const struct opts *o = c->o;
	double best_score = -1;
	printf("%9s %6s %6s %5s %8s %6s %8s %9s\n", "threshold", "smooth", "min", "onset", "recall", "false",
	       "delay", "end-err");
	for (size_t a = 0; a < o->n_thr; a++)
		for (size_t b = 0; b < o->n_sm; b++)
			for (size_t d = 0; d < o->n_mn; d++)
				for (size_t e = 0; e < o->n_on; e++)
					sweep_setting(c, a, b, d, e, sw, &best_score);
}

/* For each price lambda of a false detection, every keyword's threshold index maximising
 * hits - lambda x false, one line each; the pick with the most hits within max_false (then the
 * fewest false) goes to best_pick and *best_false. Returns its hits, -1 if none is within. */
static int lambda_sweep(const struct ctx *c, const struct sweep *sw, int max_false, size_t *best_pick,
			int *best_false)
{
	const struct opts *o = c->o;
	int best_hits = -1;
	printf("%7s %8s %6s  thresholds\n", "lambda", "recall", "false");
	for (double lambda = 0.1; lambda <= 200.0; lambda *= 1.25) {
		size_t pick[KWE_MAX_LABELS] = {0};
		int h = 0, f = 0;
		for (int k = 0; k < c->K; k++) {
			if (c->labels[k][0] == '_')
				continue;
			double bv = -1e30;
			for (size_t a = 0; a < o->n_thr; a++) { /* ties go to the higher threshold */
				double v = sw->hits[a][k] - lambda * sw->falses[a][k];
				if (v >= bv) {
					bv = v;
					pick[k] = a;
				}
			}
			h += sw->hits[pick[k]][k];
			f += sw->falses[pick[k]][k];
		}
		printf("%7.2f %7.1f%% %6d ", lambda, sw->nt ? 100.0 * h / sw->nt : 0, f);
		for (int k = 0; k < c->K; k++)
			if (c->labels[k][0] != '_')
				printf(" %s=%.2f", c->labels[k], o->thr[pick[k]]);
		printf("\n");
		if (f <= max_false && (h > best_hits || (h == best_hits && f < *best_false))) {
			best_hits = h;
			*best_false = f;
			memcpy(best_pick, pick, sizeof pick);
		}
	}
	return best_hits;
}

/* The chosen thresholds as flags, each keyword's counts at its own, then all of them run
 * together (the same counts if the keywords are independent) and as model metadata. */
static void print_pick(struct ctx *c, const struct sweep *sw, const size_t *pick)
{
	const struct opts *o = c->o;
	for (int k = 0; k < c->K; k++)
		if (c->labels[k][0] != '_')
			printf(" --threshold %s=%.2f", c->labels[k], o->thr[pick[k]]);
	printf("\n");
	for (int k = 0; k < c->K; k++)
		if (c->labels[k][0] != '_')
			printf("  %-6s %3d keywords: %3d found, %2d false at %.2f\n", c->labels[k], sw->truths[k],
			       sw->hits[pick[k]][k], sw->falses[pick[k]][k], o->thr[pick[k]]);
	struct kwe_tally *t = &c->t;
	struct kwe_setting st = {.smooth = o->sm[0], .min = o->mn[0], .onset = o->on[0]};
	for (int k = 0; k < c->K; k++)
		st.thr[k] = o->thr[pick[k]];
	kwe_score(c->ss, o->ns, &st, c->m, c->hop, o->latency, o->tol, 0, t);
	printf("run together: recall %.1f %% (%d), %d false, median delay %.0f ms, median end error %+.0f ms\n",
	       t->nt ? 100.0 * t->matched / t->nt : 0, t->matched, t->nfalse, 1000 * kwe_median(t->delays, t->matched),
	       1000 * kwe_median(t->errs, t->matched));
	printf("metadata: {");
	for (int k = 0, first = 1; k < c->K; k++)
		if (c->labels[k][0] != '_') {
			printf("%s\"%s\": %.2f", first ? "" : ", ", c->labels[k], o->thr[pick[k]]);
			first = 0;
		}
	printf("}\n");
}

/* --per-keyword after the sweep: the budget, the lambda sweep and the best pick within it. */
static void per_keyword(struct ctx *c, const struct sweep *sw)
{
	const struct opts *o = c->o;
	/* the default threshold's false count is the budget unless given */
	int max_false = o->max_false;
	if (max_false < 0)
		for (size_t a = 0; a < o->n_thr; a++)
			if (fabsf(o->thr[a] - (float)PP_DEF_THRESHOLD) < 1e-4f)
				max_false = sw->tot_false[a];
	int ref_hits = -1; /* the best single threshold within the budget */
	for (size_t a = 0; a < o->n_thr; a++)
		if (sw->tot_false[a] <= max_false && sw->tot_hits[a] > ref_hits)
			ref_hits = sw->tot_hits[a];
	printf("\nper-keyword thresholds (smooth-ms %.0f min-ms %.0f onset %.2f; %d keywords, %.1f min): "
	       "budget %d false, best single threshold finds %d\n", o->sm[0], o->mn[0], o->on[0], sw->nt,
	       sw->minutes, max_false, ref_hits);
	size_t best_pick[KWE_MAX_LABELS] = {0};
	int best_false = 0;
	int best_hits = lambda_sweep(c, sw, max_false, best_pick, &best_false);
	if (best_hits < 0) {
		printf("no per-keyword setting within %d false detections\n", max_false);
		return;
	}
	printf("best per-keyword thresholds within %d false: recall %.1f %% (%d), %d false:\n", max_false,
	       sw->nt ? 100.0 * best_hits / sw->nt : 0, best_hits, best_false);
	print_pick(c, sw, best_pick);
}

/* Each recording's posteriors, and a line about it: 0, or the exit status 1 after a message. */
static int load_recordings(const struct s4m_model *m, const struct opts *o, size_t hop, struct kwe_rec *ss)
{
	char err[S4K_ERR_LEN];
	for (int i = 0; i < o->ns; i++) {
		if (kwe_load(m, o->wavs[i], o->csvs[i], hop, o->restart_ms, &ss[i], err, sizeof err) < 0) {
			fprintf(stderr, "tune_pp: %s: %s\n", o->wavs[i], err);
			return 1;
		}
		printf("%s: %.1f min, %d keywords%s, hop %zu samples\n", o->wavs[i], ss[i].minutes, ss[i].nt,
		       o->csvs[i] ? "" : " (keyword-free)", hop);
	}
	return 0;
}

/* Everything after the recordings' posteriors: 0, or the exit status 1 after a message. */
static int tune(const struct opts *o, const struct s4m_model *m, const struct kwe_rec *ss, size_t hop)
{
	printf("latency-ms %.0f, restart-ms %.0f\n", o->latency, o->restart_ms);
	struct ctx c = {.o = o, .m = m, .ss = ss, .hop = hop, .K = s4m_n_labels(m)};
	c.labels = malloc((size_t)c.K * sizeof *c.labels);
	if (!c.labels || kwe_tally_init(&c.t, o->ns) < 0) {
		fprintf(stderr, "tune_pp: out of memory\n");
		free(c.labels);
		return 1;
	}
	for (int k = 0; k < c.K; k++)
		c.labels[k] = s4m_label(m, k);
	static struct sweep sw; /* zero: no best setting yet; static, as it is 8 KB */
	sweep(&c, &sw);
	if (o->per_kw)
		per_keyword(&c, &sw);
	else
		printf("best with <= 2 false per 10 min: %s\n", sw.best[0] ? sw.best : "none");
	kwe_tally_free(&c.t);
	free(c.labels);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	char err[S4K_ERR_LEN];
	struct s4m_model *m = s4m_load(o.model, 1.0, err, sizeof err);
	if (!m) {
		fprintf(stderr, "tune_pp: %s\n", err);
		return 1;
	}
	if (s4m_n_labels(m) > KWE_MAX_LABELS) {
		fprintf(stderr, "tune_pp: more than %d labels\n", KWE_MAX_LABELS);
		s4m_free(m);
		return 1;
	}
	size_t hop = scan_hop(m, o.hop_ms);
	static struct kwe_rec ss[MAX_STREAMS]; /* zero: kwe_rec_free is safe on those not loaded */
	rc = load_recordings(m, &o, hop, ss);
	if (!rc)
		rc = tune(&o, m, ss, hop);
	for (int i = 0; i < o.ns; i++)
		kwe_rec_free(&ss[i]);
	s4m_free(m);
	return rc;
}
