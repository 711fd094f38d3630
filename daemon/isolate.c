/* isolate.c - fork, limit, decode, send back, exit.
 *
 * Design: the child shares the parent's copy of the upload (fork copies page tables, not the
 * body), sets RLIMIT_AS / RLIMIT_CPU / RLIMIT_FSIZE / RLIMIT_NOFILE, decodes with audio/audiofile
 * exactly as the daemon did in-process (mono, the model's rate, the optional band limit, the
 * same length limit), and writes a fixed header (status, frames, scrubbed, message) and then the
 * samples to a pipe; _exit() skips every atexit handler and destructor of the parent's
 * libraries. The parent reads with poll() against a deadline, so a child that hangs is killed,
 * and reaps it in every case. The audiofile open lock is fork-safe (audio/audiofile.c
 * pthread_atfork), so another thread's decode cannot leave the child deadlocked.
 * Before it touches the upload the child also installs a seccomp filter (libseccomp): the system
 * calls a decoder needs on memory it already has (read/write on its pipe, memory management,
 * futex, clocks, exit) are allowed, every other one fails with EPERM, so a decoder exploited by
 * a crafted file cannot open files, sockets or processes. Not under AddressSanitizer, whose
 * runtime needs more (as with RLIMIT_AS).
 */
#define _GNU_SOURCE
#include "isolate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../audio/audiofile.h"
#include "../common/clock.h"
#include "../common/err.h"

struct iso_head {
	int status;       /* 0 or an HTTP status */
	uint64_t frames;  /* samples that follow */
	uint64_t scrubbed;
	char msg[320];
};

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Everything but what decoding in memory needs fails with EPERM from here on. 0 or -1. */
static int confine(void)
{
#ifdef __SANITIZE_ADDRESS__
	return 0;
#else
	static const int allow[] = {
		SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(close), SCMP_SYS(lseek), SCMP_SYS(fstat),
		SCMP_SYS(newfstatat), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(brk),
		SCMP_SYS(madvise), SCMP_SYS(mprotect), SCMP_SYS(futex), SCMP_SYS(clock_gettime),
		SCMP_SYS(gettimeofday), SCMP_SYS(getrandom), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
		SCMP_SYS(rt_sigaction), SCMP_SYS(sched_yield), SCMP_SYS(getpid), SCMP_SYS(gettid),
		SCMP_SYS(tgkill), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rseq), SCMP_SYS(prlimit64),
	};
	scmp_filter_ctx sc = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	int rc = sc ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < sizeof allow / sizeof allow[0]; i++)
		rc = seccomp_rule_add(sc, SCMP_ACT_ALLOW, allow[i], 0);
	if (rc == 0)
		rc = seccomp_load(sc);
	seccomp_release(sc);
	return rc == 0 ? 0 : -1;
#endif
}

/* the child's whole life: never returns */
static void child(int fd, const void *body, size_t len, int rate, int max_rate, size_t max_frames)
{
	struct rlimit cpu = {ISO_TIMEOUT_S, ISO_TIMEOUT_S}, none = {0, 0};
#ifndef __SANITIZE_ADDRESS__ /* AddressSanitizer reserves terabytes of address space up front */
	struct rlimit as = {ISO_MAX_AS, ISO_MAX_AS};
	setrlimit(RLIMIT_AS, &as);
#endif
	setrlimit(RLIMIT_CPU, &cpu);
	setrlimit(RLIMIT_FSIZE, &none);
	confine(); /* a kernel without seccomp still has the limits above */
	struct iso_head h = {0};
	float *x = NULL;
	size_t n = 0;
	char e[S4K_ERR_LEN];
	struct af_file *f = af_open_memory(body, len, e, sizeof e);
	if (!f) {
		/* an unknown format or encoding is 415; a known but damaged one is 400 */
		h.status = !strncmp(e, "not an audio format", 19) || !strncmp(e, "unsupported", 11) ? 415 : 400;
		snprintf(h.msg, sizeof h.msg, "cannot read the upload as audio: %s", e);
	} else {
		int rc = af_set_output(f, AF_MIX, rate, RS_BEST, e, sizeof e);
		if (rc == 0)
			rc = af_limit_rate(f, max_rate, e, sizeof e);
		if (rc == 0)
			rc = af_load(f, max_frames, &x, &n, e, sizeof e);
		if (rc == -EFBIG) {
			h.status = 413;
			snprintf(h.msg, sizeof h.msg, "the upload is longer than %.0f s of audio",
				 (double)max_frames / rate);
		} else if (rc < 0) {
			h.status = 400;
			snprintf(h.msg, sizeof h.msg, "cannot decode the upload: %s", e);
		}
		h.scrubbed = af_scrubbed(f);
	}
	h.frames = h.status ? 0 : n;
	int ok = write_all(fd, &h, sizeof h) == 0 && (!h.frames || write_all(fd, x, n * sizeof *x) == 0);
	_exit(ok ? 0 : 1);
}

/* read n bytes before the deadline (monotonic s); 0 or -1 */
static int read_until(int fd, void *p, size_t n, double deadline)
{
	char *c = p;
	while (n) {
		int ms = (int)((deadline - s4k_mono_s()) * 1000);
		struct pollfd pf = {fd, POLLIN, 0};
		if (ms <= 0 || poll(&pf, 1, ms) <= 0)
			return -1;
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

int iso_decode(const void *body, size_t len, int rate, int max_rate, size_t max_frames, float **x,
	       size_t *n, uint64_t *scrubbed, char *err, size_t errlen)
{
	*x = NULL;
	*n = 0;
	*scrubbed = 0;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		s4k_seterr(err, errlen, "cannot decode the upload: no pipe (%s)", strerror(errno));
		return 500;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		s4k_seterr(err, errlen, "cannot decode the upload: no child process (%s)", strerror(errno));
		return 500;
	}
	if (pid == 0) {
		close(p[0]);
		child(p[1], body, len, rate, max_rate, max_frames);
	}
	close(p[1]);
	double deadline = s4k_mono_s() + ISO_TIMEOUT_S;
	struct iso_head h;
	int status = 0;
	if (read_until(p[0], &h, sizeof h, deadline) < 0) {
		status = 400;
		s4k_seterr(err, errlen, "the decoder gave up on the upload (it crashed, ran out of its "
			   "limits or took longer than %d s): damaged or hostile data", ISO_TIMEOUT_S);
	} else if (h.status) {
		status = h.status;
		h.msg[sizeof h.msg - 1] = 0;
		s4k_seterr(err, errlen, "%s", h.msg);
	} else if (h.frames > max_frames || !(*x = malloc((h.frames ? h.frames : 1) * sizeof **x)) ||
		   read_until(p[0], *x, h.frames * sizeof **x, deadline) < 0) {
		free(*x);
		*x = NULL;
		status = 500;
		s4k_seterr(err, errlen, "the decoder's samples did not arrive whole");
	} else {
		*n = h.frames;
		*scrubbed = h.scrubbed;
	}
	close(p[0]);
	if (status)
		kill(pid, SIGKILL); /* done with it whatever it is doing */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return status;
}

int iso_confined(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (confine() < 0)
			_exit(3);
		int f = open("/dev/null", O_RDONLY), sk = socket(AF_UNIX, SOCK_STREAM, 0);
		_exit(f < 0 && sk < 0 && errno == EPERM ? 0 : 1);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 1 : WIFEXITED(st) && WEXITSTATUS(st) <= 1 ? 0 : -1;
}
