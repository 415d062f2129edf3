/*
 * An intrusive binary min-heap of deadlines. Each element embeds a struct tmo__heap_node, so
 * inserting and removing allocate nothing; both are O(log n). The tree is kept complete by
 * addressing slots through the binary digits of their 1-based index, which needs no array.
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
/* Checks parent links, completeness and order; returns false on the first broken invariant. */
bool tmo__heap_validate(const struct tmo__heap *heap);

#endif
