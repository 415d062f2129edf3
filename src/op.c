/*
 * Operations: starting one (checks, a linked timeout or a kept deadline, the SQE), deciding its
 * outcome, and turning the kernel's completions into exactly one callback per start.
 * Preparation is in op_prep.c, ending an op early and the cancels' answers in op_cancel.c; the
 * kinds are one list (op_kinds.h), read through op_private.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

#include "container.h"
#include "hooks.h"
#include "op_private.h"

_Static_assert(sizeof(struct tmo__kernel_timespec) == sizeof(struct __kernel_timespec),
	       "struct tmo__kernel_timespec must match the kernel's layout");
_Static_assert(offsetof(struct tmo__kernel_timespec, tv_nsec) ==
		       offsetof(struct __kernel_timespec, tv_nsec),
	       "struct tmo__kernel_timespec must match the kernel's layout");
_Static_assert(_Alignof(struct tmo_op) >= TMO__TAG_MASK + 1,
	       "op addresses need free low bits for user_data tags");

/* Flags that survive from one start of an op to the next: its description. */
#define KEEP_ON_RELEASE (TMO__F_PREPARED | TMO__F_IN_DONE_SET)

/* ---- submission -------------------------------------------------------------------------- */

/* The SQE fields an op's arguments fill: io_uring_prep_rw()'s, and the opcode's flags word. */
struct sqe_args {
	int fd;
	const void *addr;
	uint32_t len;
	uint64_t off;
	uint32_t op_flags; /* msg_flags, accept_flags, open_flags, timeout_flags, poll32_events */
};

/* How arguments of `shape` fill an SQE (column args). `shape` is a constant at every call:
 * the switch folds away. */
static inline struct sqe_args args_sqe(struct tmo_op *op, enum tmo__args_shape shape)
{
	switch (shape) {
	case TMO__ARGS_SLEEP: {
		/* One plain timeout at the earlier of wake-up and deadline; the CQE handler tells
		 * which one it was. */
		int64_t when = op->_args.sleep.wake_at < op->_deadline ? op->_args.sleep.wake_at
								       : op->_deadline;
		tmo__set_timespec(&op->_ts, when);
		return (struct sqe_args){ -1, &op->_ts, 1, 0, IORING_TIMEOUT_ABS };
	}
	case TMO__ARGS_RW:
		return (struct sqe_args){ op->_fd, op->_args.io.buf, op->_args.io.len,
					  op->_args.io.offset, 0 };
	case TMO__ARGS_MSG:
		return (struct sqe_args){ op->_fd, op->_args.io.buf, op->_args.io.len, 0,
					  (uint32_t)op->_args.io.msg_flags };
	case TMO__ARGS_ACCEPT:
		return (struct sqe_args){ op->_fd, op->_args.accept.addr, 0,
					  (uint64_t)(uintptr_t)op->_args.accept.addrlen,
					  (uint32_t)op->_args.accept.flags };
	case TMO__ARGS_CONNECT:
		return (struct sqe_args){ op->_fd, op->_args.connect.addr, 0,
					  op->_args.connect.addrlen, 0 };
	case TMO__ARGS_POLL: {
		uint32_t events = op->_args.poll_events;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		events = events << 16 | events >> 16; /* as io_uring_prep_poll_add */
#endif
		return (struct sqe_args){ op->_fd, NULL, 0, 0, events };
	}
	case TMO__ARGS_OPEN:
		return (struct sqe_args){ op->_fd, op->_args.open.path, op->_args.open.mode, 0,
					  (uint32_t)op->_args.open.flags };
	case TMO__ARGS_NONE:
	case TMO__ARGS_GROUP:
		break;
	}
	return (struct sqe_args){ -1, NULL, 0, 0, 0 };
}

static inline void fill_sqe(struct io_uring_sqe *sqe, uint8_t opcode, struct sqe_args args)
{
	io_uring_prep_rw(opcode, sqe, args.fd, args.addr, args.len, args.off);
	sqe->msg_flags = args.op_flags; /* one word, whichever name the opcode gives it */
}

static void prep_sqe(struct io_uring_sqe *sqe, struct tmo_op *op)
{
	switch ((enum tmo__kind)op->_kind) {
#define PREP_SQE(name, opcode, args, keep, result)                             \
	case TMO__KIND_##name:                                                 \
		if (TMO__KEEP_##keep != TMO__KEEP_GROUP) /* else never submitted */ \
			fill_sqe(sqe, opcode, args_sqe(op, TMO__ARGS_##args));     \
		break;
		TMO__OP_KINDS(PREP_SQE)
#undef PREP_SQE
	case TMO__KIND_NONE:
	case TMO__KIND_COUNT_:
		break;
	}
	io_uring_sqe_set_data64(sqe, tmo__user_data(op, TMO__TAG_OP));
}

/*
 * Hands the op to the kernel. Which way its deadline is kept is decided here, and only here:
 * the request itself for a sleep; a linked timeout for requests the kernel can interrupt
 * (TMO_DEADLINES_KERNEL); otherwise the loop's timer wheel, with an explicit cancel at expiry
 * (requests that may block in io-wq, and every request under TMO_DEADLINES_LOOP).
 * Returns false if no SQE could be had; nothing has changed then.
 */
static bool submit(struct tmo__loop_state *st, struct tmo_op *op)
{
	bool has_deadline = op->_deadline != TMO_NEVER_NS && !kind_keeps(op->_kind, TMO__KEEP_SELF);
	bool blocking = op->_user_flags & TMO_OP_BLOCKING;
	bool linked = has_deadline && !blocking &&
		      st->deadline_strategy == TMO_DEADLINES_KERNEL;
	struct io_uring_sqe *sqe = tmo__get_sqes(st, linked ? 2 : 1);

	if (!sqe)
		return false;
	prep_sqe(sqe, op);
	if (linked) {
		sqe->flags |= IOSQE_IO_LINK;
		/* tmo__get_sqes(st, 2) left room for the second SQE right behind the first. */
		struct io_uring_sqe *lt = io_uring_get_sqe(&st->ring);

		tmo__set_timespec(&op->_ts, op->_deadline);
		io_uring_prep_link_timeout(lt, (struct __kernel_timespec *)&op->_ts,
					   IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(lt, tmo__user_data(op, TMO__TAG_IGNORED));
		if (tmo__has(st, TMO_FEAT_CQE_SKIP))
			lt->flags |= IOSQE_CQE_SKIP_SUCCESS;
		op->_flags |= TMO__F_LINKED;
	} else if (has_deadline) {
		tmo__timer_arm(st, &op->_timer, op->_deadline);
	}
	op->_flags |= TMO__F_KERNEL;
	return true;
}

/*
 * Asks the kernel to cancel the op's request. The answer is read (tmo__op_on_cancel_answer)
 * and the op is held until it comes: "not found" while the kernel still holds the request
 * must be asked again, or the op would wait for ever (see there).
 */
static bool send_cancel(struct tmo__loop_state *st, struct tmo_op *op)
{
	struct io_uring_sqe *sqe = tmo__get_sqes(st, 1);

	if (!sqe)
		return false;
	io_uring_prep_cancel64(sqe, tmo__user_data(op, TMO__TAG_OP), 0);
	io_uring_sqe_set_data64(sqe, tmo__user_data(op, TMO__TAG_CANCEL));
	op->_flags &= ~TMO__F_CANCEL_UNSENT;
	op->_flags |= TMO__F_CANCEL_ASKED;
	if (op->_cancel_asks < UINT8_MAX)
		op->_cancel_asks++;
	return true;
}

/* Checks arguments of `shape` (column args); a constant at every call, as for args_sqe(). */
static inline int check_args_shape(const struct tmo__loop_state *st, const struct tmo_op *op,
				   enum tmo__args_shape shape)
{
	switch (shape) {
	case TMO__ARGS_NONE:
		return 0;
	case TMO__ARGS_SLEEP:
		return op->_args.sleep.wake_at < 0 ? -EINVAL : 0;
	case TMO__ARGS_RW:
	case TMO__ARGS_MSG:
		if (op->_fd < 0)
			return -EBADF;
		return !op->_args.io.buf && op->_args.io.len ? -EINVAL : 0;
	case TMO__ARGS_ACCEPT:
		if (op->_fd < 0)
			return -EBADF;
		return op->_args.accept.addr && !op->_args.accept.addrlen ? -EINVAL : 0;
	case TMO__ARGS_CONNECT:
		if (op->_fd < 0)
			return -EBADF;
		return !op->_args.connect.addr ? -EINVAL : 0;
	case TMO__ARGS_POLL:
		return op->_fd < 0 ? -EBADF : 0;
	case TMO__ARGS_OPEN:
		if (op->_fd < 0 && op->_fd != AT_FDCWD)
			return -EBADF;
		return !op->_args.open.path ? -EINVAL : 0;
	case TMO__ARGS_GROUP:
		return tmo__group_check_waiter(op->_args.group, st);
	}
	return -EINVAL;
}

/* The arguments, then (for a kind with a request) whether the kernel has its opcode. */
static int check_args(const struct tmo__loop_state *st, const struct tmo_op *op)
{
	int ret = -EINVAL;

	switch ((enum tmo__kind)op->_kind) {
#define CHECK_ARGS(name, opcode, args, keep, result)                       \
	case TMO__KIND_##name:                                             \
		ret = check_args_shape(st, op, TMO__ARGS_##args);          \
		if (TMO__KEEP_##keep == TMO__KEEP_GROUP)                   \
			return ret; /* no request, so no opcode to check */ \
		break;
		TMO__OP_KINDS(CHECK_ARGS)
#undef CHECK_ARGS
	case TMO__KIND_NONE:
	case TMO__KIND_COUNT_:
		return -EINVAL;
	}
	if (ret)
		return ret;
	if (!(st->opcodes & (UINT64_C(1) << kind_row(op->_kind).opcode)))
		return -ENOTSUP;
	return 0;
}

/* Checks and activates an op in container `c`; it is then the loop's until its callback. */
static int activate(struct tmo_loop *loop, struct tmo_op *op, int64_t deadline, tmo_op_cb cb,
		    struct tmo__container *c)
{
	if (!loop || !loop->_state || !op || !cb || deadline < 0)
		return -EINVAL;
	if (!(op->_flags & TMO__F_PREPARED) || op->_kind == TMO__KIND_NONE ||
	    op->_kind >= TMO__KIND_COUNT_)
		return -EINVAL;
	if (op->_flags & (TMO__F_ACTIVE | TMO__F_IN_DONE_SET))
		return -EBUSY;
	if ((uintptr_t)op & ~(uintptr_t)TMO__ADDRESS_MASK)
		return -EINVAL; /* misaligned, or an address with the generation's bits in use */
	struct tmo__loop_state *st = tmo__state(loop);
	int ret = check_args(st, op);
	if (ret)
		return ret;

	op->_generation++;
	op->_loop = loop;
	op->_cb = cb;
	op->_deadline = deadline;
	op->_res = 0;
	op->_cause = TMO_CAUSE_NONE;
	op->_cause_obj = NULL;
	op->_timer.kind = TMO__TIMER_OP;
	op->_timer.armed = 0;
	op->_cancel_asks = 0;
	op->_flags = TMO__F_PREPARED | TMO__F_ACTIVE;
	if (c)
		tmo__container_add_op(c, op);
	else
		op->_owner = NULL;
	st->active++;
	st->stats.started++;
	return 0;
}

/* Hands an activated op to the kernel, or decides its outcome at once. */
static void launch(struct tmo__loop_state *st, struct tmo_op *op)
{
	/* A deadline that has already passed, the op's own or an enclosing scope's or group's,
	 * starts nothing; the callback must still come from the loop, never from here. */
	int64_t now = TMO_NEVER_NS;
	if (op->_owner) {
		const struct tmo__container *binding;
		int64_t limit = tmo__container_effective(op->_owner, &binding);
		if (limit != TMO_NEVER_NS && limit <= (now = tmo_now())) {
			bool scope = binding->kind == TMO__CONTAINER_SCOPE;
			if (scope) /* its deadline cut this op short, whether or not the loop saw it */
				tmo__scope_mark_expired(tmo__scope_of((struct tmo__container *)binding));
			void *obj = scope ? (void *)tmo__scope_of((struct tmo__container *)binding)
					  : (void *)tmo__group_of((struct tmo__container *)binding);
			tmo__op_decide(st, op, -ETIME, scope ? TMO_CAUSE_SCOPE : TMO_CAUSE_GROUP, obj);
			return;
		}
	}
	if (kind_keeps(op->_kind, TMO__KEEP_GROUP)) {
		tmo__group_waiter_start(st, op); /* a passed deadline cancels the group */
		return;
	}
	if (op->_deadline != TMO_NEVER_NS &&
	    op->_deadline <= (now != TMO_NEVER_NS ? now : tmo_now())) {
		tmo__op_decide(st, op, -ETIME, TMO_CAUSE_OWN, NULL);
		return;
	}
	if (!submit(st, op))
		enqueue_pending(st, op);
}

int tmo__op_start_in(struct tmo_loop *loop, struct tmo_op *op, int64_t deadline, tmo_op_cb cb,
		     struct tmo__container *c)
{
	int ret = activate(loop, op, deadline, cb, c);

	if (!ret)
		launch(tmo__state(loop), op);
	return ret;
}

int tmo__op_park_in(struct tmo_loop *loop, struct tmo_op *op, int64_t deadline, tmo_op_cb cb,
		    struct tmo__container *c)
{
	int ret = activate(loop, op, deadline, cb, c);

	if (ret)
		return ret;
	op->_flags |= TMO__F_GROUP_WAITING;
	if (deadline != TMO_NEVER_NS)
		tmo__timer_arm(tmo__state(loop), &op->_timer, deadline); /* never starts if it passes */
	return 0;
}

void tmo__op_launch_parked(struct tmo__loop_state *st, struct tmo_op *op)
{
	op->_flags &= ~TMO__F_GROUP_WAITING;
	tmo__timer_disarm(st, &op->_timer);
	launch(st, op);
}

int tmo_op_start(struct tmo_loop *loop, struct tmo_op *op, tmo_deadline deadline, tmo_op_cb cb)
{
	struct tmo_scope *scope = loop && loop->_state ? tmo__state(loop)->current_scope : NULL;

	/* An invalid deadline is negative: tmo__op_start_in refuses it with -EINVAL. */
	return tmo__op_start_in(loop, op, tmo__deadline_in(deadline), cb, scope ? &scope->_c : NULL);
}

void tmo__op_settle(struct tmo__loop_state *st, struct tmo_op *op, int32_t res, uint8_t cause,
		    void *obj)
{
	if (op->_cause == TMO_CAUSE_NONE) {
		op->_cause = cause;
		op->_cause_obj = obj;
	}
	tmo__timer_disarm(st, &op->_timer);
	op->_res = res;
	op->_flags |= TMO__F_DECIDED;
}

void tmo__op_release_settled(struct tmo__loop_state *st, struct tmo_op *op)
{
	enqueue_pending(st, op);
}

void tmo__op_decide(struct tmo__loop_state *st, struct tmo_op *op, int32_t res, uint8_t cause,
		    void *obj)
{
	tmo__op_settle(st, op, res, cause, obj);
	tmo__op_release_settled(st, op);
}

/* ---- completion -------------------------------------------------------------------------- */

/*
 * Calls `fn` for op with the op's scope current (so that what the callback starts joins the
 * same scope, as a task keeps its context) and with its container held, so that the container
 * cannot finish while the callback may still start work in it.
 */
static inline void call_in_context(struct tmo__loop_state *st, struct tmo__container *owner,
				   void (*fn)(struct tmo_op *, int32_t), struct tmo_op *op,
				   int32_t res)
{
	struct tmo__invoke call;
	struct tmo_scope *scope = NULL;

	if (owner) {
		owner->holds++;
		scope = tmo__container_scope(owner);
	}
	tmo__invoke_begin(st, &call, scope);
	fn(op, res);
	tmo__invoke_end(st, &call, TMO_STALL_OP);
	if (owner) {
		owner->holds--;
		tmo__container_check_done(st, owner);
	}
}

/* Delivers the outcome `res` to the caller: exactly once per start. */
static void deliver(struct tmo__loop_state *st, struct tmo_op *op, int32_t res)
{
	tmo_op_cb cb = op->_cb;
	struct tmo__container *owner = op->_owner;

	st->stats.completed++;
	if (res == -ETIME)
		st->stats.timed_out++;
	else if (res == -ECANCELED)
		st->stats.cancelled++;
	op->_res = res;
	/* The cause names what ended the op: nothing when its own result stands (a cancel or a
	 * cut that lost the race), its own deadline for a -ETIME nothing else claimed. */
	if (res != -ETIME && res != -ECANCELED) {
		op->_cause = TMO_CAUSE_NONE;
		op->_cause_obj = NULL;
	} else if (res == -ETIME && ((op->_flags & TMO__F_CANCEL) ||
				     (op->_cause != TMO_CAUSE_SCOPE && op->_cause != TMO_CAUSE_GROUP))) {
		/* A -ETIME after a cancel (by the caller or a finishing group) was decided can
		 * only be the op's own deadline, which fired first. */
		op->_cause = TMO_CAUSE_OWN;
		op->_cause_obj = NULL;
	} else if (res == -ECANCELED && op->_cause != TMO_CAUSE_GROUP) {
		op->_cause = TMO_CAUSE_CANCEL;
		op->_cause_obj = NULL;
	}

	if (op->_flags & TMO__F_KERNEL) {
		/* The kernel still holds the request: the op stays active, and in its container,
		 * until it lets go. */
		op->_flags |= TMO__F_REPORTED;
		st->stats.abandoned++;
	} else {
		/* Released before the callback, so the callback may restart or free the op. */
		op->_flags &= KEEP_ON_RELEASE;
		st->active--;
		if (owner)
			tmo__container_remove_op(op);
	}
	call_in_context(st, owner, cb, op, res);
}

/* The kernel let go of an op whose outcome the caller already has. */
static void release_late(struct tmo__loop_state *st, struct tmo_op *op, int32_t res)
{
	tmo_op_release_cb release = op->_release;
	struct tmo__container *owner = op->_owner;
	bool returns_fd = kind_row(op->_kind).result == TMO__RESULT_FD;

	op->_flags &= KEEP_ON_RELEASE;
	st->active--;
	if (owner)
		tmo__container_remove_op(op);
	res = tmo__user_errno(res);
	if (release) {
		call_in_context(st, owner, release, op, res);
		return;
	}
	if (returns_fd && res >= 0) {
		/* Nobody will ever see this fd: close it rather than leak it. */
		close(res);
		st->stats.late_closed++;
	}
	if (owner)
		tmo__container_check_done(st, owner);
}

/* Turns the kernel's result into the caller's outcome. */
static int32_t outcome(struct tmo_op *op, int32_t res)
{
	res = tmo__user_errno(res);
	if (kind_keeps(op->_kind, TMO__KEEP_SELF) && res == -ETIME)
		return op->_args.sleep.wake_at <= op->_deadline ? 0 : -ETIME;
	if (res != -ECANCELED && res != -EINTR)
		return res;
	if (op->_flags & TMO__F_CANCEL)
		return -ECANCELED;
	if (op->_flags & TMO__F_EXPIRED)
		return -ETIME;
	if (op->_flags & TMO__F_LINKED) {
		/* Only the linked timeout cancels a linked request that the caller did not. An
		 * io-wq read it interrupted says -EINTR; a signal could too, so check the clock. */
		if (res == -ECANCELED || tmo_now() >= op->_deadline)
			return -ETIME;
	}
	return res;
}

/* The op's own completion came while tmo is asking the kernel to cancel it. Returns true if
 * it is held until the cancel's answer (which may otherwise outlive the op). */
static bool __attribute__((noinline))
hold_for_cancel_answer(struct tmo__loop_state *st, struct tmo_op *op, int32_t res)
{
	if (op->_flags & TMO__F_CANCEL_ASKED) {
		op->_held_res = res;
		op->_flags |= TMO__F_DONE_HELD;
		return true;
	}
	op->_flags &= ~TMO__F_CANCEL_RETRY; /* no need to ask again */
	tmo__timer_disarm(st, &op->_timer);
	return false;
}

void tmo__op_on_cqe(struct tmo__loop_state *st, struct tmo_op *op, int32_t res)
{
	if ((op->_flags & (TMO__F_CANCEL_ASKED | TMO__F_CANCEL_RETRY)) &&
	    hold_for_cancel_answer(st, op, res))
		return;
	if (op->_flags & TMO__F_REPORTED) {
		if (queued(op)) {
			/* Waiting on the deferred queue to ask again for a cancel: released from
			 * there, never while still linked on the queue. */
			op->_flags &= ~(TMO__F_KERNEL | TMO__F_CANCEL_UNSENT);
			op->_held_res = res;
			return;
		}
		release_late(st, op, res);
		return;
	}
	tmo__timer_disarm(st, &op->_timer);
	op->_flags &= ~(TMO__F_KERNEL | TMO__F_CANCEL_UNSENT);
	res = outcome(op, res);
	if (queued(op)) {
		/* Linked on the deferred queue: let the queue deliver it, in order. */
		op->_res = res;
		op->_flags |= TMO__F_DECIDED;
		return;
	}
	deliver(st, op, res);
}

void tmo__op_on_deferred(struct tmo__loop_state *st, struct tmo_op *op)
{
	if ((op->_flags & (TMO__F_REPORTED | TMO__F_KERNEL)) == TMO__F_REPORTED) {
		release_late(st, op, op->_held_res); /* the kernel let go while it was queued */
		return;
	}
	if (op->_flags & TMO__F_KERNEL) {
		if ((op->_flags & TMO__F_CANCEL_UNSENT) && !send_cancel(st, op)) {
			enqueue_pending(st, op);
			return;
		}
		/* An io-wq request the caller hears about now; the kernel lets go later. */
		if ((op->_user_flags & TMO_OP_BLOCKING) && !(op->_flags & TMO__F_REPORTED)) {
			tmo__timer_disarm(st, &op->_timer);
			deliver(st, op, op->_flags & TMO__F_CANCEL ? -ECANCELED : -ETIME);
		}
		return;
	}
	if (op->_flags & TMO__F_DECIDED)
		deliver(st, op, op->_res);
	else if (op->_flags & TMO__F_CANCEL)
		deliver(st, op, -ECANCELED);
	else if ((op->_flags & TMO__F_EXPIRED) ||
		 (op->_deadline != TMO_NEVER_NS && op->_deadline <= tmo_now()))
		deliver(st, op, -ETIME);
	else if (!submit(st, op))
		enqueue_pending(st, op);
}
