/* The tree of scopes and groups. */
#include <string.h>

#include "container.h"

void tmo__container_init(struct tmo__container *c, uint8_t kind, int64_t deadline, bool shield)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->deadline = deadline;
	c->shield = shield;
	c->timer.kind = TMO__TIMER_CONTAINER;
}

/* Children and ops are pushed at the front: a cut reaches the newest first, and
 * tmo_group_pending_first/next list members newest first. */
void tmo__container_attach(struct tmo__container *parent, struct tmo__container *child)
{
	child->parent = parent;
	tmo__list_push_front(&parent->child_list, &child->sibling);
	parent->children++;
}

void tmo__container_detach(struct tmo__container *child)
{
	struct tmo__container *parent = child->parent;

	if (!parent)
		return;
	tmo__list_remove(&parent->child_list, &child->sibling);
	child->parent = NULL;
	parent->children--;
}

void tmo__container_add_op(struct tmo__container *c, struct tmo_op *op)
{
	op->_owner = c;
	tmo__list_push_front(&c->op_list, &op->_sibling);
	c->ops++;
}

void tmo__container_remove_op(struct tmo_op *op)
{
	struct tmo__container *c = op->_owner;

	tmo__list_remove(&c->op_list, &op->_sibling);
	c->ops--;
	/* _owner is left set: a group's member callback still needs to find its group. */
}

int64_t tmo__container_effective(const struct tmo__container *c,
				 const struct tmo__container **binding)
{
	int64_t earliest = TMO_NEVER_NS;

	*binding = NULL;
	for (; c; c = c->parent) {
		if (c->deadline < earliest) {
			earliest = c->deadline;
			*binding = c;
		}
		if (c->shield)
			break;
	}
	return earliest;
}

struct tmo_scope *tmo__container_scope(struct tmo__container *c)
{
	while (c && c->kind != TMO__CONTAINER_SCOPE)
		c = c->parent;
	return c ? tmo__scope_of(c) : NULL;
}

void tmo__container_cut(struct tmo__loop_state *st, struct tmo__container *c, int32_t res,
			uint8_t cause, void *obj)
{
	/* Inner containers first: a group cut from here must name this cause, not be finished
	 * by the op waiting for it (which is one of this container's ops). Cuts may unlink
	 * entries, so take each next link first. */
	for (struct tmo__link *link = c->child_list.first, *next; link; link = next) {
		struct tmo__container *child = tmo__container_of(link, struct tmo__container, sibling);

		next = link->next;
		if (child->shield)
			continue; /* a shielded scope keeps its own deadline only */
		if (child->kind == TMO__CONTAINER_GROUP)
			tmo__group_cut(st, tmo__group_of(child), res, cause, obj);
		else
			tmo__container_cut(st, child, res, cause, obj);
	}
	for (struct tmo__link *link = c->op_list.first, *next; link; link = next) {
		next = link->next;
		tmo__op_cut(st, tmo__container_of(link, struct tmo_op, _sibling), res, cause, obj);
	}
}

void tmo__container_check_done(struct tmo__loop_state *st, struct tmo__container *c)
{
	if (c->kind == TMO__CONTAINER_SCOPE)
		tmo__scope_check_done(st, tmo__scope_of(c));
	else
		tmo__group_check_done(st, tmo__group_of(c));
}
