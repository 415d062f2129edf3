/*
 * tmo groups: many operations at once under one deadline (asyncio.gather, asyncio.wait,
 * as_completed, Go's errgroup), in C.
 *
 * A group runs its members concurrently. A member is a prepared struct tmo_op, given to the
 * group with its own (per-member) deadline; the group starts it, at once or, past the
 * concurrency limit, when a running member finishes. A group is itself a member of another
 * group through an op prepared with tmo_prep_group(), which also lets a caller wait for a group
 * with a deadline like any other operation.
 *
 * The group finishes when its mode is satisfied, when its deadline passes (-ETIME), or when it
 * is cancelled (-ECANCELED); on_done then fires once. Members still pending at that moment are
 * cancelled (TMO_GROUP_CANCEL_PENDING, gather with an outer timeout: they complete with
 * -ETIME, or -ECANCELED when the group finished for another reason, and tmo_op_cause() names
 * the group) or left running (TMO_GROUP_LEAVE_PENDING, asyncio.wait: they stay in the pending
 * set and move to the done set when they complete, no longer bound by the group's deadline;
 * members still waiting for a slot start as slots free up). Each member's completion is reported, in
 * completion order, to on_member (as_completed). When the group cuts its pending members, on_done
 * comes after the on_member of every member it cut (as asyncio.gather's result comes after its
 * cancelled children), so on_done sees every result of those; members left running
 * (TMO_GROUP_LEAVE_PENDING) are not waited for.
 *
 * Outcomes of members: success is res >= 0; anything else (an error, -ETIME, -ECANCELED) is a
 * failure.
 *
 * Ownership: the caller allocates struct tmo_group and the member ops. Members belong to the
 * group from tmo_group_add() until they complete; then tmo_op_result() holds their result. The
 * group may be reused or freed once tmo_group_close() succeeded; it refuses (-EBUSY) while the
 * group has not finished or members are pending. Member ops must not be freed before that
 * either: the group's done and pending sets point at them. A completed member stays in the
 * done set until tmo_group_close() (or tmo_group_init() again): until then tmo_prep_*,
 * tmo_op_start() and tmo_group_add() (to this group or another) refuse it with -EBUSY.
 */
#ifndef TMO_GROUP_H
#define TMO_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "op.h"

TMO_BEGIN_DECLS

struct tmo_group;

/* When the group is done. asyncio's return_when names in brackets. */
enum tmo_group_mode {
	TMO_GROUP_ALL = 0,        /* every member finished (ALL_COMPLETED; gather) */
	TMO_GROUP_FIRST_DONE,     /* the first member finished, any outcome (FIRST_COMPLETED) */
	TMO_GROUP_FIRST_SUCCESS,  /* the first member succeeded; failures alone do not end it */
	TMO_GROUP_FIRST_ERROR,    /* the first member failed, or all finished (FIRST_EXCEPTION) */
	TMO_GROUP_QUORUM,         /* `quorum` members succeeded (N of M) */
};

/* What happens to members still pending when the group finishes. */
enum tmo_group_policy {
	TMO_GROUP_CANCEL_PENDING = 0, /* gather under a timeout */
	TMO_GROUP_LEAVE_PENDING = 1,  /* asyncio.wait: report them pending, let them run */
};

/* Why the group finished (tmo_group_reason). */
enum tmo_group_reason {
	TMO_GROUP_RUNNING = 0,   /* not finished */
	TMO_GROUP_MET,           /* the mode's condition was met */
	TMO_GROUP_UNREACHABLE,   /* sealed, and the condition can no longer be met */
	TMO_GROUP_TIMED_OUT,     /* its deadline (or an enclosing scope's or group's) passed */
	TMO_GROUP_CANCELLED,     /* tmo_group_cancel(), or the op waiting for it was cancelled */
};

/* Names for logs; "unknown" out of range, never NULL. Reasons: "running", "met",
 * "unreachable", "timed_out", "cancelled". Modes: "all", "first_done", "first_success",
 * "first_error", "quorum". Policies: "cancel_pending", "leave_pending". */
TMO_API const char *tmo_group_reason_name(enum tmo_group_reason reason);
TMO_API const char *tmo_group_mode_name(enum tmo_group_mode mode);
TMO_API const char *tmo_group_policy_name(enum tmo_group_policy policy);

/* Fires once when the group finishes. res: 0 when the condition was met (ALL: whatever the
 * members' results; FIRST_DONE and FIRST_ERROR: that member's result), the first failure's
 * result when it became unreachable (-ENOENT if no member failed: sealed with no member),
 * -ETIME, -ECANCELED. */
typedef void (*tmo_group_done_cb)(struct tmo_group *group, int32_t res);
/* Fires for each member as it completes, in completion order, also after the group finished
 * (TMO_GROUP_LEAVE_PENDING). */
typedef void (*tmo_group_member_cb)(struct tmo_group *group, struct tmo_op *member, int32_t res);

struct tmo_group_options {
	enum tmo_group_mode mode;
	enum tmo_group_policy policy;
	uint32_t quorum;          /* TMO_GROUP_QUORUM: successes needed (>= 1) */
	uint32_t max_running;     /* concurrency limit; 0: none */
	tmo_deadline deadline;    /* the group's own deadline; zero-initialised: TMO_NEVER */
	tmo_group_done_cb on_done;
	tmo_group_member_cb on_member; /* optional */
	void *data;               /* copied to group->data */
};

struct tmo_group {
	void *data; /* the caller's */
	/* private */
	struct tmo__container _c;
	struct tmo_loop *_loop;
	struct tmo_group_options _opt;
	struct tmo__list _done_list;                  /* completion order, via _group_link */
	struct tmo__list _queued_list;                /* waiting for a slot, via _group_link */
	struct tmo_op *_waiter;                       /* a tmo_prep_group op waiting for it */
	uint32_t _running, _queued, _done, _succeeded, _failed;
	struct tmo_op *_first_failure;
	int32_t _first_done_res, _first_failure_res; /* kept: a member may be restarted later */
	int32_t _res;
	uint8_t _reason;
	uint8_t _state;
};

/*
 * Starts an empty group on `loop` (inside the loop's current scope, if any; in a scope whose
 * deadline has passed it times out at once). `group` must be zeroed, or closed with
 * tmo_group_close(). Returns 0, or -EINVAL (NULL, no on_done, unknown mode or policy, quorum 0
 * in QUORUM mode, negative deadline), -EBUSY (the group is live).
 */
TMO_API int tmo_group_init(struct tmo_loop *loop, struct tmo_group *group,
			   const struct tmo_group_options *options);

/*
 * Adds a prepared op as a member with its own `deadline` (TMO_NEVER for none), and starts it
 * unless max_running members are running (then it waits; if its deadline passes while it
 * waits it completes with -ETIME and never starts). An op made by tmo_prep_group() always
 * starts at once: the group it waits for runs its members already, so the limit could not
 * hold them back. The group takes the op's callback: use
 * on_member. Returns 0, or -EINVAL (NULL, unprepared op, negative deadline, an op waiting for
 * this group or for a group that waits for it), -EBUSY (op active, or an op waiting for a
 * group that already has one), -EPIPE (the group is sealed or finished), or tmo_op_start()'s
 * error.
 */
TMO_API int tmo_group_add(struct tmo_group *group, struct tmo_op *op, tmo_deadline deadline);

/* No more members: lets ALL, FIRST_ERROR, FIRST_SUCCESS and QUORUM finish once every member is
 * done. An empty sealed group finishes at once (from the loop). Returns 0, -EINVAL, or
 * -EALREADY. */
TMO_API int tmo_group_seal(struct tmo_group *group);

/* Finishes the group now with -ECANCELED (pending members per the policy); on_done fires from
 * the loop. Returns 0, -EINVAL, or -EALREADY if it already finished. */
TMO_API int tmo_group_cancel(struct tmo_group *group);

/* Why it finished (TMO_GROUP_RUNNING until then). */
TMO_API enum tmo_group_reason tmo_group_reason(const struct tmo_group *group);
/* Members: done (completed), pending (running or waiting for a slot). */
TMO_API uint32_t tmo_group_done_count(const struct tmo_group *group);
TMO_API uint32_t tmo_group_pending_count(const struct tmo_group *group);
/* Done members in completion order: first, then next (NULL at the end). */
TMO_API struct tmo_op *tmo_group_done_first(const struct tmo_group *group);
TMO_API struct tmo_op *tmo_group_done_next(const struct tmo_op *member);
/* Pending members (running or waiting for a slot), in no particular order: first, then next
 * (NULL at the end). Their results come later, to on_member. */
TMO_API struct tmo_op *tmo_group_pending_first(const struct tmo_group *group);
TMO_API struct tmo_op *tmo_group_pending_next(const struct tmo_op *member);
/* The first member that failed (NULL if none). */
TMO_API struct tmo_op *tmo_group_first_failure(const struct tmo_group *group);
/* True until the group finished and no member is pending; also inside on_done (close the
 * group after on_done has returned). */
TMO_API bool tmo_group_busy(const struct tmo_group *group);
/* Ends the caller's use of the group: 0, and the struct (and its member ops) may be reused or
 * freed; -EBUSY while it has not finished or members are pending (nothing changes: cancel it
 * and run the loop); -EINVAL for NULL, a group never initialised, or one already closed. */
TMO_API int tmo_group_close(struct tmo_group *group);

/*
 * Prepares `op` to wait for `group`: it completes when the group finishes, with the group's
 * result. Start it with tmo_op_start() (its deadline then bounds the group: at the deadline
 * the group is cancelled with -ETIME, pending members per its policy) or add it to another
 * group as a member. Cancelling the op cancels the group.
 */
TMO_API int tmo_prep_group(struct tmo_op *op, struct tmo_group *group);

TMO_END_DECLS

#endif
