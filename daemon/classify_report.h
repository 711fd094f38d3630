/* classify_report.h - how `s4kws classify` writes its results: records as text, JSON lines or
 * CSV, the progress bar, --summary and --eval's report. Main thread only.
 */
#ifndef S4KWS_DAEMON_CLASSIFY_REPORT_H
#define S4KWS_DAEMON_CLASSIFY_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "classify.h"

/* One CSV field, quoted when it holds a comma, quote or line break. */
void crep_csv_field(FILE *out, const char *s);
/* crep_csv_field() of s as a malloc'd string of *len bytes; NULL when out of memory. */
char *crep_csv_quoted(const char *s, size_t *len);
/* A CSV header: the leading columns, then one per label. */
void crep_csv_header(FILE *out, const struct run *r, const char *lead);
/* The string member k of a record, or NULL. */
const char *crep_str(json_t *o, const char *k);

/* One record (a clip, a recording's detections, or an error) in the run's format. */
void crep_record(FILE *out, const struct run *r, json_t *rec);
/* The progress bar on stderr: inputs done, audio seconds, speed; final ends the line. */
void crep_progress(const struct run *r, size_t done, double audio_s, double t0, int final);

/* --summary: what the records of a run add up to (a record per file, or per channel with
 * --channels each: each channel's audio counts as audio listened to). */
struct crep_summary {
	size_t records, failed, clips, scans;
	double scan_s;                /* seconds of audio scanned as recordings */
	long *label_n, *det_n;        /* (K) clips per predicted label, detections per keyword */
};
void crep_summary_add(struct crep_summary *s, const struct run *r, json_t *rec);
void crep_summary_print(FILE *f, const struct crep_summary *s, const struct run *r);

/* --eval DIR: every visible sub-folder must be named after a label. 0 or -EINVAL with err. */
int crep_check_eval_folders(const char *dir, const char *const *labels, int K, char *err,
			    size_t errlen);
/* --eval's report: accuracy (Wilson 95 %), per-class figures, confusion (K x K, truth-major),
 * the misclassified clips (JSON) and the inputs that failed. */
void crep_eval(const struct run *r, const long *conf, json_t *mis, size_t n_failed, FILE *out);

#endif
