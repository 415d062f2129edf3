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

static tmo_deadline invalid_deadline(void)
{
	return (tmo_deadline){-EINVAL};
}

/* A valid finite time as a deadline: 0 is the representation of "no deadline", and time 0
 * itself (the clock's origin, long passed) is kept as 1. Inline, for tmo_in_ns on every
 * start's path: an exported function is not inlined. */
static inline tmo_deadline deadline_at(int64_t ns)
{
	return (tmo_deadline){ns ? ns : 1};
}

tmo_deadline tmo_at(int64_t ns)
{
	if (ns < 0)
		return invalid_deadline();
	if (ns == TMO_NEVER_NS)
		return TMO_NEVER; /* the end of time is no deadline */
	return deadline_at(ns);
}

tmo_deadline tmo_in_ns(int64_t ns)
{
	if (ns < 0)
		return invalid_deadline();
	int64_t now = tmo_now();
	/* INT64_MAX itself is TMO_NEVER_NS: a finite duration never reaches it. */
	if (ns >= INT64_MAX - now)
		return invalid_deadline();
	return deadline_at(now + ns);
}

tmo_deadline tmo_in_ms(int64_t ms)
{
	if (ms < 0 || ms > INT64_MAX / TMO_NSEC_PER_MSEC)
		return invalid_deadline();
	return tmo_in_ns(ms * TMO_NSEC_PER_MSEC);
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

tmo_deadline tmo_in_sec(double seconds)
{
	int64_t ns = tmo_ns_from_sec(seconds);

	if (ns < 0)
		return invalid_deadline();
	return tmo_in_ns(ns);
}

int64_t tmo_deadline_ns(tmo_deadline deadline)
{
	if (deadline._ns < 0)
		return -EINVAL;
	return deadline._ns == 0 ? TMO_NEVER_NS : deadline._ns;
}

int64_t tmo_until(tmo_deadline deadline)
{
	int64_t at = tmo_deadline_ns(deadline);

	if (at < 0 || at == TMO_NEVER_NS)
		return at;
	int64_t now = tmo_now();
	return at > now ? at - now : 0;
}
