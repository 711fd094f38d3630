/* err.h - one-sentence error strings shared by every module.
 *
 * Functions that can fail return 0 or a negative errno and, when given a
 * buffer, write one human sentence into it. S4K_ERR_LEN is the size callers
 * allocate. s4k_seterr() formats into the buffer (NULL buffer is allowed).
 */
#ifndef S4KWS_COMMON_ERR_H
#define S4KWS_COMMON_ERR_H

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>

#define S4K_ERR_LEN 256

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline int s4k_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return 0;
}

#endif
