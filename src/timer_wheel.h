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
 * Costs: insert, remove and reset O(1), inline; an entry that lands in the current slot (due
 * within the current tick, or already due) is placed in order within that slot's few entries.
 * Asking for the wake time, or popping with nothing due, is O(1) too (two cached lower bounds).
 */
#ifndef TMO_SRC_TIMER_WHEEL_H
#define TMO_SRC_TIMER_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "tmo/op.h"

#define TMO__WHEEL_TICK_SHIFT 16 /* a level-0 slot: 65,536 ns */
#define TMO__WHEEL_LEVEL_BITS 6
#define TMO__WHEEL_SLOTS 64      /* 1 << TMO__WHEEL_LEVEL_BITS: one bit each in a uint64_t */
#define TMO__WHEEL_LEVELS 8      /* 8 * 6 = 48 bits of ticks: every int64 time */

struct tmo__wheel {
	uint64_t elapsed;   /* the current tick */
	/* Lower bounds (0 is always one) for what lies outside the current slot: no slot there
	 * begins before tick `horizon`, and no entry there is due before `wake_hint`. They make
	 * the usual questions, with nothing due, O(1); a stale one costs a look, never a miss. */
	uint64_t horizon;
	int64_t wake_hint;
	uint32_t count;     /* entries held */
	uint64_t occupied[TMO__WHEEL_LEVELS]; /* bit s of level L: slot s is not empty */
	struct tmo__list slots[TMO__WHEEL_LEVELS][TMO__WHEEL_SLOTS];
};

/* An empty wheel at tick 0 (a zeroed wheel is the same). */
void tmo__wheel_init(struct tmo__wheel *wheel);

/* The tick of a time (negative times are tick 0). */
static inline uint64_t tmo__wheel_tick(int64_t when)
{
	return when < 0 ? 0 : (uint64_t)when >> TMO__WHEEL_TICK_SHIFT;
}

static inline unsigned tmo__wheel_current(const struct tmo__wheel *wheel)
{
	return (unsigned)(wheel->elapsed & (TMO__WHEEL_SLOTS - 1));
}

/* The slot of an entry due at `when` relative to the current tick `elapsed` (see above). */
static inline void tmo__wheel_place(uint64_t elapsed, int64_t when, unsigned *level,
				    unsigned *slot)
{
	uint64_t t = tmo__wheel_tick(when);

	if (t <= elapsed) {
		*level = 0;
		*slot = (unsigned)(elapsed & (TMO__WHEEL_SLOTS - 1));
		return;
	}
	unsigned l = (unsigned)(63 - __builtin_clzll(t ^ elapsed)) / TMO__WHEEL_LEVEL_BITS;
	*level = l;
	*slot = (unsigned)((t >> (l * TMO__WHEEL_LEVEL_BITS)) & (TMO__WHEEL_SLOTS - 1));
}

/* The first tick of `slot` at `level` (one after elapsed's own slot at that level). */
static inline uint64_t tmo__wheel_slot_start(uint64_t elapsed, unsigned level, unsigned slot)
{
	unsigned shift = level * TMO__WHEEL_LEVEL_BITS;
	unsigned above = shift + TMO__WHEEL_LEVEL_BITS;

	return (elapsed >> above << above) | (uint64_t)slot << shift;
}

/* The current slot is empty and no other begins by `now`'s tick: nothing is due by `now`, and
 * the current tick may move to now's. */
static inline bool tmo__wheel_quiet(const struct tmo__wheel *wheel, uint64_t now_tick)
{
	return !(wheel->occupied[0] & (UINT64_C(1) << tmo__wheel_current(wheel))) &&
	       now_tick < wheel->horizon;
}

/* Inserts `entry` into the current slot, in time order (timer_wheel.c). */
void tmo__wheel_insert_current(struct tmo__wheel *wheel, struct tmo__wheel_entry *entry);

/* Adds `entry`, due at entry->when, which must not be in the wheel. O(1) but for an entry due
 * within the current tick or already, placed in order among the current slot's few. */
static inline void tmo__wheel_insert(struct tmo__wheel *wheel, struct tmo__wheel_entry *entry)
{
	unsigned level, slot;

	tmo__wheel_place(wheel->elapsed, entry->when, &level, &slot);
	if (level == 0 && slot == tmo__wheel_current(wheel)) {
		tmo__wheel_insert_current(wheel, entry);
		return;
	}
	tmo__list_push_back(&wheel->slots[level][slot], &entry->link);
	wheel->occupied[level] |= UINT64_C(1) << slot;
	wheel->count++;
	uint64_t start = tmo__wheel_slot_start(wheel->elapsed, level, slot);
	if (start < wheel->horizon)
		wheel->horizon = start;
	if (entry->when < wheel->wake_hint)
		wheel->wake_hint = entry->when;
}

/* Takes out `entry`, which must be in the wheel with the `when` it was inserted with. O(1). */
static inline void tmo__wheel_remove(struct tmo__wheel *wheel, struct tmo__wheel_entry *entry)
{
	unsigned level, slot;

	tmo__wheel_place(wheel->elapsed, entry->when, &level, &slot);
	struct tmo__list *list = &wheel->slots[level][slot];
	tmo__list_remove(list, &entry->link);
	if (tmo__list_empty(list))
		wheel->occupied[level] &= ~(UINT64_C(1) << slot);
	wheel->count--;
}

/* Moves `entry`, in the wheel or not (`in_wheel` says which), to `when`. */
static inline void tmo__wheel_reset(struct tmo__wheel *wheel, struct tmo__wheel_entry *entry,
				    bool in_wheel, int64_t when)
{
	if (in_wheel)
		tmo__wheel_remove(wheel, entry);
	entry->when = when;
	tmo__wheel_insert(wheel, entry);
}

struct tmo__wheel_entry *tmo__wheel_pop_due_slow(struct tmo__wheel *wheel, int64_t now);

/*
 * Takes out and returns the earliest entry due by `now` (when <= now), or NULL if none is.
 * Advances the wheel's current tick towards `now` (never past it), cascading on the way.
 */
static inline struct tmo__wheel_entry *tmo__wheel_pop_due(struct tmo__wheel *wheel, int64_t now)
{
	uint64_t now_tick = tmo__wheel_tick(now);

	if (tmo__wheel_quiet(wheel, now_tick)) {
		if (now_tick > wheel->elapsed)
			wheel->elapsed = now_tick;
		return NULL;
	}
	return tmo__wheel_pop_due_slow(wheel, now);
}

int64_t tmo__wheel_wake_time_slow(struct tmo__wheel *wheel, int64_t now);

/*
 * When the caller should next look at the wheel: never later than the earliest entry's
 * `when`, and at or before `now` if something is due; INT64_MAX (TMO_NEVER_NS) for an empty
 * wheel. Exactly the earliest `when` if it is in the current slot, or was the earliest
 * inserted since the last look, or is in the next non-empty slot at level 0; else the start
 * of that slot (where it cascades: the caller looks, and asks again). After the earliest
 * entry was taken out it is earlier than that (a look that finds nothing and asks again, as
 * a kernel timeout left armed for it would). Advances the wheel towards `now` like
 * tmo__wheel_pop_due, taking nothing out.
 */
static inline int64_t tmo__wheel_wake_time(struct tmo__wheel *wheel, int64_t now)
{
	uint64_t now_tick = tmo__wheel_tick(now);

	if (!wheel->count)
		return INT64_MAX;
	if (tmo__wheel_quiet(wheel, now_tick) && wheel->wake_hint > now) {
		if (now_tick > wheel->elapsed)
			wheel->elapsed = now_tick;
		return wheel->wake_hint;
	}
	return tmo__wheel_wake_time_slow(wheel, now);
}

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
 * count, the two lower bounds. Returns NULL, or what is broken (a static string).
 * O(entries + slots).
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
