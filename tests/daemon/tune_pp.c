/* tune_pp.c - sweep the post-processing settings on a stream with known keyword offsets.
 *
 * usage: tune_pp MODEL STREAM.wav TRUTH.csv [--hop-ms MS] [--tolerance-ms T] [--latency-ms L]
 *                [--show THRESHOLD,SMOOTH_MS,MIN_MS,ONSET] [--restart-ms P]
 *
 * STREAM.wav and TRUTH.csv come from `e2e_accuracy --build-only --keep DIR` (validation clips
 * only). The posteriors are computed once, exactly as the daemon does (one s4m_stream, a
 * posterior vector every hop of scan_hop(model, hop_ms) samples); then every combination of
 * threshold x smoothing x minimum duration x onset is run through daemon/postproc and scored as
 * e2e_accuracy scores it (same keyword, reported end within +-tolerance of the true end, one to
 * one). For each setting it prints recall, false detections, the median decision delay and
 * the median end error (which is what latency-ms should be set to); the best setting with at
 * most 2 false detections per 10 minutes is printed last. --show runs one setting only and lists
 * every miss and every false detection with the nearest keyword. --restart-ms P: the steppers'
 * restart period (model/s4m_relay.c; default the daemon's, 0 = never). Not a test: a tuning aid.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audiofile.h"
#include "daemon/postproc.h"
#include "daemon/scan.h"
#include "model/s4m.h"

struct truth {
	char kw[48];
	double end;
};

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: tune_pp MODEL STREAM.wav TRUTH.csv [--hop-ms MS] [--tolerance-ms T] [--latency-ms L] [--show T,S,M,O] [--restart-ms P]\n");
		return 2;
	}
	double hop_ms = 10, tol = 0.3, latency = PP_DEF_LATENCY_MS;
	float thr[] = {0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.85f, 0.9f, 0.95f};
	float sm[] = {10, 30, 60, 100};
	float mn[] = {10, 30, 60, 100};
	float on[] = {1.0f, 0.75f, 0.5f, 0.25f};
	size_t n_thr = sizeof thr / sizeof thr[0], n_sm = sizeof sm / sizeof sm[0];
	size_t n_mn = sizeof mn / sizeof mn[0], n_on = sizeof on / sizeof on[0];
	int show = 0;
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
		else if (!strcmp(argv[i], "--show")) {
			if (sscanf(argv[i + 1], "%f,%f,%f,%f", &thr[0], &sm[0], &mn[0], &on[0]) != 4) {
				fprintf(stderr, "tune_pp: --show takes THRESHOLD,SMOOTH_MS,MIN_MS,ONSET\n");
				return 2;
			}
			n_thr = n_sm = n_mn = n_on = 1;
			show = 1;
		}
	}
	char err[S4K_ERR_LEN];
	struct s4m_model *m = s4m_load(argv[1], 1.0, err, sizeof err);
	if (!m) {
		fprintf(stderr, "tune_pp: %s\n", err);
		return 1;
	}
	int rate = s4m_sample_rate(m), K = s4m_n_labels(m);
	struct af_file *f = af_open(argv[2], err, sizeof err);
	float *x = NULL;
	size_t n = 0;
	if (!f || af_set_output(f, AF_MIX, rate, RS_BEST, err, sizeof err) < 0 ||
	    af_load(f, (size_t)rate * 7200, &x, &n, err, sizeof err) < 0) {
		fprintf(stderr, "tune_pp: %s: %s\n", argv[2], err);
		return 1;
	}
	af_close(f);
	FILE *tf = fopen(argv[3], "r");
	static struct truth tr[8192];
	int nt = 0;
	char line[1024];
	while (tf && fgets(line, sizeof line, tf) && nt < 8192) {
		char kw[48];
		double s, e;
		if (sscanf(line, "%47[^,],%lf,%lf", kw, &s, &e) == 3 && strcmp(kw, "-")) {
			snprintf(tr[nt].kw, sizeof tr[nt].kw, "%s", kw);
			tr[nt].end = e;
			nt++;
		}
	}
	if (tf)
		fclose(tf);
	/* posteriors, as the daemon computes them */
	size_t hop = scan_hop(m, hop_ms);
	size_t nh = n / hop;
	float *post = malloc(nh * (size_t)K * sizeof *post);
	/* the daemon's steppers: one relay with the configured restart period */
	struct s4m_relay *rl = s4m_relay_new(m, scan_period(m, restart_ms), err, sizeof err);
	if (!post || !rl) {
		fprintf(stderr, "tune_pp: %s\n", rl ? "out of memory" : err);
		return 1;
	}
	for (size_t h = 0; h < nh; h++) {
		s4m_relay_push(rl, x + h * hop, hop);
		s4m_relay_scores(rl, post + h * (size_t)K);
	}
	s4m_relay_free(rl);
	double minutes = (double)n / rate / 60;
	printf("%s: %.1f min, %d keywords, hop %zu samples\n", argv[2], minutes, nt, hop);
	printf("latency-ms %.0f, restart-ms %.0f\n", latency, restart_ms);
	printf("%9s %6s %6s %5s %8s %6s %8s %9s\n", "threshold", "smooth", "min", "onset", "recall", "false",
	       "delay", "end-err");
	const char **labels = malloc((size_t)K * sizeof *labels);
	for (int k = 0; k < K; k++)
		labels[k] = s4m_label(m, k);
	struct pp_kw *kw = malloc((size_t)K * sizeof *kw);
	double best_score = -1;
	char best[256] = "";
	static double delays[8192], errs[8192];
	static int used[65536];
	static struct {
		int label;
		double end, offset;
	} det[65536];
	for (size_t a = 0; a < n_thr; a++)
		for (size_t b = 0; b < n_sm; b++)
			for (size_t c = 0; c < n_mn; c++)
			for (size_t o = 0; o < n_on; o++) {
				for (int k = 0; k < K; k++) {
					pp_kw_default(&kw[k]);
					kw[k].threshold = thr[a];
					kw[k].smooth_ms = sm[b];
					kw[k].min_ms = mn[c];
				}
				struct pp_config pc;
				pp_config_default(&pc, rate, hop, K, labels, kw);
				pc.onset = on[o];
				pc.latency_ms = (float)latency;
				struct pp *pp = pp_new(&pc, err, sizeof err);
				if (!pp)
					continue;
				int nd = 0;
				for (size_t h = 0; h < nh; h++) {
					struct pp_detection d[PP_MAX_OUT];
					int k = pp_push(pp, post + h * (size_t)K, d, PP_MAX_OUT);
					for (int j = 0; j < k && nd < 65536; j++) {
						det[nd].label = d[j].label;
						det[nd].end = (double)d[j].end / rate;
						det[nd].offset = (double)d[j].sample / rate;
						nd++;
					}
				}
				pp_free(pp);
				memset(used, 0, (size_t)nd * sizeof *used);
				int matched = 0;
				for (int t = 0; t < nt; t++) {
					int bi = -1;
					for (int j = 0; j < nd; j++)
						if (!used[j] && !strcmp(labels[det[j].label], tr[t].kw) &&
						    fabs(det[j].end - tr[t].end) <= tol &&
						    (bi < 0 || fabs(det[j].end - tr[t].end) < fabs(det[bi].end - tr[t].end)))
							bi = j;
					if (bi < 0 && show) {
						int ni = -1; /* nearest detection of any keyword */
						for (int j = 0; j < nd; j++)
							if (ni < 0 || fabs(det[j].end - tr[t].end) < fabs(det[ni].end - tr[t].end))
								ni = j;
						printf("miss  %-6s end %8.2f s; nearest detection: %s end %+.2f s\n", tr[t].kw,
						       tr[t].end, ni >= 0 ? labels[det[ni].label] : "none",
						       ni >= 0 ? det[ni].end - tr[t].end : 0.0);
					}
					if (bi >= 0) {
						used[bi] = 1;
						delays[matched] = det[bi].offset - tr[t].end;
						errs[matched] = det[bi].end - tr[t].end;
						matched++;
					}
				}
				for (int j = 0; show && j < nd; j++) {
					if (used[j])
						continue;
					int ti = -1; /* nearest keyword */
					for (int t = 0; t < nt; t++)
						if (ti < 0 || fabs(det[j].end - tr[t].end) < fabs(det[j].end - tr[ti].end))
							ti = t;
					printf("false %-6s end %8.2f s; nearest keyword: %s end %+.2f s\n", labels[det[j].label],
					       det[j].end, ti >= 0 ? tr[ti].kw : "none", ti >= 0 ? det[j].end - tr[ti].end : 0.0);
				}
				int nfalse = nd - matched;
				qsort(delays, (size_t)matched, sizeof *delays, cmp_d);
				qsort(errs, (size_t)matched, sizeof *errs, cmp_d);
				double rec = nt ? (double)matched / nt : 0;
				double dmed = matched ? delays[matched / 2] : 0, emed = matched ? errs[matched / 2] : 0;
				printf("%9.2f %6.0f %6.0f %5.2f %7.1f%% %6d %6.0fms %+7.0fms\n", thr[a], sm[b], mn[c], on[o], 100 * rec,
				       nfalse, 1000 * dmed, 1000 * emed);
				double fp10 = nfalse / minutes * 10;
				if (fp10 <= 2 && rec - 0.001 * dmed > best_score) {
					best_score = rec - 0.001 * dmed;
					snprintf(best, sizeof best,
						 "threshold %.2f smooth-ms %.0f min-ms %.0f onset %.2f: recall %.1f %%, "
						 "%d false, median delay %.0f ms, median end error %+.0f ms",
						 thr[a], sm[b], mn[c], on[o], 100 * rec, nfalse, 1000 * dmed, 1000 * emed);
				}
			}
	printf("best with <= 2 false per 10 min: %s\n", best[0] ? best : "none");
	free(kw);
	free(labels);
	free(post);
	free(x);
	s4m_free(m);
	return 0;
}
