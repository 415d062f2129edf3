/*
 * tmo run: GNU timeout (coreutils 9.1) on the tmo engine, plus an idle-output limit.
 *
 * GNU timeout keeps one timer (SIGALRM) and one handler, cleanup(), for the signals it catches
 * (INT, QUIT, HUP, TERM, ALRM and the -s signal). tmo keeps the same model, driven by one
 * io_uring loop instead of signal handlers (run_loop.c). This file is the command: its options,
 * its messages, the steps in GNU's order (the signals, run_signals.c; the command started,
 * run_spawn.c; the waiting, run_loop.c) and the exit status, as GNU timeout computes it.
 */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "cli.h"
#include "run.h"

static void try_help(void)
{
	fprintf(stderr, "Try '%s --help' for more information.\n", run_prog);
}

static void usage(void)
{
	printf("Usage: %s [OPTION] DURATION COMMAND [ARG]...\n"
	       "  or:  %s [OPTION]\n", run_prog, run_prog);
	printf("Start COMMAND, and kill it if still running after DURATION, or with -i if it\n"
	       "writes nothing for a while.\n"
	       "\n"
	       "Mandatory arguments to long options are mandatory for short options too.\n"
	       "      --preserve-status\n"
	       "                 exit with the same status as COMMAND, even when the\n"
	       "                   command times out\n"
	       "      --foreground\n"
	       "                 when not running %s directly from a shell prompt,\n"
	       "                   allow COMMAND to read from the TTY and get TTY signals;\n"
	       "                   in this mode, children of COMMAND will not be timed out\n"
	       "  -i, --idle=DURATION\n"
	       "                 also time COMMAND out (same signals and exit status) when it\n"
	       "                   writes nothing to stdout or stderr for DURATION; its\n"
	       "                   output then passes through pipes, byte for byte, stdout\n"
	       "                   to stdout and stderr to stderr\n"
	       "  -k, --kill-after=DURATION\n"
	       "                 also send a KILL signal if COMMAND is still running\n"
	       "                   this long after the initial signal was sent\n"
	       "  -s, --signal=SIGNAL\n"
	       "                 specify the signal to be sent on timeout;\n"
	       "                   SIGNAL may be a name like 'HUP' or a number;\n"
	       "                   see 'kill -l' for a list of signals\n"
	       "  -v, --verbose  diagnose to stderr any signal sent upon timeout\n"
	       "      --help        display this help and exit\n"
	       "      --version     output version information and exit\n"
	       "\n"
	       "DURATION is a floating point number with an optional suffix:\n"
	       "'s' for seconds (the default), 'm' for minutes, 'h' for hours or 'd' for days.\n"
	       "A duration of 0 disables the associated timeout.\n"
	       "\n"
	       "Upon timeout, send the TERM signal to COMMAND, if no other SIGNAL specified.\n"
	       "The TERM signal kills any process that does not block or catch that signal.\n"
	       "It may be necessary to use the KILL signal, since this signal can't be caught.\n"
	       "Signals INT, QUIT, HUP, TERM and ALRM sent to %s go to COMMAND (ALRM\n"
	       "as a timeout).\n"
	       "\n"
	       "EXIT status:\n"
	       "  124  if COMMAND times out, and --preserve-status is not specified\n"
	       "  125  if %s itself fails\n"
	       "  126  if COMMAND is found but cannot be invoked\n"
	       "  127  if COMMAND cannot be found\n"
	       "  137  if COMMAND (or %s itself) is sent the KILL (9) signal (128+9)\n"
	       "  -    the exit status of COMMAND otherwise\n"
	       "\n"
	       "Works like GNU coreutils timeout(1); the waiting is done with io_uring by tmo.\n",
	       run_prog, run_prog, run_prog, run_prog);
}

static void version(void)
{
	printf("%s (tmo) " TMO_VERSION_STRING "\n"
	       "GNU timeout's options and exit statuses on tmo's io_uring engine,\n"
	       "with an idle-output limit.\n",
	       run_prog);
}

/* ---- the options -------------------------------------------------------------------------- */

static int bad_duration(const char *text)
{
	char q[512];
	msg("invalid time interval %s", quote(text, q, sizeof(q)));
	try_help();
	return EXIT_TMO_FAILED;
}

/* One option of getopt's: -1 to go on, or the exit status. */
static int parse_option(struct run *r, int c)
{
	switch (c) {
	case 'i':
		if (!cli_parse_duration(optarg, &r->idle))
			return bad_duration(optarg);
		break;
	case 'k':
		if (!cli_parse_duration(optarg, &r->kill_after))
			return bad_duration(optarg);
		break;
	case 's':
		r->term_signal = cli_parse_signal(optarg);
		if (r->term_signal < 0) {
			char q[512];
			msg("%s: invalid signal", quote(optarg, q, sizeof(q)));
			try_help();
			return EXIT_TMO_FAILED;
		}
		break;
	case 'v':
		r->verbose = true;
		break;
	case 'F':
		r->foreground = true;
		break;
	case 'P':
		r->preserve_status = true;
		break;
	case 'H':
		usage();
		return cli_close_stdout(run_prog) ? 0 : EXIT_TMO_FAILED;
	case 'V':
		version();
		return cli_close_stdout(run_prog) ? 0 : EXIT_TMO_FAILED;
	default:
		try_help();
		return EXIT_TMO_FAILED;
	}
	return -1;
}

/* The options, DURATION and COMMAND: -1 to go on and run it, or the exit status. */
static int parse_args(struct run *r, int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "idle", required_argument, NULL, 'i' },
		{ "kill-after", required_argument, NULL, 'k' },
		{ "signal", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "foreground", no_argument, NULL, 'F' },
		{ "preserve-status", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'H' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* getopt's own messages name argv[0]. */
	char *argv0 = argv[0];
	argv[0] = (char *)run_prog;
	int c;
	while ((c = getopt_long(argc, argv, "+i:k:s:v", long_options, NULL)) != -1) {
		int status = parse_option(r, c);
		if (status >= 0)
			return status;
	}
	argv[0] = argv0;
	if (argc - optind < 2) {
		try_help();
		return EXIT_TMO_FAILED;
	}
	if (!cli_parse_duration(argv[optind], &r->duration))
		return bad_duration(argv[optind]);
	r->argv = argv + optind + 1;
	r->command = r->argv[0];
	r->nstreams = r->idle ? 2 : 0;
	return -1;
}

/* ---- the exit status ---------------------------------------------------------------------- */

/* The exit status, as GNU timeout computes it; a command killed by a signal tmo did not send
 * makes tmo die of the same signal. */
static int exit_status(struct run *r)
{
	if (r->error && !r->reaped) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->reaped = true;
		r->wstatus = -1;
	}
	if (r->group_kill_pending)
		kill_group_now();

	int status, ws = r->wstatus;
	if (r->error || ws == -1) {
		status = EXIT_TMO_FAILED;
	} else if (WIFEXITED(ws)) {
		status = WEXITSTATUS(ws);
	} else if (WIFSIGNALED(ws)) {
		int sig = WTERMSIG(ws);
		if (WCOREDUMP(ws))
			msg("the monitored command dumped core");
		if (!r->timed_out && prctl(PR_SET_DUMPABLE, 0) == 0) {
			/* Exit with the signal the command died of. */
			sigset_t one;
			sigemptyset(&one);
			sigaddset(&one, sig);
			signal(sig, SIG_DFL);
			sigprocmask(SIG_UNBLOCK, &one, NULL);
			raise(sig);
		}
		if (r->timed_out && sig == SIGKILL)
			r->preserve_status = true;
		status = sig + 128;
	} else {
		msg("unknown status from command (%d)", ws);
		status = EXIT_FAILURE;
	}
	if (r->timed_out && !r->preserve_status)
		status = EXIT_TIMED_OUT;
	return status;
}

/*
 * As GNU's close_stdout at exit: stdout is flushed and closed, and a failure is an error,
 * except EBADF on a stdout closed before tmo started when nothing was to be written to it.
 */
bool cli_close_stdout(const char *name)
{
	bool pending = __fpending(stdout) != 0;
	bool failed_before = ferror(stdout) != 0;
	errno = 0;
	bool close_failed = fclose(stdout) != 0;
	if (!failed_before && !(close_failed && (pending || errno != EBADF)))
		return true;
	if (close_failed && errno)
		fprintf(stderr, "%s: write error: %s\n", name, strerror(errno));
	else
		fprintf(stderr, "%s: write error\n", name); /* the error came earlier, its errno lost */
	return false;
}

int cli_run(const char *name, int argc, char **argv)
{
	static struct run run; /* one per process; its address is in the ops */
	struct run *r = &run;
	run_prog = name;
	/* As GNU timeout: DURATION may use the locale's decimal separator (cli_parse_duration).
	 * Only the numbers follow the locale: tmo's messages are in English, system errors
	 * (strerror) included, rather than half translated. */
	setlocale(LC_NUMERIC, "");
	memset(r, 0, sizeof(*r));
	r->term_signal = SIGTERM;
	r->pidfd = r->sigfd = -1;
	r->pipe_w[0] = r->pipe_w[1] = -1;
	for (int fd = 0; fd < 3; fd++)
		r->placeholders[fd] = -1;

	int status = parse_args(r, argc, argv);
	if (status >= 0)
		return status;

	/* Our own process group, so that the signal reaches the command's children too. */
	if (!r->foreground)
		setpgid(0, 0);
	sigset_t child_mask;
	catch_signals(r, &child_mask);

	status = EXIT_TMO_FAILED;
	if (run_spawn(r, &child_mask)) {
		serve(r);
		status = exit_status(r);
	}
	run_release(r);
	return status;
}
