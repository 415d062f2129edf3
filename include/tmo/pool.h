/*
 * tmo worker pool: blocking calls taken off the loop thread, with deadlines that hold whatever
 * the call does.
 *
 * A deadline means nothing to a call that blocks the thread running the loop (a sleep, a
 * blocking read, a CPU loop): the loop cannot run its timers until the call returns. A pool
 * runs such calls ("jobs") on worker threads attached to one loop. The job's callback fires on
 * the loop, by the job's deadline, whatever the worker is doing, and the loop serves other
 * operations meanwhile. No thread is used for timers: the loop keeps each job's deadline in its
 * own heap (one kernel timeout for the earliest), a worker running an interrupt job arms a
 * per-thread kernel timer, and a worker supervising a helper process waits with a timeout.
 *
 * Results reach the loop as completions on its ring: workers push finished jobs onto a
 * lock-free list and wake the loop with one futex wake (IORING_OP_FUTEX_WAIT, Linux 6.7) or one
 * eventfd write (older kernels), and only when the list was empty: a burst of results costs one
 * wake-up. See docs/pool.md for the measurements behind the choice.
 *
 * What happens to a job that runs past its deadline is chosen per job (enum tmo_overrun):
 *   TMO_OVERRUN_ABANDON    the callback fires with -ETIME at the deadline; the function runs on
 *                          and its result is discarded (or handed to the release callback).
 *                          The worker is tied up until it returns; the pool starts replacement
 *                          workers up to max_threads so that tied-up workers do not starve it.
 *   TMO_OVERRUN_INTERRUPT  as abandon, and at the deadline the worker thread gets a signal
 *                          (installed without SA_RESTART; repeated every 5 ms until the
 *                          function returns), so a blocking system call in the job
 *                          (sleep, read, connect, a futex wait) returns EINTR and the worker is
 *                          free at once. A job that retries on EINTR, or computes without
 *                          making system calls, is not stopped: it should check
 *                          tmo_job_cancelled().
 *   TMO_OVERRUN_KILL       the job runs in a helper process. At the deadline the helper gets
 *                          SIGTERM, then SIGKILL after the pool's grace period (as GNU timeout's
 *                          --kill-after), and a fresh helper takes its place. The only level that
 *                          stops a CPU loop that never yields. Input and output cross the
 *                          process boundary by value, through the job's input and output buffers
 *                          (see tmo_job_set_io), bounded by the pool's max_input / max_output.
 *
 * Threads: every function here is called from the loop's thread, except tmo_job_deadline,
 * tmo_job_cancelled, tmo_job_input, tmo_job_output and tmo_job_set_output_len, which are for
 * the job function on its worker (or helper).
 */
#ifndef TMO_POOL_H
#define TMO_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "op.h"

TMO_BEGIN_DECLS

struct tmo_loop;
struct tmo_pool;
struct tmo_job;

/*
 * The job's function, run on a worker thread (or, under TMO_OVERRUN_KILL, in a helper
 * process). Its return value is the job's result: >= 0 for success, a negative errno for
 * failure (both are passed to the callback unchanged). It should not return -ETIME or
 * -ECANCELED, which the callback cannot then tell from the pool's own outcomes.
 */
typedef int64_t (*tmo_job_fn)(struct tmo_job *job);

/*
 * Completion callback: fires exactly once per successful tmo_job_start(), from inside
 * tmo_loop_run*, with:
 *   the function's result   it returned before the deadline;
 *   -ETIME                  the deadline passed first: while the job waited for a worker (it
 *                           then never runs) or while it ran (see enum tmo_overrun);
 *   -ECANCELED              tmo_job_cancel() or tmo_pool_shutdown() came first;
 *   -ECHILD                 (TMO_OVERRUN_KILL) the helper process died without answering (a
 *                           crash, an exit() in the function, a signal from elsewhere);
 *   -EAGAIN, -ENOMEM, ...   (TMO_OVERRUN_KILL) no helper process could be started (fork's
 *                           error).
 * When the callback fires with -ETIME or -ECANCELED for a job that had started, the function
 * may still be running: tmo_job_busy() stays true until it returns (see the release callback).
 */
typedef void (*tmo_job_cb)(struct tmo_job *job, int64_t res);

/*
 * Release callback: fires once, from inside tmo_loop_run*, when the worker lets go of a job
 * whose callback already fired (-ETIME or -ECANCELED while it ran). `late_res` is what the
 * function returned (for an interrupted job typically -EINTR), or -ECHILD for a job whose
 * helper process was killed. For every other job the completion callback is the release.
 */
typedef void (*tmo_job_release_cb)(struct tmo_job *job, int64_t late_res);

enum tmo_overrun {
	TMO_OVERRUN_ABANDON = 0,
	TMO_OVERRUN_INTERRUPT = 1,
	TMO_OVERRUN_KILL = 2,
};

/* "abandon", "interrupt", "kill"; "unknown" out of range. Never NULL. */
TMO_API const char *tmo_overrun_name(enum tmo_overrun overrun);

/* How workers wake the loop (struct tmo_pool_options.wake). */
enum tmo_pool_wake {
	TMO_POOL_WAKE_AUTO = 0,    /* futex where the kernel has IORING_OP_FUTEX_WAIT, else eventfd */
	TMO_POOL_WAKE_FUTEX = 1,   /* IORING_OP_FUTEX_WAIT on a futex word (Linux 6.7) */
	TMO_POOL_WAKE_EVENTFD = 2, /* a read kept armed on an eventfd */
};

/* Flags for tmo_job_set_flags(). */
enum tmo_job_flag {
	/*
	 * When the pool's queue is full, wait for room instead of failing with -EAGAIN. The job
	 * waits on the loop's side, in order, with its deadline running (past it: -ETIME, never
	 * run); the pool's queue itself never grows past queue_size, and a waiting job costs the
	 * pool no memory (it is the caller's struct).
	 */
	TMO_JOB_WAIT = 1u << 0,
};

struct tmo_pool_options {
	/* Worker threads started by tmo_pool_init; 0 means 4. At most 1024. */
	uint32_t threads;
	/* Most worker threads at once, counting replacements for workers tied up by overrunning
	 * jobs; 0 means 2 * threads. At least threads, at most 1024. */
	uint32_t max_threads;
	/* Jobs waiting for a worker; 0 means 1024. At most 1 << 20. */
	uint32_t queue_size;
	/* Signal sent to a worker to interrupt its job (TMO_OVERRUN_INTERRUPT); 0 means SIGRTMIN + 3;
	 * -1 disables interrupts (such jobs are then refused with -EOPNOTSUPP). tmo installs a
	 * handler that does nothing, without SA_RESTART; tmo_pool_init fails with -EBUSY if the
	 * signal already has a handler that is not tmo's. Workers block every other signal. */
	int interrupt_signal;
	/* Time between SIGTERM and SIGKILL for a helper process (TMO_OVERRUN_KILL); 0 means 1 s.
	 * Negative: -EINVAL. */
	int64_t kill_grace_ns;
	/* Bounds of the channel to helper processes: input and output bytes per job. 0 means
	 * 64 KiB; at most 16 MiB. */
	uint32_t max_input;
	uint32_t max_output;
	enum tmo_pool_wake wake;
};

/* Counters and gauges, for tests, benchmarks and diagnosis. */
struct tmo_pool_stats {
	uint32_t threads;          /* worker threads alive now */
	uint32_t tied_up;          /* ... of which running a job whose callback already fired */
	uint32_t queued;           /* jobs in the queue now */
	uint32_t waiting;          /* TMO_JOB_WAIT jobs waiting for room in the queue now */
	uint32_t helpers;          /* helper processes alive now */
	uint64_t started;          /* jobs accepted by tmo_job_start */
	uint64_t ran;              /* jobs a worker started */
	uint64_t completed;        /* completion callbacks delivered */
	uint64_t timed_out;        /* ... of which -ETIME */
	uint64_t expired_queued;   /* ... of which expired before a worker took them: never ran */
	uint64_t cancelled;        /* ... of which -ECANCELED */
	uint64_t refused;          /* tmo_job_start calls refused with -EAGAIN (queue full) */
	uint64_t replacements;     /* workers started to replace tied-up ones */
	uint64_t interrupts;       /* interrupt jobs whose worker got the signal (deadline or cancel) */
	uint64_t helpers_started;  /* helper processes forked */
	uint64_t helpers_killed;   /* ... killed at a deadline or cancel (SIGTERM) */
	uint64_t helpers_sigkilled; /* ... of which needed SIGKILL after the grace period */
	uint64_t wakeups;          /* wake-ups of the loop by workers (completions on the ring) */
};

/* The caller-owned pool. Every field is private. */
struct tmo_pool {
	struct tmo__pool_state *_state;
};

struct tmo_job {
	/* The caller's pointer; tmo never reads or writes it. Under TMO_OVERRUN_KILL the helper
	 * sees the same value, which is meaningful there only for memory that existed when the
	 * helper was forked (use the input buffer to pass data). */
	void *data;

	/* private: everything below is tmo's; use the functions in this header. */
	struct tmo__pool_state *_pool;
	tmo_job_fn _fn;
	tmo_job_cb _cb;
	tmo_job_release_cb _release;
	struct tmo__link _link;          /* the pool's queue, the loop-side wait list or the list
					  * of decided outcomes */
	struct tmo_job *_done_next;      /* the list of finished jobs (written by a worker) */
	struct tmo__timer _timer;        /* the deadline in the loop's heap */
	int64_t _deadline;
	int64_t _res;
	const void *_in;
	void *_out;
	size_t _in_len, _out_cap, _out_len;
	long _sys_nr;                    /* tmo_job_prep_syscall */
	long _sys_args[6];
	void *_worker;                   /* the worker running it (under the pool's lock) */
	int _cancel;                     /* atomic: the function is asked to stop (cancel, shutdown) */
	uint8_t _state;                  /* atomic: where it is in its life (src/pool.h) */
	uint8_t _overrun;                /* enum tmo_overrun */
	uint8_t _flags;                  /* the caller's TMO_JOB_* flags (loop thread only) */
	uint8_t _late;                   /* its function returned after the deadline (worker) */
};

/*
 * Creates a pool on `loop` (options NULL for defaults) and starts its worker threads. Returns
 * 0, or -EINVAL (NULL, bad options, a wake mechanism the kernel lacks: TMO_POOL_WAKE_FUTEX
 * before Linux 6.7), -EBUSY (interrupt_signal has a foreign handler), -ENOMEM, -EAGAIN (no
 * thread could be created), or an eventfd error. On failure nothing is left to free.
 */
TMO_API int tmo_pool_init(struct tmo_pool *pool, struct tmo_loop *loop,
			  const struct tmo_pool_options *options);

/*
 * Stops taking jobs (tmo_job_start then returns -ESHUTDOWN) and ends every job: queued and
 * waiting ones never run; running ones are cancelled by their overrun level (interrupt:
 * signalled now, kill: helper killed now, abandon: left to finish). Every callback not yet
 * fired fires exactly once from the next tmo_loop_run*: -ECANCELED, except for a job whose
 * outcome was already decided (its function had returned: its result; its deadline had
 * passed: -ETIME). Release callbacks follow as the workers let go. Returns 0, -EALREADY if
 * already shut down, -EINVAL for NULL.
 */
TMO_API int tmo_pool_shutdown(struct tmo_pool *pool);

/*
 * Frees the pool: joins its threads, reaps its helper processes, closes its fds. Returns 0, or
 * -EBUSY (and changes nothing) while any job is busy (tmo_job_busy: run the loop until they
 * are released; tmo_pool_shutdown first to end them), or when called from a job function.
 * -EINVAL for NULL or a pool not initialised. Close the pool before its loop.
 */
TMO_API int tmo_pool_close(struct tmo_pool *pool);

/* Copies the pool's counters into *stats. Returns 0 or -EINVAL. */
TMO_API int tmo_pool_get_stats(const struct tmo_pool *pool, struct tmo_pool_stats *stats);

/*
 * Preparation: tmo_job_prep sets the function; tmo_job_prep_syscall makes the job one system
 * call, syscall(nr, args[0..5]), whose result is its return value or -errno. Either resets the
 * job's overrun level (abandon), flags, buffers and release callback, and leaves `data` alone.
 * Returns 0, -EINVAL (NULL job or fn), or -EBUSY for a busy job (tmo_job_busy() true), which
 * is refused and left untouched.
 */
TMO_API int tmo_job_prep(struct tmo_job *job, tmo_job_fn fn);
TMO_API int tmo_job_prep_syscall(struct tmo_job *job, long nr, const long args[6]);

/* Sets the overrun level of a prepared, idle job. Returns 0, -EINVAL (unknown level, NULL),
 * -EBUSY (job busy). */
TMO_API int tmo_job_set_overrun(struct tmo_job *job, enum tmo_overrun overrun);

/* Sets TMO_JOB_* flags. 0, -EINVAL, -EBUSY as above. */
TMO_API int tmo_job_set_flags(struct tmo_job *job, unsigned flags);

/* Sets (or clears with NULL) the release callback. 0, -EINVAL, -EBUSY as above. */
TMO_API int tmo_job_set_release(struct tmo_job *job, tmo_job_release_cb release);

/*
 * Gives the job an input and an output buffer (either may be NULL with length 0). Both stay
 * the caller's and must stay valid while the job is busy. On a worker thread the function
 * sees these very buffers; under TMO_OVERRUN_KILL the input is copied to the helper and the
 * output copied back (output bytes up to what the function set with tmo_job_set_output_len),
 * before the callback fires with the function's result; a job that timed out or was cancelled
 * gets no output. 0, -EINVAL, -EBUSY as above.
 */
TMO_API int tmo_job_set_io(struct tmo_job *job, const void *in, size_t in_len, void *out,
			   size_t out_cap);

/*
 * Starts a prepared job on `pool` with an absolute deadline (tmo_now() clock, TMO_NEVER for
 * none); `cb` fires once with the outcome. A deadline already passed starts nothing: the
 * callback fires with -ETIME from the next loop iteration. Returns 0, or (then `cb` never
 * fires and nothing changed):
 *   -EINVAL     NULL pool, job or cb, a job never prepared, a negative deadline;
 *   -EBUSY      the job is busy;
 *   -EAGAIN     the queue is full (unless TMO_JOB_WAIT);
 *   -ESHUTDOWN  the pool was shut down;
 *   -EOPNOTSUPP TMO_OVERRUN_INTERRUPT on a pool with interrupts disabled;
 *   -EMSGSIZE   TMO_OVERRUN_KILL with an input larger than max_input.
 * The job counts as active work of the loop (tmo_loop_active) until it is released, so
 * tmo_loop_run(TMO_RUN_DEFAULT) returns only after abandoned functions have returned too.
 */
TMO_API int tmo_job_start(struct tmo_pool *pool, struct tmo_job *job, tmo_deadline deadline,
			  tmo_job_cb cb);

/*
 * Cancels a started job: if it has not run it never will; if it runs, its overrun level
 * applies now (as at a deadline) and tmo_job_cancelled() becomes true for it. The callback
 * fires with -ECANCELED from the next loop iteration, unless the job's result or deadline had
 * already been decided. Returns 0, -EALREADY (outcome already decided or delivered), -EINVAL.
 */
TMO_API int tmo_job_cancel(struct tmo_job *job);

/* True from a successful tmo_job_start until the job is released (its function returned and
 * its callbacks fired). Then the job may be freed or started again. */
TMO_API bool tmo_job_busy(const struct tmo_job *job);

/* For the job function: the job's absolute deadline (TMO_NEVER if none). */
TMO_API tmo_deadline tmo_job_deadline(const struct tmo_job *job);

/* For the job function: true once the deadline has passed or the job was cancelled (or its
 * pool shut down). A long computation polls this and stops itself. */
TMO_API bool tmo_job_cancelled(const struct tmo_job *job);

/* For the job function: its input (sets *len when len is not NULL). */
TMO_API const void *tmo_job_input(const struct tmo_job *job, size_t *len);

/* For the job function: its output buffer and capacity (sets *cap when cap is not NULL). */
TMO_API void *tmo_job_output(struct tmo_job *job, size_t *cap);

/* For the job function: how many output bytes it wrote. Returns 0, or -EMSGSIZE (more than
 * the capacity; nothing changed). tmo_job_output_len() reads it back in the callback. */
TMO_API int tmo_job_set_output_len(struct tmo_job *job, size_t len);
TMO_API size_t tmo_job_output_len(const struct tmo_job *job);

TMO_END_DECLS

#endif
