/*
 * Reproducer (found by fuzz_api, fixed in 5344b3c): a reader resumed inside a scope and paused
 * again before any read joined that scope, then resumed outside any scope, was still ended by
 * that scope's deadline.
 *
 * stream.h: each read joins "the scope current at tmo_reader_start / tmo_reader_resume". The
 * reader starts outside any scope and is paused at once; a scope with a 5 ms deadline is
 * entered, the reader resumed in it and paused again (the loop not run meanwhile), the scope
 * exited; the loop runs; the reader is resumed outside any scope. Expected: END -ETIME, limit
 * "gap", at about 30 ms (its gap limit). Before the fix: END -ETIME, limit "scope", at 5 ms.
 *
 * Build and run from the repository's root, after a build of the library in build/fuzz:
 *   clang -D_GNU_SOURCE -Iinclude tests/fuzz/crashers/reader_resume_twice.c build/fuzz/libtmo.a \
 *     -fsanitize=address,undefined,fuzzer-no-link -luring -lpthread -lm -o /tmp/reader_resume_twice
 *   /tmp/reader_resume_twice      # exit 1 ("limit scope") while the bug is there, else 0
 */
#include <stdio.h>
#include <sys/socket.h>

#include <tmo/tmo.h>

static int ended;
static enum tmo_limit end_limit;
static int64_t t0;

static void on_event(struct tmo_reader *r, const struct tmo_reader_event *ev)
{
	if (ev->kind != TMO_READER_END)
		return;
	printf("END %d, limit %s, at %.1f ms\n", ev->error, tmo_limit_name(ev->limit),
	       (tmo_now() - t0) / 1e6);
	ended = 1;
	end_limit = ev->limit;
}

int main(void)
{
	struct tmo_loop loop;
	struct tmo_reader rd = { 0 };
	struct tmo_scope scope = { 0 };
	static char buf[16];
	int fds[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) || tmo_loop_init(&loop, NULL))
		return 2;
	struct tmo_reader_options o = { .limits = { .gap_ns = 30 * TMO_NSEC_PER_MSEC } };
	tmo_reader_init(&rd, &loop, fds[0], buf, sizeof buf, &o);
	t0 = tmo_now();
	tmo_reader_start(&rd, on_event); /* outside any scope */
	tmo_reader_pause(&rd);
	tmo_scope_enter(&loop, &scope, tmo_in_ms(5), 0);
	tmo_reader_resume(&rd); /* inside the scope */
	tmo_reader_pause(&rd);  /* before the loop ran: no read has joined the scope yet */
	tmo_scope_exit(&scope);
	for (int i = 0; i < 3; i++)
		tmo_loop_run(&loop, TMO_RUN_NOWAIT);
	tmo_reader_resume(&rd); /* outside any scope */
	while (!ended && tmo_now() < t0 + TMO_NSEC_PER_SEC)
		tmo_loop_run_until(&loop, tmo_in_ms(5));
	tmo_loop_run(&loop, TMO_RUN_DEFAULT);
	tmo_loop_close(&loop);
	return !ended || end_limit != TMO_LIMIT_GAP;
}
