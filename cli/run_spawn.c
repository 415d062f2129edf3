/*
 * tmo run, spawning: what the command needs before it starts (the signalfd, with -i the pipes
 * for its stdout and stderr, the loop), the fork, the child's side up to exec, and the pidfd
 * tmo watches it with; run_release closes it all at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "cli.h"
#include "run.h"

/* ---- the child ---------------------------------------------------------------------------- */

static void child(struct run *r, const sigset_t *child_mask)
{
	if (r->nstreams) {
		if (dup2(r->pipe_w[0], STDOUT_FILENO) < 0 || dup2(r->pipe_w[1], STDERR_FILENO) < 0) {
			msg("child failed to attach its output pipes: %s", strerror(errno));
			_exit(EXIT_TMO_FAILED);
		}
	}
	if (r->stdin_closed)
		close(STDIN_FILENO);
	signal(SIGTTIN, SIG_DFL);
	signal(SIGTTOU, SIG_DFL);
	if (sigprocmask(SIG_SETMASK, child_mask, NULL) != 0) {
		msg("child failed to reset signal mask: %s", strerror(errno));
		_exit(EXIT_TMO_FAILED);
	}
	execvp(r->argv[0], r->argv);
	int err = errno;
	char q[512];
	msg("failed to run command %s: %s", quote(r->command, q, sizeof(q)), strerror(err));
	_exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN);
}

/* ---- before the fork ---------------------------------------------------------------------- */

/* With -i: keeps fds 0-2 taken, so that no pipe lands there. False (and said) if it could
 * not: a pipe on fd 1 or 2 would mix tmo's own messages into the command's output. */
static bool hold_std_fds(struct run *r)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			r->placeholders[fd] = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (r->placeholders[fd] < 0) {
				msg("cannot open /dev/null for closed fd %d: %s", fd, strerror(errno));
				return false;
			}
			if (fd == STDIN_FILENO)
				r->stdin_closed = true;
		}
	}
	return true;
}

/* With -i: a pipe and a buffer for each of the command's stdout and stderr. */
static bool open_pipes(struct run *r)
{
	for (int i = 0; i < r->nstreams; i++) {
		int fds[2];
		if (pipe2(fds, O_CLOEXEC) < 0) {
			msg("pipe: %s", strerror(errno));
			return false;
		}
		r->pipe_w[i] = fds[1];
		struct stream *s = &r->st[i];
		s->run = r;
		s->in = fds[0];
		s->out = i == 0 ? STDOUT_FILENO : STDERR_FILENO;
		s->buf = malloc(BUF_SIZE);
		if (!s->buf) {
			msg("out of memory");
			return false;
		}
	}
	if (r->nstreams) {
		struct stat a, b;
		r->shared_out = fstat(STDOUT_FILENO, &a) == 0 && fstat(STDERR_FILENO, &b) == 0 &&
				a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	}
	return true;
}

static bool prepare(struct run *r)
{
	if (r->nstreams && !hold_std_fds(r))
		return false;
	r->sigfd = signalfd(-1, &r->caught, SFD_NONBLOCK | SFD_CLOEXEC);
	if (r->sigfd < 0) {
		msg("signalfd: %s", strerror(errno));
		return false;
	}
	if (!open_pipes(r))
		return false;
	int ret = tmo_loop_init(&r->loop, NULL);
	if (ret) {
		char why[256];
		tmo_loop_describe_error(ret, why, sizeof(why));
		msg("cannot start the io_uring loop: %s", why);
		return false;
	}
	r->loop_ready = true;
	return true;
}

/* ---- the fork ----------------------------------------------------------------------------- */

bool run_spawn(struct run *r, const sigset_t *child_mask)
{
	if (!prepare(r))
		return false;
	r->pid = fork();
	if (r->pid < 0) {
		msg("fork system call failed: %s", strerror(errno));
		return false;
	}
	if (r->pid == 0)
		child(r, child_mask);

	for (int i = 0; i < r->nstreams; i++) {
		close(r->pipe_w[i]);
		r->pipe_w[i] = -1; /* the read ends are the streams' now */
	}
	if (r->nstreams)
		signal(SIGPIPE, SIG_IGN); /* tmo's own writes get EPIPE */
	r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
	if (r->pidfd < 0) {
		msg("pidfd_open: %s", strerror(errno));
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		return false;
	}
	return true;
}

void run_release(struct run *r)
{
	if (r->loop_ready) {
		int cret = tmo_loop_close(&r->loop);
		if (cret)
			msg("closing the loop: %s", strerror(-cret));
	}
	for (int i = 0; i < 2; i++) {
		if (r->st[i].in >= 0 && r->st[i].run)
			close(r->st[i].in);
		if (r->pipe_w[i] >= 0)
			close(r->pipe_w[i]);
		free(r->st[i].buf);
	}
	if (r->sigfd >= 0)
		close(r->sigfd);
	if (r->pidfd >= 0)
		close(r->pidfd);
	for (int fd = 0; fd < 3; fd++)
		if (r->placeholders[fd] >= 0)
			close(r->placeholders[fd]);
}
