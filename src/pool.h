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

/*
 * A job's life: job->_state holds one of these. It is atomic because the loop reads it without
 * the pool's lock (tmo_job_cancel, tmo_job_busy, a deadline's first look) while a worker may be
 * writing it. Who may move it:
 *   loop      the loop's thread, without the lock;
 *   loop+L    the loop's thread, holding the pool's lock;
 *   worker+L  a worker thread, holding the pool's lock. No worker writes it without the lock.
 * Why that is enough: a worker reaches a job only by popping it from the queue (QUEUED, under
 * the lock) or as the job it runs (RUNNING_*, until it lets go under the lock). So every move
 * out of QUEUED or a RUNNING_* state is made under the lock, by the loop or by the worker, and
 * the two never write the field at once; each other state is out of every worker's reach and
 * the loop alone moves it, without the lock. A job the loop unlinked from the queue under the
 * lock is out of reach too: the loop may store its next state after unlocking. Once a worker
 * lets go (FINISHED_*), it still writes _res, the output and _done_next and pushes the job onto
 * `done`, but never _state again; the loop releases (IDLE) a job its worker ran only after it
 * took it off `done`.
 *
 *   from               to                  by        when
 *   NEW                IDLE                loop      tmo_job_prep (IDLE -> IDLE: prepared again)
 *   IDLE               DECIDED             loop      tmo_job_start past the deadline: -ETIME waits
 *   IDLE               QUEUED              loop+L    tmo_job_start; workers can pop it from here
 *   IDLE               WAITING             loop+L    tmo_job_start, queue full, TMO_JOB_WAIT (the
 *                                                    lock is for the `waiting` count workers read)
 *   WAITING            QUEUED              loop+L    room in the queue (promote_waiters)
 *   WAITING            DECIDED             loop      tmo_job_cancel, tmo_pool_shutdown: -ECANCELED
 *   WAITING            IDLE                loop      its deadline: -ETIME delivered
 *   QUEUED             RUNNING             worker+L  popped
 *   QUEUED             SKIPPED             worker+L  popped past its deadline: it never runs
 *   QUEUED             DECIDED             loop+L    cancel, shutdown: unlinked under the lock
 *   QUEUED             IDLE                loop+L    its deadline: unlinked under the lock, -ETIME
 *                                                    delivered after unlocking
 *   SKIPPED            IDLE                loop      its deadline (due when the worker saw it)
 *   DECIDED            IDLE                loop      the decided list delivers _res
 *   RUNNING            RUNNING_REPORTED    loop+L    its deadline: tied_up++, -ETIME delivered
 *                                                    after unlocking
 *   RUNNING            RUNNING_CANCELLED   loop+L    cancel, shutdown: the worker is stopped by
 *                                                    the overrun level, tied_up++, -ECANCELED waits
 *                                                    on the decided list
 *   RUNNING_CANCELLED  RUNNING_REPORTED    loop+L    the decided list delivers -ECANCELED
 *   RUNNING            FINISHED            worker+L  the function returned
 *   RUNNING_CANCELLED  FINISHED_CANCELLED  worker+L  the function returned (tied_up--)
 *   RUNNING_REPORTED   FINISHED_REPORTED   worker+L  the function returned (tied_up--)
 *   FINISHED           IDLE                loop      drained: its result delivered
 *   FINISHED           FINISHED_REPORTED   loop      drained, _late: -ETIME delivered, then IDLE
 *   FINISHED_CANCELLED DRAINED_CANCELLED   loop      drained before the decided list's -ECANCELED
 *   FINISHED_CANCELLED FINISHED_REPORTED   loop+L    the decided list delivers -ECANCELED before
 *                                                    the drain (the lock decides the race with
 *                                                    the worker's RUNNING_CANCELLED -> FINISHED_*)
 *   DRAINED_CANCELLED  IDLE                loop      the decided list delivers -ECANCELED and
 *                                                    the release callback
 *   FINISHED_REPORTED  IDLE                loop      drained: the release callback
 * A job is busy (tmo_job_busy) in every state after IDLE. Its callback has fired, or is firing,
 * in RUNNING_REPORTED and FINISHED_REPORTED; the callback of a job released at once sees IDLE.
 *
 * Kept apart, as facts rather than places in the life:
 *   _cancel  the stop request the function (tmo_job_cancelled) and the helper's supervisor
 *            poll on the worker without the lock. The loop sets it before it looks for the job
 *            (so a job popped meanwhile starts already cancelled) and again when a shutdown
 *            stops a job already reported; neither is a move of _state.
 *   _late    the function returned after the deadline: the worker reads the clock when it
 *            returns, before it lets go; it decides the outcome of a FINISHED job and whether
 *            a helper's output is copied back.
 *   _flags   the caller's options (TMO_JOB_WAIT), set while IDLE.
 */
enum tmo__job_state {
	J_NEW = 0,          /* zeroed: never prepared */
	J_IDLE,             /* prepared, not busy */
	J_WAITING,          /* on the loop's wait list: the queue was full */
	J_QUEUED,           /* in the pool's queue */
	J_SKIPPED,          /* a worker found it past its deadline: never ran; the loop's timer reports */
	J_DECIDED,          /* never ran; its outcome (_res) waits on the decided list */
	J_RUNNING,          /* a worker runs it; its outcome is open */
	J_RUNNING_CANCELLED, /* ... cancelled: -ECANCELED waits on the decided list */
	J_RUNNING_REPORTED, /* ... its callback fired (deadline, or the cancel delivered) */
	J_FINISHED,         /* its worker let go: on `done` or being delivered; its outcome is open */
	J_FINISHED_CANCELLED, /* ... of a RUNNING_CANCELLED job: on `done` and the decided list */
	J_FINISHED_REPORTED, /* ... of a job whose callback fired: released once off `done` */
	J_DRAINED_CANCELLED, /* a FINISHED_CANCELLED job off `done`: only the decided list holds it */
};

static inline uint8_t tmo__job_state(const struct tmo_job *job)
{
	return __atomic_load_n(&job->_state, __ATOMIC_ACQUIRE);
}

static inline void tmo__job_set_state(struct tmo_job *job, enum tmo__job_state state)
{
	__atomic_store_n(&job->_state, (uint8_t)state, __ATOMIC_RELEASE);
}

/* A worker runs it: RUNNING, RUNNING_CANCELLED or RUNNING_REPORTED. */
static inline bool tmo__job_running(uint8_t state)
{
	return state >= J_RUNNING && state <= J_RUNNING_REPORTED;
}

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
