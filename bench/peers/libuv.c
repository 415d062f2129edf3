/*
 * The libuv peer (peer.h): a read deadline the way libuv's users keep one. libuv has no
 * timeout on a read: a stream is read with uv_read_start() and the deadline is a uv_timer_t of
 * the user's, started when a read is expected and stopped when data arrives; when it fires,
 * the user gives up on the read (https://docs.libuv.org/en/v1.x/timer.html, stream.html).
 * Timers count in whole milliseconds of the loop's cached time (uv_now()).
 *
 * Every workload runs on a loop of its own (uv_loop_init) rather than uv_default_loop(), so
 * that nothing one benchmark leaves behind can reach the next; the thread pool of W5 is
 * libuv's, which is process-wide whatever the loop.
 */
#include "peer.h"

#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* libuv's errors are negative errnos on Unix, except its own (UV_EOF, UV_EAI_*, ...). */
static int uv_errno(int64_t r)
{
	return r < 0 && r > -3000 ? (int)r : -EIO;
}

/* Milliseconds for a libuv timer, rounded up: a timer must not fire before its time. */
static uint64_t ms_ceil(int64_t ns)
{
	return ns <= 0 ? 0 : (uint64_t)((ns + PEER_NSEC_PER_MSEC - 1) / PEER_NSEC_PER_MSEC);
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/*
 * After every handle has been given to uv_close(): one more run lets libuv finish the closes
 * (and cancel what was still queued on them), then the loop can close. false if it cannot,
 * in which case the caller leaks the memory rather than free what libuv still points to.
 */
static bool loop_finish(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_DEFAULT);
	return uv_loop_close(loop) == 0;
}

/* ---- W1: a deadline on every read ----------------------------------------------------------- */

#define FLOW_DEADLINE_MS ((uint64_t)(PEER_FLOW_DEADLINE_NS / PEER_NSEC_PER_MSEC))

/* One end of a flow: side A (`replier` false) sends 0, 1, 2, ...; side B echoes each byte. */
struct flow_side {
	uv_pipe_t pipe;
	uv_timer_t timer;    /* the read deadline, with `deadline` only */
	struct flows *fl;
	bool replier;
	bool pipe_init;      /* pipe given to uv_pipe_init (so it must be uv_close'd) */
	bool timer_init;
	uint8_t expect;      /* the value the next received byte must have */
	uint8_t reply;       /* the byte to send back */
	uint8_t buf[64];     /* this connection's read buffer, handed out by alloc_cb */
};

struct flows {
	uv_loop_t loop;
	bool loop_init;
	bool deadline;
	int error;           /* first failure seen by a callback */
	uint64_t received;   /* messages received since create */
	uint64_t target;     /* sum of the items asked of every flows_run call */
	uint32_t nsides;
	uint32_t nheld;
	uint32_t *held;      /* [nsides]: sides whose reply waits for the next flows_run */
	struct flow_side side[]; /* side[2 * i] is A of flow i, side[2 * i + 1] its B */
};

/* A reply that uv_try_write could not send at once: queued with uv_write, as in libuv's guide. */
struct flow_write {
	uv_write_t req;
	uint8_t byte;
};

static void flows_fail(struct flows *fl, int err, const char *what)
{
	if (!fl->error) {
		fl->error = err;
		peer_fail(err, "libuv W1: %s", what);
	}
	uv_stop(&fl->loop);
}

static void flow_written(uv_write_t *req, int status)
{
	struct flow_write *w = container_of(req, struct flow_write, req);
	struct flow_side *s = req->handle->data;

	/* UV_ECANCELED: the pipe was closed by flows_destroy with this write still queued. */
	if (status < 0 && status != UV_ECANCELED)
		flows_fail(s->fl, uv_errno(status), "uv_write failed");
	free(w);
}

/*
 * The reply goes out with uv_try_write, falling back to uv_write when the socket would block
 * (never, with one byte in flight, but a user's code must). On Unix uv_write, too, writes at
 * once when nothing is queued, but it takes a request whose callback libuv defers to the next
 * loop iteration; uv_try_write makes the same write() without one. Node's streams do the same
 * (LibuvStreamWrap::DoTryWrite first, uv_write for the rest).
 */
static int flow_send(struct flow_side *s, uint8_t byte)
{
	uv_buf_t b = uv_buf_init((char *)&byte, 1);
	int r = uv_try_write((uv_stream_t *)&s->pipe, &b, 1);

	if (r == 1)
		return 0;
	if (r < 0 && r != UV_EAGAIN)
		return peer_fail(uv_errno(r), "libuv W1: uv_try_write: %s", uv_strerror(r));

	struct flow_write *w = malloc(sizeof(*w));

	if (!w)
		return peer_fail(-ENOMEM, "libuv W1: a write request");
	w->byte = byte;
	b = uv_buf_init((char *)&w->byte, 1);
	r = uv_write(&w->req, (uv_stream_t *)&s->pipe, &b, 1, flow_written);
	if (r < 0) {
		free(w);
		return peer_fail(uv_errno(r), "libuv W1: uv_write: %s", uv_strerror(r));
	}
	return 0;
}

static void flow_timeout(uv_timer_t *t);

static int flow_reply(struct flow_side *s)
{
	/* The next read is expected from now on: its deadline starts before the reply that
	 * will provoke it leaves, as the read itself is already on (uv_read_start). */
	if (s->fl->deadline) {
		int r = uv_timer_start(&s->timer, flow_timeout, FLOW_DEADLINE_MS, 0);

		if (r < 0)
			return peer_fail(uv_errno(r), "libuv W1: uv_timer_start: %s", uv_strerror(r));
	}
	return flow_send(s, s->reply);
}

static void flow_timeout(uv_timer_t *t)
{
	struct flow_side *s = t->data;

	flows_fail(s->fl, -ETIME, "a read deadline fired");
}

static void flow_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct flow_side *s = h->data;

	(void)suggested; /* 64 KiB: far more than one byte at a time needs */
	*buf = uv_buf_init((char *)s->buf, sizeof(s->buf));
}

static void flow_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct flow_side *s = stream->data;
	struct flows *fl = s->fl;

	(void)buf;
	if (nread == 0)
		return; /* EAGAIN, says the doc: nothing read, the read stays on */
	if (nread < 0) {
		uv_read_stop(stream);
		flows_fail(fl, nread == UV_EOF ? -EPROTO : uv_errno(nread),
			   nread == UV_EOF ? "a flow's other end closed" : "a read failed");
		return;
	}
	/* Data arrived in time: this read's deadline is met. */
	if (fl->deadline)
		uv_timer_stop(&s->timer);
	if (nread != 1 || s->buf[0] != s->expect) {
		flows_fail(fl, -EBADMSG, "received a byte other than the one sent");
		return;
	}
	s->expect++;
	s->reply = s->replier ? s->buf[0] : s->expect;
	/*
	 * Enough for this run: uv_run returns once this iteration's callbacks are done. But an
	 * iteration's poll phase goes on polling (up to 48 times, without waiting) as long as
	 * epoll fills libuv's array of 1024 events, which 1024 flows replying at once do: then
	 * one flows_run would do some 48 runs' worth. So from the target on, the replies are
	 * held until the next flows_run sends them, as a stopped tmo loop holds its queued
	 * sends until it runs again: the overshoot is one batch, as for the other peers.
	 */
	if (++fl->received == fl->target)
		uv_stop(&fl->loop);
	if (fl->received > fl->target) {
		fl->held[fl->nheld++] = (uint32_t)(s - fl->side);
		return;
	}

	int r = flow_reply(s);

	if (r < 0)
		flows_fail(fl, r, "sending a reply");
}

static void flows_destroy(void *ctx)
{
	struct flows *fl = ctx;

	if (!fl)
		return;
	for (uint32_t i = 0; i < fl->nsides; i++) {
		struct flow_side *s = &fl->side[i];

		if (s->pipe_init)
			close_handle((uv_handle_t *)&s->pipe); /* closes its fd too */
		if (s->timer_init)
			close_handle((uv_handle_t *)&s->timer);
	}
	if (fl->loop_init && !loop_finish(&fl->loop))
		return;
	free(fl->held);
	free(fl);
}

static int flows_create(void **ctx, uint32_t nflows, bool deadline)
{
	uint32_t nsides = 2 * nflows;
	struct flows *fl = calloc(1, sizeof(*fl) + nsides * sizeof(fl->side[0]));
	int *fds = malloc(nsides * sizeof(*fds));
	int ret;

	if (fl)
		fl->held = malloc(nsides * sizeof(*fl->held));
	if (!fl || !fds || !fl->held) {
		if (fl)
			free(fl->held);
		free(fl);
		free(fds);
		return peer_fail(-ENOMEM, "libuv W1: %u flows", nflows);
	}
	fl->deadline = deadline;
	fl->nsides = nsides;
	ret = peer_want_fds(nsides + 64);
	if (!ret)
		ret = peer_socketpairs(fds, nflows, false); /* uv_pipe_open makes them nonblocking */
	if (ret < 0) {
		free(fds);
		free(fl->held);
		free(fl);
		return ret;
	}
	ret = uv_loop_init(&fl->loop);
	if (ret < 0) {
		ret = peer_fail(uv_errno(ret), "libuv W1: uv_loop_init: %s", uv_strerror(ret));
		goto out;
	}
	fl->loop_init = true;

	/* Every read is on (and its deadline started) before the first byte leaves. */
	for (uint32_t i = 0; i < nsides && !ret; i++) {
		struct flow_side *s = &fl->side[i];

		s->fl = fl;
		s->replier = i & 1;
		ret = uv_pipe_init(&fl->loop, &s->pipe, 0);
		if (ret < 0)
			break;
		s->pipe_init = true;
		s->pipe.data = s;
		/* We made these fds: the handle may own them (uv_close closes them). */
		ret = uv_pipe_open(&s->pipe, fds[i]);
		if (ret < 0)
			break;
		fds[i] = -1;
		ret = uv_read_start((uv_stream_t *)&s->pipe, flow_alloc, flow_read);
		if (ret < 0 || !deadline)
			continue;
		ret = uv_timer_init(&fl->loop, &s->timer);
		if (ret < 0)
			break;
		s->timer_init = true;
		s->timer.data = s;
		ret = uv_timer_start(&s->timer, flow_timeout, FLOW_DEADLINE_MS, 0);
		if (ret < 0)
			break;
	}
	if (ret < 0) {
		ret = peer_fail(uv_errno(ret), "libuv W1: opening the flows: %s", uv_strerror(ret));
		goto out;
	}
	for (uint32_t i = 0; i < nflows && !ret; i++)
		ret = flow_send(&fl->side[2 * i], 0); /* A sends 0, which both sides expect */
	if (ret < 0)
		peer_fail(ret, "libuv W1: the first bytes");
out:
	peer_close_all(fds, nsides); /* those no handle took */
	free(fds);
	if (ret < 0) {
		flows_destroy(fl);
		return ret;
	}
	*ctx = fl;
	return 0;
}

static int flows_run(void *ctx, uint64_t items)
{
	struct flows *fl = ctx;

	fl->target += items;
	/* The replies held since the last run's target go out first, in the order received. */
	for (uint32_t i = 0; i < fl->nheld && !fl->error; i++) {
		int r = flow_reply(&fl->side[fl->held[i]]);

		if (r < 0)
			fl->error = r;
	}
	fl->nheld = 0;
	/* As a server runs its loop: until a callback stops it (uv_stop at the target). */
	while (fl->received < fl->target && !fl->error) {
		if (uv_run(&fl->loop, UV_RUN_DEFAULT) == 0 && !fl->error)
			return peer_fail(-EPROTO, "libuv W1: the loop ran out of handles");
	}
	return fl->error;
}

/* ---- W2: precision of deadlines that fire ------------------------------------------------- */

struct prec {
	uv_loop_t loop;
	struct peer_precision *p;
	int64_t base;
	uint8_t *fired;      /* [n]: times each timer's callback ran */
	uv_timer_t timer[];  /* [n] */
};

static void prec_fire(uv_timer_t *t)
{
	int64_t now = peer_now(); /* the moment the user's code learns of it */
	struct prec *pr = t->data;
	uint32_t i = (uint32_t)(t - pr->timer);

	pr->p->late[i] = now - (pr->base + pr->p->offset[i]);
	if (pr->fired[i] < UINT8_MAX)
		pr->fired[i]++;
}

static int precision(struct peer_precision *p)
{
	uint32_t n = p->n;
	struct prec *pr = calloc(1, sizeof(*pr) + n * sizeof(pr->timer[0]));
	int ret = -ENOMEM;

	if (!pr || !(pr->fired = calloc(n ? n : 1, 1))) {
		free(pr);
		return peer_fail(-ENOMEM, "libuv W2: %u timers", n);
	}
	pr->p = p;
	ret = uv_loop_init(&pr->loop);
	if (ret < 0) {
		free(pr->fired);
		free(pr);
		return peer_fail(uv_errno(ret), "libuv W2: uv_loop_init: %s", uv_strerror(ret));
	}
	/* Each deadline's timer exists before it is armed, as with a connection's timer. */
	for (uint32_t i = 0; i < n; i++) {
		uv_timer_init(&pr->loop, &pr->timer[i]); /* cannot fail */
		pr->timer[i].data = pr;
	}

	/*
	 * A timer started with timeout t fires at the first loop iteration whose time, uv_now(),
	 * is >= uv_now() at the start + t. That time is whole ms, truncated, of the clock behind
	 * uv_hrtime(): on Linux CLOCK_MONOTONIC (or its _COARSE version, same epoch, when that
	 * ticks every ms or faster), the clock of peer_now(). So the careful conversion of a due
	 * time in ns is: expire at the first whole ms at or after it, t = ceil(due / 1 ms) -
	 * uv_now(). Measured from uv_now() (cached at the loop's last tick) rather than from now,
	 * how stale the cached time is does not matter, and the timer never fires early: when
	 * uv_now() reaches ceil(due), the monotonic clock has too. The cost is 0..1 ms of rounding.
	 *
	 * That holds if uv_now() is the monotonic clock in ms, which is checked here; should a
	 * libuv ever differ, the fallback is relative: t = ceil((due - before) / 1 ms) + 1, with
	 * `before` read just before uv_update_time() (the +1 covers the truncation of both ends).
	 */
	int64_t before = peer_now();

	uv_update_time(&pr->loop);
	int64_t now_ms = (int64_t)uv_now(&pr->loop);
	int64_t after = peer_now();
	bool same_clock = now_ms * PEER_NSEC_PER_MSEC <= after &&
			  now_ms * PEER_NSEC_PER_MSEC > before - 2 * PEER_NSEC_PER_MSEC;

	pr->base = peer_now() + p->lead_ns;
	for (uint32_t i = 0; i < n; i++) {
		int64_t due = pr->base + p->offset[i];
		int64_t t = same_clock ? (int64_t)ms_ceil(due) - now_ms
				       : (int64_t)ms_ceil(due - before) + 1;

		ret = uv_timer_start(&pr->timer[i], prec_fire, t > 0 ? (uint64_t)t : 0, 0);
		if (ret < 0) {
			ret = peer_fail(uv_errno(ret), "libuv W2: uv_timer_start: %s",
					uv_strerror(ret));
			break;
		}
	}
	p->armed_ns = peer_now() - pr->base;

	/* Runs until no timer is left active: every one has fired (they do not repeat). */
	if (ret >= 0)
		uv_run(&pr->loop, UV_RUN_DEFAULT);
	for (uint32_t i = 0; i < n && ret >= 0; i++) {
		if (pr->fired[i] != 1)
			ret = peer_fail(-EPROTO, "libuv W2: timer %u fired %u times", i,
					pr->fired[i]);
	}
	for (uint32_t i = 0; i < n; i++)
		close_handle((uv_handle_t *)&pr->timer[i]);
	if (!loop_finish(&pr->loop))
		return ret < 0 ? ret : peer_fail(-EBUSY, "libuv W2: uv_loop_close");
	free(pr->fired);
	free(pr);
	return ret < 0 ? ret : 0;
}

/* ---- W3: cost of arming and cancelling with many pending ---------------------------------- */

#define SCALE_TIMEOUT_MS ((uint64_t)(PEER_SCALE_TIMEOUT_NS / PEER_NSEC_PER_MSEC))

struct scale {
	uv_loop_t loop;
	uint32_t pending;
	uint32_t nbatch;       /* handles in batch[]: made by the first scale_run, untimed */
	uv_timer_t *batch;     /* the `batch` timers scale_run arms and cancels */
	uv_timer_t timer[];    /* [pending] */
};

static void scale_fire(uv_timer_t *t)
{
	(void)t; /* an hour away: never called in a run */
}

static int scale_batch_alloc(struct scale *sc, uint32_t n)
{
	sc->batch = calloc(n ? n : 1, sizeof(*sc->batch));
	if (!sc->batch)
		return peer_fail(-ENOMEM, "libuv W3: %u batch timers", n);
	sc->nbatch = n;
	for (uint32_t i = 0; i < n; i++)
		uv_timer_init(&sc->loop, &sc->batch[i]); /* cannot fail */
	return 0;
}

static void scale_destroy(void *ctx)
{
	struct scale *sc = ctx;

	if (!sc)
		return;
	/* uv_close stops an active timer: after it nothing is left to keep the loop running. */
	for (uint32_t i = 0; i < sc->pending; i++)
		close_handle((uv_handle_t *)&sc->timer[i]);
	for (uint32_t i = 0; i < sc->nbatch; i++)
		close_handle((uv_handle_t *)&sc->batch[i]);
	if (!loop_finish(&sc->loop))
		return;
	free(sc->batch);
	free(sc);
}

static int scale_create(void **ctx, uint32_t pending)
{
	struct scale *sc = calloc(1, sizeof(*sc) + (size_t)pending * sizeof(sc->timer[0]));
	int ret;

	if (!sc)
		return peer_fail(-ENOMEM, "libuv W3: %u timers", pending);
	ret = uv_loop_init(&sc->loop);
	if (ret < 0) {
		free(sc);
		return peer_fail(uv_errno(ret), "libuv W3: uv_loop_init: %s", uv_strerror(ret));
	}
	for (uint32_t i = 0; i < pending && !ret; i++) {
		uv_timer_init(&sc->loop, &sc->timer[i]);
		sc->pending++;
		ret = uv_timer_start(&sc->timer[i], scale_fire, SCALE_TIMEOUT_MS, 0);
		if (ret < 0)
			ret = peer_fail(uv_errno(ret), "libuv W3: uv_timer_start: %s",
					uv_strerror(ret));
	}
	if (ret < 0) {
		scale_destroy(sc);
		return ret;
	}
	*ctx = sc;
	return 0;
}

static int scale_run(void *ctx, uint32_t batch, int64_t *arm_ns, int64_t *cancel_ns)
{
	struct scale *sc = ctx;
	int ret = 0;

	if (batch > sc->nbatch) {
		/*
		 * The batch's timer handles are made here, before the clock starts, rather than in
		 * scale_create, so that they count neither in the time to arm nor in the memory
		 * per pending deadline. A bigger batch than the last replaces them (they are
		 * inactive: one loop iteration finishes their close).
		 */
		for (uint32_t i = 0; i < sc->nbatch; i++)
			close_handle((uv_handle_t *)&sc->batch[i]);
		if (sc->nbatch)
			uv_run(&sc->loop, UV_RUN_NOWAIT);
		free(sc->batch);
		sc->batch = NULL;
		sc->nbatch = 0;
		ret = scale_batch_alloc(sc, batch);
		if (ret < 0)
			return ret;
	}

	int64_t t0 = peer_now();

	for (uint32_t i = 0; i < batch && !ret; i++)
		ret = uv_timer_start(&sc->batch[i], scale_fire, SCALE_TIMEOUT_MS, 0);
	int64_t t1 = peer_now();

	for (uint32_t i = 0; i < batch; i++)
		uv_timer_stop(&sc->batch[i]);
	int64_t t2 = peer_now();

	if (ret < 0)
		return peer_fail(uv_errno(ret), "libuv W3: uv_timer_start: %s", uv_strerror(ret));
	*arm_ns = t1 - t0;
	*cancel_ns = t2 - t1;
	return 0;
}

/* ---- W4: idle connections with gap deadlines ---------------------------------------------- */

struct idle_conn {
	uv_pipe_t pipe;
	uv_timer_t timer;    /* the gap deadline, with p->deadline only */
	bool pipe_init;
	bool opened;         /* uv_pipe_open took the fd: uv_close closes it */
	bool timer_init;
};

struct idle {
	uv_loop_t loop;
	struct peer_idle *p;
	uv_poll_t stop;
	bool stop_init;
	int error;
	uint8_t buf[64];     /* every read's buffer: the data is consumed in the read callback */
	struct idle_conn conn[];
};

static void idle_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct idle *s = h->loop->data;

	(void)suggested;
	*buf = uv_buf_init((char *)s->buf, sizeof(s->buf));
}

static void idle_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct idle_conn *c = container_of((uv_pipe_t *)stream, struct idle_conn, pipe);
	struct idle *s = stream->loop->data;

	(void)buf;
	if (nread > 0) {
		s->p->bytes += (uint64_t)nread;
		/* The connection is alive: its idle deadline starts over (repeat = the gap). */
		if (c->timer_init)
			uv_timer_again(&c->timer);
		return;
	}
	if (nread == 0)
		return;
	/* The connection is over (EOF: the sender has gone, at the end of a run) or broken:
	 * as a server would, stop reading it and drop its deadline. */
	uv_read_stop(stream);
	if (c->timer_init)
		uv_timer_stop(&c->timer);
	if (nread != UV_EOF && !s->error)
		s->error = peer_fail(uv_errno(nread), "libuv W4: a read failed: %s",
				     uv_strerror((int)nread));
}

static void idle_timeout(uv_timer_t *t)
{
	struct idle *s = t->loop->data;

	s->p->timeouts++; /* the harness fails the run on it */
}

static void idle_stop(uv_poll_t *poll, int status, int events)
{
	struct idle *s = poll->loop->data;

	(void)status;
	(void)events;
	s->p->stop(s->p); /* reads the clocks before anything is torn down */
	uv_poll_stop(poll);
	uv_stop(&s->loop);
}

/* The peer owns the connection's fd (peer.h): uv_close closes it once the pipe has it. */
static void idle_close_conn(struct idle_conn *c, int fd)
{
	if (c->pipe_init)
		close_handle((uv_handle_t *)&c->pipe);
	if (!c->opened)
		close(fd);
	if (c->timer_init)
		close_handle((uv_handle_t *)&c->timer);
}

static int idle(struct peer_idle *p)
{
	struct idle *s = calloc(1, sizeof(*s) + p->conns * sizeof(s->conn[0]));
	uint64_t gap_ms = ms_ceil(p->gap_ns);
	int stop_flags = fcntl(p->stop_fd, F_GETFL);
	int ret;

	if (!s) {
		for (uint32_t i = 0; i < p->conns; i++)
			close(p->fds[i]);
		return peer_fail(-ENOMEM, "libuv W4: %u connections", p->conns);
	}
	s->p = p;
	ret = uv_loop_init(&s->loop);
	if (ret < 0) {
		for (uint32_t i = 0; i < p->conns; i++)
			close(p->fds[i]);
		free(s);
		return peer_fail(uv_errno(ret), "libuv W4: uv_loop_init: %s", uv_strerror(ret));
	}
	s->loop.data = s;

	const char *what = "uv_pipe_open";

	for (uint32_t i = 0; i < p->conns && !ret; i++) {
		struct idle_conn *c = &s->conn[i];

		ret = uv_pipe_init(&s->loop, &c->pipe, 0);
		if (!ret) {
			c->pipe_init = true;
			ret = uv_pipe_open(&c->pipe, p->fds[i]);
		}
		if (ret < 0)
			break;
		c->opened = true;
		ret = uv_read_start((uv_stream_t *)&c->pipe, idle_alloc, idle_read);
		if (ret < 0 || !p->deadline)
			continue;
		uv_timer_init(&s->loop, &c->timer); /* cannot fail */
		c->timer_init = true;
		/* Repeating with the gap, so that uv_timer_again restarts it on each read. */
		ret = uv_timer_start(&c->timer, idle_timeout, gap_ms, gap_ms);
	}
	if (!ret) {
		what = "watching stop_fd";
		ret = uv_poll_init(&s->loop, &s->stop, p->stop_fd);
		s->stop_init = !ret;
		if (!ret)
			ret = uv_poll_start(&s->stop, UV_READABLE, idle_stop);
	}
	if (!ret) {
		/*
		 * libuv hands its watchers to epoll at the next poll, not in uv_read_start: one
		 * iteration that does not wait (nothing is readable before the sender starts)
		 * makes every read armed in the kernel before the clocks start, as it is for the
		 * other peers.
		 */
		uv_run(&s->loop, UV_RUN_NOWAIT);
		p->start(p);
		uv_run(&s->loop, UV_RUN_DEFAULT); /* until idle_stop */
	} else {
		ret = peer_fail(ret > -3000 ? ret : -EIO, "libuv W4: %s: %s", what,
				ret > -3000 ? strerror(-ret) : uv_strerror(ret));
	}

	for (uint32_t i = 0; i < p->conns; i++)
		idle_close_conn(&s->conn[i], p->fds[i]);
	if (s->stop_init)
		close_handle((uv_handle_t *)&s->stop);
	/* uv_poll_init made stop_fd nonblocking: it is the harness's, give it back as it was. */
	if (stop_flags >= 0)
		fcntl(p->stop_fd, F_SETFL, stop_flags);
	if (!loop_finish(&s->loop)) /* s is leaked: libuv still points into it */
		return ret < 0 ? ret : peer_fail(-EBUSY, "libuv W4: uv_loop_close");
	if (!ret)
		ret = s->error;
	free(s);
	return ret;
}

/* ---- W5: offloading a blocking call ------------------------------------------------------- */

/*
 * uv_queue_work on libuv's thread pool, of its default size (4, UV_THREADPOOL_SIZE unset).
 * The pool is process-wide, started by the first uv_queue_work and stopped only at exit:
 * offload_create runs one job so that its threads exist before anything is timed, as they do
 * in a program that has been serving for a while.
 */
struct offload {
	uv_loop_t loop;
	uv_work_t req;
	uint64_t items;
	uint64_t done;
	int64_t *samples;    /* NULL for the warm-up job */
	int64_t t0;
	int error;
};

static void offload_work(uv_work_t *req)
{
	(void)req; /* the no-op job, on a pool thread */
}

static int offload_submit(struct offload *o);

static void offload_done(uv_work_t *req, int status)
{
	int64_t now = peer_now();
	struct offload *o = container_of(req, struct offload, req);

	if (status < 0) {
		o->error = peer_fail(uv_errno(status), "libuv W5: a job: %s", uv_strerror(status));
		return;
	}
	if (o->samples)
		o->samples[o->done] = now - o->t0;
	/* The request is libuv's no longer once this callback runs: the next job reuses it. */
	if (++o->done < o->items)
		o->error = offload_submit(o);
}

static int offload_submit(struct offload *o)
{
	o->t0 = peer_now();
	int r = uv_queue_work(&o->loop, &o->req, offload_work, offload_done);

	return r < 0 ? peer_fail(uv_errno(r), "libuv W5: uv_queue_work: %s", uv_strerror(r)) : 0;
}

/* Runs `items` jobs one after another, each submitted from the previous one's callback. */
static int offload_jobs(struct offload *o, uint64_t items, int64_t *samples)
{
	if (!items)
		return 0;
	o->items = items;
	o->done = 0;
	o->samples = samples;
	o->error = offload_submit(o);
	if (!o->error)
		uv_run(&o->loop, UV_RUN_DEFAULT); /* until the last job's callback */
	if (!o->error && o->done != items)
		o->error = peer_fail(-EPROTO, "libuv W5: %llu of %llu jobs done",
				     (unsigned long long)o->done, (unsigned long long)items);
	return o->error;
}

static void offload_destroy(void *ctx)
{
	struct offload *o = ctx;

	if (!o || uv_loop_close(&o->loop) < 0)
		return;
	free(o);
}

static int offload_create(void **ctx)
{
	struct offload *o = calloc(1, sizeof(*o));
	int ret;

	if (!o)
		return peer_fail(-ENOMEM, "libuv W5");
	ret = uv_loop_init(&o->loop);
	if (ret < 0) {
		free(o);
		return peer_fail(uv_errno(ret), "libuv W5: uv_loop_init: %s", uv_strerror(ret));
	}
	ret = offload_jobs(o, 1, NULL);
	if (ret < 0) {
		offload_destroy(o);
		return ret;
	}
	*ctx = o;
	return 0;
}

static int offload_run(void *ctx, uint64_t items, int64_t *samples)
{
	return offload_jobs(ctx, items, samples);
}

const struct peer peer_libuv = {
	.name = "libuv",
	.how = "a uv_timer_t per connection, started when a read is expected and stopped when "
	       "data arrives (ms)",
	.flows_create = flows_create,
	.flows_run = flows_run,
	.flows_destroy = flows_destroy,
	.precision = precision,
	.scale_create = scale_create,
	.scale_run = scale_run,
	.scale_destroy = scale_destroy,
	.idle = idle,
	.offload_create = offload_create,
	.offload_run = offload_run,
	.offload_destroy = offload_destroy,
};
