#include "timer_heap.h"

#include <stddef.h>

void tmo__heap_init(struct tmo__heap *heap, tmo__heap_less less)
{
	heap->root = NULL;
	heap->count = 0;
	heap->less = less;
}

struct tmo__heap_node *tmo__heap_min(const struct tmo__heap *heap)
{
	return heap->root;
}

/* Joins two detached trees: the one with the larger key becomes the first child of the other. */
static struct tmo__heap_node *meld(const struct tmo__heap *heap, struct tmo__heap_node *a,
				   struct tmo__heap_node *b)
{
	if (heap->less(b, a)) {
		struct tmo__heap_node *t = a;
		a = b;
		b = t;
	}
	b->prev = a;
	b->next = a->child;
	if (a->child)
		a->child->prev = b;
	a->child = b;
	a->next = NULL;
	a->prev = NULL;
	return a;
}

/*
 * Turns a list of sibling trees into one tree: meld them in pairs left to right, then meld
 * the pairs right to left (the two passes are what make the amortised bound logarithmic).
 */
static struct tmo__heap_node *merge_siblings(const struct tmo__heap *heap,
					     struct tmo__heap_node *first)
{
	struct tmo__heap_node *pairs = NULL; /* melded pairs, most recent first, via ->next */

	while (first) {
		struct tmo__heap_node *a = first;
		struct tmo__heap_node *b = a->next;
		struct tmo__heap_node *tree;

		if (b) {
			first = b->next;
			tree = meld(heap, a, b);
		} else {
			first = NULL;
			tree = a;
			tree->prev = NULL;
		}
		tree->next = pairs;
		pairs = tree;
	}
	if (!pairs)
		return NULL;
	struct tmo__heap_node *result = pairs;
	pairs = pairs->next;
	result->next = NULL;
	while (pairs) {
		struct tmo__heap_node *following = pairs->next;
		pairs->next = NULL;
		result = meld(heap, result, pairs);
		pairs = following;
	}
	return result;
}

void tmo__heap_insert(struct tmo__heap *heap, struct tmo__heap_node *node)
{
	node->child = node->next = node->prev = NULL;
	heap->root = heap->root ? meld(heap, heap->root, node) : node;
	heap->count++;
}

void tmo__heap_remove(struct tmo__heap *heap, struct tmo__heap_node *node)
{
	heap->count--;
	if (node == heap->root) {
		heap->root = merge_siblings(heap, node->child);
		return;
	}
	/* Unlink from the sibling list (prev is the parent if node is a first child). */
	if (node->prev->child == node)
		node->prev->child = node->next;
	else
		node->prev->next = node->next;
	if (node->next)
		node->next->prev = node->prev;

	struct tmo__heap_node *subtree = merge_siblings(heap, node->child);
	if (subtree)
		heap->root = meld(heap, heap->root, subtree);
}

/* Counts the nodes under `parent` (excluded), checking order and links on the way. */
static bool validate_children(const struct tmo__heap *heap, const struct tmo__heap_node *parent,
			      uint32_t *seen)
{
	const struct tmo__heap_node *expected_prev = parent;

	for (const struct tmo__heap_node *c = parent->child; c; c = c->next) {
		if (c->prev != expected_prev || heap->less(c, parent))
			return false;
		if (++*seen > heap->count)
			return false; /* a cycle, or more nodes than inserted */
		if (!validate_children(heap, c, seen))
			return false;
		expected_prev = c;
	}
	return true;
}

bool tmo__heap_validate(const struct tmo__heap *heap)
{
	const struct tmo__heap_node *root = heap->root;
	uint32_t seen = 0;

	if (!root)
		return heap->count == 0;
	if (root->prev || root->next)
		return false;
	seen = 1;
	return validate_children(heap, root, &seen) && seen == heap->count;
}
