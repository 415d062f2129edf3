/*
 * Turning an error from tmo_loop_init into a message a user can act on. io_uring is the one
 * kernel interface that sysctls, seccomp profiles and old kernels take away, and a bare EPERM
 * names none of them, so look at the system and say which it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmo/loop.h"

/* Reads the first integer of a /proc file; -1 if it cannot. */
static long read_proc_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long value = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &value) != 1)
		value = -1;
	fclose(f);
	return value;
}

/* The "Seccomp:" mode of this process: 0 none, 1 strict, 2 filter; -1 unknown. */
static int seccomp_mode(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int mode = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Seccomp:", 8) == 0) {
			mode = atoi(line + 8);
			break;
		}
	}
	fclose(f);
	return mode;
}

size_t tmo_loop_describe_error(int err, char *buf, size_t size)
{
	const char *what;
	char detail[192];
	long disabled;
	int seccomp;

	switch (err) {
	case -EPERM:
		disabled = read_proc_long("/proc/sys/kernel/io_uring_disabled");
		seccomp = seccomp_mode();
		if (disabled == 2) {
			what = "io_uring is disabled for every process by sysctl "
			       "kernel.io_uring_disabled=2";
		} else if (disabled == 1) {
			long group = read_proc_long("/proc/sys/kernel/io_uring_group");
			snprintf(detail, sizeof(detail),
				 "io_uring is restricted by sysctl kernel.io_uring_disabled=1: only "
				 "processes with CAP_SYS_ADMIN or in group kernel.io_uring_group "
				 "(gid %ld) may use it",
				 group);
			what = detail;
		} else if (seccomp == 2) {
			what = "io_uring_setup was refused by a seccomp filter on this process "
			       "(container runtimes such as Docker 25+ block io_uring in their "
			       "default profile; allow io_uring_setup in the profile)";
		} else {
			what = "io_uring_setup was refused (EPERM) by the system's security policy "
			       "(sysctl kernel.io_uring_disabled, a seccomp filter or an LSM)";
		}
		break;
	case -ENOSYS:
		if (seccomp_mode() == 2)
			what = "io_uring_setup is not available (ENOSYS): a seccomp filter on this "
			       "process hides it, or the kernel was built without io_uring";
		else
			what = "this kernel has no io_uring (built without CONFIG_IO_URING, or "
			       "older than Linux 5.1)";
		break;
	case -EOPNOTSUPP:
		what = "the kernel's io_uring lacks features tmo needs (EXT_ARG, NODROP, linked "
		       "timeouts and async cancel: Linux 5.11 or later; DEFER_TASKRUN for the "
		       "low-latency mode: Linux 6.1 or later)";
		break;
	case -ENOMEM:
		what = "the kernel could not allocate the io_uring rings (out of memory, or "
		       "RLIMIT_MEMLOCK too low on kernels before 5.12)";
		break;
	case -EMFILE:
	case -ENFILE:
		what = "no file descriptor left for the io_uring instance (RLIMIT_NOFILE)";
		break;
	case -EINVAL:
		what = "invalid argument (loop options: ring_entries must be a power of two from "
		       "2 to 32768, cq_entries a power of two from ring_entries to 65536)";
		break;
	default:
		if (err < 0) {
			snprintf(detail, sizeof(detail), "%s", strerror(-err));
			what = detail;
		} else {
			what = "no error";
		}
		break;
	}
	int n = snprintf(buf, size, "tmo: %s", what);
	return n < 0 ? 0 : (size_t)n;
}
