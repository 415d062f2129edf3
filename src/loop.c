/*
 * The loop: creating the ring, probing what the kernel offers, and running: submit, wait for
 * the earliest of a completion or a loop-kept deadline, dispatch completions, repeat.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "internal.h"

#define DEFAULT_RING_ENTRIES 256u
#define MAX_RING_ENTRIES 32768u    /* the kernel's IORING_MAX_ENTRIES */
#define MAX_CQ_ENTRIES 65536u      /* the kernel's IORING_MAX_CQ_ENTRIES */
/*
 * The default CQ is at least this big, for the kernel's cancel table rather than for room: it
 * sizes that hash (found by user_data, also by every linked timeout that fires) from the CQ,
 * clamp(ilog2(cq_entries) - 5, 1, 8) bits (io_ring_ctx_alloc, Linux 5.x to 6.18), so 8192
 * entries give it all 256 buckets where 1024 gave 32: a lookup with n requests in flight walks
 * about n / buckets of them. It costs 128 KiB of CQ memory.
 */
#define MIN_DEFAULT_CQ_ENTRIES 8192u
#define CQE_BATCH 64u
/* Debug builds validate the wheel after each expiry pass while at most this many are kept. */
#define VALIDATE_MAX_ENTRIES 10000u
/* When the kernel refused a submission, retry after this long even if nothing completes. */
#define RETRY_WAIT_NS (1 * TMO_NSEC_PER_MSEC)

static bool is_power_of_two(uint32_t x)
{
	return x && !(x & (x - 1));
}

static int check_options(const struct tmo_loop_options *o, uint32_t *sq, uint32_t *cq)
{
	*sq = o->ring_entries ? o->ring_entries : DEFAULT_RING_ENTRIES;
	if (!is_power_of_two(*sq) || *sq < 2 || *sq > MAX_RING_ENTRIES)
		return -EINVAL;
	*cq = o->cq_entries ? o->cq_entries : 4 * *sq;
	if (!o->cq_entries && *cq < MIN_DEFAULT_CQ_ENTRIES)
		*cq = MIN_DEFAULT_CQ_ENTRIES;
	if (!o->cq_entries && *cq > MAX_CQ_ENTRIES)
		*cq = MAX_CQ_ENTRIES;
	if (!is_power_of_two(*cq) || *cq < *sq || *cq > MAX_CQ_ENTRIES)
		return -EINVAL;
	if (o->mode != TMO_MODE_DEFAULT && o->mode != TMO_MODE_LOW_LATENCY)
		return -EINVAL;
	if (o->deadlines != TMO_DEADLINES_KERNEL && o->deadlines != TMO_DEADLINES_LOOP)
		return -EINVAL;
	return 0;
}

/* What the kernel said of the ring it made: feature bits, and the setup flags it kept. */
static void record_ring_features(struct tmo__loop_state *st, const struct io_uring_params *p)
{
	static const struct {
		bool from_flags; /* p->flags (a setup flag kept) rather than p->features */
		uint32_t bit;
		enum tmo_feature feature;
	} map[] = {
		{ false, IORING_FEAT_CQE_SKIP, TMO_FEAT_CQE_SKIP },
		{ false, IORING_FEAT_NODROP, TMO_FEAT_NODROP },
		{ false, IORING_FEAT_EXT_ARG, TMO_FEAT_EXT_ARG },
		{ false, IORING_FEAT_MIN_TIMEOUT, TMO_FEAT_MIN_TIMEOUT },
		{ true, IORING_SETUP_COOP_TASKRUN, TMO_FEAT_COOP_TASKRUN },
		{ true, IORING_SETUP_DEFER_TASKRUN, TMO_FEAT_DEFER_TASKRUN },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if ((map[i].from_flags ? p->flags : p->features) & map[i].bit)
			st->features |= 1u << map[i].feature;
	}
}

static int create_ring(struct tmo__loop_state *st, uint32_t sq, uint32_t cq)
{
	struct io_uring_params p;
	unsigned flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;

	if (st->mode == TMO_MODE_LOW_LATENCY)
		flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	else
		flags |= IORING_SETUP_COOP_TASKRUN; /* no IPIs; cancellation still runs on time */

	memset(&p, 0, sizeof(p));
	p.flags = flags;
	p.cq_entries = cq;
	int ret = io_uring_queue_init_params(sq, &st->ring, &p);
	if (ret == -EINVAL && st->mode == TMO_MODE_DEFAULT) {
		/* Kernels before 5.19 lack COOP_TASKRUN and SUBMIT_ALL; both are optimisations. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = cq;
		ret = io_uring_queue_init_params(sq, &st->ring, &p);
	} else if (ret == -EINVAL) {
		/* DEFER_TASKRUN needs Linux 6.1: if the ring works without it, that is the cause. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = cq;
		if (io_uring_queue_init_params(sq, &st->ring, &p) == 0) {
			io_uring_queue_exit(&st->ring);
			return -EOPNOTSUPP;
		}
		return -EINVAL;
	}
	if (ret < 0)
		return ret;

	record_ring_features(st, &p);
	return 0;
}

static int probe_opcodes(struct tmo__loop_state *st)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(&st->ring);

	if (!probe)
		return -EOPNOTSUPP; /* IORING_REGISTER_PROBE: Linux 5.6 */
	for (unsigned op = 0; op < 64 && op <= probe->last_op; op++) {
		if (io_uring_opcode_supported(probe, (int)op))
			st->opcodes |= UINT64_C(1) << op;
	}
	io_uring_free_probe(probe);

	if (st->opcodes & (UINT64_C(1) << IORING_OP_LINK_TIMEOUT))
		st->features |= 1u << TMO_FEAT_LINK_TIMEOUT;
	if (st->opcodes & (UINT64_C(1) << IORING_OP_ASYNC_CANCEL))
		st->features |= 1u << TMO_FEAT_ASYNC_CANCEL;
	if (st->opcodes & (UINT64_C(1) << IORING_OP_MSG_RING))
		st->features |= 1u << TMO_FEAT_MSG_RING;
	if (st->opcodes & (UINT64_C(1) << TMO__OPCODE_FUTEX_WAIT))
		st->features |= 1u << TMO_FEAT_FUTEX_WAIT;
	/* No probe reports timeout flags: go by the version (6.4), and let the first tick
	 * correct it if a kernel refuses the flag anyway (tick.c). */
	struct utsname u;
	unsigned major = 0, minor = 0;
	if (uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2 &&
	    (major > 6 || (major == 6 && minor >= 4)))
		st->features |= 1u << TMO_FEAT_TIMEOUT_MULTISHOT;
	if (tmo__kernel_pipes_nowait())
		st->features |= 1u << TMO_FEAT_NOWAIT_PIPES;
	return 0;
}

int tmo_loop_init(struct tmo_loop *loop, const struct tmo_loop_options *options)
{
	static const struct tmo_loop_options defaults;
	uint32_t sq, cq;

	if (!loop)
		return -EINVAL;
	loop->_state = NULL;
	int ret = check_options(options ? options : &defaults, &sq, &cq);
	if (ret)
		return ret;

	struct tmo__loop_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->mode = options ? options->mode : TMO_MODE_DEFAULT;
	st->deadline_strategy = options ? options->deadlines : TMO_DEADLINES_KERNEL;
	tmo__wheel_init(&st->deadlines);

	ret = create_ring(st, sq, cq);
	if (ret) {
		free(st);
		return ret;
	}
	ret = probe_opcodes(st);
	/* tmo's guarantees rest on these: deadlines without extra SQEs in waits, no lost
	 * completions, linked timeouts and cancellation. */
	if (!ret && (!tmo__has(st, TMO_FEAT_EXT_ARG) || !tmo__has(st, TMO_FEAT_NODROP) ||
		     !tmo__has(st, TMO_FEAT_LINK_TIMEOUT) || !tmo__has(st, TMO_FEAT_ASYNC_CANCEL)))
		ret = -EOPNOTSUPP;
	if (ret) {
		io_uring_queue_exit(&st->ring);
		free(st);
		return ret;
	}
	/* Saves an fd lookup on every io_uring_enter; purely an optimisation. */
	(void)io_uring_register_ring_fd(&st->ring);
	loop->_state = st;
	return 0;
}

int tmo_loop_close(struct tmo_loop *loop)
{
	if (!loop || !loop->_state)
		return -EINVAL;
	struct tmo__loop_state *st = tmo__state(loop);
	if (st->active || st->running || st->current_scope || st->attached)
		return -EBUSY; /* work left, a scope still entered, a pool still open */
	io_uring_queue_exit(&st->ring);
	free(st);
	loop->_state = NULL;
	return 0;
}

void tmo_loop_stop(struct tmo_loop *loop)
{
	if (loop && loop->_state)
		tmo__state(loop)->stop = true;
}

uint32_t tmo_loop_active(const struct tmo_loop *loop)
{
	return loop && loop->_state ? tmo__state(loop)->active : 0;
}

bool tmo_loop_has_feature(const struct tmo_loop *loop, enum tmo_feature feature)
{
	if (!loop || !loop->_state || (unsigned)feature >= TMO_FEAT_COUNT_)
		return false;
	return tmo__has(tmo__state(loop), feature);
}

int tmo_loop_watch_stalls(struct tmo_loop *loop, int64_t threshold_ns, tmo_stall_hook hook,
			  void *data)
{
	if (!loop || !loop->_state || threshold_ns < 0)
		return -EINVAL;
	struct tmo__loop_state *st = tmo__state(loop);
	st->stall.threshold = threshold_ns;
	st->stall.hook = hook;
	st->stall.data = data;
	st->stall.loop = loop;
	return 0;
}

int tmo_loop_get_stats(const struct tmo_loop *loop, struct tmo_loop_stats *stats)
{
	if (!loop || !loop->_state || !stats)
		return -EINVAL;
	*stats = tmo__state(loop)->stats;
	return 0;
}

/* ---- submission and waiting -------------------------------------------------------------- */

static int enter_submit(struct tmo__loop_state *st)
{
	st->stats.submit_calls++;
	return io_uring_submit(&st->ring);
}

struct io_uring_sqe *tmo__get_sqes(struct tmo__loop_state *st, unsigned need)
{
	if (io_uring_sq_space_left(&st->ring) < need) {
		/* After one refusal, do not ask again (a system call each time) before the loop
		 * has waited for completions to free the kernel's resources. */
		if (st->sq_refused) {
			st->stats.deferred++;
			return NULL;
		}
		st->stats.sq_full++;
		/* With SUBMIT_ALL the kernel consumes every SQE, failing ones get error CQEs;
		 * only a refusal of the whole call leaves the queue full. */
		int ret = enter_submit(st);
		if (ret < 0 || io_uring_sq_space_left(&st->ring) < need) {
			st->sq_refused = true;
			st->stats.deferred++;
			return NULL;
		}
	}
	return io_uring_get_sqe(&st->ring);
}

int tmo_loop_submit(struct tmo_loop *loop)
{
	if (!loop || !loop->_state)
		return -EINVAL;
	return enter_submit(tmo__state(loop));
}

/*
 * Submits what is queued and waits until a completion arrives or `wake_at` passes
 * (TMO_NEVER_NS: no limit; a time in the past: do not wait). Completions are read by the caller
 * from the CQ whatever this returns: liburing 2.3 may report a count where it means -ETIME.
 */
static int submit_and_wait(struct tmo__loop_state *st, int64_t wake_at)
{
	struct io_uring_cqe *cqe;
	int64_t wait = wake_at == TMO_NEVER_NS ? 0 : wake_at - tmo_now();
	int ret;

	st->stats.submit_calls++;
	if (wake_at == TMO_NEVER_NS) {
		ret = io_uring_submit_and_wait(&st->ring, 1);
	} else if (wait <= 0) {
		/* Nothing to wait for; in DEFER_TASKRUN mode completions are only posted when the
		 * thread asks for them, so ask. */
		ret = io_uring_submit_and_get_events(&st->ring);
	} else {
		struct tmo__kernel_timespec ts;
		ret = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1,
						       tmo__set_timespec(&ts, wait), NULL);
	}
	if (ret == -ETIME || ret == -EINTR || ret == -EAGAIN || ret == -EBUSY)
		ret = 0;
	st->sq_refused = false;
	return ret;
}

/*
 * Makes sure the loop's timeout fires no later than `when`. Returns false if it could not (no
 * SQE); the caller then bounds its wait instead.
 */
static bool arm_timer(struct tmo__loop_state *st, int64_t when)
{
	if (st->timer.in_flight && st->timer.armed_at <= when)
		return true; /* fires in time, or early: either is fine */
	struct io_uring_sqe *sqe = tmo__get_sqes(st, 1);
	if (!sqe)
		return false;
	uint64_t timer_data = (uint64_t)(uintptr_t)st | TMO__TAG_LOOP_TIMER;
	if (st->timer.in_flight) {
		io_uring_prep_timeout_update(sqe, tmo__set_timespec(&st->timer.update_ts, when),
					     timer_data, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)st | TMO__TAG_IGNORED);
	} else {
		io_uring_prep_timeout(sqe, tmo__set_timespec(&st->timer.ts, when), 0,
				      IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, timer_data);
		st->timer.in_flight = true;
	}
	st->timer.armed_at = when;
	return true;
}

/* Dispatches every completion in the CQ. Returns how many it handled. */
static unsigned reap(struct tmo__loop_state *st)
{
	struct io_uring_cqe *cqes[CQE_BATCH];
	uint64_t user_data[CQE_BATCH];
	int32_t res[CQE_BATCH];
	uint32_t flags[CQE_BATCH];
	unsigned total = 0;

	for (;;) {
		if (IO_URING_READ_ONCE(*st->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
			st->stats.cq_overflow++;
		/* peek_batch flushes the kernel's overflow list into the CQ when it is needed. */
		unsigned n = io_uring_peek_batch_cqe(&st->ring, cqes, CQE_BATCH);
		if (!n)
			return total;
		/* Copy and free the slots first, so callbacks run with the CQ empty. */
		for (unsigned i = 0; i < n; i++) {
			user_data[i] = cqes[i]->user_data;
			res[i] = cqes[i]->res;
			flags[i] = cqes[i]->flags;
		}
		io_uring_cq_advance(&st->ring, n);
		for (unsigned i = 0; i < n; i++)
			tmo__cqe_handlers[user_data[i] & TMO__TAG_MASK](st, user_data[i], res[i],
									 flags[i]);
		total += n;
	}
}

/*
 * Acts on every kept deadline that has passed, earliest first, each by its kind's handler. The
 * wheel hands them out one at a time, so a handler may arm and disarm any timer meanwhile,
 * one that is due included (it is then not handed out, or handed out again if re-armed due).
 */
static void expire(struct tmo__loop_state *st)
{
	struct tmo__wheel_entry *entry;

	if (!st->deadlines.count)
		return;
	int64_t now = tmo_now();
	while ((entry = tmo__wheel_pop_due(&st->deadlines, now))) {
		struct tmo__timer *timer = tmo__container_of(entry, struct tmo__timer, entry);

		timer->armed = 0;
		tmo__timer_handlers[timer->kind](st, timer);
	}
	/* Debug builds check the whole wheel, O(entries): not with so many pending that every
	 * pass of the loop would pay for a walk of them all. */
	if (st->deadlines.count <= VALIDATE_MAX_ENTRIES)
		tmo__wheel_validate(&st->deadlines);
}

/* ---- the deferred queue ------------------------------------------------------------------ */

enum { QUEUED_DEFERRED = 1, QUEUED_SERVING = 2 };

void tmo__defer(struct tmo__loop_state *st, struct tmo__deferred *work, uint8_t kind)
{
	if (work->queued)
		return;
	work->kind = kind;
	work->queued = QUEUED_DEFERRED;
	tmo__list_push_back(&st->deferred, &work->link);
}

void tmo__undefer(struct tmo__loop_state *st, struct tmo__deferred *work)
{
	if (!work->queued)
		return;
	tmo__list_remove(work->queued == QUEUED_SERVING ? &st->serving : &st->deferred, &work->link);
	work->queued = 0;
}

/*
 * Serves what waits on the deferred queue once, in the order it asked: what is queued by the
 * handlers meanwhile (callbacks that restart ops, work that still finds no SQE) waits for the
 * next pass. The pass's work sits on st->serving, not on this stack, so that a handler's
 * callback can take other work off it (a pool closed while the loop owes it).
 */
static void serve_deferred(struct tmo__loop_state *st)
{
	struct tmo__link *link;

	if (tmo__list_empty(&st->deferred))
		return; /* the usual pass */
	/* Each entry says which list holds it, so that tmo__undefer takes it off the right one. */
	for (link = st->deferred.first; link; link = link->next)
		tmo__container_of(link, struct tmo__deferred, link)->queued = QUEUED_SERVING;
	tmo__list_splice_back(&st->serving, &st->deferred);
	while ((link = tmo__list_pop_front(&st->serving))) {
		struct tmo__deferred *work = tmo__container_of(link, struct tmo__deferred, link);
		work->queued = 0;
		tmo__deferred_handlers[work->kind](st, work);
	}
}

static int run(struct tmo_loop *loop, enum tmo_run_mode mode, int64_t until)
{
	if (!loop || !loop->_state)
		return -EINVAL;
	struct tmo__loop_state *st = tmo__state(loop);
	if (st->running)
		return -EBUSY;
	if (mode != TMO_RUN_DEFAULT && mode != TMO_RUN_ONCE && mode != TMO_RUN_NOWAIT)
		return -EINVAL;

	int ret = 0;
	uint64_t callbacks_before = st->callbacks;
	st->running = true;
	for (;;) {
		serve_deferred(st);
		if (st->stop || !st->active)
			break;

		int64_t wake_at = until;
		if (st->deadlines.count) {
			int64_t now = tmo_now();
			int64_t look = tmo__wheel_wake_time(&st->deadlines, now);
			if (look <= now)
				wake_at = 0; /* already due: handle it without waiting */
			else if (!arm_timer(st, look) && look < wake_at)
				wake_at = look; /* no SQE for the timer: bound this wait instead */
		}
		if (mode == TMO_RUN_NOWAIT ||
		    (mode == TMO_RUN_ONCE && st->callbacks != callbacks_before)) {
			wake_at = 0; /* nothing to wait for, or the one iteration already did work */
		} else if (!tmo__list_empty(&st->deferred)) {
			/* Decided work waits for nothing; work the kernel refused waits a little
			 * for completions to free its resources. */
			int64_t retry = st->sq_refused ? tmo_now() + RETRY_WAIT_NS : 0;
			if (retry < wake_at)
				wake_at = retry;
		}
		ret = submit_and_wait(st, wake_at);
		if (ret < 0)
			break;
		ret = 0;
		reap(st);
		expire(st);
		if (mode == TMO_RUN_NOWAIT || (until != TMO_NEVER_NS && tmo_now() >= until)) {
			serve_deferred(st);
			break;
		}
		/* One iteration means: until at least one callback ran. A wake-up can bring none
		 * (the loop's own timer, a deadline whose cancellation completes later). */
		if (mode == TMO_RUN_ONCE) {
			serve_deferred(st);
			if (st->callbacks != callbacks_before)
				break;
		}
	}
	/*
	 * The caller gets control back: whatever callbacks queued (restarted ops with their linked
	 * timeouts, cancels) must be in the kernel now, so that deadlines hold while the caller
	 * does other work. One system call, only when something is queued.
	 */
	if (ret >= 0 && io_uring_sq_ready(&st->ring))
		enter_submit(st);
	st->running = false;
	st->stop = false;
	return ret < 0 ? ret : (int)st->active;
}

int tmo_loop_run(struct tmo_loop *loop, enum tmo_run_mode mode)
{
	return run(loop, mode, TMO_NEVER_NS);
}

int tmo_loop_run_until(struct tmo_loop *loop, tmo_deadline until)
{
	int64_t deadline = tmo__deadline_in(until);

	if (deadline < 0)
		return -EINVAL;
	return run(loop, TMO_RUN_DEFAULT, deadline);
}
