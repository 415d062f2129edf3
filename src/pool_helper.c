/*
 * Helper processes for TMO_OVERRUN_KILL: the only way to stop work that never yields is to
 * run it where it can be killed. Each worker thread keeps at most one helper, forked from the
 * worker, and talks to it over a socketpair:
 *
 *   request:  struct request, then in_len input bytes       (in_len <= max_input)
 *   response: struct response, then out_len output bytes    (out_len <= the job's out_cap,
 *                                                             and <= max_output)
 *
 * The helper is a fork of this process, so the job's function pointer and any memory that
 * existed at the fork are valid in it; data crosses only through the input and output bytes.
 * It keeps stdin, stdout and stderr and closes every other fd (sockets and files of the parent
 * stay the parent's: a peer still sees EOF when the parent closes them). It dies with its
 * worker thread (PR_SET_PDEATHSIG), and when its socket closes.
 *
 * At a deadline or cancel: SIGTERM, then SIGKILL after the grace period if it has not exited
 * (pidfd poll), reap, and fork a fresh helper at once so the next job does not wait for it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

struct request {
	uint64_t fn;
	uint64_t data;
	int64_t deadline;
	uint64_t in_len;
	uint64_t out_cap;
	int64_t sys_nr;
	int64_t sys_args[6];
};

struct response {
	int64_t res;
	uint64_t out_len;
};

/* Reads exactly len bytes. Returns 0, or -1 on EOF or error. */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes exactly len bytes (no SIGPIPE). Returns 0 or -errno. */
static int send_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- inside the helper -------------------------------------------------------------------- */

/*
 * Runs in the child. `in` and `out` were allocated by the worker before the fork: a child of a
 * multithreaded process must not call malloc (another thread may have held the allocator's
 * lock at the fork; seen with ASan's allocator), so nothing here allocates.
 */
static __attribute__((noreturn)) void helper_main(int chan, pid_t parent,
						  const struct tmo__helper_limits *limits, char *in,
						  char *out)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0); /* the worker is already gone */
	/* The worker blocked every signal and the program may catch some: the helper starts
	 * with SIGTERM, SIGINT and SIGHUP doing what they do by default, and none blocked. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGTERM, &dfl, NULL);
	sigaction(SIGINT, &dfl, NULL);
	sigaction(SIGHUP, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (chan != 3) {
		if (dup2(chan, 3) < 0)
			_exit(127);
		chan = 3;
	}
	syscall(SYS_close_range, 4u, ~0u, 0u);

	for (;;) {
		struct request rq;
		if (read_full(chan, &rq, sizeof(rq)))
			_exit(0); /* the worker closed the channel */
		if (rq.in_len > limits->max_input || read_full(chan, in, rq.in_len))
			_exit(127);
		struct tmo_job job;
		memset(&job, 0, sizeof(job));
		job.data = (void *)(uintptr_t)rq.data;
		job._fn = (tmo_job_fn)(uintptr_t)rq.fn;
		job._deadline = rq.deadline;
		job._in = in;
		job._in_len = rq.in_len;
		job._out = out;
		job._out_cap = rq.out_cap < limits->max_output ? rq.out_cap : limits->max_output;
		job._sys_nr = (long)rq.sys_nr;
		for (int i = 0; i < 6; i++)
			job._sys_args[i] = (long)rq.sys_args[i];
		struct response rs = { .res = job._fn(&job) };
		rs.out_len = job._out_len <= job._out_cap ? job._out_len : 0;
		if (send_full(chan, &rs, sizeof(rs)) || send_full(chan, out, rs.out_len))
			_exit(0);
	}
}

/* ---- the worker's side -------------------------------------------------------------------- */

int tmo__helper_init(struct tmo__helper *helper)
{
	memset(helper, 0, sizeof(*helper));
	helper->pidfd = helper->chan = -1;
	helper->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return helper->wake_fd < 0 ? -errno : 0;
}

static int spawn(struct tmo__helper *h, const struct tmo__helper_limits *limits,
		 struct tmo__helper_events *events)
{
	int sv[2];
	/* The child's buffers: its copy of this allocation is its own after the fork. */
	char *child_in = malloc(limits->max_input ? limits->max_input : 1);
	if (!child_in)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(child_in);
		return -errno;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		close(sv[0]);
		close(sv[1]);
		free(child_in);
		return err;
	}
	if (pid == 0) {
		close(sv[0]);
		helper_main(sv[1], parent, limits, child_in, h->out);
	}
	free(child_in);
	close(sv[1]);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		int err = -errno;
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(sv[0]);
		return err;
	}
	h->pid = pid;
	h->pidfd = pidfd;
	h->chan = sv[0];
	events->started++;
	__atomic_fetch_add(limits->alive, 1, __ATOMIC_RELAXED);
	return 0;
}

/* Signals the helper through its pidfd: if the program reaps children itself, a pid could be
 * reused by then; the pidfd names this process only. */
static void signal_helper(struct tmo__helper *h, int sig)
{
	syscall(SYS_pidfd_send_signal, h->pidfd, sig, NULL, 0);
}

/* Waits up to `ns` (negative: for ever) for the helper to exit. */
static bool wait_exit(struct tmo__helper *h, int64_t ns)
{
	int64_t end = ns < 0 ? TMO_NEVER_NS : tmo_now() + ns;
	for (;;) {
		struct pollfd pfd = { .fd = h->pidfd, .events = POLLIN };
		struct timespec ts, *tsp = NULL;
		if (end != TMO_NEVER_NS) {
			int64_t left = end - tmo_now();
			if (left < 0)
				left = 0;
			ts.tv_sec = left / TMO_NSEC_PER_SEC;
			ts.tv_nsec = left % TMO_NSEC_PER_SEC;
			tsp = &ts;
		}
		int r = ppoll(&pfd, 1, tsp, NULL);
		if (r > 0)
			return true;
		if (r == 0)
			return false;
		if (errno != EINTR)
			return false;
	}
}

/* The helper is gone or going: reap it and close its fds. */
static void reap(struct tmo__helper *h, const struct tmo__helper_limits *limits)
{
	while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
		;
	/* ECHILD: the program reaps children itself (SIGCHLD ignored or a waitpid(-1)). */
	close(h->pidfd);
	close(h->chan);
	h->pidfd = h->chan = -1;
	h->pid = 0;
	__atomic_fetch_sub(limits->alive, 1, __ATOMIC_RELAXED);
}

static void kill_helper(struct tmo__helper *h, const struct tmo__helper_limits *limits,
			struct tmo__helper_events *events)
{
	signal_helper(h, SIGTERM);
	events->killed++;
	if (!wait_exit(h, limits->kill_grace_ns)) {
		signal_helper(h, SIGKILL);
		events->sigkilled++;
		wait_exit(h, -1);
	}
	reap(h, limits);
}

void tmo__helper_stop(struct tmo__helper *h, const struct tmo__helper_limits *limits)
{
	if (h->pid) {
		signal_helper(h, SIGKILL);
		wait_exit(h, -1);
		reap(h, limits);
	}
	if (h->wake_fd >= 0)
		close(h->wake_fd);
	h->wake_fd = -1;
	free(h->out);
	h->out = NULL;
}

static int send_request(struct tmo__helper *h, const struct tmo_job *job)
{
	struct request rq;
	memset(&rq, 0, sizeof(rq));
	rq.fn = (uint64_t)(uintptr_t)job->_fn;
	rq.data = (uint64_t)(uintptr_t)job->data;
	rq.deadline = job->_deadline;
	rq.in_len = job->_in_len;
	rq.out_cap = job->_out_cap;
	rq.sys_nr = job->_sys_nr;
	for (int i = 0; i < 6; i++)
		rq.sys_args[i] = job->_sys_args[i];
	int ret = send_full(h->chan, &rq, sizeof(rq));
	if (!ret && job->_in_len)
		ret = send_full(h->chan, job->_in, job->_in_len);
	return ret;
}

int64_t tmo__helper_run(struct tmo__helper *h, const struct tmo__helper_limits *limits,
			struct tmo_job *job, struct tmo__helper_events *events)
{
	h->out_len = 0;
	if (!h->out) {
		h->out = malloc(limits->max_output ? limits->max_output : 1);
		if (!h->out)
			return -ENOMEM;
	}
	int ret = h->pid ? 0 : spawn(h, limits, events);
	if (ret)
		return ret;
	ret = send_request(h, job);
	if (ret) {
		/* The idle helper died (killed from outside): one fresh try. */
		signal_helper(h, SIGKILL);
		wait_exit(h, -1);
		reap(h, limits);
		ret = spawn(h, limits, events);
		if (!ret)
			ret = send_request(h, job);
		if (ret)
			return ret == -EPIPE || ret == -ECONNRESET ? -ECHILD : ret;
	}

	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = h->chan, .events = POLLIN },
			{ .fd = h->wake_fd, .events = POLLIN },
		};
		struct timespec ts, *tsp = NULL;
		if (job->_deadline != TMO_NEVER_NS) {
			int64_t left = job->_deadline - tmo_now();
			if (left < 0)
				left = 0;
			ts.tv_sec = left / TMO_NSEC_PER_SEC;
			ts.tv_nsec = left % TMO_NSEC_PER_SEC;
			tsp = &ts;
		}
		int r = ppoll(fds, 2, tsp, NULL);
		if (r < 0 && errno == EINTR)
			continue;
		bool stop = false;
		if (r == 0 && tmo_now() >= job->_deadline)
			stop = true;
		if (r > 0 && (fds[1].revents & POLLIN)) {
			uint64_t v;
			while (read(h->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
				;
			stop = __atomic_load_n(&job->_cancel, __ATOMIC_SEQ_CST) != 0;
		}
		if (!stop && r > 0 && fds[0].revents) {
			struct response rs;
			if (read_full(h->chan, &rs, sizeof(rs)) == 0 && rs.out_len <= job->_out_cap &&
			    rs.out_len <= limits->max_output && read_full(h->chan, h->out, rs.out_len) == 0) {
				h->out_len = rs.out_len;
				return rs.res;
			}
			/* It died (EOF), or broke the protocol: either way it is done for. */
			signal_helper(h, SIGKILL);
			wait_exit(h, -1);
			reap(h, limits);
			spawn(h, limits, events);
			return -ECHILD;
		}
		if (stop) {
			kill_helper(h, limits, events);
			spawn(h, limits, events); /* a fresh helper takes its place */
			return -ECHILD;
		}
	}
}
