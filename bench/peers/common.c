/* Helpers shared by the peers and the harness (peer.h). */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char why[512];

int64_t peer_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * PEER_NSEC_PER_SEC + ts.tv_nsec;
}

int peer_fail(int err, const char *fmt, ...)
{
	va_list ap;

	if (why[0])
		return err;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return err;
}

const char *peer_why(void)
{
	return why;
}

void peer_why_clear(void)
{
	why[0] = '\0';
}

int peer_want_fds(uint32_t fds)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= fds)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < fds)
		return peer_fail(-EMFILE, "needs %u fds, the hard RLIMIT_NOFILE is %llu", fds,
				 (unsigned long long)rl.rlim_max);
	rl.rlim_cur = fds;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	return 0;
}

int peer_socketpairs(int *fds, uint32_t flows, bool nonblocking)
{
	int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);

	for (uint32_t i = 0; i < flows; i++) {
		if (socketpair(AF_UNIX, type, 0, fds + 2 * i) < 0) {
			int err = -errno;

			peer_close_all(fds, 2 * i);
			return peer_fail(err, "socketpair %u of %u: %s", i + 1, flows, strerror(-err));
		}
	}
	return 0;
}

void peer_close_all(int *fds, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* Sum of active objects x object size over every cache in /proc/slabinfo (root only). */
static int64_t slabinfo_bytes(void)
{
	FILE *f = fopen("/proc/slabinfo", "re");
	char line[512];
	int64_t total = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char name[128];
		long long active, num, size;

		if (line[0] == '#' || strncmp(line, "slabinfo", 8) == 0)
			continue;
		if (sscanf(line, "%127s %lld %lld %lld", name, &active, &num, &size) == 4)
			total += (int64_t)active * size;
	}
	fclose(f);
	return total;
}

/* A "Key:   123 kB" line of a /proc file, in bytes, or -1. */
static int64_t proc_kb(const char *path, const char *key)
{
	FILE *f = fopen(path, "re");
	char line[256];
	size_t klen = strlen(key);
	int64_t v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		long long kb;

		if (strncmp(line, key, klen) == 0 && sscanf(line + klen, " %lld", &kb) == 1) {
			v = (int64_t)kb * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

int peer_mem_read(struct peer_mem *m)
{
	m->rss_bytes = proc_kb("/proc/self/status", "VmRSS:");
	m->kernel_bytes = slabinfo_bytes();
	m->kernel_source = "/proc/slabinfo";
	if (m->kernel_bytes < 0) {
		m->kernel_bytes = proc_kb("/proc/meminfo", "Slab:");
		m->kernel_source = "/proc/meminfo Slab";
	}
	if (m->rss_bytes < 0 || m->kernel_bytes < 0)
		return peer_fail(-ENOENT, "cannot read VmRSS or slab usage from /proc");
	return 0;
}
