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

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: tune_pp MODEL STREAM.wav TRUTH.csv [--also STREAM.wav TRUTH.csv]... [--negative WAV]... "
				"[--hop-ms MS] [--tolerance-ms T] [--latency-ms L] [--show T,S,M,O] "
				"[--per-keyword S,M,O[,MAX_FALSE]] [--restart-ms P]\n");
		return 2;
	}
	double hop_ms = 10, tol = 0.3, latency = PP_DEF_LATENCY_MS;
	float thr[16] = {0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.85f, 0.9f, 0.95f};
	float sm[] = {10, 30, 60, 100};
	float mn[] = {10, 30, 60, 100};
	float on[] = {1.0f, 0.75f, 0.5f, 0.25f};
	size_t n_thr = 8, n_sm = sizeof sm / sizeof sm[0];
	size_t n_mn = sizeof mn / sizeof mn[0], n_on = sizeof on / sizeof on[0];
	int show = 0, per_kw = 0, max_false = -1;
	const char *wavs[MAX_STREAMS] = {argv[2]}, *csvs[MAX_STREAMS] = {argv[3]};
	int ns = 1;
	double restart_ms = PP_DEF_RESTART_MS;
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--hop-ms"))
			hop_ms = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--tolerance-ms"))
			tol = atof(argv[i + 1]) / 1000;
		else if (!strcmp(argv[i], "--latency-ms"))
			latency = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--restart-ms"))
			restart_ms = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--also") && i + 2 < argc && ns < MAX_STREAMS) {
			wavs[ns] = argv[i + 1];
			csvs[ns++] = argv[i + 2];
			i++;
		} else if (!strcmp(argv[i], "--negative") && ns < MAX_STREAMS) {
			wavs[ns] = argv[i + 1];
			csvs[ns++] = NULL;
		} else if (!strcmp(argv[i], "--show")) {
			if (sscanf(argv[i + 1], "%f,%f,%f,%f", &thr[0], &sm[0], &mn[0], &on[0]) != 4) {
				fprintf(stderr, "tune_pp: --show takes THRESHOLD,SMOOTH_MS,MIN_MS,ONSET\n");
				return 2;
			}
			n_thr = n_sm = n_mn = n_on = 1;
			show = 1;
		} else if (!strcmp(argv[i], "--per-keyword")) {
			float lo = 0.40f;
			if (sscanf(argv[i + 1], "%f,%f,%f,%d,%f", &sm[0], &mn[0], &on[0], &max_false, &lo) < 3 ||
			    !(lo >= 0.05f && lo <= 0.95f)) {
				fprintf(stderr, "tune_pp: --per-keyword takes SMOOTH_MS,MIN_MS,ONSET[,MAX_FALSE[,LOWEST]]\n");
				return 2;
			}
			n_sm = n_mn = n_on = 1;
			per_kw = 1;
			n_thr = 0; /* a finer grid: LOWEST (0.40), + 0.05, ..., 0.95, 0.97, 0.98, 0.99 */
			for (float t = lo; t < 0.951f && n_thr < 13; t += 0.05f)
				thr[n_thr++] = t;
			thr[n_thr++] = 0.97f;
			thr[n_thr++] = 0.98f;
			thr[n_thr++] = 0.99f;
		} else {
			fprintf(stderr, "tune_pp: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	char err[S4K_ERR_LEN];
	struct s4m_model *m = s4m_load(argv[1], 1.0, err, sizeof err);
	if (!m) {
		fprintf(stderr, "tune_pp: %s\n", err);
		return 1;
	}
	int K = s4m_n_labels(m);
	if (K > KWE_MAX_LABELS) {
		fprintf(stderr, "tune_pp: more than %d labels\n", KWE_MAX_LABELS);
		return 1;
	}
	size_t hop = scan_hop(m, hop_ms);
	static struct kwe_rec ss[MAX_STREAMS];
	for (int i = 0; i < ns; i++) {
		if (kwe_load(m, wavs[i], csvs[i], hop, restart_ms, &ss[i], err, sizeof err) < 0) {
			fprintf(stderr, "tune_pp: %s: %s\n", wavs[i], err);
			return 1;
		}
		printf("%s: %.1f min, %d keywords%s, hop %zu samples\n", wavs[i], ss[i].minutes, ss[i].nt,
		       csvs[i] ? "" : " (keyword-free)", hop);
	}
	printf("latency-ms %.0f, restart-ms %.0f\n", latency, restart_ms);
	const char **labels = malloc((size_t)K * sizeof *labels);
	struct kwe_tally t;
	if (!labels || kwe_tally_init(&t, ns) < 0) {
		fprintf(stderr, "tune_pp: out of memory\n");
		return 1;
	}
	for (int k = 0; k < K; k++)
		labels[k] = s4m_label(m, k);
	printf("%9s %6s %6s %5s %8s %6s %8s %9s\n", "threshold", "smooth", "min", "onset", "recall", "false",
	       "delay", "end-err");
	static int hits[16][KWE_MAX_LABELS], falses[16][KWE_MAX_LABELS];
	int tot_false[16], tot_hits[16];
	int truths[KWE_MAX_LABELS] = {0}, nt = 0;
	double minutes = 0, best_score = -1;
	char best[256] = "";
	for (size_t a = 0; a < n_thr; a++)
		for (size_t b = 0; b < n_sm; b++)
			for (size_t c = 0; c < n_mn; c++)
				for (size_t o = 0; o < n_on; o++) {
					struct kwe_setting st = {.smooth = sm[b], .min = mn[c], .onset = on[o]};
					for (int k = 0; k < K; k++)
						st.thr[k] = thr[a];
					kwe_score(ss, ns, &st, m, hop, latency, tol, show, &t);
					memcpy(hits[a], t.hits, sizeof t.hits);
					memcpy(falses[a], t.falses, sizeof t.falses);
					memcpy(truths, t.truths, sizeof t.truths);
					tot_hits[a] = t.matched;
					tot_false[a] = t.nfalse;
					nt = t.nt;
					minutes = t.minutes;
					double rec = t.nt ? (double)t.matched / t.nt : 0;
					double dmed = kwe_median(t.delays, t.matched), emed = kwe_median(t.errs, t.matched);
					printf("%9.2f %6.0f %6.0f %5.2f %7.1f%% %6d %6.0fms %+7.0fms\n", thr[a], sm[b], mn[c],
					       on[o], 100 * rec, t.nfalse, 1000 * dmed, 1000 * emed);
					double fp10 = t.nfalse / t.minutes * 10;
					if (fp10 <= 2 && rec - 0.001 * dmed > best_score) {
						best_score = rec - 0.001 * dmed;
						snprintf(best, sizeof best,
							 "threshold %.2f smooth-ms %.0f min-ms %.0f onset %.2f: recall %.1f %%, "
							 "%d false, median delay %.0f ms, median end error %+.0f ms",
							 thr[a], sm[b], mn[c], on[o], 100 * rec, t.nfalse, 1000 * dmed, 1000 * emed);
					}
				}
	if (!per_kw) {
		printf("best with <= 2 false per 10 min: %s\n", best[0] ? best : "none");
		return 0;
	}
	/* per-keyword thresholds: the default threshold's false count is the budget unless given */
	if (max_false < 0)
		for (size_t a = 0; a < n_thr; a++)
			if (fabsf(thr[a] - (float)PP_DEF_THRESHOLD) < 1e-4f)
				max_false = tot_false[a];
	int ref_hits = -1; /* the best single threshold within the budget */
	for (size_t a = 0; a < n_thr; a++)
		if (tot_false[a] <= max_false && tot_hits[a] > ref_hits)
			ref_hits = tot_hits[a];
	printf("\nper-keyword thresholds (smooth-ms %.0f min-ms %.0f onset %.2f; %d keywords, %.1f min): "
	       "budget %d false, best single threshold finds %d\n", sm[0], mn[0], on[0], nt, minutes, max_false,
	       ref_hits);
	printf("%7s %8s %6s  thresholds\n", "lambda", "recall", "false");
	int best_hits = -1, best_false = 0;
	size_t best_pick[KWE_MAX_LABELS] = {0};
	for (double lambda = 0.1; lambda <= 200.0; lambda *= 1.25) {
		size_t pick[KWE_MAX_LABELS] = {0};
		int h = 0, f = 0;
		for (int k = 0; k < K; k++) {
			if (labels[k][0] == '_')
				continue;
			double bv = -1e30;
			for (size_t a = 0; a < n_thr; a++) { /* ties go to the higher threshold */
				double v = hits[a][k] - lambda * falses[a][k];
				if (v >= bv) {
					bv = v;
					pick[k] = a;
				}
			}
			h += hits[pick[k]][k];
			f += falses[pick[k]][k];
		}
		printf("%7.2f %7.1f%% %6d ", lambda, nt ? 100.0 * h / nt : 0, f);
		for (int k = 0; k < K; k++)
			if (labels[k][0] != '_')
				printf(" %s=%.2f", labels[k], thr[pick[k]]);
		printf("\n");
		if (f <= max_false && (h > best_hits || (h == best_hits && f < best_false))) {
			best_hits = h;
			best_false = f;
			memcpy(best_pick, pick, sizeof pick);
		}
	}
	if (best_hits < 0) {
		printf("no per-keyword setting within %d false detections\n", max_false);
		return 0;
	}
	printf("best per-keyword thresholds within %d false: recall %.1f %% (%d), %d false:\n", max_false,
	       nt ? 100.0 * best_hits / nt : 0, best_hits, best_false);
	for (int k = 0; k < K; k++)
		if (labels[k][0] != '_')
			printf(" --threshold %s=%.2f", labels[k], thr[best_pick[k]]);
	printf("\n");
	for (int k = 0; k < K; k++)
		if (labels[k][0] != '_')
			printf("  %-6s %3d keywords: %3d found, %2d false at %.2f\n", labels[k], truths[k],
			       hits[best_pick[k]][k], falses[best_pick[k]][k], thr[best_pick[k]]);
	/* the chosen thresholds run together: the same counts if the keywords are independent */
	struct kwe_setting st = {.smooth = sm[0], .min = mn[0], .onset = on[0]};
	for (int k = 0; k < K; k++)
		st.thr[k] = thr[best_pick[k]];
	kwe_score(ss, ns, &st, m, hop, latency, tol, 0, &t);
	printf("run together: recall %.1f %% (%d), %d false, median delay %.0f ms, median end error %+.0f ms\n",
	       t.nt ? 100.0 * t.matched / t.nt : 0, t.matched, t.nfalse, 1000 * kwe_median(t.delays, t.matched),
	       1000 * kwe_median(t.errs, t.matched));
	printf("metadata: {");
	for (int k = 0, first = 1; k < K; k++)
		if (labels[k][0] != '_') {
			printf("%s\"%s\": %.2f", first ? "" : ", ", labels[k], thr[best_pick[k]]);
			first = 0;
		}
	printf("}\n");
	kwe_tally_free(&t);
	free(labels);
	s4m_free(m);
	return 0;
}
