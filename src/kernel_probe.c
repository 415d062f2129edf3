/*
 * Kernel behaviour that no io_uring probe reports, found out once per process by trying it.
 *
 * Nowait pipes: from Linux 6.4 an anonymous pipe is opened with FMODE_NOWAIT, so io_uring
 * reads and writes it at submit time like a socket. Before 6.4, and for FIFOs opened by path
 * on every kernel measured (6.1, 6.12, 6.18), a read or write on a *blocking* pipe cannot be
 * tried without blocking: io_uring waits for it by poll, then runs it blocking in an io-wq
 * worker. There a write into a full pipe blocks until it is interrupted, and returns the bytes
 * it wrote so far when a cancel or a linked timeout interrupts it, not -ECANCELED.
 * The VFS tells the same flag apart: preadv2(RWF_NOWAIT) on an empty pipe answers -EAGAIN
 * with FMODE_NOWAIT and -EOPNOTSUPP without, reading nothing either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

enum { PROBE_UNKNOWN = 0, PROBE_NO, PROBE_YES };

static _Atomic int pipes_nowait = PROBE_UNKNOWN;
static _Atomic unsigned long long pipefs_dev; /* st_dev of anonymous pipes */

static void probe_pipes(void)
{
	int p[2];
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct stat sb;

	if (pipe2(p, O_CLOEXEC) < 0)
		return; /* out of fds: ask again next time */
	ssize_t r = preadv2(p[0], &iov, 1, -1, RWF_NOWAIT);
	int err = r < 0 ? errno : 0;
	if (fstat(p[0], &sb) == 0)
		atomic_store(&pipefs_dev, (unsigned long long)sb.st_dev);
	close(p[0]);
	close(p[1]);
	atomic_store(&pipes_nowait, err == EAGAIN ? PROBE_YES : PROBE_NO);
}

bool tmo__kernel_pipes_nowait(void)
{
	if (atomic_load(&pipes_nowait) == PROBE_UNKNOWN)
		probe_pipes();
	return atomic_load(&pipes_nowait) == PROBE_YES;
}

bool tmo__fd_io_blocks_in_iowq(int fd, const struct stat *sb)
{
	if (!S_ISFIFO(sb->st_mode))
		return false; /* sockets are nowait on every kernel tmo supports */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_NONBLOCK))
		return false; /* a non-blocking pipe completes at submit time or waits by poll */
	if (!tmo__kernel_pipes_nowait()) /* probes first: pipefs_dev is known after */
		return true;
	/* An unknown pipefs device (its fstat failed) counts as a FIFO: writes are then cut
	 * into PIPE_BUF pieces, slower but right. */
	return (unsigned long long)sb->st_dev != atomic_load(&pipefs_dev);
}
