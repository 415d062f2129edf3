/* The README's example: read from stdin, giving up after 1.5 seconds. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <tmo/tmo.h>

static char buf[4096];

static void on_read(struct tmo_op *op, int32_t res)
{
	if (res >= 0)
		printf("read %d bytes\n", res);
	else if (res == -ETIME)
		printf("no input within 1.5 s\n");
	else
		printf("read failed: %s\n", strerror(-res));
}

int main(void)
{
	struct tmo_loop loop;
	struct tmo_op op = { 0 };
	char msg[256];

	int ret = tmo_loop_init(&loop, NULL);
	if (ret < 0) {
		tmo_loop_describe_error(ret, msg, sizeof(msg)); /* names the cause: sysctl, seccomp... */
		fprintf(stderr, "%s\n", msg);
		return 1;
	}
	tmo_prep_read(&op, STDIN_FILENO, buf, sizeof(buf), (uint64_t)-1);
	ret = tmo_op_start(&loop, &op, tmo_in_sec(1.5), on_read);
	if (ret < 0) {
		fprintf(stderr, "start: %s\n", strerror(-ret));
		return 1;
	}
	tmo_loop_run(&loop, TMO_RUN_DEFAULT); /* returns when no operation is left */
	tmo_loop_close(&loop);
	return 0;
}
