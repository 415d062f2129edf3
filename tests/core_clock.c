/* core-clock: tmo_now() and the relative-to-absolute helpers, including every kind of nonsense. */
#include <errno.h>
#include <math.h>

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
	int64_t ns = tmo_deadline_in_ns(5 * TMO_NSEC_PER_MSEC);
	int64_t ms = tmo_deadline_in_ms(5);
	int64_t sec = tmo_deadline_in_sec(0.005);
	int64_t after = tmo_now();

	for (int i = 0; i < 3; i++) {
		int64_t d = i == 0 ? ns : i == 1 ? ms : sec;
		assert_true(d >= before + 5 * TMO_NSEC_PER_MSEC);
		assert_true(d <= after + 5 * TMO_NSEC_PER_MSEC);
	}
	/* Zero is "already passed", not "no limit". */
	int64_t zero = tmo_deadline_in_ns(0);
	assert_true(zero >= before && zero <= tmo_now());
	assert_true(tmo_deadline_in_sec(0.0) <= tmo_now());
}

static void seconds_round_up_to_the_nanosecond(void **state)
{
	assert_int_equal(tmo_ns_from_sec(1.5), 1500000000);
	assert_int_equal(tmo_ns_from_sec(0.0), 0);
	assert_int_equal(tmo_ns_from_sec(1e-10), 1); /* never rounds a wait down to nothing */
	assert_int_equal(tmo_ns_from_sec(9.0e9), 9000000000000000000LL);
}

static void nonsense_is_einval(void **state)
{
	assert_int_equal(tmo_deadline_in_ns(-1), -EINVAL);
	assert_int_equal(tmo_deadline_in_ns(INT64_MIN), -EINVAL);
	assert_int_equal(tmo_deadline_in_ns(INT64_MAX), -EINVAL); /* now + that overflows */
	assert_int_equal(tmo_deadline_in_ms(-1), -EINVAL);
	assert_int_equal(tmo_deadline_in_ms(INT64_MAX / 1000), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(NAN), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(-NAN), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(INFINITY), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(-INFINITY), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(-0.001), -EINVAL);
	assert_int_equal(tmo_ns_from_sec(1e10), -EINVAL); /* 1e19 ns > INT64_MAX */
	assert_int_equal(tmo_ns_from_sec(9.3e9), -EINVAL);
	assert_int_equal(tmo_deadline_in_sec(NAN), -EINVAL);
	assert_int_equal(tmo_deadline_in_sec(INFINITY), -EINVAL);
	assert_int_equal(tmo_deadline_in_sec(-1.0), -EINVAL);
	/* 9223372036 s is 0.85 s short of INT64_MAX ns: fits alone, overflows once added to now. */
	assert_true(tmo_ns_from_sec(9223372036.0) > 0);
	assert_int_equal(tmo_deadline_in_sec(9223372036.0), -EINVAL);
}

static void never_is_the_largest_time(void **state)
{
	assert_true(TMO_NEVER == INT64_MAX);
	assert_true(tmo_deadline_in_sec(1e6) < TMO_NEVER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(now_is_monotonic_and_moves),
		cmocka_unit_test(relative_helpers_convert_once),
		cmocka_unit_test(seconds_round_up_to_the_nanosecond),
		cmocka_unit_test(nonsense_is_einval),
		cmocka_unit_test(never_is_the_largest_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
