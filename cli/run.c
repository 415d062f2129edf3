/* `tmo run`: being written. */
#include <stdio.h>

#include "cli.h"

int cli_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "tmo run: not available yet\n");
	return EXIT_TMO_FAILED;
}
