/*
 * tmo demonstration: two reads on pipes, each with a deadline the kernel enforces.
 *   1. Nobody writes: the read ends with -ETIME at its 200 ms deadline.
 *   2. A 50 ms timer writes to the pipe: the read returns the bytes well before its 500 ms
 *      deadline, undisturbed by it.
 * Exits 0 if both behave so, 1 otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <tmo/tmo.h>

struct reader {
	struct tmo_op op;
	const char *name;
	int64_t started;
	int32_t res;
	double elapsed_ms;
	char buf[64];
};

struct writer {
	struct tmo_op op;
	int fd;
};

static void on_read(struct tmo_op *op, int32_t res)
{
	struct reader *r = op->data;

	r->res = res;
	r->elapsed_ms = (double)(tmo_now() - r->started) / 1e6;
	if (res >= 0)
		printf("%-26s read %d bytes (\"%.*s\") after %6.1f ms\n", r->name, res, res, r->buf,
		       r->elapsed_ms);
	else
		printf("%-26s %s (%s) after %6.1f ms\n", r->name, res == -ETIME ? "timed out" : "failed",
		       strerror(-res), r->elapsed_ms);
}

static void on_timer(struct tmo_op *op, int32_t res)
{
	struct writer *w = op->data;
	static const char msg[] = "hello";

	if (res == 0 && write(w->fd, msg, sizeof(msg) - 1) < 0)
		perror("write");
}

static int start_read(struct tmo_loop *loop, struct reader *r, int fd, int64_t timeout_ms)
{
	r->started = tmo_now();
	r->op.data = r;
	tmo_prep_read(&r->op, fd, r->buf, sizeof(r->buf), (uint64_t)-1);
	return tmo_op_start(loop, &r->op, tmo_in_ms(timeout_ms), on_read);
}

int main(void)
{
	struct tmo_loop loop;
	char msg[256];
	int silent[2], talking[2];

	int ret = tmo_loop_init(&loop, NULL);
	if (ret < 0) {
		tmo_loop_describe_error(ret, msg, sizeof(msg));
		fprintf(stderr, "%s\n", msg);
		return 1;
	}
	if (pipe(silent) || pipe(talking)) {
		perror("pipe");
		return 1;
	}

	struct reader quiet = { .name = "read, nobody writes:" };
	struct reader answered = { .name = "read, writer at 50 ms:" };
	struct writer w = { .fd = talking[1] };

	printf("tmo %s demo: reads with deadlines enforced by the kernel (io_uring linked "
	       "timeouts)\n", TMO_VERSION_STRING);
	printf("deadlines: 200 ms for the first read, 500 ms for the second\n\n");
	start_read(&loop, &quiet, silent[0], 200);
	start_read(&loop, &answered, talking[0], 500);
	w.op.data = &w;
	tmo_prep_sleep(&w.op, tmo_in_ms(50));
	tmo_op_start(&loop, &w.op, TMO_NEVER, on_timer);

	ret = tmo_loop_run(&loop, TMO_RUN_DEFAULT);
	if (ret < 0) {
		fprintf(stderr, "tmo_loop_run: %s\n", strerror(-ret));
		return 1;
	}
	tmo_loop_close(&loop);

	int ok = quiet.res == -ETIME && quiet.elapsed_ms >= 200.0 && answered.res == 5 &&
		 answered.elapsed_ms < 500.0;
	printf("\n%s\n", ok ? "ok: the deadline cut the idle read short and left the other alone"
			    : "FAILED: outcomes differ from what the deadlines promise");
	return ok ? 0 : 1;
}
