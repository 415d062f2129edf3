/*
 * tmo demo, the streams family: stream-gap-raise and stream-gap-sentinel (a reader's gap limit
 * ending the stream, or marking each gap) and periodic-refresh (a tick beside a stream).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "demo.h"

/* The peer: writes chunk k at t0 + at[k] from the loop (sleep ops), then maybe shuts down. */
struct peer {
	struct tmo_op op;
	struct tmo_loop *loop;
	int fd;
	int64_t t0;
	int n, next;
	const int64_t *at;
	const char *const *chunk;
	bool eof_after;
	int write_errors;
};

static void peer_cb(struct tmo_op *op, int32_t res)
{
	struct peer *p = op->data;
	if (res != 0)
		return; /* cancelled: the reader is done */
	const char *c = p->chunk[p->next];
	if (write(p->fd, c, strlen(c)) != (ssize_t)strlen(c))
		p->write_errors++;
	if (++p->next < p->n) {
		tmo_prep_sleep(op, tmo_at(p->t0 + p->at[p->next]));
		tmo_op_start(p->loop, op, TMO_NEVER, peer_cb);
	} else if (p->eof_after) {
		shutdown(p->fd, SHUT_WR);
	}
}

static int peer_start(struct peer *p)
{
	p->op.data = p;
	tmo_prep_sleep(&p->op, tmo_at(p->t0 + p->at[0]));
	return tmo_op_start(p->loop, &p->op, TMO_NEVER, peer_cb);
}

#define EVENTS 32

struct stream_event {
	int kind;    /* TMO_READER_DATA (one per byte) or TMO_READER_TIMEOUT */
	char byte;
	int64_t at;  /* when delivered */
	int64_t ret; /* when the callback returned */
};

struct stream_run {
	struct tmo_loop *loop;
	struct tmo_reader reader;
	uint8_t buf[256];
	struct peer peer;
	struct tmo_tick *tick;
	int64_t t0;
	int n;
	struct stream_event ev[EVENTS];
	bool ended;
	int32_t end_error;
	enum tmo_limit end_limit;
	int64_t end_at;
};

static void stream_cb(struct tmo_reader *reader, const struct tmo_reader_event *e)
{
	struct stream_run *s = reader->data;
	int64_t now = tmo_now();
	if (e->kind == TMO_READER_END) {
		s->ended = true;
		s->end_error = e->error;
		s->end_limit = e->limit;
		s->end_at = now;
		tmo_op_cancel(&s->peer.op);
		if (s->tick)
			tmo_tick_stop(s->tick);
		tmo_loop_stop(s->loop);
		return;
	}
	int first = s->n;
	if (e->kind == TMO_READER_TIMEOUT) {
		if (s->n < EVENTS)
			s->ev[s->n++] = (struct stream_event){ .kind = TMO_READER_TIMEOUT, .at = now };
	} else {
		for (size_t i = 0; i < e->len && s->n < EVENTS; i++)
			s->ev[s->n++] = (struct stream_event){ .kind = TMO_READER_DATA,
							   .byte = (char)e->data[i], .at = now };
	}
	int64_t ret = tmo_now();
	for (int i = first; i < s->n; i++)
		s->ev[i].ret = ret;
}

/* A socketpair, a reader on one end and a peer that writes `chunks` at times `at` (from its
 * t0) on the other, then EOF if `eof_after`. */
static bool stream_setup(struct demo *d, struct report *r, struct stream_run *s, int sv[2],
			 const struct tmo_reader_options *opt, const int64_t *at,
			 const char *const *chunks, int n, bool eof_after)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		setup_failed(r, "socketpair", errno);
		return false;
	}
	int ret = tmo_reader_init(&s->reader, s->loop, sv[0], s->buf, sizeof(s->buf), opt);
	if (ret < 0) {
		setup_failed(r, "tmo_reader_init", ret);
		return false;
	}
	s->reader.data = s;
	s->peer.loop = s->loop;
	s->peer.fd = sv[1];
	s->peer.at = at;
	s->peer.chunk = chunks;
	s->peer.n = n;
	s->peer.eof_after = eof_after;
	return true;
}

/* Starts the reader and the peer. False (and reported) if either refuses. */
static bool stream_start(struct report *r, struct stream_run *s)
{
	int ret = tmo_reader_start(&s->reader, stream_cb);
	if (ret == 0)
		ret = peer_start(&s->peer);
	if (ret < 0)
		setup_failed(r, "start", ret);
	return ret >= 0;
}

static void stream_sequence(const struct stream_run *s, char *json, size_t size, char *text,
			    size_t tsize)
{
	append(json, size, "[");
	append(text, tsize, "[");
	for (int i = 0; i < s->n; i++) {
		const char *sep = i ? ", " : "";
		if (s->ev[i].kind == TMO_READER_TIMEOUT) {
			append(json, size, "%s\"timeout\"", sep);
			append(text, tsize, "%stimeout", sep);
		} else if (s->ev[i].byte >= '0' && s->ev[i].byte <= '9') {
			append(json, size, "%s%c", sep, s->ev[i].byte);
			append(text, tsize, "%s%c", sep, s->ev[i].byte);
		} else {
			append(json, size, "%s\"?\"", sep);
			append(text, tsize, "%s?", sep);
		}
	}
	append(json, size, "]");
	append(text, tsize, "]");
}

static void stream_finish(struct demo *d, struct report *r, struct stream_run *s, int sv[2])
{
	if (tmo_reader_busy(&s->reader)) {
		tmo_reader_stop(&s->reader);
		tmo_op_cancel(&s->peer.op);
	}
	drain(r, s->loop, tmo_now() + U(d, 10));
	check(r, s->peer.write_errors == 0, "the peer's writes failed");
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
}

void sc_stream_gap_raise(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct stream_run s = { .loop = &loop };
	int sv[2] = { -1, -1 };
	static const char *const chunks[] = { "1", "2", "3" };
	int64_t at[3] = { U(d, 0.2), U(d, 0.5), U(d, 2.0) };
	struct tmo_reader_options opt = { .limits = { .gap_ns = U(d, 1) }, .on_gap = TMO_GAP_END };

	if (!loop_open(r, &loop))
		return;
	if (!stream_setup(d, r, &s, sv, &opt, at, chunks, 3, false))
		goto out;
	s.t0 = s.peer.t0 = tmo_now();
	if (!stream_start(r, &s))
		goto out;
	run_until(r, &loop, &s.ended, s.t0 + U(d, 10), "the stream");

	char json[128] = "", text[128] = "", rb[64];
	stream_sequence(&s, json, sizeof(json), text, sizeof(text));
	int64_t last = s.n > 0 ? s.ev[s.n - 1].ret : s.t0;
	int64_t gap = s.end_at - last;
	r->outcome = outcome_of(s.end_error);
	r->elapsed_ns = s.end_at - s.t0;
	happened(r, "received %s, then the stream ended with %s (limit: %s) at %.0f ms, %.0f ms "
		    "after the last chunk",
		 text, res_name(s.end_error, rb), tmo_limit_name(s.end_limit), ms(r->elapsed_ns),
		 ms(gap));
	key(r, "received", "%s", json);
	key(r, "limit", "\"%s\"", tmo_limit_name(s.end_limit));
	key(r, "gap_limit_ms", "%.1f", ms(U(d, 1)));
	key(r, "silence_ms", "%.1f", ms(gap));
	check(r, s.ended && s.end_error == -ETIME && s.end_limit == TMO_LIMIT_GAP,
	      "the stream ended with %s (limit %s)", res_name(s.end_error, rb),
	      tmo_limit_name(s.end_limit));
	check(r, !strcmp(text, "[1, 2]"), "received %s, expected [1, 2]", text);
	on_time(r, "the gap's timeout", gap, U(d, 1));
out:
	stream_finish(d, r, &s, sv);
	loop_close(r, &loop);
}

void sc_stream_gap_sentinel(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct stream_run s = { .loop = &loop };
	int sv[2] = { -1, -1 };
	static const char *const chunks[] = { "1", "2", "3" };
	int64_t at[3] = { 0, U(d, 1.1), U(d, 1.1 + 2.1) };
	struct tmo_reader_options opt = { .limits = { .gap_ns = U(d, 1) }, .on_gap = TMO_GAP_MARK };

	if (!loop_open(r, &loop))
		return;
	if (!stream_setup(d, r, &s, sv, &opt, at, chunks, 3, true))
		goto out;
	s.t0 = s.peer.t0 = tmo_now();
	if (!stream_start(r, &s))
		goto out;
	run_until(r, &loop, &s.ended, s.t0 + U(d, 15), "the stream");

	char json[256] = "", text[256] = "", rb[64];
	stream_sequence(&s, json, sizeof(json), text, sizeof(text));
	r->outcome = outcome_of(s.end_error);
	r->elapsed_ns = s.end_at - s.t0;
	happened(r, "sequence %s, then end of stream (%s) at %.0f ms", text,
		 s.end_error == 0 ? "EOF" : res_name(s.end_error, rb), ms(r->elapsed_ns));
	key(r, "sequence", "%s", json);
	check(r, !strcmp(text, "[1, timeout, 2, timeout, timeout, 3]"),
	      "sequence %s, expected [1, timeout, 2, timeout, timeout, 3]", text);
	check(r, s.ended && s.end_error == 0, "the stream ended with %s, not EOF",
	      res_name(s.end_error, rb));
	/* each marker a gap after the last chunk's callback returned, or after the previous
	 * marker's due time */
	int64_t from = 0, due = 0;
	char what[64];
	for (int i = 0; i < s.n; i++) {
		if (s.ev[i].kind == TMO_READER_DATA) {
			from = s.ev[i].ret;
			due = 0;
			continue;
		}
		due = (due ? due : from) + U(d, 1);
		snprintf(what, sizeof(what), "marker %d", i);
		if (from)
			on_time(r, what, s.ev[i].at - s.t0, due - s.t0);
	}
out:
	stream_finish(d, r, &s, sv);
	loop_close(r, &loop);
}

struct refresh {
	struct tmo_tick tick;
	int64_t t0;
	int calls;
	uint64_t periods;
	int64_t at[16];
};

static void refresh_cb(struct tmo_tick *tick, uint64_t periods)
{
	struct refresh *f = tick->data;
	if (f->calls < 16)
		f->at[f->calls] = tmo_now();
	f->calls++;
	f->periods += periods;
}

void sc_periodic_refresh(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct stream_run s = { .loop = &loop };
	struct refresh f = { .tick.data = &f };
	int sv[2] = { -1, -1 };
	static const char *const chunks[] = { "1", "2", "3", "4", "5", "6", "7" };
	int64_t at[7];
	bool tick_started = false;

	if (!loop_open(r, &loop))
		return;
	for (int i = 0; i < 7; i++)
		at[i] = U(d, 0.5 * (i + 1));
	if (!stream_setup(d, r, &s, sv, NULL, at, chunks, 7, true))
		goto out;
	s.t0 = s.peer.t0 = f.t0 = tmo_now();
	s.tick = &f.tick;
	int ret = tmo_tick_start(&loop, &f.tick, U(d, 1), refresh_cb);
	if (ret < 0) {
		setup_failed(r, "tmo_tick_start", ret);
		goto out;
	}
	tick_started = true;
	if (!stream_start(r, &s)) {
		tmo_tick_stop(&f.tick);
		goto out;
	}
	run_until(r, &loop, &s.ended, s.t0 + U(d, 15), "the stream");

	char json[128] = "", text[128] = "", rb[64];
	stream_sequence(&s, json, sizeof(json), text, sizeof(text));
	int64_t longest = 0, prev = s.t0;
	int n = f.calls < 16 ? f.calls : 16;
	for (int i = 0; i < n && f.at[i] <= s.end_at; i++) {
		if (f.at[i] - prev > longest)
			longest = f.at[i] - prev;
		prev = f.at[i];
	}
	if (s.end_at - prev > longest)
		longest = s.end_at - prev;
	r->outcome = outcome_of(s.end_error);
	r->elapsed_ns = s.end_at - s.t0;
	happened(r, "the stream delivered %s and ended (%s) at %.0f ms; %llu refreshes meanwhile, "
		    "at most %.0f ms apart",
		 text, s.end_error == 0 ? "EOF" : res_name(s.end_error, rb), ms(r->elapsed_ns),
		 (unsigned long long)f.periods, ms(longest));
	key(r, "refreshes", "%llu", (unsigned long long)f.periods);
	key(r, "longest_without_refresh_ms", "%.1f", ms(longest));
	key(r, "chunks", "%d", s.n);
	check(r, s.ended && s.end_error == 0, "the stream ended with %s, not EOF",
	      res_name(s.end_error, rb));
	check(r, s.n == 7, "%d chunks, expected 7", s.n);
	on_time(r, "the stream's end", r->elapsed_ns, U(d, 3.5));
	check(r, f.periods >= 3 && f.calls >= 3, "%llu refreshes, expected 3 or more",
	      (unsigned long long)f.periods);
	if (n > 0)
		on_time(r, "the first refresh", f.at[0] - s.t0, U(d, 1));
	check(r, longest <= U(d, 1) + tolerance(U(d, 1)),
	      "%.1f ms without a refresh (limit %.0f ms)", ms(longest), ms(U(d, 1)));
out:
	if (tick_started && !s.ended)
		tmo_tick_stop(&f.tick);
	stream_finish(d, r, &s, sv);
	loop_close(r, &loop);
}
