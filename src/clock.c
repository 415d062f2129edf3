#include <errno.h>
#include <math.h>
#include <time.h>

#include "tmo/clock.h"

int64_t tmo_now(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer; it goes through the vDSO. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * TMO_NSEC_PER_SEC + ts.tv_nsec;
}

int64_t tmo_deadline_in_ns(int64_t ns)
{
	if (ns < 0)
		return -EINVAL;
	int64_t now = tmo_now();
	if (ns > INT64_MAX - now)
		return -EINVAL;
	return now + ns;
}

int64_t tmo_deadline_in_ms(int64_t ms)
{
	if (ms < 0 || ms > INT64_MAX / TMO_NSEC_PER_MSEC)
		return -EINVAL;
	return tmo_deadline_in_ns(ms * TMO_NSEC_PER_MSEC);
}

int64_t tmo_ns_from_sec(double seconds)
{
	/* isfinite() rejects NaN and both infinities; the comparison below rejects negatives
	 * (NaN compares false, so it is checked explicitly first). */
	if (!isfinite(seconds) || seconds < 0.0)
		return -EINVAL;
	double ns = ceil(seconds * 1e9);
	/* 2^63 is exactly representable as a double; anything at or above it overflows. */
	if (ns >= 9223372036854775808.0)
		return -EINVAL;
	return (int64_t)ns;
}

int64_t tmo_deadline_in_sec(double seconds)
{
	int64_t ns = tmo_ns_from_sec(seconds);

	if (ns < 0)
		return ns;
	return tmo_deadline_in_ns(ns);
}
