/*
 * The tree of deadlines: scopes and groups are containers; each holds the ops started in it
 * and the containers entered or created inside it. A container's deadline is one timer in the
 * loop's wheel; when it passes, the container cuts its whole subtree (shielded scopes excepted),
 * so moving a deadline touches one wheel entry, whatever the number of ops below it.
 */
#ifndef TMO_SRC_CONTAINER_H
#define TMO_SRC_CONTAINER_H

#include "internal.h"
#include "tmo/group.h"
#include "tmo/scope.h"

enum { TMO__CONTAINER_SCOPE = 1, TMO__CONTAINER_GROUP = 2 };

static inline struct tmo_scope *tmo__scope_of(struct tmo__container *c)
{
	return tmo__container_of(c, struct tmo_scope, _c);
}

static inline struct tmo_group *tmo__group_of(struct tmo__container *c)
{
	return tmo__container_of(c, struct tmo_group, _c);
}

/* The op a container's op_list or a group's done or waiting list links (NULL for NULL). */
static inline struct tmo_op *tmo__op_of_sibling(const struct tmo__link *link)
{
	return link ? tmo__container_of(link, struct tmo_op, _sibling) : NULL;
}

static inline struct tmo_op *tmo__op_of_group_link(const struct tmo__link *link)
{
	return link ? tmo__container_of(link, struct tmo_op, _group_link) : NULL;
}

/* Tree links. */
void tmo__container_init(struct tmo__container *c, uint8_t kind, int64_t deadline, bool shield);
void tmo__container_attach(struct tmo__container *parent, struct tmo__container *child);
void tmo__container_detach(struct tmo__container *child);
void tmo__container_add_op(struct tmo__container *c, struct tmo_op *op);
void tmo__container_remove_op(struct tmo_op *op);

/* The earliest deadline over `c` and its ancestors up to the first shield, and which container
 * sets it (*binding, NULL if none). */
int64_t tmo__container_effective(const struct tmo__container *c,
				 const struct tmo__container **binding);
/* The nearest scope at or above `c` (NULL if none). */
struct tmo_scope *tmo__container_scope(struct tmo__container *c);

/*
 * Cuts everything pending below `c` (its ops, its groups, its unshielded scopes): ops complete
 * with `res` (-ETIME or -ECANCELED) and cause `cause`/`obj`. Idempotent per op.
 */
void tmo__container_cut(struct tmo__loop_state *st, struct tmo__container *c, int32_t res,
			uint8_t cause, void *obj);

/* Called when a container may have become empty (an op or child left, a hold ended). */
void tmo__container_check_done(struct tmo__loop_state *st, struct tmo__container *c);

/* What each kind does when its timer fires, and when it becomes empty (scope.c, group.c). */
void tmo__scope_on_timer(struct tmo__loop_state *st, struct tmo_scope *scope);
/* Records that the scope's deadline cut work short. */
void tmo__scope_mark_expired(struct tmo_scope *scope);
void tmo__scope_check_done(struct tmo__loop_state *st, struct tmo_scope *scope);
void tmo__group_on_timer(struct tmo__loop_state *st, struct tmo_group *group);
void tmo__group_check_done(struct tmo__loop_state *st, struct tmo_group *group);
/* Cut by an enclosing container: finishes the group as timed out or cancelled. */
void tmo__group_cut(struct tmo__loop_state *st, struct tmo_group *group, int32_t res,
		    uint8_t cause, void *obj);

/* Ops (op.c). */
/* Ends an active op early with res (-ETIME or -ECANCELED) and the given cause. */
void tmo__op_cut(struct tmo__loop_state *st, struct tmo_op *op, int32_t res, uint8_t cause,
		 void *obj);
/* Starts a prepared op inside container `c` (NULL: none) with the callback `cb`. */
int tmo__op_start_in(struct tmo_loop *loop, struct tmo_op *op, int64_t deadline, tmo_op_cb cb,
		     struct tmo__container *c);
/* Activates an op in `c` without starting it (a group member waiting for a slot): its own
 * deadline is armed, and if it passes first the op completes with -ETIME unstarted. */
int tmo__op_park_in(struct tmo_loop *loop, struct tmo_op *op, int64_t deadline, tmo_op_cb cb,
		    struct tmo__container *c);
/* Starts a parked op. */
void tmo__op_launch_parked(struct tmo__loop_state *st, struct tmo_op *op);
/* Fixes the outcome of a started op that has no kernel request without delivering it yet, and
 * later hands it to the loop's deferred queue (its callback then comes from the loop). */
void tmo__op_settle(struct tmo__loop_state *st, struct tmo_op *op, int32_t res, uint8_t cause,
		    void *obj);
void tmo__op_release_settled(struct tmo__loop_state *st, struct tmo_op *op);
/* Completes a started op that has no kernel request (a group waiter) with res, from the loop. */
void tmo__op_decide(struct tmo__loop_state *st, struct tmo_op *op, int32_t res, uint8_t cause,
		    void *obj);

/* Takes a parked member (TMO__F_GROUP_WAITING: it is on the group's waiting list) off that
 * list, in O(1), and counts it running. */
void tmo__group_unpark(struct tmo_group *group, struct tmo_op *op);
/* Group waiters (group.c). */
int tmo__group_check_waiter(const struct tmo_group *group, const struct tmo__loop_state *st);
void tmo__group_waiter_start(struct tmo__loop_state *st, struct tmo_op *op);
void tmo__group_waiter_cut(struct tmo__loop_state *st, struct tmo_op *op, int32_t res);

#endif
