#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

int test_close_leftovers(struct tmo_loop *loop, struct tmo_pool *pool)
{
	int left = 0;

	if (pool) {
		/* end every job, let the workers let go, close */
		fprintf(stderr, "teardown: pool left open, shutting it down\n");
		left = 1;
		tmo_pool_shutdown(pool);
		tmo_loop_run_until(loop, tmo_in_ms(20000));
		int ret = tmo_pool_close(pool);
		if (ret) {
			fprintf(stderr, "teardown: tmo_pool_close: %d\n", ret);
			return -1; /* leaks rather than frees memory a worker may still use */
		}
	}
	if (tmo_loop_active(loop)) { /* ops a failed test left pending (bounded) */
		left = 1;
		tmo_loop_run_until(loop, tmo_in_ms(5000));
	}
	int ret = tmo_loop_close(loop);
	if (ret) {
		fprintf(stderr, "teardown: tmo_loop_close: %d (%u still active)\n", ret,
			tmo_loop_active(loop));
		return -1;
	}
	return left;
}

void test_pipe(int fds[2])
{
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
}

void test_socketpair(int fds[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
}

void test_fifo(int fds[2])
{
	char path[64];

	snprintf(path, sizeof(path), "/tmp/tmo-test-fifo-%d", (int)getpid());
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	fds[0] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(fds[0] >= 0);
	fds[1] = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fds[1] >= 0);
	unlink(path);
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

/* ---- leaks: threads, fds, child processes ------------------------------------------------- */

int test_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Threads of this process, not counting io_uring's own workers (iou-wrk-*, iou-sqp-*), which
 * the kernel starts and retires on its own schedule. */
int test_count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue; /* gone meanwhile */
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		if (strncmp(comm, "iou-", 4) != 0)
			n++;
	}
	closedir(d);
	return n;
}

/* State of process `pid` from /proc/<pid>/stat ('R', 'S', 'Z', ...), 0 if it is gone; its
 * parent in *ppid. */
char test_proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the name may hold anything */
	char state = 0;
	int parent = 0;
	if (!p || sscanf(p + 1, " %c %d", &state, &parent) != 2)
		return 0;
	if (ppid)
		*ppid = parent;
	return state;
}

/* Child processes of ours, alive or zombie (/proc/<pid>/stat naming us as parent). */
int test_count_children(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), ppid = 0;
		if (pid > 0 && test_proc_state(pid, &ppid) && ppid == getpid())
			n++;
	}
	closedir(d);
	return n;
}

/* As many child processes as `before`; none at all (waitpid(-1) says so too) when that is 0.
 * (A test that failed may have left its pool, and its helpers, behind: the next ones compare
 * with that instead of failing in turn.) */
void test_assert_children(int before)
{
	int n = test_count_children();
	if (n != before)
		fail_msg("%d child processes after, %d before", n, before);
	if (before == 0) {
		errno = 0;
		pid_t w = waitpid(-1, NULL, WNOHANG | __WALL);
		if (w != -1 || errno != ECHILD)
			fail_msg("a child process is left: waitpid(-1) = %d (%s)", (int)w,
				 w == 0 ? "alive" : w > 0 ? "a zombie" : strerror(errno));
	}
}

void test_leak_begin(struct test_leak_base *b)
{
	b->fds = test_count_fds();
	b->threads = test_count_threads();
	b->children = test_count_children();
}

/* After tmo_pool_close: threads back to the count before the pool (the kernel lists a joined
 * thread for a moment after pthread_join returns, hence the short wait), fds the same, no
 * new child process. */
void test_leak_end(const struct test_leak_base *b)
{
	int threads = test_count_threads();
	for (int i = 0; i < 200 && threads != b->threads; i++) {
		test_sleep_ms(5);
		threads = test_count_threads();
	}
	if (threads != b->threads)
		fail_msg("%d threads after, %d before", threads, b->threads);
	int fds = test_count_fds();
	if (fds != b->fds)
		fail_msg("%d fds after, %d before", fds, b->fds);
	test_assert_children(b->children);
}
