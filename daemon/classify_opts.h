/* classify_opts.h - the command line of `s4kws classify` into struct opts (daemon/classify.h).
 */
#ifndef S4KWS_DAEMON_CLASSIFY_OPTS_H
#define S4KWS_DAEMON_CLASSIFY_OPTS_H

#include "classify.h"

/* Parse argv into o; *first is the index of the first input. 0: run; 1: --help was printed
 * (exit 0); -1: a usage error was printed on stderr (exit 2). */
int copts_parse(int argc, char **argv, struct opts *o, int *first);

#endif
