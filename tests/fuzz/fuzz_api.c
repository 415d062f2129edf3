/*
 * Fuzzes sequences of API calls on one loop with a tiny ring (2 to 16 submission entries):
 * operations (nop, sleep, recv, poll) started, cancelled, restarted (also from their own
 * callbacks) and prepared again while active; scopes entered (nested, shielded), shifted,
 * rescheduled and exited, in and out of order; groups initialised, given members, sealed,
 * cancelled and closed; a stream reader started, paused, resumed and stopped; the loop run
 * without waiting or for up to a millisecond. Deadlines are a few milliseconds ahead, already
 * passed, none, or invalid. A model of every object checks, on every call and callback:
 *
 *   - exactly once: every accepted start (or group add) gets one completion, every refused
 *     one none; an active op cannot be started or prepared again; a group's on_done fires
 *     once, after the on_member of every member it cut; a reader's END once per start;
 *   - never early: a -ETIME (an op's, a group's, a reader's) never comes before the deadline
 *     that caused it, nor a sleep's wake-up before its time, nor a scope's expiry (a shift
 *     refused with -ETIME) before its deadline;
 *   - outcomes and causes agree: -ECANCELED only after a cancel (of the op, or of its group,
 *     or its group finishing), the cause names the right scope or group, an invalid deadline
 *     is refused with -EINVAL, scopes exit only innermost first;
 *   - a reader delivers the bytes written to it once each and in order, across restarts;
 *   - at the end, with everything sealed, stopped and exited and the peers closed, the loop
 *     runs dry within 2 s, every object is idle, and the loop closes: nothing is leaked
 *     (LeakSanitizer, in the ASan+UBSan build).
 *   - a completed group member stays the group's until the group is closed or initialised
 *     again: preparing, starting or adding it anywhere is refused with -EBUSY meanwhile;
 *   - a reader resumed inside or outside a scope is bound by the scope current at the resume,
 *     even when the read its pause cancelled has not ended yet, or an earlier resume in
 *     another scope was paused before any read joined it.
 *
 * The last two were found by this fuzzer (tests/fuzz/crashers/README.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "fuzz_common.h"

#define N_OPS 8
#define N_SCOPES 4
#define N_GROUPS 2
#define MAX_STEPS 48

enum kind { K_NOP, K_SLEEP, K_RECV, K_POLL };

struct mscope;
struct mgroup;

struct slot {
	struct tmo_op op;
	enum kind kind;
	int fds[2];           /* recv and poll read fds[0]; the harness writes fds[1] */
	uint8_t buf[8];
	bool prepared;
	int outstanding;      /* completions owed: 1 from an accepted start until its callback */
	int64_t deadline;     /* its own, absolute (TMO_NEVER_NS: none) */
	int64_t wake_at;      /* K_SLEEP */
	struct mscope *scope; /* the loop's current scope when it started */
	struct mgroup *group; /* the group it was last added to, until that group is closed or
	                         initialised again: the op is the group's until then */
	bool cancelled;       /* tmo_op_cancel() accepted, this run */
};

struct mscope {
	struct tmo_scope s;
	bool entered;
	int64_t deadline; /* the model's: what the last accepted enter/shift set */
	struct mscope *enclosing;
};

struct mgroup {
	struct tmo_group g;
	bool live;        /* initialised and not closed */
	bool sealed, cancelled;
	int done_calls;
	int pending;      /* members added whose on_member has not come */
	int64_t deadline;
	struct mscope *scope;
	enum tmo_group_policy policy;
};

struct mreader {
	struct tmo_reader r;
	int fds[2];
	uint8_t buf[16];
	bool busy, paused, stopped;
	int last_end;         /* the last END's error (1 before any) */
	uint64_t sent, got;   /* bytes written to it, bytes delivered (DATA and END) */
	int64_t started_at, gap_ns, deadline;
	struct mscope *scope;
	/* A scope it left at a resume had expired by then: an end that scope caused before the
	 * resume (a read started in an expired scope, say) is delivered after it. */
	bool left_expired_scope;
};

struct state {
	struct fuzz_input in;
	struct tmo_loop loop;
	struct slot ops[N_OPS];
	struct mscope scopes[N_SCOPES];
	struct mscope *stack[N_SCOPES]; /* entered scopes, innermost last */
	int depth;
	struct mgroup groups[N_GROUPS];
	struct mreader reader;
	bool draining;
};

static struct state st;

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* A deadline from one control byte: none, long passed, invalid, or 0 to 3.1 ms ahead. */
static tmo_deadline pick_deadline(void)
{
	uint8_t d = fuzz_byte(&st.in);
	switch (d % 8) {
	case 0: return TMO_NEVER;
	case 1: return tmo_at(1);
	case 2: return tmo_in_ns(-1); /* invalid: must be refused with -EINVAL */
	default: return tmo_in_ns((int64_t)(d >> 3) * 100 * TMO_NSEC_PER_USEC);
	}
}

static struct mscope *current_scope(void)
{
	return st.depth ? st.stack[st.depth - 1] : NULL;
}

static struct mscope *model_scope(const struct tmo_scope *s)
{
	for (int i = 0; i < N_SCOPES; i++)
		if (&st.scopes[i].s == s)
			return &st.scopes[i];
	return NULL;
}

/* The earliest deadline of a scope and those enclosing it: a lower bound for any expiry
 * inside it (shields only remove deadlines from it, so ignoring them keeps it a bound). */
static int64_t chain_deadline(const struct mscope *s)
{
	int64_t d = TMO_NEVER_NS;
	for (; s; s = s->enclosing)
		d = min64(d, s->deadline);
	return d;
}

/* ---- operations ---------------------------------------------------------------------------- */

static void start_slot(struct slot *sl);

/* What every completion of a slot must satisfy, whether reported to its callback or its
 * group's on_member. */
static void check_completion(struct slot *sl, int32_t res)
{
	int64_t now = tmo_now();
	int idx = (int)(sl - st.ops);
	TRACE("op %d done: %d cause %s (deadline %+lld ns, wake %+lld ns)\n", idx, res,
	      tmo_cause_name(tmo_op_cause(&sl->op)),
	      sl->deadline == TMO_NEVER_NS ? 0 : (long long)(sl->deadline - now),
	      sl->kind == K_SLEEP ? (long long)(sl->wake_at - now) : 0);
	FUZZ_CHECK(sl->outstanding == 1, "op %d: a completion (%d) with %d owed", idx, res,
		   sl->outstanding);
	sl->outstanding = 0;
	enum tmo_cause cause = tmo_op_cause(&sl->op);
	if (res == -ETIME) {
		switch (cause) {
		case TMO_CAUSE_OWN:
			FUZZ_CHECK(now >= sl->deadline, "op %d: -ETIME %lld ns before its deadline",
				   idx, (long long)(sl->deadline - now));
			break;
		case TMO_CAUSE_SCOPE: {
			struct mscope *s = model_scope(tmo_op_cause_scope(&sl->op));
			FUZZ_CHECK(s, "op %d: cause scope is none of ours", idx);
			FUZZ_CHECK(now >= s->deadline, "op %d: -ETIME %lld ns before its scope's deadline",
				   idx, (long long)(s->deadline - now));
			break;
		}
		case TMO_CAUSE_GROUP: {
			struct mgroup *g = sl->group;
			FUZZ_CHECK(g && tmo_op_cause_group(&sl->op) == &g->g,
				   "op %d: cause group is not its group", idx);
			int64_t d = min64(g->deadline, chain_deadline(g->scope));
			FUZZ_CHECK(now >= d, "op %d: -ETIME %lld ns before its group's deadline", idx,
				   (long long)(d - now));
			break;
		}
		default:
			FUZZ_CHECK(0, "op %d: -ETIME with cause %s", idx, tmo_cause_name(cause));
		}
	} else if (res == -ECANCELED) {
		if (cause == TMO_CAUSE_CANCEL)
			FUZZ_CHECK(sl->cancelled, "op %d: -ECANCELED, cause cancel, never cancelled", idx);
		else
			FUZZ_CHECK(cause == TMO_CAUSE_GROUP && sl->group &&
					   (sl->group->cancelled || sl->group->done_calls ||
					    tmo_group_reason(&sl->group->g) != TMO_GROUP_RUNNING),
				   "op %d: -ECANCELED with cause %s", idx, tmo_cause_name(cause));
	} else {
		FUZZ_CHECK(cause == TMO_CAUSE_NONE, "op %d: result %d with cause %s", idx, res,
			   tmo_cause_name(cause));
		switch (sl->kind) {
		case K_NOP:
			FUZZ_CHECK(res == 0, "nop %d: %d", idx, res);
			break;
		case K_SLEEP:
			FUZZ_CHECK(res == 0, "sleep %d: %d", idx, res);
			FUZZ_CHECK(now >= sl->wake_at, "sleep %d woke %lld ns early", idx,
				   (long long)(sl->wake_at - now));
			break;
		case K_RECV:
			FUZZ_CHECK(res >= 0 && res <= (int32_t)sizeof sl->buf, "recv %d: %d", idx, res);
			break;
		case K_POLL:
			FUZZ_CHECK(res > 0, "poll %d: %d", idx, res);
			break;
		}
	}
}

static void on_op(struct tmo_op *op, int32_t res)
{
	struct slot *sl = op->data;
	check_completion(sl, res);
	FUZZ_CHECK(!sl->group, "op %d: its own callback while a group member", (int)(sl - st.ops));
	/* A callback runs in the scope its op started in. */
	FUZZ_CHECK(tmo_loop_current_scope(&st.loop) == (sl->scope ? &sl->scope->s : NULL),
		   "op %d: callback outside its scope", (int)(sl - st.ops));
	/* Sometimes restart it right here (not while draining: the drain must end). */
	if (!st.draining && fuzz_byte(&st.in) >= 224)
		start_slot(sl);
}

/* Prepares an idle slot as one of the four kinds; an active one must be refused. */
static void prep_slot(struct slot *sl, uint8_t b)
{
	enum kind kind = (enum kind)(b % 4);
	int ret;
	int64_t wake_at = 0;
	switch (kind) {
	case K_NOP: ret = tmo_prep_nop(&sl->op); break;
	case K_SLEEP: {
		tmo_deadline w = tmo_in_ns((int64_t)(b >> 2) * 50 * TMO_NSEC_PER_USEC);
		wake_at = tmo_deadline_ns(w);
		ret = tmo_prep_sleep(&sl->op, w);
		break;
	}
	case K_RECV: ret = tmo_prep_recv(&sl->op, sl->fds[0], sl->buf, sizeof sl->buf, 0); break;
	default: ret = tmo_prep_poll(&sl->op, sl->fds[0], POLLIN); break;
	}
	if (sl->outstanding || tmo_op_busy(&sl->op) || sl->group) {
		FUZZ_CHECK(ret == -EBUSY, "prep of op %d, active or a group's = %d",
			   (int)(sl - st.ops), ret);
		return;
	}
	FUZZ_CHECK(ret == 0, "prep of idle op %d (kind %d) = %d", (int)(sl - st.ops), kind, ret);
	TRACE("prep op %d kind %d, wake %+lld ns\n", (int)(sl - st.ops), kind,
	      kind == K_SLEEP ? (long long)(wake_at - tmo_now()) : 0);
	sl->kind = kind;
	sl->wake_at = wake_at;
	sl->prepared = true;
	sl->op.data = sl;
}

static void start_slot(struct slot *sl)
{
	if (!sl->prepared)
		return;
	int idx = (int)(sl - st.ops);
	tmo_deadline d = pick_deadline();
	int64_t dns = tmo_deadline_ns(d);
	/* Active, or a member (done or not) of a group not yet closed: refused. */
	bool active = sl->outstanding || tmo_op_busy(&sl->op) || sl->group;
	/* A sleep's wake-up was fixed at prep: re-prepare a sleep so that it sleeps again. */
	if (!active && sl->kind == K_SLEEP)
		prep_slot(sl, (uint8_t)(K_SLEEP | fuzz_byte(&st.in) << 2));
	int ret = tmo_op_start(&st.loop, &sl->op, d, on_op);
	TRACE("start op %d kind %d deadline %+lld ns: %d\n", idx, sl->kind,
	      dns == TMO_NEVER_NS ? 0 : (long long)(dns - tmo_now()), ret);
	if (active) { /* -EINVAL may be found first */
		FUZZ_CHECK(ret == -EBUSY || (ret == -EINVAL && dns == -EINVAL),
			   "start of active op %d = %d", idx, ret);
		return;
	}
	if (dns == -EINVAL) {
		FUZZ_CHECK(ret == -EINVAL, "start of op %d with an invalid deadline = %d", idx, ret);
		return;
	}
	FUZZ_CHECK(ret == 0, "start of idle op %d = %d", idx, ret);
	sl->outstanding = 1;
	sl->deadline = dns;
	sl->cancelled = false;
	sl->group = NULL;
	/* Inside a callback the current scope is the callback's op's; here it is the model's. */
	struct tmo_scope *cur = tmo_loop_current_scope(&st.loop);
	sl->scope = cur ? model_scope(cur) : NULL;
}

static void cancel_slot(struct slot *sl)
{
	int ret = tmo_op_cancel(&sl->op);
	TRACE("cancel op %d: %d\n", (int)(sl - st.ops), ret);
	if (sl->outstanding) {
		FUZZ_CHECK(ret == 0 || ret == -EALREADY, "cancel of active op %d = %d",
			   (int)(sl - st.ops), ret);
		if (ret == 0)
			sl->cancelled = true;
	} else {
		FUZZ_CHECK(ret == -ENOENT || ret == -EALREADY, "cancel of idle op %d = %d",
			   (int)(sl - st.ops), ret);
	}
}

/* ---- scopes -------------------------------------------------------------------------------- */

static void scope_enter(struct mscope *s)
{
	bool busy = tmo_scope_busy(&s->s);
	tmo_deadline d = pick_deadline();
	int64_t dns = tmo_deadline_ns(d);
	unsigned flags = fuzz_byte(&st.in) >= 200 ? TMO_SCOPE_SHIELD : 0;
	int ret = tmo_scope_enter(&st.loop, &s->s, d, flags);
	TRACE("enter scope %d deadline %+lld shield %u: %d\n", (int)(s - st.scopes),
	      dns == TMO_NEVER_NS ? 0 : (long long)(dns - tmo_now()), flags, ret);
	if (s->entered || busy) { /* -EINVAL may be found first */
		FUZZ_CHECK(ret == -EBUSY || (ret == -EINVAL && dns == -EINVAL),
			   "enter of a busy scope = %d", ret);
		return;
	}
	if (dns == -EINVAL) {
		FUZZ_CHECK(ret == -EINVAL, "enter with an invalid deadline = %d", ret);
		return;
	}
	FUZZ_CHECK(ret == 0, "enter of an idle scope = %d", ret);
	s->entered = true;
	s->deadline = dns;
	s->enclosing = current_scope();
	st.stack[st.depth++] = s;
	FUZZ_CHECK(tmo_loop_current_scope(&st.loop) == &s->s, "entered scope is not current");
}

static void scope_exit(struct mscope *s)
{
	int ret = tmo_scope_exit(&s->s);
	TRACE("exit scope %d: %d\n", (int)(s - st.scopes), ret);
	if (!s->entered) {
		FUZZ_CHECK(ret == -EALREADY || ret == -EINVAL, "exit of a scope not entered = %d", ret);
		return;
	}
	if (current_scope() != s) {
		FUZZ_CHECK(ret == -EINVAL, "exit of a scope not innermost = %d", ret);
		return;
	}
	FUZZ_CHECK(ret == 0, "exit of the innermost scope = %d", ret);
	s->entered = false;
	st.depth--;
	FUZZ_CHECK(tmo_loop_current_scope(&st.loop) == (st.depth ? &current_scope()->s : NULL),
		   "after exit, the current scope is not the enclosing one");
}

static void scope_move(struct mscope *s, uint8_t how)
{
	int64_t now = tmo_now();
	int ret;
	int64_t want;
	if (how % 3 == 0) {
		int64_t delta = ((int64_t)(how >> 2) - 32) * 50 * TMO_NSEC_PER_USEC; /* -1.6..+1.5 ms */
		ret = tmo_scope_shift(&s->s, delta);
		want = s->deadline == TMO_NEVER_NS ? TMO_NEVER_NS : s->deadline + delta;
	} else {
		tmo_deadline d = pick_deadline();
		want = tmo_deadline_ns(d);
		ret = how % 3 == 1 ? tmo_scope_shift_at(&s->s, d) : tmo_scope_reschedule(&s->s, d);
	}
	TRACE("move scope %d (%d): %d\n", (int)(s - st.scopes), how % 3, ret);
	if (ret == -ETIME) {
		/* Expired: never before its deadline. */
		FUZZ_CHECK(s->deadline <= now, "scope %d refused a move as expired %lld ns before "
			   "its deadline", (int)(s - st.scopes), (long long)(s->deadline - now));
		return;
	}
	if (ret != 0)
		return; /* exited, no deadline to shift, a bad value: nothing changed */
	FUZZ_CHECK(s->entered, "a move of an exited scope accepted");
	s->deadline = want;
	int64_t got = tmo_deadline_ns(tmo_scope_deadline(&s->s));
	FUZZ_CHECK(got == want, "scope deadline %lld after a move to %lld", (long long)got,
		   (long long)want);
}

/* ---- groups -------------------------------------------------------------------------------- */

static void on_member(struct tmo_group *group, struct tmo_op *member, int32_t res)
{
	struct mgroup *g = group->data;
	struct slot *sl = member->data;
	FUZZ_CHECK(sl->group == g, "on_member of op %d from a group it is not in",
		   (int)(sl - st.ops));
	check_completion(sl, res);
	g->pending--;
}

static void on_done(struct tmo_group *group, int32_t res)
{
	struct mgroup *g = group->data;
	int64_t now = tmo_now();
	TRACE("group %d done: %d (%s), %d pending\n", (int)(g - st.groups), res,
	      tmo_group_reason_name(tmo_group_reason(group)), g->pending);
	FUZZ_CHECK(g->done_calls == 0, "group %d: on_done again", (int)(g - st.groups));
	g->done_calls++;
	if (g->policy == TMO_GROUP_CANCEL_PENDING)
		FUZZ_CHECK(g->pending == 0, "group %d: on_done before %d cut members' on_member",
			   (int)(g - st.groups), g->pending);
	enum tmo_group_reason reason = tmo_group_reason(group);
	if (reason == TMO_GROUP_TIMED_OUT) {
		int64_t d = min64(g->deadline, chain_deadline(g->scope));
		FUZZ_CHECK(now >= d, "group %d timed out %lld ns before its deadline",
			   (int)(g - st.groups), (long long)(d - now));
		FUZZ_CHECK(res == -ETIME, "group %d timed out with %d", (int)(g - st.groups), res);
	} else if (reason == TMO_GROUP_CANCELLED) {
		FUZZ_CHECK(g->cancelled && res == -ECANCELED, "group %d cancelled (%d), never asked",
			   (int)(g - st.groups), res);
	}
	FUZZ_CHECK(reason != TMO_GROUP_RUNNING, "group %d: on_done while running",
		   (int)(g - st.groups));
}

static void group_init(struct mgroup *g)
{
	uint8_t b = fuzz_byte(&st.in);
	struct tmo_group_options opt = {
		.mode = (enum tmo_group_mode)(b % 5),
		.policy = (enum tmo_group_policy)(b >> 3 & 1),
		.quorum = 1 + (b >> 4 & 1),
		.max_running = b >> 5 & 3,
		.deadline = pick_deadline(),
		.on_done = on_done,
		.on_member = on_member,
		.data = g,
	};
	int64_t dns = tmo_deadline_ns(opt.deadline);
	int ret = tmo_group_init(&st.loop, &g->g, &opt);
	TRACE("init group %d mode %s quorum %u policy %s max %u: %d\n", (int)(g - st.groups),
	      tmo_group_mode_name(opt.mode), opt.quorum, tmo_group_policy_name(opt.policy),
	      opt.max_running, ret);
	/* A group finished with no member pending is idle (tmo_group_busy() false): init may
	 * take it again as if closed. One not finished or with members pending is refused. */
	bool idle = g->live && g->done_calls && g->pending == 0;
	if (g->live && !(idle && ret == 0)) { /* -EINVAL may be found first */
		FUZZ_CHECK(ret == -EBUSY || (ret == -EINVAL && dns == -EINVAL),
			   "init of a busy group (on_done %d, %d pending) = %d", g->done_calls,
			   g->pending, ret);
		return;
	}
	if (dns == -EINVAL) {
		FUZZ_CHECK(ret == -EINVAL, "group init with an invalid deadline = %d", ret);
		return;
	}
	FUZZ_CHECK(ret == 0, "group init = %d", ret);
	for (int i = 0; i < N_OPS; i++) /* members of its last life are free again */
		if (st.ops[i].group == g)
			st.ops[i].group = NULL;
	struct tmo_scope *cur = tmo_loop_current_scope(&st.loop);
	*g = (struct mgroup){ .g = g->g, .live = true, .deadline = dns, .policy = opt.policy,
			      .scope = cur ? model_scope(cur) : NULL };
}

static void group_add(struct mgroup *g, struct slot *sl)
{
	if (!g->live || !sl->prepared)
		return;
	/* A member, even completed, is its group's until the group is closed or initialised
	 * again: adding it again, to this group or another, is refused meanwhile. */
	bool active = sl->outstanding || tmo_op_busy(&sl->op) || sl->group;
	if (!active && sl->kind == K_SLEEP)
		prep_slot(sl, (uint8_t)(K_SLEEP | fuzz_byte(&st.in) << 2));
	tmo_deadline d = pick_deadline();
	int64_t dns = tmo_deadline_ns(d);
	int ret = tmo_group_add(&g->g, &sl->op, d);
	TRACE("add op %d to group %d deadline %+lld: %d\n", (int)(sl - st.ops), (int)(g - st.groups),
	      dns == TMO_NEVER_NS ? 0 : (long long)(dns - tmo_now()), ret);
	if (ret != 0) {
		FUZZ_CHECK(active || g->sealed || g->done_calls || dns == -EINVAL ||
				   tmo_group_reason(&g->g) != TMO_GROUP_RUNNING,
			   "add of idle op %d to an open group = %d", (int)(sl - st.ops), ret);
		return;
	}
	FUZZ_CHECK(!active, "add of active op %d accepted", (int)(sl - st.ops));
	FUZZ_CHECK(!g->sealed, "add to a sealed group accepted");
	FUZZ_CHECK(dns != -EINVAL, "add with an invalid deadline accepted");
	sl->outstanding = 1;
	sl->deadline = dns;
	sl->cancelled = false;
	sl->group = g;
	sl->scope = NULL;
	g->pending++;
}

static void group_close(struct mgroup *g)
{
	if (!g->live)
		return;
	int ret = tmo_group_close(&g->g);
	TRACE("close group %d: %d\n", (int)(g - st.groups), ret);
	if (g->done_calls && g->pending == 0) {
		FUZZ_CHECK(ret == 0, "close of a finished group with no member pending = %d", ret);
	} else {
		FUZZ_CHECK(ret == -EBUSY, "close of a group running or with %d pending = %d",
			   g->pending, ret);
		return;
	}
	g->live = false;
	for (int i = 0; i < N_OPS; i++)
		if (st.ops[i].group == g)
			st.ops[i].group = NULL;
}

/* ---- the reader ---------------------------------------------------------------------------- */

static void on_reader(struct tmo_reader *r, const struct tmo_reader_event *ev)
{
	struct mreader *m = &st.reader;
	int64_t now = tmo_now();
	TRACE("reader %s: %zu bytes, error %d, limit %s\n", tmo_reader_event_name(ev->kind), ev->len,
	      ev->error, tmo_limit_name(ev->limit));
	FUZZ_CHECK(m->busy, "reader event %s after its END", tmo_reader_event_name(ev->kind));
	FUZZ_CHECK(!m->paused, "reader event %s while paused", tmo_reader_event_name(ev->kind));
	/* Bytes are written as a counter: each must be the next one. */
	for (size_t i = 0; i < ev->len; i++)
		FUZZ_CHECK(ev->data[i] == (uint8_t)(m->got + i),
			   "reader byte %llu is %u, not %u", (unsigned long long)(m->got + i),
			   ev->data[i], (uint8_t)(m->got + i));
	m->got += ev->len;
	FUZZ_CHECK(m->got <= m->sent, "reader delivered %llu of %llu sent",
		   (unsigned long long)m->got, (unsigned long long)m->sent);
	if (ev->kind == TMO_READER_TIMEOUT)
		FUZZ_CHECK(now - m->started_at >= m->gap_ns, "gap marker %lld ns after start, gap %lld",
			   (long long)(now - m->started_at), (long long)m->gap_ns);
	if (ev->kind != TMO_READER_END)
		return;
	TRACE("reader END %d limit %s\n", ev->error, tmo_limit_name(ev->limit));
	m->busy = false;
	m->last_end = ev->error;
	FUZZ_CHECK(!tmo_reader_busy(r), "reader busy inside END");
	switch (ev->error) {
	case 0:
		FUZZ_CHECK(st.draining, "reader end of file before the peer closed");
		break;
	case -ECANCELED:
		FUZZ_CHECK(m->stopped, "reader END -ECANCELED without a stop");
		break;
	case -ETIME:
		switch (ev->limit) {
		case TMO_LIMIT_GAP:
			FUZZ_CHECK(m->gap_ns && now - m->started_at >= m->gap_ns,
				   "reader gap limit %lld ns after start, gap %lld",
				   (long long)(now - m->started_at), (long long)m->gap_ns);
			break;
		case TMO_LIMIT_DEADLINE:
			FUZZ_CHECK(now >= m->deadline, "reader deadline %lld ns early",
				   (long long)(m->deadline - now));
			break;
		case TMO_LIMIT_SCOPE: {
			int64_t d = chain_deadline(m->scope);
			FUZZ_CHECK(now >= d || m->left_expired_scope, "reader scope limit %lld ns early",
				   (long long)(d - now));
			break;
		}
		default:
			FUZZ_CHECK(0, "reader -ETIME with limit %s", tmo_limit_name(ev->limit));
		}
		break;
	default:
		FUZZ_CHECK(0, "reader END with %d", ev->error);
	}
}

static void reader_action(uint8_t b)
{
	struct mreader *m = &st.reader;
	int ret;
	switch (b % 4) {
	case 0: { /* start, with limits */
		tmo_deadline d = pick_deadline();
		int64_t dns = tmo_deadline_ns(d);
		if (dns == -EINVAL)
			d = TMO_NEVER, dns = TMO_NEVER_NS;
		struct tmo_reader_options o = {
			.limits = { .gap_ns = (int64_t)(b >> 2 & 7) * 250 * TMO_NSEC_PER_USEC,
				    .deadline = d },
			.on_gap = (b >> 5 & 1) ? TMO_GAP_MARK : TMO_GAP_END,
		};
		if (m->busy) {
			ret = tmo_reader_start(&m->r, on_reader);
			FUZZ_CHECK(ret == -EBUSY, "start of a busy reader = %d", ret);
			return;
		}
		ret = tmo_reader_init(&m->r, &st.loop, m->fds[0], m->buf, sizeof m->buf, &o);
		FUZZ_CHECK(ret == 0, "reader init = %d", ret);
		int64_t before = tmo_now(); /* the gap is measured from a moment after this */
		ret = tmo_reader_start(&m->r, on_reader);
		FUZZ_CHECK(ret == 0, "reader start = %d", ret);
		TRACE("reader start gap %lld\n", (long long)o.limits.gap_ns);
		m->busy = true;
		m->paused = m->stopped = false;
		m->started_at = before;
		m->left_expired_scope = false;
		m->gap_ns = o.limits.gap_ns;
		m->deadline = dns;
		struct tmo_scope *cur = tmo_loop_current_scope(&st.loop);
		m->scope = cur ? model_scope(cur) : NULL;
		break;
	}
	case 1: { /* write counter bytes to it */
		uint8_t chunk[8];
		size_t n = 1 + (b >> 2) % sizeof chunk;
		for (size_t i = 0; i < n; i++)
			chunk[i] = (uint8_t)(m->sent + i);
		ssize_t w = write(m->fds[1], chunk, n);
		FUZZ_CHECK(w == (ssize_t)n, "write to the reader's peer: %zd", w);
		TRACE("reader peer: %zu bytes written\n", n);
		m->sent += n;
		break;
	}
	case 2: /* pause or resume */
		if (!m->busy || m->stopped)
			return;
		if (m->paused) {
			int64_t before = tmo_now(); /* the gap starts afresh, after this */
			ret = tmo_reader_resume(&m->r);
			FUZZ_CHECK(ret == 0, "resume = %d", ret);
			TRACE("reader resumed in scope %d\n", current_scope() ? (int)(current_scope() - st.scopes) : -1);
			m->paused = false;
			m->started_at = before;
			/* Its reads join the scope current at resume (stream.h). */
			struct tmo_scope *cur = tmo_loop_current_scope(&st.loop);
			if (chain_deadline(m->scope) <= before)
				m->left_expired_scope = true;
			m->scope = cur ? model_scope(cur) : NULL;
		} else {
			ret = tmo_reader_pause(&m->r);
			FUZZ_CHECK(ret == 0, "pause = %d", ret);
			TRACE("reader paused\n");
			m->paused = true;
		}
		break;
	case 3: /* stop */
		if (!m->busy || m->stopped || m->paused)
			return;
		ret = tmo_reader_stop(&m->r);
		FUZZ_CHECK(ret == 0, "stop = %d", ret);
		m->stopped = true;
		break;
	}
}

/* ---- the sequence -------------------------------------------------------------------------- */

static void run_loop(uint8_t b)
{
	int ret;
	if (b & 1)
		ret = tmo_loop_run(&st.loop, TMO_RUN_NOWAIT);
	else
		ret = tmo_loop_run_until(&st.loop, tmo_in_ns((int64_t)(b >> 1 & 15) * 64 * TMO_NSEC_PER_USEC));
	FUZZ_CHECK(ret >= 0, "loop run = %d", ret);
}

static void setup(uint8_t flags)
{
	struct tmo_loop_options lopt = {
		.ring_entries = 2u << (flags & 3), /* 2 to 16 entries: a tiny ring on purpose */
		.deadlines = (flags & 4) ? TMO_DEADLINES_LOOP : TMO_DEADLINES_KERNEL,
		.mode = (flags & 8) ? TMO_MODE_LOW_LATENCY : TMO_MODE_DEFAULT,
	};
	int ret = tmo_loop_init(&st.loop, &lopt);
	if (ret == -EOPNOTSUPP && lopt.mode == TMO_MODE_LOW_LATENCY) { /* a kernel before 6.1 */
		lopt.mode = TMO_MODE_DEFAULT;
		ret = tmo_loop_init(&st.loop, &lopt);
	}
	FUZZ_CHECK(ret == 0, "tmo_loop_init = %d", ret);
	TRACE("ring %u, %s deadlines, mode %d\n", lopt.ring_entries,
	      lopt.deadlines ? "loop" : "kernel", lopt.mode);
	for (int i = 0; i < N_OPS; i++)
		FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st.ops[i].fds) == 0,
			   "socketpair: %s", strerror(errno));
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st.reader.fds) == 0,
		   "socketpair: %s", strerror(errno));
	st.reader.last_end = 1;
}

/* Ends everything, runs the loop dry (bounded) and checks that every object is idle. */
static void drain(void)
{
	st.draining = true;
	while (st.depth)
		scope_exit(current_scope());
	for (int i = 0; i < N_GROUPS; i++)
		if (st.groups[i].live && !st.groups[i].sealed && !st.groups[i].done_calls)
			tmo_group_seal(&st.groups[i].g), st.groups[i].sealed = true;
	if (st.reader.busy && st.reader.paused) {
		FUZZ_CHECK(tmo_reader_resume(&st.reader.r) == 0, "final resume");
		st.reader.paused = false;
	}
	/* End of file on every peer: recv, poll and the reader end without a deadline. */
	for (int i = 0; i < N_OPS; i++)
		shutdown(st.ops[i].fds[1], SHUT_WR);
	shutdown(st.reader.fds[1], SHUT_WR);

	int64_t give_up = tmo_now() + 2 * TMO_NSEC_PER_SEC;
	for (;;) {
		int ret = tmo_loop_run_until(&st.loop, tmo_in_ms(10));
		FUZZ_CHECK(ret >= 0, "loop run while draining = %d", ret);
		if (ret == 0 && tmo_loop_active(&st.loop) == 0)
			break;
		FUZZ_CHECK(tmo_now() < give_up, "the loop still has %u active 2 s into the drain",
			   tmo_loop_active(&st.loop));
	}
	for (int i = 0; i < N_OPS; i++)
		FUZZ_CHECK(st.ops[i].outstanding == 0 && !tmo_op_busy(&st.ops[i].op),
			   "op %d: %d completions owed after the drain", i, st.ops[i].outstanding);
	for (int i = 0; i < N_GROUPS; i++) {
		struct mgroup *g = &st.groups[i];
		if (!g->live)
			continue;
		FUZZ_CHECK(g->done_calls == 1 && g->pending == 0,
			   "group %d after the drain: on_done %d times, %d pending", i, g->done_calls,
			   g->pending);
		group_close(g);
	}
	/* After an end of file every byte sent has come; after another END some may be left in
	 * the socket for a next start that never came. */
	FUZZ_CHECK(!st.reader.busy && (st.reader.last_end != 0 || st.reader.got == st.reader.sent),
		   "reader after the drain: busy %d, %llu of %llu delivered", st.reader.busy,
		   (unsigned long long)st.reader.got, (unsigned long long)st.reader.sent);
	for (int i = 0; i < N_SCOPES; i++)
		FUZZ_CHECK(!tmo_scope_busy(&st.scopes[i].s), "scope %d busy after the drain", i);
	int ret = tmo_loop_close(&st.loop);
	FUZZ_CHECK(ret == 0, "tmo_loop_close = %d", ret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	memset(&st, 0, sizeof st);
	fuzz_input_init(&st.in, data, size);
	setup(fuzz_byte(&st.in));

	for (int step = 0; step < MAX_STEPS && !fuzz_input_done(&st.in); step++) {
		uint8_t op = fuzz_byte(&st.in), arg = fuzz_byte(&st.in);
		struct slot *sl = &st.ops[arg % N_OPS];
		struct mscope *sc = &st.scopes[arg % N_SCOPES];
		struct mgroup *gr = &st.groups[arg % N_GROUPS];
		TRACE("step %d: action %d, arg %d\n", step, op % 16, arg);
		switch (op % 16) {
		case 0: prep_slot(sl, fuzz_byte(&st.in)); break;
		case 1: case 2: start_slot(sl); break;
		case 3: cancel_slot(sl); break;
		case 4: /* data for a recv or poll */
			FUZZ_CHECK(write(sl->fds[1], "x", 1) == 1, "write: %s", strerror(errno));
			break;
		case 5: scope_enter(sc); break;
		case 6: scope_exit(op & 16 ? sc : current_scope() ? current_scope() : sc); break;
		case 7: scope_move(sc, fuzz_byte(&st.in)); break;
		case 8: group_init(gr); break;
		case 9: group_add(gr, &st.ops[(arg >> 3) % N_OPS]); break;
		case 10:
			if (gr->live) {
				int ret = tmo_group_seal(&gr->g);
				FUZZ_CHECK(ret == 0 || ret == -EALREADY, "seal = %d", ret);
				gr->sealed = true;
			}
			break;
		case 11:
			if (gr->live) {
				int ret = tmo_group_cancel(&gr->g);
				FUZZ_CHECK(ret == 0 || (ret == -EALREADY && (gr->cancelled ||
						tmo_group_reason(&gr->g) != TMO_GROUP_RUNNING)),
					   "group cancel = %d", ret);
				if (ret == 0)
					gr->cancelled = true;
			}
			break;
		case 12: group_close(gr); break;
		case 13: reader_action(arg); break;
		default: run_loop(arg); break;
		}
	}
	drain();
	for (int i = 0; i < N_OPS; i++)
		close(st.ops[i].fds[0]), close(st.ops[i].fds[1]);
	close(st.reader.fds[0]);
	close(st.reader.fds[1]);
	return 0;
}
