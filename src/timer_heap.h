/*
 * An intrusive pairing heap of deadlines. Each element embeds a struct tmo__heap_node, so
 * inserting and removing allocate nothing.
 *
 * Why a pairing heap: most deadlines are withdrawn (the op completes) long before they fire,
 * and most are inserted in increasing order (now + a fixed timeout). A binary heap pays
 * O(log n) pointer-chasing for both; here an insert is O(1) (a new, later deadline becomes a
 * child of the root) and removing such a childless node is O(1). Removing the minimum, or a
 * node with children, costs amortised O(log n).
 *
 * Links: `child` is the first child; `next` the next sibling; `prev` the previous sibling, or
 * the parent for a first child (NULL for the root).
 */
#ifndef TMO_SRC_TIMER_HEAP_H
#define TMO_SRC_TIMER_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#include "tmo/op.h"

typedef bool (*tmo__heap_less)(const struct tmo__heap_node *a, const struct tmo__heap_node *b);

struct tmo__heap {
	struct tmo__heap_node *root;
	uint32_t count;
	tmo__heap_less less;
};

void tmo__heap_init(struct tmo__heap *heap, tmo__heap_less less);
struct tmo__heap_node *tmo__heap_min(const struct tmo__heap *heap);
void tmo__heap_insert(struct tmo__heap *heap, struct tmo__heap_node *node);
void tmo__heap_remove(struct tmo__heap *heap, struct tmo__heap_node *node);
/* Checks links, order and count; returns false on the first broken invariant. O(n). */
bool tmo__heap_validate(const struct tmo__heap *heap);

#endif
