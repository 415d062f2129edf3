/*
 * Fuzzes the stream reader's framing (include/tmo/stream.h): one stream of bytes is written
 * into a socketpair or a pipe in chunks the input chooses, between runs of the loop, while the
 * reader is paused and resumed, its framing switched (chunks, a delimiter of 1 to 3 bytes,
 * exactly n bytes) and sometimes stopped, from the harness and from its own callbacks, with
 * gap markers on or off. Checked on every event against a model of the stream:
 *
 *   - every byte is delivered exactly once and in order: each DATA is the next bytes of the
 *     stream, and END carries the next ones after it (what was received and not delivered);
 *   - a frame is what the framing in force says: a delimited frame ends with the delimiter
 *     and holds no earlier one, an exact frame has exactly n bytes, a chunk 1 to cap bytes;
 *   - at end of file the whole stream has come, and what END carries is a partial frame
 *     (no delimiter in it, fewer than n bytes, nothing for chunks);
 *   - -ENOBUFS only for a delimited frame longer than the buffer, -ECANCELED only after a
 *     stop, never -ETIME (gap markers only mark) or another error;
 *   - no event while paused, END exactly once and last, the reader idle inside END, the
 *     counters (total, buffered) consistent, and nothing left active or leaked at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "fuzz_common.h"

#define MAX_STREAM 4096
#define MAX_STEPS 64
#define MAX_CAP 64

struct harness {
	struct fuzz_input in;
	struct tmo_loop loop;
	struct tmo_reader reader;
	uint8_t *buf;
	size_t cap;
	int rfd, wfd;

	/* The framing in force, as the harness last set it. */
	enum tmo_frame frame;
	uint8_t delim[3];
	size_t delim_len, exact;

	uint8_t stream[MAX_STREAM]; /* every byte written so far */
	size_t written;             /* ... how many */
	bool closed;                /* the write end is closed: end of file follows the bytes */
	size_t delivered;           /* bytes delivered in DATA (and END) so far */
	uint64_t last_total;

	bool paused, stopped, ended;
	int events;
};

/* The end of the first occurrence of the delimiter in p[0, n), or 0 if there is none. */
static size_t delim_end(const struct harness *h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + h->delim_len <= n; i++)
		if (!memcmp(p + i, h->delim, h->delim_len))
			return i + h->delim_len;
	return 0;
}

/* Sets a framing from the input: chunks, a delimiter of 1 to 3 bytes, or exactly n bytes. */
static void choose_frame(struct harness *h)
{
	uint8_t b = fuzz_byte(&h->in);
	enum tmo_frame frame = (enum tmo_frame)(b % 3);
	int ret;
	if (frame == TMO_FRAME_DELIMITER) {
		uint8_t delim[3];
		size_t len = 1 + (b >> 2) % 3;
		for (size_t i = 0; i < len; i++)
			delim[i] = fuzz_byte(&h->in);
		ret = tmo_reader_frame(&h->reader, frame, delim, len, 0);
		FUZZ_CHECK(ret == 0, "tmo_reader_frame(delimiter of %zu) = %d", len, ret);
		memcpy(h->delim, delim, len);
		h->delim_len = len;
	} else if (frame == TMO_FRAME_EXACT) {
		size_t n = fuzz_range(&h->in, 1, (uint32_t)h->cap);
		ret = tmo_reader_frame(&h->reader, frame, NULL, 0, n);
		FUZZ_CHECK(ret == 0, "tmo_reader_frame(exact %zu, cap %zu) = %d", n, h->cap, ret);
		h->exact = n;
	} else {
		ret = tmo_reader_frame(&h->reader, frame, NULL, 0, 0);
		FUZZ_CHECK(ret == 0, "tmo_reader_frame(chunk) = %d", ret);
	}
	h->frame = frame;
	TRACE("frame %s\n", frame == TMO_FRAME_CHUNK   ? "chunk"
			     : frame == TMO_FRAME_EXACT ? "exact"
							: "delimiter");
}

/* A DATA frame: the next bytes of the stream, cut as the framing says. */
static void check_data(struct harness *h, const struct tmo_reader_event *ev)
{
	FUZZ_CHECK(ev->data && ev->len >= 1 && ev->len <= h->cap, "DATA of %zu bytes, cap %zu",
		   ev->len, h->cap);
	FUZZ_CHECK(ev->data >= h->buf && ev->data + ev->len <= h->buf + h->cap,
		   "DATA outside the caller's buffer");
	FUZZ_CHECK(h->delivered + ev->len <= h->written, "DATA of %zu bytes after %zu, only %zu written",
		   ev->len, h->delivered, h->written);
	FUZZ_CHECK(!memcmp(ev->data, h->stream + h->delivered, ev->len),
		   "DATA at offset %zu (%zu bytes) is not the stream's bytes", h->delivered, ev->len);
	switch (h->frame) {
	case TMO_FRAME_DELIMITER:
		FUZZ_CHECK(delim_end(h, ev->data, ev->len) == ev->len,
			   "a delimited frame of %zu bytes at offset %zu ends at %zu", ev->len,
			   h->delivered, delim_end(h, ev->data, ev->len));
		break;
	case TMO_FRAME_EXACT:
		FUZZ_CHECK(ev->len == h->exact, "exact frame of %zu bytes, not %zu", ev->len, h->exact);
		break;
	case TMO_FRAME_CHUNK:
		break;
	}
	h->delivered += ev->len;
	FUZZ_CHECK(ev->total >= h->last_total && ev->total <= h->written,
		   "total %llu (before %llu, %zu written)", (unsigned long long)ev->total,
		   (unsigned long long)h->last_total, h->written);
	FUZZ_CHECK(h->delivered + ev->buffered == ev->total,
		   "delivered %zu + buffered %zu != total %llu", h->delivered, ev->buffered,
		   (unsigned long long)ev->total);
	h->last_total = ev->total;
}

static void check_end(struct harness *h, const struct tmo_reader_event *ev)
{
	FUZZ_CHECK(!tmo_reader_busy(&h->reader), "reader busy inside its END");
	FUZZ_CHECK(ev->len == 0 || (ev->data >= h->buf && ev->data + ev->len <= h->buf + h->cap),
		   "END data outside the caller's buffer");
	FUZZ_CHECK(h->delivered + ev->len <= h->written, "END of %zu bytes after %zu, only %zu written",
		   ev->len, h->delivered, h->written);
	FUZZ_CHECK(ev->len == 0 || !memcmp(ev->data, h->stream + h->delivered, ev->len),
		   "END's %zu bytes at offset %zu are not the stream's", ev->len, h->delivered);
	FUZZ_CHECK(ev->total <= h->written && h->delivered + ev->len <= ev->total,
		   "END: total %llu, delivered %zu + %zu, written %zu", (unsigned long long)ev->total,
		   h->delivered, ev->len, h->written);
	const uint8_t *rest = h->stream + h->delivered;
	size_t rest_len = h->written - h->delivered;
	switch (ev->error) {
	case 0: /* end of file: everything has come, and what is left is a partial frame */
		FUZZ_CHECK(h->closed, "end of file before the write end was closed");
		FUZZ_CHECK(h->delivered + ev->len == h->written, "EOF after %zu + %zu of %zu bytes",
			   h->delivered, ev->len, h->written);
		if (h->frame == TMO_FRAME_DELIMITER)
			FUZZ_CHECK(delim_end(h, ev->data, ev->len) == 0,
				   "END at EOF holds a whole delimited frame (%zu bytes)", ev->len);
		else if (h->frame == TMO_FRAME_EXACT)
			FUZZ_CHECK(ev->len < h->exact, "END at EOF holds %zu bytes, a frame is %zu",
				   ev->len, h->exact);
		else
			FUZZ_CHECK(ev->len == 0, "END at EOF holds %zu bytes of chunks", ev->len);
		break;
	case -ECANCELED:
		FUZZ_CHECK(h->stopped, "END -ECANCELED without a stop");
		break;
	case -ENOBUFS: {
		/* The next frame does not fit: its delimiter ends beyond cap, or there is none yet
		 * and the buffer is full. */
		FUZZ_CHECK(h->frame == TMO_FRAME_DELIMITER, "-ENOBUFS with framing %d", h->frame);
		size_t e = delim_end(h, rest, rest_len);
		FUZZ_CHECK(e > h->cap || (e == 0 && rest_len >= h->cap),
			   "-ENOBUFS but the next frame (%zu bytes of %zu buffered) fits in %zu", e,
			   rest_len, h->cap);
		break;
	}
	default:
		FUZZ_CHECK(0, "END with error %d (%s), limit %s", ev->error, strerror(-ev->error),
			   tmo_limit_name(ev->limit));
	}
	h->delivered += ev->len;
	h->ended = true;
}

static void on_event(struct tmo_reader *reader, const struct tmo_reader_event *ev)
{
	struct harness *h = reader->data;
	TRACE("event %s len %zu error %d limit %s total %llu buffered %zu\n",
	      tmo_reader_event_name(ev->kind), ev->len, ev->error, tmo_limit_name(ev->limit),
	      (unsigned long long)ev->total, ev->buffered);
	FUZZ_CHECK(!h->ended, "event %s after END", tmo_reader_event_name(ev->kind));
	FUZZ_CHECK(!h->paused, "event %s while paused", tmo_reader_event_name(ev->kind));
	h->events++;
	switch (ev->kind) {
	case TMO_READER_DATA:
		FUZZ_CHECK(ev->error == 0, "DATA with error %d", ev->error);
		check_data(h, ev);
		break;
	case TMO_READER_TIMEOUT:
		FUZZ_CHECK(ev->data == NULL && ev->len == 0 && ev->error == 0 &&
				   ev->limit == TMO_LIMIT_GAP,
			   "TIMEOUT with %zu bytes, error %d, limit %s", ev->len, ev->error,
			   tmo_limit_name(ev->limit));
		break;
	case TMO_READER_END:
		check_end(h, ev);
		return;
	default:
		FUZZ_CHECK(0, "unknown event kind %d", ev->kind);
	}

	/* What the callback does next: nothing, pause, switch the framing, or stop. */
	uint8_t b = fuzz_byte(&h->in);
	if (b < 192)
		return;
	if (b < 224) {
		int ret = tmo_reader_pause(reader);
		FUZZ_CHECK(ret == 0, "pause from a callback = %d", ret);
		h->paused = true;
	} else if (b < 254) {
		choose_frame(h);
	} else {
		h->stopped = true;
		int ret = tmo_reader_stop(reader);
		/* From its own callback, END comes before stop returns. */
		FUZZ_CHECK(ret == 0 && h->ended, "stop from a callback = %d, ended %d", ret, h->ended);
	}
}

/* Writes the next chunk of the stream (the write end never blocks: the stream is small). */
static void write_chunk(struct harness *h, size_t want)
{
	if (h->closed)
		return;
	if (h->written + want > MAX_STREAM)
		want = MAX_STREAM - h->written;
	size_t got;
	const uint8_t *p = fuzz_payload(&h->in, want, &got);
	if (got == 0)
		return;
	memcpy(h->stream + h->written, p, got);
	ssize_t n = write(h->wfd, p, got);
	FUZZ_CHECK(n == (ssize_t)got, "write of %zu: %zd (%s)", got, n, strerror(errno));
	h->written += got;
}

static void close_writer(struct harness *h)
{
	if (!h->closed) {
		close(h->wfd);
		h->closed = true;
	}
}

static void run_nowait(struct harness *h)
{
	int ret = tmo_loop_run(&h->loop, TMO_RUN_NOWAIT);
	FUZZ_CHECK(ret >= 0, "tmo_loop_run(NOWAIT) = %d", ret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct harness h;
	memset(&h, 0, sizeof h);
	fuzz_input_init(&h.in, data, size);

	uint8_t flags = fuzz_byte(&h.in);
	bool use_pipe = flags & 1, mark_gaps = flags & 2;
	struct tmo_loop_options lopt = {
		.ring_entries = 2u << (flags >> 2 & 3), /* 2 to 16: a tiny ring on purpose */
		.deadlines = (flags & 16) ? TMO_DEADLINES_LOOP : TMO_DEADLINES_KERNEL,
	};
	h.cap = fuzz_range(&h.in, 1, MAX_CAP);
	TRACE("%s, ring %u, %s deadlines, cap %zu%s\n", use_pipe ? "pipe" : "socketpair",
	      lopt.ring_entries, lopt.deadlines ? "loop" : "kernel", h.cap,
	      mark_gaps ? ", gap markers every 1 ms" : "");

	int fds[2];
	if (use_pipe)
		FUZZ_CHECK(pipe2(fds, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	else
		FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0,
			   "socketpair: %s", strerror(errno));
	h.rfd = fds[0];
	h.wfd = fds[1];
	fcntl(h.wfd, F_SETFL, O_NONBLOCK);

	int ret = tmo_loop_init(&h.loop, &lopt);
	FUZZ_CHECK(ret == 0, "tmo_loop_init = %d", ret);
	h.buf = malloc(h.cap); /* exactly cap bytes: ASan sees any write past it */
	struct tmo_reader_options ropt = { 0 };
	if (mark_gaps) { /* markers every 1 ms of silence: they must not disturb the bytes */
		ropt.limits.gap_ns = TMO_NSEC_PER_MSEC;
		ropt.on_gap = TMO_GAP_MARK;
	}
	ret = tmo_reader_init(&h.reader, &h.loop, h.rfd, h.buf, h.cap, &ropt);
	FUZZ_CHECK(ret == 0, "tmo_reader_init = %d", ret);
	h.reader.data = &h;
	choose_frame(&h);
	ret = tmo_reader_start(&h.reader, on_event);
	FUZZ_CHECK(ret == 0, "tmo_reader_start = %d", ret);

	for (int step = 0; step < MAX_STEPS && !h.ended && !fuzz_input_done(&h.in); step++) {
		uint8_t op = fuzz_byte(&h.in);
		TRACE("step %d: op %d (%d), %zu written, %zu delivered%s%s\n", step, op % 8, op,
		      h.written, h.delivered, h.paused ? ", paused" : "", h.closed ? ", closed" : "");
		switch (op % 8) {
		case 0: case 1: case 2:
			write_chunk(&h, 1 + (op >> 3) % 48);
			break;
		case 3:
			if (h.paused) {
				ret = tmo_reader_resume(&h.reader);
				FUZZ_CHECK(ret == 0, "resume = %d", ret);
				h.paused = false;
			} else if (!h.stopped) {
				ret = tmo_reader_pause(&h.reader);
				FUZZ_CHECK(ret == 0, "pause = %d", ret);
				h.paused = true;
			}
			break;
		case 4:
			choose_frame(&h);
			break;
		case 5: { /* wait a little for what the kernel has */
			ret = tmo_loop_run_until(&h.loop, tmo_in_ns(100 * TMO_NSEC_PER_USEC));
			FUZZ_CHECK(ret >= 0, "tmo_loop_run_until = %d", ret);
			break;
		}
		case 6:
			if (op == 6 && !h.stopped && !h.paused) { /* rarely: stop from outside */
				h.stopped = true;
				ret = tmo_reader_stop(&h.reader);
				FUZZ_CHECK(ret == 0, "stop = %d", ret);
			} else {
				close_writer(&h);
			}
			break;
		default:
			break;
		}
		if (!h.ended)
			run_nowait(&h);
	}

	/* The rest of the stream, end of file, and the loop until END: it must come. */
	while (!h.ended && !h.closed && h.in.back > h.in.front)
		write_chunk(&h, MAX_STREAM);
	close_writer(&h);
	int64_t give_up = tmo_now() + 2 * TMO_NSEC_PER_SEC;
	while (!h.ended) {
		FUZZ_CHECK(tmo_now() < give_up, "no END 2 s after end of file (%zu of %zu delivered)",
			   h.delivered, h.written);
		if (h.paused) { /* the callbacks may pause it again: resume each time */
			ret = tmo_reader_resume(&h.reader);
			FUZZ_CHECK(ret == 0, "final resume = %d", ret);
			h.paused = false;
		}
		ret = tmo_loop_run_until(&h.loop, tmo_in_ms(10));
		FUZZ_CHECK(ret >= 0, "tmo_loop_run_until = %d", ret);
	}
	ret = tmo_loop_run(&h.loop, TMO_RUN_DEFAULT);
	FUZZ_CHECK(ret == 0, "work still active after END: %d", ret);
	ret = tmo_loop_close(&h.loop);
	FUZZ_CHECK(ret == 0, "tmo_loop_close = %d", ret);
	close(h.rfd);
	free(h.buf);
	return 0;
}
