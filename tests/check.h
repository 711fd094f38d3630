/* check.h - the assertion macros every C test shares.
 *
 * CHECK(cond, fmt, ...) records a failure with file:line and a message but keeps going, so one
 * run shows every broken case; CHECK_DONE() prints a summary and gives main()'s exit status
 * (0 all passed, 1 some failed). Tests print to stdout; meson shows it on failure.
 */
#ifndef S4KWS_TESTS_CHECK_H
#define S4KWS_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failed, check_total;

#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		check_total++;                                                            \
		if (!(cond)) {                                                            \
			check_failed++;                                                   \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
			printf(__VA_ARGS__);                                              \
			printf("\n");                                                     \
			fflush(stdout);                                                   \
		}                                                                         \
	} while (0)

#define CHECK_EQ(a, b) CHECK((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))
#define CHECK_NEAR(a, b, tol) \
	CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%g vs %g (tol %g)", (double)(a), (double)(b), (double)(tol))

#define CHECK_DONE()                                                                    \
	(printf("%d/%d checks passed\n", check_total - check_failed, check_total),       \
	 check_failed ? 1 : 0)

#endif
