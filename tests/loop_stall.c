/*
 * loop-stall: tmo_loop_watch_stalls (loop.h). A callback that blocks the loop thread for
 * S = 300 ms under a 100 ms threshold is reported once, right after it returns, with its
 * duration and its kind (an op's, a tick's, a group's, a pool job's completion or release
 * callback); a short callback is not; threshold 0 turns watching off; bad input is refused and
 * changes nothing. A deadline that came due during the stall is in the report: a request's
 * linked timeout (kernel-kept) counts in deadlines_due and kernel_timed_out, and in the default
 * mode the kernel cancelled the request on time (bytes written after the deadline but during
 * the stall are still in the socket afterwards, kernel_enforced true); in
 * TMO_MODE_LOW_LATENCY kernel_enforced is false. Loop-kept deadlines (TMO_DEADLINES_LOOP, a
 * scope's, a job's) count in deadlines_due only.
 *
 * Hooks and callbacks only record; everything is asserted after the loop ran.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "tmo/pool.h"

#define MS TMO_NSEC_PER_MSEC
#define S (300 * MS)         /* the stall */
#define THRESHOLD (100 * MS)
#define MAX_REPORTS 8

/* ---- what the hook saw -------------------------------------------------------------------- */

struct watch {
	int reports;
	struct tmo_stall stall[MAX_REPORTS];
	int64_t reported_at[MAX_REPORTS];
	struct tmo_loop *loop_seen;
	void *data_seen;
	/* the hook starts this op on the first report (the hook may start operations) */
	struct test_result from_hook;
	bool start_from_hook;
	int start_ret;
};

static void hook(struct tmo_loop *loop, const struct tmo_stall *stall, void *data)
{
	struct watch *w = data;

	if (w->reports < MAX_REPORTS) {
		w->stall[w->reports] = *stall;
		w->reported_at[w->reports] = tmo_now();
	}
	w->reports++;
	w->loop_seen = loop;
	w->data_seen = data;
	if (w->start_from_hook && w->reports == 1) {
		tmo_prep_nop(&w->from_hook.op);
		w->start_ret = tmo_op_start(loop, &w->from_hook.op, TMO_NEVER, test_record);
	}
}

/* ---- fixture ------------------------------------------------------------------------------ */

struct params {
	enum tmo_loop_mode mode;
	enum tmo_deadline_strategy deadlines;
};

/* A callback that blocks the loop thread for `ms`. */
struct staller {
	struct tmo_op op;
	int64_t ms;
	int calls;
	int64_t t_in, t_out;
};

struct jobx {
	struct tmo_job job;
	int64_t sleep_ms, ret;
	int64_t cb_stall_ms, rel_stall_ms; /* the callbacks block this long */
	int cb_calls, rel_calls;
	int64_t cb_res, rel_res;
	int64_t cb_in, cb_out, rel_in, rel_out;
};

struct stalling_tick {
	struct tmo_tick tick;
	int calls;
	int64_t t_in, t_out;
	int stop_ret;
};

struct stalling_group {
	struct tmo_group group;
	int calls;
	int64_t t_in, t_out;
};

/* Everything the loop may still touch lives here, so that a failed test's teardown can run
 * the loop safely. */
struct fx {
	struct tmo_loop loop;
	struct params params;
	struct tmo_pool pool;
	bool pool_open;
	struct watch w;
	struct staller st;
	struct jobx jobs[2];
	struct test_result r[2];
	struct stalling_tick tick;
	struct stalling_group group;
	struct tmo_scope scope;
	char buf[16];
};

static int setup(void **state)
{
	const struct params *p = *state;
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	if (p)
		fx->params = *p;
	struct tmo_loop_options opts = { .mode = fx->params.mode,
					 .deadlines = fx->params.deadlines };
	int ret = tmo_loop_init(&fx->loop, &opts);
	if (ret) {
		char msg[256];
		tmo_loop_describe_error(ret, msg, sizeof(msg));
		fprintf(stderr, "%s\n", msg);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int left = test_close_leftovers(&fx->loop, fx->pool_open ? &fx->pool : NULL);

	if (left < 0)
		return -1;
	free(fx);
	return left ? -1 : 0;
}

static void stall_cb(struct tmo_op *op, int32_t res)
{
	struct staller *s = (struct staller *)op;

	s->calls++;
	s->t_in = tmo_now();
	test_sleep_ms(s->ms);
	s->t_out = tmo_now();
}

static void start_staller(struct fx *fx, int64_t ms)
{
	memset(&fx->st, 0, sizeof(fx->st));
	fx->st.ms = ms;
	tmo_prep_nop(&fx->st.op);
	assert_int_equal(tmo_op_start(&fx->loop, &fx->st.op, TMO_NEVER, stall_cb), 0);
}

static void watch(struct fx *fx)
{
	assert_int_equal(tmo_loop_watch_stalls(&fx->loop, THRESHOLD, hook, &fx->w), 0);
}

static struct tmo_loop_stats loop_stats(struct fx *fx)
{
	struct tmo_loop_stats st;

	assert_int_equal(tmo_loop_get_stats(&fx->loop, &st), 0);
	return st;
}

/* The report covers [t_in, t_out] of the callback and lies within [lo, hi]. */
static void assert_covers(const struct tmo_stall *s, int64_t t_in, int64_t t_out, int64_t lo,
			  int64_t hi)
{
	if (s->began > t_in || s->began < lo)
		fail_msg("began %.3f ms after the test's start, the callback began at %.3f ms",
			 (double)(s->began - lo) / 1e6, (double)(t_in - lo) / 1e6);
	if (s->duration_ns < t_out - t_in || s->began + s->duration_ns < t_out)
		fail_msg("duration %.3f ms, the callback took %.3f ms",
			 (double)s->duration_ns / 1e6, (double)(t_out - t_in) / 1e6);
	if (s->began + s->duration_ns > hi)
		fail_msg("the reported stall ends %.3f ms after the run returned",
			 (double)(s->began + s->duration_ns - hi) / 1e6);
}

/* ---- 1. which callbacks are reported ------------------------------------------------------ */

static void op_callback_stall_is_reported_once(void **state)
{
	struct fx *fx = *state;
	struct test_result quick[5];

	watch(fx);
	fx->w.start_from_hook = true;
	int64_t t0 = tmo_now();
	for (int i = 0; i < 5; i++) {
		memset(&quick[i], 0, sizeof(quick[i]));
		tmo_prep_nop(&quick[i].op);
		assert_int_equal(tmo_op_start(&fx->loop, &quick[i].op, TMO_NEVER, test_record), 0);
	}
	start_staller(fx, S / MS);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	int64_t t1 = tmo_now();

	assert_int_equal(fx->st.calls, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(quick[i].calls, 1);
	assert_int_equal(fx->w.reports, 1); /* the short callbacks are not reported */
	const struct tmo_stall *s = &fx->w.stall[0];
	assert_int_equal(s->source, TMO_STALL_OP);
	assert_true(s->duration_ns >= S);
	assert_covers(s, fx->st.t_in, fx->st.t_out, t0, t1);
	assert_true(fx->w.reported_at[0] >= fx->st.t_out); /* after the callback returned */
	assert_ptr_equal(fx->w.loop_seen, &fx->loop);
	assert_ptr_equal(fx->w.data_seen, &fx->w);
	assert_int_equal(s->deadlines_due, 0);
	assert_int_equal(s->kernel_timed_out, 0);
	assert_int_equal(s->earliest_due, 0);
	/* the op the hook started ran */
	assert_int_equal(fx->w.start_ret, 0);
	assert_int_equal(fx->w.from_hook.calls, 1);
	assert_int_equal(fx->w.from_hook.res, 0);

	struct tmo_loop_stats st = loop_stats(fx);
	assert_int_equal(st.stalls, 1);
	assert_int_equal(st.stall_ns_total, (uint64_t)s->duration_ns);
	assert_int_equal(st.stall_ns_max, (uint64_t)s->duration_ns);

	/* a second, shorter one: counted, the longest stays */
	int64_t first = s->duration_ns;
	start_staller(fx, S / MS / 2);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(fx->w.reports, 2);
	int64_t second = fx->w.stall[1].duration_ns;
	assert_true(second >= S / 2);
	assert_int_equal(fx->w.stall[1].source, TMO_STALL_OP);
	st = loop_stats(fx);
	assert_int_equal(st.stalls, 2);
	assert_int_equal(st.stall_ns_total, (uint64_t)(first + second));
	assert_int_equal(st.stall_ns_max, (uint64_t)(first > second ? first : second));
}

static void short_callbacks_are_not_reported(void **state)
{
	struct fx *fx = *state;
	struct test_result *r = fx->r;

	watch(fx);
	for (int round = 0; round < 100; round++) {
		tmo_prep_nop(&r[0].op);
		tmo_prep_sleep(&r[1].op, tmo_in_ms(1));
		assert_int_equal(tmo_op_start(&fx->loop, &r[0].op, TMO_NEVER, test_record), 0);
		assert_int_equal(tmo_op_start(&fx->loop, &r[1].op, TMO_NEVER, test_record), 0);
		assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	}
	/* a callback of 20 ms, a fifth of the threshold */
	start_staller(fx, 20);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(r[0].calls, 100);
	assert_int_equal(r[1].calls, 100);
	assert_int_equal(fx->w.reports, 0);
	struct tmo_loop_stats st = loop_stats(fx);
	assert_int_equal(st.stalls, 0);
	assert_int_equal(st.stall_ns_total, 0);
	assert_int_equal(st.stall_ns_max, 0);
}

static void tick_stalls(struct tmo_tick *tick, uint64_t periods)
{
	struct stalling_tick *k = (struct stalling_tick *)tick;

	k->calls++;
	k->t_in = tmo_now();
	test_sleep_ms(S / MS);
	k->t_out = tmo_now();
	k->stop_ret = tmo_tick_stop(tick);
}

static void tick_callback_stall_is_reported(void **state)
{
	struct fx *fx = *state;
	struct stalling_tick *k = &fx->tick;

	watch(fx);
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_tick_start(&fx->loop, &k->tick, 50 * MS, tick_stalls), 0);
	assert_int_equal(tmo_loop_run_until(&fx->loop, tmo_at(t0 + 5 * S)), 0);
	int64_t t1 = tmo_now();
	assert_false(tmo_tick_busy(&k->tick));
	assert_int_equal(k->calls, 1);
	assert_int_equal(k->stop_ret, 0);
	assert_int_equal(fx->w.reports, 1);
	assert_int_equal(fx->w.stall[0].source, TMO_STALL_TICK);
	assert_true(fx->w.stall[0].duration_ns >= S);
	assert_covers(&fx->w.stall[0], k->t_in, k->t_out, t0, t1);
	assert_int_equal(loop_stats(fx).stalls, 1);
}

static void group_done_stalls(struct tmo_group *group, int32_t res)
{
	struct stalling_group *g = (struct stalling_group *)group;

	g->calls++;
	g->t_in = tmo_now();
	test_sleep_ms(S / MS);
	g->t_out = tmo_now();
}

static void group_callback_stall_is_reported(void **state)
{
	struct fx *fx = *state;
	struct stalling_group *g = &fx->group;
	struct tmo_group_options opts = { .mode = TMO_GROUP_ALL, .deadline = TMO_NEVER,
					  .on_done = group_done_stalls };

	watch(fx);
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_group_init(&fx->loop, &g->group, &opts), 0);
	assert_int_equal(tmo_group_seal(&g->group), 0); /* empty and sealed: done at once */
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	int64_t t1 = tmo_now();
	assert_int_equal(g->calls, 1);
	assert_int_equal(tmo_group_close(&g->group), 0);
	assert_int_equal(fx->w.reports, 1);
	assert_int_equal(fx->w.stall[0].source, TMO_STALL_GROUP);
	assert_covers(&fx->w.stall[0], g->t_in, g->t_out, t0, t1);
}

static int64_t job_fn(struct tmo_job *job)
{
	struct jobx *j = (struct jobx *)job;

	if (j->sleep_ms)
		test_sleep_ms(j->sleep_ms);
	return j->ret;
}

static void job_cb(struct tmo_job *job, int64_t res)
{
	struct jobx *j = (struct jobx *)job;

	j->cb_calls++;
	j->cb_res = res;
	j->cb_in = tmo_now();
	if (j->cb_stall_ms)
		test_sleep_ms(j->cb_stall_ms);
	j->cb_out = tmo_now();
}

static void job_release(struct tmo_job *job, int64_t late_res)
{
	struct jobx *j = (struct jobx *)job;

	j->rel_calls++;
	j->rel_res = late_res;
	j->rel_in = tmo_now();
	if (j->rel_stall_ms)
		test_sleep_ms(j->rel_stall_ms);
	j->rel_out = tmo_now();
}

static void pool_open(struct fx *fx, uint32_t threads)
{
	struct tmo_pool_options opts = { .threads = threads };

	assert_int_equal(tmo_pool_init(&fx->pool, &fx->loop, &opts), 0);
	fx->pool_open = true;
}

static void pool_close(struct fx *fx)
{
	assert_int_equal(tmo_pool_close(&fx->pool), 0);
	fx->pool_open = false;
}

/* A job's completion callback, then an abandoned job's release callback, each blocking S. */
static void job_callback_stall_is_reported(void **state)
{
	struct fx *fx = *state;
	struct jobx *a = &fx->jobs[0], *b = &fx->jobs[1];

	pool_open(fx, 2);
	watch(fx);
	tmo_job_prep(&a->job, job_fn);
	a->ret = 3;
	a->cb_stall_ms = S / MS;
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, job_cb), 0);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	int64_t t1 = tmo_now();
	assert_int_equal(a->cb_calls, 1);
	assert_int_equal(a->cb_res, 3);
	assert_int_equal(fx->w.reports, 1);
	assert_int_equal(fx->w.stall[0].source, TMO_STALL_JOB);
	assert_covers(&fx->w.stall[0], a->cb_in, a->cb_out, t0, t1);

	/* released late: the release callback is watched too (a short completion callback) */
	tmo_job_prep(&b->job, job_fn);
	assert_int_equal(tmo_job_set_release(&b->job, job_release), 0);
	b->sleep_ms = 150;
	b->ret = 4;
	b->rel_stall_ms = S / MS;
	t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, tmo_at(t0 + 50 * MS), job_cb), 0);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	t1 = tmo_now();
	assert_int_equal(b->cb_calls, 1);
	assert_int_equal(b->cb_res, -ETIME);
	assert_int_equal(b->rel_calls, 1);
	assert_int_equal(b->rel_res, 4);
	assert_int_equal(fx->w.reports, 2);
	assert_int_equal(fx->w.stall[1].source, TMO_STALL_JOB);
	assert_covers(&fx->w.stall[1], b->rel_in, b->rel_out, t0, t1);
	assert_int_equal(loop_stats(fx).stalls, 2);
	pool_close(fx);
}

/* ---- 2. turning it off, bad input --------------------------------------------------------- */

static void threshold_zero_turns_watching_off(void **state)
{
	struct fx *fx = *state;

	/* never watched: nothing */
	start_staller(fx, 150);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(loop_stats(fx).stalls, 0);
	/* watched, then turned off */
	watch(fx);
	assert_int_equal(tmo_loop_watch_stalls(&fx->loop, 0, hook, &fx->w), 0);
	start_staller(fx, 150);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(fx->st.calls, 1);
	assert_int_equal(fx->w.reports, 0);
	struct tmo_loop_stats st = loop_stats(fx);
	assert_int_equal(st.stalls, 0);
	assert_int_equal(st.stall_ns_max, 0);
	/* on again, without a hook: counted, not reported */
	assert_int_equal(tmo_loop_watch_stalls(&fx->loop, THRESHOLD, NULL, NULL), 0);
	start_staller(fx, 150);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(fx->w.reports, 0);
	st = loop_stats(fx);
	assert_int_equal(st.stalls, 1);
	assert_true(st.stall_ns_max >= 150 * (uint64_t)MS);
}

static void bad_input_is_refused_and_changes_nothing(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(tmo_loop_watch_stalls(NULL, THRESHOLD, hook, &fx->w), -EINVAL);
	assert_int_equal(tmo_loop_watch_stalls(NULL, 0, NULL, NULL), -EINVAL);
	watch(fx);
	assert_int_equal(tmo_loop_watch_stalls(&fx->loop, -1, hook, &fx->w), -EINVAL);
	assert_int_equal(tmo_loop_watch_stalls(&fx->loop, INT64_MIN, NULL, NULL), -EINVAL);
	/* the watch set before the refusals still holds */
	start_staller(fx, S / MS);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(fx->w.reports, 1);
	assert_int_equal(loop_stats(fx).stalls, 1);
	assert_int_equal(tmo_loop_get_stats(&fx->loop, NULL), -EINVAL);
}

/* ---- 3. deadlines that came due during the stall ------------------------------------------ */

struct late_writer {
	int fd;
	int64_t at;
};

static void *write_at(void *arg)
{
	struct late_writer *lw = arg;

	while (tmo_now() < lw->at)
		test_sleep_ms(1);
	test_write_all(lw->fd, "abc", 3);
	return NULL;
}

/*
 * A recv with a 100 ms deadline kept by the kernel (linked timeout); the loop thread then
 * blocks for S in a callback; a thread writes 3 bytes at 200 ms, during the stall.
 */
static void kernel_deadline_due_during_the_stall(void **state)
{
	struct fx *fx = *state;
	struct test_result *r = &fx->r[0];
	bool low_latency = fx->params.mode == TMO_MODE_LOW_LATENCY;
	pthread_t thread;
	int fds[2];

	watch(fx);
	test_socketpair(fds);
	int64_t t0 = tmo_now();
	int64_t deadline = t0 + 100 * MS;
	struct late_writer lw = { .fd = fds[0], .at = t0 + 200 * MS };
	tmo_prep_recv(&r->op, fds[1], fx->buf, sizeof(fx->buf), 0);
	assert_int_equal(tmo_op_start(&fx->loop, &r->op, tmo_at(deadline), test_record), 0);
	start_staller(fx, S / MS);
	assert_int_equal(pthread_create(&thread, NULL, write_at, &lw), 0);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	int64_t t1 = tmo_now();
	assert_int_equal(pthread_join(thread, NULL), 0);
	int left = test_readable(fds[1]);
	close(fds[0]);
	close(fds[1]);

	/* the stall really covered the deadline and the write */
	assert_true(fx->st.t_in < deadline);
	assert_true(fx->st.t_out > lw.at);
	assert_int_equal(fx->w.reports, 1);
	const struct tmo_stall *s = &fx->w.stall[0];
	assert_int_equal(s->source, TMO_STALL_OP);
	assert_covers(s, fx->st.t_in, fx->st.t_out, t0, t1);
	if (s->deadlines_due < 1 || s->kernel_timed_out < 1)
		fail_msg("deadlines_due %u, kernel_timed_out %u", s->deadlines_due,
			 s->kernel_timed_out);
	assert_true(s->kernel_timed_out <= s->deadlines_due);
	assert_int_equal(s->earliest_due, deadline);
	assert_true(s->late_ns >= fx->st.t_out - deadline);
	assert_true(s->late_ns <= t1 - deadline);
	assert_true(s->late_ns >= S / 2);
	/* the recv's callback came after the report, late by the stall */
	assert_int_equal(r->calls, 1);
	assert_true(r->seen_at >= fx->w.reported_at[0]);
	if (!low_latency) {
		assert_true(s->kernel_enforced);
		/* cancelled on time by the kernel: the bytes written at 200 ms stayed */
		assert_int_equal(r->res, -ETIME);
		assert_int_equal(left, 3);
	} else {
		assert_false(s->kernel_enforced);
		/* cancelled only when the loop returned: either way nothing is lost */
		if (r->res == 3) {
			assert_int_equal(left, 0);
		} else {
			assert_int_equal(r->res, -ETIME);
			assert_int_equal(left, 3);
		}
	}
}

/* A recv whose deadline the loop keeps (TMO_DEADLINES_LOOP), due during the stall. */
static void loop_kept_deadline_due_during_the_stall(void **state)
{
	struct fx *fx = *state;
	struct test_result *r = &fx->r[0];
	int fds[2];

	watch(fx);
	test_socketpair(fds);
	int64_t t0 = tmo_now();
	int64_t deadline = t0 + 100 * MS;
	tmo_prep_recv(&r->op, fds[1], fx->buf, sizeof(fx->buf), 0);
	assert_int_equal(tmo_op_start(&fx->loop, &r->op, tmo_at(deadline), test_record), 0);
	start_staller(fx, S / MS);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	int64_t t1 = tmo_now();
	close(fds[0]);
	close(fds[1]);

	assert_true(fx->st.t_in < deadline);
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->res, -ETIME);
	assert_int_equal(fx->w.reports, 1);
	const struct tmo_stall *s = &fx->w.stall[0];
	assert_int_equal(s->deadlines_due, 1);
	assert_int_equal(s->kernel_timed_out, 0);
	assert_int_equal(s->earliest_due, deadline);
	assert_true(s->late_ns >= fx->st.t_out - deadline);
	assert_true(s->late_ns <= t1 - deadline);
}

/* A scope's deadline (always loop-kept) over a recv without its own, due during the stall. */
static void scope_deadline_due_during_the_stall(void **state)
{
	struct fx *fx = *state;
	struct test_result *r = &fx->r[0];
	struct tmo_scope *scope = &fx->scope;
	int fds[2];

	watch(fx);
	test_socketpair(fds);
	int64_t t0 = tmo_now();
	int64_t deadline = t0 + 100 * MS;
	assert_int_equal(tmo_scope_enter(&fx->loop, scope, tmo_at(deadline), 0), 0);
	tmo_prep_recv(&r->op, fds[1], fx->buf, sizeof(fx->buf), 0);
	assert_int_equal(tmo_op_start(&fx->loop, &r->op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_scope_exit(scope), 0);
	start_staller(fx, S / MS);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	close(fds[0]);
	close(fds[1]);

	assert_true(fx->st.t_in < deadline);
	assert_int_equal(r->calls, 1);
	assert_int_equal(r->res, -ETIME);
	assert_true(tmo_scope_expired(scope));
	assert_false(tmo_scope_busy(scope));
	assert_int_equal(fx->w.reports, 1);
	const struct tmo_stall *s = &fx->w.stall[0];
	assert_true(s->deadlines_due >= 1);
	assert_int_equal(s->kernel_timed_out, 0);
	assert_int_equal(s->earliest_due, deadline);
}

/*
 * Both kinds in one stall: a scope's deadline at 80 ms and a recv's own linked timeout at
 * 120 ms. Two due, one by the kernel, the earliest is the scope's.
 */
static void both_kinds_due_during_the_stall(void **state)
{
	struct fx *fx = *state;
	struct test_result *a = &fx->r[0], *b = &fx->r[1];
	struct tmo_scope *scope = &fx->scope;
	char *other = fx->buf + 8;
	int fds[2], fds2[2];

	watch(fx);
	test_socketpair(fds);
	test_socketpair(fds2);
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_scope_enter(&fx->loop, scope, tmo_at(t0 + 80 * MS), 0), 0);
	tmo_prep_recv(&a->op, fds[1], fx->buf, 8, 0);
	assert_int_equal(tmo_op_start(&fx->loop, &a->op, TMO_NEVER, test_record), 0);
	assert_int_equal(tmo_scope_exit(scope), 0);
	tmo_prep_recv(&b->op, fds2[1], other, 8, 0);
	assert_int_equal(tmo_op_start(&fx->loop, &b->op, tmo_at(t0 + 120 * MS), test_record), 0);
	start_staller(fx, S / MS);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
	close(fds[0]);
	close(fds[1]);
	close(fds2[0]);
	close(fds2[1]);

	assert_true(fx->st.t_in < t0 + 80 * MS);
	assert_int_equal(a->res, -ETIME);
	assert_int_equal(b->res, -ETIME);
	assert_int_equal(fx->w.reports, 1);
	const struct tmo_stall *s = &fx->w.stall[0];
	if (s->deadlines_due < 2 || s->kernel_timed_out != 1)
		fail_msg("deadlines_due %u, kernel_timed_out %u", s->deadlines_due,
			 s->kernel_timed_out);
	assert_int_equal(s->earliest_due, t0 + 80 * MS);
	assert_true(s->kernel_enforced);
}

/* A pool job's deadline (loop-kept) due during the stall. */
static void job_deadline_due_during_the_stall(void **state)
{
	struct fx *fx = *state;
	struct jobx *j = &fx->jobs[0];

	pool_open(fx, 1);
	watch(fx);
	tmo_job_prep(&j->job, job_fn);
	j->sleep_ms = 2 * S / MS;
	j->ret = 9;
	assert_int_equal(tmo_job_set_release(&j->job, job_release), 0);
	int64_t t0 = tmo_now();
	int64_t deadline = t0 + 100 * MS;
	assert_int_equal(tmo_job_start(&fx->pool, &j->job, tmo_at(deadline), job_cb), 0);
	start_staller(fx, S / MS);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);

	assert_true(fx->st.t_in < deadline);
	assert_int_equal(j->cb_calls, 1);
	assert_int_equal(j->cb_res, -ETIME);
	assert_true(j->cb_in >= fx->w.reported_at[0]);
	assert_int_equal(j->rel_calls, 1);
	assert_int_equal(j->rel_res, 9);
	assert_int_equal(fx->w.reports, 1);
	const struct tmo_stall *s = &fx->w.stall[0];
	assert_int_equal(s->source, TMO_STALL_OP);
	assert_int_equal(s->deadlines_due, 1);
	assert_int_equal(s->kernel_timed_out, 0);
	assert_int_equal(s->earliest_due, deadline);
	pool_close(fx);
}

int main(void)
{
	static const struct params def = { TMO_MODE_DEFAULT, TMO_DEADLINES_KERNEL };
	static const struct params low_latency = { TMO_MODE_LOW_LATENCY, TMO_DEADLINES_KERNEL };
	static const struct params loop_deadlines = { TMO_MODE_DEFAULT, TMO_DEADLINES_LOOP };
#define T(f) { #f, f, setup, teardown, (void *)&def }
#define TP(f, p) { #f " [" #p "]", f, setup, teardown, (void *)&p }
	const struct CMUnitTest tests[] = {
		T(op_callback_stall_is_reported_once),
		TP(op_callback_stall_is_reported_once, low_latency),
		T(short_callbacks_are_not_reported),
		T(tick_callback_stall_is_reported),
		T(group_callback_stall_is_reported),
		T(job_callback_stall_is_reported),
		T(threshold_zero_turns_watching_off),
		T(bad_input_is_refused_and_changes_nothing),
		TP(kernel_deadline_due_during_the_stall, def),
		TP(kernel_deadline_due_during_the_stall, low_latency),
		TP(loop_kept_deadline_due_during_the_stall, loop_deadlines),
		T(scope_deadline_due_during_the_stall),
		T(both_kinds_due_during_the_stall),
		T(job_deadline_due_during_the_stall),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
