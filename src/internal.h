/*
 * Private to tmo: the loop's state and what its source files share. Never installed.
 */
#ifndef TMO_SRC_INTERNAL_H
#define TMO_SRC_INTERNAL_H

#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "tmo/clock.h"
#include "tmo/loop.h"
#include "timer_wheel.h"
#include "tmo/op.h"

/* Kernel values that Debian's liburing 2.3 does not define yet. */
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif
#define TMO__OPCODE_FUTEX_WAIT 51
#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6) /* Linux 6.4; liburing 2.4 */
#endif

/*
 * user_data of every request tmo submits: the op's address (8-byte aligned) with a tag in the
 * three low bits and the op's generation (counted per start) in the top eight bits, which
 * user-space addresses never use (47 bits, 56 with five-level page tables).
 *
 * The kernel finds a linked timeout's target, and a cancel's, by user_data. The address alone
 * is not enough: a linked timeout that fired just as its op completed can run its cancel after
 * the caller restarted the op at the same address (seen with DEFER_TASKRUN, whose deferred
 * work runs in batches), and would kill the new request. The generation makes the new request
 * a different user_data. Only TAG_OP completions dereference the op: the others may arrive
 * after the op was released and reused, so they are dropped unread, except an op's own cancel
 * (TAG_CANCEL): tmo holds the op until that cancel's answer is in (see op.c), because an answer
 * that the request was not found, while the kernel still holds it, must be acted on.
 */
enum {
	TMO__TAG_OP = 0,
	TMO__TAG_IGNORED = 1,    /* carries nothing: linked timeouts, a pool's wake-up cancel, a
				  * request moving the loop's timeout, a tick's removal */
	TMO__TAG_CANCEL = 2,     /* an op's cancel: its answer is read (op.c) */
	TMO__TAG_LOOP_TIMER = 3, /* the loop's one timeout for its earliest kept deadline */
	TMO__TAG_TICK = 5,       /* a struct tmo_tick's timeout (tick.c) */
	TMO__TAG_POOL = 7,       /* a pool's wake-up request (pool.c) */
	TMO__TAG_MASK = 7,       /* 4 and 6 are free */
};

/* What embeds a kept timer (struct tmo__timer.kind): it picks the expiry handler. */
enum {
	TMO__TIMER_OP = 1,
	TMO__TIMER_CONTAINER = 2,     /* a scope's or group's (container.h) */
	TMO__TIMER_JOB = 3,
	TMO__TIMER_CANCEL_RETRY = 4,  /* an op's timer, re-armed to ask the kernel again to cancel */
	TMO__TIMER_KINDS,
};

struct tmo__loop_state;
struct tmo__timer;
/* The dispatch tables (dispatch.c): a completion's handler by its tag, an expired timer's by
 * its kind. The loop indexes them and names no subsystem. */
typedef void (*tmo__cqe_handler)(struct tmo__loop_state *st, uint64_t user_data, int32_t res,
				 uint32_t flags);
typedef void (*tmo__timer_handler)(struct tmo__loop_state *st, struct tmo__timer *timer);
extern const tmo__cqe_handler tmo__cqe_handlers[TMO__TAG_MASK + 1];
extern const tmo__timer_handler tmo__timer_handlers[TMO__TIMER_KINDS];

/* What waits on the loop's deferred queue (struct tmo__deferred.kind): it picks the handler. */
enum {
	TMO__DEFER_OP = 1,   /* an op: an outcome decided at start, a request or cancel without
			      * an SQE, an abandoned op to report (op.c) */
	TMO__DEFER_TICK = 2, /* a tick whose request found no SQE (tick.c) */
	TMO__DEFER_POOL = 3, /* a pool owed outcomes, waiters promoted, or its wake-up (pool.c) */
	TMO__DEFER_KINDS,
};
typedef void (*tmo__deferred_handler)(struct tmo__loop_state *st, struct tmo__deferred *work);
extern const tmo__deferred_handler tmo__deferred_handlers[TMO__DEFER_KINDS];

#define TMO__GENERATION_SHIFT 56
#define TMO__ADDRESS_MASK ((UINT64_C(1) << TMO__GENERATION_SHIFT) - 1 - TMO__TAG_MASK)

/* The user_data of a request for `obj` (an op or a tick: 8-byte aligned) in its `generation`. */
static inline uint64_t tmo__user_data_for(const void *obj, uint8_t generation, unsigned tag)
{
	return (uint64_t)generation << TMO__GENERATION_SHIFT | (uint64_t)(uintptr_t)obj | tag;
}

static inline uint64_t tmo__user_data(const struct tmo_op *op, unsigned tag)
{
	return tmo__user_data_for(op, op->_generation, tag);
}

/*
 * What other files may know of an op's state (the op files own its flag bits: op.c, op_prep.c,
 * op_cancel.c; these are the only questions asked of them elsewhere, defined in op_prep.c).
 */
/* Started and not yet released by the kernel (tmo_op_busy). */
bool tmo__op_active(const struct tmo_op *op);
/* Active and its outcome not yet decided (nothing decided it, its callback has not fired):
 * still waiting for its request or group. */
bool tmo__op_undecided(const struct tmo_op *op);
/* Its callback fired while the kernel still holds the request. */
bool tmo__op_reported(const struct tmo_op *op);
/* Prepared (by any tmo_prep_*), whatever it does now. */
bool tmo__op_prepared(const struct tmo_op *op);
/* A linked timeout keeps its deadline, which had passed by `now`, and nothing else decided
 * its outcome yet (stall.c). */
bool tmo__op_linked_deadline_passed(const struct tmo_op *op, int64_t now);
/* A completed group member enters its group's done set, or leaves it (group.c): while in it
 * the op is refused by prep, start and add. */
void tmo__op_set_in_done_set(struct tmo_op *op, bool in);
/* Zeroes an inactive op but its `data` and generation (a stale request of its previous start
 * must never match the next): preparation, and the init of streams that embed one. */
void tmo__op_clear(struct tmo_op *op);

/* A public deadline as the engine keeps it: TMO_NEVER_NS for none, negative (-EINVAL) for an
 * invalid one. tmo_deadline_ns() without the call: it is on every start's path. */
static inline int64_t tmo__deadline_in(tmo_deadline deadline)
{
	return deadline._ns == 0 ? TMO_NEVER_NS : deadline._ns;
}

/* A time the engine keeps (TMO_NEVER_NS for none) as the public deadline type. */
static inline tmo_deadline tmo__deadline_out(int64_t ns)
{
	return ns == TMO_NEVER_NS ? TMO_NEVER : tmo_at(ns);
}

/* Sets `ts` to `ns` and returns it as the kernel's type, for the SQE (op.c checks the two
 * layouts match). */
static inline struct __kernel_timespec *tmo__set_timespec(struct tmo__kernel_timespec *ts,
							  int64_t ns)
{
	ts->tv_sec = ns / TMO_NSEC_PER_SEC;
	ts->tv_nsec = ns % TMO_NSEC_PER_SEC;
	return (struct __kernel_timespec *)ts;
}

static inline struct tmo_op *tmo__op_of_user_data(uint64_t user_data)
{
	return (struct tmo_op *)(uintptr_t)(user_data & TMO__ADDRESS_MASK);
}

/* The kernel's internal restart codes (-ERESTARTSYS .. -ERESTART_RESTARTBLOCK, -512..-516)
 * leak out of interrupted io-wq requests; to the caller they are -EINTR. */
static inline int32_t tmo__user_errno(int32_t res)
{
	return res <= -512 && res >= -516 ? -EINTR : res;
}

/* The kinds of op, enum tmo__kind among them: one list describes each (op_kinds.h). */
#include "op_kinds.h"

struct tmo__loop_state {
	struct io_uring ring;
	/* Deadlines the loop keeps itself (io-wq ops, every op under TMO_DEADLINES_LOOP, scopes,
	 * groups, group waiters, jobs): struct tmo__timer entries in a timer wheel. */
	struct tmo__wheel deadlines;
	/*
	 * Work that needs the loop's attention outside a completion (struct tmo__deferred, in
	 * the order it asked): each pass of the loop serves what `deferred` holds when the pass
	 * begins, moved to `serving`; what asks meanwhile waits for the next pass.
	 */
	struct tmo__list deferred;
	struct tmo__list serving;
	/*
	 * One kernel timeout wakes the loop when the wheel says to look (tmo__wheel_wake_time:
	 * the earliest deadline, or the start of the earliest slot, where it cascades). It is moved
	 * only when that time becomes earlier than the timeout: when it becomes later (the op with
	 * the earliest deadline completed, the usual case) the timeout stays, and firing early
	 * costs one harmless wake-up. So keeping deadlines costs no kernel work per op.
	 */
	struct {
		bool in_flight;            /* submitted, its completion not yet seen */
		int64_t armed_at;          /* when it fires (valid while in_flight) */
		struct tmo__kernel_timespec ts;        /* read by the kernel at submission */
		struct tmo__kernel_timespec update_ts; /* for a move, read likewise */
	} timer;
	uint64_t opcodes;        /* bit n set: the kernel supports opcode n (n < 64) */
	uint32_t features;       /* bit n set: enum tmo_feature n */
	uint32_t active;         /* ops started and not yet released */
	enum tmo_loop_mode mode;
	enum tmo_deadline_strategy deadline_strategy;
	bool running;
	bool stop;
	bool sq_refused;         /* the kernel refused a flush; retry after the next wait */
	struct tmo_scope *current_scope; /* innermost entered scope, or the running callback's */
	uint64_t callbacks;      /* completion and release callbacks run: progress for RUN_ONCE */
	uint32_t attached;       /* subsystems attached (pools): the loop cannot close under them */
	struct {
		int64_t threshold;      /* 0: not watching */
		tmo_stall_hook hook;
		void *data;
		struct tmo_loop *loop;  /* passed to the hook */
	} stall;
	struct tmo_loop_stats stats;
};

static inline const struct tmo__timer *tmo__timer_of(const struct tmo__wheel_entry *entry)
{
	return tmo__container_of(entry, const struct tmo__timer, entry);
}

/* The wheel of kept deadlines (ops' loop-kept deadlines, containers', jobs'): (re)arms `timer`
 * to fire at `when`, or takes it out; O(1) either way. Inline: an op's completion disarms on
 * every path. */
static inline void tmo__timer_arm(struct tmo__loop_state *st, struct tmo__timer *timer,
				  int64_t when)
{
	tmo__wheel_reset(&st->deadlines, &timer->entry, timer->armed, when);
	timer->armed = 1;
}

static inline void tmo__timer_disarm(struct tmo__loop_state *st, struct tmo__timer *timer)
{
	if (!timer->armed)
		return;
	tmo__wheel_remove(&st->deadlines, &timer->entry);
	timer->armed = 0;
}

static inline struct tmo__loop_state *tmo__state(const struct tmo_loop *loop)
{
	return loop->_state;
}

static inline bool tmo__has(const struct tmo__loop_state *st, enum tmo_feature feature)
{
	return st->features & (1u << feature);
}

/* Puts `work` on the loop's deferred queue as `kind` (TMO__DEFER_*), unless it is queued
 * already; the loop calls its kind's handler on its next pass (loop.c). */
void tmo__defer(struct tmo__loop_state *st, struct tmo__deferred *work, uint8_t kind);
/* Takes `work` off the deferred queue if it is on it: its owner is going away (loop.c). */
void tmo__undefer(struct tmo__loop_state *st, struct tmo__deferred *work);

/*
 * Returns an SQE, flushing the submission queue to the kernel when it is full. NULL only if
 * the kernel refused the flush (then the caller parks its work on the deferred queue).
 * `need` SQEs are guaranteed contiguous for a linked pair.
 */
struct io_uring_sqe *tmo__get_sqes(struct tmo__loop_state *st, unsigned need);


/*
 * Every callback into the caller goes between these two (through tmo__invoke_begin/end below,
 * or directly for group.c's on_done, which keeps the current scope): they count it for
 * RUN_ONCE and, when stalls are watched, time it. Watching off costs one
 * branch.
 */
static inline int64_t tmo__callback_begin(struct tmo__loop_state *st)
{
	st->callbacks++;
	return st->stall.threshold ? tmo_now() : 0;
}

void tmo__stall_report(struct tmo__loop_state *st, int64_t began, int64_t ended,
		       enum tmo_stall_source source);

static inline void tmo__callback_end(struct tmo__loop_state *st, int64_t began,
				     enum tmo_stall_source source)
{
	if (!began || !st->stall.threshold)
		return;
	int64_t ended = tmo_now();
	if (ended - began >= st->stall.threshold)
		tmo__stall_report(st, began, ended, source);
}

/* The nearest scope at or above `scope` (by the enter stack) that is not exited; NULL if none
 * (scope.c). */
struct tmo_scope *tmo__scope_live(struct tmo_scope *scope);

/*
 * One call into the caller's code, the way every subsystem makes it: `scope` is current while
 * it runs (what the callback starts joins it, as a task keeps its context), the call is
 * counted and timed (tmo__callback_begin/end), and the scope current before comes back after
 * it, unless the callback exited that one (an exited scope is never made current again).
 */
struct tmo__invoke {
	struct tmo_scope *saved;
	int64_t began;
};

static inline void tmo__invoke_begin(struct tmo__loop_state *st, struct tmo__invoke *call,
				     struct tmo_scope *scope)
{
	call->saved = st->current_scope;
	call->began = tmo__callback_begin(st);
	st->current_scope = scope;
}

static inline void tmo__invoke_end(struct tmo__loop_state *st, const struct tmo__invoke *call,
				   enum tmo_stall_source source)
{
	tmo__callback_end(st, call->began, source);
	/* Most callbacks run outside any scope: no call to scope.c for them. */
	st->current_scope = call->saved ? tmo__scope_live(call->saved) : NULL;
}


/* Whether the kernel reads and writes anonymous blocking pipes at submit time (Linux 6.4);
 * probed once per process (kernel_probe.c). */
bool tmo__kernel_pipes_nowait(void);
struct stat;
/* Whether io_uring runs reads and writes on `fd` (fstat'ed into *sb) blocking in io-wq: a
 * blocking FIFO, or a blocking pipe on a kernel without nowait pipes (kernel_probe.c). */
bool tmo__fd_io_blocks_in_iowq(int fd, const struct stat *sb);

static inline struct tmo_op *tmo__op_of_timer(struct tmo__timer *timer)
{
	return (struct tmo_op *)((char *)timer - offsetof(struct tmo_op, _timer));
}

#endif
