/*
 * A hierarchical timing wheel of deadlines on the tmo_now() clock (absolute nanoseconds). Each
 * element embeds a struct tmo__wheel_entry (include/tmo/op.h): inserting, removing and moving
 * one allocate nothing and cost O(1), whatever the number pending.
 *
 * Shape. Time is cut into ticks of 2^TMO__WHEEL_TICK_SHIFT ns (65.5 µs). Level L has 64 slots
 * of 64^L ticks each; eight levels cover 2^48 ticks, every int64 time (INT64_MAX is tick
 * 2^47 - 1), so no overflow list is needed. The wheel has a current tick, `elapsed`; an
 * entry due at tick t (negative times are tick 0) lies in the slot its tick maps to relative
 * to `elapsed`:
 *   - t <= elapsed (due in the current tick, or in the past): the current slot, level 0 slot
 *     elapsed & 63, which is the one slot kept in `when` order (stable: equal times stay in
 *     the order they came);
 *   - t > elapsed: level L = (index of the highest bit where t and elapsed differ) / 6, slot
 *     (t >> 6L) & 63. All higher bits agree, so the slot lies after elapsed's own slot at
 *     that level, and every slot of level L begins before any slot of level L + 1.
 * So the earliest non-empty slot is the first set bit of the lowest level with any (one ctz
 * per level, no scan of empty slots), and an entry's slot can be found again from its `when`
 * and `elapsed` alone: the wheel moves `elapsed` only up to the start of the earliest
 * non-empty slot, where that slot cascades (its entries are placed again, lower down) or, at
 * level 0, becomes current and is sorted. Each entry cascades at most once per level, so
 * expiry costs amortised O(1) per entry (plus sorting the few of one tick).
 *
 * Nothing is handed out early: an entry comes out of tmo__wheel_pop_due() only when its exact
 * `when` is at or before the time given. Entries come out in `when` order (equal times in the
 * order they were inserted), one per call, so a caller's handler may insert, move or remove
 * any entry, due or not, between two calls.
 *
 * Costs: insert, remove and reset O(1); an entry that lands in the current slot (due within
 * the current tick, or already due) is placed in order within that slot's few entries.
 */
#ifndef TMO_SRC_TIMER_WHEEL_H
#define TMO_SRC_TIMER_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#include "tmo/op.h"

#define TMO__WHEEL_TICK_SHIFT 16 /* a level-0 slot: 65,536 ns */
#define TMO__WHEEL_LEVEL_BITS 6
#define TMO__WHEEL_SLOTS 64      /* 1 << TMO__WHEEL_LEVEL_BITS: one bit each in a uint64_t */
#define TMO__WHEEL_LEVELS 8      /* 8 * 6 = 48 bits of ticks: every int64 time */

struct tmo__wheel {
	uint64_t elapsed;                     /* the current tick */
	uint32_t count;                       /* entries held */
	uint64_t occupied[TMO__WHEEL_LEVELS]; /* bit s of level L: slot s is not empty */
	struct tmo__list slots[TMO__WHEEL_LEVELS][TMO__WHEEL_SLOTS];
};

/* An empty wheel at tick 0 (a zeroed wheel is the same). */
void tmo__wheel_init(struct tmo__wheel *wheel);
/* Adds `entry`, due at entry->when, which must not be in the wheel. */
void tmo__wheel_insert(struct tmo__wheel *wheel, struct tmo__wheel_entry *entry);
/* Takes out `entry`, which must be in the wheel with the `when` it was inserted with. */
void tmo__wheel_remove(struct tmo__wheel *wheel, struct tmo__wheel_entry *entry);
/* Moves `entry`, in the wheel or not (`in_wheel` says which), to `when`. */
static inline void tmo__wheel_reset(struct tmo__wheel *wheel, struct tmo__wheel_entry *entry,
				    bool in_wheel, int64_t when)
{
	if (in_wheel)
		tmo__wheel_remove(wheel, entry);
	entry->when = when;
	tmo__wheel_insert(wheel, entry);
}

/*
 * Takes out and returns the earliest entry due by `now` (when <= now), or NULL if none is.
 * Advances the wheel's current tick towards `now` (never past it), cascading on the way.
 */
struct tmo__wheel_entry *tmo__wheel_pop_due(struct tmo__wheel *wheel, int64_t now);

/*
 * When the caller should next look at the wheel: the exact earliest `when` if it is in the
 * current slot or the next non-empty slot is at level 0, else the start of that slot (where it
 * cascades: the caller looks, and asks again). Never later than the earliest entry's `when`;
 * at or before `now` if something is due; INT64_MAX (TMO_NEVER_NS) for an empty wheel.
 * Advances the wheel towards `now` like tmo__wheel_pop_due, taking nothing out.
 */
int64_t tmo__wheel_wake_time(struct tmo__wheel *wheel, int64_t now);

/*
 * Calls `visit` for each entry due by `now`, earliest slot first, reading at most `max_reads`
 * entries (due or not) so that a report on a huge wheel stays bounded; returns how many
 * it read. Changes nothing.
 */
typedef void (*tmo__wheel_visit)(void *ctx, const struct tmo__wheel_entry *entry);
uint32_t tmo__wheel_walk_due(const struct tmo__wheel *wheel, int64_t now, uint32_t max_reads,
			     tmo__wheel_visit visit, void *ctx);

/*
 * Checks every invariant: each list's links, each entry in the slot its `when` maps to
 * relative to the current tick, the current slot in order, the bitmaps against the lists, the
 * count. Returns NULL, or what is broken (a static string). O(entries + slots).
 */
const char *tmo__wheel_check(const struct tmo__wheel *wheel);

/* tmo__wheel_check in debug builds, aborting with its message; nothing when NDEBUG. */
#ifndef NDEBUG
void tmo__wheel_validate(const struct tmo__wheel *wheel);
#else
static inline void tmo__wheel_validate(const struct tmo__wheel *wheel)
{
	(void)wheel;
}
#endif

#endif
