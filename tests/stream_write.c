/*
 * stream-write: the stream writer (stream.h). A large buffer arrives intact at a peer that reads
 * it; a peer that stops reading is cut off by the gap limit, measured from the last progress
 * (never early, exactly); a slow but steady peer is not, but the rate floor, the overall
 * deadline and an enclosing scope cut it off, each on time and named by its enum tmo_limit;
 * cancel; a closed peer gives -EPIPE without SIGPIPE; bad input; len 0; totals; a write from
 * inside the callback. After every write that ended early, the bytes the peer can read are
 * exactly the `written` count (nothing lost, nothing extra) and equal the buffer's prefix.
 *
 * One "second" of the scenarios is U = 200 ms. The peer is a thread reading the other end
 * (nonblocking, each read draining all that is queued, so that the writer is woken), either
 * continuously or once every `period`, until a stop time. Socket and pipe buffers are shrunk
 * (8 KB and 4 KB) so that a peer that stops reading blocks the writer within microseconds.
 *
 * "Never early" for the gap limit: the writer makes progress after each of the peer's reads
 * (each read empties the buffer while the writer has bytes left), so its last progress comes
 * after the moment the peer's last read started; the cut must come at least U after that.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

#define MS TMO_NSEC_PER_MSEC
#define U (200 * MS)
#define MB ((size_t)1 << 20)

/* ---- fixture ------------------------------------------------------------------------------ */

/* A writer and what its callback saw. */
struct wtest {
	struct tmo_writer w;
	int calls;
	int32_t res;
	size_t written;
	enum tmo_limit limit;
	int64_t seen_at;
	bool busy_inside;       /* tmo_writer_busy() inside the callback */
	uint64_t total_inside;  /* tmo_writer_total() inside the callback */
};

static void on_written(struct tmo_writer *w, int32_t res, size_t written, enum tmo_limit limit)
{
	struct wtest *t = (struct wtest *)w;

	t->calls++;
	t->res = res;
	t->written = written;
	t->limit = limit;
	t->seen_at = tmo_now();
	t->busy_inside = tmo_writer_busy(w);
	t->total_inside = tmo_writer_total(w);
}

/* The writer's end and the peer's end of a socketpair or a pipe. */
struct chan {
	int w, r;
	bool sock;
};

/* chan_open's kinds: a bool `sock` converts to the first two. */
enum { CHAN_PIPE = 0, CHAN_SOCK = 1, CHAN_FIFO = 2 };

static void chan_open(struct chan *c, int kind, bool small)
{
	int fds[2];
	bool sock = kind == CHAN_SOCK;

	c->sock = sock;
	if (sock) {
		test_socketpair(fds);
		c->w = fds[0];
		c->r = fds[1];
		if (small) {
			int v = 4096;
			for (int i = 0; i < 2; i++) {
				assert_int_equal(setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)), 0);
				assert_int_equal(setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)), 0);
			}
		}
	} else {
		if (kind == CHAN_FIFO)
			test_fifo(fds);
		else
			test_pipe(fds);
		c->r = fds[0];
		c->w = fds[1];
		if (small)
			assert_int_equal(fcntl(c->w, F_SETPIPE_SZ, 4096), 4096);
	}
	/* The peer reads without blocking (poll first), so that its thread can be told to quit. */
	assert_int_equal(fcntl(c->r, F_SETFL, fcntl(c->r, F_GETFL) | O_NONBLOCK), 0);
}

static void chan_close(struct chan *c)
{
	if (c->w >= 0)
		close(c->w);
	if (c->r >= 0)
		close(c->r);
	c->w = c->r = -1;
}

/* A pseudo-random buffer: a shifted or duplicated chunk would not compare equal. */
static uint8_t *pattern(size_t len, uint32_t seed)
{
	uint8_t *p = malloc(len);
	uint32_t x = seed * 2654435761u | 1;

	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)(x >> 24);
	}
	return p;
}

static void assert_same(const uint8_t *got, const uint8_t *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i])
			fail_msg("byte %zu of %zu differs: 0x%02x, want 0x%02x", i, n, got[i], want[i]);
}

/* The peer: a thread reading the other end. */
struct peer {
	int fd;
	uint8_t *buf;          /* received bytes go here, in order */
	size_t cap;
	int64_t period;        /* 0: read continuously; else one read per period */
	int64_t first_at;      /* first periodic read */
	int64_t fast_at;       /* from here on, read continuously */
	int64_t stop_at;       /* no read starts at or after this */
	size_t close_after;    /* end the peer's side once it got this many bytes (0: never) */
	bool shut;             /* ... with shutdown(SHUT_RD) instead of close() */
	/* results, read after the join */
	size_t got;
	int reads;             /* reads that returned bytes */
	int64_t last_read_at;  /* when the last read that returned bytes started */
	int64_t max_interval;  /* longest time between two reads that returned bytes */
	int err;
	bool closed;
	_Atomic int64_t quit_at; /* the thread ends at this time at the latest */
	pthread_t thread;
};

static void sleep_until(int64_t when)
{
	struct timespec ts = { .tv_sec = when / TMO_NSEC_PER_SEC, .tv_nsec = when % TMO_NSEC_PER_SEC };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	int64_t next = p->first_at;

	while (p->got < p->cap) {
		int64_t now = tmo_now();
		if (now >= p->stop_at || now >= atomic_load(&p->quit_at))
			break;
		if (p->period && now < p->fast_at) {
			if (now < next) {
				int64_t until = next < p->stop_at ? next : p->stop_at;
				sleep_until(until < now + 20 * MS ? until : now + 20 * MS);
				continue;
			}
			next += p->period;
			if (next <= now)
				next = now + p->period;
		} else {
			struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
			poll(&pfd, 1, 10);
		}
		int64_t t = tmo_now();
		if (t >= p->stop_at)
			break;
		ssize_t n = read(p->fd, p->buf + p->got, p->cap - p->got);
		if (n > 0) {
			if (p->reads && t - p->last_read_at > p->max_interval)
				p->max_interval = t - p->last_read_at;
			p->got += (size_t)n;
			p->reads++;
			p->last_read_at = t;
			if (p->close_after && p->got >= p->close_after) {
				if (p->shut) {
					shutdown(p->fd, SHUT_RD);
				} else {
					close(p->fd);
					p->closed = true;
				}
				break;
			}
		} else if (n == 0) {
			break;
		} else if (errno != EAGAIN && errno != EINTR) {
			p->err = errno;
			break;
		}
	}
	return NULL;
}

/* A peer reading `fd` into buf; adjust the timing fields before peer_run. */
static void peer_init(struct peer *p, int fd, uint8_t *buf, size_t cap)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->buf = buf;
	p->cap = cap;
	p->first_at = tmo_now();
	p->fast_at = TMO_NEVER_NS;
	p->stop_at = TMO_NEVER_NS;
	atomic_init(&p->quit_at, TMO_NEVER_NS);
}

static void peer_run(struct peer *p)
{
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

/* Ends the peer now (it may have stopped by itself already). */
static void peer_join(struct peer *p)
{
	atomic_store(&p->quit_at, INT64_MIN);
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	assert_int_equal(p->err, 0);
}

/* Lets the peer read all it expects (cap bytes), for at most 5 s more. */
static void peer_finish(struct peer *p)
{
	atomic_store(&p->quit_at, tmo_now() + 5 * TMO_NSEC_PER_SEC);
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	assert_int_equal(p->err, 0);
}

/* Reads what is left in fd (nonblocking) into buf after `off`; returns the count, bytes past
 * cap included (counted, not kept). */
static size_t drain(int fd, uint8_t *buf, size_t off, size_t cap)
{
	static uint8_t scratch[65536];
	size_t n = 0;

	for (;;) {
		ssize_t r;
		if (off + n < cap)
			r = read(fd, buf + off + n, cap - off - n);
		else
			r = read(fd, scratch, sizeof(scratch));
		if (r > 0) {
			n += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r == 0 || errno == EAGAIN);
		return n;
	}
}

/*
 * After a write that ended early: the peer can read exactly `written` bytes in all (what its
 * thread got and what is left), they are the buffer's prefix, and nothing more comes later.
 */
static void assert_peer_got_exactly(struct peer *p, const struct wtest *t, const uint8_t *src)
{
	size_t left = drain(p->fd, p->buf, p->got, p->cap);
	if (p->got + left != t->written)
		fail_msg("the peer can read %zu bytes (%zu read, %zu left), the writer says %zu",
			 p->got + left, p->got, left, t->written);
	assert_same(p->buf, src, t->written);
	test_sleep_ms(50);
	assert_int_equal(drain(p->fd, p->buf, p->cap, p->cap), 0);
}

/* assert_on_time with `slack` more lateness allowed (never early is still exact). */
static void assert_on_time_within(int64_t seen, int64_t deadline, int64_t slack)
{
	if (seen < deadline)
		fail_msg("seen %.3f ms BEFORE the deadline", (double)(deadline - seen) / 1e6);
	if (seen > deadline + slack + test_tolerance_ns())
		fail_msg("seen %.3f ms after the deadline (allowed %.0f ms)",
			 (double)(seen - deadline) / 1e6,
			 (double)(slack + test_tolerance_ns()) / 1e6);
}

static int setup_low_latency(void **state)
{
	struct tmo_loop *loop = calloc(1, sizeof(*loop));
	struct tmo_loop_options options = { .mode = TMO_MODE_LOW_LATENCY };

	if (!loop || tmo_loop_init(loop, &options)) {
		free(loop);
		return -1;
	}
	*state = loop;
	return 0;
}

/* ---- 1. large transfers ------------------------------------------------------------------- */

static void large_buffer_over_socketpair_arrives_intact(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct peer p;
	struct chan c;
	size_t len = 8 * MB;
	uint8_t *src = pattern(len, 1), *dst = calloc(1, len);
	/* every limit, all generous: none may cut a fast peer */
	struct tmo_stream_limits limits = {
		.gap_ns = 5000 * MS,
		.deadline = tmo_in_ms(60000),
		.min_rate = 1024,
		.rate_window_ns = 2 * U,
	};

	chan_open(&c, true, false);
	peer_init(&p, c.r, dst, len);
	peer_run(&p);
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_false(tmo_writer_busy(&t.w));
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_true(tmo_writer_busy(&t.w));
	assert_int_equal(t.calls, 0); /* from the loop, not from tmo_writer_write */
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, 0);
	assert_int_equal(t.written, len);
	assert_int_equal(t.limit, TMO_LIMIT_NONE);
	assert_false(t.busy_inside);
	assert_false(tmo_writer_busy(&t.w));
	assert_int_equal(tmo_writer_total(&t.w), len);
	peer_finish(&p);
	assert_int_equal(p.got, len);
	assert_same(dst, src, len);
	test_sleep_ms(20);
	assert_int_equal(drain(c.r, dst, len, len), 0); /* nothing extra */
	chan_close(&c);
	free(src);
	free(dst);
}

/* A reader made of tmo reads on the same loop. */
struct loop_reader {
	struct tmo_op op;
	struct tmo_loop *loop;
	int fd;
	uint8_t *buf;
	size_t cap, got;
	int32_t err;
	int reads;
};

static void loop_reader_next(struct loop_reader *lr);

static void loop_reader_done(struct tmo_op *op, int32_t res)
{
	struct loop_reader *lr = (struct loop_reader *)op;

	if (res <= 0) {
		lr->err = res ? res : -ENODATA;
		return;
	}
	lr->got += (size_t)res;
	lr->reads++;
	if (lr->got < lr->cap)
		loop_reader_next(lr);
}

static void loop_reader_next(struct loop_reader *lr)
{
	size_t n = lr->cap - lr->got;

	tmo_prep_read(&lr->op, lr->fd, lr->buf + lr->got, (uint32_t)(n < 65536 ? n : 65536),
		      (uint64_t)-1);
	int ret = tmo_op_start(lr->loop, &lr->op, tmo_in_ms(5000), loop_reader_done);
	if (ret)
		lr->err = ret;
}

static void large_buffer_over_pipe_read_by_the_same_loop(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct chan c;
	size_t len = 8 * MB;
	uint8_t *src = pattern(len, 2), *dst = calloc(1, len);
	struct tmo_stream_limits limits = { .gap_ns = 5000 * MS };
	struct loop_reader lr = { .loop = loop, .buf = dst, .cap = len };

	chan_open(&c, false, false);
	lr.fd = c.r;
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	loop_reader_next(&lr);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(lr.err, 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, 0);
	assert_int_equal(t.written, len);
	assert_int_equal(t.limit, TMO_LIMIT_NONE);
	assert_int_equal(tmo_writer_total(&t.w), len);
	assert_int_equal(lr.got, len);
	assert_same(dst, src, len);
	assert_int_equal(drain(c.r, dst, len, len), 0);
	chan_close(&c);
	free(src);
	free(dst);
}

/* O_NONBLOCK on the writer's end: io_uring (or tmo) must wait for room, never report -EAGAIN. */
static void nonblocking_descriptors_work_too(void **state)
{
	struct tmo_loop *loop = *state;

	for (int sock = 0; sock < 2; sock++) {
		struct wtest t = { 0 };
		struct peer p;
		struct chan c;
		size_t len = 512 * 1024;
		uint8_t *src = pattern(len, 3), *dst = calloc(1, len);
		struct tmo_stream_limits limits = { .gap_ns = U };

		chan_open(&c, sock, true);
		assert_int_equal(fcntl(c.w, F_SETFL, fcntl(c.w, F_GETFL) | O_NONBLOCK), 0);
		/* slow but steady for 3 U (the buffer is full at each read), then fast */
		int64_t start = tmo_now();
		peer_init(&p, c.r, dst, len);
		p.period = U / 4;
		p.first_at = start + U / 4;
		p.fast_at = start + 3 * U;
		peer_run(&p);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		peer_finish(&p);
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, 0);
		assert_int_equal(t.written, len);
		assert_true(t.seen_at >= start + 3 * U); /* it lived through the slow part */
		assert_int_equal(p.got, len);
		assert_same(dst, src, len);
		chan_close(&c);
		free(src);
		free(dst);
	}
}

/* A FIFO is written with write(2), like a pipe. */
static void fifo_is_written_like_a_pipe(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct peer p;
	size_t len = 1 * MB;
	uint8_t *src = pattern(len, 22), *dst = calloc(1, len);
	int fds[2];

	test_fifo(fds);
	int r = fds[0], w = fds[1];
	peer_init(&p, r, dst, len);
	peer_run(&p);
	assert_int_equal(tmo_writer_init(&t.w, loop, w, NULL), 0);
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	peer_finish(&p);
	assert_int_equal(t.res, 0);
	assert_int_equal(t.written, len);
	assert_int_equal(p.got, len);
	assert_same(dst, src, len);
	close(r);
	close(w);
	free(src);
	free(dst);
}

/* ---- 2. a peer that stops reading --------------------------------------------------------- */

/* The peer reads steadily (every U/4) for 2 U, then stops: the gap limit U cuts the writer U
 * after its last progress, not U after the start. */
static void gap_cuts_a_peer_that_stops_reading(struct tmo_loop *loop, int kind, bool nonblock)
{
	struct wtest t = { 0 };
	struct peer p;
	struct chan c;
	size_t len = 4 * MB;
	uint8_t *src = pattern(len, 4), *dst = calloc(1, len);
	struct tmo_stream_limits limits = { .gap_ns = U };

	chan_open(&c, kind, true);
	if (nonblock)
		assert_int_equal(fcntl(c.w, F_SETFL, fcntl(c.w, F_GETFL) | O_NONBLOCK), 0);
	int64_t start = tmo_now();
	peer_init(&p, c.r, dst, len);
	p.period = U / 4;
	p.first_at = start + U / 4;
	p.stop_at = start + 2 * U;
	peer_run(&p);
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	peer_join(&p);

	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, -ETIME);
	assert_int_equal(t.limit, TMO_LIMIT_GAP);
	assert_true(t.written > 0);
	assert_true(t.written < len);
	assert_int_equal(tmo_writer_total(&t.w), t.written);
	assert_false(tmo_writer_busy(&t.w));
	/* the scenario held: the peer kept reading well past one gap after the start */
	assert_true(p.reads >= 4);
	assert_true(p.last_read_at >= start + 3 * U / 2);
	assert_true(p.last_read_at < start + 2 * U);
	if (t.seen_at < p.last_read_at + U)
		fprintf(stderr, "peer: %d reads, longest pause %.1f ms, last read at %.1f ms\n",
			p.reads, (double)p.max_interval / 1e6, (double)(p.last_read_at - start) / 1e6);
	assert_on_time(t.seen_at, p.last_read_at + U);
	assert_peer_got_exactly(&p, &t, src);
	chan_close(&c);
	free(src);
	free(dst);
}

static void gap_cut_over_socketpair(void **state)
{
	gap_cuts_a_peer_that_stops_reading(*state, true, false);
}

static void gap_cut_over_pipe(void **state)
{
	gap_cuts_a_peer_that_stops_reading(*state, false, false);
}

/* A blocking FIFO's write waits in io-wq (on every kernel; pipes too before Linux 6.4): the
 * deadline interrupts it with a short count, which must still be reported as the gap's cut. */
static void gap_cut_over_blocking_fifo(void **state)
{
	gap_cuts_a_peer_that_stops_reading(*state, CHAN_FIFO, false);
}

static void gap_cut_over_nonblocking_pipe_and_socket(void **state)
{
	gap_cuts_a_peer_that_stops_reading(*state, false, true);
	gap_cuts_a_peer_that_stops_reading(*state, true, true);
}

/* A peer that never reads: the buffers fill at once, the cut comes U after the start. */
static void gap_cut_of_a_peer_that_never_reads(void **state)
{
	struct tmo_loop *loop = *state;

	for (int sock = 0; sock < 2; sock++) {
		struct wtest t = { 0 };
		struct peer p;
		struct chan c;
		size_t len = 1 * MB;
		uint8_t *src = pattern(len, 5), *dst = calloc(1, len);
		struct tmo_stream_limits limits = { .gap_ns = U };

		chan_open(&c, sock, true);
		peer_init(&p, c.r, dst, len); /* not run: only used to count what is left */
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		int64_t start = tmo_now();
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -ETIME);
		assert_int_equal(t.limit, TMO_LIMIT_GAP);
		assert_true(t.written > 0);
		assert_true(t.written < len);
		assert_on_time(t.seen_at, start + U);
		assert_peer_got_exactly(&p, &t, src);
		/* the writer is idle and whole again: the next write goes through (the peer
		 * drained), nothing of the cut one left behind */
		size_t first = t.written;
		assert_int_equal(tmo_writer_write(&t.w, src + first, 2000, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(t.calls, 2);
		assert_int_equal(t.res, 0);
		assert_int_equal(t.written, 2000);
		assert_int_equal(t.limit, TMO_LIMIT_NONE);
		assert_int_equal(tmo_writer_total(&t.w), first + 2000);
		assert_int_equal(drain(c.r, dst, first, first + 2000), 2000);
		assert_same(dst, src, first + 2000);
		chan_close(&c);
		free(src);
		free(dst);
	}
}

/* Three writers on one loop, peers that never read, gaps of U, 2 U and 3 U: each is cut on its
 * own time. */
static void concurrent_writers_keep_their_own_gaps(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t[3] = { 0 };
	struct chan c[3];
	size_t len = 1 * MB;
	uint8_t *src = pattern(len, 13);

	int64_t start = tmo_now();
	for (int i = 0; i < 3; i++) {
		struct tmo_stream_limits limits = { .gap_ns = (3 - i) * U };
		chan_open(&c[i], i != 1, true);
		assert_int_equal(tmo_writer_init(&t[i].w, loop, c[i].w, &limits), 0);
		assert_int_equal(tmo_writer_write(&t[i].w, src, len, on_written), 0);
	}
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(t[i].calls, 1);
		assert_int_equal(t[i].res, -ETIME);
		assert_int_equal(t[i].limit, TMO_LIMIT_GAP);
		assert_on_time(t[i].seen_at, start + (3 - i) * U);
		assert_int_equal(test_readable(c[i].r), (int)t[i].written);
		chan_close(&c[i]);
	}
	free(src);
}

struct staller {
	struct tmo_op op;
	int64_t ms;
	int64_t end;
};

static void stall_now(struct tmo_op *op, int32_t res)
{
	struct staller *st = (struct staller *)op;

	test_sleep_ms(st->ms);
	st->end = tmo_now();
}

/*
 * The loop thread is stuck (a callback sleeps from U/2 to 3 U/2 + 2 U) while the writer waits
 * on a full buffer with gap U; the peer starts draining at 3 U/2, during the stall. With
 * kernel-kept deadlines the kernel cut the write at U: -ETIME (gap), reported after the stall,
 * and the bytes the peer drained are exactly those accepted before the cut. With loop-kept
 * deadlines the write may instead have gone on: either way nothing is lost or extra.
 */
static void loop_thread_stall_loses_nothing(void **state)
{
	struct tmo_loop *loop = *state;
	bool kernel_kept = tmo__state(loop)->deadline_strategy == TMO_DEADLINES_KERNEL;

	for (int sock = 1; sock >= 0; sock--) {
		struct wtest t = { 0 };
		struct staller st = { .ms = 2 * U / MS };
		struct peer p;
		struct chan c;
		size_t len = 1 * MB;
		uint8_t *src = pattern(len, 20), *dst = calloc(1, len);
		struct tmo_stream_limits limits = { .gap_ns = U };

		chan_open(&c, sock, true);
		int64_t start = tmo_now();
		peer_init(&p, c.r, dst, len);
		p.period = 100 * U; /* no read before fast_at */
		p.first_at = start + 100 * U;
		p.fast_at = start + 3 * U / 2;
		peer_run(&p);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		tmo_prep_sleep(&st.op, tmo_at(start + U / 2));
		assert_int_equal(tmo_op_start(loop, &st.op, TMO_NEVER, stall_now), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		test_sleep_ms(50); /* the peer drains what is left */
		peer_join(&p);
		assert_int_equal(t.calls, 1);
		if (kernel_kept) {
			assert_int_equal(t.res, -ETIME);
			assert_int_equal(t.limit, TMO_LIMIT_GAP);
			assert_true(t.written < len);
			assert_true(t.seen_at >= st.end);
		} else {
			assert_true(t.res == -ETIME || t.res == 0);
		}
		assert_peer_got_exactly(&p, &t, src);
		chan_close(&c);
		free(src);
		free(dst);
	}
}

/* The writer may be freed from its callback, whatever the outcome (ASan checks the rest). */
static void free_from_callback(struct tmo_writer *w, int32_t res, size_t written,
			       enum tmo_limit limit)
{
	int32_t *out = w->data;

	*out = res;
	memset(w, 0xa5, sizeof(*w));
	free(w);
}

static void writer_freed_from_its_callback(void **state)
{
	struct tmo_loop *loop = *state;
	uint8_t *src = pattern(MB, 21);

	for (int outcome = 0; outcome < 3; outcome++) {
		struct tmo_writer *w = calloc(1, sizeof(*w));
		struct tmo_stream_limits limits = { .gap_ns = U / 2 };
		int32_t res = 1;
		struct chan c;

		assert_non_null(w);
		w->data = &res;
		chan_open(&c, true, true);
		assert_int_equal(tmo_writer_init(w, loop, c.w, &limits), 0);
		/* 0: all written; 1: cut by the gap; 2: cancelled */
		assert_int_equal(tmo_writer_write(w, src, outcome ? MB : 1000, free_from_callback), 0);
		if (outcome == 2)
			assert_int_equal(tmo_writer_cancel(w), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(res, outcome == 0 ? 0 : outcome == 1 ? -ETIME : -ECANCELED);
		chan_close(&c);
	}
	free(src);
}

/* ---- 3. a slow but steady peer: not cut by the gap, cut by the rate floor ----------------- */

static void slow_steady_peer_is_never_cut_by_the_gap(struct tmo_loop *loop, bool sock)
{
	struct wtest t = { 0 };
	struct peer p;
	struct chan c;
	size_t len = 1 * MB;
	uint8_t *src = pattern(len, 6), *dst = calloc(1, len);
	struct tmo_stream_limits limits = { .gap_ns = U };

	chan_open(&c, sock, true);
	int64_t start = tmo_now();
	peer_init(&p, c.r, dst, len);
	p.period = U / 2;
	p.first_at = start + U / 2;
	p.fast_at = start + 5 * U; /* ten slow reads, then the rest at full speed */
	peer_run(&p);
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	peer_finish(&p);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, 0);
	assert_int_equal(t.limit, TMO_LIMIT_NONE);
	assert_int_equal(t.written, len);
	assert_true(t.seen_at >= start + 5 * U); /* the write lasted through the slow part */
	assert_int_equal(p.got, len);
	assert_same(dst, src, len);
	chan_close(&c);
	free(src);
	free(dst);
}

static void slow_steady_socket_peer_survives_the_gap(void **state)
{
	slow_steady_peer_is_never_cut_by_the_gap(*state, true);
}

static void slow_steady_pipe_peer_survives_the_gap(void **state)
{
	slow_steady_peer_is_never_cut_by_the_gap(*state, false);
}

/* The steady peer of the previous test moves about 8 KB every U/2 (some 80 KB/s); a floor of
 * 10 MB/s over a window of 2 U cuts it off once the write has run for one window. */
static void rate_floor_cuts_a_slow_steady_peer(void **state)
{
	struct tmo_loop *loop = *state;

	for (int sock = 1; sock >= 0; sock--) {
		struct wtest t = { 0 };
		struct peer p;
		struct chan c;
		size_t len = 4 * MB;
		uint8_t *src = pattern(len, 7), *dst = calloc(1, len);
		struct tmo_stream_limits limits = {
			.gap_ns = U,
			.min_rate = 10 * MB,
			.rate_window_ns = 2 * U,
		};

		chan_open(&c, sock, true);
		int64_t start = tmo_now();
		peer_init(&p, c.r, dst, len);
		p.period = U / 2;
		p.first_at = start + U / 2;
		peer_run(&p);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -ETIME);
		assert_int_equal(t.limit, TMO_LIMIT_RATE);
		assert_true(t.written > 0);
		assert_true(t.written < len);
		/* never before one window; at most window/16 late, plus the usual tolerance */
		int64_t window = limits.rate_window_ns;
		assert_on_time_within(t.seen_at, start + window, window / 16);
		/* the next write (same peer, still slow) starts a fresh history: one more window */
		size_t first = t.written;
		int64_t start2 = tmo_now();
		assert_int_equal(tmo_writer_write(&t.w, src + first, len - first, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		peer_join(&p);
		assert_int_equal(t.calls, 2);
		assert_int_equal(t.res, -ETIME);
		assert_int_equal(t.limit, TMO_LIMIT_RATE);
		assert_on_time_within(t.seen_at, start2 + window, window / 16);
		assert_int_equal(tmo_writer_total(&t.w), first + t.written);
		t.written += first; /* what the peer can read now: both writes */
		assert_peer_got_exactly(&p, &t, src);
		chan_close(&c);
		free(src);
		free(dst);
	}
}

/* A steady pipe peer (4 KB every U/4: some 80 KB/s) is well above a floor of 8 KB/s over 2 U
 * (3.2 KB per window): never cut, through six periods, then it reads fast and all arrives. */
static void rate_floor_spares_a_peer_above_it(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct peer p;
	struct chan c;
	size_t len = 1 * MB;
	uint8_t *src = pattern(len, 14), *dst = calloc(1, len);
	struct tmo_stream_limits limits = {
		.gap_ns = U,
		.min_rate = 8 * 1024,
		.rate_window_ns = 2 * U,
	};

	chan_open(&c, false, true);
	int64_t start = tmo_now();
	peer_init(&p, c.r, dst, len);
	p.period = U / 4;
	p.first_at = start + U / 4;
	p.fast_at = start + 6 * U;
	peer_run(&p);
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	peer_finish(&p);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, 0);
	assert_int_equal(t.limit, TMO_LIMIT_NONE);
	assert_int_equal(t.written, len);
	assert_true(t.seen_at >= start + 6 * U);
	assert_int_equal(p.got, len);
	assert_same(dst, src, len);
	chan_close(&c);
	free(src);
	free(dst);
}

/* The same peer stops reading after 3 U; the gap limit is far: the rate floor cuts it once
 * its last progress (4 KB, more than a window needs) has left the window, so never before one
 * window after the peer's last read, and at most a bucket (window/16) late. */
static void rate_floor_cuts_a_peer_that_stops(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct peer p;
	struct chan c;
	size_t len = 4 * MB;
	uint8_t *src = pattern(len, 15), *dst = calloc(1, len);
	struct tmo_stream_limits limits = {
		.gap_ns = 20 * U,
		.min_rate = 8 * 1024,
		.rate_window_ns = 2 * U,
	};

	chan_open(&c, false, true);
	int64_t start = tmo_now();
	peer_init(&p, c.r, dst, len);
	p.period = U / 4;
	p.first_at = start + U / 4;
	p.stop_at = start + 3 * U;
	peer_run(&p);
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	peer_join(&p);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, -ETIME);
	assert_int_equal(t.limit, TMO_LIMIT_RATE);
	assert_true(p.last_read_at >= start + 2 * U);
	assert_on_time_within(t.seen_at, p.last_read_at + limits.rate_window_ns,
			      limits.rate_window_ns / 16);
	assert_peer_got_exactly(&p, &t, src);
	chan_close(&c);
	free(src);
	free(dst);
}

/* rate_window_ns 0 means one second. */
static void rate_window_defaults_to_one_second(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct chan c;
	size_t len = 1 * MB;
	uint8_t *src = pattern(len, 16);
	struct tmo_stream_limits limits = { .min_rate = 100 * MB };

	chan_open(&c, true, true); /* nobody reads */
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	int64_t start = tmo_now();
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(t.res, -ETIME);
	assert_int_equal(t.limit, TMO_LIMIT_RATE);
	assert_on_time_within(t.seen_at, start + TMO_NSEC_PER_SEC, TMO_NSEC_PER_SEC / 16);
	assert_int_equal(test_readable(c.r), (int)t.written);
	chan_close(&c);
	free(src);
}

/* ---- 4. the overall deadline and an enclosing scope ---------------------------------------- */

static void deadline_cuts_a_slow_steady_peer(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct peer p;
	struct chan c;
	size_t len = 4 * MB;
	uint8_t *src = pattern(len, 8), *dst = calloc(1, len);

	chan_open(&c, true, true);
	int64_t start = tmo_now();
	struct tmo_stream_limits limits = { .gap_ns = U, .deadline = tmo_at(start + 3 * U) };
	peer_init(&p, c.r, dst, len);
	p.period = U / 2;
	p.first_at = start + U / 2;
	peer_run(&p);
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	peer_join(&p);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, -ETIME);
	assert_int_equal(t.limit, TMO_LIMIT_DEADLINE);
	assert_true(t.written > 0);
	assert_true(t.written < len);
	assert_on_time(t.seen_at, start + 3 * U);
	assert_peer_got_exactly(&p, &t, src);
	chan_close(&c);
	free(src);
	free(dst);
}

static void enclosing_scope_cuts_with_limit_scope(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct tmo_scope scope = { 0 };
	struct peer p;
	struct chan c;
	size_t len = 4 * MB;
	uint8_t *src = pattern(len, 9), *dst = calloc(1, len);
	/* the writer's own limits are all later than the scope's deadline */
	struct tmo_stream_limits limits = { .gap_ns = U, .deadline = tmo_in_ns(10 * U) };

	chan_open(&c, false, true);
	int64_t start = tmo_now();
	peer_init(&p, c.r, dst, len);
	p.period = U / 2;
	p.first_at = start + U / 2;
	peer_run(&p);
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_int_equal(tmo_scope_enter_after(loop, &scope, 3 * U, 0), 0);
	assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	peer_join(&p);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, -ETIME);
	assert_int_equal(t.limit, TMO_LIMIT_SCOPE);
	assert_true(t.written > 0);
	assert_true(t.written < len);
	assert_on_time(t.seen_at, tmo_deadline_ns(tmo_scope_deadline(&scope)));
	assert_true(tmo_scope_expired(&scope));
	assert_false(tmo_scope_busy(&scope));
	assert_peer_got_exactly(&p, &t, src);
	chan_close(&c);
	free(src);
	free(dst);
}

/* An overall deadline already passed, and a scope already expired: -ETIME at once, from the
 * loop, nothing written. */
static void limits_already_passed(void **state)
{
	struct tmo_loop *loop = *state;
	struct wtest t = { 0 };
	struct tmo_scope scope = { 0 };
	struct chan c;
	char bytes[100] = { 0 };

	chan_open(&c, true, false);
	struct tmo_stream_limits limits = { .deadline = tmo_at(tmo_now() - 1) };
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
	assert_int_equal(tmo_writer_write(&t.w, bytes, sizeof(bytes), on_written), 0);
	assert_int_equal(t.calls, 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, -ETIME);
	assert_int_equal(t.limit, TMO_LIMIT_DEADLINE);
	assert_int_equal(t.written, 0);
	assert_int_equal(test_readable(c.r), 0);

	assert_int_equal(tmo_writer_set_limits(&t.w, NULL), 0);
	assert_int_equal(tmo_scope_enter_after(loop, &scope, 0, 0), 0);
	assert_int_equal(tmo_writer_write(&t.w, bytes, sizeof(bytes), on_written), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(t.calls, 2);
	assert_int_equal(t.res, -ETIME);
	assert_int_equal(t.limit, TMO_LIMIT_SCOPE);
	assert_int_equal(t.written, 0);
	assert_int_equal(test_readable(c.r), 0);
	assert_int_equal(tmo_writer_total(&t.w), 0);

	/* new limits apply to the next write */
	assert_int_equal(tmo_writer_set_limits(&t.w, NULL), 0);
	assert_int_equal(tmo_writer_write(&t.w, bytes, sizeof(bytes), on_written), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(t.res, 0);
	assert_int_equal(t.written, sizeof(bytes));
	assert_int_equal(test_readable(c.r), (int)sizeof(bytes));
	chan_close(&c);
}

struct shifter {
	struct tmo_op op;
	struct tmo_scope *scope;
	int64_t delta;
	int ret;
};

static void shift_now(struct tmo_op *op, int32_t res)
{
	struct shifter *s = (struct shifter *)op;

	s->ret = tmo_scope_shift(s->scope, s->delta);
}

/* A scope moved while the writer waits in it: later (2 U -> 4 U) and earlier (4 U -> 2 U). The
 * peer never reads and the writer has no limit of its own. */
static void scope_moved_while_the_writer_waits(void **state)
{
	struct tmo_loop *loop = *state;

	for (int later = 1; later >= 0; later--) {
		struct wtest t = { 0 };
		struct tmo_scope scope = { 0 };
		struct shifter sh = { .scope = &scope, .delta = later ? 2 * U : -2 * U };
		struct chan c;
		size_t len = 1 * MB;
		uint8_t *src = pattern(len, 17);

		chan_open(&c, later, true);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, NULL), 0);
		int64_t start = tmo_now();
		tmo_prep_sleep(&sh.op, tmo_at(start + U));
		assert_int_equal(tmo_op_start(loop, &sh.op, TMO_NEVER, shift_now), 0);
		/* entered while the loop runs: only an entered scope can be moved */
		int64_t scope_at = start + (later ? 2 : 4) * U;
		assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(scope_at), 0), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(tmo_scope_exit(&scope), 0);
		assert_int_equal(sh.ret, 0);
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -ETIME);
		assert_int_equal(t.limit, TMO_LIMIT_SCOPE);
		assert_int_equal(tmo_deadline_ns(tmo_scope_deadline(&scope)),
				 start + (later ? 4 : 2) * U);
		assert_on_time(t.seen_at, tmo_deadline_ns(tmo_scope_deadline(&scope)));
		assert_true(tmo_scope_expired(&scope));
		assert_int_equal(test_readable(c.r), (int)t.written);
		chan_close(&c);
		free(src);
	}
}

/* The callback runs in the write's scope, and a write issued from it joins that scope: the
 * scope's deadline cuts the second write (peer not reading, no limit of the writer's own). */
struct scoped {
	struct wtest t;
	struct tmo_loop *loop;
	struct tmo_scope *scope_inside;
	const uint8_t *next;
	size_t next_len;
	int rewrite_ret;
};

static void scoped_done(struct tmo_writer *w, int32_t res, size_t written, enum tmo_limit limit)
{
	struct scoped *sc = (struct scoped *)w;

	on_written(w, res, written, limit);
	if (sc->t.calls == 1) {
		sc->scope_inside = tmo_loop_current_scope(sc->loop);
		sc->rewrite_ret = tmo_writer_write(w, sc->next, sc->next_len, scoped_done);
	}
}

static void callback_runs_in_the_writes_scope(void **state)
{
	struct tmo_loop *loop = *state;
	struct scoped sc = { .loop = loop };
	struct tmo_scope scope = { 0 };
	struct chan c;
	size_t len = 1 * MB;
	uint8_t *src = pattern(len, 18);

	chan_open(&c, true, true);
	sc.next = src + 100;
	sc.next_len = len - 100;
	assert_int_equal(tmo_writer_init(&sc.t.w, loop, c.w, NULL), 0);
	assert_int_equal(tmo_scope_enter_after(loop, &scope, 2 * U, 0), 0);
	assert_int_equal(tmo_writer_write(&sc.t.w, src, 100, scoped_done), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_null(tmo_loop_current_scope(loop));
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_ptr_equal(sc.scope_inside, &scope);
	assert_int_equal(sc.rewrite_ret, 0);
	assert_int_equal(sc.t.calls, 2);
	assert_int_equal(sc.t.res, -ETIME);
	assert_int_equal(sc.t.limit, TMO_LIMIT_SCOPE);
	assert_on_time(sc.t.seen_at, tmo_deadline_ns(tmo_scope_deadline(&scope)));
	assert_int_equal(test_readable(c.r), (int)(100 + sc.t.written));
	chan_close(&c);
	free(src);
}

/* ---- 5. cancel ---------------------------------------------------------------------------- */

struct canceller {
	struct tmo_op op;
	struct tmo_writer *w;
	int first, second, calls_seen;
	bool busy;
};

static void cancel_now(struct tmo_op *op, int32_t res)
{
	struct canceller *k = (struct canceller *)op;
	struct wtest *t = (struct wtest *)k->w;

	k->first = tmo_writer_cancel(k->w);
	k->second = tmo_writer_cancel(k->w);
	k->calls_seen = t->calls;
	k->busy = tmo_writer_busy(k->w);
}

/* Cancelled after U while a steady peer reads: -ECANCELED, the partial count exact; from
 * outside the loop (socketpair) and from another op's callback (pipe). Then a second write on
 * the same writer: the total sums both. */
static void cancel_mid_write(void **state)
{
	struct tmo_loop *loop = *state;

	for (int sock = CHAN_FIFO; sock >= 0; sock--) {
		struct wtest t = { 0 };
		struct canceller k = { .w = &t.w };
		struct peer p;
		struct chan c;
		size_t len = 4 * MB;
		uint8_t *src = pattern(len, 10), *dst = calloc(1, len);
		struct tmo_stream_limits limits = { .gap_ns = 2 * U };

		chan_open(&c, sock, true);
		int64_t start = tmo_now();
		peer_init(&p, c.r, dst, len);
		p.period = U / 4;
		p.first_at = start + U / 4;
		peer_run(&p);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		assert_int_equal(tmo_writer_cancel(&t.w), -ENOENT); /* nothing in progress */
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		if (sock) {
			assert_true(tmo_loop_run_until(loop, tmo_at(start + U)) > 0);
			assert_int_equal(t.calls, 0);
			assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), -EBUSY);
			assert_int_equal(tmo_writer_set_limits(&t.w, &limits), -EBUSY);
			assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), -EBUSY);
			k.first = tmo_writer_cancel(&t.w);
			k.second = tmo_writer_cancel(&t.w);
			k.calls_seen = t.calls;
			k.busy = tmo_writer_busy(&t.w);
		} else {
			tmo_prep_sleep(&k.op, tmo_at(start + U));
			assert_int_equal(tmo_op_start(loop, &k.op, TMO_NEVER, cancel_now), 0);
		}
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(k.first, 0);
		assert_int_equal(k.second, -EALREADY);
		assert_int_equal(k.calls_seen, 0); /* the callback comes from the loop */
		assert_true(k.busy);
		peer_join(&p);
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -ECANCELED);
		assert_int_equal(t.limit, TMO_LIMIT_NONE);
		assert_true(t.seen_at >= start + U);
		assert_true(t.written > 0);
		assert_true(t.written < len);
		assert_int_equal(tmo_writer_cancel(&t.w), -ENOENT); /* finished */
		assert_int_equal(tmo_writer_total(&t.w), t.written);
		assert_peer_got_exactly(&p, &t, src);

		/* the writer is idle again: a second write, the peer now drained */
		size_t first = t.written;
		assert_int_equal(tmo_writer_write(&t.w, src + first, 1000, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(t.calls, 2);
		assert_int_equal(t.res, 0);
		assert_int_equal(t.written, 1000);
		assert_int_equal(tmo_writer_total(&t.w), first + 1000);
		assert_int_equal(drain(c.r, dst, first, first + 1000), 1000);
		assert_same(dst, src, first + 1000);
		chan_close(&c);
		free(src);
		free(dst);
	}
}

/* Cancelled right after tmo_writer_write, before the loop ran: -ECANCELED (or 0 if the kernel
 * took it all first), and exactly `written` bytes readable. */
static void cancel_before_the_loop_runs(void **state)
{
	struct tmo_loop *loop = *state;

	for (int sock = CHAN_FIFO; sock >= 0; sock--) {
		struct wtest t = { 0 };
		struct peer p;
		struct chan c;
		size_t len = 1 * MB;
		uint8_t *src = pattern(len, 19), *dst = calloc(1, len);

		chan_open(&c, sock, true);
		peer_init(&p, c.r, dst, len);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, NULL), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_writer_cancel(&t.w), 0);
		assert_int_equal(tmo_writer_cancel(&t.w), -EALREADY);
		assert_int_equal(t.calls, 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -ECANCELED);
		assert_int_equal(t.limit, TMO_LIMIT_NONE);
		assert_true(t.written < len);
		assert_peer_got_exactly(&p, &t, src);
		chan_close(&c);
		free(src);
		free(dst);
	}
}

/* ---- 6. a closed peer --------------------------------------------------------------------- */

static void closed_peer_gives_epipe_without_sigpipe(void **state)
{
	struct tmo_loop *loop = *state;
	size_t len = 4 * MB;
	uint8_t *src = pattern(len, 11), *dst = calloc(1, len);
	struct tmo_stream_limits limits = { .gap_ns = 10 * U }; /* a hang ends as -ETIME */

	signal(SIGPIPE, SIG_DFL); /* a send without MSG_NOSIGNAL would kill the test */

	/* closed before the write: nothing written */
	{
		struct wtest t = { 0 };
		struct chan c;
		chan_open(&c, true, true);
		close(c.r);
		c.r = -1;
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -EPIPE);
		assert_int_equal(t.written, 0);
		assert_int_equal(t.limit, TMO_LIMIT_NONE);
		chan_close(&c);
	}
	/* closed mid-write, after reading 64 KB: what was accepted is counted */
	{
		struct wtest t = { 0 };
		struct peer p;
		struct chan c;
		chan_open(&c, true, true);
		peer_init(&p, c.r, dst, len);
		p.close_after = 64 * 1024;
		peer_run(&p);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		peer_join(&p);
		assert_true(p.closed);
		c.r = -1;
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -EPIPE);
		assert_int_equal(t.limit, TMO_LIMIT_NONE);
		assert_true(t.written >= p.got); /* the peer read them: they were accepted */
		assert_true(t.written < len);
		assert_int_equal(tmo_writer_total(&t.w), t.written);
		assert_same(dst, src, p.got);
		chan_close(&c);
	}
	/* shutdown(SHUT_RD) mid-write: -EPIPE, and what stayed queued is still readable, so the
	 * count can be checked exactly */
	{
		struct wtest t = { 0 };
		struct peer p;
		struct chan c;
		chan_open(&c, true, true);
		peer_init(&p, c.r, dst, len);
		p.close_after = 64 * 1024;
		p.shut = true;
		peer_run(&p);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		peer_join(&p);
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -EPIPE);
		assert_int_equal(t.limit, TMO_LIMIT_NONE);
		assert_true(t.written >= p.got);
		assert_true(t.written < len);
		assert_peer_got_exactly(&p, &t, src);
		chan_close(&c);
	}
	/* a pipe whose read end closes mid-write: -EPIPE (tmo promises no SIGPIPE only for
	 * sockets, so it is ignored here) */
	{
		struct wtest t = { 0 };
		struct peer p;
		struct chan c;
		signal(SIGPIPE, SIG_IGN);
		chan_open(&c, false, true);
		peer_init(&p, c.r, dst, len);
		p.close_after = 64 * 1024;
		peer_run(&p);
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &limits), 0);
		assert_int_equal(tmo_writer_write(&t.w, src, len, on_written), 0);
		assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
		peer_join(&p);
		assert_true(p.closed);
		c.r = -1;
		assert_int_equal(t.calls, 1);
		assert_int_equal(t.res, -EPIPE);
		assert_true(t.written >= p.got);
		assert_true(t.written < len);
		chan_close(&c);
		signal(SIGPIPE, SIG_DFL);
	}
	free(src);
	free(dst);
}

/* ---- 7. bad input, len 0, totals, a write from the callback ------------------------------ */

static void bad_input_is_refused(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_writer never = { 0 };
	struct wtest t = { 0 };
	struct chan c;
	char byte = 'x';

	chan_open(&c, true, false);
	assert_int_equal(tmo_writer_init(NULL, loop, c.w, NULL), -EINVAL);
	assert_int_equal(tmo_writer_init(&t.w, NULL, c.w, NULL), -EINVAL);
	assert_int_equal(tmo_writer_init(&t.w, loop, -1, NULL), -EBADF);
	/* a descriptor that is not open */
	int closed = dup(c.w);
	assert_true(closed >= 0);
	close(closed);
	assert_int_equal(tmo_writer_init(&t.w, loop, closed, NULL), -EBADF);
	/* a regular file is refused */
	char path[] = "/tmp/tmo-stream-write-XXXXXX";
	int file = mkstemp(path);
	assert_true(file >= 0);
	unlink(path);
	assert_int_equal(tmo_writer_init(&t.w, loop, file, NULL), -EOPNOTSUPP);
	close(file);
	const struct tmo_stream_limits bad[] = {
		{ .gap_ns = -1 },
		{ .deadline = tmo_at(-1) },
		{ .rate_window_ns = -1 },
		{ .gap_ns = INT64_MIN },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &bad[i]), -EINVAL);
	assert_int_equal(tmo_writer_write(NULL, &byte, 1, on_written), -EINVAL);
	assert_int_equal(tmo_writer_write(&never, &byte, 1, on_written), -EINVAL);
	assert_int_equal(tmo_writer_cancel(NULL), -EINVAL);
	assert_false(tmo_writer_busy(&never));

	/* zero limits and TMO_NEVER mean none */
	struct tmo_stream_limits none = { .deadline = TMO_NEVER };
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &none), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tmo_writer_set_limits(&t.w, &bad[i]), -EINVAL);
	assert_int_equal(tmo_writer_set_limits(NULL, &none), -EINVAL);
	assert_int_equal(tmo_writer_write(&t.w, NULL, 1, on_written), -EINVAL);
	assert_false(tmo_writer_busy(&t.w));
	assert_int_equal(tmo_writer_cancel(&t.w), -ENOENT);
	assert_int_equal(tmo_loop_active(loop), 0);

	/* len 0: completes with 0, from the loop */
	assert_int_equal(tmo_writer_write(&t.w, &byte, 0, on_written), 0);
	assert_int_equal(t.calls, 0);
	assert_true(tmo_writer_busy(&t.w));
	assert_int_equal(tmo_writer_write(&t.w, &byte, 1, on_written), -EBUSY);
	assert_int_equal(tmo_writer_set_limits(&t.w, &none), -EBUSY);
	assert_int_equal(tmo_writer_init(&t.w, loop, c.w, &none), -EBUSY);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, 0);
	assert_int_equal(t.written, 0);
	assert_int_equal(t.limit, TMO_LIMIT_NONE);
	assert_false(t.busy_inside);
	assert_false(tmo_writer_busy(&t.w));
	/* NULL with len 0 is not "NULL buf with len > 0" */
	assert_int_equal(tmo_writer_write(&t.w, NULL, 0, on_written), 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(t.calls, 2);
	assert_int_equal(t.res, 0);
	assert_int_equal(tmo_writer_total(&t.w), 0);
	assert_int_equal(test_readable(c.r), 0);
	chan_close(&c);
}

struct chain {
	struct wtest t;
	const uint8_t *parts[3];
	size_t lens[3];
	int next;
	int rewrite_ret[3];
	bool busy_after_rewrite[3];
	int32_t res[3];
	size_t written[3];
};

static void chain_next(struct tmo_writer *w, int32_t res, size_t written, enum tmo_limit limit)
{
	struct chain *ch = (struct chain *)w;
	int i = ch->t.calls;

	on_written(w, res, written, limit);
	if (i < 3) {
		ch->res[i] = res;
		ch->written[i] = written;
	}
	if (ch->next < 3) {
		int n = ch->next++;
		ch->rewrite_ret[n] = tmo_writer_write(w, ch->parts[n], ch->lens[n], chain_next);
		ch->busy_after_rewrite[n] = tmo_writer_busy(w);
	}
}

static void writes_from_the_callback_and_totals(void **state)
{
	struct tmo_loop *loop = *state;
	struct chain ch = { 0 };
	struct chan c;
	size_t len = 6000;
	uint8_t *src = pattern(len, 12), dst[6000 + 16];

	chan_open(&c, true, false);
	ch.parts[0] = src + 1000;
	ch.lens[0] = 2000;
	ch.parts[1] = src + 3000;
	ch.lens[1] = 0; /* a len-0 write in the chain too */
	ch.parts[2] = src + 3000;
	ch.lens[2] = 3000;
	assert_int_equal(tmo_writer_init(&ch.t.w, loop, c.w, NULL), 0);
	assert_int_equal(tmo_writer_write(&ch.t.w, src, 1000, chain_next), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
	assert_int_equal(ch.t.calls, 4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ch.rewrite_ret[i], 0);
		assert_true(ch.busy_after_rewrite[i]);
	}
	assert_int_equal(ch.res[0], 0);
	assert_int_equal(ch.written[0], 1000);
	assert_int_equal(ch.res[1], 0);
	assert_int_equal(ch.written[1], 2000);
	assert_int_equal(ch.res[2], 0);
	assert_int_equal(ch.written[2], 0);
	assert_int_equal(ch.t.res, 0);
	assert_int_equal(ch.t.written, 3000);
	assert_int_equal(ch.t.total_inside, len);
	assert_int_equal(tmo_writer_total(&ch.t.w), len);
	assert_int_equal(test_readable(c.r), (int)len);
	assert_int_equal(drain(c.r, dst, 0, sizeof(dst)), len);
	assert_same(dst, src, len);

	/* init again: the total starts afresh */
	assert_int_equal(tmo_writer_init(&ch.t.w, loop, c.w, NULL), 0);
	assert_int_equal(tmo_writer_total(&ch.t.w), 0);
	chan_close(&c);
	free(src);
}

int main(void)
{
	/* The timing tests twice: deadlines kept by the kernel (default) and by the loop. */
#define BOTH(f)                                                                          \
	{ #f " [kernel]", f, test_loop_setup, test_loop_teardown, NULL },                \
	{                                                                                \
		#f " [loop]", f, test_loop_setup_loop_deadlines, test_loop_teardown, NULL \
	}
#define T(f) cmocka_unit_test_setup_teardown(f, test_loop_setup, test_loop_teardown)
	const struct CMUnitTest tests[] = {
		BOTH(large_buffer_over_socketpair_arrives_intact),
		{ "large_buffer_over_socketpair_arrives_intact [low latency]",
		  large_buffer_over_socketpair_arrives_intact, setup_low_latency, test_loop_teardown,
		  NULL },
		BOTH(large_buffer_over_pipe_read_by_the_same_loop),
		BOTH(nonblocking_descriptors_work_too),
		T(fifo_is_written_like_a_pipe),
		BOTH(gap_cut_over_socketpair),
		BOTH(gap_cut_over_pipe),
		BOTH(gap_cut_over_nonblocking_pipe_and_socket),
		BOTH(gap_cut_over_blocking_fifo),
		BOTH(gap_cut_of_a_peer_that_never_reads),
		BOTH(slow_steady_socket_peer_survives_the_gap),
		BOTH(slow_steady_pipe_peer_survives_the_gap),
		BOTH(concurrent_writers_keep_their_own_gaps),
		BOTH(loop_thread_stall_loses_nothing),
		BOTH(writer_freed_from_its_callback),
		BOTH(rate_floor_cuts_a_slow_steady_peer),
		BOTH(rate_floor_spares_a_peer_above_it),
		BOTH(rate_floor_cuts_a_peer_that_stops),
		T(rate_window_defaults_to_one_second),
		BOTH(deadline_cuts_a_slow_steady_peer),
		BOTH(enclosing_scope_cuts_with_limit_scope),
		BOTH(scope_moved_while_the_writer_waits),
		BOTH(callback_runs_in_the_writes_scope),
		T(limits_already_passed),
		BOTH(cancel_mid_write),
		BOTH(cancel_before_the_loop_runs),
		BOTH(closed_peer_gives_epipe_without_sigpipe),
		T(bad_input_is_refused),
		T(writes_from_the_callback_and_totals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
