/*
 * tmo: the command. `tmo demo` runs the seed documents' scenarios on the engine; `tmo run` is
 * GNU timeout with an idle-output limit. Invoked as `timeout` (a symlink or a copy), tmo is
 * `tmo run` under that name, so that it can stand in for GNU timeout.
 */
#include <stdbool.h>
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

/* True if argv[0]'s last component is `timeout`. */
static bool invoked_as_timeout(const char *argv0)
{
	if (!argv0)
		return false;
	const char *slash = strrchr(argv0, '/');
	return !strcmp(slash ? slash + 1 : argv0, "timeout");
}

int main(int argc, char **argv)
{
	/* Its messages then name it by argv[0] as given, as GNU timeout's do. */
	if (argc > 0 && invoked_as_timeout(argv[0]))
		return cli_run(argv[0], argc, argv);
	if (argc < 2) {
		usage(stderr);
		return EXIT_TMO_FAILED;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "demo"))
		return cli_demo(argc - 1, argv + 1);
	if (!strcmp(cmd, "run"))
		return cli_run("tmo run", argc - 1, argv + 1);
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return cli_close_stdout("tmo") ? 0 : EXIT_TMO_FAILED;
	}
	if (!strcmp(cmd, "--version")) {
		printf("tmo %s\n", TMO_VERSION_STRING);
		return cli_close_stdout("tmo") ? 0 : EXIT_TMO_FAILED;
	}
	fprintf(stderr, "tmo: unknown command '%s'\nTry 'tmo --help' for more information.\n", cmd);
	return EXIT_TMO_FAILED;
}
