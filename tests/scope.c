/*
 * scope-*: deadlines over a block of work. Expiry cuts what is pending (and keeps what
 * completed), nesting takes the earliest, shield exempts, shift moves the expiry, expired means
 * "this scope's own deadline cut work short", a limit of 0 starts nothing, callbacks keep their
 * scope, bad input is refused. One second of the scenarios is 100 ms here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define MS TMO_NSEC_PER_MSEC

struct reader {
	struct test_result r;
	char buf[16];
};

static void start_read(struct tmo_loop *loop, struct reader *rd, int fd, tmo_deadline deadline)
{
	tmo_prep_read(&rd->r.op, fd, rd->buf, sizeof(rd->buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &rd->r.op, deadline, test_record), 0);
}

static void expiry_cuts_pending_ops_and_keeps_results(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct reader idle[3] = { 0 }, served = { 0 };
	int fds[2], data[2];

	test_pipe(fds);
	test_pipe(data);
	test_write_all(data[1], "done", 4);
	int64_t deadline = tmo_now() + 100 * MS;
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(deadline), 0), 0);
	assert_ptr_equal(tmo_loop_current_scope(loop), &scope);
	for (int i = 0; i < 3; i++)
		start_read(loop, &idle[i], fds[0], TMO_NEVER);
	start_read(loop, &served, data[0], TMO_NEVER);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_null(tmo_loop_current_scope(loop));
	assert_true(tmo_scope_busy(&scope)); /* exited, but its ops are pending */

	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(served.r.res, 4); /* completed before the deadline: kept */
	assert_int_equal(tmo_op_cause(&served.r.op), TMO_CAUSE_NONE);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(idle[i].r.calls, 1);
		assert_int_equal(idle[i].r.res, -ETIME);
		assert_on_time(idle[i].r.seen_at, deadline);
		assert_int_equal(tmo_op_cause(&idle[i].r.op), TMO_CAUSE_SCOPE);
		assert_ptr_equal(tmo_op_cause_scope(&idle[i].r.op), &scope);
	}
	assert_true(tmo_scope_expired(&scope));
	assert_false(tmo_scope_busy(&scope));
	close(fds[0]);
	close(fds[1]);
	close(data[0]);
	close(data[1]);
}

static void inner_ops_own_timeout_does_not_expire_the_scope(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct reader rd = { 0 };
	int fds[2];

	/* scope-inner-timeout: an op's own 0.5 s deadline fires inside a 2 s scope. */
	test_pipe(fds);
	assert_int_equal(tmo_scope_enter_after(loop, &scope, 200 * MS, 0), 0);
	int64_t own = tmo_now() + 50 * MS;
	start_read(loop, &rd, fds[0], tmo_at(own));
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(rd.r.res, -ETIME);
	assert_on_time(rd.r.seen_at, own);
	assert_int_equal(tmo_op_cause(&rd.r.op), TMO_CAUSE_OWN);
	assert_false(tmo_scope_expired(&scope));
	assert_int_equal(tmo_scope_exit(&scope), 0);
	test_sleep_ms(200); /* past the scope's deadline: exited with nothing left, never expires */
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_NOWAIT), 0);
	assert_false(tmo_scope_expired(&scope));
	close(fds[0]);
	close(fds[1]);
}

static void nested_scope_cannot_extend_the_outer(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope outer = { 0 }, inner = { 0 };
	struct reader rd = { 0 };
	int fds[2];

	test_pipe(fds);
	int64_t outer_deadline = tmo_now() + 100 * MS;
	assert_int_equal(tmo_scope_enter(loop, &outer, tmo_at(outer_deadline), 0), 0);
	assert_int_equal(tmo_scope_enter(loop, &inner, tmo_in_ms(300), 0), 0);
	assert_int_equal(tmo_deadline_ns(tmo_scope_effective_deadline(&inner)), outer_deadline);
	start_read(loop, &rd, fds[0], TMO_NEVER);
	assert_int_equal(tmo_scope_exit(&outer), -EINVAL); /* not the innermost */
	assert_int_equal(tmo_scope_exit(&inner), 0);
	assert_int_equal(tmo_scope_exit(&outer), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(rd.r.res, -ETIME);
	assert_on_time(rd.r.seen_at, outer_deadline);
	assert_ptr_equal(tmo_op_cause_scope(&rd.r.op), &outer);
	assert_true(tmo_scope_expired(&outer));
	assert_false(tmo_scope_expired(&inner)); /* the outer one cut the work, not this one */
	close(fds[0]);
	close(fds[1]);
}

static void nested_scope_that_ends_first(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope outer = { 0 }, inner = { 0 };
	struct reader in_inner = { 0 }, in_outer = { 0 };
	int fds[2];

	test_pipe(fds);
	int64_t inner_deadline = tmo_now() + 60 * MS;
	assert_int_equal(tmo_scope_enter(loop, &outer, tmo_in_ms(400), 0), 0);
	start_read(loop, &in_outer, fds[0], tmo_in_ms(150));
	assert_int_equal(tmo_scope_enter(loop, &inner, tmo_at(inner_deadline), 0), 0);
	start_read(loop, &in_inner, fds[0], TMO_NEVER);
	assert_int_equal(tmo_scope_exit(&inner), 0);
	assert_int_equal(tmo_scope_exit(&outer), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_on_time(in_inner.r.seen_at, inner_deadline);
	assert_ptr_equal(tmo_op_cause_scope(&in_inner.r.op), &inner);
	assert_int_equal(tmo_op_cause(&in_outer.r.op), TMO_CAUSE_OWN);
	assert_true(tmo_scope_expired(&inner));
	assert_false(tmo_scope_expired(&outer));
	close(fds[0]);
	close(fds[1]);
}

static void shield_is_exempt_from_the_enclosing_scope(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope outer = { 0 }, shielded = { 0 };
	struct reader exposed = { 0 }, protected_rd = { 0 };
	int fds[2];

	test_pipe(fds);
	int64_t outer_deadline = tmo_now() + 60 * MS;
	int64_t shield_deadline = tmo_now() + 200 * MS;
	assert_int_equal(tmo_scope_enter(loop, &outer, tmo_at(outer_deadline), 0), 0);
	start_read(loop, &exposed, fds[0], TMO_NEVER);
	assert_int_equal(tmo_scope_enter(loop, &shielded, tmo_at(shield_deadline), TMO_SCOPE_SHIELD),
			 0);
	assert_int_equal(tmo_deadline_ns(tmo_scope_effective_deadline(&shielded)), shield_deadline);
	start_read(loop, &protected_rd, fds[0], TMO_NEVER);
	assert_int_equal(tmo_scope_exit(&shielded), 0);
	assert_int_equal(tmo_scope_exit(&outer), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_on_time(exposed.r.seen_at, outer_deadline);
	assert_ptr_equal(tmo_op_cause_scope(&exposed.r.op), &outer);
	/* The shielded op outlived the outer expiry and ended at its own scope's deadline. */
	assert_on_time(protected_rd.r.seen_at, shield_deadline);
	assert_ptr_equal(tmo_op_cause_scope(&protected_rd.r.op), &shielded);
	assert_true(tmo_scope_expired(&outer));
	assert_true(tmo_scope_expired(&shielded));
	close(fds[0]);
	close(fds[1]);
}

static void shift_moves_the_expiry(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct reader rd = { 0 };
	int fds[2];

	/* scope-shift: a 1.5 s scope shifted by +1 s expires at 2.5 s. */
	test_pipe(fds);
	int64_t start = tmo_now();
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(start + 150 * MS), 0), 0);
	start_read(loop, &rd, fds[0], TMO_NEVER);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(tmo_loop_run_until(loop, tmo_at(start + 50 * MS)), 1);
	/* A live scope, exited as a block but with work pending: exit forbids moving it. */
	assert_int_equal(tmo_scope_shift(&scope, 100 * MS), -EINVAL);
	assert_int_equal(tmo_deadline_ns(tmo_scope_deadline(&scope)), start + 150 * MS);
	assert_int_equal(tmo_op_cancel(&rd.r.op), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);

	/* Shifted while entered. */
	start = tmo_now();
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(start + 150 * MS), 0), 0);
	start_read(loop, &rd, fds[0], TMO_NEVER);
	assert_int_equal(tmo_scope_shift(&scope, 100 * MS), 0);
	assert_int_equal(tmo_deadline_ns(tmo_scope_deadline(&scope)), start + 250 * MS);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(rd.r.res, -ETIME);
	assert_on_time(rd.r.seen_at, start + 250 * MS);
	assert_true(tmo_scope_expired(&scope));
	assert_int_equal(tmo_scope_exit(&scope), 0);
	close(fds[0]);
	close(fds[1]);
}

static void shift_at_reschedule_and_earlier(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct reader rd = { 0 };
	int fds[2];

	test_pipe(fds);
	int64_t start = tmo_now();
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(start + 500 * MS), 0), 0);
	start_read(loop, &rd, fds[0], TMO_NEVER);
	/* Earlier, by a negative shift then an absolute move. */
	assert_int_equal(tmo_scope_shift(&scope, -300 * MS), 0);
	assert_int_equal(tmo_scope_shift_at(&scope, tmo_at(start + 80 * MS)), 0);
	assert_int_equal(tmo_scope_shift_at(&scope, TMO_NEVER), -EINVAL);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_on_time(rd.r.seen_at, start + 80 * MS);
	assert_int_equal(tmo_scope_exit(&scope), 0);

	/* reschedule(TMO_NEVER) removes the limit: the op is then ended by a cancel only. */
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_in_ms(50), 0), 0);
	start_read(loop, &rd, fds[0], TMO_NEVER);
	assert_int_equal(tmo_scope_reschedule(&scope, TMO_NEVER), 0);
	assert_int_equal(tmo_scope_remaining(&scope), TMO_NEVER_NS);
	assert_int_equal(tmo_loop_run_until(loop, tmo_in_ms(120)), 1);
	assert_int_equal(rd.r.calls, 1); /* the first read's callback only: still pending */
	assert_false(tmo_scope_expired(&scope));
	assert_int_equal(tmo_op_cancel(&rd.r.op), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(rd.r.res, -ECANCELED);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	close(fds[0]);
	close(fds[1]);
}

static void shift_after_expiry_or_exit_is_refused(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct reader rd = { 0 };
	int fds[2];

	test_pipe(fds);
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_in_ms(30), 0), 0);
	start_read(loop, &rd, fds[0], TMO_NEVER);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_true(tmo_scope_expired(&scope));
	int64_t deadline = tmo_deadline_ns(tmo_scope_deadline(&scope));
	assert_int_equal(tmo_scope_shift(&scope, 1000 * MS), -ETIME);
	assert_int_equal(tmo_scope_shift_at(&scope, tmo_in_ms(1000)), -ETIME);
	assert_int_equal(tmo_scope_reschedule(&scope, TMO_NEVER), -ETIME);
	assert_int_equal(tmo_deadline_ns(tmo_scope_deadline(&scope)), deadline); /* unchanged */
	assert_int_equal(tmo_scope_remaining(&scope), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);

	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_in_ms(1000), 0), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(tmo_scope_shift(&scope, 10 * MS), -EINVAL);
	assert_int_equal(tmo_scope_reschedule(&scope, tmo_at(tmo_now())), -EINVAL);
	close(fds[0]);
	close(fds[1]);
}

static void limit_of_zero_starts_nothing(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct reader rd = { 0 };
	int fds[2];

	test_pipe(fds);
	test_write_all(fds[1], "there", 5);
	assert_int_equal(tmo_scope_enter_after(loop, &scope, 0, 0), 0);
	assert_true(tmo_scope_expired(&scope));
	start_read(loop, &rd, fds[0], TMO_NEVER);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(rd.r.res, -ETIME);
	assert_ptr_equal(tmo_op_cause_scope(&rd.r.op), &scope);
	assert_int_equal(test_readable(fds[0]), 5); /* the read never started */
	close(fds[0]);
	close(fds[1]);
}

/* A callback runs in its op's scope: what it starts joins that scope, even after the block
 * that entered it was exited. */
struct chain {
	struct reader first, second;
	struct tmo_loop *loop;
	int idle_fd;
	struct tmo_scope *seen_scope;
};

static void first_done(struct tmo_op *op, int32_t res)
{
	struct chain *c = op->data;

	test_record(op, res);
	c->seen_scope = tmo_loop_current_scope(c->loop);
	start_read(c->loop, &c->second, c->idle_fd, TMO_NEVER);
}

static void callbacks_keep_their_scope(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct chain c = { .loop = loop };
	int data[2], idle[2];

	test_pipe(data);
	test_pipe(idle);
	c.idle_fd = idle[0];
	test_write_all(data[1], "go", 2);
	int64_t deadline = tmo_now() + 80 * MS;
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(deadline), 0), 0);
	c.first.r.op.data = &c;
	tmo_prep_read(&c.first.r.op, data[0], c.first.buf, sizeof(c.first.buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &c.first.r.op, TMO_NEVER, first_done), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(c.first.r.res, 2);
	assert_ptr_equal(c.seen_scope, &scope);
	assert_int_equal(c.second.r.res, -ETIME);
	assert_on_time(c.second.r.seen_at, deadline);
	assert_ptr_equal(tmo_op_cause_scope(&c.second.r.op), &scope);
	assert_null(tmo_loop_current_scope(loop));
	close(data[0]);
	close(data[1]);
	close(idle[0]);
	close(idle[1]);
}

static void run_once_waits_for_callbacks_after_an_earlier_shift(void **state)
{
	enum { N = 100 };
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct reader *rd = calloc(N, sizeof(*rd));
	int fds[2];

	/* The loop's kernel timer is armed for a deadline 60 s away; moving it earlier sends an
	 * update whose completion wakes the loop with nothing to report. One iteration must still
	 * mean: until a callback ran. */
	test_pipe(fds);
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_in_ms(60000), 0), 0);
	for (int i = 0; i < N; i++)
		start_read(loop, &rd[i], fds[0], TMO_NEVER);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_NOWAIT), N);
	int64_t deadline = tmo_now() + 50 * MS;
	assert_int_equal(tmo_scope_shift_at(&scope, tmo_at(deadline)), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_ONCE), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(rd[i].r.res, -ETIME);
		assert_on_time(rd[i].r.seen_at, deadline);
	}
	assert_int_equal(tmo_scope_exit(&scope), 0);
	free(rd);
	close(fds[0]);
	close(fds[1]);
}

static void loop_close_refuses_while_a_scope_is_entered(void **state)
{
	struct tmo_loop loop;
	struct tmo_scope scope = { 0 };

	assert_int_equal(tmo_loop_init(&loop, NULL), 0);
	assert_int_equal(tmo_scope_enter(&loop, &scope, tmo_in_ms(1000), 0), 0);
	assert_int_equal(tmo_loop_close(&loop), -EBUSY);
	assert_int_equal(tmo_scope_shift(&scope, 5 * MS), 0); /* still fully usable */
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(tmo_loop_close(&loop), 0);
}

static void exit_in_callback(struct tmo_op *op, int32_t res)
{
	struct test_result *r = (struct test_result *)op;

	test_record(op, res);
	r->res = tmo_scope_exit(op->data);
}

/* A callback exits the scope that main code entered (it is the callback's scope): afterwards
 * the loop's current scope is the one outside it, never the exited one. */
static void scope_exited_in_a_callback_is_not_restored(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };
	struct test_result r = { 0 };

	assert_int_equal(tmo_scope_enter(loop, &scope, TMO_NEVER, 0), 0);
	r.op.data = &scope;
	tmo_prep_nop(&r.op);
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, exit_in_callback), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r.res, 0);
	assert_null(tmo_loop_current_scope(loop));
	assert_int_equal(tmo_scope_exit(&scope), -EALREADY);
	assert_false(tmo_scope_busy(&scope));
}

static void properties(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 };

	int64_t before = tmo_now();
	assert_int_equal(tmo_scope_enter_after(loop, &scope, 500 * MS, 0), 0);
	int64_t deadline = tmo_deadline_ns(tmo_scope_deadline(&scope));
	assert_true(deadline >= before + 500 * MS && deadline <= tmo_now() + 500 * MS);
	test_sleep_ms(20);
	assert_true(tmo_scope_elapsed(&scope) >= 20 * MS);
	assert_true(tmo_scope_remaining(&scope) <= 480 * MS);
	assert_true(tmo_scope_remaining(&scope) > 0);
	assert_false(tmo_scope_expired(&scope));
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_false(tmo_scope_busy(&scope));

	assert_int_equal(tmo_scope_enter(loop, &scope, TMO_NEVER, 0), 0);
	assert_int_equal(tmo_scope_remaining(&scope), TMO_NEVER_NS);
	assert_int_equal(tmo_deadline_ns(tmo_scope_effective_deadline(&scope)), TMO_NEVER_NS);
	assert_int_equal(tmo_scope_shift(&scope, 1), -EINVAL); /* nothing to shift */
	assert_int_equal(tmo_scope_exit(&scope), 0);
}

static void bad_input(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_scope scope = { 0 }, other = { 0 };

	assert_int_equal(tmo_scope_enter(NULL, &scope, TMO_NEVER, 0), -EINVAL);
	assert_int_equal(tmo_scope_enter(loop, NULL, TMO_NEVER, 0), -EINVAL);
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(-1), 0), -EINVAL);
	assert_int_equal(tmo_scope_enter(loop, &scope, TMO_NEVER, 0x80), -EINVAL);
	assert_int_equal(tmo_scope_enter_after(loop, &scope, -5, 0), -EINVAL);
	assert_int_equal(tmo_scope_enter_after(loop, &scope, INT64_MAX, 0), -EINVAL);
	assert_null(tmo_loop_current_scope(loop));

	memset(&other, 0, sizeof(other));
	assert_int_equal(tmo_scope_exit(&other), -EINVAL); /* never entered */
	assert_int_equal(tmo_scope_exit(NULL), -EINVAL);

	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_in_ms(1000), 0), 0);
	assert_int_equal(tmo_scope_enter(loop, &scope, TMO_NEVER, 0), -EBUSY); /* on the stack */
	/* Exited but with work pending: still live, re-entering would wipe it. */
	struct test_result pending = { 0 };
	int fds[2];
	test_pipe(fds);
	tmo_prep_read(&pending.op, fds[0], &pending.res, 1, (uint64_t)-1);
	assert_int_equal(tmo_scope_enter(loop, &other, tmo_in_ms(1000), 0), 0);
	assert_int_equal(tmo_op_start(loop, &pending.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_scope_exit(&other), 0);
	assert_true(tmo_scope_busy(&other));
	assert_int_equal(tmo_scope_enter(loop, &other, TMO_NEVER, 0), -EBUSY);
	assert_int_equal(tmo_op_cancel(&pending.op), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_false(tmo_scope_busy(&other));
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(tmo_scope_shift(&scope, INT64_MAX), -EINVAL);
	assert_int_equal(tmo_scope_shift(&scope, -INT64_MAX), -EINVAL);
	assert_int_equal(tmo_scope_shift(NULL, 1), -EINVAL);
	assert_int_equal(tmo_scope_reschedule(&scope, tmo_at(-2)), -EINVAL);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(tmo_scope_exit(&scope), -EALREADY); /* exited twice */
	assert_false(tmo_scope_expired(NULL));
	assert_false(tmo_scope_busy(NULL));
	assert_int_equal(tmo_deadline_ns(tmo_scope_deadline(NULL)), TMO_NEVER_NS);
	assert_null(tmo_loop_current_scope(NULL));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_loop_setup, test_loop_teardown)
	const struct CMUnitTest tests[] = {
		T(expiry_cuts_pending_ops_and_keeps_results),
		T(inner_ops_own_timeout_does_not_expire_the_scope),
		T(nested_scope_cannot_extend_the_outer),
		T(nested_scope_that_ends_first),
		T(shield_is_exempt_from_the_enclosing_scope),
		T(shift_moves_the_expiry),
		T(shift_at_reschedule_and_earlier),
		T(shift_after_expiry_or_exit_is_refused),
		T(limit_of_zero_starts_nothing),
		T(callbacks_keep_their_scope),
		T(run_once_waits_for_callbacks_after_an_earlier_shift),
		cmocka_unit_test(loop_close_refuses_while_a_scope_is_entered),
		T(scope_exited_in_a_callback_is_not_restored),
		T(properties),
		T(bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
