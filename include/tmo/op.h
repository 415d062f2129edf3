/*
 * tmo operations: one I/O request with a deadline.
 *
 * Life of an operation
 *   1. The caller owns a struct tmo_op (embed it anywhere; tmo never allocates one).
 *   2. A tmo_prep_*() call describes the request (fd, buffer, ...). It does not start it.
 *   3. tmo_op_start() starts it with an absolute deadline (tmo_now() clock, or TMO_NEVER) and a
 *      completion callback. No memory is allocated.
 *   4. The callback fires exactly once, from inside tmo_loop_run*, with the result:
 *        res >= 0       success: bytes moved, an fd, poll revents, 0. Partial progress is
 *                       returned as a short count even when the deadline cut the rest short.
 *        -ETIME         the deadline passed first (or had passed at start: nothing was started).
 *        -ECANCELED     tmo_op_cancel() stopped it first.
 *        other -errno   the kernel's error for the request (-ECONNREFUSED, -EBADF, ...).
 *
 * When may the caller reuse the op, its buffer, its sockaddr and path?
 *   Normally as soon as the callback fires: the callback may even restart the same op.
 *   The exception is an operation the kernel cannot interrupt (one that blocks inside the
 *   kernel's io-wq worker threads: tmo_prep_openat(), and any op flagged TMO_OP_BLOCKING, which
 *   is what reads and writes on regular files and block devices need). Its deadline is kept by
 *   the loop itself: the callback fires with -ETIME on time, tmo then asks the kernel to
 *   interrupt the request, and the op and everything it points to stay owned by tmo until the
 *   kernel really lets go. tmo_op_busy() is true until then, and the release callback (if set
 *   with tmo_op_set_release) fires at that moment with the kernel's late result, so that bytes
 *   read or an fd opened after the deadline reach the caller instead of being lost. Without a
 *   release callback, an fd returned late by openat or accept is closed by tmo.
 *
 * Who enforces the deadline: by default the kernel, with a linked timeout (IORING_OP_LINK_TIMEOUT,
 * absolute, CQE skipped on success), so it holds even while the loop thread is busy (see
 * TMO_MODE_DEFAULT in loop.h). With TMO_DEADLINES_LOOP, and always for TMO_OP_BLOCKING ops, the
 * loop keeps it and cancels the request when it sees the deadline pass (see loop.h). Except for
 * TMO_OP_BLOCKING ops (reported at the deadline, see above), the op's own completion decides
 * the outcome: an op that finishes just before its deadline reports its result, not a timeout.
 */
#ifndef TMO_OP_H
#define TMO_OP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "clock.h"
#include "common.h"

TMO_BEGIN_DECLS

struct tmo_loop;
struct tmo_op;
struct tmo_scope;
struct tmo_group;

/* Completion callback: fires exactly once per successful tmo_op_start(). */
typedef void (*tmo_op_cb)(struct tmo_op *op, int32_t res);

/*
 * Release callback: fires once the kernel has let go of an op whose completion was reported
 * before the kernel finished with it (see above). `late_res` is the kernel's own result for the
 * request: bytes read or written after the deadline, an fd, or -EINTR / -ECANCELED if it was
 * interrupted. It fires only for such ops (tmo_op_busy() was still true when the completion
 * callback ran); for every other op the completion callback is the release.
 */
typedef void (*tmo_op_release_cb)(struct tmo_op *op, int32_t late_res);

/* Flags for tmo_op_set_flags(). */
enum tmo_op_flag {
	/*
	 * The request may block inside the kernel's io-wq workers, where a linked timeout cannot
	 * interrupt it: reads and writes on regular files and block devices. Its deadline is then
	 * kept by the loop (see above). tmo_prep_openat() sets it by itself.
	 */
	TMO_OP_BLOCKING = 1u << 0,
};

/* Private parts of struct tmo_op, tmo_scope and tmo_group, kept here only so the caller can
 * embed them. */
/* A link in one of tmo's intrusive lists, and a list's two ends (src/list.h). Both are valid
 * zeroed: an unlinked link, an empty list. */
struct tmo__link {
	struct tmo__link *next, *prev;
};

struct tmo__list {
	struct tmo__link *first, *last;
};

/* An entry in a timer wheel (src/timer_wheel.h): the link in the slot that holds it and the
 * exact time it is due. Valid zeroed (in no slot). */
struct tmo__wheel_entry {
	struct tmo__link link;
	int64_t when;
};

/* Work waiting for the loop's attention outside a completion: an entry in the loop's one
 * deferred queue (src/loop.c). `kind` picks the handler that serves it. */
struct tmo__deferred {
	struct tmo__link link;
	uint8_t kind;
	uint8_t queued; /* 0, or which of the loop's two lists holds it */
};

/* An entry in the loop's timer wheel of kept deadlines (entry.when: when it is due). */
struct tmo__timer {
	struct tmo__wheel_entry entry;
	uint8_t kind;  /* what embeds it: an op, a container, a job */
	uint8_t armed; /* in the wheel */
};

/* What scopes and groups share: a node in the tree of deadlines, holding ops and other
 * containers. */
struct tmo__container {
	struct tmo__container *parent;
	struct tmo__list child_list; /* child containers, newest first, via .sibling */
	struct tmo__link sibling;    /* in the parent's child_list */
	struct tmo__list op_list;    /* its ops, newest first, via tmo_op._sibling */
	uint32_t ops, children;      /* how many op_list and child_list hold */
	uint32_t holds; /* callbacks of its ops running now: it is not done meanwhile */
	int64_t deadline;
	struct tmo__timer timer;
	uint8_t kind;   /* scope or group */
	uint8_t shield;
};

struct tmo__kernel_timespec {
	int64_t tv_sec;
	long long tv_nsec;
};

struct tmo_op {
	/* The caller's pointer; tmo never reads or writes it. */
	void *data;

	/* private: everything below is tmo's; use the functions in this header. */
	struct tmo_loop *_loop;
	tmo_op_cb _cb;
	tmo_op_release_cb _release;
	struct tmo__deferred _pending;           /* on the loop's deferred queue */
	struct tmo__timer _timer;
	int64_t _deadline;
	struct tmo__container *_owner;           /* scope or group it belongs to */
	struct tmo__link _sibling;               /* in its owner's op_list */
	struct tmo__link _group_link;            /* a group's done or waiting list */
	void *_cause_obj;                        /* the scope or group that timed it out */
	struct tmo__kernel_timespec _ts;
	union {
		struct {
			void *buf;
			uint64_t offset;
			uint32_t len;
			int32_t msg_flags;
		} io;
		struct {
			const struct sockaddr *addr;
			socklen_t addrlen;
		} connect;
		struct {
			struct sockaddr *addr;
			socklen_t *addrlen;
			int32_t flags;
		} accept;
		struct {
			const char *path;
			int32_t flags;
			uint32_t mode;
		} open;
		struct {
			int64_t wake_at;
		} sleep;
		struct tmo_group *group;
		uint32_t poll_events;
	} _args;
	int32_t _fd;
	int32_t _res;
	int32_t _held_res;      /* the kernel's result, while a cancel's answer is awaited */
	uint16_t _flags;
	uint8_t _kind;
	uint8_t _user_flags;
	uint8_t _generation;
	uint8_t _cause;
	uint8_t _cancel_asks;   /* cancel requests sent for this start: spaces the retries */
};

/*
 * Preparation. Each tmo_prep_* call (re)initialises every private field of `op` for one kind
 * of request and leaves `data` alone. Each returns 0, -EINVAL (NULL op, or an invalid
 * wake_at), or -EBUSY if the op is active (tmo_op_busy() true): an active op is refused and
 * left untouched, still running. As every tmo struct, an op must be zero-initialised before its
 * first preparation (`struct tmo_op op = { 0 };`, calloc, a zeroed enclosing struct): stack
 * garbage may look active and be refused. Pointers passed in (buffers, addresses, paths) must stay
 * valid until the op is released (normally: until its callback fires).
 */

/* A request that does nothing and completes at once with 0. */
TMO_API int tmo_prep_nop(struct tmo_op *op);

/*
 * Sleeps until `wake_at` (absolute). Completes with 0 at wake_at, or -ETIME if the op's
 * deadline comes first. wake_at in the past completes at once with 0 (unless the deadline has
 * passed too: then, as for every op, -ETIME without starting).
 */
TMO_API int tmo_prep_sleep(struct tmo_op *op, tmo_deadline wake_at);

/* read(2) / pread(2): offset (uint64_t)-1 means "current file position". */
TMO_API int tmo_prep_read(struct tmo_op *op, int fd, void *buf, uint32_t len, uint64_t offset);

/* write(2) / pwrite(2): offset (uint64_t)-1 means "current file position". */
TMO_API int tmo_prep_write(struct tmo_op *op, int fd, const void *buf, uint32_t len,
			    uint64_t offset);

/* recv(2) with msg_flags (MSG_WAITALL, MSG_PEEK, ...). */
TMO_API int tmo_prep_recv(struct tmo_op *op, int fd, void *buf, uint32_t len, int msg_flags);

/* send(2) with msg_flags (MSG_NOSIGNAL is added: a closed peer gives -EPIPE, not SIGPIPE). */
TMO_API int tmo_prep_send(struct tmo_op *op, int fd, const void *buf, uint32_t len,
			   int msg_flags);

/* accept4(2): addr and addrlen may be NULL; flags as accept4 (SOCK_CLOEXEC, ...). Result: fd. */
TMO_API int tmo_prep_accept(struct tmo_op *op, int fd, struct sockaddr *addr,
			     socklen_t *addrlen, int flags);

/* connect(2). */
TMO_API int tmo_prep_connect(struct tmo_op *op, int fd, const struct sockaddr *addr,
			      socklen_t addrlen);

/* Waits until fd is ready for `events` (POLLIN, POLLOUT, ...). Result: the revents mask. */
TMO_API int tmo_prep_poll(struct tmo_op *op, int fd, uint32_t events);

/*
 * openat(2). Opening a FIFO blocks in the kernel until the other end opens, where no linked
 * timeout reaches, so this op always has TMO_OP_BLOCKING. Result: the new fd.
 */
TMO_API int tmo_prep_openat(struct tmo_op *op, int dirfd, const char *path, int flags,
			     mode_t mode);

/* Sets TMO_OP_* flags on a prepared, inactive op. Returns 0, -EINVAL (unknown flag or NULL),
 * or -EBUSY (op active). */
TMO_API int tmo_op_set_flags(struct tmo_op *op, unsigned flags);

/* Sets (or clears, with NULL) the release callback of a prepared, inactive op. 0, -EINVAL or
 * -EBUSY as tmo_op_set_flags. */
TMO_API int tmo_op_set_release(struct tmo_op *op, tmo_op_release_cb release);

/*
 * Starts a prepared op on `loop` with an absolute `deadline` (TMO_NEVER for none); `cb` fires
 * once with the outcome. A deadline at or before tmo_now() starts nothing: the callback fires
 * with -ETIME from the next loop iteration. Returns 0, or (and then `cb` never fires and
 * nothing changed):
 *   -EINVAL  NULL loop/op/cb, an op never prepared, a negative deadline (e.g. a relative
 *            helper's error), an op not 8-byte aligned, an argument the request cannot take
 *            (NULL buffer with len > 0, NULL address or path), or for tmo_prep_group(): a
 *            group never initialised, closed, or on another loop;
 *   -EBADF   a negative fd;
 *   -EBUSY   the op is already active (or not yet released by the kernel), or for
 *            tmo_prep_group(): another op already waits for that group;
 *   -ENOTSUP the kernel lacks the opcode.
 */
TMO_API int tmo_op_start(struct tmo_loop *loop, struct tmo_op *op, tmo_deadline deadline,
			 tmo_op_cb cb);

/*
 * Asks for an active op to stop. Its callback then fires with -ECANCELED, unless it completed
 * first, in which case it reports its own result (the op's own completion decides). Returns:
 *   0          cancellation requested;
 *   -EALREADY  a cancellation is already under way, or the outcome is already decided (the
 *              deadline passed, or the callback already fired and only the kernel's release is
 *              pending);
 *   -ENOENT    the op is not active: it finished (its callback already fired) or never started.
 *              Harmless;
 *   -EINVAL    NULL.
 * A cancel the kernel answers "not found" or "already running" while it still holds the
 * request (a blocking pipe's read or write moving into io-wq on Linux before 6.4) is asked
 * again, 1 ms later and then at doubling intervals up to 64 ms, until the request ends
 * (tmo_loop_stats.cancel_retries counts them). The op stays active until the cancel's own
 * answer is in, which the kernel gives as soon as the cancel is submitted.
 */
TMO_API int tmo_op_cancel(struct tmo_op *op);

/* True from tmo_op_start() until the kernel has released the op (normally: until the callback
 * fires). While true, the op and its buffer must not be reused or freed. */
TMO_API bool tmo_op_busy(const struct tmo_op *op);

/* The op's absolute deadline as given to tmo_op_start(), while it is active (TMO_NEVER if it
 * has none, or is not active: never started, or released, as inside its own callback). */
TMO_API tmo_deadline tmo_op_deadline(const struct tmo_op *op);

/* The result of the op's last completion (0 before any). */
TMO_API int32_t tmo_op_result(const struct tmo_op *op);

/* Which deadline or request ended the op's last run. */
enum tmo_cause {
	TMO_CAUSE_NONE = 0,  /* it completed on its own (success or the kernel's error) */
	TMO_CAUSE_OWN,       /* -ETIME: its own deadline */
	TMO_CAUSE_SCOPE,     /* -ETIME: a scope's deadline (tmo_op_cause_scope) */
	TMO_CAUSE_GROUP,     /* -ETIME or -ECANCELED: a group's deadline or finish (cause_group) */
	TMO_CAUSE_CANCEL,    /* -ECANCELED: tmo_op_cancel() */
};
/* The cause of the op's last completion (TMO_CAUSE_NONE before any, or for NULL). */
TMO_API enum tmo_cause tmo_op_cause(const struct tmo_op *op);
/* The scope or group named by the cause (NULL otherwise). Valid while that object is. */
TMO_API struct tmo_scope *tmo_op_cause_scope(const struct tmo_op *op);
TMO_API struct tmo_group *tmo_op_cause_group(const struct tmo_op *op);
/* "none", "own", "scope", "group", "cancel"; "unknown" out of range. Never NULL. */
TMO_API const char *tmo_cause_name(enum tmo_cause cause);

TMO_END_DECLS

#endif
