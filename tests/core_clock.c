/* core-clock: tmo_now(), the deadline type and its helpers, including every kind of nonsense. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "helpers.h"

static void now_is_monotonic_and_moves(void **state)
{
	int64_t a = tmo_now();
	test_sleep_ms(2);
	int64_t b = tmo_now();

	assert_true(a > 0);
	assert_true(b - a >= 2 * TMO_NSEC_PER_MSEC);
	for (int i = 0; i < 10000; i++) {
		int64_t c = tmo_now();
		assert_true(c >= b);
		b = c;
	}
}

static void relative_helpers_convert_once(void **state)
{
	int64_t before = tmo_now();
	/* 5 s: a loaded machine may pause the thread for milliseconds between two lines. */
	tmo_deadline ns = tmo_in_ns(5 * TMO_NSEC_PER_SEC);
	tmo_deadline ms = tmo_in_ms(5000);
	tmo_deadline sec = tmo_in_sec(5.0);
	int64_t after = tmo_now();

	for (int i = 0; i < 3; i++) {
		tmo_deadline d = i == 0 ? ns : i == 1 ? ms : sec;
		int64_t at = tmo_deadline_ns(d);
		assert_false(tmo_deadline_is_never(d));
		assert_true(at >= before + 5 * TMO_NSEC_PER_SEC);
		assert_true(at <= after + 5 * TMO_NSEC_PER_SEC);
		int64_t left = tmo_until(d);
		assert_true(left > 0 && left <= 5 * TMO_NSEC_PER_SEC);
	}
	/* Zero is "already passed" (now), not "no limit". */
	tmo_deadline zero = tmo_in_ns(0);
	assert_false(tmo_deadline_is_never(zero));
	assert_true(tmo_deadline_ns(zero) >= before && tmo_deadline_ns(zero) <= tmo_now());
	assert_int_equal(tmo_until(zero), 0);
	tmo_deadline zero_ms = tmo_in_ms(0), zero_sec = tmo_in_sec(0.0);
	assert_false(tmo_deadline_is_never(zero_ms));
	assert_false(tmo_deadline_is_never(zero_sec));
	assert_true(tmo_deadline_ns(zero_ms) >= before && tmo_deadline_ns(zero_ms) <= tmo_now());
	assert_true(tmo_deadline_ns(zero_sec) >= before && tmo_deadline_ns(zero_sec) <= tmo_now());
	assert_int_equal(tmo_until(zero_sec), 0);
}

static void at_is_the_absolute_time(void **state)
{
	int64_t now = tmo_now();
	int64_t t = now + 60 * TMO_NSEC_PER_SEC;

	assert_int_equal(tmo_deadline_ns(tmo_at(t)), t);
	assert_false(tmo_deadline_is_never(tmo_at(t)));
	int64_t left = tmo_until(tmo_at(t));
	assert_true(left > 59 * TMO_NSEC_PER_SEC && left <= 60 * TMO_NSEC_PER_SEC);
	assert_int_equal(tmo_deadline_ns(tmo_at(now)), now);
	assert_int_equal(tmo_until(tmo_at(now)), 0);
	assert_int_equal(tmo_deadline_ns(tmo_at(1)), 1);
	assert_int_equal(tmo_until(tmo_at(1)), 0);

	/* Time 0, the clock's origin: a valid deadline that has long passed, not TMO_NEVER. */
	tmo_deadline origin = tmo_at(0);
	assert_false(tmo_deadline_is_never(origin));
	assert_true(tmo_deadline_ns(origin) >= 0);
	assert_true(tmo_deadline_ns(origin) <= 1); /* at most a nanosecond past the origin */
	assert_int_equal(tmo_until(origin), 0);
}

static void never_is_the_zero_value(void **state)
{
	tmo_deadline zero = { 0 };
	tmo_deadline never = TMO_NEVER;

	assert_true(tmo_deadline_is_never(zero));
	assert_true(tmo_deadline_is_never(never));
	assert_memory_equal(&zero, &never, sizeof(never));
	assert_true(TMO_NEVER_NS == INT64_MAX);
	assert_true(tmo_deadline_ns(TMO_NEVER) == TMO_NEVER_NS);
	assert_true(tmo_deadline_ns(zero) == TMO_NEVER_NS);
	assert_true(tmo_until(TMO_NEVER) == TMO_NEVER_NS);
	assert_true(tmo_until(zero) == TMO_NEVER_NS);

	/* A zero-initialised struct holding a deadline has none. */
	struct {
		int other;
		tmo_deadline d;
	} opts;
	memset(&opts, 0, sizeof(opts));
	assert_true(tmo_deadline_is_never(opts.d));

	/* Every finite deadline comes before the end of time. */
	assert_true(tmo_deadline_ns(tmo_in_sec(1e6)) < TMO_NEVER_NS);
	assert_false(tmo_deadline_is_never(tmo_in_sec(1e6)));
}

static void seconds_round_up_to_the_nanosecond(void **state)
{
	assert_int_equal(tmo_ns_from_sec(1.5), 1500000000);
	assert_int_equal(tmo_ns_from_sec(0.0), 0);
	assert_int_equal(tmo_ns_from_sec(1e-10), 1); /* never rounds a wait down to nothing */
	assert_int_equal(tmo_ns_from_sec(9.0e9), 9000000000000000000LL);
}

/* An invalid deadline: not TMO_NEVER, and every reader says -EINVAL. */
static void assert_invalid(tmo_deadline d)
{
	assert_false(tmo_deadline_is_never(d));
	assert_int_equal(tmo_deadline_ns(d), -EINVAL);
	assert_int_equal(tmo_until(d), -EINVAL);
}

static void nonsense_is_an_invalid_deadline(void **state)
{
	assert_invalid(tmo_at(-1));
	assert_invalid(tmo_at(INT64_MIN));
	assert_invalid(tmo_in_ns(-1));
	assert_invalid(tmo_in_ns(INT64_MIN));
	assert_invalid(tmo_in_ns(INT64_MAX)); /* now + that overflows */
	assert_invalid(tmo_in_ns(INT64_MAX - tmo_now())); /* reaches the end of time */
	assert_invalid(tmo_in_ms(-1));
	assert_invalid(tmo_in_ms(INT64_MIN));
	assert_invalid(tmo_in_ms(INT64_MAX / 1000)); /* ms * 1e6 overflows */
	assert_invalid(tmo_in_ms(INT64_MAX / TMO_NSEC_PER_MSEC + 1)); /* ms * 1e6 overflows */
	assert_invalid(tmo_in_ms(INT64_MAX));
	assert_invalid(tmo_in_sec(NAN));
	assert_invalid(tmo_in_sec(-NAN));
	assert_invalid(tmo_in_sec(INFINITY));
	assert_invalid(tmo_in_sec(-INFINITY));
	assert_invalid(tmo_in_sec(-1.0));
	assert_invalid(tmo_in_sec(-0.001));
	assert_invalid(tmo_in_sec(1e10)); /* 1e19 ns > INT64_MAX */
	assert_int_equal(tmo_ns_from_sec(NAN), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(-NAN), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(INFINITY), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(-INFINITY), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(-0.001), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(1e10), -EINVAL); /* 1e19 ns > INT64_MAX */
	assert_int_equal(tmo_ns_from_sec(9.3e9), -EINVAL);
	/* 9223372036 s is 0.85 s short of INT64_MAX ns: fits alone, overflows once added to now. */
	assert_true(tmo_ns_from_sec(9223372036.0) > 0);
	assert_invalid(tmo_in_sec(9223372036.0));

	/* The largest durations that still fit are valid. */
	int64_t room = INT64_MAX - tmo_now() - TMO_NSEC_PER_SEC;
	tmo_deadline far = tmo_in_ns(room);
	assert_false(tmo_deadline_is_never(far));
	assert_true(tmo_deadline_ns(far) > 0 && tmo_deadline_ns(far) < TMO_NEVER_NS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(now_is_monotonic_and_moves),
		cmocka_unit_test(relative_helpers_convert_once),
		cmocka_unit_test(at_is_the_absolute_time),
		cmocka_unit_test(never_is_the_zero_value),
		cmocka_unit_test(seconds_round_up_to_the_nanosecond),
		cmocka_unit_test(nonsense_is_an_invalid_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
