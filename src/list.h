/*
 * Private to tmo: the one intrusive doubly-linked list every subsystem uses (ops in their
 * scope or group, a group's waiting and done members, child containers, a pool's queued and
 * waiting jobs, the loop's deferred queue). The link lives in the listed struct (struct
 * tmo__link, include/tmo/op.h) and the list is two pointers, both NULL when empty, so zeroed
 * memory is a valid unlinked link and a valid empty list: nothing needs an init call, as
 * every tmo struct is usable zeroed. Insertion, removal and popping are O(1).
 */
#ifndef TMO_SRC_LIST_H
#define TMO_SRC_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "tmo/op.h"

/* The struct of `type` whose `member` is the link (or other member) at `ptr`. */
#define tmo__container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline bool tmo__list_empty(const struct tmo__list *list)
{
	return !list->first;
}

static inline void tmo__list_push_back(struct tmo__list *list, struct tmo__link *link)
{
	link->next = NULL;
	link->prev = list->last;
	if (list->last)
		list->last->next = link;
	else
		list->first = link;
	list->last = link;
}

static inline void tmo__list_push_front(struct tmo__list *list, struct tmo__link *link)
{
	link->prev = NULL;
	link->next = list->first;
	if (list->first)
		list->first->prev = link;
	else
		list->last = link;
	list->first = link;
}

/* Links `link` right after `after`, which is on `list`. */
static inline void tmo__list_insert_after(struct tmo__list *list, struct tmo__link *after,
					  struct tmo__link *link)
{
	link->prev = after;
	link->next = after->next;
	if (after->next)
		after->next->prev = link;
	else
		list->last = link;
	after->next = link;
}

/* Unlinks `link`, which must be on `list`. */
static inline void tmo__list_remove(struct tmo__list *list, struct tmo__link *link)
{
	if (link->prev)
		link->prev->next = link->next;
	else
		list->first = link->next;
	if (link->next)
		link->next->prev = link->prev;
	else
		list->last = link->prev;
	link->next = link->prev = NULL;
}

/* Unlinks and returns the first link, or NULL if the list is empty. */
static inline struct tmo__link *tmo__list_pop_front(struct tmo__list *list)
{
	struct tmo__link *link = list->first;

	if (link)
		tmo__list_remove(list, link);
	return link;
}

/* Moves every link of `from` to the end of `to`, leaving `from` empty. */
static inline void tmo__list_splice_back(struct tmo__list *to, struct tmo__list *from)
{
	if (!from->first)
		return;
	if (to->last) {
		to->last->next = from->first;
		from->first->prev = to->last;
	} else {
		to->first = from->first;
	}
	to->last = from->last;
	from->first = from->last = NULL;
}

#endif
