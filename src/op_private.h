/*
 * Private to the op files (op.c, op_prep.c, op_cancel.c): what they share of a kind's row and of
 * an op's place on the loop's deferred queue. Nothing else includes it; other files ask an op
 * through the tmo__op_* questions of internal.h.
 */
#ifndef TMO_SRC_OP_PRIVATE_H
#define TMO_SRC_OP_PRIVATE_H

#include "internal.h"

/* State bits of struct tmo_op._flags: the op files' alone (others ask internal.h's tmo__op_*
 * questions). */
enum {
	TMO__F_PREPARED = 1u << 0,       /* a tmo_prep_* call described a request */
	TMO__F_ACTIVE = 1u << 1,         /* started and not yet released */
	TMO__F_KERNEL = 1u << 2,         /* the kernel holds the request (SQE handed over) */
	/* 1u << 3 is free: an op waiting on the loop's deferred queue says so in ._pending */
	TMO__F_DECIDED = 1u << 4,        /* ._res holds the outcome to deliver */
	TMO__F_CANCEL = 1u << 5,         /* outcome -ECANCELED decided: tmo_op_cancel or a cut */
	TMO__F_CANCEL_UNSENT = 1u << 6,  /* the cancel request still needs an SQE */
	TMO__F_EXPIRED = 1u << 7,        /* outcome -ETIME decided: a loop-kept deadline or a cut */
	TMO__F_GROUP_WAITING = 1u << 8,  /* a group member waiting for a slot: not started */
	TMO__F_LINKED = 1u << 9,         /* a linked timeout enforces the deadline */
	TMO__F_REPORTED = 1u << 10,      /* the callback fired; waiting for the kernel to let go */
	TMO__F_CANCEL_ASKED = 1u << 11,  /* a cancel request is in flight: the op is held for its
					  * answer */
	TMO__F_DONE_HELD = 1u << 12,     /* the op's own completion came before that answer; its
					  * result waits in ._held_res */
	TMO__F_CANCEL_RETRY = 1u << 13,  /* ._timer is armed to ask again, not for the deadline */
	TMO__F_IN_DONE_SET = 1u << 14,   /* a completed group member, linked in its group's done
					  * set (._group_link) until the group is closed: not to be
					  * prepared, started or added anywhere meanwhile */
};


/*
 * ---- the kinds ---------------------------------------------------------------------------
 *
 * TMO__OP_KINDS (op_kinds.h) describes every kind. kind_row() reads a kind's row, and op.c's
 * prep_sqe() and check_args() are generated from the list: each is a switch over the kinds
 * that the compiler folds, so that a question such as kind_keeps(kind, TMO__KEEP_SELF) costs
 * what `kind == TMO__KIND_SLEEP` would, and each kind's SQE and checks are straight code with
 * its opcode a constant. (A table of callbacks per kind cost a call on every start.)
 */

struct kind_row {
	uint8_t opcode;
	enum tmo__args_shape args;
	enum tmo__keep keep;
	enum tmo__result result;
};

/* The row of `kind`, a TMO__KIND_* other than NONE. */
static inline struct kind_row kind_row(unsigned kind)
{
	switch (kind) {
#define KIND_ROW(name, opcode, args, keep, result)                            \
	case TMO__KIND_##name:                                                \
		return (struct kind_row){ opcode, TMO__ARGS_##args, TMO__KEEP_##keep, \
					  TMO__RESULT_##result };
		TMO__OP_KINDS(KIND_ROW)
#undef KIND_ROW
	}
	return (struct kind_row){ IORING_OP_NOP, TMO__ARGS_NONE, TMO__KEEP_LINKED, TMO__RESULT_PLAIN };
}

static inline bool kind_keeps(unsigned kind, enum tmo__keep keep)
{
	return kind_row(kind).keep == keep;
}

/* ---- the deferred queue ------------------------------------------------------------------ */

/* The op needs the loop outside a completion: it waits on the loop's deferred queue. */
static inline void enqueue_pending(struct tmo__loop_state *st, struct tmo_op *op)
{
	tmo__defer(st, &op->_pending, TMO__DEFER_OP);
}

/* Whether the op's outcome is still open, so that a cancel, a cut or a deadline can decide it:
 * active, its callback not fired, nothing decided. The one definition (tmo__op_undecided asks
 * it for other files). */
static inline bool op_undecided(const struct tmo_op *op)
{
	return (op->_flags & TMO__F_ACTIVE) &&
	       !(op->_flags & (TMO__F_REPORTED | TMO__F_DECIDED | TMO__F_CANCEL | TMO__F_EXPIRED));
}

static inline bool queued(const struct tmo_op *op)
{
	return op->_pending.queued;
}

#endif
