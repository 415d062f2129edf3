/*
 * Private to the pool: what pool.c (threads, queue, the loop's side) and pool_helper.c (helper
 * processes for TMO_OVERRUN_KILL) share.
 */
#ifndef TMO_SRC_POOL_H
#define TMO_SRC_POOL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "internal.h"
#include "tmo/pool.h"

/* A helper process serving one worker's TMO_OVERRUN_KILL jobs, one at a time. */
struct tmo__helper {
	pid_t pid;       /* 0: none */
	int pidfd;       /* readable once the process has exited */
	int chan;        /* our end of the socketpair */
	int wake_fd;     /* eventfd: the loop asks the worker to kill (cancel, shutdown) */
	void *out;       /* the worker's copy of a result's output bytes */
	size_t out_len;
};

/* Limits the helper side needs, copied from the pool's options, and the pool's gauge of
 * helper processes alive (atomic: every worker updates it as it forks and reaps). */
struct tmo__helper_limits {
	uint32_t max_input, max_output;
	int64_t kill_grace_ns;
	uint32_t *alive;
};

/* What the helper code reports back to pool.c's counters. */
struct tmo__helper_events {
	uint32_t started, killed, sigkilled;
};

/*
 * Runs `job` in the helper (starting one first if needed) and waits for its result, its
 * deadline, or a wake on wake_fd with job->_cancel set. At the deadline or cancel the helper
 * gets SIGTERM, then SIGKILL after the grace period, is reaped, and a fresh one is started.
 * Returns the function's result (output bytes in helper->out / out_len), -ECHILD if the helper
 * died or was killed, -EMSGSIZE for an output over the limits, or fork's error.
 */
int64_t tmo__helper_run(struct tmo__helper *helper, const struct tmo__helper_limits *limits,
			struct tmo_job *job, struct tmo__helper_events *events);

/* Kills (SIGKILL) and reaps an idle helper, closes its fds, frees its buffer. */
void tmo__helper_stop(struct tmo__helper *helper, const struct tmo__helper_limits *limits);

/* Sets up an empty helper: no process yet; creates the wake eventfd. 0 or -errno. */
int tmo__helper_init(struct tmo__helper *helper);

/* The syscall job's function (tmo_job_prep_syscall); also run inside helpers. */
int64_t tmo__job_run_syscall(struct tmo_job *job);

#endif
