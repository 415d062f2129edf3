/*
 * tmo demo, the ops family: blocking-inline (a callback blocks the loop thread while a
 * deadline-bound read waits) and cooperative (a sleep op under a shorter deadline).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "demo.h"

struct inline_run {
	struct tmo_loop *loop;
	struct tmo_op read_op, block_op;
	char buf[16];
	int64_t t0, block_ns, deadline;
	int32_t read_res;
	int64_t read_seen;
	bool read_done, block_done;
	int64_t block_in, block_out;
	int stalls;
	struct tmo_stall stall;
	/* the writer thread */
	int wfd;
	int64_t write_at, wrote_at;
	ssize_t wrote;
};

static void inline_stall(struct tmo_loop *loop, const struct tmo_stall *stall, void *data)
{
	struct inline_run *b = data;
	if (b->stalls++ == 0)
		b->stall = *stall;
}

static void inline_read_cb(struct tmo_op *op, int32_t res)
{
	struct inline_run *b = op->data;
	b->read_res = res;
	b->read_seen = tmo_now();
	b->read_done = true;
}

/* time.sleep(5) inside a coroutine: the loop thread blocks in a callback. */
static void inline_block_cb(struct tmo_op *op, int32_t res)
{
	struct inline_run *b = op->data;
	b->block_in = tmo_now();
	struct timespec ts = timespec_of(b->block_ns), rem;
	while (nanosleep(&ts, &rem) < 0 && errno == EINTR)
		ts = rem;
	b->block_out = tmo_now();
	b->block_done = true;
}

static void *inline_writer(void *arg)
{
	struct inline_run *b = arg;
	static const char late[] = "late";
	block_until(b->write_at);
	b->wrote = write(b->wfd, late, sizeof(late) - 1);
	b->wrote_at = tmo_now();
	return NULL;
}

/* What happened, from the measurements: `left`, the bytes still in the pipe after the stall. */
static void inline_report(struct demo *d, struct report *r, const struct inline_run *b, int left)
{
	bool stall_seen = b->stalls == 1;
	bool cancelled_on_time = b->read_res == -ETIME && b->wrote > 0 && left == b->wrote &&
				 b->wrote_at >= b->deadline && b->wrote_at < b->block_out;
	r->outcome = b->block_done ? "ok" : "error";
	r->elapsed_ns = b->block_out - b->t0;
	char rb[64];
	happened(r, "the call finished after %.0f ms; stall of %.0f ms reported; the read's "
		    "timeout seen at %.0f ms, but the %zd bytes written at %.0f ms are still in the "
		    "pipe: the kernel cancelled the read at %.0f ms",
		 ms(r->elapsed_ns), stall_seen ? ms(b->stall.duration_ns) : 0.0,
		 ms(b->read_seen - b->t0), b->wrote, ms(b->wrote_at - b->t0),
		 ms(b->deadline - b->t0));
	key(r, "stall_ms", "%.1f", stall_seen ? ms(b->stall.duration_ns) : 0.0);
	key(r, "deadline_ms", "%.1f", ms(b->deadline - b->t0));
	key(r, "read_result", "\"%s\"", res_name(b->read_res, rb));
	key(r, "read_seen_ms", "%.1f", ms(b->read_seen - b->t0));
	key(r, "written_at_ms", "%.1f", ms(b->wrote_at - b->t0));
	key(r, "bytes_left_in_pipe", "%d", left);
	key(r, "stall_deadlines_due", "%u", stall_seen ? b->stall.deadlines_due : 0);
	key(r, "stall_kernel_timed_out", "%u", stall_seen ? b->stall.kernel_timed_out : 0);
	key(r, "kernel_enforced", "%s", stall_seen && b->stall.kernel_enforced ? "true" : "false");
	key(r, "kernel_cancelled_on_time", "%s", cancelled_on_time ? "true" : "false");

	check(r, b->block_done, "the blocking call never ran");
	on_time(r, "the blocking call's end", r->elapsed_ns, U(d, 5));
	check(r, b->read_done && b->read_res == -ETIME, "the read ended with %s, not a timeout",
	      res_name(b->read_res, rb));
	check(r, b->read_seen >= b->block_out, "the loop saw the read's timeout during the stall?");
	check(r, stall_seen, "%d stalls reported, expected 1", b->stalls);
	if (stall_seen) {
		check(r, b->stall.duration_ns >= U(d, 5), "stall of %.1f ms, shorter than the call",
		      ms(b->stall.duration_ns));
		check(r, b->stall.source == TMO_STALL_OP, "stall source %d", (int)b->stall.source);
		check(r, b->stall.kernel_timed_out >= 1 && b->stall.kernel_enforced,
		      "the stall report does not show the kernel's timeout (%u, enforced %d)",
		      b->stall.kernel_timed_out, (int)b->stall.kernel_enforced);
	}
	check(r, b->wrote == 4 && b->wrote_at >= b->write_at, "the writer wrote %zd bytes",
	      b->wrote);
	check(r, cancelled_on_time, "the kernel did not cancel the read on time (%d bytes left)",
	      left);
}

void sc_blocking_inline(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct inline_run b = { .loop = &loop, .block_ns = U(d, 5) };
	int p[2] = { -1, -1 };
	pthread_t writer;
	bool writer_started = false;

	if (!loop_open(r, &loop))
		return;
	if (pipe2(p, O_CLOEXEC) < 0) {
		setup_failed(r, "pipe", errno);
		goto out;
	}
	int ret = tmo_loop_watch_stalls(&loop, U(d, 0.5), inline_stall, &b);
	if (ret < 0) {
		setup_failed(r, "tmo_loop_watch_stalls", ret);
		goto out;
	}
	b.t0 = tmo_now();
	b.deadline = b.t0 + U(d, 1);
	b.wfd = p[1];
	b.write_at = b.t0 + U(d, 1.5);
	b.read_op.data = &b;
	b.block_op.data = &b;
	tmo_prep_read(&b.read_op, p[0], b.buf, sizeof(b.buf), (uint64_t)-1);
	ret = tmo_op_start(&loop, &b.read_op, tmo_at(b.deadline), inline_read_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start (read)", ret);
		goto out;
	}
	tmo_prep_nop(&b.block_op);
	ret = tmo_op_start(&loop, &b.block_op, TMO_NEVER, inline_block_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start (nop)", ret);
		tmo_op_cancel(&b.read_op);
		drain(r, &loop, tmo_now() + U(d, 5));
		goto out;
	}
	ret = pthread_create(&writer, NULL, inline_writer, &b);
	if (ret != 0) {
		setup_failed(r, "pthread_create", ret);
	} else {
		writer_started = true;
	}
	drain(r, &loop, b.t0 + U(d, 15));
	if (writer_started)
		pthread_join(writer, NULL);

	int left = -1;
	if (ioctl(p[0], FIONREAD, &left) < 0)
		left = -1;
	inline_report(d, r, &b, left);
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	loop_close(r, &loop);
}

/* ---- cooperative -------------------------------------------------------------------------- */

void sc_cooperative(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct one_op o = { .loop = &loop, .op.data = &o };

	if (!loop_open(r, &loop))
		return;
	int64_t t0 = tmo_now();
	tmo_prep_sleep(&o.op, tmo_at(t0 + U(d, 3)));
	int ret = tmo_op_start(&loop, &o.op, tmo_at(t0 + U(d, 1)), one_op_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start", ret);
		goto out;
	}
	run_until(r, &loop, &o.done, t0 + U(d, 10), "the sleep");
	drain(r, &loop, t0 + U(d, 10));
	char rb[64];
	r->outcome = outcome_of(o.res);
	r->elapsed_ns = o.at - t0;
	happened(r, "the sleep ended with %s at %.0f ms (cause: %s)", res_name(o.res, rb),
		 ms(r->elapsed_ns), tmo_op_cause(&o.op) == TMO_CAUSE_OWN ? "its deadline" : "other");
	key(r, "deadline_ms", "%.1f", ms(U(d, 1)));
	check(r, o.done && o.res == -ETIME, "the sleep ended with %s", res_name(o.res, rb));
	check(r, tmo_op_cause(&o.op) == TMO_CAUSE_OWN, "cause %d", (int)tmo_op_cause(&o.op));
	on_time(r, "the timeout", r->elapsed_ns, U(d, 1));
out:
	loop_close(r, &loop);
}
