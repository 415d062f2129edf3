/*
 * stream-tick: the periodic tick (tick.h), each test with both mechanisms: the multishot kernel
 * timeout this kernel has, and the re-armed absolute timeout (forced by clearing
 * TMO_FEAT_TIMEOUT_MULTISHOT before the tick starts). Callbacks come on the grid
 * start + n * interval (n: the periods reported so far), never early; a stall is merged into
 * one callback, and the grid does not drift after it nor under callbacks that take a good part
 * of a period; stop (from the callback, from one longer than a period, from outside, from
 * another op's or tick's callback at the moment of an expiry, while the loop is busy for longer
 * than a period every turn) and the kernel's release of the request, restart, -EALREADY,
 * -EBUSY, bad input, the largest intervals, no scope, tmo_loop_close refused; a running tick
 * keeps tmo_loop_run(TMO_RUN_DEFAULT) going; refreshes while a read is pending; the feature bit.
 * Several run in TMO_MODE_LOW_LATENCY too, where the kernel's timeout work waits for the loop
 * thread. Runs that could hang on a tick never released are bounded (run_until, 1 s).
 *
 * One period is U = 150 ms. "Never early" is exact against the time taken just before
 * tmo_tick_start (the tick's own start is at or after it); lateness is within the tolerance of
 * helpers.h. Everything seen inside callbacks is asserted after the loop ran.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

#define MS TMO_NSEC_PER_MSEC
#define U (150 * MS)
#define MAX_CALLS 64

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup_with(void **state, const struct tmo_loop_options *options, bool fallback)
{
	struct tmo_loop *loop = calloc(1, sizeof(*loop));

	if (!loop || tmo_loop_init(loop, options)) {
		free(loop);
		return -1;
	}
	if (fallback)
		tmo__state(loop)->features &= ~(1u << TMO_FEAT_TIMEOUT_MULTISHOT);
	*state = loop;
	return 0;
}

static int setup_multishot(void **state)
{
	return setup_with(state, NULL, false);
}

static int setup_fallback(void **state)
{
	return setup_with(state, NULL, true);
}

static const struct tmo_loop_options loop_deadlines = { .deadlines = TMO_DEADLINES_LOOP };
static const struct tmo_loop_options low_latency = { .mode = TMO_MODE_LOW_LATENCY };

static int setup_multishot_loop_deadlines(void **state)
{
	return setup_with(state, &loop_deadlines, false);
}

static int setup_fallback_loop_deadlines(void **state)
{
	return setup_with(state, &loop_deadlines, true);
}

static int setup_multishot_low_latency(void **state)
{
	return setup_with(state, &low_latency, false);
}

static int setup_fallback_low_latency(void **state)
{
	return setup_with(state, &low_latency, true);
}

static bool is_fallback(struct tmo_loop *loop)
{
	return !tmo_loop_has_feature(loop, TMO_FEAT_TIMEOUT_MULTISHOT);
}

/* A tick and what its callbacks saw. */
struct ticker {
	struct tmo_tick tick;  /* first: a tick pointer is a ticker pointer */
	struct tmo_loop *loop;
	int64_t interval;
	int64_t t0, t1;        /* just before and just after tmo_tick_start */
	int calls;
	int64_t seen[MAX_CALLS];
	uint64_t periods[MAX_CALLS];
	uint64_t cum[MAX_CALLS];     /* periods reported up to and including this call */
	uint64_t sum;
	uint64_t stop_at;      /* stop from the callback once sum >= stop_at (0: never) */
	int stop_ret, stop_again_ret;
	int start_while_running_ret;
	bool busy_after_stop;
	int restart_inside_ret;
	bool stopped;
	int late_calls;        /* callbacks after the stop: must stay 0 */
	int stall_call;        /* 1-based callback that blocks the loop thread (0: none) */
	int64_t stall_ms;
	int64_t stall_end;
	int64_t busy_ms;       /* every callback blocks this long */
};

static void on_tick(struct tmo_tick *tick, uint64_t periods)
{
	struct ticker *k = (struct ticker *)tick;
	int64_t now = tmo_now();

	if (k->stopped) {
		k->late_calls++;
		return;
	}
	k->sum += periods;
	if (k->calls < MAX_CALLS) {
		k->seen[k->calls] = now;
		k->periods[k->calls] = periods;
		k->cum[k->calls] = k->sum;
	}
	k->calls++;
	if (k->calls == 1)
		k->start_while_running_ret = tmo_tick_start(k->loop, tick, U, on_tick);
	if (k->stall_call == k->calls) {
		test_sleep_ms(k->stall_ms);
		k->stall_end = tmo_now();
	}
	if (k->busy_ms)
		test_sleep_ms(k->busy_ms);
	if (k->stop_at && k->sum >= k->stop_at) {
		k->stop_ret = tmo_tick_stop(tick);
		k->stop_again_ret = tmo_tick_stop(tick);
		k->busy_after_stop = tmo_tick_busy(tick);
		/* busy until the callback returns: no restart from inside it */
		k->restart_inside_ret = tmo_tick_start(k->loop, tick, U, on_tick);
		if (k->restart_inside_ret == 0)
			tmo_tick_stop(tick); /* so that a failing test still ends */
		k->stopped = true;
	}
}

static void ticker_reset(struct ticker *k)
{
	struct tmo_tick tick = k->tick;
	struct tmo_loop *loop = k->loop;

	memset(k, 0, sizeof(*k));
	k->tick = tick;
	k->loop = loop;
}

static void ticker_start(struct tmo_loop *loop, struct ticker *k, int64_t interval)
{
	k->loop = loop;
	k->interval = interval;
	k->t0 = tmo_now();
	assert_int_equal(tmo_tick_start(loop, &k->tick, interval, on_tick), 0);
	k->t1 = tmo_now();
}

/*
 * Every callback n: periods >= 1; never before t0 + cum * interval (exact); at most the
 * tolerance after t1 + cum * interval; not lagging: fewer than two more grid points passed
 * than were reported.
 */
static void assert_on_grid(const struct ticker *k)
{
	int n = k->calls < MAX_CALLS ? k->calls : MAX_CALLS;

	for (int i = 0; i < n; i++) {
		int64_t grid_lo = k->t0 + (int64_t)k->cum[i] * k->interval;
		int64_t grid_hi = k->t1 + (int64_t)k->cum[i] * k->interval;
		if (k->periods[i] < 1)
			fail_msg("callback %d: periods %llu", i + 1, (unsigned long long)k->periods[i]);
		if (k->seen[i] < grid_lo)
			fail_msg("callback %d (period %llu) came %.3f ms EARLY", i + 1,
				 (unsigned long long)k->cum[i], (double)(grid_lo - k->seen[i]) / 1e6);
		if (k->seen[i] > grid_hi + test_tolerance_ns())
			fail_msg("callback %d (period %llu) came %.3f ms late", i + 1,
				 (unsigned long long)k->cum[i], (double)(k->seen[i] - grid_hi) / 1e6);
		uint64_t passed = (uint64_t)((k->seen[i] - k->t1) / k->interval);
		if (passed > k->cum[i] + 1)
			fail_msg("callback %d: %llu periods passed, %llu reported", i + 1,
				 (unsigned long long)passed, (unsigned long long)k->cum[i]);
	}
}

/* How late callback i (0-based) came after its grid point. */
static int64_t lateness(const struct ticker *k, int i)
{
	return k->seen[i] - (k->t1 + (int64_t)k->cum[i] * k->interval);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The median lateness of callbacks from..calls-1 stays under a quarter period: on the grid,
 * callbacks come within a millisecond or so of their points, and noise moves few of them. A
 * grid shifted by a stall, or one re-armed from the end of each callback (lateness growing by
 * the callback's duration each period, wrapping when periods merge), has most of them late by
 * a good part of a period.
 */
static void assert_no_drift(const struct ticker *k, int from, const char *what)
{
	int64_t late[MAX_CALLS];
	int n = 0;

	for (int i = from; i < k->calls && i < MAX_CALLS; i++)
		late[n++] = lateness(k, i);
	assert_true(n >= 3);
	qsort(late, (size_t)n, sizeof(late[0]), cmp_i64);
	if (late[n / 2] > k->interval / 4) {
		for (int i = from; i < k->calls && i < MAX_CALLS; i++)
			fprintf(stderr, "callback %d: periods %llu, %.1f ms late\n", i + 1,
				(unsigned long long)k->periods[i], (double)lateness(k, i) / 1e6);
		fail_msg("%s: median lateness %.1f ms: the grid drifted", what,
			 (double)late[n / 2] / 1e6);
	}
}

/* ---- 1. on the grid ----------------------------------------------------------------------- */

static void fires_on_the_grid(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 6 };

	ticker_start(loop, &k, U);
	assert_true(tmo_tick_busy(&k.tick));
	assert_int_equal(tmo_tick_periods(&k.tick), 0);
	assert_int_equal(k.calls, 0); /* the first one interval from now, from the loop */
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	int64_t end = tmo_now();
	assert_true(k.calls >= 1);
	assert_true(k.calls <= 6);
	assert_on_grid(&k);
	assert_true(k.sum >= 6);
	assert_int_equal(tmo_tick_periods(&k.tick), k.sum);
	/* k periods in k * U: the run returned with the sixth */
	assert_on_time(end, k.t0 + 6 * U);
	assert_int_equal(k.start_while_running_ret, -EBUSY);
	assert_int_equal(k.stop_ret, 0);
	assert_int_equal(k.stop_again_ret, -EALREADY);
	assert_true(k.busy_after_stop); /* at least until the callback returns */
	assert_int_equal(k.restart_inside_ret, -EBUSY);
	assert_int_equal(k.late_calls, 0);
	assert_false(tmo_tick_busy(&k.tick));
	assert_int_equal(tmo_loop_active(loop), 0);
}

/* A 1 µs tick (the smallest interval) stopped in its first callback. */
static void smallest_interval_stops_cleanly(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 1 };

	ticker_start(loop, &k, TMO_NSEC_PER_USEC);
	/* bounded: a tick the kernel never lets go would keep the loop running for ever */
	int left = tmo_loop_run_until(loop, tmo_in_ms(1000));
	if (left != 0 || tmo_tick_busy(&k.tick))
		fail_msg("1 s after the stop: %d active, tick busy %d, %d callbacks", left,
			 tmo_tick_busy(&k.tick), k.calls);
	assert_int_equal(k.calls, 1);
	assert_true(k.sum >= 1);
	assert_true(k.seen[0] >= k.t0 + (int64_t)k.sum * TMO_NSEC_PER_USEC);
	assert_int_equal(k.stop_ret, 0);
	assert_false(tmo_tick_busy(&k.tick));
	/* stray expiries of the old request, if any, are not delivered */
	struct test_result r = { 0 };
	tmo_prep_sleep(&r.op, tmo_in_ms(20));
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(k.late_calls, 0);
	assert_int_equal(k.calls, 1);
	assert_int_equal(tmo_tick_periods(&k.tick), k.sum);
}

/*
 * The largest intervals: INT64_MAX, and one whose first grid point lies past TMO_NEVER by half
 * the clock's reading (start + interval overflows, interval itself does not).
 * No callback, and the loop waits quietly: a grid point that wrapped into the past would be
 * refused by the kernel and re-armed at once, for ever (hundreds of thousands of io_uring_enter
 * calls in U/2). Stopped, it is released.
 */
static void largest_interval_waits_quietly(void **state)
{
	struct tmo_loop *loop = *state;
	const int64_t intervals[] = { INT64_MAX, INT64_MAX - tmo_now() / 2 };

	for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++) {
		struct ticker k = { 0 };
		struct tmo_loop_stats before, after;

		assert_int_equal(tmo_loop_get_stats(loop, &before), 0);
		ticker_start(loop, &k, intervals[i]);
		assert_true(tmo_loop_run_until(loop, tmo_in_ns(U / 2)) >= 1);
		assert_int_equal(tmo_loop_get_stats(loop, &after), 0);
		uint64_t enters = after.submit_calls - before.submit_calls;
		if (enters > 50)
			fail_msg("interval %lld: %llu io_uring_enter calls in %lld ms (a busy re-arm)",
				 (long long)intervals[i], (unsigned long long)enters,
				 (long long)(U / 2 / MS));
		assert_int_equal(k.calls, 0);
		assert_int_equal(tmo_tick_periods(&k.tick), 0);
		assert_true(tmo_tick_busy(&k.tick));
		assert_int_equal(tmo_tick_stop(&k.tick), 0);
		/* bounded: a tick the kernel never lets go would keep the loop running for ever */
		int left = tmo_loop_run_until(loop, tmo_in_ms(1000));
		if (left != 0 || tmo_tick_busy(&k.tick))
			fail_msg("1 s after the stop: %d active, tick busy %d", left,
				 tmo_tick_busy(&k.tick));
		assert_int_equal(k.calls, 0);
	}
}

/* ---- 2. a stall, and callbacks that take time --------------------------------------------- */

static void stall_is_merged_and_the_grid_holds(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 9, .stall_call = 1, .stall_ms = 3 * U / MS + U / MS / 2 };

	ticker_start(loop, &k, U);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_on_grid(&k);
	assert_true(k.calls >= 3);
	/* the periods missed during 3.5 U: one callback, not a burst */
	if (k.periods[1] != 3 && k.periods[1] != 4)
		fail_msg("after the stall: periods %llu (cumulative %llu), want 3 or 4",
			 (unsigned long long)k.periods[1], (unsigned long long)k.cum[1]);
	assert_true(k.seen[1] >= k.stall_end);
	for (int i = 2; i < k.calls; i++)
		assert_true(k.seen[i] - k.seen[i - 1] >= U / 4); /* no burst after it either */
	/* no drift: the callbacks after the stall keep to the grid (shifted to the stall's end,
	 * they would all be late by half a period) */
	assert_no_drift(&k, 2, "after the stall");
	assert_int_equal(tmo_tick_periods(&k.tick), k.sum);
	assert_false(tmo_tick_busy(&k.tick));
}

/* Callbacks that block the loop thread for 0.4 U each do not push the next ones later. */
static void slow_callbacks_do_not_shift_the_grid(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 8, .busy_ms = 2 * U / MS / 5 };

	ticker_start(loop, &k, U);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_on_grid(&k);
	assert_true(k.calls >= 4);
	assert_no_drift(&k, 1, "slow callbacks");
}

/* ---- 3. stop, release, restart, bad input ------------------------------------------------- */

static void stop_from_the_callback_then_restart(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 2 };
	struct test_result r = { 0 };

	ticker_start(loop, &k, U);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0); /* returns once released */
	assert_int_equal(k.stop_ret, 0);
	assert_int_equal(k.stop_again_ret, -EALREADY);
	assert_true(k.busy_after_stop);
	assert_int_equal(k.restart_inside_ret, -EBUSY);
	assert_false(tmo_tick_busy(&k.tick));
	assert_int_equal(tmo_tick_stop(&k.tick), -EALREADY);
	int calls = k.calls;
	assert_true(calls >= 1 && calls <= 2);
	assert_on_grid(&k);
	/* nothing more while the loop runs three more periods */
	tmo_prep_sleep(&r.op, tmo_in_ns(3 * U));
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(k.late_calls, 0);
	assert_int_equal(k.calls, calls);
	assert_int_equal(tmo_tick_periods(&k.tick), k.sum);

	/* released: it starts again, on a grid of its own */
	ticker_reset(&k);
	k.stop_at = 3;
	ticker_start(loop, &k, U);
	assert_int_equal(tmo_tick_periods(&k.tick), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_true(k.sum >= 3);
	assert_on_grid(&k);
	assert_int_equal(tmo_tick_periods(&k.tick), k.sum);
	assert_int_equal(k.stop_ret, 0);
	assert_false(tmo_tick_busy(&k.tick));
}

/*
 * Stopped from outside the loop, just after a period passed that the loop has not seen yet: no
 * callback for it. Busy until the loop ran; start refused meanwhile, accepted afterwards.
 */
static void stop_from_outside_the_loop(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { 0 };

	ticker_start(loop, &k, U);
	assert_int_equal(tmo_tick_start(loop, &k.tick, U, on_tick), -EBUSY);
	/* a running tick is active work */
	assert_true(tmo_loop_active(loop) >= 1);
	assert_true(tmo_loop_run_until(loop, tmo_at(k.t0 + 3 * U / 2)) >= 1);
	assert_int_equal(k.calls, 1);
	test_sleep_ms(3 * U / 4 / MS); /* past 2 U: its expiry waits for the loop */
	assert_int_equal(tmo_tick_stop(&k.tick), 0);
	assert_int_equal(tmo_tick_stop(&k.tick), -EALREADY);
	assert_true(tmo_tick_busy(&k.tick)); /* the kernel still holds its request */
	assert_int_equal(tmo_tick_start(loop, &k.tick, U, on_tick), -EBUSY);
	/* bounded: a tick the kernel never lets go would keep the loop running for ever */
	int left = tmo_loop_run_until(loop, tmo_in_ms(1000));
	if (left != 0 || tmo_tick_busy(&k.tick))
		fail_msg("1 s after the stop: %d active, tick busy %d, %d callbacks", left,
			 tmo_tick_busy(&k.tick), k.calls);
	assert_int_equal(k.calls, 1);
	assert_false(tmo_tick_busy(&k.tick));
	assert_int_equal(tmo_tick_periods(&k.tick), 1);
	assert_int_equal(tmo_loop_active(loop), 0);

	ticker_reset(&k);
	k.stop_at = 1;
	ticker_start(loop, &k, U);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(k.calls, 1);
	assert_on_grid(&k);
}

/* Stopped before the loop ever ran (its request not even submitted yet). */
static void stop_before_the_loop_runs(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { 0 };
	struct test_result r = { 0 };

	ticker_start(loop, &k, U);
	assert_int_equal(tmo_tick_stop(&k.tick), 0);
	assert_int_equal(tmo_tick_stop(&k.tick), -EALREADY);
	if (tmo_tick_busy(&k.tick))
		assert_int_equal(tmo_tick_start(loop, &k.tick, U, on_tick), -EBUSY);
	tmo_prep_sleep(&r.op, tmo_in_ns(2 * U));
	assert_int_equal(tmo_op_start(loop, &r.op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(k.calls, 0);
	assert_false(tmo_tick_busy(&k.tick));
}

/*
 * Stopped from a callback that ran longer than a period (1 ms interval, 3 ms callback): the next
 * expiry fired during the callback, so a removal can find no armed timeout (-ENOENT) while the
 * kernel's re-arm waits (for the loop, in low-latency mode), and the multishot goes on. It is
 * still released, and never calls back again. 10 rounds, each bounded (1 s).
 */
static void stop_from_a_callback_longer_than_a_period(void **state)
{
	struct tmo_loop *loop = *state;

	for (int round = 0; round < 10; round++) {
		struct ticker k = { .stop_at = 1, .busy_ms = 3 };

		ticker_start(loop, &k, MS);
		int left = tmo_loop_run_until(loop, tmo_in_ms(1000));
		if (left != 0 || tmo_tick_busy(&k.tick))
			fail_msg("round %d: 1 s after the stop, %d active, tick busy %d (%d callbacks)",
				 round, left, tmo_tick_busy(&k.tick), k.calls);
		assert_int_equal(k.calls, 1);
		assert_int_equal(k.stop_ret, 0);
		assert_true(k.busy_after_stop);
		assert_int_equal(k.late_calls, 0);
		assert_true(k.sum >= 1);
		assert_true(k.seen[0] >= k.t0 + (int64_t)k.sum * MS);
		assert_int_equal(tmo_tick_periods(&k.tick), k.sum);
	}
}

/*
 * Stopped while the loop stays busy for longer than a period on every turn (1 ms interval, an
 * op whose callback works 2 ms and starts it again): in low-latency mode every removal is
 * submitted while the expiry's re-arm still waits for the loop, and loses. A multishot request
 * covers at most 64 periods (tick.h), so the stopped tick is still released while the work goes
 * on: within 64 turns (about 150 ms here), asserted within 600 ms of the stop. The work ends
 * then in any case, so a tick never released fails the test instead of hanging it.
 */
struct busy_work {
	struct tmo_op op;
	struct tmo_loop *loop;
	struct ticker *k;
	int64_t stopped_at;  /* the stopping callback's time */
	int64_t released_at; /* first turn that saw the tick released */
	int turns;
};

static void busy_turn(struct tmo_op *op, int32_t res)
{
	struct busy_work *w = (struct busy_work *)op;

	assert_int_equal(res, 0);
	w->turns++;
	test_sleep_ms(2); /* the application's work this turn */
	if (w->k->stopped && !w->stopped_at)
		w->stopped_at = w->k->seen[w->k->calls - 1];
	if (w->stopped_at && !tmo_tick_busy(&w->k->tick)) {
		w->released_at = tmo_now();
		return;
	}
	if (w->stopped_at && tmo_now() > w->stopped_at + 600 * MS)
		return; /* the work ends: the assertions report it */
	tmo_prep_nop(op);
	assert_int_equal(tmo_op_start(w->loop, op, TMO_NEVER, busy_turn), 0);
}

static void stop_while_the_loop_is_busy_every_turn(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 5 };
	struct busy_work w = { .loop = loop, .k = &k };

	ticker_start(loop, &k, MS);
	tmo_prep_nop(&w.op);
	assert_int_equal(tmo_op_start(loop, &w.op, TMO_NEVER, busy_turn), 0);
	/* bounded: the work ends 600 ms after the stop, the tick's release then comes at once */
	int left = tmo_loop_run_until(loop, tmo_at(k.t0 + 2000 * MS));
	if (!w.stopped_at)
		fail_msg("the tick never stopped (%d callbacks, %d turns)", k.calls, w.turns);
	if (!w.released_at)
		fail_msg("still busy 600 ms after the stop (%d turns of work): not released while "
			 "the loop stays busy", w.turns);
	assert_true(w.released_at >= w.stopped_at);
	print_message("released %.1f ms after the stop, %d turns of work\n",
		      (double)(w.released_at - w.stopped_at) / 1e6, w.turns);
	assert_int_equal(left, 0);
	assert_false(tmo_tick_busy(&k.tick));
	assert_int_equal(k.stop_ret, 0);
	assert_int_equal(k.late_calls, 0);
	assert_true(k.sum >= 5);
	assert_int_equal(tmo_tick_periods(&k.tick), k.sum);
	for (int i = 0; i < k.calls; i++) /* never early */
		assert_true(k.seen[i] >= k.t0 + (int64_t)k.cum[i] * MS);
}

static void bad_input_is_refused(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { 0 };
	struct tmo_tick never = { 0 };
	_Alignas(8) unsigned char raw[sizeof(struct tmo_tick) + 8];
	struct tmo_tick *misaligned = (struct tmo_tick *)(void *)(raw + 4);

	assert_int_equal(tmo_tick_start(loop, &k.tick, 0, on_tick), -EINVAL);
	assert_int_equal(tmo_tick_start(loop, &k.tick, -U, on_tick), -EINVAL);
	assert_int_equal(tmo_tick_start(loop, &k.tick, INT64_MIN, on_tick), -EINVAL);
	assert_int_equal(tmo_tick_start(loop, &k.tick, TMO_NSEC_PER_USEC - 1, on_tick), -EINVAL);
	assert_int_equal(tmo_tick_start(NULL, &k.tick, U, on_tick), -EINVAL);
	assert_int_equal(tmo_tick_start(loop, NULL, U, on_tick), -EINVAL);
	assert_int_equal(tmo_tick_start(loop, &k.tick, U, NULL), -EINVAL);
	memset(raw, 0, sizeof(raw));
	assert_int_equal(tmo_tick_start(loop, misaligned, U, on_tick), -EINVAL);
	assert_false(tmo_tick_busy(&k.tick));
	assert_int_equal(tmo_loop_active(loop), 0);
	assert_int_equal(tmo_tick_stop(NULL), -EINVAL);
	assert_int_equal(tmo_tick_stop(&never), -EINVAL); /* never started */
	assert_false(tmo_tick_busy(&never));
	assert_false(tmo_tick_busy(NULL));
	assert_int_equal(tmo_tick_periods(&never), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_NOWAIT), 0);
}

struct stopper {
	struct tmo_op op;
	struct ticker *k;
	int ret;
};

static void stop_tick_now(struct tmo_op *op, int32_t res)
{
	struct stopper *sp = (struct stopper *)op;

	sp->k->stopped = true;
	sp->ret = tmo_tick_stop(&sp->k->tick);
}

/*
 * Stopped from another op's callback that comes at the same moment as a period (often in the
 * same batch of completions, in either order, or while the kernel is between an expiry and its
 * re-arm): the tick's callback never fires after the stop, and the kernel releases it (the run
 * returns, not busy). 150 rounds with a 5 ms interval and the stop shifted by -100 to +100 µs
 * around the third period.
 */
static void stop_racing_a_period(void **state)
{
	struct tmo_loop *loop = *state;

	for (int round = 0; round < 150; round++) {
		struct ticker k = { 0 };
		struct stopper sp = { .k = &k };
		int64_t interval = 5 * MS;

		ticker_start(loop, &k, interval);
		tmo_prep_sleep(&sp.op, tmo_at(k.t1 + 3 * interval +
					      (round % 21 - 10) * 10 * TMO_NSEC_PER_USEC));
		assert_int_equal(tmo_op_start(loop, &sp.op, TMO_NEVER, stop_tick_now), 0);
		/* bounded: a tick the kernel never lets go would keep the loop running for ever */
		int left = tmo_loop_run_until(loop, tmo_in_ms(1000));
		if (left != 0 || tmo_tick_busy(&k.tick))
			fail_msg("round %d: 1 s after the stop, %d active, tick busy %d (%d callbacks)",
				 round, left, tmo_tick_busy(&k.tick), k.calls);
		assert_int_equal(sp.ret, 0);
		assert_int_equal(k.late_calls, 0);
		assert_true(k.calls <= 3);
		assert_int_equal(tmo_tick_periods(&k.tick), k.sum);
		assert_false(tmo_tick_busy(&k.tick));
	}
}

/* Two ticks of the same interval, started together (their expiries come together): the first
 * stops the second from its third callback. The second never calls back after that, and both
 * are released. 30 rounds, 2 ms interval. */
struct pair {
	struct ticker a, b;
};

static void on_tick_a(struct tmo_tick *tick, uint64_t periods)
{
	struct pair *pr = (struct pair *)tick;

	on_tick(tick, periods);
	if (pr->a.calls == 3 && !pr->b.stopped) {
		pr->b.stopped = true;
		pr->b.stop_ret = tmo_tick_stop(&pr->b.tick);
		pr->a.stop_ret = tmo_tick_stop(&pr->a.tick);
		pr->a.stopped = true;
	}
}

static void one_tick_stops_another(void **state)
{
	struct tmo_loop *loop = *state;

	for (int round = 0; round < 30; round++) {
		struct pair pr = { 0 };
		int64_t interval = 2 * MS;

		pr.a.loop = pr.b.loop = loop;
		pr.a.interval = pr.b.interval = interval;
		pr.a.t0 = pr.b.t0 = tmo_now();
		assert_int_equal(tmo_tick_start(loop, &pr.a.tick, interval, on_tick_a), 0);
		assert_int_equal(tmo_tick_start(loop, &pr.b.tick, interval, on_tick), 0);
		int left = tmo_loop_run_until(loop, tmo_in_ms(1000));
		if (left != 0 || tmo_tick_busy(&pr.a.tick) || tmo_tick_busy(&pr.b.tick))
			fail_msg("round %d: 1 s after the stops, %d active, ticks busy %d %d", round,
				 left, tmo_tick_busy(&pr.a.tick), tmo_tick_busy(&pr.b.tick));
		assert_int_equal(pr.a.stop_ret, 0);
		assert_int_equal(pr.b.stop_ret, 0);
		assert_int_equal(pr.b.late_calls, 0);
		assert_int_equal(pr.a.late_calls, 0);
	}
}

/* A tick started inside a scope joins no scope: the scope's deadline does not stop it, and the
 * exited scope is not held busy by it. */
static void tick_joins_no_scope(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 4 };
	struct tmo_scope scope = { 0 };

	assert_int_equal(tmo_scope_enter_after(loop, &scope, 3 * U / 2, 0), 0);
	ticker_start(loop, &k, U);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_false(tmo_scope_busy(&scope));
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_true(k.sum >= 4);
	assert_on_grid(&k);
	assert_false(tmo_scope_expired(&scope));
}

/* The loop cannot be closed under a running tick, nor before the kernel released a stopped
 * one. */
static void loop_close_waits_for_the_tick(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { 0 };

	ticker_start(loop, &k, U);
	assert_int_equal(tmo_loop_close(loop), -EBUSY);
	assert_true(tmo_loop_run_until(loop, tmo_at(k.t0 + 3 * U / 2)) >= 1);
	assert_int_equal(k.calls, 1);
	assert_int_equal(tmo_loop_close(loop), -EBUSY);
	assert_int_equal(tmo_tick_stop(&k.tick), 0);
	if (tmo_tick_busy(&k.tick))
		assert_int_equal(tmo_loop_close(loop), -EBUSY);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_false(tmo_tick_busy(&k.tick));
	/* closed by the teardown */
}

/* ---- 4. a running tick keeps the loop running --------------------------------------------- */

static void tick_keeps_run_default_going_until_stopped(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 3 };

	ticker_start(loop, &k, U);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	int64_t end = tmo_now();
	assert_true(k.sum >= 3);
	assert_on_time(end, k.t0 + 3 * U);
	assert_int_equal(k.stop_ret, 0);
	assert_false(tmo_tick_busy(&k.tick));
	/* RUN_ONCE with a running tick waits for its callback */
	ticker_reset(&k);
	ticker_start(loop, &k, U);
	assert_true(tmo_loop_run(loop, TMO_RUN_ONCE) >= 1);
	assert_int_equal(k.calls, 1);
	assert_on_grid(&k);
	assert_int_equal(tmo_tick_stop(&k.tick), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_false(tmo_tick_busy(&k.tick));
}

/* ---- 5. refreshing while a long operation is pending -------------------------------------- */

struct late_data {
	int fd;
	int64_t at;
};

static void *write_late(void *arg)
{
	struct late_data *d = arg;
	int64_t now = tmo_now();

	if (d->at > now)
		test_sleep_ms((d->at - now + MS - 1) / MS);
	test_write_all(d->fd, "payload", 7);
	return NULL;
}

struct long_read {
	struct test_result r;
	struct ticker *k;
	uint64_t refreshes_before;
	int stop_ret;
};

static void long_read_done(struct tmo_op *op, int32_t res)
{
	struct long_read *lr = (struct long_read *)op;

	test_record(op, res);
	lr->refreshes_before = lr->k->sum;
	lr->stop_ret = tmo_tick_stop(&lr->k->tick);
	lr->k->stopped = true;
}

static void refreshes_while_a_read_is_pending(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { 0 };
	struct long_read lr = { .k = &k };
	struct late_data d;
	pthread_t thread;
	char buf[16];
	int fds[2];

	test_pipe(fds);
	ticker_start(loop, &k, U);
	d.fd = fds[1];
	d.at = k.t0 + 7 * U / 2;
	tmo_prep_read(&lr.r.op, fds[0], buf, sizeof(buf), (uint64_t)-1);
	assert_int_equal(tmo_op_start(loop, &lr.r.op, tmo_at(k.t0 + 10 * U), long_read_done), 0);
	assert_int_equal(pthread_create(&thread, NULL, write_late, &d), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(lr.r.calls, 1);
	assert_int_equal(lr.r.res, 7);
	assert_memory_equal(buf, "payload", 7);
	assert_true(lr.r.seen_at >= d.at);
	assert_true(lr.refreshes_before >= 3);
	assert_int_equal(lr.stop_ret, 0);
	assert_on_grid(&k);
	assert_int_equal(k.late_calls, 0);
	assert_false(tmo_tick_busy(&k.tick));
	close(fds[0]);
	close(fds[1]);
}

/* ---- 6. the feature bit ------------------------------------------------------------------- */

static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

static void feature_bit_after_a_tick(void **state)
{
	struct tmo_loop *loop = *state;
	struct ticker k = { .stop_at = 2 };
	bool fallback = is_fallback(loop);

	ticker_start(loop, &k, U);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_true(k.sum >= 2);
	assert_on_grid(&k);
	if (fallback) {
		/* forced off: the re-armed timeout ran, and the bit stays off */
		assert_false(tmo_loop_has_feature(loop, TMO_FEAT_TIMEOUT_MULTISHOT));
		assert_int_equal(k.tick._multishot, 0);
	} else {
		if (!kernel_at_least(6, 4))
			skip();
		assert_true(tmo_loop_has_feature(loop, TMO_FEAT_TIMEOUT_MULTISHOT));
		assert_int_not_equal(k.tick._multishot, 0);
	}
}

int main(void)
{
#define MECH(f)                                                             \
	{ #f " [multishot]", f, setup_multishot, test_loop_teardown, NULL }, \
	{                                                                   \
		#f " [fallback]", f, setup_fallback, test_loop_teardown, NULL \
	}
	const struct CMUnitTest tests[] = {
		MECH(fires_on_the_grid),
		{ "fires_on_the_grid [multishot, low latency]", fires_on_the_grid,
		  setup_multishot_low_latency, test_loop_teardown, NULL },
		{ "fires_on_the_grid [fallback, low latency]", fires_on_the_grid,
		  setup_fallback_low_latency, test_loop_teardown, NULL },
		MECH(smallest_interval_stops_cleanly),
		{ "smallest_interval_stops_cleanly [multishot, low latency]",
		  smallest_interval_stops_cleanly, setup_multishot_low_latency, test_loop_teardown,
		  NULL },
		MECH(largest_interval_waits_quietly),
		{ "largest_interval_waits_quietly [multishot, low latency]",
		  largest_interval_waits_quietly, setup_multishot_low_latency, test_loop_teardown,
		  NULL },
		MECH(stall_is_merged_and_the_grid_holds),
		{ "stall_is_merged_and_the_grid_holds [multishot, low latency]",
		  stall_is_merged_and_the_grid_holds, setup_multishot_low_latency,
		  test_loop_teardown, NULL },
		{ "stall_is_merged_and_the_grid_holds [fallback, low latency]",
		  stall_is_merged_and_the_grid_holds, setup_fallback_low_latency,
		  test_loop_teardown, NULL },
		MECH(slow_callbacks_do_not_shift_the_grid),
		MECH(stop_from_the_callback_then_restart),
		MECH(stop_from_outside_the_loop),
		{ "stop_from_outside_the_loop [multishot, low latency]", stop_from_outside_the_loop,
		  setup_multishot_low_latency, test_loop_teardown, NULL },
		{ "stop_from_outside_the_loop [fallback, low latency]", stop_from_outside_the_loop,
		  setup_fallback_low_latency, test_loop_teardown, NULL },
		MECH(stop_before_the_loop_runs),
		MECH(stop_from_a_callback_longer_than_a_period),
		{ "stop_from_a_callback_longer_than_a_period [multishot, low latency]",
		  stop_from_a_callback_longer_than_a_period, setup_multishot_low_latency,
		  test_loop_teardown, NULL },
		MECH(stop_while_the_loop_is_busy_every_turn),
		{ "stop_while_the_loop_is_busy_every_turn [multishot, low latency]",
		  stop_while_the_loop_is_busy_every_turn, setup_multishot_low_latency,
		  test_loop_teardown, NULL },
		MECH(bad_input_is_refused),
		MECH(stop_racing_a_period),
		{ "stop_racing_a_period [multishot, low latency]", stop_racing_a_period,
		  setup_multishot_low_latency, test_loop_teardown, NULL },
		{ "stop_racing_a_period [fallback, low latency]", stop_racing_a_period,
		  setup_fallback_low_latency, test_loop_teardown, NULL },
		MECH(one_tick_stops_another),
		{ "one_tick_stops_another [multishot, low latency]", one_tick_stops_another,
		  setup_multishot_low_latency, test_loop_teardown, NULL },
		{ "one_tick_stops_another [fallback, low latency]", one_tick_stops_another,
		  setup_fallback_low_latency, test_loop_teardown, NULL },
		MECH(tick_joins_no_scope),
		MECH(loop_close_waits_for_the_tick),
		MECH(tick_keeps_run_default_going_until_stopped),
		MECH(refreshes_while_a_read_is_pending),
		{ "refreshes_while_a_read_is_pending [multishot, loop deadlines]",
		  refreshes_while_a_read_is_pending, setup_multishot_loop_deadlines,
		  test_loop_teardown, NULL },
		{ "refreshes_while_a_read_is_pending [fallback, loop deadlines]",
		  refreshes_while_a_read_is_pending, setup_fallback_loop_deadlines,
		  test_loop_teardown, NULL },
		MECH(feature_bit_after_a_tick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
