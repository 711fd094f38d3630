/* num.h - the one number syntax of every option, config value and query parameter.
 *
 * s4k_decimal() accepts [+-]digits[.digits][(e|E)[+-]digits] (or .digits) and nothing else:
 * no hexadecimal ("0x10" would be 16 to strtod and an error elsewhere), no "inf" or "nan", no
 * blanks; the value must be finite. Whole-number parameters also refuse a fraction or an
 * exponent (s4k_whole()). Header-only: the config table, HTTP and Wyoming share it.
 */
#ifndef S4KWS_COMMON_NUM_H
#define S4KWS_COMMON_NUM_H

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* 0 and the value in *out, or -EINVAL (not that syntax, or out of double range). */
static inline int s4k_decimal(const char *s, double *out)
{
	const char *p = s;
	int digits = 0;
	if (*p == '+' || *p == '-')
		p++;
	while (isdigit((unsigned char)*p))
		p++, digits++;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			digits++;
	if (!digits)
		return -EINVAL;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p)
		return -EINVAL;
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (end != p || errno == ERANGE || !isfinite(d))
		return -EINVAL;
	*out = d;
	return 0;
}

/* The same for whole numbers: [+-]digits only, |value| < 2^53. */
static inline int s4k_whole(const char *s, double *out)
{
	const char *p = s + (*s == '+' || *s == '-');
	if (!*p)
		return -EINVAL;
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
	double d;
	if (s4k_decimal(s, &d) < 0 || fabs(d) >= 9007199254740992.0)
		return -EINVAL;
	*out = d;
	return 0;
}

#endif
