/* det.c - what a user feels: false detections per hour on keyword-free audio against missed
 * keywords on streams, for one or two models, as a table and a DET curve (PNG).
 *
 * usage: det --model NAME=FILE [--model NAME=FILE] --stream WAV TRUTH.csv [--stream ...]
 *            --negative WAV [--negative WAV ...] [--png OUT.png] [--hop-ms MS]
 *            [--latency-ms L] [--tolerance-ms T] [--pick RATE]
 *
 * Design: posteriors once per model and recording (bench/kwseval.h: the live daemon's stepper
 * and post-processing, no verify stage), then, per model:
 *   1. the settings a user gets with no flags (the file's thresholds, else the default 0.8;
 *      default smoothing, minimum duration and onset): recall and false detections on every
 *      stream, false detections and their rate per hour on every keyword-free recording;
 *   2. one threshold for all keywords swept from 0.3 to 0.995: miss rate on the streams
 *      against false detections per hour on the keyword-free recordings (the DET curve of the
 *      wake-word benchmarks). A rate of zero is printed as "< 1 per H h": half an hour of
 *      audio cannot show one false alarm per ten hours.
 * The PNG draws every model's curve on one log axis of false detections per hour (0.1 to
 * 1000) against miss rate (0 to 100 %), the no-flags setting as a ringed point; zero-rate
 * points sit on the left edge. Recordings are e2e_accuracy streams (--build-only) and any
 * audio file. Not a test: a measurement (bench/det.sh builds the audio and runs it).
 * With --pick RATE (streams optional): per keyword, the lowest threshold of the sweep at which
 * that keyword fires at most RATE times per hour on the keyword-free recordings, printed as
 * KW=P pairs for weights/set_thresholds.py (an operating point stored in the model file).
 */
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spot/postproc.h"
#include "spot/scan.h"
#include "kwseval.h"
#include "model/s4m.h"

#define MAX_MODELS 2
#define MAX_REC 32
#define N_SWEEP 15

static const float sweep[N_SWEEP] = {0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.75f, 0.8f, 0.85f,
				     0.9f, 0.93f, 0.95f, 0.97f, 0.98f, 0.99f, 0.995f};

struct curve {
	const char *name;
	double miss[N_SWEEP], fah[N_SWEEP]; /* miss rate on streams, false per hour on negatives */
	double def_miss, def_fah;           /* at the no-flags setting */
};

static double hours_of(const struct kwe_rec *r, int n)
{
	double m = 0;
	for (int i = 0; i < n; i++)
		m += r[i].minutes;
	return m / 60;
}

/* one setting over streams and negatives: miss rate and false per hour; print with verbose */
static void measure(const struct s4m_model *m, const struct kwe_rec *st, int ns, const struct kwe_rec *ng,
		    int nn, const struct kwe_setting *set, size_t hop, double lat, double tol,
		    struct kwe_tally *t, int verbose, double *miss, double *fah)
{
	int found = 0, total = 0, sfalse = 0, nfalse = 0;
	for (int i = 0; i < ns; i++) {
		kwe_score(&st[i], 1, set, m, hop, lat, tol, 0, t);
		found += t->matched;
		total += t->nt;
		sfalse += t->nfalse;
		if (verbose)
			printf("  stream   %-40s %5.1f min %4d keywords %4d found (%5.1f %%) %3d false\n",
			       st[i].path, st[i].minutes, t->nt, t->matched, t->nt ? 100.0 * t->matched / t->nt : 0,
			       t->nfalse);
	}
	for (int i = 0; i < nn; i++) {
		kwe_score(&ng[i], 1, set, m, hop, lat, tol, 0, t);
		nfalse += t->nfalse;
		if (verbose) {
			printf("  negative %-40s %5.1f min %4d false (%.1f per hour):", ng[i].path, ng[i].minutes,
			       t->nfalse, t->nfalse / (ng[i].minutes / 60));
			for (int k = 0; k < s4m_n_labels(m); k++)
				if (t->falses[k])
					printf(" %s %d", s4m_label(m, k), t->falses[k]);
			printf("\n");
		}
	}
	double sm = 0;
	for (int i = 0; i < ns; i++)
		sm += st[i].minutes;
	*miss = total ? 1.0 - (double)found / total : 0;
	*fah = nfalse / hours_of(ng, nn);
	if (verbose && ns)
		printf("  total: streams recall %.1f %% (%d/%d), %d false (%.1f per 10 min); ",
		       100.0 * (1 - *miss), found, total, sfalse, sm > 0 ? sfalse / sm * 10 : 0);
	if (verbose)
		printf("%skeyword-free %d false in %.2f h = %.1f per hour\n", ns ? "" : "  total: ", nfalse,
		       hours_of(ng, nn), *fah);
}

/* x position of a rate per hour on the log axis 0.1 .. 1000 (zero on the left edge) */
static double xpos(double fah, double x0, double w)
{
	double lx = fah > 0.1 ? log10(fah) : -1;
	return x0 + (fmin(lx, 3) + 1) / 4 * w;
}

static int draw(const char *png, const struct curve *c, int nc, double hours)
{
	const double W = 720, H = 520, x0 = 80, y0 = 40, w = 600, h = 400;
	static const double col[MAX_MODELS][3] = {{0.55, 0.55, 0.55}, {0.05, 0.35, 0.75}};
	cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)W, (int)H);
	cairo_t *cr = cairo_create(s);
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_paint(cr);
	cairo_select_font_face(cr, "sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, 12);
	cairo_set_line_width(cr, 1);
	char lab[96];
	for (int e = -1; e <= 3; e++) { /* decades of false detections per hour */
		double x = x0 + (e + 1) / 4.0 * w;
		cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
		cairo_move_to(cr, x, y0);
		cairo_line_to(cr, x, y0 + h);
		cairo_stroke(cr);
		cairo_set_source_rgb(cr, 0, 0, 0);
		snprintf(lab, sizeof lab, e < 0 ? "0.1" : "%.0f", pow(10, e));
		cairo_move_to(cr, x - 8, y0 + h + 16);
		cairo_show_text(cr, lab);
	}
	for (int p = 0; p <= 100; p += 20) { /* miss rate */
		double y = y0 + h - p / 100.0 * h;
		cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
		cairo_move_to(cr, x0, y);
		cairo_line_to(cr, x0 + w, y);
		cairo_stroke(cr);
		cairo_set_source_rgb(cr, 0, 0, 0);
		snprintf(lab, sizeof lab, "%d %%", p);
		cairo_move_to(cr, x0 - 44, y + 4);
		cairo_show_text(cr, lab);
	}
	cairo_rectangle(cr, x0, y0, w, h);
	cairo_stroke(cr);
	snprintf(lab, sizeof lab, "false detections per hour of keyword-free speech (%.2f h; left edge: none)", hours);
	cairo_move_to(cr, x0 + 40, y0 + h + 38);
	cairo_show_text(cr, lab);
	cairo_save(cr);
	cairo_move_to(cr, 22, y0 + h / 2 + 70);
	cairo_rotate(cr, -M_PI / 2);
	cairo_show_text(cr, "missed keywords (val streams)");
	cairo_restore(cr);
	cairo_move_to(cr, x0, 24);
	cairo_show_text(cr, "DET: one threshold for all keywords, 0.3 to 0.995; ringed: the no-flags setting");
	for (int i = 0; i < nc; i++) {
		cairo_set_source_rgb(cr, col[i][0], col[i][1], col[i][2]);
		cairo_set_line_width(cr, 2);
		for (int j = 0; j < N_SWEEP; j++) {
			double x = xpos(c[i].fah[j], x0, w), y = y0 + h - c[i].miss[j] * h;
			if (j)
				cairo_line_to(cr, x, y);
			else
				cairo_move_to(cr, x, y);
		}
		cairo_stroke(cr);
		for (int j = 0; j < N_SWEEP; j++) {
			cairo_arc(cr, xpos(c[i].fah[j], x0, w), y0 + h - c[i].miss[j] * h, 3, 0, 2 * M_PI);
			cairo_fill(cr);
		}
		cairo_arc(cr, xpos(c[i].def_fah, x0, w), y0 + h - c[i].def_miss * h, 8, 0, 2 * M_PI);
		cairo_stroke(cr);
		cairo_rectangle(cr, x0 + w - 230, y0 + 14 + 20 * i, 18, 4);
		cairo_fill(cr);
		cairo_set_source_rgb(cr, 0, 0, 0);
		cairo_move_to(cr, x0 + w - 204, y0 + 20 + 20 * i);
		cairo_show_text(cr, c[i].name);
	}
	cairo_destroy(cr);
	cairo_status_t st = cairo_surface_write_to_png(s, png);
	cairo_surface_destroy(s);
	return st == CAIRO_STATUS_SUCCESS ? 0 : -1;
}

/* --pick: per keyword the lowest sweep threshold with at most `rate` false detections per
 * hour of the negatives there and at every threshold above it (0.995 when even that one is
 * not that quiet). */
static void pick(const struct s4m_model *m, const struct kwe_rec *ng, int nn, size_t hop, double lat,
		 double tol, double rate, struct kwe_tally *t)
{
	int K = s4m_n_labels(m);
	float best[KWE_MAX_LABELS];
	for (int k = 0; k < K; k++)
		best[k] = -1;
	double hours = hours_of(ng, nn);
	for (int j = N_SWEEP - 1; j >= 0; j--) { /* from the top: the lowest quiet one wins */
		struct kwe_setting set;
		kwe_setting_default(m, &set);
		int falses[KWE_MAX_LABELS] = {0};
		for (int k = 0; k < KWE_MAX_LABELS; k++)
			set.thr[k] = sweep[j];
		for (int i = 0; i < nn; i++) {
			kwe_score(&ng[i], 1, &set, m, hop, lat, tol, 0, t);
			for (int k = 0; k < K; k++)
				falses[k] += t->falses[k];
		}
		for (int k = 0; k < K; k++)
			if (falses[k] <= rate * hours && (j == N_SWEEP - 1 || best[k] == sweep[j + 1]))
				best[k] = sweep[j]; /* quiet here and at every threshold above */
	}
	printf("  thresholds for at most %g false detections per hour of the %.2f h of negatives, per keyword:",
	       rate, hours);
	for (int k = 0; k < K; k++)
		if (s4m_label(m, k)[0] != '_')
			printf(" %s=%.3g%s", s4m_label(m, k), best[k] < 0 ? sweep[N_SWEEP - 1] : best[k],
			       best[k] < 0 ? "(never that quiet)" : "");
	printf("\n");
}

int main(int argc, char **argv)
{
	const char *names[MAX_MODELS], *files[MAX_MODELS], *swav[MAX_REC], *scsv[MAX_REC], *nwav[MAX_REC];
	const char *png = NULL;
	int nm = 0, ns = 0, nn = 0;
	double hop_ms = 10, lat = PP_DEF_LATENCY_MS, tol = 0.3, pick_rate = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--model") && v && nm < MAX_MODELS && strchr(v, '=')) {
			char *eq = strchr(argv[++i], '=');
			*eq = 0;
			names[nm] = argv[i];
			files[nm++] = eq + 1;
		} else if (!strcmp(a, "--stream") && v && i + 2 < argc && ns < MAX_REC) {
			swav[ns] = argv[++i];
			scsv[ns++] = argv[++i];
		} else if (!strcmp(a, "--negative") && v && nn < MAX_REC) {
			nwav[nn++] = argv[++i];
		} else if (!strcmp(a, "--png") && v) {
			png = argv[++i];
		} else if (!strcmp(a, "--hop-ms") && v) {
			hop_ms = atof(argv[++i]);
		} else if (!strcmp(a, "--latency-ms") && v) {
			lat = atof(argv[++i]);
		} else if (!strcmp(a, "--tolerance-ms") && v) {
			tol = atof(argv[++i]) / 1000;
		} else if (!strcmp(a, "--pick") && v) {
			pick_rate = atof(argv[++i]);
		} else {
			fprintf(stderr, "det: unexpected argument %s (usage: det --model NAME=FILE [--model "
					"NAME=FILE] --stream WAV CSV... --negative WAV... [--png OUT.png])\n", a);
			return 2;
		}
	}
	if (!nm || (!ns && pick_rate < 0) || !nn) {
		fprintf(stderr, "det: needs at least one --model, --stream (optional with --pick) and --negative\n");
		return 2;
	}
	static struct curve cv[MAX_MODELS];
	static struct kwe_rec st[MAX_REC], ng[MAX_REC];
	double hours = 0;
	for (int i = 0; i < nm; i++) {
		char err[S4K_ERR_LEN];
		struct s4m_model *m = s4m_load(files[i], 1.0, err, sizeof err);
		if (!m) {
			fprintf(stderr, "det: %s\n", err);
			return 1;
		}
		size_t hop = scan_hop(m, hop_ms);
		for (int j = 0; j < ns + nn; j++) {
			int isn = j >= ns;
			const char *wav = isn ? nwav[j - ns] : swav[j];
			if (kwe_load(m, wav, isn ? NULL : scsv[j], hop, 0, isn ? &ng[j - ns] : &st[j], err, sizeof err) < 0) {
				fprintf(stderr, "det: %s: %s\n", wav, err);
				return 1;
			}
		}
		hours = hours_of(ng, nn);
		struct kwe_tally t;
		if (kwe_tally_init(&t, 1) < 0) {
			fprintf(stderr, "det: out of memory\n");
			return 1;
		}
		cv[i].name = names[i];
		printf("%s (%s): no-flags setting (thresholds:", names[i], files[i]);
		struct kwe_setting set;
		kwe_setting_default(m, &set);
		for (int k = 0; k < s4m_n_labels(m); k++)
			if (s4m_label(m, k)[0] != '_')
				printf(" %s %.2f", s4m_label(m, k), set.thr[k]);
		printf(")\n");
		measure(m, st, ns, ng, nn, &set, hop, lat, tol, &t, 1, &cv[i].def_miss, &cv[i].def_fah);
		if (pick_rate >= 0)
			pick(m, ng, nn, hop, lat, tol, pick_rate, &t);
		printf("  %9s %10s %14s\n", "threshold", "miss rate", "false per hour");
		for (int j = 0; j < N_SWEEP; j++) {
			for (int k = 0; k < KWE_MAX_LABELS; k++)
				set.thr[k] = sweep[j];
			measure(m, st, ns, ng, nn, &set, hop, lat, tol, &t, 0, &cv[i].miss[j], &cv[i].fah[j]);
			if (cv[i].fah[j] > 0)
				printf("  %9.3f %9.1f%% %14.1f\n", sweep[j], 100 * cv[i].miss[j], cv[i].fah[j]);
			else
				printf("  %9.3f %9.1f%%   < 1 per %.2f h\n", sweep[j], 100 * cv[i].miss[j], hours);
		}
		kwe_tally_free(&t);
		for (int j = 0; j < ns; j++)
			kwe_rec_free(&st[j]);
		for (int j = 0; j < nn; j++)
			kwe_rec_free(&ng[j]);
		s4m_free(m);
	}
	if (png && draw(png, cv, nm, hours) < 0) {
		fprintf(stderr, "det: cannot write %s\n", png);
		return 1;
	}
	if (png)
		printf("DET curve: %s\n", png);
	return 0;
}
