/*
 * Reproducer (found by fuzz_api): a group member that has completed, added again to the same
 * live group, made the group start members it had already finished, over and over (fixed).
 *
 * Group: QUORUM 2, LEAVE_PENDING, max_running 1. A (a nop whose deadline is now) is added and
 * completes -ETIME: it is in the group's done set. B (a sleep of 0.45 ms, deadline 1.5 ms) is
 * added and runs. A is added again (it is not active, so tmo_group_add accepts it) and waits
 * for B's slot. The loop is first run 1.45 ms later. Before the fix: B and A started again and
 * again, B completing -ETIME (cause own) each time, after on_done. Since f180143 the second add
 * is refused (-EBUSY: A is the group's until it is closed), or if it were accepted, each add
 * would have to give exactly one on_member.
 *
 * Build and run from the repository's root, after a build of the library in build/fuzz:
 *   clang -D_GNU_SOURCE -Iinclude tests/fuzz/crashers/group_readd.c build/fuzz/libtmo.a \
 *     -fsanitize=address,undefined,fuzzer-no-link -luring -lpthread -lm -o /tmp/group_readd
 *   /tmp/group_readd
 * Exit 1 and "extra callbacks" while the bug is there (timing: it tries 20 times), else 0.
 */
#include <stdio.h>
#include <stdlib.h>

#include <tmo/tmo.h>

static struct tmo_op a, b;
static int calls_a, calls_b, done_calls;

static void on_member(struct tmo_group *g, struct tmo_op *m, int32_t res)
{
	if (m == &a)
		calls_a++;
	else
		calls_b++;
	if (calls_a + calls_b > 10) /* the bug loops for ever: stop it */
		tmo_group_cancel(g), tmo_loop_stop(g->data);
}

static void on_done(struct tmo_group *g, int32_t res)
{
	done_calls++;
}

static int attempt(void)
{
	struct tmo_loop loop;
	struct tmo_group g = { 0 };
	a = (struct tmo_op){ 0 };
	b = (struct tmo_op){ 0 };
	calls_a = calls_b = done_calls = 0;
	if (tmo_loop_init(&loop, &(struct tmo_loop_options){ .ring_entries = 4 }))
		exit(2);
	int64_t t0 = tmo_now();
	struct tmo_group_options o = { .mode = TMO_GROUP_QUORUM, .quorum = 2,
				       .policy = TMO_GROUP_LEAVE_PENDING, .max_running = 1,
				       .on_done = on_done, .on_member = on_member, .data = &loop };
	tmo_group_init(&loop, &g, &o);
	tmo_prep_nop(&a);
	tmo_group_add(&g, &a, tmo_in_ns(0));
	tmo_loop_run(&loop, TMO_RUN_NOWAIT); /* A: -ETIME, into the done set */
	tmo_prep_sleep(&b, tmo_in_ns(450000));
	tmo_group_add(&g, &b, tmo_in_ns(1500000));
	int again = tmo_group_add(&g, &a, TMO_NEVER); /* not prepared again, not freed */
	tmo_group_seal(&g);
	while (tmo_now() < t0 + 1450000)
		; /* the loop is not run meanwhile */
	int64_t end = tmo_now() + 20 * TMO_NSEC_PER_MSEC;
	while (tmo_now() < end && calls_a + calls_b <= 10)
		tmo_loop_run_until(&loop, tmo_in_ms(5));
	int bad = again != 0 ? 0 : (calls_a != 2 || calls_b != 1 || done_calls != 1);
	if (bad)
		printf("extra callbacks: A %d for 2 adds, B %d for 1 add, on_done %d\n", calls_a,
		       calls_b, done_calls);
	/* Run out and close, so that 20 attempts do not leave 20 rings behind. */
	tmo_loop_run(&loop, TMO_RUN_DEFAULT);
	tmo_group_close(&g);
	tmo_loop_close(&loop);
	return bad;
}

int main(void)
{
	for (int i = 0; i < 20; i++)
		if (attempt())
			return 1;
	puts("no extra callback in 20 attempts");
	return 0;
}
