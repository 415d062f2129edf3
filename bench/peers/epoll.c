/*
 * The hand-written peer: what a skilled C programmer writes without a library. epoll for
 * readiness, read()/write() on nonblocking sockets, and the deadlines in a timer structure of
 * its own, an indexed binary min-heap, with the loop sleeping in epoll_pwait2 until the
 * earliest one (a nanosecond timeout; epoll_wait with the milliseconds rounded up where the
 * kernel lacks epoll_pwait2).
 *
 * Level-triggered, not edge-triggered: every workload here reads what one readiness promises
 * (one byte in W1, up to 64 bytes in W4) and goes back to epoll. Edge-triggered would oblige
 * each handler to read until EAGAIN, one extra read() per message, to learn what
 * level-triggered epoll already knows (it re-polls the socket before reporting it again),
 * and registering each socket once, EPOLLIN only, costs no epoll_ctl per message either way.
 *
 * The clock: a deadline is peer_now() + timeout read when the read is armed (as tmo's side
 * computes one per start), and the loop reads the clock once more before it sleeps, to fail
 * on an expired deadline and to compute the timeout. Without deadlines there is no heap work
 * and no clock read at all.
 */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* ---- The deadline heap --------------------------------------------------------------------- */

/*
 * A binary min-heap of deadlines, indexed: each deadline knows its slot, so removing or
 * re-keying one is O(log n) with no search, and nothing is allocated per operation (the slots
 * are preallocated for every deadline the workload can have at once). A slot holds the key
 * next to the pointer, so a sift compares keys in one array instead of chasing a pointer per
 * comparison (as libev's heap caches "at" in its slots): this matters at a million deadlines.
 */
#define HEAP_NONE UINT32_MAX

struct dl {
	uint32_t idx; /* its slot in the heap, HEAP_NONE when not armed */
};

struct slot {
	int64_t when;
	struct dl *dl;
};

struct heap {
	struct slot *s;
	uint32_t n;
	uint32_t cap;
};

static int heap_init(struct heap *h, uint32_t cap)
{
	h->s = malloc((cap ? cap : 1) * sizeof(*h->s));
	h->n = 0;
	h->cap = cap;
	return h->s ? 0 : -ENOMEM;
}

static void heap_put(struct heap *h, uint32_t i, struct slot v)
{
	h->s[i] = v;
	v.dl->idx = i;
}

/* Places v at slot i or above, moving larger parents down into the hole. */
static void sift_up(struct heap *h, uint32_t i, struct slot v)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (h->s[parent].when <= v.when)
			break;
		heap_put(h, i, h->s[parent]);
		i = parent;
	}
	heap_put(h, i, v);
}

/* Places v at slot i or below, moving smaller children up into the hole. */
static void sift_down(struct heap *h, uint32_t i, struct slot v)
{
	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->s[c + 1].when < h->s[c].when)
			c++;
		if (v.when <= h->s[c].when)
			break;
		heap_put(h, i, h->s[c]);
		i = c;
	}
	heap_put(h, i, v);
}

/* Puts v into slot i, whose old content is gone, and restores the heap around it. */
static void heap_fix(struct heap *h, uint32_t i, struct slot v)
{
	if (i > 0 && h->s[(i - 1) / 2].when > v.when)
		sift_up(h, i, v);
	else
		sift_down(h, i, v);
}

/* The caller sized the heap for every deadline it arms: a full heap is a bug, not an error. */
static void heap_push(struct heap *h, struct dl *d, int64_t when)
{
	sift_up(h, h->n++, (struct slot){ when, d });
}

static void heap_remove(struct heap *h, struct dl *d)
{
	uint32_t i = d->idx;
	struct slot last = h->s[--h->n];

	d->idx = HEAP_NONE;
	if (i != h->n)
		heap_fix(h, i, last);
}

static void heap_update(struct heap *h, struct dl *d, int64_t when)
{
	heap_fix(h, d->idx, (struct slot){ when, d });
}

static int64_t heap_min(const struct heap *h)
{
	return h->n ? h->s[0].when : INT64_MAX;
}

static struct dl *heap_pop(struct heap *h)
{
	struct dl *d = h->s[0].dl;

	heap_remove(h, d);
	return d;
}

/* ---- The wait ------------------------------------------------------------------------------ */

/*
 * Waits until an event or until `deadline` (INT64_MAX: no timeout), given the time `now`.
 * Returns the number of events, 0 on timeout or signal, or -errno.
 */
static int wait_until(int epfd, struct epoll_event *ev, int max, int64_t deadline, int64_t now)
{
	static bool no_pwait2;
	struct timespec ts, *tsp = NULL;
	int n;

	if (deadline != INT64_MAX) {
		int64_t left = deadline > now ? deadline - now : 0;

		ts.tv_sec = left / PEER_NSEC_PER_SEC;
		ts.tv_nsec = left % PEER_NSEC_PER_SEC;
		tsp = &ts;
	}
	if (!no_pwait2) {
		n = epoll_pwait2(epfd, ev, max, tsp, NULL);
		if (n >= 0 || errno != ENOSYS)
			goto out;
		no_pwait2 = true;
	}
	/* Round up: waking a millisecond late is the price, waking early would spin. */
	int ms = -1;

	if (tsp) {
		int64_t ms64 = ((int64_t)ts.tv_sec * PEER_NSEC_PER_SEC + ts.tv_nsec +
				PEER_NSEC_PER_MSEC - 1) / PEER_NSEC_PER_MSEC;
		ms = ms64 > INT_MAX ? INT_MAX : (int)ms64;
	}
	n = epoll_wait(epfd, ev, max, ms);
out:
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n;
}

static int epoll_add(int epfd, int fd, void *ptr)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ptr };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* ---- Workload 1: a deadline on every read -------------------------------------------------- */

struct side {
	struct dl dl;      /* the pending read's deadline */
	int fd;
	bool replier;      /* echoes what it gets; the other end sends a counter */
	uint8_t expect;    /* the value the next byte must have */
};

struct flows {
	int epfd;
	bool deadline;
	uint32_t flows;
	uint64_t received; /* messages received since create */
	uint64_t target;   /* sum of the items asked of every flows_run call */
	struct heap heap;
	struct epoll_event *ev;
	int maxev;
	struct side side[]; /* [2 * flows]: side[2i] sends first, side[2i + 1] replies */
};

static void flows_destroy(void *ctx)
{
	struct flows *f = ctx;

	if (!f)
		return;
	for (uint32_t i = 0; i < 2 * f->flows; i++)
		if (f->side[i].fd >= 0)
			close(f->side[i].fd);
	if (f->epfd >= 0)
		close(f->epfd);
	free(f->heap.s);
	free(f->ev);
	free(f);
}

static int flows_create(void **ctx, uint32_t nflows, bool deadline)
{
	if (!nflows)
		return peer_fail(-EINVAL, "no flows");
	int ret = peer_want_fds(2 * nflows + 64);
	if (ret < 0)
		return ret;
	struct flows *f = calloc(1, sizeof(*f) + 2 * (size_t)nflows * sizeof(f->side[0]));
	if (!f)
		return peer_fail(-ENOMEM, "out of memory for %u flows", nflows);
	f->flows = nflows;
	f->deadline = deadline;
	for (uint32_t i = 0; i < 2 * nflows; i++) {
		f->side[i].fd = -1;
		f->side[i].dl.idx = HEAP_NONE;
		f->side[i].replier = i & 1;
	}
	/* At most one end of a flow is readable at a time (one byte in flight per flow). */
	f->maxev = nflows < 1024 ? (int)nflows : 1024;
	f->ev = malloc((size_t)f->maxev * sizeof(*f->ev));
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!f->ev || heap_init(&f->heap, deadline ? 2 * nflows : 0) < 0) {
		flows_destroy(f);
		return peer_fail(-ENOMEM, "out of memory for %u flows", nflows);
	}
	if (f->epfd < 0) {
		ret = -errno;
		flows_destroy(f);
		return peer_fail(ret, "epoll_create1: %s", strerror(-ret));
	}

	for (uint32_t i = 0; i < nflows; i++) {
		int fds[2];

		ret = peer_socketpairs(fds, 1, true);
		if (ret < 0)
			break;
		f->side[2 * i].fd = fds[0];
		f->side[2 * i + 1].fd = fds[1];
		/* Both reads are armed, each with its deadline, before the first byte leaves. */
		for (int j = 1; j >= 0 && !ret; j--) {
			struct side *s = &f->side[2 * i + j];

			ret = epoll_add(f->epfd, s->fd, s);
			if (!ret && deadline)
				heap_push(&f->heap, &s->dl, peer_now() + PEER_FLOW_DEADLINE_NS);
		}
		if (ret < 0) {
			peer_fail(ret, "epoll_ctl ADD: %s", strerror(-ret));
			break;
		}
		uint8_t zero = 0;
		if (write(fds[0], &zero, 1) != 1) {
			ret = peer_fail(-errno, "first write: %s", strerror(errno));
			break;
		}
	}
	if (ret < 0) {
		flows_destroy(f);
		return ret;
	}
	*ctx = f;
	return 0;
}

/* The byte is in: check it, re-arm the read (its deadline re-keyed), and answer. */
static int flow_readable(struct flows *f, struct side *s)
{
	uint8_t b;
	ssize_t r = read(s->fd, &b, 1);

	if (r != 1) {
		if (r < 0 && errno == EAGAIN)
			return 0; /* nothing after all: level-triggered epoll reports it again */
		if (r == 0)
			return peer_fail(-EPROTO, "flow closed by its other end");
		return peer_fail(-errno, "read: %s", strerror(errno));
	}
	if (b != s->expect)
		return peer_fail(-EBADMSG, "received %u, expected %u", b, s->expect);
	s->expect++;
	f->received++;

	/*
	 * The read stays armed (registered once, level-triggered); its deadline moves to 10 s
	 * from now. Re-keying in place is one sift; removing then pushing would be a sift to
	 * fill the hole plus the push. The new key is the largest in the heap (every deadline
	 * has the same length), so the sift runs down to a leaf: O(log n) per message. (Storing
	 * the new deadline only, and re-keying when the stale one reaches the top, would make
	 * this O(1); the heap is kept exact here, as libuv's and libevent's are on a reset.)
	 */
	if (f->deadline)
		heap_update(&f->heap, &s->dl, peer_now() + PEER_FLOW_DEADLINE_NS);

	uint8_t out = s->replier ? b : s->expect;
	ssize_t w = write(s->fd, &out, 1);

	/* One byte in flight per flow: the socket buffer cannot be full. */
	if (w != 1)
		return peer_fail(w < 0 ? -errno : -EIO, "write: %s",
				 w < 0 ? strerror(errno) : "short");
	return 0;
}

static int flows_run(void *ctx, uint64_t items)
{
	struct flows *f = ctx;

	f->target += items;
	while (f->received < f->target) {
		int64_t deadline = INT64_MAX, now = 0;

		if (f->deadline) {
			now = peer_now();
			deadline = heap_min(&f->heap);
			if (deadline <= now)
				return peer_fail(-ETIME, "a read deadline expired");
		}
		int n = wait_until(f->epfd, f->ev, f->maxev, deadline, now);

		if (n < 0)
			return peer_fail(n, "epoll_pwait2: %s", strerror(-n));
		for (int i = 0; i < n; i++) {
			int ret = flow_readable(f, f->ev[i].data.ptr);

			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* ---- Workload 2: precision of deadlines that fire ------------------------------------------ */

static int precision(struct peer_precision *p)
{
	struct dl *t = malloc((p->n ? p->n : 1) * sizeof(*t));
	struct epoll_event ev;
	struct heap heap;
	int ret = 0;

	if (!t || heap_init(&heap, p->n) < 0) {
		free(t);
		return peer_fail(-ENOMEM, "out of memory for %u timers", p->n);
	}
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		ret = peer_fail(-errno, "epoll_create1: %s", strerror(errno));
		goto out;
	}

	int64_t base = peer_now() + p->lead_ns;

	for (uint32_t i = 0; i < p->n; i++)
		heap_push(&heap, &t[i], base + p->offset[i]);
	p->armed_ns = peer_now() - base;

	uint32_t fired = 0;

	while (heap.n) {
		int64_t now = peer_now();

		if (heap_min(&heap) <= now) {
			/* Every expired one, earliest first; then the clock again, as callbacks
			 * take time and the next deadline may have come meanwhile. */
			while (heap_min(&heap) <= now) {
				struct dl *d = heap_pop(&heap);
				uint32_t i = (uint32_t)(d - t);

				/* The callback: the user's code learns of it now. */
				p->late[i] = peer_now() - (base + p->offset[i]);
				fired++;
			}
			continue;
		}
		int n = wait_until(epfd, &ev, 1, heap_min(&heap), now);

		if (n < 0) {
			ret = peer_fail(n, "epoll_pwait2: %s", strerror(-n));
			goto out;
		}
	}
	if (fired != p->n)
		ret = peer_fail(-EPROTO, "%u of %u timers fired", fired, p->n);
out:
	if (epfd >= 0)
		close(epfd);
	free(heap.s);
	free(t);
	return ret;
}

/* ---- Workload 3: cost of arming and cancelling with many pending --------------------------- */

struct scale {
	struct heap heap;
	struct dl *pending; /* [npending], armed at create */
	struct dl *extra;   /* [nextra], what scale_run arms and cancels */
	uint32_t npending;
	uint32_t nextra;
};

/* The batch the harness runs: room for it is made at create, with the rest. */
#define SCALE_BATCH_HINT 1000

static void scale_destroy(void *ctx)
{
	struct scale *s = ctx;

	if (!s)
		return;
	free(s->heap.s);
	free(s->pending);
	free(s->extra);
	free(s);
}

/* Room for `batch` more deadlines, made while none of the extra ones is armed. */
static int scale_reserve(struct scale *s, uint32_t batch)
{
	if (batch <= s->nextra)
		return 0;
	struct dl *extra = realloc(s->extra, batch * sizeof(*extra));
	if (!extra)
		return -ENOMEM;
	s->extra = extra;
	s->nextra = batch;
	struct slot *slots = realloc(s->heap.s, ((size_t)s->npending + batch) * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	s->heap.s = slots;
	s->heap.cap = s->npending + batch;
	return 0;
}

static int scale_create(void **ctx, uint32_t pending)
{
	struct scale *s = calloc(1, sizeof(*s));

	if (!s)
		return peer_fail(-ENOMEM, "out of memory");
	s->npending = pending;
	s->pending = malloc((pending ? pending : 1) * sizeof(*s->pending));
	if (!s->pending || heap_init(&s->heap, pending) < 0 ||
	    scale_reserve(s, SCALE_BATCH_HINT) < 0) {
		scale_destroy(s);
		return peer_fail(-ENOMEM, "out of memory for %u deadlines", pending);
	}
	for (uint32_t i = 0; i < pending; i++)
		heap_push(&s->heap, &s->pending[i], peer_now() + PEER_SCALE_TIMEOUT_NS);
	*ctx = s;
	return 0;
}

static int scale_run(void *ctx, uint32_t batch, int64_t *arm_ns, int64_t *cancel_ns)
{
	struct scale *s = ctx;

	if (scale_reserve(s, batch) < 0)
		return peer_fail(-ENOMEM, "out of memory for a batch of %u", batch);

	int64_t t0 = peer_now();

	for (uint32_t i = 0; i < batch; i++)
		heap_push(&s->heap, &s->extra[i], peer_now() + PEER_SCALE_TIMEOUT_NS);
	int64_t t1 = peer_now();

	for (uint32_t i = 0; i < batch; i++)
		heap_remove(&s->heap, &s->extra[i]);
	int64_t t2 = peer_now();

	*arm_ns = t1 - t0;
	*cancel_ns = t2 - t1;
	if (s->heap.n != s->npending)
		return peer_fail(-EPROTO, "%u deadlines pending, expected %u", s->heap.n,
				 s->npending);
	return 0;
}

/* ---- Workload 4: idle connections with gap deadlines --------------------------------------- */

struct conn {
	struct dl dl; /* the idle deadline */
	int fd;
};

#define IDLE_MAXEV 256

static int idle(struct peer_idle *p)
{
	struct conn *c = calloc(p->conns ? p->conns : 1, sizeof(*c));
	struct epoll_event ev[IDLE_MAXEV];
	struct heap heap = { 0 };
	int epfd = -1, ret = 0;

	if (!c || heap_init(&heap, p->deadline ? p->conns : 0) < 0) {
		ret = peer_fail(-ENOMEM, "out of memory for %u connections", p->conns);
		goto out;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		ret = peer_fail(-errno, "epoll_create1: %s", strerror(errno));
		goto out;
	}
	/* The stop fd's event carries NULL: no connection. */
	ret = epoll_add(epfd, p->stop_fd, NULL);
	for (uint32_t i = 0; i < p->conns && !ret; i++) {
		int fd = p->fds[i], fl = fcntl(fd, F_GETFL);

		c[i].fd = fd;
		c[i].dl.idx = HEAP_NONE;
		if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
			ret = peer_fail(-errno, "fcntl O_NONBLOCK: %s", strerror(errno));
			goto out;
		}
		ret = epoll_add(epfd, c[i].fd, &c[i]);
		if (!ret && p->deadline)
			heap_push(&heap, &c[i].dl, peer_now() + p->gap_ns);
	}
	if (ret < 0) {
		peer_fail(ret, "epoll_ctl ADD: %s", strerror(-ret));
		goto out;
	}

	p->start(p);
	for (;;) {
		int64_t deadline = INT64_MAX, now = 0;

		if (p->deadline) {
			now = peer_now();
			/* Must not happen: counted (the harness fails the run), and the connection
			 * gets a new gap, as if the server had dropped it and a new one came. */
			while (heap_min(&heap) <= now) {
				p->timeouts++;
				heap_update(&heap, heap.s[0].dl, now + p->gap_ns);
			}
			deadline = heap_min(&heap);
		}
		int n = wait_until(epfd, ev, IDLE_MAXEV, deadline, now);

		if (n < 0) {
			ret = peer_fail(n, "epoll_pwait2: %s", strerror(-n));
			p->stop(p);
			goto out;
		}
		for (int i = 0; i < n; i++) {
			struct conn *k = ev[i].data.ptr;
			char buf[64];

			if (!k) {
				p->stop(p);
				goto out;
			}
			ssize_t r = read(k->fd, buf, sizeof(buf));

			if (r > 0) {
				p->bytes += (uint64_t)r;
				if (p->deadline)
					heap_update(&heap, &k->dl, peer_now() + p->gap_ns);
			} else if (r == 0) {
				/* The sender closed it: a server drops the connection. */
				epoll_ctl(epfd, EPOLL_CTL_DEL, k->fd, NULL);
				if (k->dl.idx != HEAP_NONE)
					heap_remove(&heap, &k->dl);
			} else if (errno != EAGAIN) {
				ret = peer_fail(-errno, "read: %s", strerror(errno));
				p->stop(p);
				goto out;
			}
		}
	}
out:
	if (epfd >= 0)
		close(epfd);
	for (uint32_t i = 0; i < p->conns; i++)
		close(p->fds[i]); /* the peer owns them (peer.h) */
	free(heap.s);
	free(c);
	return ret;
}

const struct peer peer_epoll = {
	.name = "epoll",
	.how = "level-triggered epoll_pwait2 loop; read deadlines in its own indexed binary "
	       "min-heap (re-keyed per read)",
	.flows_create = flows_create,
	.flows_run = flows_run,
	.flows_destroy = flows_destroy,
	.precision = precision,
	.scale_create = scale_create,
	.scale_run = scale_run,
	.scale_destroy = scale_destroy,
	.idle = idle,
};
