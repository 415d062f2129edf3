/*
 * tmo demo: the seed documents' scenarios (../shared/seeds/), run on the engine and timed.
 *
 * Every scenario builds what it needs (a loop, a pool, pipes, threads), runs it, measures what
 * happened, and decides pass or fail from the measurements: a timeout is never early and at most
 * max(60 ms, 25 % of the expected time) late, and the values the seeds name (results, counts,
 * sequences) must be the seeds'. Everything is torn down before the next scenario starts, except
 * the worker the `offloaded` scenario abandons (it runs on for its 5 units by design): its pool
 * is closed at the end, after the other scenarios, so that its tail costs no extra time.
 *
 * Durations are in "units": one second of the seeds times --scale.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "cli.h"

#define MS TMO_NSEC_PER_MSEC

#define PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- the run and its reports ---------------------------------------------------------------- */

struct deferred; /* an abandoned worker still running: closed at the end */

struct demo {
	double scale;
	int64_t unit; /* nanoseconds per seed second */
	bool json;
	struct deferred *deferred;
};

static int64_t U(const struct demo *d, double units)
{
	return (int64_t)llround(units * (double)d->unit);
}

struct report {
	const char *name;
	char seed[256];
	const char *outcome; /* "ok", "timeout", "error" */
	int64_t elapsed_ns;
	bool pass;
	int checks;
	char happened[512];
	char keys[1536]; /* JSON members, each starting with ", " */
	char why[1024];  /* failed checks */
};

static void appendv(char *buf, size_t size, const char *fmt, va_list ap) PRINTF(3, 0);
static void appendv(char *buf, size_t size, const char *fmt, va_list ap)
{
	size_t len = strlen(buf);
	if (len + 1 < size)
		vsnprintf(buf + len, size - len, fmt, ap);
}

static void append(char *buf, size_t size, const char *fmt, ...) PRINTF(3, 4);
static void append(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	appendv(buf, size, fmt, ap);
	va_end(ap);
}

/* A scenario-specific JSON member: key("stall_ms", "%.1f", v). */
static void key(struct report *r, const char *name, const char *fmt, ...) PRINTF(3, 4);
static void key(struct report *r, const char *name, const char *fmt, ...)
{
	va_list ap;
	append(r->keys, sizeof(r->keys), ", \"%s\": ", name);
	va_start(ap, fmt);
	appendv(r->keys, sizeof(r->keys), fmt, ap);
	va_end(ap);
}

static void happened(struct report *r, const char *fmt, ...) PRINTF(2, 3);
static void happened(struct report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	appendv(r->happened, sizeof(r->happened), fmt, ap);
	va_end(ap);
}

/* Records one check of what happened; a failed one fails the scenario and says why. */
static bool check(struct report *r, bool ok, const char *fmt, ...) PRINTF(3, 4);
static bool check(struct report *r, bool ok, const char *fmt, ...)
{
	r->checks++;
	if (ok)
		return true;
	r->pass = false;
	if (r->why[0])
		append(r->why, sizeof(r->why), "; ");
	va_list ap;
	va_start(ap, fmt);
	appendv(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	return false;
}

/* A setup step failed: the scenario could not run as the seed describes. */
static void setup_failed(struct report *r, const char *what, int err)
{
	r->outcome = "error";
	check(r, false, "%s: %s", what, strerror(err < 0 ? -err : err));
}

static double ms(int64_t ns)
{
	return (double)ns / (double)MS;
}

/* The lateness allowed for something due `expected` ns after its start. */
static int64_t tolerance(int64_t expected)
{
	int64_t quarter = expected / 4;
	return quarter > 60 * MS ? quarter : 60 * MS;
}

/* `actual` (ns since the start) against `expected`: never early, at most tolerance() late. */
static bool on_time(struct report *r, const char *what, int64_t actual, int64_t expected)
{
	bool ok = check(r, actual >= expected, "%s early: %.1f ms, due at %.1f ms", what, ms(actual),
			ms(expected));
	return check(r, actual <= expected + tolerance(expected),
		     "%s late: %.1f ms, due at %.1f ms (tolerance %.0f ms)", what, ms(actual),
		     ms(expected), ms(tolerance(expected))) &&
	       ok;
}

static const char *res_name(int64_t res, char buf[64])
{
	if (res == -ETIME)
		return "timeout";
	if (res == -ECANCELED)
		return "cancelled";
	if (res < 0)
		snprintf(buf, 64, "%s", strerrorname_np((int)-res) ? strerrorname_np((int)-res)
									 : "?");
	else
		snprintf(buf, 64, "%lld", (long long)res);
	return buf;
}

/* ---- helpers: loops, running, sleeping --------------------------------------------------------- */

static bool loop_open(struct report *r, struct tmo_loop *loop)
{
	int ret = tmo_loop_init(loop, NULL);
	if (ret < 0) {
		char msg[256];
		tmo_loop_describe_error(ret, msg, sizeof(msg));
		r->outcome = "error";
		check(r, false, "tmo_loop_init: %s", msg);
		return false;
	}
	return true;
}

static void loop_close(struct report *r, struct tmo_loop *loop)
{
	int ret = tmo_loop_close(loop);
	check(r, ret == 0, "tmo_loop_close: %s", strerror(-ret));
}

/* Runs the loop until *flag is set (callbacks that set it call tmo_loop_stop) or `limit`
 * (absolute) passes: a safety net, so that a misbehaving engine fails a scenario instead of
 * hanging the demo. */
static bool run_until(struct report *r, struct tmo_loop *loop, const bool *flag, int64_t limit,
		      const char *what)
{
	while (!*flag) {
		if (tmo_now() >= limit)
			return check(r, false, "%s: nothing happened in time", what);
		int ret = tmo_loop_run_until(loop, tmo_at(limit));
		if (ret < 0)
			return check(r, false, "tmo_loop_run_until: %s", strerror(-ret));
		if (ret == 0 && !*flag)
			return check(r, false, "%s: the loop ran out of work first", what);
	}
	return true;
}

/* Runs the loop until no work is left, or `limit`. */
static bool drain(struct report *r, struct tmo_loop *loop, int64_t limit)
{
	while (tmo_loop_active(loop) > 0) {
		if (tmo_now() >= limit)
			return check(r, false, "clean-up: %u operations still active",
				     tmo_loop_active(loop));
		int ret = tmo_loop_run_until(loop, tmo_at(limit));
		if (ret < 0)
			return check(r, false, "tmo_loop_run_until: %s", strerror(-ret));
	}
	return true;
}

static void mark(struct tmo_loop *loop, bool *flag)
{
	*flag = true;
	tmo_loop_stop(loop);
}

static struct timespec timespec_of(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / TMO_NSEC_PER_SEC, .tv_nsec = ns % TMO_NSEC_PER_SEC };
	return ts;
}

/* Blocks the calling thread until `when` (tmo_now() clock: CLOCK_MONOTONIC). */
static void block_until(int64_t when)
{
	struct timespec ts = timespec_of(when);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* A chain of short sleeps on the loop: operations the loop serves while something else waits. */
struct chain {
	struct tmo_op op;
	struct tmo_loop *loop;
	int64_t period;
	uint64_t served;
	bool stopping;
};

static void chain_cb(struct tmo_op *op, int32_t res)
{
	struct chain *c = op->data;
	if (res == 0)
		c->served++;
	if (c->stopping)
		return;
	tmo_prep_sleep(op, tmo_in_ns(c->period));
	tmo_op_start(c->loop, op, TMO_NEVER, chain_cb);
}

static int chain_start(struct chain *c, struct tmo_loop *loop, int64_t period)
{
	c->loop = loop;
	c->period = period;
	c->op.data = c;
	tmo_prep_sleep(&c->op, tmo_in_ns(period));
	return tmo_op_start(loop, &c->op, TMO_NEVER, chain_cb);
}

static void chain_stop(struct chain *c)
{
	c->stopping = true;
	tmo_op_cancel(&c->op);
}

/* ---- blocking-inline ------------------------------------------------------------------------ */

struct inline_run {
	struct tmo_loop *loop;
	struct tmo_op read_op, block_op;
	char buf[16];
	int64_t t0, block_ns;
	int32_t read_res;
	int64_t read_seen;
	bool read_done, block_done;
	int64_t block_in, block_out;
	int stalls;
	struct tmo_stall stall;
	/* the writer thread */
	int wfd;
	int64_t write_at, wrote_at;
	ssize_t wrote;
};

static void inline_stall(struct tmo_loop *loop, const struct tmo_stall *stall, void *data)
{
	struct inline_run *b = data;
	if (b->stalls++ == 0)
		b->stall = *stall;
}

static void inline_read_cb(struct tmo_op *op, int32_t res)
{
	struct inline_run *b = op->data;
	b->read_res = res;
	b->read_seen = tmo_now();
	b->read_done = true;
}

/* time.sleep(5) inside a coroutine: the loop thread blocks in a callback. */
static void inline_block_cb(struct tmo_op *op, int32_t res)
{
	struct inline_run *b = op->data;
	b->block_in = tmo_now();
	struct timespec ts = timespec_of(b->block_ns), rem;
	while (nanosleep(&ts, &rem) < 0 && errno == EINTR)
		ts = rem;
	b->block_out = tmo_now();
	b->block_done = true;
}

static void *inline_writer(void *arg)
{
	struct inline_run *b = arg;
	static const char late[] = "late";
	block_until(b->write_at);
	b->wrote = write(b->wfd, late, sizeof(late) - 1);
	b->wrote_at = tmo_now();
	return NULL;
}

static void sc_blocking_inline(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct inline_run b = { .loop = &loop, .block_ns = U(d, 5) };
	int p[2] = { -1, -1 };
	pthread_t writer;
	bool writer_started = false;

	if (!loop_open(r, &loop))
		return;
	if (pipe2(p, O_CLOEXEC) < 0) {
		setup_failed(r, "pipe", errno);
		goto out;
	}
	int ret = tmo_loop_watch_stalls(&loop, U(d, 0.5), inline_stall, &b);
	if (ret < 0) {
		setup_failed(r, "tmo_loop_watch_stalls", ret);
		goto out;
	}
	b.t0 = tmo_now();
	int64_t deadline = b.t0 + U(d, 1);
	b.wfd = p[1];
	b.write_at = b.t0 + U(d, 1.5);
	b.read_op.data = &b;
	b.block_op.data = &b;
	tmo_prep_read(&b.read_op, p[0], b.buf, sizeof(b.buf), (uint64_t)-1);
	ret = tmo_op_start(&loop, &b.read_op, tmo_at(deadline), inline_read_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start (read)", ret);
		goto out;
	}
	tmo_prep_nop(&b.block_op);
	ret = tmo_op_start(&loop, &b.block_op, TMO_NEVER, inline_block_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start (nop)", ret);
		tmo_op_cancel(&b.read_op);
		drain(r, &loop, tmo_now() + U(d, 5));
		goto out;
	}
	ret = pthread_create(&writer, NULL, inline_writer, &b);
	if (ret != 0) {
		setup_failed(r, "pthread_create", ret);
	} else {
		writer_started = true;
	}
	drain(r, &loop, b.t0 + U(d, 15));
	if (writer_started)
		pthread_join(writer, NULL);

	int left = -1;
	if (ioctl(p[0], FIONREAD, &left) < 0)
		left = -1;
	bool stall_seen = b.stalls == 1;
	bool cancelled_on_time = b.read_res == -ETIME && b.wrote > 0 && left == b.wrote &&
				 b.wrote_at >= deadline && b.wrote_at < b.block_out;
	r->outcome = b.block_done ? "ok" : "error";
	r->elapsed_ns = b.block_out - b.t0;
	char rb[64];
	happened(r, "the call finished after %.0f ms; stall of %.0f ms reported; the read's "
		    "timeout seen at %.0f ms, but the %zd bytes written at %.0f ms are still in the "
		    "pipe: the kernel cancelled the read at %.0f ms",
		 ms(r->elapsed_ns), stall_seen ? ms(b.stall.duration_ns) : 0.0,
		 ms(b.read_seen - b.t0), b.wrote, ms(b.wrote_at - b.t0), ms(deadline - b.t0));
	key(r, "stall_ms", "%.1f", stall_seen ? ms(b.stall.duration_ns) : 0.0);
	key(r, "deadline_ms", "%.1f", ms(deadline - b.t0));
	key(r, "read_result", "\"%s\"", res_name(b.read_res, rb));
	key(r, "read_seen_ms", "%.1f", ms(b.read_seen - b.t0));
	key(r, "written_at_ms", "%.1f", ms(b.wrote_at - b.t0));
	key(r, "bytes_left_in_pipe", "%d", left);
	key(r, "stall_deadlines_due", "%u", stall_seen ? b.stall.deadlines_due : 0);
	key(r, "stall_kernel_timed_out", "%u", stall_seen ? b.stall.kernel_timed_out : 0);
	key(r, "kernel_enforced", "%s", stall_seen && b.stall.kernel_enforced ? "true" : "false");
	key(r, "kernel_cancelled_on_time", "%s", cancelled_on_time ? "true" : "false");

	check(r, b.block_done, "the blocking call never ran");
	on_time(r, "the blocking call's end", r->elapsed_ns, U(d, 5));
	check(r, b.read_done && b.read_res == -ETIME, "the read ended with %s, not a timeout",
	      res_name(b.read_res, rb));
	check(r, b.read_seen >= b.block_out, "the loop saw the read's timeout during the stall?");
	check(r, stall_seen, "%d stalls reported, expected 1", b.stalls);
	if (stall_seen) {
		check(r, b.stall.duration_ns >= U(d, 5), "stall of %.1f ms, shorter than the call",
		      ms(b.stall.duration_ns));
		check(r, b.stall.source == TMO_STALL_OP, "stall source %d", (int)b.stall.source);
		check(r, b.stall.kernel_timed_out >= 1 && b.stall.kernel_enforced,
		      "the stall report does not show the kernel's timeout (%u, enforced %d)",
		      b.stall.kernel_timed_out, (int)b.stall.kernel_enforced);
	}
	check(r, b.wrote == 4 && b.wrote_at >= b.write_at, "the writer wrote %zd bytes", b.wrote);
	check(r, cancelled_on_time, "the kernel did not cancel the read on time (%d bytes left)",
	      left);
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	loop_close(r, &loop);
}

/* ---- cooperative ------------------------------------------------------------------------------ */

struct one_op {
	struct tmo_op op;
	struct tmo_loop *loop;
	int32_t res;
	int64_t at;
	bool done;
};

static void one_op_cb(struct tmo_op *op, int32_t res)
{
	struct one_op *o = op->data;
	o->res = res;
	o->at = tmo_now();
	mark(o->loop, &o->done);
}

static void sc_cooperative(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct one_op o = { .loop = &loop, .op.data = &o };

	if (!loop_open(r, &loop))
		return;
	int64_t t0 = tmo_now();
	tmo_prep_sleep(&o.op, tmo_at(t0 + U(d, 3)));
	int ret = tmo_op_start(&loop, &o.op, tmo_at(t0 + U(d, 1)), one_op_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start", ret);
		goto out;
	}
	run_until(r, &loop, &o.done, t0 + U(d, 10), "the sleep");
	drain(r, &loop, t0 + U(d, 10));
	char rb[64];
	r->outcome = o.res == -ETIME ? "timeout" : o.res < 0 ? "error" : "ok";
	r->elapsed_ns = o.at - t0;
	happened(r, "the sleep ended with %s at %.0f ms (cause: %s)", res_name(o.res, rb),
		 ms(r->elapsed_ns), tmo_op_cause(&o.op) == TMO_CAUSE_OWN ? "its deadline" : "other");
	key(r, "deadline_ms", "%.1f", ms(U(d, 1)));
	check(r, o.done && o.res == -ETIME, "the sleep ended with %s", res_name(o.res, rb));
	check(r, tmo_op_cause(&o.op) == TMO_CAUSE_OWN, "cause %d", (int)tmo_op_cause(&o.op));
	on_time(r, "the timeout", r->elapsed_ns, U(d, 1));
out:
	loop_close(r, &loop);
}

/* ---- the pool: offloaded, offloaded-interrupt, offloaded-kill, error-before-deadline,
 *      already-done -------------------------------------------------------------------------- */

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

static const char *job_outcome(int64_t res)
{
	return res == -ETIME ? "timeout" : res < 0 ? "error" : "ok";
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
	r->outcome = job_outcome(j->res);
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
	/* interrupt, kill: the worker is free once the function is stopped */
	run_until(r, p.loop, &j->released, j->t0 + U(d, 10), "the worker's release");
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
		tmo_pool_get_stats(p.pool, &st);
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
out:
	pool_finish(d, r, &p);
}

static void sc_offloaded(struct demo *d, struct report *r)
{
	offloaded(d, r, TMO_OVERRUN_ABANDON);
}

static void sc_offloaded_interrupt(struct demo *d, struct report *r)
{
	offloaded(d, r, TMO_OVERRUN_INTERRUPT);
}

static void sc_offloaded_kill(struct demo *d, struct report *r)
{
	offloaded(d, r, TMO_OVERRUN_KILL);
}

static void sc_error_before_deadline(struct demo *d, struct report *r)
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
	r->outcome = job_outcome(j->res);
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

static void sc_already_done(struct demo *d, struct report *r)
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
	r->outcome = job_outcome(j->res);
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

/* ---- groups: gather-deadline, gather-member-deadline, wait-partial ----------------------------- */

#define MEMBERS 10

struct gather {
	struct tmo_loop *loop;
	struct tmo_group group;
	struct tmo_op op[MEMBERS];
	int n;
	int64_t t0;
	int32_t res[MEMBERS];
	int64_t at[MEMBERS];
	enum tmo_cause cause[MEMBERS];
	bool member_done[MEMBERS];
	bool done;
	int32_t group_res;
	int64_t done_at;
	uint32_t done_count, pending_count;
	bool pending_busy; /* at on_done: every pending member still running */
};

static void gather_member(struct tmo_group *group, struct tmo_op *member, int32_t res)
{
	struct gather *g = group->data;
	int i = (int)(member - g->op);
	if (i < 0 || i >= g->n)
		return;
	g->res[i] = res;
	g->at[i] = tmo_now();
	g->cause[i] = tmo_op_cause(member);
	g->member_done[i] = true;
	tmo_loop_stop(g->loop);
}

static void gather_done(struct tmo_group *group, int32_t res)
{
	struct gather *g = group->data;
	g->group_res = res;
	g->done_at = tmo_now();
	g->done_count = tmo_group_done_count(group);
	g->pending_count = tmo_group_pending_count(group);
	g->pending_busy = true;
	for (struct tmo_op *m = tmo_group_pending_first(group); m; m = tmo_group_pending_next(m))
		if (!tmo_op_busy(m))
			g->pending_busy = false;
	mark(g->loop, &g->done);
}

/* Starts n sleeping members (member i sleeps sleep[i] units, with its own deadline). */
static bool gather_start(struct demo *d, struct report *r, struct gather *g,
			 const struct tmo_group_options *base, const double *sleep,
			 const tmo_deadline *deadline)
{
	struct tmo_group_options opt = *base;
	opt.on_done = gather_done;
	opt.on_member = gather_member;
	opt.data = g;
	int ret = tmo_group_init(g->loop, &g->group, &opt);
	if (ret < 0) {
		setup_failed(r, "tmo_group_init", ret);
		return false;
	}
	for (int i = 0; i < g->n; i++) {
		tmo_prep_sleep(&g->op[i], tmo_at(g->t0 + U(d, sleep[i])));
		ret = tmo_group_add(&g->group, &g->op[i], deadline ? deadline[i] : TMO_NEVER);
		if (ret < 0) {
			setup_failed(r, "tmo_group_add", ret);
			tmo_group_cancel(&g->group);
			return false;
		}
	}
	ret = tmo_group_seal(&g->group);
	if (ret < 0) {
		setup_failed(r, "tmo_group_seal", ret);
		tmo_group_cancel(&g->group);
		return false;
	}
	return true;
}

static void gather_close(struct demo *d, struct report *r, struct gather *g)
{
	drain(r, g->loop, tmo_now() + U(d, 10));
	int ret = tmo_group_close(&g->group);
	check(r, ret == 0, "tmo_group_close: %s", strerror(-ret));
}

static void sc_gather_deadline(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct gather g = { .loop = &loop, .n = MEMBERS };
	double sleep[MEMBERS];

	if (!loop_open(r, &loop))
		return;
	for (int i = 0; i < MEMBERS; i++)
		sleep[i] = 5;
	g.t0 = tmo_now();
	struct tmo_group_options opt = { .mode = TMO_GROUP_ALL, .policy = TMO_GROUP_CANCEL_PENDING,
					 .deadline = tmo_at(g.t0 + U(d, 2.5)) };
	if (gather_start(d, r, &g, &opt, sleep, NULL)) {
		run_until(r, &loop, &g.done, g.t0 + U(d, 10), "the group");
		/* the cancelled members report their outcome from the loop, right after */
		drain(r, &loop, tmo_now() + U(d, 10));
	}
	int cancelled = 0, completed = 0;
	for (int i = 0; i < MEMBERS; i++) {
		completed += g.member_done[i];
		if (g.member_done[i] && (g.res[i] == -ETIME || g.res[i] == -ECANCELED) &&
		    g.cause[i] == TMO_CAUSE_GROUP)
			cancelled++;
	}
	char rb[64];
	r->outcome = g.done ? job_outcome(g.group_res) : "error";
	r->elapsed_ns = g.done_at - g.t0;
	happened(r, "the group ended with %s at %.0f ms; %d of %d members cancelled by it",
		 res_name(g.group_res, rb), ms(r->elapsed_ns), cancelled, MEMBERS);
	key(r, "cancelled", "%d", cancelled);
	check(r, g.done && g.group_res == -ETIME, "the group ended with %s",
	      res_name(g.group_res, rb));
	check(r, tmo_group_reason(&g.group) == TMO_GROUP_TIMED_OUT, "reason %d",
	      (int)tmo_group_reason(&g.group));
	on_time(r, "the group's timeout", r->elapsed_ns, U(d, 2.5));
	check(r, cancelled == MEMBERS, "%d members cancelled (of %d completed), expected %d",
	      cancelled, completed, MEMBERS);
	gather_close(d, r, &g);
	loop_close(r, &loop);
}

static void sc_gather_member_deadline(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct gather g = { .loop = &loop, .n = MEMBERS };
	double sleep[MEMBERS];
	tmo_deadline deadline[MEMBERS];

	if (!loop_open(r, &loop))
		return;
	g.t0 = tmo_now();
	for (int i = 0; i < MEMBERS; i++) {
		sleep[i] = 5;
		deadline[i] = i == 0 ? tmo_at(g.t0 + U(d, 2.5)) : TMO_NEVER;
	}
	struct tmo_group_options opt = { .mode = TMO_GROUP_ALL, .policy = TMO_GROUP_CANCEL_PENDING,
					 .deadline = TMO_NEVER };
	if (gather_start(d, r, &g, &opt, sleep, deadline))
		run_until(r, &loop, &g.done, g.t0 + U(d, 15), "the group");

	/* the results, gather's list: each member returns i * 100 when its sleep completes */
	char results[256] = "[", text[256] = "[";
	bool results_ok = true;
	for (int i = 0; i < MEMBERS; i++) {
		const char *sep = i ? ", " : "";
		if (g.member_done[i] && g.res[i] == 0) {
			append(results, sizeof(results), "%s%d", sep, i * 100);
			append(text, sizeof(text), "%s%d", sep, i * 100);
		} else if (g.member_done[i] && g.res[i] == -ETIME) {
			append(results, sizeof(results), "%s\"timeout\"", sep);
			append(text, sizeof(text), "%stimeout", sep);
		} else {
			char rb[64];
			append(results, sizeof(results), "%s\"%s\"", sep, res_name(g.res[i], rb));
			append(text, sizeof(text), "%s%s", sep, res_name(g.res[i], rb));
		}
		bool want = i == 0 ? g.member_done[i] && g.res[i] == -ETIME &&
					     g.cause[i] == TMO_CAUSE_OWN
				   : g.member_done[i] && g.res[i] == 0;
		results_ok = results_ok && want;
	}
	append(results, sizeof(results), "]");
	append(text, sizeof(text), "]");
	struct tmo_op *first_failure = tmo_group_first_failure(&g.group);
	bool reports_timeout = first_failure == &g.op[0] && tmo_op_result(first_failure) == -ETIME;
	r->outcome = !g.done ? "error" : reports_timeout ? "timeout" : "ok";
	r->elapsed_ns = g.done_at - g.t0;
	happened(r, "member 0 timed out at %.0f ms, the others went on; the group finished at "
		    "%.0f ms reporting %s; results %s",
		 ms(g.at[0] - g.t0), ms(r->elapsed_ns), reports_timeout ? "the timeout" : "no timeout",
		 text);
	key(r, "results", "%s", results);
	key(r, "member_timeout_ms", "%.1f", ms(g.at[0] - g.t0));
	check(r, g.done && g.group_res == 0, "the group ended with %d", g.group_res);
	check(r, results_ok, "results %s", text);
	check(r, reports_timeout, "the group's first failure is not member 0's timeout");
	on_time(r, "member 0's timeout", g.at[0] - g.t0, U(d, 2.5));
	on_time(r, "the group's end", r->elapsed_ns, U(d, 5));
	gather_close(d, r, &g);
	loop_close(r, &loop);
}

static void sc_wait_partial(struct demo *d, struct report *r)
{
	enum { N = 5 };
	struct tmo_loop loop;
	struct gather g = { .loop = &loop, .n = N };
	double sleep[N] = { 1, 2, 3, 4, 5 };

	if (!loop_open(r, &loop))
		return;
	g.t0 = tmo_now();
	struct tmo_group_options opt = { .mode = TMO_GROUP_ALL, .policy = TMO_GROUP_LEAVE_PENDING,
					 .deadline = tmo_at(g.t0 + U(d, 2.5)) };
	int completed_later = 0, cleaned = 0;
	if (gather_start(d, r, &g, &opt, sleep, NULL)) {
		run_until(r, &loop, &g.done, g.t0 + U(d, 10), "the wait");
		/* the pending members run on: see the 3-unit one complete on its own */
		run_until(r, &loop, &g.member_done[2], g.t0 + U(d, 10), "the 3-unit member");
		for (int i = 0; i < N; i++)
			if (g.member_done[i] && g.at[i] > g.done_at && g.res[i] == 0)
				completed_later++;
		/* then clean up: the wait does not need the others */
		for (struct tmo_op *m = tmo_group_pending_first(&g.group); m;
		     m = tmo_group_pending_next(m))
			if (tmo_op_cancel(m) == 0)
				cleaned++;
	}
	char rb[64];
	r->outcome = g.done ? job_outcome(g.group_res) : "error";
	r->elapsed_ns = g.done_at - g.t0;
	happened(r, "the wait returned (%s) at %.0f ms with %u done and %u pending, still running; "
		    "%d of them completed on their own afterwards; %d cancelled to clean up",
		 res_name(g.group_res, rb), ms(r->elapsed_ns), g.done_count, g.pending_count,
		 completed_later, cleaned);
	key(r, "done", "%u", g.done_count);
	key(r, "pending", "%u", g.pending_count);
	key(r, "pending_running", "%s", g.pending_busy ? "true" : "false");
	key(r, "completed_after_wait", "%d", completed_later);
	check(r, g.done && g.group_res == -ETIME, "the wait ended with %s",
	      res_name(g.group_res, rb));
	on_time(r, "the wait's deadline", r->elapsed_ns, U(d, 2.5));
	check(r, g.done_count == 2 && g.pending_count == 3, "done %u, pending %u (expected 2, 3)",
	      g.done_count, g.pending_count);
	check(r, g.pending_busy, "pending members were not running after the wait");
	check(r, completed_later == 1 && g.res[2] == 0, "the 3-unit member ended with %s",
	      res_name(g.res[2], rb));
	if (g.member_done[2])
		on_time(r, "the 3-unit member", g.at[2] - g.t0, U(d, 3));
	gather_close(d, r, &g);
	loop_close(r, &loop);
}

/* ---- streams: stream-gap-raise, stream-gap-sentinel, periodic-refresh --------------------------- */

/* The peer: writes chunk k at t0 + at[k] from the loop (sleep ops), then maybe shuts down. */
struct peer {
	struct tmo_op op;
	struct tmo_loop *loop;
	int fd;
	int64_t t0;
	int n, next;
	const int64_t *at;
	const char *const *chunk;
	bool eof_after;
	int write_errors;
};

static void peer_cb(struct tmo_op *op, int32_t res)
{
	struct peer *p = op->data;
	if (res != 0)
		return; /* cancelled: the reader is done */
	const char *c = p->chunk[p->next];
	if (write(p->fd, c, strlen(c)) != (ssize_t)strlen(c))
		p->write_errors++;
	if (++p->next < p->n) {
		tmo_prep_sleep(op, tmo_at(p->t0 + p->at[p->next]));
		tmo_op_start(p->loop, op, TMO_NEVER, peer_cb);
	} else if (p->eof_after) {
		shutdown(p->fd, SHUT_WR);
	}
}

static int peer_start(struct peer *p)
{
	p->op.data = p;
	tmo_prep_sleep(&p->op, tmo_at(p->t0 + p->at[0]));
	return tmo_op_start(p->loop, &p->op, TMO_NEVER, peer_cb);
}

#define EVENTS 32

struct stream_event {
	int kind;    /* TMO_READER_DATA (one per byte) or TMO_READER_TIMEOUT */
	char byte;
	int64_t at;  /* when delivered */
	int64_t ret; /* when the callback returned */
};

struct stream_run {
	struct tmo_loop *loop;
	struct tmo_reader reader;
	uint8_t buf[256];
	struct peer peer;
	struct tmo_tick *tick;
	int64_t t0;
	int n;
	struct stream_event ev[EVENTS];
	bool ended;
	int32_t end_error;
	enum tmo_limit end_limit;
	int64_t end_at;
};

static void stream_cb(struct tmo_reader *reader, const struct tmo_reader_event *e)
{
	struct stream_run *s = reader->data;
	int64_t now = tmo_now();
	if (e->kind == TMO_READER_END) {
		s->ended = true;
		s->end_error = e->error;
		s->end_limit = e->limit;
		s->end_at = now;
		tmo_op_cancel(&s->peer.op);
		if (s->tick)
			tmo_tick_stop(s->tick);
		tmo_loop_stop(s->loop);
		return;
	}
	int first = s->n;
	if (e->kind == TMO_READER_TIMEOUT) {
		if (s->n < EVENTS)
			s->ev[s->n++] = (struct stream_event){ .kind = TMO_READER_TIMEOUT, .at = now };
	} else {
		for (size_t i = 0; i < e->len && s->n < EVENTS; i++)
			s->ev[s->n++] = (struct stream_event){ .kind = TMO_READER_DATA,
							   .byte = (char)e->data[i], .at = now };
	}
	int64_t ret = tmo_now();
	for (int i = first; i < s->n; i++)
		s->ev[i].ret = ret;
}

/* A socketpair, a reader on one end and a peer that writes `chunks` at times `at` (from its
 * t0) on the other, then EOF if `eof_after`. */
static bool stream_setup(struct demo *d, struct report *r, struct stream_run *s, int sv[2],
			 const struct tmo_reader_options *opt, const int64_t *at,
			 const char *const *chunks, int n, bool eof_after)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		setup_failed(r, "socketpair", errno);
		return false;
	}
	int ret = tmo_reader_init(&s->reader, s->loop, sv[0], s->buf, sizeof(s->buf), opt);
	if (ret < 0) {
		setup_failed(r, "tmo_reader_init", ret);
		return false;
	}
	s->reader.data = s;
	s->peer.loop = s->loop;
	s->peer.fd = sv[1];
	s->peer.at = at;
	s->peer.chunk = chunks;
	s->peer.n = n;
	s->peer.eof_after = eof_after;
	return true;
}

/* Starts the reader and the peer. False (and reported) if either refuses. */
static bool stream_start(struct report *r, struct stream_run *s)
{
	int ret = tmo_reader_start(&s->reader, stream_cb);
	if (ret == 0)
		ret = peer_start(&s->peer);
	if (ret < 0)
		setup_failed(r, "start", ret);
	return ret >= 0;
}

static void stream_sequence(const struct stream_run *s, char *json, size_t size, char *text,
			    size_t tsize)
{
	append(json, size, "[");
	append(text, tsize, "[");
	for (int i = 0; i < s->n; i++) {
		const char *sep = i ? ", " : "";
		if (s->ev[i].kind == TMO_READER_TIMEOUT) {
			append(json, size, "%s\"timeout\"", sep);
			append(text, tsize, "%stimeout", sep);
		} else if (s->ev[i].byte >= '0' && s->ev[i].byte <= '9') {
			append(json, size, "%s%c", sep, s->ev[i].byte);
			append(text, tsize, "%s%c", sep, s->ev[i].byte);
		} else {
			append(json, size, "%s\"?\"", sep);
			append(text, tsize, "%s?", sep);
		}
	}
	append(json, size, "]");
	append(text, tsize, "]");
}

static const char *limit_name(enum tmo_limit limit)
{
	switch (limit) {
	case TMO_LIMIT_NONE: return "none";
	case TMO_LIMIT_GAP: return "gap";
	case TMO_LIMIT_DEADLINE: return "deadline";
	case TMO_LIMIT_RATE: return "rate";
	case TMO_LIMIT_SCOPE: return "scope";
	}
	return "?";
}

static void stream_finish(struct demo *d, struct report *r, struct stream_run *s, int sv[2])
{
	if (tmo_reader_busy(&s->reader)) {
		tmo_reader_stop(&s->reader);
		tmo_op_cancel(&s->peer.op);
	}
	drain(r, s->loop, tmo_now() + U(d, 10));
	check(r, s->peer.write_errors == 0, "the peer's writes failed");
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
}

static void sc_stream_gap_raise(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct stream_run s = { .loop = &loop };
	int sv[2] = { -1, -1 };
	static const char *const chunks[] = { "1", "2", "3" };
	int64_t at[3] = { U(d, 0.2), U(d, 0.5), U(d, 2.0) };
	struct tmo_reader_options opt = { .limits = { .gap_ns = U(d, 1) }, .on_gap = TMO_GAP_END };

	if (!loop_open(r, &loop))
		return;
	if (!stream_setup(d, r, &s, sv, &opt, at, chunks, 3, false))
		goto out;
	s.t0 = s.peer.t0 = tmo_now();
	if (!stream_start(r, &s))
		goto out;
	run_until(r, &loop, &s.ended, s.t0 + U(d, 10), "the stream");

	char json[128] = "", text[128] = "", rb[64];
	stream_sequence(&s, json, sizeof(json), text, sizeof(text));
	int64_t last = s.n > 0 ? s.ev[s.n - 1].ret : s.t0;
	int64_t gap = s.end_at - last;
	r->outcome = s.end_error == -ETIME ? "timeout" : s.end_error < 0 ? "error" : "ok";
	r->elapsed_ns = s.end_at - s.t0;
	happened(r, "received %s, then the stream ended with %s (limit: %s) at %.0f ms, %.0f ms "
		    "after the last chunk",
		 text, res_name(s.end_error, rb), limit_name(s.end_limit), ms(r->elapsed_ns),
		 ms(gap));
	key(r, "received", "%s", json);
	key(r, "limit", "\"%s\"", limit_name(s.end_limit));
	key(r, "gap_limit_ms", "%.1f", ms(U(d, 1)));
	key(r, "silence_ms", "%.1f", ms(gap));
	check(r, s.ended && s.end_error == -ETIME && s.end_limit == TMO_LIMIT_GAP,
	      "the stream ended with %s (limit %s)", res_name(s.end_error, rb),
	      limit_name(s.end_limit));
	check(r, !strcmp(text, "[1, 2]"), "received %s, expected [1, 2]", text);
	on_time(r, "the gap's timeout", gap, U(d, 1));
out:
	stream_finish(d, r, &s, sv);
	loop_close(r, &loop);
}

static void sc_stream_gap_sentinel(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct stream_run s = { .loop = &loop };
	int sv[2] = { -1, -1 };
	static const char *const chunks[] = { "1", "2", "3" };
	int64_t at[3] = { 0, U(d, 1.1), U(d, 1.1 + 2.1) };
	struct tmo_reader_options opt = { .limits = { .gap_ns = U(d, 1) }, .on_gap = TMO_GAP_MARK };

	if (!loop_open(r, &loop))
		return;
	if (!stream_setup(d, r, &s, sv, &opt, at, chunks, 3, true))
		goto out;
	s.t0 = s.peer.t0 = tmo_now();
	if (!stream_start(r, &s))
		goto out;
	run_until(r, &loop, &s.ended, s.t0 + U(d, 15), "the stream");

	char json[256] = "", text[256] = "", rb[64];
	stream_sequence(&s, json, sizeof(json), text, sizeof(text));
	r->outcome = s.end_error == -ETIME ? "timeout" : s.end_error < 0 ? "error" : "ok";
	r->elapsed_ns = s.end_at - s.t0;
	happened(r, "sequence %s, then end of stream (%s) at %.0f ms", text,
		 s.end_error == 0 ? "EOF" : res_name(s.end_error, rb), ms(r->elapsed_ns));
	key(r, "sequence", "%s", json);
	check(r, !strcmp(text, "[1, timeout, 2, timeout, timeout, 3]"),
	      "sequence %s, expected [1, timeout, 2, timeout, timeout, 3]", text);
	check(r, s.ended && s.end_error == 0, "the stream ended with %s, not EOF",
	      res_name(s.end_error, rb));
	/* each marker a gap after the last chunk's callback returned, or after the previous
	 * marker's due time */
	int64_t from = 0, due = 0;
	char what[64];
	for (int i = 0; i < s.n; i++) {
		if (s.ev[i].kind == TMO_READER_DATA) {
			from = s.ev[i].ret;
			due = 0;
			continue;
		}
		due = (due ? due : from) + U(d, 1);
		snprintf(what, sizeof(what), "marker %d", i);
		if (from)
			on_time(r, what, s.ev[i].at - s.t0, due - s.t0);
	}
out:
	stream_finish(d, r, &s, sv);
	loop_close(r, &loop);
}

struct refresh {
	struct tmo_tick tick;
	int64_t t0;
	int calls;
	uint64_t periods;
	int64_t at[16];
};

static void refresh_cb(struct tmo_tick *tick, uint64_t periods)
{
	struct refresh *f = tick->data;
	if (f->calls < 16)
		f->at[f->calls] = tmo_now();
	f->calls++;
	f->periods += periods;
}

static void sc_periodic_refresh(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct stream_run s = { .loop = &loop };
	struct refresh f = { .tick.data = &f };
	int sv[2] = { -1, -1 };
	static const char *const chunks[] = { "1", "2", "3", "4", "5", "6", "7" };
	int64_t at[7];
	bool tick_started = false;

	if (!loop_open(r, &loop))
		return;
	for (int i = 0; i < 7; i++)
		at[i] = U(d, 0.5 * (i + 1));
	if (!stream_setup(d, r, &s, sv, NULL, at, chunks, 7, true))
		goto out;
	s.t0 = s.peer.t0 = f.t0 = tmo_now();
	s.tick = &f.tick;
	int ret = tmo_tick_start(&loop, &f.tick, U(d, 1), refresh_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_tick_start", ret);
		goto out;
	}
	tick_started = true;
	if (!stream_start(r, &s)) {
		tmo_tick_stop(&f.tick);
		goto out;
	}
	run_until(r, &loop, &s.ended, s.t0 + U(d, 15), "the stream");

	char json[128] = "", text[128] = "", rb[64];
	stream_sequence(&s, json, sizeof(json), text, sizeof(text));
	int64_t longest = 0, prev = s.t0;
	int n = f.calls < 16 ? f.calls : 16;
	for (int i = 0; i < n && f.at[i] <= s.end_at; i++) {
		if (f.at[i] - prev > longest)
			longest = f.at[i] - prev;
		prev = f.at[i];
	}
	if (s.end_at - prev > longest)
		longest = s.end_at - prev;
	r->outcome = s.end_error == -ETIME ? "timeout" : s.end_error < 0 ? "error" : "ok";
	r->elapsed_ns = s.end_at - s.t0;
	happened(r, "the stream delivered %s and ended (%s) at %.0f ms; %llu refreshes meanwhile, "
		    "at most %.0f ms apart",
		 text, s.end_error == 0 ? "EOF" : res_name(s.end_error, rb), ms(r->elapsed_ns),
		 (unsigned long long)f.periods, ms(longest));
	key(r, "refreshes", "%llu", (unsigned long long)f.periods);
	key(r, "longest_without_refresh_ms", "%.1f", ms(longest));
	key(r, "chunks", "%d", s.n);
	check(r, s.ended && s.end_error == 0, "the stream ended with %s, not EOF",
	      res_name(s.end_error, rb));
	check(r, s.n == 7, "%d chunks, expected 7", s.n);
	on_time(r, "the stream's end", r->elapsed_ns, U(d, 3.5));
	check(r, f.periods >= 3 && f.calls >= 3, "%llu refreshes, expected 3 or more",
	      (unsigned long long)f.periods);
	if (n > 0)
		on_time(r, "the first refresh", f.at[0] - s.t0, U(d, 1));
	check(r, longest <= U(d, 1) + tolerance(U(d, 1)),
	      "%.1f ms without a refresh (limit %.0f ms)", ms(longest), ms(U(d, 1)));
out:
	if (tick_started && !s.ended)
		tmo_tick_stop(&f.tick);
	stream_finish(d, r, &s, sv);
	loop_close(r, &loop);
}

/* ---- scopes: scope-shift, scope-inner-timeout --------------------------------------------------- */

struct shifter {
	struct tmo_op op;
	struct tmo_scope *scope;
	int64_t delta;
	int ret;
	bool fired;
};

static void shifter_cb(struct tmo_op *op, int32_t res)
{
	struct shifter *s = op->data;
	s->fired = true;
	s->ret = res == 0 ? tmo_scope_shift(s->scope, s->delta) : res;
}

static void sc_scope_shift(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct tmo_scope scope = { 0 };
	struct shifter sh = { .op.data = &sh, .scope = &scope, .delta = U(d, 1), .ret = 1 };
	struct one_op w = { .loop = &loop, .op.data = &w };
	bool entered = false;

	if (!loop_open(r, &loop))
		return;
	int64_t t0 = tmo_now();
	/* at 0.5 units (outside the scope), the scope is shifted by +1 unit */
	tmo_prep_sleep(&sh.op, tmo_at(t0 + U(d, 0.5)));
	int ret = tmo_op_start(&loop, &sh.op, TMO_NEVER, shifter_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start", ret);
		goto out;
	}
	ret = tmo_scope_enter(&loop, &scope, tmo_at(t0 + U(d, 1.5)), 0);
	if (ret < 0) {
		setup_failed(r, "tmo_scope_enter", ret);
		goto out;
	}
	entered = true;
	/* the work in the scope: a 5-unit sleep */
	tmo_prep_sleep(&w.op, tmo_at(t0 + U(d, 5)));
	ret = tmo_op_start(&loop, &w.op, TMO_NEVER, one_op_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start", ret);
		goto out;
	}
	int64_t moved_to = TMO_NEVER_NS;
	run_until(r, &loop, &w.done, t0 + U(d, 10), "the scope");
	moved_to = tmo_deadline_ns(tmo_scope_deadline(&scope));
	ret = tmo_scope_exit(&scope);
	entered = false;
	check(r, ret == 0, "tmo_scope_exit: %s", strerror(-ret));
	bool expired = tmo_scope_expired(&scope);
	char rb[64];
	r->outcome = w.res == -ETIME ? "timeout" : w.res < 0 ? "error" : "ok";
	r->elapsed_ns = w.at - t0;
	happened(r, "shifted at %.0f ms (%s) to end at %.0f ms; the work ended with %s at %.0f ms "
		    "(cause: %s); expired %s",
		 ms(U(d, 0.5)), sh.ret == 0 ? "ok" : strerror(-sh.ret), ms(moved_to - t0),
		 res_name(w.res, rb), ms(r->elapsed_ns),
		 tmo_op_cause(&w.op) == TMO_CAUSE_SCOPE ? "the scope" : "other",
		 expired ? "true" : "false");
	key(r, "expired", "%s", expired ? "true" : "false");
	key(r, "deadline_ms", "%.1f", ms(moved_to - t0));
	check(r, sh.fired && sh.ret == 0, "tmo_scope_shift: %s",
	      sh.fired ? strerror(-sh.ret) : "never called");
	check(r, moved_to == t0 + U(d, 1.5) + U(d, 1), "the deadline moved to %.1f ms",
	      ms(moved_to - t0));
	check(r, w.done && w.res == -ETIME, "the work ended with %s", res_name(w.res, rb));
	check(r, tmo_op_cause(&w.op) == TMO_CAUSE_SCOPE && tmo_op_cause_scope(&w.op) == &scope,
	      "the work's cause is not the scope (%d)", (int)tmo_op_cause(&w.op));
	check(r, expired, "the scope does not say expired");
	on_time(r, "the scope's expiry", r->elapsed_ns, U(d, 2.5));
out:
	if (entered)
		tmo_scope_exit(&scope);
	drain(r, &loop, tmo_now() + U(d, 10));
	loop_close(r, &loop);
}

static void sc_scope_inner_timeout(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct tmo_scope scope = { 0 };
	struct one_op w = { .loop = &loop, .op.data = &w };
	bool entered = false;

	if (!loop_open(r, &loop))
		return;
	int64_t t0 = tmo_now();
	int ret = tmo_scope_enter(&loop, &scope, tmo_at(t0 + U(d, 2)), 0);
	if (ret < 0) {
		setup_failed(r, "tmo_scope_enter", ret);
		goto out;
	}
	entered = true;
	tmo_prep_sleep(&w.op, tmo_at(t0 + U(d, 5)));
	ret = tmo_op_start(&loop, &w.op, tmo_at(t0 + U(d, 0.5)), one_op_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_op_start", ret);
		goto out;
	}
	run_until(r, &loop, &w.done, t0 + U(d, 10), "the op");
	int64_t remaining = tmo_scope_remaining(&scope);
	ret = tmo_scope_exit(&scope);
	entered = false;
	check(r, ret == 0, "tmo_scope_exit: %s", strerror(-ret));
	bool expired = tmo_scope_expired(&scope);
	char rb[64];
	r->outcome = w.res == -ETIME ? "timeout" : w.res < 0 ? "error" : "ok";
	r->elapsed_ns = w.at - t0;
	happened(r, "the op ended with %s at %.0f ms (cause: %s), %.0f ms before the scope's "
		    "deadline; expired %s",
		 res_name(w.res, rb), ms(r->elapsed_ns),
		 tmo_op_cause(&w.op) == TMO_CAUSE_OWN ? "its own deadline" : "other",
		 ms(remaining), expired ? "true" : "false");
	key(r, "expired", "%s", expired ? "true" : "false");
	key(r, "scope_remaining_ms", "%.1f", ms(remaining));
	check(r, w.done && w.res == -ETIME, "the op ended with %s", res_name(w.res, rb));
	check(r, tmo_op_cause(&w.op) == TMO_CAUSE_OWN, "the op's cause is %d, not its own deadline",
	      (int)tmo_op_cause(&w.op));
	check(r, !expired, "the scope says expired");
	on_time(r, "the op's timeout", r->elapsed_ns, U(d, 0.5));
out:
	if (entered)
		tmo_scope_exit(&scope);
	drain(r, &loop, tmo_now() + U(d, 10));
	loop_close(r, &loop);
}

/* ---- the scenarios ------------------------------------------------------------------------------- */

struct scenario {
	const char *name;
	const char *seed; /* {N}: N seed seconds, printed scaled */
	void (*run)(struct demo *d, struct report *r);
};

static const struct scenario scenarios[] = {
	{ "blocking-inline",
	  "a {5} blocking call on the loop thread under a {1} deadline finishes after {5}; the "
	  "stall is reported, and the kernel had cancelled the deadline-bound read at {1}",
	  sc_blocking_inline },
	{ "cooperative", "a {3} cooperative sleep under a {1} deadline times out at {1}",
	  sc_cooperative },
	{ "offloaded",
	  "the {5} blocking call sent to the pool times out at {1}; the loop serves other "
	  "operations meanwhile (loop_ops)",
	  sc_offloaded },
	{ "offloaded-interrupt",
	  "as offloaded, with interrupt: timeout at {1}, the worker is free at about {1}",
	  sc_offloaded_interrupt },
	{ "offloaded-kill",
	  "a CPU loop that never yields (and ignores SIGTERM), with kill: timeout at {1}, worker "
	  "free at {1} plus the grace period ({0.5})",
	  sc_offloaded_kill },
	{ "error-before-deadline",
	  "work failing at {0.5} under a {1} deadline ends as an error at {0.5}, not a timeout",
	  sc_error_before_deadline },
	{ "already-done", "work already finished returns at once, whatever its deadline ({1})",
	  sc_already_done },
	{ "gather-deadline",
	  "ten {5} members under a {2.5} group deadline: timeout at {2.5}, 10 cancelled",
	  sc_gather_deadline },
	{ "gather-member-deadline",
	  "ten {5} members returning i*100, the first with its own {2.5} deadline: done at {5}, "
	  "results [timeout, 100, 200, ..., 900]",
	  sc_gather_member_deadline },
	{ "wait-partial",
	  "wait with a {2.5} deadline over members of {1} to {5}: 2 done, 3 pending, pending not "
	  "cancelled",
	  sc_wait_partial },
	{ "stream-gap-raise",
	  "chunks at {0.2} and {0.5}, then a {1.5} silence under a {1} gap limit: the stream ends "
	  "with a timeout at that gap",
	  sc_stream_gap_raise },
	{ "stream-gap-sentinel",
	  "chunks 1, gap {1.1}, 2, gap {2.1}, 3 under a {1} gap limit: sequence [1, timeout, 2, "
	  "timeout, timeout, 3]",
	  sc_stream_gap_sentinel },
	{ "scope-shift", "a {1.5} scope shifted by +{1} expires at {2.5}: expired true",
	  sc_scope_shift },
	{ "scope-inner-timeout",
	  "an op whose own {0.5} deadline fires inside a {2} scope times out at {0.5}: expired "
	  "false",
	  sc_scope_inner_timeout },
	{ "periodic-refresh",
	  "a refresh runs at least every {1} during a {3.5} stream: 3 or more refreshes",
	  sc_periodic_refresh },
};

#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static void format_duration(double seconds, char *buf, size_t size)
{
	if (seconds >= 1 || seconds == 0)
		snprintf(buf, size, "%g s", seconds);
	else
		snprintf(buf, size, "%g ms", round(seconds * 1e4) / 10);
}

/* The seed's text with its times scaled. */
static void expand_seed(const struct demo *d, const char *tmpl, char *out, size_t size)
{
	out[0] = 0;
	for (const char *p = tmpl; *p;) {
		const char *open = strchr(p, '{');
		if (!open) {
			append(out, size, "%s", p);
			break;
		}
		append(out, size, "%.*s", (int)(open - p), p);
		char *end;
		double units = strtod(open + 1, &end);
		char dur[32];
		format_duration(units * d->scale, dur, sizeof(dur));
		append(out, size, "%s", dur);
		p = *end == '}' ? end + 1 : end;
	}
}

/* ---- output ---------------------------------------------------------------------------------------- */

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void print_json(const struct report *r)
{
	printf("{\"scenario\": \"%s\", \"outcome\": \"%s\", \"elapsed_ms\": %.1f", r->name,
	       r->outcome, ms(r->elapsed_ns));
	fputs(r->keys, stdout);
	printf(", \"seed\": ");
	json_string(stdout, r->seed);
	printf(", \"happened\": ");
	json_string(stdout, r->happened);
	if (!r->pass) {
		printf(", \"failed\": ");
		json_string(stdout, r->why);
	}
	printf(", \"pass\": %s}\n", r->pass ? "true" : "false");
	fflush(stdout);
}

#define COL_NAME 23
#define COL_SEED 44
#define COL_HAPPENED 56

/* A space not to break at: the one between a number and its unit ("2.5 s", "100 ms"). */
static bool glued(const char *space)
{
	const char *u = space + 1;
	if (u[0] == 'm' && u[1] == 's')
		u++;
	return u[0] == 's' && !isalnum((unsigned char)u[1]) && isdigit((unsigned char)space[-1]);
}

/* Cuts the next line of at most `width` characters off *text, at a space where possible. */
static int wrap(const char **text, int width)
{
	const char *s = *text;
	int len = (int)strlen(s);
	if (len <= width) {
		*text = s + len;
		return len;
	}
	int cut = width;
	while (cut > 0 && (s[cut] != ' ' || glued(s + cut)))
		cut--;
	if (cut == 0)
		cut = width;
	*text = s + cut;
	while (**text == ' ')
		(*text)++;
	return cut;
}

static void print_header(const struct demo *d)
{
	printf("tmo demo: the seed scenarios on the engine; times at scale %g (1 seed second = "
	       "%.0f ms)\n\n",
	       d->scale, ms(d->unit));
	printf("%-*s %-*s %-*s %9s  %s\n", COL_NAME, "scenario", COL_SEED, "the seed says", COL_HAPPENED,
	       "what happened", "elapsed", "result");
	printf("%-*s %-*s %-*s %9s  %s\n", COL_NAME, "--------", COL_SEED, "-------------",
	       COL_HAPPENED, "-------------", "-------", "------");
}

static void print_row(const struct report *r)
{
	const char *seed = r->seed, *hap = r->happened;
	bool first = true;
	while (first || *seed || *hap) {
		const char *s0 = seed, *h0 = hap;
		int sl = wrap(&seed, COL_SEED), hl = wrap(&hap, COL_HAPPENED);
		if (first)
			printf("%-*s %-*.*s %-*.*s %6.0f ms  %s\n", COL_NAME, r->name, COL_SEED, sl, s0,
			       COL_HAPPENED, hl, h0, ms(r->elapsed_ns), r->pass ? "pass" : "FAIL");
		else
			printf("%-*s %-*.*s %.*s\n", COL_NAME, "", COL_SEED, sl, s0, hl, h0);
		first = false;
	}
	if (!r->pass) {
		const char *why = r->why;
		while (*why) {
			const char *w0 = why;
			int wl = wrap(&why, COL_SEED + COL_HAPPENED);
			printf("%-*s   ! %.*s\n", COL_NAME, "", wl, w0);
		}
	}
	putchar('\n');
	fflush(stdout);
}

/* ---- the command ------------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: tmo demo [--json] [--scale F] [NAME]...\n"
		"Runs the scenarios of the seed documents (blocking versus cooperative deadlines,\n"
		"the worker pool, groups, per-gap stream limits, scopes, ticks) on the engine, each\n"
		"timed, and prints what the seed says happens, what happened, the elapsed time and\n"
		"pass or fail.\n"
		"\n"
		"  --json       one JSON object per scenario per line\n"
		"  --scale F    multiply every duration by F (default 1; 0.001 to 100)\n"
		"  --help       display this help and exit\n"
		"\n"
		"Scenarios (all by default):\n");
	for (size_t i = 0; i < NSCENARIOS; i++)
		fprintf(out, "  %s\n", scenarios[i].name);
	fprintf(out, "\nExit status: 0 if every scenario run passed, 1 if one failed, 125 for bad "
		     "usage.\n");
}

static bool parse_scale(const char *text, double *scale)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (end == text || *end || errno || !isfinite(v) || v < 0.001 || v > 100)
		return false;
	*scale = v;
	return true;
}

/* Waits for the abandoned workers and closes their pools and loops. */
static bool close_deferred(struct demo *d)
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

int cli_demo(int argc, char **argv)
{
	struct demo d = { .scale = 1 };
	bool selected[NSCENARIOS] = { false }, any = false, options = true;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (options && !strcmp(a, "--")) {
			options = false;
		} else if (options && !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (options && !strcmp(a, "--json")) {
			d.json = true;
		} else if (options && (!strcmp(a, "--scale") || !strncmp(a, "--scale=", 8))) {
			const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v) {
				fprintf(stderr, "tmo demo: option '--scale' requires an argument\n"
						"Try 'tmo demo --help' for more information.\n");
				return EXIT_TMO_FAILED;
			}
			if (!parse_scale(v, &d.scale)) {
				fprintf(stderr, "tmo demo: invalid scale '%s': a number from 0.001 to 100\n",
					v);
				return EXIT_TMO_FAILED;
			}
		} else if (options && a[0] == '-' && a[1]) {
			fprintf(stderr, "tmo demo: unknown option '%s'\n"
					"Try 'tmo demo --help' for more information.\n", a);
			return EXIT_TMO_FAILED;
		} else {
			size_t k = 0;
			while (k < NSCENARIOS && strcmp(scenarios[k].name, a))
				k++;
			if (k == NSCENARIOS) {
				fprintf(stderr, "tmo demo: unknown scenario '%s'\n"
						"Try 'tmo demo --help' for the list.\n", a);
				return EXIT_TMO_FAILED;
			}
			selected[k] = any = true;
		}
	}
	d.unit = (int64_t)llround(d.scale * (double)TMO_NSEC_PER_SEC);

	if (!d.json)
		print_header(&d);
	int64_t start = tmo_now();
	int run = 0, passed = 0;
	for (size_t k = 0; k < NSCENARIOS; k++) {
		if (any && !selected[k])
			continue;
		struct report *r = calloc(1, sizeof(*r));
		if (!r) {
			fprintf(stderr, "tmo demo: out of memory\n");
			close_deferred(&d);
			return EXIT_TMO_FAILED;
		}
		r->name = scenarios[k].name;
		r->pass = true;
		r->outcome = "error";
		expand_seed(&d, scenarios[k].seed, r->seed, sizeof(r->seed));
		scenarios[k].run(&d, r);
		if (r->checks == 0)
			check(r, false, "nothing was measured");
		run++;
		passed += r->pass;
		if (d.json)
			print_json(r);
		else
			print_row(r);
		free(r);
	}
	bool closed = close_deferred(&d);
	if (!d.json)
		printf("%d of %d scenarios passed in %.1f s\n", passed, run,
		       (double)(tmo_now() - start) / 1e9);
	return passed == run && closed ? 0 : 1;
}
