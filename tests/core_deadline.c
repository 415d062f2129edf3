/*
 * core-deadline: deadlines fire never early (exact) and on time (generous tolerance), finish-first
 * ops are left alone, nothing is lost, the kernel enforces deadlines while the loop thread is
 * stuck (default mode), and io-wq requests the kernel cannot interrupt still time out on time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

#define MS TMO_NSEC_PER_MSEC

struct delayed_write {
	struct tmo_op op;
	int fd;
	const char *bytes;
};

static void write_now(struct tmo_op *op, int32_t res)
{
	struct delayed_write *w = (struct delayed_write *)op;

	assert_int_equal(res, 0);
	test_write_all(w->fd, w->bytes, strlen(w->bytes));
}

/* Writes `bytes` to fd from the loop at `when`, with a tmo sleep. */
static void write_at(struct tmo_loop *loop, struct delayed_write *w, int fd, const char *bytes,
		     int64_t when)
{
	w->fd = fd;
	w->bytes = bytes;
	assert_int_equal(tmo_prep_sleep(&w->op, tmo_at(when)), 0);
	assert_int_equal(tmo_op_start(loop, &w->op, TMO_NEVER, write_now), 0);
}

static void read_times_out_never_early(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	char buf[8];
	int fds[2];

	test_pipe(fds);
	for (int i = 0; i < 3; i++) {
		int64_t deadline = tmo_now() + (20 + 40 * i) * MS;
		r.calls = 0;
		tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
		assert_int_equal(tmo_op_start(loop, &r.op, tmo_at(deadline), test_record), 0);
		assert_int_equal(tmo_deadline_ns(tmo_op_deadline(&r.op)), deadline);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.res, -ETIME);
		assert_on_time(r.seen_at, deadline);
	}
	close(fds[0]);
	close(fds[1]);
}

static void op_that_finishes_first_is_undisturbed(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	struct delayed_write w = { 0 }; /* zeroed: tmo_prep_* refuses an op that looks active */
	struct tmo_loop_stats stats;
	char buf[16] = { 0 };
	int fds[2];

	test_pipe(fds);
	int64_t start = tmo_now();
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, tmo_at(start + 300 * MS), test_record), 0);
	write_at(loop, &w, fds[1], "early", start + 30 * MS);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, 5);
	assert_memory_equal(buf, "early", 5);
	assert_true(r.seen_at < start + 300 * MS);

	/* The cancelled linked timeout leaves nothing behind: a later read on the same pipe runs
	 * its full course and nothing counts as timed out. */
	test_sleep_ms(300);
	write_at(loop, &w, fds[1], "later", tmo_now() + 20 * MS);
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, tmo_in_ms(500), test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.res, 5);
	assert_int_equal(tmo_loop_get_stats(loop, &stats), 0);
	assert_int_equal(stats.timed_out, 0);
	close(fds[0]);
	close(fds[1]);
}

/* 1,000 reads on one pipe, deadlines staggered 0.1 ms apart: each times out at its own. */
static void thousand_staggered_deadlines_on_one_pipe(void **state)
{
	enum { N = 1000 };
	struct tmo_loop *loop = *state;
	struct test_result *r = calloc(N, sizeof(*r));
	int64_t *deadline = calloc(N, sizeof(*deadline));
	char buf[4];
	int fds[2];

	test_pipe(fds);
	int64_t base = tmo_now() + 50 * MS;
	for (int i = 0; i < N; i++) {
		/* Started in shuffled order, so the kernel sees deadlines out of order. */
		int k = (i * 7919) % N;
		deadline[k] = base + k * 100 * TMO_NSEC_PER_USEC;
		tmo_prep_read(&r[k].op, fds[0], buf, sizeof(buf), (uint64_t)-1);
		assert_int_equal(tmo_op_start(loop, &r[k].op, tmo_at(deadline[k]), test_record), 0);
	}
	assert_int_equal(tmo_loop_active(loop), N);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].res, -ETIME);
		assert_on_time(r[i].seen_at, deadline[i]);
	}
	free(r);
	free(deadline);
	close(fds[0]);
	close(fds[1]);
}

static void partial_recv_is_returned(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	char buf[100];
	char sent[50];
	int sv[2];

	test_socketpair(sv);
	memset(sent, 'p', sizeof(sent));
	test_write_all(sv[1], sent, sizeof(sent));
	int64_t deadline = tmo_now() + 80 * MS;
	tmo_prep_recv(&r.op, sv[0], buf, sizeof(buf), MSG_WAITALL);
	assert_int_equal(tmo_op_start(loop, &r.op, tmo_at(deadline), test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	/* The deadline cut MSG_WAITALL short: the 50 bytes are returned, not dropped. */
	assert_int_equal(r.res, 50);
	assert_memory_equal(buf, sent, sizeof(sent));
	assert_on_time(r.seen_at, deadline);
	close(sv[0]);
	close(sv[1]);
}

static void bytes_after_the_deadline_stay_for_the_next_read(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	struct delayed_write w = { 0 }; /* zeroed: tmo_prep_* refuses an op that looks active */
	char buf[16] = { 0 };
	int fds[2];

	test_pipe(fds);
	int64_t start = tmo_now();
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, tmo_at(start + 50 * MS), test_record), 0);
	write_at(loop, &w, fds[1], "kept", start + 120 * MS);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.res, -ETIME);
	assert_int_equal(test_readable(fds[0]), 4);

	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, tmo_in_ms(100), test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.res, 4);
	assert_memory_equal(buf, "kept", 4);
	close(fds[0]);
	close(fds[1]);
}

static void past_deadline_times_out_without_starting(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	char buf[16];
	int fds[2];

	test_pipe(fds);
	test_write_all(fds[1], "ready", 5);
	/* time 0 (long passed), just passed, now (also passed: "at or before tmo_now()") */
	tmo_deadline deadlines[] = { tmo_at(0), tmo_at(tmo_now() - 1), tmo_at(tmo_now()),
				     tmo_in_ns(0) };
	for (unsigned i = 0; i < sizeof(deadlines) / sizeof(deadlines[0]); i++) {
		r.calls = 0;
		tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
		assert_int_equal(tmo_op_start(loop, &r.op, deadlines[i], test_record), 0);
		assert_int_equal(r.calls, 0); /* never from inside tmo_op_start */
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.res, -ETIME);
		/* The read never started: the data it would have consumed is still there. */
		assert_int_equal(test_readable(fds[0]), 5);
	}
	close(fds[0]);
	close(fds[1]);
}

static void sleep_ends_at_the_earlier_of_wake_and_deadline(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result a = { 0 }, b = { 0 };
	int64_t now = tmo_now();

	assert_int_equal(tmo_prep_sleep(&a.op, tmo_at(now + 40 * MS)), 0);
	assert_int_equal(tmo_op_start(loop, &a.op, tmo_at(now + 200 * MS), test_record), 0);
	assert_int_equal(tmo_prep_sleep(&b.op, tmo_at(now + 200 * MS)), 0);
	assert_int_equal(tmo_op_start(loop, &b.op, tmo_at(now + 60 * MS), test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(a.res, 0);
	assert_on_time(a.seen_at, now + 40 * MS);
	assert_int_equal(b.res, -ETIME);
	assert_on_time(b.seen_at, now + 60 * MS);
}

/*
 * The zero value of tmo_deadline is TMO_NEVER: an op started with a zero-initialised deadline
 * has no deadline (before the deadline type, 0 meant "already passed" and timed it out at once).
 * A sleep, a read completed by a later write, and a read the loop keeps (TMO_OP_BLOCKING) all
 * run their full course.
 */
static void zero_deadline_is_no_deadline(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result s = { 0 }, r = { 0 }, f = { 0 };
	struct delayed_write w = { 0 }; /* zeroed: tmo_prep_* refuses an op that looks active */
	struct tmo_loop_stats stats;
	tmo_deadline d = { 0 };
	char buf[16] = { 0 }, fbuf[16] = { 0 };
	char path[] = "/tmp/tmo-test-file-XXXXXX";
	int fds[2];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	test_write_all(fd, "on disk", 7);
	test_pipe(fds);
	int64_t start = tmo_now();

	assert_int_equal(tmo_prep_sleep(&s.op, tmo_at(start + 60 * MS)), 0);
	assert_int_equal(tmo_op_start(loop, &s.op, d, test_record), 0);
	assert_true(tmo_deadline_is_never(tmo_op_deadline(&s.op)));
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, d, test_record), 0);
	assert_true(tmo_deadline_is_never(tmo_op_deadline(&r.op)));
	write_at(loop, &w, fds[1], "late", start + 40 * MS);
	tmo_prep_read(&f.op, fd, fbuf, sizeof(fbuf), 0);
	assert_int_equal(tmo_op_set_flags(&f.op, TMO_OP_BLOCKING), 0);
	assert_int_equal(tmo_op_start(loop, &f.op, d, test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);

	assert_int_equal(s.calls, 1);
	assert_int_equal(s.res, 0);
	assert_on_time(s.seen_at, start + 60 * MS);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, 4);
	assert_memory_equal(buf, "late", 4);
	assert_true(r.seen_at >= start + 40 * MS);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.res, 7);
	assert_memory_equal(fbuf, "on disk", 7);
	assert_int_equal(tmo_loop_get_stats(loop, &stats), 0);
	assert_int_equal(stats.timed_out, 0);
	close(fds[0]);
	close(fds[1]);
	close(fd);
	unlink(path);
}

/* ---- the loop thread stuck in user code ------------------------------------------------- */

struct stall {
	struct tmo_op op;
	int64_t ms;
};

static void stall_in_callback(struct tmo_op *op, int32_t res)
{
	test_sleep_ms(((struct stall *)op)->ms);
}

struct late_writer {
	int fd;
	int64_t at;
};

static void *write_later(void *arg)
{
	struct late_writer *w = arg;

	while (tmo_now() < w->at)
		test_sleep_ms(1);
	test_write_all(w->fd, "x", 1);
	return NULL;
}

/*
 * A read with a 100 ms deadline; the loop thread then blocks for 1 s in a callback; a thread
 * writes one byte at 300 ms. Returns the read's result and how many bytes are left in the pipe.
 */
static void stall_scenario(enum tmo_loop_mode mode, enum tmo_deadline_strategy deadlines,
			   int32_t *read_res, int *left_in_pipe, int64_t *seen_late_by)
{
	struct tmo_loop_options opts = { .mode = mode, .deadlines = deadlines };
	struct tmo_loop loop;
	struct test_result r = { 0 };
	struct stall s = { .ms = 1000 };
	char buf[4];
	int fds[2];
	pthread_t thread;

	assert_int_equal(tmo_loop_init(&loop, &opts), 0);
	test_pipe(fds);
	int64_t start = tmo_now();
	struct late_writer w = { .fd = fds[1], .at = start + 300 * MS };

	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(&loop, &r.op, tmo_at(start + 100 * MS), test_record), 0);
	tmo_prep_nop(&s.op);
	assert_int_equal(tmo_op_start(&loop, &s.op, TMO_NEVER, stall_in_callback), 0);
	assert_int_equal(pthread_create(&thread, NULL, write_later, &w), 0);
	assert_int_equal(tmo_loop_run(&loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);

	*read_res = r.res;
	*left_in_pipe = test_readable(fds[0]);
	*seen_late_by = r.seen_at - (start + 100 * MS);
	assert_int_equal(tmo_loop_close(&loop), 0);
	close(fds[0]);
	close(fds[1]);
}

static void kernel_cancels_on_time_while_loop_thread_is_stuck(void **state)
{
	int32_t res;
	int left;
	int64_t late;

	stall_scenario(TMO_MODE_DEFAULT, TMO_DEADLINES_KERNEL, &res, &left, &late);
	/* The loop saw the timeout only after the 1 s stall... */
	assert_int_equal(res, -ETIME);
	assert_true(late >= 800 * MS);
	/* ...but the kernel had cancelled the read at 100 ms: the byte written at 300 ms was not
	 * consumed by it. */
	assert_int_equal(left, 1);
}

static void low_latency_mode_cancels_only_when_the_loop_returns(void **state)
{
	int32_t res;
	int left;
	int64_t late;

	/* TMO_MODE_LOW_LATENCY runs no completion work while the loop thread is away, so the read
	 * is cancelled only when the loop returns at 1 s. On Linux 6.18 the expired timer's work
	 * runs before the wake-up of the byte written at 300 ms, so the read still times out and
	 * the byte stays; a kernel that ordered them the other way would deliver the byte to the
	 * read. Either way nothing may be lost. */
	stall_scenario(TMO_MODE_LOW_LATENCY, TMO_DEADLINES_KERNEL, &res, &left, &late);
	assert_true(late >= 800 * MS);
	if (res == 1) {
		assert_int_equal(left, 0);
	} else {
		/* A kernel that runs the expired timer first still must not lose the byte. */
		assert_int_equal(res, -ETIME);
		assert_int_equal(left, 1);
	}
}

static void loop_kept_deadlines_hold_only_while_the_loop_runs(void **state)
{
	int32_t res;
	int left;
	int64_t late;

	/* TMO_DEADLINES_LOOP: nobody cancels the read during the stall, so the byte written at
	 * 300 ms completes it; the loop then reports that result, not a timeout. Nothing lost. */
	stall_scenario(TMO_MODE_DEFAULT, TMO_DEADLINES_LOOP, &res, &left, &late);
	assert_int_equal(res, 1);
	assert_int_equal(left, 0);
}

/*
 * A linked timeout that fires while its op's completion is still queued can run its cancel
 * after the callback restarted the op at the same address. Provoked here in the low-latency
 * mode, whose deferred work runs in batches: 64 polls become ready 5 ms before their deadline
 * while the loop thread is away until 20 ms after it; each callback restarts its op as a poll
 * on an empty pipe with a 1 s deadline. None may end before that deadline.
 */
struct restarted_poll {
	struct tmo_op op;
	struct tmo_loop *loop;
	int idle_fd;
	int64_t second_deadline;
	int32_t second_res;
	int64_t second_seen;
};

static void second_poll_done(struct tmo_op *op, int32_t res)
{
	struct restarted_poll *p = (struct restarted_poll *)op;

	p->second_res = res;
	p->second_seen = tmo_now();
}

static void first_poll_done(struct tmo_op *op, int32_t res)
{
	struct restarted_poll *p = (struct restarted_poll *)op;

	tmo_prep_poll(op, p->idle_fd, POLLIN);
	p->second_deadline = tmo_now() + 1000 * MS;
	assert_int_equal(tmo_op_start(p->loop, op, tmo_at(p->second_deadline), second_poll_done),
			 0);
}

static void stale_linked_timeout_spares_the_restarted_op(void **state)
{
	enum { N = 64 };
	struct tmo_loop_options opts = { .mode = TMO_MODE_LOW_LATENCY };
	struct tmo_loop loop;
	struct restarted_poll *polls = calloc(N, sizeof(*polls));
	int (*ready)[2] = calloc(N, sizeof(*ready));
	int idle[2];

	assert_int_equal(tmo_loop_init(&loop, &opts), 0);
	test_pipe(idle);
	int64_t deadline = tmo_now() + 100 * MS;
	for (int i = 0; i < N; i++) {
		test_pipe(ready[i]);
		polls[i].loop = &loop;
		polls[i].idle_fd = idle[0];
		tmo_prep_poll(&polls[i].op, ready[i][0], POLLIN);
		assert_int_equal(tmo_op_start(&loop, &polls[i].op, tmo_at(deadline), first_poll_done),
				 0);
	}
	assert_true(tmo_loop_submit(&loop) > 0);
	while (tmo_now() < deadline - 5 * MS)
		test_sleep_ms(1);
	for (int i = 0; i < N; i++)
		test_write_all(ready[i][1], "x", 1);
	while (tmo_now() < deadline + 20 * MS)
		test_sleep_ms(1);
	assert_int_equal(tmo_loop_run(&loop, TMO_RUN_DEFAULT), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(polls[i].second_res, -ETIME);
		assert_on_time(polls[i].second_seen, polls[i].second_deadline);
		close(ready[i][0]);
		close(ready[i][1]);
	}
	assert_int_equal(tmo_loop_close(&loop), 0);
	close(idle[0]);
	close(idle[1]);
	free(polls);
	free(ready);
}

/* ---- requests the kernel cannot interrupt (io-wq) ------------------------------------------- */

struct blocking_open {
	struct test_result r;
	int released;
	int32_t late_res;
	bool busy_in_callback;
};

static void record_blocking(struct tmo_op *op, int32_t res)
{
	struct blocking_open *b = (struct blocking_open *)op;

	test_record(op, res);
	b->busy_in_callback = tmo_op_busy(op);
}

static void record_release(struct tmo_op *op, int32_t late_res)
{
	struct blocking_open *b = (struct blocking_open *)op;

	b->released++;
	b->late_res = late_res;
	assert_false(tmo_op_busy(op));
}

static void make_fifo(char *path, size_t size)
{
	snprintf(path, size, "/tmp/tmo-test-fifo-%d-%ld", getpid(), (long)(tmo_now() % 1000000));
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
}

static void iowq_open_reports_timeout_on_time(void **state)
{
	struct tmo_loop *loop = *state;
	struct blocking_open b = { 0 };
	char path[128];

	/* openat(O_CREAT) of a FIFO with no writer blocks inside io-wq: measured, a linked
	 * timeout does not reach it. */
	make_fifo(path, sizeof(path));
	tmo_prep_openat(&b.r.op, AT_FDCWD, path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(tmo_op_set_release(&b.r.op, record_release), 0);
	int64_t deadline = tmo_now() + 100 * MS;
	assert_int_equal(tmo_op_start(loop, &b.r.op, tmo_at(deadline), record_blocking), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);

	assert_int_equal(b.r.calls, 1);
	assert_int_equal(b.r.res, -ETIME);
	assert_on_time(b.r.seen_at, deadline);
	/* The callback came while the kernel still held the request... */
	assert_true(b.busy_in_callback);
	/* ...and the release came once tmo's cancel interrupted it. */
	assert_int_equal(b.released, 1);
	assert_int_equal(b.late_res, -EINTR); /* not the kernel's internal -ERESTARTSYS (-512) */
	assert_false(tmo_op_busy(&b.r.op));
	struct tmo_loop_stats stats;
	tmo_loop_get_stats(loop, &stats);
	assert_int_equal(stats.abandoned, 1);
	unlink(path);
}

static void iowq_cancel_reaches_the_kernel_before_run_returns(void **state)
{
	struct tmo_loop *loop = *state;
	struct blocking_open b = { 0 };
	char path[128];

	make_fifo(path, sizeof(path));
	tmo_prep_openat(&b.r.op, AT_FDCWD, path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(tmo_op_set_release(&b.r.op, record_release), 0);
	assert_int_equal(tmo_op_start(loop, &b.r.op, tmo_in_ms(50), record_blocking), 0);
	/* One iteration: it waits for the deadline, reports the timeout and returns, with the op
	 * still held by the kernel... */
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_ONCE), 1);
	assert_int_equal(b.r.res, -ETIME);
	/* ...but the interrupt was already sent: with the loop not running, the blocked reader
	 * goes away, so a writer that refuses to wait finds no reader (ENXIO). Had the open still
	 * been blocked, it would have counted as the FIFO's reader. */
	test_sleep_ms(100);
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	int err = errno;
	if (fd >= 0)
		close(fd);
	assert_int_equal(fd, -1);
	assert_int_equal(err, ENXIO);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(b.released, 1);
	unlink(path);
}

static void iowq_open_cancelled_by_caller(void **state)
{
	struct tmo_loop *loop = *state;
	struct blocking_open b = { 0 };
	char path[128];

	make_fifo(path, sizeof(path));
	tmo_prep_openat(&b.r.op, AT_FDCWD, path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(tmo_op_set_release(&b.r.op, record_release), 0);
	assert_int_equal(tmo_op_start(loop, &b.r.op, tmo_in_ms(5000), record_blocking), 0);
	assert_int_equal(tmo_loop_run_until(loop, tmo_in_ms(50)), 1);
	assert_int_equal(tmo_op_cancel(&b.r.op), 0);
	assert_int_equal(tmo_op_cancel(&b.r.op), -EALREADY);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(b.r.calls, 1);
	assert_int_equal(b.r.res, -ECANCELED);
	assert_int_equal(b.released, 1);
	assert_true(b.r.seen_at < tmo_now() + 5000 * MS);
	unlink(path);
}

static void iowq_open_that_succeeds_reports_its_fd(void **state)
{
	struct tmo_loop *loop = *state;
	struct blocking_open b = { 0 };
	char path[128];

	/* O_RDWR on a FIFO does not wait for a peer: the open completes before its deadline and
	 * the loop-kept deadline is withdrawn. */
	make_fifo(path, sizeof(path));
	tmo_prep_openat(&b.r.op, AT_FDCWD, path, O_RDWR | O_CLOEXEC, 0);
	assert_int_equal(tmo_op_set_release(&b.r.op, record_release), 0);
	assert_int_equal(tmo_op_start(loop, &b.r.op, tmo_in_ms(1000), record_blocking), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_true(b.r.res >= 0);
	assert_false(b.busy_in_callback);
	assert_int_equal(b.released, 0); /* the completion callback was the release */
	close(b.r.res);
	unlink(path);
}

static void blocking_flag_on_a_regular_file_read(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	char path[] = "/tmp/tmo-test-file-XXXXXX";
	char buf[16] = { 0 };
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	test_write_all(fd, "on disk", 7);
	tmo_prep_read(&r.op, fd, buf, sizeof(buf), 0);
	assert_int_equal(tmo_op_set_flags(&r.op, TMO_OP_BLOCKING), 0);
	assert_int_equal(tmo_op_start(loop, &r.op, tmo_in_ms(1000), test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.res, 7);
	assert_memory_equal(buf, "on disk", 7);
	close(fd);
	unlink(path);
}

int main(void)
{
/* Each timing test twice: deadlines kept by the kernel (default) and by the loop. */
#define BOTH(f)                                                                          \
	{ #f " [kernel]", f, test_loop_setup, test_loop_teardown, NULL },                \
	{                                                                                \
		#f " [loop]", f, test_loop_setup_loop_deadlines, test_loop_teardown, NULL \
	}
#define T(f) cmocka_unit_test_setup_teardown(f, test_loop_setup, test_loop_teardown)
	const struct CMUnitTest tests[] = {
		BOTH(read_times_out_never_early),
		BOTH(op_that_finishes_first_is_undisturbed),
		BOTH(thousand_staggered_deadlines_on_one_pipe),
		BOTH(partial_recv_is_returned),
		BOTH(bytes_after_the_deadline_stay_for_the_next_read),
		BOTH(past_deadline_times_out_without_starting),
		BOTH(sleep_ends_at_the_earlier_of_wake_and_deadline),
		BOTH(zero_deadline_is_no_deadline),
		cmocka_unit_test(kernel_cancels_on_time_while_loop_thread_is_stuck),
		cmocka_unit_test(low_latency_mode_cancels_only_when_the_loop_returns),
		cmocka_unit_test(loop_kept_deadlines_hold_only_while_the_loop_runs),
		cmocka_unit_test(stale_linked_timeout_spares_the_restarted_op),
		T(iowq_open_reports_timeout_on_time),
		T(iowq_cancel_reaches_the_kernel_before_run_returns),
		T(iowq_open_cancelled_by_caller),
		T(iowq_open_that_succeeds_reports_its_fd),
		T(blocking_flag_on_a_regular_file_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
