/*
 * The loop's dispatch tables, the one place that knows every subsystem: a completion's tag
 * (user_data's low bits, internal.h) picks its handler, an expired kept timer's kind
 * (internal.h) picks its own, and so does deferred work's kind (internal.h). The loop indexes
 * them and names no subsystem; adding one means adding a row here (as the kernel's
 * io_op_defs[] in io_uring/opdef.c describes each opcode).
 */
#include <stddef.h>

#include "container.h"
#include "hooks.h"
#include "tmo/pool.h"
#include "tmo/tick.h"

/* ---- completions ------------------------------------------------------------------------- */

static void cqe_op(struct tmo__loop_state *st, uint64_t user_data, int32_t res, uint32_t flags)
{
	(void)flags;
	tmo__op_on_cqe(st, tmo__op_of_user_data(user_data), res);
}

static void cqe_cancel(struct tmo__loop_state *st, uint64_t user_data, int32_t res,
		       uint32_t flags)
{
	(void)flags;
	tmo__op_on_cancel_answer(st, tmo__op_of_user_data(user_data), res);
}

/* Linked timeouts and the like carry nothing their op's own completion does not, and may
 * outlive it: never dereferenced. The free tags land here too. */
static void cqe_ignored(struct tmo__loop_state *st, uint64_t user_data, int32_t res,
			uint32_t flags)
{
	(void)st;
	(void)user_data;
	(void)res;
	(void)flags;
}

static void cqe_loop_timer(struct tmo__loop_state *st, uint64_t user_data, int32_t res,
			   uint32_t flags)
{
	(void)user_data;
	(void)res;
	(void)flags;
	st->timer.in_flight = false; /* fired: the loop's expiry pass runs next */
}

static void cqe_tick(struct tmo__loop_state *st, uint64_t user_data, int32_t res, uint32_t flags)
{
	tmo__tick_on_cqe(st, (struct tmo_tick *)(uintptr_t)(user_data & TMO__ADDRESS_MASK), res,
			 flags);
}

static void cqe_pool(struct tmo__loop_state *st, uint64_t user_data, int32_t res, uint32_t flags)
{
	(void)flags;
	tmo__pool_on_cqe(st, (struct tmo__pool_state *)(uintptr_t)(user_data & TMO__ADDRESS_MASK),
			 res);
}

const tmo__cqe_handler tmo__cqe_handlers[TMO__TAG_MASK + 1] = {
	[TMO__TAG_OP] = cqe_op,
	[TMO__TAG_IGNORED] = cqe_ignored,
	[TMO__TAG_CANCEL] = cqe_cancel,
	[TMO__TAG_LOOP_TIMER] = cqe_loop_timer,
	[4] = cqe_ignored, /* free */
	[TMO__TAG_TICK] = cqe_tick,
	[6] = cqe_ignored, /* free */
	[TMO__TAG_POOL] = cqe_pool,
};

/* ---- expired kept timers ------------------------------------------------------------------- */

static void timer_op(struct tmo__loop_state *st, struct tmo__timer *timer)
{
	tmo__op_on_expired(st, tmo__op_of_timer(timer));
}

static void timer_cancel_retry(struct tmo__loop_state *st, struct tmo__timer *timer)
{
	tmo__op_on_cancel_retry(st, tmo__op_of_timer(timer));
}

static void timer_job(struct tmo__loop_state *st, struct tmo__timer *timer)
{
	tmo__job_on_expired(st, (struct tmo_job *)((char *)timer - offsetof(struct tmo_job, _timer)));
}

static void timer_container(struct tmo__loop_state *st, struct tmo__timer *timer)
{
	struct tmo__container *c =
		(struct tmo__container *)((char *)timer - offsetof(struct tmo__container, timer));

	if (c->kind == TMO__CONTAINER_SCOPE)
		tmo__scope_on_timer(st, tmo__scope_of(c));
	else
		tmo__group_on_timer(st, tmo__group_of(c));
}

const tmo__timer_handler tmo__timer_handlers[TMO__TIMER_KINDS] = {
	[TMO__TIMER_OP] = timer_op,
	[TMO__TIMER_CONTAINER] = timer_container,
	[TMO__TIMER_JOB] = timer_job,
	[TMO__TIMER_CANCEL_RETRY] = timer_cancel_retry,
};

/* ---- deferred work ----------------------------------------------------------------------- */

static void deferred_op(struct tmo__loop_state *st, struct tmo__deferred *work)
{
	tmo__op_on_deferred(st, tmo__container_of(work, struct tmo_op, _pending));
}

static void deferred_tick(struct tmo__loop_state *st, struct tmo__deferred *work)
{
	tmo__tick_on_deferred(st, tmo__container_of(work, struct tmo_tick, _deferred));
}

const tmo__deferred_handler tmo__deferred_handlers[TMO__DEFER_KINDS] = {
	[TMO__DEFER_OP] = deferred_op,
	[TMO__DEFER_TICK] = deferred_tick,
	[TMO__DEFER_POOL] = tmo__pool_on_deferred,
};
