/*
 * tmo run, the loop's side: every op tmo keeps on its io_uring loop while the command runs.
 *   - the command's exit: a poll op on its pidfd;
 *   - signals sent to tmo: a poll op on the signalfd (sig_cb; run_signals.c sends them on);
 *   - the timer: one sleep op, the "alarm", woken at the earliest of the limits that apply (the
 *     overall limit, the idle limit, the kill-after limit, the drain limits). It is kept
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
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "cli.h"
#include "run.h"

static void sig_cb(struct tmo_op *op, int32_t res);

/* ---- small helpers ------------------------------------------------------------------------ */

void fail(struct run *r, const char *what, int err)
{
	if (!r->error) {
		msg("%s: %s", what, strerror(err < 0 ? -err : err));
		r->error = err ? err : -EIO;
	}
	r->done = true;
}

void start_op(struct run *r, struct tmo_op *op, tmo_op_cb cb, const char *what)
{
	int ret = tmo_op_start(&r->loop, op, TMO_NEVER, cb);
	if (ret)
		fail(r, what, ret);
}

void watch(struct run *r, struct tmo_op *op, int fd, tmo_op_cb cb, const char *what)
{
	tmo_prep_poll(op, fd, POLLIN);
	op->data = r;
	start_op(r, op, cb, what);
}

bool watch_ok(struct run *r, int32_t res, const char *what)
{
	if (r->done)
		return false;
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		fail(r, what, res);
		return false;
	}
	return true;
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

void alarm_update(struct run *r)
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
	if (!watch_ok(r, res, "waiting for the command"))
		return;
	int status;
	pid_t w = waitpid(r->pid, &status, WNOHANG);
	if (w == 0) {
		watch(r, &r->pid_op, r->pidfd, pid_cb, "waiting for the command");
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

void finish(struct run *r)
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

/* Runs the loop until the command is reaped and its output forwarded. */
void serve(struct run *r)
{
	r->last_activity = tmo_now();
	r->limit_at = r->duration ? add_sat(r->last_activity, r->duration) : TMO_NEVER_NS;
	r->limits_armed = r->duration || r->idle;
	r->kill_at = TMO_NEVER_NS;

	watch(r, &r->pid_op, r->pidfd, pid_cb, "waiting for the command");
	watch(r, &r->sig_op, r->sigfd, sig_cb, "waiting for signals");
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

/* The signalfd has signals that tmo run catches (run_signals.c): each goes on. */
static void sig_cb(struct tmo_op *op, int32_t res)
{
	struct run *r = op->data;
	if (!watch_ok(r, res, "waiting for signals"))
		return;
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
		alarm_update(r);
		if (r->done)
			return;
	}
	watch(r, &r->sig_op, r->sigfd, sig_cb, "waiting for signals");
}
