/*
 * Operations: ending one before its request does (tmo_op_cancel, a scope's or group's cut, its
 * own loop-kept deadline), and the kernel's answers to the cancels that asks for, asked again
 * until the request ends.
 */
#include <errno.h>

#include "container.h"
#include "hooks.h"
#include "op_private.h"

/* Takes a parked group member off its group's waiting list (group.c keeps the counts). */
static void unpark(struct tmo__loop_state *st, struct tmo_op *op)
{
	op->_flags &= ~TMO__F_GROUP_WAITING;
	tmo__timer_disarm(st, &op->_timer);
	tmo__group_unpark(tmo__group_of(op->_owner), op);
}

/*
 * Ends an op before its request does: `res` is -ETIME (a deadline) or -ECANCELED, with its
 * cause. An op not yet in the kernel completes from the deferred queue; an op in the kernel is
 * cancelled there and its own completion reports the outcome (an io-wq op is reported at once).
 */
static void end_early(struct tmo__loop_state *st, struct tmo_op *op, int32_t res, uint8_t cause,
		      void *obj)
{
	op->_cause = cause;
	op->_cause_obj = obj;
	if (op->_flags & TMO__F_GROUP_WAITING) {
		unpark(st, op);
		tmo__op_decide(st, op, res, cause, obj);
		return;
	}
	if (kind_keeps(op->_kind, TMO__KEEP_GROUP)) {
		/* Its outcome is decided now (a second cancel says -EALREADY); the group delivers
		 * it when it finishes from the loop. */
		op->_flags |= res == -ETIME ? TMO__F_EXPIRED : TMO__F_CANCEL;
		tmo__group_waiter_cut(st, op, res);
		return;
	}
	op->_flags |= res == -ETIME ? TMO__F_EXPIRED : TMO__F_CANCEL;
	tmo__timer_disarm(st, &op->_timer);
	if (!(op->_flags & TMO__F_KERNEL)) {
		/* Not handed to the kernel yet: it completes from the deferred queue unstarted. */
		enqueue_pending(st, op);
		return;
	}
	op->_flags |= TMO__F_CANCEL_UNSENT;
	enqueue_pending(st, op); /* once: tmo__defer ignores an op already queued */
}


int tmo_op_cancel(struct tmo_op *op)
{
	if (!op)
		return -EINVAL;
	if (!(op->_flags & TMO__F_ACTIVE))
		return -ENOENT;
	if (!op_undecided(op))
		return -EALREADY;
	/* Once the deadline has passed the kernel has cancelled (or is cancelling) the request
	 * for it: the outcome is the timeout, not the caller's cancel. */
	if (op->_deadline != TMO_NEVER_NS && op->_deadline <= tmo_now())
		return -EALREADY;
	end_early(tmo__state(op->_loop), op, -ECANCELED, TMO_CAUSE_CANCEL, NULL);
	return 0;
}

void tmo__op_cut(struct tmo__loop_state *st, struct tmo_op *op, int32_t res, uint8_t cause,
		 void *obj)
{
	if (op_undecided(op))
		end_early(st, op, res, cause, obj);
}

/* The first pause before a cancel is asked again, and how often it may double (to 64 ms). */
#define CANCEL_RETRY_FIRST_NS (1 * TMO_NSEC_PER_MSEC)
#define CANCEL_RETRY_MAX_SHIFT 6 /* 64 ms */

/*
 * The kernel answered the op's cancel. 0: found and cancelled, its own completion follows.
 * Anything else while the kernel still holds the request means it was not stopped: -ENOENT
 * when it could not be found (on Linux before 6.4 a blocking pipe's read or write moves from
 * poll to io-wq and can be found in neither for a while), -EALREADY when it is running in
 * io-wq and was only signalled. Either way tmo asks again, after a pause that doubles up to
 * 64 ms, until the request ends: no cancel and no deadline waits for ever on one lost answer.
 */
void tmo__op_on_cancel_answer(struct tmo__loop_state *st, struct tmo_op *op, int32_t res)
{
	op->_flags &= ~TMO__F_CANCEL_ASKED;
	if (op->_flags & TMO__F_DONE_HELD) {
		op->_flags &= ~TMO__F_DONE_HELD;
		tmo__op_on_cqe(st, op, op->_held_res);
		return;
	}
	if (res == 0 || !(op->_flags & TMO__F_KERNEL))
		return;
	unsigned shift = op->_cancel_asks - 1u;
	if (shift > CANCEL_RETRY_MAX_SHIFT)
		shift = CANCEL_RETRY_MAX_SHIFT;
	op->_flags |= TMO__F_CANCEL_RETRY;
	op->_timer.kind = TMO__TIMER_CANCEL_RETRY;
	tmo__timer_arm(st, &op->_timer, tmo_now() + (CANCEL_RETRY_FIRST_NS << shift));
}

void tmo__op_on_cancel_retry(struct tmo__loop_state *st, struct tmo_op *op)
{
	op->_timer.armed = 0;
	op->_timer.kind = TMO__TIMER_OP;
	op->_flags &= ~TMO__F_CANCEL_RETRY;
	if (!(op->_flags & TMO__F_KERNEL))
		return;
	st->stats.cancel_retries++;
	op->_flags |= TMO__F_CANCEL_UNSENT;
	enqueue_pending(st, op);
}

void tmo__op_on_expired(struct tmo__loop_state *st, struct tmo_op *op)
{
	/* The timer is already out of the wheel. */
	op->_timer.armed = 0;
	if (op_undecided(op))
		end_early(st, op, -ETIME, TMO_CAUSE_OWN, NULL);
}
