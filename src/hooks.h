/*
 * Private to tmo: the entry points the loop's dispatch tables (dispatch.c) call in each
 * subsystem. Only dispatch.c and the file that defines a hook include this; the loop itself
 * indexes the tables and names none of them.
 */
#ifndef TMO_SRC_HOOKS_H
#define TMO_SRC_HOOKS_H

#include "internal.h"

/* ---- ops (op.c) ---------------------------------------------------------------------------- */

/* Handles one CQE with TMO__TAG_OP. */
void tmo__op_on_cqe(struct tmo__loop_state *st, struct tmo_op *op, int32_t res);
/* Handles the answer to an op's cancel request (TMO__TAG_CANCEL). */
void tmo__op_on_cancel_answer(struct tmo__loop_state *st, struct tmo_op *op, int32_t res);
/* Serves an op taken off the deferred queue; one that still cannot progress (no SQE) queues
 * itself again. */
void tmo__op_on_deferred(struct tmo__loop_state *st, struct tmo_op *op);
/* The op's own loop-kept deadline passed. */
void tmo__op_on_expired(struct tmo__loop_state *st, struct tmo_op *op);
/* The op's pause before asking the kernel again to cancel it is over. */
void tmo__op_on_cancel_retry(struct tmo__loop_state *st, struct tmo_op *op);

/* ---- ticks (tick.c) ------------------------------------------------------------------------ */

struct tmo_tick;
/* Handles one CQE with TMO__TAG_TICK. */
void tmo__tick_on_cqe(struct tmo__loop_state *st, struct tmo_tick *tick, int32_t res,
		      uint32_t flags);
/* Retries the request of a tick taken off the deferred queue (it found no SQE before). */
void tmo__tick_on_deferred(struct tmo__loop_state *st, struct tmo_tick *tick);

/* ---- pools (pool.c) ------------------------------------------------------------------------ */

struct tmo__pool_state;
struct tmo_job;
/* Handles one CQE with TMO__TAG_POOL: the pool's wake-up request completed. */
void tmo__pool_on_cqe(struct tmo__loop_state *st, struct tmo__pool_state *pool, int32_t res);
/* Serves a pool taken off the deferred queue (`work` is its entry; the pool's state is private
 * to pool.c): everything the loop owes it outside a completion. */
void tmo__pool_on_deferred(struct tmo__loop_state *st, struct tmo__deferred *work);
/* A job's deadline passed. */
void tmo__job_on_expired(struct tmo__loop_state *st, struct tmo_job *job);

#endif
