#include "timer_wheel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"

#define TICK_LIMIT (UINT64_C(1) << (TMO__WHEEL_LEVELS * TMO__WHEEL_LEVEL_BITS))

_Static_assert(TMO__WHEEL_SLOTS == 1 << TMO__WHEEL_LEVEL_BITS && TMO__WHEEL_SLOTS <= 64,
	       "one occupancy bit per slot in a uint64_t");
_Static_assert((INT64_MAX >> TMO__WHEEL_TICK_SHIFT) < (int64_t)TICK_LIMIT,
	       "the levels cover every int64 time");

static inline struct tmo__wheel_entry *entry_of(const struct tmo__link *link)
{
	return tmo__container_of(link, struct tmo__wheel_entry, link);
}

static inline uint64_t bit(unsigned slot)
{
	return UINT64_C(1) << slot;
}

/* The earliest non-empty slot other than the current one: false if there is none. Every slot
 * of a level begins before any of the level above, so it is the lowest level's first bit. */
static bool next_slot(const struct tmo__wheel *wheel, unsigned *level, unsigned *slot)
{
	for (unsigned l = 0; l < TMO__WHEEL_LEVELS; l++) {
		uint64_t bits = wheel->occupied[l];
		if (l == 0)
			bits &= ~bit(tmo__wheel_current(wheel));
		if (bits) {
			*level = l;
			*slot = (unsigned)__builtin_ctzll(bits);
			return true;
		}
	}
	return false;
}

void tmo__wheel_init(struct tmo__wheel *wheel)
{
	memset(wheel, 0, sizeof(*wheel));
}

/*
 * Inserts `entry` into `list` after every entry not later than it (the current slot's order).
 * The walk goes from the back, where a new deadline usually belongs; one earlier than all
 * (a group poked at time 0, a scope moved into the past) goes to the front at once, so that a
 * pass re-arming many due entries into a crowded slot does not walk it each time.
 */
static void insert_in_order(struct tmo__list *list, struct tmo__wheel_entry *entry)
{
	struct tmo__link *after = list->last;

	if (!list->first || entry->when < entry_of(list->first)->when) {
		tmo__list_push_front(list, &entry->link);
		return;
	}
	while (entry_of(after)->when > entry->when)
		after = after->prev; /* stops at the first entry at the latest: not later */
	tmo__list_insert_after(list, after, &entry->link);
}

void tmo__wheel_insert_current(struct tmo__wheel *wheel, struct tmo__wheel_entry *entry)
{
	insert_in_order(&wheel->slots[0][tmo__wheel_current(wheel)], entry);
	wheel->occupied[0] |= bit(tmo__wheel_current(wheel));
	wheel->count++;
}

/* Merges two NULL-terminated chains (by ->next) sorted by `when`; `a`'s entries first among
 * equal times, which keeps the sort stable. */
static struct tmo__link *merge(struct tmo__link *a, struct tmo__link *b)
{
	struct tmo__link head = { 0 }, *tail = &head;

	while (a && b) {
		if (entry_of(b)->when < entry_of(a)->when) {
			tail->next = b;
			b = b->next;
		} else {
			tail->next = a;
			a = a->next;
		}
		tail = tail->next;
	}
	tail->next = a ? a : b;
	return head.next;
}

/* Sorts a NULL-terminated chain of `n` links by `when`, stably (merge sort). */
static struct tmo__link *sort_chain(struct tmo__link *first, size_t n)
{
	if (n < 2)
		return first;
	struct tmo__link *mid = first;
	for (size_t i = 1; i < n / 2; i++)
		mid = mid->next;
	struct tmo__link *second = mid->next;
	mid->next = NULL;
	return merge(sort_chain(first, n / 2), sort_chain(second, n - n / 2));
}

/* Puts a slot that becomes current in `when` order (usually it already is). */
static void sort_slot(struct tmo__list *list)
{
	size_t n = 0;
	bool sorted = true;

	for (struct tmo__link *l = list->first; l; l = l->next, n++) {
		if (l->next && entry_of(l->next)->when < entry_of(l)->when)
			sorted = false;
	}
	if (sorted)
		return;
	struct tmo__link *first = sort_chain(list->first, n), *prev = NULL;
	list->first = first;
	for (struct tmo__link *l = first; l; prev = l, l = l->next)
		l->prev = prev;
	list->last = prev;
}

/* Empties `slot` of `level` (which begins at the current tick) into the levels below. */
static void cascade(struct tmo__wheel *wheel, unsigned level, unsigned slot)
{
	struct tmo__list *from = &wheel->slots[level][slot];
	struct tmo__link *link = from->first;

	from->first = from->last = NULL;
	wheel->occupied[level] &= ~bit(slot);
	while (link) {
		struct tmo__link *next = link->next;
		unsigned l, s;
		tmo__wheel_place(wheel->elapsed, entry_of(link)->when, &l, &s);
		tmo__list_push_back(&wheel->slots[l][s], link);
		wheel->occupied[l] |= bit(s);
		link = next;
	}
	/* The current slot was empty (see advance): what came into it is all it holds. */
	if (wheel->occupied[0] & bit(tmo__wheel_current(wheel)))
		sort_slot(&wheel->slots[0][tmo__wheel_current(wheel)]);
}

/*
 * While the current slot is empty, moves the current tick towards `now_tick`, never past it:
 * to the start of the earliest non-empty slot if that is not later (cascading that slot, or
 * making it current), else to now_tick. Every other slot begins after the new tick, so each
 * entry's slot stays the one its time maps to. Afterwards the current slot holds the earliest
 * entries, or no entry is due by the end of now_tick. The horizon makes the usual call, with
 * nothing due, O(1): no slot is looked at before it.
 */
static void advance(struct tmo__wheel *wheel, uint64_t now_tick)
{
	while (!(wheel->occupied[0] & bit(tmo__wheel_current(wheel)))) {
		unsigned level, slot;
		if (now_tick < wheel->horizon) {
			if (now_tick > wheel->elapsed)
				wheel->elapsed = now_tick;
			return;
		}
		uint64_t start = TICK_LIMIT;
		if (next_slot(wheel, &level, &slot))
			start = tmo__wheel_slot_start(wheel->elapsed, level, slot);
		wheel->horizon = start; /* exact now; cascades only place entries after it */
		if (start > now_tick) {
			if (now_tick > wheel->elapsed)
				wheel->elapsed = now_tick;
			return;
		}
		wheel->elapsed = start;
		if (level == 0)
			sort_slot(&wheel->slots[0][slot]);
		else
			cascade(wheel, level, slot);
	}
}

struct tmo__wheel_entry *tmo__wheel_pop_due_slow(struct tmo__wheel *wheel, int64_t now)
{
	advance(wheel, tmo__wheel_tick(now));
	struct tmo__list *list = &wheel->slots[0][tmo__wheel_current(wheel)];
	struct tmo__link *first = list->first;
	if (!first || entry_of(first)->when > now)
		return NULL;
	tmo__list_remove(list, first);
	if (tmo__list_empty(list))
		wheel->occupied[0] &= ~bit(tmo__wheel_current(wheel));
	wheel->count--;
	return entry_of(first);
}

int64_t tmo__wheel_wake_time_slow(struct tmo__wheel *wheel, int64_t now)
{
	if (!wheel->count)
		return INT64_MAX;
	advance(wheel, tmo__wheel_tick(now));
	const struct tmo__link *first = wheel->slots[0][tmo__wheel_current(wheel)].first;
	if (first)
		return entry_of(first)->when;
	unsigned level, slot;
	if (!next_slot(wheel, &level, &slot))
		return INT64_MAX; /* not reached: count says there is an entry */
	int64_t earliest = INT64_MAX;
	if (level > 0) {
		earliest = (int64_t)(tmo__wheel_slot_start(wheel->elapsed, level, slot) << TMO__WHEEL_TICK_SHIFT);
	} else {
		for (const struct tmo__link *l = wheel->slots[0][slot].first; l; l = l->next) {
			if (entry_of(l)->when < earliest)
				earliest = entry_of(l)->when;
		}
	}
	wheel->wake_hint = earliest; /* exact again; every later slot begins after it */
	return earliest;
}

uint32_t tmo__wheel_walk_due(const struct tmo__wheel *wheel, int64_t now, uint32_t max_reads,
			     tmo__wheel_visit visit, void *ctx)
{
	uint64_t now_tick = tmo__wheel_tick(now);
	unsigned current = tmo__wheel_current(wheel);
	uint32_t reads = 0;

	/* The current slot is in order: its due entries come first. */
	for (const struct tmo__link *l = wheel->slots[0][current].first; l; l = l->next) {
		if (reads == max_reads || entry_of(l)->when > now)
			break;
		reads++;
		visit(ctx, entry_of(l));
	}
	for (unsigned level = 0; level < TMO__WHEEL_LEVELS; level++) {
		uint64_t bits = wheel->occupied[level];
		if (level == 0)
			bits &= ~bit(current);
		for (; bits; bits &= bits - 1) {
			unsigned slot = (unsigned)__builtin_ctzll(bits);
			if (tmo__wheel_slot_start(wheel->elapsed, level, slot) > now_tick)
				return reads; /* every later slot begins later still */
			for (const struct tmo__link *l = wheel->slots[level][slot].first; l;
			     l = l->next) {
				if (reads == max_reads)
					return reads;
				reads++;
				if (entry_of(l)->when <= now)
					visit(ctx, entry_of(l));
			}
		}
	}
	return reads;
}

/* Checks one slot's list: links, each entry's slot, the current slot's order. */
static const char *check_slot(const struct tmo__wheel *wheel, unsigned level, unsigned slot,
			      uint32_t *seen)
{
	const struct tmo__list *list = &wheel->slots[level][slot];
	const struct tmo__link *prev = NULL;
	bool current = level == 0 && slot == tmo__wheel_current(wheel);

	if (!list->first != !list->last)
		return "a slot's list has one end only";
	if (!(wheel->occupied[level] & bit(slot)) != !list->first)
		return "a slot's occupancy bit disagrees with its list";
	if (list->first && !current && tmo__wheel_slot_start(wheel->elapsed, level, slot) < wheel->horizon)
		return "a slot begins before the horizon";
	for (const struct tmo__link *l = list->first; l; prev = l, l = l->next) {
		unsigned want_level, want_slot;
		if (l->prev != prev)
			return "an entry's back link is wrong";
		if (++*seen > wheel->count)
			return "more entries in the slots than counted (or a cycle)";
		tmo__wheel_place(wheel->elapsed, entry_of(l)->when, &want_level, &want_slot);
		if (want_level != level || want_slot != slot)
			return "an entry is not in the slot its time maps to";
		if (current && prev && entry_of(prev)->when > entry_of(l)->when)
			return "the current slot is out of order";
		if (!current && entry_of(l)->when < wheel->wake_hint)
			return "an entry is due before the wake hint";
	}
	if (list->last != prev)
		return "a slot's last link is wrong";
	return NULL;
}

const char *tmo__wheel_check(const struct tmo__wheel *wheel)
{
	uint32_t seen = 0;

	if (wheel->elapsed >= TICK_LIMIT)
		return "the current tick is beyond the levels";
	for (unsigned level = 0; level < TMO__WHEEL_LEVELS; level++) {
		for (unsigned slot = 0; slot < TMO__WHEEL_SLOTS; slot++) {
			const char *broken = check_slot(wheel, level, slot, &seen);
			if (broken)
				return broken;
		}
	}
	if (seen != wheel->count)
		return "fewer entries in the slots than counted";
	return NULL;
}

#ifndef NDEBUG
void tmo__wheel_validate(const struct tmo__wheel *wheel)
{
	const char *broken = tmo__wheel_check(wheel);

	if (broken) {
		fprintf(stderr, "tmo: timer wheel broken: %s\n", broken);
		abort();
	}
}
#endif
