/*
 * group-*: many ops under one deadline. gather under a group deadline and with a deadline on
 * one member; every return_when mode (FIRST_DONE, FIRST_SUCCESS, FIRST_ERROR, ALL, QUORUM)
 * with pending members left running; as_completed order; a concurrency limit with members
 * added over time and a queued member timing out unstarted; groups as members of groups and
 * waited for with a deadline; cancel; groups inside scopes; bad input.
 *
 * One "second" of the scenarios is U = 150 ms: margins between events are half a "second" or
 * more, which a loaded CI machine must not blur. A member "that takes N s" is a sleep; a member
 * that must return a value V is a read on its own pipe, into which a sleep op outside the
 * group writes V bytes at the chosen time. A member that fails at a time is a read with its
 * own deadline and no data (-ETIME); one that fails at once reads the pipe's write end
 * (-EBADF). Times that a wrong behaviour would make early are checked exactly (never early);
 * lateness within the tolerance of helpers.h. Snapshots taken inside callbacks are asserted
 * after the loop ran, so that a failure never jumps out of a running loop.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define MS TMO_NSEC_PER_MSEC
#define U (150 * MS)
#define MAX_MEMBERS 10

/* ---- fixture ------------------------------------------------------------------------------ */

struct member {
	struct tmo_op op; /* first: a member pointer is its op pointer */
	int idx;
	int calls;
	int32_t res;
	int64_t seen_at;
	int fds[2]; /* a read member's pipe, -1 otherwise */
	char buf[1024];
};

struct fixture;

/* Something the loop does at a time: a sleep op outside any group. */
struct action {
	struct tmo_op op;
	struct fixture *fx;
	void (*fn)(struct action *a);
	int fd;          /* a writer's pipe */
	uint32_t len;    /* ... and how many bytes it writes */
	int calls;
	int64_t seen_at;
	int32_t got[8];  /* what the action saw or got back, for the test to check */
};

struct fixture {
	struct tmo_group group;
	struct tmo_loop *loop;
	int64_t t0;
	struct member m[MAX_MEMBERS];
	int n;
	struct action w[MAX_MEMBERS]; /* writers */
	int nw;
	/* on_done */
	int done_calls;
	int32_t done_res;
	int64_t done_at;
	enum tmo_group_reason done_reason;
	uint32_t done_count_at_done, pending_at_done;
	unsigned pending_set_at_done; /* bit i: member i was in the pending set */
	int pending_walked_at_done;   /* members the pending iterator gave */
	int close_at_done; /* tmo_group_close() tried inside on_done, if try_close_at_done */
	bool try_close_at_done;
	/* on_member, in call order */
	int order[2 * MAX_MEMBERS];
	int norder;
	int member_errors; /* on_member saw an inconsistency (unknown op, result, done list) */
	void (*hook)(struct fixture *fx, struct member *m); /* after on_member's bookkeeping */
	int32_t hook_got[4];
};

static void fx_on_done(struct tmo_group *group, int32_t res)
{
	struct fixture *fx = group->data;

	fx->done_calls++;
	fx->done_res = res;
	fx->done_at = tmo_now();
	fx->done_reason = tmo_group_reason(group);
	fx->done_count_at_done = tmo_group_done_count(group);
	fx->pending_at_done = tmo_group_pending_count(group);
	for (struct tmo_op *op = tmo_group_pending_first(group); op; op = tmo_group_pending_next(op)) {
		fx->pending_set_at_done |= 1u << ((struct member *)op)->idx;
		fx->pending_walked_at_done++;
	}
	if (fx->try_close_at_done)
		fx->close_at_done = tmo_group_close(group);
}

static void fx_on_member(struct tmo_group *group, struct tmo_op *op, int32_t res)
{
	struct fixture *fx = group->data;
	struct member *m = (struct member *)op;

	if (group != &fx->group || m < fx->m || m >= fx->m + fx->n) {
		fx->member_errors++;
		return;
	}
	m->calls++;
	m->res = res;
	m->seen_at = tmo_now();
	if (fx->norder < (int)(sizeof(fx->order) / sizeof(fx->order[0])))
		fx->order[fx->norder++] = m->idx;
	if (tmo_op_result(op) != res)
		fx->member_errors++;
	/* The done list already holds it, last, and is as long as the done count. */
	uint32_t len = 0;
	const struct tmo_op *last = NULL;
	for (const struct tmo_op *d = tmo_group_done_first(group); d; d = tmo_group_done_next(d)) {
		last = d;
		if (++len > 2 * MAX_MEMBERS)
			break;
	}
	if (last != op || len != tmo_group_done_count(group))
		fx->member_errors++;
	if (fx->hook)
		fx->hook(fx, m);
}

static void fx_init(struct fixture *fx, struct tmo_loop *loop, int n)
{
	memset(fx, 0, sizeof(*fx));
	fx->loop = loop;
	fx->n = n;
	fx->t0 = tmo_now();
	fx->close_at_done = 1;
	for (int i = 0; i < MAX_MEMBERS; i++) {
		fx->m[i].idx = i;
		fx->m[i].fds[0] = fx->m[i].fds[1] = -1;
	}
}

static struct tmo_group_options fx_options(struct fixture *fx, enum tmo_group_mode mode,
					   enum tmo_group_policy policy)
{
	struct tmo_group_options o = {
		.mode = mode,
		.policy = policy,
		.deadline = TMO_NEVER,
		.on_done = fx_on_done,
		.on_member = fx_on_member,
		.data = fx,
	};
	return o;
}

static void fx_group_init(struct fixture *fx, const struct tmo_group_options *o)
{
	assert_int_equal(tmo_group_init(fx->loop, &fx->group, o), 0);
	assert_ptr_equal(fx->group.data, fx);
}

static void fx_close(struct fixture *fx)
{
	for (int i = 0; i < MAX_MEMBERS; i++)
		for (int k = 0; k < 2; k++)
			if (fx->m[i].fds[k] >= 0) {
				close(fx->m[i].fds[k]);
				fx->m[i].fds[k] = -1;
			}
}

static void action_fire(struct tmo_op *op, int32_t res)
{
	struct action *a = (struct action *)op;

	a->calls++;
	a->seen_at = tmo_now();
	if (res == 0 && a->fn)
		a->fn(a);
}

/* Runs fn(a) from the loop at `when`, from a sleep started outside any scope or group. */
static void at(struct tmo_loop *loop, struct action *a, int64_t when, void (*fn)(struct action *),
	       struct fixture *fx)
{
	a->fx = fx;
	a->fn = fn;
	tmo_prep_sleep(&a->op, tmo_at(when));
	assert_int_equal(tmo_op_start(loop, &a->op, TMO_NEVER, action_fire), 0);
}

static void write_bytes(struct action *a)
{
	static const char bytes[1024] = { 0 };

	if (a->len)
		test_write_all(a->fd, bytes, a->len);
}

/* A member that sleeps until `wake_at` (result 0). */
static struct tmo_op *sleeper(struct fixture *fx, int i, int64_t wake_at)
{
	tmo_prep_sleep(&fx->m[i].op, tmo_at(wake_at));
	return &fx->m[i].op;
}

/* A member that reads its own pipe (result: the bytes written into it). */
static struct tmo_op *reader(struct fixture *fx, int i)
{
	struct member *m = &fx->m[i];

	test_pipe(m->fds);
	tmo_prep_read(&m->op, m->fds[0], m->buf, sizeof(m->buf), (uint64_t)-1);
	return &m->op;
}

/* A reader that gets `value` bytes at `when`. */
static struct tmo_op *reader_of(struct fixture *fx, int i, uint32_t value, int64_t when)
{
	struct tmo_op *op = reader(fx, i);
	struct action *w = &fx->w[fx->nw++];

	w->fd = fx->m[i].fds[1];
	w->len = value;
	at(fx->loop, w, when, write_bytes, fx);
	return op;
}

/* A member that fails at once: a read on its pipe's write end (-EBADF). */
static struct tmo_op *bad_reader(struct fixture *fx, int i)
{
	struct member *m = &fx->m[i];

	test_pipe(m->fds);
	tmo_prep_read(&m->op, m->fds[1], m->buf, sizeof(m->buf), (uint64_t)-1);
	return &m->op;
}

static void add(struct fixture *fx, struct tmo_op *op, tmo_deadline deadline)
{
	assert_int_equal(tmo_group_add(&fx->group, op, deadline), 0);
}

/* Runs the loop until no work is left, bounded: a group that never lets go fails the test
 * (with work left, which teardown reports) instead of hanging it. */
static void run_all(struct tmo_loop *loop)
{
	assert_int_equal(tmo_loop_run_until(loop, tmo_in_ns(10 * U)), 0);
}

/* The member completed once with `res` and `cause`, on time for `when`. */
static void assert_member(const struct member *m, int32_t res, enum tmo_cause cause,
			  int64_t when)
{
	assert_int_equal(m->calls, 1);
	assert_int_equal(m->res, res);
	assert_int_equal(tmo_op_result(&m->op), res);
	assert_int_equal(tmo_op_cause(&m->op), cause);
	assert_false(tmo_op_busy(&m->op));
	assert_on_time(m->seen_at, when);
}

static void assert_done(const struct fixture *fx, int32_t res, enum tmo_group_reason reason,
			int64_t when)
{
	assert_int_equal(fx->done_calls, 1);
	assert_int_equal(fx->done_res, res);
	assert_int_equal(fx->done_reason, reason);
	assert_int_equal(tmo_group_reason(&fx->group), reason);
	assert_on_time(fx->done_at, when);
}

/* on_member saw `order`, and the done list holds the same members in the same order. */
static void assert_order(const struct fixture *fx, const int *order, int n)
{
	assert_int_equal(fx->member_errors, 0);
	assert_int_equal(fx->norder, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(fx->order[i], order[i]);
	const struct tmo_op *d = tmo_group_done_first(&fx->group);
	for (int i = 0; i < n; i++, d = tmo_group_done_next(d))
		assert_ptr_equal(d, &fx->m[order[i]].op);
	assert_null(d);
	assert_int_equal(tmo_group_done_count(&fx->group), n);
}

/* Finished, nothing pending: the group is the caller's again. */
static void assert_closed(struct fixture *fx)
{
	assert_int_equal(tmo_group_pending_count(&fx->group), 0);
	assert_false(tmo_group_busy(&fx->group));
	assert_int_equal(tmo_group_close(&fx->group), 0);
	fx_close(fx);
}

/* ---- gather ------------------------------------------------------------------------------ */

/* Ten 5 s members under a 2.5 s group deadline: all cut at 2.5 s, the group times out. */
static void gather_times_out_at_the_group_deadline(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 10);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	int64_t deadline = fx.t0 + 25 * U / 10;
	o.deadline = tmo_at(deadline);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 10; i++)
		add(&fx, sleeper(&fx, i, fx.t0 + 5 * U), TMO_NEVER);
	assert_int_equal(tmo_group_pending_count(&fx.group), 10);
	assert_int_equal(tmo_group_done_count(&fx.group), 0);
	assert_true(tmo_group_busy(&fx.group));
	assert_int_equal(tmo_group_reason(&fx.group), TMO_GROUP_RUNNING);
	/* Not sealed: the deadline ends the group all the same. */
	run_all(fx.loop);

	assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, deadline);
	assert_int_equal(fx.done_count_at_done, 10);
	assert_int_equal(fx.pending_at_done, 0);
	for (int i = 0; i < 10; i++) {
		assert_member(&fx.m[i], -ETIME, TMO_CAUSE_GROUP, deadline);
		assert_ptr_equal(tmo_op_cause_group(&fx.m[i].op), &fx.group);
		assert_null(tmo_op_cause_scope(&fx.m[i].op));
	}
	assert_int_equal(fx.member_errors, 0);
	assert_int_equal(fx.norder, 10);
	assert_int_equal(tmo_group_done_count(&fx.group), 10);
	assert_non_null(tmo_group_first_failure(&fx.group));
	assert_closed(&fx);
}

/* The deadline on member 0 only (2.5 s); members 1..9 return i*100 at 5 s. */
static void gather_with_a_deadline_on_one_member(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 10);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	int64_t own = fx.t0 + 25 * U / 10, data_at = fx.t0 + 5 * U;
	add(&fx, reader(&fx, 0), tmo_at(own)); /* member 0 gets no data */
	for (int i = 1; i < 10; i++)
		add(&fx, reader_of(&fx, i, (uint32_t)(i * 100), data_at), TMO_NEVER);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	assert_member(&fx.m[0], -ETIME, TMO_CAUSE_OWN, own);
	assert_null(tmo_op_cause_group(&fx.m[0].op));
	assert_done(&fx, 0, TMO_GROUP_MET, data_at);
	assert_int_equal(fx.done_count_at_done, 10);
	assert_int_equal(fx.pending_at_done, 0);
	for (int i = 1; i < 10; i++)
		assert_member(&fx.m[i], i * 100, TMO_CAUSE_NONE, data_at);
	int32_t want[10] = { -ETIME, 100, 200, 300, 400, 500, 600, 700, 800, 900 };
	for (int i = 0; i < 10; i++)
		assert_int_equal(tmo_op_result(&fx.m[i].op), want[i]);
	assert_ptr_equal(tmo_group_first_failure(&fx.group), &fx.m[0].op);
	assert_int_equal(fx.order[0], 0);
	assert_int_equal(fx.member_errors, 0);
	assert_closed(&fx);
}

/* A group deadline that has already passed: members never start, all -ETIME by the group. */
static void group_deadline_already_passed(void **state)
{
	struct fixture fx;
	int64_t before = tmo_now();

	fx_init(&fx, *state, 2);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	o.deadline = tmo_at(before);
	fx_group_init(&fx, &o);
	add(&fx, sleeper(&fx, 0, before + 5 * U), TMO_NEVER);
	add(&fx, reader_of(&fx, 1, 3, before), TMO_NEVER); /* its data is there at once */
	assert_int_equal(fx.done_calls, 0); /* callbacks only from the loop */
	run_all(fx.loop);

	assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, before);
	for (int i = 0; i < 2; i++) {
		assert_member(&fx.m[i], -ETIME, TMO_CAUSE_GROUP, before);
		assert_ptr_equal(tmo_op_cause_group(&fx.m[i].op), &fx.group);
	}
	assert_int_equal(test_readable(fx.m[1].fds[0]), 3); /* the read never started */
	assert_closed(&fx);
}

/*
 * Sealed with its deadline already passed when the member starts (regression: the member's
 * cut completion made the group "all done", and on_done said 0, MET). The deadline either
 * passed while the program was busy after tmo_group_init, or was already now at init.
 */
static void sealed_group_whose_deadline_passed_times_out(void **state)
{
	for (int passed_at_init = 0; passed_at_init < 2; passed_at_init++) {
		struct fixture fx;
		int64_t start = tmo_now();
		int64_t deadline = passed_at_init ? start : start + 10 * MS;

		fx_init(&fx, *state, 1);
		struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
		o.deadline = tmo_at(deadline);
		fx_group_init(&fx, &o);
		test_sleep_ms(20); /* busy past the deadline */
		add(&fx, sleeper(&fx, 0, tmo_now() + 50 * MS), TMO_NEVER);
		assert_int_equal(tmo_group_seal(&fx.group), 0);
		run_all(fx.loop);

		assert_member(&fx.m[0], -ETIME, TMO_CAUSE_GROUP, start + 20 * MS);
		assert_ptr_equal(tmo_op_cause_group(&fx.m[0].op), &fx.group);
		assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, start + 20 * MS);
		assert_closed(&fx);
	}
}

/* An empty sealed group finishes at once, from the loop. */
static void empty_sealed_group_finishes_from_the_loop(void **state)
{
	struct fixture all, first;
	int64_t before = tmo_now();

	fx_init(&all, *state, 0);
	fx_init(&first, *state, 0);
	struct tmo_group_options o = fx_options(&all, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&all, &o);
	o = fx_options(&first, TMO_GROUP_FIRST_SUCCESS, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&first, &o);
	assert_int_equal(tmo_group_seal(&all.group), 0);
	assert_int_equal(tmo_group_seal(&first.group), 0);
	assert_int_equal(all.done_calls, 0);
	assert_int_equal(first.done_calls, 0);
	run_all(all.loop);
	assert_done(&all, 0, TMO_GROUP_MET, before);
	/* No member can succeed any more. */
	assert_int_equal(first.done_calls, 1);
	assert_int_equal(tmo_group_reason(&first.group), TMO_GROUP_UNREACHABLE);
	assert_true(first.done_res < 0);
	assert_closed(&all);
	assert_closed(&first);
}

/* ---- wait: return_when, pending members left running ------------------------------------- */

/* Five readers that return (i+1)*10 at (i+1) s, for the modes below. */
static void five_readers(struct fixture *fx)
{
	for (int i = 0; i < 5; i++)
		add(fx, reader_of(fx, i, (uint32_t)((i + 1) * 10), fx->t0 + (i + 1) * U), TMO_NEVER);
}

static void first_done_leaves_the_rest_running(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 5);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_FIRST_DONE, TMO_GROUP_LEAVE_PENDING);
	fx_group_init(&fx, &o);
	fx.try_close_at_done = true;
	five_readers(&fx);
	run_all(fx.loop);

	assert_done(&fx, 10, TMO_GROUP_MET, fx.t0 + U);
	assert_int_equal(fx.done_count_at_done, 1);
	assert_int_equal(fx.pending_at_done, 4);
	assert_int_equal(fx.close_at_done, -EBUSY); /* finished, but members are pending */
	/* Not cancelled: each completed later with its own result, reported in order. */
	for (int i = 0; i < 5; i++)
		assert_member(&fx.m[i], (i + 1) * 10, TMO_CAUSE_NONE, fx.t0 + (i + 1) * U);
	int order[5] = { 0, 1, 2, 3, 4 };
	assert_order(&fx, order, 5);
	assert_null(tmo_group_first_failure(&fx.group));
	assert_int_equal(tmo_group_add(&fx.group, sleeper(&fx, 5, 0), TMO_NEVER), -EPIPE);
	assert_closed(&fx);
}

static void first_success_waits_past_failures(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 5);
	struct tmo_group_options o =
		fx_options(&fx, TMO_GROUP_FIRST_SUCCESS, TMO_GROUP_LEAVE_PENDING);
	fx_group_init(&fx, &o);
	add(&fx, bad_reader(&fx, 0), TMO_NEVER);     /* -EBADF at once */
	add(&fx, reader(&fx, 1), tmo_at(fx.t0 + U)); /* -ETIME at 1 s */
	for (int i = 2; i < 5; i++)
		add(&fx, reader_of(&fx, i, (uint32_t)((i + 1) * 10), fx.t0 + i * U), TMO_NEVER);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	assert_done(&fx, 0, TMO_GROUP_MET, fx.t0 + 2 * U);
	assert_int_equal(fx.done_count_at_done, 3);
	assert_int_equal(fx.pending_at_done, 2);
	assert_member(&fx.m[0], -EBADF, TMO_CAUSE_NONE, fx.t0);
	assert_member(&fx.m[1], -ETIME, TMO_CAUSE_OWN, fx.t0 + U);
	for (int i = 2; i < 5; i++)
		assert_member(&fx.m[i], (i + 1) * 10, TMO_CAUSE_NONE, fx.t0 + i * U);
	int order[5] = { 0, 1, 2, 3, 4 };
	assert_order(&fx, order, 5);
	assert_ptr_equal(tmo_group_first_failure(&fx.group), &fx.m[0].op);
	assert_closed(&fx);
}

static void first_error_finishes_at_the_first_failure(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 5);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_FIRST_ERROR, TMO_GROUP_LEAVE_PENDING);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 5; i++) {
		if (i == 2)
			add(&fx, reader(&fx, 2), tmo_at(fx.t0 + 3 * U)); /* fails at 3 s */
		else
			add(&fx, reader_of(&fx, i, (uint32_t)((i + 1) * 10), fx.t0 + (i + 1) * U),
			    TMO_NEVER);
	}
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	assert_done(&fx, -ETIME, TMO_GROUP_MET, fx.t0 + 3 * U);
	assert_int_equal(fx.done_count_at_done, 3);
	assert_int_equal(fx.pending_at_done, 2);
	assert_member(&fx.m[2], -ETIME, TMO_CAUSE_OWN, fx.t0 + 3 * U);
	for (int i = 0; i < 5; i++)
		if (i != 2)
			assert_member(&fx.m[i], (i + 1) * 10, TMO_CAUSE_NONE, fx.t0 + (i + 1) * U);
	int order[5] = { 0, 1, 2, 3, 4 };
	assert_order(&fx, order, 5);
	assert_ptr_equal(tmo_group_first_failure(&fx.group), &fx.m[2].op);
	assert_closed(&fx);
}

static void first_error_without_errors_finishes_when_all_done(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 5);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_FIRST_ERROR, TMO_GROUP_LEAVE_PENDING);
	fx_group_init(&fx, &o);
	five_readers(&fx);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	assert_done(&fx, 0, TMO_GROUP_MET, fx.t0 + 5 * U);
	assert_int_equal(fx.done_count_at_done, 5);
	for (int i = 0; i < 5; i++)
		assert_member(&fx.m[i], (i + 1) * 10, TMO_CAUSE_NONE, fx.t0 + (i + 1) * U);
	assert_null(tmo_group_first_failure(&fx.group));
	assert_closed(&fx);
}

/* ALL finishes only once sealed: with every member done but no seal it keeps waiting. */
static void all_finishes_once_sealed_and_all_done(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 5);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_LEAVE_PENDING);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 5; i++)
		add(&fx, sleeper(&fx, i, fx.t0 + (i + 1) * U), TMO_NEVER);
	/* The unsealed group is work for the loop, so run_until returns at its time with 1. */
	assert_int_equal(tmo_loop_run_until(fx.loop, tmo_at(fx.t0 + 6 * U)), 1);
	assert_int_equal(fx.done_calls, 0);
	assert_int_equal(tmo_group_reason(&fx.group), TMO_GROUP_RUNNING);
	assert_int_equal(tmo_group_done_count(&fx.group), 5);
	assert_int_equal(tmo_group_pending_count(&fx.group), 0);
	assert_true(tmo_group_busy(&fx.group));
	assert_int_equal(tmo_group_close(&fx.group), -EBUSY); /* not finished */
	for (int i = 0; i < 5; i++)
		assert_member(&fx.m[i], 0, TMO_CAUSE_NONE, fx.t0 + (i + 1) * U);

	int64_t sealed_at = tmo_now();
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	assert_int_equal(fx.done_calls, 0); /* from the loop, not from the call */
	run_all(fx.loop);
	assert_done(&fx, 0, TMO_GROUP_MET, sealed_at);
	int order[5] = { 0, 1, 2, 3, 4 };
	assert_order(&fx, order, 5);
	assert_closed(&fx);
}

/* QUORUM 3 of 5 with a failure among them: done at the third success, not completion. */
static void quorum_finishes_at_the_third_success(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 5);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_QUORUM, TMO_GROUP_LEAVE_PENDING);
	o.quorum = 3;
	fx_group_init(&fx, &o);
	for (int i = 0; i < 5; i++) {
		if (i == 1)
			add(&fx, reader(&fx, 1), tmo_at(fx.t0 + 2 * U)); /* fails at 2 s */
		else
			add(&fx, reader_of(&fx, i, (uint32_t)((i + 1) * 10), fx.t0 + (i + 1) * U),
			    TMO_NEVER);
	}
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	assert_done(&fx, 0, TMO_GROUP_MET, fx.t0 + 4 * U);
	assert_int_equal(fx.done_count_at_done, 4);
	assert_int_equal(fx.pending_at_done, 1);
	assert_member(&fx.m[1], -ETIME, TMO_CAUSE_OWN, fx.t0 + 2 * U);
	for (int i = 0; i < 5; i++)
		if (i != 1)
			assert_member(&fx.m[i], (i + 1) * 10, TMO_CAUSE_NONE, fx.t0 + (i + 1) * U);
	assert_closed(&fx);
}

/* QUORUM 3 of 5 with three failures: unreachable at the third failure. */
static void quorum_unreachable_after_three_failures(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 5);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_QUORUM, TMO_GROUP_LEAVE_PENDING);
	o.quorum = 3;
	fx_group_init(&fx, &o);
	for (int i = 0; i < 5; i++) {
		if (i == 0 || i == 2 || i == 3)
			add(&fx, reader(&fx, i), tmo_at(fx.t0 + (i + 1) * U)); /* fails at i+1 s */
		else
			add(&fx, reader_of(&fx, i, (uint32_t)((i + 1) * 10), fx.t0 + (i + 1) * U),
			    TMO_NEVER);
	}
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	/* After 3 s one success and two pending could still make 3; after 4 s they cannot. */
	assert_done(&fx, -ETIME, TMO_GROUP_UNREACHABLE, fx.t0 + 4 * U);
	assert_int_equal(fx.done_count_at_done, 4);
	assert_int_equal(fx.pending_at_done, 1);
	assert_ptr_equal(tmo_group_first_failure(&fx.group), &fx.m[0].op);
	for (int i = 0; i < 5; i++) {
		if (i == 0 || i == 2 || i == 3)
			assert_member(&fx.m[i], -ETIME, TMO_CAUSE_OWN, fx.t0 + (i + 1) * U);
		else
			assert_member(&fx.m[i], (i + 1) * 10, TMO_CAUSE_NONE, fx.t0 + (i + 1) * U);
	}
	assert_closed(&fx);
}

/* asyncio.wait(timeout=2.5) over members of 1..5 s: two done, three pending and running on. */
static void wait_with_a_deadline_leaves_the_rest_running(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 5);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_LEAVE_PENDING);
	int64_t deadline = fx.t0 + 25 * U / 10;
	o.deadline = tmo_at(deadline);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 5; i++)
		add(&fx, sleeper(&fx, i, fx.t0 + (i + 1) * U), TMO_NEVER);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, deadline);
	assert_int_equal(fx.done_count_at_done, 2);
	assert_int_equal(fx.pending_at_done, 3);
	/* The pending set itself: members 2, 3, 4, each once. */
	assert_int_equal(fx.pending_walked_at_done, 3);
	assert_int_equal(fx.pending_set_at_done, (1u << 2) | (1u << 3) | (1u << 4));
	for (int i = 0; i < 5; i++)
		assert_member(&fx.m[i], 0, TMO_CAUSE_NONE, fx.t0 + (i + 1) * U);
	int order[5] = { 0, 1, 2, 3, 4 };
	assert_order(&fx, order, 5);
	assert_closed(&fx);
}

/*
 * The same with a concurrency limit of 1: the member still waiting for a slot when the
 * deadline passes is pending too, and LEAVE_PENDING lets it run when a slot frees (it is not
 * cut by the deadline of a group that leaves its pending members alone).
 */
static void wait_with_a_deadline_lets_queued_members_run(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 3);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_LEAVE_PENDING);
	int64_t deadline = fx.t0 + 15 * U / 10;
	o.deadline = tmo_at(deadline);
	o.max_running = 1;
	fx_group_init(&fx, &o);
	add(&fx, sleeper(&fx, 0, fx.t0 + U), TMO_NEVER);     /* runs 0..1 s */
	add(&fx, sleeper(&fx, 1, fx.t0 + 2 * U), TMO_NEVER); /* runs 1..2 s */
	add(&fx, sleeper(&fx, 2, fx.t0 + 3 * U), TMO_NEVER); /* queued at the deadline */
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, deadline);
	assert_int_equal(fx.done_count_at_done, 1);
	assert_int_equal(fx.pending_at_done, 2);
	assert_member(&fx.m[0], 0, TMO_CAUSE_NONE, fx.t0 + U);
	assert_member(&fx.m[1], 0, TMO_CAUSE_NONE, fx.t0 + 2 * U);
	assert_member(&fx.m[2], 0, TMO_CAUSE_NONE, fx.t0 + 3 * U);
	assert_closed(&fx);
}

/* ---- as_completed ------------------------------------------------------------------------ */

static void done_list_and_on_member_follow_completion_order(void **state)
{
	struct fixture fx;
	static const int at_u[6] = { 3, 1, 5, 2, 6, 4 };

	fx_init(&fx, *state, 6);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 6; i++)
		add(&fx, reader_of(&fx, i, (uint32_t)(i + 1), fx.t0 + at_u[i] * U), TMO_NEVER);
	assert_null(tmo_group_done_first(&fx.group));
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);

	for (int i = 0; i < 6; i++)
		assert_member(&fx.m[i], i + 1, TMO_CAUSE_NONE, fx.t0 + at_u[i] * U);
	int order[6] = { 1, 3, 0, 5, 2, 4 };
	assert_order(&fx, order, 6);
	assert_done(&fx, 0, TMO_GROUP_MET, fx.t0 + 6 * U);
	assert_closed(&fx);
}

/* ---- a concurrency limit ----------------------------------------------------------------- */

enum { A, B, Q, C, D, E, F, G };

/* From Q's on_member, at 0.3 s: G (a sleep already due) joins the queue behind C. */
static void limit_add_from_on_member(struct fixture *fx, struct member *m)
{
	if (m->idx != Q)
		return;
	fx->hook_got[0] = (int32_t)tmo_group_pending_count(&fx->group);
	fx->hook_got[1] = tmo_group_add(&fx->group, sleeper(fx, G, fx->t0 + U / 10), TMO_NEVER);
	fx->hook_got[2] = (int32_t)tmo_group_pending_count(&fx->group);
}

static void limit_check_at_0_7(struct action *a)
{
	struct fixture *fx = a->fx;

	/* Neither queued read has started: their pipes still hold their data. */
	a->got[0] = test_readable(fx->m[Q].fds[0]);
	a->got[1] = test_readable(fx->m[C].fds[0]);
	a->got[2] = (int32_t)tmo_group_pending_count(&fx->group);
	a->got[3] = (int32_t)tmo_group_done_count(&fx->group);
	/* D: a sleep whose time has passed completes as soon as it starts. */
	a->got[4] = tmo_group_add(&fx->group, sleeper(fx, D, fx->t0 + 2 * U / 10), TMO_NEVER);
	a->got[5] = (int32_t)tmo_group_pending_count(&fx->group);
}

static void limit_add_at_1_5(struct action *a)
{
	struct fixture *fx = a->fx;

	a->got[0] = (int32_t)tmo_group_pending_count(&fx->group);
	/* E takes the free slot; F (its time passed) must wait for E. */
	a->got[1] = tmo_group_add(&fx->group, sleeper(fx, E, fx->t0 + 25 * U / 10), TMO_NEVER);
	a->got[2] = tmo_group_add(&fx->group, sleeper(fx, F, fx->t0 + 12 * U / 10), TMO_NEVER);
	a->got[3] = (int32_t)tmo_group_pending_count(&fx->group);
	a->got[4] = tmo_group_seal(&fx->group);
}

/*
 * max_running 2. At 0: A (1 s), B (3 s), Q (a read with data, own deadline 0.3 s) and C (a
 * read with data) are added: Q and C wait. Q's deadline passes while it waits: -ETIME at
 * 0.3 s, never started (its data stays). Q's on_member adds G (a sleep already due): it waits
 * behind C. At 0.7 s D (due too) is added and waits behind G. At 1 s A's slot goes to C, G,
 * D in turn, each completing at once. At 1.5 s E (2.5 s) takes the free slot and F (due)
 * waits until E is done. B ends it at 3 s. A member that started before a slot was free
 * would complete early, which the exact "never early" check catches.
 */
static void limit_queues_members_added_over_time(void **state)
{
	struct fixture fx;
	struct action check = { 0 }, late = { 0 };

	fx_init(&fx, *state, 8);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	o.max_running = 2;
	fx_group_init(&fx, &o);
	fx.hook = limit_add_from_on_member;
	int64_t t0 = fx.t0;
	add(&fx, sleeper(&fx, A, t0 + U), TMO_NEVER);
	add(&fx, sleeper(&fx, B, t0 + 3 * U), TMO_NEVER);
	reader(&fx, Q);
	test_write_all(fx.m[Q].fds[1], "data", 4);
	add(&fx, &fx.m[Q].op, tmo_at(t0 + 3 * U / 10));
	reader(&fx, C);
	test_write_all(fx.m[C].fds[1], "abc", 3);
	add(&fx, &fx.m[C].op, TMO_NEVER);
	assert_int_equal(tmo_group_pending_count(&fx.group), 4);
	at(fx.loop, &check, t0 + 7 * U / 10, limit_check_at_0_7, &fx);
	at(fx.loop, &late, t0 + 15 * U / 10, limit_add_at_1_5, &fx);
	run_all(fx.loop);

	assert_int_equal(fx.hook_got[0], 3); /* A, B running, C waiting */
	assert_int_equal(fx.hook_got[1], 0);
	assert_int_equal(fx.hook_got[2], 4);
	assert_int_equal(check.calls, 1);
	assert_int_equal(check.got[0], 4); /* Q's data: never started */
	assert_int_equal(check.got[1], 3); /* C's data: still waiting */
	assert_int_equal(check.got[2], 4); /* A, B running, C, G waiting */
	assert_int_equal(check.got[3], 1); /* Q done */
	assert_int_equal(check.got[4], 0);
	assert_int_equal(check.got[5], 5);
	assert_int_equal(late.calls, 1);
	assert_int_equal(late.got[0], 1); /* B */
	assert_int_equal(late.got[1], 0);
	assert_int_equal(late.got[2], 0);
	assert_int_equal(late.got[3], 3);
	assert_int_equal(late.got[4], 0);

	assert_member(&fx.m[Q], -ETIME, TMO_CAUSE_OWN, t0 + 3 * U / 10);
	assert_int_equal(test_readable(fx.m[Q].fds[0]), 4);
	assert_member(&fx.m[A], 0, TMO_CAUSE_NONE, t0 + U);
	assert_member(&fx.m[C], 3, TMO_CAUSE_NONE, t0 + U);
	assert_memory_equal(fx.m[C].buf, "abc", 3);
	assert_member(&fx.m[G], 0, TMO_CAUSE_NONE, t0 + U);
	assert_member(&fx.m[D], 0, TMO_CAUSE_NONE, t0 + U);
	assert_member(&fx.m[E], 0, TMO_CAUSE_NONE, t0 + 25 * U / 10);
	assert_member(&fx.m[F], 0, TMO_CAUSE_NONE, t0 + 25 * U / 10);
	assert_member(&fx.m[B], 0, TMO_CAUSE_NONE, t0 + 3 * U);
	int order[8] = { Q, A, C, G, D, E, F, B };
	assert_order(&fx, order, 8);
	assert_done(&fx, 0, TMO_GROUP_MET, t0 + 3 * U);
	assert_ptr_equal(tmo_group_first_failure(&fx.group), &fx.m[Q].op);
	assert_closed(&fx);
}

/* ---- groups of groups, and waiting for a group ------------------------------------------- */

/* Outer (ALL) has a 1 s sleep and an op waiting for inner (FIRST_DONE: a read returning 7 at
 * 1.5 s, a 4 s sleep). Inner finishes at 1.5 s with 7 and cuts its sleep; the waiting op
 * completes with 7, and outer finishes. */
static void group_as_a_member_of_another_group(void **state)
{
	struct fixture outer, inner;

	fx_init(&outer, *state, 2);
	fx_init(&inner, *state, 2);
	int64_t t0 = inner.t0;
	struct tmo_group_options o = fx_options(&inner, TMO_GROUP_FIRST_DONE, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&inner, &o);
	add(&inner, reader_of(&inner, 0, 7, t0 + 15 * U / 10), TMO_NEVER);
	add(&inner, sleeper(&inner, 1, t0 + 4 * U), TMO_NEVER);

	o = fx_options(&outer, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&outer, &o);
	add(&outer, sleeper(&outer, 0, t0 + U), TMO_NEVER);
	tmo_prep_group(&outer.m[1].op, &inner.group);
	add(&outer, &outer.m[1].op, TMO_NEVER);
	assert_int_equal(tmo_group_seal(&outer.group), 0);
	run_all(outer.loop);

	assert_done(&inner, 7, TMO_GROUP_MET, t0 + 15 * U / 10);
	assert_member(&inner.m[0], 7, TMO_CAUSE_NONE, t0 + 15 * U / 10);
	assert_member(&inner.m[1], -ECANCELED, TMO_CAUSE_GROUP, t0 + 15 * U / 10);
	assert_ptr_equal(tmo_op_cause_group(&inner.m[1].op), &inner.group);
	assert_member(&outer.m[0], 0, TMO_CAUSE_NONE, t0 + U);
	assert_member(&outer.m[1], 7, TMO_CAUSE_NONE, t0 + 15 * U / 10);
	int order[2] = { 0, 1 };
	assert_order(&outer, order, 2);
	assert_done(&outer, 0, TMO_GROUP_MET, t0 + 15 * U / 10);
	assert_closed(&outer);
	assert_closed(&inner);
}

/* An outer group's deadline cuts the op waiting for the inner group, and so the inner
 * group's members. */
static void outer_group_deadline_cuts_the_inner_group(void **state)
{
	struct fixture outer, inner;

	fx_init(&outer, *state, 1);
	fx_init(&inner, *state, 3);
	int64_t t0 = inner.t0, deadline = t0 + 2 * U;
	struct tmo_group_options o = fx_options(&inner, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&inner, &o);
	for (int i = 0; i < 3; i++)
		add(&inner, sleeper(&inner, i, t0 + 5 * U), TMO_NEVER);
	assert_int_equal(tmo_group_seal(&inner.group), 0);
	o = fx_options(&outer, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	o.deadline = tmo_at(deadline);
	fx_group_init(&outer, &o);
	tmo_prep_group(&outer.m[0].op, &inner.group);
	add(&outer, &outer.m[0].op, TMO_NEVER);
	run_all(outer.loop);

	assert_done(&outer, -ETIME, TMO_GROUP_TIMED_OUT, deadline);
	assert_member(&outer.m[0], -ETIME, TMO_CAUSE_GROUP, deadline);
	assert_ptr_equal(tmo_op_cause_group(&outer.m[0].op), &outer.group);
	assert_done(&inner, -ETIME, TMO_GROUP_TIMED_OUT, deadline);
	for (int i = 0; i < 3; i++) {
		assert_member(&inner.m[i], -ETIME, TMO_CAUSE_GROUP, deadline);
		assert_non_null(tmo_op_cause_group(&inner.m[i].op));
	}
	assert_closed(&outer);
	assert_closed(&inner);
}

/* tmo_prep_group + tmo_op_start with a deadline that passes first. */
static void waiting_for_a_group_with_a_deadline(void **state)
{
	struct fixture fx;
	struct test_result w = { 0 };

	fx_init(&fx, *state, 3);
	int64_t deadline = fx.t0 + 2 * U;
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 3; i++)
		add(&fx, sleeper(&fx, i, fx.t0 + 5 * U), TMO_NEVER);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	tmo_prep_group(&w.op, &fx.group);
	assert_int_equal(tmo_op_start(fx.loop, &w.op, tmo_at(deadline), test_record), 0);
	assert_true(tmo_op_busy(&w.op));
	assert_int_equal(tmo_deadline_ns(tmo_op_deadline(&w.op)), deadline);
	run_all(fx.loop);

	assert_int_equal(w.calls, 1);
	assert_int_equal(w.res, -ETIME);
	assert_on_time(w.seen_at, deadline);
	assert_int_equal(tmo_op_cause(&w.op), TMO_CAUSE_OWN);
	assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, deadline);
	for (int i = 0; i < 3; i++) {
		assert_member(&fx.m[i], -ETIME, TMO_CAUSE_GROUP, deadline);
		assert_ptr_equal(tmo_op_cause_group(&fx.m[i].op), &fx.group);
	}
	assert_closed(&fx);
}

/* The group finishes before the waiting op's deadline: the op gets the group's result. One
 * op waits for a group at a time. */
static void waiting_for_a_group_that_finishes_first(void **state)
{
	struct fixture fx;
	struct test_result w = { 0 }, second = { 0 };

	fx_init(&fx, *state, 2);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_FIRST_DONE, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	add(&fx, reader_of(&fx, 0, 5, fx.t0 + U), TMO_NEVER);
	add(&fx, sleeper(&fx, 1, fx.t0 + 5 * U), TMO_NEVER);
	tmo_prep_group(&w.op, &fx.group);
	assert_int_equal(tmo_op_start(fx.loop, &w.op, tmo_at(fx.t0 + 3 * U), test_record), 0);
	tmo_prep_group(&second.op, &fx.group);
	assert_int_equal(tmo_op_start(fx.loop, &second.op, TMO_NEVER, test_record), -EBUSY);
	run_all(fx.loop);

	assert_int_equal(w.calls, 1);
	assert_int_equal(w.res, 5);
	assert_int_equal(tmo_op_cause(&w.op), TMO_CAUSE_NONE);
	assert_on_time(w.seen_at, fx.t0 + U);
	assert_int_equal(second.calls, 0);
	assert_done(&fx, 5, TMO_GROUP_MET, fx.t0 + U);
	assert_member(&fx.m[1], -ECANCELED, TMO_CAUSE_GROUP, fx.t0 + U);
	assert_closed(&fx);
}

/* ---- cancel ------------------------------------------------------------------------------ */

static void cancel_now(struct action *a)
{
	struct fixture *fx = a->fx;

	a->got[0] = tmo_group_cancel(&fx->group);
	a->got[1] = tmo_group_cancel(&fx->group); /* already under way */
	a->got[2] = fx->done_calls;               /* on_done comes from the loop, later */
}

/* tmo_group_cancel from a callback at 1 s, with a member still waiting for a slot. */
static void cancel_cuts_members_with_ecanceled(void **state)
{
	struct fixture fx;
	struct action c = { 0 };

	fx_init(&fx, *state, 4);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	o.max_running = 3;
	o.deadline = tmo_at(fx.t0 + 4 * U);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 3; i++)
		add(&fx, sleeper(&fx, i, fx.t0 + 5 * U), TMO_NEVER);
	reader(&fx, 3); /* waits for a slot; its data shows whether it started */
	test_write_all(fx.m[3].fds[1], "xy", 2);
	add(&fx, &fx.m[3].op, TMO_NEVER);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	int64_t when = fx.t0 + U;
	at(fx.loop, &c, when, cancel_now, &fx);
	run_all(fx.loop);

	assert_int_equal(c.got[0], 0);
	assert_int_equal(c.got[1], -EALREADY);
	assert_int_equal(c.got[2], 0);
	assert_done(&fx, -ECANCELED, TMO_GROUP_CANCELLED, when);
	assert_int_equal(fx.pending_at_done, 0);
	for (int i = 0; i < 4; i++) {
		assert_member(&fx.m[i], -ECANCELED, TMO_CAUSE_GROUP, when);
		assert_ptr_equal(tmo_op_cause_group(&fx.m[i].op), &fx.group);
	}
	assert_int_equal(test_readable(fx.m[3].fds[0]), 2); /* never started */
	assert_int_equal(tmo_group_cancel(&fx.group), -EALREADY);
	assert_int_equal(tmo_group_seal(&fx.group), -EALREADY);
	assert_int_equal(tmo_group_add(&fx.group, sleeper(&fx, 4, 0), TMO_NEVER), -EPIPE);
	assert_closed(&fx);
}

/* Cancel from outside the loop: decided by the call, nothing fires from it; on_done and the
 * members' callbacks come from the loop. */
static void cancel_before_running_fires_from_the_loop(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 2);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	add(&fx, sleeper(&fx, 0, fx.t0 + 5 * U), TMO_NEVER);
	add(&fx, reader(&fx, 1), TMO_NEVER);
	int64_t when = tmo_now();
	assert_int_equal(tmo_group_cancel(&fx.group), 0);
	assert_int_equal(fx.done_calls, 0);
	assert_int_equal(tmo_group_reason(&fx.group), TMO_GROUP_CANCELLED);
	assert_int_equal(tmo_group_cancel(&fx.group), -EALREADY);
	run_all(fx.loop);

	assert_done(&fx, -ECANCELED, TMO_GROUP_CANCELLED, when);
	assert_member(&fx.m[0], -ECANCELED, TMO_CAUSE_GROUP, when);
	assert_member(&fx.m[1], -ECANCELED, TMO_CAUSE_GROUP, when);
	assert_closed(&fx);
}

/* Cancel with LEAVE_PENDING: the group finishes, its members run on. */
static void cancel_leaves_pending_members_running(void **state)
{
	struct fixture fx;
	struct action c = { 0 };

	fx_init(&fx, *state, 3);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_LEAVE_PENDING);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 3; i++)
		add(&fx, reader_of(&fx, i, (uint32_t)(i + 1), fx.t0 + (i + 1) * U), TMO_NEVER);
	at(fx.loop, &c, fx.t0 + 15 * U / 10, cancel_now, &fx);
	run_all(fx.loop);

	assert_int_equal(c.got[0], 0);
	assert_done(&fx, -ECANCELED, TMO_GROUP_CANCELLED, fx.t0 + 15 * U / 10);
	assert_int_equal(fx.done_count_at_done, 1);
	assert_int_equal(fx.pending_at_done, 2);
	for (int i = 0; i < 3; i++)
		assert_member(&fx.m[i], i + 1, TMO_CAUSE_NONE, fx.t0 + (i + 1) * U);
	assert_closed(&fx);
}

/* Cancelling the op waiting for a group cancels the group. */
struct waiter_cancel {
	struct action act;
	struct tmo_op *waiter;
	int32_t rc;
};

static void cancel_the_waiter(struct tmo_op *op, int32_t res)
{
	struct waiter_cancel *wc = (struct waiter_cancel *)op;

	wc->act.calls++;
	if (res == 0)
		wc->rc = tmo_op_cancel(wc->waiter);
}

static void cancelling_the_waiting_op_cancels_the_group(void **state)
{
	struct fixture fx;
	struct test_result w = { 0 };
	struct waiter_cancel wc;

	memset(&wc, 0, sizeof(wc));
	fx_init(&fx, *state, 2);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	add(&fx, sleeper(&fx, 0, fx.t0 + 5 * U), TMO_NEVER);
	add(&fx, reader(&fx, 1), TMO_NEVER);
	tmo_prep_group(&w.op, &fx.group);
	assert_int_equal(tmo_op_start(fx.loop, &w.op, TMO_NEVER, test_record), 0);
	int64_t when = fx.t0 + U;
	wc.waiter = &w.op;
	tmo_prep_sleep(&wc.act.op, tmo_at(when));
	assert_int_equal(tmo_op_start(fx.loop, &wc.act.op, TMO_NEVER, cancel_the_waiter), 0);
	run_all(fx.loop);

	assert_int_equal(wc.rc, 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.res, -ECANCELED);
	assert_int_equal(tmo_op_cause(&w.op), TMO_CAUSE_CANCEL);
	assert_on_time(w.seen_at, when);
	assert_done(&fx, -ECANCELED, TMO_GROUP_CANCELLED, when);
	for (int i = 0; i < 2; i++) {
		assert_member(&fx.m[i], -ECANCELED, TMO_CAUSE_GROUP, when);
		assert_ptr_equal(tmo_op_cause_group(&fx.m[i].op), &fx.group);
	}
	assert_closed(&fx);
}

/* ---- groups inside scopes ---------------------------------------------------------------- */

static void scope_deadline_cuts_the_groups_members(void **state)
{
	struct fixture fx;
	struct tmo_scope scope = { 0 };

	fx_init(&fx, *state, 3);
	int64_t deadline = fx.t0 + 2 * U;
	assert_int_equal(tmo_scope_enter(fx.loop, &scope, tmo_at(deadline), 0), 0);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 3; i++)
		add(&fx, sleeper(&fx, i, fx.t0 + 5 * U), TMO_NEVER);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_true(tmo_scope_busy(&scope));
	run_all(fx.loop);

	for (int i = 0; i < 3; i++) {
		assert_member(&fx.m[i], -ETIME, TMO_CAUSE_SCOPE, deadline);
		assert_ptr_equal(tmo_op_cause_scope(&fx.m[i].op), &scope);
		assert_null(tmo_op_cause_group(&fx.m[i].op));
	}
	assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, deadline);
	assert_true(tmo_scope_expired(&scope));
	assert_false(tmo_scope_busy(&scope));
	assert_closed(&fx);
}

/* A LEAVE_PENDING group finished at 1 s; the scope's deadline at 2 s still cuts what it left
 * running. */
static void scope_deadline_cuts_members_a_finished_group_left_running(void **state)
{
	struct fixture fx;
	struct tmo_scope scope = { 0 };

	fx_init(&fx, *state, 3);
	int64_t deadline = fx.t0 + 2 * U;
	assert_int_equal(tmo_scope_enter(fx.loop, &scope, tmo_at(deadline), 0), 0);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_FIRST_DONE, TMO_GROUP_LEAVE_PENDING);
	fx_group_init(&fx, &o);
	add(&fx, sleeper(&fx, 0, fx.t0 + U), TMO_NEVER);
	add(&fx, sleeper(&fx, 1, fx.t0 + 4 * U), TMO_NEVER);
	add(&fx, sleeper(&fx, 2, fx.t0 + 5 * U), TMO_NEVER);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	run_all(fx.loop);

	assert_done(&fx, 0, TMO_GROUP_MET, fx.t0 + U);
	assert_int_equal(fx.pending_at_done, 2);
	assert_member(&fx.m[0], 0, TMO_CAUSE_NONE, fx.t0 + U);
	for (int i = 1; i < 3; i++) {
		assert_member(&fx.m[i], -ETIME, TMO_CAUSE_SCOPE, deadline);
		assert_ptr_equal(tmo_op_cause_scope(&fx.m[i].op), &scope);
	}
	assert_false(tmo_scope_busy(&scope));
	assert_closed(&fx);
}

/* The usual shape: in a scope, start a group and an op waiting for it. The scope's deadline
 * cuts everything in it, and scope.h says the cause names the scope. */
static void scope_deadline_with_an_op_waiting_for_the_group(void **state)
{
	struct fixture fx;
	struct tmo_scope scope = { 0 };
	struct test_result w = { 0 };

	fx_init(&fx, *state, 3);
	int64_t deadline = fx.t0 + 2 * U;
	assert_int_equal(tmo_scope_enter(fx.loop, &scope, tmo_at(deadline), 0), 0);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	for (int i = 0; i < 3; i++)
		add(&fx, sleeper(&fx, i, fx.t0 + 5 * U), TMO_NEVER);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	tmo_prep_group(&w.op, &fx.group);
	assert_int_equal(tmo_op_start(fx.loop, &w.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	run_all(fx.loop);

	assert_int_equal(w.calls, 1);
	assert_int_equal(w.res, -ETIME);
	assert_on_time(w.seen_at, deadline);
	assert_int_equal(tmo_op_cause(&w.op), TMO_CAUSE_SCOPE);
	assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, deadline);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fx.m[i].res, -ETIME);
		assert_on_time(fx.m[i].seen_at, deadline);
		assert_int_equal(tmo_op_cause(&fx.m[i].op), TMO_CAUSE_SCOPE);
		assert_ptr_equal(tmo_op_cause_scope(&fx.m[i].op), &scope);
	}
	assert_false(tmo_scope_busy(&scope));
	assert_closed(&fx);
}

/* A group started in a scope whose deadline has already passed: nothing in it starts, and the
 * group times out too (group.h: TIMED_OUT when an enclosing scope's deadline passed), from
 * the loop, rather than waiting for ever for a seal. */
static void group_in_an_expired_scope_times_out(void **state)
{
	struct fixture fx;
	struct tmo_scope scope = { 0 };

	fx_init(&fx, *state, 1);
	assert_int_equal(tmo_scope_enter(fx.loop, &scope, tmo_at(fx.t0), 0), 0);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	add(&fx, sleeper(&fx, 0, fx.t0 + 5 * U), TMO_NEVER);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	/* Not sealed: only the scope's deadline can end it. */
	run_all(fx.loop);

	assert_member(&fx.m[0], -ETIME, TMO_CAUSE_SCOPE, fx.t0);
	assert_ptr_equal(tmo_op_cause_scope(&fx.m[0].op), &scope);
	assert_done(&fx, -ETIME, TMO_GROUP_TIMED_OUT, fx.t0);
	assert_false(tmo_scope_busy(&scope));
	assert_closed(&fx);
}

/* ---- bad input --------------------------------------------------------------------------- */

static void never_done(struct tmo_group *group, int32_t res)
{
	(void)group;
	fail_msg("on_done of a refused group fired (res %d)", res);
}

static void bad_input_is_refused_and_changes_nothing(void **state)
{
	struct tmo_loop *loop = *state;
	struct fixture fx;
	struct tmo_group g = { 0 };
	struct tmo_op op;
	struct test_result outside = { 0 };
	struct tmo_group_options o = {
		.deadline = TMO_NEVER,
		.on_done = never_done,
	};

	fx_init(&fx, loop, 2);
	memset(&g, 0, sizeof(g));
	memset(&op, 0, sizeof(op));

	/* init */
	assert_int_equal(tmo_group_init(NULL, &g, &o), -EINVAL);
	assert_int_equal(tmo_group_init(loop, NULL, &o), -EINVAL);
	assert_int_equal(tmo_group_init(loop, &g, NULL), -EINVAL);
	o.on_done = NULL;
	assert_int_equal(tmo_group_init(loop, &g, &o), -EINVAL);
	o.on_done = never_done;
	o.mode = (enum tmo_group_mode)(TMO_GROUP_QUORUM + 1);
	assert_int_equal(tmo_group_init(loop, &g, &o), -EINVAL);
	o.mode = (enum tmo_group_mode)-1;
	assert_int_equal(tmo_group_init(loop, &g, &o), -EINVAL);
	o.mode = TMO_GROUP_ALL;
	o.policy = (enum tmo_group_policy)(TMO_GROUP_LEAVE_PENDING + 1);
	assert_int_equal(tmo_group_init(loop, &g, &o), -EINVAL);
	o.policy = TMO_GROUP_CANCEL_PENDING;
	o.mode = TMO_GROUP_QUORUM;
	o.quorum = 0;
	assert_int_equal(tmo_group_init(loop, &g, &o), -EINVAL);
	o.mode = TMO_GROUP_ALL;
	o.deadline = tmo_at(-1);
	assert_int_equal(tmo_group_init(loop, &g, &o), -EINVAL);
	o.deadline = tmo_in_sec(-1.0);
	assert_int_equal(tmo_group_init(loop, &g, &o), -EINVAL);
	o.deadline = TMO_NEVER;
	struct tmo_loop never_init = { 0 };
	assert_int_equal(tmo_group_init(&never_init, &g, &o), -EINVAL);
	assert_int_equal(tmo_loop_active(loop), 0); /* refused inits left no work behind */

	/* A group never initialised, and NULL, everywhere. */
	tmo_prep_nop(&op);
	assert_int_equal(tmo_group_add(&g, &op, TMO_NEVER), -EINVAL);
	assert_int_equal(tmo_group_seal(&g), -EINVAL);
	assert_int_equal(tmo_group_cancel(&g), -EINVAL);
	assert_int_equal(tmo_group_close(&g), -EINVAL);
	assert_false(tmo_group_busy(&g));
	assert_int_equal(tmo_group_add(NULL, &op, TMO_NEVER), -EINVAL);
	assert_int_equal(tmo_group_seal(NULL), -EINVAL);
	assert_int_equal(tmo_group_cancel(NULL), -EINVAL);
	assert_int_equal(tmo_group_close(NULL), -EINVAL);
	assert_int_equal(tmo_group_reason(NULL), TMO_GROUP_RUNNING);
	assert_int_equal(tmo_group_done_count(NULL), 0);
	assert_int_equal(tmo_group_pending_count(NULL), 0);
	assert_null(tmo_group_done_first(NULL));
	assert_null(tmo_group_done_next(NULL));
	assert_null(tmo_group_first_failure(NULL));
	assert_false(tmo_group_busy(NULL));
	/* Waiting for no group, or one never initialised. */
	tmo_prep_group(&op, NULL);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, test_record), -EINVAL);
	tmo_prep_group(&op, &g);
	assert_int_equal(tmo_op_start(loop, &op, TMO_NEVER, test_record), -EINVAL);
	assert_int_equal(tmo_loop_active(loop), 0);

	/* add */
	struct tmo_group_options fo = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &fo);
	assert_int_equal(tmo_group_add(&fx.group, NULL, TMO_NEVER), -EINVAL);
	memset(&op, 0, sizeof(op));
	assert_int_equal(tmo_group_add(&fx.group, &op, TMO_NEVER), -EINVAL); /* unprepared */
	tmo_prep_nop(&op);
	assert_int_equal(tmo_group_add(&fx.group, &op, tmo_at(-1)), -EINVAL);
	assert_int_equal(tmo_group_add(&fx.group, &op, tmo_in_ms(-5)), -EINVAL);
	tmo_prep_sleep(&outside.op, tmo_at(fx.t0 + 5 * U));
	assert_int_equal(tmo_op_start(loop, &outside.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_group_add(&fx.group, &outside.op, TMO_NEVER), -EBUSY); /* active */
	add(&fx, sleeper(&fx, 0, fx.t0 + 5 * U), TMO_NEVER);
	assert_int_equal(tmo_group_add(&fx.group, &fx.m[0].op, TMO_NEVER), -EBUSY); /* twice */
	assert_int_equal(tmo_group_pending_count(&fx.group), 1);
	assert_int_equal(tmo_group_done_count(&fx.group), 0);
	assert_int_equal(tmo_loop_active(loop), 3); /* the group, its member, the outside op */

	/* close while pending, seal twice, add after seal */
	assert_int_equal(tmo_group_close(&fx.group), -EBUSY);
	assert_true(tmo_group_busy(&fx.group));
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	assert_int_equal(tmo_group_seal(&fx.group), -EALREADY);
	assert_int_equal(tmo_group_add(&fx.group, sleeper(&fx, 1, 0), TMO_NEVER), -EPIPE);
	assert_false(tmo_op_busy(&fx.m[1].op));
	assert_int_equal(tmo_group_close(&fx.group), -EBUSY);

	/* nothing broke: cancel, run, close */
	assert_int_equal(tmo_group_cancel(&fx.group), 0);
	assert_int_equal(tmo_group_close(&fx.group), -EBUSY);
	assert_int_equal(tmo_op_cancel(&outside.op), 0);
	run_all(loop);
	assert_done(&fx, -ECANCELED, TMO_GROUP_CANCELLED, fx.t0);
	assert_int_equal(fx.m[0].res, -ECANCELED);
	assert_int_equal(fx.m[1].calls, 0);
	assert_int_equal(outside.res, -ECANCELED);
	assert_int_equal(tmo_group_cancel(&fx.group), -EALREADY);
	assert_int_equal(tmo_group_seal(&fx.group), -EALREADY);
	assert_int_equal(tmo_group_add(&fx.group, sleeper(&fx, 1, 0), TMO_NEVER), -EPIPE);
	assert_int_equal(tmo_group_close(&fx.group), 0);
	assert_int_equal(tmo_group_close(&fx.group), -EINVAL);
	assert_int_equal(tmo_group_add(&fx.group, &fx.m[1].op, TMO_NEVER), -EINVAL);
	assert_int_equal(tmo_group_seal(&fx.group), -EINVAL);
	assert_int_equal(tmo_group_cancel(&fx.group), -EINVAL);
	assert_false(tmo_group_busy(&fx.group));
	assert_int_equal(tmo_loop_active(loop), 0);
	fx_close(&fx);
}

/* A group on another loop cannot be waited for from this one. */
static void waiting_for_a_group_of_another_loop_is_refused(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_loop other;
	struct fixture fx;
	struct test_result w = { 0 };

	assert_int_equal(tmo_loop_init(&other, NULL), 0);
	fx_init(&fx, &other, 0);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	tmo_prep_group(&w.op, &fx.group);
	assert_int_equal(tmo_op_start(loop, &w.op, TMO_NEVER, test_record), -EINVAL);
	assert_int_equal(tmo_loop_active(loop), 0);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	assert_int_equal(tmo_loop_run_until(&other, tmo_in_ns(20 * U)), 0);
	assert_int_equal(fx.done_calls, 1);
	assert_int_equal(tmo_group_close(&fx.group), 0);
	assert_int_equal(tmo_loop_close(&other), 0);
}

/* group.h: tmo_group_init returns -EBUSY while the group is still busy. */
static void init_on_a_busy_group_is_refused(void **state)
{
	struct fixture fx;

	fx_init(&fx, *state, 1);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	add(&fx, sleeper(&fx, 0, fx.t0 + U), TMO_NEVER);
	/* If this were accepted, the live group would be wiped under its pending member. A
	 * failure here leaves the loop with work it cannot finish (teardown reports it). */
	assert_int_equal(tmo_group_init(fx.loop, &fx.group, &o), -EBUSY);
	assert_int_equal(tmo_group_pending_count(&fx.group), 1);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);
	assert_done(&fx, 0, TMO_GROUP_MET, fx.t0 + U);
	/* Closed: the struct may be initialised again. */
	assert_int_equal(tmo_group_close(&fx.group), 0);
	fx_group_init(&fx, &o);
	assert_int_equal(tmo_group_cancel(&fx.group), 0);
	run_all(fx.loop);
	assert_int_equal(tmo_group_close(&fx.group), 0);
}

/* A closed group is the caller's again: an op cannot wait for it. */
static void waiting_for_a_closed_group_is_refused(void **state)
{
	struct fixture fx;
	struct test_result w = { 0 };

	fx_init(&fx, *state, 0);
	struct tmo_group_options o = fx_options(&fx, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&fx, &o);
	assert_int_equal(tmo_group_seal(&fx.group), 0);
	run_all(fx.loop);
	assert_int_equal(fx.done_calls, 1);
	assert_int_equal(tmo_group_close(&fx.group), 0);
	/* TMO_NEVER: if it were accepted, nothing in the loop would reach the closed group. */
	tmo_prep_group(&w.op, &fx.group);
	assert_int_equal(tmo_op_start(fx.loop, &w.op, TMO_NEVER, test_record), -EINVAL);
	assert_int_equal(fx.done_calls, 1);
}

/* Waiting for a group that already finished completes with its result at once, and leaves
 * nothing behind in the container the waiting op is in (here, another group). */
static void waiting_for_a_finished_group_as_a_member(void **state)
{
	struct fixture done, outer;

	fx_init(&done, *state, 0);
	fx_init(&outer, *state, 1);
	struct tmo_group_options o = fx_options(&done, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&done, &o);
	assert_int_equal(tmo_group_seal(&done.group), 0);
	run_all(done.loop);
	assert_int_equal(done.done_calls, 1);
	assert_false(tmo_group_busy(&done.group));

	o = fx_options(&outer, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&outer, &o);
	tmo_prep_group(&outer.m[0].op, &done.group);
	add(&outer, &outer.m[0].op, TMO_NEVER);
	assert_int_equal(tmo_group_seal(&outer.group), 0);
	/* Bounded: if the outer group never lets go, run would wait for ever. */
	int left = tmo_loop_run_until(outer.loop, tmo_at(outer.t0 + 5 * U));
	assert_int_equal(outer.m[0].calls, 1);
	assert_int_equal(outer.m[0].res, 0);
	assert_int_equal(outer.done_calls, 1);
	assert_int_equal(outer.done_res, 0);
	assert_false(tmo_group_busy(&outer.group));
	assert_int_equal(left, 0);
	assert_int_equal(tmo_group_close(&outer.group), 0);
	assert_int_equal(tmo_group_close(&done.group), 0);
}

/* The same from inside a scope: the scope must not stay busy for ever. */
static void waiting_for_a_finished_group_in_a_scope(void **state)
{
	struct fixture done;
	struct tmo_scope scope = { 0 };
	struct test_result w = { 0 };

	fx_init(&done, *state, 0);
	struct tmo_group_options o = fx_options(&done, TMO_GROUP_ALL, TMO_GROUP_CANCEL_PENDING);
	fx_group_init(&done, &o);
	assert_int_equal(tmo_group_seal(&done.group), 0);
	run_all(done.loop);
	assert_false(tmo_group_busy(&done.group));

	assert_int_equal(tmo_scope_enter(done.loop, &scope, TMO_NEVER, 0), 0);
	tmo_prep_group(&w.op, &done.group);
	assert_int_equal(tmo_op_start(done.loop, &w.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(tmo_loop_run_until(done.loop, tmo_at(done.t0 + 5 * U)), 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.res, 0);
	assert_false(tmo_scope_busy(&scope));
	assert_int_equal(tmo_group_close(&done.group), 0);
}

/*
 * A group told to wait for itself (its own waiter added as its member) is nonsense; it must
 * be refused, or at worst end at the group's deadline, never crash. Run in a child process so
 * that a crash fails this test only.
 */
static void quiet_done(struct tmo_group *group, int32_t res)
{
	(void)group;
	(void)res;
}

static int self_wait_child(void)
{
	struct tmo_loop loop;
	struct tmo_group g = { 0 };
	struct tmo_op sleeper_op, w;

	alarm(5);
	if (tmo_loop_init(&loop, NULL))
		return 10;
	memset(&g, 0, sizeof(g));
	memset(&sleeper_op, 0, sizeof(sleeper_op));
	memset(&w, 0, sizeof(w));
	struct tmo_group_options o = {
		.deadline = tmo_in_ns(U),
		.on_done = quiet_done,
	};
	if (tmo_group_init(&loop, &g, &o))
		return 11;
	tmo_prep_sleep(&sleeper_op, tmo_in_ns(5 * U));
	if (tmo_group_add(&g, &sleeper_op, TMO_NEVER))
		return 12;
	tmo_prep_group(&w, &g);
	int rc = tmo_group_add(&g, &w, TMO_NEVER);
	if (rc == 0 && tmo_op_busy(&w) == false)
		return 13;
	if (tmo_loop_run_until(&loop, tmo_in_ns(20 * U)) != 0)
		return 14;
	if (tmo_group_reason(&g) != TMO_GROUP_TIMED_OUT)
		return 15;
	if (tmo_group_close(&g) || tmo_loop_close(&loop))
		return 16;
	return 0;
}

static void a_group_waiting_for_itself_does_not_crash(void **state)
{
	(void)state;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(self_wait_child());
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("the child died of signal %d", WTERMSIG(status));
	if (WEXITSTATUS(status))
		fail_msg("the child exited with %d (1: a sanitizer report, 10+: a step failed)",
			 WEXITSTATUS(status));
}

/* ---- regressions from review ------------------------------------------------------------ */

struct done_flag {
	int calls;
	int32_t res;
	bool *inside_api; /* set by the test around API calls that must not run callbacks */
	bool fired_inside;
};

static void flag_done(struct tmo_group *group, int32_t res)
{
	struct done_flag *d = group->data;

	d->calls++;
	d->res = res;
	if (d->inside_api && *d->inside_api)
		d->fired_inside = true;
}

static struct tmo_group_options flag_options(struct done_flag *d, enum tmo_group_mode mode)
{
	struct tmo_group_options o = {
		.mode = mode, .deadline = TMO_NEVER, .on_done = flag_done, .data = d,
	};
	return o;
}

/* An op waiting for a group starts at once in a group at its limit (the waited group's members
 * run anyway), and a second op waiting for the same group is refused. */
static void waiting_members_bypass_the_limit(void **state)
{
	struct tmo_loop *loop = *state;
	struct done_flag d1 = { 0 }, d2 = { 0 };
	struct tmo_group g1 = { 0 }, g2 = { 0 };
	struct test_result slow = { 0 }, quick = { 0 }, wait1 = { 0 }, wait2 = { 0 };
	struct tmo_group_options o1 = flag_options(&d1, TMO_GROUP_ALL);
	struct tmo_group_options o2 = flag_options(&d2, TMO_GROUP_ALL);
	int64_t t0 = tmo_now();

	o1.max_running = 1;
	assert_int_equal(tmo_group_init(loop, &g1, &o1), 0);
	assert_int_equal(tmo_group_init(loop, &g2, &o2), 0);
	tmo_prep_sleep(&quick.op, tmo_at(t0 + 50 * MS));
	assert_int_equal(tmo_group_add(&g2, &quick.op, TMO_NEVER), 0);
	assert_int_equal(tmo_group_seal(&g2), 0);
	tmo_prep_sleep(&slow.op, tmo_at(t0 + 150 * MS));
	assert_int_equal(tmo_group_add(&g1, &slow.op, TMO_NEVER), 0); /* fills the limit */
	tmo_prep_group(&wait1.op, &g2);
	assert_int_equal(tmo_group_add(&g1, &wait1.op, TMO_NEVER), 0);
	tmo_prep_group(&wait2.op, &g2);
	assert_int_equal(tmo_group_add(&g1, &wait2.op, TMO_NEVER), -EBUSY); /* one waiter only */
	assert_int_equal(tmo_group_seal(&g1), 0);
	run_all(loop);
	assert_int_equal(d2.calls, 1);
	assert_int_equal(d1.calls, 1);
	assert_int_equal(tmo_op_result(&wait1.op), 0);
	/* g2 finished at 50 ms; g1 had to wait for its slow member only. */
	assert_int_equal(tmo_group_done_count(&g1), 2);
	assert_ptr_equal(tmo_group_done_first(&g1), &wait1.op);
	assert_int_equal(tmo_group_close(&g1), 0);
	assert_int_equal(tmo_group_close(&g2), 0);
}

/* G1 waits for G2 and G2 for G1: refused when the second link is added. */
static void a_cycle_through_waiting_members_is_refused(void **state)
{
	struct tmo_loop *loop = *state;
	struct done_flag d1 = { 0 }, d2 = { 0 };
	struct tmo_group g1 = { 0 }, g2 = { 0 };
	struct tmo_op w12 = { 0 }, w21 = { 0 };
	struct tmo_group_options o1 = flag_options(&d1, TMO_GROUP_ALL);
	struct tmo_group_options o2 = flag_options(&d2, TMO_GROUP_ALL);

	struct test_result busy = { 0 };

	/* G1 at its limit, so that an op waiting for G2 would have to wait for a slot (and was
	 * once not yet linked where the cycle check looked). */
	o1.max_running = 1;
	assert_int_equal(tmo_group_init(loop, &g1, &o1), 0);
	assert_int_equal(tmo_group_init(loop, &g2, &o2), 0);
	tmo_prep_sleep(&busy.op, tmo_in_ms(30));
	assert_int_equal(tmo_group_add(&g1, &busy.op, TMO_NEVER), 0);
	tmo_prep_group(&w12, &g2);
	assert_int_equal(tmo_group_add(&g1, &w12, TMO_NEVER), 0);
	tmo_prep_group(&w21, &g1);
	assert_int_equal(tmo_group_add(&g2, &w21, TMO_NEVER), -EINVAL);
	assert_int_equal(tmo_group_cancel(&g2), 0);
	assert_int_equal(tmo_group_seal(&g1), 0);
	run_all(loop);
	assert_int_equal(d2.res, -ECANCELED);
	assert_int_equal(d1.calls, 1);
	assert_int_equal(tmo_op_result(&w12), -ECANCELED);
	assert_int_equal(tmo_group_close(&g1), 0);
	assert_int_equal(tmo_group_close(&g2), 0);
}

/* on_done comes from the loop only, never from inside tmo_op_start or tmo_op_cancel. */
static void on_done_never_runs_inside_an_api_call(void **state)
{
	struct tmo_loop *loop = *state;
	bool inside = false;
	struct done_flag d = { .inside_api = &inside };
	struct tmo_group g = { 0 };
	struct test_result w = { 0 };
	struct tmo_group_options o = flag_options(&d, TMO_GROUP_ALL);

	/* A waiting op whose deadline has already passed cuts the group... */
	assert_int_equal(tmo_group_init(loop, &g, &o), 0);
	tmo_prep_group(&w.op, &g);
	inside = true;
	assert_int_equal(tmo_op_start(loop, &w.op, tmo_at(tmo_now() - 1), test_record), 0);
	inside = false;
	assert_int_equal(d.calls, 0);
	run_all(loop); /* ...from the loop. */
	assert_int_equal(d.calls, 1);
	assert_false(d.fired_inside);
	assert_int_equal(d.res, -ETIME);
	assert_int_equal(w.res, -ETIME);
	assert_int_equal(tmo_op_cause(&w.op), TMO_CAUSE_OWN);
	assert_int_equal(tmo_group_close(&g), 0);

	/* Cancelling the waiting op likewise. */
	memset(&d, 0, sizeof(d));
	d.inside_api = &inside;
	assert_int_equal(tmo_group_init(loop, &g, &o), 0);
	tmo_prep_group(&w.op, &g);
	assert_int_equal(tmo_op_start(loop, &w.op, TMO_NEVER, test_record), 0);
	inside = true;
	assert_int_equal(tmo_op_cancel(&w.op), 0);
	assert_int_equal(tmo_op_cancel(&w.op), -EALREADY);
	inside = false;
	assert_int_equal(d.calls, 0);
	run_all(loop);
	assert_false(d.fired_inside);
	assert_int_equal(d.res, -ECANCELED);
	assert_int_equal(tmo_op_cause(&w.op), TMO_CAUSE_CANCEL);
	assert_int_equal(tmo_group_close(&g), 0);
}

/* A group created in a scope stays bound by it when the op waiting for it runs elsewhere. */
static void a_waited_group_stays_in_its_scope(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 }, elsewhere = { 0 };
	struct done_flag d = { 0 };
	struct tmo_group g = { 0 };
	struct test_result member = { 0 }, w = { 0 };
	struct tmo_group_options o = flag_options(&d, TMO_GROUP_ALL);
	int64_t deadline = tmo_now() + 50 * MS;

	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(deadline), 0), 0);
	assert_int_equal(tmo_group_init(loop, &g, &o), 0);
	tmo_prep_sleep(&member.op, tmo_in_ms(300));
	assert_int_equal(tmo_group_add(&g, &member.op, TMO_NEVER), 0);
	assert_int_equal(tmo_group_seal(&g), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	/* Waited for from another scope with a later deadline: the group must not move there. */
	assert_int_equal(tmo_scope_enter(loop, &elsewhere, tmo_in_ms(500), 0), 0);
	tmo_prep_group(&w.op, &g);
	assert_int_equal(tmo_op_start(loop, &w.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_scope_exit(&elsewhere), 0);
	run_all(loop);
	assert_false(tmo_scope_expired(&elsewhere));
	assert_int_equal(tmo_op_result(&member.op), -ETIME);
	assert_ptr_equal(tmo_op_cause_scope(&member.op), &scope);
	assert_true(tmo_now() >= deadline);
	assert_true(tmo_scope_expired(&scope));
	assert_false(tmo_scope_busy(&scope));
	assert_int_equal(d.res, -ETIME);
	assert_int_equal(w.res, -ETIME);
	assert_int_equal(tmo_group_close(&g), 0);
}

/* Cancelling the op that waits for a group decides the group as cancelled at once: members
 * completing meanwhile cannot turn it into a success. on_done comes before the waiter's
 * callback. */
struct order_log {
	struct done_flag d;
	int seq, done_seq, waiter_seq;
};

static void logged_done(struct tmo_group *group, int32_t res)
{
	struct order_log *log = group->data;

	flag_done(group, res);
	log->done_seq = ++log->seq;
}

static void logged_waiter(struct tmo_op *op, int32_t res)
{
	struct order_log *log = op->data;

	log->waiter_seq = ++log->seq;
	((struct test_result *)op)->res = res;
}

static void cancelled_waiter_cancels_the_group(void **state)
{
	struct tmo_loop *loop = *state;
	struct order_log log = { 0 };
	struct tmo_group g = { 0 };
	struct test_result m[2] = { 0 }, w = { 0 };
	struct tmo_group_options o = flag_options(&log.d, TMO_GROUP_ALL);
	char buf[2][4];
	int fds[2];

	o.on_done = logged_done;
	o.data = &log;
	test_pipe(fds);
	assert_int_equal(tmo_group_init(loop, &g, &o), 0);
	for (int i = 0; i < 2; i++) {
		tmo_prep_read(&m[i].op, fds[0], buf[i], sizeof(buf[i]), (uint64_t)-1);
		assert_int_equal(tmo_group_add(&g, &m[i].op, TMO_NEVER), 0);
	}
	assert_int_equal(tmo_group_seal(&g), 0);
	w.op.data = &log;
	tmo_prep_group(&w.op, &g);
	assert_int_equal(tmo_op_start(loop, &w.op, TMO_NEVER, logged_waiter), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_NOWAIT), 4);
	assert_int_equal(tmo_op_cancel(&w.op), 0);
	run_all(loop);
	assert_int_equal(log.d.calls, 1);
	assert_int_equal(log.d.res, -ECANCELED);
	assert_int_equal(tmo_group_reason(&g), TMO_GROUP_CANCELLED);
	assert_int_equal(w.res, -ECANCELED);
	assert_int_equal(tmo_op_cause(&w.op), TMO_CAUSE_CANCEL);
	assert_true(log.done_seq < log.waiter_seq);
	for (int i = 0; i < 2; i++)
		assert_int_equal(tmo_op_result(&m[i].op), -ECANCELED);
	assert_int_equal(tmo_group_close(&g), 0);
	close(fds[0]);
	close(fds[1]);
}

/* With LEAVE_PENDING, the waiter's own deadline ends the wait, not the members. */
static void waiter_deadline_leaves_pending_members_running(void **state)
{
	struct tmo_loop *loop = *state;
	struct done_flag d = { 0 };
	struct tmo_group g = { 0 };
	struct test_result member = { 0 }, w = { 0 };
	struct tmo_group_options o = flag_options(&d, TMO_GROUP_ALL);
	int64_t t0 = tmo_now();

	o.policy = TMO_GROUP_LEAVE_PENDING;
	assert_int_equal(tmo_group_init(loop, &g, &o), 0);
	tmo_prep_sleep(&member.op, tmo_at(t0 + 100 * MS));
	assert_int_equal(tmo_group_add(&g, &member.op, TMO_NEVER), 0);
	assert_int_equal(tmo_group_seal(&g), 0);
	tmo_prep_group(&w.op, &g);
	assert_int_equal(tmo_op_start(loop, &w.op, tmo_at(t0 + 20 * MS), test_record), 0);
	run_all(loop);
	assert_int_equal(w.res, -ETIME);
	assert_on_time(w.seen_at, t0 + 20 * MS);
	assert_int_equal(tmo_op_cause(&w.op), TMO_CAUSE_OWN);
	assert_int_equal(d.res, -ETIME);
	assert_int_equal(tmo_op_result(&member.op), 0); /* left running, finished on its own */
	assert_int_equal(tmo_op_cause(&member.op), TMO_CAUSE_NONE);
	assert_true(tmo_now() >= t0 + 100 * MS);
	assert_int_equal(tmo_group_close(&g), 0);
}

/* tmo_group_cancel decides at once: a member completing in the same loop iteration (a nop)
 * cannot make the group MET afterwards. */
static void cancel_decides_before_a_racing_completion(void **state)
{
	struct tmo_loop *loop = *state;
	struct done_flag d = { 0 };
	struct tmo_group g = { 0 };
	struct tmo_op nop = { 0 };
	struct tmo_group_options o = flag_options(&d, TMO_GROUP_FIRST_DONE);

	assert_int_equal(tmo_group_init(loop, &g, &o), 0);
	tmo_prep_nop(&nop);
	assert_int_equal(tmo_group_add(&g, &nop, TMO_NEVER), 0);
	assert_int_equal(tmo_group_cancel(&g), 0);
	assert_int_equal(tmo_group_cancel(&g), -EALREADY);
	assert_int_equal(tmo_group_reason(&g), TMO_GROUP_CANCELLED);
	assert_int_equal(d.calls, 0); /* on_done comes from the loop */
	run_all(loop);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.res, -ECANCELED);
	assert_int_equal(tmo_group_reason(&g), TMO_GROUP_CANCELLED);
	assert_int_equal(tmo_group_close(&g), 0);
}

/* ---- on_done after the members it cut (issue: on_done came before their on_member) -------- */

struct order_rec {
	struct tmo_group group;
	struct tmo_op ops[3];
	int member_calls;
	int done_calls;
	int members_in_at_done;   /* on_member calls seen when on_done ran */
	uint32_t pending_at_done;
	int member_after_done;    /* on_member calls after on_done: must be 0 */
};

static void order_on_member(struct tmo_group *group, struct tmo_op *op, int32_t res)
{
	struct order_rec *r = group->data;

	(void)op;
	(void)res;
	r->member_calls++;
	if (r->done_calls)
		r->member_after_done++;
}

static void order_on_done(struct tmo_group *group, int32_t res)
{
	struct order_rec *r = group->data;

	(void)res;
	r->done_calls++;
	r->members_in_at_done = r->member_calls;
	r->pending_at_done = tmo_group_pending_count(group);
}

/* One quick member and two slow ones, the group finished by `how`: its deadline, FIRST_DONE
 * met, or tmo_group_cancel() from the quick member's completion. */
enum order_how { ORDER_DEADLINE, ORDER_FIRST_DONE, ORDER_CANCEL };

static void order_cancel_hook(struct tmo_group *group, struct tmo_op *op, int32_t res)
{
	order_on_member(group, op, res);
	struct order_rec *r = group->data;
	if (r->member_calls == 1)
		assert_int_equal(tmo_group_cancel(group), 0);
}

static void run_order_case(struct tmo_loop *loop, enum order_how how)
{
	struct order_rec r = { 0 };
	struct tmo_group_options opt = {
		.mode = how == ORDER_FIRST_DONE ? TMO_GROUP_FIRST_DONE : TMO_GROUP_ALL,
		.policy = TMO_GROUP_CANCEL_PENDING,
		.deadline = how == ORDER_DEADLINE ? tmo_in_ms(60) : TMO_NEVER,
		.on_done = order_on_done,
		.on_member = how == ORDER_CANCEL ? order_cancel_hook : order_on_member,
		.data = &r,
	};

	assert_int_equal(tmo_group_init(loop, &r.group, &opt), 0);
	assert_int_equal(tmo_prep_sleep(&r.ops[0], tmo_in_ms(10)), 0);
	assert_int_equal(tmo_prep_sleep(&r.ops[1], tmo_in_ms(5000)), 0);
	assert_int_equal(tmo_prep_sleep(&r.ops[2], tmo_in_ms(5000)), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(tmo_group_add(&r.group, &r.ops[i], TMO_NEVER), 0);
	assert_int_equal(tmo_group_seal(&r.group), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);

	assert_int_equal(r.done_calls, 1);
	assert_int_equal(r.member_calls, 3);
	assert_int_equal(r.members_in_at_done, 3); /* every member's completion came first */
	assert_int_equal(r.pending_at_done, 0);
	assert_int_equal(r.member_after_done, 0);
	assert_int_equal(tmo_group_close(&r.group), 0);
}

static void on_done_comes_after_the_members_it_cut(void **state)
{
	struct tmo_loop *loop = *state;

	run_order_case(loop, ORDER_DEADLINE);
	run_order_case(loop, ORDER_FIRST_DONE);
	run_order_case(loop, ORDER_CANCEL);
}

/* ---- a zero-initialised options struct has no deadline ------------------------------------ */

static void zero_options_mean_no_deadline(void **state)
{
	struct tmo_loop *loop = *state;
	struct order_rec r = { 0 };
	struct tmo_group_options opt = { 0 }; /* every field zero, as a new user writes it */

	opt.on_done = order_on_done;
	opt.on_member = order_on_member;
	opt.data = &r;
	assert_true(tmo_deadline_is_never(opt.deadline));
	assert_int_equal(tmo_group_init(loop, &r.group, &opt), 0);
	assert_int_equal(tmo_prep_sleep(&r.ops[0], tmo_in_ms(30)), 0);
	assert_int_equal(tmo_group_add(&r.group, &r.ops[0], (tmo_deadline){ 0 }), 0);
	assert_int_equal(tmo_group_seal(&r.group), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	/* Before: a zero group deadline meant "already passed" and cut the member at once. */
	assert_int_equal(tmo_op_result(&r.ops[0]), 0);
	assert_int_equal(tmo_group_reason(&r.group), TMO_GROUP_MET);
	assert_int_equal(r.done_calls, 1);
	assert_int_equal(tmo_group_close(&r.group), 0);
}

/* ---- names for logs ----------------------------------------------------------------------- */

static void group_enums_have_names(void **state)
{
	(void)state;
	assert_string_equal(tmo_group_reason_name(TMO_GROUP_TIMED_OUT), "timed_out");
	assert_string_equal(tmo_group_reason_name(TMO_GROUP_MET), "met");
	assert_string_equal(tmo_group_reason_name(TMO_GROUP_RUNNING), "running");
	assert_string_equal(tmo_group_reason_name(TMO_GROUP_UNREACHABLE), "unreachable");
	assert_string_equal(tmo_group_reason_name(TMO_GROUP_CANCELLED), "cancelled");
	assert_string_equal(tmo_group_mode_name(TMO_GROUP_FIRST_DONE), "first_done");
	assert_string_equal(tmo_group_mode_name(TMO_GROUP_QUORUM), "quorum");
	assert_string_equal(tmo_group_policy_name(TMO_GROUP_LEAVE_PENDING), "leave_pending");
	assert_string_equal(tmo_cause_name(TMO_CAUSE_GROUP), "group");
	/* Out of range: a string, never NULL. */
	assert_string_equal(tmo_group_reason_name((enum tmo_group_reason)99), "unknown");
	assert_string_equal(tmo_group_mode_name((enum tmo_group_mode)-1), "unknown");
	assert_string_equal(tmo_group_policy_name((enum tmo_group_policy)2), "unknown");
}

/* ---- a completed member stays the group's until it is closed ------------------------------ */

static void completed_member_is_refused_until_the_group_is_closed(void **state)
{
	struct tmo_loop *loop = *state;
	struct order_rec r = { 0 }, r2 = { 0 };
	struct tmo_group_options opt = { .on_done = order_on_done, .on_member = order_on_member,
					 .data = &r };

	assert_int_equal(tmo_group_init(loop, &r.group, &opt), 0);
	assert_int_equal(tmo_prep_nop(&r.ops[0]), 0);
	assert_int_equal(tmo_group_add(&r.group, &r.ops[0], TMO_NEVER), 0);
	/* ops[1] must still run when ops[0] is in: as long as the tolerance, whatever the load. */
	assert_int_equal(tmo_prep_sleep(&r.ops[1], tmo_in_ns(test_tolerance_ns())), 0);
	assert_int_equal(tmo_group_add(&r.group, &r.ops[1], TMO_NEVER), 0);
	while (r.member_calls < 1)
		assert_true(tmo_loop_run(loop, TMO_RUN_ONCE) > 0);
	assert_true(tmo_op_busy(&r.ops[1]));
	/* ops[0] is in the done set, ops[1] still runs: before, adding ops[0] again linked it
	 * into the waiting queue through the same field and the group restarted members it had
	 * finished, over and over (found by fuzz_api). */
	assert_false(tmo_op_busy(&r.ops[0]));
	assert_int_equal(tmo_group_add(&r.group, &r.ops[0], TMO_NEVER), -EBUSY);
	assert_int_equal(tmo_prep_nop(&r.ops[0]), -EBUSY);
	assert_int_equal(tmo_op_start(loop, &r.ops[0], TMO_NEVER, test_record), -EBUSY);
	struct tmo_group_options opt2 = { .on_done = order_on_done, .on_member = order_on_member,
					  .data = &r2 };
	assert_int_equal(tmo_group_init(loop, &r2.group, &opt2), 0);
	assert_int_equal(tmo_group_add(&r2.group, &r.ops[0], TMO_NEVER), -EBUSY);
	assert_int_equal(tmo_group_seal(&r.group), 0);
	assert_int_equal(tmo_group_seal(&r2.group), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.member_calls, 2); /* one per add, no more */
	assert_int_equal(r.done_calls, 1);
	assert_ptr_equal(tmo_group_done_first(&r.group), &r.ops[0]);
	assert_ptr_equal(tmo_group_done_next(&r.ops[0]), &r.ops[1]);
	assert_null(tmo_group_done_next(&r.ops[1]));

	/* Closed: the members are the caller's again. */
	assert_int_equal(tmo_group_close(&r.group), 0);
	assert_int_equal(tmo_prep_nop(&r.ops[0]), 0);
	assert_int_equal(tmo_group_add(&r2.group, &r.ops[0], TMO_NEVER), -EPIPE); /* sealed */
	assert_int_equal(tmo_group_close(&r2.group), 0);
	assert_int_equal(tmo_group_init(loop, &r2.group, &opt2), 0);
	assert_int_equal(tmo_group_add(&r2.group, &r.ops[0], TMO_NEVER), 0);
	assert_int_equal(tmo_group_seal(&r2.group), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r2.member_calls, 1);
	assert_int_equal(tmo_group_close(&r2.group), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_loop_setup, test_loop_teardown)
/* The same scenario with every op deadline kept by the loop (TMO_DEADLINES_LOOP). */
#define TL(f) { #f "_loop_deadlines", f, test_loop_setup_loop_deadlines, test_loop_teardown, NULL }
	const struct CMUnitTest tests[] = {
		T(gather_times_out_at_the_group_deadline),
		T(gather_with_a_deadline_on_one_member),
		T(group_deadline_already_passed),
		T(sealed_group_whose_deadline_passed_times_out),
		T(on_done_comes_after_the_members_it_cut),
		TL(on_done_comes_after_the_members_it_cut),
		T(zero_options_mean_no_deadline),
		T(group_enums_have_names),
		T(completed_member_is_refused_until_the_group_is_closed),
		T(empty_sealed_group_finishes_from_the_loop),
		T(first_done_leaves_the_rest_running),
		T(first_success_waits_past_failures),
		T(first_error_finishes_at_the_first_failure),
		T(first_error_without_errors_finishes_when_all_done),
		T(all_finishes_once_sealed_and_all_done),
		T(quorum_finishes_at_the_third_success),
		T(quorum_unreachable_after_three_failures),
		T(wait_with_a_deadline_leaves_the_rest_running),
		T(wait_with_a_deadline_lets_queued_members_run),
		T(done_list_and_on_member_follow_completion_order),
		T(waiting_members_bypass_the_limit),
		T(a_cycle_through_waiting_members_is_refused),
		T(on_done_never_runs_inside_an_api_call),
		T(a_waited_group_stays_in_its_scope),
		T(cancelled_waiter_cancels_the_group),
		T(waiter_deadline_leaves_pending_members_running),
		T(cancel_decides_before_a_racing_completion),
		T(limit_queues_members_added_over_time),
		T(group_as_a_member_of_another_group),
		T(outer_group_deadline_cuts_the_inner_group),
		T(waiting_for_a_group_with_a_deadline),
		T(waiting_for_a_group_that_finishes_first),
		T(cancel_cuts_members_with_ecanceled),
		T(cancel_before_running_fires_from_the_loop),
		T(cancel_leaves_pending_members_running),
		T(cancelling_the_waiting_op_cancels_the_group),
		T(scope_deadline_cuts_the_groups_members),
		T(scope_deadline_cuts_members_a_finished_group_left_running),
		T(scope_deadline_with_an_op_waiting_for_the_group),
		T(group_in_an_expired_scope_times_out),
		T(bad_input_is_refused_and_changes_nothing),
		T(waiting_for_a_group_of_another_loop_is_refused),
		T(init_on_a_busy_group_is_refused),
		T(waiting_for_a_closed_group_is_refused),
		T(waiting_for_a_finished_group_as_a_member),
		T(waiting_for_a_finished_group_in_a_scope),
		T(a_group_waiting_for_itself_does_not_crash),
		TL(gather_with_a_deadline_on_one_member),
		TL(first_success_waits_past_failures),
		TL(limit_queues_members_added_over_time),
		TL(waiting_for_a_group_with_a_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
