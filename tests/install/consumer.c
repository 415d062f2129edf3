/* Compiled against an installed tmo (pkg-config and find_package): proves the headers, the
 * libraries and the package files are usable outside the source tree. */
#include <stdio.h>
#include <tmo/tmo.h>

static int done;

static void on_nop(struct tmo_op *op, int32_t res)
{
	done = res == 0 ? 1 : -1;
}

int main(void)
{
	struct tmo_loop loop;
	struct tmo_op op = { 0 };
	char msg[256];
	int ret = tmo_loop_init(&loop, NULL);

	if (ret) {
		tmo_loop_describe_error(ret, msg, sizeof(msg));
		fprintf(stderr, "%s\n", msg);
		return 1;
	}
	tmo_prep_nop(&op);
	ret = tmo_op_start(&loop, &op, tmo_in_sec(1.0), on_nop);
	if (!ret)
		ret = tmo_loop_run(&loop, TMO_RUN_DEFAULT);
	tmo_loop_close(&loop);
	if (ret || done != 1)
		return 1;
	printf("consumer: tmo %s ok\n", TMO_VERSION_STRING);
	return 0;
}
