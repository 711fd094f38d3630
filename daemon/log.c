/* log.c - leveled, line-atomic logging to stderr.
 *
 * DESIGN. The level is an atomic int read before any formatting, so a disabled debug message
 * costs one load. A message is formatted into a stack buffer together with its prefix and a
 * newline and written with a single write(2): POSIX makes writes to a pipe of up to PIPE_BUF
 * bytes atomic, and journald/terminals receive whole lines, so no lock is needed. No allocation.
 * Timestamps are left to the journal (or the terminal user); the PID identifies the instance.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Atomic int level = LOGL_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

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
	int n = snprintf(line, sizeof line, "s4kws[%ld]: %s: ", (long)getpid(), log_level_name(lv));
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
