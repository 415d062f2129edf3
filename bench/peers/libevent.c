/*
 * libevent 2.1 peer (peer.h), written as libevent's users put a deadline on a read: a
 * bufferevent per socket with bufferevent_set_timeouts() (its read timeout is the timeout of
 * the bufferevent's EV_PERSIST read event, kept in the event_base's min-heap), and evtimer
 * events for plain timers. One default event_base (event_base_new()) per workload, as users
 * make it: on Linux that is the epoll backend, which waits in whole milliseconds (rounded up)
 * on CLOCK_MONOTONIC_COARSE unless the base has EVENT_BASE_FLAG_PRECISE_TIMER (or the
 * environment has EVENT_PRECISE_TIMER=1: event_base_new() honours it, which is how the
 * precise variant can be measured without changing this file). libevent has no thread pool:
 * workload 5 is not applicable.
 */
#include "peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* ns, rounded up to whole microseconds (libevent's resolution) so a timer never fires early
 * because of the conversion; negative becomes zero. */
static struct timeval tv_from_ns(int64_t ns)
{
	struct timeval tv = { 0, 0 };

	if (ns > 0) {
		int64_t us = (ns + 999) / 1000;

		tv.tv_sec = (time_t)(us / 1000000);
		tv.tv_usec = (suseconds_t)(us % 1000000);
	}
	return tv;
}

static int new_base(struct event_base **out)
{
	*out = event_base_new();
	if (!*out)
		return peer_fail(-ENOMEM, "event_base_new failed");
	return 0;
}

/* ---- Workload 1: a deadline on every read ----------------------------------------------- */

/*
 * Per message, with the read timeout set: the bufferevent's read event is EV_PERSIST with a
 * 10 s timeout. When epoll reports the socket readable, libevent's event_persist_closure()
 * re-adds that timeout, due at the loop's cached time (read when epoll_wait returned) + 10 s,
 * which moves the event's entry in the min-heap (min_heap_adjust_), before
 * bufferevent_readcb() runs; that reads the socket into the input evbuffer (FIONREAD, then
 * readv) and calls our read callback. bufferevent_write() only appends to the output evbuffer
 * and adds the write event (no timeout: none is set for writes); the byte leaves when epoll
 * next reports the socket writable, and the write event is deleted once the buffer is empty.
 * Without a deadline the same happens minus the heap update.
 */

struct le_flows;

struct le_side {
	struct le_flows *ctx;
	struct bufferevent *bev;
	bool replier;
	uint8_t expect; /* the value the next received byte must have */
};

struct le_flows {
	struct event_base *base;
	uint32_t flows;
	int error;         /* first failure seen by a callback */
	uint64_t received; /* messages received since create */
	uint64_t target;   /* sum of the items asked of every flows_run call */
	int *fds;          /* [2 * flows]: the peer made the socketpairs, so it closes them */
	struct le_side side[]; /* [2 * flows]: side 2i sent first, 2i + 1 replies */
};

static void flows_error(struct le_flows *f, int err)
{
	if (!f->error)
		f->error = err;
	event_base_loopbreak(f->base);
}

static void flow_read(struct bufferevent *bev, void *arg)
{
	struct le_side *s = arg;
	struct le_flows *f = s->ctx;
	uint8_t in;

	/* One byte is in flight per flow, so this loops once; more would still be checked. */
	while (bufferevent_read(bev, &in, 1) == 1) {
		if (in != s->expect) {
			flows_error(f, peer_fail(-EBADMSG, "libevent flow: got byte %u, sent %u",
						 in, s->expect));
			return;
		}
		s->expect++;
		uint8_t out = s->replier ? in : s->expect;

		if (bufferevent_write(bev, &out, 1) < 0) {
			flows_error(f, peer_fail(-ENOMEM, "libevent flow: write failed"));
			return;
		}
		/* Enough for this run: the loop returns after this callback; the other active
		 * events stay queued and run first in the next flows_run. */
		if (++f->received == f->target)
			event_base_loopbreak(f->base);
	}
}

static void flow_event(struct bufferevent *bev, short what, void *arg)
{
	struct le_side *s = arg;
	int err;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT)
		err = peer_fail(-ETIME, "libevent flow: read timeout fired (events 0x%x)", what);
	else if (what & BEV_EVENT_EOF)
		err = peer_fail(-EPIPE, "libevent flow: peer closed (events 0x%x)", what);
	else if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();

		err = peer_fail(e > 0 ? -e : -EIO, "libevent flow: socket error: %s",
				evutil_socket_error_to_string(e));
	} else
		err = peer_fail(-EPROTO, "libevent flow: unexpected event 0x%x", what);
	flows_error(s->ctx, err);
}

static void libevent_flows_destroy(void *ctx)
{
	struct le_flows *f = ctx;

	if (!f)
		return;
	for (uint32_t i = 0; i < 2 * f->flows; i++)
		if (f->side[i].bev)
			bufferevent_free(f->side[i].bev);
	if (f->base)
		event_base_free(f->base);
	if (f->fds)
		peer_close_all(f->fds, 2 * f->flows);
	free(f->fds);
	free(f);
}

static int libevent_flows_create(void **ctx, uint32_t flows, bool deadline)
{
	const struct timeval read_timeout = tv_from_ns(PEER_FLOW_DEADLINE_NS);
	struct le_flows *f;
	int ret;

	if (!flows)
		return peer_fail(-EINVAL, "libevent flows: no flows");
	ret = peer_want_fds(2 * flows + 64);
	if (ret < 0)
		return ret;
	f = calloc(1, sizeof(*f) + 2 * (size_t)flows * sizeof(f->side[0]));
	if (!f)
		return peer_fail(-ENOMEM, "libevent flows: out of memory");
	f->flows = flows;
	f->fds = malloc(2 * (size_t)flows * sizeof(int));
	if (!f->fds) {
		free(f);
		return peer_fail(-ENOMEM, "libevent flows: out of memory");
	}
	/* Nonblocking, as libevent requires of the sockets it reads (evutil's
	 * make_socket_nonblocking would do the same). */
	ret = peer_socketpairs(f->fds, flows, true);
	if (ret < 0) {
		free(f->fds);
		free(f);
		return ret;
	}
	ret = new_base(&f->base);

	for (uint32_t i = 0; i < 2 * flows && !ret; i++) {
		struct le_side *s = &f->side[i];

		s->ctx = f;
		s->replier = i & 1;
		/* Without BEV_OPT_CLOSE_ON_FREE: the sockets are ours, closed at destroy. */
		s->bev = bufferevent_socket_new(f->base, f->fds[i], 0);
		if (!s->bev) {
			ret = peer_fail(-ENOMEM, "bufferevent_socket_new failed");
			break;
		}
		bufferevent_setcb(s->bev, flow_read, NULL, flow_event, s);
		if (deadline && bufferevent_set_timeouts(s->bev, &read_timeout, NULL) < 0)
			ret = peer_fail(-EIO, "bufferevent_set_timeouts failed");
		/* Both ends read before the first byte leaves. */
		if (!ret && bufferevent_enable(s->bev, EV_READ | EV_WRITE) < 0)
			ret = peer_fail(-EIO, "bufferevent_enable failed");
	}
	for (uint32_t i = 0; i < flows && !ret; i++) {
		uint8_t first = 0; /* expect is 0 on both sides: the first side sends 0 */

		if (bufferevent_write(f->side[2 * i].bev, &first, 1) < 0)
			ret = peer_fail(-ENOMEM, "bufferevent_write failed");
	}
	if (ret < 0) {
		libevent_flows_destroy(f);
		return ret;
	}
	*ctx = f;
	return 0;
}

static int libevent_flows_run(void *ctx, uint64_t items)
{
	struct le_flows *f = ctx;

	f->target += items;
	/* As a server runs its loop: until a callback breaks it (the target is reached). */
	while (f->received < f->target && !f->error) {
		int ret = event_base_loop(f->base, 0);

		if (ret < 0)
			return peer_fail(-EIO, "event_base_loop failed");
		if (ret == 1 && !f->error)
			return peer_fail(-EPROTO, "libevent flows: no events left in the loop");
	}
	return f->error;
}

/* ---- Workload 2: precision of deadlines that fire --------------------------------------- */

/*
 * One evtimer per deadline, armed with the time left until it is due. On the default base,
 * libevent reads CLOCK_MONOTONIC_COARSE (4 ms ticks on a HZ=250 kernel) both when it turns
 * the relative timeval into its own absolute deadline and when it decides what expired, and
 * epoll_wait sleeps in milliseconds: a timer can fire up to a tick before its due time as
 * peer_now() (CLOCK_MONOTONIC) sees it, and a few ms after. That is what libevent's users get
 * by default, so it is measured as is; EVENT_PRECISE_TIMER=1 in the environment gives the
 * precise base (CLOCK_MONOTONIC, and a timerfd in the epoll backend) for comparison.
 */

struct le_prec;

struct le_timer {
	struct le_prec *ctx;
	struct event *ev;
	int64_t due;
	uint32_t index;
	bool fired;
};

struct le_prec {
	struct peer_precision *p;
	int error;
	uint32_t fired;
	struct le_timer timer[];
};

static void prec_fired(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = peer_now(); /* first thing: the moment the user's code learns of it */
	struct le_timer *t = arg;
	struct le_prec *c = t->ctx;

	(void)fd;
	(void)what;
	if (t->fired) {
		if (!c->error)
			c->error = peer_fail(-EPROTO, "libevent timer %u fired twice", t->index);
		return;
	}
	t->fired = true;
	c->fired++;
	c->p->late[t->index] = now - t->due;
}

static int libevent_precision(struct peer_precision *p)
{
	struct event_base *base;
	struct le_prec *c;
	int ret;

	c = calloc(1, sizeof(*c) + (size_t)p->n * sizeof(c->timer[0]));
	if (!c)
		return peer_fail(-ENOMEM, "libevent precision: out of memory");
	c->p = p;
	ret = new_base(&base);
	if (ret < 0) {
		free(c);
		return ret;
	}

	int64_t base_ns = peer_now() + p->lead_ns;

	for (uint32_t i = 0; i < p->n; i++) {
		struct le_timer *t = &c->timer[i];

		t->ctx = c;
		t->index = i;
		t->due = base_ns + p->offset[i];
		/* As a user makes a timer when it needs one. */
		t->ev = evtimer_new(base, prec_fired, t);
		if (!t->ev) {
			ret = peer_fail(-ENOMEM, "evtimer_new failed");
			break;
		}
		struct timeval tv = tv_from_ns(t->due - peer_now());

		if (evtimer_add(t->ev, &tv) < 0) {
			ret = peer_fail(-EIO, "evtimer_add failed");
			break;
		}
	}
	p->armed_ns = peer_now() - base_ns;

	/* Returns 1 once no event is left: every timer has fired (they are not persistent). */
	if (!ret && event_base_dispatch(base) < 0)
		ret = peer_fail(-EIO, "event_base_dispatch failed");
	if (!ret)
		ret = c->error;
	if (!ret && c->fired != p->n)
		ret = peer_fail(-EPROTO, "libevent precision: %u of %u timers fired", c->fired,
				p->n);

	for (uint32_t i = 0; i < p->n; i++)
		if (c->timer[i].ev)
			event_free(c->timer[i].ev);
	event_base_free(base);
	free(c);
	return ret;
}

/* ---- Workload 3: cost of arming and cancelling with many pending ------------------------ */

/*
 * evtimer_add / evtimer_del on events made beforehand with evtimer_new (as a user holds one
 * per connection), so the phases time the timer operations alone: an insertion into the
 * base's min-heap (O(log n), though a timeout later than all others stays at the bottom) and
 * its removal. Every timeout here has the same duration, the case libevent's "common
 * timeouts" (event_base_init_common_timeout) exist for: one heap entry per duration and a
 * FIFO list behind it; it is not used here because it is an opt-in that a plain
 * evtimer_add(ev, &tv) does not take.
 */

struct le_scale {
	struct event_base *base;
	uint32_t pending;
	uint32_t extra_count;
	struct event **ev;    /* [pending] */
	struct event **extra; /* [extra_count]: the batch armed and cancelled by scale_run */
};

static void scale_never(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg; /* an hour out: never reached in a run */
}

static void libevent_scale_destroy(void *ctx)
{
	struct le_scale *s = ctx;

	if (!s)
		return;
	for (uint32_t i = 0; s->ev && i < s->pending; i++)
		if (s->ev[i])
			event_free(s->ev[i]);
	for (uint32_t i = 0; i < s->extra_count; i++)
		if (s->extra[i])
			event_free(s->extra[i]);
	if (s->base)
		event_base_free(s->base);
	free(s->ev);
	free(s->extra);
	free(s);
}

static int libevent_scale_create(void **ctx, uint32_t pending)
{
	const struct timeval tv = tv_from_ns(PEER_SCALE_TIMEOUT_NS);
	struct le_scale *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return peer_fail(-ENOMEM, "libevent scale: out of memory");
	s->pending = pending;
	s->ev = calloc(pending ? pending : 1, sizeof(s->ev[0]));
	if (!s->ev) {
		free(s);
		return peer_fail(-ENOMEM, "libevent scale: out of memory");
	}
	ret = new_base(&s->base);
	for (uint32_t i = 0; i < pending && !ret; i++) {
		s->ev[i] = evtimer_new(s->base, scale_never, NULL);
		if (!s->ev[i])
			ret = peer_fail(-ENOMEM, "evtimer_new failed");
		else if (evtimer_add(s->ev[i], &tv) < 0)
			ret = peer_fail(-EIO, "evtimer_add failed");
	}
	if (ret < 0) {
		libevent_scale_destroy(s);
		return ret;
	}
	*ctx = s;
	return 0;
}

static int libevent_scale_run(void *ctx, uint32_t batch, int64_t *arm_ns, int64_t *cancel_ns)
{
	const struct timeval tv = tv_from_ns(PEER_SCALE_TIMEOUT_NS);
	struct le_scale *s = ctx;

	/* The batch's events are made once, outside the timed phases. */
	if (batch > s->extra_count) {
		struct event **extra = realloc(s->extra, batch * sizeof(extra[0]));

		if (!extra)
			return peer_fail(-ENOMEM, "libevent scale: out of memory");
		s->extra = extra;
		for (; s->extra_count < batch; s->extra_count++) {
			extra[s->extra_count] = evtimer_new(s->base, scale_never, NULL);
			if (!extra[s->extra_count])
				return peer_fail(-ENOMEM, "evtimer_new failed");
		}
	}

	int64_t t0 = peer_now();

	for (uint32_t i = 0; i < batch; i++)
		if (evtimer_add(s->extra[i], &tv) < 0)
			return peer_fail(-EIO, "evtimer_add failed");
	int64_t t1 = peer_now();

	for (uint32_t i = 0; i < batch; i++)
		if (evtimer_del(s->extra[i]) < 0)
			return peer_fail(-EIO, "evtimer_del failed");
	int64_t t2 = peer_now();

	*arm_ns = t1 - t0;
	*cancel_ns = t2 - t1;
	return 0;
}

/* ---- Workload 4: idle connections with gap deadlines ------------------------------------ */

/*
 * A bufferevent per connection, read timeout gap_ns when there is a deadline: as in workload
 * 1, every read that delivers data re-arms it (an idle timeout, which is what libevent's read
 * timeout is). The harness owns the sockets, so the bufferevents do not close them
 * (no BEV_OPT_CLOSE_ON_FREE, hence no dup()). A plain event on stop_fd ends the loop.
 */

struct le_idle {
	struct peer_idle *p;
	struct event_base *base;
	int error;
	struct bufferevent **bev; /* [conns] */
};

static void idle_read(struct bufferevent *bev, void *arg)
{
	struct le_idle *c = arg;
	uint8_t buf[64];
	size_t n;

	while ((n = bufferevent_read(bev, buf, sizeof(buf))) > 0)
		c->p->bytes += n;
}

static void idle_event(struct bufferevent *bev, short what, void *arg)
{
	struct le_idle *c = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		/* Reading is now disabled on that connection (libevent does that on a timeout),
		 * as a server would drop it; the harness fails the run on any timeout. */
		c->p->timeouts++;
		return;
	}
	if (!c->error) {
		int e = EVUTIL_SOCKET_ERROR();

		c->error = (what & BEV_EVENT_ERROR) ?
			peer_fail(e > 0 ? -e : -EIO, "libevent idle: socket error: %s",
				  evutil_socket_error_to_string(e)) :
			peer_fail(-EPIPE, "libevent idle: connection closed (events 0x%x)", what);
	}
	/* The loop runs on until stop_fd, so that start() is always paired with stop(). */
}

static void idle_stop(evutil_socket_t fd, short what, void *arg)
{
	struct le_idle *c = arg;

	(void)fd;
	(void)what;
	c->p->stop(c->p); /* read the clocks before anything is torn down */
	event_base_loopbreak(c->base);
}

static int libevent_idle(struct peer_idle *p)
{
	const struct timeval gap = tv_from_ns(p->gap_ns);
	struct le_idle c = { .p = p };
	struct event *stop = NULL;
	int ret;

	c.bev = calloc(p->conns ? p->conns : 1, sizeof(c.bev[0]));
	ret = c.bev ? new_base(&c.base) : peer_fail(-ENOMEM, "libevent idle: out of memory");

	for (uint32_t i = 0; i < p->conns && !ret; i++) {
		/* As a server does with an accepted socket before handing it to libevent. */
		if (evutil_make_socket_nonblocking(p->fds[i]) < 0) {
			ret = peer_fail(-errno, "libevent idle: cannot make fd %d nonblocking",
					p->fds[i]);
			break;
		}
		c.bev[i] = bufferevent_socket_new(c.base, p->fds[i], 0);
		if (!c.bev[i]) {
			ret = peer_fail(-ENOMEM, "bufferevent_socket_new failed");
			break;
		}
		bufferevent_setcb(c.bev[i], idle_read, NULL, idle_event, &c);
		if (p->deadline && bufferevent_set_timeouts(c.bev[i], &gap, NULL) < 0)
			ret = peer_fail(-EIO, "bufferevent_set_timeouts failed");
		else if (bufferevent_enable(c.bev[i], EV_READ) < 0)
			ret = peer_fail(-EIO, "bufferevent_enable failed");
	}
	if (!ret) {
		stop = event_new(c.base, p->stop_fd, EV_READ, idle_stop, &c);
		if (!stop)
			ret = peer_fail(-ENOMEM, "event_new failed");
		else if (event_add(stop, NULL) < 0)
			ret = peer_fail(-EIO, "event_add failed");
	}
	if (!ret) {
		p->start(p);
		if (event_base_dispatch(c.base) < 0)
			ret = peer_fail(-EIO, "event_base_dispatch failed");
		else
			ret = c.error;
	}

	if (stop)
		event_free(stop);
	for (uint32_t i = 0; i < p->conns; i++) {
		if (c.bev && c.bev[i])
			bufferevent_free(c.bev[i]);
		close(p->fds[i]); /* the peer owns them (peer.h) */
	}
	if (c.base)
		event_base_free(c.base);
	free(c.bev);
	return ret;
}

const struct peer peer_libevent = {
	.name = "libevent",
	.how = "bufferevent read timeout (bufferevent_set_timeouts): the EV_PERSIST read event's "
	       "timeout, moved in the base's min-heap on every read",
	.flows_create = libevent_flows_create,
	.flows_run = libevent_flows_run,
	.flows_destroy = libevent_flows_destroy,
	.precision = libevent_precision,
	.scale_create = libevent_scale_create,
	.scale_run = libevent_scale_run,
	.scale_destroy = libevent_scale_destroy,
	.idle = libevent_idle,
};
