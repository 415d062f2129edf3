/*
 * tmo clock: monotonic nanoseconds, and deadlines as a type of their own.
 *
 * Time is CLOCK_MONOTONIC in nanoseconds (an int64_t, tmo_now()). Its origin is unspecified
 * (it is not wall-clock time); only differences and comparisons with tmo_now() mean anything.
 *
 * A deadline is an absolute point on that clock, and it has its own type, struct tmo_deadline,
 * which a plain integer does not convert to. Passing a duration where a deadline belongs
 * (tmo_op_start(loop, op, TMO_NSEC_PER_SEC, cb)) therefore does not compile, instead of
 * timing out at once. Build a deadline with one of:
 *
 *     tmo_in_ms(250)            250 ms from now (tmo_in_ns, tmo_in_sec alike)
 *     tmo_at(t)                 the absolute time t on the tmo_now() clock
 *     TMO_NEVER                 no deadline
 *
 * The zero value, (struct tmo_deadline){0}, is TMO_NEVER, as Go's zero time.Time means "no
 * deadline" to SetDeadline: a zero-initialised options struct has no limit in any field. A
 * deadline at or before tmo_now() has already passed: an operation started with it times out
 * at once without starting.
 *
 * The helpers never fail loudly at the call: for nonsense (a negative duration or time, NaN,
 * infinity, an overflowing sum) they return an invalid deadline, which every function taking a
 * deadline refuses with -EINVAL, so the error flows through:
 *
 *     ret = tmo_op_start(loop, op, tmo_in_sec(timeout), on_done);  // -EINVAL if timeout < 0
 */
#ifndef TMO_CLOCK_H
#define TMO_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

TMO_BEGIN_DECLS

#define TMO_NSEC_PER_USEC INT64_C(1000)
#define TMO_NSEC_PER_MSEC INT64_C(1000000)
#define TMO_NSEC_PER_SEC INT64_C(1000000000)

/* The int64_t end of time: what functions returning a time or a duration in nanoseconds
 * return for "none" (tmo_deadline_ns(TMO_NEVER), tmo_scope_remaining() without a deadline). */
#define TMO_NEVER_NS INT64_MAX

/*
 * An absolute deadline. Private representation (read it with tmo_deadline_ns()): 0 is "no
 * deadline", a positive value the time on the tmo_now() clock, a negative one an invalid
 * deadline carrying -errno.
 */
typedef struct tmo_deadline {
	int64_t _ns;
} tmo_deadline;

/* No deadline: the zero value. */
#ifdef __cplusplus
#define TMO_NEVER (tmo_deadline{0})
#else
#define TMO_NEVER ((tmo_deadline){0})
#endif

/* Current CLOCK_MONOTONIC time in nanoseconds. Never fails. */
TMO_API int64_t tmo_now(void);

/*
 * The deadline at absolute time `ns` on the tmo_now() clock. Any ns >= 0 is a valid deadline;
 * a negative ns gives an invalid deadline. tmo_at(TMO_NEVER_NS) is TMO_NEVER. Time 0, the
 * clock's origin, long passed, is kept as 1 ns (0 is TMO_NEVER's representation): both are in
 * the past, and tmo_deadline_ns(tmo_at(0)) reads 1.
 */
TMO_API tmo_deadline tmo_at(int64_t ns);

/* The deadline `ns` nanoseconds from now (ns == 0: now, already passed). Invalid if ns < 0 or
 * now + ns overflows. */
TMO_API tmo_deadline tmo_in_ns(int64_t ns);

/* As tmo_in_ns, in milliseconds. */
TMO_API tmo_deadline tmo_in_ms(int64_t ms);

/*
 * The deadline `seconds` from now, for callers who think in floating-point seconds (as
 * asyncio's timeout(1.5)), rounded up to the next nanosecond. Invalid for NaN, +/-infinity, a
 * negative value or one that overflows int64_t nanoseconds. Use TMO_NEVER, not infinity, for
 * "no deadline".
 */
TMO_API tmo_deadline tmo_in_sec(double seconds);

/* The deadline's absolute time in nanoseconds: TMO_NEVER_NS for TMO_NEVER, -EINVAL for an
 * invalid deadline. */
TMO_API int64_t tmo_deadline_ns(tmo_deadline deadline);

/* True for TMO_NEVER (and the zero value). */
static inline bool tmo_deadline_is_never(tmo_deadline deadline)
{
	return deadline._ns == 0;
}

/* Nanoseconds from now until the deadline: 0 if it has passed, TMO_NEVER_NS for TMO_NEVER,
 * -EINVAL for an invalid deadline. */
TMO_API int64_t tmo_until(tmo_deadline deadline);

/*
 * Converts floating-point seconds to nanoseconds, rounding up, with the same checks as
 * tmo_in_sec. Returns the duration (>= 0) or -EINVAL.
 */
TMO_API int64_t tmo_ns_from_sec(double seconds);

TMO_END_DECLS

#endif
