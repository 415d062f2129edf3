/*
 * Stream readers: a socket or pipe read chunk after chunk, each read carrying the earliest of
 * the stream's limits as its deadline, its bytes cut into frames for the caller.
 *
 * One struct tmo_op does all the work, one request at a time: a read (recv on sockets), or a
 * nop that brings the reader back into the loop when something must happen from the loop
 * rather than from the caller's function (start, resume, a stop while idle). Every event is
 * delivered by pump(), which runs only from that op's completion, so the caller never sees a
 * callback from inside tmo_reader_*(), with one exception: tmo_reader_stop() called from the
 * reader's own DATA or TIMEOUT callback delivers END before it returns. The reader is then
 * idle as soon as stop returns, so the caller may free it there and then; emit() learns that
 * from a flag on its own stack and touches the reader no more.
 *
 * Nothing is lost because the buffer is the only place bytes go: a read either returned bytes
 * (appended, then framed) or consumed none; a timeout marker only goes on waiting; an end hands
 * over whatever is buffered.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "container.h"
#include "stream_limits.h"

/* struct tmo_reader._state */
enum {
	R_INIT = 1u << 0,     /* tmo_reader_init succeeded */
	R_STARTED = 1u << 1,  /* between start and END */
	R_PAUSED = 1u << 2,   /* no events until resume */
	R_STOP = 1u << 3,     /* tmo_reader_stop: END -ECANCELED comes next */
	R_OP = 1u << 4,       /* ._op is active */
	R_KICK = 1u << 5,     /* ... as a nop that brings the reader back to the loop */
	R_ENDING = 1u << 6,   /* the stream ended while paused: END after resume */
	R_SOCKET = 1u << 7,   /* recv, not read */
	R_IN_CB = 1u << 8,    /* a DATA or TIMEOUT callback is running: pump() goes on after it */
	R_SELF_CANCEL = 1u << 9, /* pause or a framing change cancelled the read in flight */
	R_RESCOPE = 1u << 10, /* resumed in another scope: the next request joins _next_scope */
};

#define MAX_CAP (UINT32_C(1) << 31)

static struct tmo_reader *reader_of(struct tmo_op *op)
{
	return (struct tmo_reader *)((char *)op - offsetof(struct tmo_reader, _op));
}

int tmo_reader_init(struct tmo_reader *reader, struct tmo_loop *loop, int fd, void *buf,
		    size_t cap, const struct tmo_reader_options *options)
{
	if (!reader || !loop || !loop->_state || !buf || !cap || cap > MAX_CAP)
		return -EINVAL;
	if (options && (tmo__limits_check(&options->limits) ||
			(options->on_gap != TMO_GAP_END && options->on_gap != TMO_GAP_MARK)))
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	/* Started, or its op not yet released by the kernel: wiping it would lose the request. */
	if (((reader->_state & R_INIT) && (reader->_state & R_STARTED)) ||
	    tmo_op_busy(&reader->_op))
		return -EBUSY;
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return -errno;
	/* A file never keeps anyone waiting for its next chunk, and its reads block in io-wq
	 * where a per-read deadline cannot reach: read files with TMO_OP_BLOCKING ops instead. */
	if (S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode))
		return -EOPNOTSUPP;

	_Static_assert(offsetof(struct tmo_reader, data) == 0, "tmo__stream_clear keeps data");
	tmo__stream_clear(reader, sizeof(*reader), &reader->_op);
	reader->_loop = loop;
	reader->_fd = fd;
	reader->_buf = buf;
	reader->_cap = cap;
	reader->_frame = TMO_FRAME_CHUNK;
	tmo__limits_copy(&reader->_limits, options ? &options->limits : NULL);
	reader->_on_gap = (uint8_t)(options ? options->on_gap : TMO_GAP_END);
	reader->_state = R_INIT;
	if (S_ISSOCK(sb.st_mode))
		reader->_state |= R_SOCKET;
	return 0;
}

static size_t next_frame(struct tmo_reader *r);

int tmo_reader_frame(struct tmo_reader *reader, enum tmo_frame frame, const void *delim,
		     size_t delim_len, size_t exact)
{
	if (!reader || !(reader->_state & R_INIT))
		return -EINVAL;
	switch (frame) {
	case TMO_FRAME_CHUNK:
		break;
	case TMO_FRAME_DELIMITER:
		if (!delim || !delim_len || delim_len > sizeof(reader->_delim))
			return -EINVAL;
		memcpy(reader->_delim, delim, delim_len);
		reader->_delim_len = (uint8_t)delim_len;
		break;
	case TMO_FRAME_EXACT:
		if (!exact)
			return -EINVAL;
		if (exact > reader->_cap)
			return -ENOBUFS;
		reader->_exact = exact;
		break;
	default:
		return -EINVAL;
	}
	reader->_frame = (uint8_t)frame;
	reader->_scanned = reader->_head; /* a new delimiter: search the buffer again */
	/* Outside the reader's callbacks, with a read in flight, the new framing may find a
	 * frame already buffered: take the read back (its bytes, if any, are kept) so that
	 * pump() delivers it now rather than when the peer sends more. */
	if ((reader->_state & R_OP) && !(reader->_state & (R_KICK | R_IN_CB | R_SELF_CANCEL)) &&
	    next_frame(reader)) {
		reader->_state |= R_SELF_CANCEL;
		tmo_op_cancel(&reader->_op);
	}
	return 0;
}

int tmo_reader_set_limits(struct tmo_reader *reader, const struct tmo_stream_limits *limits)
{
	if (!reader || !(reader->_state & R_INIT) || tmo__limits_check(limits))
		return -EINVAL;
	struct tmo_stream_limits old = reader->_limits;
	tmo__limits_copy(&reader->_limits, limits);
	/* A new rate or window makes the history meaningless; otherwise (say, only the overall
	 * deadline pushed back) the floor keeps its window, or refreshing the limits often
	 * would keep it in its grace period for ever. */
	if (old.min_rate != reader->_limits.min_rate ||
	    old.rate_window_ns != reader->_limits.rate_window_ns)
		tmo__rate_reset(&reader->_rate, &reader->_limits, tmo_now());
	return 0;
}

bool tmo_reader_busy(const struct tmo_reader *reader)
{
	return reader && (reader->_state & R_STARTED);
}

bool tmo_reader_paused(const struct tmo_reader *reader)
{
	return reader && (reader->_state & R_STARTED) && (reader->_state & R_PAUSED);
}

uint64_t tmo_reader_total(const struct tmo_reader *reader)
{
	return reader ? reader->_total : 0;
}

/* ---- the loop's side ---------------------------------------------------------------------- */

static void on_op(struct tmo_op *op, int32_t res);

/*
 * The scope the reader's next request joins: the current one (a callback runs in its op's
 * scope, so reads follow the scope the reader was started or resumed in), or the one recorded
 * by a resume while a request was still in flight in the old scope.
 */
static struct tmo_scope *next_scope(const struct tmo_reader *r)
{
	return (r->_state & R_RESCOPE) ? r->_next_scope : tmo_loop_current_scope(r->_loop);
}

/* Lets go of the scope a resume recorded (its hold kept it alive until a request joined it). */
static void drop_rescope(struct tmo_reader *r)
{
	if (!(r->_state & R_RESCOPE))
		return;
	r->_state &= (uint16_t)~R_RESCOPE;
	struct tmo_scope *scope = r->_next_scope;
	r->_next_scope = NULL;
	if (scope) {
		scope->_c.holds--;
		tmo__container_check_done(tmo__state(r->_loop), &scope->_c);
	}
}

/* Starts the reader's one request in `scope`, the one it belongs to (next_scope()). */
static int start_request(struct tmo_reader *r, struct tmo_scope *scope, int64_t deadline)
{
	int ret = tmo__op_start_in(r->_loop, &r->_op, deadline, on_op, scope ? &scope->_c : NULL);

	if (!ret)
		drop_rescope(r);
	return ret;
}

/* Brings the reader back into the loop: pump() runs from the nop's completion. */
static int kick(struct tmo_reader *r)
{
	tmo_prep_nop(&r->_op);
	int ret = start_request(r, next_scope(r), TMO_NEVER_NS);
	if (!ret)
		r->_state |= R_OP | R_KICK;
	return ret;
}

/* Issues the next read with the earliest limit as its deadline. */
static int arm_read(struct tmo_reader *r)
{
	/* Keep the partial frame at the start, so the read gets the most room. */
	if (r->_head) {
		size_t kept = r->_tail - r->_head;
		memmove(r->_buf, r->_buf + r->_head, kept);
		r->_scanned = r->_scanned > r->_head ? r->_scanned - r->_head : 0;
		r->_head = 0;
		r->_tail = kept;
	}
	if (r->_limits.gap_ns) { /* only the gap needs the clock here */
		int64_t now = tmo_now();
		if (!r->_wait_from || (r->_wait_from <= INT64_MAX - r->_limits.gap_ns &&
				       r->_wait_from + r->_limits.gap_ns <= now))
			r->_wait_from = now; /* after data, or a marker seen too late to count */
	}
	uint8_t which;
	struct tmo_scope *scope = next_scope(r);
	int64_t deadline = tmo__limits_next(&r->_limits, &r->_rate, r->_wait_from, &which);
	deadline = tmo__limits_with_scope(scope, deadline, &which);
	r->_armed_limit = which;
	r->_armed_at = deadline;

	uint8_t *into = r->_buf + r->_tail;
	uint32_t room = (uint32_t)(r->_cap - r->_tail);
	if (r->_state & R_SOCKET)
		tmo_prep_recv(&r->_op, r->_fd, into, room, 0);
	else
		tmo_prep_read(&r->_op, r->_fd, into, room, (uint64_t)-1);
	int ret = start_request(r, scope, deadline);
	if (!ret)
		r->_state = (uint16_t)((r->_state & ~R_KICK) | R_OP);
	return ret;
}

/* The next complete frame in the buffer, if any: its length, else 0. */
static size_t next_frame(struct tmo_reader *r)
{
	size_t have = r->_tail - r->_head;

	if (!have)
		return 0;
	switch ((enum tmo_frame)r->_frame) {
	case TMO_FRAME_EXACT:
		return have >= r->_exact ? r->_exact : 0;
	case TMO_FRAME_DELIMITER: {
		size_t from = r->_scanned > r->_head ? r->_scanned : r->_head;
		const uint8_t *hit = memmem(r->_buf + from, r->_tail - from, r->_delim,
					    r->_delim_len);
		if (hit)
			return (size_t)(hit - (r->_buf + r->_head)) + r->_delim_len;
		/* Next time, search only where a delimiter could still begin. */
		size_t tail_keep = (size_t)r->_delim_len - 1;
		r->_scanned = r->_tail - r->_head > tail_keep ? r->_tail - tail_keep : r->_head;
		return 0;
	}
	case TMO_FRAME_CHUNK:
	default:
		return have;
	}
}

/* Delivers a DATA or TIMEOUT event. Returns false if END was delivered meanwhile (a stop from
 * the callback): the reader may have been freed or started again, and must not be touched. */
static bool emit(struct tmo_reader *r, enum tmo_reader_event_kind kind, const uint8_t *data,
		 size_t len, int32_t error, enum tmo_limit limit)
{
	struct tmo_reader_event ev = {
		.kind = kind,
		.data = data,
		.len = len,
		.error = error,
		.limit = limit,
		.total = r->_total,
		.buffered = r->_tail - r->_head,
	};
	bool ended = false;

	r->_ended_in_cb = &ended;
	r->_state |= R_IN_CB;
	r->_cb(r, &ev);
	if (ended)
		return false;
	r->_state &= (uint16_t)~R_IN_CB;
	r->_ended_in_cb = NULL;
	return true;
}

/* Delivers END: the reader is idle from here, and may be freed by the callback. */
static void finish(struct tmo_reader *r, int32_t error, enum tmo_limit limit)
{
	const uint8_t *left = r->_buf + r->_head;
	size_t len = r->_tail - r->_head;

	drop_rescope(r);
	r->_state &= (uint16_t)(R_INIT | R_SOCKET);
	r->_head = r->_tail = r->_scanned = 0;
	if (r->_ended_in_cb) { /* inside a DATA or TIMEOUT callback: tell its emit() */
		*r->_ended_in_cb = true;
		r->_ended_in_cb = NULL;
	}
	struct tmo_reader_event ev = {
		.kind = TMO_READER_END,
		.data = len ? left : NULL,
		.len = len,
		.error = error,
		.limit = error == -ETIME ? limit : TMO_LIMIT_NONE,
		.total = r->_total,
		.buffered = len,
	};
	r->_cb(r, &ev);
}

/*
 * Delivers what the buffer holds and decides what comes next: an end, a pause, or the next
 * read. Runs only from the op's completion, with no request in flight.
 */
static void pump(struct tmo_reader *r)
{
	for (;;) {
		if (r->_state & R_STOP) {
			finish(r, -ECANCELED, TMO_LIMIT_NONE);
			return;
		}
		if (r->_state & R_PAUSED)
			return;
		size_t len = next_frame(r);
		if (len) {
			const uint8_t *frame = r->_buf + r->_head;
			r->_head += len;
			if (r->_head == r->_tail)
				r->_head = r->_tail = r->_scanned = 0; /* the frame stays readable */
			r->_wait_from = 0; /* a frame delivered: the next wait starts afresh */
			if (!emit(r, TMO_READER_DATA, frame, len, 0, TMO_LIMIT_NONE))
				return;
			continue;
		}
		if (r->_state & R_ENDING) {
			finish(r, r->_end_error, (enum tmo_limit)r->_end_limit);
			return;
		}
		if (r->_head == 0 && r->_tail == r->_cap) {
			finish(r, -ENOBUFS, TMO_LIMIT_NONE); /* a frame longer than the buffer */
			return;
		}
		int ret = arm_read(r);
		if (ret)
			finish(r, ret, TMO_LIMIT_NONE);
		return;
	}
}

/* The stream is over for `error`: buffered frames first, then END; after resume if paused. */
static void end(struct tmo_reader *r, int32_t error, enum tmo_limit limit)
{
	r->_state |= R_ENDING;
	r->_end_error = error;
	r->_end_limit = (uint8_t)limit;
	pump(r);
}

static void on_op(struct tmo_op *op, int32_t res)
{
	struct tmo_reader *r = reader_of(op);
	bool was_kick = r->_state & R_KICK;

	bool self_cancelled = r->_state & R_SELF_CANCEL;
	r->_state &= (uint16_t) ~(R_OP | R_KICK | R_SELF_CANCEL);
	if (r->_state & R_STOP) {
		if (res > 0) { /* bytes are never dropped: they go out with END */
			r->_total += (uint64_t)res;
			r->_tail += (size_t)res;
		}
		finish(r, -ECANCELED, TMO_LIMIT_NONE);
		return;
	}
	if (res > 0 && !was_kick) {
		r->_total += (uint64_t)res;
		r->_tail += (size_t)res;
		if (r->_rate.need)
			tmo__rate_add(&r->_rate, tmo_now(), (uint64_t)res);
		r->_wait_from = 0;
		pump(r);
		return;
	}
	if (was_kick && res >= 0) {
		pump(r);
		return;
	}
	if (res == 0) {
		end(r, 0, TMO_LIMIT_NONE); /* end of file */
		return;
	}
	if ((r->_state & R_PAUSED) || self_cancelled) {
		/* The read that pause cancelled (or whose limit fired meanwhile: no limit runs
		 * while paused, and the overall deadline is checked again at resume). If resume
		 * came before this completion, reading goes on. */
		if (res == -ECANCELED || res == -ETIME) {
			pump(r);
			return;
		}
		end(r, res, TMO_LIMIT_NONE);
		return;
	}
	if (res == -ETIME) {
		if (!was_kick && tmo__scope_moved_later(r->_loop, op, r->_armed_limit)) {
			pump(r); /* the scope's deadline it carried was moved: wait on */
			return;
		}
		enum tmo_limit limit = tmo__limit_of_timeout(r->_loop, op, r->_armed_limit);
		if (limit == TMO_LIMIT_GAP && r->_on_gap == TMO_GAP_MARK && !was_kick) {
			/* The next wait counts from this marker's own deadline: a long silence
			 * gives a marker every gap, without drift. */
			r->_wait_from = r->_armed_at;
			if (emit(r, TMO_READER_TIMEOUT, NULL, 0, 0, TMO_LIMIT_GAP))
				pump(r);
			return;
		}
		end(r, -ETIME, limit);
		return;
	}
	end(r, res, TMO_LIMIT_NONE);
}

/* ---- the caller's side -------------------------------------------------------------------- */

/*
 * The gap and the rate window start afresh, from one clock reading: a silent peer under a gap
 * and a rate window of the same length then ties, and the tie goes to the gap (see
 * tmo__limits_next). Two readings would let the window start a few microseconds earlier and
 * the rate fire first.
 */
static void restart_waits(struct tmo_reader *r)
{
	int64_t now = tmo_now();

	r->_wait_from = r->_limits.gap_ns ? now : 0;
	tmo__rate_reset(&r->_rate, &r->_limits, now);
}

int tmo_reader_start(struct tmo_reader *reader, tmo_reader_cb cb)
{
	if (!reader || !cb || !(reader->_state & R_INIT))
		return -EINVAL;
	if (reader->_state & R_STARTED)
		return -EBUSY;
	reader->_cb = cb;
	reader->_total = 0;
	reader->_head = reader->_tail = reader->_scanned = 0;
	restart_waits(reader);
	int ret = kick(reader);
	if (!ret)
		reader->_state |= R_STARTED;
	return ret;
}

static bool stoppable(const struct tmo_reader *r)
{
	return r && (r->_state & R_STARTED);
}

int tmo_reader_pause(struct tmo_reader *reader)
{
	if (!stoppable(reader) || (reader->_state & R_STOP))
		return -EINVAL;
	if (reader->_state & R_PAUSED)
		return -EALREADY;
	reader->_state |= R_PAUSED;
	if ((reader->_state & R_OP) && !(reader->_state & R_KICK)) {
		reader->_state |= R_SELF_CANCEL;
		tmo_op_cancel(&reader->_op); /* -EALREADY: its deadline passed; handled alike */
	}
	return 0;
}

/* A resume while a request is in flight in another scope: the reads that follow join the
 * scope current now, as a resume with nothing in flight does. A hold keeps that scope alive
 * (busy) until a request has joined it. */
static void rescope(struct tmo_reader *r)
{
	struct tmo_scope *scope = tmo_loop_current_scope(r->_loop);

	if (r->_op._owner == (scope ? &scope->_c : NULL) && !(r->_state & R_RESCOPE))
		return;
	drop_rescope(r);
	if (scope)
		scope->_c.holds++;
	r->_next_scope = scope;
	r->_state |= R_RESCOPE;
}

int tmo_reader_resume(struct tmo_reader *reader)
{
	if (!stoppable(reader) || (reader->_state & R_STOP))
		return -EINVAL;
	if (!(reader->_state & R_PAUSED))
		return -EALREADY;
	reader->_state &= (uint16_t)~R_PAUSED;
	restart_waits(reader);
	/* From inside a callback pump() goes on by itself when it returns; with a request in
	 * flight (the read pause cancelled, or a nop) pump() follows its completion, in that
	 * request's scope: record the current one for the requests that follow. */
	if (reader->_state & R_OP)
		rescope(reader);
	else
		drop_rescope(reader); /* what comes next starts now, in the current scope */
	if (reader->_state & (R_OP | R_IN_CB))
		return 0;
	int ret = kick(reader);
	if (ret)
		reader->_state |= R_PAUSED; /* nothing changed */
	return ret;
}

int tmo_reader_stop(struct tmo_reader *reader)
{
	if (!stoppable(reader))
		return -EINVAL;
	if (reader->_state & R_STOP)
		return -EALREADY;
	if (reader->_state & R_IN_CB) {
		/* From the reader's own callback no request is in flight: END now, so that the
		 * reader is idle (free to free) when this returns. */
		finish(reader, -ECANCELED, TMO_LIMIT_NONE);
		return 0;
	}
	if (reader->_state & R_OP) {
		reader->_state |= R_STOP;
		if (!(reader->_state & R_KICK))
			tmo_op_cancel(&reader->_op);
		return 0;
	}
	/* No request in flight and not in a callback: the reader is paused (a nop brings it
	 * back to deliver END from the loop). */
	reader->_state |= R_STOP;
	int ret = kick(reader);
	if (ret)
		reader->_state &= (uint16_t)~R_STOP;
	return ret;
}
