/* main.c - the s4kws command dispatcher.
 *
 * s4kws is one binary with a few subcommands. main() only picks the subcommand and returns its
 * status; every command parses its own options, so each lives in its own file and can be read
 * alone. This is the only place the process exits.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{"listen", cmd_listen, "run the live keyword-spotting daemon (capture -> S4 steppers -> HTTP)"},
	{"classify", cmd_classify, "classify or scan audio files (convolution mode)"},
	{"devices", cmd_devices, "list audio capture devices"},
	{"info", cmd_info, "print a model's metadata, parameter count and FLOPs"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: s4kws COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n's4kws COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("s4kws %s\n", S4KWS_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "s4kws: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
