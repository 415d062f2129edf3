/*
 * core-loop: initialisation and its options, feature probing, run modes, run-until, stop,
 * closing with work left, and the error a process without io_uring gets (under seccomp).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h" /* the ring's CQ size */

#define MS TMO_NSEC_PER_MSEC

static void init_with_defaults_and_probe(void **state)
{
	struct tmo_loop loop;

	assert_int_equal(tmo_loop_init(&loop, NULL), 0);
	/* Linux 6.18 has all of these; tmo requires the first three. */
	assert_true(tmo_loop_has_feature(&loop, TMO_FEAT_EXT_ARG));
	assert_true(tmo_loop_has_feature(&loop, TMO_FEAT_NODROP));
	assert_true(tmo_loop_has_feature(&loop, TMO_FEAT_LINK_TIMEOUT));
	assert_true(tmo_loop_has_feature(&loop, TMO_FEAT_ASYNC_CANCEL));
	assert_true(tmo_loop_has_feature(&loop, TMO_FEAT_CQE_SKIP));
	assert_true(tmo_loop_has_feature(&loop, TMO_FEAT_COOP_TASKRUN));
	assert_false(tmo_loop_has_feature(&loop, TMO_FEAT_DEFER_TASKRUN));
	assert_false(tmo_loop_has_feature(&loop, TMO_FEAT_COUNT_));
	assert_false(tmo_loop_has_feature(&loop, (enum tmo_feature)-1));
	assert_false(tmo_loop_has_feature(NULL, TMO_FEAT_EXT_ARG));
	assert_int_equal(tmo_loop_active(&loop), 0);
	assert_int_equal(tmo_loop_run(&loop, TMO_RUN_DEFAULT), 0); /* no work: returns at once */
	assert_int_equal(tmo_loop_close(&loop), 0);
	assert_int_equal(tmo_loop_close(&loop), -EINVAL); /* closed twice */
}

static void bad_options_are_einval(void **state)
{
	struct tmo_loop loop;
	struct tmo_loop_options bad[] = {
		{ .ring_entries = 3 },
		{ .ring_entries = 1 },
		{ .ring_entries = 65536 },
		{ .ring_entries = 64, .cq_entries = 32 },
		{ .ring_entries = 64, .cq_entries = 100 },
		{ .mode = (enum tmo_loop_mode)7 },
		{ .deadlines = (enum tmo_deadline_strategy)2 },
	};

	assert_int_equal(tmo_loop_init(NULL, NULL), -EINVAL);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		loop._state = (void *)&loop; /* garbage the init must overwrite */
		assert_int_equal(tmo_loop_init(&loop, &bad[i]), -EINVAL);
		assert_null(loop._state);
		assert_int_equal(tmo_loop_close(&loop), -EINVAL);
	}
	assert_int_equal(tmo_loop_run(NULL, TMO_RUN_DEFAULT), -EINVAL);
	assert_int_equal(tmo_loop_run_until(NULL, tmo_at(0)), -EINVAL);
	assert_int_equal(tmo_loop_run_until(NULL, TMO_NEVER), -EINVAL);
	assert_int_equal(tmo_loop_close(NULL), -EINVAL);
	assert_int_equal(tmo_loop_get_stats(NULL, NULL), -EINVAL);
}

static void low_latency_mode_runs_ops(void **state)
{
	struct tmo_loop_options opts = { .mode = TMO_MODE_LOW_LATENCY, .ring_entries = 64 };
	struct tmo_loop loop;
	struct test_result r = { 0 };
	char buf[4];
	int fds[2];

	assert_int_equal(tmo_loop_init(&loop, &opts), 0);
	assert_true(tmo_loop_has_feature(&loop, TMO_FEAT_DEFER_TASKRUN));
	test_pipe(fds);
	int64_t deadline = tmo_now() + 30 * MS;
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(&loop, &r.op, tmo_at(deadline), test_record), 0);
	assert_int_equal(tmo_loop_run(&loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.res, -ETIME);
	assert_on_time(r.seen_at, deadline);
	assert_int_equal(tmo_loop_close(&loop), 0);
	close(fds[0]);
	close(fds[1]);
}

static void run_once_and_nowait(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result a = { 0 }, b = { 0 };

	assert_int_equal(tmo_prep_sleep(&a.op, tmo_in_ms(30)), 0);
	assert_int_equal(tmo_prep_sleep(&b.op, tmo_in_ms(200)), 0);
	assert_int_equal(tmo_op_start(loop, &a.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_op_start(loop, &b.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_NOWAIT), 2); /* nothing ready yet */
	assert_int_equal(a.calls + b.calls, 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_ONCE), 1); /* waits for the first */
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_ONCE), 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_ONCE), 0); /* no work: returns at once */
	assert_int_equal(tmo_loop_run(loop, (enum tmo_run_mode)9), -EINVAL);
}

static void run_once_returns_after_delivering_a_decided_outcome(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result late = { 0 }, idle = { 0 };
	char buf[4];
	int fds[2];

	/* One op whose deadline has passed (decided at start), one that will not finish soon:
	 * the iteration that delivers the first must not then wait for the second. */
	test_pipe(fds);
	tmo_prep_nop(&late.op);
	assert_int_equal(tmo_op_start(loop, &late.op, tmo_at(0), test_record), 0);
	tmo_prep_read(&idle.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &idle.op, tmo_in_ms(2000), test_record), 0);
	int64_t before = tmo_now();
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_ONCE), 1);
	assert_true(tmo_now() - before < 1000 * MS);
	assert_int_equal(late.res, -ETIME);
	assert_int_equal(idle.calls, 0);
	assert_int_equal(tmo_op_cancel(&idle.op), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	close(fds[0]);
	close(fds[1]);
}

static void largest_ring_with_default_completion_queue(void **state)
{
	struct tmo_loop_options opts[] = {
		{ .ring_entries = 32768 },
		{ .ring_entries = 32768, .mode = TMO_MODE_LOW_LATENCY },
		{ .ring_entries = 1024, .cq_entries = 65536 },
	};
	struct tmo_loop loop;

	for (unsigned i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		assert_int_equal(tmo_loop_init(&loop, &opts[i]), 0);
		assert_int_equal(tmo_loop_close(&loop), 0);
	}
	/* Beyond the kernel's limits: a clear -EINVAL, also in the low-latency mode. */
	struct tmo_loop_options too_big = { .ring_entries = 256, .cq_entries = 131072,
					    .mode = TMO_MODE_LOW_LATENCY };
	assert_int_equal(tmo_loop_init(&loop, &too_big), -EINVAL);
}

/* The CQ the kernel made: by default at least 8192 entries, so that the kernel's table of
 * requests to cancel gets all its 256 buckets (loop.h); an explicit size is kept. */
static void default_completion_queue_sizes_the_cancel_table(void **state)
{
	struct {
		struct tmo_loop_options opts;
		unsigned cq;
	} cases[] = {
		{ { 0 }, 8192 },                                       /* 256 entries: 4x is 1024 */
		{ { .ring_entries = 4096 }, 16384 },                   /* 4x when that is more */
		{ { .ring_entries = 32768 }, 65536 },                  /* at most the kernel's limit */
		{ { .ring_entries = 256, .cq_entries = 1024 }, 1024 }, /* the caller's own size */
	};
	struct tmo_loop loop;

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(tmo_loop_init(&loop, &cases[i].opts), 0);
		assert_int_equal(tmo__state(&loop)->ring.cq.ring_entries, cases[i].cq);
		assert_int_equal(tmo_loop_close(&loop), 0);
	}
}

static void run_until_a_deadline(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result s = { 0 };

	assert_int_equal(tmo_prep_sleep(&s.op, tmo_in_ms(300)), 0);
	assert_int_equal(tmo_op_start(loop, &s.op, TMO_NEVER, test_record), 0);
	int64_t until = tmo_now() + 60 * MS;
	assert_int_equal(tmo_loop_run_until(loop, tmo_at(until)), 1);
	int64_t back = tmo_now();
	assert_on_time(back, until);
	assert_int_equal(s.calls, 0);
	assert_int_equal(tmo_loop_run_until(loop, tmo_at(0)), 1); /* in the past: no wait */
	assert_int_equal(tmo_loop_run_until(loop, tmo_at(-1)), -EINVAL);
	assert_int_equal(tmo_loop_run_until(loop, tmo_in_ms(-1)), -EINVAL);
	/* Work ends before the deadline: returns when it is done. */
	assert_int_equal(tmo_loop_run_until(loop, tmo_in_ms(5000)), 0);
	assert_int_equal(s.calls, 1);
	assert_true(tmo_now() - back < 2000 * MS);
}

static void stop_from_callback(struct tmo_op *op, int32_t res)
{
	test_record(op, res);
	tmo_loop_stop(op->data);
}

static void stop_returns_with_work_left(void **state)
{
	struct tmo_loop *loop = *state;
	struct test_result a = { 0 }, b = { 0 };

	a.op.data = loop;
	tmo_prep_nop(&a.op);
	assert_int_equal(tmo_prep_sleep(&b.op, tmo_in_ms(50)), 0);
	assert_int_equal(tmo_op_start(loop, &a.op, TMO_NEVER, stop_from_callback), 0);
	assert_int_equal(tmo_op_start(loop, &b.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(b.calls, 1);
}

static void close_with_work_left_is_ebusy(void **state)
{
	struct tmo_loop loop;
	struct test_result r = { 0 };
	char buf[4];
	int fds[2];

	assert_int_equal(tmo_loop_init(&loop, NULL), 0);
	test_pipe(fds);
	tmo_prep_read(&r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(&loop, &r.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_close(&loop), -EBUSY);
	/* Intact: the op can still be cancelled and the loop closed afterwards. */
	assert_int_equal(tmo_op_cancel(&r.op), 0);
	assert_int_equal(tmo_loop_run(&loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.res, -ECANCELED);
	assert_int_equal(tmo_loop_close(&loop), 0);
	close(fds[0]);
	close(fds[1]);
}

static void error_messages_name_the_cause(void **state)
{
	char msg[512];

	size_t n = tmo_loop_describe_error(-EPERM, msg, sizeof(msg));
	assert_true(n > 10 && n == strlen(msg));
	assert_non_null(strstr(msg, "io_uring"));
	tmo_loop_describe_error(-ENOSYS, msg, sizeof(msg));
	assert_non_null(strstr(msg, "io_uring"));
	tmo_loop_describe_error(-EOPNOTSUPP, msg, sizeof(msg));
	assert_non_null(strstr(msg, "Linux 5.11"));
	tmo_loop_describe_error(-EINVAL, msg, sizeof(msg));
	assert_non_null(strstr(msg, "power of two"));
	tmo_loop_describe_error(-ETIME, msg, sizeof(msg));
	assert_non_null(strstr(msg, "imer")); /* strerror(ETIME): "Timer expired" */
	/* Truncation still terminates and reports the full length. */
	char tiny[8];
	n = tmo_loop_describe_error(-EPERM, tiny, sizeof(tiny));
	assert_true(n > sizeof(tiny));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_true(tmo_loop_describe_error(-EPERM, NULL, 0) > 0);
}

/* ---- io_uring taken away by seccomp ------------------------------------------------------ */

/* Installs a filter that makes io_uring_setup fail with `err`. */
static int deny_io_uring_setup(int err)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* In a child: init under the filter must give `want` and a message containing `needle`. */
static void init_under_seccomp(int err, int want, const char *needle)
{
	int pipefd[2];

	test_pipe(pipefd);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tmo_loop loop;
		char msg[512] = "";
		int ret = deny_io_uring_setup(err) ? -9999 : tmo_loop_init(&loop, NULL);
		tmo_loop_describe_error(ret, msg, sizeof(msg));
		if (write(pipefd[1], &ret, sizeof(ret)) != sizeof(ret) ||
		    write(pipefd[1], msg, sizeof(msg)) != sizeof(msg))
			_exit(2);
		_exit(0);
	}
	close(pipefd[1]);
	int ret = 0, status = 0;
	char msg[512] = "";
	assert_int_equal(read(pipefd[0], &ret, sizeof(ret)), sizeof(ret));
	assert_int_equal(read(pipefd[0], msg, sizeof(msg)), sizeof(msg));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pipefd[0]);
	print_message("under seccomp: %d, \"%s\"\n", ret, msg);
	assert_int_equal(ret, want);
	assert_non_null(strstr(msg, needle));
}

static void init_under_seccomp_eperm(void **state)
{
	init_under_seccomp(EPERM, -EPERM, "seccomp");
}

static void init_under_seccomp_enosys(void **state)
{
	init_under_seccomp(ENOSYS, -ENOSYS, "seccomp");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_loop_setup, test_loop_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init_with_defaults_and_probe),
		cmocka_unit_test(bad_options_are_einval),
		cmocka_unit_test(low_latency_mode_runs_ops),
		T(run_once_and_nowait),
		T(run_once_returns_after_delivering_a_decided_outcome),
		cmocka_unit_test(largest_ring_with_default_completion_queue),
		cmocka_unit_test(default_completion_queue_sizes_the_cancel_table),
		T(run_until_a_deadline),
		T(stop_returns_with_work_left),
		cmocka_unit_test(close_with_work_left_is_ebusy),
		cmocka_unit_test(error_messages_name_the_cause),
		cmocka_unit_test(init_under_seccomp_eperm),
		cmocka_unit_test(init_under_seccomp_enosys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
