/*
 * tmo clock: monotonic nanoseconds and absolute deadlines.
 *
 * Every deadline in tmo is an absolute time on CLOCK_MONOTONIC, in nanoseconds (an int64_t).
 * The origin is unspecified (it is not wall-clock time); only differences and comparisons with
 * tmo_now() mean anything. TMO_NEVER means "no deadline". A deadline at or before tmo_now()
 * has already passed: an operation started with it times out at once without starting.
 *
 * The relative helpers below convert a duration into a deadline once, at the moment they are
 * called. They return the deadline (>= 0) or -EINVAL for nonsense: a negative duration, NaN,
 * an infinite duration, or a sum that would overflow int64_t. Because every function that takes
 * a deadline rejects negative values with -EINVAL, a helper's error flows through unchanged:
 *
 *     ret = tmo_op_start(loop, op, tmo_deadline_in_sec(timeout), on_done);  // -EINVAL if bad
 */
#ifndef TMO_CLOCK_H
#define TMO_CLOCK_H

#include <stdint.h>

#include "common.h"

TMO_BEGIN_DECLS

/* "No deadline": the largest representable time. */
#define TMO_NEVER INT64_MAX

#define TMO_NSEC_PER_USEC INT64_C(1000)
#define TMO_NSEC_PER_MSEC INT64_C(1000000)
#define TMO_NSEC_PER_SEC INT64_C(1000000000)

/* Current CLOCK_MONOTONIC time in nanoseconds. Never fails. */
TMO_API int64_t tmo_now(void);

/*
 * Deadline `ns` nanoseconds from now. Returns the absolute deadline, or -EINVAL if ns < 0 or
 * now + ns overflows int64_t. ns == 0 gives a deadline that has already passed.
 */
TMO_API int64_t tmo_deadline_in_ns(int64_t ns);

/* As tmo_deadline_in_ns, with milliseconds (-EINVAL on ms < 0 or overflow). */
TMO_API int64_t tmo_deadline_in_ms(int64_t ms);

/*
 * Deadline `seconds` from now, for callers who think in floating-point seconds (as asyncio's
 * timeout(1.5)). Returns the absolute deadline rounded up to the next nanosecond, or -EINVAL
 * for NaN, +/-infinity, a negative value, or a value that overflows int64_t nanoseconds.
 * Use TMO_NEVER, not infinity, for "no deadline".
 */
TMO_API int64_t tmo_deadline_in_sec(double seconds);

/*
 * Converts floating-point seconds to nanoseconds, rounding up, with the same checks as
 * tmo_deadline_in_sec. Returns the duration (>= 0) or -EINVAL.
 */
TMO_API int64_t tmo_ns_from_sec(double seconds);

TMO_END_DECLS

#endif
