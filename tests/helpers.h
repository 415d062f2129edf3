/* Shared by the test programs: cmocka, timing assertions, pipes, a loop per test. */
#ifndef TMO_TESTS_HELPERS_H
#define TMO_TESTS_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "tmo/tmo.h"

/*
 * How late a deadline may be seen and still pass. Generous because CI machines are shared
 * and noisy; "never early" is asserted exactly, without tolerance. TMO_TEST_TOLERANCE_MS in
 * the environment overrides it.
 */
int64_t test_tolerance_ns(void);

/* Asserts deadline <= seen <= deadline + tolerance, printing both sides on failure. */
#define assert_on_time(seen, deadline) test_assert_on_time((seen), (deadline), __FILE__, __LINE__)
void test_assert_on_time(int64_t seen, int64_t deadline, const char *file, int line);

/* A loop for one test (cmocka setup/teardown); teardown fails the test if ops are left. */
int test_loop_setup(void **state);
/* The same with TMO_DEADLINES_LOOP: deadlines kept by the loop instead of the kernel. */
int test_loop_setup_loop_deadlines(void **state);
int test_loop_teardown(void **state);

/*
 * For teardowns of tests with pools: shuts down and closes `pool` (NULL: none left open), runs
 * out what the loop still has (a failed test's leftovers, bounded), closes the loop. Returns 0
 * if nothing was left, 1 if something was (the test failed), -1 if the loop or pool would not
 * close (then nothing is freed: a worker may still use it).
 */
int test_close_leftovers(struct tmo_loop *loop, struct tmo_pool *pool);

/* pipe2(O_CLOEXEC | O_NONBLOCK on neither end), asserting success. */
void test_pipe(int fds[2]);
/* socketpair(AF_UNIX, SOCK_STREAM), asserting success. */
void test_socketpair(int fds[2]);
/* A FIFO opened by path (and unlinked): fds[0] the read end, O_NONBLOCK (so a test can
 * drain it), fds[1] the write end, blocking. io_uring writes it from io-wq on every kernel. */
void test_fifo(int fds[2]);
/* Writes all of buf, asserting success. */
void test_write_all(int fd, const void *buf, size_t len);
/* Bytes readable now on fd (FIONREAD). */
int test_readable(int fd);

/* Sleeps `ms` milliseconds in the calling thread, whatever signals arrive. */
void test_sleep_ms(int64_t ms);

/* Records the outcome of an op: a generic callback target. */
struct test_result {
	struct tmo_op op;
	int32_t res;
	int calls;
	int64_t seen_at;
};
void test_record(struct tmo_op *op, int32_t res);

/*
 * Leak checks for code with threads and child processes (the pool): counts of this process's
 * fds, threads (io_uring's own iou-* workers left out) and child processes, alive or zombie.
 * test_leak_end fails the test unless all three are back to what test_leak_begin saw (threads
 * get a moment: the kernel lists a joined thread briefly after pthread_join returns).
 */
struct test_leak_base {
	int fds, threads, children;
};
void test_leak_begin(struct test_leak_base *b);
void test_leak_end(const struct test_leak_base *b);
int test_count_fds(void);
int test_count_threads(void);
int test_count_children(void);
/* State of process `pid` ('R', 'S', 'Z', ...), 0 if gone; its parent in *ppid if not NULL. */
char test_proc_state(pid_t pid, pid_t *ppid);
/* As many child processes as `before`; none at all (waitpid(-1) agrees) when that is 0. */
void test_assert_children(int before);

#endif
