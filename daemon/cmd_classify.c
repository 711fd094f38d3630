/* cmd_classify.c - `s4kws classify`: file mode (batch classification, scanning, evaluation).
 *
 * DESIGN: inputs (files, directories, @lists, "-", or --eval's label folders) are expanded by
 * audio/walk into one ordered array of items, narrowed by --shard and --skip-done
 * (daemon/batch.h); worker threads (daemon/classify_work.c) take items by an atomic counter and
 * store each item's records in its slot. This thread prints the slots strictly in input order
 * as they complete (so output is deterministic whatever -j is), draws the progress bar on a TTY,
 * and in --eval mode accumulates the confusion matrix (daemon/classify_report.c renders it all).
 * A bad file yields an error record and a line on stderr, never a stop; the exit status is 1
 * when any input failed, 2 for usage or model errors.
 */
#define _GNU_SOURCE
#include "cmd.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audio/walk.h"
#include "batch.h"
#include "classify.h"
#include "classify_opts.h"
#include "classify_report.h"
#include "classify_work.h"
#include "common/clock.h"
#include "plot.h"

/* What the printer adds up while it prints. */
struct tally {
	size_t done, failed;
	double audio_s;
	long *conf;                   /* (K, K) --eval confusion, truth-major, or NULL */
	json_t *mis;                  /* --eval: misclassified clips */
	struct crep_summary sum;      /* --summary (label_n NULL: off) */
};

/* --eval DIR: the audio files under DIR/<label>/ for every label, with truth[i] the label of
 * wl->items[i] (malloc'd into *truth). 0 or -1 after a message. */
static int eval_inputs(const struct run *r, struct walk_list *wl, int **truth)
{
	const char *dir = r->o->eval_dir;
	char err[S4K_ERR_LEN];
	struct stat sb;
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "s4kws classify: --eval: '%s' is not a directory\n", dir);
		return -1;
	}
	if (crep_check_eval_folders(dir, r->labels, r->K, err, sizeof err) < 0) {
		fprintf(stderr, "s4kws classify: --eval: %s\n", err);
		return -1;
	}
	size_t cap = 0;
	for (int k = 0; k < r->K; k++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, r->labels[k]);
		if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
			continue;
		size_t before = wl->n;
		if (walk_dir(wl, path, err, sizeof err) < 0) {
			fprintf(stderr, "s4kws classify: %s\n", err);
			return -1;
		}
		if (wl->n > cap) {
			cap = wl->n * 2;
			int *t = realloc(*truth, cap * sizeof *t);
			if (!t) {
				fprintf(stderr, "s4kws classify: out of memory\n");
				return -1;
			}
			*truth = t;
		}
		for (size_t i = before; i < wl->n; i++)
			(*truth)[i] = k;
	}
	if (wl->n == 0) {
		fprintf(stderr, "s4kws classify: --eval: no audio files in sub-folders of '%s' named after "
			"the model's labels\n", dir);
		return -1;
	}
	return 0;
}

/* The run's items: the inputs (or --eval's clips), less those outside --shard and those
 * --skip-done finds answered. 0; 1 when there are no audio files at all; -1 after a message. */
static int gather_items(struct run *r, struct walk_list *wl, int argc, char **argv, int first)
{
	const struct opts *o = r->o;
	char err[S4K_ERR_LEN];
	int *truth = NULL;
	if (o->eval_dir) {
		if (eval_inputs(r, wl, &truth) < 0) {
			free(truth);
			return -1;
		}
	} else {
		for (int i = first; i < argc; i++)
			if (walk_add(wl, argv[i], stdin, err, sizeof err) < 0) {
				fprintf(stderr, "s4kws classify: %s\n", err);
				return -1;
			}
	}
	if (wl->n == 0) {
		fprintf(stderr, "s4kws classify: no audio files in the inputs (directories are searched "
			"for names ending in an audio extension such as .wav or .flac)\n");
		return 1;
	}
	struct batch_done *answered = NULL;
	if (o->skip_done && !(answered = batch_done_load(o->skip_done, err, sizeof err))) {
		fprintf(stderr, "s4kws classify: %s\n", err);
		free(truth);
		return -1;
	}
	r->items = calloc(wl->n, sizeof *r->items);
	r->res = calloc(wl->n, sizeof *r->res);
	if (!r->items || !r->res) {
		fprintf(stderr, "s4kws classify: out of memory\n");
		free(truth);
		batch_done_free(answered);
		return -1;
	}
	size_t n_done = 0; /* this shard's inputs already answered */
	for (size_t i = 0; i < wl->n; i++) {
		if (o->shard_n && !batch_in_shard(wl->items[i].path, o->shard_k, o->shard_n))
			continue;
		if (batch_done_has(answered, wl->items[i].path)) {
			n_done++;
			continue;
		}
		r->items[r->n_items].path = wl->items[i].path;
		r->items[r->n_items].walk_error = wl->items[i].error;
		r->items[r->n_items++].truth = truth ? truth[i] : -1;
	}
	free(truth);
	batch_done_free(answered);
	if (o->shard_n || o->skip_done) {
		char sd[1200] = "";
		if (o->skip_done)
			snprintf(sd, sizeof sd, "; %zu already answered in %s", n_done, o->skip_done);
		fprintf(stderr, "s4kws classify: %zu of %zu inputs to do%s%s\n", r->n_items, wl->n,
			o->shard_n ? " in this shard" : "", sd);
	}
	return 0;
}

/* Wait (under r->lock) until item i is done, redrawing the progress bar meanwhile. */
static void wait_done(struct run *r, size_t i, const struct tally *t, double t0, double *last, int show)
{
	while (!r->res[i].done) {
		if (!show) {
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		size_t d2 = 0;
		double a2 = 0;
		for (size_t j = i; j < r->n_items; j++)
			if (r->res[j].done) {
				d2++;
				a2 += r->res[j].audio_s;
			}
		double now = s4k_mono_s();
		if (now - *last > 0.2) {
			crep_progress(r, t->done + d2, t->audio_s + a2, t0, 0);
			*last = now;
		}
	}
}

/* One finished item: into the confusion matrix (--eval), or printed. */
static void take_result(const struct run *r, size_t i, struct tally *t, int show)
{
	struct result *res = &r->res[i];
	const struct item *it = &r->items[i];
	size_t j;
	json_t *rec;
	t->done++;
	t->audio_s += res->audio_s;
	t->failed += res->failed != 0;
	if (r->o->eval_dir) {
		if (!res->failed && res->predicted >= 0 && t->conf) {
			t->conf[it->truth * r->K + res->predicted]++;
			if (res->predicted != it->truth)
				json_array_append_new(t->mis, json_pack("{s:s, s:s, s:s, s:f}", "file", it->path,
									"true", r->labels[it->truth], "predicted",
									r->labels[res->predicted], "score",
									(double)res->score));
		} else {
			json_array_foreach(res->records, j, rec)
				if (crep_str(rec, "error"))
					fprintf(stderr, "s4kws classify: %s: %s\n", crep_str(rec, "file"),
						crep_str(rec, "error"));
		}
	} else {
		if (show)
			fputs("\r\033[K", stderr);
		json_array_foreach(res->records, j, rec) {
			crep_record(stdout, r, rec);
			if (t->sum.label_n && t->sum.det_n)
				crep_summary_add(&t->sum, r, rec);
		}
		fflush(stdout);
	}
	json_decref(res->records);
	res->records = NULL;
}

/* Run the workers and print every item's records in input order. 0, or -1 after a message. */
static int run_and_print(struct run *r, struct tally *t)
{
	const struct opts *o = r->o;
	char err[S4K_ERR_LEN];
	if (o->post_path) {
		if (!(r->post = fopen(o->post_path, "w"))) {
			fprintf(stderr, "s4kws classify: --posteriors: cannot write '%s': %s\n", o->post_path,
				strerror(errno));
			return -1;
		}
		crep_csv_header(r->post, r, "file,channel,offset");
	}
	struct cwork_pool *pool = cwork_start(r, o->jobs, err, sizeof err);
	if (!pool) {
		fprintf(stderr, "s4kws classify: %s\n", err);
		return -1;
	}
	int show = o->progress < 0 ? isatty(2) : o->progress;
	if (o->format == FMT_CSV && !o->eval_dir)
		crep_csv_header(stdout, r, "file,channel,start,end,label,score,error");
	double t0 = s4k_mono_s(), last = 0;
	for (size_t i = 0; i < r->n_items; i++) {
		pthread_mutex_lock(&r->lock);
		wait_done(r, i, t, t0, &last, show);
		pthread_mutex_unlock(&r->lock);
		take_result(r, i, t, show);
		if (show && s4k_mono_s() - last > 0.2) {
			crep_progress(r, t->done, t->audio_s, t0, 0);
			last = s4k_mono_s();
		}
	}
	if (show)
		crep_progress(r, t->done, t->audio_s, t0, 1);
	cwork_join(pool);
	return 0;
}

/* --plot: the confusion matrix as a PNG. 0 or -1 after a message. */
static int plot_eval(const struct run *r, const long *conf)
{
	const struct opts *o = r->o;
	long n = 0, correct = 0;
	for (int k = 0; k < r->K * r->K; k++)
		n += conf[k];
	for (int k = 0; k < r->K; k++)
		correct += conf[k * r->K + k];
	char title[512], err[S4K_ERR_LEN];
	snprintf(title, sizeof title, "%s: accuracy %.2f %% of %ld clips (%s mode%s)", o->eval_dir,
		 n ? 100.0 * correct / n : 0.0, n, o->mode == SCAN_STREAM ? "stream" : "conv",
		 o->native ? ", native rate" : "");
	if (plot_confusion_png(o->plot, title, r->K, r->labels, conf, err, sizeof err) < 0) {
		fprintf(stderr, "s4kws classify: %s\n", err);
		return -1;
	}
	return 0;
}

/* Load the base model into slot 0 and check the options against it. 0 or -1 after a message. */
static int setup_model(struct run *r, const char ***labels)
{
	struct opts *o = r->o;
	char err[S4K_ERR_LEN];
	r->models[0].m = cmd_load_model(o->model_path, 1.0, err, sizeof err);
	if (!r->models[0].m) {
		fprintf(stderr, "s4kws classify: %s\n", err);
		return -1;
	}
	struct s4m_model *m0 = r->models[0].m;
	r->model_rate = s4m_sample_rate(m0);
	r->models[0].in_rate = r->model_rate;
	r->n_models = 1;
	r->K = s4m_n_labels(m0);
	*labels = calloc((size_t)r->K, sizeof **labels);
	if (!*labels) {
		fprintf(stderr, "s4kws classify: out of memory\n");
		return -1;
	}
	for (int k = 0; k < r->K; k++)
		(*labels)[k] = s4m_label(m0, k);
	r->labels = *labels;
	if (!o->mode_set && !s4m_streamable(m0))
		o->scan_mode = SCAN_CONV; /* auto: a bidirectional model has conv mode only */
	if (o->mode == SCAN_STREAM && !s4m_streamable(m0)) {
		fprintf(stderr, "s4kws classify: --mode stream: this model is bidirectional and runs in conv "
			"mode only\n");
		return -1;
	}
	if (o->chunk)
		o->chunk = (size_t)((double)o->chunk / 16000.0 * r->model_rate);
	if (cfg_check_keywords(&o->det, *labels, r->K, err, sizeof err) < 0) {
		fprintf(stderr, "s4kws classify: %s\n", err);
		return -1;
	}
	struct pp_config pc;
	struct pp_kw *kw = malloc((size_t)r->K * sizeof *kw);
	int rc = kw ? cwork_pp_setup(r, m0, &pc, kw, err, sizeof err) : -ENOMEM;
	if (rc < 0)
		fprintf(stderr, "s4kws classify: %s\n", kw ? err : "out of memory");
	free(kw);
	return rc < 0 ? -1 : 0;
}

/* After the run: --posteriors closed, --summary, --eval's report and plot. The exit status. */
static int finish(struct run *r, struct tally *t)
{
	const struct opts *o = r->o;
	int status = t->failed ? 1 : 0;
	if (r->post) {
		int e = fclose(r->post) != 0 ? (errno ? errno : EIO) : 0;
		if (r->post_errno || e) {
			fprintf(stderr, "s4kws classify: --posteriors: writing '%s' failed: %s\n", o->post_path,
				strerror(r->post_errno ? r->post_errno : e));
			status = 1;
		}
		r->post = NULL;
	}
	if (t->sum.label_n && t->sum.det_n)
		crep_summary_print(stderr, &t->sum, r);
	if (o->eval_dir && t->conf) {
		crep_eval(r, t->conf, t->mis, t->failed, stdout);
		if (o->plot && plot_eval(r, t->conf) < 0)
			status = 2;
	}
	return status;
}

int cmd_classify(int argc, char **argv)
{
	struct opts o;
	int first;
	int rc = copts_parse(argc, argv, &o, &first);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	struct run r;
	memset(&r, 0, sizeof r);
	r.o = &o;
	pthread_mutex_init(&r.lock, NULL);
	pthread_mutex_init(&r.post_lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	const char **labels = NULL;
	struct walk_list wl;
	walk_init(&wl);
	struct tally t = {0};
	int status = 2;
	if (setup_model(&r, &labels) < 0)
		goto out;
	rc = gather_items(&r, &wl, argc, argv, first);
	if (rc != 0 || !r.n_items) {
		status = rc < 0 ? 2 : rc > 0 ? 1 : 0;
		goto out;
	}
	if (o.eval_dir) {
		t.conf = calloc((size_t)r.K * (size_t)r.K, sizeof *t.conf);
		t.mis = json_array();
	}
	if (o.summary && !o.eval_dir) {
		t.sum.label_n = calloc((size_t)r.K, sizeof(long));
		t.sum.det_n = calloc((size_t)r.K, sizeof(long));
		if (!t.sum.label_n || !t.sum.det_n)
			fprintf(stderr, "s4kws classify: --summary: out of memory; no summary\n");
	}
	if (run_and_print(&r, &t) == 0)
		status = finish(&r, &t);
out:
	if (r.post)
		fclose(r.post);
	json_decref(t.mis);
	free(t.conf);
	free(t.sum.label_n);
	free(t.sum.det_n);
	free(r.items);
	free(r.res);
	walk_fini(&wl);
	for (int i = 0; i < r.n_models; i++) {
		if (r.models[i].m)
			s4m_free(r.models[i].m);
		free(r.models[i].ctx_audio);
		free(r.models[i].error);
	}
	free(labels);
	pthread_mutex_destroy(&r.lock);
	pthread_mutex_destroy(&r.post_lock);
	pthread_cond_destroy(&r.cond);
	return status;
}
