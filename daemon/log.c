/* log.c - leveled, line-atomic logging to stderr.
 *
 * DESIGN. The level is an atomic int read before any formatting, so a disabled debug message
 * costs one load. A message is formatted into a stack buffer together with its prefix and a
 * newline and written with a single write(2): POSIX makes writes to a pipe of up to PIPE_BUF
 * bytes atomic, and journald/terminals receive whole lines, so no lock is needed. No allocation.
 * Timestamps are left to the journal (or the terminal user); the PID identifies the instance.
 * Under systemd, when stderr is the journal stream ($JOURNAL_STREAM names its device and inode,
 * sd-daemon(3)), a line starts with its syslog priority instead ("<3>error: ..."), so that
 * journalctl -p and its colours see errors as errors; the journal adds name and PID itself.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static _Atomic int level = LOGL_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};
static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"}; /* sd-daemon(3): SD_ERR .. SD_DEBUG */
static _Atomic int journal = -1;                                 /* -1: not looked at yet */

/* 1 when stderr is the stream systemd connected to the journal (compared by device and inode,
 * since a child may have redirected it elsewhere and kept the variable) */
static int to_journal(void)
{
	int j = atomic_load_explicit(&journal, memory_order_relaxed);
	if (j >= 0)
		return j;
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	j = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	atomic_store_explicit(&journal, j, memory_order_relaxed);
	return j;
}

void log_set_level(enum log_level lv)
{
	atomic_store(&level, (int)lv);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&level);
}

int log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (s && !strcmp(s, names[i]))
			return i;
	return -1;
}

const char *log_level_name(enum log_level lv)
{
	return (unsigned)lv < 4 ? names[lv] : "?";
}

void log_msg(enum log_level lv, const char *fmt, ...)
{
	if ((int)lv > atomic_load_explicit(&level, memory_order_relaxed))
		return;
	char line[1100];
	int n = to_journal() ? snprintf(line, sizeof line, "%s%s: ", prio[(unsigned)lv < 4 ? lv : 3], log_level_name(lv))
			     : snprintf(line, sizeof line, "s4kws[%ld]: %s: ", (long)getpid(), log_level_name(lv));
	if (n < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, 1000, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + ((size_t)m < 1000 ? (size_t)m : 999);
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
