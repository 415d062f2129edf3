/*
 * stream-read: tmo_reader against a peer driven by tmo sleeps on the same loop (absolute times,
 * so a late step does not delay the next ones). Every event is recorded and checked as an exact
 * sequence ("D:<data>" DATA, "T" TIMEOUT, "E:<error>:<limit>:<END data>"), plus timing (never
 * early exactly, not too late within the tolerance), byte counts, and what stays in the fd.
 *
 * One time unit U is 200 ms; peers keep every event at least U/4 (50 ms), usually U/2, away from
 * the deadline it races.
 *
 * Arguments (optional): a cmocka name pattern to run, then one to skip, e.g.
 *   test_stream_read '*pause*'      test_stream_read '*' '*extreme*'
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "stream_limits.h"

#define MS TMO_NSEC_PER_MSEC
#define U (200 * MS)

/* ---- recording reader ------------------------------------------------------------------- */

enum { MAX_EVENTS = 256, LOG_CAP = 1 << 16 };

struct ev {
	enum tmo_reader_event_kind kind;
	int32_t error;
	enum tmo_limit limit;
	uint64_t total;
	size_t buffered;
	size_t off, len; /* into rec.log */
	int64_t seen, left;
	struct tmo_scope *scope; /* the loop's current scope in the callback */
};

struct rec;
typedef void (*rec_hook)(struct rec *r, const struct ev *e);

struct rec {
	struct tmo_reader reader;
	struct tmo_loop *loop;
	uint8_t buf[8192];
	struct ev ev[MAX_EVENTS];
	int n;
	uint8_t log[LOG_CAP];
	size_t log_len;
	uint64_t delivered; /* DATA bytes since the last start */
	int starts, ends;
	int depth;
	rec_hook hook;
	void *ctx;
	int64_t last_left; /* when the previous callback returned */
};

static void rec_cb(struct tmo_reader *reader, const struct tmo_reader_event *event)
{
	struct rec *r = reader->data;
	int64_t now = tmo_now();

	assert_ptr_equal(reader, &r->reader);
	/* Callbacks never nest (pause/frame from a callback fire nothing at once), with one
	 * exception: tmo_reader_stop() from a DATA or TIMEOUT callback delivers END -ECANCELED
	 * before it returns, so that the reader may be freed right after. */
	if (r->depth) {
		assert_int_equal(r->depth, 1);
		assert_int_equal(event->kind, TMO_READER_END);
		assert_int_equal(event->error, -ECANCELED);
	}
	/* Nothing after END until the next start. */
	assert_true(r->ends < r->starts);
	assert_true(r->n < MAX_EVENTS);
	r->depth++;

	struct ev *e = &r->ev[r->n++];
	memset(e, 0, sizeof(*e));
	e->kind = event->kind;
	e->error = event->error;
	e->limit = event->limit;
	e->total = event->total;
	e->buffered = event->buffered;
	e->seen = now;
	e->scope = tmo_loop_current_scope(r->loop);
	e->off = r->log_len;
	e->len = event->len;
	if (event->len) {
		assert_non_null(event->data);
		assert_true(r->log_len + event->len <= LOG_CAP);
		memcpy(r->log + r->log_len, event->data, event->len);
		r->log_len += event->len;
	}
	switch (event->kind) {
	case TMO_READER_DATA:
		assert_true(event->len > 0);
		assert_int_equal(event->error, 0);
		assert_int_equal(event->limit, TMO_LIMIT_NONE);
		r->delivered += event->len;
		/* Everything received is delivered now or still buffered. */
		assert_int_equal(event->total, r->delivered + event->buffered);
		assert_true(tmo_reader_busy(reader));
		break;
	case TMO_READER_TIMEOUT:
		assert_null(event->data);
		assert_int_equal(event->len, 0);
		assert_int_equal(event->error, 0);
		assert_int_equal(event->limit, TMO_LIMIT_GAP);
		assert_int_equal(event->total, r->delivered + event->buffered);
		assert_true(tmo_reader_busy(reader));
		break;
	case TMO_READER_END:
		r->ends++;
		/* END carries every byte received and not delivered. */
		assert_int_equal(event->total, r->delivered + event->len);
		if (event->error == -ETIME)
			assert_int_not_equal(event->limit, TMO_LIMIT_NONE);
		else
			assert_int_equal(event->limit, TMO_LIMIT_NONE);
		/* From inside END the reader is idle. */
		assert_false(tmo_reader_busy(reader));
		break;
	default:
		fail_msg("unknown event kind %d", (int)event->kind);
	}
	assert_int_equal(tmo_reader_total(reader), event->total);
	if (r->hook)
		r->hook(r, e);
	r->depth--;
	e->left = r->last_left = tmo_now();
}

static void rec_init(struct rec *r, struct tmo_loop *loop, int fd, size_t cap,
		     const struct tmo_reader_options *options)
{
	memset(r, 0, sizeof(*r));
	r->loop = loop;
	assert_true(cap <= sizeof(r->buf));
	assert_int_equal(tmo_reader_init(&r->reader, loop, fd, r->buf, cap, options), 0);
	r->reader.data = r;
}

static void rec_start(struct rec *r)
{
	r->delivered = 0;
	r->starts++;
	assert_int_equal(tmo_reader_start(&r->reader, rec_cb), 0);
	r->last_left = tmo_now();
}

static struct tmo_reader_options gap_options(int64_t gap, enum tmo_on_gap on_gap)
{
	struct tmo_reader_options o = { .limits = { .gap_ns = gap }, .on_gap = on_gap };
	return o;
}

static const char *limit_name(enum tmo_limit l)
{
	switch (l) {
	case TMO_LIMIT_NONE: return "NONE";
	case TMO_LIMIT_GAP: return "GAP";
	case TMO_LIMIT_DEADLINE: return "DEADLINE";
	case TMO_LIMIT_RATE: return "RATE";
	case TMO_LIMIT_SCOPE: return "SCOPE";
	}
	return "?";
}

static void append_escaped(char *out, size_t cap, const uint8_t *p, size_t len)
{
	size_t o = strlen(out);

	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		if (p[i] == '\n')
			o += (size_t)snprintf(out + o, cap - o, "\\n");
		else if (p[i] == '\r')
			o += (size_t)snprintf(out + o, cap - o, "\\r");
		else if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != ' ')
			out[o++] = (char)p[i], out[o] = 0;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", p[i]);
	}
}

static const char *err_name(int32_t e)
{
	static char b[16];
	switch (e) {
	case 0: return "0";
	case -ETIME: return "ETIME";
	case -ECANCELED: return "ECANCELED";
	case -ENOBUFS: return "ENOBUFS";
	case -EBADF: return "EBADF";
	case -ECONNRESET: return "ECONNRESET";
	}
	snprintf(b, sizeof(b), "%d", e);
	return b;
}

/* The recorded events as one string, e.g. "D:1 T D:2 E:0:NONE:". */
static const char *rec_seq(const struct rec *r)
{
	static char s[65536];

	s[0] = 0;
	for (int i = 0; i < r->n; i++) {
		const struct ev *e = &r->ev[i];
		size_t o = strlen(s);
		if (o + 64 > sizeof(s))
			break;
		if (i)
			strcat(s, " ");
		if (e->kind == TMO_READER_DATA) {
			strcat(s, "D:");
			append_escaped(s, sizeof(s), r->log + e->off, e->len);
		} else if (e->kind == TMO_READER_TIMEOUT) {
			strcat(s, "T");
		} else {
			snprintf(s + strlen(s), sizeof(s) - strlen(s), "E:%s:%s:", err_name(e->error),
				 limit_name(e->limit));
			append_escaped(s, sizeof(s), r->log + e->off, e->len);
		}
	}
	return s;
}

#define assert_seq(r, expected)                                                            \
	do {                                                                               \
		const char *seq_ = rec_seq(r);                                             \
		if (strcmp(seq_, (expected)))                                             \
			fail_msg("events\n  seen:     %s\n  expected: %s", seq_, (expected)); \
	} while (0)

/* All bytes the reader handed over (DATA and END data), in order. */
static size_t rec_bytes(const struct rec *r, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (int i = 0; i < r->n; i++) {
		assert_true(n + r->ev[i].len <= cap);
		memcpy(out + n, r->log + r->ev[i].off, r->ev[i].len);
		n += r->ev[i].len;
	}
	return n;
}

static const struct ev *last_event(const struct rec *r)
{
	assert_true(r->n > 0);
	return &r->ev[r->n - 1];
}

/* lo <= seen <= hi + tolerance. */
static void assert_between(int64_t seen, int64_t lo, int64_t hi, int line)
{
	if (seen < lo)
		fail_msg("line %d: seen %.3f ms BEFORE the earliest allowed", line,
			 (double)(lo - seen) / 1e6);
	if (seen > hi + test_tolerance_ns())
		fail_msg("line %d: seen %.3f ms after the latest allowed (tolerance %.0f ms)", line,
			 (double)(seen - hi) / 1e6, (double)test_tolerance_ns() / 1e6);
}

/* ---- peer: a script of writes, closes and calls at absolute times, run by tmo sleeps ------ */

enum { MAX_STEPS = 64 };

struct peer;
typedef void (*peer_fn)(struct peer *p, void *arg);

struct peer_step {
	int64_t at;
	const void *bytes;
	size_t len;
	bool close;
	peer_fn fn;
	void *arg;
	int64_t done_at; /* when the step began (before its write) */
};

struct peer {
	struct tmo_op op;
	struct tmo_loop *loop;
	int fd;
	int n, i;
	size_t written;
	struct peer_step s[MAX_STEPS];
};

static void peer_init(struct peer *p, struct tmo_loop *loop, int fd)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->fd = fd;
}

static struct peer_step *peer_add(struct peer *p, int64_t at)
{
	assert_true(p->n < MAX_STEPS);
	assert_true(p->n == 0 || at >= p->s[p->n - 1].at);
	struct peer_step *s = &p->s[p->n++];
	memset(s, 0, sizeof(*s));
	s->at = at;
	return s;
}

static void peer_write(struct peer *p, int64_t at, const char *bytes)
{
	struct peer_step *s = peer_add(p, at);
	s->bytes = bytes;
	s->len = strlen(bytes);
}

static void peer_write_n(struct peer *p, int64_t at, const void *bytes, size_t len)
{
	struct peer_step *s = peer_add(p, at);
	s->bytes = bytes;
	s->len = len;
}

static void peer_close(struct peer *p, int64_t at)
{
	peer_add(p, at)->close = true;
}

static void peer_call(struct peer *p, int64_t at, peer_fn fn, void *arg)
{
	struct peer_step *s = peer_add(p, at);
	s->fn = fn;
	s->arg = arg;
}

static void peer_next(struct peer *p);

static void peer_fire(struct tmo_op *op, int32_t res)
{
	struct peer *p = (struct peer *)op;
	struct peer_step *s = &p->s[p->i++];

	assert_int_equal(res, 0);
	s->done_at = tmo_now();
	if (s->len) {
		assert_true(p->fd >= 0);
		test_write_all(p->fd, s->bytes, s->len);
		p->written += s->len;
	}
	if (s->fn)
		s->fn(p, s->arg);
	if (s->close) {
		assert_int_equal(close(p->fd), 0);
		p->fd = -1;
	}
	peer_next(p);
}

static void peer_next(struct peer *p)
{
	if (p->i >= p->n)
		return;
	tmo_prep_sleep(&p->op, tmo_at(p->s[p->i].at));
	assert_int_equal(tmo_op_start(p->loop, &p->op, TMO_NEVER, peer_fire), 0);
}

/* Starts the script (outside any scope: the caller must not be in one). */
static void peer_go(struct peer *p)
{
	p->i = 0;
	peer_next(p);
}

/* ---- channels ---------------------------------------------------------------------------- */

enum chan { SOCK, PIPE };

/* fds[0]: the reader's end, fds[1]: the peer's. */
static void chan_open(enum chan c, int fds[2])
{
	if (c == SOCK)
		test_socketpair(fds);
	else
		test_pipe(fds);
}

static void chan_close(int fds[2], struct peer *p)
{
	close(fds[0]);
	if (!p || p->fd >= 0)
		close(fds[1]);
}

/* A loop in TMO_MODE_LOW_LATENCY (DEFER_TASKRUN: completion work only when the loop enters the
 * kernel); test_loop_teardown frees it. */
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

static void run(struct tmo_loop *loop)
{
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);
}

/* ---- 1. the seed scenario: an async iterator with a per-item timeout, sentinel mode ------- */

/*
 * The original scenario: the peer sends "1", waits 1.1 s, sends "2", waits 2.1 s, sends "3" and
 * closes; a 1 s per-item timeout gives 1, TIMEOUT, 2, TIMEOUT, TIMEOUT, 3. Scaled: one second is
 * U = 200 ms and the peer's waits are 1.5 U and 2.5 U instead of 1.1 and 2.1 (the sequence is the
 * same), so every arrival sits U/2 = 100 ms away from the markers around it.
 */
static void seed_scenario(struct tmo_loop *loop, enum chan c)
{
	struct tmo_reader_options o = gap_options(U, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	chan_open(c, fds);
	rec_init(r, loop, fds[0], 64, &o);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	test_write_all(fds[1], "1", 1);
	peer_write(&p, base + 3 * U / 2, "2");
	peer_write(&p, base + 4 * U, "3");
	peer_close(&p, base + 4 * U);
	peer_go(&p);
	rec_start(r);
	run(loop);

	assert_seq(r, "D:1 T D:2 T T D:3 E:0:NONE:");
	assert_int_equal(r->ends, 1);
	assert_int_equal(last_event(r)->total, 3);
	assert_int_equal(r->ev[2].total, 2);
	/* Markers: the first `U` after the callback of the chunk before returned, each next one U
	 * after the previous marker's due time. */
	int64_t from = 0;
	int k = 0;
	for (int i = 0; i < r->n; i++) {
		const struct ev *e = &r->ev[i];
		if (e->kind == TMO_READER_TIMEOUT) {
			k++;
			assert_on_time(e->seen, from + k * U);
			assert_int_equal(e->buffered, 0);
		} else {
			from = e->left;
			k = 0;
		}
	}
	chan_close(fds, &p);
	free(r);
}

static void seed_scenario_socketpair(void **state)
{
	seed_scenario(*state, SOCK);
}

static void seed_scenario_pipe(void **state)
{
	seed_scenario(*state, PIPE);
}

/* ---- 2. TMO_GAP_END ---------------------------------------------------------------------- */

static void gap_end(struct tmo_loop *loop, enum chan c)
{
	struct tmo_reader_options o = gap_options(U, TMO_GAP_END);
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	chan_open(c, fds);
	rec_init(r, loop, fds[0], 64, &o);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	test_write_all(fds[1], "abc", 3);
	peer_write(&p, base + U / 2, "de");
	/* After the timeout (due at about 1.5 U): must stay in the fd. */
	peer_write(&p, base + 2 * U, "late");
	peer_go(&p);
	rec_start(r);
	run(loop);

	assert_seq(r, "D:abc D:de E:ETIME:GAP:");
	const struct ev *end = last_event(r);
	assert_on_time(end->seen, r->ev[1].left + U);
	assert_int_equal(end->total, 5);
	assert_int_equal(tmo_reader_total(&r->reader), 5);
	assert_int_equal(test_readable(fds[0]), 4);
	chan_close(fds, &p);
	free(r);
}

static void gap_end_socketpair(void **state)
{
	gap_end(*state, SOCK);
}

static void gap_end_pipe(void **state)
{
	gap_end(*state, PIPE);
}

/* A reader that never gets a byte: END at start + gap. */
static void gap_end_on_silence(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U / 2, TMO_GAP_END);
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	test_pipe(fds);
	rec_init(r, loop, fds[0], 64, &o);
	int64_t before = tmo_now();
	rec_start(r);
	run(loop);
	assert_seq(r, "E:ETIME:GAP:");
	assert_on_time(r->ev[0].seen, before + U / 2);
	assert_int_equal(r->ev[0].total, 0);
	chan_close(fds, NULL);
	free(r);
}

/* ---- 3. overall deadline and scopes ------------------------------------------------------ */

/*
 * Chunks every STEP = 0.75 U (well inside the gap of 2 U); the deadline falls at 2.5 STEP, STEP/2
 * away from the chunks around it: three chunks are read, the two later ones stay in the fd.
 */
#define STEP (3 * U / 4)

enum end_by { BY_DEADLINE, BY_SCOPE, BY_SCOPE_BEFORE_DEADLINE, BY_DEADLINE_BEFORE_SCOPE };

static void check_scope_in_callbacks(struct rec *r, const struct ev *e)
{
	/* A stream's callbacks run in the scope it was started in. */
	assert_ptr_equal(e->scope, r->ctx);
}

static void overall_limit(struct tmo_loop *loop, enum end_by by)
{
	/* MARK mode: only the gap marks, the deadline and the scope still end the stream. */
	struct tmo_reader_options o = gap_options(2 * U, by == BY_SCOPE ? TMO_GAP_END : TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct tmo_scope scope = { 0 };
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	for (int k = 0; k < 5; k++)
		peer_write(&p, base + k * STEP, "chunk");
	peer_go(&p);

	int64_t end_at = base + 5 * STEP / 2;
	if (by == BY_DEADLINE || by == BY_DEADLINE_BEFORE_SCOPE)
		o.limits.deadline = tmo_at(end_at);
	if (by == BY_SCOPE_BEFORE_DEADLINE)
		o.limits.deadline = tmo_at(end_at + STEP);
	rec_init(r, loop, fds[0], 64, &o);
	if (by != BY_DEADLINE) {
		int64_t scope_at = by == BY_DEADLINE_BEFORE_SCOPE ? end_at + STEP : end_at;
		assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(scope_at), 0), 0);
		r->ctx = &scope;
		r->hook = check_scope_in_callbacks;
	}
	rec_start(r);
	if (by != BY_DEADLINE)
		assert_int_equal(tmo_scope_exit(&scope), 0);
	run(loop);

	bool scope_ends = by == BY_SCOPE || by == BY_SCOPE_BEFORE_DEADLINE;
	assert_seq(r, scope_ends ? "D:chunk D:chunk D:chunk E:ETIME:SCOPE:"
				 : "D:chunk D:chunk D:chunk E:ETIME:DEADLINE:");
	assert_on_time(last_event(r)->seen, end_at);
	assert_int_equal(last_event(r)->total, 15);
	assert_int_equal(test_readable(fds[0]), 10);
	if (by != BY_DEADLINE) {
		assert_false(tmo_scope_busy(&scope));
		assert_true(tmo_scope_expired(&scope) == scope_ends);
	}
	chan_close(fds, &p);
	free(r);
}

static void deadline_ends_a_flowing_stream(void **state)
{
	overall_limit(*state, BY_DEADLINE);
}

static void scope_ends_a_flowing_stream(void **state)
{
	overall_limit(*state, BY_SCOPE);
}

static void earlier_of_scope_and_deadline_wins(void **state)
{
	overall_limit(*state, BY_SCOPE_BEFORE_DEADLINE);
	overall_limit(*state, BY_DEADLINE_BEFORE_SCOPE);
}

/*
 * A scope moved while the stream runs in it (the scope stays entered: shift needs that). Chunks
 * at 0, 2, 3 and 4 STEP; the scope's deadline starts at 1.5 STEP.
 *   later:   at 0.5 STEP it moves to 3.5 STEP. The read in flight carries 1.5 STEP; when that
 *            comes the stream waits on (no END, no marker) and ends at 3.5 STEP.
 *   earlier: at 0.5 STEP it moves to 1 STEP (from 1.5): the read in flight is cut then.
 */
struct shift_ctx {
	struct tmo_scope *scope;
	int64_t delta;
};

static void shift_scope(struct peer *p, void *arg)
{
	struct shift_ctx *c = arg;
	assert_int_equal(tmo_scope_shift(c->scope, c->delta), 0);
}

static void scope_shift(struct tmo_loop *loop, bool later)
{
	struct tmo_reader_options o = gap_options(2 * U, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct tmo_scope scope = { 0 };
	struct shift_ctx c = { .scope = &scope, .delta = later ? 2 * STEP : -STEP / 2 };
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	peer_write(&p, base, "chunk");
	peer_call(&p, base + STEP / 2, shift_scope, &c);
	for (int k = 2; k <= 4; k++)
		peer_write(&p, base + k * STEP, "chunk");
	peer_go(&p);
	rec_init(r, loop, fds[0], 64, &o);
	r->ctx = &scope;
	r->hook = check_scope_in_callbacks;
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(base + 3 * STEP / 2), 0), 0);
	rec_start(r);
	run(loop);
	assert_int_equal(tmo_scope_exit(&scope), 0);

	int64_t end_at = later ? base + 7 * STEP / 2 : base + STEP;
	assert_seq(r, later ? "D:chunk D:chunk D:chunk E:ETIME:SCOPE:" : "D:chunk E:ETIME:SCOPE:");
	assert_int_equal(tmo_deadline_ns(tmo_scope_deadline(&scope)), end_at);
	assert_on_time(last_event(r)->seen, end_at);
	assert_int_equal(test_readable(fds[0]), later ? 5 : 15);
	assert_true(tmo_scope_expired(&scope));
	chan_close(fds, &p);
	free(r);
}

static void scope_shifted_later_lets_the_stream_wait_on(void **state)
{
	scope_shift(*state, true);
}

static void scope_shifted_earlier_cuts_the_read(void **state)
{
	scope_shift(*state, false);
}

/*
 * Kernel-kept deadlines hold while the loop thread is stuck: a gap (and, in a scope, the scope's
 * deadline carried by the read) passes during a 3 U stall; bytes written after it, still during
 * the stall, stay in the fd. The END comes when the loop runs again.
 */
static void stall(struct tmo_loop *loop, bool in_scope)
{
	struct tmo_reader_options o = gap_options(in_scope ? 4 * U : U, TMO_GAP_END);
	struct rec *r = calloc(1, sizeof(*r));
	struct tmo_scope scope = { 0 };
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	int64_t before = tmo_now();
	if (in_scope)
		assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(before + U), 0), 0);
	rec_start(r);
	if (in_scope)
		assert_int_equal(tmo_scope_exit(&scope), 0);
	/* Until the first read is in the kernel. */
	assert_int_equal(tmo_loop_run_until(loop, tmo_at(before + U / 4)), 1);
	assert_int_equal(r->n, 0);
	test_sleep_ms(3 * U / MS / 2);
	test_write_all(fds[1], "after", 5);
	test_sleep_ms(3 * U / MS / 2);
	run(loop);
	assert_seq(r, in_scope ? "E:ETIME:SCOPE:" : "E:ETIME:GAP:");
	assert_int_equal(test_readable(fds[0]), 5);
	if (in_scope)
		assert_true(tmo_scope_expired(&scope));
	chan_close(fds, NULL);
	free(r);
}

static void kernel_cuts_a_gap_while_the_loop_is_stuck(void **state)
{
	stall(*state, false);
}

static void kernel_cuts_a_scope_while_the_loop_is_stuck(void **state)
{
	stall(*state, true);
}

/* A DATA callback that takes 1.5 U does not eat the gap (U): it runs from the callback's return. */
static void slow_callback(struct rec *r, const struct ev *e)
{
	if (e->kind == TMO_READER_DATA)
		test_sleep_ms(3 * U / MS / 2);
}

static void slow_callback_does_not_eat_the_gap(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	r->hook = slow_callback;
	peer_init(&p, loop, fds[1]);
	test_write_all(fds[1], "a", 1);
	int64_t base = tmo_now();
	/* The callback returns at ~1.5 U; the gap would end at ~2.5 U: close at 2 U. */
	peer_close(&p, base + 2 * U);
	peer_go(&p);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:a E:0:NONE:");
	chan_close(fds, &p);
	free(r);
}

/* Markers come every gap until the scope's (or the stream's) deadline ends the stream. */
static void markers_then_an_end(struct tmo_loop *loop, bool scope_ends)
{
	struct tmo_reader_options o = gap_options(U / 2, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct tmo_scope scope = { 0 };
	int fds[2];

	test_pipe(fds);
	int64_t base = tmo_now();
	int64_t end_at = base + 5 * U / 4;
	if (!scope_ends)
		o.limits.deadline = tmo_at(end_at);
	rec_init(r, loop, fds[0], 64, &o);
	if (scope_ends)
		assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(end_at), 0), 0);
	rec_start(r);
	if (scope_ends)
		assert_int_equal(tmo_scope_exit(&scope), 0);
	run(loop);
	assert_seq(r, scope_ends ? "T T E:ETIME:SCOPE:" : "T T E:ETIME:DEADLINE:");
	assert_on_time(r->ev[0].seen, base + U / 2);
	assert_on_time(r->ev[1].seen, base + U);
	assert_on_time(r->ev[2].seen, end_at);
	chan_close(fds, NULL);
	free(r);
}

static void markers_then_the_scope_ends(void **state)
{
	markers_then_an_end(*state, true);
}

static void markers_then_the_deadline_ends(void **state)
{
	markers_then_an_end(*state, false);
}

/* A deadline already passed at start: END -ETIME DEADLINE from the loop, nothing read. */
static void deadline_already_passed(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = { .limits = { .deadline = tmo_at(tmo_now() - 1) } };
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	test_pipe(fds);
	test_write_all(fds[1], "xyz", 3);
	rec_init(r, loop, fds[0], 64, &o);
	rec_start(r);
	assert_int_equal(r->n, 0); /* never from tmo_reader_start itself */
	run(loop);
	assert_seq(r, "E:ETIME:DEADLINE:");
	assert_int_equal(test_readable(fds[0]), 3);

	/* The same with a scope expired at entry. */
	struct tmo_scope scope = { 0 };
	rec_init(r, loop, fds[0], 64, NULL);
	assert_int_equal(tmo_scope_enter_after(loop, &scope, 0, 0), 0);
	rec_start(r);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	run(loop);
	assert_seq(r, "E:ETIME:SCOPE:");
	assert_int_equal(test_readable(fds[0]), 3);
	assert_true(tmo_scope_expired(&scope));
	chan_close(fds, NULL);
	free(r);
}

/* ---- 4. rate floor ----------------------------------------------------------------------- */

/* Window 2 U = 400 ms, floor 250 B/s: the window must hold 100 bytes. The trickler sends one
 * byte every U/4 (20 B/s, 8 bytes a window) at k U/4 + U/8, so the gap (U) never fires. */
#define WINDOW (2 * U)
#define FLOOR 250

static struct tmo_reader_options rate_options(void)
{
	struct tmo_reader_options o = {
		.limits = { .gap_ns = U, .min_rate = FLOOR, .rate_window_ns = WINDOW },
		.on_gap = TMO_GAP_END,
	};
	return o;
}

static void rate_trickle(struct tmo_loop *loop, enum chan c, bool burst)
{
	static const char burst_bytes[150] = { 0 };
	struct tmo_reader_options o = rate_options();
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];
	int burst_step = -1;

	if (burst)
		o.on_gap = TMO_GAP_MARK; /* the rate floor still ends the stream */
	chan_open(c, fds);
	rec_init(r, loop, fds[0], 256, &o);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	for (int k = 0; k < 16; k++) {
		int64_t at = base + k * U / 4 + U / 8;
		if (burst && burst_step < 0 && at > base + U / 2) {
			/* 150 bytes at U/2: the window holds enough until they leave it. */
			burst_step = p.n;
			peer_write_n(&p, base + U / 2, burst_bytes, sizeof(burst_bytes));
		}
		peer_write(&p, at, ".");
	}
	peer_go(&p);
	int64_t before = tmo_now();
	rec_start(r);
	int64_t after = tmo_now();
	run(loop);

	const struct ev *end = last_event(r);
	assert_int_equal(end->kind, TMO_READER_END);
	assert_int_equal(end->error, -ETIME);
	assert_int_equal(end->limit, TMO_LIMIT_RATE);
	/* No byte lost or duplicated: what was not read is still in the fd. */
	assert_int_equal(end->total + (uint64_t)test_readable(fds[0]), p.written);
	for (int i = 0; i + 1 < r->n; i++)
		assert_int_equal(r->ev[i].kind, TMO_READER_DATA);
	if (!burst) {
		/* Never enough bytes: cut once the stream has run for one window. */
		assert_between(end->seen, before + WINDOW, after + WINDOW + WINDOW / 16, __LINE__);
	} else {
		/* Enough while the burst is in the window: cut when it leaves it. */
		int64_t sent = p.s[burst_step].done_at;
		int64_t got = 0;
		for (int i = 0; i < r->n; i++)
			if (r->ev[i].kind == TMO_READER_DATA && r->ev[i].len >= sizeof(burst_bytes))
				got = r->ev[i].seen;
		assert_true(got > 0);
		assert_between(end->seen, sent + WINDOW, got + WINDOW + WINDOW / 16, __LINE__);
	}
	chan_close(fds, &p);
	free(r);
}

static void rate_floor_cuts_a_trickle_socketpair(void **state)
{
	rate_trickle(*state, SOCK, false);
}

static void rate_floor_cuts_a_trickle_pipe(void **state)
{
	rate_trickle(*state, PIPE, false);
}

static void rate_floor_cuts_when_a_burst_leaves_the_window(void **state)
{
	rate_trickle(*state, SOCK, true);
}

/* 1,000 bytes every U/4 for 6 windows (20 KB/s against a 1 KB/s floor): ends at EOF. */
static void rate_floor_spares_a_fast_peer(void **state)
{
	static char kb[1000];
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = rate_options();
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	o.limits.min_rate = 1000;
	memset(kb, 'f', sizeof(kb));
	test_socketpair(fds);
	rec_init(r, loop, fds[0], 4096, &o);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	for (int k = 0; k < 24; k++)
		peer_write_n(&p, base + k * U / 4, kb, sizeof(kb));
	peer_close(&p, base + 24 * U / 4);
	peer_go(&p);
	rec_start(r);
	run(loop);

	const struct ev *end = last_event(r);
	assert_int_equal(end->kind, TMO_READER_END);
	assert_int_equal(end->error, 0);
	assert_int_equal(end->limit, TMO_LIMIT_NONE);
	assert_int_equal(end->total, 24000);
	assert_int_equal(r->delivered, 24000);
	for (int i = 0; i + 1 < r->n; i++)
		assert_int_equal(r->ev[i].kind, TMO_READER_DATA);
	chan_close(fds, &p);
	free(r);
}

/*
 * Refreshing the limits while the rate floor runs, without changing the floor (every U/4, just
 * after each trickled byte: the same limits, or only the overall deadline pushed back) keeps
 * the window's history: the trickle is cut once the stream has run for one window, as without
 * the refreshes. A refresh that started the history afresh would keep the floor in its
 * one-window grace for ever, and only the gap would end the stream, after the script's last
 * byte (4 U).
 */
struct refresh_ctx {
	struct rec *r;
	bool push_deadline;
	int refreshes;
};

static void refresh_limits(struct peer *p, void *arg)
{
	struct refresh_ctx *c = arg;
	struct tmo_stream_limits l = rate_options().limits;

	if (!tmo_reader_busy(&c->r->reader)) {
		p->n = p->i; /* the stream is over: so is the script */
		return;
	}
	if (c->push_deadline)
		l.deadline = tmo_in_ns(4 * WINDOW);
	assert_int_equal(tmo_reader_set_limits(&c->r->reader, &l), 0);
	c->refreshes++;
}

static void rate_floor_survives_refreshed_limits(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = rate_options();
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	for (int push = 0; push <= 1; push++) {
		struct refresh_ctx c = { .r = r, .push_deadline = push };
		test_socketpair(fds);
		rec_init(r, loop, fds[0], 256, &o);
		peer_init(&p, loop, fds[1]);
		int64_t base = tmo_now();
		for (int k = 0; k < 16; k++) {
			/* one byte every U/4 (20 B/s against 250), then the refresh */
			struct peer_step *s = peer_add(&p, base + k * U / 4 + U / 8);
			s->bytes = ".";
			s->len = 1;
			s->fn = refresh_limits;
			s->arg = &c;
		}
		peer_go(&p);
		int64_t before = tmo_now();
		rec_start(r);
		int64_t after = tmo_now();
		run(loop);

		const struct ev *end = last_event(r);
		if (end->kind != TMO_READER_END || end->error != -ETIME ||
		    end->limit != TMO_LIMIT_RATE)
			fail_msg("%s: %s after %d refreshes (want the rate floor's END)",
				 push ? "deadline pushed" : "same limits", rec_seq(r), c.refreshes);
		assert_true(c.refreshes >= 4); /* 8 inside the first window */
		assert_between(end->seen, before + WINDOW, after + WINDOW + WINDOW / 16, __LINE__);
		assert_int_equal(end->total + (uint64_t)test_readable(fds[0]), p.written);
		for (int i = 0; i + 1 < r->n; i++)
			assert_int_equal(r->ev[i].kind, TMO_READER_DATA);
		chan_close(fds, &p);
	}
	free(r);
}

/*
 * Regression: limits falling due at the same instant report the first of gap, rate, deadline.
 * Before, the rate won a tie with the gap (a silent peer under a gap and a rate floor of the
 * same length was "rate") and the deadline won every tie.
 *
 * No public call lines the gap up with the rate window to the nanosecond (the window's grace
 * starts at tmo_reader_start, the gap when the first read is issued, a few microseconds
 * later: the rate comes first), so the tie is built: on tmo__limits_next itself, then on a
 * silent reader whose first wait is made to start where the window does.
 */
static void gap_wins_a_tie_with_the_rate_floor(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_stream_limits l = { .gap_ns = U, .min_rate = 100, .rate_window_ns = U };
	struct tmo__rate_window rate;
	uint8_t which;
	int64_t t = tmo_now();

	/* Nothing received: the window's grace and the gap both end at t + U. */
	tmo__rate_reset(&rate, &l, t);
	assert_int_equal(tmo__limits_next(&l, &rate, t, &which), t + U);
	assert_int_equal(which, TMO_LIMIT_GAP);
	/* The gap one nanosecond later: the rate is strictly first. */
	assert_int_equal(tmo__limits_next(&l, &rate, t + 1, &which), t + U);
	assert_int_equal(which, TMO_LIMIT_RATE);
	/* The overall deadline at the same instant loses to both. */
	l.deadline = tmo_at(t + U);
	assert_int_equal(tmo__limits_next(&l, &rate, t, &which), t + U);
	assert_int_equal(which, TMO_LIMIT_GAP);
	assert_int_equal(tmo__limits_next(&l, &rate, t + 1, &which), t + U);
	assert_int_equal(which, TMO_LIMIT_RATE);
	l.min_rate = 0;
	tmo__rate_reset(&rate, &l, t);
	assert_int_equal(tmo__limits_next(&l, &rate, t, &which), t + U);
	assert_int_equal(which, TMO_LIMIT_GAP);
	/* One nanosecond earlier, it wins. */
	l.deadline = tmo_at(t + U - 1);
	assert_int_equal(tmo__limits_next(&l, &rate, t, &which), t + U - 1);
	assert_int_equal(which, TMO_LIMIT_DEADLINE);

	/* A silent peer under a gap of U and 100 B/s over a window of U: END -ETIME GAP at
	 * start + U. */
	struct tmo_reader_options o = {
		.limits = { .gap_ns = U, .min_rate = 100, .rate_window_ns = U },
		.on_gap = TMO_GAP_END,
	};
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	test_pipe(fds);
	rec_init(r, loop, fds[0], 64, &o);
	int64_t start = tmo_now(); /* the gap and the window count from the start, together */
	rec_start(r);
	run(loop);
	assert_seq(r, "E:ETIME:GAP:");
	assert_on_time(last_event(r)->seen, start + U);
	chan_close(fds, NULL);
	free(r);
}

/* ---- 5. framing ---------------------------------------------------------------------------- */

struct frame_case {
	size_t cap;
	enum tmo_frame frame;
	const char *delim;
	size_t exact;
	const char *const *pieces;
	const char *expected;
};

static void frame_run(struct tmo_loop *loop, enum chan c, const struct frame_case *fc)
{
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	chan_open(c, fds);
	rec_init(r, loop, fds[0], fc->cap, NULL);
	if (fc->frame != TMO_FRAME_CHUNK)
		assert_int_equal(tmo_reader_frame(&r->reader, fc->frame, fc->delim,
						  fc->delim ? strlen(fc->delim) : 0, fc->exact),
				 0);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	int k = 0;
	for (; fc->pieces[k]; k++)
		peer_write(&p, base + k * 30 * MS, fc->pieces[k]);
	peer_close(&p, base + k * 30 * MS);
	peer_go(&p);
	rec_start(r);
	run(loop);
	assert_seq(r, fc->expected);
	chan_close(fds, &p);
	free(r);
}

static void frame_newline(void **state)
{
	static const char *const pieces[] = { "hel", "lo\nwor", "ld\n", "a\nb\nc\n", "\n", "tail",
					      NULL };
	struct frame_case fc = {
		.cap = 64, .frame = TMO_FRAME_DELIMITER, .delim = "\n", .pieces = pieces,
		.expected = "D:hello\\n D:world\\n D:a\\n D:b\\n D:c\\n D:\\n E:0:NONE:tail",
	};
	frame_run(*state, SOCK, &fc);
	frame_run(*state, PIPE, &fc);
}

static void frame_crlf(void **state)
{
	/* The delimiter split across reads, a lone \r inside a line, \r\r\n, an empty line. */
	static const char *const pieces[] = { "GET / HTTP/1.1\r", "\nHost: x\r\n\r\n", "ab\rc\r",
					      "\n", "x\r", "\r\n", "\r", "\n", "end", NULL };
	struct frame_case fc = {
		.cap = 64, .frame = TMO_FRAME_DELIMITER, .delim = "\r\n", .pieces = pieces,
		.expected = "D:GET\\x20/\\x20HTTP/1.1\\r\\n D:Host:\\x20x\\r\\n D:\\r\\n "
			    "D:ab\\rc\\r\\n D:x\\r\\r\\n D:\\r\\n E:0:NONE:end",
	};
	frame_run(*state, SOCK, &fc);
	frame_run(*state, PIPE, &fc);
}

static void frame_long_delimiter_with_false_starts(void **state)
{
	/* "aab" in "aaab": a matcher that restarts after the mismatch would miss it; a 16-byte
	 * delimiter split over three reads. */
	static const char *const p1[] = { "xaa", "aby", "aaaab", "zaab", NULL };
	struct frame_case c1 = {
		.cap = 64, .frame = TMO_FRAME_DELIMITER, .delim = "aab", .pieces = p1,
		.expected = "D:xaaab D:yaaaab D:zaab E:0:NONE:",
	};
	frame_run(*state, SOCK, &c1);
	static const char *const p2[] = { "one-0123456", "789abcd", "ef-two-012345678", "9abcdef",
					  "three", NULL };
	struct frame_case c2 = {
		.cap = 64, .frame = TMO_FRAME_DELIMITER, .delim = "0123456789abcdef", .pieces = p2,
		.expected = "D:one-0123456789abcdef D:-two-0123456789abcdef E:0:NONE:three",
	};
	frame_run(*state, PIPE, &c2);
}

static void frame_exact(void **state)
{
	static const char *const pieces[] = { "ab", "cdefghij", "k", NULL };
	struct frame_case fc = {
		.cap = 16, .frame = TMO_FRAME_EXACT, .exact = 4, .pieces = pieces,
		.expected = "D:abcd D:efgh E:0:NONE:ijk",
	};
	frame_run(*state, SOCK, &fc);
	frame_run(*state, PIPE, &fc);
	/* exact == cap: whole buffers. */
	static const char *const p2[] = { "0123456789abcdef0123", "456789abcdefXY", NULL };
	struct frame_case c2 = {
		.cap = 16, .frame = TMO_FRAME_EXACT, .exact = 16, .pieces = p2,
		.expected = "D:0123456789abcdef D:0123456789abcdef E:0:NONE:XY",
	};
	frame_run(*state, SOCK, &c2);
}

/* A line protocol: "LEN n\n" then exactly n bytes, switched from inside DATA. */
static void line_protocol_hook(struct rec *r, const struct ev *e)
{
	if (e->kind != TMO_READER_DATA)
		return;
	bool *in_body = r->ctx;
	if (!*in_body) {
		assert_true(e->len > 5);
		assert_memory_equal(r->log + e->off, "LEN ", 4);
		size_t n = (size_t)atoi((const char *)r->log + e->off + 4);
		assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_EXACT, NULL, 0, n), 0);
		*in_body = true;
	} else {
		assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
		*in_body = false;
	}
}

static void line_protocol_once(struct tmo_loop *loop, enum chan c, bool all_at_once)
{
	static const char stream[] = "LEN 5\nhelloLEN 3\nabcLEN 2\n\n\nLEN 12\n0123456789\r\nLEN 1";
	static const char *const pieces[] = { "LEN 5\nhe", "lloLEN", " 3\nabcLEN 2\n", "\n\n",
					      "LEN 12\n0123", "456789\r\nLEN 1", NULL };
	struct rec *r = calloc(1, sizeof(*r));
	bool in_body = false;
	struct peer p;
	int fds[2];

	chan_open(c, fds);
	rec_init(r, loop, fds[0], 32, NULL);
	r->hook = line_protocol_hook;
	r->ctx = &in_body;
	assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	if (all_at_once) {
		/* Several frames of both kinds in one read: the switch applies to bytes already
		 * buffered. */
		test_write_all(fds[1], stream, strlen(stream));
		peer_close(&p, base);
	} else {
		int k = 0;
		for (; pieces[k]; k++)
			peer_write(&p, base + k * 30 * MS, pieces[k]);
		peer_close(&p, base + k * 30 * MS);
	}
	peer_go(&p);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:LEN\\x205\\n D:hello D:LEN\\x203\\n D:abc D:LEN\\x202\\n D:\\n\\n "
		      "D:LEN\\x2012\\n D:0123456789\\r\\n E:0:NONE:LEN\\x201");
	chan_close(fds, &p);
	free(r);
}

static void frame_switch_inside_data(void **state)
{
	line_protocol_once(*state, SOCK, true);
	line_protocol_once(*state, SOCK, false);
	line_protocol_once(*state, PIPE, true);
}

/* A line longer than the buffer: -ENOBUFS, END carries the buffered bytes, the rest stays. */
static void frame_line_over_buffer(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	for (int c = SOCK; c <= PIPE; c++) {
		/* A line of exactly cap bytes fits once the line before it is out of the buffer. */
		chan_open(c, fds);
		rec_init(r, loop, fds[0], 8, NULL);
		assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
		test_write_all(fds[1], "ab\n0123456\nc", 12);
		close(fds[1]);
		rec_start(r);
		run(loop);
		assert_seq(r, "D:ab\\n D:0123456\\n E:0:NONE:c");
		close(fds[0]);

		chan_open(c, fds);
		rec_init(r, loop, fds[0], 8, NULL);
		assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
		test_write_all(fds[1], "ab\n0123456789\nzz\n", 17);
		rec_start(r);
		run(loop);
		assert_seq(r, "D:ab\\n E:ENOBUFS:NONE:01234567");
		assert_int_equal(last_event(r)->total, 11);
		assert_int_equal(test_readable(fds[0]), 6); /* "89\nzz\n" */
		chan_close(fds, NULL);
	}
	free(r);
}

/* A gap marker in the middle of a line keeps the partial line; the line completes intact. */
static void gap_marker_inside_a_line(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	test_write_all(fds[1], "hel", 3);
	peer_write(&p, base + 3 * U / 2, "lo\nwo");
	peer_write(&p, base + 3 * U, "rld\n");
	peer_close(&p, base + 3 * U);
	peer_go(&p);
	int64_t before = tmo_now();
	rec_start(r);
	run(loop);
	/* Markers at ~U ("hel" buffered), ~2.5 U ("wo" buffered). */
	assert_seq(r, "T D:hello\\n T D:world\\n E:0:NONE:");
	assert_int_equal(r->ev[0].buffered, 3);
	assert_int_equal(r->ev[0].total, 3);
	assert_true(r->ev[0].seen >= before + U);
	assert_true(r->ev[0].seen <= p.s[0].done_at);
	assert_int_equal(r->ev[1].buffered, 2);
	assert_int_equal(r->ev[2].buffered, 2);
	assert_int_equal(r->ev[2].total, 8);
	assert_true(r->ev[2].seen >= p.s[0].done_at + U);
	assert_true(r->ev[2].seen <= p.s[1].done_at);
	chan_close(fds, &p);
	free(r);
}

/*
 * MARK mode: a frame delivered from the buffer restarts the gap like any DATA. The first marker
 * (U, a partial line buffered) switches to chunks, so the partial line goes out at once from the
 * buffer; its callback takes U/2. The next marker comes a full gap after that callback returned,
 * not one gap after the first marker's due time (that would be U/2 early); it stops the stream.
 */
static void chunks_from_the_first_marker(struct rec *r, const struct ev *e)
{
	if (e->kind == TMO_READER_TIMEOUT && r->n == 1)
		assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_CHUNK, NULL, 0, 0), 0);
	else if (e->kind == TMO_READER_DATA)
		test_sleep_ms(U / MS / 2); /* processing it */
	else if (e->kind == TMO_READER_TIMEOUT)
		assert_int_equal(tmo_reader_stop(&r->reader), 0);
}

static void buffered_frame_after_a_marker_restarts_the_gap(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	r->hook = chunks_from_the_first_marker;
	test_write_all(fds[1], "partial", 7);
	int64_t before = tmo_now();
	rec_start(r);
	run(loop);
	assert_seq(r, "T D:partial T E:ECANCELED:NONE:");
	assert_int_equal(r->ev[0].buffered, 7);
	assert_on_time(r->ev[0].seen, before + U);
	assert_on_time(r->ev[1].seen, r->ev[0].left); /* from the buffer, no read needed */
	assert_on_time(r->ev[2].seen, r->ev[1].left + U);
	chan_close(fds, NULL);
	free(r);
}

/* Switching from lines to chunks inside DATA: the bytes already buffered come as one chunk. */
static void to_chunks_after_header(struct rec *r, const struct ev *e)
{
	if (r->n == 1)
		assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_CHUNK, NULL, 0, 0), 0);
}

static void frame_switch_to_chunks(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	test_pipe(fds);
	rec_init(r, loop, fds[0], 64, NULL);
	assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	r->hook = to_chunks_after_header;
	test_write_all(fds[1], "hdr\nbody\nmore", 13);
	close(fds[1]);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:hdr\\n D:body\\nmore E:0:NONE:");
	close(fds[0]);
	free(r);
}

/*
 * A framing change from outside the reader's callbacks (a peer step on the same loop) while a
 * read is in flight applies to the bytes already buffered at once: "HEAD\nBODY" arrives in one
 * read, the line goes out, and the switch to 4-byte frames at U/2 delivers "BODY" then, not
 * when the peer sends more or the gap (3 U/2) passes. The gap then runs from that DATA.
 */
struct frame_switch {
	struct rec *r;
	int64_t at;
	int ret;
};

static void switch_to_exact_4(struct peer *p, void *arg)
{
	struct frame_switch *fs = arg;

	fs->at = tmo_now();
	fs->ret = tmo_reader_frame(&fs->r->reader, TMO_FRAME_EXACT, NULL, 0, 4);
}

static void frame_switch_outside_callbacks_delivers_buffered_frame(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(3 * U / 2, TMO_GAP_END);
	struct rec *r = calloc(1, sizeof(*r));
	struct frame_switch fs = { .r = r, .ret = 1 };
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	peer_init(&p, loop, fds[1]);
	test_write_all(fds[1], "HEAD\nBODY", 9);
	int64_t base = tmo_now();
	peer_call(&p, base + U / 2, switch_to_exact_4, &fs);
	peer_go(&p);
	rec_start(r);
	run(loop);
	assert_int_equal(fs.ret, 0);
	assert_seq(r, "D:HEAD\\n D:BODY E:ETIME:GAP:");
	assert_true(r->ev[0].seen < fs.at);
	assert_int_equal(r->ev[0].buffered, 4);
	assert_on_time(r->ev[1].seen, fs.at);
	/* delivered when the gap from the line passed, END would follow at once: early here */
	assert_on_time(r->ev[2].seen, r->ev[1].left + 3 * U / 2);
	assert_int_equal(r->ev[2].total, 9);
	chan_close(fds, &p);
	free(r);
}

/* set_limits from callbacks: the next wait uses the new gap (measured from the marker's due
 * time), and a gap of 0 removes it. */
static void set_limits_in_markers(struct rec *r, const struct ev *e)
{
	if (e->kind != TMO_READER_TIMEOUT)
		return;
	struct tmo_stream_limits l = { .gap_ns = r->n == 1 ? 2 * U : 0 };
	assert_int_equal(tmo_reader_set_limits(&r->reader, &l), 0);
}

static void set_limits_applies_to_the_next_wait(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	r->hook = set_limits_in_markers;
	peer_init(&p, loop, fds[1]);
	int64_t before = tmo_now();
	peer_close(&p, before + 11 * U / 2);
	peer_go(&p);
	rec_start(r);
	run(loop);
	/* Markers at U and U + 2 U; then no gap: nothing until EOF at 5.5 U. */
	assert_seq(r, "T T E:0:NONE:");
	assert_on_time(r->ev[0].seen, before + U);
	assert_on_time(r->ev[1].seen, before + 3 * U);
	assert_true(r->ev[2].seen >= p.s[0].done_at);
	chan_close(fds, &p);
	free(r);
}

/* Chunk mode hands over what each read returned, up to cap. */
static void chunks_are_bounded_by_cap(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];
	uint8_t all[64];

	test_pipe(fds);
	rec_init(r, loop, fds[0], 4, NULL);
	test_write_all(fds[1], "0123456789", 10);
	close(fds[1]);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:0123 D:4567 D:89 E:0:NONE:");
	assert_int_equal(rec_bytes(r, all, sizeof(all)), 10);
	close(fds[0]);
	free(r);
}

/* ---- 6. pause, resume, stop ---------------------------------------------------------------- */

static void stop_in_first_data(struct rec *r, const struct ev *e)
{
	if (e->kind != TMO_READER_END && r->n == 1) {
		assert_int_equal(tmo_reader_stop(&r->reader), 0);
		/* END has been delivered (nested): the reader is idle, not stopping. */
		assert_int_equal(r->ends, 1);
		assert_false(tmo_reader_busy(&r->reader));
		assert_int_equal(tmo_reader_stop(&r->reader), -EINVAL);
	}
}

static void stop_from_a_callback(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	/* Chunk mode: END after DATA, later bytes stay in the fd. */
	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, NULL);
	r->hook = stop_in_first_data;
	peer_init(&p, loop, fds[1]);
	test_write_all(fds[1], "abc", 3);
	peer_write(&p, tmo_now() + U / 2, "def");
	peer_go(&p);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:abc E:ECANCELED:NONE:");
	assert_int_equal(last_event(r)->total, 3);
	assert_int_equal(test_readable(fds[0]), 3);
	chan_close(fds, &p);

	/* Lines: the END carries the lines received and not delivered. */
	test_pipe(fds);
	rec_init(r, loop, fds[0], 64, NULL);
	assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	r->hook = stop_in_first_data;
	test_write_all(fds[1], "a\nb\nc", 5);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:a\\n E:ECANCELED:NONE:b\\nc");
	chan_close(fds, NULL);

	/* From a TIMEOUT marker. */
	struct tmo_reader_options o = gap_options(U / 4, TMO_GAP_MARK);
	test_pipe(fds);
	rec_init(r, loop, fds[0], 64, &o);
	r->hook = stop_in_first_data;
	rec_start(r);
	run(loop);
	assert_seq(r, "T E:ECANCELED:NONE:");
	chan_close(fds, NULL);
	free(r);
}

struct stop_race {
	struct rec *r;
	int fd;
	const char *bytes;
	int ret;
};

static void write_then_stop(struct peer *p, void *arg)
{
	struct stop_race *sr = arg;

	test_write_all(sr->fd, sr->bytes, strlen(sr->bytes));
	sr->ret = tmo_reader_stop(&sr->r->reader);
}

/*
 * Stop while a read is in flight, right after bytes were written: the read may have got them
 * (then they are in a DATA before END or in END) or not (then they stay in the fd). Nothing
 * lost, nothing after END. Repeated to hit both orders.
 */
static void stop_while_a_read_is_in_flight(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	uint8_t got[64];
	int fds[2];
	int in_end = 0, in_data = 0, in_fd = 0;

	for (int i = 0; i < 60; i++) {
		struct peer p;
		struct stop_race sr = { .r = r, .bytes = "0123456789" };
		chan_open(i % 2 ? PIPE : SOCK, fds);
		rec_init(r, loop, fds[0], 64, NULL);
		if (i % 4 >= 2)
			assert_int_equal(
				tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
		sr.fd = fds[1];
		peer_init(&p, loop, fds[1]);
		/* Some bytes first, delivered for sure. */
		test_write_all(fds[1], "x\n", 2);
		peer_call(&p, tmo_now() + 10 * MS + (i % 5) * MS, write_then_stop, &sr);
		peer_go(&p);
		rec_start(r);
		run(loop);
		assert_int_equal(sr.ret, 0);
		assert_int_equal(r->ends, 1);
		const struct ev *end = last_event(r);
		assert_int_equal(end->error, -ECANCELED);
		assert_int_equal(end->limit, TMO_LIMIT_NONE);
		size_t n = rec_bytes(r, got, sizeof(got));
		int left = test_readable(fds[0]);
		assert_int_equal(n + (size_t)left, 12);
		assert_int_equal(end->total, n);
		assert_memory_equal(got, "x\n0123456789", n);
		if (left)
			in_fd++;
		else if (end->len)
			in_end++;
		else
			in_data++;
		/* Nothing after END: bytes written now stay. */
		test_write_all(fds[1], "more", 4);
		assert_true(tmo_loop_run(loop, TMO_RUN_NOWAIT) >= 0);
		assert_int_equal(test_readable(fds[0]), left + 4);
		chan_close(fds, NULL);
	}
	print_message("stop race: bytes in END %d, in DATA %d, left in fd %d\n", in_end, in_data,
		      in_fd);
	free(r);
}

static void pause_in_first_data(struct rec *r, const struct ev *e)
{
	if (r->n == 1) {
		assert_int_equal(tmo_reader_pause(&r->reader), 0);
		assert_int_equal(tmo_reader_pause(&r->reader), -EALREADY);
	}
}

static void resume_now(struct peer *p, void *arg)
{
	struct rec *r = arg;
	r->ctx = (void *)(intptr_t)tmo_now();
	assert_int_equal(tmo_reader_resume(&r->reader), 0);
	assert_int_equal(tmo_reader_resume(&r->reader), -EALREADY);
}

static void pause_now(struct peer *p, void *arg)
{
	struct rec *r = arg;
	assert_int_equal(tmo_reader_pause(&r->reader), 0);
}

/* Paused from the first DATA with more frames buffered and more bytes arriving: nothing until
 * resume, then everything in order. */
static void pause_then_resume_delivers_in_order(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, NULL);
	assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	r->hook = pause_in_first_data;
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	test_write_all(fds[1], "a\nb\nc", 5);
	peer_write(&p, base + U / 2, "\nd\n");
	peer_call(&p, base + U, resume_now, r);
	peer_write(&p, base + 3 * U / 2, "e\n");
	peer_close(&p, base + 3 * U / 2);
	peer_go(&p);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:a\\n D:b\\n D:c\\n D:d\\n D:e\\n E:0:NONE:");
	int64_t resumed = (int64_t)(intptr_t)r->ctx;
	assert_true(r->ev[1].seen >= resumed);
	chan_close(fds, &p);
	free(r);
}

/* The gap does not run while paused: paused for 3 U with a gap of U, the markers come U and
 * 2 U after resume. */
static void gap_stops_while_paused(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	test_pipe(fds);
	rec_init(r, loop, fds[0], 64, &o);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	peer_call(&p, base + U / 2, pause_now, r);
	peer_call(&p, base + 7 * U / 2, resume_now, r);
	peer_close(&p, base + 6 * U);
	peer_go(&p);
	rec_start(r);
	run(loop);
	assert_seq(r, "T T E:0:NONE:");
	int64_t resumed = (int64_t)(intptr_t)r->ctx;
	assert_on_time(r->ev[0].seen, resumed + U);
	assert_on_time(r->ev[1].seen, resumed + 2 * U);
	chan_close(fds, &p);
	free(r);
}

/* The overall deadline passing during a pause ends the stream at resume. */
static void deadline_passed_during_pause_ends_at_resume(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = { .limits = { .deadline = tmo_in_ns(U) } };
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	peer_call(&p, base + U / 4, pause_now, r);
	peer_write(&p, base + U / 2, "during");
	peer_call(&p, base + 2 * U, resume_now, r);
	peer_go(&p);
	rec_start(r);
	run(loop);
	int64_t resumed = (int64_t)(intptr_t)r->ctx;
	const struct ev *end = last_event(r);
	assert_int_equal(end->kind, TMO_READER_END);
	assert_int_equal(end->error, -ETIME);
	assert_int_equal(end->limit, TMO_LIMIT_DEADLINE);
	assert_on_time(end->seen, resumed);
	/* Whatever was read before the end is delivered; the rest stays. */
	assert_int_equal(end->total + (uint64_t)test_readable(fds[0]), 6);
	chan_close(fds, &p);
	free(r);
}

struct pause_race {
	struct rec *r;
	int fd, reader_fd;
	int consumed;       /* bytes the cancelled read took out of the fd, seen during the pause */
	uint64_t delivered; /* DATA bytes delivered by then */
};

static void write_then_pause(struct peer *p, void *arg)
{
	struct pause_race *pr = arg;
	test_write_all(pr->fd, "0123456789", 10);
	assert_int_equal(tmo_reader_pause(&pr->r->reader), 0);
}

static void look_during_pause(struct peer *p, void *arg)
{
	struct pause_race *pr = arg;
	pr->consumed = 10 - test_readable(pr->reader_fd);
	pr->delivered = pr->r->delivered;
}

/*
 * Pause while a read is in flight, right after bytes were written. stream.h: "No event ... comes
 * while paused ... A read in flight is cancelled; bytes it had already got are kept and
 * delivered after resume." So nothing is delivered during the pause, whether or not the
 * cancelled read had taken the bytes from the fd; after resume everything comes in order, once.
 */
static void pause_while_a_read_is_in_flight(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	uint8_t got[64];
	int fds[2];
	int taken = 0;

	for (int i = 0; i < 30; i++) {
		struct peer p;
		struct pause_race pr = { .r = r };
		chan_open(i % 2 ? PIPE : SOCK, fds);
		rec_init(r, loop, fds[0], 64, NULL);
		pr.fd = fds[1];
		pr.reader_fd = fds[0];
		peer_init(&p, loop, fds[1]);
		int64_t base = tmo_now();
		peer_call(&p, base + 5 * MS + (i % 5) * MS, write_then_pause, &pr);
		peer_call(&p, base + 40 * MS, look_during_pause, &pr);
		peer_write(&p, base + 50 * MS, "abc");
		peer_call(&p, base + 80 * MS, resume_now, r);
		peer_close(&p, base + 80 * MS);
		peer_go(&p);
		rec_start(r);
		run(loop);
		assert_int_equal(last_event(r)->error, 0);
		size_t n = rec_bytes(r, got, sizeof(got));
		assert_int_equal(n, 13);
		assert_memory_equal(got, "0123456789abc", 13);
		if (pr.consumed)
			taken++;
		if (pr.delivered != 0)
			fail_msg("during the pause: %d bytes taken from the fd by the cancelled read, "
				 "%llu delivered (stream.h: no event while paused; kept for resume)",
				 pr.consumed, (unsigned long long)pr.delivered);
		/* Nothing before resume: the bytes the cancelled read got wait in the buffer. */
		int64_t resumed = (int64_t)(intptr_t)r->ctx;
		size_t before = 0;
		for (int k = 0; k < r->n; k++)
			if (r->ev[k].seen < resumed)
				before += r->ev[k].len;
		assert_int_equal(before, 0);
		chan_close(fds, &p);
	}
	print_message("pause race: the cancelled read had got the bytes %d times of 30\n", taken);
	free(r);
}

/* Paused right after start (before the first read is issued), then resumed. */
static void pause_right_after_start(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U / 2, TMO_GAP_END);
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	test_pipe(fds);
	rec_init(r, loop, fds[0], 64, &o);
	test_write_all(fds[1], "early", 5);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	peer_call(&p, base + U, resume_now, r);
	peer_go(&p);
	rec_start(r);
	assert_int_equal(tmo_reader_pause(&r->reader), 0);
	run(loop);
	/* Nothing while paused (no gap END at U/2), then the data, then the gap from there. */
	assert_seq(r, "D:early E:ETIME:GAP:");
	int64_t resumed = (int64_t)(intptr_t)r->ctx;
	assert_true(r->ev[0].seen >= resumed);
	assert_on_time(r->ev[1].seen, r->ev[0].left + U / 2);
	chan_close(fds, &p);
	free(r);
}

static void stop_while_paused_carries_buffered_frames(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	test_pipe(fds);
	rec_init(r, loop, fds[0], 64, NULL);
	assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	r->hook = pause_in_first_data;
	test_write_all(fds[1], "a\nb\nc\nd", 7);
	rec_start(r);
	/* Until the pause holds. */
	while (r->n < 1)
		assert_true(tmo_loop_run(loop, TMO_RUN_ONCE) >= 0);
	assert_true(tmo_loop_run_until(loop, tmo_in_ms(50)) >= 0);
	assert_int_equal(r->n, 1);
	assert_int_equal(tmo_reader_stop(&r->reader), 0);
	assert_int_equal(tmo_reader_stop(&r->reader), -EALREADY);
	assert_int_equal(r->n, 1);
	run(loop);
	assert_seq(r, "D:a\\n E:ECANCELED:NONE:b\\nc\\nd");
	chan_close(fds, NULL);
	free(r);
}

/* ---- 7. bad input -------------------------------------------------------------------------- */

static void bad_input(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tmo_reader zero = { 0 };
	uint8_t buf[16];
	int fds[2];

	test_pipe(fds);
	struct tmo_reader *rd = &r->reader;
	assert_int_equal(tmo_reader_init(NULL, loop, fds[0], buf, 16, NULL), -EINVAL);
	assert_int_equal(tmo_reader_init(rd, NULL, fds[0], buf, 16, NULL), -EINVAL);
	assert_int_equal(tmo_reader_init(rd, loop, fds[0], NULL, 16, NULL), -EINVAL);
	assert_int_equal(tmo_reader_init(rd, loop, fds[0], buf, 0, NULL), -EINVAL);
	assert_int_equal(tmo_reader_init(rd, loop, fds[0], buf, ((size_t)1 << 31) + 1, NULL),
			 -EINVAL);
	assert_int_equal(tmo_reader_init(rd, loop, -1, buf, 16, NULL), -EBADF);
	struct tmo_reader_options o = gap_options(-1, TMO_GAP_END);
	assert_int_equal(tmo_reader_init(rd, loop, fds[0], buf, 16, &o), -EINVAL);
	o = gap_options(0, (enum tmo_on_gap)7);
	assert_int_equal(tmo_reader_init(rd, loop, fds[0], buf, 16, &o), -EINVAL);
	o = (struct tmo_reader_options){ .limits = { .deadline = tmo_at(-5) } };
	assert_int_equal(tmo_reader_init(rd, loop, fds[0], buf, 16, &o), -EINVAL);
	o = (struct tmo_reader_options){ .limits = { .rate_window_ns = -1, .min_rate = 1 } };
	assert_int_equal(tmo_reader_init(rd, loop, fds[0], buf, 16, &o), -EINVAL);

	/* Never initialised. */
	assert_int_equal(tmo_reader_start(&zero, rec_cb), -EINVAL);
	assert_int_equal(tmo_reader_start(NULL, rec_cb), -EINVAL);
	assert_false(tmo_reader_busy(&zero));

	rec_init(r, loop, fds[0], 16, NULL);
	assert_int_equal(tmo_reader_frame(NULL, TMO_FRAME_CHUNK, NULL, 0, 0), -EINVAL);
	assert_int_equal(tmo_reader_frame(rd, (enum tmo_frame)9, NULL, 0, 0), -EINVAL);
	assert_int_equal(tmo_reader_frame(rd, TMO_FRAME_DELIMITER, "\n", 0, 0), -EINVAL);
	assert_int_equal(tmo_reader_frame(rd, TMO_FRAME_DELIMITER, "0123456789abcdefg", 17, 0),
			 -EINVAL);
	assert_int_equal(tmo_reader_frame(rd, TMO_FRAME_DELIMITER, NULL, 1, 0), -EINVAL);
	assert_int_equal(tmo_reader_frame(rd, TMO_FRAME_EXACT, NULL, 0, 0), -EINVAL);
	assert_int_equal(tmo_reader_frame(rd, TMO_FRAME_EXACT, NULL, 0, 17), -ENOBUFS);
	assert_int_equal(tmo_reader_frame(rd, TMO_FRAME_DELIMITER, "0123456789abcdef", 16, 0), 0);
	assert_int_equal(tmo_reader_frame(rd, TMO_FRAME_EXACT, NULL, 0, 16), 0);
	assert_int_equal(tmo_reader_frame(rd, TMO_FRAME_CHUNK, NULL, 0, 0), 0);
	struct tmo_stream_limits bad = { .gap_ns = -1 };
	assert_int_equal(tmo_reader_set_limits(rd, &bad), -EINVAL);
	assert_int_equal(tmo_reader_set_limits(NULL, &bad), -EINVAL);

	/* Initialised, never started. */
	assert_false(tmo_reader_busy(rd));
	assert_int_equal(tmo_reader_pause(rd), -EINVAL);
	assert_int_equal(tmo_reader_resume(rd), -EINVAL);
	assert_int_equal(tmo_reader_stop(rd), -EINVAL);
	assert_int_equal(tmo_reader_pause(NULL), -EINVAL);
	assert_int_equal(tmo_reader_resume(NULL), -EINVAL);
	assert_int_equal(tmo_reader_stop(NULL), -EINVAL);
	assert_int_equal(tmo_loop_active(loop), 0);
	assert_int_equal(tmo_reader_start(rd, NULL), -EINVAL);
	assert_false(tmo_reader_busy(rd));
	assert_int_equal(tmo_loop_active(loop), 0);

	/* Started. */
	rec_start(r);
	assert_true(tmo_reader_busy(rd));
	assert_int_equal(tmo_reader_start(rd, rec_cb), -EBUSY);
	assert_int_equal(tmo_reader_init(rd, loop, fds[0], buf, 16, NULL), -EBUSY);
	assert_int_equal(tmo_reader_resume(rd), -EALREADY);
	assert_int_equal(tmo_reader_stop(rd), 0);
	assert_int_equal(tmo_reader_stop(rd), -EALREADY);
	assert_int_equal(r->n, 0);
	run(loop);
	assert_seq(r, "E:ECANCELED:NONE:");
	assert_false(tmo_reader_busy(rd));
	/* Idle again. */
	assert_int_equal(tmo_reader_stop(rd), -EINVAL);
	assert_int_equal(tmo_reader_pause(rd), -EINVAL);
	assert_int_equal(tmo_loop_active(loop), 0);
	chan_close(fds, NULL);

	/* A closed fd, a regular file, /dev/null (a character device: accepted, reads EOF). */
	test_pipe(fds);
	int closed = fds[0];
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(tmo_reader_init(rd, loop, closed, r->buf, 16, NULL), -EBADF);
	FILE *file = tmpfile();
	assert_non_null(file);
	assert_int_equal(tmo_reader_init(rd, loop, fileno(file), r->buf, 16, NULL), -EOPNOTSUPP);
	fclose(file);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(devnull >= 0);
	rec_init(r, loop, devnull, 16, NULL);
	rec_start(r);
	run(loop);
	assert_seq(r, "E:0:NONE:");
	close(devnull);
	assert_int_equal(tmo_loop_active(loop), 0);

	/* A reset connection: the kernel's error. */
	test_socketpair(fds);
	rec_init(r, loop, fds[0], 16, NULL);
	test_write_all(fds[0], "unread", 6); /* unread by the peer, which then closes */
	test_write_all(fds[1], "hi", 2);
	rec_start(r);
	while (r->n < 1)
		assert_true(tmo_loop_run(loop, TMO_RUN_ONCE) >= 0);
	close(fds[1]);
	run(loop);
	assert_seq(r, "D:hi E:ECONNRESET:NONE:");
	close(fds[0]);
	free(r);
}

/* "O_NONBLOCK descriptors work too": a quiet gap, then a chunk, then EOF. */
static void nonblocking_fds(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U, TMO_GAP_MARK);
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	for (int c = SOCK; c <= PIPE; c++) {
		chan_open(c, fds);
		assert_int_equal(fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK), 0);
		rec_init(r, loop, fds[0], 64, &o);
		peer_init(&p, loop, fds[1]);
		int64_t base = tmo_now();
		peer_write(&p, base + 3 * U / 2, "late");
		peer_close(&p, base + 2 * U);
		peer_go(&p);
		rec_start(r);
		run(loop);
		assert_seq(r, "T D:late E:0:NONE:");
		chan_close(fds, &p);
	}
	free(r);
}

/* Limits at the ends of their ranges: no overflow (UBSan), no spurious end. */
static void extreme_limits(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = {
		.limits = { .gap_ns = INT64_MAX, .deadline = tmo_at(INT64_MAX - 1),
			    .min_rate = UINT64_MAX, .rate_window_ns = INT64_MAX },
		.on_gap = TMO_GAP_MARK,
	};
	struct rec *r = calloc(1, sizeof(*r));
	struct peer p;
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	peer_init(&p, loop, fds[1]);
	int64_t base = tmo_now();
	peer_write(&p, base + 20 * MS, "x");
	peer_close(&p, base + 40 * MS);
	peer_go(&p);
	rec_start(r);
	run(loop);
	/* The window can never have run its course: no rate cut. */
	assert_seq(r, "D:x E:0:NONE:");
	chan_close(fds, &p);

	/* A one-nanosecond window with a floor of 1 B/s (the window must hold 1 byte): cut at
	 * once after start + 1 ns. */
	o.limits = (struct tmo_stream_limits){ .min_rate = 1, .rate_window_ns = 1 };
	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	rec_start(r);
	run(loop);
	assert_seq(r, "E:ETIME:RATE:");
	chan_close(fds, NULL);
	free(r);
}

/* cap may be 2^31 exactly (over is refused). */
static void cap_of_two_gigabytes(void **state)
{
	struct tmo_loop *loop = *state;
	size_t cap = (size_t)1 << 31;
	struct tmo_reader reader = { 0 };
	uint8_t *big = mmap(NULL, cap, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int fds[2];

	if (big == MAP_FAILED)
		skip();
	struct rec *r = calloc(1, sizeof(*r));
	test_pipe(fds);
	r->loop = loop;
	assert_int_equal(tmo_reader_init(&reader, loop, fds[0], big, cap + 1, NULL), -EINVAL);
	/* rec's own buffer is not used: the reader reads into `big`. */
	assert_int_equal(tmo_reader_init(&r->reader, loop, fds[0], big, cap, NULL), 0);
	r->reader.data = r;
	test_write_all(fds[1], "hello", 5);
	close(fds[1]);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:hello E:0:NONE:");
	close(fds[0]);
	munmap(big, cap);
	free(r);
}

/* ---- 8. END once per start, restarts from END ------------------------------------------------ */

static void restart_from_end(struct rec *r, const struct ev *e)
{
	if (e->kind == TMO_READER_END && r->starts < 4) {
		assert_false(tmo_reader_busy(&r->reader));
		r->delivered = 0;
		r->starts++;
		assert_int_equal(tmo_reader_start(&r->reader, rec_cb), 0);
		assert_true(tmo_reader_busy(&r->reader));
	}
}

static void restart_inside_end(void **state)
{
	struct tmo_loop *loop = *state;
	struct tmo_reader_options o = gap_options(U / 4, TMO_GAP_END);
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	test_pipe(fds);
	rec_init(r, loop, fds[0], 16, &o);
	r->hook = restart_from_end;
	int64_t before = tmo_now();
	rec_start(r);
	run(loop);
	assert_int_equal(r->starts, 4);
	assert_int_equal(r->ends, 4);
	assert_seq(r, "E:ETIME:GAP: E:ETIME:GAP: E:ETIME:GAP: E:ETIME:GAP:");
	int64_t from = before;
	for (int i = 0; i < 4; i++) {
		/* Each restart's gap runs from the restart (inside the previous END). */
		assert_on_time(r->ev[i].seen, from + U / 4);
		from = r->ev[i].seen;
	}
	chan_close(fds, NULL);
	free(r);
}

struct reinit_ctx {
	int second_fd;
};

static void reinit_from_end(struct rec *r, const struct ev *e)
{
	struct reinit_ctx *c = r->ctx;
	if (e->kind == TMO_READER_END && r->starts == 1) {
		/* Idle inside END: may be set up again, on another fd, with other framing. */
		assert_int_equal(tmo_reader_init(&r->reader, r->loop, c->second_fd, r->buf, 16, NULL),
				 0);
		r->reader.data = r;
		assert_int_equal(tmo_reader_frame(&r->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
		r->delivered = 0;
		r->starts++;
		assert_int_equal(tmo_reader_start(&r->reader, rec_cb), 0);
	}
}

static void reinit_and_restart_inside_end(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	int a[2], b[2];

	test_socketpair(a);
	test_pipe(b);
	struct reinit_ctx c = { .second_fd = b[0] };
	rec_init(r, loop, a[0], 16, NULL);
	r->hook = reinit_from_end;
	r->ctx = &c;
	test_write_all(a[1], "abc", 3);
	close(a[1]);
	test_write_all(b[1], "x\ny", 3);
	close(b[1]);
	rec_start(r);
	run(loop);
	assert_seq(r, "D:abc E:0:NONE: D:x\\n E:0:NONE:y");
	assert_int_equal(r->ev[1].total, 3);
	assert_int_equal(r->ev[2].total, 3); /* counted from the second start */
	assert_int_equal(r->ev[3].total, 3);
	assert_int_equal(r->ends, 2);
	close(a[0]);
	close(b[0]);
	free(r);
}

struct end_race {
	struct rec *r;
	int ret;
	int peer_fd;
};

static void race_stop(struct peer *p, void *arg)
{
	struct end_race *er = arg;
	if (er->peer_fd >= 0) {
		close(er->peer_fd);
		er->peer_fd = -1;
	}
	er->ret = tmo_reader_stop(&er->r->reader);
}

/* stop() at the moment the gap expires, or the peer closes: exactly one END, consistent with
 * what stop() returned. */
static void end_exactly_once_under_races(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	int count[3] = { 0 };

	for (int i = 0; i < 40; i++) {
		int fds[2];
		struct peer p;
		bool eof = i % 2;
		struct tmo_reader_options o = gap_options(eof ? 0 : 20 * MS, TMO_GAP_END);
		struct end_race er = { .r = r, .peer_fd = -1 };
		chan_open(i % 4 < 2 ? SOCK : PIPE, fds);
		rec_init(r, loop, fds[0], 16, &o);
		peer_init(&p, loop, -1);
		if (eof)
			er.peer_fd = fds[1];
		int64_t at = tmo_now() + 20 * MS + (i % 7 - 3) * 100 * TMO_NSEC_PER_USEC;
		rec_start(r);
		peer_call(&p, at, race_stop, &er);
		peer_go(&p);
		run(loop);
		assert_int_equal(r->ends, 1);
		assert_int_equal(r->n, 1);
		const struct ev *end = &r->ev[0];
		int32_t natural = eof ? 0 : -ETIME;
		if (er.ret == 0) {
			assert_int_equal(end->error, -ECANCELED);
			count[0]++;
		} else if (er.ret == -EALREADY) {
			assert_int_equal(end->error, natural);
			count[1]++;
		} else {
			assert_int_equal(er.ret, -EINVAL); /* END already delivered */
			assert_int_equal(end->error, natural);
			count[2]++;
		}
		close(fds[0]);
		if (!eof)
			close(fds[1]);
	}
	print_message("stop race: cancelled %d, ending %d, ended %d\n", count[0], count[1],
		      count[2]);
	free(r);
}

/* ---- stop, then free, from the reader's own DATA callback -------------------------------- */

/* Heap-allocated so that ASan reports any access to it after the callback freed it. */
struct freed_reader {
	struct tmo_reader reader;
	uint8_t buf[64];
	int *events;          /* on the test's stack: outlives the reader */
	int *end_error;
	size_t *end_len;
	bool *end_before_stop_returned;
};

static void free_on_data_cb(struct tmo_reader *reader, const struct tmo_reader_event *event)
{
	struct freed_reader *fr = reader->data;

	(*fr->events)++;
	if (event->kind == TMO_READER_END) {
		*fr->end_error = event->error;
		*fr->end_len = event->len;
		return;
	}
	assert_int_equal(event->kind, TMO_READER_DATA);
	int *end_error = fr->end_error;
	bool *flag = fr->end_before_stop_returned;
	assert_int_equal(tmo_reader_stop(reader), 0);
	/* The rule: stop from the reader's own callback delivers END before it returns, so the
	 * reader is idle here and may be freed; tmo must not touch it after this. */
	*flag = *end_error != 1;
	assert_false(tmo_reader_busy(reader));
	free(fr);
}

static void reader_freed_after_stop_in_its_data_callback(void **state)
{
	struct tmo_loop *loop = *state;
	int fds[2];
	int events = 0, end_error = 1;
	size_t end_len = 99;
	bool end_before_stop_returned = false;

	test_socketpair(fds);
	struct freed_reader *fr = calloc(1, sizeof(*fr));
	assert_non_null(fr);
	fr->reader.data = fr;
	fr->events = &events;
	fr->end_error = &end_error;
	fr->end_len = &end_len;
	fr->end_before_stop_returned = &end_before_stop_returned;
	assert_int_equal(tmo_reader_init(&fr->reader, loop, fds[0], fr->buf, sizeof(fr->buf), NULL), 0);
	/* Two lines in one read: the stop comes with the second one still buffered. */
	assert_int_equal(tmo_reader_frame(&fr->reader, TMO_FRAME_DELIMITER, "\n", 1, 0), 0);
	test_write_all(fds[1], "one\ntwo\n", 8);
	assert_int_equal(tmo_reader_start(&fr->reader, free_on_data_cb), 0);
	assert_int_equal(tmo_loop_run(loop, TMO_RUN_DEFAULT), 0);

	assert_int_equal(events, 2); /* DATA "one\n", then END carrying "two\n" */
	assert_true(end_before_stop_returned);
	assert_int_equal(end_error, -ECANCELED);
	assert_int_equal(end_len, 4);
	close(fds[0]);
	close(fds[1]);
}

/* ---- tmo_reader_paused and names ---------------------------------------------------------- */

static void paused_says_whether_paused(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	int fds[2];

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, NULL);
	assert_false(tmo_reader_paused(&r->reader)); /* not started */
	assert_false(tmo_reader_paused(NULL));
	rec_start(r);
	assert_false(tmo_reader_paused(&r->reader));
	assert_int_equal(tmo_reader_pause(&r->reader), 0);
	assert_true(tmo_reader_paused(&r->reader));
	assert_int_equal(tmo_reader_resume(&r->reader), 0);
	assert_false(tmo_reader_paused(&r->reader));
	assert_int_equal(tmo_reader_pause(&r->reader), 0);
	assert_int_equal(tmo_reader_stop(&r->reader), 0);
	run(loop);
	assert_seq(r, "E:ECANCELED:NONE:");
	assert_false(tmo_reader_paused(&r->reader)); /* ended: no longer paused */
	close(fds[0]);
	close(fds[1]);
	free(r);
}

static void stream_enums_have_names(void **state)
{
	(void)state;
	assert_string_equal(tmo_limit_name(TMO_LIMIT_NONE), "none");
	assert_string_equal(tmo_limit_name(TMO_LIMIT_GAP), "gap");
	assert_string_equal(tmo_limit_name(TMO_LIMIT_DEADLINE), "deadline");
	assert_string_equal(tmo_limit_name(TMO_LIMIT_RATE), "rate");
	assert_string_equal(tmo_limit_name(TMO_LIMIT_SCOPE), "scope");
	assert_string_equal(tmo_limit_name((enum tmo_limit)42), "unknown");
	assert_string_equal(tmo_reader_event_name(TMO_READER_DATA), "data");
	assert_string_equal(tmo_reader_event_name(TMO_READER_TIMEOUT), "timeout");
	assert_string_equal(tmo_reader_event_name(TMO_READER_END), "end");
	assert_string_equal(tmo_reader_event_name((enum tmo_reader_event_kind)0), "unknown");
	assert_string_equal(tmo_stall_source_name(TMO_STALL_JOB), "job");
	assert_string_equal(tmo_stall_source_name((enum tmo_stall_source)9), "unknown");
	assert_string_equal(tmo_overrun_name(TMO_OVERRUN_KILL), "kill");
	assert_string_equal(tmo_overrun_name((enum tmo_overrun)3), "unknown");
	assert_string_equal(tmo_cause_name(TMO_CAUSE_OWN), "own");
	assert_string_equal(tmo_cause_name(TMO_CAUSE_CANCEL), "cancel");
	assert_string_equal(tmo_cause_name((enum tmo_cause)-3), "unknown");
}

/* ---- a resume outside the scope the reader was started in --------------------------------- */

static void resume_outside_the_scope_leaves_it(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tmo_scope scope = { 0 };
	int fds[2];
	/* The scope's deadline, U, must not pass before the pause (a loaded machine may take a
	 * while): any scope deadline shorter than the gap shows the old bug. */
	struct tmo_reader_options o = { .limits = { .gap_ns = 3 * U } };

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_in_ns(U), 0), 0);
	rec_start(r);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_true(tmo_scope_busy(&scope)); /* the reader's request is in it */
	assert_true(tmo_loop_run(loop, TMO_RUN_NOWAIT) >= 0); /* the first read is in the kernel */
	assert_int_equal(tmo_reader_pause(&r->reader), 0);
	/* Resumed outside any scope before the paused read has ended: the reads that follow are
	 * in no scope, as after a resume with nothing in flight. Before, they stayed in the
	 * scope, whose deadline ended the reader (limit "scope") at U. */
	int64_t resumed = tmo_now();
	assert_int_equal(tmo_reader_resume(&r->reader), 0);
	run(loop);
	assert_seq(r, "E:ETIME:GAP:");
	assert_on_time(last_event(r)->seen, resumed + 3 * U);
	assert_false(tmo_scope_busy(&scope));
	assert_false(tmo_scope_expired(&scope));
	chan_close(fds, NULL);
	free(r);
}

/* The other way: started outside, resumed inside a scope with the paused read in flight: the
 * scope's deadline now bounds the reader. */
static void resume_inside_a_scope_joins_it(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tmo_scope scope = { 0 };
	int fds[2];
	struct tmo_reader_options o = { .limits = { .gap_ns = 4 * U } };

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	rec_start(r);
	tmo_loop_run(loop, TMO_RUN_NOWAIT);
	assert_int_equal(tmo_reader_pause(&r->reader), 0);
	int64_t deadline = tmo_now() + U;
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_at(deadline), 0), 0);
	assert_int_equal(tmo_reader_resume(&r->reader), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	assert_true(tmo_scope_busy(&scope)); /* held for the reader until its next read joins */
	run(loop);
	assert_seq(r, "E:ETIME:SCOPE:");
	assert_on_time(last_event(r)->seen, deadline);
	assert_true(tmo_scope_expired(&scope));
	assert_false(tmo_scope_busy(&scope));
	chan_close(fds, NULL);
	free(r);
}

/* Resumed in a scope, paused again before a read joined it, then resumed outside any scope:
 * the scope of the middle resume is let go (it used to linger and end the reader). */
static void resume_in_a_scope_then_outside_leaves_it(void **state)
{
	struct tmo_loop *loop = *state;
	struct rec *r = calloc(1, sizeof(*r));
	struct tmo_scope scope = { 0 };
	int fds[2];
	struct tmo_reader_options o = { .limits = { .gap_ns = 2 * U } };

	test_socketpair(fds);
	rec_init(r, loop, fds[0], 64, &o);
	rec_start(r); /* outside any scope: the start's nop is in flight */
	assert_int_equal(tmo_reader_pause(&r->reader), 0);
	assert_int_equal(tmo_scope_enter(loop, &scope, tmo_in_ns(U / 4), 0), 0);
	assert_int_equal(tmo_reader_resume(&r->reader), 0);
	assert_int_equal(tmo_reader_pause(&r->reader), 0);
	assert_int_equal(tmo_scope_exit(&scope), 0);
	/* Until the start's nop and its cancel are reaped (bounded: a loaded machine may take a
	 * few passes, never the tolerance). */
	int64_t limit = tmo_now() + test_tolerance_ns();
	while (tmo_op_busy(&r->reader._op) && tmo_now() < limit)
		assert_true(tmo_loop_run(loop, TMO_RUN_NOWAIT) >= 0);
	/* Nothing in flight now: the last resume takes the path without a request (the other
	 * path is resume_outside_the_scope_leaves_it's). */
	assert_false(tmo_op_busy(&r->reader._op));
	int64_t resumed = tmo_now();
	assert_int_equal(tmo_reader_resume(&r->reader), 0);
	run(loop);
	assert_seq(r, "E:ETIME:GAP:");
	assert_on_time(last_event(r)->seen, resumed + 2 * U);
	assert_false(tmo_scope_busy(&scope));
	chan_close(fds, NULL);
	free(r);
}

int main(int argc, char **argv)
{
/* Each test twice: deadlines kept by the kernel (default) and by the loop. */
#define BOTH(f)                                                                          \
	{ #f " [kernel]", f, test_loop_setup, test_loop_teardown, NULL },                \
	{                                                                                \
		#f " [loop]", f, test_loop_setup_loop_deadlines, test_loop_teardown, NULL \
	}
#define T(f) cmocka_unit_test_setup_teardown(f, test_loop_setup, test_loop_teardown)
	const struct CMUnitTest tests[] = {
		BOTH(seed_scenario_socketpair),
		{ "seed_scenario_socketpair [low-latency]", seed_scenario_socketpair,
		  setup_low_latency, test_loop_teardown, NULL },
		BOTH(seed_scenario_pipe),
		BOTH(gap_end_socketpair),
		BOTH(gap_end_pipe),
		T(gap_end_on_silence),
		BOTH(deadline_ends_a_flowing_stream),
		BOTH(scope_ends_a_flowing_stream),
		T(earlier_of_scope_and_deadline_wins),
		BOTH(scope_shifted_later_lets_the_stream_wait_on),
		BOTH(scope_shifted_earlier_cuts_the_read),
		T(kernel_cuts_a_gap_while_the_loop_is_stuck),
		T(kernel_cuts_a_scope_while_the_loop_is_stuck),
		T(deadline_already_passed),
		T(slow_callback_does_not_eat_the_gap),
		BOTH(markers_then_the_scope_ends),
		BOTH(markers_then_the_deadline_ends),
		BOTH(rate_floor_cuts_a_trickle_socketpair),
		T(rate_floor_cuts_a_trickle_pipe),
		BOTH(rate_floor_cuts_when_a_burst_leaves_the_window),
		T(rate_floor_spares_a_fast_peer),
		T(rate_floor_survives_refreshed_limits),
		BOTH(gap_wins_a_tie_with_the_rate_floor),
		T(frame_newline),
		T(frame_crlf),
		T(frame_long_delimiter_with_false_starts),
		T(frame_exact),
		T(frame_switch_inside_data),
		T(frame_line_over_buffer),
		BOTH(gap_marker_inside_a_line),
		BOTH(buffered_frame_after_a_marker_restarts_the_gap),
		T(frame_switch_to_chunks),
		BOTH(frame_switch_outside_callbacks_delivers_buffered_frame),
		BOTH(set_limits_applies_to_the_next_wait),
		T(chunks_are_bounded_by_cap),
		T(stop_from_a_callback),
		T(reader_freed_after_stop_in_its_data_callback),
		T(paused_says_whether_paused),
		T(resume_outside_the_scope_leaves_it),
		T(resume_inside_a_scope_joins_it),
		T(resume_in_a_scope_then_outside_leaves_it),
		T(stream_enums_have_names),
		BOTH(stop_while_a_read_is_in_flight),
		T(pause_then_resume_delivers_in_order),
		BOTH(gap_stops_while_paused),
		T(deadline_passed_during_pause_ends_at_resume),
		BOTH(pause_while_a_read_is_in_flight),
		T(pause_right_after_start),
		T(stop_while_paused_carries_buffered_frames),
		T(bad_input),
		BOTH(nonblocking_fds),
		T(cap_of_two_gigabytes),
		T(restart_inside_end),
		T(reinit_and_restart_inside_end),
		BOTH(end_exactly_once_under_races),
		T(extreme_limits), /* last: UBSan aborts the program on the overflow it hits */
	};
	/* Optional: a cmocka name pattern to run, and one to skip ("*races*"). */
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	if (argc > 2)
		cmocka_set_skip_filter(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
