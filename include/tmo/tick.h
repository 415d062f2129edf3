/*
 * tmo ticks: a callback every N nanoseconds, for work that must happen at least that often
 * while something long runs (refreshing a lease, a progress line, a keep-alive while a stream
 * is processed).
 *
 * Mechanism: one multishot kernel timeout (IORING_TIMEOUT_MULTISHOT, Linux 6.4) where the
 * kernel has it and the interval is at least 1 ms: one request per up to 64 periods, one
 * completion per period (below 1 ms a multishot timeout can outrun every attempt to remove
 * it). Elsewhere
 * (the kernel refuses the flag with -EINVAL; tmo notices on the first tick and remembers it for
 * the loop, see TMO_FEAT_TIMEOUT_MULTISHOT) an absolute timeout re-armed for each period. Both
 * keep to the grid start + k * interval: the kernel re-arms a multishot timeout from when its
 * task work ran, so its phase slips a little each period, and tmo replaces it (one absolute
 * timeout to the next grid point, then a new multishot) when it has slipped more than a quarter
 * interval. No thread is used.
 *
 * A tick is not an operation: it joins no scope and has no deadline. While it runs it counts
 * as active work, so tmo_loop_run(TMO_RUN_DEFAULT) does not return until it is stopped.
 *
 * Ownership: the caller allocates struct tmo_tick (8-byte aligned, as any struct with an
 * int64_t). After tmo_tick_stop() the callback never fires again, but the kernel may still hold
 * the request for a moment: the tick must not be freed or restarted while tmo_tick_busy() is
 * true (normally released within a period or two as the loop runs; on a loop so busy that
 * each turn takes longer than the interval, within one multishot request: 64 periods, about a
 * second).
 */
#ifndef TMO_TICK_H
#define TMO_TICK_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "op.h"

TMO_BEGIN_DECLS

struct tmo_loop;
struct tmo_tick;

/*
 * Fires once per period from inside tmo_loop_run*. `periods` (>= 1) is how many periods have
 * passed since the previous call: 1 normally, more when the loop thread was late (a stall);
 * the periods missed are merged into one call, never delivered as a burst.
 */
typedef void (*tmo_tick_cb)(struct tmo_tick *tick, uint64_t periods);

struct tmo_tick {
	/* The caller's pointer; tmo never reads or writes it. */
	void *data;

	/* private */
	struct tmo_loop *_loop;
	tmo_tick_cb _cb;
	int64_t _interval;
	int64_t _start;
	uint64_t _reported;  /* periods reported to the callback so far */
	struct tmo__deferred _deferred; /* on the loop's deferred queue: waiting for an SQE */
	struct tmo__kernel_timespec _ts;
	uint8_t _state;
	uint8_t _generation;
	uint8_t _multishot;
};

/*
 * Starts `tick` on `loop`: `cb` fires every `interval_ns` (at least 1 µs), the first time one
 * interval from now. `tick` must be zeroed or not busy. Returns 0, or -EINVAL (NULL, interval
 * under 1 µs, misaligned tick), -EBUSY (running, or stopped and not yet released).
 */
TMO_API int tmo_tick_start(struct tmo_loop *loop, struct tmo_tick *tick, int64_t interval_ns,
			   tmo_tick_cb cb);

/* Stops the tick: its callback never fires again, from this call on. It may be called from
 * the callback; the tick is then busy at least until the callback returns. Returns 0,
 * -EALREADY (already stopped), -EINVAL (never started, or NULL). */
TMO_API int tmo_tick_stop(struct tmo_tick *tick);

/* True from start until the kernel released it after tmo_tick_stop(). */
TMO_API bool tmo_tick_busy(const struct tmo_tick *tick);

/* Periods reported since start (the sum of the callbacks' `periods`). */
TMO_API uint64_t tmo_tick_periods(const struct tmo_tick *tick);

TMO_END_DECLS

#endif
