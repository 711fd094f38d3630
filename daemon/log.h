/* log.h - the daemon's one logging function: levels, filtered before formatting, one line each.
 *
 * Usage:
 *   log_set_level(LOGL_INFO);                          // or from "--log-level debug":
 *   int lv = log_parse_level("debug");                 // -1 when unknown
 *   log_msg(LOGL_WARN, "device '%s' vanished; retrying in %d s", name, secs);
 *
 * Lines go to stderr (systemd's journal when run as a service) as
 * "s4kws[PID]: LEVEL: message", each with one write(2) so that lines from different threads
 * never interleave. Any thread may call log_msg() except the audio callback, which never logs.
 * Messages are cut at 1000 bytes.
 */
#ifndef S4KWS_DAEMON_LOG_H
#define S4KWS_DAEMON_LOG_H

enum log_level { LOGL_ERROR = 0, LOGL_WARN = 1, LOGL_INFO = 2, LOGL_DEBUG = 3 };

/* Messages above this level are dropped before formatting. Any thread. */
void log_set_level(enum log_level lv);
enum log_level log_get_level(void);
/* "error", "warn", "info" or "debug" to a level; -1 for anything else. */
int log_parse_level(const char *s);
const char *log_level_name(enum log_level lv);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void log_msg(enum log_level lv, const char *fmt, ...);

#endif
