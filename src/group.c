/* Groups: many operations under one deadline, finished by a mode, with a policy for the rest. */
#include <errno.h>
#include <string.h>

#include "container.h"

enum {
	GROUP_INIT = 1u << 0,
	GROUP_SEALED = 1u << 1,
	GROUP_FINISHED = 1u << 2,
	GROUP_IDLE = 1u << 3,        /* finished and nothing pending: the caller's again */
	GROUP_POKE_EVAL = 1u << 4,   /* re-evaluate from the loop (after seal) */
	GROUP_CUT_MEMBERS = 1u << 5, /* finishing cut the pending members: on_done after them */
	GROUP_NOTIFIED = 1u << 6,    /* on_done has run: only now may the group become idle */
	GROUP_POKE_NOTIFY = 1u << 7, /* decided by a cut: run on_done from the loop */
};

static struct tmo__loop_state *state_of(const struct tmo_group *group)
{
	return tmo__state(group->_loop);
}

static uint32_t pending(const struct tmo_group *group)
{
	return group->_running + group->_queued;
}

/* Asks the loop to look at the group at its next iteration: its timer, due at once. */
static void poke(struct tmo_group *group, uint8_t what)
{
	group->_state |= what;
	tmo__timer_arm(state_of(group), &group->_c.timer, 0);
}

/*
 * Decides the group's outcome, once: records why, cuts pending members if the policy (or a cut
 * from outside, `force`) says so, and decides the op waiting for it (whose callback comes from
 * the loop's deferred queue). Returns false if it was already decided.
 */
static bool decide(struct tmo__loop_state *st, struct tmo_group *group, enum tmo_group_reason reason,
		   int32_t res, int32_t cut_res, uint8_t cause, void *obj, bool force)
{
	if (group->_state & GROUP_FINISHED)
		return false;
	group->_state |= GROUP_FINISHED;
	group->_reason = (uint8_t)reason;
	group->_res = res;
	tmo__timer_disarm(st, &group->_c.timer);
	if (force || group->_opt.policy == TMO_GROUP_CANCEL_PENDING) {
		group->_state |= GROUP_CUT_MEMBERS;
		tmo__container_cut(st, &group->_c, cut_res, cause, obj);
	}
	/* Members left running are no longer bound by the deadline the group has used up. */
	if (!force && group->_opt.policy == TMO_GROUP_LEAVE_PENDING)
		group->_c.deadline = TMO_NEVER_NS;

	/* The op waiting for the group gets its outcome now and its callback after on_done. */
	struct tmo_op *waiter = group->_waiter;
	if (waiter) {
		bool cut = res == -ETIME || res == -ECANCELED;
		/* Cut from outside (a scope's expiry), the waiter names that cause too. */
		uint8_t waiter_cause = !cut ? TMO_CAUSE_NONE : force ? cause : TMO_CAUSE_GROUP;
		void *waiter_obj = !cut ? NULL : force ? obj : group;
		tmo__op_settle(st, waiter, res, waiter_cause, waiter_obj);
	}
	return true;
}

/* Runs on_done; only ever from the loop's top level (a member's callback, a timer). */
static void notify(struct tmo__loop_state *st, struct tmo_group *group)
{
	group->_state |= GROUP_NOTIFIED;
	int64_t began = tmo__callback_begin(st);
	group->_c.holds++; /* the group cannot become idle (and be freed) inside on_done */
	group->_opt.on_done(group, group->_res);
	tmo__callback_end(st, began, TMO_STALL_GROUP);
	group->_c.holds--;
	struct tmo_op *waiter = group->_waiter;
	if (waiter) {
		group->_waiter = NULL;
		tmo__op_release_settled(st, waiter);
	}
	tmo__group_check_done(st, group);
}

/*
 * Runs on_done once the members the group cut have completed: their on_member callbacks come
 * first, as asyncio.gather's result comes after its cancelled children's. Otherwise a caller
 * collecting results in on_member would see the group finished with members missing. Members
 * left running (TMO_GROUP_LEAVE_PENDING) are not waited for.
 */
static void notify_after_cut_members(struct tmo__loop_state *st, struct tmo_group *group)
{
	if ((group->_state & GROUP_CUT_MEMBERS) && pending(group))
		return; /* member_done() notifies when the last one is in */
	group->_state &= (uint8_t)~GROUP_CUT_MEMBERS;
	notify(st, group);
}

static void finish(struct tmo__loop_state *st, struct tmo_group *group, enum tmo_group_reason reason,
		   int32_t res, int32_t cut_res, uint8_t cause, void *obj, bool force)
{
	if (decide(st, group, reason, res, cut_res, cause, obj, force))
		notify_after_cut_members(st, group);
}

static int32_t first_failure_res(const struct tmo_group *group)
{
	return group->_first_failure ? group->_first_failure_res : -ENOENT;
}

/* Finishes the group if its mode is satisfied, or can no longer be. */
static void evaluate(struct tmo__loop_state *st, struct tmo_group *group)
{
	bool all_in = (group->_state & GROUP_SEALED) && !pending(group);
	enum tmo_group_reason reason = TMO_GROUP_RUNNING;
	int32_t res = 0;

	switch (group->_opt.mode) {
	case TMO_GROUP_ALL:
		if (all_in)
			reason = TMO_GROUP_MET;
		break;
	case TMO_GROUP_FIRST_DONE:
		if (!tmo__list_empty(&group->_done_list)) {
			reason = TMO_GROUP_MET;
			res = group->_first_done_res;
		} else if (all_in) {
			reason = TMO_GROUP_UNREACHABLE; /* sealed with no member */
			res = -ENOENT;
		}
		break;
	case TMO_GROUP_FIRST_SUCCESS:
		if (group->_succeeded) {
			reason = TMO_GROUP_MET;
		} else if (all_in) {
			reason = TMO_GROUP_UNREACHABLE;
			res = first_failure_res(group);
		}
		break;
	case TMO_GROUP_FIRST_ERROR:
		if (group->_failed) {
			reason = TMO_GROUP_MET;
			res = first_failure_res(group);
		} else if (all_in) {
			reason = TMO_GROUP_MET;
		}
		break;
	case TMO_GROUP_QUORUM:
		if (group->_succeeded >= group->_opt.quorum) {
			reason = TMO_GROUP_MET;
		} else if ((group->_state & GROUP_SEALED) &&
			   group->_succeeded + pending(group) < group->_opt.quorum) {
			reason = TMO_GROUP_UNREACHABLE;
			res = first_failure_res(group);
		}
		break;
	}
	if (reason != TMO_GROUP_RUNNING)
		finish(st, group, reason, res, -ECANCELED, TMO_CAUSE_GROUP, group, false);
}

/* Starts waiting members while there is room, first come first started. */
static void start_waiting(struct tmo__loop_state *st, struct tmo_group *group)
{
	uint32_t limit = group->_opt.max_running;

	while (!tmo__list_empty(&group->_queued_list) && (!limit || group->_running < limit)) {
		struct tmo_op *op = tmo__op_of_group_link(group->_queued_list.first);

		tmo__group_unpark(group, op);
		tmo__op_launch_parked(st, op);
	}
}

/* Every member's completion comes here (the group owns the members' callbacks). */
static void member_done(struct tmo_op *op, int32_t res)
{
	struct tmo_group *group = tmo__group_of(op->_owner);
	struct tmo__loop_state *st = state_of(group);

	group->_running--;
	group->_done++;
	tmo__op_set_in_done_set(op, true);
	if (tmo__list_empty(&group->_done_list))
		group->_first_done_res = res;
	tmo__list_push_back(&group->_done_list, &op->_group_link);
	if (res >= 0) {
		group->_succeeded++;
	} else {
		group->_failed++;
		if (!group->_first_failure) {
			group->_first_failure = op;
			group->_first_failure_res = res;
		}
	}
	if (group->_opt.on_member)
		group->_opt.on_member(group, op, res);
	/* A member the group's own deadline cut before the group saw that deadline pass (it had
	 * passed when the member started): the deadline decides, not the count of members in. */
	if (!(group->_state & GROUP_FINISHED)) {
		if (res == -ETIME && op->_cause == TMO_CAUSE_GROUP && op->_cause_obj == group)
			finish(st, group, TMO_GROUP_TIMED_OUT, -ETIME, -ETIME, TMO_CAUSE_GROUP,
			       group, false);
		else
			evaluate(st, group);
	}
	if (!(group->_state & GROUP_FINISHED) || group->_opt.policy == TMO_GROUP_LEAVE_PENDING)
		start_waiting(st, group);
	if ((group->_state & GROUP_CUT_MEMBERS) && !(group->_state & GROUP_POKE_NOTIFY))
		notify_after_cut_members(st, group); /* if the last member the group cut is in */
}

void tmo__group_unpark(struct tmo_group *group, struct tmo_op *op)
{
	tmo__list_remove(&group->_queued_list, &op->_group_link);
	group->_queued--;
	group->_running++; /* on its way to completion: member_done counts it off */
}

void tmo__group_check_done(struct tmo__loop_state *st, struct tmo_group *group)
{
	if (!(group->_state & GROUP_NOTIFIED) || (group->_state & GROUP_IDLE) || pending(group) ||
	    group->_c.ops || group->_c.children || group->_c.holds)
		return;
	group->_state |= GROUP_IDLE;
	st->active--;
	struct tmo__container *parent = group->_c.parent;
	tmo__container_detach(&group->_c);
	if (parent)
		tmo__container_check_done(st, parent);
}

void tmo__group_on_timer(struct tmo__loop_state *st, struct tmo_group *group)
{
	if (group->_state & GROUP_POKE_NOTIFY) {
		group->_state &= (uint8_t)~GROUP_POKE_NOTIFY;
		notify_after_cut_members(st, group);
		return;
	}
	if (group->_state & GROUP_FINISHED)
		return;
	if (group->_state & GROUP_POKE_EVAL) {
		group->_state &= (uint8_t)~GROUP_POKE_EVAL;
		evaluate(st, group);
		if (group->_state & GROUP_FINISHED)
			return;
	}
	/* Created in a scope whose deadline had already passed: that scope's expiry has been and
	 * gone, so finish the group for it now. */
	if (group->_c.parent) {
		const struct tmo__container *binding;
		int64_t limit = tmo__container_effective(group->_c.parent, &binding);
		if (limit != TMO_NEVER_NS && limit <= tmo_now()) {
			struct tmo__container *b = (struct tmo__container *)binding;
			bool scope = b->kind == TMO__CONTAINER_SCOPE;
			finish(st, group, TMO_GROUP_TIMED_OUT, -ETIME, -ETIME,
			       scope ? TMO_CAUSE_SCOPE : TMO_CAUSE_GROUP,
			       scope ? (void *)tmo__scope_of(b) : (void *)tmo__group_of(b), true);
			return;
		}
	}
	int64_t deadline = group->_c.deadline;
	if (deadline != TMO_NEVER_NS && deadline <= tmo_now())
		finish(st, group, TMO_GROUP_TIMED_OUT, -ETIME, -ETIME, TMO_CAUSE_GROUP, group, false);
	else if (deadline != TMO_NEVER_NS)
		tmo__timer_arm(st, &group->_c.timer, deadline);
}

/*
 * Cut from outside (an enclosing scope's expiry, a parent group, the op waiting for it): the
 * outcome is decided now, so that no member completing meanwhile can decide it otherwise, and
 * on_done runs from the loop's next look at the group's timer. Never notifying here keeps
 * on_done out of the middle of a cut that is walking the tree (where it could close and free
 * a sibling) and out of calls such as tmo_op_cancel().
 */
static void cut_later(struct tmo__loop_state *st, struct tmo_group *group, int32_t res,
		      uint8_t cause, void *obj, bool force)
{
	if (group->_state & GROUP_FINISHED) {
		if (force)
			tmo__container_cut(st, &group->_c, res, cause, obj); /* left-running members */
		return;
	}
	decide(st, group, res == -ETIME ? TMO_GROUP_TIMED_OUT : TMO_GROUP_CANCELLED, res, res, cause,
	       obj, force);
	poke(group, GROUP_POKE_NOTIFY);
}

void tmo__group_cut(struct tmo__loop_state *st, struct tmo_group *group, int32_t res,
		    uint8_t cause, void *obj)
{
	cut_later(st, group, res, cause, obj, true);
}

void tmo__group_waiter_start(struct tmo__loop_state *st, struct tmo_op *op)
{
	struct tmo_group *group = op->_args.group;

	if (group->_state & GROUP_FINISHED) {
		bool cut = group->_res == -ETIME || group->_res == -ECANCELED;
		tmo__op_settle(st, op, group->_res, cut ? TMO_CAUSE_GROUP : TMO_CAUSE_NONE,
			       cut ? group : NULL);
		if (group->_state & GROUP_NOTIFIED)
			tmo__op_release_settled(st, op);
		else
			group->_waiter = op; /* decided, not yet announced: after on_done */
		return;
	}
	/* The group stays where it was created (its scope still bounds it); whatever cuts the
	 * op waiting for it (an enclosing scope, a parent group) cuts the group through the op. */
	group->_waiter = op;
	if (op->_deadline == TMO_NEVER_NS)
		return;
	if (op->_deadline <= tmo_now()) {
		op->_cause = TMO_CAUSE_OWN;
		tmo__group_waiter_cut(st, op, -ETIME);
		return;
	}
	tmo__timer_arm(st, &op->_timer, op->_deadline);
}

void tmo__group_waiter_cut(struct tmo__loop_state *st, struct tmo_op *op, int32_t res)
{
	struct tmo_group *group = op->_args.group;

	if (group->_waiter == op && !(group->_state & GROUP_FINISHED)) {
		/* The group is decided now with `res` (which decides the op too); its pending
		 * members go per its policy, naming the scope or group that cut the op if one did. */
		bool outside = op->_cause == TMO_CAUSE_SCOPE ||
			       (op->_cause == TMO_CAUSE_GROUP && op->_cause_obj != group);
		if (outside)
			cut_later(st, group, res, op->_cause, op->_cause_obj, true);
		else
			cut_later(st, group, res, TMO_CAUSE_GROUP, group, false);
		return;
	}
	if (group->_waiter == op)
		group->_waiter = NULL;
	tmo__op_decide(st, op, res, op->_cause, op->_cause_obj);
}

/* Whether `from` is, or waits (through members made by tmo_prep_group, at any depth) for,
 * `target`. Each group has at most one waiting op, so this walks a forest: linear. */
static bool waits_for(const struct tmo_group *from, const struct tmo_group *target)
{
	if (from == target)
		return true;
	/* Only ops still waiting, judged by the op alone: a decided one may point at a group
	 * already closed and freed, while an undecided one keeps its group from closing. */
	for (const struct tmo__link *link = from->_c.op_list.first; link; link = link->next) {
		const struct tmo_op *op = tmo__op_of_sibling(link);

		if (op->_kind == TMO__KIND_GROUP && tmo__op_undecided(op) &&
		    waits_for(op->_args.group, target))
			return true;
	}
	return false;
}

int tmo__group_check_waiter(const struct tmo_group *group, const struct tmo__loop_state *st)
{
	if (!group || !(group->_state & GROUP_INIT) || !group->_loop ||
	    tmo__state(group->_loop) != st)
		return -EINVAL; /* never initialised, closed, or on another loop */
	if (group->_waiter)
		return -EBUSY; /* one op waits for a group at a time */
	return 0;
}

/* ---- API --------------------------------------------------------------------------------- */

/* Gives the completed members back to the caller: they may be prepared, started or added to a
 * group again. Until then each is linked in the done set, which a second use would corrupt. */
static void release_done_set(struct tmo_group *group)
{
	struct tmo__link *link;

	while ((link = tmo__list_pop_front(&group->_done_list)))
		tmo__op_set_in_done_set(tmo__op_of_group_link(link), false);
}

int tmo_group_init(struct tmo_loop *loop, struct tmo_group *group,
		   const struct tmo_group_options *options)
{
	if (!loop || !loop->_state || !group || !options || !options->on_done)
		return -EINVAL;
	int64_t deadline = tmo__deadline_in(options->deadline);
	if ((unsigned)options->mode > TMO_GROUP_QUORUM ||
	    (unsigned)options->policy > TMO_GROUP_LEAVE_PENDING || deadline < 0 ||
	    (options->mode == TMO_GROUP_QUORUM && !options->quorum))
		return -EINVAL;
	if ((group->_state & GROUP_INIT) && !(group->_state & GROUP_IDLE))
		return -EBUSY; /* live: wiping it would orphan its members */
	if (group->_state & GROUP_INIT)
		release_done_set(group); /* initialised again without a close: as a close */
	struct tmo__loop_state *st = tmo__state(loop);
	const struct tmo__container *binding;
	struct tmo__container *parent = st->current_scope ? &st->current_scope->_c : NULL;
	int64_t limit = parent ? tmo__container_effective(parent, &binding) : TMO_NEVER_NS;

	memset(group, 0, sizeof(*group));
	group->data = options->data;
	group->_opt = *options;
	group->_loop = loop;
	tmo__container_init(&group->_c, TMO__CONTAINER_GROUP, deadline, false);
	if (parent)
		tmo__container_attach(parent, &group->_c);
	group->_state = GROUP_INIT;
	st->active++; /* the group is work until it finished and nothing is pending */
	if (limit != TMO_NEVER_NS && limit <= tmo_now())
		tmo__timer_arm(st, &group->_c.timer, 0); /* in an expired scope: times out at once */
	else if (deadline != TMO_NEVER_NS)
		tmo__timer_arm(st, &group->_c.timer, deadline); /* passed: next iteration */
	return 0;
}

int tmo_group_add(struct tmo_group *group, struct tmo_op *op, tmo_deadline member_deadline)
{
	int64_t deadline = tmo__deadline_in(member_deadline);

	if (deadline < 0)
		return -EINVAL;
	if (!group || !(group->_state & GROUP_INIT) || !op)
		return -EINVAL;
	if (group->_state & (GROUP_SEALED | GROUP_FINISHED))
		return -EPIPE;
	bool waiter = tmo__op_prepared(op) && op->_kind == TMO__KIND_GROUP;
	if (waiter && op->_args.group && waits_for(op->_args.group, group))
		return -EINVAL; /* the group would wait for itself */
	uint32_t limit = group->_opt.max_running;
	int ret;

	if (limit && group->_running >= limit && !waiter) {
		ret = tmo__op_park_in(group->_loop, op, deadline, member_done, &group->_c);
		if (ret)
			return ret;
		tmo__list_push_back(&group->_queued_list, &op->_group_link);
		group->_queued++;
	} else {
		ret = tmo__op_start_in(group->_loop, op, deadline, member_done, &group->_c);
		if (ret)
			return ret;
		group->_running++;
	}
	return 0;
}

int tmo_group_seal(struct tmo_group *group)
{
	if (!group || !(group->_state & GROUP_INIT))
		return -EINVAL;
	if (group->_state & (GROUP_SEALED | GROUP_FINISHED))
		return -EALREADY;
	group->_state |= GROUP_SEALED;
	poke(group, GROUP_POKE_EVAL);
	return 0;
}

int tmo_group_cancel(struct tmo_group *group)
{
	if (!group || !(group->_state & GROUP_INIT))
		return -EINVAL;
	if (group->_state & GROUP_FINISHED)
		return -EALREADY;
	/* Decided now (no member completing meanwhile can change it), announced from the loop. */
	cut_later(state_of(group), group, -ECANCELED, TMO_CAUSE_GROUP, group, false);
	return 0;
}

enum tmo_group_reason tmo_group_reason(const struct tmo_group *group)
{
	return group ? (enum tmo_group_reason)group->_reason : TMO_GROUP_RUNNING;
}

uint32_t tmo_group_done_count(const struct tmo_group *group)
{
	return group ? group->_done : 0;
}

uint32_t tmo_group_pending_count(const struct tmo_group *group)
{
	return group ? pending(group) : 0;
}

struct tmo_op *tmo_group_done_first(const struct tmo_group *group)
{
	return group ? tmo__op_of_group_link(group->_done_list.first) : NULL;
}

struct tmo_op *tmo_group_done_next(const struct tmo_op *member)
{
	return member ? tmo__op_of_group_link(member->_group_link.next) : NULL;
}

/* Members still in the group's container and not yet reported: running or waiting. (An io-wq
 * member already reported stays in the container until the kernel releases it.) */
static struct tmo_op *skip_reported(const struct tmo__link *link)
{
	while (link && tmo__op_reported(tmo__op_of_sibling(link)))
		link = link->next;
	return tmo__op_of_sibling(link);
}

struct tmo_op *tmo_group_pending_first(const struct tmo_group *group)
{
	return group ? skip_reported(group->_c.op_list.first) : NULL;
}

struct tmo_op *tmo_group_pending_next(const struct tmo_op *member)
{
	/* Active first: a completed member's _owner may point at a group already freed. */
	if (!member || !tmo__op_active(member) || !member->_owner ||
	    member->_owner->kind != TMO__CONTAINER_GROUP)
		return NULL;
	return skip_reported(member->_sibling.next);
}

struct tmo_op *tmo_group_first_failure(const struct tmo_group *group)
{
	return group ? group->_first_failure : NULL;
}

bool tmo_group_busy(const struct tmo_group *group)
{
	return group && (group->_state & GROUP_INIT) && !(group->_state & GROUP_IDLE);
}

int tmo_group_close(struct tmo_group *group)
{
	if (!group || !(group->_state & GROUP_INIT))
		return -EINVAL;
	if (tmo_group_busy(group))
		return -EBUSY;
	release_done_set(group);
	group->_state = 0; /* the caller's again; further use is -EINVAL until tmo_group_init */
	return 0;
}
