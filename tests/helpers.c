#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t test_tolerance_ns(void)
{
	const char *env = getenv("TMO_TEST_TOLERANCE_MS");
	long ms = env ? atol(env) : 0;

	return (ms > 0 ? ms : 250) * TMO_NSEC_PER_MSEC;
}

void test_assert_on_time(int64_t seen, int64_t deadline, const char *file, int line)
{
	int64_t late = seen - deadline;

	if (late < 0)
		fail_msg("%s:%d: seen %.3f ms BEFORE the deadline", file, line, (double)-late / 1e6);
	if (late > test_tolerance_ns())
		fail_msg("%s:%d: seen %.3f ms after the deadline (tolerance %.0f ms)", file, line,
			 (double)late / 1e6, (double)test_tolerance_ns() / 1e6);
}

static int setup_with(void **state, const struct tmo_loop_options *options)
{
	struct tmo_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return -1;
	int ret = tmo_loop_init(loop, options);
	if (ret) {
		char msg[256];
		tmo_loop_describe_error(ret, msg, sizeof(msg));
		fprintf(stderr, "%s\n", msg);
		free(loop);
		return -1;
	}
	*state = loop;
	return 0;
}

int test_loop_setup(void **state)
{
	return setup_with(state, NULL);
}

int test_loop_setup_loop_deadlines(void **state)
{
	struct tmo_loop_options options = { .deadlines = TMO_DEADLINES_LOOP };

	return setup_with(state, &options);
}

int test_loop_teardown(void **state)
{
	struct tmo_loop *loop = *state;
	int ret = tmo_loop_close(loop);

	if (ret) {
		fprintf(stderr, "teardown: tmo_loop_close: %d (%u ops still active)\n", ret,
			tmo_loop_active(loop));
		return -1;
	}
	free(loop);
	return 0;
}

void test_pipe(int fds[2])
{
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
}

void test_socketpair(int fds[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
}

void test_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

int test_readable(int fd)
{
	int n = -1;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

void test_sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void test_record(struct tmo_op *op, int32_t res)
{
	struct test_result *r = (struct test_result *)op;

	r->res = res;
	r->calls++;
	r->seen_at = tmo_now();
}
