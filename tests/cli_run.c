/*
 * cli-run: `tmo run` against GNU coreutils timeout (/usr/bin/timeout when installed): exit
 * statuses and wait statuses compared side by side, messages, signals sent to tmo, -k, the
 * idle limit (-i) with its byte-exact passthrough, plus unit tests of the duration and signal
 * parsers (cli/parse.c).
 *
 * Every run is spawned with stdin from /dev/null and stdout/stderr captured through pipes,
 * with its exit time taken from a pidfd. When it exits, whatever is left in its process group
 * (tmo and GNU timeout make their own, except with --foreground) is killed.
 *
 * Timing: "never early" is exact, measured from the spawn (or from output the command wrote);
 * "not too late" allows test_tolerance_ns() plus the start-up time of `tmo run` measured once
 * (fork, exec, sanitizer start-up, the io_uring ring).
 *
 * Arguments (optional): a cmocka name pattern to run, then one to skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "helpers.h"

#define TMO TMO_CLI_PATH
#define GNU "/usr/bin/timeout"
#define MS TMO_NSEC_PER_MSEC
#define SEC TMO_NSEC_PER_SEC

static int64_t g_startup; /* the slowest `tmo run 0 true` seen */
static char g_dir[64];    /* scratch files */

/* ---- spawning ---------------------------------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
};

struct res {
	int ws;                 /* wait status */
	struct buf out, err;
	int64_t start, exit_at; /* spawn, and when the pidfd said it exited */
	int64_t last_out, last_err; /* when the last chunk of each arrived (0: none) */
};

struct opts {
	int send_sig;           /* sent to the process send_after after the spawn */
	int64_t send_after;
	bool close_stdout;      /* close our read end of its stdout at once */
	bool stdout_full;       /* its stdout is /dev/full */
	const char *path;       /* the file to run, when argv[0] is not it */
	const sigset_t *mask;   /* its signal mask (none blocked by default) */
};

static void buf_add(struct buf *b, const char *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void res_free(struct res *r)
{
	free(r->out.p);
	free(r->err.p);
	memset(r, 0, sizeof(*r));
}

static void spawn(char *const argv[], const struct opts *o, struct res *r)
{
	static const struct opts none;
	if (!o)
		o = &none;
	memset(r, 0, sizeof(*r));
	int out[2], err[2];
	test_pipe(out);
	test_pipe(err);
	r->start = tmo_now();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		int full = o->stdout_full ? open("/dev/full", O_WRONLY) : out[1];
		if (null < 0 || full < 0 || dup2(null, 0) < 0 || dup2(full, 1) < 0 ||
		    dup2(err[1], 2) < 0)
			_exit(99);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none_set;
		sigemptyset(&none_set);
		sigprocmask(SIG_SETMASK, o->mask ? o->mask : &none_set, NULL);
		execv(o->path ? o->path : argv[0], argv);
		_exit(98);
	}
	close(out[1]);
	close(err[1]);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	assert_true(pidfd >= 0);
	if (o->close_stdout) {
		close(out[0]);
		out[0] = -1;
	}
	struct pollfd pf[3] = {
		{ .fd = out[0], .events = POLLIN },
		{ .fd = err[0], .events = POLLIN },
		{ .fd = pidfd, .events = POLLIN },
	};
	bool send_pending = o->send_sig > 0;
	bool exited = false, overran = false;
	int64_t limit = r->start + 30 * SEC;
	static char chunk[1 << 16];
	while (pf[0].fd >= 0 || pf[1].fd >= 0 || !exited) {
		int64_t now = tmo_now();
		int64_t until = send_pending ? r->start + o->send_after : limit;
		int wait_ms = until > now ? (int)((until - now + MS - 1) / MS) : 0;
		int n = poll(pf, 3, wait_ms);
		assert_true(n >= 0 || errno == EINTR);
		now = tmo_now();
		if (send_pending && now >= r->start + o->send_after) {
			kill(pid, o->send_sig);
			send_pending = false;
		}
		if (now >= limit && !overran) {
			overran = true;
			kill(pid, SIGKILL);
			kill(-pid, SIGKILL);
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			ssize_t got = read(pf[i].fd, chunk, sizeof(chunk));
			if (got > 0) {
				buf_add(i ? &r->err : &r->out, chunk, (size_t)got);
				*(i ? &r->last_err : &r->last_out) = now;
			} else if (got == 0 || errno != EINTR) {
				close(pf[i].fd);
				pf[i].fd = -1;
			}
		}
		if (pf[2].fd >= 0 && pf[2].revents) {
			exited = true;
			r->exit_at = now;
			/* A zombie still holds its pid and group: strays are killed, nobody else. */
			kill(-pid, SIGKILL);
			close(pf[2].fd);
			pf[2].fd = -1;
		}
	}
	assert_int_equal(waitpid(pid, &r->ws, 0), pid);
	if (overran)
		fail_msg("%s %s ... still ran after 30 s", argv[0], argv[1]);
}

/* argv from a NULL-terminated list, after `first` ... */
static void spawn_list(const char *p0, const char *p1, const struct opts *o, struct res *r,
		       va_list ap)
{
	char *argv[48];
	int n = 0;
	argv[n++] = (char *)p0;
	if (p1)
		argv[n++] = (char *)p1;
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(n < 47);
		argv[n++] = (char *)a;
	}
	argv[n] = NULL;
	spawn(argv, o, r);
}

/* `tmo run ARGS...` */
static void tmo_run(struct res *r, const struct opts *o, ...)
{
	va_list ap;
	va_start(ap, o);
	spawn_list(TMO, "run", o, r, ap);
	va_end(ap);
}

static bool have_gnu(void)
{
	return access(GNU, X_OK) == 0;
}

static char g_timeout[128]; /* a symlink named `timeout` to tmo */

/* `ARGV0 ARGS...`, running the file `path`. */
static void spawn_named(const char *path, const char *argv0, const struct opts *o,
			struct res *r, va_list ap)
{
	struct opts with = o ? *o : (struct opts){ 0 };
	with.path = path;
	spawn_list(argv0, NULL, &with, r, ap);
}

/* `timeout ARGS...`, tmo under the name GNU timeout has when run from PATH. */
static void tmo_timeout(struct res *r, const struct opts *o, ...)
{
	va_list ap;
	va_start(ap, o);
	spawn_named(g_timeout, "timeout", o, r, ap);
	va_end(ap);
}

/* `timeout ARGS...` (GNU). */
static void gnu_run(struct res *r, const struct opts *o, ...)
{
	va_list ap;
	va_start(ap, o);
	spawn_list(GNU, NULL, o, r, ap);
	va_end(ap);
}

static int exit_code(int ws)
{
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static int killed_by(int ws)
{
	return WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
}

static void describe(int ws, char *buf, size_t size)
{
	if (WIFEXITED(ws))
		snprintf(buf, size, "exit %d", WEXITSTATUS(ws));
	else if (WIFSIGNALED(ws))
		snprintf(buf, size, "killed by %s", sigabbrev_np(WTERMSIG(ws)) ?: "?");
	else
		snprintf(buf, size, "status %#x", ws);
}

#define assert_same_status(tmo_ws, gnu_ws)                                                     \
	do {                                                                                   \
		char a_[64], b_[64];                                                           \
		describe((tmo_ws), a_, sizeof(a_));                                            \
		describe((gnu_ws), b_, sizeof(b_));                                            \
		if ((tmo_ws) != (gnu_ws))                                                      \
			fail_msg("tmo run: %s, GNU timeout: %s", a_, b_);                     \
	} while (0)

#define assert_exit(r, code)                                                                   \
	do {                                                                                   \
		char d_[64];                                                                   \
		describe((r)->ws, d_, sizeof(d_));                                             \
		if (exit_code((r)->ws) != (code))                                              \
			fail_msg("expected exit %d, got %s; stderr: %s", (code), d_,           \
				 (r)->err.p ? (r)->err.p : "");                                \
	} while (0)

/* Exited at or after `earliest` (exact) and not later than `latest` + tolerance. */
static void assert_between(int64_t seen, int64_t earliest, int64_t latest)
{
	if (seen < earliest)
		fail_msg("seen %.3f ms BEFORE the earliest allowed", (double)(earliest - seen) / 1e6);
	int64_t late = seen - latest;
	if (late > test_tolerance_ns())
		fail_msg("seen %.3f ms after the latest expected (tolerance %.0f ms)",
			 (double)late / 1e6, (double)test_tolerance_ns() / 1e6);
}

/* A run timed out by its own limit: at start + limit at the earliest. */
static void assert_timed(const struct res *r, int64_t limit)
{
	assert_between(r->exit_at, r->start + limit, r->start + limit + g_startup);
}

static bool contains(const struct buf *b, const char *s)
{
	return b->p && strstr(b->p, s);
}

#define assert_contains(b, s)                                                                  \
	do {                                                                                   \
		if (!contains((b), (s)))                                                       \
			fail_msg("'%s' not in '%s'", (s), (b)->p ? (b)->p : "");               \
	} while (0)

/* Runs the same arguments under tmo run and GNU timeout; both wait statuses must match and
 * equal `ws` (when ws >= 0). */
#define COMPARE(want_, ...)                                                                       \
	do {                                                                                   \
		struct res t_, g_;                                                             \
		tmo_run(&t_, NULL, __VA_ARGS__, NULL);                                         \
		if (have_gnu()) {                                                              \
			gnu_run(&g_, NULL, __VA_ARGS__, NULL);                                 \
			assert_same_status(t_.ws, g_.ws);                                      \
			res_free(&g_);                                                         \
		}                                                                              \
		if ((want_) >= 0)                                                              \
			assert_same_status(t_.ws, (want_));                                    \
		res_free(&t_);                                                                 \
	} while (0)

static const char *text(const struct buf *b)
{
	return b->p ? b->p : "";
}

/*
 * `timeout ARGS...` with tmo and, when installed, with GNU timeout, both named `timeout`: the
 * wait statuses and what they say on stderr must be the same. Leaves tmo's run in *r.
 */
static void same_as_gnu_named(struct res *r, const struct opts *o, ...)
{
	va_list ap, gnu_ap;
	va_start(ap, o);
	va_copy(gnu_ap, ap);
	spawn_named(g_timeout, "timeout", o, r, ap);
	if (have_gnu()) {
		struct res g;
		spawn_named(GNU, "timeout", o, &g, gnu_ap);
		assert_same_status(r->ws, g.ws);
		if (strcmp(text(&r->err), text(&g.err)))
			fail_msg("stderr: tmo '%s', GNU '%s'", text(&r->err), text(&g.err));
		res_free(&g);
	}
	va_end(gnu_ap);
	va_end(ap);
}

/* `tmo run ARGS...` and GNU's `timeout ARGS...` both exit 0 and say nothing on stderr. */
/* The command's duration for a test that sends a signal at `send_after`: a second longer, so
 * the signal always comes while it runs, however slow tmo's start-up was. */
static const char *outlasting(int64_t send_after, char buf[32])
{
	snprintf(buf, 32, "%.3f", (double)(send_after + 1000 * MS) / 1e9);
	return buf;
}

static void assert_quiet_success(const struct opts *o, ...)
{
	va_list ap, gnu_ap;
	va_start(ap, o);
	va_copy(gnu_ap, ap);
	struct res r;
	spawn_list(TMO, "run", o, &r, ap);
	assert_exit(&r, 0);
	assert_null(r.err.p);
	res_free(&r);
	if (have_gnu()) {
		spawn_list(GNU, NULL, o, &r, gnu_ap);
		assert_exit(&r, 0);
		assert_null(r.err.p);
		res_free(&r);
	}
	va_end(gnu_ap);
	va_end(ap);
}

#define EXITED(code) ((code) << 8)
#define SIGNALED(sig) (sig)

/* ---- parsers ----------------------------------------------------------------------------- */

static void test_parse_duration(void **state)
{
	static const struct {
		const char *text;
		int64_t ns;
	} good[] = {
		{ "1", SEC },	      { "1s", SEC },		{ "0.5", 500 * MS },
		{ ".25", 250 * MS },  { "5.", 5 * SEC },	{ "1.5m", 90 * SEC },
		{ "2h", 7200 * SEC }, { "0.5d", 43200 * SEC }, { "1e1", 10 * SEC },
		{ "0", 0 },	      { "0s", 0 },		{ "0.0d", 0 },
		{ "-0", 0 },	      { "+1", SEC },		{ " 2", 2 * SEC },
		{ "0x10", 16 * SEC }, { "1e-9", 1 },		{ "1e-12", 1 },
		{ "1e-400", 0 },      { "inf", INT64_MAX },	{ "1e300", INT64_MAX },
		{ "1e400", INT64_MAX }, { "infd", INT64_MAX },	{ "300000000d", INT64_MAX },
		{ "0.001", MS },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t ns = -1;
		if (!cli_parse_duration(good[i].text, &ns))
			fail_msg("'%s' refused", good[i].text);
		if (ns != good[i].ns)
			fail_msg("'%s': %lld ns, expected %lld", good[i].text, (long long)ns,
				 (long long)good[i].ns);
	}
	static const char *const bad[] = {
		"", "x", "s", "1x", "1S", "1ss", "1 ", "1s ", "-1", "-0.5", "--1", "nan", "NaN",
		"-inf", "1e", "1.2.3", "m", "1,5", "1 s", "0x", "\t",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ns = 42;
		if (cli_parse_duration(bad[i], &ns))
			fail_msg("'%s' accepted (%lld ns)", bad[i], (long long)ns);
	}
	int64_t ns;
	assert_false(cli_parse_duration(NULL, &ns));
}

static void test_parse_signal(void **state)
{
	static const struct {
		const char *text;
		int sig;
	} cases[] = {
		{ "TERM", SIGTERM }, { "term", SIGTERM }, { "SIGTERM", SIGTERM },
		{ "sigkill", SIGKILL }, { "Sig15", SIGTERM }, { "SIG9", SIGKILL },
		{ "9", SIGKILL }, { "15", SIGTERM }, { "137", SIGKILL }, { "265", SIGKILL },
		{ "0", 0 }, { "EXIT", 0 }, { "HUP", SIGHUP }, { "INT", SIGINT },
		{ "USR1", SIGUSR1 }, { "IOT", SIGABRT }, { "CLD", SIGCHLD }, { "POLL", SIGIO },
		{ "FOO", -1 }, { "SIGFOO", -1 }, { "", -1 }, { " 9", -1 }, { "+9", -1 },
		{ "9x", -1 }, { "-1", -1 }, { "99", -1 }, { "32", -1 }, { "65", -1 },
		{ "RTMAX+1", -1 }, { "RTMIN-1", -1 }, { "SIG", -1 }, { "99999999999", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int want = cases[i].sig;
		int got = cli_parse_signal(cases[i].text);
		if (got != want)
			fail_msg("'%s': %d, expected %d", cases[i].text, got, want);
	}
	assert_int_equal(cli_parse_signal(NULL), -1);
	assert_int_equal(cli_parse_signal("RTMIN"), SIGRTMIN);
	assert_int_equal(cli_parse_signal("RTMIN+1"), SIGRTMIN + 1);
	assert_int_equal(cli_parse_signal("rtmin2"), SIGRTMIN + 2);
	assert_int_equal(cli_parse_signal("SIGRTMAX"), SIGRTMAX);
	assert_int_equal(cli_parse_signal("RTMAX-2"), SIGRTMAX - 2);
	assert_int_equal(cli_parse_signal("34"), SIGRTMIN); /* glibc: 34 is SIGRTMIN */

	char buf[16];
	assert_string_equal(cli_signal_name(SIGTERM, buf), "TERM");
	assert_string_equal(cli_signal_name(SIGKILL, buf), "KILL");
	assert_string_equal(cli_signal_name(SIGCHLD, buf), "CHLD");
	assert_string_equal(cli_signal_name(0, buf), "EXIT");
	assert_string_equal(cli_signal_name(SIGRTMIN, buf), "RTMIN");
	assert_string_equal(cli_signal_name(SIGRTMIN + 1, buf), "RTMIN+1");
	assert_string_equal(cli_signal_name(SIGRTMAX - 1, buf), "RTMAX-1");
	assert_string_equal(cli_signal_name(SIGRTMAX, buf), "RTMAX");
	/* Every name it gives parses back. */
	for (int sig = 0; sig < NSIG; sig++) {
		if (cli_parse_signal(cli_signal_name(sig, buf)) >= 0)
			assert_int_equal(cli_parse_signal(cli_signal_name(sig, buf)), sig);
	}
}

/* ---- GNU behaviours ---------------------------------------------------------------------- */

static void test_status_passthrough(void **state)
{
	COMPARE(EXITED(0), "5", "true");
	COMPARE(EXITED(3), "5", "sh", "-c", "exit 3");
	COMPARE(EXITED(124), "5", "sh", "-c", "exit 124");
	/* Options end at the first operand: the command's own options are its own. */
	struct res r;
	tmo_run(&r, NULL, "5", "echo", "-v", "-s", "KILL", "--help", NULL);
	assert_exit(&r, 0);
	assert_string_equal(r.out.p, "-v -s KILL --help\n");
	res_free(&r);
	tmo_run(&r, NULL, "--", "5", "echo", "ok", NULL);
	assert_exit(&r, 0);
	assert_string_equal(r.out.p, "ok\n");
	res_free(&r);
}

static void test_timeout_124(void **state)
{
	struct res r;
	tmo_run(&r, NULL, "0.3", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_timed(&r, 300 * MS);
	assert_null(r.err.p);
	res_free(&r);
	/* Suffixes: 0.005m is 0.3 s. */
	tmo_run(&r, NULL, "0.005m", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_timed(&r, 300 * MS);
	res_free(&r);
	tmo_run(&r, NULL, "--foreground", "0.2", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_timed(&r, 200 * MS);
	res_free(&r);
	COMPARE(EXITED(124), "0.2", "sleep", "5");
	COMPARE(EXITED(124), "-s", "INT", "0.2", "sleep", "5");
}

static void test_zero_and_huge_disable(void **state)
{
	struct res r;
	tmo_run(&r, NULL, "0", "sleep", "0.3", NULL);
	assert_exit(&r, 0);
	assert_between(r.exit_at, r.start + 300 * MS, r.start + 300 * MS + g_startup);
	res_free(&r);
	COMPARE(EXITED(0), "1e300", "true");
	COMPARE(EXITED(0), "inf", "true");
	COMPARE(EXITED(0), "-k", "0", "9999d", "true");
}

static void test_bad_durations(void **state)
{
	static const char *const bad[] = { "x", "-1", "nan", "1x", "1ss", "", "1 " };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct res r;
		tmo_run(&r, NULL, "--", bad[i], "true", NULL);
		assert_exit(&r, EXIT_TMO_FAILED);
		assert_contains(&r.err, "tmo run: invalid time interval '");
		assert_contains(&r.err, "Try 'tmo run --help' for more information.");
		assert_null(r.out.p);
		res_free(&r);
		tmo_run(&r, NULL, "-k", bad[i], "1", "true", NULL);
		assert_exit(&r, EXIT_TMO_FAILED);
		assert_contains(&r.err, "invalid time interval");
		res_free(&r);
		tmo_run(&r, NULL, "-i", bad[i], "1", "true", NULL);
		assert_exit(&r, EXIT_TMO_FAILED);
		assert_contains(&r.err, "invalid time interval");
		res_free(&r);
	}
	COMPARE(EXITED(125), "nan", "true");
	COMPARE(EXITED(125), "--", "-1", "true");
}

static void test_bad_signals_and_usage(void **state)
{
	struct res r;
	tmo_run(&r, NULL, "-s", "FOO", "1", "true", NULL);
	assert_exit(&r, EXIT_TMO_FAILED);
	assert_contains(&r.err, "tmo run: 'FOO': invalid signal");
	assert_contains(&r.err, "Try 'tmo run --help'");
	res_free(&r);
	tmo_run(&r, NULL, "--signal=99", "1", "true", NULL);
	assert_exit(&r, EXIT_TMO_FAILED);
	assert_contains(&r.err, "invalid signal");
	res_free(&r);
	tmo_run(&r, NULL, "-x", "1", "true", NULL);
	assert_exit(&r, EXIT_TMO_FAILED);
	assert_contains(&r.err, "tmo run: invalid option -- 'x'");
	res_free(&r);
	tmo_run(&r, NULL, "--verbose=1", "1", "true", NULL);
	assert_exit(&r, EXIT_TMO_FAILED);
	assert_contains(&r.err, "doesn't allow an argument");
	res_free(&r);
	tmo_run(&r, NULL, "--signal", NULL);
	assert_exit(&r, EXIT_TMO_FAILED);
	assert_contains(&r.err, "requires an argument");
	res_free(&r);
	tmo_run(&r, NULL, "1", NULL);
	assert_exit(&r, EXIT_TMO_FAILED);
	assert_contains(&r.err, "Try 'tmo run --help'");
	res_free(&r);
	COMPARE(EXITED(125), "-s", "FOO", "1", "true");
	COMPARE(EXITED(125), "-s", "32", "1", "true");
	COMPARE(EXITED(125), "1");
	COMPARE(EXITED(125), "-x", "1", "true");
	/* Signal names GNU takes: a number as an exit status, lower case, SIG prefix. */
	COMPARE(EXITED(124), "-s", "sigint", "0.1", "sleep", "5");
	COMPARE(EXITED(124), "-s", "130", "0.1", "sleep", "5");
}

static void test_bad_commands(void **state)
{
	struct res r;
	tmo_run(&r, NULL, "1", "tmo-no-such-command", NULL);
	assert_exit(&r, EXIT_NOT_FOUND);
	assert_contains(&r.err,
			"tmo run: failed to run command 'tmo-no-such-command': No such file");
	res_free(&r);
	char path[128];
	snprintf(path, sizeof(path), "%s/not-executable", g_dir);
	tmo_run(&r, NULL, "1", path, NULL);
	assert_exit(&r, EXIT_CANNOT_RUN);
	assert_contains(&r.err, "failed to run command");
	assert_contains(&r.err, "Permission denied");
	res_free(&r);
	tmo_run(&r, NULL, "1", "/", NULL);
	assert_exit(&r, EXIT_CANNOT_RUN);
	res_free(&r);
	/* The same with -i: the message comes through the stderr pipe. */
	tmo_run(&r, NULL, "-i", "1", "1", "tmo-no-such-command", NULL);
	assert_exit(&r, EXIT_NOT_FOUND);
	assert_contains(&r.err, "failed to run command");
	res_free(&r);
	COMPARE(EXITED(127), "1", "tmo-no-such-command");
	COMPARE(EXITED(126), "1", path);
	COMPARE(EXITED(126), "1", "/");
}

static void test_kill_after(void **state)
{
	/* The command ignores TERM; KILL goes to the whole group, tmo included, as with GNU. */
	struct res r;
	tmo_run(&r, NULL, "-k", "0.3", "0.2", "sh", "-c", "trap '' TERM; sleep 5", NULL);
	assert_int_equal(killed_by(r.ws), SIGKILL);
	assert_timed(&r, 500 * MS);
	res_free(&r);
	/* --foreground: tmo itself is not killed and exits 137. */
	tmo_run(&r, NULL, "--foreground", "-k", "0.3", "0.2", "sh", "-c",
		"trap '' TERM; while :; do sleep 0.05; done", NULL);
	assert_exit(&r, 137);
	assert_timed(&r, 500 * MS);
	res_free(&r);
	COMPARE(SIGNALED(SIGKILL), "-k", "0.2", "0.2", "sh", "-c", "trap '' TERM; sleep 5");
	COMPARE(EXITED(137), "--foreground", "-k", "0.2", "0.2", "sh", "-c",
		"trap '' TERM; while :; do sleep 0.05; done");
	/* A command that dies of TERM does not need the KILL. */
	COMPARE(EXITED(124), "-k", "5", "0.2", "sleep", "5");
	/* -s KILL: the group gets it at once. */
	COMPARE(SIGNALED(SIGKILL), "-s", "KILL", "0.2", "sleep", "5");
}

static void test_preserve_status(void **state)
{
	COMPARE(EXITED(128 + SIGTERM), "--preserve-status", "0.2", "sleep", "5");
	COMPARE(EXITED(7), "--preserve-status", "0.2", "sh", "-c",
		"trap 'exit 7' TERM; sleep 5 & wait");
	COMPARE(EXITED(3), "--preserve-status", "5", "sh", "-c", "exit 3");
	COMPARE(EXITED(128 + SIGINT), "--preserve-status", "-s", "INT", "0.2", "sleep", "5");
}

static void test_verbose(void **state)
{
	struct res r;
	tmo_run(&r, NULL, "-v", "0.2", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_string_equal(r.err.p, "tmo run: sending signal TERM to command 'sleep'\n");
	res_free(&r);
	tmo_run(&r, NULL, "--verbose", "-s", "HUP", "--foreground", "-k", "0.2", "0.2", "sh",
		"-c", "trap '' HUP; while :; do sleep 0.05; done", NULL);
	assert_exit(&r, 137);
	assert_string_equal(r.err.p, "tmo run: sending signal HUP to command 'sh'\n"
				     "tmo run: sending signal KILL to command 'sh'\n");
	res_free(&r);
	/* Quiet without -v. */
	tmo_run(&r, NULL, "0.1", "sleep", "5", NULL);
	assert_null(r.err.p);
	res_free(&r);
	/* -v says which limit fired: the overall one (GNU's line) or the idle one (its own line,
	 * which names it; then the KILL of -k is GNU's line). */
	tmo_run(&r, NULL, "-v", "-i", "5", "0.2", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_string_equal(r.err.p, "tmo run: sending signal TERM to command 'sleep'\n");
	res_free(&r);
	tmo_run(&r, NULL, "-v", "-i", "1.25", "0", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_string_equal(r.err.p, "tmo run: no output for 1.25s (idle limit): sending signal "
				     "TERM to command 'sleep'\n");
	res_free(&r);
	tmo_run(&r, NULL, "-v", "--foreground", "-i", "0.2", "-k", "0.2", "10", "sh", "-c",
		"trap '' TERM; while :; do sleep 0.05; done", NULL);
	assert_exit(&r, 137);
	assert_string_equal(r.err.p, "tmo run: no output for 0.2s (idle limit): sending signal "
				     "TERM to command 'sh'\n"
				     "tmo run: sending signal KILL to command 'sh'\n");
	res_free(&r);
}

/* A signal the command dies of that tmo did not send: tmo dies of it too, as GNU. */
static void test_command_signal_reraised(void **state)
{
	COMPARE(SIGNALED(SIGUSR1), "5", "sh", "-c", "kill -USR1 $$");
	COMPARE(SIGNALED(SIGKILL), "5", "sh", "-c", "kill -KILL $$");
	struct res r;
	tmo_run(&r, NULL, "-i", "5", "5", "sh", "-c", "echo x; kill -USR2 $$", NULL);
	assert_int_equal(killed_by(r.ws), SIGUSR2);
	assert_string_equal(r.out.p, "x\n");
	res_free(&r);
}

/* Signals sent to tmo go to the command; tmo then ends as the command did. */
static void test_signals_forwarded(void **state)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct opts o = { .send_sig = sigs[i], .send_after = 300 * MS };
		struct res t, g;
		tmo_run(&t, &o, "10", "sleep", "10", NULL);
		if (killed_by(t.ws) != sigs[i])
			fail_msg("%s: tmo ended with status %#x", sigabbrev_np(sigs[i]), t.ws);
		assert_between(t.exit_at, t.start + 300 * MS, t.start + 300 * MS);
		if (have_gnu()) {
			gnu_run(&g, &o, "10", "sleep", "10", NULL);
			assert_same_status(t.ws, g.ws);
			res_free(&g);
		}
		res_free(&t);
	}
	/* With -i too, and --foreground. */
	struct opts o = { .send_sig = SIGTERM, .send_after = 300 * MS };
	struct res r;
	tmo_run(&r, &o, "-i", "5", "10", "sleep", "10", NULL);
	assert_int_equal(killed_by(r.ws), SIGTERM);
	res_free(&r);
	tmo_run(&r, &o, "--foreground", "10", "sleep", "10", NULL);
	assert_int_equal(killed_by(r.ws), SIGTERM);
	res_free(&r);
	/* A command that catches it and exits: its status. */
	tmo_run(&r, &o, "10", "sh", "-c", "trap 'exit 5' TERM; sleep 10 & wait", NULL);
	assert_exit(&r, 5);
	res_free(&r);
	/* ALRM counts as the timeout. */
	o.send_sig = SIGALRM;
	tmo_run(&r, &o, "10", "sleep", "10", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_between(r.exit_at, r.start + 300 * MS, r.start + 300 * MS);
	if (have_gnu()) {
		struct res g;
		gnu_run(&g, &o, "10", "sleep", "10", NULL);
		assert_same_status(r.ws, g.ws);
		res_free(&g);
	}
	res_free(&r);
}

static void test_help_version(void **state)
{
	struct res r;
	tmo_run(&r, NULL, "--help", NULL);
	assert_exit(&r, 0);
	static const char *const opts[] = {
		"Usage: tmo run [OPTION] DURATION COMMAND [ARG]...", "--preserve-status",
		"--foreground", "-i, --idle=DURATION", "-k, --kill-after=DURATION",
		"-s, --signal=SIGNAL", "-v, --verbose", "--help", "--version", "124", "125",
		"126", "127", "137",
	};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		assert_contains(&r.out, opts[i]);
	assert_null(r.err.p);
	res_free(&r);
	tmo_run(&r, NULL, "--version", NULL);
	assert_exit(&r, 0);
	assert_non_null(r.out.p);
	assert_true(!strncmp(r.out.p, "tmo run (tmo) " TMO_VERSION_STRING "\n",
			     strlen("tmo run (tmo) " TMO_VERSION_STRING "\n")));
	res_free(&r);
	/* Abbreviated long options, as getopt_long takes them. */
	tmo_run(&r, NULL, "--vers", NULL);
	assert_exit(&r, 0);
	res_free(&r);
}

/* ---- under the name `timeout`, as GNU timeout --------------------------------------------- */

/* Invoked as `timeout`, tmo is `tmo run` and names itself `timeout` in every message. */
static void test_named_timeout(void **state)
{
	setenv("LC_ALL", "C", 1); /* GNU quotes with ASCII 'x' there, as tmo always does */
#define TRY "Try 'timeout --help' for more information.\n"
	static const struct {
		const char *args[5]; /* up to the first NULL */
		int status;
		const char *err;
	} cases[] = {
		{ { "0.2", "sleep", "5" }, EXIT_TIMED_OUT, "" },
		{ { "-v", "0.2", "sleep", "5" }, EXIT_TIMED_OUT,
		  "timeout: sending signal TERM to command 'sleep'\n" },
		{ { "x", "true" }, EXIT_TMO_FAILED, "timeout: invalid time interval 'x'\n" TRY },
		{ { "-s", "FOO", "1", "true" }, EXIT_TMO_FAILED, "timeout: 'FOO': invalid signal\n" TRY },
		{ { "-x", "1", "true" }, EXIT_TMO_FAILED, "timeout: invalid option -- 'x'\n" TRY },
		{ { NULL }, EXIT_TMO_FAILED, TRY },
		{ { "1", "tmo-no-such-command" }, EXIT_NOT_FOUND,
		  "timeout: failed to run command 'tmo-no-such-command': No such file or directory\n" },
		{ { "1", "/" }, EXIT_CANNOT_RUN,
		  "timeout: failed to run command '/': Permission denied\n" },
		{ { "5", "sh", "-c", "exit 3" }, 3, "" },
	};
#undef TRY
	struct res r;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i].args;
		same_as_gnu_named(&r, NULL, a[0], a[1], a[2], a[3], a[4], NULL);
		assert_exit(&r, cases[i].status);
		assert_string_equal(text(&r.err), cases[i].err);
		res_free(&r);
	}
	same_as_gnu_named(&r, NULL, "-k", "0.2", "0.2", "sh", "-c", "trap '' TERM; sleep 5", NULL);
	assert_int_equal(killed_by(r.ws), SIGKILL);
	res_free(&r);
	/* --help and --version name it too; the usage lines are GNU's. */
	static const char usage[] = "Usage: timeout [OPTION] DURATION COMMAND [ARG]...\n"
				    "  or:  timeout [OPTION]\n";
	tmo_timeout(&r, NULL, "--help", NULL);
	assert_exit(&r, 0);
	assert_true(!strncmp(text(&r.out), usage, strlen(usage)));
	assert_null(strstr(text(&r.out), "tmo run"));
	res_free(&r);
	tmo_timeout(&r, NULL, "--version", NULL);
	assert_exit(&r, 0);
	assert_true(!strncmp(text(&r.out), "timeout (tmo) ", 14));
	res_free(&r);
	/* The idle limit (tmo's own) is there too, and its -v line names it the same way. */
	tmo_timeout(&r, NULL, "-v", "-i", "0.2", "5", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_string_equal(text(&r.err), "timeout: no output for 0.2s (idle limit): sending "
					  "signal TERM to command 'sleep'\n");
	res_free(&r);
	unsetenv("LC_ALL");
}

/* As GNU's program_name: argv[0] as given, a path included. */
static void test_named_timeout_path(void **state)
{
	setenv("LC_ALL", "C", 1);
	struct res r;
	char want[256];
	snprintf(want, sizeof(want), "%s: sending signal TERM to command 'sleep'\n", g_timeout);
	struct opts o = { .path = g_timeout };
	char *argv[] = { g_timeout, "-v", "0.2", "sleep", "5", NULL };
	spawn(argv, &o, &r);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_string_equal(text(&r.err), want);
	if (have_gnu()) {
		struct res g;
		o.path = GNU;
		spawn(argv, &o, &g);
		assert_string_equal(text(&g.err), want);
		res_free(&g);
	}
	res_free(&r);
	/* Another name is not `timeout`: tmo's own commands. */
	char other[160];
	snprintf(other, sizeof(other), "%s-not", g_timeout);
	assert_int_equal(symlink(TMO, other), 0);
	char *argv2[] = { other, "1", "true", NULL };
	spawn(argv2, NULL, &r);
	unlink(other);
	assert_exit(&r, EXIT_TMO_FAILED);
	assert_contains(&r.err, "tmo: unknown command '1'");
	res_free(&r);
	unsetenv("LC_ALL");
}

/* --help and --version that cannot be written out: GNU's close_stdout message, and 125. */
static void test_write_error(void **state)
{
	struct opts full = { .stdout_full = true };
	struct res r;
	static const char *const opts[] = { "--version", "--help" };
	setenv("LC_ALL", "C", 1); /* GNU's message in English */
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		tmo_run(&r, &full, opts[i], NULL);
		assert_exit(&r, EXIT_TMO_FAILED);
		assert_string_equal(text(&r.err), "tmo run: write error: No space left on device\n");
		res_free(&r);
		same_as_gnu_named(&r, &full, opts[i], NULL);
		assert_exit(&r, EXIT_TMO_FAILED);
		assert_string_equal(text(&r.err), "timeout: write error: No space left on device\n");
		res_free(&r);
	}
	unsetenv("LC_ALL");
	char *argv[] = { TMO, "--version", NULL };
	spawn(argv, &full, &r);
	assert_exit(&r, EXIT_TMO_FAILED);
	assert_string_equal(text(&r.err), "tmo: write error: No space left on device\n");
	res_free(&r);
}

/* A duration with the locale's decimal separator, as GNU reads it (gnulib's cl_strtod). */
static void test_locale_decimal_point(void **state)
{
	if (!setlocale(LC_ALL, "fr_FR.UTF-8")) {
		print_message("fr_FR.UTF-8 is not generated here (scripts/setup makes it)\n");
		skip();
	}
	int64_t ns = 0;
	bool comma = cli_parse_duration("0,3", &ns);
	int64_t comma_ns = ns;
	bool point = cli_parse_duration("1.5m", &ns); /* the C locale's point still reads */
	int64_t point_ns = ns;
	bool junk = cli_parse_duration("0,3,", &ns);
	setlocale(LC_ALL, "C");
	assert_true(comma);
	assert_int_equal(comma_ns, 300 * MS);
	assert_true(point);
	assert_int_equal(point_ns, 90 * SEC);
	assert_false(junk);
	assert_false(cli_parse_duration("0,3", &ns)); /* in the C locale, as GNU */

	setenv("LC_ALL", "fr_FR.UTF-8", 1);
	struct res r;
	tmo_run(&r, NULL, "0,3", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_timed(&r, 300 * MS);
	res_free(&r);
	tmo_run(&r, NULL, "-k", "0,2", "0.2", "sh", "-c", "trap '' TERM; sleep 5", NULL);
	assert_int_equal(killed_by(r.ws), SIGKILL);
	assert_timed(&r, 400 * MS);
	res_free(&r);
	COMPARE(EXITED(124), "0,2", "sleep", "5");
	COMPARE(EXITED(125), "0,2,", "sleep", "5");
	unsetenv("LC_ALL");
}

/* "SigBlk:\t%016llx\n" for `set`, as /proc/PID/status shows it. */
static void sigblk_line(const sigset_t *set, char *buf, size_t size)
{
	unsigned long long bits = 0;
	for (int sig = 1; sig <= 64; sig++)
		if (sigismember(set, sig) == 1)
			bits |= 1ull << (sig - 1);
	snprintf(buf, size, "SigBlk:\t%016llx\n", bits);
}

/*
 * The mask the command inherits, as GNU 9.1: the caller's without CHLD (GNU unblocks CHLD
 * before the fork, ALRM after it in itself only). And a signal the caller blocked is not
 * forwarded (GNU waits with the mask it inherited), except ALRM.
 */
static void test_inherited_signal_mask(void **state)
{
	sigset_t mask, want_set;
	sigemptyset(&mask);
	sigaddset(&mask, SIGALRM);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	want_set = mask;
	sigdelset(&want_set, SIGCHLD);
	char want[64];
	sigblk_line(&want_set, want, sizeof(want));
	struct opts o = { .mask = &mask };
	struct res r;
	/* The same with each way of starting the command. */
	static const char *const how[][2] = { { "-k", "1" }, { "-i", "5" }, { "--foreground", "-v" } };
	for (size_t i = 0; i < sizeof(how) / sizeof(how[0]); i++) {
		tmo_run(&r, &o, how[i][0], how[i][1], "5", "grep", "SigBlk", "/proc/self/status",
			NULL);
		assert_exit(&r, 0);
		assert_string_equal(text(&r.out), want);
		res_free(&r);
	}
	if (have_gnu()) {
		gnu_run(&r, &o, "5", "grep", "SigBlk", "/proc/self/status", NULL);
		assert_string_equal(text(&r.out), want);
		res_free(&r);
	}
	/* TERM blocked by the caller: not forwarded, the command runs to its end. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	/* Sent once tmo has surely set itself up (its slowest start-up seen, plus 200 ms). */
	o = (struct opts){ .mask = &mask, .send_sig = SIGTERM, .send_after = g_startup + 200 * MS };
	char secs[32];
	assert_quiet_success(&o, "-v", "5", "sleep", outlasting(o.send_after, secs), NULL);
	setenv("LC_ALL", "C", 1);
	/* ALRM blocked by the caller: still the timer, sent or its own (timeout-blocked.pl). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGALRM);
	o = (struct opts){ .mask = &mask };
	same_as_gnu_named(&r, &o, "0.2", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_timed(&r, 200 * MS);
	res_free(&r);
	o = (struct opts){ .mask = &mask, .send_sig = SIGALRM, .send_after = g_startup + 200 * MS };
	same_as_gnu_named(&r, &o, "-v", "5", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	res_free(&r);
	unsetenv("LC_ALL");
}

/* -s TTIN or TTOU: GNU ignores that signal sent to itself (its SIG_IGN for them replaces its
 * handler), so it is not forwarded. */
static void test_ttin_ttou_ignored(void **state)
{
	static const int sigs[] = { SIGTTIN, SIGTTOU };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct opts o = { .send_sig = sigs[i], .send_after = g_startup + 200 * MS };
		char name[16];
		const char *sig = cli_signal_name(sigs[i], name);
		char secs[32];
		outlasting(o.send_after, secs);
		assert_quiet_success(&o, "-v", "-s", sig, "5", "sleep", secs, NULL);
		assert_quiet_success(&o, "-v", "-s", sig, "--foreground", "5", "sleep", secs, NULL);
	}
}

/* ---- the idle limit ---------------------------------------------------------------------- */

static void test_idle_output_keeps_alive(void **state)
{
	/*
	 * A line every 0.1 s under an idle limit of 0.3 s, for three times the limit: runs to its
	 * end. Each gap includes starting `sleep`, which an emulated machine makes several times
	 * slower: the limit widens by the tolerance, and the run lengthens with it.
	 */
	int64_t limit = 300 * MS + test_tolerance_ns();
	int lines = (int)(3 * limit / (100 * MS)) + 1;
	char limit_arg[32], out_cmd[160], err_cmd[160];
	snprintf(limit_arg, sizeof(limit_arg), "%.3f", (double)limit / 1e9);
	snprintf(out_cmd, sizeof(out_cmd),
		 "i=0; while [ $i -lt %d ]; do echo $i; i=$((i+1)); sleep 0.1; done; echo end >&2",
		 lines);
	snprintf(err_cmd, sizeof(err_cmd),
		 "i=0; while [ $i -lt %d ]; do echo $i >&2; i=$((i+1)); sleep 0.1; done", lines);
	struct buf want = { 0 };
	for (int i = 0; i < lines; i++) {
		char line[16];
		int n = snprintf(line, sizeof(line), "%d\n", i);
		buf_add(&want, line, (size_t)n);
	}

	struct res r;
	tmo_run(&r, NULL, "-i", limit_arg, "60", "sh", "-c", out_cmd, NULL);
	assert_exit(&r, 0);
	assert_string_equal(r.out.p, want.p);
	assert_string_equal(r.err.p, "end\n");
	assert_true(r.exit_at - r.start >= 2 * limit);
	res_free(&r);
	/* Output on stderr alone counts too. */
	tmo_run(&r, NULL, "-i", limit_arg, "60", "sh", "-c", err_cmd, NULL);
	assert_exit(&r, 0);
	assert_string_equal(r.err.p, want.p);
	res_free(&r);
	free(want.p);
}

static void test_idle_silence_times_out(void **state)
{
	/* Output at 0, 0.1, 0.2 s then twice the limit of silence: 124, a limit after the last
	 * output. The limit is 0.3 s widened by the tolerance: each 0.1 s gap includes starting
	 * `sleep`, several times slower on an emulated machine. */
	int64_t limit = 300 * MS + test_tolerance_ns();
	char limit_arg[32], cmd[128];
	snprintf(limit_arg, sizeof(limit_arg), "%.3f", (double)limit / 1e9);
	snprintf(cmd, sizeof(cmd), "echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c; sleep %.3f; echo d",
		 2.0 * (double)limit / 1e9);
	struct res r;
	tmo_run(&r, NULL, "-i", limit_arg, "60", "sh", "-c", cmd, NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_string_equal(r.out.p, "a\nc\n");
	assert_string_equal(r.err.p, "b\n");
	/* Never early: the last line came after two 0.1 s sleeps. Not late: measured from when it
	 * reached us. */
	assert_between(r.exit_at, r.start + 200 * MS + limit, r.last_out + limit);
	res_free(&r);
	/* With no overall limit (0), the same, and -v says it. */
	tmo_run(&r, NULL, "-v", "-i", "0.3", "0", "sh", "-c", "echo a; sleep 5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_between(r.exit_at, r.start + 300 * MS, r.last_out + 300 * MS);
	assert_string_equal(r.out.p, "a\n");
	assert_string_equal(r.err.p, "tmo run: no output for 0.3s (idle limit): sending signal "
				     "TERM to command 'sh'\n");
	res_free(&r);
	/* A command that never writes. */
	tmo_run(&r, NULL, "-i", "0.2", "10", "sleep", "5", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_timed(&r, 200 * MS);
	res_free(&r);
	/* The overall limit still applies while output flows. */
	tmo_run(&r, NULL, "-i", "0.3", "0.5", "sh", "-c", "while :; do echo x; sleep 0.05; done",
		NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_timed(&r, 500 * MS);
	res_free(&r);
}

static void test_idle_output_after_signal(void **state)
{
	/* What the command writes once signalled is delivered, and its status is 124... */
	struct res r;
	tmo_run(&r, NULL, "-i", "0.3", "10", "sh", "-c",
		"trap 'echo bye; echo err-bye >&2; exit 3' TERM; echo hi; sleep 5 & wait", NULL);
	assert_exit(&r, EXIT_TIMED_OUT);
	assert_string_equal(r.out.p, "hi\nbye\n");
	assert_string_equal(r.err.p, "err-bye\n");
	res_free(&r);
	/* ... or its own with --preserve-status. */
	tmo_run(&r, NULL, "--preserve-status", "-i", "0.3", "10", "sh", "-c",
		"trap 'echo bye; exit 3' TERM; echo hi; sleep 5 & wait", NULL);
	assert_exit(&r, 3);
	assert_string_equal(r.out.p, "hi\nbye\n");
	res_free(&r);
	/* -k: a command that ignores TERM is KILLed, and tmo with it (its group), after the
	 * output it wrote meanwhile has come through. */
	tmo_run(&r, NULL, "-i", "0.3", "-k", "0.3", "10", "sh", "-c",
		"trap 'echo term' TERM; echo a; while :; do sleep 0.05; done", NULL);
	assert_int_equal(killed_by(r.ws), SIGKILL);
	assert_string_equal(r.out.p, "a\nterm\n");
	assert_between(r.exit_at, r.start + 600 * MS, r.last_out + 300 * MS + 500 * MS);
	res_free(&r);
	tmo_run(&r, NULL, "--foreground", "-i", "0.3", "-k", "0.3", "10", "sh", "-c",
		"trap 'echo term' TERM; echo a; while :; do sleep 0.05; done", NULL);
	assert_exit(&r, 137);
	assert_string_equal(r.out.p, "a\nterm\n");
	res_free(&r);
}

static void test_idle_grandchild_keeps_pipe(void **state)
{
	/* The command exits; a grandchild keeps the pipes open, silent: tmo does not wait. */
	struct res r;
	tmo_run(&r, NULL, "-i", "5", "10", "sh", "-c", "sleep 3 & echo hi; echo err >&2", NULL);
	assert_exit(&r, 0);
	assert_string_equal(r.out.p, "hi\n");
	assert_string_equal(r.err.p, "err\n");
	assert_true(r.exit_at - r.start < SEC);
	res_free(&r);
	/* Output the grandchild writes right after the command exited still comes through. The
	 * grandchild waits for that exit with shell builtins only: no process start-up (slow on
	 * an emulated machine) stands between the exit and its write. */
	tmo_run(&r, NULL, "-i", "5", "10", "sh", "-c",
		"(while kill -0 $$ 2>/dev/null; do :; done; echo late) & echo hi", NULL);
	assert_exit(&r, 0);
	assert_string_equal(r.out.p, "hi\nlate\n");
	res_free(&r);
	/*
	 * A grandchild that keeps writing, more often than the quiet period: tmo still ends, 1 s
	 * after the command exited (regression: it forwarded for ever, and neither limit applied
	 * once the command was gone). It counts between lines with builtins rather than run
	 * sleep, whose start-up alone outlasts the quiet period on an emulated machine; it ends
	 * by SIGPIPE once tmo is gone.
	 */
	tmo_run(&r, NULL, "-i", "5", "10", "sh", "-c",
		"(while :; do echo x; i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; done) & "
		"echo hi",
		NULL);
	assert_exit(&r, 0);
	/* The grandchild's first "x" may come before "hi" (a race of the command's own): only
	 * that "hi" came through, as a line of its own, and nothing but x lines besides. */
	assert_true(strncmp(r.out.p, "hi\n", 3) == 0 || strstr(r.out.p, "\nhi\n") != NULL);
	for (const char *line = r.out.p; *line;) {
		const char *end = strchr(line, '\n');
		assert_non_null(end);
		assert_true((end - line == 2 && strncmp(line, "hi", 2) == 0) ||
			    (end - line == 1 && line[0] == 'x'));
		line = end + 1;
	}
	assert_true(r.exit_at - r.start >= SEC);
	assert_true(r.exit_at - r.start < 2 * SEC + test_tolerance_ns());
	res_free(&r);
}

static void test_idle_not_mixed(void **state)
{
	struct res r;
	tmo_run(&r, NULL, "-i", "5", "20", "sh", "-c",
		"i=0; while [ $i -lt 500 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done",
		NULL);
	assert_exit(&r, 0);
	struct buf want_out = { 0 }, want_err = { 0 };
	for (int i = 0; i < 500; i++) {
		char line[32];
		int n = snprintf(line, sizeof(line), "out%d\n", i);
		buf_add(&want_out, line, (size_t)n);
		n = snprintf(line, sizeof(line), "err%d\n", i);
		buf_add(&want_err, line, (size_t)n);
	}
	assert_string_equal(r.out.p, want_out.p);
	assert_string_equal(r.err.p, want_err.p);
	free(want_out.p);
	free(want_err.p);
	res_free(&r);
}

enum { BIG = 20 << 20 };

static uint8_t *make_random_file(const char *path, uint64_t seed)
{
	uint8_t *data = malloc(BIG);
	assert_non_null(data);
	uint64_t x = seed;
	for (size_t i = 0; i < BIG; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(data + i, &x, 8);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	test_write_all(fd, data, BIG);
	close(fd);
	return data;
}

static void assert_same_bytes(const struct buf *got, const uint8_t *want, const char *name)
{
	if (got->len != BIG)
		fail_msg("%s: %zu bytes, expected %d", name, got->len, BIG);
	if (memcmp(got->p, want, BIG)) {
		size_t i = 0;
		while (got->p[i] == (char)want[i])
			i++;
		fail_msg("%s: first difference at byte %zu", name, i);
	}
}

static void test_idle_big_binary_passthrough(void **state)
{
	char f1[128], f2[128];
	snprintf(f1, sizeof(f1), "%s/out.bin", g_dir);
	snprintf(f2, sizeof(f2), "%s/err.bin", g_dir);
	uint8_t *d1 = make_random_file(f1, 0x9e3779b97f4a7c15u);
	uint8_t *d2 = make_random_file(f2, 0xd1b54a32d192ed03u);
	char size[32];
	snprintf(size, sizeof(size), "%d", BIG);
	struct res r;
	tmo_run(&r, NULL, "-i", "5", "30", "sh", "-c",
		"head -c \"$1\" \"$2\" & head -c \"$1\" \"$3\" >&2; wait", "sh", size, f1, f2,
		NULL);
	assert_exit(&r, 0);
	assert_same_bytes(&r.out, d1, "stdout");
	assert_same_bytes(&r.err, d2, "stderr");
	res_free(&r);
	free(d1);
	free(d2);
	unlink(f1);
	unlink(f2);
}

static void test_idle_reader_gone(void **state)
{
	/* Nobody reads tmo's stdout: the command finds out (SIGPIPE) as it would without tmo,
	 * and tmo ends as the command did, as GNU timeout does. */
	struct opts o = { .close_stdout = true };
	struct res r;
	tmo_run(&r, &o, "-i", "5", "10", "yes", NULL);
	assert_int_equal(killed_by(r.ws), SIGPIPE);
	if (have_gnu()) {
		struct res g;
		gnu_run(&g, &o, "10", "yes", NULL);
		assert_same_status(r.ws, g.ws);
		res_free(&g);
	}
	res_free(&r);
	/* Its stderr still comes through. */
	tmo_run(&r, &o, "-i", "5", "10", "sh", "-c",
		"trap '' PIPE; echo a; echo a; sleep 0.1; echo b || echo failed >&2", NULL);
	assert_exit(&r, 0);
	assert_contains(&r.err, "failed\n");
	res_free(&r);
}

/* ---- main -------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/tmo-cli-run-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	char path[128];
	snprintf(path, sizeof(path), "%s/not-executable", g_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	snprintf(g_timeout, sizeof(g_timeout), "%s/timeout", g_dir);
	if (symlink(TMO, g_timeout) < 0)
		return -1;
	/* Start-up cost of `tmo run`, for the "not too late" bounds. */
	for (int i = 0; i < 3; i++) {
		struct res r;
		tmo_run(&r, NULL, "0", "true", NULL);
		if (exit_code(r.ws) != 0)
			return -1;
		if (r.exit_at - r.start > g_startup)
			g_startup = r.exit_at - r.start;
		res_free(&r);
	}
	return 0;
}

static int group_teardown(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/not-executable", g_dir);
	unlink(path);
	unlink(g_timeout);
	rmdir(g_dir);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_signal),
		cmocka_unit_test(test_status_passthrough),
		cmocka_unit_test(test_timeout_124),
		cmocka_unit_test(test_zero_and_huge_disable),
		cmocka_unit_test(test_bad_durations),
		cmocka_unit_test(test_bad_signals_and_usage),
		cmocka_unit_test(test_bad_commands),
		cmocka_unit_test(test_kill_after),
		cmocka_unit_test(test_preserve_status),
		cmocka_unit_test(test_verbose),
		cmocka_unit_test(test_command_signal_reraised),
		cmocka_unit_test(test_signals_forwarded),
		cmocka_unit_test(test_help_version),
		cmocka_unit_test(test_named_timeout),
		cmocka_unit_test(test_named_timeout_path),
		cmocka_unit_test(test_write_error),
		cmocka_unit_test(test_locale_decimal_point),
		cmocka_unit_test(test_inherited_signal_mask),
		cmocka_unit_test(test_ttin_ttou_ignored),
		cmocka_unit_test(test_idle_output_keeps_alive),
		cmocka_unit_test(test_idle_silence_times_out),
		cmocka_unit_test(test_idle_output_after_signal),
		cmocka_unit_test(test_idle_grandchild_keeps_pipe),
		cmocka_unit_test(test_idle_not_mixed),
		cmocka_unit_test(test_idle_big_binary_passthrough),
		cmocka_unit_test(test_idle_reader_gone),
	};
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	if (argc > 2)
		cmocka_set_skip_filter(argv[2]);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
