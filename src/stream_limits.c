/*
 * Stream limits: which of gap, overall deadline and rate floor comes first, and the sliding
 * window behind the rate floor.
 *
 * The window is kept in buckets of window/16 so that its memory is fixed (18 slots, enough for
 * every bucket the window can touch) however fast the peer is. Bytes are counted as if they had
 * arrived at the end of their bucket: the window keeps them a little longer than exact
 * accounting would, so a cut-off is never early and at most one bucket late.
 */
#include <errno.h>

#include <string.h>

#include "container.h"
#include "stream_limits.h"
#include "tmo/scope.h"

#define SLOTS ((int)(sizeof(((struct tmo__rate_window *)0)->bucket) / \
		     sizeof(((struct tmo__rate_window *)0)->bucket[0])))

static int64_t add_saturating(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? TMO_NEVER_NS : a + b;
}

int tmo__limits_check(const struct tmo_stream_limits *limits)
{
	if (!limits)
		return 0;
	if (limits->gap_ns < 0 || tmo__deadline_in(limits->deadline) < 0 ||
	    limits->rate_window_ns < 0)
		return -EINVAL;
	return 0;
}

void tmo__limits_copy(struct tmo_stream_limits *out, const struct tmo_stream_limits *in)
{
	static const struct tmo_stream_limits none;

	*out = in ? *in : none;
	if (out->min_rate && !out->rate_window_ns)
		out->rate_window_ns = TMO_NSEC_PER_SEC;
}

void tmo__rate_reset(struct tmo__rate_window *rate, const struct tmo_stream_limits *limits,
		     int64_t now)
{
	rate->first = 0;
	rate->count = 0;
	rate->since = now;
	rate->need = 0;
	if (!limits->min_rate)
		return;
	rate->window = limits->rate_window_ns;
	rate->width = rate->window / TMO__RATE_BUCKETS + (rate->window % TMO__RATE_BUCKETS != 0);
	if (rate->width < 1)
		rate->width = 1;
	/* Bytes the window must hold: min_rate per second over the window, rounded up. */
	unsigned __int128 need = (unsigned __int128)limits->min_rate * (uint64_t)rate->window;
	need = (need + TMO_NSEC_PER_SEC - 1) / TMO_NSEC_PER_SEC;
	rate->need = need > UINT64_MAX ? UINT64_MAX : (uint64_t)need;
}

void tmo__rate_add(struct tmo__rate_window *rate, int64_t now, uint64_t bytes)
{
	if (!rate->need || !bytes)
		return;
	int64_t id = now / rate->width;
	if (rate->count) {
		int newest = (rate->first + rate->count - 1) % SLOTS;
		if (rate->bucket[newest].id == id) {
			rate->bucket[newest].bytes += bytes;
			return;
		}
	}
	if (rate->count == SLOTS) {
		/* The oldest bucket is at least 17 buckets old: out of the window for good. */
		rate->first = (uint8_t)((rate->first + 1) % SLOTS);
		rate->count--;
	}
	int slot = (rate->first + rate->count) % SLOTS;
	rate->bucket[slot].id = id;
	rate->bucket[slot].bytes = bytes;
	rate->count++;
}

/* When the window will no longer hold `need` bytes if nothing more arrives. */
static int64_t rate_deadline(const struct tmo__rate_window *rate)
{
	int64_t grace = add_saturating(rate->since, rate->window);
	uint64_t held = 0;

	for (int i = rate->count - 1; i >= 0; i--) {
		int slot = (rate->first + i) % SLOTS;
		held += rate->bucket[slot].bytes;
		if (held >= rate->need) {
			/* This bucket leaves the window one window after its end; the newer ones
			 * alone are not enough. */
			int64_t end = (rate->bucket[slot].id + 1) * rate->width;
			int64_t leaves = add_saturating(end, rate->window);
			return leaves > grace ? leaves : grace;
		}
	}
	return grace;
}

int64_t tmo__limits_next(const struct tmo_stream_limits *limits,
			 const struct tmo__rate_window *rate, int64_t wait_from, uint8_t *which)
{
	int64_t when = TMO_NEVER_NS;
	uint8_t limit = TMO_LIMIT_NONE;

	if (limits->gap_ns) {
		when = add_saturating(wait_from, limits->gap_ns);
		limit = TMO_LIMIT_GAP;
	}
	if (rate->need) {
		int64_t r = rate_deadline(rate);
		if (r < when) {
			when = r;
			limit = TMO_LIMIT_RATE;
		}
	}
	/* Strictly earlier only: on a tie the more specific limit is reported, in the order gap,
	 * rate, deadline (a silent peer under a gap and a rate floor ending together is "gap"). */
	int64_t end = tmo__deadline_in(limits->deadline);
	if (end != TMO_NEVER_NS && end < when) {
		when = end;
		limit = TMO_LIMIT_DEADLINE;
	}
	*which = limit;
	return when;
}

int64_t tmo__limits_with_scope(const struct tmo_scope *scope, int64_t deadline, uint8_t *which)
{
	if (scope) {
		int64_t limit = tmo__deadline_in(tmo_scope_effective_deadline(scope));
		if (limit < deadline) {
			*which = TMO_LIMIT_SCOPE;
			return limit;
		}
	}
	return deadline;
}

bool tmo__scope_moved_later(const struct tmo_loop *loop, const struct tmo_op *op,
			    uint8_t armed)
{
	if (armed != TMO_LIMIT_SCOPE || tmo_op_cause(op) != TMO_CAUSE_OWN)
		return false;
	struct tmo_scope *scope = tmo_loop_current_scope(loop);
	return scope && tmo__deadline_in(tmo_scope_effective_deadline(scope)) > tmo_now();
}

enum tmo_limit tmo__limit_of_timeout(const struct tmo_loop *loop, const struct tmo_op *op,
				    uint8_t armed)
{
	switch (tmo_op_cause(op)) {
	case TMO_CAUSE_SCOPE:
	case TMO_CAUSE_GROUP:
		return TMO_LIMIT_SCOPE;
	default:
		break;
	}
	if (armed == TMO_LIMIT_SCOPE) {
		/* The request carried the scope's deadline and the kernel acted on it before the
		 * loop did: the scope cut work short all the same, so it has expired. */
		struct tmo_scope *scope = tmo_loop_current_scope(loop);
		const struct tmo__container *binding = NULL;
		if (scope && tmo__container_effective(&scope->_c, &binding) <= tmo_now() && binding &&
		    binding->kind == TMO__CONTAINER_SCOPE)
			tmo__scope_mark_expired(tmo__scope_of((struct tmo__container *)binding));
	}
	return (enum tmo_limit)armed;
}

void tmo__stream_clear(void *stream, size_t size, struct tmo_op *op)
{
	void *data = *(void **)stream;

	tmo__op_clear(op);
	struct tmo_op kept = *op;
	kept.data = NULL;
	memset(stream, 0, size);
	*(void **)stream = data;
	*op = kept;
}
