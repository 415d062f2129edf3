/*
 * stream-lossless: a writer thread sends a known pseudo-random byte sequence in 10,000 chunks of
 * 1 to 3,000 bytes. Most chunks follow at once; one in 20 waits around the reader's gap limit G
 * (0.8 to 1.2 G, mostly within 3 %, or 2 G), so gap markers race arriving bytes. A TMO_GAP_MARK reader must
 * hand over every byte, in order, exactly once, report only gap markers (some, never early), and
 * end with EOF. Over a socketpair and a pipe, with both deadline strategies (and once in the
 * low-latency ring mode), in chunks and in lines.
 *
 * Arithmetic: G = 3 ms; 500 waits of 1.1 G on average are about 1.7 s a run, plus about 15 MB of
 * copying (well under 0.5 s, under ASan too); nine runs, about 16 s.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define MS TMO_NSEC_PER_MSEC
#define GAP (3 * MS)

enum { CHUNKS = 10000, MAX_CHUNK = 3000, CAP = 4096 };

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* The scenario: the sequence, and each chunk's size and the wait before it. */
struct plan {
	uint8_t *seq;
	size_t len;
	uint32_t size[CHUNKS];
	int64_t wait[CHUNKS];
	int waits_near_gap;
};

static void plan_make(struct plan *p, uint64_t seed, bool lines)
{
	/* Waits in hundredths of the gap: mostly within 3 % of it, where markers race bytes. */
	static const int pct[] = { 80, 90, 97, 99, 100, 101, 103, 110, 120, 200 };
	uint64_t s = seed;

	memset(p, 0, sizeof(*p));
	for (int i = 0; i < CHUNKS; i++) {
		p->size[i] = 1 + (uint32_t)(xorshift(&s) % MAX_CHUNK);
		p->len += p->size[i];
		uint64_t r = xorshift(&s) % 200;
		if (i > 0 && r < 10) {
			p->wait[i] = GAP * pct[r] / 100;
			p->waits_near_gap++;
		}
	}
	p->seq = malloc(p->len);
	assert_non_null(p->seq);
	for (size_t i = 0; i < p->len; i++) {
		uint8_t b = (uint8_t)(xorshift(&s) >> 24);
		if (lines) /* lines of 64 bytes on average, never longer than the buffer in practice */
			b = (b & 63) == 0 ? '\n' : (b == '\n' ? 'N' : b);
		p->seq[i] = b;
	}
	if (lines)
		p->seq[p->len - 1] = 'Z'; /* a partial last line for END */
}

/* ---- writer thread ------------------------------------------------------------------------ */

struct writer {
	const struct plan *plan;
	int fd;
	bool sock;
	int err; /* errno of a failed write, 0 */
	pthread_t thread;
};

static void sleep_until(int64_t when)
{
	struct timespec ts = { .tv_sec = when / TMO_NSEC_PER_SEC,
			       .tv_nsec = when % TMO_NSEC_PER_SEC };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	const struct plan *p = w->plan;
	size_t off = 0;
	int64_t last = tmo_now();

	for (int i = 0; i < CHUNKS && !w->err; i++) {
		if (p->wait[i])
			sleep_until(last + p->wait[i]); /* absolute: tmo_now() is CLOCK_MONOTONIC */
		size_t left = p->size[i];
		while (left) {
			ssize_t n = w->sock ? send(w->fd, p->seq + off, left, MSG_NOSIGNAL)
					    : write(w->fd, p->seq + off, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				w->err = n < 0 ? errno : EIO;
				break;
			}
			off += (size_t)n;
			left -= (size_t)n;
		}
		last = tmo_now();
	}
	close(w->fd);
	return NULL;
}

/* ---- checking reader ------------------------------------------------------------------------ */

struct check {
	struct tmo_reader reader;
	uint8_t buf[CAP];
	const struct plan *plan;
	bool lines;
	size_t pos; /* bytes delivered so far */
	uint64_t data_events, markers, ends;
	int markers_in_a_row;
	int64_t last_left;
	int32_t end_error;
	enum tmo_limit end_limit;
	uint64_t end_total;
	char failure[256]; /* the first broken promise; the reader is stopped then */
};

/*
 * A failure inside the callback is recorded and the stream stopped, rather than asserted there:
 * unwinding out of the loop would leave the writer thread blocked on a full pipe.
 */
#define CHECK(c, cond, ...)                                                                  \
	do {                                                                                 \
		if (!(cond) && !(c)->failure[0]) {                                           \
			snprintf((c)->failure, sizeof((c)->failure), __VA_ARGS__);           \
			tmo_reader_stop(&(c)->reader);                                       \
		}                                                                            \
	} while (0)

static void check_cb(struct tmo_reader *reader, const struct tmo_reader_event *e)
{
	struct check *c = reader->data;
	const struct plan *p = c->plan;
	int64_t now = tmo_now();

	CHECK(c, c->ends == 0, "an event after END");
	if (c->failure[0] && e->kind != TMO_READER_END)
		return;
	switch (e->kind) {
	case TMO_READER_DATA:
		CHECK(c, e->len > 0 && e->len <= CAP, "DATA of %zu bytes", e->len);
		CHECK(c, e->error == 0 && e->limit == TMO_LIMIT_NONE, "DATA with error %d",
		      e->error);
		if (c->failure[0])
			return;
		CHECK(c, c->pos + e->len <= p->len, "DATA past the end of the sequence");
		CHECK(c, !memcmp(e->data, p->seq + c->pos, e->len),
		      "DATA of %zu bytes at offset %zu differs from the sequence", e->len, c->pos);
		if (c->lines) {
			CHECK(c, e->data[e->len - 1] == '\n', "a frame not ending in \\n at %zu",
			      c->pos);
			CHECK(c, !memchr(e->data, '\n', e->len - 1), "two lines in a frame at %zu",
			      c->pos);
		}
		c->pos += e->len;
		CHECK(c, e->total == c->pos + e->buffered,
		      "DATA total %llu != delivered %zu + buffered %zu",
		      (unsigned long long)e->total, c->pos, e->buffered);
		c->data_events++;
		c->markers_in_a_row = 0;
		break;
	case TMO_READER_TIMEOUT:
		CHECK(c, e->limit == TMO_LIMIT_GAP, "a marker for limit %d", (int)e->limit);
		CHECK(c, e->error == 0 && !e->data && !e->len, "a marker with data or an error");
		CHECK(c, e->total == c->pos + e->buffered,
		      "TIMEOUT total %llu != delivered %zu + buffered %zu",
		      (unsigned long long)e->total, c->pos, e->buffered);
		c->markers++;
		c->markers_in_a_row++;
		/* Never early: the k-th marker of a silence is due k gaps after the wait began,
		 * which was no earlier than the return of the previous callback that was not a
		 * marker. */
		CHECK(c, now >= c->last_left + c->markers_in_a_row * GAP, "marker %.3f ms early",
		      (double)(c->last_left + c->markers_in_a_row * GAP - now) / 1e6);
		break;
	case TMO_READER_END:
		c->ends++;
		c->end_error = e->error;
		c->end_limit = e->limit;
		c->end_total = e->total;
		if (c->failure[0])
			return;
		CHECK(c, c->pos + e->len <= p->len, "END data past the end of the sequence");
		CHECK(c, !e->len || !memcmp(e->data, p->seq + c->pos, e->len),
		      "END data of %zu bytes at offset %zu differs", e->len, c->pos);
		c->pos += e->len;
		break;
	default:
		CHECK(c, false, "unknown event %d", (int)e->kind);
	}
	if (e->kind != TMO_READER_TIMEOUT)
		c->last_left = tmo_now();
}

static void lossless(struct tmo_loop *loop, bool sock, bool lines, uint64_t seed)
{
	struct plan *p = malloc(sizeof(*p));
	struct check *c = calloc(1, sizeof(*c));
	struct writer w = { 0 };
	int fds[2];

	assert_non_null(p);
	assert_non_null(c);
	plan_make(p, seed, lines);
	if (sock)
		test_socketpair(fds);
	else
		test_pipe(fds);

	struct tmo_reader_options o = { .limits = { .gap_ns = GAP }, .on_gap = TMO_GAP_MARK };
	assert_int_equal(tmo_reader_init(&c->reader, loop, fds[0], c->buf, CAP, &o), 0);
	if (lines)
		assert_int_equal(tmo_reader_frame(&c->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	c->reader.data = c;
	c->plan = p;
	c->lines = lines;

	int64_t start = tmo_now();
	c->last_left = start;
	assert_int_equal(tmo_reader_start(&c->reader, check_cb), 0);
	w.plan = p;
	w.fd = fds[1];
	w.sock = sock;
	assert_int_equal(pthread_create(&w.thread, NULL, writer_main, &w), 0);
	int left = tmo_loop_run(loop, TMO_RUN_DEFAULT);
	close(fds[0]); /* a writer still running after a failure gets EPIPE and stops */
	assert_int_equal(pthread_join(w.thread, NULL), 0);
	int64_t elapsed = tmo_now() - start;

	if (c->failure[0])
		fail_msg("%s", c->failure);
	assert_int_equal(left, 0);
	assert_int_equal(w.err, 0);
	assert_int_equal(c->ends, 1);
	assert_int_equal(c->end_error, 0);
	assert_int_equal(c->end_limit, TMO_LIMIT_NONE);
	assert_int_equal(c->pos, p->len);
	assert_int_equal(c->end_total, p->len);
	assert_int_equal(tmo_reader_total(&c->reader), p->len);
	assert_true(c->markers > 0);
	print_message("%s %s: %zu bytes, %d chunks (%d waits near the gap), %llu DATA, %llu markers, "
		      "%.2f s\n",
		      sock ? "socketpair" : "pipe", lines ? "lines" : "chunks", p->len, CHUNKS,
		      p->waits_near_gap, (unsigned long long)c->data_events,
		      (unsigned long long)c->markers, (double)elapsed / 1e9);
	free(p->seq);
	free(p);
	free(c);
}

static void chunks_over_socketpair(void **state)
{
	lossless(*state, true, false, 0x9e3779b97f4a7c15ull);
}

static void chunks_over_pipe(void **state)
{
	lossless(*state, false, false, 0x2545f4914f6cdd1dull);
}

static void lines_over_socketpair(void **state)
{
	lossless(*state, true, true, 0xda942042e4dd58b5ull);
}

static void lines_over_pipe(void **state)
{
	lossless(*state, false, true, 0x853c49e6748fea9bull);
}

/* A loop in TMO_MODE_LOW_LATENCY; test_loop_teardown frees it. */
static int setup_low_latency(void **state)
{
	struct tmo_loop_options options = { .mode = TMO_MODE_LOW_LATENCY };
	struct tmo_loop *loop = calloc(1, sizeof(*loop));

	if (!loop || tmo_loop_init(loop, &options)) {
		free(loop);
		return -1;
	}
	*state = loop;
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* a failed test must not kill the writer's process */
#define BOTH(f)                                                                          \
	{ #f " [kernel]", f, test_loop_setup, test_loop_teardown, NULL },                \
	{                                                                                \
		#f " [loop]", f, test_loop_setup_loop_deadlines, test_loop_teardown, NULL \
	}
	const struct CMUnitTest tests[] = {
		BOTH(chunks_over_socketpair),
		{ "chunks_over_socketpair [low-latency]", chunks_over_socketpair, setup_low_latency,
		  test_loop_teardown, NULL },
		BOTH(chunks_over_pipe),
		BOTH(lines_over_socketpair),
		BOTH(lines_over_pipe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
