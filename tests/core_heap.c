/* core-heap: the intrusive deadline heap, white-box (its invariants checked after every step). */
#include <stdlib.h>

#include "helpers.h"
#include "timer_heap.h"

struct item {
	struct tmo__heap_node node;
	int64_t key;
	int in_heap;
};

static bool item_less(const struct tmo__heap_node *a, const struct tmo__heap_node *b)
{
	return ((const struct item *)a)->key < ((const struct item *)b)->key;
}

static void empty_heap(void **state)
{
	struct tmo__heap heap;

	tmo__heap_init(&heap, item_less);
	assert_null(tmo__heap_min(&heap));
	assert_true(tmo__heap_validate(&heap));
}

static void pops_in_order(void **state)
{
	enum { N = 2000 };
	struct tmo__heap heap;
	struct item *items = calloc(N, sizeof(*items));

	srand(1);
	tmo__heap_init(&heap, item_less);
	for (int i = 0; i < N; i++) {
		items[i].key = rand() % 500; /* many equal keys */
		tmo__heap_insert(&heap, &items[i].node);
		if (i % 97 == 0)
			assert_true(tmo__heap_validate(&heap));
	}
	assert_int_equal(heap.count, N);
	int64_t last = -1;
	for (int i = 0; i < N; i++) {
		struct item *min = (struct item *)tmo__heap_min(&heap);
		assert_non_null(min);
		assert_true(min->key >= last);
		last = min->key;
		tmo__heap_remove(&heap, &min->node);
		if (i % 97 == 0)
			assert_true(tmo__heap_validate(&heap));
	}
	assert_null(tmo__heap_min(&heap));
	free(items);
}

static void removes_from_anywhere(void **state)
{
	enum { N = 1500, ROUNDS = 20000 };
	struct tmo__heap heap;
	struct item *items = calloc(N, sizeof(*items));
	uint32_t count = 0;

	srand(2);
	tmo__heap_init(&heap, item_less);
	for (int r = 0; r < ROUNDS; r++) {
		struct item *it = &items[rand() % N];
		if (it->in_heap) {
			tmo__heap_remove(&heap, &it->node);
			it->in_heap = 0;
			count--;
		} else {
			it->key = rand() % 100000;
			tmo__heap_insert(&heap, &it->node);
			it->in_heap = 1;
			count++;
		}
		assert_int_equal(heap.count, count);
		if (r % 101 == 0)
			assert_true(tmo__heap_validate(&heap));
	}
	/* The minimum is the smallest key still in. */
	int64_t smallest = INT64_MAX;
	for (int i = 0; i < N; i++)
		if (items[i].in_heap && items[i].key < smallest)
			smallest = items[i].key;
	if (count)
		assert_int_equal(((struct item *)tmo__heap_min(&heap))->key, smallest);
	assert_true(tmo__heap_validate(&heap));
	free(items);
}

/* Decreasing keys make each insert the new root (a deep chain); increasing keys make a root
 * with a long list of children. Both must come out in order. */
static void monotonic_inserts_pop_in_order(void **state)
{
	enum { N = 3000 };
	struct item *items = calloc(N, sizeof(*items));

	for (int direction = 0; direction < 2; direction++) {
		struct tmo__heap heap;

		tmo__heap_init(&heap, item_less);
		for (int i = 0; i < N; i++) {
			items[i].key = direction ? i : N - i;
			tmo__heap_insert(&heap, &items[i].node);
		}
		assert_true(tmo__heap_validate(&heap));
		/* Withdraw every third before popping the rest. */
		for (int i = 0; i < N; i += 3)
			tmo__heap_remove(&heap, &items[i].node);
		assert_true(tmo__heap_validate(&heap));
		int64_t last = -1;
		while (tmo__heap_min(&heap)) {
			struct item *min = (struct item *)tmo__heap_min(&heap);
			assert_true(min->key > last);
			last = min->key;
			tmo__heap_remove(&heap, &min->node);
		}
		assert_int_equal(heap.count, 0);
		assert_true(tmo__heap_validate(&heap));
	}
	free(items);
}

static void validate_catches_a_broken_order(void **state)
{
	struct tmo__heap heap;
	struct item a = { .key = 1 }, b = { .key = 2 };

	tmo__heap_init(&heap, item_less);
	tmo__heap_insert(&heap, &a.node);
	tmo__heap_insert(&heap, &b.node);
	assert_true(tmo__heap_validate(&heap));
	a.key = 3; /* corrupt the order behind the heap's back */
	assert_false(tmo__heap_validate(&heap));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_heap),
		cmocka_unit_test(pops_in_order),
		cmocka_unit_test(removes_from_anywhere),
		cmocka_unit_test(monotonic_inserts_pop_in_order),
		cmocka_unit_test(validate_catches_a_broken_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
