/*
 * The loop's side of the pool: job deadlines (kept timers in the loop's wheel), the wait list
 * (jobs waiting for room in a full queue) and the decided list (outcomes known before a worker
 * let go), draining the workers' `done` stack, delivering callbacks through the one invoke, and
 * the one wake-up request on the ring (a futex wait or an eventfd read) that workers complete.
 * Everything here runs on the loop's thread.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>

#include "hooks.h"
#include "pool.h"

#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX2_PRIVATE
#define FUTEX2_PRIVATE 128
#endif

void tmo__pool_need_attention(struct tmo__pool_state *p)
{
	tmo__defer(p->st, &p->deferred, TMO__DEFER_POOL);
}

static void call(struct tmo__pool_state *p, void (*cb)(struct tmo_job *, int64_t),
		 struct tmo_job *job, int64_t res)
{
	struct tmo__loop_state *st = p->st;
	struct tmo__invoke call;

	p->dispatching++;
	tmo__invoke_begin(st, &call, NULL); /* a job belongs to no scope */
	cb(job, res);
	tmo__invoke_end(st, &call, TMO_STALL_JOB);
	p->dispatching--;
}

static void make_idle(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__job_set_state(job, J_IDLE);
	p->busy_jobs--;
	p->st->active--;
	if (!p->busy_jobs)
		tmo__pool_need_attention(p); /* the wake-up request is no longer needed */
}

/* Delivers the outcome; `release` when nothing of the job remains with the pool, so that the
 * callback may free or restart it. */
static void deliver(struct tmo__pool_state *p, struct tmo_job *job, int64_t res, bool release)
{
	tmo_job_cb cb = job->_cb;

	p->stats.completed++;
	if (res == -ETIME)
		p->stats.timed_out++;
	else if (res == -ECANCELED && (job->_cancel || p->shutdown))
		p->stats.cancelled++;
	tmo__timer_disarm(p->st, &job->_timer);
	if (release)
		make_idle(p, job);
	call(p, cb, job, res);
}

/* The worker let go of a job whose callback already fired. */
static void release_late(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo_job_release_cb release = job->_release;
	int64_t res = job->_res;

	make_idle(p, job);
	if (release)
		call(p, release, job, res);
}

static void push_decided(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__list_push_back(&p->decided, &job->_link);
	tmo__pool_need_attention(p);
}

void tmo__pool_decide_unstarted(struct tmo__pool_state *p, struct tmo_job *job, int64_t res)
{
	tmo__job_set_state(job, J_DECIDED);
	job->_res = res;
	tmo__timer_disarm(p->st, &job->_timer);
	push_decided(p, job);
}

void tmo__pool_add_waiting_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__job_set_state(job, J_WAITING);
	tmo__list_push_back(&p->wait, &job->_link);
	p->waiting++;
}

void tmo__pool_unlink_waiting(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__list_remove(&p->wait, &job->_link);
	pthread_mutex_lock(&p->lock);
	p->waiting--;
	pthread_mutex_unlock(&p->lock);
}

void tmo__pool_cancel_running_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__pool_stop_running_locked(p, job);
	tmo__pool_tie_up_locked(p, job, J_RUNNING_CANCELLED);
	tmo__timer_disarm(p->st, &job->_timer);
	push_decided(p, job);
}

void tmo__job_on_expired(struct tmo__loop_state *st, struct tmo_job *job)
{
	struct tmo__pool_state *p = job->_pool;
	uint8_t state = tmo__job_state(job);

	(void)st;
	job->_timer.armed = 0;
	if (state == J_WAITING) {
		tmo__pool_unlink_waiting(p, job);
		p->stats.expired_queued++;
		deliver(p, job, -ETIME, true);
		return;
	}
	if (state != J_QUEUED && state != J_RUNNING && state != J_SKIPPED)
		return;
	pthread_mutex_lock(&p->lock);
	state = tmo__job_state(job);
	if (state == J_SKIPPED) {
		pthread_mutex_unlock(&p->lock);
		p->stats.expired_queued++;
		deliver(p, job, -ETIME, true);
		tmo__pool_need_attention(p); /* room for a waiting job */
		return;
	}
	if (state == J_QUEUED) {
		tmo__pool_unlink_queued_locked(p, job);
		pthread_mutex_unlock(&p->lock);
		p->stats.expired_queued++;
		deliver(p, job, -ETIME, true);
		tmo__pool_need_attention(p); /* room for a waiting job */
		return;
	}
	if (state != J_RUNNING) {
		/* Finished just now: its own result, already on its way, decides. */
		pthread_mutex_unlock(&p->lock);
		return;
	}
	/* An interrupt job's worker got its signal from its own timer at this deadline; a kill
	 * job's worker kills its helper by itself. */
	tmo__pool_tie_up_locked(p, job, J_RUNNING_REPORTED);
	pthread_mutex_unlock(&p->lock);
	deliver(p, job, -ETIME, false);
}

/* The worker's result for a job reaches the loop. */
static void on_finished(struct tmo__pool_state *p, struct tmo_job *job)
{
	uint8_t state = tmo__job_state(job);

	if (state == J_FINISHED_REPORTED) {
		release_late(p, job);
	} else if (state == J_FINISHED_CANCELLED) {
		/* The pending -ECANCELED releases it. */
		tmo__job_set_state(job, J_DRAINED_CANCELLED);
	} else if (job->_late) {
		/* The function returned after its deadline (stopped by its worker's timer or the
		 * helper's kill, or it noticed tmo_job_cancelled) and the result got here before
		 * the loop saw the deadline pass: the deadline came first, so it is a timeout, and
		 * the result goes to the release callback. */
		tmo__job_set_state(job, J_FINISHED_REPORTED);
		deliver(p, job, -ETIME, false);
		release_late(p, job);
	} else {
		deliver(p, job, job->_res, true);
	}
}

static void drain(struct tmo__pool_state *p)
{
	struct tmo_job *list = __atomic_exchange_n(&p->done, NULL, __ATOMIC_SEQ_CST);
	struct tmo_job *fifo = NULL;

	while (list) {
		struct tmo_job *next = list->_done_next;
		list->_done_next = fifo;
		fifo = list;
		list = next;
	}
	while (fifo) {
		struct tmo_job *next = fifo->_done_next; /* the callback may restart the job */
		on_finished(p, fifo);
		fifo = next;
	}
}

/* The -ECANCELED of a job cancelled while it ran, and its release if the loop already took it
 * off `done`. The lock orders the move against the worker's own RUNNING_CANCELLED ->
 * FINISHED_CANCELLED. */
static void deliver_cancelled_running(struct tmo__pool_state *p, struct tmo_job *job)
{
	pthread_mutex_lock(&p->lock);
	uint8_t state = tmo__job_state(job);
	if (state == J_RUNNING_CANCELLED)
		tmo__job_set_state(job, J_RUNNING_REPORTED);
	else if (state == J_FINISHED_CANCELLED)
		tmo__job_set_state(job, J_FINISHED_REPORTED);
	pthread_mutex_unlock(&p->lock);
	deliver(p, job, -ECANCELED, false);
	if (state == J_DRAINED_CANCELLED)
		release_late(p, job);
}

static void deliver_decided(struct tmo__pool_state *p)
{
	struct tmo__list batch = { 0 };
	struct tmo__link *link;

	tmo__list_splice_back(&batch, &p->decided); /* what the callbacks decide waits for later */
	while ((link = tmo__list_pop_front(&batch))) {
		struct tmo_job *job = tmo__job_of_link(link);
		if (tmo__job_state(job) != J_DECIDED) {
			deliver_cancelled_running(p, job);
			continue;
		}
		if (job->_res == -ETIME)
			p->stats.expired_queued++;
		deliver(p, job, job->_res, true);
	}
}

static void promote_waiters(struct tmo__pool_state *p)
{
	pthread_mutex_lock(&p->lock);
	p->room_signal = false;
	while (!tmo__list_empty(&p->wait) && p->queued < p->queue_size) {
		p->waiting--;
		tmo__pool_enqueue_locked(p, tmo__job_of_link(tmo__list_pop_front(&p->wait)));
	}
	pthread_mutex_unlock(&p->lock);
}

/* Puts the wake-up request in the kernel. Returns 1 if armed, 0 if finished jobs are already
 * waiting (drain first), -1 without an SQE. */
static int arm_wake(struct tmo__pool_state *p)
{
	struct tmo__loop_state *st = p->st;
	uint32_t seen = __atomic_load_n(&p->futex_word, __ATOMIC_SEQ_CST);

	/* A worker that pushes (or makes room) after this check bumps the futex word first, so
	 * the wait below (which expects `seen`) completes at once; eventfd counts keep any
	 * write. */
	if (p->wake == TMO_POOL_WAKE_FUTEX && __atomic_load_n(&p->done, __ATOMIC_SEQ_CST))
		return 0;
	if (!tmo__list_empty(&p->wait)) {
		pthread_mutex_lock(&p->lock);
		bool room = p->queued < p->queue_size;
		pthread_mutex_unlock(&p->lock);
		if (room)
			return 0;
	}
	struct io_uring_sqe *sqe = tmo__get_sqes(st, 1);
	if (!sqe)
		return -1;
	if (p->wake == TMO_POOL_WAKE_FUTEX) {
		io_uring_prep_rw(TMO__OPCODE_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
				 &p->futex_word, 0, seen);
		sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
	} else {
		io_uring_prep_read(sqe, p->efd, &p->efd_buf, sizeof(p->efd_buf), 0);
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)p | TMO__TAG_POOL);
	p->wake_in_flight = true;
	p->wake_cancel_sent = false;
	st->active++; /* until its completion is seen */
	return 1;
}

/* The pool went idle with its wake-up request in the kernel: cancel it (it counts as active
 * work until its completion is seen). */
static void withdraw_wake(struct tmo__pool_state *p)
{
	struct io_uring_sqe *sqe = tmo__get_sqes(p->st, 1);

	if (!sqe) {
		tmo__pool_need_attention(p); /* no SQE: retry on the next pass */
		return;
	}
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)p | TMO__TAG_POOL, 0);
	/* Its own completion is never read: the pool may be gone by then. */
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)p | TMO__TAG_IGNORED);
	p->wake_cancel_sent = true;
}

/* Everything the loop owes the pool outside a completion. */
static void service(struct tmo__pool_state *p)
{
	p->dispatching++;
	while (!tmo__list_empty(&p->decided))
		deliver_decided(p);
	for (;;) {
		if (!tmo__list_empty(&p->wait))
			promote_waiters(p);
		if (!p->busy_jobs || p->wake_in_flight)
			break;
		int armed = arm_wake(p);
		if (armed < 0) {
			tmo__pool_need_attention(p); /* no SQE: retry on the next pass */
			break;
		}
		if (armed > 0)
			break;
		drain(p); /* results or room came first */
	}
	if (!p->busy_jobs && p->wake_in_flight && !p->wake_cancel_sent)
		withdraw_wake(p);
	p->dispatching--;
}

void tmo__pool_on_deferred(struct tmo__loop_state *st, struct tmo__deferred *work)
{
	(void)st;
	service(tmo__container_of(work, struct tmo__pool_state, deferred));
}

void tmo__pool_on_cqe(struct tmo__loop_state *st, struct tmo__pool_state *p, int32_t res)
{
	/* 0 or 8 (woken), -EAGAIN (the word moved first), -ECANCELED (the loop withdrew it when
	 * the pool went idle: not a wake-up by a worker); drain in every case. */
	p->wake_in_flight = false;
	st->active--;
	if (res != -ECANCELED)
		p->stats.wakeups++;
	p->dispatching++;
	drain(p);
	p->dispatching--;
	service(p);
}
