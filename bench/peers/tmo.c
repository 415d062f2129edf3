/*
 * tmo as a peer (peer.h), in three configurations of its loop:
 *   tmo       the default: every deadline a linked timeout, kept by the kernel;
 *   tmo-loop  TMO_DEADLINES_LOOP: deadlines in the loop's heap, expired ops cancelled;
 *   tmo-ll    TMO_MODE_LOW_LATENCY (a DEFER_TASKRUN ring), linked timeouts (precision only:
 *             the mode is about how late a deadline is seen).
 * A deadline in tmo belongs to an operation: there is no bare timer to arm. So where the other
 * peers arm a timer for a read, tmo starts the read with its deadline, and where they stop the
 * timer, tmo cancels the read: its figures include the kernel request each way.
 * Workload 1 is wl_pingpong from bench/workloads.c, the same code as tmo_bench's PingPong.
 */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tmo/pool.h>
#include <tmo/tmo.h>

#include "workloads.h"

struct config {
	enum tmo_loop_mode mode;
	enum tmo_deadline_strategy strategy;
};

static const struct config kernel_kept = {TMO_MODE_DEFAULT, TMO_DEADLINES_KERNEL};
static const struct config loop_kept = {TMO_MODE_DEFAULT, TMO_DEADLINES_LOOP};
static const struct config low_latency = {TMO_MODE_LOW_LATENCY, TMO_DEADLINES_KERNEL};

static int loop_init(struct tmo_loop *loop, const struct config *c)
{
	/* A large ring: the precision and scale workloads keep up to 2,000,000 requests in flight
	 * (a read and its linked timeout each), submitted 8,192 SQEs per system call. */
	struct tmo_loop_options o = {
		.ring_entries = 8192,
		.cq_entries = 65536,
		.mode = c->mode,
		.deadlines = c->strategy,
	};
	int ret = tmo_loop_init(loop, &o);

	if (ret < 0) {
		char buf[256];

		tmo_loop_describe_error(ret, buf, sizeof(buf));
		return peer_fail(ret, "tmo_loop_init: %s", buf);
	}
	return 0;
}

/* Hands what is queued to the kernel: 0 or a negative errno (not the count submitted). */
static int submit(struct tmo_loop *loop)
{
	int ret = tmo_loop_submit(loop);

	return ret < 0 ? ret : 0;
}

/* ---- W1: wl_pingpong ---------------------------------------------------------------------- */

static int flows_create(void **ctx, uint32_t flows, bool deadline, const struct config *c)
{
	enum wl_deadline d = !deadline ? WL_DEADLINE_NONE
			     : c->strategy == TMO_DEADLINES_LOOP ? WL_DEADLINE_LOOP
								  : WL_DEADLINE_KERNEL;
	struct wl_pingpong *wl;
	int ret = wl_pingpong_create(&wl, flows, d);

	if (ret < 0)
		return peer_fail(ret, "wl_pingpong_create(%u flows)", flows);
	*ctx = wl;
	return 0;
}

static int flows_create_kernel(void **ctx, uint32_t flows, bool deadline)
{
	return flows_create(ctx, flows, deadline, &kernel_kept);
}

static int flows_create_loop(void **ctx, uint32_t flows, bool deadline)
{
	return flows_create(ctx, flows, deadline, &loop_kept);
}

static int flows_run(void *ctx, uint64_t items)
{
	return wl_pingpong_run(ctx, items);
}

static void flows_destroy(void *ctx)
{
	wl_pingpong_destroy(ctx);
}

/* ---- Reads that wait for ever, on pipes nobody writes to (W2 and W3) ---------------------- */

/* Reads per pipe: spread over pipes so that no wait queue grows to a million entries. */
#define READS_PER_PIPE 1024

struct waiter {
	struct tmo_op op;
	struct readers *r;
	int64_t due;
	uint32_t index;
	uint8_t byte;
	bool fired;
};

struct readers {
	struct tmo_loop loop;
	bool loop_ready;
	uint32_t count;    /* waiters */
	uint32_t pending;  /* W3: waiters [0, pending) stay armed; a batch uses the slots after */
	uint32_t npipes;
	int *pipes;        /* read ends at [2i], write ends at [2i+1] */
	struct waiter *w;
	uint64_t done;     /* callbacks seen */
	int error;
	bool closing;      /* readers_destroy: the reads end at end of file, not to be checked */
	int64_t *late;     /* W2: where lateness goes */
};

static void readers_destroy(struct readers *r)
{
	if (!r)
		return;
	if (r->loop_ready) {
		/*
		 * End the reads by closing the pipes' write ends (each read completes with 0 at
		 * end of file), not by cancelling each: the kernel finds a request to cancel by
		 * its user_data in a hash table sized when the ring was made, so with 1,000,000
		 * reads in flight each cancel walks a long chain, and cancelling them all took
		 * many minutes (docs/benchmarks.md). Completions at end of file need no lookup.
		 */
		r->closing = true;
		for (uint32_t i = 0; i < r->npipes; i++) {
			if (r->pipes[2 * i + 1] >= 0)
				close(r->pipes[2 * i + 1]);
			r->pipes[2 * i + 1] = -1;
		}
		while (tmo_loop_active(&r->loop) > 0)
			if (tmo_loop_run(&r->loop, TMO_RUN_ONCE) < 0)
				break;
		tmo_loop_close(&r->loop);
	}
	if (r->pipes)
		peer_close_all(r->pipes, 2 * r->npipes);
	free(r->pipes);
	free(r->w);
	free(r);
}

static int readers_create(struct readers **out, uint32_t count, const struct config *c)
{
	struct readers *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return -ENOMEM;
	r->count = count;
	r->npipes = (count + READS_PER_PIPE - 1) / READS_PER_PIPE;
	r->w = calloc(count, sizeof(*r->w));
	r->pipes = malloc(2 * sizeof(int) * r->npipes);
	if (!r->w || !r->pipes) {
		readers_destroy(r);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < 2 * r->npipes; i++)
		r->pipes[i] = -1;
	ret = peer_want_fds(2 * r->npipes + 256);
	for (uint32_t i = 0; i < r->npipes && !ret; i++)
		if (pipe2(r->pipes + 2 * i, O_CLOEXEC) < 0)
			ret = peer_fail(-errno, "pipe %u of %u", i + 1, r->npipes);
	if (!ret)
		ret = loop_init(&r->loop, c);
	if (ret < 0) {
		readers_destroy(r);
		return ret;
	}
	r->loop_ready = true;
	for (uint32_t i = 0; i < count; i++) {
		r->w[i].r = r;
		r->w[i].index = i;
		r->w[i].op.data = &r->w[i];
	}
	*out = r;
	return 0;
}

static int waiter_start(struct waiter *w, int64_t deadline, tmo_op_cb cb)
{
	struct readers *r = w->r;

	tmo_prep_read(&w->op, r->pipes[2 * (w->index / READS_PER_PIPE)], &w->byte, 1, 0);
	return tmo_op_start(&r->loop, &w->op, tmo_at(deadline), cb);
}

/* ---- W2 ----------------------------------------------------------------------------------- */

static void on_fired(struct tmo_op *op, int32_t res)
{
	int64_t seen = peer_now();
	struct waiter *w = op->data;
	struct readers *r = w->r;

	if (r->closing)
		return;
	if (res != -ETIME || w->fired) {
		if (!r->error)
			r->error = peer_fail(-EPROTO, "read %u: %s (%d), fired before: %d", w->index,
					     strerror(-res), res, w->fired);
		return;
	}
	w->fired = true;
	r->late[w->index] = seen - w->due;
	r->done++;
}

static int precision(struct peer_precision *p, const struct config *c)
{
	struct readers *r;
	int ret = readers_create(&r, p->n, c);

	if (ret < 0)
		return ret;
	r->late = p->late;
	int64_t base = peer_now() + p->lead_ns;
	uint32_t armed = 0;

	for (; armed < p->n && !ret; armed++) {
		r->w[armed].due = base + p->offset[armed];
		ret = waiter_start(&r->w[armed], r->w[armed].due, on_fired);
	}
	if (!ret)
		ret = submit(&r->loop);
	p->armed_ns = peer_now() - base;
	if (ret < 0)
		ret = peer_fail(ret, "arming read %u of %u", armed, p->n);
	while (!ret && !r->error && r->done < p->n) {
		ret = tmo_loop_run(&r->loop, TMO_RUN_DEFAULT);
		if (ret == 0 && r->done < p->n)
			ret = peer_fail(-EPROTO, "loop idle with %llu of %u fired",
					(unsigned long long)r->done, p->n);
		if (ret > 0)
			ret = 0;
	}
	if (!ret)
		ret = r->error;
	readers_destroy(r);
	return ret;
}

static int precision_kernel(struct peer_precision *p)
{
	return precision(p, &kernel_kept);
}

static int precision_loop(struct peer_precision *p)
{
	return precision(p, &loop_kept);
}

static int precision_ll(struct peer_precision *p)
{
	return precision(p, &low_latency);
}

/* ---- W3 ----------------------------------------------------------------------------------- */

#define MAX_BATCH 4096

static void on_cancelled(struct tmo_op *op, int32_t res)
{
	struct waiter *w = op->data;
	struct readers *r = w->r;

	if (r->closing)
		return;
	if (res != -ECANCELED && !r->error)
		r->error = peer_fail(-EPROTO, "read %u ended with %s (%d), not cancelled", w->index,
				     strerror(-res), res);
	r->done++;
}

static int scale_create(void **ctx, uint32_t pending, const struct config *c)
{
	struct readers *r;
	int ret = readers_create(&r, pending + MAX_BATCH, c);

	if (ret < 0)
		return ret;
	r->pending = pending;
	for (uint32_t i = 0; i < pending && !ret; i++)
		ret = waiter_start(&r->w[i], tmo_now() + PEER_SCALE_TIMEOUT_NS, on_cancelled);
	if (!ret)
		ret = submit(&r->loop);
	if (ret < 0) {
		readers_destroy(r);
		return peer_fail(ret, "arming %u pending reads", pending);
	}
	/* Nothing may have completed: every read is still waiting. */
	ret = tmo_loop_run(&r->loop, TMO_RUN_NOWAIT);
	if (ret >= 0 && r->done)
		ret = peer_fail(-EPROTO, "%llu pending reads completed", (unsigned long long)r->done);
	if (ret < 0) {
		readers_destroy(r);
		return ret;
	}
	*ctx = r;
	return 0;
}

static int scale_run(void *ctx, uint32_t batch, int64_t *arm_ns, int64_t *cancel_ns)
{
	struct readers *r = ctx;
	struct waiter *w = r->w + r->pending;
	int ret = 0;

	if (batch > MAX_BATCH)
		return peer_fail(-EINVAL, "batch %u over %u", batch, MAX_BATCH);
	int64_t t0 = peer_now();

	for (uint32_t i = 0; i < batch && !ret; i++)
		ret = waiter_start(&w[i], tmo_now() + PEER_SCALE_TIMEOUT_NS, on_cancelled);
	if (!ret)
		ret = submit(&r->loop);
	int64_t t1 = peer_now();

	if (ret < 0)
		return peer_fail(ret, "arming the batch");
	uint64_t target = r->done + batch;

	for (uint32_t i = 0; i < batch && !ret; i++)
		ret = tmo_op_cancel(&w[i].op);
	while (!ret && !r->error && r->done < target) {
		ret = tmo_loop_run(&r->loop, TMO_RUN_ONCE);
		if (ret > 0)
			ret = 0;
	}
	int64_t t2 = peer_now();

	if (ret < 0)
		return peer_fail(ret, "cancelling the batch");
	if (r->error)
		return r->error;
	if (r->done != target)
		return peer_fail(-EPROTO, "%llu more callbacks than reads cancelled",
				 (unsigned long long)(r->done - target));
	*arm_ns = t1 - t0;
	*cancel_ns = t2 - t1;
	return 0;
}

static int scale_create_kernel(void **ctx, uint32_t pending)
{
	return scale_create(ctx, pending, &kernel_kept);
}

static int scale_create_loop(void **ctx, uint32_t pending)
{
	return scale_create(ctx, pending, &loop_kept);
}

static void scale_destroy(void *ctx)
{
	readers_destroy(ctx);
}

/* ---- W4: a tmo_reader with a gap limit per connection --------------------------------------- */

struct conn {
	struct tmo_reader reader;
	struct idle *idle;
	uint8_t buf[64];
};

struct idle {
	struct tmo_loop loop;
	struct peer_idle *p;
	struct conn *conn;
	struct tmo_op stop;
	uint64_t ends;
	bool stopping;
	int error;
};

static void on_reader(struct tmo_reader *reader, const struct tmo_reader_event *ev)
{
	struct conn *c = reader->data;
	struct idle *s = c->idle;

	switch (ev->kind) {
	case TMO_READER_DATA:
		s->p->bytes += ev->len;
		break;
	case TMO_READER_TIMEOUT:
		s->p->timeouts++;
		break;
	case TMO_READER_END:
		s->ends++;
		if (ev->error == -ETIME)
			s->p->timeouts++;
		else if (!s->stopping && !s->error)
			s->error = peer_fail(-EPROTO, "a connection ended: %s", strerror(-ev->error));
		break;
	}
}

static void on_stop(struct tmo_op *op, int32_t res)
{
	struct idle *s = op->data;

	if (res < 0 && !s->error)
		s->error = peer_fail(res, "waiting for stop_fd");
	s->p->stop(s->p);
	s->stopping = true;
	for (uint32_t i = 0; i < s->p->conns; i++)
		tmo_reader_stop(&s->conn[i].reader);
}

static int idle(struct peer_idle *p, const struct config *c)
{
	struct idle s = {.p = p};
	struct tmo_reader_options options = {
		.limits = {.gap_ns = p->gap_ns},
		.on_gap = TMO_GAP_END,
	};
	int ret = loop_init(&s.loop, c);

	if (ret == 0) {
		s.conn = calloc(p->conns, sizeof(*s.conn));
		if (!s.conn) {
			tmo_loop_close(&s.loop);
			ret = peer_fail(-ENOMEM, "%u readers", p->conns);
		}
	}
	if (ret < 0) {
		for (uint32_t i = 0; i < p->conns; i++)
			close(p->fds[i]);
		return ret;
	}
	uint32_t started = 0;

	for (uint32_t i = 0; i < p->conns && !ret; i++) {
		struct conn *cn = &s.conn[i];

		cn->idle = &s;
		ret = tmo_reader_init(&cn->reader, &s.loop, p->fds[i], cn->buf, sizeof(cn->buf),
				      p->deadline ? &options : NULL);
		cn->reader.data = cn;
		if (!ret)
			ret = tmo_reader_start(&cn->reader, on_reader);
		if (!ret)
			started++;
	}
	s.stop.data = &s;
	tmo_prep_poll(&s.stop, p->stop_fd, POLLIN);
	if (!ret)
		ret = tmo_op_start(&s.loop, &s.stop, TMO_NEVER, on_stop);
	if (!ret)
		ret = submit(&s.loop);
	if (ret < 0) {
		ret = peer_fail(ret, "starting %u readers", p->conns);
		s.stopping = true;
		for (uint32_t i = 0; i < started; i++)
			tmo_reader_stop(&s.conn[i].reader);
		if (tmo_op_busy(&s.stop))
			tmo_op_cancel(&s.stop);
	} else {
		p->start(p);
	}
	while (tmo_loop_active(&s.loop) > 0) {
		int r = tmo_loop_run(&s.loop, TMO_RUN_DEFAULT);

		if (r < 0) {
			ret = ret ? ret : peer_fail(r, "tmo_loop_run");
			break;
		}
	}
	tmo_loop_close(&s.loop);
	free(s.conn);
	for (uint32_t i = 0; i < p->conns; i++)
		close(p->fds[i]); /* the peer owns them (peer.h) */
	if (!ret)
		ret = s.error;
	return ret;
}

static int idle_kernel(struct peer_idle *p)
{
	return idle(p, &kernel_kept);
}

static int idle_loop(struct peer_idle *p)
{
	return idle(p, &loop_kept);
}

/* ---- W5: the pool ------------------------------------------------------------------------- */

struct offload {
	struct tmo_loop loop;
	struct tmo_pool pool;
	struct tmo_job job;
	int64_t seen;
	int64_t res;
	bool done;
};

static int64_t noop(struct tmo_job *job)
{
	(void)job;
	return 0;
}

static void on_job(struct tmo_job *job, int64_t res)
{
	struct offload *o = job->data;

	o->seen = peer_now();
	o->res = res;
	o->done = true;
}

static int offload_create(void **ctx)
{
	struct offload *o = calloc(1, sizeof(*o));
	int ret;

	if (!o)
		return -ENOMEM;
	ret = loop_init(&o->loop, &kernel_kept);
	if (ret < 0) {
		free(o);
		return ret;
	}
	ret = tmo_pool_init(&o->pool, &o->loop, NULL); /* the defaults: 4 workers */
	if (ret < 0) {
		tmo_loop_close(&o->loop);
		free(o);
		return peer_fail(ret, "tmo_pool_init");
	}
	o->job.data = o;
	*ctx = o;
	return 0;
}

static int offload_run(void *ctx, uint64_t items, int64_t *samples)
{
	struct offload *o = ctx;

	for (uint64_t i = 0; i < items; i++) {
		o->done = false;
		tmo_job_prep(&o->job, noop);
		int64_t t0 = peer_now();
		int ret = tmo_job_start(&o->pool, &o->job, TMO_NEVER, on_job);

		if (ret < 0)
			return peer_fail(ret, "tmo_job_start");
		while (!o->done) {
			ret = tmo_loop_run(&o->loop, TMO_RUN_ONCE);
			if (ret < 0)
				return peer_fail(ret, "tmo_loop_run");
		}
		if (o->res != 0)
			return peer_fail(-EPROTO, "the no-op job gave %lld", (long long)o->res);
		samples[i] = o->seen - t0;
	}
	return 0;
}

static void offload_destroy(void *ctx)
{
	struct offload *o = ctx;

	tmo_pool_close(&o->pool);
	tmo_loop_close(&o->loop);
	free(o);
}

const struct peer peer_tmo = {
	.name = "tmo",
	.how = "the read carries its deadline: a linked timeout, kept by the kernel",
	.flows_create = flows_create_kernel,
	.flows_run = flows_run,
	.flows_destroy = flows_destroy,
	.precision = precision_kernel,
	.scale_create = scale_create_kernel,
	.scale_run = scale_run,
	.scale_destroy = scale_destroy,
	.idle = idle_kernel,
	.offload_create = offload_create,
	.offload_run = offload_run,
	.offload_destroy = offload_destroy,
};

const struct peer peer_tmo_loop = {
	.name = "tmo-loop",
	.how = "TMO_DEADLINES_LOOP: the read's deadline in the loop's heap, cancelled on expiry",
	.flows_create = flows_create_loop,
	.flows_run = flows_run,
	.flows_destroy = flows_destroy,
	.precision = precision_loop,
	.scale_create = scale_create_loop,
	.scale_run = scale_run,
	.scale_destroy = scale_destroy,
	.idle = idle_loop,
};

const struct peer peer_tmo_ll = {
	.name = "tmo-ll",
	.how = "TMO_MODE_LOW_LATENCY (DEFER_TASKRUN ring), linked timeouts",
	.precision = precision_ll,
};
