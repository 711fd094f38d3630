/* kwseval.c - posteriors once per recording, then post-processing and matching per setting.
 *
 * Design: the expensive part (the recurrent network over minutes of audio) runs once per
 * recording and model; a setting is only daemon/postproc over stored posteriors, so tools can
 * sweep hundreds of settings (tune_pp) or thresholds (det) in seconds. The posteriors come
 * from the same s4m_relay the live daemon steps, so the counts are what `listen --input`
 * gives up to the verify stage (not applied here). Matching is e2e_accuracy's, so figures from
 * these tools and from the end-to-end benchmark are comparable.
 */
#include "kwseval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audiofile.h"
#include "spot/postproc.h"
#include "spot/scan.h"

static int label_index(const struct s4m_model *m, const char *name)
{
	for (int k = 0; k < s4m_n_labels(m); k++)
		if (!strcmp(s4m_label(m, k), name))
			return k;
	return -1;
}

static int read_truth(const struct s4m_model *m, const char *csv, struct kwe_rec *r, char *err, size_t errlen)
{
	r->tr = malloc(KWE_MAX_TRUTH * sizeof *r->tr);
	FILE *tf = fopen(csv, "r");
	if (!tf || !r->tr) {
		snprintf(err, errlen, "cannot read %s", csv);
		if (tf)
			fclose(tf);
		return -1;
	}
	char line[1024];
	r->nt = 0;
	while (fgets(line, sizeof line, tf) && r->nt < KWE_MAX_TRUTH) {
		char kw[48];
		double st, e;
		if (sscanf(line, "%47[^,],%lf,%lf", kw, &st, &e) != 3 || !strcmp(kw, "-"))
			continue;
		int k = label_index(m, kw);
		if (k < 0)
			continue;
		r->tr[r->nt].label = k;
		r->tr[r->nt].end = e;
		r->nt++;
	}
	fclose(tf);
	return 0;
}

int kwe_load(const struct s4m_model *m, const char *wav, const char *csv, size_t hop, double restart_ms,
	     struct kwe_rec *r, char *err, size_t errlen)
{
	int rate = s4m_sample_rate(m), K = s4m_n_labels(m);
	memset(r, 0, sizeof *r);
	r->path = wav;
	struct af_file *f = af_open(wav, err, errlen);
	float *x = NULL;
	size_t n = 0;
	if (!f || af_set_output(f, AF_MIX, rate, RS_BEST, err, errlen) < 0 ||
	    af_load(f, (size_t)rate * 7200, &x, &n, err, errlen) < 0) {
		if (f)
			af_close(f);
		return -1;
	}
	af_close(f);
	if (csv && read_truth(m, csv, r, err, errlen) < 0) {
		free(x);
		kwe_rec_free(r);
		return -1;
	}
	/* posteriors, as the daemon computes them: one relay with the configured restart period */
	r->nh = n / hop;
	r->post = malloc((r->nh ? r->nh : 1) * (size_t)K * sizeof *r->post);
	struct s4m_relay *rl = s4m_relay_new(m, scan_period(m, restart_ms), err, errlen);
	if (!r->post || !rl) {
		if (rl)
			snprintf(err, errlen, "out of memory");
		s4m_relay_free(rl);
		free(x);
		kwe_rec_free(r);
		return -1;
	}
	for (size_t h = 0; h < r->nh; h++) {
		s4m_relay_push(rl, x + h * hop, hop);
		s4m_relay_scores(rl, r->post + h * (size_t)K);
	}
	s4m_relay_free(rl);
	r->minutes = (double)n / rate / 60;
	free(x);
	return 0;
}

void kwe_rec_free(struct kwe_rec *r)
{
	free(r->post);
	free(r->tr);
	r->post = NULL;
	r->tr = NULL;
}

void kwe_setting_default(const struct s4m_model *m, struct kwe_setting *st)
{
	const float *mt = s4m_thresholds(m);
	for (int k = 0; k < s4m_n_labels(m) && k < KWE_MAX_LABELS; k++)
		st->thr[k] = mt && !isnan(mt[k]) ? mt[k] : (float)PP_DEF_THRESHOLD;
	st->smooth = PP_DEF_SMOOTH_MS;
	st->min = PP_DEF_MIN_MS;
	st->onset = (float)PP_DEF_ONSET;
}

int kwe_detect(const struct kwe_rec *r, const struct kwe_setting *st, const struct s4m_model *m,
	       size_t hop, double latency_ms, struct kwe_det *det)
{
	int rate = s4m_sample_rate(m), K = s4m_n_labels(m);
	const char *labels[KWE_MAX_LABELS];
	struct pp_kw kw[KWE_MAX_LABELS];
	for (int k = 0; k < K; k++) {
		labels[k] = s4m_label(m, k);
		pp_kw_default(&kw[k]);
		kw[k].threshold = st->thr[k];
		kw[k].smooth_ms = st->smooth;
		kw[k].min_ms = st->min;
	}
	struct pp_config pc;
	pp_config_default(&pc, rate, hop, K, labels, kw);
	pc.onset = st->onset;
	pc.latency_ms = (float)latency_ms;
	char err[256];
	struct pp *pp = pp_new(&pc, err, sizeof err);
	if (!pp)
		return 0;
	int nd = 0;
	for (size_t h = 0; h < r->nh; h++) {
		struct pp_detection d[PP_MAX_OUT];
		int k = pp_push(pp, r->post + h * (size_t)K, d, PP_MAX_OUT);
		for (int j = 0; j < k && nd < KWE_MAX_DET; j++) {
			det[nd].label = d[j].label;
			det[nd].end = (double)d[j].end / rate;
			det[nd].offset = (double)d[j].sample / rate;
			nd++;
		}
	}
	pp_free(pp);
	return nd;
}

int kwe_tally_init(struct kwe_tally *t, int n)
{
	memset(t, 0, sizeof *t);
	t->delays = malloc((size_t)(n > 0 ? n : 1) * KWE_MAX_TRUTH * sizeof(double));
	t->errs = malloc((size_t)(n > 0 ? n : 1) * KWE_MAX_TRUTH * sizeof(double));
	if (!t->delays || !t->errs) {
		kwe_tally_free(t);
		return -1;
	}
	return 0;
}

void kwe_tally_free(struct kwe_tally *t)
{
	free(t->delays);
	free(t->errs);
	t->delays = t->errs = NULL;
}

/* list the truth without a match (with the nearest detection) */
static void show_miss(const struct s4m_model *m, const struct kwe_truth *tr, const struct kwe_det *det, int nd)
{
	int ni = -1; /* nearest detection of any keyword */
	for (int j = 0; j < nd; j++)
		if (ni < 0 || fabs(det[j].end - tr->end) < fabs(det[ni].end - tr->end))
			ni = j;
	printf("miss  %-6s end %8.2f s; nearest detection: %s end %+.2f s\n", s4m_label(m, tr->label),
	       tr->end, ni >= 0 ? s4m_label(m, det[ni].label) : "none", ni >= 0 ? det[ni].end - tr->end : 0.0);
}

static void show_false(const struct s4m_model *m, const struct kwe_rec *r, const struct kwe_det *d)
{
	int ti = -1; /* nearest keyword */
	for (int i = 0; i < r->nt; i++)
		if (ti < 0 || fabs(d->end - r->tr[i].end) < fabs(d->end - r->tr[ti].end))
			ti = i;
	printf("false %-6s end %8.2f s; nearest keyword: %s end %+.2f s\n", s4m_label(m, d->label), d->end,
	       ti >= 0 ? s4m_label(m, r->tr[ti].label) : "none", ti >= 0 ? d->end - r->tr[ti].end : 0.0);
}

void kwe_score(const struct kwe_rec *rs, int n, const struct kwe_setting *st, const struct s4m_model *m,
	       size_t hop, double latency_ms, double tol, int show, struct kwe_tally *t)
{
	static struct kwe_det det[KWE_MAX_DET];
	static int used[KWE_MAX_DET];
	memset(t->hits, 0, sizeof t->hits);
	memset(t->falses, 0, sizeof t->falses);
	memset(t->truths, 0, sizeof t->truths);
	t->matched = t->nfalse = t->nt = 0;
	t->minutes = 0;
	for (int si = 0; si < n; si++) {
		const struct kwe_rec *r = &rs[si];
		int nd = kwe_detect(r, st, m, hop, latency_ms, det);
		memset(used, 0, (size_t)nd * sizeof *used);
		if (show && n > 1)
			printf("%s\n", r->path);
		for (int i = 0; i < r->nt; i++) {
			const struct kwe_truth *tr = &r->tr[i];
			int bi = -1;
			for (int j = 0; j < nd; j++)
				if (!used[j] && det[j].label == tr->label && fabs(det[j].end - tr->end) <= tol &&
				    (bi < 0 || fabs(det[j].end - tr->end) < fabs(det[bi].end - tr->end)))
					bi = j;
			t->truths[tr->label]++;
			if (bi < 0 && show)
				show_miss(m, tr, det, nd);
			if (bi >= 0) {
				used[bi] = 1;
				t->delays[t->matched] = det[bi].offset - tr->end;
				t->errs[t->matched] = det[bi].end - tr->end;
				t->matched++;
				t->hits[tr->label]++;
			}
		}
		for (int j = 0; j < nd; j++) {
			if (used[j])
				continue;
			t->falses[det[j].label]++;
			t->nfalse++;
			if (show)
				show_false(m, r, &det[j]);
		}
		t->nt += r->nt;
		t->minutes += r->minutes;
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double kwe_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return n ? v[n / 2] : 0;
}
