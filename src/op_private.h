/*
 * Private to the op files (op.c, op_prep.c, op_cancel.c): what they share of a kind's row and of
 * an op's place on the loop's deferred queue. Nothing else includes it; other files ask an op
 * through the tmo__op_* questions of internal.h.
 */
#ifndef TMO_SRC_OP_PRIVATE_H
#define TMO_SRC_OP_PRIVATE_H

#include "internal.h"

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

static inline bool queued(const struct tmo_op *op)
{
	return op->_pending.queued;
}

#endif
