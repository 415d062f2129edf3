/* Scopes: deadlines over a block of work. */
#include <errno.h>
#include <string.h>

#include "container.h"

enum {
	SCOPE_ENTERED = 1u << 0,
	SCOPE_EXITED = 1u << 1,
	SCOPE_EXPIRED = 1u << 2,
	SCOPE_DONE = 1u << 3, /* exited and nothing left in it: the caller's again */
};

static bool has_work(const struct tmo_scope *scope)
{
	return scope->_c.ops || scope->_c.children || scope->_c.holds;
}

bool tmo_scope_busy(const struct tmo_scope *scope)
{
	return scope && (scope->_state & SCOPE_ENTERED) && !(scope->_state & SCOPE_DONE);
}

int tmo_scope_enter(struct tmo_loop *loop, struct tmo_scope *scope, tmo_deadline until,
		    unsigned flags)
{
	int64_t deadline = tmo__deadline_in(until);

	if (!loop || !loop->_state || !scope || deadline < 0 || (flags & ~(unsigned)TMO_SCOPE_SHIELD))
		return -EINVAL;
	struct tmo__loop_state *st = tmo__state(loop);
	/* A live scope (on the stack, or exited with work pending) must not be wiped. */
	if (tmo_scope_busy(scope))
		return -EBUSY;
	for (struct tmo_scope *s = st->current_scope; s; s = s->_enclosing)
		if (s == scope)
			return -EBUSY;

	memset(scope, 0, sizeof(*scope));
	tmo__container_init(&scope->_c, TMO__CONTAINER_SCOPE, deadline, flags & TMO_SCOPE_SHIELD);
	scope->_loop = loop;
	scope->_entered_at = tmo_now();
	scope->_state = SCOPE_ENTERED;
	scope->_enclosing = st->current_scope;
	if (st->current_scope)
		tmo__container_attach(&st->current_scope->_c, &scope->_c);
	st->current_scope = scope;
	if (deadline != TMO_NEVER_NS) {
		if (deadline <= scope->_entered_at)
			scope->_state |= SCOPE_EXPIRED; /* a limit of 0: nothing in it will start */
		else
			tmo__timer_arm(st, &scope->_c.timer, deadline);
	}
	return 0;
}

int tmo_scope_enter_after(struct tmo_loop *loop, struct tmo_scope *scope, int64_t timeout_ns,
			  unsigned flags)
{
	if (timeout_ns < 0)
		return -EINVAL;
	return tmo_scope_enter(loop, scope, tmo_in_ns(timeout_ns), flags);
}

int tmo_scope_exit(struct tmo_scope *scope)
{
	if (!scope || !(scope->_state & SCOPE_ENTERED) || !scope->_loop || !scope->_loop->_state)
		return -EINVAL;
	if (scope->_state & SCOPE_EXITED)
		return -EALREADY;
	struct tmo__loop_state *st = tmo__state(scope->_loop);
	if (st->current_scope != scope)
		return -EINVAL; /* not the innermost: exit scopes in reverse order */
	st->current_scope = scope->_enclosing;
	scope->_state |= SCOPE_EXITED;
	tmo__scope_check_done(st, scope);
	return 0;
}

void tmo__scope_check_done(struct tmo__loop_state *st, struct tmo_scope *scope)
{
	if (!(scope->_state & SCOPE_EXITED) || (scope->_state & SCOPE_DONE) || has_work(scope))
		return;
	scope->_state |= SCOPE_DONE;
	tmo__timer_disarm(st, &scope->_c.timer);
	struct tmo__container *parent = scope->_c.parent;
	tmo__container_detach(&scope->_c);
	if (parent)
		tmo__container_check_done(st, parent);
}

struct tmo_scope *tmo__scope_live(struct tmo_scope *scope)
{
	while (scope && (scope->_state & SCOPE_EXITED))
		scope = scope->_enclosing;
	return scope;
}

void tmo__scope_mark_expired(struct tmo_scope *scope)
{
	scope->_state |= SCOPE_EXPIRED;
}

void tmo__scope_on_timer(struct tmo__loop_state *st, struct tmo_scope *scope)
{
	/* Expired means: this deadline cut work short. The timer only runs while there is work:
	 * an open block (what it starts next will not start) or ops still pending after exit;
	 * an exited scope with nothing left has disarmed it. */
	scope->_state |= SCOPE_EXPIRED;
	tmo__container_cut(st, &scope->_c, -ETIME, TMO_CAUSE_SCOPE, scope);
}

tmo_deadline tmo_scope_deadline(const struct tmo_scope *scope)
{
	return tmo__deadline_out(scope ? scope->_c.deadline : TMO_NEVER_NS);
}

tmo_deadline tmo_scope_effective_deadline(const struct tmo_scope *scope)
{
	const struct tmo__container *binding;

	return tmo__deadline_out(scope ? tmo__container_effective(&scope->_c, &binding)
				       : TMO_NEVER_NS);
}

int64_t tmo_scope_remaining(const struct tmo_scope *scope)
{
	if (!scope || scope->_c.deadline == TMO_NEVER_NS)
		return TMO_NEVER_NS;
	int64_t left = scope->_c.deadline - tmo_now();
	return left > 0 ? left : 0;
}

int64_t tmo_scope_elapsed(const struct tmo_scope *scope)
{
	return scope && (scope->_state & SCOPE_ENTERED) ? tmo_now() - scope->_entered_at : 0;
}

bool tmo_scope_expired(const struct tmo_scope *scope)
{
	return scope && (scope->_state & SCOPE_EXPIRED);
}

/* Moves the deadline of a live scope to `when` (TMO_NEVER_NS: none). */
static int move_deadline(struct tmo_scope *scope, int64_t when)
{
	if (!scope || !(scope->_state & SCOPE_ENTERED) || !scope->_loop || !scope->_loop->_state ||
	    when < 0)
		return -EINVAL;
	if (scope->_state & SCOPE_EXPIRED)
		return -ETIME;
	if (scope->_state & SCOPE_EXITED)
		return -EINVAL;
	struct tmo__loop_state *st = tmo__state(scope->_loop);
	scope->_c.deadline = when;
	if (when == TMO_NEVER_NS)
		tmo__timer_disarm(st, &scope->_c.timer);
	else
		tmo__timer_arm(st, &scope->_c.timer, when); /* in the past: fires next iteration */
	return 0;
}

int tmo_scope_shift(struct tmo_scope *scope, int64_t delta_ns)
{
	if (!scope || scope->_c.deadline == TMO_NEVER_NS)
		return -EINVAL;
	int64_t deadline = scope->_c.deadline;
	if ((delta_ns > 0 && deadline > INT64_MAX - 1 - delta_ns) || deadline + delta_ns < 0)
		return -EINVAL;
	return move_deadline(scope, deadline + delta_ns);
}

int tmo_scope_shift_at(struct tmo_scope *scope, tmo_deadline when)
{
	if (tmo_deadline_is_never(when))
		return -EINVAL;
	return move_deadline(scope, tmo__deadline_in(when));
}

int tmo_scope_reschedule(struct tmo_scope *scope, tmo_deadline when)
{
	return move_deadline(scope, tmo__deadline_in(when));
}

struct tmo_scope *tmo_loop_current_scope(const struct tmo_loop *loop)
{
	return loop && loop->_state ? tmo__state(loop)->current_scope : NULL;
}
