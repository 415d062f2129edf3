/*
 * The `tmo` command: what its subcommands share. Private to the command (cli/).
 */
#ifndef TMO_CLI_H
#define TMO_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Exit statuses shared with GNU timeout. */
enum {
	EXIT_TIMED_OUT = 124,   /* the command timed out (and --preserve-status was not given) */
	EXIT_TMO_FAILED = 125,  /* tmo itself failed: bad usage, a bad duration or signal, ... */
	EXIT_CANNOT_RUN = 126,  /* the command was found but could not be run */
	EXIT_NOT_FOUND = 127,   /* the command was not found */
};

/*
 * Parses a GNU timeout DURATION: a non-negative decimal number (fractions allowed, with '.' or
 * the current locale's decimal point) with an optional suffix s (seconds, the default),
 * m (minutes), h (hours) or d (days). Stores nanoseconds in *ns, saturating at INT64_MAX for
 * huge values (0 means "no limit" to the caller). Returns false for anything else: empty,
 * negative, NaN, a bad suffix, trailing text.
 */
bool cli_parse_duration(const char *text, int64_t *ns);

/* Parses a signal: a name with or without "SIG" (TERM, SIGTERM, case-insensitive) or a
 * number. Returns the signal number, or -1. */
int cli_parse_signal(const char *text);

/* The name of a signal without "SIG" (TERM), or its number as text for unknown ones. */
const char *cli_signal_name(int sig, char buf[16]);

/*
 * Flushes and closes stdout, as GNU's close_stdout does at exit: on a failure (a full disk,
 * /dev/full, a closed pipe), says "PROG: write error: REASON" on stderr and returns false.
 */
bool cli_close_stdout(const char *prog);

/* Subcommands: argv[0] is the subcommand's name. Each returns the process's exit status. */
int cli_demo(int argc, char **argv);
/* `prog` names the command in its messages: "tmo run", or argv[0] as given (`timeout`, or a
 * path ending in it) when tmo is invoked under that name to stand in for GNU timeout. */
int cli_run(const char *prog, int argc, char **argv);

#endif
