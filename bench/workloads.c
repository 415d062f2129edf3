/*
 * Benchmark workloads (see workloads.h): what a server does with tmo, reduced to the part
 * whose cost the deadline changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "workloads.h"

/* The smallest power of two >= n, clamped to what struct tmo_loop_options accepts. */
static uint32_t ring_size(uint64_t n)
{
	uint32_t size = 64;

	while (size < n && size < 32768)
		size <<= 1;
	return size;
}

/*
 * The deadline for an op started now. Computed per start, as a server computes one per
 * request, so the clock read is part of the measured cost of having a deadline.
 */
static tmo_deadline deadline_for(enum wl_deadline deadline)
{
	return deadline != WL_DEADLINE_NONE ? tmo_in_ns(WL_DEADLINE_NS) : TMO_NEVER;
}

static struct tmo_loop_options options_for(uint64_t ring, enum wl_deadline deadline)
{
	struct tmo_loop_options options = {
		.ring_entries = ring_size(ring),
		.deadlines = deadline == WL_DEADLINE_LOOP ? TMO_DEADLINES_LOOP : TMO_DEADLINES_KERNEL,
	};
	return options;
}

/* ---- Nop --------------------------------------------------------------------------------- */

struct wl_nop {
	struct tmo_loop loop;
	enum wl_deadline deadline;
	uint32_t batch;
	int error;          /* first unexpected result seen by a callback */
	struct tmo_op ops[];
};

static void on_nop(struct tmo_op *op, int32_t res)
{
	struct wl_nop *wl = op->data;

	if (res != 0 && !wl->error)
		wl->error = res < 0 ? res : -EPROTO;
}

int wl_nop_create(struct wl_nop **out, enum wl_deadline deadline, uint32_t batch)
{
	if (!out || !batch)
		return -EINVAL;
	struct wl_nop *wl = calloc(1, sizeof(*wl) + batch * sizeof(wl->ops[0]));
	if (!wl)
		return -ENOMEM;
	wl->deadline = deadline;
	wl->batch = batch;

	/* Two SQEs per op with a deadline (the op and its linked timeout): a whole batch fits
	 * without tmo having to flush a full submission queue halfway. */
	struct tmo_loop_options options = options_for(2 * (uint64_t)batch, deadline);
	int ret = tmo_loop_init(&wl->loop, &options);
	if (ret < 0) {
		free(wl);
		return ret;
	}
	for (uint32_t i = 0; i < batch; i++)
		wl->ops[i].data = wl;
	*out = wl;
	return 0;
}

int wl_nop_run(struct wl_nop *wl, uint64_t items)
{
	while (items) {
		uint32_t n = items < wl->batch ? (uint32_t)items : wl->batch;
		int ret = 0;

		for (uint32_t i = 0; i < n && !ret; i++) {
			tmo_prep_nop(&wl->ops[i]);
			ret = tmo_op_start(&wl->loop, &wl->ops[i], deadline_for(wl->deadline), on_nop);
		}
		/* Run even after a failed start: the ops already started must finish before the
		 * loop can be closed. TMO_RUN_DEFAULT returns once no op is active. */
		int run = tmo_loop_run(&wl->loop, TMO_RUN_DEFAULT);
		if (ret < 0)
			return ret;
		if (run < 0)
			return run;
		if (run > 0)
			return -EPROTO; /* TMO_RUN_DEFAULT is documented to return with nothing active */
		if (wl->error)
			return wl->error;
		items -= n;
	}
	return 0;
}

int wl_nop_stats(const struct wl_nop *wl, struct tmo_loop_stats *stats)
{
	return tmo_loop_get_stats(&wl->loop, stats);
}

void wl_nop_destroy(struct wl_nop *wl)
{
	if (!wl)
		return;
	/* Nothing is active between runs, unless a run failed with the ring broken; then the
	 * loop cannot be closed and its memory is left behind. */
	if (tmo_loop_close(&wl->loop) < 0)
		return;
	free(wl);
}

/* ---- PingPong ---------------------------------------------------------------------------- */

/*
 * One end of a flow. Side A (`replier` false) sends 0, 1, 2, ...; side B echoes each byte
 * back. Each side checks that the byte it receives is the one it expects next, which catches
 * lost, duplicated and reordered messages at the cost of one comparison.
 */
struct wl_side {
	struct wl_pingpong *wl;
	int fd;
	bool replier;
	bool send_wanted;   /* a byte is due while the previous send's callback is still pending */
	uint8_t expect;     /* the value the next received byte must have */
	uint8_t in;         /* recv buffer */
	uint8_t out;        /* send buffer */
	struct tmo_op recv;
	struct tmo_op send;
};

struct wl_flow {
	struct wl_side side[2];
};

struct wl_pingpong {
	struct tmo_loop loop;
	uint32_t flows;
	enum wl_deadline deadline;
	bool stopping;      /* set by destroy: callbacks no longer re-arm or check */
	int error;          /* first failure seen by a callback */
	uint64_t received;  /* messages received since create */
	uint64_t target;    /* sum of the items asked of every wl_pingpong_run call */
	struct wl_flow flow[];
};

static void on_recv(struct tmo_op *op, int32_t res);
static void on_send(struct tmo_op *op, int32_t res);

static void fail(struct wl_pingpong *wl, int err)
{
	if (!wl->error)
		wl->error = err;
}

static int arm_recv(struct wl_side *s)
{
	tmo_prep_recv(&s->recv, s->fd, &s->in, 1, 0);
	return tmo_op_start(&s->wl->loop, &s->recv, deadline_for(s->wl->deadline), on_recv);
}

static int send_byte(struct wl_side *s)
{
	/*
	 * The previous send from this side went out one round trip ago, but its completion may
	 * not have been reaped yet (it can sit behind the peer's reply in the same batch of
	 * completions). Then the op is still ours to leave alone: send from its callback.
	 */
	if (tmo_op_busy(&s->send)) {
		s->send_wanted = true;
		return 0;
	}
	tmo_prep_send(&s->send, s->fd, &s->out, 1, 0);
	return tmo_op_start(&s->wl->loop, &s->send, TMO_NEVER, on_send);
}

static void on_recv(struct tmo_op *op, int32_t res)
{
	struct wl_side *s = op->data;
	struct wl_pingpong *wl = s->wl;

	if (wl->stopping)
		return;
	if (res != 1) {
		/* 0 would be the peer closing; -ETIME a deadline that should never fire. */
		fail(wl, res < 0 ? res : -EPROTO);
		return;
	}
	if (s->in != s->expect) {
		fail(wl, -EBADMSG);
		return;
	}
	s->expect++;
	/* Enough for this run: let tmo_loop_run return after this batch of callbacks. */
	if (++wl->received == wl->target)
		tmo_loop_stop(&wl->loop);
	s->out = s->replier ? s->in : s->expect;

	/* Re-arm before answering, as a server would: the next message from the peer can only
	 * follow the answer. Both are queued now and submitted together when the loop runs. */
	int ret = arm_recv(s);
	if (!ret)
		ret = send_byte(s);
	if (ret < 0)
		fail(wl, ret);
}

static void on_send(struct tmo_op *op, int32_t res)
{
	struct wl_side *s = op->data;
	struct wl_pingpong *wl = s->wl;

	if (wl->stopping)
		return;
	if (res != 1) {
		fail(wl, res < 0 ? res : -EPROTO);
		return;
	}
	if (s->send_wanted) {
		s->send_wanted = false;
		int ret = send_byte(s);
		if (ret < 0)
			fail(wl, ret);
	}
}

int wl_pingpong_create(struct wl_pingpong **out, uint32_t flows, enum wl_deadline deadline)
{
	if (!out || !flows)
		return -EINVAL;
	struct wl_pingpong *wl = calloc(1, sizeof(*wl) + flows * sizeof(wl->flow[0]));
	if (!wl)
		return -ENOMEM;
	wl->flows = flows;
	wl->deadline = deadline;
	for (uint32_t i = 0; i < flows; i++) {
		for (int j = 0; j < 2; j++) {
			struct wl_side *s = &wl->flow[i].side[j];

			s->wl = wl;
			s->fd = -1;
			s->replier = j == 1;
			s->recv.data = s;
			s->send.data = s;
		}
	}

	/*
	 * In one loop iteration every flow may complete a recv, and each such callback queues a
	 * recv with its linked timeout and a send: 3 SQEs. Room for 4 per flow keeps tmo from
	 * flushing a full submission queue in the middle of a batch (e.g. 1024 for 256 flows).
	 */
	struct tmo_loop_options options = options_for(4 * (uint64_t)flows, deadline);
	int ret = tmo_loop_init(&wl->loop, &options);
	if (ret < 0) {
		free(wl);
		return ret;
	}

	for (uint32_t i = 0; i < flows && !ret; i++) {
		struct wl_flow *f = &wl->flow[i];
		int fds[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
			ret = -errno;
			break;
		}
		f->side[0].fd = fds[0];
		f->side[1].fd = fds[1];
		/* Both recvs are pending before the first byte leaves. */
		ret = arm_recv(&f->side[1]);
		if (!ret)
			ret = arm_recv(&f->side[0]);
		if (!ret)
			ret = send_byte(&f->side[0]); /* out and expect are 0: A sends 0 */
	}
	if (ret < 0) {
		wl_pingpong_destroy(wl);
		return ret;
	}
	*out = wl;
	return 0;
}

int wl_pingpong_run(struct wl_pingpong *wl, uint64_t items)
{
	wl->target += items;
	/* As a server runs its loop: until a callback stops it (the target is reached) rather
	 * than one iteration at a time, which would hand control back, and flush, every time. */
	while (wl->received < wl->target && !wl->error) {
		int ret = tmo_loop_run(&wl->loop, TMO_RUN_DEFAULT);

		if (ret < 0)
			return ret;
		if (ret == 0 && !wl->error)
			return -EPROTO; /* every flow stopped without saying why: cannot happen */
	}
	return wl->error;
}

int wl_pingpong_stats(const struct wl_pingpong *wl, struct tmo_loop_stats *stats)
{
	return tmo_loop_get_stats(&wl->loop, stats);
}

void wl_pingpong_destroy(struct wl_pingpong *wl)
{
	if (!wl)
		return;
	/* Cancel every pending recv and let the sends finish; the callbacks see `stopping`
	 * and start nothing new. -ENOENT from an inactive op is harmless. */
	wl->stopping = true;
	for (uint32_t i = 0; i < wl->flows; i++) {
		tmo_op_cancel(&wl->flow[i].side[0].recv);
		tmo_op_cancel(&wl->flow[i].side[1].recv);
	}
	int ret = 0;
	while (ret >= 0 && tmo_loop_active(&wl->loop))
		ret = tmo_loop_run(&wl->loop, TMO_RUN_DEFAULT);
	/* If the ring failed, ops the kernel may still write to are left with their memory. */
	bool closed = tmo_loop_close(&wl->loop) == 0;

	for (uint32_t i = 0; i < wl->flows; i++) {
		for (int j = 0; j < 2; j++) {
			if (wl->flow[i].side[j].fd >= 0)
				close(wl->flow[i].side[j].fd);
		}
	}
	if (closed)
		free(wl);
}

/* ---- StreamGap --------------------------------------------------------------------------- */

/*
 * One stream: fd[0] is read by `reader` and answers with `back`; fd[1] is the peer, with
 * `peer_recv` and `peer_send`. The peer sends 0, 1, 2, ...; the reader checks each chunk is
 * exactly the next byte and echoes it; the peer checks the echo and sends the next one. One
 * byte is in flight per stream at any time, so every read returns (and every DATA event holds)
 * exactly one byte.
 */
struct wl_stream {
	struct wl_stream_gap *wl;
	int fd[2];
	bool back_wanted;   /* an echo is due while the previous one's callback is pending */
	bool peer_wanted;   /* the same for the peer's next byte */
	uint8_t reader_expect;
	uint8_t peer_expect;
	uint8_t back_out;
	uint8_t peer_in;
	uint8_t peer_out;
	struct tmo_reader reader;
	struct tmo_op back;
	struct tmo_op peer_recv;
	struct tmo_op peer_send;
	uint8_t buf[WL_STREAM_BUF];
};

struct wl_stream_gap {
	struct tmo_loop loop;
	bool loop_ready;
	uint32_t streams;
	uint32_t opened;    /* streams whose socketpair exists (fds to close) */
	enum wl_deadline limit;
	bool stopping;      /* set by destroy: callbacks no longer re-arm or check */
	int error;          /* first failure seen by a callback */
	uint64_t received;  /* DATA events counted toward the target */
	uint64_t target;
	struct wl_stream_gap_counts counts;
	struct wl_stream stream[];
};

/* A stream that fails stops bouncing, and its peer's recv (no deadline) would keep the loop
 * waiting forever once every stream has: stop the loop so that the run reports the error. */
static void sg_fail(struct wl_stream_gap *wl, int err)
{
	if (!wl->error)
		wl->error = err;
	tmo_loop_stop(&wl->loop);
}

static void on_back(struct tmo_op *op, int32_t res);
static void on_peer_recv(struct tmo_op *op, int32_t res);
static void on_peer_send(struct tmo_op *op, int32_t res);

/* As send_byte() in PingPong: a send whose completion has not been reaped yet is left alone,
 * and the next byte goes from its callback. */
static int sg_send_back(struct wl_stream *s)
{
	if (tmo_op_busy(&s->back)) {
		s->back_wanted = true;
		return 0;
	}
	tmo_prep_send(&s->back, s->fd[0], &s->back_out, 1, 0);
	return tmo_op_start(&s->wl->loop, &s->back, TMO_NEVER, on_back);
}

static int sg_peer_send(struct wl_stream *s)
{
	if (tmo_op_busy(&s->peer_send)) {
		s->peer_wanted = true;
		return 0;
	}
	tmo_prep_send(&s->peer_send, s->fd[1], &s->peer_out, 1, 0);
	return tmo_op_start(&s->wl->loop, &s->peer_send, TMO_NEVER, on_peer_send);
}

static int sg_peer_arm(struct wl_stream *s)
{
	tmo_prep_recv(&s->peer_recv, s->fd[1], &s->peer_in, 1, 0);
	return tmo_op_start(&s->wl->loop, &s->peer_recv, TMO_NEVER, on_peer_recv);
}

static void on_reader(struct tmo_reader *reader, const struct tmo_reader_event *ev)
{
	struct wl_stream *s = reader->data;
	struct wl_stream_gap *wl = s->wl;

	switch (ev->kind) {
	case TMO_READER_DATA:
		if (wl->stopping)
			return;
		wl->counts.data++;
		wl->counts.bytes += ev->len;
		if (ev->len != 1 || ev->error != 0) {
			sg_fail(wl, -EPROTO);
			return;
		}
		if (ev->data[0] != s->reader_expect) {
			sg_fail(wl, -EBADMSG);
			return;
		}
		s->reader_expect++;
		if (++wl->received == wl->target)
			tmo_loop_stop(&wl->loop);
		s->back_out = ev->data[0];
		int ret = sg_send_back(s);
		if (ret < 0)
			sg_fail(wl, ret);
		return;
	case TMO_READER_TIMEOUT:
		/* TMO_GAP_END never marks; counted anyway, as a gap that fired. */
		wl->counts.timeouts++;
		sg_fail(wl, -ETIME);
		return;
	case TMO_READER_END:
		if (wl->stopping)
			return; /* -ECANCELED from wl_stream_gap_destroy's tmo_reader_stop */
		wl->counts.ends++;
		sg_fail(wl, ev->error < 0 ? ev->error : -EPROTO);
		return;
	}
	sg_fail(wl, -EPROTO);
}

static void on_back(struct tmo_op *op, int32_t res)
{
	struct wl_stream *s = op->data;
	struct wl_stream_gap *wl = s->wl;

	if (wl->stopping)
		return;
	if (res != 1) {
		sg_fail(wl, res < 0 ? res : -EPROTO);
		return;
	}
	if (s->back_wanted) {
		s->back_wanted = false;
		int ret = sg_send_back(s);
		if (ret < 0)
			sg_fail(wl, ret);
	}
}

/*
 * The peer got the echo. The reader's callback returned before its echo was even submitted, so
 * its next read is in flight now: sample whether it carries the deadline it should (reaching
 * into the reader's private op only to read its deadline with the public tmo_op_deadline()).
 */
static void on_peer_recv(struct tmo_op *op, int32_t res)
{
	struct wl_stream *s = op->data;
	struct wl_stream_gap *wl = s->wl;

	if (wl->stopping)
		return;
	if (res != 1) {
		sg_fail(wl, res < 0 ? res : -EPROTO);
		return;
	}
	if (s->peer_in != s->peer_expect) {
		sg_fail(wl, -EBADMSG);
		return;
	}
	s->peer_expect++;
	s->peer_out = s->peer_expect;

	if (tmo_op_busy(&s->reader._op)) {
		int64_t deadline = tmo_deadline_ns(tmo_op_deadline(&s->reader._op));

		wl->counts.sampled++;
		if (deadline != TMO_NEVER_NS) {
			wl->counts.with_deadline++;
			if ((wl->counts.with_deadline & 63) == 0) {
				int64_t now = tmo_now();

				wl->counts.clock_checked++;
				if (deadline <= now || deadline > now + WL_DEADLINE_NS)
					wl->counts.deadline_wrong++;
			}
		}
	}

	int ret = sg_peer_arm(s);
	if (!ret)
		ret = sg_peer_send(s);
	if (ret < 0)
		sg_fail(wl, ret);
}

static void on_peer_send(struct tmo_op *op, int32_t res)
{
	struct wl_stream *s = op->data;
	struct wl_stream_gap *wl = s->wl;

	if (wl->stopping)
		return;
	if (res != 1) {
		sg_fail(wl, res < 0 ? res : -EPROTO);
		return;
	}
	if (s->peer_wanted) {
		s->peer_wanted = false;
		int ret = sg_peer_send(s);
		if (ret < 0)
			sg_fail(wl, ret);
	}
}

/* Room for `fds` more descriptors than the process has now (generously: it does not count the
 * ones open), raising the soft limit up to the hard one. */
static int raise_nofile(uint64_t fds)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
		return -errno;
	uint64_t want = fds + 64; /* stdio, the ring, google-benchmark's files */
	if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < want) {
		if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < want)
			return -EMFILE;
		lim.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
			return -errno;
	}
	return 0;
}

int wl_stream_gap_create(struct wl_stream_gap **out, uint32_t streams, enum wl_deadline limit)
{
	if (!out || !streams || (limit != WL_DEADLINE_NONE && limit != WL_DEADLINE_KERNEL &&
				 limit != WL_DEADLINE_LOOP))
		return -EINVAL;
	int ret = raise_nofile(2 * (uint64_t)streams);
	if (ret < 0)
		return ret;
	struct wl_stream_gap *wl = calloc(1, sizeof(*wl) + streams * sizeof(wl->stream[0]));
	if (!wl)
		return -ENOMEM;
	wl->streams = streams;
	wl->limit = limit;

	/* Per stream and loop iteration, at most a read with its linked timeout and an echo, or
	 * the peer's recv and send: room for 4 per stream, as in PingPong. */
	struct tmo_loop_options options = options_for(4 * (uint64_t)streams, limit);
	ret = tmo_loop_init(&wl->loop, &options);
	if (ret < 0) {
		free(wl);
		return ret;
	}
	wl->loop_ready = true;

	struct tmo_reader_options reader_options = {
		.limits = {.gap_ns = WL_DEADLINE_NS},
		.on_gap = TMO_GAP_END,
	};
	for (uint32_t i = 0; i < streams && !ret; i++) {
		struct wl_stream *s = &wl->stream[i];

		s->wl = wl;
		s->back.data = s;
		s->peer_recv.data = s;
		s->peer_send.data = s;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->fd) < 0) {
			ret = -errno;
			break;
		}
		wl->opened++;
		ret = tmo_reader_init(&s->reader, &wl->loop, s->fd[0], s->buf, sizeof(s->buf),
				      limit != WL_DEADLINE_NONE ? &reader_options : NULL);
		s->reader.data = s;
		/* The reader and the peer's recv are pending before the first byte leaves. */
		if (!ret)
			ret = tmo_reader_start(&s->reader, on_reader);
		if (!ret)
			ret = sg_peer_arm(s);
		if (!ret)
			ret = sg_peer_send(s); /* peer_out is 0 */
	}
	if (ret < 0) {
		wl_stream_gap_destroy(wl);
		return ret;
	}
	*out = wl;
	return 0;
}

int wl_stream_gap_run(struct wl_stream_gap *wl, uint64_t items)
{
	wl->target += items;
	while (wl->received < wl->target && !wl->error) {
		int ret = tmo_loop_run(&wl->loop, TMO_RUN_DEFAULT);

		if (ret < 0)
			return ret;
		if (ret == 0 && !wl->error)
			return -EPROTO; /* every stream stopped without saying why */
	}
	return wl->error;
}

int wl_stream_gap_stats(const struct wl_stream_gap *wl, struct tmo_loop_stats *stats)
{
	return tmo_loop_get_stats(&wl->loop, stats);
}

void wl_stream_gap_get_counts(const struct wl_stream_gap *wl,
			      struct wl_stream_gap_counts *counts)
{
	*counts = wl->counts;
}

int wl_stream_gap_check(const struct wl_stream_gap *wl)
{
	const struct wl_stream_gap_counts *c = &wl->counts;
	struct tmo_loop_stats stats;
	int ret = tmo_loop_get_stats(&wl->loop, &stats);

	if (ret < 0)
		return ret;
	if (c->timeouts || c->ends || stats.timed_out)
		return -ETIME;
	if (wl->error)
		return wl->error;
	uint64_t total = 0;
	for (uint32_t i = 0; i < wl->streams; i++)
		total += tmo_reader_total(&wl->stream[i].reader);
	/* Every DATA event one byte, and every byte the readers received delivered. */
	if (c->bytes != c->data || total != c->bytes || c->sampled == 0)
		return -EPROTO;
	if (wl->limit == WL_DEADLINE_NONE)
		return c->with_deadline == 0 ? 0 : -EPROTO;
	if (c->with_deadline != c->sampled || c->deadline_wrong ||
	    (c->with_deadline >= 64 && c->clock_checked == 0))
		return -EPROTO;
	return 0;
}

void wl_stream_gap_destroy(struct wl_stream_gap *wl)
{
	if (!wl)
		return;
	bool closed = !wl->loop_ready;

	if (wl->loop_ready) {
		/* Stop every reader (END with -ECANCELED follows) and cancel the peers' recvs; the
		 * sends finish on their own. -EINVAL or -ENOENT from what already ended is
		 * harmless. */
		wl->stopping = true;
		for (uint32_t i = 0; i < wl->opened; i++) {
			struct wl_stream *s = &wl->stream[i];

			if (tmo_reader_busy(&s->reader))
				tmo_reader_stop(&s->reader);
			tmo_op_cancel(&s->peer_recv);
		}
		int ret = 0;
		while (ret >= 0 && tmo_loop_active(&wl->loop))
			ret = tmo_loop_run(&wl->loop, TMO_RUN_DEFAULT);
		closed = tmo_loop_close(&wl->loop) == 0;
	}
	for (uint32_t i = 0; i < wl->opened; i++) {
		close(wl->stream[i].fd[0]);
		close(wl->stream[i].fd[1]);
	}
	if (closed)
		free(wl);
}

/* ---- ScopeShift -------------------------------------------------------------------------- */

struct wl_read {
	struct tmo_op op;
	struct wl_scope_shift *wl;
	uint8_t buf;
};

struct wl_scope_shift {
	struct tmo_loop loop;
	struct tmo_scope scope;
	bool loop_ready;
	bool entered;
	int fds[2];         /* the pipe: every read waits on fds[0]; nothing is written to fds[1] */
	uint32_t pending;   /* reads to start */
	uint32_t started;   /* reads started (and so to be cancelled) */
	uint32_t cancelled; /* reads that reported -ECANCELED */
	int error;          /* first other result a read reported */
	bool up;            /* the next shift is +WL_SCOPE_SHIFT_NS */
	uint64_t completed_at_create;
	struct wl_read reads[];
};

static void on_read(struct tmo_op *op, int32_t res)
{
	struct wl_read *r = op->data;
	struct wl_scope_shift *wl = r->wl;

	if (res == -ECANCELED)
		wl->cancelled++;
	else if (!wl->error)
		wl->error = res < 0 ? res : -EPROTO; /* bytes from a pipe nobody writes to */
}

int wl_scope_shift_create(struct wl_scope_shift **out, uint32_t pending, bool op_deadlines)
{
	if (!out || !pending)
		return -EINVAL;
	struct wl_scope_shift *wl = calloc(1, sizeof(*wl) + pending * sizeof(wl->reads[0]));
	if (!wl)
		return -ENOMEM;
	wl->fds[0] = wl->fds[1] = -1;
	wl->pending = pending;
	wl->up = true;
	for (uint32_t i = 0; i < pending; i++) {
		wl->reads[i].wl = wl;
		wl->reads[i].op.data = &wl->reads[i];
	}

	/*
	 * One SQE per read (a read with no deadline of its own, or one kept by the loop, needs no
	 * linked timeout): a ring of `pending` entries takes them all in one submit. Beyond
	 * 32,768 tmo flushes a full queue as it goes, which is fine here, since nothing is timed
	 * until every read is in the kernel.
	 */
	struct tmo_loop_options options = {
		.ring_entries = ring_size(pending),
		.deadlines = op_deadlines ? TMO_DEADLINES_LOOP : TMO_DEADLINES_KERNEL,
	};
	int ret = tmo_loop_init(&wl->loop, &options);
	if (ret < 0) {
		free(wl);
		return ret;
	}
	wl->loop_ready = true;

	/* Blocking, not O_NONBLOCK: io_uring answers a read on an O_NONBLOCK pipe with -EAGAIN
	 * at once instead of waiting for data. */
	if (pipe2(wl->fds, O_CLOEXEC) < 0) {
		ret = -errno;
		goto fail;
	}
	ret = tmo_scope_enter(&wl->loop, &wl->scope, tmo_in_ns(WL_SCOPE_DEADLINE_NS), 0);
	if (ret < 0)
		goto fail;
	wl->entered = true;

	tmo_deadline op_deadline = op_deadlines ? tmo_in_ns(WL_SCOPE_OP_DEADLINE_NS) : TMO_NEVER;
	for (uint32_t i = 0; i < pending; i++) {
		struct wl_read *r = &wl->reads[i];

		tmo_prep_read(&r->op, wl->fds[0], &r->buf, 1, (uint64_t)-1);
		ret = tmo_op_start(&wl->loop, &r->op, op_deadline, on_read);
		if (ret < 0)
			goto fail;
		wl->started++;
	}
	/* Every read into the kernel, and whatever the kernel answers at once handled: nothing
	 * should come back, and all must still be pending in the scope. */
	ret = tmo_loop_run(&wl->loop, TMO_RUN_NOWAIT);
	if (ret < 0)
		goto fail;
	struct tmo_loop_stats stats;
	tmo_loop_get_stats(&wl->loop, &stats);
	wl->completed_at_create = stats.completed;
	ret = wl_scope_shift_check(wl);
	if (ret < 0)
		goto fail;
	*out = wl;
	return 0;

fail:
	wl_scope_shift_destroy(wl);
	return ret;
}

int wl_scope_shift_run(struct wl_scope_shift *wl, uint64_t items)
{
	for (; items; items--) {
		int ret = tmo_scope_shift(&wl->scope, wl->up ? WL_SCOPE_SHIFT_NS : -WL_SCOPE_SHIFT_NS);

		if (ret < 0)
			return ret;
		wl->up = !wl->up;
	}
	return 0;
}

int wl_scope_shift_stats(const struct wl_scope_shift *wl, struct tmo_loop_stats *stats)
{
	return tmo_loop_get_stats(&wl->loop, stats);
}

int wl_scope_shift_check(const struct wl_scope_shift *wl)
{
	struct tmo_loop_stats stats;
	int ret = tmo_loop_get_stats(&wl->loop, &stats);

	if (ret < 0)
		return ret;
	if (wl->error)
		return wl->error;
	if (tmo_loop_active(&wl->loop) != wl->pending || wl->started != wl->pending ||
	    stats.completed != wl->completed_at_create || stats.completed != 0)
		return -EPROTO;
	if (tmo_loop_current_scope(&wl->loop) != &wl->scope || !tmo_scope_busy(&wl->scope) ||
	    tmo_scope_expired(&wl->scope))
		return -EPROTO;
	for (uint32_t i = 0; i < wl->pending; i++) {
		if (!tmo_op_busy(&wl->reads[i].op))
			return -EPROTO;
	}
	return 0;
}

void wl_scope_shift_destroy(struct wl_scope_shift *wl)
{
	if (!wl)
		return;
	bool closed = !wl->loop_ready;

	if (wl->loop_ready) {
		/* -ENOENT from a read that already finished is harmless. */
		for (uint32_t i = 0; i < wl->started; i++)
			tmo_op_cancel(&wl->reads[i].op);
		int ret = 0;
		while (ret >= 0 && tmo_loop_active(&wl->loop))
			ret = tmo_loop_run(&wl->loop, TMO_RUN_DEFAULT);
		if (wl->entered)
			tmo_scope_exit(&wl->scope);
		/* If the ring failed, reads the kernel may still write to keep their memory. */
		closed = tmo_loop_close(&wl->loop) == 0;
	}
	for (int i = 0; i < 2; i++) {
		if (wl->fds[i] >= 0)
			close(wl->fds[i]);
	}
	if (closed)
		free(wl);
}

/* ---- Pool -------------------------------------------------------------------------------- */

static char pool_why[256];

const char *wl_pool_why(void)
{
	return pool_why;
}

void wl_pool_why_clear(void)
{
	pool_why[0] = 0;
}

static void why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Notes the first failure's explanation since the workload's create. */
static void why(const char *fmt, ...)
{
	if (pool_why[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pool_why, sizeof(pool_why), fmt, ap);
	va_end(ap);
}

struct wl_samples {
	int64_t *v;
	uint64_t cap;
	uint64_t count;
	int64_t max;
	uint64_t rng;
};

static int samples_init(struct wl_samples *s, uint64_t cap)
{
	s->v = malloc(cap * sizeof(s->v[0]));
	if (!s->v)
		return -ENOMEM;
	s->cap = cap;
	s->count = 0;
	s->max = INT64_MIN;
	s->rng = 0x9e3779b97f4a7c15u;
	/* Touch every page now, so that the timed loop takes no page faults. */
	memset(s->v, 0, cap * sizeof(s->v[0]));
	return 0;
}

static void samples_reset(struct wl_samples *s)
{
	s->count = 0;
	s->max = INT64_MIN;
}

static void samples_add(struct wl_samples *s, int64_t x)
{
	if (x > s->max)
		s->max = x;
	if (s->count < s->cap) {
		s->v[s->count++] = x;
		return;
	}
	/* Reservoir (algorithm R): sample number count + 1 replaces a kept one with probability
	 * cap / (count + 1). xorshift64 is plenty for that. */
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	uint64_t j = s->rng % (s->count + 1);
	if (j < s->cap)
		s->v[j] = x;
	s->count++;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p of them at or below it. */
static int64_t rank(const int64_t *v, uint64_t n, double p)
{
	uint64_t k = (uint64_t)(p * (double)n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static void samples_summary(struct wl_samples *s, struct wl_latency *lat)
{
	uint64_t n = s->count < s->cap ? s->count : s->cap;

	qsort(s->v, n, sizeof(s->v[0]), cmp_i64);
	lat->count = s->count;
	lat->kept = n;
	lat->p50 = n ? rank(s->v, n, 0.50) : 0;
	lat->p99 = n ? rank(s->v, n, 0.99) : 0;
	lat->max = n ? s->max : 0;
}

static void samples_free(struct wl_samples *s)
{
	free(s->v);
	s->v = NULL;
}

int wl_pool_probe_futex(void)
{
	struct tmo_loop loop;
	int ret = tmo_loop_init(&loop, NULL);

	if (ret < 0)
		return ret;
	ret = tmo_loop_has_feature(&loop, TMO_FEAT_FUTEX_WAIT) ? 1 : 0;
	tmo_loop_close(&loop);
	return ret;
}

/* A loop with default options and a pool on it; on failure nothing is left open. */
static int pool_open(struct tmo_loop *loop, struct tmo_pool *pool,
		     const struct tmo_pool_options *options)
{
	int ret = tmo_loop_init(loop, NULL);

	if (ret < 0)
		return ret;
	ret = tmo_pool_init(pool, loop, options);
	if (ret < 0) {
		why("tmo_pool_init: %d", ret);
		tmo_loop_close(loop);
	}
	return ret;
}

/*
 * Ends every job (shutdown: -ECANCELED for those still pending, which the workloads ignore
 * once `stopping`), runs the loop until none of `jobs` is busy, closes pool and loop. Returns
 * false if something could not be closed (then its memory must be left behind).
 */
static bool pool_close_all(struct tmo_loop *loop, struct tmo_pool *pool, struct tmo_job *jobs,
			   uint32_t n)
{
	tmo_pool_shutdown(pool);
	for (;;) {
		bool busy = false;

		for (uint32_t i = 0; i < n && !busy; i++)
			busy = tmo_job_busy(&jobs[i]);
		if (!busy)
			break;
		int ret = tmo_loop_run(loop, TMO_RUN_ONCE);
		if (ret < 0)
			return false;
	}
	if (tmo_pool_close(pool) < 0)
		return false;
	return tmo_loop_close(loop) == 0;
}

static int64_t noop_fn(struct tmo_job *job)
{
	(void)job;
	return 0;
}

/* ---- PoolRoundTrip ----------------------------------------------------------------------- */

struct wl_pool_rt {
	struct tmo_loop loop;
	struct tmo_pool pool;
	struct tmo_job job;
	bool seen;          /* the current job's callback fired */
	int64_t res;        /* ... with this */
	int64_t t0;         /* tmo_now() just before tmo_job_start */
	struct wl_samples lat;
};

static void on_rt(struct tmo_job *job, int64_t res)
{
	int64_t t1 = tmo_now();
	struct wl_pool_rt *wl = job->data;

	wl->seen = true;
	wl->res = res;
	samples_add(&wl->lat, t1 - wl->t0);
}

int wl_pool_rt_create(struct wl_pool_rt **out, enum tmo_pool_wake wake, uint32_t threads)
{
	if (!out || !threads)
		return -EINVAL;
	pool_why[0] = 0;
	struct wl_pool_rt *wl = calloc(1, sizeof(*wl));
	if (!wl)
		return -ENOMEM;
	int ret = samples_init(&wl->lat, WL_POOL_SAMPLES);
	if (ret < 0) {
		free(wl);
		return ret;
	}
	struct tmo_pool_options options = {.threads = threads, .wake = wake};
	ret = pool_open(&wl->loop, &wl->pool, &options);
	if (ret < 0) {
		samples_free(&wl->lat);
		free(wl);
		return ret;
	}
	wl->job.data = wl;
	*out = wl;
	return 0;
}

int wl_pool_rt_run(struct wl_pool_rt *wl, uint64_t items)
{
	for (; items; items--) {
		tmo_job_prep(&wl->job, noop_fn);
		wl->seen = false;
		wl->t0 = tmo_now();
		int ret = tmo_job_start(&wl->pool, &wl->job, tmo_at(wl->t0 + WL_DEADLINE_NS),
					 on_rt);
		if (ret < 0) {
			why("tmo_job_start: %d", ret);
			return ret;
		}
		while (!wl->seen) {
			ret = tmo_loop_run(&wl->loop, TMO_RUN_ONCE);
			if (ret < 0)
				return ret;
			if (ret == 0 && !wl->seen) {
				why("the loop has no work left but the job's callback never fired");
				return -EPROTO;
			}
		}
		if (wl->res != 0) {
			why("a no-op job's callback saw %" PRId64 ", not 0", wl->res);
			return wl->res < 0 ? (int)wl->res : -EPROTO;
		}
		if (tmo_job_busy(&wl->job)) {
			why("the job is still busy after its callback fired with its result");
			return -EPROTO;
		}
	}
	return 0;
}

int wl_pool_rt_stats(const struct wl_pool_rt *wl, struct tmo_loop_stats *stats)
{
	return tmo_loop_get_stats(&wl->loop, stats);
}

int wl_pool_rt_pool_stats(const struct wl_pool_rt *wl, struct tmo_pool_stats *stats)
{
	return tmo_pool_get_stats(&wl->pool, stats);
}

void wl_pool_rt_reset(struct wl_pool_rt *wl)
{
	samples_reset(&wl->lat);
}

void wl_pool_rt_latency(struct wl_pool_rt *wl, struct wl_latency *lat)
{
	samples_summary(&wl->lat, lat);
}

void wl_pool_rt_destroy(struct wl_pool_rt *wl)
{
	if (!wl)
		return;
	if (!pool_close_all(&wl->loop, &wl->pool, &wl->job, 1))
		return;
	samples_free(&wl->lat);
	free(wl);
}

/* ---- PoolFlood --------------------------------------------------------------------------- */

struct wl_pool_flood {
	struct tmo_loop loop;
	struct tmo_pool pool;
	bool stopping;      /* set by destroy: callbacks no longer restart or check */
	int error;          /* first failure seen by a callback */
	uint64_t completed; /* callbacks with 0 since create */
	uint64_t target;    /* sum of the items asked of every run */
	struct tmo_job jobs[WL_FLOOD_QUEUE];
};

static void on_flood(struct tmo_job *job, int64_t res);

static int flood_start(struct wl_pool_flood *wl, struct tmo_job *job)
{
	tmo_job_prep(job, noop_fn);
	return tmo_job_start(&wl->pool, job, tmo_in_ns(WL_DEADLINE_NS), on_flood);
}

static void on_flood(struct tmo_job *job, int64_t res)
{
	struct wl_pool_flood *wl = job->data;

	if (wl->stopping)
		return;
	if (res != 0) {
		why("a no-op job's callback saw %" PRId64 ", not 0", res);
		if (!wl->error)
			wl->error = res < 0 ? (int)res : -EPROTO;
		return;
	}
	wl->completed++;
	int ret = flood_start(wl, job);
	if (ret < 0) {
		why("tmo_job_start from the job's own callback: %d", ret);
		if (!wl->error)
			wl->error = ret;
	}
}

int wl_pool_flood_create(struct wl_pool_flood **out, enum tmo_pool_wake wake, uint32_t threads)
{
	if (!out || !threads)
		return -EINVAL;
	pool_why[0] = 0;
	struct wl_pool_flood *wl = calloc(1, sizeof(*wl));
	if (!wl)
		return -ENOMEM;
	struct tmo_pool_options options = {
		.threads = threads,
		.queue_size = WL_FLOOD_QUEUE,
		.wake = wake,
	};
	int ret = pool_open(&wl->loop, &wl->pool, &options);
	if (ret < 0) {
		free(wl);
		return ret;
	}
	for (uint32_t i = 0; i < WL_FLOOD_QUEUE; i++)
		wl->jobs[i].data = wl;
	for (uint32_t i = 0; i < WL_FLOOD_QUEUE && !ret; i++) {
		ret = flood_start(wl, &wl->jobs[i]);
		if (ret < 0)
			why("tmo_job_start of job %u of %u into an empty queue of %u: %d", i,
			    WL_FLOOD_QUEUE, WL_FLOOD_QUEUE, ret);
	}
	if (ret < 0) {
		wl_pool_flood_destroy(wl);
		return ret;
	}
	*out = wl;
	return 0;
}

int wl_pool_flood_run(struct wl_pool_flood *wl, uint64_t items)
{
	wl->target += items;
	while (wl->completed < wl->target && !wl->error) {
		int ret = tmo_loop_run(&wl->loop, TMO_RUN_ONCE);

		if (ret < 0)
			return ret;
		if (ret == 0 && !wl->error) {
			why("the loop has no work left with %u jobs restarting themselves",
			    WL_FLOOD_QUEUE);
			return -EPROTO;
		}
	}
	return wl->error;
}

int wl_pool_flood_stats(const struct wl_pool_flood *wl, struct tmo_loop_stats *stats)
{
	return tmo_loop_get_stats(&wl->loop, stats);
}

int wl_pool_flood_pool_stats(const struct wl_pool_flood *wl, struct tmo_pool_stats *stats)
{
	return tmo_pool_get_stats(&wl->pool, stats);
}

uint64_t wl_pool_flood_completed(const struct wl_pool_flood *wl)
{
	return wl->completed;
}

void wl_pool_flood_destroy(struct wl_pool_flood *wl)
{
	if (!wl)
		return;
	wl->stopping = true;
	if (!pool_close_all(&wl->loop, &wl->pool, wl->jobs, WL_FLOOD_QUEUE))
		return;
	free(wl);
}

/* ---- PoolHungTimeout --------------------------------------------------------------------- */

struct wl_pool_hung {
	struct tmo_loop loop;
	struct tmo_pool pool;
	struct tmo_job job;
	enum tmo_overrun overrun;
	int64_t deadline_ns;
	_Atomic uint32_t gate;  /* abandon: the benchmark sets it to 1 to let the function return */
	int64_t deadline;       /* the current job's */
	_Atomic int64_t entered; /* tmo_now() when the function began (0: not yet), for errors */
	int64_t cb_at;          /* tmo_now() in the callback */
	int64_t rel_at;         /* tmo_now() in the release callback */
	struct wl_hung_counts counts;
	bool cb_seen, released;
	int64_t res, late_res;
	struct wl_samples late, freed;
};

static long futex_wait(_Atomic uint32_t *word, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, ts, NULL, 0);
}

/*
 * The hung function. Interrupt: waits on a word nobody changes, so only a signal (EINTR) ends
 * the wait. Abandon: waits until the benchmark opens the gate. The one-second timeout is the
 * backstop that lets it notice tmo_job_cancelled() if a signal was lost.
 */
static int64_t hung_fn(struct tmo_job *job)
{
	struct wl_pool_hung *wl = job->data;
	const struct timespec second = {1, 0};

	atomic_store(&wl->entered, tmo_now());

	if (wl->overrun == TMO_OVERRUN_INTERRUPT) {
		_Atomic uint32_t never = 0;

		for (;;) {
			if (futex_wait(&never, 0, &second) < 0 && errno == EINTR)
				return -EINTR;
			if (tmo_job_cancelled(job))
				return WL_HUNG_POLLED;
		}
	}
	while (atomic_load(&wl->gate) == 0)
		futex_wait(&wl->gate, 0, &second); /* EAGAIN once the gate is open */
	return 0;
}

static void hung_open_gate(struct wl_pool_hung *wl)
{
	atomic_store(&wl->gate, 1);
	syscall(SYS_futex, &wl->gate, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void on_hung(struct tmo_job *job, int64_t res)
{
	int64_t now = tmo_now();
	struct wl_pool_hung *wl = job->data;

	wl->cb_seen = true;
	wl->res = res;
	wl->cb_at = now;
	if (wl->overrun == TMO_OVERRUN_ABANDON)
		hung_open_gate(wl);
	/* Idle already: the job expired before a worker took it, and no release will follow. */
	if (!tmo_job_busy(job))
		tmo_loop_stop(&wl->loop);
}

static void on_hung_release(struct tmo_job *job, int64_t late_res)
{
	int64_t now = tmo_now();
	struct wl_pool_hung *wl = job->data;

	wl->released = true;
	wl->late_res = late_res;
	wl->rel_at = now;
	tmo_loop_stop(&wl->loop);
}

static void on_hung_ready(struct tmo_job *job, int64_t res)
{
	struct wl_pool_hung *wl = job->data;

	wl->cb_seen = true;
	wl->res = res;
}

int wl_pool_hung_create(struct wl_pool_hung **out, enum tmo_overrun overrun, int64_t deadline_ns)
{
	if (!out || deadline_ns <= 0 ||
	    (overrun != TMO_OVERRUN_INTERRUPT && overrun != TMO_OVERRUN_ABANDON))
		return -EINVAL;
	pool_why[0] = 0;
	struct wl_pool_hung *wl = calloc(1, sizeof(*wl));
	if (!wl)
		return -ENOMEM;
	wl->overrun = overrun;
	wl->deadline_ns = deadline_ns;
	int ret = samples_init(&wl->late, 1u << 16);
	if (!ret)
		ret = samples_init(&wl->freed, 1u << 16);
	struct tmo_pool_options options = {.threads = 1};
	if (!ret)
		ret = pool_open(&wl->loop, &wl->pool, &options);
	if (ret < 0) {
		samples_free(&wl->late);
		samples_free(&wl->freed);
		free(wl);
		return ret;
	}
	wl->job.data = wl;
	/* One no-op job first, so that the worker is surely up and waiting when the first hung
	 * job comes: a job still queued at its deadline would never run. */
	tmo_job_prep(&wl->job, noop_fn);
	wl->cb_seen = false;
	ret = tmo_job_start(&wl->pool, &wl->job, tmo_in_ns(WL_DEADLINE_NS), on_hung_ready);
	while (!ret && !wl->cb_seen) {
		ret = tmo_loop_run(&wl->loop, TMO_RUN_ONCE);
		if (ret == 0 && !wl->cb_seen)
			ret = -EPROTO;
		ret = ret > 0 ? 0 : ret;
	}
	if (!ret && wl->res != 0) {
		why("a no-op job's callback saw %" PRId64 ", not 0", wl->res);
		ret = wl->res < 0 ? (int)wl->res : -EPROTO;
	}
	if (ret < 0) {
		wl_pool_hung_destroy(wl);
		return ret;
	}
	*out = wl;
	return 0;
}

/* One job, from start until its worker lets go (or, if it never ran, until its callback). */
static int hung_attempt(struct wl_pool_hung *wl)
{
	tmo_job_prep(&wl->job, hung_fn);
	int ret = tmo_job_set_overrun(&wl->job, wl->overrun);
	if (!ret)
		ret = tmo_job_set_release(&wl->job, on_hung_release);
	if (ret < 0) {
		why("tmo_job_set_overrun/set_release: %d", ret);
		return ret;
	}
	atomic_store(&wl->gate, 0);
	atomic_store(&wl->entered, 0);
	wl->cb_seen = wl->released = false;
	wl->deadline = tmo_now() + wl->deadline_ns;
	ret = tmo_job_start(&wl->pool, &wl->job, tmo_at(wl->deadline), on_hung);
	if (ret < 0) {
		why("tmo_job_start: %d", ret);
		return ret;
	}
	const int64_t backstop = wl->deadline + 5 * TMO_NSEC_PER_SEC;
	while (!wl->released && !(wl->cb_seen && !tmo_job_busy(&wl->job))) {
		if (tmo_now() >= backstop) {
			why("no release 5 s after the deadline (callback %s)",
			    wl->cb_seen ? "fired" : "not fired");
			return -ETIMEDOUT;
		}
		ret = tmo_loop_run_until(&wl->loop, tmo_at(backstop));
		if (ret < 0)
			return ret;
	}
	if (!wl->cb_seen) {
		why("the release callback fired before the completion callback");
		return -EPROTO;
	}
	if (wl->res != -ETIME) {
		why("a hung job's callback saw %" PRId64 ", not -ETIME (%d)", wl->res, -ETIME);
		return wl->res < 0 ? (int)wl->res : -EPROTO;
	}
	if (tmo_job_busy(&wl->job)) {
		why("the job is still busy after its release callback");
		return -EPROTO;
	}
	return 0;
}

int wl_pool_hung_run(struct wl_pool_hung *wl, uint64_t items)
{
	while (items) {
		int ret = hung_attempt(wl);
		if (ret < 0)
			return ret;
		const int64_t entered = atomic_load(&wl->entered);
		if (!wl->released) {
			/* Expired in the queue: it never ran, as documented. Not a hung worker. */
			if (entered) {
				why("no release, yet the function ran");
				return -EPROTO;
			}
			wl->counts.expired_queued++;
			continue;
		}
		if (!entered) {
			why("a release (%" PRId64 "), yet the function never ran", wl->late_res);
			return -EPROTO;
		}
		if (entered >= wl->deadline) {
			/* The worker began the function only after its deadline: not a worker hung at
			 * its deadline either. Under interrupt, note whether the signal still ended the
			 * wait (the worker's timer fires at once; its signal may land before the
			 * function blocks). */
			wl->counts.began_late++;
			if (wl->overrun == TMO_OVERRUN_INTERRUPT && wl->late_res != -EINTR)
				wl->counts.lost_interrupts++;
			continue;
		}
		const int64_t want = wl->overrun == TMO_OVERRUN_INTERRUPT ? -EINTR : 0;
		if (wl->late_res != want) {
			if (wl->late_res == WL_HUNG_POLLED)
				why("the interrupt signal did not end the job's futex wait, begun "
				    "%" PRId64 " ns before the deadline; the function noticed "
				    "tmo_job_cancelled() after its 1 s timeout",
				    wl->deadline - entered);
			else
				why("the release saw %" PRId64 ", not %" PRId64, wl->late_res, want);
			return -EPROTO;
		}
		samples_add(&wl->late, wl->cb_at - wl->deadline);
		samples_add(&wl->freed, wl->rel_at - wl->deadline);
		wl->counts.measured++;
		items--;
	}
	return 0;
}

void wl_pool_hung_get_counts(const struct wl_pool_hung *wl, struct wl_hung_counts *counts)
{
	*counts = wl->counts;
}

int wl_pool_hung_pool_stats(const struct wl_pool_hung *wl, struct tmo_pool_stats *stats)
{
	return tmo_pool_get_stats(&wl->pool, stats);
}

void wl_pool_hung_reset(struct wl_pool_hung *wl)
{
	samples_reset(&wl->late);
	samples_reset(&wl->freed);
	memset(&wl->counts, 0, sizeof(wl->counts));
}

void wl_pool_hung_latency(struct wl_pool_hung *wl, struct wl_latency *late,
			  struct wl_latency *freed)
{
	samples_summary(&wl->late, late);
	samples_summary(&wl->freed, freed);
}

void wl_pool_hung_destroy(struct wl_pool_hung *wl)
{
	if (!wl)
		return;
	/* A failed run may have left the function waiting at its gate (abandon). */
	hung_open_gate(wl);
	if (!pool_close_all(&wl->loop, &wl->pool, &wl->job, 1))
		return;
	samples_free(&wl->late);
	samples_free(&wl->freed);
	free(wl);
}
