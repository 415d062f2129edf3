/*
 * tmo streams: reading and writing a socket or pipe with per-gap deadlines.
 *
 * A deadline on a whole transfer is the wrong tool for a stream that may rightly last hours: what
 * matters is how long the peer keeps us waiting for the *next* chunk (nginx's
 * client_body_timeout and send_timeout, an async iterator under wait_for). Three limits apply to
 * a stream, each optional, and every read or write the stream issues carries a kernel-enforced
 * deadline (a linked timeout under TMO_DEADLINES_KERNEL) equal to the earliest of them and of any
 * enclosing scope's deadline:
 *
 *   gap       the longest wait for the next progress (a byte received, a byte accepted by the
 *             kernel for sending), measured from the moment the stream starts waiting: after a
 *             chunk has been delivered and your callback returned, after start or resume, or
 *             after a timeout marker (then from the marker's own deadline, so markers for one
 *             long silence come every `gap` without drift);
 *   deadline  an absolute end for the whole stream (tmo_now() clock);
 *   min_rate  a floor in bytes per second over a sliding window (`rate_window_ns`, 1 s if 0):
 *             once the stream has run for one window, it is cut off as soon as the last window
 *             holds fewer than min_rate * window bytes, so a peer that trickles one byte just
 *             inside the gap limit is still stopped (slowloris; freenginx's
 *             client_body_min_rate). The window is kept in 16 buckets: the cut comes never
 *             early and at most window/16 late. The history starts afresh at start, resume and
 *             each tmo_writer_write(); time spent in your callbacks counts toward it.
 *
 * Which limit ended a wait is reported as an enum tmo_limit.
 *
 * Nothing is lost: a read that a deadline cuts short either returned its bytes (they are
 * delivered) or consumed none (they stay in the socket or pipe for the next read). A write
 * reports how many bytes the kernel accepted.
 *
 * Descriptors: sockets are read with recv and written with send (MSG_NOSIGNAL: a closed peer
 * gives -EPIPE, not SIGPIPE); pipes, FIFOs and terminals with read and write (a pipe whose
 * reader is gone raises SIGPIPE as write(2) does: ignore SIGPIPE to get -EPIPE). O_NONBLOCK
 * descriptors work too: io_uring waits for readiness itself. Regular files and block devices
 * are refused (-EOPNOTSUPP): they never keep a reader waiting for a next chunk, and their reads
 * block inside the kernel's io-wq where a per-read deadline cannot reach (use tmo_prep_read
 * with TMO_OP_BLOCKING for them). The stream never closes the fd.
 *
 * Scopes: each read or write joins the loop's current scope at the moment it is issued, as any
 * operation does: the scope current at tmo_reader_start / tmo_reader_resume /
 * tmo_writer_write, and after that the same scope (a stream's callbacks run in it). A resume
 * moves a reader to the scope current then (or to none) even while the read its pause
 * cancelled is still in flight in the old one: the reads after it join the new scope, which is
 * held busy until they have. A scope's
 * deadline ends the stream with TMO_LIMIT_SCOPE. When it is the earliest limit, it is copied
 * into the request's own deadline, so the kernel enforces it like the others (a scope shifted
 * later lets the stream wait on with a new request when the old deadline comes; one shifted
 * earlier cuts the current request through the loop).
 *
 * Callbacks fire from inside tmo_loop_run*, never from the function that caused them.
 */
#ifndef TMO_STREAM_H
#define TMO_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "op.h"

TMO_BEGIN_DECLS

struct tmo_loop;
struct tmo_reader;
struct tmo_writer;

/* Which limit ended a wait. */
enum tmo_limit {
	TMO_LIMIT_NONE = 0, /* no limit: the stream ended for another reason */
	TMO_LIMIT_GAP,      /* no progress for gap_ns */
	TMO_LIMIT_DEADLINE, /* the stream's overall deadline */
	TMO_LIMIT_RATE,     /* fewer than min_rate bytes per second over the last window */
	TMO_LIMIT_SCOPE,    /* an enclosing scope's (or group's) deadline */
};

/* "none", "gap", "deadline", "rate", "scope"; "unknown" out of range. Never NULL. */
TMO_API const char *tmo_limit_name(enum tmo_limit limit);

/* The limits of a stream. Zero-initialised means no limit at all. */
struct tmo_stream_limits {
	int64_t gap_ns;         /* longest wait for the next progress; 0: none */
	tmo_deadline deadline;  /* end of the stream; zero-initialised: TMO_NEVER */
	uint64_t min_rate;      /* bytes per second; 0: none */
	int64_t rate_window_ns; /* window for min_rate; 0: one second */
};

/* Private parts, kept here only so that the caller can embed the structs. */
struct tmo__rate_window {
	int64_t width;   /* bucket width: the window / TMO__RATE_BUCKETS */
	int64_t window;
	int64_t since;   /* the history starts here */
	uint64_t need;   /* bytes the window must hold */
	struct {
		int64_t id;     /* time / width */
		uint64_t bytes;
	} bucket[18];        /* ring, oldest first from `first` */
	uint8_t first, count;
};

/* ---- reading ------------------------------------------------------------------------------ */

/* What a reader does when the gap limit passes. */
enum tmo_on_gap {
	TMO_GAP_END = 0, /* end the stream with -ETIME (wait_for around the whole iteration) */
	TMO_GAP_MARK,    /* deliver a TMO_READER_TIMEOUT marker and keep reading (the sentinel of
	                    an async iterator with a timeout): no byte is lost, reordered or
	                    duplicated. Only the gap limit marks; the others still end the stream. */
};

/* How a reader cuts what it receives into pieces for the callback. */
enum tmo_frame {
	TMO_FRAME_CHUNK = 0, /* whatever each read returned (the default) */
	TMO_FRAME_DELIMITER, /* up to and including a delimiter of 1 to 16 bytes ("\n", "\r\n") */
	TMO_FRAME_EXACT,     /* exactly n bytes */
};

enum tmo_reader_event_kind {
	TMO_READER_DATA = 1, /* a chunk or a frame: data, len */
	TMO_READER_TIMEOUT,  /* the gap limit passed (TMO_GAP_MARK); the stream goes on */
	TMO_READER_END,      /* the stream is over; the last event */
};

/* "data", "timeout", "end"; "unknown" out of range. Never NULL. */
TMO_API const char *tmo_reader_event_name(enum tmo_reader_event_kind kind);

struct tmo_reader_event {
	enum tmo_reader_event_kind kind;
	/*
	 * DATA: the chunk or frame, valid until the callback returns.
	 * END: the bytes received but never delivered as a frame (a partial line, fewer than n
	 * bytes; for TMO_FRAME_CHUNK only after a stop or pause: what a cancelled read had got),
	 * valid until the callback returns. Nothing is lost.
	 * TIMEOUT: NULL, 0.
	 */
	const uint8_t *data;
	size_t len;
	/*
	 * END only: 0 at end of file; -ETIME when a limit ended it (`limit` says which);
	 * -ECANCELED after tmo_reader_stop(); -ENOBUFS when a delimited frame did not fit in the
	 * buffer; otherwise the kernel's error (-ECONNRESET, -EBADF, ...). 0 for DATA and TIMEOUT.
	 */
	int32_t error;
	enum tmo_limit limit; /* TIMEOUT: TMO_LIMIT_GAP; END with -ETIME: the limit; else NONE */
	uint64_t total;       /* bytes received by the stream since start, this event's included */
	size_t buffered;      /* bytes received and not yet delivered (a partial frame) */
};

/* Fires for every event. TMO_READER_END comes exactly once per tmo_reader_start() and is the
 * last; from inside it the reader is idle and may be started again or freed. */
typedef void (*tmo_reader_cb)(struct tmo_reader *reader, const struct tmo_reader_event *event);

struct tmo_reader_options {
	struct tmo_stream_limits limits;
	enum tmo_on_gap on_gap;
};

struct tmo_reader {
	/* The caller's pointer; tmo never reads or writes it. */
	void *data;

	/* private: everything below is tmo's; use the functions in this header. */
	struct tmo_op _op;
	struct tmo_loop *_loop;
	tmo_reader_cb _cb;
	uint8_t *_buf;
	size_t _cap, _head, _tail, _scanned;
	size_t _exact;
	uint8_t _delim[16];
	uint8_t _delim_len;
	uint8_t _frame;
	uint8_t _on_gap;
	uint8_t _armed_limit;
	uint8_t _end_limit;
	uint16_t _state;
	int32_t _fd;
	int32_t _end_error;  /* an end seen while paused, delivered after resume */
	struct tmo_stream_limits _limits;
	int64_t _wait_from;  /* the gap is measured from here (0: from when the wait starts) */
	int64_t _armed_at;   /* deadline of the read in flight */
	uint64_t _total;
	struct tmo__rate_window _rate;
	bool *_ended_in_cb;  /* while a DATA or TIMEOUT callback runs: set when END is delivered */
	struct tmo_scope *_next_scope; /* resumed in it while a request was in another scope */
};

/*
 * Sets up `reader` to read `fd` into the caller's buffer `buf` of `cap` bytes (at least 1). The
 * buffer bounds a chunk and a frame (a delimited frame longer than cap ends the stream with
 * -ENOBUFS). `options` may be NULL (no limits, TMO_GAP_END). Framing starts as
 * TMO_FRAME_CHUNK. Nothing is started. Returns 0, or -EINVAL (NULL reader, loop or buf, cap 0
 * or over 2^31, bad limits: negative values, an unknown on_gap), -EBADF (fd < 0 or not open),
 * -EOPNOTSUPP (a regular file or block device), -EBUSY (the reader is started). `reader` must be
 * zeroed or idle.
 */
TMO_API int tmo_reader_init(struct tmo_reader *reader, struct tmo_loop *loop, int fd, void *buf,
			    size_t cap, const struct tmo_reader_options *options);

/*
 * Chooses how the next frames are cut: TMO_FRAME_CHUNK (arg unused), TMO_FRAME_DELIMITER (the
 * `delim_len` bytes at `delim`), TMO_FRAME_EXACT (`exact` bytes, at most cap). May be called at
 * any time, from callbacks too (a line-based header, then a body of known length): it applies
 * to the next frame delivered, including bytes already buffered. Returns 0, or -EINVAL (NULL,
 * unknown frame, delimiter empty or over 16 bytes, exact 0), -ENOBUFS (exact > cap).
 */
TMO_API int tmo_reader_frame(struct tmo_reader *reader, enum tmo_frame frame, const void *delim,
			     size_t delim_len, size_t exact);

/* Replaces the limits; the next wait uses them (the read in flight keeps its deadline).
 * Returns 0 or -EINVAL. */
TMO_API int tmo_reader_set_limits(struct tmo_reader *reader,
				  const struct tmo_stream_limits *limits);

/* Starts reading; events go to `cb` until TMO_READER_END. Returns 0, or -EINVAL (NULL, never
 * initialised), -EBUSY (already started), or an error of tmo_op_start. */
TMO_API int tmo_reader_start(struct tmo_reader *reader, tmo_reader_cb cb);

/*
 * Stops delivering events from this call on, until tmo_reader_resume(): no event, not even
 * END, comes while paused, and no limit runs (the overall deadline is checked again at
 * resume). May be called from a callback (backpressure: frames already buffered wait). A read
 * in flight is cancelled; bytes it had already got are kept and delivered after resume (or in
 * END after a stop). Returns 0, -EALREADY (already paused), -EINVAL (not started, stopping,
 * or NULL).
 */
TMO_API int tmo_reader_pause(struct tmo_reader *reader);

/* Resumes a paused reader: frames already buffered come first, then reading goes on; the gap
 * and the rate window start afresh. Returns 0, -EALREADY (not paused), -EINVAL (not started,
 * stopping, or NULL). */
TMO_API int tmo_reader_resume(struct tmo_reader *reader);

/*
 * Ends the stream: TMO_READER_END with -ECANCELED follows, carrying every byte received and
 * not yet delivered. Called from this reader's own DATA or TIMEOUT callback, END is delivered
 * before tmo_reader_stop() returns (a nested callback): the reader is idle when it returns and
 * may be freed or started again right there. Called from anywhere else, END comes later from
 * the loop, and the reader must stay allocated until it has (tmo_reader_busy()). A read in
 * flight that had already got bytes is not lost either: they are in that END. An end the reader
 * met and had not delivered yet (end of file, an error, a limit: while paused, or racing the
 * stop) gives way to the stop. Returns 0,
 * -EALREADY (already stopping), -EINVAL (not started, or NULL).
 */
TMO_API int tmo_reader_stop(struct tmo_reader *reader);

/* True from tmo_reader_start() until its TMO_READER_END callback is called. While true the
 * reader and its buffer must not be freed. */
TMO_API bool tmo_reader_busy(const struct tmo_reader *reader);

/* True while the reader is started and paused (tmo_reader_pause() without a resume yet). */
TMO_API bool tmo_reader_paused(const struct tmo_reader *reader);

/* Bytes received since the last start. */
TMO_API uint64_t tmo_reader_total(const struct tmo_reader *reader);

/* ---- writing ------------------------------------------------------------------------------ */

/*
 * Fires once per tmo_writer_write(): res is 0 when every byte was accepted by the kernel;
 * -ETIME when a limit passed first (`limit` says which); -ECANCELED after tmo_writer_cancel();
 * otherwise the kernel's error (-EPIPE when the peer closed, ...). `written` is how many bytes
 * of the buffer were accepted before that, in every case. From inside the callback the writer is
 * idle: it may write again or be freed.
 */
typedef void (*tmo_writer_cb)(struct tmo_writer *writer, int32_t res, size_t written,
			      enum tmo_limit limit);

struct tmo_writer {
	/* The caller's pointer; tmo never reads or writes it. */
	void *data;

	/* private */
	struct tmo_op _op;
	struct tmo_loop *_loop;
	tmo_writer_cb _cb;
	const uint8_t *_buf;
	size_t _len, _done;
	int32_t _fd;
	uint8_t _armed_limit;
	uint8_t _state;
	struct tmo_stream_limits _limits;
	int64_t _wait_from;
	uint64_t _total;
	struct tmo__rate_window _rate;
};

/*
 * Sets up `writer` for `fd` with `limits` (NULL: none). Nothing is started. Returns 0, or
 * -EINVAL (NULL writer or loop, bad limits), -EBADF (fd < 0 or not open), -EOPNOTSUPP (a
 * regular file or block device), -EBUSY (a write is in progress).
 * `writer` must be zeroed or idle.
 */
TMO_API int tmo_writer_init(struct tmo_writer *writer, struct tmo_loop *loop, int fd,
			    const struct tmo_stream_limits *limits);

/* Replaces the limits for the next write. Returns 0, -EINVAL, -EBUSY (a write in progress). */
TMO_API int tmo_writer_set_limits(struct tmo_writer *writer,
				  const struct tmo_stream_limits *limits);

/*
 * Writes all `len` bytes of `buf` (caller-owned, valid until the callback), issuing as many
 * writes as the kernel needs, each with the earliest of: the gap limit since the last progress,
 * the overall deadline, the rate floor, enclosing scopes. A peer that stops reading is cut off
 * by the gap limit once the socket's buffers are full. One write at a time. Returns 0, or
 * -EINVAL (NULL, never initialised, NULL buf with len > 0), -EBUSY (a write in progress), or
 * an error of tmo_op_start. len 0 completes with 0 from the loop.
 */
TMO_API int tmo_writer_write(struct tmo_writer *writer, const void *buf, size_t len,
			     tmo_writer_cb cb);

/* Cancels the write in progress: the callback follows with -ECANCELED (or its own outcome if
 * that came first) and the bytes written so far. Returns 0, -EALREADY, -ENOENT (no write in
 * progress), -EINVAL. */
TMO_API int tmo_writer_cancel(struct tmo_writer *writer);

/* True from tmo_writer_write() until its callback is called. */
TMO_API bool tmo_writer_busy(const struct tmo_writer *writer);

/* Bytes written since init, over every write. */
TMO_API uint64_t tmo_writer_total(const struct tmo_writer *writer);

TMO_END_DECLS

#endif
