/*
 * Reproducer (found by fuzz_api): a reader resumed outside any scope, right after a pause whose
 * cancelled read the loop has not reaped yet, stayed in the scope it was started in, and that
 * scope's deadline ended it (END -ETIME, limit "scope"; fixed).
 *
 * stream.h: each read "joins the loop's current scope at the moment it is issued ...: the scope
 * current at tmo_reader_start / tmo_reader_resume / tmo_writer_write". Here the reader starts
 * inside a scope with a 5 ms deadline, the scope is exited, the reader is paused and resumed
 * at once, outside any scope. Expected: END -ETIME, limit "gap", at about 30 ms (its gap
 * limit). Before the fix (6c2ae04): END -ETIME, limit "scope", at 5 ms. With the loop run
 * between pause and resume (so that the cancelled read is reaped), the gap ended it already.
 *
 * Build and run from the repository's root, after a build of the library in build/fuzz:
 *   clang -D_GNU_SOURCE -Iinclude tests/fuzz/crashers/reader_resume_scope.c build/fuzz/libtmo.a \
 *     -fsanitize=address,undefined,fuzzer-no-link -luring -lpthread -lm -o /tmp/reader_resume_scope
 *   /tmp/reader_resume_scope      # exit 1 ("limit scope") while the bug is there, else 0
 *   /tmp/reader_resume_scope run  # the loop run between pause and resume
 */
#include <stdio.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	int run_between = argc > 1 && !strcmp(argv[1], "run");
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
	tmo_scope_enter(&loop, &scope, tmo_in_ms(5), 0);
	tmo_reader_start(&rd, on_event);
	tmo_scope_exit(&scope);
	tmo_loop_run(&loop, TMO_RUN_NOWAIT); /* the first read is in the kernel */
	tmo_reader_pause(&rd);
	if (run_between)
		tmo_loop_run(&loop, TMO_RUN_NOWAIT);
	tmo_reader_resume(&rd); /* outside any scope */
	while (!ended && tmo_now() < t0 + TMO_NSEC_PER_SEC)
		tmo_loop_run_until(&loop, tmo_in_ms(5));
	tmo_loop_run(&loop, TMO_RUN_DEFAULT);
	tmo_loop_close(&loop);
	return !ended || end_limit != TMO_LIMIT_GAP;
}
