/*
 * scope-group-stress: a randomized mix of everything scopes and groups can be asked to do at
 * once, checked against the promises of docs/scopes-and-groups.md. The hand-written tests in
 * scope.c and group.c pin down one interaction each; this one looks for the interactions
 * nobody thought of.
 *
 * From main and from every callback, at random: nested and shielded scopes entered and exited
 * (in a callback, entered and exited within it), their deadlines shifted, rescheduled or
 * removed; groups of every mode and policy, with concurrency limits, deadlines, sealing and
 * cancelling; groups waited for by an op with a deadline (tmo_prep_group) or as a member of
 * another group; ops of every kind (nop, sleep, pipe read, poll, io-wq file read with a
 * release callback) started in scopes, in callbacks and as members; random cancels; every run
 * mode. A thread writes to the pipes so that reads complete on their own too.
 *
 * Checked on every callback: exactly one callback per start; no -ETIME before the deadline its
 * cause names (the op's own, the scope's as last moved, the group's or that of the op waiting
 * for it); -ECANCELED only when the op was cancelled or a group it names was cut or finished;
 * on_done exactly once per group, only from inside tmo_loop_run*, with a reason matching its
 * result; an op waiting for a group gets the group's result, after on_done; an exited scope is
 * not busy only when nothing started in it is pending. At the end, with everything cancelled
 * and drained: nothing active, every group closes with 0, every scope is no longer busy, and
 * tmo_loop_close returns 0.
 *
 * Each test is one loop mode and deadline strategy, run with two fixed seeds (one on a 4-entry
 * ring, whose submission queue is full most of the time, one on a 64-entry ring) for about
 * 300 ms each. A failure prints the seed and the first violations; a hang is ended by a
 * watchdog that names the seed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define MS TMO_NSEC_PER_MSEC
/* A run lasts RUN_MS (about 500 rounds of random actions and a loop run here), and at least
 * MIN_ROUNDS rounds however slow or busy the machine. */
#define RUN_MS 300
#define MIN_ROUNDS 200
#define NOPS 64
/* Scope and group records are never reused within a run, so that a cause pointer always names
 * the object it was meant for; a run creates a few hundred of each (no more once full). */
#define MAX_SCOPES 2048
#define MAX_GROUPS 2048
#define MAX_MAIN_SCOPES 5    /* scopes main keeps entered across loop runs */
#define MAX_CALLBACK_DEPTH 4 /* callbacks act only up to this nesting */
#define MAX_REPORTS 20       /* violations printed in detail per run */
#define WATCHDOG_S 30        /* per run: 300 ms of work, a bounded drain, slow sanitizers */

enum op_kind { K_NOP, K_SLEEP, K_READ, K_POLL, K_FILE, K_WAITER, K_COUNT };
enum op_state { O_IDLE, O_PENDING, O_MEMBER_DONE /* reported; the group holds it until closed */ };

struct stress_op {
	struct tmo_op op;
	int index;
	enum op_kind kind;
	enum op_state state;
	int group;  /* group record it is a member of, -1 */
	int waits;  /* K_WAITER: the group record it waits for */
	int scope;  /* scope record it was started in (a member: its group's), -1 */
	int64_t deadline;
	bool cancel_requested;
	bool busy_at_callback;
	long starts, calls;
};

struct scope_rec {
	struct tmo_scope scope; /* first: a struct tmo_scope * is a struct scope_rec * */
	int64_t deadline;       /* as entered, or as last moved by a shift that returned 0 */
	bool exited;
	bool finished;          /* exited and no longer busy: checked, never looked at again */
};

struct group_rec {
	struct tmo_group group; /* first, as above */
	struct tmo_group_options options;
	int scope;               /* scope record current at tmo_group_init, -1 */
	int done_calls;
	int32_t done_res;
	int64_t waiter_deadline; /* earliest deadline of an op that waited for it */
	bool closed;
};

/* Violations, by promise. All must stay 0. */
struct violations {
	long double_callback, early_own, early_scope, early_group, bad_cause, unrequested_cancel,
		other_error, bad_done, done_outside_run, bad_reason, waiter_result, bad_release,
		scope_idle_with_work, shift_result, api;
};

struct stress {
	struct tmo_loop loop;
	struct stress_op ops[NOPS];
	struct tmo_op heartbeat; /* keeps TMO_RUN_ONCE from waiting long */
	long heartbeat_starts, heartbeat_calls;
	int pipes[NOPS][2];
	char bufs[NOPS][16];
	int file;
	unsigned seed;
	bool in_run;   /* inside tmo_loop_run*: the only place group callbacks may come from */
	bool draining; /* callbacks stop starting work */
	int depth;     /* callback nesting */
	int main_scopes[MAX_MAIN_SCOPES], n_main_scopes; /* entered by main, innermost last */
	struct scope_rec scopes[MAX_SCOPES];
	int n_scopes;
	struct group_rec groups[MAX_GROUPS];
	int n_groups;
	long rounds;
	long starts, calls, members, waiters, shifts, cut_own, cut_scope, cut_group, cancels;
	struct violations v;
	long reported;
	atomic_bool stop_writer;
};

/* The run's state: callbacks have only their op or group, and the random choices need the seed. */
static struct stress *g;

/* The seed of the current run, for messages; and what the watchdog says if it hangs. */
static unsigned current_seed;
static char watchdog_message[128];

static int rnd(int n)
{
	return (int)(rand_r(&g->seed) % (unsigned)n);
}

/* Counts a violation and prints the first few in detail. */
static void violation(long *counter, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
static void violation(long *counter, const char *format, ...)
{
	va_list args;

	(*counter)++;
	if (g->reported++ >= MAX_REPORTS)
		return;
	print_message("seed %u: ", current_seed);
	va_start(args, format);
	vprint_message(format, args);
	va_end(args);
	print_message("\n");
}

/* The model keeps deadlines as int64_t nanoseconds, TMO_NEVER_NS for none, so that they
 * compare directly; as_deadline() turns one into the API's type. */
static tmo_deadline as_deadline(int64_t ns)
{
	return ns == TMO_NEVER_NS ? TMO_NEVER : tmo_at(ns);
}

static int64_t random_deadline(void)
{
	switch (rnd(6)) {
	case 0:
		return TMO_NEVER_NS;
	case 1:
		return tmo_now() - 1; /* already passed */
	case 2:
		return tmo_now() + rnd(3) * MS;
	default:
		return tmo_now() + rnd(25) * MS + rnd(1000) * TMO_NSEC_PER_USEC;
	}
}

static int scope_index(const struct tmo_scope *scope)
{
	if (!scope)
		return -1;
	ptrdiff_t i = (const struct scope_rec *)scope - g->scopes;
	return i >= 0 && i < g->n_scopes ? (int)i : -1;
}

static int group_index(const struct tmo_group *group)
{
	if (!group)
		return -1;
	ptrdiff_t i = (const struct group_rec *)group - g->groups;
	return i >= 0 && i < g->n_groups ? (int)i : -1;
}

static int current_scope(void)
{
	return scope_index(tmo_loop_current_scope(&g->loop));
}

/* The earliest time a group may time out: its deadline, or that of an op waiting for it. */
static int64_t group_limit(int r)
{
	const struct group_rec *x = &g->groups[r];
	int64_t own = tmo_deadline_ns(x->options.deadline);

	return x->waiter_deadline < own ? x->waiter_deadline : own;
}

static void actions(int budget);

/* ---- outcome checks ------------------------------------------------------------------------ */

/* -ETIME naming a scope: not before that scope's deadline. */
static void check_scope_cut(const struct stress_op *s)
{
	int r = scope_index(tmo_op_cause_scope(&s->op));

	g->cut_scope++;
	if (r < 0) {
		violation(&g->v.bad_cause, "op %d: -ETIME names an unknown scope", s->index);
		return;
	}
	int64_t early = g->scopes[r].deadline - tmo_now();
	if (early > 0)
		violation(&g->v.early_scope,
			  "op %d (kind %d): -ETIME from scope %d %.3f ms before its deadline "
			  "(expired %d, exited %d)",
			  s->index, s->kind, r, (double)early / 1e6,
			  tmo_scope_expired(&g->scopes[r].scope), g->scopes[r].exited);
}

/* -ETIME naming a group: not before the group's deadline or its waiter's. */
static void check_group_cut(const struct stress_op *s)
{
	int r = group_index(tmo_op_cause_group(&s->op));

	g->cut_group++;
	if (r < 0) {
		violation(&g->v.bad_cause, "op %d: -ETIME names an unknown group", s->index);
		return;
	}
	const struct group_rec *x = &g->groups[r];
	int64_t early = group_limit(r) - tmo_now();
	if (early > 0)
		violation(&g->v.early_group,
			  "op %d (kind %d, member of %d): -ETIME from group %d %.3f ms before its "
			  "limit (mode %d policy %d max_running %u, on_done %d with %d, reason %d)",
			  s->index, s->kind, s->group, r, (double)early / 1e6, x->options.mode,
			  x->options.policy, x->options.max_running, x->done_calls, x->done_res,
			  (int)tmo_group_reason(&x->group));
}

/* -ECANCELED naming a group: that group was cut or has finished. */
static void check_group_cancel(const struct stress_op *s)
{
	int r = group_index(tmo_op_cause_group(&s->op));

	if (r < 0)
		violation(&g->v.bad_cause, "op %d: -ECANCELED names an unknown group", s->index);
	else if (tmo_group_reason(&g->groups[r].group) == TMO_GROUP_RUNNING)
		violation(&g->v.unrequested_cancel,
			  "op %d (member of %d): -ECANCELED from group %d, which has not finished",
			  s->index, s->group, r);
}

static void check_own_cut(const struct stress_op *s)
{
	g->cut_own++;
	if (tmo_now() < s->deadline)
		violation(&g->v.early_own,
			  "op %d (kind %d): -ETIME %.3f ms before its own deadline", s->index,
			  s->kind, (double)(s->deadline - tmo_now()) / 1e6);
}

static void check_cancel(const struct stress_op *s)
{
	g->cancels++;
	if (!s->cancel_requested)
		violation(&g->v.unrequested_cancel, "op %d (kind %d): -ECANCELED nobody asked for",
			  s->index, s->kind);
}

/*
 * An op waiting for a group (tmo_prep_group). Whatever ends it while it waits decides the
 * group's outcome too (its own deadline, a cancel, a cut from outside), and whatever finishes
 * the group decides the waiter's: so it reports the group's result, after on_done. The one
 * exception is a waiter refused at its start by a passed deadline of its scope or group: it
 * never waited, and the group goes on. A -ETIME naming the group it waits for is the group's
 * result, not necessarily its deadline (a FIRST_DONE group whose first member timed out, a
 * group cut by its scope before the waiter started), so only its equality is checked.
 */
static void check_waiter_outcome(const struct stress_op *s, int32_t res)
{
	const struct group_rec *w = &g->groups[s->waits];
	enum tmo_cause cause = tmo_op_cause(&s->op);
	bool by_other_group = cause == TMO_CAUSE_GROUP && tmo_op_cause_group(&s->op) != &w->group;
	bool cut = res == -ETIME || res == -ECANCELED;

	if (res == -ETIME && cause == TMO_CAUSE_SCOPE) {
		check_scope_cut(s);
		return;
	}
	if (res == -ETIME && by_other_group) {
		check_group_cut(s);
		return;
	}
	if (res == -ETIME && cause == TMO_CAUSE_OWN) {
		check_own_cut(s);
	} else if (res == -ECANCELED && cause == TMO_CAUSE_CANCEL) {
		check_cancel(s);
	} else if (res == -ECANCELED && by_other_group) {
		check_group_cancel(s);
	} else if (cause != (cut ? TMO_CAUSE_GROUP : TMO_CAUSE_NONE)) {
		violation(&g->v.bad_cause, "waiter %d: result %d with cause %d", s->index, res,
			  cause);
		return;
	} else if (res >= 0 && s->cancel_requested) {
		violation(&g->v.waiter_result, "waiter %d: cancelled, reported success %d",
			  s->index, res);
	}
	if (w->done_calls != 1 || res != w->done_res)
		violation(&g->v.waiter_result,
			  "waiter %d of group %d: result %d cause %d; on_done ran %d times (%d)",
			  s->index, s->waits, res, cause, w->done_calls, w->done_res);
}

static void check_outcome(const struct stress_op *s, int32_t res)
{
	enum tmo_cause cause = tmo_op_cause(&s->op);

	if (s->kind == K_WAITER) {
		check_waiter_outcome(s, res);
	} else if (res == -ETIME) {
		if (cause == TMO_CAUSE_OWN)
			check_own_cut(s);
		else if (cause == TMO_CAUSE_SCOPE)
			check_scope_cut(s);
		else if (cause == TMO_CAUSE_GROUP)
			check_group_cut(s);
		else
			violation(&g->v.bad_cause, "op %d (kind %d): -ETIME with cause %d",
				  s->index, s->kind, cause);
	} else if (res == -ECANCELED) {
		if (cause == TMO_CAUSE_CANCEL)
			check_cancel(s);
		else if (cause == TMO_CAUSE_GROUP)
			check_group_cancel(s);
		else
			violation(&g->v.unrequested_cancel,
				  "op %d (kind %d): -ECANCELED with cause %d", s->index, s->kind,
				  cause);
	} else if (res < 0) {
		violation(&g->v.other_error, "op %d (kind %d): error %d", s->index, s->kind, res);
	} else if (cause != TMO_CAUSE_NONE) {
		violation(&g->v.bad_cause, "op %d (kind %d): result %d with cause %d", s->index,
			  s->kind, res, cause);
	}
}

static void got_callback(struct stress_op *s, int32_t res)
{
	g->calls++;
	s->calls++;
	s->busy_at_callback = tmo_op_busy(&s->op);
	if (s->state != O_PENDING)
		violation(&g->v.double_callback, "op %d (kind %d): callback in state %d, result %d",
			  s->index, s->kind, s->state, res);
	s->state = s->group >= 0 ? O_MEMBER_DONE : O_IDLE;
	check_outcome(s, res);
}

/* ---- callbacks: each checks, then acts at random ----------------------------------------- */

static void act_in_callback(int budget)
{
	g->depth++;
	if (!g->draining && g->depth < MAX_CALLBACK_DEPTH)
		actions(budget);
	g->depth--;
}

static void on_op(struct tmo_op *op, int32_t res)
{
	got_callback((struct stress_op *)op, res);
	act_in_callback(rnd(4));
}

/* An io-wq read reported early (at a deadline or cancel) is released later by the kernel. */
static void on_release(struct tmo_op *op, int32_t late_res)
{
	struct stress_op *s = (struct stress_op *)op;

	(void)late_res;
	if (!s->busy_at_callback)
		violation(&g->v.bad_release, "op %d: release without an early report", s->index);
}

static void on_member(struct tmo_group *group, struct tmo_op *op, int32_t res)
{
	struct stress_op *s = (struct stress_op *)op;
	int r = group_index(group);

	if (s->group != r)
		violation(&g->v.other_error, "op %d is a member of group %d, reported by %d",
			  s->index, s->group, r);
	got_callback(s, res);
	act_in_callback(rnd(3));
}

static void on_group_done(struct tmo_group *group, int32_t res)
{
	int r = group_index(group);
	enum tmo_group_reason why = tmo_group_reason(group);

	if (r < 0) {
		violation(&g->v.other_error, "on_done for an unknown group");
		return;
	}
	struct group_rec *x = &g->groups[r];
	if (!g->in_run)
		violation(&g->v.done_outside_run, "group %d: on_done outside tmo_loop_run*", r);
	if (++x->done_calls > 1)
		violation(&g->v.bad_done, "group %d: on_done again", r);
	x->done_res = res;
	if (why == TMO_GROUP_RUNNING || (why == TMO_GROUP_TIMED_OUT && res != -ETIME) ||
	    (why == TMO_GROUP_CANCELLED && res != -ECANCELED))
		violation(&g->v.bad_reason, "group %d: on_done with %d, reason %d", r, res, why);
	if (!tmo_group_busy(group))
		violation(&g->v.bad_reason, "group %d: not busy inside on_done", r);
	act_in_callback(rnd(3));
}

static void on_heartbeat(struct tmo_op *op, int32_t res)
{
	(void)op;
	(void)res;
	g->heartbeat_calls++;
}

/* ---- actions ------------------------------------------------------------------------------- */

static struct stress_op *free_op(void)
{
	for (int tries = 0; tries < 8; tries++) {
		struct stress_op *s = &g->ops[rnd(NOPS)];
		if (s->state == O_IDLE && !tmo_op_busy(&s->op))
			return s;
	}
	return NULL;
}

/* A recent group not yet closed, or -1. */
static int open_group(void)
{
	for (int tries = 0; tries < 6 && g->n_groups; tries++) {
		int r = g->n_groups - 1 - rnd(g->n_groups < 12 ? g->n_groups : 12);
		if (!g->groups[r].closed)
			return r;
	}
	return -1;
}

/* Prepares s as an op of a random kind; false if it cannot (no group for a waiter). */
static bool prep_random(struct stress_op *s)
{
	s->kind = (enum op_kind)rnd(K_COUNT);
	switch (s->kind) {
	case K_NOP:
		tmo_prep_nop(&s->op);
		break;
	case K_SLEEP:
		tmo_prep_sleep(&s->op, tmo_in_ns(rnd(15) * MS));
		break;
	case K_READ:
		tmo_prep_read(&s->op, g->pipes[s->index][0], g->bufs[s->index], 1, (uint64_t)-1);
		break;
	case K_POLL:
		tmo_prep_poll(&s->op, g->pipes[s->index][0], POLLIN);
		break;
	case K_FILE:
		tmo_prep_read(&s->op, g->file, g->bufs[s->index], 16, 0);
		if (tmo_op_set_flags(&s->op, TMO_OP_BLOCKING) ||
		    tmo_op_set_release(&s->op, on_release))
			violation(&g->v.api, "op %d: io-wq read setup failed", s->index);
		break;
	case K_WAITER: {
		int r = open_group();
		if (r < 0)
			return false;
		s->waits = r;
		tmo_prep_group(&s->op, &g->groups[r].group);
		break;
	}
	case K_COUNT:
		return false;
	}
	return true;
}

/* Books a successful start (or add) of s. */
static void started(struct stress_op *s, int group, int scope)
{
	if (s->kind == K_WAITER) {
		struct group_rec *w = &g->groups[s->waits];
		g->waiters++;
		if (s->deadline < w->waiter_deadline)
			w->waiter_deadline = s->deadline;
	}
	s->group = group;
	s->scope = scope;
	s->state = O_PENDING;
	s->starts++;
	g->starts++;
}

/* A refusal the test provokes on purpose: a second waiter for a group, or a wait cycle. */
static bool expected_refusal(const struct stress_op *s, int ret)
{
	return s->kind == K_WAITER && (ret == -EBUSY || ret == -EINVAL);
}

static void start_op(void)
{
	struct stress_op *s = free_op();

	if (!s || !prep_random(s))
		return;
	s->deadline = random_deadline();
	s->cancel_requested = false;
	int ret = tmo_op_start(&g->loop, &s->op, as_deadline(s->deadline), on_op);
	if (ret) {
		if (!expected_refusal(s, ret))
			violation(&g->v.api, "tmo_op_start (kind %d) = %d", s->kind, ret);
		return;
	}
	started(s, -1, current_scope());
}

static void add_member(int r)
{
	if (r < 0 || g->groups[r].closed)
		return;
	struct stress_op *s = free_op();
	if (!s || !prep_random(s))
		return;
	s->deadline = random_deadline();
	s->cancel_requested = false;
	int ret = tmo_group_add(&g->groups[r].group, &s->op, as_deadline(s->deadline));
	if (ret) {
		/* -EPIPE: sealed or finished meanwhile. */
		if (ret != -EPIPE && !expected_refusal(s, ret))
			violation(&g->v.api, "tmo_group_add (kind %d) = %d", s->kind, ret);
		return;
	}
	started(s, r, g->groups[r].scope);
	g->members++;
}

static void init_group(void)
{
	if (g->n_groups >= MAX_GROUPS)
		return;
	/* A handful open at a time, so that waiters and members find recent ones. */
	int open = 0;
	for (int i = g->n_groups - 1; i >= 0 && i >= g->n_groups - 40; i--)
		open += !g->groups[i].closed;
	if (open > 8)
		return;
	int r = g->n_groups;
	struct group_rec *x = &g->groups[r];
	x->options = (struct tmo_group_options){
		.mode = (enum tmo_group_mode)rnd(5),
		.policy = (enum tmo_group_policy)rnd(2),
		.quorum = 1 + (uint32_t)rnd(3),
		.max_running = rnd(3) ? 0 : 1 + (uint32_t)rnd(3),
		.deadline = as_deadline(random_deadline()),
		.on_done = on_group_done,
		.on_member = on_member,
	};
	x->waiter_deadline = TMO_NEVER_NS;
	x->scope = current_scope();
	int ret = tmo_group_init(&g->loop, &x->group, &x->options);
	if (ret) {
		violation(&g->v.api, "tmo_group_init = %d", ret);
		return;
	}
	g->n_groups++;
	for (int n = rnd(4); n > 0; n--)
		add_member(r);
	if (rnd(3) == 0)
		tmo_group_seal(&x->group);
}

static int enter_scope(void)
{
	if (g->n_scopes >= MAX_SCOPES)
		return -1;
	int r = g->n_scopes;
	struct scope_rec *x = &g->scopes[r];
	x->deadline = random_deadline();
	int ret = tmo_scope_enter(&g->loop, &x->scope, as_deadline(x->deadline),
				  rnd(4) ? 0 : TMO_SCOPE_SHIELD);
	if (ret) {
		violation(&g->v.api, "tmo_scope_enter = %d", ret);
		return -1;
	}
	g->n_scopes++;
	return r;
}

static void exit_scope(int r)
{
	int ret = tmo_scope_exit(&g->scopes[r].scope);

	if (ret)
		violation(&g->v.api, "tmo_scope_exit(%d) = %d", r, ret);
	g->scopes[r].exited = true;
}

/* Moves the deadline of a recent scope, live or not, and checks what the call says. */
static void shift_random(void)
{
	if (!g->n_scopes)
		return;
	int r = g->n_scopes - 1 - rnd(g->n_scopes < 8 ? g->n_scopes : 8);
	struct scope_rec *x = &g->scopes[r];
	if (x->finished)
		return;
	bool expired = tmo_scope_expired(&x->scope);
	int64_t when;
	int ret;

	g->shifts++;
	switch (rnd(3)) {
	case 0: {
		int64_t delta = (rnd(3) - 1) * rnd(10) * MS;
		ret = tmo_scope_shift(&x->scope, delta);
		if (x->deadline == TMO_NEVER_NS) {
			if (ret != -EINVAL)
				violation(&g->v.shift_result,
					  "shift of scope %d without a deadline = %d", r, ret);
			return;
		}
		when = x->deadline + delta;
		break;
	}
	case 1:
		when = tmo_now() + (rnd(4) - 1) * rnd(10) * MS;
		ret = tmo_scope_shift_at(&x->scope, tmo_at(when));
		break;
	default:
		when = rnd(4) ? tmo_now() + rnd(20) * MS : TMO_NEVER_NS;
		ret = tmo_scope_reschedule(&x->scope, as_deadline(when));
		break;
	}
	if (ret == 0) {
		if (expired || x->exited)
			violation(&g->v.shift_result,
				  "shift of scope %d (expired %d, exited %d) = 0", r, expired,
				  x->exited);
		x->deadline = when;
	} else if (ret == -ETIME) {
		if (!expired)
			violation(&g->v.shift_result, "shift of scope %d (not expired) = -ETIME",
				  r);
	} else if (ret == -EINVAL) {
		if (!x->exited)
			violation(&g->v.shift_result, "shift of live scope %d = -EINVAL", r);
	} else {
		violation(&g->v.shift_result, "shift of scope %d = %d", r, ret);
	}
}

static void cancel_random(void)
{
	struct stress_op *s = &g->ops[rnd(NOPS)];

	if (tmo_op_cancel(&s->op) == 0)
		s->cancel_requested = true;
}

/* A callback's scope: entered and exited within the callback, as the docs require. */
static void scope_block_in_callback(void)
{
	int r = enter_scope();

	if (r < 0)
		return;
	for (int n = 1 + rnd(3); n > 0; n--) {
		if (rnd(4))
			start_op();
		else
			init_group();
	}
	exit_scope(r);
}

static void actions(int budget)
{
	for (int i = 0; i < budget; i++) {
		switch (rnd(14)) {
		case 0:
		case 1:
		case 2:
			start_op();
			break;
		case 4:
			if (g->depth) {
				scope_block_in_callback();
			} else if (g->n_main_scopes < MAX_MAIN_SCOPES) {
				int r = enter_scope();
				if (r >= 0)
					g->main_scopes[g->n_main_scopes++] = r;
			}
			break;
		case 5:
			if (!g->depth && g->n_main_scopes)
				exit_scope(g->main_scopes[--g->n_main_scopes]);
			break;
		case 6:
			shift_random();
			break;
		case 7:
			init_group();
			break;
		case 8:
		case 9:
			add_member(open_group());
			break;
		case 10: {
			int r = open_group();
			if (r >= 0)
				tmo_group_seal(&g->groups[r].group);
			break;
		}
		case 11: {
			int r = open_group();
			if (r >= 0 && rnd(3) == 0)
				tmo_group_cancel(&g->groups[r].group);
			break;
		}
		case 12:
			if (rnd(2))
				start_op();
			break;
		default: /* 3, 13 */
			cancel_random();
			break;
		}
	}
}

/* ---- between loop runs: close what is idle, check scopes that let go --------------------- */

static void close_idle_groups(void)
{
	for (int r = 0; r < g->n_groups; r++) {
		struct group_rec *x = &g->groups[r];
		if (x->closed || tmo_group_busy(&x->group))
			continue;
		int ret = tmo_group_close(&x->group);
		if (ret) {
			violation(&g->v.api, "group %d: close when not busy = %d", r, ret);
			continue;
		}
		if (x->done_calls != 1)
			violation(&g->v.bad_done, "group %d: closed after %d on_done", r,
				  x->done_calls);
		x->closed = true;
		/* Its members are the caller's again. */
		for (int i = 0; i < NOPS; i++) {
			struct stress_op *s = &g->ops[i];
			if (s->group != r)
				continue;
			if (s->state != O_MEMBER_DONE || tmo_op_busy(&s->op))
				violation(&g->v.other_error,
					  "group %d closed with member op %d in state %d, busy %d",
					  r, i, s->state, tmo_op_busy(&s->op));
			s->group = -1;
			s->state = O_IDLE;
		}
	}
}

/* An exited scope no longer busy must have nothing started in it pending. */
static void check_finished_scopes(void)
{
	for (int r = 0; r < g->n_scopes; r++) {
		struct scope_rec *x = &g->scopes[r];
		if (x->finished || !x->exited || tmo_scope_busy(&x->scope))
			continue;
		x->finished = true;
		for (int i = 0; i < NOPS; i++) {
			struct stress_op *s = &g->ops[i];
			if (s->scope == r && (s->state == O_PENDING || tmo_op_busy(&s->op)))
				violation(&g->v.scope_idle_with_work,
					  "scope %d not busy, op %d (kind %d, group %d) started "
					  "in it is pending", r, i, s->kind, s->group);
		}
		for (int k = 0; k < g->n_groups; k++)
			if (g->groups[k].scope == r && !g->groups[k].closed &&
			    tmo_group_busy(&g->groups[k].group))
				violation(&g->v.scope_idle_with_work,
					  "scope %d not busy, group %d created in it is busy",
					  r, k);
	}
}

static void housekeeping(void)
{
	close_idle_groups();
	check_finished_scopes();
}

/* ---- a run --------------------------------------------------------------------------------- */

static void *write_randomly(void *arg)
{
	struct stress *st = arg;
	unsigned seed = 7;

	while (!atomic_load(&st->stop_writer)) {
		if (write(st->pipes[rand_r(&seed) % NOPS][1], "x", 1) < 0)
			break;
		usleep(60);
	}
	return NULL;
}

static int run_loop_randomly(void)
{
	int ret;

	g->in_run = true;
	switch (rnd(4)) {
	case 0:
		/* ONCE waits for a callback: make sure one comes soon. The heartbeat joins the
		 * current scope, so it may be cut early; a callback either way. */
		if (!tmo_op_busy(&g->heartbeat)) {
			tmo_prep_sleep(&g->heartbeat, tmo_in_ms(3));
			if (tmo_op_start(&g->loop, &g->heartbeat, TMO_NEVER, on_heartbeat) == 0)
				g->heartbeat_starts++;
		}
		ret = tmo_loop_run(&g->loop, TMO_RUN_ONCE);
		break;
	case 1:
		ret = tmo_loop_run(&g->loop, TMO_RUN_NOWAIT);
		break;
	default:
		ret = tmo_loop_run_until(&g->loop, tmo_in_ns(rnd(5) * MS));
		break;
	}
	g->in_run = false;
	return ret;
}

/* Cancels everything and runs the loop, bounded, until nothing is left. */
static void drain(void)
{
	g->draining = true;
	while (g->n_main_scopes)
		exit_scope(g->main_scopes[--g->n_main_scopes]);
	for (int round = 0; round < 100; round++) {
		for (int i = 0; i < NOPS; i++)
			if (tmo_op_cancel(&g->ops[i].op) == 0)
				g->ops[i].cancel_requested = true;
		for (int r = 0; r < g->n_groups; r++)
			if (!g->groups[r].closed) {
				tmo_group_seal(&g->groups[r].group);
				tmo_group_cancel(&g->groups[r].group);
			}
		/* Reads and polls cancelled too late still complete with data. */
		for (int i = 0; i < NOPS; i++)
			test_write_all(g->pipes[i][1], "xxxx", 4);
		g->in_run = true;
		tmo_loop_run_until(&g->loop, tmo_in_ms(20));
		g->in_run = false;
		housekeeping();
		bool left = tmo_loop_active(&g->loop) != 0;
		for (int r = 0; r < g->n_groups; r++)
			left |= !g->groups[r].closed;
		for (int r = 0; r < g->n_scopes; r++)
			left |= !g->scopes[r].finished;
		if (!left)
			break;
	}
}

static void print_counts(enum tmo_loop_mode mode, enum tmo_deadline_strategy deadlines,
			 unsigned seed, uint32_t ring_entries)
{
	const struct violations *v = &g->v;

	print_message("mode %d deadlines %d seed %u ring %u: %ld rounds, %ld starts "
		      "(%ld members, %ld waiters), %ld callbacks, %d scopes, %d groups, "
		      "%ld shifts; cut by own deadline %ld, scope %ld, group %ld, cancelled %ld\n",
		      mode, deadlines, seed, ring_entries, g->rounds, g->starts, g->members,
		      g->waiters, g->calls, g->n_scopes, g->n_groups, g->shifts, g->cut_own,
		      g->cut_scope, g->cut_group, g->cancels);
	print_message("  violations: double_callback %ld early_own %ld early_scope %ld "
		      "early_group %ld bad_cause %ld unrequested_cancel %ld other_error %ld "
		      "bad_done %ld done_outside_run %ld bad_reason %ld waiter_result %ld "
		      "bad_release %ld scope_idle_with_work %ld shift_result %ld api %ld\n",
		      v->double_callback, v->early_own, v->early_scope, v->early_group,
		      v->bad_cause, v->unrequested_cancel, v->other_error, v->bad_done,
		      v->done_outside_run, v->bad_reason, v->waiter_result, v->bad_release,
		      v->scope_idle_with_work, v->shift_result, v->api);
}

static long total_violations(void)
{
	const struct violations *v = &g->v;

	return v->double_callback + v->early_own + v->early_scope + v->early_group + v->bad_cause +
	       v->unrequested_cancel + v->other_error + v->bad_done + v->done_outside_run +
	       v->bad_reason + v->waiter_result + v->bad_release + v->scope_idle_with_work +
	       v->shift_result + v->api;
}

/* A hang fails the program with a message naming the run, instead of blocking it. */
static void on_watchdog(int sig)
{
	(void)sig;
	if (write(STDERR_FILENO, watchdog_message, strlen(watchdog_message)) < 0)
		_exit(2);
	_exit(1);
}

static void stress_run(enum tmo_loop_mode mode, enum tmo_deadline_strategy deadlines,
		       unsigned seed, uint32_t ring_entries)
{
	struct tmo_loop_options options = {
		.mode = mode, .deadlines = deadlines, .ring_entries = ring_entries,
	};
	pthread_t writer;

	current_seed = seed;
	snprintf(watchdog_message, sizeof(watchdog_message),
		 "scope_group_stress: mode %d deadlines %d seed %u hung for %d s\n", mode,
		 deadlines, seed, WATCHDOG_S);
	signal(SIGALRM, on_watchdog);
	alarm(WATCHDOG_S);

	g = calloc(1, sizeof(*g));
	assert_non_null(g);
	g->seed = seed;
	assert_int_equal(tmo_loop_init(&g->loop, &options), 0);
	g->file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(g->file >= 0);
	for (int i = 0; i < NOPS; i++) {
		test_pipe(g->pipes[i]);
		g->ops[i].index = i;
		g->ops[i].group = g->ops[i].scope = -1;
	}
	assert_int_equal(pthread_create(&writer, NULL, write_randomly, g), 0);

	int64_t end = tmo_now() + RUN_MS * MS;
	for (; tmo_now() < end || g->rounds < MIN_ROUNDS; g->rounds++) {
		actions(1 + rnd(8));
		int ret = run_loop_randomly();
		if (ret < 0) {
			violation(&g->v.api, "run = %d", ret);
			break;
		}
		housekeeping();
	}
	atomic_store(&g->stop_writer, true);
	assert_int_equal(pthread_join(writer, NULL), 0);
	drain();

	print_counts(mode, deadlines, seed, ring_entries);
	assert_int_equal(total_violations(), 0);
	/* Clean end. */
	assert_int_equal(tmo_loop_active(&g->loop), 0);
	for (int r = 0; r < g->n_groups; r++)
		if (!g->groups[r].closed)
			fail_msg("group %d still busy", r);
	for (int r = 0; r < g->n_scopes; r++)
		if (!g->scopes[r].finished)
			fail_msg("scope %d still busy", r);
	for (int i = 0; i < NOPS; i++)
		if (g->ops[i].calls != g->ops[i].starts)
			fail_msg("op %d (kind %d): %ld starts, %ld callbacks", i, g->ops[i].kind,
				 g->ops[i].starts, g->ops[i].calls);
	assert_int_equal(g->heartbeat_calls, g->heartbeat_starts);
	assert_int_equal(tmo_loop_close(&g->loop), 0);
	/* It did exercise what it is about. */
	assert_true(g->n_scopes > 20);
	assert_true(g->n_groups > 20);
	assert_true(g->waiters > 5);
	assert_true(g->shifts > 20);

	for (int i = 0; i < NOPS; i++) {
		close(g->pipes[i][0]);
		close(g->pipes[i][1]);
	}
	close(g->file);
	free(g);
	g = NULL;
	alarm(0);
}

/* Two seeds per configuration: one on a 4-entry ring, one on a 64-entry ring. */
static void stress(enum tmo_loop_mode mode, enum tmo_deadline_strategy deadlines, unsigned seed)
{
	stress_run(mode, deadlines, seed, 4);
	stress_run(mode, deadlines, seed + 1, 64);
}

static void default_mode_kernel_deadlines(void **state)
{
	(void)state;
	stress(TMO_MODE_DEFAULT, TMO_DEADLINES_KERNEL, 11);
}

static void default_mode_loop_deadlines(void **state)
{
	(void)state;
	stress(TMO_MODE_DEFAULT, TMO_DEADLINES_LOOP, 21);
}

static void low_latency_mode_kernel_deadlines(void **state)
{
	(void)state;
	stress(TMO_MODE_LOW_LATENCY, TMO_DEADLINES_KERNEL, 31);
}

static void low_latency_mode_loop_deadlines(void **state)
{
	(void)state;
	stress(TMO_MODE_LOW_LATENCY, TMO_DEADLINES_LOOP, 41);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_mode_kernel_deadlines),
		cmocka_unit_test(default_mode_loop_deadlines),
		cmocka_unit_test(low_latency_mode_kernel_deadlines),
		cmocka_unit_test(low_latency_mode_loop_deadlines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
