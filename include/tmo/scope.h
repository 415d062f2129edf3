/*
 * tmo scopes: a deadline over a block of work (asyncio.timeout, async-timeout, Trio's cancel
 * scopes), in C.
 *
 * A scope is entered and exited like a block. Every operation started while it is the loop's
 * current scope joins it, and so does every operation started from the callback of an
 * operation in it (a callback runs with its operation's scope current, as a task keeps its
 * context). An operation in a scope gets the earliest of its own deadline and the deadlines of
 * every enclosing scope up to the first shielded one; an inner scope cannot extend an outer
 * one. When a scope's deadline passes, every operation still pending in it, and in the scopes
 * and groups inside it (shielded scopes excepted), completes with -ETIME, and
 * tmo_op_cause() names the scope. Operations that already completed keep their results.
 *
 * Who keeps a scope's deadline: the loop (one heap entry and no kernel work per scope), so
 * that shifting a scope is O(log n) however many operations it holds; an operation's own
 * deadline is still kept as loop.h's strategy says. Like TMO_DEADLINES_LOOP, a scope's deadline
 * is therefore acted on when the loop runs, not during a stall of the loop thread.
 *
 * Ownership: the caller allocates struct tmo_scope. It may be reused or freed once exited and
 * tmo_scope_busy() is false: operations started in it may outlive the block (a C block only
 * starts them) and stay bound by its deadline until they complete.
 */
#ifndef TMO_SCOPE_H
#define TMO_SCOPE_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "op.h"

TMO_BEGIN_DECLS

enum tmo_scope_flag {
	/* Exempt from every enclosing scope's deadline and expiry (Trio's shield). */
	TMO_SCOPE_SHIELD = 1u << 0,
};

struct tmo_scope {
	/* private */
	struct tmo__container _c;
	struct tmo_loop *_loop;
	struct tmo_scope *_enclosing; /* the loop's current scope before this one was entered */
	int64_t _entered_at;
	uint16_t _state;
};

/*
 * Enters `scope` on `loop` with an absolute `deadline` (TMO_NEVER: none; at or before now: the
 * scope is expired at once and no operation in it starts). The scope becomes the loop's current
 * scope and is nested in the previous current scope. `scope` must be zeroed, or a scope that is
 * no longer busy. Returns 0, or -EINVAL (NULL, a negative deadline, unknown flags), -EBUSY (the
 * scope is entered, or exited with work still pending in it).
 */
TMO_API int tmo_scope_enter(struct tmo_loop *loop, struct tmo_scope *scope, tmo_deadline deadline,
			    unsigned flags);

/* As tmo_scope_enter with a deadline `timeout_ns` from now, computed at entry (-EINVAL if
 * negative or overflowing). 0 expires at once. */
TMO_API int tmo_scope_enter_after(struct tmo_loop *loop, struct tmo_scope *scope,
				  int64_t timeout_ns, unsigned flags);

/*
 * Leaves the block: the previous scope becomes current again. Operations still pending in the
 * scope go on under its deadline. Returns 0, -EALREADY if it was already exited, -EINVAL if it
 * was never entered or is not the innermost entered scope (exit scopes in reverse order).
 */
TMO_API int tmo_scope_exit(struct tmo_scope *scope);

/* The scope's own deadline (TMO_NEVER if none). */
TMO_API tmo_deadline tmo_scope_deadline(const struct tmo_scope *scope);
/* The deadline its operations get: the earliest of its own and its enclosing scopes'. */
TMO_API tmo_deadline tmo_scope_effective_deadline(const struct tmo_scope *scope);
/* Nanoseconds until its own deadline: 0 if passed, TMO_NEVER if none. */
TMO_API int64_t tmo_scope_remaining(const struct tmo_scope *scope);
/* Nanoseconds since it was entered. */
TMO_API int64_t tmo_scope_elapsed(const struct tmo_scope *scope);
/* True only if this scope's own deadline passed while it held work: the block was still open
 * (it was entered with a deadline already passed, or it was entered when the deadline came)
 * or operations in it were pending. An inner operation's own deadline, or an inner scope's
 * expiry, does not count. */
TMO_API bool tmo_scope_expired(const struct tmo_scope *scope);
/* True while entered, or while operations started in it are pending. */
TMO_API bool tmo_scope_busy(const struct tmo_scope *scope);

/*
 * Moving a live deadline (async-timeout's shift/update, asyncio's reschedule). Each moves the
 * scope's own deadline and so every operation pending in it, in O(log n) of the loop's kept
 * deadlines. They return 0, or (changing nothing): -ETIME if the scope already expired,
 * -EINVAL if it was exited (even with work still pending in it), or for a bad value.
 *   shift(delta):      deadline + delta (delta may be negative; the scope must have one);
 *   shift_at(when):    deadline = when (an absolute time, not TMO_NEVER);
 *   reschedule(when):  deadline = when, TMO_NEVER allowed (removes the limit).
 * A deadline moved to now or earlier expires the scope at the loop's next iteration.
 */
TMO_API int tmo_scope_shift(struct tmo_scope *scope, int64_t delta_ns);
TMO_API int tmo_scope_shift_at(struct tmo_scope *scope, tmo_deadline when);
TMO_API int tmo_scope_reschedule(struct tmo_scope *scope, tmo_deadline when);

/* The loop's current scope (NULL outside any). */
TMO_API struct tmo_scope *tmo_loop_current_scope(const struct tmo_loop *loop);

TMO_END_DECLS

#endif
