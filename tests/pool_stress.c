/*
 * pool-stress: 1,000 jobs through a worker pool (pool.h), each run of the test once per wake
 * mechanism. A third hang (block far past their deadline: under abandon they sleep 2-3 units
 * past it and then return, under interrupt they sit in clock_nanosleep until a signal, under
 * kill they sleep or spin for ever, some ignoring SIGTERM), a third fail (-EIO at a random time
 * before their deadline), a third succeed (a value, and the same value in their output buffer),
 * at random overrun levels, under random deadlines (some already passed, some none), started as
 * the queue allows (-EAGAIN: run the loop and retry; a quarter use TMO_JOB_WAIT instead), and
 * some cancelled at random moments.
 *
 * Checked: exactly one completion callback per start; a release callback exactly for the jobs
 * still busy at their callback, once; outcomes that fit the job (a success gives its value and
 * its output, a failure -EIO, a hang never a result of its own; -ETIME never before the
 * deadline and not later than the tolerance; -ECANCELED exactly when tmo_job_cancel returned
 * 0; a result is delivered only if the function returned before the deadline); late results
 * that fit the level (abandon: the function's own, interrupt: its own or -EINTR, kill: its own
 * or -ECHILD); the pool's counters agree with what was seen; tmo_pool_close returns 0 and no
 * thread, fd or child process is left.
 *
 * The PRNG seed is printed; TMO_TEST_SEED=<n> in the environment repeats a run. One stress
 * unit is SU = 50 ms. Callbacks record violations instead of asserting (an assertion would
 * jump out of tmo_loop_run); the test fails on the count after the run, printing the first few.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "tmo/pool.h"

#define MS TMO_NSEC_PER_MSEC
#define SU (50 * MS)
#define NJOBS 1000
#define MAX_BUSY 24   /* jobs busy at once, tied-up ones included */
#define HANG_RET 7777 /* what an abandoned hang returns in the end */

/* ---- the jobs ----------------------------------------------------------------------------- */

enum kind { SUCCEED, FAIL, HANG };

/* What the function is told, by its input (the only way into a helper process). */
struct params {
	int kind;
	int level;
	int ignore_term; /* kill hang: SIGTERM ignored, SIGKILL needed */
	int spin;        /* kill hang: a CPU loop instead of a sleep */
	int64_t ret_at;  /* success or failure: return at this time */
	int64_t hang_until;
	int64_t value;   /* success: the result and the output */
};

/* What a successful function writes into its output buffer. */
struct output {
	int64_t value;
	int64_t returned_at; /* tmo_now() just before it returned */
	int64_t started_at;  /* when it began (seen for worker-thread jobs only: helpers copy the
				output back only with a result), to explain a failure */
};

struct sjob {
	struct tmo_job job;
	struct params p;
	struct output out;
	int index;
	bool wait;
	int64_t deadline;
	int starts, calls, releases;
	bool cancel_ok;
	int64_t cancel_at;
	bool busy_at_cb;
	int64_t res, late_res, seen_at;
};

struct stress {
	struct tmo_loop loop;
	struct tmo_pool pool;
	bool loop_open, pool_open;
	bool tearing_down; /* after a failure: the shutdown's -ECANCELED are expected */
	struct sjob jobs[NJOBS];
	unsigned seed;
	int busy;
	long eagain, cancel_calls, cancel_ok, errors;
	long n_value, n_eio, n_etime, n_etime_ran, n_ecanceled, n_releases;
	int64_t max_late;
};

static struct stress *g;

static int rnd(int n)
{
	return (int)(rand_r(&g->seed) % (unsigned)n);
}

static void error_at(const struct sjob *j, const char *fmt, ...)
{
	va_list ap;

	if (g->errors++ >= 20)
		return;
	if (g->tearing_down)
		return;
	char when[48] = "none";
	if (j->deadline != TMO_NEVER_NS)
		snprintf(when, sizeof(when), "%+.3f ms from now",
			 (double)(j->deadline - tmo_now()) / 1e6);
	fprintf(stderr, "job %d (kind %d, level %d, wait %d, deadline %s): ", j->index, j->p.kind,
		j->p.level, j->wait, when);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Sleeps until `t`: 0, or -EINTR when a signal interrupts it (unless through_eintr). */
static int sleep_until(int64_t t, bool through_eintr)
{
	struct timespec ts = { .tv_sec = t / TMO_NSEC_PER_SEC, .tv_nsec = t % TMO_NSEC_PER_SEC };

	for (;;) {
		int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		if (r == 0)
			return 0;
		if (r != EINTR)
			return -r;
		if (!through_eintr)
			return -EINTR;
	}
}

/* The job function, on a worker thread or in a helper process. */
static int64_t stress_fn(struct tmo_job *job)
{
	size_t len = 0, cap = 0;
	const struct params *in = tmo_job_input(job, &len);
	struct output *out = tmo_job_output(job, &cap);
	int64_t began = tmo_now();

	if (!in || len != sizeof(*in) || !out || cap < sizeof(*out))
		return -EPROTO;
	out->started_at = began;
	struct params p = *in;
	switch (p.kind) {
	case SUCCEED:
	case FAIL: {
		int r = sleep_until(p.ret_at, false);
		if (r)
			return r;
		if (p.kind == FAIL)
			return -EIO;
		out->value = p.value;
		r = tmo_job_set_output_len(job, sizeof(*out));
		if (r)
			return r;
		out->returned_at = tmo_now();
		return p.value;
	}
	case HANG:
		if (p.level == TMO_OVERRUN_ABANDON) {
			sleep_until(p.hang_until, true);
			return HANG_RET;
		}
		if (p.level == TMO_OVERRUN_INTERRUPT) {
			int r = sleep_until(p.hang_until, false);
			return r ? r : HANG_RET;
		}
		if (p.ignore_term) {
			struct sigaction sa;
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = SIG_IGN;
			sigaction(SIGTERM, &sa, NULL);
		}
		if (p.spin) {
			volatile uint64_t n = 0;
			for (;;)
				n++;
		}
		for (;;)
			sleep_until(tmo_now() + 10 * TMO_NSEC_PER_SEC, true);
	}
	return -EPROTO;
}

static void job_done(struct sjob *j)
{
	g->busy--;
	if (g->busy < 0)
		error_at(j, "more jobs let go than started");
}

/* The value the function returns on its own, if it returns. */
static bool own_result(const struct sjob *j, int64_t res)
{
	switch (j->p.kind) {
	case SUCCEED:
		return res == j->p.value;
	case FAIL:
		return res == -EIO;
	default:
		return j->p.level == TMO_OVERRUN_ABANDON && res == HANG_RET;
	}
}

static void on_done(struct tmo_job *job, int64_t res)
{
	struct sjob *j = job->data;
	int64_t now = tmo_now();

	j->calls++;
	j->res = res;
	j->seen_at = now;
	j->busy_at_cb = tmo_job_busy(job);
	if (j->calls > 1) {
		error_at(j, "callback %d (res %lld)", j->calls, (long long)res);
		return;
	}
	if (res == -ETIME) {
		g->n_etime++;
		if (j->busy_at_cb)
			g->n_etime_ran++;
		if (now < j->deadline)
			error_at(j, "-ETIME %.3f ms BEFORE the deadline",
				 (double)(j->deadline - now) / 1e6);
		else if (now - j->deadline > g->max_late)
			g->max_late = now - j->deadline;
		if (j->cancel_ok)
			error_at(j, "-ETIME after tmo_job_cancel returned 0");
	} else if (res == -ECANCELED) {
		g->n_ecanceled++;
		if (!j->cancel_ok)
			error_at(j, "-ECANCELED, not cancelled");
	} else {
		if (j->cancel_ok)
			error_at(j, "result %lld after tmo_job_cancel returned 0", (long long)res);
		if (j->busy_at_cb)
			error_at(j, "busy after its result %lld", (long long)res);
		if (!own_result(j, res) || j->p.kind == HANG)
			error_at(j, "result %lld does not fit the job", (long long)res);
		if (res == -EIO)
			g->n_eio++;
		if (j->p.kind == SUCCEED && res == j->p.value) {
			g->n_value++;
			size_t len = tmo_job_output_len(job);
			if (len != sizeof(j->out) || j->out.value != j->p.value)
				error_at(j, "output %zu bytes, value %lld", len,
					 (long long)j->out.value);
			else if (j->out.returned_at >= j->deadline)
				error_at(j, "result delivered, though the function returned %.3f ms "
					    "after the deadline",
					 (double)(j->out.returned_at - j->deadline) / 1e6);
		}
	}
	if (!j->busy_at_cb)
		job_done(j);
}

static void on_release(struct tmo_job *job, int64_t late_res)
{
	struct sjob *j = job->data;
	bool fits;

	j->releases++;
	j->late_res = late_res;
	g->n_releases++;
	if (j->releases > 1 || !j->busy_at_cb || j->calls != 1) {
		error_at(j, "release %d (callbacks %d, busy at callback %d)", j->releases, j->calls,
			 j->busy_at_cb);
		return;
	}
	switch (j->p.level) {
	case TMO_OVERRUN_INTERRUPT:
		fits = late_res == -EINTR || (j->p.kind != HANG && own_result(j, late_res));
		break;
	case TMO_OVERRUN_KILL:
		fits = late_res == -ECHILD || (j->p.kind != HANG && own_result(j, late_res));
		break;
	default:
		fits = own_result(j, late_res);
		break;
	}
	if (!fits)
		error_at(j, "late result %lld does not fit (the function began %.3f ms %s the "
			    "deadline, the release came %.3f ms after it)",
			 (long long)late_res,
			 (double)llabs(j->out.started_at - j->deadline) / 1e6,
			 j->out.started_at >= j->deadline ? "after" : "before",
			 (double)(tmo_now() - j->deadline) / 1e6);
	job_done(j);
}

/* Prepares job j with a fresh deadline and starts it: 0 or tmo_job_start's error. */
static int try_start(struct sjob *j)
{
	struct params *p = &j->p;
	int64_t now = tmo_now();
	int d = rnd(20);

	if (d == 0)
		j->deadline = now - 1; /* already passed: -ETIME, never runs */
	else if (d == 1 && p->kind != HANG)
		j->deadline = TMO_NEVER_NS;
	else
		j->deadline = now + 2 * MS + rnd(198 * 1000) * TMO_NSEC_PER_USEC;
	if (j->deadline == TMO_NEVER_NS)
		p->ret_at = now + rnd(30 * 1000) * TMO_NSEC_PER_USEC;
	else
		p->ret_at = now + (j->deadline - now) * rnd(70) / 100;
	if (p->kind != HANG) /* a hang's deadline is never TMO_NEVER */
		p->hang_until = 0;
	else if (p->level == TMO_OVERRUN_ABANDON)
		p->hang_until = j->deadline + 2 * SU + rnd(1000) * SU / 1000;
	else
		p->hang_until = j->deadline + 2 * TMO_NSEC_PER_SEC; /* a failed interrupt shows */
	memset(&j->out, 0, sizeof(j->out));

	if (tmo_job_prep(&j->job, stress_fn))
		fail_msg("job %d: tmo_job_prep failed", j->index);
	j->job.data = j;
	if (tmo_job_set_overrun(&j->job, (enum tmo_overrun)p->level) ||
	    tmo_job_set_flags(&j->job, j->wait ? TMO_JOB_WAIT : 0) ||
	    tmo_job_set_release(&j->job, on_release) ||
	    tmo_job_set_io(&j->job, p, sizeof(*p), &j->out, sizeof(j->out)))
		fail_msg("job %d: a setter failed", j->index);
	return tmo_job_start(&g->pool, &j->job,
			     j->deadline == TMO_NEVER_NS ? TMO_NEVER : tmo_at(j->deadline), on_done);
}

static void cancel(struct sjob *j)
{
	if (!j->starts || j->calls)
		return;
	int ret = tmo_job_cancel(&j->job);
	g->cancel_calls++;
	if (ret == 0) {
		g->cancel_ok++;
		j->cancel_ok = true;
		j->cancel_at = tmo_now();
	} else if (ret != -EALREADY) {
		error_at(j, "tmo_job_cancel: %d", ret);
	}
}

static void stress(enum tmo_pool_wake wake)
{
	struct tmo_pool_options o = { .threads = 12, .max_threads = 24, .queue_size = 8,
				      .kill_grace_ns = SU, .wake = wake };
	const char *env = getenv("TMO_TEST_SEED");
	int fds0, threads0, children0;

	g = calloc(1, sizeof(*g));
	assert_non_null(g);
	g->seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL) ^ (unsigned)getpid();
	print_message("wake %d: seed %u (TMO_TEST_SEED=%u repeats it)\n", wake, g->seed, g->seed);
	assert_int_equal(tmo_loop_init(&g->loop, NULL), 0);
	g->loop_open = true;
	struct tmo_loop *loop = &g->loop;
	fds0 = test_count_fds();
	threads0 = test_count_threads();
	children0 = test_count_children();
	int ret = tmo_pool_init(&g->pool, loop, &o);
	if (ret)
		fail_msg("tmo_pool_init: %d", ret);
	g->pool_open = true;

	for (int i = 0; i < NJOBS; i++) {
		struct sjob *j = &g->jobs[i];
		j->index = i;
		j->p.kind = rnd(3);
		j->p.level = rnd(3);
		j->p.value = 1000 + i;
		j->p.spin = rnd(3) == 0;
		j->p.ignore_term = rnd(8) == 0;
		j->wait = rnd(4) == 0;
	}

	int64_t t0 = tmo_now();
	int next = 0;
	long rounds = 0;
	while (next < NJOBS || g->busy > 0) {
		if (tmo_now() - t0 > 60 * TMO_NSEC_PER_SEC) {
			for (int i = 0; i < next; i++)
				if (tmo_job_busy(&g->jobs[i].job))
					error_at(&g->jobs[i], "still busy: %d callbacks, the run began %.0f "
							      "ms ago",
						 g->jobs[i].calls, (double)(tmo_now() - t0) / 1e6);
			fail_msg("still running after 60 s: %d started, %d busy", next, g->busy);
		}
		while (next < NJOBS && g->busy < MAX_BUSY) {
			struct sjob *j = &g->jobs[next];
			ret = try_start(j);
			if (ret == -EAGAIN && !j->wait) {
				g->eagain++;
				break; /* run the loop, then retry this one */
			}
			if (ret)
				fail_msg("job %d: tmo_job_start: %d", next, ret);
			j->starts++;
			g->busy++;
			next++;
			if (rnd(40) == 0)
				cancel(j); /* at once: most likely still queued or waiting */
		}
		if (next > 0 && rnd(6) == 0) {
			int lo = next > 2 * MAX_BUSY ? next - 2 * MAX_BUSY : 0;
			cancel(&g->jobs[lo + rnd(next - lo)]);
		}
		ret = rnd(4) == 0 ? tmo_loop_run(loop, TMO_RUN_NOWAIT)
				  : tmo_loop_run_until(loop, tmo_in_ns(rnd(4000) * TMO_NSEC_PER_USEC));
		assert_true(ret >= 0);
		rounds++;
	}
	int64_t took = tmo_now() - t0;

	struct tmo_pool_stats s;
	assert_int_equal(tmo_pool_get_stats(&g->pool, &s), 0);
	print_message("%.1f s, %ld rounds: %ld values, %ld -EIO, %ld -ETIME (%ld while running), "
		      "%ld -ECANCELED (%ld of %ld cancels took), %ld releases, %ld -EAGAIN; "
		      "latest -ETIME %.1f ms late\n",
		      (double)took / 1e9, rounds, g->n_value, g->n_eio, g->n_etime, g->n_etime_ran,
		      g->n_ecanceled, g->cancel_ok, g->cancel_calls, g->n_releases, g->eagain,
		      (double)g->max_late / 1e6);
	print_message("pool: ran %llu, expired queued %llu, replacements %llu, interrupts %llu, "
		      "helpers started %llu, killed %llu (SIGKILL %llu), wake-ups %llu\n",
		      (unsigned long long)s.ran, (unsigned long long)s.expired_queued,
		      (unsigned long long)s.replacements, (unsigned long long)s.interrupts,
		      (unsigned long long)s.helpers_started, (unsigned long long)s.helpers_killed,
		      (unsigned long long)s.helpers_sigkilled, (unsigned long long)s.wakeups);

	for (int i = 0; i < NJOBS; i++) {
		struct sjob *j = &g->jobs[i];
		if (j->starts != 1 || j->calls != 1 || j->releases != (j->busy_at_cb ? 1 : 0) ||
		    tmo_job_busy(&j->job))
			error_at(j, "%d starts, %d callbacks, %d releases (busy at callback %d), "
				    "busy now %d",
				 j->starts, j->calls, j->releases, j->busy_at_cb,
				 tmo_job_busy(&j->job));
	}
	if (g->errors)
		fail_msg("%ld violations (seed %u)", g->errors, g->seed);
	if (g->max_late > test_tolerance_ns())
		fail_msg("an -ETIME came %.1f ms after its deadline (tolerance %.0f ms)",
			 (double)g->max_late / 1e6, (double)test_tolerance_ns() / 1e6);

	/* the counters agree with what the callbacks saw */
	assert_int_equal(s.started, NJOBS);
	assert_int_equal(s.completed, NJOBS);
	assert_int_equal(s.timed_out, g->n_etime);
	assert_int_equal(s.cancelled, g->n_ecanceled);
	assert_int_equal(s.refused, g->eagain);
	assert_true(s.expired_queued <= s.timed_out);
	assert_int_equal(s.tied_up, 0);
	assert_int_equal(s.queued, 0);
	assert_int_equal(s.waiting, 0);
	assert_true(s.threads >= o.threads && s.threads <= o.max_threads);
	/* the run exercised what it is meant to */
	assert_true(g->n_value > 0);
	assert_true(g->n_eio > 0);
	assert_true(g->n_etime_ran > 0);
	assert_true(g->n_ecanceled > 0);
	assert_true(s.helpers_killed > 0);
	assert_true(s.interrupts > 0);
	assert_int_equal(tmo_loop_active(loop), 0);

	ret = tmo_pool_close(&g->pool);
	if (ret)
		fail_msg("tmo_pool_close: %d", ret);
	g->pool_open = false;
	int threads = test_count_threads();
	for (int i = 0; i < 200 && threads != threads0; i++) {
		test_sleep_ms(5);
		threads = test_count_threads();
	}
	if (threads != threads0)
		fail_msg("%d threads after tmo_pool_close, %d before", threads, threads0);
	if (test_count_fds() != fds0)
		fail_msg("%d fds after tmo_pool_close, %d before", test_count_fds(), fds0);
	test_assert_children(children0);
	assert_int_equal(tmo_loop_close(loop), 0);
	g->loop_open = false;
}

/* After a failure too: shut the pool down, let its jobs go, close it and the loop. */
static int teardown(void **state)
{
	if (!g)
		return 0;
	int ret = 0;
	g->tearing_down = true;
	if (g->pool_open) {
		tmo_pool_shutdown(&g->pool);
		int64_t end = tmo_now() + 10 * TMO_NSEC_PER_SEC;
		while (tmo_loop_active(&g->loop) && tmo_now() < end)
			tmo_loop_run_until(&g->loop, tmo_in_ns(10 * MS));
		ret = tmo_pool_close(&g->pool);
		if (ret)
			fprintf(stderr, "teardown: tmo_pool_close: %d\n", ret);
	}
	if (!ret && g->loop_open) {
		ret = tmo_loop_close(&g->loop);
		if (ret)
			fprintf(stderr, "teardown: tmo_loop_close: %d\n", ret);
	}
	if (!ret)
		free(g); /* else leave it: workers may still use it */
	g = NULL;
	return ret ? -1 : 0;
}

static void stress_default_wake(void **state)
{
	stress(TMO_POOL_WAKE_AUTO);
}

static void stress_eventfd_wake(void **state)
{
	stress(TMO_POOL_WAKE_EVENTFD);
}

static void *nothing(void *arg)
{
	return arg;
}

int main(void)
{
	/* TSan starts a thread of its own with the first pthread_create: before any count. */
	pthread_t t;
	if (pthread_create(&t, NULL, nothing, NULL) == 0)
		pthread_join(t, NULL);
	if (getenv("TMO_TEST_FILTER")) /* e.g. TMO_TEST_FILTER='kill_*' */
		cmocka_set_test_filter(getenv("TMO_TEST_FILTER"));

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(stress_default_wake, teardown),
		cmocka_unit_test_teardown(stress_eventfd_wake, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
