/*
 * tmo demo, the groups family: gather-deadline, gather-member-deadline and wait-partial (a
 * group of sleeps under a group deadline, member deadlines, or a wait that leaves them running).
 */
#include <errno.h>
#include <string.h>

#include <tmo/tmo.h>

#include "demo.h"

#define MEMBERS 10

struct gather {
	struct tmo_loop *loop;
	struct tmo_group group;
	struct tmo_op op[MEMBERS];
	int n;
	int64_t t0;
	int32_t res[MEMBERS];
	int64_t at[MEMBERS];
	enum tmo_cause cause[MEMBERS];
	bool member_done[MEMBERS];
	bool inited; /* tmo_group_init succeeded: the group is to be closed */
	bool done;
	int32_t group_res;
	int64_t done_at;
	uint32_t done_count, pending_count;
	bool pending_busy; /* at on_done: every pending member still running */
};

static void gather_member(struct tmo_group *group, struct tmo_op *member, int32_t res)
{
	struct gather *g = group->data;
	int i = (int)(member - g->op);
	if (i < 0 || i >= g->n)
		return;
	g->res[i] = res;
	g->at[i] = tmo_now();
	g->cause[i] = tmo_op_cause(member);
	g->member_done[i] = true;
	tmo_loop_stop(g->loop);
}

static void gather_done(struct tmo_group *group, int32_t res)
{
	struct gather *g = group->data;
	g->group_res = res;
	g->done_at = tmo_now();
	g->done_count = tmo_group_done_count(group);
	g->pending_count = tmo_group_pending_count(group);
	g->pending_busy = true;
	for (struct tmo_op *m = tmo_group_pending_first(group); m; m = tmo_group_pending_next(m))
		if (!tmo_op_busy(m))
			g->pending_busy = false;
	mark(g->loop, &g->done);
}

/* Starts n sleeping members (member i sleeps sleep[i] units, with its own deadline). */
static bool gather_start(struct demo *d, struct report *r, struct gather *g,
			 const struct tmo_group_options *base, const double *sleep,
			 const tmo_deadline *deadline)
{
	struct tmo_group_options opt = *base;
	opt.on_done = gather_done;
	opt.on_member = gather_member;
	opt.data = g;
	int ret = tmo_group_init(g->loop, &g->group, &opt);
	if (ret < 0) {
		setup_failed(r, "tmo_group_init", ret);
		return false;
	}
	g->inited = true;
	for (int i = 0; i < g->n; i++) {
		tmo_prep_sleep(&g->op[i], tmo_at(g->t0 + U(d, sleep[i])));
		ret = tmo_group_add(&g->group, &g->op[i], deadline ? deadline[i] : TMO_NEVER);
		if (ret < 0) {
			setup_failed(r, "tmo_group_add", ret);
			tmo_group_cancel(&g->group);
			return false;
		}
	}
	ret = tmo_group_seal(&g->group);
	if (ret < 0) {
		setup_failed(r, "tmo_group_seal", ret);
		tmo_group_cancel(&g->group);
		return false;
	}
	return true;
}

static void gather_close(struct demo *d, struct report *r, struct gather *g)
{
	drain(r, g->loop, tmo_now() + U(d, 10));
	if (!g->inited)
		return; /* setup failed and said so: no close to add a second message */
	int ret = tmo_group_close(&g->group);
	check(r, ret == 0, "tmo_group_close: %s", strerror(-ret));
}

void sc_gather_deadline(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct gather g = { .loop = &loop, .n = MEMBERS };
	double sleep[MEMBERS];

	if (!loop_open(r, &loop))
		return;
	for (int i = 0; i < MEMBERS; i++)
		sleep[i] = 5;
	g.t0 = tmo_now();
	struct tmo_group_options opt = { .mode = TMO_GROUP_ALL, .policy = TMO_GROUP_CANCEL_PENDING,
					 .deadline = tmo_at(g.t0 + U(d, 2.5)) };
	if (gather_start(d, r, &g, &opt, sleep, NULL)) {
		run_until(r, &loop, &g.done, g.t0 + U(d, 10), "the group");
		/* the cancelled members report their outcome from the loop, right after */
		drain(r, &loop, tmo_now() + U(d, 10));
	}
	int cancelled = 0, completed = 0;
	for (int i = 0; i < MEMBERS; i++) {
		completed += g.member_done[i];
		if (g.member_done[i] && (g.res[i] == -ETIME || g.res[i] == -ECANCELED) &&
		    g.cause[i] == TMO_CAUSE_GROUP)
			cancelled++;
	}
	char rb[64];
	r->outcome = g.done ? outcome_of(g.group_res) : "error";
	r->elapsed_ns = g.done_at - g.t0;
	happened(r, "the group ended with %s at %.0f ms; %d of %d members cancelled by it",
		 res_name(g.group_res, rb), ms(r->elapsed_ns), cancelled, MEMBERS);
	key(r, "cancelled", "%d", cancelled);
	check(r, g.done && g.group_res == -ETIME, "the group ended with %s",
	      res_name(g.group_res, rb));
	check(r, tmo_group_reason(&g.group) == TMO_GROUP_TIMED_OUT, "reason %d",
	      (int)tmo_group_reason(&g.group));
	on_time(r, "the group's timeout", r->elapsed_ns, U(d, 2.5));
	check(r, cancelled == MEMBERS, "%d members cancelled (of %d completed), expected %d",
	      cancelled, completed, MEMBERS);
	gather_close(d, r, &g);
	loop_close(r, &loop);
}

void sc_gather_member_deadline(struct demo *d, struct report *r)
{
	struct tmo_loop loop;
	struct gather g = { .loop = &loop, .n = MEMBERS };
	double sleep[MEMBERS];
	tmo_deadline deadline[MEMBERS];

	if (!loop_open(r, &loop))
		return;
	g.t0 = tmo_now();
	for (int i = 0; i < MEMBERS; i++) {
		sleep[i] = 5;
		deadline[i] = i == 0 ? tmo_at(g.t0 + U(d, 2.5)) : TMO_NEVER;
	}
	struct tmo_group_options opt = { .mode = TMO_GROUP_ALL, .policy = TMO_GROUP_CANCEL_PENDING,
					 .deadline = TMO_NEVER };
	if (gather_start(d, r, &g, &opt, sleep, deadline))
		run_until(r, &loop, &g.done, g.t0 + U(d, 15), "the group");

	/* the results, gather's list: each member returns i * 100 when its sleep completes */
	char results[256] = "[", text[256] = "[";
	bool results_ok = true;
	for (int i = 0; i < MEMBERS; i++) {
		const char *sep = i ? ", " : "";
		if (g.member_done[i] && g.res[i] == 0) {
			append(results, sizeof(results), "%s%d", sep, i * 100);
			append(text, sizeof(text), "%s%d", sep, i * 100);
		} else if (g.member_done[i] && g.res[i] == -ETIME) {
			append(results, sizeof(results), "%s\"timeout\"", sep);
			append(text, sizeof(text), "%stimeout", sep);
		} else {
			char rb[64];
			append(results, sizeof(results), "%s\"%s\"", sep, res_name(g.res[i], rb));
			append(text, sizeof(text), "%s%s", sep, res_name(g.res[i], rb));
		}
		bool want = i == 0 ? g.member_done[i] && g.res[i] == -ETIME &&
					     g.cause[i] == TMO_CAUSE_OWN
				   : g.member_done[i] && g.res[i] == 0;
		results_ok = results_ok && want;
	}
	append(results, sizeof(results), "]");
	append(text, sizeof(text), "]");
	struct tmo_op *first_failure = tmo_group_first_failure(&g.group);
	bool reports_timeout = first_failure == &g.op[0] && tmo_op_result(first_failure) == -ETIME;
	r->outcome = !g.done ? "error" : reports_timeout ? "timeout" : "ok";
	r->elapsed_ns = g.done_at - g.t0;
	happened(r, "member 0 timed out at %.0f ms, the others went on; the group finished at "
		    "%.0f ms reporting %s; results %s",
		 ms(g.at[0] - g.t0), ms(r->elapsed_ns), reports_timeout ? "the timeout" : "no timeout",
		 text);
	key(r, "results", "%s", results);
	key(r, "member_timeout_ms", "%.1f", ms(g.at[0] - g.t0));
	check(r, g.done && g.group_res == 0, "the group ended with %d", g.group_res);
	check(r, results_ok, "results %s", text);
	check(r, reports_timeout, "the group's first failure is not member 0's timeout");
	on_time(r, "member 0's timeout", g.at[0] - g.t0, U(d, 2.5));
	on_time(r, "the group's end", r->elapsed_ns, U(d, 5));
	gather_close(d, r, &g);
	loop_close(r, &loop);
}

void sc_wait_partial(struct demo *d, struct report *r)
{
	enum { N = 5 };
	struct tmo_loop loop;
	struct gather g = { .loop = &loop, .n = N };
	double sleep[N] = { 1, 2, 3, 4, 5 };

	if (!loop_open(r, &loop))
		return;
	g.t0 = tmo_now();
	struct tmo_group_options opt = { .mode = TMO_GROUP_ALL, .policy = TMO_GROUP_LEAVE_PENDING,
					 .deadline = tmo_at(g.t0 + U(d, 2.5)) };
	int completed_later = 0, cleaned = 0;
	if (gather_start(d, r, &g, &opt, sleep, NULL)) {
		run_until(r, &loop, &g.done, g.t0 + U(d, 10), "the wait");
		/* the pending members run on: see the 3-unit one complete on its own */
		run_until(r, &loop, &g.member_done[2], g.t0 + U(d, 10), "the 3-unit member");
		for (int i = 0; i < N; i++)
			if (g.member_done[i] && g.at[i] > g.done_at && g.res[i] == 0)
				completed_later++;
		/* then clean up: the wait does not need the others */
		for (struct tmo_op *m = tmo_group_pending_first(&g.group); m;
		     m = tmo_group_pending_next(m))
			if (tmo_op_cancel(m) == 0)
				cleaned++;
	}
	char rb[64];
	r->outcome = g.done ? outcome_of(g.group_res) : "error";
	r->elapsed_ns = g.done_at - g.t0;
	happened(r, "the wait returned (%s) at %.0f ms with %u done and %u pending, still running; "
		    "%d of them completed on their own afterwards; %d cancelled to clean up",
		 res_name(g.group_res, rb), ms(r->elapsed_ns), g.done_count, g.pending_count,
		 completed_later, cleaned);
	key(r, "done", "%u", g.done_count);
	key(r, "pending", "%u", g.pending_count);
	key(r, "pending_running", "%s", g.pending_busy ? "true" : "false");
	key(r, "completed_after_wait", "%d", completed_later);
	check(r, g.done && g.group_res == -ETIME, "the wait ended with %s",
	      res_name(g.group_res, rb));
	on_time(r, "the wait's deadline", r->elapsed_ns, U(d, 2.5));
	check(r, g.done_count == 2 && g.pending_count == 3, "done %u, pending %u (expected 2, 3)",
	      g.done_count, g.pending_count);
	check(r, g.pending_busy, "pending members were not running after the wait");
	check(r, completed_later == 1 && g.res[2] == 0, "the 3-unit member ended with %s",
	      res_name(g.res[2], rb));
	if (g.member_done[2])
		on_time(r, "the 3-unit member", g.at[2] - g.t0, U(d, 3));
	gather_close(d, r, &g);
	loop_close(r, &loop);
}
