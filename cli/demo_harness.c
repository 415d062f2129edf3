/*
 * tmo demo's harness: what every scenario uses to build its report (checks, timing checks,
 * JSON members) and to run its loop without hanging the demo (demo.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <tmo/tmo.h>

#include "demo.h"

/* ---- reports ------------------------------------------------------------------------- */

void appendv(char *buf, size_t size, const char *fmt, va_list ap)
{
	size_t len = strlen(buf);
	if (len + 1 < size)
		vsnprintf(buf + len, size - len, fmt, ap);
}

void append(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	appendv(buf, size, fmt, ap);
	va_end(ap);
}

/* A scenario-specific JSON member: key("stall_ms", "%.1f", v). */
void key(struct report *r, const char *name, const char *fmt, ...)
{
	va_list ap;
	append(r->keys, sizeof(r->keys), ", \"%s\": ", name);
	va_start(ap, fmt);
	appendv(r->keys, sizeof(r->keys), fmt, ap);
	va_end(ap);
}

void happened(struct report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	appendv(r->happened, sizeof(r->happened), fmt, ap);
	va_end(ap);
}

/* Records one check of what happened; a failed one fails the scenario and says why. */
bool check(struct report *r, bool ok, const char *fmt, ...)
{
	r->checks++;
	if (ok)
		return true;
	r->pass = false;
	if (r->why[0])
		append(r->why, sizeof(r->why), "; ");
	va_list ap;
	va_start(ap, fmt);
	appendv(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	return false;
}

/* A setup step failed: the scenario could not run as the seed describes. */
void setup_failed(struct report *r, const char *what, int err)
{
	r->outcome = "error";
	check(r, false, "%s: %s", what, strerror(err < 0 ? -err : err));
}


/* The lateness allowed for something due `expected` ns after its start. */
int64_t tolerance(int64_t expected)
{
	int64_t quarter = expected / 4;
	return quarter > 60 * MS ? quarter : 60 * MS;
}

/* `actual` (ns since the start) against `expected`: never early, at most tolerance() late. */
bool on_time(struct report *r, const char *what, int64_t actual, int64_t expected)
{
	bool ok = check(r, actual >= expected, "%s early: %.1f ms, due at %.1f ms", what, ms(actual),
			ms(expected));
	return check(r, actual <= expected + tolerance(expected),
		     "%s late: %.1f ms, due at %.1f ms (tolerance %.0f ms)", what, ms(actual),
		     ms(expected), ms(tolerance(expected))) &&
	       ok;
}

const char *outcome_of(int64_t res)
{
	return res == -ETIME ? "timeout" : res < 0 ? "error" : "ok";
}

const char *res_name(int64_t res, char buf[64])
{
	if (res == -ETIME)
		return "timeout";
	if (res == -ECANCELED)
		return "cancelled";
	if (res < 0)
		snprintf(buf, 64, "%s", strerrorname_np((int)-res) ? strerrorname_np((int)-res)
									 : "?");
	else
		snprintf(buf, 64, "%lld", (long long)res);
	return buf;
}

/* ---- helpers: loops, running, sleeping --------------------------------------------- */

bool loop_open(struct report *r, struct tmo_loop *loop)
{
	int ret = tmo_loop_init(loop, NULL);
	if (ret < 0) {
		char msg[256];
		tmo_loop_describe_error(ret, msg, sizeof(msg));
		r->outcome = "error";
		check(r, false, "tmo_loop_init: %s", msg);
		return false;
	}
	return true;
}

void loop_close(struct report *r, struct tmo_loop *loop)
{
	int ret = tmo_loop_close(loop);
	check(r, ret == 0, "tmo_loop_close: %s", strerror(-ret));
}

/* Runs the loop until *flag is set (callbacks that set it call tmo_loop_stop) or `limit`
 * (absolute) passes: a safety net, so that a misbehaving engine fails a scenario instead of
 * hanging the demo. */
bool run_until(struct report *r, struct tmo_loop *loop, const bool *flag, int64_t limit,
	       const char *what)
{
	while (!*flag) {
		if (tmo_now() >= limit)
			return check(r, false, "%s: nothing happened in time", what);
		int ret = tmo_loop_run_until(loop, tmo_at(limit));
		if (ret < 0)
			return check(r, false, "tmo_loop_run_until: %s", strerror(-ret));
		if (ret == 0 && !*flag)
			return check(r, false, "%s: the loop ran out of work first", what);
	}
	return true;
}

/* Runs the loop until no work is left, or `limit`. */
bool drain(struct report *r, struct tmo_loop *loop, int64_t limit)
{
	while (tmo_loop_active(loop) > 0) {
		if (tmo_now() >= limit)
			return check(r, false, "clean-up: %u operations still active",
				     tmo_loop_active(loop));
		int ret = tmo_loop_run_until(loop, tmo_at(limit));
		if (ret < 0)
			return check(r, false, "tmo_loop_run_until: %s", strerror(-ret));
	}
	return true;
}

void mark(struct tmo_loop *loop, bool *flag)
{
	*flag = true;
	tmo_loop_stop(loop);
}

struct timespec timespec_of(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / TMO_NSEC_PER_SEC, .tv_nsec = ns % TMO_NSEC_PER_SEC };
	return ts;
}

/* Blocks the calling thread until `when` (tmo_now() clock: CLOCK_MONOTONIC). */
void block_until(int64_t when)
{
	struct timespec ts = timespec_of(when);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void chain_cb(struct tmo_op *op, int32_t res)
{
	struct chain *c = op->data;
	if (res == 0)
		c->served++;
	if (c->stopping)
		return;
	tmo_prep_sleep(op, tmo_in_ns(c->period));
	tmo_op_start(c->loop, op, TMO_NEVER, chain_cb);
}

int chain_start(struct chain *c, struct tmo_loop *loop, int64_t period)
{
	c->loop = loop;
	c->period = period;
	c->op.data = c;
	tmo_prep_sleep(&c->op, tmo_in_ns(period));
	return tmo_op_start(loop, &c->op, TMO_NEVER, chain_cb);
}

void chain_stop(struct chain *c)
{
	c->stopping = true;
	tmo_op_cancel(&c->op);
}

void one_op_cb(struct tmo_op *op, int32_t res)
{
	struct one_op *o = op->data;
	o->res = res;
	o->at = tmo_now();
	mark(o->loop, &o->done);
}
