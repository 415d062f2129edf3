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

/*
 * Slot k (1-based, breadth first) is reached from the root by the binary digits of k below its
 * leading one: 0 goes left, 1 goes right. Returns the node at slot k, which must exist.
 */
static struct tmo__heap_node *node_at(const struct tmo__heap *heap, uint32_t k)
{
	struct tmo__heap_node *node = heap->root;
	int bit = 31 - __builtin_clz(k);

	while (--bit >= 0)
		node = (k >> bit) & 1u ? node->right : node->left;
	return node;
}

/* Exchanges `child` with its parent, fixing every link around both. */
static void swap_with_parent(struct tmo__heap *heap, struct tmo__heap_node *child)
{
	struct tmo__heap_node *parent = child->parent;
	struct tmo__heap_node *grand = parent->parent;
	struct tmo__heap_node *child_left = child->left;
	struct tmo__heap_node *child_right = child->right;
	struct tmo__heap_node *sibling;

	if (parent->left == child) {
		sibling = parent->right;
		child->left = parent;
		child->right = sibling;
	} else {
		sibling = parent->left;
		child->left = sibling;
		child->right = parent;
	}
	if (sibling)
		sibling->parent = child;

	parent->left = child_left;
	parent->right = child_right;
	if (child_left)
		child_left->parent = parent;
	if (child_right)
		child_right->parent = parent;

	child->parent = grand;
	parent->parent = child;
	if (!grand)
		heap->root = child;
	else if (grand->left == parent)
		grand->left = child;
	else
		grand->right = child;
}

static void sift_up(struct tmo__heap *heap, struct tmo__heap_node *node)
{
	while (node->parent && heap->less(node, node->parent))
		swap_with_parent(heap, node);
}

static void sift_down(struct tmo__heap *heap, struct tmo__heap_node *node)
{
	for (;;) {
		struct tmo__heap_node *smallest = node;

		if (node->left && heap->less(node->left, smallest))
			smallest = node->left;
		if (node->right && heap->less(node->right, smallest))
			smallest = node->right;
		if (smallest == node)
			return;
		swap_with_parent(heap, smallest);
	}
}

void tmo__heap_insert(struct tmo__heap *heap, struct tmo__heap_node *node)
{
	uint32_t k = ++heap->count;

	node->left = node->right = NULL;
	if (k == 1) {
		node->parent = NULL;
		heap->root = node;
		return;
	}
	struct tmo__heap_node *parent = node_at(heap, k / 2);

	node->parent = parent;
	if (k & 1u)
		parent->right = node;
	else
		parent->left = node;
	sift_up(heap, node);
}

void tmo__heap_remove(struct tmo__heap *heap, struct tmo__heap_node *node)
{
	struct tmo__heap_node *last = node_at(heap, heap->count);

	/* Detach the last slot first, so node's child links are already right when copied. */
	if (last->parent) {
		if (last->parent->left == last)
			last->parent->left = NULL;
		else
			last->parent->right = NULL;
	} else {
		heap->root = NULL;
	}
	heap->count--;
	if (last == node)
		return;

	last->left = node->left;
	last->right = node->right;
	last->parent = node->parent;
	if (last->left)
		last->left->parent = last;
	if (last->right)
		last->right->parent = last;
	if (!last->parent)
		heap->root = last;
	else if (last->parent->left == node)
		last->parent->left = last;
	else
		last->parent->right = last;

	sift_down(heap, last);
	sift_up(heap, last);
}

static bool validate_subtree(const struct tmo__heap *heap, const struct tmo__heap_node *node,
			     uint32_t k, uint32_t *seen)
{
	if (!node)
		return k > heap->count;
	if (k > heap->count)
		return false;
	(*seen)++;
	if (node->left && (node->left->parent != node || heap->less(node->left, node)))
		return false;
	if (node->right && (node->right->parent != node || heap->less(node->right, node)))
		return false;
	if (k > UINT32_MAX / 2)
		return !node->left && !node->right;
	return validate_subtree(heap, node->left, 2 * k, seen) &&
	       validate_subtree(heap, node->right, 2 * k + 1, seen);
}

bool tmo__heap_validate(const struct tmo__heap *heap)
{
	uint32_t seen = 0;

	if (heap->root && heap->root->parent)
		return false;
	return validate_subtree(heap, heap->root, 1, &seen) && seen == heap->count;
}
