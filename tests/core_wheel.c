/* core-wheel: the hierarchical timer wheel of kept deadlines, white-box (its invariants checked
 * as it goes), and against a plain array as the model in a long random run. */
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "timer_wheel.h"

#define TICK (INT64_C(1) << TMO__WHEEL_TICK_SHIFT)
#define BASE (INT64_C(1000) * TMO_NSEC_PER_SEC) /* a plausible tmo_now(): 1,000 s after boot */

struct item {
	struct tmo__wheel_entry entry;
	int in_wheel;
	int id;
};

static struct item *item_of(struct tmo__wheel_entry *entry)
{
	return (struct item *)entry; /* entry is the first member */
}

static void assert_valid(const struct tmo__wheel *wheel)
{
	const char *broken = tmo__wheel_check(wheel);
	if (broken)
		fail_msg("wheel broken: %s", broken);
}

static struct tmo__wheel *new_wheel(void)
{
	struct tmo__wheel *wheel = malloc(sizeof(*wheel));
	assert_non_null(wheel);
	tmo__wheel_init(wheel);
	return wheel;
}

static void put(struct tmo__wheel *wheel, struct item *it, int64_t when)
{
	it->entry.when = when;
	tmo__wheel_insert(wheel, &it->entry);
	it->in_wheel = 1;
}

/* Pops everything due by `now`, checking each is due and none comes before an earlier one;
 * returns how many came out. */
static int pop_all(struct tmo__wheel *wheel, int64_t now)
{
	struct tmo__wheel_entry *e;
	int64_t last = INT64_MIN;
	int n = 0;

	while ((e = tmo__wheel_pop_due(wheel, now))) {
		assert_true(e->when <= now);
		assert_true(e->when >= last);
		last = e->when;
		item_of(e)->in_wheel = 0;
		n++;
	}
	assert_valid(wheel);
	return n;
}

static void empty_wheel(void **state)
{
	struct tmo__wheel *wheel = new_wheel();

	assert_null(tmo__wheel_pop_due(wheel, BASE));
	assert_int_equal(tmo__wheel_wake_time(wheel, BASE), INT64_MAX);
	assert_null(tmo__wheel_pop_due(wheel, INT64_MAX));
	assert_valid(wheel);
	free(wheel);
}

static void same_time_comes_out_together_in_insertion_order(void **state)
{
	enum { N = 100 };
	struct tmo__wheel *wheel = new_wheel();
	struct item items[N] = { 0 };
	int64_t when = BASE + 5 * TMO_NSEC_PER_MSEC + 123;

	(void)tmo__wheel_pop_due(wheel, BASE); /* the wheel's clock at BASE */
	for (int i = 0; i < N; i++) {
		items[i].id = i;
		put(wheel, &items[i], when);
	}
	assert_valid(wheel);
	assert_true(tmo__wheel_wake_time(wheel, BASE) <= when);
	assert_null(tmo__wheel_pop_due(wheel, when - 1));
	assert_int_equal(tmo__wheel_wake_time(wheel, when - 1), when);
	for (int i = 0; i < N; i++) {
		struct tmo__wheel_entry *e = tmo__wheel_pop_due(wheel, when);
		assert_non_null(e);
		assert_int_equal(item_of(e)->id, i);
	}
	assert_null(tmo__wheel_pop_due(wheel, when));
	assert_int_equal(wheel->count, 0);
	free(wheel);
}

static void past_and_present_times_are_due_at_once(void **state)
{
	struct tmo__wheel *wheel = new_wheel();
	struct item past = { 0 }, negative = { 0 }, zero = { 0 }, now_item = { 0 }, later = { 0 };
	int64_t now = BASE;

	(void)tmo__wheel_pop_due(wheel, now);
	put(wheel, &past, now - TMO_NSEC_PER_SEC);
	put(wheel, &negative, -5);
	put(wheel, &zero, 0);
	put(wheel, &now_item, now);
	put(wheel, &later, now + 1);
	assert_valid(wheel);
	assert_true(tmo__wheel_wake_time(wheel, now) <= -5);
	/* Earliest first: -5, 0, past, now; now + 1 stays. */
	struct item *order[] = { &negative, &zero, &past, &now_item };
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(item_of(tmo__wheel_pop_due(wheel, now)), order[i]);
	assert_null(tmo__wheel_pop_due(wheel, now));
	assert_int_equal(tmo__wheel_wake_time(wheel, now), now + 1);
	assert_ptr_equal(item_of(tmo__wheel_pop_due(wheel, now + 1)), &later);
	assert_valid(wheel);
	free(wheel);
}

/* Times at each edge of a tick and of each level's slot: never a nanosecond early. */
static void never_early_at_slot_edges(void **state)
{
	struct tmo__wheel *wheel = new_wheel();
	struct item items[3 * TMO__WHEEL_LEVELS] = { 0 };
	int n = 0;

	(void)tmo__wheel_pop_due(wheel, BASE);
	for (unsigned level = 0; level < TMO__WHEEL_LEVELS - 1; level++) {
		int64_t edge = ((BASE >> TMO__WHEEL_TICK_SHIFT) + (INT64_C(1) << (6 * level)) + 1)
			       << TMO__WHEEL_TICK_SHIFT;
		edge &= ~(TICK - 1);
		put(wheel, &items[n++], edge - 1);
		put(wheel, &items[n++], edge);
		put(wheel, &items[n++], edge + TICK - 1);
	}
	assert_valid(wheel);
	int64_t now = BASE;
	while (wheel->count) {
		int64_t wake = tmo__wheel_wake_time(wheel, now);
		assert_true(wake > now);
		/* Nothing before the wake time, and the wake time is never past the earliest. */
		int64_t earliest = INT64_MAX;
		for (int i = 0; i < n; i++)
			if (items[i].in_wheel && items[i].entry.when < earliest)
				earliest = items[i].entry.when;
		assert_true(wake <= earliest);
		assert_null(tmo__wheel_pop_due(wheel, wake - 1));
		now = wake;
		pop_all(wheel, now);
	}
	free(wheel);
}

/* Entries of one tick that reach the current slot by a cascade, and ones inserted into the
 * current slot, come out by time, equal times in the order they were inserted. */
static void one_tick_comes_out_in_order(void **state)
{
	struct tmo__wheel *wheel = new_wheel();
	struct item items[8] = { 0 };
	static const int64_t offsets[8] = { 400, 300, 200, 100, 100, 0, 300, 100 };
	static const int order[8] = { 5, 3, 4, 7, 2, 1, 6, 0 };
	int64_t now = BASE;

	(void)tmo__wheel_pop_due(wheel, now);
	/* The first tick of the next level-1 slot: reached by a cascade, not directly. */
	int64_t t = ((now >> TMO__WHEEL_TICK_SHIFT >> 6) + 1) << 6 << TMO__WHEEL_TICK_SHIFT;
	for (int i = 0; i < 8; i++) {
		items[i].id = i;
		put(wheel, &items[i], t + offsets[i]);
	}
	assert_valid(wheel);
	assert_true(tmo__wheel_wake_time(wheel, now) <= t);
	for (int i = 0; i < 8; i++) {
		struct tmo__wheel_entry *e = tmo__wheel_pop_due(wheel, t + 1000);
		assert_non_null(e);
		assert_int_equal(item_of(e)->id, order[i]);
		assert_valid(wheel);
	}
	/* Inserted straight into the current slot, equal times among them. */
	now = t + 1000;
	for (int i = 0; i < 8; i++)
		put(wheel, &items[i], now + offsets[i]);
	assert_valid(wheel);
	for (int i = 0; i < 8; i++)
		assert_int_equal(item_of(tmo__wheel_pop_due(wheel, now + 1000))->id, order[i]);
	free(wheel);
}

static void far_future_beyond_every_level(void **state)
{
	struct tmo__wheel *wheel = new_wheel();
	struct item year = { 0 }, big = { 0 }, max1 = { 0 }, max = { 0 }, soon = { 0 };
	int64_t now = BASE;

	(void)tmo__wheel_pop_due(wheel, now);
	put(wheel, &max, INT64_MAX);
	put(wheel, &max1, INT64_MAX - 1);
	put(wheel, &big, INT64_C(1) << 62);
	put(wheel, &year, now + 365 * 24 * 3600 * TMO_NSEC_PER_SEC);
	put(wheel, &soon, now + 10 * TMO_NSEC_PER_MSEC);
	assert_valid(wheel);
	assert_true(tmo__wheel_wake_time(wheel, now) <= soon.entry.when);
	assert_int_equal(pop_all(wheel, soon.entry.when), 1);
	assert_int_equal(pop_all(wheel, year.entry.when - 1), 0);
	assert_int_equal(pop_all(wheel, year.entry.when), 1);
	assert_int_equal(pop_all(wheel, (INT64_C(1) << 62) - 1), 0);
	assert_int_equal(pop_all(wheel, INT64_C(1) << 62), 1);
	assert_int_equal(pop_all(wheel, INT64_MAX - 2), 0);
	assert_true(tmo__wheel_wake_time(wheel, INT64_MAX - 2) <= INT64_MAX - 1);
	assert_ptr_equal(item_of(tmo__wheel_pop_due(wheel, INT64_MAX)), &max1);
	assert_ptr_equal(item_of(tmo__wheel_pop_due(wheel, INT64_MAX)), &max);
	assert_int_equal(wheel->count, 0);
	assert_valid(wheel);
	/* The wheel's clock is at the very end now: everything inserted is current. */
	put(wheel, &soon, BASE);
	assert_valid(wheel);
	assert_ptr_equal(item_of(tmo__wheel_pop_due(wheel, INT64_MAX)), &soon);
	free(wheel);
}

/* A handler between two pops removes an entry that is due, and re-arms the one just popped. */
static void handlers_may_change_the_wheel_between_pops(void **state)
{
	struct tmo__wheel *wheel = new_wheel();
	struct item a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 }, d = { .id = 4 };
	int64_t now = BASE;

	(void)tmo__wheel_pop_due(wheel, now);
	put(wheel, &a, now + 1 * TICK);
	put(wheel, &b, now + 2 * TICK);
	put(wheel, &c, now + 3 * TICK);
	put(wheel, &d, now + 3 * TICK + 1);
	now += 10 * TICK;
	struct tmo__wheel_entry *e = tmo__wheel_pop_due(wheel, now);
	assert_ptr_equal(item_of(e), &a);
	/* a's handler: cancel b (due, not yet popped), re-arm a for later, then again for now. */
	tmo__wheel_remove(wheel, &b.entry);
	assert_valid(wheel);
	tmo__wheel_reset(wheel, &a.entry, false, now + TMO_NSEC_PER_SEC);
	assert_valid(wheel);
	assert_ptr_equal(item_of(tmo__wheel_pop_due(wheel, now)), &c);
	/* c's handler: re-arm c itself due now: it comes out again in this loop. */
	tmo__wheel_reset(wheel, &c.entry, false, now);
	assert_ptr_equal(item_of(tmo__wheel_pop_due(wheel, now)), &d);
	assert_ptr_equal(item_of(tmo__wheel_pop_due(wheel, now)), &c);
	assert_null(tmo__wheel_pop_due(wheel, now));
	assert_int_equal(wheel->count, 1);
	assert_int_equal(tmo__wheel_wake_time(wheel, now) <= now + TMO_NSEC_PER_SEC, 1);
	/* Removing the last due entry of the current slot from within the loop. */
	put(wheel, &b, now - 5);
	tmo__wheel_remove(wheel, &b.entry);
	assert_null(tmo__wheel_pop_due(wheel, now));
	assert_valid(wheel);
	free(wheel);
}

static void reset_earlier_and_later(void **state)
{
	struct tmo__wheel *wheel = new_wheel();
	struct item it = { 0 }, other = { 0 };
	int64_t now = BASE;

	(void)tmo__wheel_pop_due(wheel, now);
	put(wheel, &other, now + 3 * TMO_NSEC_PER_SEC);
	put(wheel, &it, now + TMO_NSEC_PER_SEC);
	tmo__wheel_reset(wheel, &it.entry, true, now + 10 * TMO_NSEC_PER_MSEC);
	assert_valid(wheel);
	assert_true(tmo__wheel_wake_time(wheel, now) <= now + 10 * TMO_NSEC_PER_MSEC);
	tmo__wheel_reset(wheel, &it.entry, true, now + 2 * TMO_NSEC_PER_SEC);
	assert_valid(wheel);
	assert_int_equal(pop_all(wheel, now + TMO_NSEC_PER_SEC), 0);
	assert_int_equal(pop_all(wheel, now + 2 * TMO_NSEC_PER_SEC - 1), 0);
	/* Reset within the current slot, earlier and later. */
	int64_t t = now + 2 * TMO_NSEC_PER_SEC;
	tmo__wheel_reset(wheel, &it.entry, true, t + 100);
	tmo__wheel_reset(wheel, &it.entry, true, t - 100);
	assert_int_equal(tmo__wheel_wake_time(wheel, t - 200), t - 100);
	assert_int_equal(pop_all(wheel, t), 1);
	assert_int_equal(pop_all(wheel, now + 3 * TMO_NSEC_PER_SEC), 1);
	free(wheel);
}

/* core-heap's checks, carried over: many equal times out in order; removal from anywhere. */
static void pops_in_order(void **state)
{
	enum { N = 2000 };
	struct tmo__wheel *wheel = new_wheel();
	struct item *items = calloc(N, sizeof(*items));

	srand(1);
	for (int i = 0; i < N; i++) {
		put(wheel, &items[i], BASE + (rand() % 500) * 7919); /* many equal times */
		if (i % 97 == 0)
			assert_valid(wheel);
	}
	assert_int_equal(wheel->count, N);
	assert_int_equal(pop_all(wheel, INT64_MAX), N);
	assert_int_equal(wheel->count, 0);
	free(items);
	free(wheel);
}

static void removes_from_anywhere(void **state)
{
	enum { N = 1500, ROUNDS = 20000 };
	struct tmo__wheel *wheel = new_wheel();
	struct item *items = calloc(N, sizeof(*items));
	uint32_t count = 0;

	srand(2);
	for (int r = 0; r < ROUNDS; r++) {
		struct item *it = &items[rand() % N];
		if (it->in_wheel) {
			tmo__wheel_remove(wheel, &it->entry);
			it->in_wheel = 0;
			count--;
		} else {
			put(wheel, it, (int64_t)(rand() % 100000) * 10007);
			count++;
		}
		assert_int_equal(wheel->count, count);
		if (r % 101 == 0)
			assert_valid(wheel);
	}
	/* The wake time is the smallest time still in, or the start of its slot. */
	int64_t smallest = INT64_MAX;
	for (int i = 0; i < N; i++)
		if (items[i].in_wheel && items[i].entry.when < smallest)
			smallest = items[i].entry.when;
	int64_t wake = tmo__wheel_wake_time(wheel, 0);
	assert_true(wake <= smallest);
	assert_int_equal(pop_all(wheel, smallest - 1), 0);
	assert_true(pop_all(wheel, smallest) >= 1);
	assert_valid(wheel);
	free(items);
	free(wheel);
}

/* Decreasing and increasing times, every third withdrawn, the rest out in order. */
static void monotonic_inserts_pop_in_order(void **state)
{
	enum { N = 3000 };
	struct item *items = calloc(N, sizeof(*items));

	for (int direction = 0; direction < 2; direction++) {
		struct tmo__wheel *wheel = new_wheel();

		for (int i = 0; i < N; i++)
			put(wheel, &items[i], BASE + (direction ? i : N - i) * 3 * TICK / 7);
		assert_valid(wheel);
		for (int i = 0; i < N; i += 3)
			tmo__wheel_remove(wheel, &items[i].entry);
		assert_valid(wheel);
		assert_int_equal(pop_all(wheel, INT64_MAX), N - (N + 2) / 3);
		assert_int_equal(wheel->count, 0);
		free(wheel);
	}
	free(items);
}

static void check_catches_a_broken_wheel(void **state)
{
	struct tmo__wheel *wheel = new_wheel();
	struct item a = { 0 }, b = { 0 }, c = { 0 };

	(void)tmo__wheel_pop_due(wheel, BASE);
	put(wheel, &a, BASE + 1);
	put(wheel, &c, BASE + 2);
	put(wheel, &b, BASE + TMO_NSEC_PER_SEC);
	assert_valid(wheel);
	a.entry.when = BASE + 3; /* the current slot out of order, behind the wheel's back */
	assert_non_null(tmo__wheel_check(wheel));
	a.entry.when = BASE + 1;
	assert_null(tmo__wheel_check(wheel));
	b.entry.when = BASE + 5 * TMO_NSEC_PER_SEC; /* b now maps to another slot */
	assert_non_null(tmo__wheel_check(wheel));
	b.entry.when = BASE + TMO_NSEC_PER_SEC;
	wheel->count++;
	assert_non_null(tmo__wheel_check(wheel));
	wheel->count--;
	wheel->occupied[3] |= 1;
	assert_non_null(tmo__wheel_check(wheel));
	wheel->occupied[3] = 0;
	assert_null(tmo__wheel_check(wheel));
	uint64_t horizon = wheel->horizon;
	wheel->horizon = UINT64_MAX; /* b's slot begins before it */
	assert_non_null(tmo__wheel_check(wheel));
	wheel->horizon = horizon;
	assert_null(tmo__wheel_check(wheel));
	int64_t hint = wheel->wake_hint;
	wheel->wake_hint = INT64_MAX; /* b is due before it */
	assert_non_null(tmo__wheel_check(wheel));
	wheel->wake_hint = hint;
	assert_null(tmo__wheel_check(wheel));
	free(wheel);
}

/* ---- the model: a plain array, against the wheel, for many random operations ------------- */

enum { MODEL_ITEMS = 4096, MODEL_OPS = 200000 };

static uint64_t rng = 88172645463325252u;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A time around `now`: in the past, this tick, microseconds, milliseconds, seconds, hours, or
 * at the very end of time. */
static int64_t random_when(int64_t now)
{
	uint64_t r = next_random();

	switch (r % 16) {
	case 0:
		return now - (int64_t)(r >> 20) % (10 * TMO_NSEC_PER_SEC);
	case 1:
		return now;
	case 2:
		return (now & ~(TICK - 1)) + (int64_t)(r >> 20) % TICK;
	case 3:
	case 4:
	case 5:
		return now + (int64_t)(r >> 20) % (100 * TMO_NSEC_PER_USEC);
	case 6:
	case 7:
	case 8:
	case 9:
		return now + (int64_t)(r >> 20) % (50 * TMO_NSEC_PER_MSEC);
	case 10:
	case 11:
	case 12:
		return now + (int64_t)(r >> 20) % (5 * TMO_NSEC_PER_SEC);
	case 13:
		return now + (int64_t)(r >> 20) % (INT64_C(3600) * TMO_NSEC_PER_SEC);
	case 14:
		return INT64_MAX - (int64_t)(r >> 40);
	default:
		return -(int64_t)(r >> 40);
	}
}

struct due_count {
	uint32_t due;
	int64_t earliest;
};

static void count_visit(void *ctx, const struct tmo__wheel_entry *entry)
{
	struct due_count *c = ctx;

	c->due++;
	if (entry->when < c->earliest)
		c->earliest = entry->when;
}

/* Checks the wheel's walk and wake time against the model at `now`. */
static void compare_with_model(struct tmo__wheel *wheel, const struct item *items, int64_t now)
{
	uint32_t due = 0, held = 0;
	int64_t earliest = INT64_MAX, earliest_due = INT64_MAX;

	for (int i = 0; i < MODEL_ITEMS; i++) {
		if (!items[i].in_wheel)
			continue;
		held++;
		if (items[i].entry.when < earliest)
			earliest = items[i].entry.when;
		if (items[i].entry.when <= now) {
			due++;
			if (items[i].entry.when < earliest_due)
				earliest_due = items[i].entry.when;
		}
	}
	assert_int_equal(wheel->count, held);
	struct due_count c = { 0, INT64_MAX };
	(void)tmo__wheel_walk_due(wheel, now, UINT32_MAX, count_visit, &c);
	assert_int_equal(c.due, due);
	assert_int_equal(c.earliest, earliest_due);
	int64_t wake = tmo__wheel_wake_time(wheel, now);
	assert_true(wake <= earliest);
	if (due)
		assert_true(wake <= now);
	if (!held)
		assert_int_equal(wake, INT64_MAX);
}

static void random_operations_against_a_model(void **state)
{
	struct tmo__wheel *wheel = new_wheel();
	struct item *items = calloc(MODEL_ITEMS, sizeof(*items));
	int64_t now = BASE;
	uint64_t popped = 0, inserted = 0, late_inserts = 0;

	for (int i = 0; i < MODEL_ITEMS; i++)
		items[i].id = i;
	(void)tmo__wheel_pop_due(wheel, now);
	for (int op = 0; op < MODEL_OPS; op++) {
		uint64_t r = next_random();
		struct item *it = &items[(r >> 8) % MODEL_ITEMS];

		switch (r % 8) {
		case 0: /* insert or reset */
		case 1:
		case 2:
			tmo__wheel_reset(wheel, &it->entry, it->in_wheel, random_when(now));
			it->in_wheel = 1;
			inserted++;
			break;
		case 3: /* remove */
		case 4:
			if (it->in_wheel) {
				tmo__wheel_remove(wheel, &it->entry);
				it->in_wheel = 0;
			}
			break;
		default: { /* time passes; everything due comes out, handlers meddling */
			uint64_t step = next_random();
			switch (step % 8) {
			case 0:
				break; /* the same instant again */
			case 1:
				now += (int64_t)(step >> 8) % (10 * TMO_NSEC_PER_SEC);
				break;
			case 2:
				now += (int64_t)(step >> 8) % (20 * TMO_NSEC_PER_MSEC);
				break;
			default:
				now += (int64_t)(step >> 8) % (200 * TMO_NSEC_PER_USEC);
				break;
			}
			if (op % 50 == 0)
				compare_with_model(wheel, items, now);
			struct tmo__wheel_entry *e;
			int64_t last = INT64_MIN;
			while ((e = tmo__wheel_pop_due(wheel, now))) {
				struct item *p = item_of(e);
				assert_true(p->in_wheel);
				assert_true(e->when <= now); /* never early */
				assert_true(e->when >= last); /* in order, unless re-armed behind */
				last = e->when;
				p->in_wheel = 0;
				popped++;
				uint64_t h = next_random();
				struct item *other = &items[(h >> 8) % MODEL_ITEMS];
				switch (h % 8) {
				case 0: /* re-arm the popped entry */
					tmo__wheel_reset(wheel, e, false, random_when(now));
					p->in_wheel = 1;
					if (e->when < last)
						last = INT64_MIN, late_inserts++;
					break;
				case 1: /* cancel another */
					if (other->in_wheel) {
						tmo__wheel_remove(wheel, &other->entry);
						other->in_wheel = 0;
					}
					break;
				case 2: /* arm or move another */
					tmo__wheel_reset(wheel, &other->entry, other->in_wheel,
							 random_when(now));
					other->in_wheel = 1;
					if (other->entry.when < last)
						last = INT64_MIN, late_inserts++;
					break;
				default:
					break;
				}
			}
			/* Never lost: nothing due is left behind. */
			for (int i = 0; op % 16 == 0 && i < MODEL_ITEMS; i++)
				if (items[i].in_wheel && items[i].entry.when <= now)
					fail_msg("item %d due at %lld left in the wheel at %lld", i,
						 (long long)items[i].entry.when, (long long)now);
			break;
		}
		}
		if (op % 64 == 0)
			assert_valid(wheel);
	}
	compare_with_model(wheel, items, now);
	assert_valid(wheel);
	/* The rest comes out by the end of time. */
	while (tmo__wheel_pop_due(wheel, INT64_MAX))
		popped++;
	assert_int_equal(wheel->count, 0);
	print_message("%llu inserted or moved, %llu popped, %llu re-armed behind the last pop\n",
		      (unsigned long long)inserted, (unsigned long long)popped,
		      (unsigned long long)late_inserts);
	free(items);
	free(wheel);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_wheel),
		cmocka_unit_test(same_time_comes_out_together_in_insertion_order),
		cmocka_unit_test(past_and_present_times_are_due_at_once),
		cmocka_unit_test(never_early_at_slot_edges),
		cmocka_unit_test(one_tick_comes_out_in_order),
		cmocka_unit_test(far_future_beyond_every_level),
		cmocka_unit_test(handlers_may_change_the_wheel_between_pops),
		cmocka_unit_test(reset_earlier_and_later),
		cmocka_unit_test(pops_in_order),
		cmocka_unit_test(removes_from_anywhere),
		cmocka_unit_test(monotonic_inserts_pop_in_order),
		cmocka_unit_test(check_catches_a_broken_wheel),
		cmocka_unit_test(random_operations_against_a_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
