/*
 * tmo loop: one io_uring instance and everything in flight on it.
 *
 * Ownership: struct tmo_loop is allocated by the caller (stack, static, or inside a larger
 * struct). tmo_loop_init() sets it up and may allocate internal state; tmo_loop_close() frees
 * that state, after which the struct may be reused or freed. A loop is used from one thread at
 * a time; in TMO_MODE_LOW_LATENCY it must be the thread that called tmo_loop_init().
 *
 * Callbacks fire only from inside tmo_loop_run() / tmo_loop_run_until(), never from the call
 * that starts or cancels an operation. A callback may start, cancel and restart operations,
 * including the one it was called for.
 */
#ifndef TMO_LOOP_H
#define TMO_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "common.h"

TMO_BEGIN_DECLS

/*
 * Ring modes: who enforces a deadline while the loop thread is busy in user code.
 *
 * TMO_MODE_DEFAULT: the kernel cancels an operation at its deadline even while the loop thread
 *   is stuck (a long callback, a blocking call): a read whose deadline passes during a 1 s stall
 *   is cancelled on time, and bytes that arrive afterwards stay in the socket or pipe for the
 *   next read. The loop only *sees* the completion when it runs again.
 * TMO_MODE_LOW_LATENCY: IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN. Completion
 *   work runs only when the loop thread enters the kernel, which lowers tail latency under load
 *   (p99 lateness measured 85 us against 794 us at 30,000 timers/s) but means nothing is
 *   cancelled while the loop thread is stuck: an expired request stays in flight, holding its
 *   buffer, socket and kernel memory, until the loop runs again. (Measured on Linux 6.18: the
 *   expired timer's work then runs before later wake-ups, so a read still times out and bytes
 *   that arrived during the stall stay for the next read.) The loop must be run on the thread
 *   that initialised it.
 */
enum tmo_loop_mode {
	TMO_MODE_DEFAULT = 0,
	TMO_MODE_LOW_LATENCY = 1,
};

/*
 * Who keeps the deadlines of requests the kernel can interrupt (sockets, pipes, polls).
 *
 * TMO_DEADLINES_KERNEL (default): a linked timeout on every request. The kernel cancels it on
 *   time even while the loop thread is stuck (see the modes above); the kernel's timer work per
 *   request is the price: a deadline tax of 20-30% on one-byte socket messages here (README).
 * TMO_DEADLINES_LOOP: the loop keeps every deadline in a user-space heap (O(log n), no
 *   allocation), bounds its wait by the earliest one, and cancels expired requests with
 *   IORING_OP_ASYNC_CANCEL. Far cheaper per request, but enforced only while the loop runs: a
 *   request whose deadline passes during a stall stays in flight until the loop returns, and if
 *   it completes meanwhile its result is reported (nothing is lost, but it is not a timeout).
 * Requests that may block in io-wq (TMO_OP_BLOCKING) are always kept by the loop.
 */
enum tmo_deadline_strategy {
	TMO_DEADLINES_KERNEL = 0,
	TMO_DEADLINES_LOOP = 1,
};

struct tmo_loop_options {
	/* Submission queue entries, a power of two from 2 to 32768; 0 means 256. */
	uint32_t ring_entries;
	/* Completion queue entries, a power of two from ring_entries to 65536; 0 means
	 * 4 * ring_entries, at least 8192 and at most 65536. The kernel sizes its table of
	 * requests to cancel from it (every linked timeout that fires is such a lookup): 8192 or
	 * more gives it all its 256 buckets, 1024 only 32 (docs/design.md). */
	uint32_t cq_entries;
	enum tmo_loop_mode mode;
	enum tmo_deadline_strategy deadlines;
};

enum tmo_run_mode {
	/* Run until no operation is active (or tmo_loop_stop()). */
	TMO_RUN_DEFAULT = 0,
	/* If any work is active, wait until at least one callback has run (a completion, or a
	 * deadline's outcome), handle what else is ready, return. */
	TMO_RUN_ONCE = 1,
	/* Handle what is ready without waiting, return. */
	TMO_RUN_NOWAIT = 2,
};

/* Kernel features and operations the loop found at init (see tmo_loop_has_feature). */
enum tmo_feature {
	TMO_FEAT_CQE_SKIP = 0,     /* IORING_FEAT_CQE_SKIP (5.17): one CQE per op, not two */
	TMO_FEAT_NODROP,           /* IORING_FEAT_NODROP: CQ overflow is kept, never dropped */
	TMO_FEAT_EXT_ARG,          /* IORING_FEAT_EXT_ARG: waits with a timeout, no extra SQE */
	TMO_FEAT_MIN_TIMEOUT,      /* IORING_FEAT_MIN_TIMEOUT (6.12): batched waits */
	TMO_FEAT_LINK_TIMEOUT,     /* IORING_OP_LINK_TIMEOUT */
	TMO_FEAT_ASYNC_CANCEL,     /* IORING_OP_ASYNC_CANCEL */
	TMO_FEAT_MSG_RING,         /* IORING_OP_MSG_RING (5.18) */
	TMO_FEAT_FUTEX_WAIT,       /* IORING_OP_FUTEX_WAIT (6.7) */
	TMO_FEAT_COOP_TASKRUN,     /* the ring was created with IORING_SETUP_COOP_TASKRUN */
	TMO_FEAT_DEFER_TASKRUN,    /* the ring was created with IORING_SETUP_DEFER_TASKRUN */
	TMO_FEAT_TIMEOUT_MULTISHOT, /* IORING_TIMEOUT_MULTISHOT (6.4): ticks use one request. Set
	                               from the kernel version at init, cleared if the kernel
	                               refuses it on the first tick (see tick.h) */
	TMO_FEAT_NOWAIT_PIPES,     /* anonymous pipes are nowait (6.4): io_uring reads and writes
	                              a blocking pipe at submit time. Without it (and for FIFOs
	                              opened by path on every kernel) such I/O waits by poll and
	                              then blocks in an io-wq worker. Probed once per process */
	TMO_FEAT_COUNT_
};

/* Counters, for tests, benchmarks and diagnosis. All only grow. */
struct tmo_loop_stats {
	uint64_t started;          /* operations accepted by tmo_op_start */
	uint64_t completed;        /* completion callbacks delivered */
	uint64_t timed_out;        /* ... of which with -ETIME */
	uint64_t cancelled;        /* ... of which with -ECANCELED */
	uint64_t submit_calls;     /* io_uring_enter calls made to submit or wait */
	uint64_t sq_full;          /* times the submission queue was full and was flushed */
	uint64_t deferred;         /* operations parked because the kernel refused a submit */
	uint64_t cq_overflow;      /* reaping passes that found the kernel's CQ-overflow flag set */
	uint64_t abandoned;        /* operations reported to the caller before the kernel let go */
	uint64_t late_closed;      /* fds that a late completion returned and tmo closed */
	uint64_t cancel_retries;   /* cancels asked again: the kernel held a request it said it
				    * could not find or stop (blocking pipes before Linux 6.4) */
	uint64_t stalls;           /* callbacks that ran past the stall threshold (if watched) */
	uint64_t stall_ns_total;   /* ... their summed duration */
	uint64_t stall_ns_max;     /* ... the longest */
};

/* What kind of callback stalled the loop (struct tmo_stall.source). */
enum tmo_stall_source {
	TMO_STALL_OP = 0,   /* an operation's completion or release callback (streams included) */
	TMO_STALL_TICK,     /* a tick's callback */
	TMO_STALL_GROUP,    /* a group's callback */
	TMO_STALL_JOB,      /* a pool job's completion or release callback */
};

/* "op", "tick", "group", "job"; "unknown" out of range. Never NULL. */
TMO_API const char *tmo_stall_source_name(enum tmo_stall_source source);

/*
 * A callback that ran longer than the loop's stall threshold: while it ran, the loop could
 * neither run other callbacks nor see deadlines pass.
 */
struct tmo_stall {
	int64_t began;               /* when the callback was called (tmo_now() clock) */
	int64_t duration_ns;         /* how long it ran */
	enum tmo_stall_source source;
	/* Deadlines that came due while it ran: those the loop keeps itself (jobs, scopes, groups,
	 * every op under TMO_DEADLINES_LOOP or TMO_OP_BLOCKING), plus operations whose linked
	 * timeout fired meanwhile (counted from the completions waiting in the ring). */
	uint32_t deadlines_due;
	/* ... of which deadlines the kernel holds (linked timeouts): under TMO_MODE_DEFAULT the
	 * operations it cancelled on time; under TMO_MODE_LOW_LATENCY every linked operation
	 * still in flight whose deadline passed, whether the kernel's deferred timeout work then
	 * cut it or its data won (the ring does not say when data came, and the order of its
	 * deferred work differs: Linux 6.1 runs it newest first, later kernels in order). */
	uint32_t kernel_timed_out;
	/* The earliest of those deadlines (0 if none) and how late the loop sees it: the end of
	 * the callback minus that deadline. Their callbacks run after this report. */
	int64_t earliest_due;
	int64_t late_ns;
	/*
	 * True when the ring's mode let the kernel cancel linked-timeout operations on time during
	 * the stall (TMO_MODE_DEFAULT): bytes that arrived after such a deadline are still in the
	 * socket or pipe. False under TMO_MODE_LOW_LATENCY, where the kernel's timeout work waited
	 * for the loop thread and runs only now.
	 */
	bool kernel_enforced;
};

struct tmo_loop;
typedef void (*tmo_stall_hook)(struct tmo_loop *loop, const struct tmo_stall *stall, void *data);

/* The caller-owned loop. Every field is private: use the functions below. */
struct tmo_loop {
	struct tmo__loop_state *_state;
};

/*
 * Sets up `loop` with `options` (NULL for defaults). Returns 0, or:
 *   -EINVAL  bad options (entries not a power of two or out of range, unknown mode or
 *            deadline strategy);
 *   -EPERM   io_uring is refused: sysctl kernel.io_uring_disabled, a seccomp filter (container
 *            runtimes' default profiles), or missing CAP_SYS_ADMIN / kernel.io_uring_group;
 *   -ENOSYS  the kernel has no io_uring (or a seccomp filter answers ENOSYS);
 *   -EOPNOTSUPP  the kernel's io_uring lacks what tmo requires (EXT_ARG, NODROP, linked
 *            timeouts, async cancel: Linux 5.11+), or DEFER_TASKRUN for TMO_MODE_LOW_LATENCY
 *            (Linux 6.1+);
 *   -ENOMEM, -EMFILE  the kernel could not allocate the ring.
 * tmo_loop_describe_error() turns any of these into a message naming the cause. On failure the
 * struct holds nothing to free.
 */
TMO_API int tmo_loop_init(struct tmo_loop *loop, const struct tmo_loop_options *options);

/*
 * Tears the loop down. Returns 0, or -EBUSY (and changes nothing) while operations, groups or
 * pool jobs are still active, including ops the kernel has not yet released, while a scope is
 * entered, or while a pool is open on it: run the loop until they finish (or cancel them and
 * run it), exit the scopes, close the pools. -EINVAL for
 * NULL or a loop that is not initialised.
 */
TMO_API int tmo_loop_close(struct tmo_loop *loop);

/*
 * Runs the loop (see enum tmo_run_mode). Before it returns, every request that callbacks
 * started or cancelled has been handed to the kernel, so their deadlines hold while the caller
 * does other work. Returns the work still active (operations and groups, as tmo_loop_active;
 * 0: no work left), or a
 * negative errno if the ring failed (-EINVAL for a bad argument, -EBUSY if called from inside a
 * callback of the same loop).
 */
TMO_API int tmo_loop_run(struct tmo_loop *loop, enum tmo_run_mode mode);

/*
 * Runs the loop until `deadline` (absolute, tmo_now() clock), until no work is left, or until
 * tmo_loop_stop(), whichever comes first. A deadline in the past handles what is ready without
 * waiting. Returns the number of operations still active, or a negative errno (as above, plus
 * -EINVAL for a negative deadline).
 */
TMO_API int tmo_loop_run_until(struct tmo_loop *loop, tmo_deadline deadline);

/*
 * Hands every prepared request to the kernel now. tmo_op_start() only queues a request; the
 * loop submits the queue when it next runs, one system call for the whole batch. A callback
 * that starts an op and then does long work should call this first, so the request (and its
 * deadline) is in the kernel meanwhile. Returns the number of requests submitted or -errno.
 */
TMO_API int tmo_loop_submit(struct tmo_loop *loop);

/* Makes the current or next tmo_loop_run* return after the callbacks in hand. */
TMO_API void tmo_loop_stop(struct tmo_loop *loop);

/* Work still active: operations started and not yet released by the kernel, groups not yet
 * finished with members pending, pool jobs not yet released and a pool's wake-up request while
 * it is in the kernel (0 for NULL). */
TMO_API uint32_t tmo_loop_active(const struct tmo_loop *loop);

/* Whether the loop's kernel and ring have `feature` (false for NULL or out of range). */
TMO_API bool tmo_loop_has_feature(const struct tmo_loop *loop, enum tmo_feature feature);

/*
 * Watches for callbacks that block the loop: every callback running `threshold_ns` or longer
 * is counted (stats: stalls, stall_ns_total, stall_ns_max) and, if `hook` is not NULL, reported
 * to it right after the callback returns, from the loop's thread (the hook must not run the
 * loop; it may start and cancel operations). threshold_ns 0 turns watching off (the default):
 * watching costs two clock reads per callback (about 50 ns here). Returns 0, or -EINVAL (NULL
 * loop, negative threshold).
 */
TMO_API int tmo_loop_watch_stalls(struct tmo_loop *loop, int64_t threshold_ns, tmo_stall_hook hook,
				  void *data);

/* Copies the loop's counters into *stats. Returns 0 or -EINVAL. */
TMO_API int tmo_loop_get_stats(const struct tmo_loop *loop, struct tmo_loop_stats *stats);

/*
 * Writes a one-line message for an error returned by tmo_loop_init (or any tmo function) into
 * buf (always NUL-terminated when size > 0). For -EPERM and -ENOSYS it inspects the system and
 * names the likely cause: the value of /proc/sys/kernel/io_uring_disabled, a seccomp filter on
 * this process (/proc/self/status), a kernel without io_uring. Returns the length the full
 * message needs, as snprintf does.
 */
TMO_API size_t tmo_loop_describe_error(int err, char *buf, size_t size);

TMO_END_DECLS

#endif
