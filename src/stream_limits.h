/*
 * Private to tmo: the limits shared by stream readers and writers (gap, overall deadline,
 * rate floor) and the sliding window that measures the rate.
 */
#ifndef TMO_SRC_STREAM_LIMITS_H
#define TMO_SRC_STREAM_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "tmo/clock.h"
#include "tmo/stream.h"

#define TMO__RATE_BUCKETS 16

/* 0 if the limits make sense, else -EINVAL. */
/*
 * Zeroes a reader or writer at `stream` (`size` bytes; its first member is the caller's `data`)
 * for a new init, but `data` and the generation of its embedded `op` (a stale request of the
 * previous use must never match the next one, as tmo_prep_* keeps it too). The op is left
 * cleared with no `data`: the stream finds itself from its op by offset.
 */
void tmo__stream_clear(void *stream, size_t size, struct tmo_op *op);

int tmo__limits_check(const struct tmo_stream_limits *limits);

/* Copies `in` (NULL: none) into `out`, normalising "no overall deadline" to TMO_NEVER_NS. */
void tmo__limits_copy(struct tmo_stream_limits *out, const struct tmo_stream_limits *in);

/* Starts the rate history afresh at `now` (the window's grace period begins). */
void tmo__rate_reset(struct tmo__rate_window *rate, const struct tmo_stream_limits *limits,
		     int64_t now);

/* Counts `bytes` of progress seen at `now`. */
void tmo__rate_add(struct tmo__rate_window *rate, int64_t now, uint64_t bytes);

/*
 * The deadline of the next wait: the earliest of wait_from + gap, the overall deadline and the
 * moment the rate window stops holding enough bytes if nothing more arrives. *which names it
 * (TMO_LIMIT_NONE with TMO_NEVER_NS). On a tie the more specific limit is named: the gap,
 * then the rate, then the overall deadline.
 */
int64_t tmo__limits_next(const struct tmo_stream_limits *limits,
			 const struct tmo__rate_window *rate, int64_t wait_from, uint8_t *which);

/*
 * Lowers `deadline` to the effective deadline of `scope` (NULL: none) if that is earlier
 * (naming TMO_LIMIT_SCOPE in *which): the scope's deadline is then carried by the request
 * itself, so the kernel enforces it like the others even while the loop thread is busy.
 */
int64_t tmo__limits_with_scope(const struct tmo_scope *scope, int64_t deadline, uint8_t *which);

/*
 * For a request that timed out at a scope deadline it carried itself (TMO_LIMIT_SCOPE with
 * cause TMO_CAUSE_OWN): true if the scope has since been moved later, so the stream must go on
 * with a new request rather than end. Call from the request's callback (its scope is current).
 */
bool tmo__scope_moved_later(const struct tmo_loop *loop, const struct tmo_op *op,
			    uint8_t armed);

/* The limit an operation's -ETIME stands for, from its cause and the limit it was armed with.
 * A scope deadline the request carried itself marks that scope expired, as the loop would. */
enum tmo_limit tmo__limit_of_timeout(const struct tmo_loop *loop, const struct tmo_op *op,
				    uint8_t armed);

#endif
