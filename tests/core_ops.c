/*
 * core-ops: every kind of operation, cancel semantics, callbacks that start and cancel other
 * ops, far more ops than ring entries, completion-queue overflow, and bad input.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "hooks.h"
#include "op_private.h" /* the flag bits: one test forges a cancel in flight */

#define MS TMO_NSEC_PER_MSEC

static tmo_deadline soon(void)
{
	return tmo_in_ms(2000);
}

static void run_all(struct tmo_loop *loop)
{
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
}

static void nop_completes_with_zero(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result a = { 0 }, b = { 0 };

	tmo_prep_nop(&a.op);
	tmo_prep_nop(&b.op);
	assert_int_equal(tmo_op_start(loop, &a.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_op_start(loop, &b.op, soon(), test_record), 0);
	assert_true(tmo_op_busy(&a.op));
	run_all(loop);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.res, 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.res, 0);
	assert_false(tmo_op_busy(&a.op));
}

static void read_write_on_a_pipe(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result w = { 0 }, r = { 0 };
	char buf[32] = { 0 };
	int fds[2];

	test_pipe(fds);
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	tmo_prep_write(&w.op, fds[1], "through the pipe", 16, (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, soon(), test_record), 0);
	assert_int_equal(tmo_op_start(loop, &w.op, soon(), test_record), 0);
	run_all(loop);
	assert_int_equal(w.res, 16);
	assert_int_equal(r.res, 16);
	assert_memory_equal(buf, "through the pipe", 16);
	close(fds[0]);
	close(fds[1]);
}

static void send_recv_and_poll_on_a_socketpair(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result s = { 0 }, r = { 0 }, p = { 0 };
	char buf[8] = { 0 };
	int sv[2];

	test_socketpair(sv);
	tmo_prep_poll(&p.op, sv[0], POLLIN);
	assert_int_equal(tmo_op_start(loop, &p.op, soon(), test_record), 0);
	tmo_prep_send(&s.op, sv[1], "ping", 4, 0);
	assert_int_equal(tmo_op_start(loop, &s.op, soon(), test_record), 0);
	run_all(loop);
	assert_int_equal(s.res, 4);
	assert_true(p.res & POLLIN);

	tmo_prep_recv(&r.op, sv[0], buf, sizeof(buf), 0);
	assert_int_equal(tmo_op_start(loop, &r.op, soon(), test_record), 0);
	run_all(loop);
	assert_int_equal(r.res, 4);
	assert_memory_equal(buf, "ping", 4);

	/* A closed peer gives -EPIPE, and no SIGPIPE kills the test. */
	close(sv[0]);
	tmo_prep_send(&s.op, sv[1], "pong", 4, 0);
	assert_int_equal(tmo_op_start(loop, &s.op, soon(), test_record), 0);
	run_all(loop);
	assert_int_equal(s.res, -EPIPE);
	close(sv[1]);
}

static void accept_and_connect_on_loopback(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result acc = { 0 }, con = { 0 }, idle = { 0 };
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(listener >= 0 && client >= 0);
	assert_int_equal(bind(listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(listener, 8), 0);
	assert_int_equal(getsockname(listener, (struct sockaddr *)&addr, &len), 0);

	/* Nobody connects: accept times out. */
	int64_t deadline = tmo_now() + 50 * MS;
	tmo_prep_accept(&idle.op, listener, NULL, NULL, SOCK_CLOEXEC);
	assert_int_equal(tmo_op_start(loop, &idle.op, tmo_at(deadline), test_record), 0);
	run_all(loop);
	assert_int_equal(idle.res, -ETIME);
	assert_on_time(idle.seen_at, deadline);

	struct sockaddr_in peer;
	socklen_t peer_len = sizeof(peer);
	tmo_prep_accept(&acc.op, listener, (struct sockaddr *)&peer, &peer_len, SOCK_CLOEXEC);
	tmo_prep_connect(&con.op, client, (struct sockaddr *)&addr, sizeof(addr));
	assert_int_equal(tmo_op_start(loop, &acc.op, soon(), test_record), 0);
	assert_int_equal(tmo_op_start(loop, &con.op, soon(), test_record), 0);
	run_all(loop);
	assert_int_equal(con.res, 0);
	assert_true(acc.res >= 0);
	assert_int_equal(peer.sin_family, AF_INET);
	close(acc.res);
	close(client);
	close(listener);
}

static void connect_refused_is_the_kernels_error(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result con = { 0 };
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* A port that was just free and has no listener. */
	assert_int_equal(bind(probe, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&addr, &len), 0);
	close(probe);
	tmo_prep_connect(&con.op, client, (struct sockaddr *)&addr, sizeof(addr));
	assert_int_equal(tmo_op_start(loop, &con.op, soon(), test_record), 0);
	run_all(loop);
	assert_int_equal(con.res, -ECONNREFUSED);
	close(client);
}

static void openat_a_regular_file(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result o = { 0 };

	tmo_prep_openat(&o.op, AT_FDCWD, "/proc/self/stat", O_RDONLY | O_CLOEXEC, 0);
	assert_int_equal(tmo_op_start(loop, &o.op, soon(), test_record), 0);
	run_all(loop);
	assert_true(o.res >= 0);
	close(o.res);

	tmo_prep_openat(&o.op, AT_FDCWD, "/nonexistent/tmo", O_RDONLY, 0);
	assert_int_equal(tmo_op_start(loop, &o.op, soon(), test_record), 0);
	run_all(loop);
	assert_int_equal(o.res, -ENOENT);
}

/* ---- cancel ----------------------------------------------------------------------------- */

static void cancel_pending_read(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	char buf[4];
	int fds[2];

	test_pipe(fds);
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_cancel(&r.op), -ENOENT); /* prepared, never started */
	assert_int_equal(tmo_op_start(loop, &r.op, soon(), test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_NOWAIT), 1);
	assert_int_equal(tmo_op_cancel(&r.op), 0);
	assert_int_equal(tmo_op_cancel(&r.op), -EALREADY);
	run_all(loop);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, -ECANCELED);
	/* After completion: harmless, and says so. */
	assert_int_equal(tmo_op_cancel(&r.op), -ENOENT);
	assert_int_equal(test_readable(fds[0]), 0);
	close(fds[0]);
	close(fds[1]);
}

static void cancel_before_submission(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 }, n = { 0 };
	char buf[4];
	int fds[2];

	test_pipe(fds);
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_op_cancel(&r.op), 0); /* still only in the submission queue */
	tmo_prep_nop(&n.op);
	assert_int_equal(tmo_op_start(loop, &n.op, TMO_NEVER, test_record), 0);
	run_all(loop);
	assert_int_equal(r.res, -ECANCELED);
	assert_int_equal(n.res, 0);
	close(fds[0]);
	close(fds[1]);
}

/*
 * The data is there: the read completes as it is submitted, before the cancel that follows it
 * in the next submit. The op's own completion decides. That holds for a socket on every
 * kernel, and for a blocking pipe only where the kernel has nowait pipes (Linux 6.4): before,
 * the pipe read goes through poll and io-wq, and the cancel can win.
 */
static void completion_wins_over_a_late_cancel(void **state)
{
	struct tmo_loop *loop = *state;

	for (int pipe = 0; pipe < 2; pipe++) {
		struct test_result r = { 0 };
		char buf[8];
		int fds[2];

		if (pipe && !tmo_loop_has_feature(loop, TMO_FEAT_NOWAIT_PIPES)) {
			print_message("blocking pipe: skipped, this kernel has no nowait pipes "
				      "(Linux 6.4): its reads go through io-wq\n");
			continue;
		}
		if (pipe)
			test_pipe(fds);
		else
			test_socketpair(fds);
		test_write_all(fds[1], "won", 3);
		tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
		assert_int_equal(tmo_op_start(loop, &r.op, soon(), test_record), 0);
		assert_int_equal(tmo_loop_submit(loop), 2);
		assert_int_equal(tmo_op_cancel(&r.op), 0);
		run_all(loop);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.res, 3);
		close(fds[0]);
		close(fds[1]);
	}
}

/*
 * A cancel answered "not found" before the op's own completion is posted. Made certain here:
 * under DEFER_TASKRUN a sleep whose time has come is off the kernel's timeout list while its
 * completion waits as deferred work, so the cancel, run at submit, answers -ENOENT first.
 * The sleep's result stands, and the pause before asking again ends with its completion.
 */
static void cancel_answered_not_found_before_the_completion(void **state)
{
	(void)state;
	struct tmo_loop_options o = { .mode = TMO_MODE_LOW_LATENCY };
	struct tmo_loop loop;
	struct tmo_loop_stats stats;
	struct test_result r = { 0 };

	assert_int_equal(tmo_loop_init(&loop, &o), 0);
	assert_int_equal(tmo_prep_sleep(&r.op, tmo_in_ms(5)), 0);
	assert_int_equal(tmo_op_start(&loop, &r.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_submit(&loop), 1);
	test_sleep_ms(30); /* the sleep fires meanwhile; its completion waits for the loop */
	assert_int_equal(tmo_op_cancel(&r.op), 0);
	run_all(&loop);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, 0);
	/* the sleep's completion came right after the answer: nothing to ask again */
	assert_int_equal(tmo_loop_get_stats(&loop, &stats), 0);
	assert_int_equal(stats.cancel_retries, 0);
	assert_int_equal(tmo_loop_close(&loop), 0);
}

/*
 * The answer is "not found" and the request stays in the kernel (Linux 6.1: a blocking pipe's
 * request between poll and io-wq). No kernel here gives that on demand, so the answer is
 * handed to the op's handler as the kernel would (white box), for a recv that the kernel
 * really holds: tmo must ask again, and the second cancel ends it.
 */
static void cancel_lost_by_the_kernel_is_asked_again(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo__loop_state *st = tmo__state(loop);
	struct tmo_loop_stats stats;
	struct test_result r = { 0 };
	char buf[4];
	int fds[2];

	test_socketpair(fds);
	tmo_prep_recv(&r.op, fds[0], buf, sizeof(buf), 0);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_submit(loop), 1);
	/* as if tmo_op_cancel's request had been sent and the kernel had not found the recv */
	r.op._flags |= TMO__F_CANCEL | TMO__F_CANCEL_ASKED;
	r.op._cancel_asks = 1;
	int64_t lost_at = tmo_now();
	tmo__op_on_cancel_answer(st, &r.op, -ENOENT);
	assert_true(tmo_op_busy(&r.op));
	run_all(loop);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, -ECANCELED);
	assert_on_time(r.seen_at, lost_at + 1 * MS); /* the first pause is 1 ms */
	assert_int_equal(tmo_loop_get_stats(loop, &stats), 0);
	assert_int_equal(stats.cancel_retries, 1);
	assert_int_equal(test_readable(fds[0]), 0);
	close(fds[0]);
	close(fds[1]);
}

/* A FIFO opened by path, read end non-blocking (so the test can drain it), write end
 * blocking and full: io_uring runs a write on it blocking in io-wq, on every kernel. */
static void full_fifo(int fds[2], size_t *filled)
{
	char chunk[4096] = { 0 };
	ssize_t n;

	test_fifo(fds);
	assert_int_equal(fcntl(fds[1], F_SETPIPE_SZ, 16384), 16384);
	int fl = fcntl(fds[1], F_GETFL);
	assert_int_equal(fcntl(fds[1], F_SETFL, fl | O_NONBLOCK), 0);
	*filled = 0;
	while ((n = write(fds[1], chunk, sizeof(chunk))) > 0)
		*filled += (size_t)n;
	assert_int_equal(fcntl(fds[1], F_SETFL, fl), 0);
}

/* Reads what is there, at most `max` bytes: a bound, since a write still going on in io-wq
 * refills the FIFO as fast as it is read. */
static size_t drain_fd(int fd, size_t max)
{
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	while (total < max &&
	       (n = read(fd, buf, max - total < sizeof(buf) ? max - total : sizeof(buf))) > 0)
		total += (size_t)n;
	return total;
}

/*
 * A write blocked in io-wq, ended by a cancel (run 0) or by a deadline the loop keeps (run 1,
 * a blocking op): the callback never comes late, and the bytes the kernel reports written are
 * exactly those that reached the FIFO, whether it reports them or -ECANCELED / -ETIME.
 */
static void write_blocked_in_iowq_ends_on_cancel_or_deadline(void **state)
{
	struct tmo_loop *loop = *state;
	size_t len = 1u << 20;
	char *big = calloc(1, len);

	assert_non_null(big);
	for (int run = 0; run < 2; run++) {
		struct test_result r = { 0 };
		size_t filled;
		int fds[2];

		full_fifo(fds, &filled);
		tmo_prep_write(&r.op, fds[1], big, (uint32_t)len, (uint64_t)-1);
		int64_t deadline = run ? tmo_now() + 100 * MS : TMO_NEVER_NS;
		if (run)
			assert_int_equal(tmo_op_set_flags(&r.op, TMO_OP_BLOCKING), 0);
		assert_int_equal(tmo_op_start(loop, &r.op, run ? tmo_at(deadline) : TMO_NEVER,
					      test_record),
				 0);
		assert_int_equal(tmo_loop_submit(loop), 1);
		test_sleep_ms(20);
		size_t drained = drain_fd(fds[0], 8192); /* room: the write moves into io-wq */
		test_sleep_ms(20);
		int64_t cut_at = run ? deadline : tmo_now();
		if (!run)
			assert_int_equal(tmo_op_cancel(&r.op), 0);
		run_all(loop);
		assert_int_equal(r.calls, 1);
		size_t in_fifo = drain_fd(fds[0], len + filled); /* the write has ended */
		if (r.res >= 0) {
			/* the kernel's own short count: at the cut (it interrupted the write) or
			 * before it (newer kernels return a FIFO write short when room ran out) */
			assert_true(r.seen_at <= cut_at + test_tolerance_ns());
			assert_true((size_t)r.res < len);
			assert_int_equal(drained + in_fifo, filled + (size_t)r.res);
		} else {
			assert_on_time(r.seen_at, cut_at);
			assert_int_equal(r.res, run ? -ETIME : -ECANCELED);
			if (!run) /* a blocking op is reported before the kernel lets go */
				assert_int_equal(drained + in_fifo, filled);
		}
		close(fds[0]);
		close(fds[1]);
	}
	free(big);
}

static void cancel_after_deadline_passed_is_already_decided(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	char buf[4];
	int fds[2];

	test_pipe(fds);
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, tmo_in_ms(20), test_record), 0);
	assert_int_equal(tmo_loop_submit(loop), 2);
	test_sleep_ms(40);
	assert_int_equal(tmo_op_cancel(&r.op), -EALREADY);
	run_all(loop);
	assert_int_equal(r.res, -ETIME);
	close(fds[0]);
	close(fds[1]);
}

static void cancel_sleep(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result s = { 0 };

	assert_int_equal(tmo_prep_sleep(&s.op, tmo_in_ms(10000)), 0);
	assert_int_equal(tmo_op_start(loop, &s.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_NOWAIT), 1);
	assert_int_equal(tmo_op_cancel(&s.op), 0);
	int64_t before = tmo_now();
	run_all(loop);
	assert_int_equal(s.res, -ECANCELED);
	assert_true(tmo_now() - before < 1000 * MS);
}

/* ---- callbacks that start and cancel other ops ------------------------------------------ */

struct chain {
	struct tmo_op first;
	struct test_result second;
	struct test_result victim;
	struct tmo_loop *loop;
	int restarts;
	int fds[2];
	char buf[4];
};

static void first_done(struct tmo_op *op, int32_t res)
{
	struct chain *c = op->data;

	assert_int_equal(res, 0);
	/* Restart the same op from its own callback a few times. */
	if (++c->restarts < 5) {
		assert_int_equal(tmo_op_start(c->loop, op, TMO_NEVER, first_done), 0);
		return;
	}
	tmo_prep_nop(&c->second.op);
	assert_int_equal(tmo_op_start(c->loop, &c->second.op, soon(), test_record), 0);
	assert_int_equal(tmo_op_cancel(&c->victim.op), 0);
}

static void callbacks_start_restart_and_cancel(void **state)
{
	struct tmo_loop *loop = *state;
	struct chain c = { .loop = loop };

	test_pipe(c.fds);
	tmo_prep_read(&c.victim.op, c.fds[0], c.buf, sizeof(c.buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &c.victim.op, TMO_NEVER, test_record), 0);
	c.first.data = &c;
	tmo_prep_nop(&c.first);
	assert_int_equal(tmo_op_start(loop, &c.first, TMO_NEVER, first_done), 0);
	run_all(loop);
	assert_int_equal(c.restarts, 5);
	assert_int_equal(c.second.calls, 1);
	assert_int_equal(c.second.res, 0);
	assert_int_equal(c.victim.calls, 1);
	assert_int_equal(c.victim.res, -ECANCELED);
	close(c.fds[0]);
	close(c.fds[1]);
}

static void run_from_a_callback_is_refused(struct tmo_op *op, int32_t res)
{
	struct test_result *r = (struct test_result *)op;

	r->res = tmo_loop_run(op->data, TMO_RUN_NOWAIT);
	r->calls++;
}

static void nested_run_is_ebusy(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };

	r.op.data = loop;
	tmo_prep_nop(&r.op);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, run_from_a_callback_is_refused), 0);
	run_all(loop);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, -EBUSY);
}

/* ---- more ops than the rings hold --------------------------------------------------------- */

static void ten_times_more_ops_than_ring_entries(void **state)
{
	enum { ENTRIES = 8, N = 10 * ENTRIES };
	struct tmo_loop_options opts = { .ring_entries = ENTRIES };
	struct tmo_loop loop;
	struct test_result reads[N] = { 0 }, nops[N] = { 0 };
	struct tmo_loop_stats stats;
	char buf[4];
	int fds[2];

	assert_int_equal(tmo_loop_init(&loop, &opts), 0);
	test_pipe(fds);
	int64_t deadline = tmo_now() + 100 * MS;
	for (int i = 0; i < N; i++) {
		/* Each read with a deadline takes two SQEs (read + linked timeout). */
		tmo_prep_read(&reads[i].op, fds[0], buf, sizeof(buf), (uint64_t)-1);
		assert_int_equal(tmo_op_start(&loop, &reads[i].op, tmo_at(deadline), test_record), 0);
		tmo_prep_nop(&nops[i].op);
		assert_int_equal(tmo_op_start(&loop, &nops[i].op, tmo_at(deadline), test_record), 0);
	}
	assert_int_equal(tmo_loop_active(&loop), 2 * N);
	assert_int_equal(tmo_loop_run(&loop, TMO_RUN_DEFAULT), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(reads[i].calls, 1);
		assert_int_equal(reads[i].res, -ETIME);
		assert_on_time(reads[i].seen_at, deadline);
		assert_int_equal(nops[i].calls, 1);
		assert_int_equal(nops[i].res, 0);
	}
	assert_int_equal(tmo_loop_get_stats(&loop, &stats), 0);
	assert_true(stats.sq_full > 0);
	assert_int_equal(stats.completed, 2 * N);
	assert_int_equal(tmo_loop_close(&loop), 0);
	close(fds[0]);
	close(fds[1]);
}

static void completion_queue_overflow_loses_nothing(void **state)
{
	enum { N = 400 };
	struct tmo_loop_options opts = { .ring_entries = 4, .cq_entries = 8 };
	struct tmo_loop loop;
	struct test_result *nops = calloc(N, sizeof(*nops));
	struct tmo_loop_stats stats;

	assert_int_equal(tmo_loop_init(&loop, &opts), 0);
	/* Every flush of the full submission queue completes four nops inline; nothing reaps them
	 * until the loop runs, so the 8-entry completion queue overflows into the kernel's
	 * backlog (IORING_FEAT_NODROP). */
	for (int i = 0; i < N; i++) {
		tmo_prep_nop(&nops[i].op);
		assert_int_equal(tmo_op_start(&loop, &nops[i].op, TMO_NEVER, test_record), 0);
	}
	assert_int_equal(tmo_loop_run(&loop, TMO_RUN_DEFAULT), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(nops[i].calls, 1);
		assert_int_equal(nops[i].res, 0);
	}
	assert_int_equal(tmo_loop_get_stats(&loop, &stats), 0);
	assert_true(stats.cq_overflow > 0);
	assert_int_equal(stats.completed, N);
	assert_int_equal(tmo_loop_close(&loop), 0);
	free(nops);
}

/* ---- bad input -------------------------------------------------------------------------- */

static void never_called(struct tmo_op *op, int32_t res)
{
	fail_msg("callback of a refused start fired (res %d)", res);
}

static void bad_input_is_refused_and_changes_nothing(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_op op;
	struct sockaddr_in addr = { .sin_family = AF_INET };
	char buf[4];
	int fds[2];

	test_pipe(fds);
	memset(&op, 0, sizeof(op));
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, never_called), -EINVAL); /* unprepared */
	tmo_prep_nop(&op);
	assert_int_equal(tmo_op_start(NULL, &op, TMO_NEVER, never_called), -EINVAL);
	assert_int_equal(tmo_op_start(loop, NULL, TMO_NEVER, never_called), -EINVAL);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, NULL), -EINVAL);
	assert_int_equal(tmo_op_start(loop, &op, tmo_at(-1), never_called), -EINVAL);
	assert_int_equal(tmo_op_start(loop, &op, tmo_in_sec(-1.0), never_called), -EINVAL);
	assert_int_equal(tmo_op_start(loop, &op, tmo_in_ms(-1), never_called), -EINVAL);
	tmo_prep_read(&op, -1, buf, sizeof(buf), 0);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, never_called), -EBADF);
	tmo_prep_read(&op, fds[0], NULL, 4, 0);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, never_called), -EINVAL);
	tmo_prep_connect(&op, fds[0], NULL, 0);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, never_called), -EINVAL);
	tmo_prep_connect(&op, -3, (struct sockaddr *)&addr, sizeof(addr));
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, never_called), -EBADF);
	tmo_prep_openat(&op, AT_FDCWD, NULL, O_RDONLY, 0);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, never_called), -EINVAL);
	/* An invalid wake time is refused by the preparation itself: no sleep is prepared. */
	memset(&op, 0, sizeof(op));
	assert_int_equal(tmo_prep_sleep(&op, tmo_at(-5)), -EINVAL);
	assert_int_equal(tmo_prep_sleep(&op, tmo_in_sec(NAN)), -EINVAL);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, never_called), -EINVAL);
	tmo_prep_accept(&op, fds[0], (struct sockaddr *)&addr, NULL, 0);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, never_called), -EINVAL);
	assert_int_equal(tmo_op_set_flags(&op, 0x80), -EINVAL);
	assert_int_equal(tmo_op_set_flags(NULL, TMO_OP_BLOCKING), -EINVAL);
	assert_int_equal(tmo_op_cancel(NULL), -EINVAL);
	assert_false(tmo_op_busy(NULL));
	assert_int_equal(tmo_loop_active(loop), 0);

	/* An active op cannot be started again or re-flagged; the first start is untouched. */
	struct test_result r = { 0 };
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &r.op, tmo_in_ms(30), test_record), 0);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, test_record), -EBUSY);
	assert_int_equal(tmo_op_set_flags(&r.op, TMO_OP_BLOCKING), -EBUSY);
	assert_int_equal(tmo_op_set_release(&r.op, NULL), -EBUSY);
	assert_int_equal(tmo_loop_active(loop), 1);
	run_all(loop);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, -ETIME);
	close(fds[0]);
	close(fds[1]);
}

/* Every tmo_prep_* on `op`, each of which must refuse it with `want` and leave it as it was. */
static void assert_every_prep_refused(struct tmo_op *op, int want)
{
	struct tmo_op before;
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t addrlen = sizeof(addr);
	char other[8];

	if (op)
		memcpy(&before, op, sizeof(before));
	assert_int_equal(tmo_prep_nop(op), want);
	assert_int_equal(tmo_prep_sleep(op, tmo_in_ms(1)), want);
	assert_int_equal(tmo_prep_read(op, 0, other, sizeof(other), 0), want);
	assert_int_equal(tmo_prep_write(op, 1, other, sizeof(other), 0), want);
	assert_int_equal(tmo_prep_recv(op, 0, other, sizeof(other), 0), want);
	assert_int_equal(tmo_prep_send(op, 1, other, sizeof(other), 0), want);
	assert_int_equal(tmo_prep_accept(op, 0, (struct sockaddr *)&addr, &addrlen, 0), want);
	assert_int_equal(tmo_prep_connect(op, 0, (struct sockaddr *)&addr, sizeof(addr)), want);
	assert_int_equal(tmo_prep_poll(op, 0, POLLIN), want);
	assert_int_equal(tmo_prep_openat(op, AT_FDCWD, "/nonexistent/tmo", O_RDONLY, 0), want);
	if (op) {
		assert_memory_equal(&before, op, sizeof(before));
		assert_true(tmo_op_busy(op));
	}
}

/*
 * Regression: a tmo_prep_* on an active op used to wipe it (the kernel still held the request;
 * the callback was lost or fired for a stranger). Now it is refused with -EBUSY and the op runs
 * on untouched, both while still in the submission queue and once in the kernel: it cannot be
 * started again, and its one callback reports its own outcome.
 */
static void prep_on_an_active_op_is_ebusy_and_changes_nothing(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result r = { 0 };
	char buf[8] = { 0 };
	int fds[2];

	assert_every_prep_refused(NULL, -EINVAL);
	assert_int_equal(tmo_prep_sleep(&r.op, tmo_at(-1)), -EINVAL);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, never_called), -EINVAL); /* unprepared */

	test_pipe(fds);
	assert_int_equal(tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1), 0);
	assert_int_equal(tmo_op_start(loop, &r.op, soon(), test_record), 0);
	/* still in the submission queue */
	assert_every_prep_refused(&r.op, -EBUSY);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, never_called), -EBUSY);
	/* in the kernel */
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_NOWAIT), 1);
	assert_every_prep_refused(&r.op, -EBUSY);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, never_called), -EBUSY);
	/* an invalid wake time is still -EINVAL, active op or not */
	assert_int_equal(tmo_prep_sleep(&r.op, tmo_at(-1)), -EINVAL);
	assert_true(tmo_op_busy(&r.op));
	assert_int_equal(tmo_loop_active(loop), 1);
	assert_int_equal(r.calls, 0);

	test_write_all(fds[1], "real", 4);
	run_all(loop);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, 4);
	assert_memory_equal(buf, "real", 4);
	assert_false(tmo_op_busy(&r.op));
	/* released: it may be prepared again */
	assert_int_equal(tmo_prep_nop(&r.op), 0);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, test_record), 0);
	run_all(loop);
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.res, 0);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	/* A test that broke MSG_NOSIGNAL must fail, not kill the runner silently. */
	signal(SIGPIPE, SIG_DFL);
#define T(f) cmocka_unit_test_setup_teardown(f, test_loop_setup, test_loop_teardown)
	const struct CMUnitTest tests[] = {
		T(nop_completes_with_zero),
		T(read_write_on_a_pipe),
		T(send_recv_and_poll_on_a_socketpair),
		T(accept_and_connect_on_loopback),
		T(connect_refused_is_the_kernels_error),
		T(openat_a_regular_file),
		T(cancel_pending_read),
		T(cancel_before_submission),
		T(completion_wins_over_a_late_cancel),
		T(cancel_after_deadline_passed_is_already_decided),
		T(cancel_answered_not_found_before_the_completion),
		T(cancel_lost_by_the_kernel_is_asked_again),
		T(write_blocked_in_iowq_ends_on_cancel_or_deadline),
		T(cancel_sleep),
		T(callbacks_start_restart_and_cancel),
		T(nested_run_is_ebusy),
		cmocka_unit_test(ten_times_more_ops_than_ring_entries),
		cmocka_unit_test(completion_queue_overflow_loses_nothing),
		T(bad_input_is_refused_and_changes_nothing),
		T(prep_on_an_active_op_is_ebusy_and_changes_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
