/*
 * tmo: the command. `tmo demo` runs the seed documents' scenarios on the engine; `tmo run` is
 * GNU timeout with an idle-output limit.
 */
#include <stdio.h>
#include <string.h>

#include <tmo/common.h>

#include "cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: tmo COMMAND [ARG]...\n"
		"Deadlines on Linux I/O with io_uring.\n"
		"\n"
		"Commands:\n"
		"  demo [--json] [--scale F] [NAME]...   run the seed scenarios, blocking versus\n"
		"                                        cooperative deadlines (tmo demo --help)\n"
		"  run [OPTION] DURATION COMMAND [ARG]... run COMMAND with a time limit and an\n"
		"                                        optional idle-output limit (tmo run --help)\n"
		"\n"
		"  --help     display this help and exit\n"
		"  --version  output version information and exit\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_TMO_FAILED;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "demo"))
		return cli_demo(argc - 1, argv + 1);
	if (!strcmp(cmd, "run"))
		return cli_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("tmo %s\n", TMO_VERSION_STRING);
		return 0;
	}
	fprintf(stderr, "tmo: unknown command '%s'\nTry 'tmo --help' for more information.\n", cmd);
	return EXIT_TMO_FAILED;
}
