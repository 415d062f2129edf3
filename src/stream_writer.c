/*
 * Stream writers: a buffer written to a socket or pipe in as many writes as the kernel needs,
 * each carrying the earliest of the stream's limits as its deadline, so a peer that stops
 * reading is cut off when the gap since the last progress passes (nginx's send_timeout).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "stream_limits.h"
#include "tmo/scope.h"

/* struct tmo_writer._state */
enum {
	W_INIT = 1u << 0,     /* tmo_writer_init succeeded */
	W_BUSY = 1u << 1,     /* a write is in progress: the callback has not fired */
	W_CANCEL = 1u << 2,   /* tmo_writer_cancel asked */
	W_SOCKET = 1u << 3,   /* send, not write */
	W_IOWQ = 1u << 4,     /* writes block in io-wq: PIPE_BUF at a time (see arm_write) */
};

/* The most one request asks for: the kernel's own limit for a single write. */
#define MAX_CHUNK (UINT32_C(1) << 30)

static struct tmo_writer *writer_of(struct tmo_op *op)
{
	return (struct tmo_writer *)((char *)op - offsetof(struct tmo_writer, _op));
}

int tmo_writer_init(struct tmo_writer *writer, struct tmo_loop *loop, int fd,
		    const struct tmo_stream_limits *limits)
{
	if (!writer || !loop || !loop->_state || tmo__limits_check(limits))
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	/* Busy, or its op not yet released by the kernel: wiping it would lose the request. */
	if (((writer->_state & W_INIT) && (writer->_state & W_BUSY)) || tmo_op_busy(&writer->_op))
		return -EBUSY;
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return -errno;
	if (S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode))
		return -EOPNOTSUPP; /* see tmo_reader_init */

	_Static_assert(offsetof(struct tmo_writer, data) == 0, "tmo__stream_clear keeps data");
	tmo__stream_clear(writer, sizeof(*writer), &writer->_op);
	writer->_loop = loop;
	writer->_fd = fd;
	tmo__limits_copy(&writer->_limits, limits);
	writer->_state = W_INIT;
	if (S_ISSOCK(sb.st_mode))
		writer->_state |= W_SOCKET;
	if (tmo__fd_io_blocks_in_iowq(fd, &sb))
		writer->_state |= W_IOWQ;
	return 0;
}

int tmo_writer_set_limits(struct tmo_writer *writer, const struct tmo_stream_limits *limits)
{
	if (!writer || !(writer->_state & W_INIT) || tmo__limits_check(limits))
		return -EINVAL;
	if (writer->_state & W_BUSY)
		return -EBUSY;
	tmo__limits_copy(&writer->_limits, limits);
	return 0;
}

bool tmo_writer_busy(const struct tmo_writer *writer)
{
	return writer && (writer->_state & W_BUSY);
}

uint64_t tmo_writer_total(const struct tmo_writer *writer)
{
	return writer ? writer->_total : 0;
}

static void on_op(struct tmo_op *op, int32_t res);

/* Issues the next write of what is left, with the earliest limit as its deadline. */
static int arm_write(struct tmo_writer *w)
{
	if (!w->_wait_from && w->_limits.gap_ns) /* only the gap needs the clock here */
		w->_wait_from = tmo_now();
	int64_t deadline = tmo__limits_next(&w->_limits, &w->_rate, w->_wait_from,
					    &w->_armed_limit);
	deadline = tmo__limits_with_scope(tmo_loop_current_scope(w->_loop), deadline,
					  &w->_armed_limit);
	size_t left = w->_len - w->_done;
	uint32_t chunk = left > MAX_CHUNK ? MAX_CHUNK : (uint32_t)left;
	/*
	 * A write that io_uring runs blocking in io-wq (a blocking FIFO; a blocking pipe before
	 * Linux 6.4) hides its progress: it goes on as the reader makes room, and a deadline that
	 * interrupts it returns the bytes written so far, which may be long ago. PIPE_BUF bytes
	 * are written atomically, all or nothing, so each completion is progress made just then
	 * and an interrupted one wrote nothing: the gap and the rate see every step.
	 */
	if ((w->_state & W_IOWQ) && chunk > PIPE_BUF)
		chunk = PIPE_BUF;

	if (w->_state & W_SOCKET)
		tmo_prep_send(&w->_op, w->_fd, w->_buf + w->_done, chunk, 0);
	else
		tmo_prep_write(&w->_op, w->_fd, w->_buf + w->_done, chunk, (uint64_t)-1);
	return tmo_op_start(w->_loop, &w->_op, tmo__deadline_out(deadline), on_op);
}

/* The write is over: the writer is idle from here, and may be freed by the callback. */
static void complete(struct tmo_writer *w, int32_t res, enum tmo_limit limit)
{
	size_t written = w->_done;

	w->_state &= (uint8_t)~(W_BUSY | W_CANCEL);
	w->_buf = NULL;
	w->_cb(w, res, written, res == -ETIME ? limit : TMO_LIMIT_NONE);
}

static void on_op(struct tmo_op *op, int32_t res)
{
	struct tmo_writer *w = writer_of(op);

	if (res > 0) {
		w->_done += (size_t)res;
		w->_total += (uint64_t)res;
		if (w->_rate.need)
			tmo__rate_add(&w->_rate, tmo_now(), (uint64_t)res);
		w->_wait_from = 0; /* progress: the next gap counts from the next write */
	}
	if (w->_done == w->_len && res >= 0) {
		complete(w, 0, TMO_LIMIT_NONE);
		return;
	}
	if (res >= 0 && (w->_state & W_CANCEL)) {
		/* Progress that beat the cancel: counted, and the rest is not written. */
		complete(w, -ECANCELED, TMO_LIMIT_NONE);
		return;
	}
	if (res >= 0) {
		/* A short write: the rest goes next. A write of 0 bytes is no progress; the gap
		 * limit still bounds the retries. */
		int ret = arm_write(w);
		if (ret)
			complete(w, ret, TMO_LIMIT_NONE);
		return;
	}
	if (res == -ETIME && tmo__scope_moved_later(w->_loop, op, w->_armed_limit)) {
		int ret = arm_write(w); /* the scope's deadline it carried was moved: wait on */
		if (ret)
			complete(w, ret, TMO_LIMIT_NONE);
		return;
	}
	if (res == -ETIME) {
		complete(w, -ETIME, tmo__limit_of_timeout(w->_loop, op, w->_armed_limit));
		return;
	}
	complete(w, res, TMO_LIMIT_NONE);
}

int tmo_writer_write(struct tmo_writer *writer, const void *buf, size_t len, tmo_writer_cb cb)
{
	if (!writer || !cb || !(writer->_state & W_INIT) || (!buf && len))
		return -EINVAL;
	if (writer->_state & W_BUSY)
		return -EBUSY;
	writer->_cb = cb;
	writer->_buf = buf;
	writer->_len = len;
	writer->_done = 0;
	writer->_wait_from = 0;
	tmo__rate_reset(&writer->_rate, &writer->_limits, tmo_now());
	int ret;
	if (len) {
		ret = arm_write(writer);
	} else {
		/* Nothing to write: the callback still comes from the loop. */
		tmo_prep_nop(&writer->_op);
		ret = tmo_op_start(writer->_loop, &writer->_op, TMO_NEVER, on_op);
	}
	if (!ret)
		writer->_state |= W_BUSY;
	return ret;
}

int tmo_writer_cancel(struct tmo_writer *writer)
{
	if (!writer || !(writer->_state & W_INIT))
		return -EINVAL;
	if (!(writer->_state & W_BUSY))
		return -ENOENT;
	if (writer->_state & W_CANCEL)
		return -EALREADY;
	int ret = tmo_op_cancel(&writer->_op);
	if (ret == 0)
		writer->_state |= W_CANCEL;
	return ret == -ENOENT ? -EALREADY : ret; /* -EALREADY: a deadline decided it first */
}
