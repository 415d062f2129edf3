/*
 * tmo demo, the pool family: offloaded, offloaded-interrupt, offloaded-kill (a call that
 * overruns its deadline on a worker, under each overrun policy), error-before-deadline and
 * already-done.
 *
 * The worker the `offloaded` scenario abandons runs on for its 5 units by design: its pool is
 * closed at the end, after the other scenarios (demo_pool_close_deferred), so that its tail costs
 * no extra time.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tmo/tmo.h>

#include "demo.h"

struct pjob {
	struct tmo_job job;
	struct tmo_loop *loop;
	int64_t t0;
	int64_t sleep_ns;    /* what the function does */
	int64_t fn_result;
	_Atomic int64_t fn_done_at;
	bool done, released;
	int64_t res, late_res;
	int64_t done_at, released_at;
	struct chain chain;
};

/* A blocking call: sleeps sleep_ns whatever happens (time.sleep). */
static int64_t job_block(struct tmo_job *job)
{
	struct pjob *j = job->data;
	block_until(tmo_now() + j->sleep_ns);
	atomic_store(&j->fn_done_at, tmo_now());
	return j->fn_result;
}

/* A blocking call that a signal interrupts (nanosleep returns EINTR, and the job gives up). */
static int64_t job_sleep_interruptible(struct tmo_job *job)
{
	struct pjob *j = job->data;
	struct timespec ts = timespec_of(j->sleep_ns);
	int64_t ret = nanosleep(&ts, NULL) < 0 ? -errno : j->fn_result;
	atomic_store(&j->fn_done_at, tmo_now());
	return ret;
}

/* A CPU loop that never yields, not even to SIGTERM (runs in a helper process). */
static int64_t job_spin(struct tmo_job *job)
{
	signal(SIGTERM, SIG_IGN);
	volatile uint64_t n = 0;
	while (n != UINT64_MAX) /* some 2^64 turns: never, in practice */
		n++;
	return 0;
}

static void pjob_cb(struct tmo_job *job, int64_t res)
{
	struct pjob *j = job->data;
	j->res = res;
	j->done_at = tmo_now();
	chain_stop(&j->chain);
	mark(j->loop, &j->done);
}

static void pjob_release(struct tmo_job *job, int64_t late_res)
{
	struct pjob *j = job->data;
	j->late_res = late_res;
	j->released_at = tmo_now();
	mark(j->loop, &j->released);
}

/* A pool whose abandoned job still runs, closed at the end of the demo. */
struct deferred {
	struct deferred *next;
	const char *name;
	struct tmo_loop loop;
	struct tmo_pool pool;
	struct pjob j;
};

struct pool_run {
	struct tmo_loop *loop;
	struct tmo_pool *pool;
	struct pjob *j;
	struct deferred *keep; /* offloaded: allocated, may outlive the scenario */
	struct tmo_loop loop_storage;
	struct tmo_pool pool_storage;
	struct pjob j_storage;
	bool pool_open;
};

static bool pool_open(struct demo *d, struct report *r, struct pool_run *p, bool heap,
		      int64_t grace)
{
	if (heap) {
		p->keep = calloc(1, sizeof(*p->keep));
		if (!p->keep) {
			setup_failed(r, "calloc", ENOMEM);
			return false;
		}
		p->keep->name = r->name;
		p->loop = &p->keep->loop;
		p->pool = &p->keep->pool;
		p->j = &p->keep->j;
	} else {
		p->loop = &p->loop_storage;
		p->pool = &p->pool_storage;
		p->j = &p->j_storage;
	}
	if (!loop_open(r, p->loop)) {
		free(p->keep);
		p->keep = NULL;
		return false;
	}
	struct tmo_pool_options opt = { .threads = 1, .max_threads = 2, .kill_grace_ns = grace };
	int ret = tmo_pool_init(p->pool, p->loop, &opt);
	if (ret < 0) {
		setup_failed(r, "tmo_pool_init", ret);
		loop_close(r, p->loop);
		free(p->keep);
		p->keep = NULL;
		return false;
	}
	p->pool_open = true;
	memset(p->j, 0, sizeof(*p->j));
	p->j->loop = p->loop;
	p->j->job.data = p->j;
	p->j->chain.stopping = false;
	(void)d;
	return true;
}

static void pool_finish(struct demo *d, struct report *r, struct pool_run *p)
{
	if (!p->loop)
		return;
	if (p->keep && tmo_job_busy(&p->j->job)) {
		/* the abandoned function runs on: close this pool after the other scenarios */
		p->keep->next = d->deferred;
		d->deferred = p->keep;
		return;
	}
	drain(r, p->loop, tmo_now() + U(d, 10));
	if (p->pool_open) {
		int ret = tmo_pool_close(p->pool);
		check(r, ret == 0, "tmo_pool_close: %s", strerror(-ret));
	}
	loop_close(r, p->loop);
	free(p->keep);
}

static int pjob_start(struct pool_run *p, tmo_job_fn fn, enum tmo_overrun overrun,
		      int64_t deadline)
{
	struct pjob *j = p->j;
	tmo_job_prep(&j->job, fn);
	int ret = tmo_job_set_overrun(&j->job, overrun);
	if (ret == 0)
		ret = tmo_job_set_release(&j->job, pjob_release);
	if (ret == 0)
		ret = tmo_job_start(p->pool, &j->job, tmo_at(deadline), pjob_cb);
	return ret;
}

/* interrupt, kill: the worker is free once the function is stopped. */
static void offloaded_release(struct demo *d, struct report *r, struct pool_run *p,
			      enum tmo_overrun overrun, int64_t grace)
{
	struct pjob *j = p->j;
	struct tmo_pool_stats st = { 0 };
	char rb[64];
	run_until(r, p->loop, &j->released, j->t0 + U(d, 10), "the worker's release");
	int64_t free_ns = j->released_at - j->t0;
	key(r, "worker_free_ms", "%.1f", ms(free_ns));
	if (overrun == TMO_OVERRUN_INTERRUPT) {
		happened(r, "timeout at %.0f ms; the worker was interrupted (%s) and free at "
			    "%.0f ms; the loop served %llu operations",
			 ms(r->elapsed_ns), res_name(j->late_res, rb), ms(free_ns),
			 (unsigned long long)j->chain.served);
		key(r, "late_result", "\"%s\"", res_name(j->late_res, rb));
		check(r, j->released && j->late_res == -EINTR, "the function returned %s, not EINTR",
		      res_name(j->late_res, rb));
		on_time(r, "the worker's release", free_ns, U(d, 1));
	} else {
		tmo_pool_get_stats(p->pool, &st);
		happened(r, "timeout at %.0f ms; the helper ignored SIGTERM and was killed after the "
			    "%.0f ms grace: worker free at %.0f ms",
			 ms(r->elapsed_ns), ms(grace), ms(free_ns));
		key(r, "grace_ms", "%.1f", ms(grace));
		key(r, "sigkilled", "%llu", (unsigned long long)st.helpers_sigkilled);
		check(r, j->released && j->late_res == -ECHILD, "the release said %s, not ECHILD",
		      res_name(j->late_res, rb));
		check(r, st.helpers_sigkilled == 1, "%llu helpers needed SIGKILL, expected 1",
		      (unsigned long long)st.helpers_sigkilled);
		on_time(r, "the worker's release", free_ns, U(d, 1) + grace);
	}
}

/* offloaded, offloaded-interrupt, offloaded-kill: a call that overruns a 1-unit deadline. */
static void offloaded(struct demo *d, struct report *r, enum tmo_overrun overrun)
{
	struct pool_run p = { 0 };
	int64_t grace = overrun == TMO_OVERRUN_KILL ? U(d, 0.5) : 0;

	if (!pool_open(d, r, &p, overrun == TMO_OVERRUN_ABANDON, grace))
		return;
	struct pjob *j = p.j;
	tmo_job_fn fn = overrun == TMO_OVERRUN_ABANDON ? job_block
			: overrun == TMO_OVERRUN_INTERRUPT ? job_sleep_interruptible
							   : job_spin;
	j->sleep_ns = U(d, 5);
	j->fn_result = 5;
	j->t0 = tmo_now();
	int64_t deadline = j->t0 + U(d, 1);
	int ret = pjob_start(&p, fn, overrun, deadline);
	if (ret < 0) {
		setup_failed(r, "tmo_job_start", ret);
		goto out;
	}
	/* the loop goes on serving operations while the job runs on its worker */
	ret = chain_start(&j->chain, p.loop, U(d, 0.02) > 100000 ? U(d, 0.02) : 100000);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start (chain)", ret);
		tmo_job_cancel(&j->job);
	}
	run_until(r, p.loop, &j->done, j->t0 + U(d, 10), "the job");
	struct tmo_pool_stats st = { 0 };
	tmo_pool_get_stats(p.pool, &st);
	bool tied_up = st.tied_up == 1;

	char rb[64];
	r->outcome = outcome_of(j->res);
	r->elapsed_ns = j->done_at - j->t0;
	check(r, j->done && j->res == -ETIME, "the job ended with %s", res_name(j->res, rb));
	on_time(r, "the timeout", r->elapsed_ns, U(d, 1));
	key(r, "loop_ops", "%llu", (unsigned long long)j->chain.served);
	/* at least a quarter of the sleeps the loop could serve meanwhile (12 of 50) */
	uint64_t could = (uint64_t)(r->elapsed_ns > 0 ? r->elapsed_ns / j->chain.period : 0);
	check(r, j->chain.served >= 1 && j->chain.served >= could / 4,
	      "the loop served only %llu operations meanwhile (of %llu)",
	      (unsigned long long)j->chain.served, (unsigned long long)could);

	if (overrun == TMO_OVERRUN_ABANDON) {
		happened(r, "timeout at %.0f ms; the loop served %llu operations meanwhile; the "
			    "worker is still tied up by the abandoned call (it is waited for at the end)",
			 ms(r->elapsed_ns), (unsigned long long)j->chain.served);
		key(r, "worker_tied_up", "%s", tied_up ? "true" : "false");
		check(r, tied_up, "the pool reports %u workers tied up, expected 1", st.tied_up);
		goto out;
	}
	offloaded_release(d, r, &p, overrun, grace);
out:
	pool_finish(d, r, &p);
}

void sc_offloaded(struct demo *d, struct report *r)
{
	offloaded(d, r, TMO_OVERRUN_ABANDON);
}

void sc_offloaded_interrupt(struct demo *d, struct report *r)
{
	offloaded(d, r, TMO_OVERRUN_INTERRUPT);
}

void sc_offloaded_kill(struct demo *d, struct report *r)
{
	offloaded(d, r, TMO_OVERRUN_KILL);
}

void sc_error_before_deadline(struct demo *d, struct report *r)
{
	struct pool_run p = { 0 };

	if (!pool_open(d, r, &p, false, 0))
		return;
	struct pjob *j = p.j;
	j->sleep_ns = U(d, 0.5);
	j->fn_result = -ECONNRESET;
	j->t0 = tmo_now();
	int ret = pjob_start(&p, job_block, TMO_OVERRUN_ABANDON, j->t0 + U(d, 1));
	if (ret < 0) {
		setup_failed(r, "tmo_job_start", ret);
		goto out;
	}
	run_until(r, p.loop, &j->done, j->t0 + U(d, 10), "the job");
	char rb[64];
	r->outcome = outcome_of(j->res);
	r->elapsed_ns = j->done_at - j->t0;
	happened(r, "the job failed with %s at %.0f ms, before its %.0f ms deadline",
		 res_name(j->res, rb), ms(r->elapsed_ns), ms(U(d, 1)));
	key(r, "error", "\"%s\"", res_name(j->res, rb));
	key(r, "deadline_ms", "%.1f", ms(U(d, 1)));
	check(r, j->done && j->res == -ECONNRESET, "the job ended with %s, not its own error",
	      res_name(j->res, rb));
	on_time(r, "the error", r->elapsed_ns, U(d, 0.5));
	check(r, r->elapsed_ns < U(d, 1), "the error came after the deadline");
out:
	pool_finish(d, r, &p);
}

void sc_already_done(struct demo *d, struct report *r)
{
	struct pool_run p = { 0 };

	if (!pool_open(d, r, &p, false, 0))
		return;
	struct pjob *j = p.j;
	j->sleep_ns = 0;
	j->fn_result = 42;
	j->t0 = tmo_now();
	int ret = pjob_start(&p, job_block, TMO_OVERRUN_ABANDON, j->t0 + U(d, 1));
	if (ret < 0) {
		setup_failed(r, "tmo_job_start", ret);
		goto out;
	}
	/* the work finishes while nobody waits for it yet */
	block_until(j->t0 + U(d, 0.2));
	int64_t fn_done = atomic_load(&j->fn_done_at);
	int64_t wait_from = tmo_now();
	run_until(r, p.loop, &j->done, wait_from + U(d, 10), "the job");
	char rb[64];
	r->outcome = outcome_of(j->res);
	r->elapsed_ns = j->done_at - wait_from;
	happened(r, "the work had finished at %.0f ms; waiting for it with a %.0f ms deadline gave "
		    "%s after %.1f ms",
		 fn_done ? ms(fn_done - j->t0) : -1.0, ms(U(d, 1)), res_name(j->res, rb),
		 ms(r->elapsed_ns));
	key(r, "result", "%lld", (long long)j->res);
	key(r, "finished_before_wait", "%s", fn_done && fn_done < wait_from ? "true" : "false");
	check(r, fn_done && fn_done < wait_from, "the work was not done before the wait");
	check(r, j->done && j->res == 42, "the job ended with %s, not 42", res_name(j->res, rb));
	on_time(r, "the result", r->elapsed_ns, 0);
out:
	pool_finish(d, r, &p);
}

/* Waits for the abandoned workers and closes their pools and loops. */
bool demo_pool_close_deferred(struct demo *d)
{
	bool ok = true;
	while (d->deferred) {
		struct deferred *k = d->deferred;
		d->deferred = k->next;
		struct report r = { .name = k->name, .pass = true };
		drain(&r, &k->loop, tmo_now() + U(d, 10));
		int64_t returned = atomic_load(&k->j.fn_done_at);
		if (!d->json && k->j.released && returned)
			printf("%s: the abandoned call returned at %.0f ms, its result (%lld) discarded; "
			       "its pool was closed at the end\n",
			       k->name, ms(returned - k->j.t0), (long long)k->j.late_res);
		int ret = tmo_pool_close(&k->pool);
		check(&r, ret == 0, "tmo_pool_close: %s", strerror(-ret));
		if (ret == 0)
			loop_close(&r, &k->loop);
		if (!r.pass) {
			fprintf(stderr, "tmo demo: %s: closing its pool: %s\n", k->name, r.why);
			ok = false;
		}
		if (ret == 0)
			free(k);
	}
	return ok;
}
