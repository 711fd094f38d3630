/* mcheck.h - CHECK()/CHECK_DONE() for the model tests, as in tests/daemon/check.h: a failed
 * check prints file:line and a message and the run goes on; CHECK_DONE() gives main()'s status.
 */
#ifndef S4KWS_TESTS_MODEL_MCHECK_H
#define S4KWS_TESTS_MODEL_MCHECK_H

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

#define CHECK_DONE()                                                                    \
	(printf("%d/%d checks passed\n", check_total - check_failed, check_total),       \
	 check_failed ? 1 : 0)

#endif
