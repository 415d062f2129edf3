/*
 * pool-jobs: the worker pool (pool.h) for blocking calls, seed 004 in tmo terms.
 *
 * asyncio.wait_for(blocking_task(), 1) waits the full 5 s because time.sleep never yields to
 * the loop. In tmo the blocking call runs on a worker: the callback fires with -ETIME at the
 * deadline (never early) while the loop keeps serving other I/O (a socketpair ping-pong runs
 * throughout the wait), and the abandoned sleep is released when it returns. A cooperative
 * job polling tmo_job_cancelled() stops itself at the deadline; an error before the deadline
 * is that error, not a timeout; a job already done reports at once. Then: results and the
 * input/output buffers, the queue (expiry while queued, a full queue, TMO_JOB_WAIT), cancel,
 * deadlines already passed and TMO_NEVER, the release callback of an abandoned job, shutdown
 * and close, bad input, both wake mechanisms and both loop modes, and 2,000 quick jobs.
 *
 * One unit is U = 200 ms (seed 004's second, scaled down; the ratios are kept). "Never early"
 * is exact; lateness is within the tolerance of helpers.h. Callbacks and job functions only
 * record; everything is asserted after the loop ran. Everything the loop or a worker may still
 * touch is allocated in the fixture (fx_new), so a failing test does not leave them pointing
 * into a dead stack frame: the teardown shuts the pool down, runs the loop until every job is
 * released, closes the pool and the loop, and then frees them.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "pool.h" /* the job's state, to catch it between return and delivery */
#include "tmo/pool.h"

#define MS TMO_NSEC_PER_MSEC
#define U (200 * MS)

/* ---- fixture ------------------------------------------------------------------------------ */

struct params {
	enum tmo_loop_mode mode;
	enum tmo_pool_wake wake;
};

#define MAX_ALLOCS 32

struct fx {
	struct tmo_loop loop;
	struct tmo_pool pool;
	bool pool_open;
	struct params params;
	void *allocs[MAX_ALLOCS];
	int nallocs;
};

static int setup(void **state)
{
	const struct params *p = *state;
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	if (p)
		fx->params = *p;
	struct tmo_loop_options opts = { .mode = fx->params.mode };
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
	for (int i = 0; i < fx->nallocs; i++)
		free(fx->allocs[i]);
	free(fx);
	return left ? -1 : 0;
}

/* Zeroed memory that lives until the teardown. */
static void *fx_new(struct fx *fx, size_t size)
{
	assert_true(fx->nallocs < MAX_ALLOCS);
	void *p = calloc(1, size);
	assert_non_null(p);
	fx->allocs[fx->nallocs++] = p;
	return p;
}

static void fx_pool_init(struct fx *fx, struct tmo_pool_options *opts)
{
	opts->wake = fx->params.wake;
	assert_int_equal(tmo_pool_init(&fx->pool, &fx->loop, opts), 0);
	fx->pool_open = true;
}

static void fx_pool_close(struct fx *fx)
{
	assert_int_equal(tmo_pool_close(&fx->pool), 0);
	fx->pool_open = false;
}

static struct tmo_pool_stats pool_stats(struct fx *fx)
{
	struct tmo_pool_stats st;

	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(tmo_pool_get_stats(&fx->pool, &st), 0);
	return st;
}

/* ---- a job and what its function and callbacks saw ---------------------------------------- */

static char data_sentinel; /* job->data points here; tmo must never change it */

struct job_rec;
typedef void (*rec_hook)(struct job_rec *r, int64_t res);

struct job_rec {
	struct tmo_job job; /* first: a job pointer is a job_rec pointer */
	/* what the function does */
	int64_t sleep_ns;   /* blocks this long (nanosleep, EINTR retried) */
	bool cooperative;   /* computes until tmo_job_cancelled(), then returns */
	int64_t ret;
	struct tmo_pool *close_pool; /* calls tmo_pool_close on it from the worker */
	/* what the function saw (worker thread) */
	atomic_int fn_calls;
	_Atomic int64_t fn_began, fn_ended, fn_deadline;
	atomic_bool fn_cancelled_at_start, fn_cancelled_at_end;
	atomic_int fn_close_ret;
	/* what the callbacks saw (loop thread) */
	int cb_calls;
	int64_t cb_res, cb_at;
	bool busy_in_cb;
	void *data_in_cb;
	int fn_calls_at_cb;
	uint32_t active_in_cb;
	int cancel_in_cb;
	bool cancelled_seen_in_cb; /* tmo_job_cancelled() in the callback (note_cancelled) */
	int rel_calls;
	int64_t rel_res, rel_at;
	bool busy_in_rel;
	rec_hook on_cb;
	struct fx *fx;
};

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / TMO_NSEC_PER_SEC, .tv_nsec = ns % TMO_NSEC_PER_SEC };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int64_t rec_fn(struct tmo_job *job)
{
	struct job_rec *r = (struct job_rec *)job;
	int64_t began = tmo_now();

	atomic_fetch_add(&r->fn_calls, 1);
	atomic_store(&r->fn_began, began);
	atomic_store(&r->fn_deadline, tmo_deadline_ns(tmo_job_deadline(job)));
	atomic_store(&r->fn_cancelled_at_start, tmo_job_cancelled(job));
	if (r->close_pool)
		atomic_store(&r->fn_close_ret, tmo_pool_close(r->close_pool));
	if (r->cooperative) {
		/* CPU work in slices of 100 µs, checking between them; a safety stop at 50 U */
		while (!tmo_job_cancelled(job) && tmo_now() < began + 50 * U) {
			int64_t slice_end = tmo_now() + 100 * TMO_NSEC_PER_USEC;
			while (tmo_now() < slice_end)
				;
		}
	} else if (r->sleep_ns) {
		sleep_ns(r->sleep_ns);
	}
	atomic_store(&r->fn_cancelled_at_end, tmo_job_cancelled(job));
	atomic_store(&r->fn_ended, tmo_now());
	return r->ret;
}

static void rec_cb(struct tmo_job *job, int64_t res)
{
	struct job_rec *r = (struct job_rec *)job;

	r->cb_calls++;
	r->cb_res = res;
	r->cb_at = tmo_now();
	r->busy_in_cb = tmo_job_busy(job);
	r->data_in_cb = job->data;
	r->fn_calls_at_cb = atomic_load(&r->fn_calls);
	r->active_in_cb = tmo_loop_active(&r->fx->loop);
	r->cancel_in_cb = tmo_job_cancel(job);
	if (r->on_cb)
		r->on_cb(r, res);
}

static void rec_release(struct tmo_job *job, int64_t late_res)
{
	struct job_rec *r = (struct job_rec *)job;

	r->rel_calls++;
	r->rel_res = late_res;
	r->rel_at = tmo_now();
	r->busy_in_rel = tmo_job_busy(job);
}

static struct job_rec *new_rec(struct fx *fx)
{
	struct job_rec *r = fx_new(fx, sizeof(*r));

	r->fx = fx;
	assert_int_equal(tmo_job_prep(&r->job, rec_fn), 0);
	r->job.data = &data_sentinel;
	assert_int_equal(tmo_job_set_release(&r->job, rec_release), 0);
	return r;
}

/* Runs the loop without waiting until the job's function has begun (bounded: 5 s). */
static void wait_running(struct fx *fx, struct job_rec *r)
{
	int64_t limit = tmo_now() + 5 * TMO_NSEC_PER_SEC;

	while (atomic_load(&r->fn_calls) == 0) {
		if (tmo_now() > limit)
			fail_msg("the job's function did not begin within 5 s");
		assert_true(tmo_loop_run(&fx->loop, TMO_RUN_NOWAIT) >= 0);
		test_sleep_ms(1);
	}
}

/*
 * A job whose callback reported -ETIME or -ECANCELED: if the function was still running then
 * (busy in the callback), the release callback fired once with its result; otherwise the
 * callback was the release.
 */
static void assert_released_once(const struct job_rec *r, int64_t fn_result)
{
	if (r->busy_in_cb) {
		assert_int_equal(r->rel_calls, 1);
		assert_int_equal(r->rel_res, fn_result);
		assert_true(r->rel_at >= r->cb_at);
	} else {
		assert_int_equal(r->rel_calls, 0);
	}
	assert_false(tmo_job_busy(&r->job));
}

static void skip_without_futex(struct fx *fx)
{
	if (fx->params.wake == TMO_POOL_WAKE_FUTEX &&
	    !tmo_loop_has_feature(&fx->loop, TMO_FEAT_FUTEX_WAIT))
		skip();
}

static void run_all(struct fx *fx)
{
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_DEFAULT), 0);
}

/* ---- a ping-pong on a socketpair, served by the loop while jobs wait ---------------------- */

struct pingpong {
	struct tmo_op op;
	struct tmo_loop *loop;
	int fds[2];
	char byte;
	bool stop;
	long rounds, rounds_in_window;
	int64_t window_lo, window_hi;
	int64_t last, max_gap;
	int errors;
};

static void pp_recv(struct tmo_op *op, int32_t res);

static void pp_arm(struct pingpong *pp)
{
	tmo_prep_recv(&pp->op, pp->fds[1], &pp->byte, 1, 0);
	/* bounded: a job callback that never comes ends the ping-pong, and the test fails */
	if (tmo_op_start(pp->loop, &pp->op, tmo_in_ns(10 * U), pp_recv))
		pp->errors++;
}

static void pp_recv(struct tmo_op *op, int32_t res)
{
	struct pingpong *pp = (struct pingpong *)op;
	int64_t now = tmo_now();

	if (res != 1) {
		pp->errors++;
		return;
	}
	if (pp->rounds && now - pp->last > pp->max_gap)
		pp->max_gap = now - pp->last;
	pp->last = now;
	pp->rounds++;
	if (now >= pp->window_lo && now <= pp->window_hi)
		pp->rounds_in_window++;
	if (pp->stop)
		return;
	if (write(pp->fds[0], "p", 1) != 1) {
		pp->errors++;
		return;
	}
	pp_arm(pp);
}

static struct pingpong *pp_start(struct fx *fx)
{
	struct pingpong *pp = fx_new(fx, sizeof(*pp));

	pp->loop = &fx->loop;
	test_socketpair(pp->fds);
	pp_arm(pp);
	test_write_all(pp->fds[0], "p", 1);
	return pp;
}

static void pp_close(struct pingpong *pp)
{
	close(pp->fds[0]);
	close(pp->fds[1]);
}

/* ---- 1. seed 004 -------------------------------------------------------------------------- */

static void stop_pingpong(struct job_rec *r, int64_t res)
{
	((struct pingpong *)r->job.data)->stop = true;
}

/*
 * A 5 U nanosleep (one system call, tmo_job_prep_syscall) under a 1 U deadline: -ETIME at 1 U,
 * not 5 U, while the loop runs a ping-pong throughout; the sleep is released when it returns.
 */
static void blocking_sleep_times_out_while_the_loop_serves(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 2 };
	struct job_rec *r = fx_new(fx, sizeof(*r));
	struct timespec *ts = fx_new(fx, sizeof(*ts));

	skip_without_futex(fx);
	fx_pool_init(fx, &opts);
	ts->tv_sec = (5 * U) / TMO_NSEC_PER_SEC;
	ts->tv_nsec = (5 * U) % TMO_NSEC_PER_SEC;
	const long args[6] = { (long)ts, 0, 0, 0, 0, 0 };
	r->fx = fx;
	tmo_job_prep_syscall(&r->job, SYS_nanosleep, args);
	assert_int_equal(tmo_job_set_release(&r->job, rec_release), 0);
	r->on_cb = stop_pingpong;

	struct pingpong *pp = pp_start(fx);
	r->job.data = pp;
	int64_t t0 = tmo_now();
	int64_t deadline = t0 + U;
	pp->window_lo = t0 + U / 2;
	pp->window_hi = deadline;
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_at(deadline), rec_cb), 0);
	assert_true(tmo_job_busy(&r->job));
	assert_int_equal(r->cb_calls, 0); /* never from the call that starts it */
	assert_true(tmo_loop_active(&fx->loop) >= 2); /* the job and the ping-pong */
	run_all(fx);
	int64_t end = tmo_now();

	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, -ETIME);
	assert_on_time(r->cb_at, deadline);
	assert_true(r->busy_in_cb); /* the sleep goes on */
	assert_ptr_equal(r->data_in_cb, pp);
	assert_ptr_equal(r->job.data, pp);
	/* released when the sleep returned, with its result */
	assert_int_equal(r->rel_calls, 1);
	assert_int_equal(r->rel_res, 0);
	assert_true(r->rel_at >= t0 + 5 * U);
	assert_on_time(r->rel_at, t0 + 5 * U);
	assert_true(end >= r->rel_at);
	assert_false(tmo_job_busy(&r->job));
	/* the loop served the ping-pong all along */
	assert_int_equal(pp->errors, 0);
	if (pp->rounds_in_window < 20 || pp->max_gap > test_tolerance_ns())
		fail_msg("ping-pong: %ld rounds, %ld in the second half of the wait, longest gap "
			 "%.1f ms", pp->rounds, pp->rounds_in_window, (double)pp->max_gap / 1e6);
	print_message("ping-pong: %ld rounds during the wait, longest gap %.2f ms\n", pp->rounds,
		      (double)pp->max_gap / 1e6);

	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.started, 1);
	assert_int_equal(st.ran, 1);
	assert_int_equal(st.completed, 1);
	assert_int_equal(st.timed_out, 1);
	assert_int_equal(st.expired_queued, 0);
	assert_int_equal(st.cancelled, 0);
	assert_int_equal(st.tied_up, 0);
	assert_true(st.wakeups <= st.completed);
	fx_pool_close(fx);
	pp_close(pp);
}

/* A cooperative job (CPU work polling tmo_job_cancelled) stops itself at the deadline. */
static void cooperative_job_stops_itself_at_the_deadline(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx);
	r->cooperative = true;
	r->ret = 77;
	int64_t t0 = tmo_now();
	int64_t deadline = t0 + U;
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_at(deadline), rec_cb), 0);
	run_all(fx);

	assert_int_equal(atomic_load(&r->fn_calls), 1);
	assert_int_equal(atomic_load(&r->fn_deadline), deadline);
	assert_false(atomic_load(&r->fn_cancelled_at_start));
	assert_true(atomic_load(&r->fn_cancelled_at_end));
	/* never told to stop early; stopped soon after */
	assert_on_time(atomic_load(&r->fn_ended), deadline);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, -ETIME);
	assert_on_time(r->cb_at, deadline);
	assert_released_once(r, 77);
	if (r->rel_calls)
		assert_true(r->rel_at >= atomic_load(&r->fn_ended));
	assert_ptr_equal(r->job.data, &data_sentinel);
	fx_pool_close(fx);
}

/* An error raised at 0.5 U under a 1 U deadline is that error, at 0.5 U. */
static void error_before_the_deadline_is_the_error(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx);
	r->sleep_ns = U / 2;
	r->ret = -EIO;
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_at(t0 + U), rec_cb), 0);
	run_all(fx);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, -EIO);
	assert_on_time(r->cb_at, t0 + U / 2);
	assert_true(r->cb_at >= atomic_load(&r->fn_ended));
	assert_false(atomic_load(&r->fn_cancelled_at_end));
	assert_int_equal(r->rel_calls, 0); /* the callback was the release */
	assert_false(tmo_job_busy(&r->job));
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.timed_out, 0);
	assert_int_equal(st.completed, 1);
	fx_pool_close(fx);
}

/* Work that is already done reports at once. */
static void job_done_at_once_reports_at_once(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx);
	r->ret = 42;
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_at(t0 + U), rec_cb), 0);
	run_all(fx);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, 42);
	assert_on_time(r->cb_at, t0); /* within the tolerance of the start, not at the deadline */
	assert_true(r->cb_at < t0 + U);
	assert_int_equal(r->rel_calls, 0);
	assert_false(tmo_job_busy(&r->job));
	fx_pool_close(fx);
}

/* ---- 2. results and buffers --------------------------------------------------------------- */

static void results_arrive_unchanged(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 2 };
	const int64_t values[] = { 0, 1, INT64_C(0x123456789a), INT64_MAX, -ENOENT, -EIO,
				   INT64_MIN + 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		r->cb_calls = 0;
		r->ret = values[i];
		r->close_pool = i == 0 ? &fx->pool : NULL;
		assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_in_ns(10 * U), rec_cb), 0);
		run_all(fx);
		assert_int_equal(r->cb_calls, 1);
		if (r->cb_res != values[i])
			fail_msg("returned %lld, the callback got %lld", (long long)values[i],
				 (long long)r->cb_res);
		assert_ptr_equal(r->data_in_cb, &data_sentinel);
		assert_ptr_equal(r->job.data, &data_sentinel);
		assert_int_equal(r->cancel_in_cb, -EALREADY); /* the outcome is delivered */
		if (i == 0) /* tmo_pool_close from a job function */
			assert_int_equal(atomic_load(&r->fn_close_ret), -EBUSY);
	}
	assert_int_equal(r->rel_calls, 0);
	assert_int_equal(atomic_load(&r->fn_calls), (int)(sizeof(values) / sizeof(values[0])));
	fx_pool_close(fx);
}

struct io_job {
	struct tmo_job job;
	atomic_int in_len_seen, out_cap_seen, ok_ret, over_ret, len_after_over;
	atomic_bool same_buffers;
	const void *in_ptr;
	void *out_ptr;
	int cb_calls;
	int64_t cb_res;
	size_t out_len_in_cb;
};

static int64_t upcase_fn(struct tmo_job *job)
{
	struct io_job *j = (struct io_job *)job;
	size_t in_len = 0, cap = 0;
	const char *in = tmo_job_input(job, &in_len);
	char *out = tmo_job_output(job, &cap);

	atomic_store(&j->in_len_seen, (int)in_len);
	atomic_store(&j->out_cap_seen, (int)cap);
	atomic_store(&j->same_buffers, (const void *)in == j->in_ptr && (void *)out == j->out_ptr);
	size_t n = in_len < cap ? in_len : cap;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(in[i] >= 'a' && in[i] <= 'z' ? in[i] - 'a' + 'A' : in[i]);
	atomic_store(&j->ok_ret, tmo_job_set_output_len(job, n));
	atomic_store(&j->over_ret, tmo_job_set_output_len(job, cap + 1));
	atomic_store(&j->len_after_over, (int)tmo_job_output_len(job));
	return (int64_t)n;
}

static void io_cb(struct tmo_job *job, int64_t res)
{
	struct io_job *j = (struct io_job *)job;

	j->cb_calls++;
	j->cb_res = res;
	j->out_len_in_cb = tmo_job_output_len(job);
}

static void input_and_output_buffers(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 };
	struct io_job *j = fx_new(fx, sizeof(*j));
	char *in = fx_new(fx, 16);
	char *out = fx_new(fx, 16);

	fx_pool_init(fx, &opts);
	memcpy(in, "hello, pool", 11);
	memset(out, '.', 16);
	tmo_job_prep(&j->job, upcase_fn);
	j->in_ptr = in;
	j->out_ptr = out;
	assert_int_equal(tmo_job_set_io(&j->job, in, 11, out, 8), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &j->job, tmo_in_ns(10 * U), io_cb), 0);
	run_all(fx);
	assert_int_equal(j->cb_calls, 1);
	assert_int_equal(j->cb_res, 8);
	assert_int_equal(atomic_load(&j->in_len_seen), 11);
	assert_int_equal(atomic_load(&j->out_cap_seen), 8);
	assert_true(atomic_load(&j->same_buffers)); /* a worker thread sees the very buffers */
	assert_int_equal(atomic_load(&j->ok_ret), 0);
	assert_int_equal(atomic_load(&j->over_ret), -EMSGSIZE);
	assert_int_equal(atomic_load(&j->len_after_over), 8); /* nothing changed */
	assert_int_equal(j->out_len_in_cb, 8);
	assert_int_equal(tmo_job_output_len(&j->job), 8);
	assert_memory_equal(out, "HELLO, P........", 16);
	assert_memory_equal(in, "hello, pool", 11); /* the input is the caller's, untouched */

	/* no buffers: the function sees NULL and 0 */
	tmo_job_prep(&j->job, upcase_fn);
	j->in_ptr = NULL;
	j->out_ptr = NULL;
	assert_int_equal(tmo_job_set_io(&j->job, NULL, 0, NULL, 0), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &j->job, TMO_NEVER, io_cb), 0);
	run_all(fx);
	assert_int_equal(j->cb_calls, 2);
	assert_int_equal(j->cb_res, 0);
	assert_true(atomic_load(&j->same_buffers));
	assert_int_equal(atomic_load(&j->in_len_seen), 0);
	assert_int_equal(atomic_load(&j->out_cap_seen), 0);
	assert_int_equal(atomic_load(&j->over_ret), -EMSGSIZE);
	assert_int_equal(j->out_len_in_cb, 0);
	fx_pool_close(fx);
}

/* ---- 3. the queue ------------------------------------------------------------------------- */

/* One worker, busy for 2 U: a job queued behind it whose 1 U deadline passes never runs. */
static void queued_job_past_its_deadline_never_runs(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1, .max_threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *a = new_rec(fx), *b = new_rec(fx);
	a->sleep_ns = 2 * U;
	a->ret = 1;
	b->ret = 2;
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), 0);
	wait_running(fx, a);
	int64_t deadline = t0 + U;
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, tmo_at(deadline), rec_cb), 0);
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.queued, 1);
	assert_int_equal(st.threads, 1);
	run_all(fx);

	assert_int_equal(b->cb_calls, 1);
	assert_int_equal(b->cb_res, -ETIME);
	assert_on_time(b->cb_at, deadline);
	assert_int_equal(atomic_load(&b->fn_calls), 0);
	assert_int_equal(b->rel_calls, 0);
	assert_int_equal(a->cb_calls, 1);
	assert_int_equal(a->cb_res, 1);
	assert_true(a->cb_at >= t0 + 2 * U);
	st = pool_stats(fx);
	assert_int_equal(st.started, 2);
	assert_int_equal(st.ran, 1);
	assert_int_equal(st.completed, 2);
	assert_int_equal(st.timed_out, 1);
	assert_int_equal(st.expired_queued, 1);
	assert_int_equal(st.queued, 0);
	assert_int_equal(atomic_load(&b->fn_calls), 0); /* not later either */
	fx_pool_close(fx);
}

/*
 * The loop thread is busy (not running the loop) when a queued job's deadline passes and the
 * worker frees up: the worker, not the loop, is first to see the job after its deadline. It
 * must not run it (regression: it ran it, and an interrupt job's signal came before the
 * function blocked, so the function blocked its full length).
 */
static void job_taken_after_its_deadline_never_runs(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1, .max_threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *a = new_rec(fx), *b = new_rec(fx);
	a->sleep_ns = U / 4;
	b->sleep_ns = 4 * U;
	assert_int_equal(tmo_job_set_overrun(&b->job, TMO_OVERRUN_INTERRUPT), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), 0);
	wait_running(fx, a);
	int64_t deadline = tmo_now() + U / 10;
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, tmo_at(deadline), rec_cb), 0);
	/* The loop thread is elsewhere while the deadline passes and the worker frees up. */
	test_sleep_ms(U / 2 / TMO_NSEC_PER_MSEC);
	run_all(fx);

	assert_int_equal(b->cb_calls, 1);
	assert_int_equal(b->cb_res, -ETIME);
	assert_true(b->cb_at >= deadline);
	assert_int_equal(atomic_load(&b->fn_calls), 0);
	assert_int_equal(b->rel_calls, 0);
	assert_false(tmo_job_busy(&b->job));
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.ran, 1);
	assert_int_equal(st.expired_queued, 1);
	fx_pool_close(fx);
}

/* queue_size 2, one worker busy: the fourth job is refused with -EAGAIN and left idle. */
static void full_queue_refuses_with_eagain(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1, .max_threads = 1, .queue_size = 2 };

	fx_pool_init(fx, &opts);
	struct job_rec *a = new_rec(fx), *b = new_rec(fx), *c = new_rec(fx), *d = new_rec(fx);
	a->sleep_ns = U;
	d->ret = 4;
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), 0);
	wait_running(fx, a);
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, TMO_NEVER, rec_cb), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &c->job, TMO_NEVER, rec_cb), 0);
	uint32_t active = tmo_loop_active(&fx->loop);
	struct tmo_pool_stats before = pool_stats(fx);
	assert_int_equal(before.queued, 2);
	assert_int_equal(tmo_job_start(&fx->pool, &d->job, TMO_NEVER, rec_cb), -EAGAIN);
	assert_false(tmo_job_busy(&d->job));
	assert_int_equal(tmo_loop_active(&fx->loop), active);
	struct tmo_pool_stats after = pool_stats(fx);
	assert_int_equal(after.refused, before.refused + 1);
	assert_int_equal(after.started, before.started);
	assert_int_equal(after.queued, 2);
	run_all(fx);
	assert_int_equal(d->cb_calls, 0);
	assert_int_equal(atomic_load(&d->fn_calls), 0);
	assert_int_equal(a->cb_calls + b->cb_calls + c->cb_calls, 3);
	/* idle, so it can be started now that there is room */
	assert_int_equal(tmo_job_start(&fx->pool, &d->job, TMO_NEVER, rec_cb), 0);
	run_all(fx);
	assert_int_equal(d->cb_calls, 1);
	assert_int_equal(d->cb_res, 4);
	assert_int_equal(pool_stats(fx).refused, 1);
	fx_pool_close(fx);
}

/*
 * TMO_JOB_WAIT with queue_size 1 and one worker busy for 2 U: a waiting job runs when there is
 * room, after the queued one; a waiting job whose 1 U deadline passes gets -ETIME on time and
 * never runs. The queue never holds more than queue_size.
 */
static void waiting_job_runs_when_there_is_room(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1, .max_threads = 1, .queue_size = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *a = new_rec(fx), *b = new_rec(fx), *c = new_rec(fx), *e = new_rec(fx);
	a->sleep_ns = 2 * U;
	b->ret = 2;
	c->ret = 3;
	e->ret = 5;
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), 0);
	wait_running(fx, a);
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, TMO_NEVER, rec_cb), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &c->job, TMO_NEVER, rec_cb), -EAGAIN);
	assert_false(tmo_job_busy(&c->job));
	assert_int_equal(tmo_job_set_flags(&c->job, TMO_JOB_WAIT), 0);
	assert_int_equal(tmo_job_set_flags(&e->job, TMO_JOB_WAIT), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &c->job, TMO_NEVER, rec_cb), 0);
	int64_t deadline = t0 + U;
	assert_int_equal(tmo_job_start(&fx->pool, &e->job, tmo_at(deadline), rec_cb), 0);
	assert_true(tmo_job_busy(&c->job));
	assert_true(tmo_job_busy(&e->job));
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.queued, 1);
	assert_int_equal(st.waiting, 2);
	assert_int_equal(st.refused, 1);
	run_all(fx);

	assert_int_equal(e->cb_calls, 1);
	assert_int_equal(e->cb_res, -ETIME);
	assert_on_time(e->cb_at, deadline);
	assert_int_equal(atomic_load(&e->fn_calls), 0);
	assert_int_equal(c->cb_calls, 1);
	assert_int_equal(c->cb_res, 3);
	assert_int_equal(b->cb_res, 2);
	assert_true(atomic_load(&c->fn_began) >= atomic_load(&a->fn_ended));
	assert_true(atomic_load(&c->fn_began) >= atomic_load(&b->fn_began)); /* in order */
	st = pool_stats(fx);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.refused, 1); /* waiting is not refusing */
	assert_int_equal(st.started, 4);
	assert_int_equal(st.ran, 3);
	assert_int_equal(st.timed_out, 1);
	assert_int_equal(st.expired_queued, 1);
	assert_int_equal(atomic_load(&e->fn_calls), 0);
	fx_pool_close(fx);
}

/* ---- 4. cancel ---------------------------------------------------------------------------- */

static void cancel_queued_running_and_done_jobs(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1, .max_threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *a = new_rec(fx), *b = new_rec(fx), *c = new_rec(fx);
	a->cooperative = true;
	a->ret = 10;
	b->ret = 20;
	c->ret = 30;
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), 0);
	wait_running(fx, a);
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, TMO_NEVER, rec_cb), 0);

	/* queued: never runs */
	assert_int_equal(tmo_job_cancel(&b->job), 0);
	assert_int_equal(tmo_job_cancel(&b->job), -EALREADY);
	assert_int_equal(b->cb_calls, 0); /* from the loop, not from the call */
	/* running, cooperative: told to stop */
	int64_t cancelled_at = tmo_now();
	assert_int_equal(tmo_job_cancel(&a->job), 0);
	assert_int_equal(tmo_job_cancel(&a->job), -EALREADY);
	assert_int_equal(a->cb_calls, 0);
	run_all(fx);

	assert_int_equal(b->cb_calls, 1);
	assert_int_equal(b->cb_res, -ECANCELED);
	assert_int_equal(atomic_load(&b->fn_calls), 0);
	assert_int_equal(b->rel_calls, 0);
	assert_on_time(b->cb_at, cancelled_at);
	assert_int_equal(a->cb_calls, 1);
	assert_int_equal(a->cb_res, -ECANCELED);
	assert_on_time(a->cb_at, cancelled_at);
	assert_int_equal(atomic_load(&a->fn_calls), 1);
	assert_false(atomic_load(&a->fn_cancelled_at_start));
	assert_true(atomic_load(&a->fn_cancelled_at_end));
	assert_on_time(atomic_load(&a->fn_ended), cancelled_at); /* it stopped itself soon */
	assert_released_once(a, 10);
	assert_int_equal(tmo_job_cancel(&a->job), -EALREADY);
	assert_int_equal(tmo_job_cancel(&b->job), -EALREADY);

	/* done: too late to cancel, also from its own callback */
	assert_int_equal(tmo_job_start(&fx->pool, &c->job, TMO_NEVER, rec_cb), 0);
	run_all(fx);
	assert_int_equal(c->cb_calls, 1);
	assert_int_equal(c->cb_res, 30);
	assert_int_equal(c->cancel_in_cb, -EALREADY);
	assert_int_equal(tmo_job_cancel(&c->job), -EALREADY);
	assert_int_equal(c->cb_calls, 1);
	run_all(fx);
	assert_int_equal(c->cb_calls, 1);

	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.cancelled, 2);
	assert_int_equal(st.completed, 3);
	assert_int_equal(st.ran, 2);
	fx_pool_close(fx);
}

/* ---- 5. deadlines at the edges ------------------------------------------------------------ */

static void deadline_already_passed_starts_nothing(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *a = new_rec(fx), *b = new_rec(fx);
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, tmo_at(t0 - 1), rec_cb), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, tmo_at(0), rec_cb), 0);
	assert_int_equal(a->cb_calls, 0); /* from the next loop iteration, not from the call */
	assert_int_equal(b->cb_calls, 0);
	assert_true(tmo_job_busy(&a->job));
	assert_true(tmo_loop_run(&fx->loop, TMO_RUN_ONCE) >= 0);
	assert_true(tmo_loop_run(&fx->loop, TMO_RUN_NOWAIT) >= 0);
	assert_int_equal(a->cb_calls, 1);
	assert_int_equal(a->cb_res, -ETIME);
	assert_on_time(a->cb_at, t0);
	assert_int_equal(b->cb_calls, 1);
	assert_int_equal(b->cb_res, -ETIME);
	run_all(fx);
	test_sleep_ms(20); /* a worker that took them anyway would have run them by now */
	assert_int_equal(atomic_load(&a->fn_calls), 0);
	assert_int_equal(atomic_load(&b->fn_calls), 0);
	assert_false(tmo_job_busy(&a->job));
	assert_false(tmo_job_busy(&b->job));
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.ran, 0);
	assert_int_equal(st.timed_out, 2);
	assert_int_equal(st.completed, 2);
	fx_pool_close(fx);
}

static void no_deadline_runs_to_the_end(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx);
	r->sleep_ns = U / 2;
	r->ret = 5;
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, TMO_NEVER, rec_cb), 0);
	run_all(fx);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, 5);
	assert_true(atomic_load(&r->fn_deadline) == TMO_NEVER_NS);
	assert_false(atomic_load(&r->fn_cancelled_at_end));
	assert_on_time(r->cb_at, t0 + U / 2);
	fx_pool_close(fx);
}

/*
 * A cancel that comes after the function returned, before the loop delivered its result, is
 * refused (-EALREADY) and leaves no trace: the result stands, tmo_job_cancelled() stays false
 * and the pool counts nothing as cancelled.
 */
static void note_cancelled(struct job_rec *r, int64_t res)
{
	(void)res;
	r->cancelled_seen_in_cb = tmo_job_cancelled(&r->job);
}

static void cancel_after_the_function_returned_leaves_no_trace(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx);
	r->ret = 7;
	r->on_cb = note_cancelled;
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_in_ns(10 * U), rec_cb), 0);
	/* The loop does not run: the finished job waits for it, between return and delivery. */
	int64_t limit = tmo_now() + 5 * TMO_NSEC_PER_SEC;
	while (tmo__job_state(&r->job) != J_FINISHED) {
		if (tmo_now() > limit)
			fail_msg("the job did not finish within 5 s (state %d)",
				 (int)tmo__job_state(&r->job));
		test_sleep_ms(1);
	}
	assert_int_equal(tmo_job_cancel(&r->job), -EALREADY);
	assert_false(tmo_job_cancelled(&r->job));
	run_all(fx);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, 7);
	assert_false(r->cancelled_seen_in_cb);
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.cancelled, 0);
	assert_int_equal(st.completed, 1);
	fx_pool_close(fx);
}

/* ---- 6. the release callback of an abandoned job ------------------------------------------ */

static void start_quick_from_callback(struct job_rec *r, int64_t res)
{
	struct job_rec *q = r->job.data;

	q->ret = 99;
	q->cb_res = tmo_job_start(&r->fx->pool, &q->job, tmo_in_ns(10 * U), rec_cb);
}

static void abandoned_job_is_released_when_it_returns(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 }; /* max_threads 2: room for a replacement */

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx), *q = new_rec(fx);
	r->sleep_ns = 3 * U;
	r->ret = 33;
	r->on_cb = start_quick_from_callback;
	r->job.data = q;
	assert_int_equal(tmo_job_set_overrun(&r->job, TMO_OVERRUN_ABANDON), 0);
	int64_t t0 = tmo_now();
	int64_t deadline = t0 + U;
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_at(deadline), rec_cb), 0);
	/* 2 U: the callback has fired, the function still sleeps. Active: the job, and the
	 * pool's wake-up request if it is in the kernel (loop.h) */
	int left = tmo_loop_run_until(&fx->loop, tmo_at(t0 + 2 * U));
	if (left < 1 || left > 2)
		fail_msg("at 2 U, %d active: the abandoned job (and a wake-up request) expected",
			 left);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, -ETIME);
	assert_on_time(r->cb_at, deadline);
	assert_true(r->busy_in_cb);
	assert_true(r->active_in_cb >= 1 && r->active_in_cb <= 2);
	assert_int_equal(r->rel_calls, 0);
	assert_true(tmo_job_busy(&r->job));
	assert_int_equal(tmo_loop_active(&fx->loop), (uint32_t)left);
	assert_int_equal(tmo_job_set_overrun(&r->job, TMO_OVERRUN_ABANDON), -EBUSY);
	assert_int_equal(tmo_job_cancel(&r->job), -EALREADY);
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.tied_up, 1);
	assert_int_equal(st.timed_out, 1);
	/* meanwhile the pool still served a job started from the callback */
	assert_int_equal(q->cb_calls, 1);
	assert_int_equal(q->cb_res, 99);
	assert_true(st.replacements >= 1);

	run_all(fx);
	assert_int_equal(r->rel_calls, 1);
	assert_int_equal(r->rel_res, 33);
	assert_on_time(r->rel_at, t0 + 3 * U);
	assert_true(r->rel_at >= atomic_load(&r->fn_ended));
	assert_int_equal(r->cb_calls, 1);
	assert_false(tmo_job_busy(&r->job));
	assert_int_equal(tmo_loop_active(&fx->loop), 0);
	st = pool_stats(fx);
	assert_int_equal(st.tied_up, 0);
	assert_int_equal(st.completed, 2);
	fx_pool_close(fx);
}

/* ---- 7. shutdown and close ---------------------------------------------------------------- */

static void shutdown_ends_every_job_once(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 2, .max_threads = 2, .queue_size = 2 };

	fx_pool_init(fx, &opts);
	struct job_rec *a = new_rec(fx), *b = new_rec(fx), *c = new_rec(fx), *d = new_rec(fx),
		       *e = new_rec(fx), *f = new_rec(fx);
	a->cooperative = true;
	a->ret = 11;
	b->sleep_ns = U;
	b->ret = 12;
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, TMO_NEVER, rec_cb), 0);
	wait_running(fx, a);
	wait_running(fx, b);
	assert_int_equal(tmo_job_start(&fx->pool, &c->job, TMO_NEVER, rec_cb), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &d->job, tmo_in_ns(10 * U), rec_cb), 0);
	assert_int_equal(tmo_job_set_flags(&e->job, TMO_JOB_WAIT), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &e->job, TMO_NEVER, rec_cb), 0);
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.queued, 2);
	assert_int_equal(st.waiting, 1);

	int64_t shut_at = tmo_now();
	assert_int_equal(tmo_pool_shutdown(&fx->pool), 0);
	assert_int_equal(tmo_pool_shutdown(&fx->pool), -EALREADY);
	assert_int_equal(tmo_job_start(&fx->pool, &f->job, TMO_NEVER, rec_cb), -ESHUTDOWN);
	assert_false(tmo_job_busy(&f->job));
	assert_int_equal(tmo_pool_close(&fx->pool), -EBUSY);
	assert_int_equal(a->cb_calls + b->cb_calls + c->cb_calls + d->cb_calls + e->cb_calls, 0);
	run_all(fx);

	struct job_rec *all[] = { a, b, c, d, e };
	for (int i = 0; i < 5; i++) {
		if (all[i]->cb_calls != 1 || all[i]->cb_res != -ECANCELED)
			fail_msg("job %c: %d callbacks, last %lld", 'a' + i, all[i]->cb_calls,
				 (long long)all[i]->cb_res);
		assert_on_time(all[i]->cb_at, shut_at);
		assert_false(tmo_job_busy(&all[i]->job));
	}
	for (int i = 2; i < 5; i++) /* queued and waiting ones never ran */
		assert_int_equal(atomic_load(&all[i]->fn_calls), 0);
	/* the running ones: the cooperative one was told, the sleeping one left to finish */
	assert_true(atomic_load(&a->fn_cancelled_at_end));
	assert_on_time(atomic_load(&a->fn_ended), shut_at);
	assert_true(b->busy_in_cb);
	assert_true(b->cb_at < atomic_load(&b->fn_ended)); /* its callback did not wait for it */
	assert_int_equal(b->rel_calls, 1);
	assert_int_equal(b->rel_res, 12);
	assert_true(b->rel_at >= atomic_load(&b->fn_began) + U);
	assert_released_once(a, 11);
	assert_int_equal(f->cb_calls, 0);
	st = pool_stats(fx);
	assert_int_equal(st.cancelled, 5);
	assert_int_equal(st.completed, 5);
	assert_int_equal(st.started, 5);
	assert_int_equal(tmo_job_start(&fx->pool, &f->job, TMO_NEVER, rec_cb), -ESHUTDOWN);
	assert_int_equal(tmo_pool_shutdown(&fx->pool), -EALREADY);
	fx_pool_close(fx);
}

/* Close refuses while a job is busy, and changes nothing: the job still completes. */
static void close_refuses_while_a_job_is_busy(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 };

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx);
	r->sleep_ns = U / 2;
	r->ret = 8;
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, TMO_NEVER, rec_cb), 0);
	assert_int_equal(tmo_pool_close(&fx->pool), -EBUSY);
	run_all(fx);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, 8);
	fx_pool_close(fx);
	/* a closed pool is not initialised */
	assert_int_equal(tmo_pool_close(&fx->pool), -EINVAL);
}

/* A second pool, closed from a callback of the fixture's pool. */
struct other_pool {
	struct tmo_pool pool;
	int close_ret;
};

static void close_the_other_pool(struct job_rec *r, int64_t res)
{
	struct other_pool *b = r->job.data;

	b->close_ret = tmo_pool_close(&b->pool);
}

/*
 * A callback closes another pool that waits to be served in the same pass: a job of the
 * fixture's pool is decided at its start (that pool asks the loop for attention), then b is
 * shut down (it asks too); the loop's deferred queue serves them in that order. The job's
 * callback closes b, and the loop must not serve b afterwards. Regressions: the loop walked
 * the list of pools it had taken and served b after tmo_pool_close had freed it; later, the
 * deferred queue took b off the wrong list (the one for the next pass) and went on to serve it
 * freed. Both are use-after-frees: AddressSanitizer reports them; a plain build goes on
 * silently, or loses the work queued for the next pass.
 */
static void callback_may_close_another_pool_waiting_to_be_served(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1 }, b_opts = { .threads = 1 };
	struct other_pool *b = fx_new(fx, sizeof(*b));

	b_opts.wake = fx->params.wake;
	assert_int_equal(tmo_pool_init(&b->pool, &fx->loop, &b_opts), 0);
	fx_pool_init(fx, &opts);
	b->close_ret = 1;
	struct job_rec *r = new_rec(fx), *q = new_rec(fx);
	r->job.data = b;
	r->on_cb = close_the_other_pool;
	int64_t t0 = tmo_now();
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_at(t0 - 1), rec_cb), 0);
	assert_int_equal(tmo_pool_shutdown(&b->pool), 0);
	run_all(fx);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, -ETIME);
	assert_on_time(r->cb_at, t0);
	assert_int_equal(b->close_ret, 0);
	assert_int_equal(tmo_pool_close(&b->pool), -EINVAL); /* closed for good */
	assert_int_equal(atomic_load(&r->fn_calls), 0);

	/* the loop and the fixture's pool go on */
	q->ret = 7;
	assert_int_equal(tmo_job_start(&fx->pool, &q->job, tmo_at(t0 + 10 * U), rec_cb), 0);
	run_all(fx);
	assert_int_equal(q->cb_calls, 1);
	assert_int_equal(q->cb_res, 7);
	assert_int_equal(tmo_loop_active(&fx->loop), 0);
	fx_pool_close(fx);
}

/* ---- 8. bad input ------------------------------------------------------------------------- */

static void noop_cb(struct tmo_job *job, int64_t res)
{
	struct job_rec *r = (struct job_rec *)job;

	r->cb_calls++;
}

static int handler_calls;
static void foreign_handler(int sig)
{
	handler_calls++;
}

static void bad_pool_options_are_refused(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool pool;
	const struct tmo_pool_options bad[] = {
		{ .threads = 4, .max_threads = 2 },
		{ .threads = 1025 },
		{ .threads = 1, .max_threads = 1025 },
		{ .queue_size = (1u << 20) + 1 },
		{ .kill_grace_ns = -1 },
		{ .max_input = (16u << 20) + 1 },
		{ .max_output = (16u << 20) + 1 },
		{ .wake = (enum tmo_pool_wake)99 },
		{ .interrupt_signal = -2 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&pool, 0, sizeof(pool));
		int ret = tmo_pool_init(&pool, &fx->loop, &bad[i]);
		if (ret != -EINVAL)
			fail_msg("bad options #%zu: %d, expected -EINVAL", i, ret);
		/* nothing to free: the struct holds no pool */
		assert_int_equal(tmo_pool_close(&pool), -EINVAL);
	}
	memset(&pool, 0, sizeof(pool));
	assert_int_equal(tmo_pool_init(NULL, &fx->loop, NULL), -EINVAL);
	assert_int_equal(tmo_pool_init(&pool, NULL, NULL), -EINVAL);
	assert_int_equal(tmo_pool_shutdown(NULL), -EINVAL);
	assert_int_equal(tmo_pool_close(NULL), -EINVAL);
	assert_int_equal(tmo_pool_close(&pool), -EINVAL); /* never initialised */
	struct tmo_pool_stats st;
	assert_int_equal(tmo_pool_get_stats(NULL, &st), -EINVAL);

	/* the limits themselves are fine */
	const struct tmo_pool_options edge = { .threads = 1, .max_threads = 1024,
					       .queue_size = 1u << 20, .max_input = 16u << 20,
					       .max_output = 16u << 20 };
	assert_int_equal(tmo_pool_init(&pool, &fx->loop, &edge), 0);
	assert_int_equal(tmo_pool_get_stats(&pool, NULL), -EINVAL);
	assert_int_equal(tmo_pool_close(&pool), 0);

	/* an interrupt signal with a foreign handler */
	int sig = SIGRTMIN + 6;
	struct sigaction sa = { .sa_handler = foreign_handler }, old;
	assert_int_equal(sigaction(sig, &sa, &old), 0);
	struct tmo_pool_options foreign = { .threads = 1, .interrupt_signal = sig };
	int ret = tmo_pool_init(&pool, &fx->loop, &foreign);
	struct sigaction now;
	assert_int_equal(sigaction(sig, &old, &now), 0);
	if (ret == 0)
		tmo_pool_close(&pool);
	assert_int_equal(ret, -EBUSY);
	assert_ptr_equal(now.sa_handler, foreign_handler); /* left alone */
	assert_int_equal(tmo_loop_active(&fx->loop), 0);
}

static void bad_job_input_is_refused_and_changes_nothing(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1, .interrupt_signal = -1, .max_input = 16 };
	static char big[17];

	fx_pool_init(fx, &opts);
	struct job_rec *r = new_rec(fx), *never = fx_new(fx, sizeof(*never));
	struct tmo_pool_stats before = pool_stats(fx);

	assert_int_equal(tmo_job_start(NULL, &r->job, TMO_NEVER, noop_cb), -EINVAL);
	assert_int_equal(tmo_job_start(&fx->pool, NULL, TMO_NEVER, noop_cb), -EINVAL);
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, TMO_NEVER, NULL), -EINVAL);
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_at(-1), noop_cb), -EINVAL);
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, tmo_at(INT64_MIN), noop_cb), -EINVAL);
	assert_int_equal(tmo_job_start(&fx->pool, &never->job, TMO_NEVER, noop_cb), -EINVAL);
	/* interrupts disabled on this pool */
	assert_int_equal(tmo_job_set_overrun(&r->job, TMO_OVERRUN_INTERRUPT), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, TMO_NEVER, noop_cb), -EOPNOTSUPP);
	/* an input larger than max_input for a helper process */
	assert_int_equal(tmo_job_set_overrun(&r->job, TMO_OVERRUN_KILL), 0);
	assert_int_equal(tmo_job_set_io(&r->job, big, sizeof(big), NULL, 0), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, TMO_NEVER, noop_cb), -EMSGSIZE);
	/* setters */
	assert_int_equal(tmo_job_set_overrun(&r->job, (enum tmo_overrun)3), -EINVAL);
	assert_int_equal(tmo_job_set_overrun(NULL, TMO_OVERRUN_ABANDON), -EINVAL);
	assert_int_equal(tmo_job_set_flags(NULL, 0), -EINVAL);
	assert_int_equal(tmo_job_set_flags(&r->job, 1u << 7), -EINVAL);
	assert_int_equal(tmo_job_set_release(NULL, rec_release), -EINVAL);
	assert_int_equal(tmo_job_set_io(NULL, NULL, 0, NULL, 0), -EINVAL);
	assert_int_equal(tmo_job_cancel(NULL), -EINVAL);
	assert_false(tmo_job_busy(NULL));
	assert_false(tmo_job_busy(&r->job));
	assert_false(tmo_job_busy(&never->job));

	/* nothing changed */
	struct tmo_pool_stats after = pool_stats(fx);
	assert_int_equal(after.started, before.started);
	assert_int_equal(after.refused, before.refused);
	assert_int_equal(after.queued, 0);
	assert_int_equal(tmo_loop_active(&fx->loop), 0);
	assert_int_equal(tmo_loop_run(&fx->loop, TMO_RUN_NOWAIT), 0);
	assert_int_equal(r->cb_calls, 0);
	assert_int_equal(never->cb_calls, 0);

	/* the same job, set right, starts; busy, it cannot be restarted or changed */
	assert_int_equal(tmo_job_set_overrun(&r->job, TMO_OVERRUN_ABANDON), 0);
	assert_int_equal(tmo_job_set_io(&r->job, NULL, 0, NULL, 0), 0);
	r->sleep_ns = U / 4;
	r->ret = 6;
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, TMO_NEVER, rec_cb), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &r->job, TMO_NEVER, rec_cb), -EBUSY);
	assert_int_equal(tmo_job_set_overrun(&r->job, TMO_OVERRUN_ABANDON), -EBUSY);
	assert_int_equal(tmo_job_set_flags(&r->job, 0), -EBUSY);
	assert_int_equal(tmo_job_set_release(&r->job, NULL), -EBUSY);
	assert_int_equal(tmo_job_set_io(&r->job, NULL, 0, NULL, 0), -EBUSY);
	assert_int_equal(pool_stats(fx).started, before.started + 1);
	run_all(fx);
	assert_int_equal(r->cb_calls, 1);
	assert_int_equal(r->cb_res, 6);
	assert_int_equal(atomic_load(&r->fn_calls), 1);
	fx_pool_close(fx);
}

static atomic_int other_fn_calls;

static int64_t other_fn(struct tmo_job *job)
{
	atomic_fetch_add(&other_fn_calls, 1);
	return 999;
}

/* Both preparations of a busy job: refused with -EBUSY, the job still busy and unchanged. */
static void assert_prep_refused(struct job_rec *r)
{
	const long args[6] = { 0 };

	assert_int_equal(tmo_job_prep(&r->job, other_fn), -EBUSY);
	assert_int_equal(tmo_job_prep_syscall(&r->job, SYS_getpid, args), -EBUSY);
	assert_true(tmo_job_busy(&r->job));
	assert_ptr_equal(r->job.data, &data_sentinel);
}

static int prep_in_cb, prep_syscall_in_cb;

static void prep_from_callback(struct job_rec *r, int64_t res)
{
	const long args[6] = { 0 };

	prep_in_cb = tmo_job_prep(&r->job, other_fn);
	prep_syscall_in_cb = tmo_job_prep_syscall(&r->job, SYS_getpid, args);
}

/*
 * Regression: tmo_job_prep and tmo_job_prep_syscall on a busy job used to reset it while a
 * worker ran it or the queue held it. Now they are refused with -EBUSY and the job goes on: a
 * running job, a queued one, and an abandoned one (its callback fired, its function still
 * runs) each report their own function's result once, and the other function never runs.
 */
static void prep_of_a_busy_job_is_ebusy_and_changes_nothing(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 1, .max_threads = 1 };
	const long args[6] = { 0 };

	atomic_store(&other_fn_calls, 0);
	assert_int_equal(tmo_job_prep(NULL, rec_fn), -EINVAL);
	assert_int_equal(tmo_job_prep_syscall(NULL, SYS_getpid, args), -EINVAL);
	fx_pool_init(fx, &opts);
	struct job_rec *a = new_rec(fx), *b = new_rec(fx), *c = new_rec(fx), *idle = new_rec(fx);
	assert_int_equal(tmo_job_prep(&idle->job, NULL), -EINVAL);

	/* a runs, b waits in the queue behind it */
	a->sleep_ns = U / 2;
	a->ret = 31;
	b->ret = 32;
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), 0);
	wait_running(fx, a);
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, tmo_in_ns(10 * U), rec_cb), 0);
	assert_int_equal(pool_stats(fx).queued, 1);
	assert_prep_refused(a);
	assert_prep_refused(b);
	assert_int_equal(tmo_job_prep(&a->job, NULL), -EINVAL);
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), -EBUSY);
	assert_int_equal(tmo_job_start(&fx->pool, &b->job, TMO_NEVER, rec_cb), -EBUSY);
	run_all(fx);
	assert_int_equal(a->cb_calls, 1);
	assert_int_equal(a->cb_res, 31);
	assert_int_equal(atomic_load(&a->fn_calls), 1);
	assert_int_equal(a->rel_calls, 0);
	assert_int_equal(b->cb_calls, 1);
	assert_int_equal(b->cb_res, 32);
	assert_int_equal(atomic_load(&b->fn_calls), 1);
	assert_int_equal(b->rel_calls, 0);

	/* c overruns its deadline and is abandoned: busy in its callback until it returns */
	c->sleep_ns = U;
	c->ret = 33;
	c->on_cb = prep_from_callback;
	prep_in_cb = prep_syscall_in_cb = 1;
	/* U / 2: time for a loaded machine's worker to take c before its deadline (c sleeps U). */
	assert_int_equal(tmo_job_start(&fx->pool, &c->job, tmo_in_ns(U / 2), rec_cb), 0);
	wait_running(fx, c);
	assert_prep_refused(c);
	run_all(fx);
	assert_int_equal(c->cb_calls, 1);
	assert_int_equal(c->cb_res, -ETIME);
	assert_true(c->busy_in_cb);
	assert_int_equal(prep_in_cb, -EBUSY);
	assert_int_equal(prep_syscall_in_cb, -EBUSY);
	/* the release callback was left in place and reports the real function's result */
	assert_int_equal(c->rel_calls, 1);
	assert_int_equal(c->rel_res, 33);
	assert_int_equal(atomic_load(&c->fn_calls), 1);
	assert_false(tmo_job_busy(&c->job));

	assert_int_equal(atomic_load(&other_fn_calls), 0);
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.started, 3);
	assert_int_equal(st.ran, 3);
	assert_int_equal(st.completed, 3);

	/* released: it may be prepared again */
	assert_int_equal(tmo_job_prep(&a->job, other_fn), 0);
	assert_int_equal(tmo_job_start(&fx->pool, &a->job, TMO_NEVER, rec_cb), 0);
	run_all(fx);
	assert_int_equal(a->cb_calls, 2);
	assert_int_equal(a->cb_res, 999);
	assert_int_equal(atomic_load(&other_fn_calls), 1);
	fx_pool_close(fx);
}

/* ---- 9. wake mechanisms, loop modes, many jobs -------------------------------------------- */

struct quick {
	struct tmo_job job;
	uint32_t index;
	int calls;
	int64_t res;
};

static int64_t quick_fn(struct tmo_job *job)
{
	return ((struct quick *)job)->index;
}

static long quick_done;

static void quick_cb(struct tmo_job *job, int64_t res)
{
	struct quick *q = (struct quick *)job;

	q->calls++;
	q->res = res;
	quick_done++;
}

/* n no-op jobs, never more than `window` outstanding; each comes back once with its index. */
static void run_quick_jobs(struct fx *fx, uint32_t n, uint32_t window)
{
	struct quick *q = fx_new(fx, n * sizeof(*q));
	long started = 0;

	quick_done = 0;
	for (uint32_t i = 0; i < n; i++) {
		while (started - quick_done >= window)
			assert_true(tmo_loop_run(&fx->loop, TMO_RUN_ONCE) >= 0);
		tmo_job_prep(&q[i].job, quick_fn);
		q[i].index = i;
		int ret = tmo_job_start(&fx->pool, &q[i].job, tmo_in_ns(50 * U), quick_cb);
		if (ret)
			fail_msg("job %u: start %d with %ld outstanding", i, ret,
				 started - quick_done);
		started++;
	}
	run_all(fx);
	assert_int_equal(quick_done, n);
	for (uint32_t i = 0; i < n; i++) {
		if (q[i].calls != 1 || q[i].res != (int64_t)i)
			fail_msg("job %u: %d callbacks, result %lld", i, q[i].calls,
				 (long long)q[i].res);
		assert_false(tmo_job_busy(&q[i].job));
	}
}

static void round_trip(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 4 };

	skip_without_futex(fx);
	fx_pool_init(fx, &opts);
	run_quick_jobs(fx, 300, 64);
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.completed, 300);
	assert_int_equal(st.ran, 300);
	assert_int_equal(st.timed_out, 0);
	/* With a futex the loop drains results it finds before it waits, without a wake-up:
	 * a slow loop (TSan) can see every result that way. An eventfd read is the only way in. */
	if (fx->params.wake == TMO_POOL_WAKE_EVENTFD)
		assert_true(st.wakeups >= 1);
	assert_true(st.wakeups <= st.completed);
	print_message("300 jobs, %llu wake-ups\n", (unsigned long long)st.wakeups);
	fx_pool_close(fx);
}

static void many_quick_jobs_complete_once(void **state)
{
	struct fx *fx = *state;
	struct tmo_pool_options opts = { .threads = 4, .queue_size = 64 };

	fx_pool_init(fx, &opts);
	run_quick_jobs(fx, 2000, 64);
	struct tmo_pool_stats st = pool_stats(fx);
	assert_int_equal(st.started, 2000);
	assert_int_equal(st.ran, 2000);
	assert_int_equal(st.completed, 2000);
	assert_int_equal(st.refused, 0);
	assert_int_equal(st.timed_out, 0);
	assert_int_equal(st.cancelled, 0);
	assert_int_equal(st.queued, 0);
	assert_true(st.wakeups <= st.completed);
	print_message("2000 jobs, %llu wake-ups\n", (unsigned long long)st.wakeups);
	fx_pool_close(fx);
}

int main(void)
{
	if (getenv("TMO_TEST_FILTER")) /* e.g. TMO_TEST_FILTER='*close*' */
		cmocka_set_test_filter(getenv("TMO_TEST_FILTER"));
	static const struct params def_auto = { TMO_MODE_DEFAULT, TMO_POOL_WAKE_AUTO };
	static const struct params def_futex = { TMO_MODE_DEFAULT, TMO_POOL_WAKE_FUTEX };
	static const struct params def_eventfd = { TMO_MODE_DEFAULT, TMO_POOL_WAKE_EVENTFD };
	static const struct params ll_futex = { TMO_MODE_LOW_LATENCY, TMO_POOL_WAKE_FUTEX };
	static const struct params ll_eventfd = { TMO_MODE_LOW_LATENCY, TMO_POOL_WAKE_EVENTFD };
#define T(f) { #f, f, setup, teardown, (void *)&def_auto }
#define TP(f, p) { #f " [" #p "]", f, setup, teardown, (void *)&p }
	const struct CMUnitTest tests[] = {
		TP(blocking_sleep_times_out_while_the_loop_serves, def_auto),
		TP(blocking_sleep_times_out_while_the_loop_serves, def_eventfd),
		TP(blocking_sleep_times_out_while_the_loop_serves, ll_futex),
		TP(blocking_sleep_times_out_while_the_loop_serves, ll_eventfd),
		T(cooperative_job_stops_itself_at_the_deadline),
		TP(cooperative_job_stops_itself_at_the_deadline, ll_eventfd),
		T(error_before_the_deadline_is_the_error),
		T(job_done_at_once_reports_at_once),
		T(results_arrive_unchanged),
		T(input_and_output_buffers),
		T(queued_job_past_its_deadline_never_runs),
		T(job_taken_after_its_deadline_never_runs),
		T(full_queue_refuses_with_eagain),
		T(waiting_job_runs_when_there_is_room),
		T(cancel_queued_running_and_done_jobs),
		T(cancel_after_the_function_returned_leaves_no_trace),
		T(deadline_already_passed_starts_nothing),
		T(no_deadline_runs_to_the_end),
		T(abandoned_job_is_released_when_it_returns),
		T(shutdown_ends_every_job_once),
		T(close_refuses_while_a_job_is_busy),
		T(callback_may_close_another_pool_waiting_to_be_served),
		T(bad_pool_options_are_refused),
		T(bad_job_input_is_refused_and_changes_nothing),
		T(prep_of_a_busy_job_is_ebusy_and_changes_nothing),
		TP(round_trip, def_futex),
		TP(round_trip, def_eventfd),
		TP(round_trip, ll_futex),
		TP(round_trip, ll_eventfd),
		T(many_quick_jobs_complete_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
