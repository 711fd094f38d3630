/* classify_report.c - how `s4kws classify` writes its results (see classify_report.h).
 *
 * DESIGN: records are JSON objects from the workers (a clip's label and scores, a recording's
 * detections, or an error); this file only renders them, on the main thread, in input order:
 * text for people, JSON lines, or CSV with a row for every input (a clip, each detection, or a
 * recording without one), and on stderr the progress bar (a TTY, redrawn at most five times a
 * second), --summary's counts and detections per hour, and --eval's accuracy with its Wilson
 * 95 % interval, per-class recall and precision and the confusion matrix.
 */
#define _GNU_SOURCE
#include "classify_report.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"

void crep_csv_field(FILE *out, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\n\r")) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

/* crep_csv_field() of s as a malloc'd string of *len bytes; NULL when out of memory. */
char *crep_csv_quoted(const char *s, size_t *len)
{
	char *q = NULL;
	FILE *f = open_memstream(&q, len);
	if (!f)
		return NULL;
	crep_csv_field(f, s);
	if (fclose(f) != 0) {
		free(q);
		return NULL;
	}
	return q;
}

/* A CSV header: the leading columns, then one per label. */
void crep_csv_header(FILE *out, const struct run *r, const char *lead)
{
	fputs(lead, out);
	for (int k = 0; k < r->K; k++) {
		fputc(',', out);
		crep_csv_field(out, r->labels[k]);
	}
	fputc('\n', out);
}

/* ---- output ---- */

const char *crep_str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}


void crep_summary_add(struct crep_summary *s, const struct run *r, json_t *rec)
{
	s->records++;
	if (crep_str(rec, "error")) {
		s->failed++;
		return;
	}
	json_t *dets = json_object_get(rec, "detections");
	const char *label = crep_str(rec, "label");
	for (int k = 0; label && k < r->K; k++)
		if (!strcmp(label, r->labels[k])) {
			s->clips++;
			s->label_n[k]++;
		}
	if (!dets)
		return;
	s->scans++;
	s->scan_s += json_number_value(json_object_get(rec, "duration"));
	size_t i;
	json_t *d;
	json_array_foreach(dets, i, d) {
		const char *kw = crep_str(d, "keyword");
		for (int k = 0; kw && k < r->K; k++)
			if (!strcmp(kw, r->labels[k]))
				s->det_n[k]++;
	}
}

void crep_summary_print(FILE *f, const struct crep_summary *s, const struct run *r)
{
	fprintf(f, "summary: %zu record%s, %zu failed\n", s->records, s->records == 1 ? "" : "s", s->failed);
	fprintf(f, "  clips classified: %zu", s->clips);
	for (int k = 0, first = 1; k < r->K; k++)
		if (s->label_n[k]) {
			fprintf(f, "%s%s %ld", first ? " (" : ", ", r->labels[k], s->label_n[k]);
			first = 0;
		}
	fprintf(f, "%s\n", s->clips ? ")" : "");
	long total = 0;
	for (int k = 0; k < r->K; k++)
		total += s->det_n[k];
	double h = s->scan_s / 3600;
	fprintf(f, "  recordings scanned: %zu, %.3f h of audio, %ld detection%s", s->scans, h, total,
		total == 1 ? "" : "s");
	if (h > 0)
		fprintf(f, ", %.1f per hour", (double)total / h);
	fprintf(f, "\n");
	for (int k = 0; k < r->K && h > 0; k++)
		if (s->det_n[k])
			fprintf(f, "    %-12s %6ld  %8.1f per hour\n", r->labels[k], s->det_n[k], (double)s->det_n[k] / h);
}

void crep_record(FILE *out, const struct run *r, json_t *rec)
{
	const struct opts *o = r->o;
	const char *file = crep_str(rec, "file"), *error = crep_str(rec, "error"), *warning = crep_str(rec, "warning");
	json_t *ch = json_object_get(rec, "channel");
	if (warning)
		fprintf(stderr, "s4kws classify: %s: warning: %s\n", file, warning);
	if (error) {
		if (ch)
			fprintf(stderr, "s4kws classify: %s (channel %lld): %s\n", file,
				(long long)json_integer_value(ch), error);
		else
			fprintf(stderr, "s4kws classify: %s: %s\n", file, error);
	}
	if (o->format == FMT_JSON) {
		char *s = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
		if (s) {
			fputs(s, out);
			fputc('\n', out);
			free(s);
		}
		return;
	}
	if (error && o->format == FMT_TEXT)
		return;
	json_t *dets = json_object_get(rec, "detections");
	if (o->format == FMT_CSV) {
		if (error) {
			crep_csv_field(out, file);
			fputc(',', out);
			if (ch)
				fprintf(out, "%lld", (long long)json_integer_value(ch));
			fputs(",,,,,", out);
			crep_csv_field(out, error);
			for (int k = 0; k < r->K; k++)
				fputc(',', out);
			fputc('\n', out);
			return;
		}
		if (dets && !json_array_size(dets)) { /* a row for every input: no label, no error */
			crep_csv_field(out, file);
			fprintf(out, ",%lld,,,,,", ch ? (long long)json_integer_value(ch) : 0LL);
			for (int k = 0; k < r->K; k++)
				fputc(',', out);
			fputc('\n', out);
			return;
		}
		if (dets) {
			size_t i;
			json_t *d;
			json_array_foreach(dets, i, d) {
				crep_csv_field(out, file);
				fprintf(out, ",%lld,%.3f,%.3f,",
					(long long)json_integer_value(json_object_get(d, "channel")),
					json_real_value(json_object_get(d, "start")),
					json_real_value(json_object_get(d, "end")));
				crep_csv_field(out, crep_str(d, "keyword"));
				fprintf(out, ",%.6f,", json_real_value(json_object_get(d, "score")));
				for (int k = 0; k < r->K; k++)
					fputc(',', out);
				fputc('\n', out);
			}
			return;
		}
		crep_csv_field(out, file);
		fputc(',', out);
		if (ch)
			fprintf(out, "%lld", (long long)json_integer_value(ch));
		fputs(",,,", out);
		crep_csv_field(out, crep_str(rec, "label"));
		fprintf(out, ",%.6f,", json_real_value(json_object_get(rec, "score")));
		json_t *sc = json_object_get(rec, "scores");
		for (int k = 0; k < r->K; k++)
			fprintf(out, ",%.6f", json_real_value(json_object_get(sc, r->labels[k])));
		fputc('\n', out);
		return;
	}
	/* text */
	fputs(file, out);
	if (ch)
		fprintf(out, " [channel %lld]", (long long)json_integer_value(ch));
	if (dets) {
		size_t nd = json_array_size(dets), i;
		fprintf(out, "\t%.2f s\t%zu detection%s\n", json_real_value(json_object_get(rec, "duration")),
			nd, nd == 1 ? "" : "s");
		json_t *d;
		json_array_foreach(dets, i, d)
			fprintf(out, "  %9.3f - %9.3f s  %-10s %.3f\n",
				json_real_value(json_object_get(d, "start")),
				json_real_value(json_object_get(d, "end")), crep_str(d, "keyword"),
				json_real_value(json_object_get(d, "score")));
		return;
	}
	fprintf(out, "\t%s\t%.3f\t", crep_str(rec, "label"), json_real_value(json_object_get(rec, "score")));
	/* classes by decreasing score, --top K of them (all by default) */
	json_t *sc = json_object_get(rec, "scores");
	int K = r->K, shown = o->top > 0 && o->top < K ? o->top : K;
	unsigned char used[1024] = {0};
	for (int t = 0; t < shown && t < 1024; t++) {
		int b = -1;
		for (int k = 0; k < K && k < 1024; k++)
			if (!used[k] && (b < 0 || json_real_value(json_object_get(sc, r->labels[k])) >
						 json_real_value(json_object_get(sc, r->labels[b]))))
				b = k;
		used[b] = 1;
		fprintf(out, "%s%s %.3f", t ? "  " : "", r->labels[b],
			json_real_value(json_object_get(sc, r->labels[b])));
	}
	fputc('\n', out);
}

void crep_progress(const struct run *r, size_t done, double audio_s, double t0, int final)
{
	if (final) { /* the bar goes (as before each record): what stays on the terminal is the results */
		fputs("\r\033[K", stderr);
		fflush(stderr);
		return;
	}
	double el = s4k_mono_s() - t0;
	double fps = el > 0 ? done / el : 0, rt = el > 0 ? audio_s / el : 0;
	double eta = fps > 0 ? (r->n_items - done) / fps : 0;
	int width = 24, fill = r->n_items ? (int)(width * done / r->n_items) : width;
	char bar[32];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = 0;
	fprintf(stderr, "\r[%s] %zu/%zu files, %.1f files/s, audio at %.0fx real time, %d:%02d left  ", bar,
		done, r->n_items, fps, rt, (int)(eta / 60), (int)eta % 60);
	fflush(stderr);
}

/* ---- evaluation ---- */

/* 0 when every visible sub-folder of dir is named after a label, else -EINVAL + sentence. */
int crep_check_eval_folders(const char *dir, const char *const *labels, int K, char *err,
			      size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		s4k_seterr(err, errlen, "cannot read '%s': %s", dir, strerror(errno));
		return -EINVAL;
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
			continue;
		int found = 0;
		for (int k = 0; k < K && !found; k++)
			found = !strcmp(labels[k], de->d_name);
		if (!found) {
			char list[1024] = "";
			size_t len = 0;
			for (int k = 0; k < K && len + 2 < sizeof list; k++)
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? " " : "",
							labels[k]);
			s4k_seterr(err, errlen, "folder '%s' is not a label of the model (%s)",
				   de->d_name, list);
			rc = -EINVAL;
		}
	}
	closedir(d);
	return rc;
}

/* The 95 % Wilson score interval of a proportion correct/n: how far the accuracy of a model on
 * this many clips can move by the luck of the draw (912 val clips at 92 %: +-1.8 points). Wilson
 * rather than the normal approximation because it stays inside [0, 1] near 0 and 1. */
static void wilson95(long correct, long n, double *lo, double *hi)
{
	const double z = 1.959964;	// the two-sided 95 % normal quantile
	if (n <= 0) {
		*lo = 0, *hi = 1;
		return;
	}
	double p = (double)correct / (double)n, z2n = z * z / (double)n;
	double mid = (p + z2n / 2) / (1 + z2n);
	double half = z / (1 + z2n) * sqrt(p * (1 - p) / (double)n + z2n / (4.0 * (double)n));
	*lo = fmax(0, mid - half), *hi = fmin(1, mid + half);
}

void crep_eval(const struct run *r, const long *conf, json_t *mis, size_t n_failed,
		       FILE *out)
{
	int K = r->K;
	long n = 0, correct = 0;
	for (int t = 0; t < K; t++)
		for (int p = 0; p < K; p++) {
			n += conf[t * K + p];
			if (t == p)
				correct += conf[t * K + p];
		}
	double acc = n ? (double)correct / n : 0, lo, hi;
	wilson95(correct, n, &lo, &hi);
	json_t *per = json_object(), *cm = json_array(), *lab = json_array();
	for (int k = 0; k < K; k++) {
		long tp = conf[k * K + k], row = 0, col = 0;
		json_t *rowj = json_array();
		for (int j = 0; j < K; j++) {
			row += conf[k * K + j];
			col += conf[j * K + k];
			json_array_append_new(rowj, json_integer(conf[k * K + j]));
		}
		json_array_append_new(cm, rowj);
		json_array_append_new(lab, json_string(r->labels[k]));
		double prec = col ? (double)tp / col : 0, rec = row ? (double)tp / row : 0;
		double f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
		json_object_set_new(per, r->labels[k],
				    json_pack("{s:f, s:f, s:f, s:I}", "precision", prec, "recall", rec,
					      "f1", f1, "n", (json_int_t)row));
	}
	if (r->o->format == FMT_JSON) {
		json_t *o = json_pack("{s:f, s:[f, f], s:I, s:I, s:s, s:o, s:o, s:o, s:o}",
				      "accuracy", acc, "accuracy_ci95", lo, hi, "n", (json_int_t)n,
				      "failed", (json_int_t)n_failed,
				      "mode", r->o->mode == SCAN_STREAM ? "stream" : "conv",
				      "labels", lab, "per_class", per, "confusion", cm,
				      "misclassified", json_incref(mis));
		if (r->o->ctx_s > 0)
			json_object_set_new(o, "context_s", json_real(r->o->ctx_s));
		char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
		if (s) {
			fprintf(out, "%s\n", s);
			free(s);
		}
		json_decref(o);
		return;
	}
	fprintf(out, "accuracy %.4f (%ld/%ld, 95 %% CI %.4f-%.4f)  mode %s%s", acc, correct, n, lo,
		hi, r->o->mode == SCAN_STREAM ? "stream" : "conv", r->o->native ? "  native-rate" : "");
	if (r->o->ctx_s > 0)
		fprintf(out, "  context %.2f s", r->o->ctx_s);
	if (n_failed)
		fprintf(out, "  (%zu files failed)", n_failed);
	fputc('\n', out);
	fprintf(out, "\n%-12s %6s %9s %7s %7s\n", "label", "n", "precision", "recall", "f1");
	for (int k = 0; k < K; k++) {
		json_t *pc = json_object_get(per, r->labels[k]);
		fprintf(out, "%-12s %6lld %9.4f %7.4f %7.4f\n", r->labels[k],
			(long long)json_integer_value(json_object_get(pc, "n")),
			json_real_value(json_object_get(pc, "precision")),
			json_real_value(json_object_get(pc, "recall")),
			json_real_value(json_object_get(pc, "f1")));
	}
	fprintf(out, "\nconfusion (rows: true label, columns: predicted)\n%-12s", "");
	for (int p = 0; p < K; p++)
		fprintf(out, " %6.6s", r->labels[p]);
	fputc('\n', out);
	for (int t = 0; t < K; t++) {
		fprintf(out, "%-12s", r->labels[t]);
		for (int p = 0; p < K; p++)
			fprintf(out, " %6ld", conf[t * K + p]);
		fputc('\n', out);
	}
	size_t i;
	json_t *e;
	fprintf(out, "\nmisclassified (%zu)\n", json_array_size(mis));
	json_array_foreach(mis, i, e)
		fprintf(out, "  %s\t%s -> %s (%.3f)\n", crep_str(e, "file"), crep_str(e, "true"),
			crep_str(e, "predicted"), json_real_value(json_object_get(e, "score")));
	json_decref(per);
	json_decref(cm);
	json_decref(lab);
}
