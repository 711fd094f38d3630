/* saver.c - per-detection WAV clips, written by a thread of their own.
 *
 * DESIGN. The inference thread must never wait for a disk, so it only copies a clip into one of
 * SAVER_SLOTS preallocated slots and posts a semaphore: a single-producer/single-consumer queue
 * with two atomic counters (head written by the producer, tail by the writer; acquire/release
 * pairs publish the slot contents). The writer thread sleeps on the semaphore, writes each slot
 * with libsndfile under "<name>.part", renames it into place (so a reader of DIR never sees a
 * torn clip) and frees the slot by advancing tail. When the queue is full the newest clip is
 * dropped and counted: losing a debugging clip is better than stalling the audio path. On
 * saver_free() the writer finishes the queue before it exits.
 */
#include "saver.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sndfile.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/err.h"
#include "log.h"

#define SAVER_PATH 1200 /* dir (< 1024) + "/" + time + id + keyword + channel + ".wav" */

struct slot {
	struct ev_detection e;
	size_t n;
	float *x;                         /* (max_samples) */
};

struct saver {
	char dir[1024];
	int rate;
	size_t max;
	struct slot slots[SAVER_SLOTS];
	_Atomic uint64_t head, tail;      /* clips submitted / written (or failed) */
	_Atomic uint64_t saved, dropped, errors;
	_Atomic int stop;
	sem_t sem;
	pthread_t th;
};

/* "20261129T101500.327Z" style UTC stamp: sorts by time, no characters a shell dislikes. */
static void stamp(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char b[32];
	strftime(b, sizeof b, "%Y%m%dT%H%M%S", &tm);
	snprintf(buf, len, "%s.%03dZ", b, (int)(ms % 1000));
}

static int write_clip(struct saver *s, const struct slot *sl, char *path, size_t plen)
{
	char ts[40], kw[EV_KW_LEN];
	stamp(sl->e.time_ms, ts, sizeof ts);
	/* keyword names come from the model file: keep the file name to [A-Za-z0-9_-] */
	size_t i = 0;
	for (; sl->e.keyword[i] && i < sizeof kw - 1; i++) {
		char c = sl->e.keyword[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
			 c == '-';
		kw[i] = ok ? c : '_';
	}
	kw[i] = 0;
	char part[SAVER_PATH + 8];
	int pn = snprintf(path, plen, "%s/%s-%llu-%s-ch%d.wav", s->dir, ts, (unsigned long long)sl->e.id, kw,
			  sl->e.channel);
	if (pn < 0 || (size_t)pn >= plen || (size_t)snprintf(part, sizeof part, "%s.part", path) >= sizeof part) {
		log_msg(LOGL_ERROR, "cannot write a clip into %s: the path is too long", s->dir);
		return -ENAMETOOLONG;
	}
	SF_INFO info = {.samplerate = s->rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *f = sf_open(part, SFM_WRITE, &info);
	if (!f) {
		log_msg(LOGL_ERROR, "cannot write clip %s: %s", part, sf_strerror(NULL));
		return -EIO;
	}
	char *js = events_dump(&sl->e);
	if (js)
		sf_set_string(f, SF_STR_COMMENT, js);
	free(js);
	sf_command(f, SFC_SET_CLIPPING, NULL, SF_TRUE); /* saturate, do not wrap, at full scale */
	sf_count_t w = sf_writef_float(f, sl->x, (sf_count_t)sl->n);
	int bad = w != (sf_count_t)sl->n;
	if (bad)
		log_msg(LOGL_ERROR, "cannot write clip %s: %s", part, sf_strerror(f));
	if (sf_close(f) != 0 && !bad) {
		log_msg(LOGL_ERROR, "cannot write clip %s: closing failed", part);
		bad = 1;
	}
	if (!bad && rename(part, path) != 0) {
		log_msg(LOGL_ERROR, "cannot rename clip %s: %s", part, strerror(errno));
		bad = 1;
	}
	if (bad)
		unlink(part);
	return bad ? -EIO : 0;
}

static void *writer_main(void *arg)
{
	struct saver *s = arg;
	for (;;) {
		uint64_t t = atomic_load_explicit(&s->tail, memory_order_relaxed);
		if (t == atomic_load_explicit(&s->head, memory_order_acquire)) {
			if (atomic_load(&s->stop))
				break;
			while (sem_wait(&s->sem) < 0 && errno == EINTR)
				;
			continue;
		}
		char path[SAVER_PATH];
		if (write_clip(s, &s->slots[t % SAVER_SLOTS], path, sizeof path) == 0) {
			atomic_fetch_add(&s->saved, 1);
			log_msg(LOGL_DEBUG, "clip %s", path);
		} else {
			atomic_fetch_add(&s->errors, 1);
		}
		atomic_store_explicit(&s->tail, t + 1, memory_order_release);
	}
	return NULL;
}

struct saver *saver_new(const struct saver_config *c, char *err, size_t errlen)
{
	if (!c->dir || !c->dir[0] || c->rate <= 0 || c->max_samples == 0) {
		s4k_seterr(err, errlen, "save-dir: no folder, rate or clip length");
		return NULL;
	}
	if (access(c->dir, W_OK | X_OK) != 0) {
		s4k_seterr(err, errlen, "save-dir %s: %s", c->dir, strerror(errno));
		return NULL;
	}
	struct saver *s = calloc(1, sizeof *s);
	if (!s) {
		s4k_seterr(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(s->dir, sizeof s->dir, "%s", c->dir);
	s->rate = c->rate;
	s->max = c->max_samples;
	int sem_ok = 0;
	for (int i = 0; i < SAVER_SLOTS; i++) {
		s->slots[i].x = malloc(c->max_samples * sizeof(float));
		if (!s->slots[i].x) {
			s4k_seterr(err, errlen, "out of memory for %d clips of %zu samples", SAVER_SLOTS,
				   c->max_samples);
			goto fail;
		}
	}
	if (sem_init(&s->sem, 0, 0) != 0) {
		s4k_seterr(err, errlen, "cannot create a semaphore: %s", strerror(errno));
		goto fail;
	}
	sem_ok = 1;
	int e = pthread_create(&s->th, NULL, writer_main, s);
	if (e) {
		s4k_seterr(err, errlen, "cannot start the clip writer: %s", strerror(e));
		goto fail;
	}
	return s;
fail:
	if (sem_ok)
		sem_destroy(&s->sem);
	for (int i = 0; i < SAVER_SLOTS; i++)
		free(s->slots[i].x); /* calloc'd: NULL where not allocated */
	free(s);
	return NULL;
}

int saver_submit(struct saver *s, const struct ev_detection *e, const float *x, size_t n)
{
	uint64_t h = atomic_load_explicit(&s->head, memory_order_relaxed);
	if (h - atomic_load_explicit(&s->tail, memory_order_acquire) >= SAVER_SLOTS) {
		atomic_fetch_add(&s->dropped, 1);
		return -EAGAIN;
	}
	struct slot *sl = &s->slots[h % SAVER_SLOTS];
	sl->e = *e;
	sl->n = n < s->max ? n : s->max;
	memcpy(sl->x, x, sl->n * sizeof *x);
	atomic_store_explicit(&s->head, h + 1, memory_order_release);
	sem_post(&s->sem);
	return 0;
}

void saver_drop(struct saver *s)
{
	atomic_fetch_add(&s->dropped, 1);
}

void saver_stats(struct saver *s, struct saver_stats *out)
{
	out->saved = atomic_load(&s->saved);
	out->dropped = atomic_load(&s->dropped);
	out->errors = atomic_load(&s->errors);
}

void saver_free(struct saver *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, 1);
	sem_post(&s->sem);
	pthread_join(s->th, NULL);
	sem_destroy(&s->sem);
	for (int i = 0; i < SAVER_SLOTS; i++)
		free(s->slots[i].x);
	free(s);
}
