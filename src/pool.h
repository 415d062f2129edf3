/*
 * Private to the pool: what its files share.
 *   pool.c          the API: tmo_pool_init/shutdown/close/get_stats, tmo_job_*;
 *   pool_worker.c   the worker threads, the queue under the lock, replacements, and how a
 *                   worker hands a finished job back (the done stack, waking the loop);
 *   pool_loop.c     the loop's side: deadlines, the wait and decided lists, draining `done`,
 *                   delivering callbacks, the wake-up request on the ring;
 *   pool_signals.c  the process-wide handler of the interrupt signal;
 *   pool_helper.c   helper processes for TMO_OVERRUN_KILL.
 * Who touches what in struct tmo__pool_state:
 *   - the queue, worker slots, `tied_up`, `alive`, `waiting`: under `lock`;
 *   - a job's state: the transition table below (workers move it under `lock` only);
 *   - the finished list `done` and the futex word: atomics (workers push, the loop takes all);
 *   - everything else about a job (callbacks, the wait and decided lists, `_flags`): the loop's
 *     thread only.
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
#include "list.h"
#include "tmo/pool.h"

#define TMO__POOL_MAX_THREADS 1024u

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
 * took it off `done`. Stores are release and loads acquire, so a state seen carries the job's
 * fields written before it.
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
 *   FINISHED_REPORTED  IDLE                loop      drained (or right after the late -ETIME):
 *                                                    the release callback
 * A job is busy (tmo_job_busy) in every state after IDLE. Its callback has fired, or is firing,
 * in RUNNING_REPORTED and FINISHED_REPORTED, and in DRAINED_CANCELLED just before its release;
 * the callback of a job released at once sees IDLE. tmo_job_cancel acts only on WAITING,
 * QUEUED and RUNNING; anything else (FINISHED included: the result decides) is -EALREADY.
 *
 * Kept apart, as facts rather than places in the life:
 *   _cancel  the stop request the function (tmo_job_cancelled) and the helper's supervisor
 *            poll on the worker without the lock (atomic). The loop sets it only where the cancel
 *            wins: on a waiting job, and under the lock on a queued or running one; and again
 *            when a shutdown stops a job already reported; neither is a move of _state.
 *            It also tells deliver() to count an -ECANCELED as a cancel.
 *   _late    the function returned after the deadline: the worker reads the clock when it
 *            returns, before it lets go; it decides the outcome of a FINISHED job and whether
 *            a helper's output is copied back.
 *   _flags   the caller's options (TMO_JOB_WAIT), set while IDLE.
 */
enum tmo__job_state {
	J_NEW = 0,            /* zeroed: never prepared */
	J_IDLE,               /* prepared, not busy */
	J_WAITING,            /* on the loop's wait list: the queue was full */
	J_QUEUED,             /* in the pool's queue */
	J_SKIPPED,            /* popped past its deadline: never ran; the loop's timer reports */
	J_DECIDED,            /* never ran; its outcome (_res) waits on the decided list */
	J_RUNNING,            /* a worker runs it; its outcome is open */
	J_RUNNING_CANCELLED,  /* ... cancelled: -ECANCELED waits on the decided list */
	J_RUNNING_REPORTED,   /* ... its callback fired (deadline, or the cancel delivered) */
	J_FINISHED,           /* its worker let go: on `done` or being delivered; outcome open */
	J_FINISHED_CANCELLED, /* ... of a RUNNING_CANCELLED job: on `done` and the decided list */
	J_FINISHED_REPORTED,  /* ... of a job whose callback fired: released once off `done` */
	J_DRAINED_CANCELLED,  /* a FINISHED_CANCELLED job off `done`: only on the decided list */
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

/* The job whose _link is `link` (the queue, the wait list, the decided list). */
static inline struct tmo_job *tmo__job_of_link(struct tmo__link *link)
{
	return tmo__container_of(link, struct tmo_job, _link);
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

/* ---- the pool ------------------------------------------------------------------------------ */

enum tmo__worker_state { W_FREE = 0, W_ALIVE, W_EXITED };

struct tmo__worker {
	struct tmo__pool_state *pool;
	pthread_t thread;
	pid_t tid;
	timer_t timer;       /* signals this thread (interrupt jobs); valid if has_timer */
	bool has_timer;
	struct tmo_job *job; /* under lock */
	uint8_t state;       /* under lock */
	struct tmo__helper helper;
};

struct tmo__pool_state {
	struct tmo_loop *loop;
	struct tmo__loop_state *st;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct tmo__list queue;   /* QUEUED jobs, by _link */
	uint32_t queued, queue_size;
	uint32_t sleepers;        /* workers waiting on cond */
	uint32_t waiting;         /* jobs on the loop's wait list (workers read it) */
	uint32_t alive, tied_up;  /* worker threads; ... running an already reported job */
	uint32_t threads, max_threads;
	bool quit;
	bool room_signal;         /* a worker told the loop there is room for waiting jobs */
	struct tmo__worker *workers; /* max_threads slots */

	/* Finished jobs, newest first, linked by _done_next; and the wake-up. Not a tmo__list:
	 * workers push onto it without the lock (a compare-and-swap on the one head pointer) and
	 * the loop takes it whole with one exchange, which a two-pointer list cannot do lock-free;
	 * and a job cancelled while it ran is on it and on the decided list (_link) at once. */
	struct tmo_job *done;
	uint32_t futex_word;
	int efd;
	uint64_t efd_buf;
	enum tmo_pool_wake wake;

	/* The loop's side. */
	struct tmo__list wait;    /* WAITING jobs, in order, by _link */
	struct tmo__list decided; /* DECIDED jobs and running ones cancelled, by _link */
	struct tmo__deferred deferred; /* on the loop's deferred queue: the loop owes it work */
	bool wake_in_flight;      /* the wake-up request is in the kernel (counts as active) */
	bool wake_cancel_sent;
	bool shutdown;
	uint32_t dispatching;     /* callbacks of this pool running now: no close meanwhile */
	uint32_t busy_jobs;

	int sig;                  /* interrupt signal, or 0 */
	struct tmo__helper_limits limits;
	struct tmo_pool_stats stats;
	/* Bumped by workers outside the lock: atomics. */
	uint32_t helpers_alive;
	uint64_t helpers_started, helpers_killed, helpers_sigkilled, interrupts;
};

/* ---- pool_signals.c: the interrupt signal's handler, shared by every pool using it ---------- */

/* Installs tmo's handler for `sig` (no SA_RESTART), or counts one more user of it. 0, -EBUSY
 * (the signal has a handler that is not tmo's) or -errno. */
int tmo__pool_signal_acquire(int sig);
/* One user fewer; the last puts back the handler found before. */
void tmo__pool_signal_release(int sig);
/* The calling worker's count of interrupt signals received: reset per job, read after it. */
void tmo__pool_interrupts_reset(void);
bool tmo__pool_interrupted(void);

/* ---- pool_worker.c: workers and the queue (every *_locked with the lock held) ---------------- */

/* Starts a worker in a free slot. 0, -EAGAIN (no slot) or -errno. */
int tmo__pool_spawn_locked(struct tmo__pool_state *p);
/* Tells every worker to quit and joins them. Called without the lock. */
void tmo__pool_stop_threads(struct tmo__pool_state *p);
/* True on a thread running one of `p`'s jobs. */
bool tmo__pool_runs_here(const struct tmo__pool_state *p);
/* Appends a job to the queue (QUEUED), wakes a sleeping worker, replaces tied-up ones. */
void tmo__pool_enqueue_locked(struct tmo__pool_state *p, struct tmo_job *job);
/* Takes the first job of a queue that is not empty. */
struct tmo_job *tmo__pool_pop_locked(struct tmo__pool_state *p);
/* Takes a QUEUED job out of the queue. */
void tmo__pool_unlink_queued_locked(struct tmo__pool_state *p, struct tmo_job *job);
/* Stops a running job by its overrun level: the signal now (interrupt), the helper killed
 * now (kill); abandoned work is only flagged (_cancel). */
void tmo__pool_stop_running_locked(struct tmo__pool_state *p, struct tmo_job *job);
/* A running job's outcome is decided before its worker lets go: RUNNING -> `state`
 * (RUNNING_REPORTED or RUNNING_CANCELLED), and its worker counts as tied up. */
void tmo__pool_tie_up_locked(struct tmo__pool_state *p, struct tmo_job *job,
			     enum tmo__job_state state);

/* ---- pool_loop.c: the loop's side (the loop's thread only) ---------------------------------- */

/* Puts the pool on the loop's deferred queue: the loop owes it work (pool_loop.c serves it). */
void tmo__pool_need_attention(struct tmo__pool_state *p);
/* Appends a job the full queue cannot take to the wait list (WAITING). With the lock held. */
void tmo__pool_add_waiting_locked(struct tmo__pool_state *p, struct tmo_job *job);
/* Takes a WAITING job off the wait list. */
void tmo__pool_unlink_waiting(struct tmo__pool_state *p, struct tmo_job *job);
/* An unstarted job's outcome is decided (a deadline passed at start, a cancel, a shutdown):
 * DECIDED, it never runs; the callback fires from the loop's next pass. */
void tmo__pool_decide_unstarted(struct tmo__pool_state *p, struct tmo_job *job, int64_t res);
/* Cancels a RUNNING job: its worker is stopped by the job's overrun level and -ECANCELED waits
 * on the decided list (RUNNING_CANCELLED). With the lock held. */
void tmo__pool_cancel_running_locked(struct tmo__pool_state *p, struct tmo_job *job);

/* ---- pool_helper.c -------------------------------------------------------------------------- */

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

/* The syscall job's function (tmo_job_prep_syscall, pool.c); also run inside helpers. */
int64_t tmo__job_run_syscall(struct tmo_job *job);

#endif
