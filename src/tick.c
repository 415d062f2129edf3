/*
 * Ticks: a callback every interval, from one multishot kernel timeout (one request, one CQE
 * with IORING_CQE_F_MORE per period) or, where the kernel lacks it, an absolute timeout
 * re-armed for each period.
 *
 * The callback's `periods` is computed from the clock against the grid start + k * interval,
 * never from the number of CQEs: the kernel's multishot timer started a little after `start`
 * (at submission), so each of its expiries is at or after the grid point it stands for, and
 * after a stall the queued CQEs of missed periods are merged into one call (the later ones find
 * nothing new and are dropped).
 */
#include <errno.h>
#include <stddef.h>

#include "container.h"
#include "hooks.h"
#include "tmo/tick.h"

/* struct tmo_tick._state */
enum {
	T_RUNNING = 1u << 0,     /* started and not stopped */
	T_KERNEL = 1u << 1,      /* the kernel holds a timeout request for it */
	T_STOPPING = 1u << 2,    /* stopped; the kernel has not let go yet */
	T_REMOVE_SENT = 1u << 3, /* the removal request is submitted */
	/* 1u << 4 is free: a tick whose request found no SQE waits on the loop's deferred queue
	 * (waiting()) */
	T_IN_CB = 1u << 5,       /* its callback is running: a stop releases it afterwards */
	T_RESYNC = 1u << 6,      /* the multishot timeout slipped off the grid: being removed */
	T_BRIDGE = 1u << 7,      /* a one-shot to the next grid point, then a new multishot */
};

/* A multishot timeout whose phase has slipped this far behind the grid (and at least
 * RESYNC_MIN_NS) is replaced: see tmo__tick_on_cqe. */
#define RESYNC_FRACTION 4
#define RESYNC_MIN_NS (200 * TMO_NSEC_PER_USEC)

#define MIN_INTERVAL_NS TMO_NSEC_PER_USEC
/*
 * Below this a tick uses re-armed timeouts even where multishot exists. A removal finds a
 * multishot timeout only while it is armed; between an expiry and the re-arm (which waits for
 * task work, and under DEFER_TASKRUN for the loop's next io_uring_enter, where submissions come
 * first) it answers -ENOENT. With a period shorter than the loop's turn-around every removal
 * loses that race (measured: a 1 µs tick under TMO_MODE_LOW_LATENCY could not be stopped).
 */
#define MULTISHOT_MIN_INTERVAL_NS TMO_NSEC_PER_MSEC

static uint64_t user_data(const struct tmo_tick *t, unsigned tag)
{
	return tmo__user_data_for(t, t->_generation, tag);
}

static void wait_for_sqe(struct tmo__loop_state *st, struct tmo_tick *t)
{
	tmo__defer(st, &t->_deferred, TMO__DEFER_TICK);
}

/* Its request found no SQE: it waits on the loop's deferred queue. */
static bool waiting(const struct tmo_tick *t)
{
	return t->_deferred.queued;
}

/*
 * How many periods one multishot request covers before it ends by itself and is re-armed: up
 * to 64, and about a second's worth. A removal can lose its race with the kernel (see
 * MULTISHOT_MIN_INTERVAL_NS) as often as the loop is slower than the period; a request that
 * ends by itself bounds how long a stopped tick can stay busy however often that happens.
 */
static unsigned multishot_count(int64_t interval)
{
	int64_t per_second = TMO_NSEC_PER_SEC / interval;
	return per_second < 2 ? 2 : per_second > 64 ? 64 : (unsigned)per_second;
}

/* start + k * interval, saturating (a huge interval must not wrap into the past). */
static int64_t grid_point(const struct tmo_tick *t, uint64_t k)
{
	if (k > (uint64_t)((TMO_NEVER_NS - t->_start) / t->_interval))
		return TMO_NEVER_NS;
	return t->_start + (int64_t)k * t->_interval;
}

/* Submits the tick's timeout: false if no SQE could be had (retried by the loop). */
static bool arm(struct tmo__loop_state *st, struct tmo_tick *t)
{
	struct io_uring_sqe *sqe = tmo__get_sqes(st, 1);

	if (!sqe)
		return false;
	/* A new user_data per request: a removal meant for an earlier request of this tick, still
	 * in flight, can never hit this one. */
	t->_generation++;
	/* After a resync, one absolute timeout to the next grid point; the multishot that
	 * follows it starts there. */
	bool oneshot = !t->_multishot || (t->_state & T_RESYNC);
	t->_state &= (uint8_t)~(T_RESYNC | T_BRIDGE | T_REMOVE_SENT);
	if (oneshot && t->_multishot)
		t->_state |= T_BRIDGE;
	if (!oneshot) {
		tmo__set_timespec(&t->_ts, t->_interval);
		io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&t->_ts,
				      multishot_count(t->_interval), IORING_TIMEOUT_MULTISHOT);
	} else {
		/* The next grid point after everything reported: later than now. */
		tmo__set_timespec(&t->_ts, grid_point(t, t->_reported + 1));
		io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&t->_ts, 0,
				      IORING_TIMEOUT_ABS);
	}
	io_uring_sqe_set_data64(sqe, user_data(t, TMO__TAG_TICK));
	t->_state |= T_KERNEL;
	return true;
}

static bool send_remove(struct tmo__loop_state *st, struct tmo_tick *t)
{
	struct io_uring_sqe *sqe = tmo__get_sqes(st, 1);

	if (!sqe)
		return false;
	io_uring_prep_timeout_remove(sqe, user_data(t, TMO__TAG_TICK), 0);
	io_uring_sqe_set_data64(sqe, user_data(t, TMO__TAG_IGNORED));
	t->_state |= T_REMOVE_SENT;
	return true;
}

/* The kernel has let go of a stopped tick: it is the caller's again. */
static void release(struct tmo__loop_state *st, struct tmo_tick *t)
{
	t->_state = 0;
	st->active--;
}

int tmo_tick_start(struct tmo_loop *loop, struct tmo_tick *tick, int64_t interval_ns,
		   tmo_tick_cb cb)
{
	if (!loop || !loop->_state || !tick || !cb || interval_ns < MIN_INTERVAL_NS)
		return -EINVAL;
	if ((uintptr_t)tick & ~(uintptr_t)TMO__ADDRESS_MASK)
		return -EINVAL;
	if (tick->_state)
		return -EBUSY;
	struct tmo__loop_state *st = tmo__state(loop);

	tick->_loop = loop;
	tick->_cb = cb;
	tick->_interval = interval_ns;
	tick->_reported = 0;
	tick->_generation++;
	tick->_multishot = tmo__has(st, TMO_FEAT_TIMEOUT_MULTISHOT) &&
			   interval_ns >= MULTISHOT_MIN_INTERVAL_NS;
	tick->_start = tmo_now();
	tick->_state = T_RUNNING;
	st->active++;
	if (!arm(st, tick))
		wait_for_sqe(st, tick);
	return 0;
}

int tmo_tick_stop(struct tmo_tick *tick)
{
	if (!tick || !tick->_loop)
		return -EINVAL;
	if (!(tick->_state & T_RUNNING))
		return -EALREADY; /* stopped, and perhaps released already */
	struct tmo__loop_state *st = tmo__state(tick->_loop);

	tick->_state &= (uint8_t)~T_RUNNING;
	if (!(tick->_state & T_KERNEL)) {
		/* No request: inside the callback of a re-armed tick (released when it returns),
		 * or still waiting for an SQE (the retry pass releases it). */
		if (!(tick->_state & T_IN_CB) && !waiting(tick))
			release(st, tick);
		return 0;
	}
	tick->_state |= T_STOPPING;
	if (!send_remove(st, tick))
		wait_for_sqe(st, tick);
	return 0;
}

bool tmo_tick_busy(const struct tmo_tick *tick)
{
	return tick && tick->_state;
}

uint64_t tmo_tick_periods(const struct tmo_tick *tick)
{
	return tick ? tick->_reported : 0;
}

void tmo__tick_on_deferred(struct tmo__loop_state *st, struct tmo_tick *t)
{
	if (t->_state & T_RUNNING) {
		if (!(t->_state & T_KERNEL) && !arm(st, t))
			wait_for_sqe(st, t);
	} else if (!(t->_state & T_KERNEL)) {
		release(st, t); /* stopped before its request ever went out */
	} else if (!(t->_state & T_REMOVE_SENT) && !send_remove(st, t)) {
		wait_for_sqe(st, t);
	}
}

static void call(struct tmo__loop_state *st, struct tmo_tick *t, uint64_t periods)
{
	struct tmo__invoke call;

	tmo__invoke_begin(st, &call, NULL); /* a tick belongs to no scope */
	t->_cb(t, periods);
	tmo__invoke_end(st, &call, TMO_STALL_TICK);
}

void tmo__tick_on_cqe(struct tmo__loop_state *st, struct tmo_tick *t, int32_t res,
		      uint32_t flags)
{
	bool more = flags & IORING_CQE_F_MORE;

	if (!more)
		t->_state &= (uint8_t)~T_KERNEL; /* the request is over */
	/*
	 * A removal that came while the timeout had fired and its re-arm still waited for task
	 * work found nothing to remove (-ENOENT) and the multishot goes on. A completion with
	 * F_MORE after a removal was sent says so: send another (a duplicate is harmless).
	 */
	if (more && (t->_state & T_REMOVE_SENT)) {
		t->_state &= (uint8_t)~T_REMOVE_SENT;
		if (!send_remove(st, t))
			wait_for_sqe(st, t);
	}
	if (!(t->_state & T_RUNNING)) {
		if (!(t->_state & T_KERNEL) && !waiting(t))
			release(st, t);
		return;
	}
	if (res == -EINVAL && t->_multishot && !more) {
		/* This kernel refuses IORING_TIMEOUT_MULTISHOT: re-arm one period at a time. */
		st->features &= ~(1u << TMO_FEAT_TIMEOUT_MULTISHOT);
		t->_multishot = 0;
	} else if (res == -ETIME) {
		int64_t elapsed = tmo_now() - t->_start;
		uint64_t due = elapsed > 0 ? (uint64_t)(elapsed / t->_interval) : 0;
		/*
		 * The kernel re-arms a multishot timeout relative to when its task work ran, not
		 * on its previous expiry: its phase slips by that latency every period (measured
		 * here: from 2 µs to tens of µs per period), and by the rest of a stall under
		 * DEFER_TASKRUN. When the slip is large, replace it: remove it, bridge to the next
		 * grid point with an absolute timeout, and start a new multishot there.
		 */
		int64_t lag = elapsed - (int64_t)due * t->_interval; /* due * interval <= elapsed */
		if (more && due > t->_reported && lag > t->_interval / RESYNC_FRACTION &&
		    lag > RESYNC_MIN_NS && !(t->_state & (T_RESYNC | T_REMOVE_SENT)) &&
		    send_remove(st, t))
			t->_state |= T_RESYNC;
		if (due > t->_reported) {
			uint64_t periods = due - t->_reported;
			t->_reported = due;
			t->_state |= T_IN_CB;
			call(st, t, periods);
			t->_state &= (uint8_t)~T_IN_CB;
			/* Stopped by its callback: a request the kernel no longer holds ends here. */
			if (!(t->_state & T_RUNNING)) {
				if (!(t->_state & T_KERNEL) && !waiting(t))
					release(st, t);
				return;
			}
		}
	}
	/* Any other ending of the request (an error, a cancellation tmo did not ask for) is
	 * answered by arming again: the tick runs until it is stopped. */
	if ((t->_state & T_RUNNING) && !(t->_state & T_KERNEL) && !waiting(t) && !arm(st, t))
		wait_for_sqe(st, t);
}
