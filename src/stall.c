/*
 * Stall reports: a callback that ran past the loop's threshold. While it ran the loop could
 * not see deadlines pass; the report says which came due meanwhile and how late the loop sees
 * them, and whether the kernel kept the linked ones on time regardless.
 */
#include "container.h"

/* A wheel walk reads at most this many entries: a report must not turn into a stall. */
#define MAX_READS 100000u

/*
 * Whether a completion now in the CQ is that of an op whose linked timeout came due by `now`.
 * When the kernel ran its timeout work on time (TMO_MODE_DEFAULT), the completion says so:
 * only the linked timeout cancels a linked request the caller did not (see outcome() in op.c).
 * Under DEFER_TASKRUN that work ran only as the loop came back, and the order in which the
 * kernel runs deferred work decides whether the timeout or data that came after the deadline
 * won (Linux 6.1 runs it newest first, later kernels in order): the completion cannot tell,
 * so tmo's own record decides: the deadline had passed while the op was in flight.
 */
static bool kernel_deadline_came_due(const struct tmo_op *op, int32_t res, int64_t now,
				     bool deferred)
{
	if (!tmo__op_linked_deadline_passed(op, now))
		return false;
	res = tmo__user_errno(res);
	return deferred || res == -ECANCELED || res == -EINTR;
}

struct due_count {
	uint32_t due;
	int64_t earliest; /* 0: none yet */
};

static void count_one(void *ctx, const struct tmo__wheel_entry *entry)
{
	struct due_count *c = ctx;
	const struct tmo__timer *t = tmo__timer_of(entry);

	if (t->kind == TMO__TIMER_CANCEL_RETRY)
		return; /* a pause of tmo's, not a deadline */
	c->due++;
	if (!c->earliest || entry->when < c->earliest)
		c->earliest = entry->when;
}

/* Counts the loop-kept deadlines at or before `now`; the wheel's walk reads only the slots
 * that begin by then. */
static uint32_t count_due(const struct tmo__wheel *wheel, int64_t now, int64_t *earliest)
{
	struct due_count c = { 0, 0 };

	(void)tmo__wheel_walk_due(wheel, now, MAX_READS, count_one, &c);
	*earliest = c.earliest;
	return c.due;
}

void tmo__stall_report(struct tmo__loop_state *st, int64_t began, int64_t ended,
		       enum tmo_stall_source source)
{
	struct tmo_stall report = {
		.began = began,
		.duration_ns = ended - began,
		.source = source,
		.kernel_enforced = st->mode == TMO_MODE_DEFAULT,
	};
	int64_t duration = ended - began;

	st->stats.stalls++;
	st->stats.stall_ns_total += (uint64_t)duration;
	if ((uint64_t)duration > st->stats.stall_ns_max)
		st->stats.stall_ns_max = (uint64_t)duration;

	report.deadlines_due = count_due(&st->deadlines, ended, &report.earliest_due);
	/* Completions of ops whose linked timeout fired: post what the kernel has (under
	 * DEFER_TASKRUN its timeout work runs only now) and look without consuming. */
	(void)io_uring_get_events(&st->ring);
	struct io_uring_cqe *cqe;
	unsigned head;
	bool deferred = tmo__has(st, TMO_FEAT_DEFER_TASKRUN);
	io_uring_for_each_cqe(&st->ring, head, cqe)
	{
		if ((cqe->user_data & TMO__TAG_MASK) != TMO__TAG_OP)
			continue;
		const struct tmo_op *op = tmo__op_of_user_data(cqe->user_data);
		if (!kernel_deadline_came_due(op, cqe->res, ended, deferred))
			continue;
		report.kernel_timed_out++;
		if (!report.earliest_due || op->_deadline < report.earliest_due)
			report.earliest_due = op->_deadline;
	}
	report.deadlines_due += report.kernel_timed_out;
	if (report.earliest_due)
		report.late_ns = ended - report.earliest_due;
	if (st->stall.hook)
		st->stall.hook(st->stall.loop, &report, st->stall.data);
}
