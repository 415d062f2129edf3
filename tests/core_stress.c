/*
 * core-stress: random starts, cancels, restarts from callbacks and run modes over 64 ops of
 * every kind (nop, sleep, pipe read, poll, io-wq file read with a release callback), with a
 * thread writing to the pipes, in each ring mode and deadline strategy, on a 4-entry ring so
 * that the submission queue is full most of the time. Checks the engine's promises: exactly one
 * callback per start, no -ETIME before the deadline, no -ECANCELED nobody asked for, no release
 * without an early report, nothing left active.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"

#define MS TMO_NSEC_PER_MSEC
#define NOPS 64

struct stress_op {
	struct tmo_op op;
	int index;
	int kind;
	long started, calls;
	bool cancel_requested;
	bool busy_at_callback;
	tmo_deadline deadline;
};

struct stress {
	struct tmo_loop loop;
	struct stress_op ops[NOPS];
	int pipes[NOPS][2];
	char bufs[NOPS][16];
	int file;
	unsigned seed;
	long starts, calls, early, unrequested_cancel, other_errors, bad_releases;
	atomic_bool stop_writer;
};

/* The test's state: callbacks have only their op, and the random choices need the seed. */
static struct stress *g;

static int rnd(int n)
{
	return (int)(rand_r(&g->seed) % (unsigned)n);
}

static tmo_deadline random_deadline(void)
{
	switch (rnd(5)) {
	case 0:
		return TMO_NEVER;
	case 1:
		return tmo_at(tmo_now() - 1); /* already passed */
	case 2:
		return tmo_in_ms(rnd(3));
	default:
		return tmo_in_ns(rnd(20) * MS + rnd(1000) * TMO_NSEC_PER_USEC);
	}
}

static void on_done(struct tmo_op *op, int32_t res);

static void on_release(struct tmo_op *op, int32_t late_res)
{
	struct stress_op *s = (struct stress_op *)op;

	if (!s->busy_at_callback)
		g->bad_releases++;
}

static void start_random(struct stress_op *s)
{
	if (tmo_op_busy(&s->op))
		return;
	s->kind = rnd(6);
	switch (s->kind) {
	case 0:
		assert_int_equal(tmo_prep_nop(&s->op), 0);
		break;
	case 1:
		assert_int_equal(tmo_prep_sleep(&s->op, tmo_in_ms(rnd(10))), 0);
		break;
	case 2:
	case 3:
		assert_int_equal(tmo_prep_read(&s->op, g->pipes[s->index][0], g->bufs[s->index], 1,
					       (uint64_t)-1),
				 0);
		break;
	case 4:
		assert_int_equal(tmo_prep_poll(&s->op, g->pipes[s->index][0], POLLIN), 0);
		break;
	default:
		assert_int_equal(tmo_prep_read(&s->op, g->file, g->bufs[s->index], 16, 0), 0);
		assert_int_equal(tmo_op_set_flags(&s->op, TMO_OP_BLOCKING), 0);
		assert_int_equal(tmo_op_set_release(&s->op, on_release), 0);
		break;
	}
	s->deadline = random_deadline();
	s->cancel_requested = false;
	s->busy_at_callback = false;
	assert_int_equal(tmo_op_start(&g->loop, &s->op, s->deadline, on_done), 0);
	s->started++;
	g->starts++;
}

static void cancel_random(void)
{
	struct stress_op *s = &g->ops[rnd(NOPS)];

	if (tmo_op_cancel(&s->op) == 0)
		s->cancel_requested = true;
}

static void on_done(struct tmo_op *op, int32_t res)
{
	struct stress_op *s = (struct stress_op *)op;

	s->calls++;
	g->calls++;
	s->busy_at_callback = tmo_op_busy(op);
	if (s->calls != s->started)
		g->other_errors++;
	if (res == -ETIME && tmo_now() < tmo_deadline_ns(s->deadline))
		g->early++;
	else if (res == -ECANCELED && !s->cancel_requested)
		g->unrequested_cancel++;
	else if (res < 0 && res != -ETIME && res != -ECANCELED)
		g->other_errors++;
	/* What callbacks do: restart themselves, cancel and start others. */
	if (rnd(4))
		start_random(s);
	if (rnd(3) == 0)
		cancel_random();
	if (rnd(10) == 0)
		start_random(&g->ops[rnd(NOPS)]);
}

static void *write_randomly(void *arg)
{
	struct stress *st = arg;
	unsigned seed = 99;

	while (!atomic_load(&st->stop_writer)) {
		if (write(st->pipes[rand_r(&seed) % NOPS][1], "x", 1) < 0)
			break;
		usleep(50);
	}
	return NULL;
}

static void stress(enum tmo_loop_mode mode, enum tmo_deadline_strategy deadlines, unsigned seed)
{
	struct tmo_loop_options options = { .mode = mode, .deadlines = deadlines, .ring_entries = 4 };
	pthread_t writer;

	g = calloc(1, sizeof(*g));
	g->seed = seed;
	assert_int_equal(tmo_loop_init(&g->loop, &options), 0);
	g->file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	assert_true(g->file >= 0);
	for (int i = 0; i < NOPS; i++) {
		test_pipe(g->pipes[i]);
		g->ops[i].index = i;
	}
	assert_int_equal(pthread_create(&writer, NULL, write_randomly, g), 0);

	int64_t end = tmo_now() + 700 * MS;
	while (tmo_now() < end) {
		for (int i = 0; i < NOPS; i++)
			if (rnd(2))
				start_random(&g->ops[i]);
		for (int j = 0; j < 4; j++)
			cancel_random();
		int ret;
		switch (rnd(3)) {
		case 0:
			ret = tmo_loop_run(&g->loop, TMO_RUN_ONCE);
			break;
		case 1:
			ret = tmo_loop_run(&g->loop, TMO_RUN_NOWAIT);
			break;
		default:
			ret = tmo_loop_run_until(&g->loop, tmo_in_ms(rnd(5)));
			break;
		}
		assert_true(ret >= 0);
	}

	/* Drain: cancel everything; callbacks may still restart, so feed the pipes and run
	 * with a bound until nothing is active. */
	for (int i = 0; i < NOPS; i++)
		if (tmo_op_cancel(&g->ops[i].op) == 0)
			g->ops[i].cancel_requested = true;
	atomic_store(&g->stop_writer, true);
	assert_int_equal(pthread_join(writer, NULL), 0);
	for (int k = 0; k < 200 && tmo_loop_active(&g->loop); k++) {
		for (int i = 0; i < NOPS; i++)
			test_write_all(g->pipes[i][1], "xxxxxxxx", 8);
		tmo_loop_run_until(&g->loop, tmo_in_ms(50));
	}

	print_message("mode %d strategy %d: %ld starts, %ld callbacks\n", mode, deadlines,
		      g->starts, g->calls);
	assert_true(g->starts > 1000);
	assert_int_equal(g->calls, g->starts);
	for (int i = 0; i < NOPS; i++)
		assert_int_equal(g->ops[i].calls, g->ops[i].started);
	assert_int_equal(g->early, 0);
	assert_int_equal(g->unrequested_cancel, 0);
	assert_int_equal(g->other_errors, 0);
	assert_int_equal(g->bad_releases, 0);
	assert_int_equal(tmo_loop_active(&g->loop), 0);
	assert_int_equal(tmo_loop_close(&g->loop), 0);
	for (int i = 0; i < NOPS; i++) {
		close(g->pipes[i][0]);
		close(g->pipes[i][1]);
	}
	close(g->file);
	free(g);
	g = NULL;
}

static void default_mode_kernel_deadlines(void **state)
{
	stress(TMO_MODE_DEFAULT, TMO_DEADLINES_KERNEL, 1);
}

static void default_mode_loop_deadlines(void **state)
{
	stress(TMO_MODE_DEFAULT, TMO_DEADLINES_LOOP, 2);
}

static void low_latency_mode_kernel_deadlines(void **state)
{
	stress(TMO_MODE_LOW_LATENCY, TMO_DEADLINES_KERNEL, 3);
}

static void low_latency_mode_loop_deadlines(void **state)
{
	stress(TMO_MODE_LOW_LATENCY, TMO_DEADLINES_LOOP, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_mode_kernel_deadlines),
		cmocka_unit_test(default_mode_loop_deadlines),
		cmocka_unit_test(low_latency_mode_kernel_deadlines),
		cmocka_unit_test(low_latency_mode_loop_deadlines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
