/*
 * tmo run: what its files share. Private to the command (cli/).
 *   run.c          the command: options, the exit status, cli_run;
 *   run_msg.c      messages (the program's name, GNU's quote());
 *   run_signals.c  GNU timeout's signals: which are caught, and sending them on a limit;
 *   run_spawn.c    the command's pipes and fds, the fork, the child's side;
 *   run_loop.c     the loop's side: the alarm (every limit), the command's exit, caught
 *                  signals (the signalfd), output (-i).
 * They call downwards only: run.c the three others, run_loop.c run_signals.c, all run_msg.c.
 */
#ifndef TMO_CLI_RUN_H
#define TMO_CLI_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tmo/tmo.h>

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
	char **argv;          /* its name and arguments */
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

	/* Set up before the fork (run_spawn.c), closed by run_release. */
	int pipe_w[2];        /* the pipes' write ends, the command's stdout and stderr (-i) */
	int placeholders[3];  /* /dev/null on fds 0-2 that were closed, so no pipe lands there */
	bool stdin_closed;    /* ... and the command gets its stdin closed again */

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

static inline int64_t add_sat(int64_t a, int64_t b)
{
	return b >= TMO_NEVER_NS - a ? TMO_NEVER_NS : a + b;
}

static inline int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* run_msg.c: the name in every message, "tmo run", or argv[0] when invoked as `timeout`. */
extern const char *run_prog;
/* run_msg.c: "PROG: MESSAGE" on stderr in one write (async-signal-safe: the child uses it). */
void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* GNU's quote() in the C locale: 'text', with backslash escapes for ' \ and non-printables. */
const char *quote(const char *text, char *buf, size_t size);

/* run_signals.c */
/* Sets the signals up as GNU timeout does; stores the command's signal mask in *child_mask. */
void catch_signals(struct run *r, sigset_t *child_mask);
/* `sig` was caught (SIGALRM: a limit passed): sends the signal on, as GNU's cleanup(). The
 * caller then updates the alarm (alarm_update), which the KILL timer may have moved. */
void on_signal(struct run *r, int sig);
void kill_group_now(void);

/* run_spawn.c */
/* The signalfd, the pipes (-i), the loop, then the command, forked with `child_mask`; false
 * (and said) on a failure. */
bool run_spawn(struct run *r, const sigset_t *child_mask);
/* Closes what run_spawn opened. */
void run_release(struct run *r);

/* run_loop.c */
/* Runs the loop until the command is reaped and its output forwarded. */
void serve(struct run *r);
/* A failure of the engine: said once, and tmo stops (exit status 125). */
void fail(struct run *r, const char *what, int err);
void start_op(struct run *r, struct tmo_op *op, tmo_op_cb cb, const char *what);
/* A poll for input on `fd` (the pidfd, the signalfd) whose callback gets the run as op->data. */
void watch(struct run *r, struct tmo_op *op, int fd, tmo_op_cb cb, const char *what);
/* Where a watch's callback starts: false if tmo is done, or if the poll failed (then fail()). */
bool watch_ok(struct run *r, int32_t res, const char *what);
/* Re-arms the alarm for the earliest limit that applies now. */
void alarm_update(struct run *r);
/* The end: cancels every op of the loop. */
void finish(struct run *r);

#endif
