/*
 * tmo demo, the scopes family: scope-shift (a scope's deadline moved later from outside it) and
 * scope-inner-timeout (an op's own deadline inside a longer scope).
 */
#include <errno.h>
#include <string.h>

#include <tmo/tmo.h>

#include "demo.h"

struct shifter {
	struct tmo_op op;
	struct tmo_scope *scope;
	int64_t delta;
	int ret;
	bool fired;
};

static void shifter_cb(struct tmo_op *op, int32_t res)
{
	struct shifter *s = op->data;
	s->fired = true;
	s->ret = res == 0 ? tmo_scope_shift(s->scope, s->delta) : res;
}

/* Leaves the scope once its work is done: whether the scope says it expired. */
static bool scope_leave(struct report *r, struct tmo_scope *scope, bool *entered)
{
	int ret = tmo_scope_exit(scope);
	*entered = false;
	check(r, ret == 0, "tmo_scope_exit: %s", strerror(-ret));
	return tmo_scope_expired(scope);
}

/* The end of a scenario, also after a failed setup: out of the scope, the loop drained and
 * closed. */
static void scope_close(struct demo *d, struct report *r, struct tmo_loop *loop,
			struct tmo_scope *scope, bool entered)
{
	if (entered)
		tmo_scope_exit(scope);
	drain(r, loop, tmo_now() + U(d, 10));
	loop_close(r, loop);
}

void sc_scope_shift(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct tmo_scope scope = { 0 };
	struct shifter sh = { .op.data = &sh, .scope = &scope, .delta = U(d, 1), .ret = 1 };
	struct one_op w = { .loop = &loop, .op.data = &w };
	bool entered = false;

	if (!loop_open(r, &loop))
		return;
	int64_t t0 = tmo_now();
	/* at 0.5 units (outside the scope), the scope is shifted by +1 unit */
	tmo_prep_sleep(&sh.op, tmo_at(t0 + U(d, 0.5)));
	int ret = tmo_op_start(&loop, &sh.op, TMO_NEVER, shifter_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start", ret);
		goto out;
	}
	ret = tmo_scope_enter(&loop, &scope, tmo_at(t0 + U(d, 1.5)), 0);
	if (ret < 0) {
		setup_failed(r, "tmo_scope_enter", ret);
		goto out;
	}
	entered = true;
	/* the work in the scope: a 5-unit sleep */
	tmo_prep_sleep(&w.op, tmo_at(t0 + U(d, 5)));
	ret = tmo_op_start(&loop, &w.op, TMO_NEVER, one_op_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start", ret);
		goto out;
	}
	int64_t moved_to = TMO_NEVER_NS;
	run_until(r, &loop, &w.done, t0 + U(d, 10), "the scope");
	moved_to = tmo_deadline_ns(tmo_scope_deadline(&scope));
	bool expired = scope_leave(r, &scope, &entered);
	char rb[64];
	r->outcome = outcome_of(w.res);
	r->elapsed_ns = w.at - t0;
	happened(r, "shifted at %.0f ms (%s) to end at %.0f ms; the work ended with %s at %.0f ms "
		    "(cause: %s); expired %s",
		 ms(U(d, 0.5)), sh.ret == 0 ? "ok" : strerror(-sh.ret), ms(moved_to - t0),
		 res_name(w.res, rb), ms(r->elapsed_ns),
		 tmo_op_cause(&w.op) == TMO_CAUSE_SCOPE ? "the scope" : "other",
		 expired ? "true" : "false");
	key(r, "expired", "%s", expired ? "true" : "false");
	key(r, "deadline_ms", "%.1f", ms(moved_to - t0));
	check(r, sh.fired && sh.ret == 0, "tmo_scope_shift: %s",
	      sh.fired ? strerror(-sh.ret) : "never called");
	check(r, moved_to == t0 + U(d, 1.5) + U(d, 1), "the deadline moved to %.1f ms",
	      ms(moved_to - t0));
	check(r, w.done && w.res == -ETIME, "the work ended with %s", res_name(w.res, rb));
	check(r, tmo_op_cause(&w.op) == TMO_CAUSE_SCOPE && tmo_op_cause_scope(&w.op) == &scope,
	      "the work's cause is not the scope (%d)", (int)tmo_op_cause(&w.op));
	check(r, expired, "the scope does not say expired");
	on_time(r, "the scope's expiry", r->elapsed_ns, U(d, 2.5));
out:
	scope_close(d, r, &loop, &scope, entered);
}

void sc_scope_inner_timeout(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct tmo_scope scope = { 0 };
	struct one_op w = { .loop = &loop, .op.data = &w };
	bool entered = false;

	if (!loop_open(r, &loop))
		return;
	int64_t t0 = tmo_now();
	int ret = tmo_scope_enter(&loop, &scope, tmo_at(t0 + U(d, 2)), 0);
	if (ret < 0) {
		setup_failed(r, "tmo_scope_enter", ret);
		goto out;
	}
	entered = true;
	tmo_prep_sleep(&w.op, tmo_at(t0 + U(d, 5)));
	ret = tmo_op_start(&loop, &w.op, tmo_at(t0 + U(d, 0.5)), one_op_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start", ret);
		goto out;
	}
	run_until(r, &loop, &w.done, t0 + U(d, 10), "the op");
	int64_t remaining = tmo_scope_remaining(&scope);
	bool expired = scope_leave(r, &scope, &entered);
	char rb[64];
	r->outcome = outcome_of(w.res);
	r->elapsed_ns = w.at - t0;
	happened(r, "the op ended with %s at %.0f ms (cause: %s), %.0f ms before the scope's "
		    "deadline; expired %s",
		 res_name(w.res, rb), ms(r->elapsed_ns),
		 tmo_op_cause(&w.op) == TMO_CAUSE_OWN ? "its own deadline" : "other",
		 ms(remaining), expired ? "true" : "false");
	key(r, "expired", "%s", expired ? "true" : "false");
	key(r, "scope_remaining_ms", "%.1f", ms(remaining));
	check(r, w.done && w.res == -ETIME, "the op ended with %s", res_name(w.res, rb));
	check(r, tmo_op_cause(&w.op) == TMO_CAUSE_OWN, "the op's cause is %d, not its own deadline",
	      (int)tmo_op_cause(&w.op));
	check(r, !expired, "the scope says expired");
	on_time(r, "the op's timeout", r->elapsed_ns, U(d, 0.5));
out:
	scope_close(d, r, &loop, &scope, entered);
}
