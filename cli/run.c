/*
 * tmo run: GNU timeout (coreutils 9.1) on the tmo engine, plus an idle-output limit.
 *
 * GNU timeout keeps one timer (SIGALRM) and one handler, cleanup(), for the signals it catches
 * (INT, QUIT, HUP, TERM, ALRM and the -s signal). This file keeps the same model, driven by one
 * io_uring loop instead of signal handlers:
 *   - the command's exit: a poll op on its pidfd;
 *   - signals sent to tmo: blocked, and read from a signalfd watched by a poll op;
 *   - the timer: one sleep op, the "alarm", woken at the earliest of the limits that apply (the
 *     overall limit, the idle limit, the kill-after limit, the drain limits below). It is kept
 *     lazily: a limit that moves later (a new chunk of output) changes nothing until the alarm
 *     wakes, which then re-arms it for the new time; only an earlier time cancels it;
 *   - with -i, the command's stdout and stderr come through pipes: one read op per pipe, and
 *     each chunk is written out whole by write ops before the next read on that pipe, so each
 *     stream stays in order and the command is held back by tmo's own readers (backpressure).
 *     The idle clock runs only while nothing is waiting to be written out: output the command
 *     cannot get rid of because tmo's reader is slow is not silence.
 * After the command has exited, tmo forwards what is left in the pipes until EOF, until they
 * have been quiet for DRAIN_QUIET_NS (a grandchild may keep them open), or at most DRAIN_CAP_NS
 * (a grandchild that keeps writing, a reader that stopped reading), then exits as GNU timeout
 * does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "cli.h"

/* The name in every message: "tmo run", or argv[0] when invoked as `timeout` (cli_run). */
static const char *prog = "tmo run";

enum { BUF_SIZE = 64 * 1024 };

/* After the command exited: stop forwarding once the pipes were quiet this long... */
#define DRAIN_QUIET_NS (100 * TMO_NSEC_PER_MSEC)
/* ... and in any case this long after it exited: a background child that keeps writing, or a
 * reader of tmo's output that stopped reading, must not keep tmo alive (GNU timeout exits when
 * the command does). */
#define DRAIN_CAP_NS (1 * TMO_NSEC_PER_SEC)
/* With -i, a KILL for the process group waits (for output still in the pipes) at most this. */
#define KILL_DRAIN_CAP_NS (500 * TMO_NSEC_PER_MSEC)

struct run;

struct stream {
	struct run *run;
	struct tmo_op rop;    /* reads from the command's pipe */
	struct tmo_op wop;    /* writes to tmo's own fd (or polls it for room) */
	int in;               /* read end of the pipe, -1 once closed */
	int out;              /* 1 or 2 */
	bool eof;             /* nothing more will be read */
	bool reading;
	bool writing;         /* a chunk is being written out */
	bool waiting_turn;    /* stdout and stderr are one file: waits for the other's write */
	bool broken;          /* writing failed (not EPIPE): what comes is read and dropped */
	uint8_t *buf;
	size_t len, off;
};

struct run {
	struct tmo_loop loop;
	bool loop_ready;

	/* Options. */
	const char *command;
	int term_signal;
	int64_t duration, kill_after, idle;
	bool foreground, preserve_status, verbose;

	/* The command. */
	pid_t pid;
	int pidfd, sigfd;
	bool reaped;
	int64_t reaped_at;
	int wstatus;

	/* GNU timeout's state. */
	bool timed_out;
	bool idle_fired;      /* the limit that just fired is the idle one (for -v) */
	bool limits_armed;    /* the overall and idle limits (GNU's first timer) */
	int64_t limit_at;     /* the overall limit, TMO_NEVER_NS if none */
	int64_t kill_at;      /* the kill-after limit, TMO_NEVER_NS until armed */
	sigset_t caught;      /* the signals tmo forwards */
	sigset_t ignored;     /* ... of which those it ignores since it sent them to its group */
	bool group_kill_pending; /* with -i: KILL the group once the output is forwarded */
	int64_t group_kill_cap;

	/* Output (-i). */
	int nstreams;
	struct stream st[2];
	bool shared_out;      /* fds 1 and 2 are the same file: one write at a time */
	int64_t last_activity;

	/* The loop's ops. */
	struct tmo_op pid_op, sig_op, alarm;
	int64_t alarm_wake;
	bool alarm_cancelling;

	bool done;
	int error;            /* a failure of the engine: tmo exits 125 */
};

/* ---- messages ----------------------------------------------------------------------------- */

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n = snprintf(line, sizeof(line), "%s: ", prog);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	if (len < sizeof(line) - 1)
		line[len++] = '\n';
	else
		line[sizeof(line) - 2] = '\n', len = sizeof(line) - 1;
	/* One write: async-signal-safe (the child uses it) and not interleaved. */
	const char *p = line;
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		len -= (size_t)w;
	}
}

/* GNU's quote() in the C locale: 'text', with backslash escapes for ' \ and non-printables. */
static const char *quote(const char *text, char *buf, size_t size)
{
	size_t n = 0;
	buf[n++] = '\'';
	for (const unsigned char *p = (const unsigned char *)text; *p && n + 6 < size; p++) {
		static const char esc_from[] = "\a\b\f\n\r\t\v", esc_to[] = "abfnrtv";
		const char *e = *p ? strchr(esc_from, *p) : NULL;
		if (*p == '\'' || *p == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)*p;
		} else if (e) {
			buf[n++] = '\\';
			buf[n++] = esc_to[e - esc_from];
		} else if (*p < 0x20 || *p == 0x7f) {
			n += (size_t)snprintf(buf + n, size - n, "\\%03o", *p);
		} else {
			buf[n++] = (char)*p;
		}
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return buf;
}

static void try_help(void)
{
	fprintf(stderr, "Try '%s --help' for more information.\n", prog);
}

static void usage(void)
{
	printf("Usage: %s [OPTION] DURATION COMMAND [ARG]...\n"
	       "  or:  %s [OPTION]\n", prog, prog);
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
	       prog, prog, prog, prog);
}

static void version(void)
{
	printf("%s (tmo) " TMO_VERSION_STRING "\n"
	       "GNU timeout's options and exit statuses on tmo's io_uring engine,\n"
	       "with an idle-output limit.\n",
	       prog);
}

/* ---- small helpers ------------------------------------------------------------------------ */

static int64_t add_sat(int64_t a, int64_t b)
{
	return b >= TMO_NEVER_NS - a ? TMO_NEVER_NS : a + b;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static void fail(struct run *r, const char *what, int err)
{
	if (!r->error) {
		msg("%s: %s", what, strerror(err < 0 ? -err : err));
		r->error = err ? err : -EIO;
	}
	r->done = true;
}

static void start_op(struct run *r, struct tmo_op *op, tmo_op_cb cb, const char *what)
{
	int ret = tmo_op_start(&r->loop, op, TMO_NEVER, cb);
	if (ret)
		fail(r, what, ret);
}

static bool writes_pending(const struct run *r)
{
	for (int i = 0; i < r->nstreams; i++)
		if (r->st[i].writing)
			return true;
	return false;
}

static bool streams_finished(const struct run *r)
{
	for (int i = 0; i < r->nstreams; i++)
		if (!r->st[i].eof || r->st[i].writing)
			return false;
	return true;
}

/* ---- signals: GNU timeout's cleanup() ----------------------------------------------------- */

static void alarm_update(struct run *r);
static void finish(struct run *r);

static void kill_group_now(void)
{
	kill(0, SIGKILL); /* tmo is in the group: this is the end, as for GNU timeout */
}

/* GNU send_sig(0, sig): the process group, ignoring the signal ourselves. */
static void send_group(struct run *r, int sig)
{
	if (sig == SIGKILL && r->nstreams) {
		/* With -i the command's output would die with tmo: forward what is left first. */
		if (!r->group_kill_pending) {
			r->group_kill_pending = true;
			r->group_kill_cap = add_sat(tmo_now(), KILL_DRAIN_CAP_NS);
		}
		return;
	}
	if (sig > 0) {
		signal(sig, SIG_IGN);
		sigaddset(&r->ignored, sig);
	}
	kill(0, sig);
}

/* `sig` was caught (SIGALRM: a limit passed). */
/* "2s", "0.3s": a duration in seconds, in integer arithmetic, so with '.' in every locale. */
static const char *format_secs(int64_t ns, char buf[32])
{
	int n = snprintf(buf, 32, "%lld", (long long)(ns / TMO_NSEC_PER_SEC));
	int64_t frac = ns % TMO_NSEC_PER_SEC;
	if (frac) {
		n += snprintf(buf + n, (size_t)(32 - n), ".%09lld", (long long)frac);
		while (buf[n - 1] == '0')
			buf[--n] = '\0';
	}
	snprintf(buf + n, (size_t)(32 - n), "s");
	return buf;
}

/* -v: GNU's line; for the idle limit, a line that names it (CI logs tell "silent" from "slow"). */
static void say_sending(const struct run *r, int sig, bool idle)
{
	char name[16], q[512], secs[32];
	const char *sig_name = cli_signal_name(sig, name);
	quote(r->command, q, sizeof(q));
	if (idle)
		msg("no output for %s (idle limit): sending signal %s to command %s",
		    format_secs(r->idle, secs), sig_name, q);
	else
		msg("sending signal %s to command %s", sig_name, q);
}

static void on_signal(struct run *r, int sig)
{
	bool idle = r->idle_fired;
	r->idle_fired = false;
	if (sig == SIGALRM) {
		r->timed_out = true;
		sig = r->term_signal;
	}
	if (r->reaped)
		return;
	if (r->kill_after) {
		/* As GNU: the KILL timer replaces the first one, and only the first signal arms it. */
		r->term_signal = SIGKILL;
		r->kill_at = add_sat(tmo_now(), r->kill_after);
		r->limits_armed = false;
		r->kill_after = 0;
	}
	if (r->verbose)
		say_sending(r, sig, idle);
	kill(r->pid, sig);
	if (!r->foreground) {
		send_group(r, sig);
		if (sig != SIGKILL && sig != SIGCONT) {
			kill(r->pid, SIGCONT);
			send_group(r, SIGCONT);
		}
	}
	alarm_update(r);
}

static void sig_cb(struct tmo_op *op, int32_t res)
{
	struct run *r = op->data;
	if (r->done)
		return;
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		fail(r, "waiting for signals", res);
		return;
	}
	struct signalfd_siginfo si;
	while (read(r->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sigismember(&r->ignored, sig))
			continue;
		if (r->reaped) {
			/* GNU timeout would be gone by now: stop forwarding the leftovers. */
			finish(r);
			return;
		}
		on_signal(r, sig);
		if (r->done)
			return;
	}
	tmo_prep_poll(&r->sig_op, r->sigfd, POLLIN);
	r->sig_op.data = r;
	start_op(r, &r->sig_op, sig_cb, "waiting for signals");
}

/* ---- the alarm: every limit ---------------------------------------------------------------- */

static int64_t idle_due(const struct run *r)
{
	return r->idle && !writes_pending(r) ? add_sat(r->last_activity, r->idle) : TMO_NEVER_NS;
}

static int64_t drain_due(const struct run *r)
{
	int64_t quiet = writes_pending(r) ? TMO_NEVER_NS : add_sat(r->last_activity, DRAIN_QUIET_NS);
	return min64(quiet, add_sat(r->reaped_at, DRAIN_CAP_NS));
}

static int64_t alarm_due(const struct run *r)
{
	int64_t due = r->group_kill_pending ? r->group_kill_cap : TMO_NEVER_NS;
	if (r->reaped)
		return min64(due, streams_finished(r) ? TMO_NEVER_NS : drain_due(r));
	due = min64(due, r->kill_at);
	if (r->limits_armed)
		due = min64(due, min64(r->limit_at, idle_due(r)));
	return due;
}

static void alarm_cb(struct tmo_op *op, int32_t res);

static void alarm_update(struct run *r)
{
	if (r->done)
		return;
	int64_t due = alarm_due(r);
	if (tmo_op_busy(&r->alarm)) {
		if (due < r->alarm_wake && !r->alarm_cancelling && tmo_op_cancel(&r->alarm) == 0)
			r->alarm_cancelling = true;
		return;
	}
	if (due == TMO_NEVER_NS)
		return;
	tmo_prep_sleep(&r->alarm, tmo_at(due));
	r->alarm.data = r;
	r->alarm_wake = due;
	r->alarm_cancelling = false;
	start_op(r, &r->alarm, alarm_cb, "arming the timer");
}

static void alarm_cb(struct tmo_op *op, int32_t res)
{
	struct run *r = op->data;
	r->alarm_cancelling = false;
	if (r->done)
		return;
	if (res < 0 && res != -ECANCELED && res != -ETIME) {
		fail(r, "timer", res);
		return;
	}
	int64_t now = tmo_now();
	if (r->group_kill_pending && now >= r->group_kill_cap) {
		if (!r->reaped)
			kill_group_now();
		finish(r); /* the output we could not forward in time is dropped: KILL anyway */
		return;
	}
	if (r->reaped) {
		if (!streams_finished(r) && now >= drain_due(r))
			finish(r);
	} else if (now >= r->kill_at) {
		r->kill_at = TMO_NEVER_NS;
		on_signal(r, SIGALRM);
	} else if (r->limits_armed && (now >= r->limit_at || now >= idle_due(r))) {
		/* The one due first fired; on a tie, the overall limit (GNU's). */
		r->idle_fired = idle_due(r) < r->limit_at;
		r->limits_armed = false; /* one shot, as GNU's timer */
		on_signal(r, SIGALRM);
	}
	alarm_update(r);
}

/* ---- the command's exit ------------------------------------------------------------------- */

static void check_finish(struct run *r)
{
	if (r->done || !r->reaped)
		return;
	if (streams_finished(r))
		finish(r);
	else
		alarm_update(r);
}

static void pid_cb(struct tmo_op *op, int32_t res)
{
	struct run *r = op->data;
	if (r->done)
		return;
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		fail(r, "waiting for the command", res);
		return;
	}
	int status;
	pid_t w = waitpid(r->pid, &status, WNOHANG);
	if (w == 0) {
		tmo_prep_poll(&r->pid_op, r->pidfd, POLLIN);
		r->pid_op.data = r;
		start_op(r, &r->pid_op, pid_cb, "waiting for the command");
		return;
	}
	r->reaped = true;
	if (w < 0) {
		msg("error waiting for child: %s", strerror(errno));
		r->wstatus = -1;
	} else {
		r->wstatus = status;
	}
	r->last_activity = r->reaped_at = tmo_now(); /* the drain's quiet period starts now */
	check_finish(r);
}

/* ---- output (-i) -------------------------------------------------------------------------- */

static void read_start(struct stream *s);
static void write_start(struct stream *s);

static void close_in(struct stream *s)
{
	if (s->in >= 0)
		close(s->in);
	s->in = -1;
	s->eof = true;
}

/* A chunk is out (or dropped): read the next one, let the other stream write. */
static void chunk_done(struct stream *s)
{
	struct run *r = s->run;
	s->writing = false;
	r->last_activity = tmo_now();
	if (r->shared_out) {
		struct stream *other = &r->st[s == &r->st[0] ? 1 : 0];
		if (other->waiting_turn) {
			other->waiting_turn = false;
			write_start(other);
		}
	}
	if (!s->eof && !r->done)
		read_start(s);
	check_finish(r);
	alarm_update(r);
}

static void write_cb(struct tmo_op *op, int32_t res);

static void poll_out_cb(struct tmo_op *op, int32_t res)
{
	struct stream *s = op->data;
	if (s->run->done) {
		s->writing = false;
		return;
	}
	write_start(s); /* the write tells what the poll found (room, EPIPE, ...) */
}

static void write_start(struct stream *s)
{
	struct run *r = s->run;
	if (r->done) {
		s->writing = false;
		return;
	}
	if (r->shared_out) {
		struct stream *other = &r->st[s == &r->st[0] ? 1 : 0];
		if (other->writing && !other->waiting_turn) {
			s->waiting_turn = true;
			return;
		}
	}
	tmo_prep_write(&s->wop, s->out, s->buf + s->off, (uint32_t)(s->len - s->off), (uint64_t)-1);
	s->wop.data = s;
	start_op(r, &s->wop, write_cb, "writing");
}

static void write_cb(struct tmo_op *op, int32_t res)
{
	struct stream *s = op->data;
	struct run *r = s->run;
	if (r->done) {
		s->writing = false;
		return;
	}
	if (res == -EINTR) {
		write_start(s);
		return;
	}
	if (res == -EAGAIN) {
		/* tmo's stdout or stderr is non-blocking: wait for room. */
		tmo_prep_poll(&s->wop, s->out, POLLOUT);
		s->wop.data = s;
		start_op(r, &s->wop, poll_out_cb, "waiting to write");
		return;
	}
	if (res > 0) {
		s->off += (size_t)res;
		if (s->off < s->len) {
			write_start(s);
			return;
		}
	} else if (res == -EPIPE) {
		/* Nobody reads tmo's output any more: close the pipe, so that the command finds
		 * that out on its next write (EPIPE, SIGPIPE), as it would without tmo. */
		close_in(s);
	} else {
		msg("write error: %s", strerror(res ? -res : EIO));
		s->broken = true;
	}
	chunk_done(s);
}

static void read_cb(struct tmo_op *op, int32_t res)
{
	struct stream *s = op->data;
	struct run *r = s->run;
	s->reading = false;
	if (r->done)
		return;
	if (res == -EINTR || res == -EAGAIN) {
		read_start(s);
		return;
	}
	if (res <= 0) {
		if (res < 0)
			msg("reading the command's output: %s", strerror(-res));
		close_in(s);
		check_finish(r);
		alarm_update(r);
		return;
	}
	r->last_activity = tmo_now();
	s->len = (size_t)res;
	s->off = 0;
	s->writing = true;
	if (s->broken) {
		chunk_done(s);
		return;
	}
	write_start(s);
}

static void read_start(struct stream *s)
{
	struct run *r = s->run;
	if (r->done || s->in < 0)
		return;
	tmo_prep_read(&s->rop, s->in, s->buf, BUF_SIZE, (uint64_t)-1);
	s->rop.data = s;
	s->reading = true;
	int ret = tmo_op_start(&r->loop, &s->rop, TMO_NEVER, read_cb);
	if (ret) {
		s->reading = false;
		fail(r, "reading the command's output", ret);
	}
}

/* ---- the end ------------------------------------------------------------------------------ */

static void cancel(struct tmo_op *op)
{
	if (tmo_op_busy(op))
		tmo_op_cancel(op);
}

static void finish(struct run *r)
{
	r->done = true;
	cancel(&r->alarm);
	cancel(&r->sig_op);
	cancel(&r->pid_op);
	for (int i = 0; i < r->nstreams; i++) {
		cancel(&r->st[i].rop);
		cancel(&r->st[i].wop);
	}
}

/* ---- the child ---------------------------------------------------------------------------- */

static void child(struct run *r, char **cmd, const sigset_t *orig_mask, bool stdin_closed,
		  const int pipe_w[2])
{
	if (r->nstreams) {
		if (dup2(pipe_w[0], STDOUT_FILENO) < 0 || dup2(pipe_w[1], STDERR_FILENO) < 0)
			_exit(EXIT_TMO_FAILED);
	}
	if (stdin_closed)
		close(STDIN_FILENO);
	signal(SIGTTIN, SIG_DFL);
	signal(SIGTTOU, SIG_DFL);
	if (sigprocmask(SIG_SETMASK, orig_mask, NULL) != 0) {
		msg("child failed to reset signal mask: %s", strerror(errno));
		_exit(EXIT_TMO_FAILED);
	}
	execvp(cmd[0], cmd);
	int err = errno;
	char q[512];
	msg("failed to run command %s: %s", quote(r->command, q, sizeof(q)), strerror(err));
	_exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN);
}

/* ---- main --------------------------------------------------------------------------------- */

/* Catches `sig` as GNU timeout does (see catch_signals). */
static void catch_signal(struct run *r, int sig, const sigset_t *inherited)
{
	signal(sig, SIG_DFL);
	if (sig == SIGALRM || !sigismember(inherited, sig))
		sigaddset(&r->caught, sig);
}

/*
 * The signals, as GNU timeout 9.1 sets them up. It catches INT, QUIT, HUP, TERM, ALRM and the
 * -s signal; tmo blocks them and reads them from a signalfd instead. Their disposition is set
 * to the default so that none is discarded, and so that the command gets them at their
 * default, as after GNU's handlers and exec. As with GNU:
 *   - a signal the parent blocked stays blocked, so it is not forwarded (GNU waits in
 *     sigsuspend with the mask it inherited), except ALRM, which GNU unblocks for its timer;
 *   - TTIN and TTOU are ignored, even as the -s signal (GNU's SIG_IGN replaces its handler
 *     for them): tmo must not stop when a background child uses the tty;
 *   - the command inherits the parent's mask without CHLD: GNU unblocks CHLD before the fork,
 *     and ALRM after it, in itself only.
 * Stores the command's signal mask in *child_mask.
 */
static void catch_signals(struct run *r, sigset_t *child_mask)
{
	static const int handled[] = { SIGALRM, SIGINT, SIGQUIT, SIGHUP, SIGTERM };
	sigset_t inherited;
	sigprocmask(SIG_BLOCK, NULL, &inherited);
	sigemptyset(&r->caught);
	sigemptyset(&r->ignored);
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		catch_signal(r, handled[i], &inherited);
	int t = r->term_signal;
	if (t > 0 && t != SIGKILL && t != SIGSTOP && t != SIGCHLD && t != SIGTTIN &&
	    t != SIGTTOU && !(r->nstreams && t == SIGPIPE))
		catch_signal(r, t, &inherited);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	signal(SIGCHLD, SIG_DFL); /* not SIG_IGN, which would reap the command for us */
	sigprocmask(SIG_BLOCK, &r->caught, NULL);
	*child_mask = inherited;
	sigdelset(child_mask, SIGCHLD);
}

static int bad_duration(const char *text)
{
	char q[512];
	msg("invalid time interval %s", quote(text, q, sizeof(q)));
	try_help();
	return EXIT_TMO_FAILED;
}

/* Runs the loop until the command is reaped and its output forwarded. */
static void serve(struct run *r)
{
	r->last_activity = tmo_now();
	r->limit_at = r->duration ? add_sat(r->last_activity, r->duration) : TMO_NEVER_NS;
	r->limits_armed = r->duration || r->idle;
	r->kill_at = TMO_NEVER_NS;

	tmo_prep_poll(&r->pid_op, r->pidfd, POLLIN);
	r->pid_op.data = r;
	start_op(r, &r->pid_op, pid_cb, "waiting for the command");
	tmo_prep_poll(&r->sig_op, r->sigfd, POLLIN);
	r->sig_op.data = r;
	start_op(r, &r->sig_op, sig_cb, "waiting for signals");
	for (int i = 0; i < r->nstreams; i++)
		read_start(&r->st[i]);
	alarm_update(r);

	while (!r->done) {
		int ret = tmo_loop_run(&r->loop, TMO_RUN_ONCE);
		if (ret < 0)
			fail(r, "running the loop", ret);
		else if (ret == 0 && !r->done)
			fail(r, "the loop ran out of work", -EIO);
	}
	finish(r);
	while (tmo_loop_active(&r->loop) > 0)
		if (tmo_loop_run(&r->loop, TMO_RUN_ONCE) < 0)
			break;
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
	static struct run run; /* one per process; its address is in the ops */
	struct run *r = &run;
	prog = name;
	/* As GNU timeout: DURATION may use the locale's decimal separator (cli_parse_duration).
	 * Only the numbers follow the locale: tmo's messages are in English, system errors
	 * (strerror) included, rather than half translated. */
	setlocale(LC_NUMERIC, "");
	memset(r, 0, sizeof(*r));
	r->term_signal = SIGTERM;
	r->pidfd = r->sigfd = -1;

	/* getopt's own messages name argv[0]. */
	char *argv0 = argv[0];
	argv[0] = (char *)prog;
	int c;
	while ((c = getopt_long(argc, argv, "+i:k:s:v", long_options, NULL)) != -1) {
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
			return cli_close_stdout(prog) ? 0 : EXIT_TMO_FAILED;
		case 'V':
			version();
			return cli_close_stdout(prog) ? 0 : EXIT_TMO_FAILED;
		default:
			try_help();
			return EXIT_TMO_FAILED;
		}
	}
	argv[0] = argv0;
	if (argc - optind < 2) {
		try_help();
		return EXIT_TMO_FAILED;
	}
	if (!cli_parse_duration(argv[optind], &r->duration))
		return bad_duration(argv[optind]);
	char **cmd = argv + optind + 1;
	r->command = cmd[0];
	r->nstreams = r->idle ? 2 : 0;

	/* Our own process group, so that the signal reaches the command's children too. */
	if (!r->foreground)
		setpgid(0, 0);

	sigset_t orig_mask; /* the command's */
	catch_signals(r, &orig_mask);

	int status = EXIT_TMO_FAILED;
	int pipe_r[2] = { -1, -1 }, pipe_w[2] = { -1, -1 };
	bool stdin_closed = false;
	int placeholders[3] = { -1, -1, -1 };

	if (r->nstreams) {
		/* Keep fds 0-2 taken, so that no pipe lands there. */
		for (int fd = 0; fd < 3; fd++) {
			if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
				placeholders[fd] = open("/dev/null", O_RDWR | O_CLOEXEC);
				if (fd == STDIN_FILENO)
					stdin_closed = true;
			}
		}
	}
	r->sigfd = signalfd(-1, &r->caught, SFD_NONBLOCK | SFD_CLOEXEC);
	if (r->sigfd < 0) {
		msg("signalfd: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < r->nstreams; i++) {
		int fds[2];
		if (pipe2(fds, O_CLOEXEC) < 0) {
			msg("pipe: %s", strerror(errno));
			goto out;
		}
		pipe_r[i] = fds[0];
		pipe_w[i] = fds[1];
		struct stream *s = &r->st[i];
		s->run = r;
		s->in = fds[0];
		s->out = i == 0 ? STDOUT_FILENO : STDERR_FILENO;
		s->buf = malloc(BUF_SIZE);
		if (!s->buf) {
			msg("out of memory");
			goto out;
		}
	}
	if (r->nstreams) {
		struct stat a, b;
		r->shared_out = fstat(STDOUT_FILENO, &a) == 0 && fstat(STDERR_FILENO, &b) == 0 &&
				a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	}
	int ret = tmo_loop_init(&r->loop, NULL);
	if (ret) {
		char why[256];
		tmo_loop_describe_error(ret, why, sizeof(why));
		msg("cannot start the io_uring loop: %s", why);
		goto out;
	}
	r->loop_ready = true;

	r->pid = fork();
	if (r->pid < 0) {
		msg("fork system call failed: %s", strerror(errno));
		goto out;
	}
	if (r->pid == 0)
		child(r, cmd, &orig_mask, stdin_closed, pipe_w);

	for (int i = 0; i < r->nstreams; i++) {
		close(pipe_w[i]);
		pipe_w[i] = -1;
		pipe_r[i] = -1; /* owned by the stream now */
	}
	if (r->nstreams)
		signal(SIGPIPE, SIG_IGN); /* tmo's own writes get EPIPE */
	r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
	if (r->pidfd < 0) {
		msg("pidfd_open: %s", strerror(errno));
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		goto out;
	}

	serve(r);

	if (r->error && !r->reaped) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->reaped = true;
		r->wstatus = -1;
	}
	if (r->group_kill_pending)
		kill_group_now();

	/* The exit status, as GNU timeout computes it. */
	int ws = r->wstatus;
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

out:
	if (r->loop_ready) {
		int cret = tmo_loop_close(&r->loop);
		if (cret)
			msg("closing the loop: %s", strerror(-cret));
	}
	for (int i = 0; i < 2; i++) {
		if (r->st[i].in >= 0 && r->st[i].run)
			close(r->st[i].in);
		if (pipe_r[i] >= 0 && !r->st[i].run)
			close(pipe_r[i]);
		if (pipe_w[i] >= 0)
			close(pipe_w[i]);
		free(r->st[i].buf);
	}
	if (r->sigfd >= 0)
		close(r->sigfd);
	if (r->pidfd >= 0)
		close(r->pidfd);
	for (int fd = 0; fd < 3; fd++)
		if (placeholders[fd] >= 0)
			close(placeholders[fd]);
	return status;
}
