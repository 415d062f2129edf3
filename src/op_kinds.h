/*
 * Private to tmo: every kind of op (struct tmo_op._kind), described in one list. The enum
 * tmo__kind below, the opcode a start checks the kernel for, the SQE a kind submits, the checks
 * tmo_op_start makes of its arguments, how its deadline is kept and what a late result holds are
 * all generated from this list (op.c, op_private.h); nothing else names a kind's details. A new
 * kind is a row here and its tmo_prep_* (op_prep.c); see docs/internals.md.
 *
 * A row: X(name, opcode, args, keep, result)
 *   name    the kind is TMO__KIND_<name>
 *   opcode  the io_uring opcode of its request; a start on a kernel without it says -ENOTSUP
 *   args    the shape of its arguments (TMO__ARGS_*): which member of struct tmo_op._args its
 *           tmo_prep_* fills, which SQE fields they go to, and what tmo_op_start checks
 *   keep    how its deadline is kept (TMO__KEEP_*)
 *   result  what its result is (TMO__RESULT_*): an fd is closed if it comes after the callback
 *           and no release callback takes it
 */
#ifndef TMO_SRC_OP_KINDS_H
#define TMO_SRC_OP_KINDS_H

/*	  name     opcode              args     keep    result */
#define TMO__OP_KINDS(X)                                                                   \
	X(NOP,     IORING_OP_NOP,      NONE,    LINKED, PLAIN)                             \
	X(SLEEP,   IORING_OP_TIMEOUT,  SLEEP,   SELF,   PLAIN)                             \
	X(READ,    IORING_OP_READ,     RW,      LINKED, PLAIN)                             \
	X(WRITE,   IORING_OP_WRITE,    RW,      LINKED, PLAIN)                             \
	X(RECV,    IORING_OP_RECV,     MSG,     LINKED, PLAIN)                             \
	X(SEND,    IORING_OP_SEND,     MSG,     LINKED, PLAIN)                             \
	X(ACCEPT,  IORING_OP_ACCEPT,   ACCEPT,  LINKED, FD)                                \
	X(CONNECT, IORING_OP_CONNECT,  CONNECT, LINKED, PLAIN)                             \
	X(POLL,    IORING_OP_POLL_ADD, POLL,    LINKED, PLAIN)                             \
	X(OPENAT,  IORING_OP_OPENAT,   OPEN,    IOWQ,   FD)                                \
	X(GROUP,   IORING_OP_NOP,      GROUP,   GROUP,  PLAIN) /* no request: see keep */

/* What a prepared op asks of the kernel (struct tmo_op._kind). 0 means "never prepared". */
enum tmo__kind {
	TMO__KIND_NONE = 0,
#define TMO__KIND_ENUM_(name, opcode, args, keep, result) TMO__KIND_##name,
	TMO__OP_KINDS(TMO__KIND_ENUM_)
#undef TMO__KIND_ENUM_
	TMO__KIND_COUNT_
};

/* The shapes of arguments: each is one member of struct tmo_op._args (op.c maps each to the
 * SQE's fd, addr, len, off and opcode flags, and checks it at start). */
enum tmo__args_shape {
	TMO__ARGS_NONE,    /* nothing (fd -1) */
	TMO__ARGS_SLEEP,   /* .sleep: one absolute timeout at the earlier of wake_at and deadline */
	TMO__ARGS_RW,      /* .io: fd >= 0, buf (NULL only with len 0), len, offset */
	TMO__ARGS_MSG,     /* .io: fd >= 0, buf (NULL only with len 0), len, msg_flags */
	TMO__ARGS_ACCEPT,  /* .accept: fd >= 0, addr, addrlen (not NULL with addr), flags */
	TMO__ARGS_CONNECT, /* .connect: fd >= 0, addr (not NULL), addrlen */
	TMO__ARGS_POLL,    /* .poll_events: fd >= 0, events */
	TMO__ARGS_OPEN,    /* .open: dirfd (>= 0 or AT_FDCWD), path (not NULL), flags, mode */
	TMO__ARGS_GROUP,   /* .group: checked by group.c (tmo__group_check_waiter) */
};

/* How an op's deadline is kept (tmo_op_start, submit() in op.c). */
enum tmo__keep {
	TMO__KEEP_LINKED, /* the kernel can interrupt the request: a linked timeout keeps the
			   * deadline under TMO_DEADLINES_KERNEL, unless the caller sets
			   * TMO_OP_BLOCKING; otherwise the loop, with a cancel at expiry */
	TMO__KEEP_IOWQ,   /* it may block in io-wq, where no linked timeout reaches: always
			   * TMO_OP_BLOCKING, so the loop keeps the deadline and reports the op at
			   * it */
	TMO__KEEP_SELF,   /* the request is itself a timeout, at the earlier of its wake-up and
			   * the deadline; its -ETIME tells which came first */
	TMO__KEEP_GROUP,  /* no request: it waits for a group, which keeps the deadline on the
			   * loop's wheel (group.c) */
};

/* What an op's result is. */
enum tmo__result {
	TMO__RESULT_PLAIN, /* a count, revents or 0 */
	TMO__RESULT_FD,    /* a new fd */
};

#endif
