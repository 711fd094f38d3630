/* hook.c - `--on-detect CMD`: one command per detection, on a thread of its own.
 *
 * DESIGN: users wire keyword spotters to LEDs, Home Assistant or scripts; a command hook is the
 * one integration that needs no client code. The hook must never slow the audio path, so it is
 * a reader of the events store like an SSE client: it waits on the store, takes detections with
 * id > its cursor in order and runs the command for each, one at a time (a keyword said twice
 * runs the command twice, in order; commands never overlap). A slow command only delays the
 * next ones; when the history (--history) wraps past the cursor, the lost detections are counted
 * as skipped rather than run late. Each command is /bin/sh -c CMD via posix_spawn in its own
 * process group with an empty signal mask and default dispositions (the daemon blocks its
 * signals in every thread, which a child would otherwise inherit), the detection as one JSON
 * line on stdin and as environment variables. The thread polls waitpid() (1 to 20 ms apart) up
 * to the timeout, then kills the whole group: a hung script cannot pile up processes.
 * Shutdown: after events_close() the thread runs what is still pending for at most one more
 * timeout, then exits; hook_stop() joins it.
 */
#define _GNU_SOURCE
#include "hook.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/err.h"
#include "log.h"

extern char **environ;

#define HOOK_BATCH 16
#define HOOK_N_ENV 10

struct hook {
	char *command;
	double timeout_s;
	struct events *ev;
	uint64_t cursor;             /* last detection id handled (hook thread) */
	pthread_t thr;
	int started, joined;
	_Atomic uint64_t run, failed, skipped;
	char vars[HOOK_N_ENV][640];  /* the detection's environment strings (hook thread) */
};

static void sleep_ms(double ms)
{
	long ns = (long)(ms * 1e6);
	struct timespec ts = {.tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L};
	nanosleep(&ts, NULL);
}

/* The environment of one command: the daemon's plus the detection's variables. */
static char **make_env(const struct ev_detection *d, const char *json, char vars[HOOK_N_ENV][640])
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = calloc(n + HOOK_N_ENV + 1, sizeof *env);
	if (!env)
		return NULL;
	char t[40];
	events_format_time(d->time_ms, t, sizeof t);
	snprintf(vars[0], 640, "S4KWS_ID=%llu", (unsigned long long)d->id);
	snprintf(vars[1], 640, "S4KWS_KEYWORD=%s", d->keyword);
	snprintf(vars[2], 640, "S4KWS_CHANNEL=%d", d->channel);
	snprintf(vars[3], 640, "S4KWS_SCORE=%.4f", (double)d->score);
	snprintf(vars[4], 640, "S4KWS_TIME=%s", t);
	snprintf(vars[5], 640, "S4KWS_OFFSET=%.3f", d->offset);
	snprintf(vars[6], 640, "S4KWS_START=%.3f", d->start);
	snprintf(vars[7], 640, "S4KWS_END=%.3f", d->end);
	snprintf(vars[8], 640, "S4KWS_JSON=%s", json);
	snprintf(vars[9], 640, "S4KWS_CHANNEL_NAME=%s", d->channel_name);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "S4KWS_", 6)) /* ours replace any inherited ones */
			env[k++] = environ[i];
	for (int i = 0; i < HOOK_N_ENV; i++)
		env[k++] = vars[i];
	env[k] = NULL;
	return env;
}

/* Run the command for one detection and wait for it (at most until `until`, monotonic s).
 * Returns 0 when it exited with status 0. */
static int run_one(struct hook *h, const struct ev_detection *d, double until)
{
	char *js = events_dump(d);
	char **env = js ? make_env(d, js, h->vars) : NULL;
	int pfd[2] = {-1, -1}, rc = -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int fa_ok = 0, at_ok = 0;
	pid_t pid = -1;
	if (!env || pipe2(pfd, O_CLOEXEC) < 0) {
		log_msg(LOGL_WARN, "on-detect: could not start the command for detection %llu: %s",
			(unsigned long long)d->id, env ? strerror(errno) : "out of memory");
		goto out;
	}
	fa_ok = posix_spawn_file_actions_init(&fa) == 0;
	at_ok = posix_spawnattr_init(&at) == 0;
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&dflt, sigs[i]);
	if (!fa_ok || !at_ok || posix_spawn_file_actions_adddup2(&fa, pfd[0], 0) ||
	    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF) ||
	    posix_spawnattr_setpgroup(&at, 0) || posix_spawnattr_setsigmask(&at, &none) ||
	    posix_spawnattr_setsigdefault(&at, &dflt)) {
		log_msg(LOGL_WARN, "on-detect: could not set up the command for detection %llu",
			(unsigned long long)d->id);
		goto out;
	}
	char *argv[] = {"/bin/sh", "-c", h->command, NULL};
	int e = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, env);
	if (e) {
		pid = -1;
		log_msg(LOGL_WARN, "on-detect: could not start /bin/sh for detection %llu: %s",
			(unsigned long long)d->id, strerror(e));
		goto out;
	}
	close(pfd[0]);
	pfd[0] = -1;
	/* the JSON line on stdin; a command that does not read it gets EPIPE-free EOF handling:
	 * the write end is non-blocking and SIGPIPE is ignored in the daemon */
	fcntl(pfd[1], F_SETFL, O_NONBLOCK);
	size_t len = strlen(js);
	if (write(pfd[1], js, len) < 0 || write(pfd[1], "\n", 1) < 0)
		(void)0; /* the command closed its stdin: its business */
	close(pfd[1]);
	pfd[1] = -1;
	int st = 0;
	double wait = 1;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			log_msg(LOGL_WARN, "on-detect: lost the command for detection %llu: %s",
				(unsigned long long)d->id, strerror(errno));
			goto out;
		}
		if (s4k_mono_s() >= until) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			log_msg(LOGL_WARN, "on-detect: the command for detection %llu (%s) was still running "
				"after %.0f ms and was killed", (unsigned long long)d->id, d->keyword,
				1e3 * h->timeout_s);
			goto out;
		}
		sleep_ms(wait);
		wait = wait < 20 ? wait * 2 : 20;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		rc = 0;
	else if (WIFEXITED(st))
		log_msg(LOGL_WARN, "on-detect: the command for detection %llu (%s) exited with status %d",
			(unsigned long long)d->id, d->keyword, WEXITSTATUS(st));
	else
		log_msg(LOGL_WARN, "on-detect: the command for detection %llu (%s) was killed by signal %d",
			(unsigned long long)d->id, d->keyword, WTERMSIG(st));
out:
	if (rc)
		atomic_fetch_add(&h->failed, 1);
	atomic_fetch_add(&h->run, 1); /* after failed: a reader seeing run == n sees all failures */
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (at_ok)
		posix_spawnattr_destroy(&at);
	free(env);
	free(js);
	return rc;
}

static void *hook_main(void *arg)
{
	struct hook *h = arg;
	double drain_until = 0; /* set once the store is closed */
	for (;;) {
		struct ev_detection b[HOOK_BATCH];
		uint64_t cur;
		size_t n = events_query(h->ev, h->cursor, -1, NULL, b, HOOK_BATCH, &cur);
		for (size_t i = 0; i < n; i++) {
			if (b[i].id > h->cursor + 1) /* the history wrapped past them */
				atomic_fetch_add(&h->skipped, b[i].id - h->cursor - 1);
			h->cursor = b[i].id;
			if (!drain_until && events_wait(h->ev, h->cursor, 0) == -ESHUTDOWN)
				drain_until = s4k_mono_s() + h->timeout_s;
			double now = s4k_mono_s(), until = now + h->timeout_s;
			if (drain_until && now >= drain_until) {
				atomic_fetch_add(&h->skipped, 1);
				continue;
			}
			run_one(h, &b[i], drain_until && drain_until < until ? drain_until : until);
		}
		if (n)
			continue;
		if (events_wait(h->ev, h->cursor, 1000) == -ESHUTDOWN &&
		    events_query(h->ev, h->cursor, -1, NULL, b, 1, &cur) == 0)
			break; /* closed and nothing pending: the detector has stopped before the store */
		if (!drain_until && events_wait(h->ev, h->cursor, 0) == -ESHUTDOWN)
			drain_until = s4k_mono_s() + h->timeout_s;
	}
	return NULL;
}

struct hook *hook_new(const struct hook_config *c, char *err, size_t errlen)
{
	if (access("/bin/sh", X_OK) < 0) {
		s4k_seterr(err, errlen, "on-detect needs /bin/sh, which cannot be run here (%s).", strerror(errno));
		return NULL;
	}
	struct hook *h = calloc(1, sizeof *h);
	if (!h || !(h->command = strdup(c->command))) {
		free(h);
		s4k_seterr(err, errlen, "out of memory for the on-detect hook.");
		return NULL;
	}
	h->timeout_s = c->timeout_ms * 1e-3;
	h->ev = c->ev;
	h->cursor = events_last_id(c->ev); /* detections reloaded from --log are not run again */
	int e = pthread_create(&h->thr, NULL, hook_main, h);
	if (e) {
		s4k_seterr(err, errlen, "cannot start the on-detect thread: %s.", strerror(e));
		free(h->command);
		free(h);
		return NULL;
	}
	h->started = 1;
	return h;
}

void hook_stop(struct hook *h)
{
	if (!h || !h->started || h->joined)
		return;
	pthread_join(h->thr, NULL);
	h->joined = 1;
}

void hook_free(struct hook *h)
{
	if (!h)
		return;
	hook_stop(h);
	free(h->command);
	free(h);
}

void hook_stats(struct hook *h, struct hook_stats *s)
{
	s->run = atomic_load(&h->run);
	s->failed = atomic_load(&h->failed);
	s->skipped = atomic_load(&h->skipped);
}
