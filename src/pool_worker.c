/*
 * The pool's workers: threads that take jobs from the queue (under the pool's lock), run them
 * by their overrun level, and hand them back to the loop through the lock-free `done` stack
 * with one wake-up; replacements for workers tied up by overrunning jobs; and how the loop stops
 * a running job (the worker's timer, tgkill, the helper's wake fd).
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define INTERRUPT_REPEAT_NS (5 * TMO_NSEC_PER_MSEC)

/* The pool whose job the current thread runs: tmo_pool_close must not be called from it. */
static _Thread_local struct tmo__pool_state *running_in;

bool tmo__pool_runs_here(const struct tmo__pool_state *p)
{
	return running_in == p;
}

static void stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* ---- waking the loop ---------------------------------------------------------------------- */

static void wake_loop(struct tmo__pool_state *p)
{
	if (p->wake == TMO_POOL_WAKE_FUTEX) {
		__atomic_fetch_add(&p->futex_word, 1, __ATOMIC_SEQ_CST);
		syscall(SYS_futex, &p->futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	} else {
		uint64_t one = 1;
		/* Only EAGAIN (counter at its maximum) can fail it, and then a wake is pending. */
		ssize_t n = write(p->efd, &one, sizeof(one));
		(void)n;
	}
}

/* A worker hands a finished job to the loop. Only the push onto an empty list wakes the
 * loop: until it drains the list, the wake already sent covers later pushes. */
static void post_done(struct tmo__pool_state *p, struct tmo_job *job)
{
	struct tmo_job *prev = __atomic_load_n(&p->done, __ATOMIC_SEQ_CST);
	do {
		job->_done_next = prev;
	} while (!__atomic_compare_exchange_n(&p->done, &prev, job, true, __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST));
	if (!prev)
		wake_loop(p);
}

/* ---- the queue ---------------------------------------------------------------------------- */

/* Workers tied up by overrunning jobs are replaced, up to max_threads, while jobs wait for
 * a worker that no idle one will take. Called with the lock held. */
static void maybe_replace_locked(struct tmo__pool_state *p)
{
	while (p->tied_up && p->alive - p->tied_up < p->threads && p->alive < p->max_threads &&
	       p->queued > p->sleepers && !p->quit) {
		if (tmo__pool_spawn_locked(p))
			return;
		p->stats.replacements++;
	}
}

void tmo__pool_enqueue_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__list_push_back(&p->queue, &job->_link);
	p->queued++;
	tmo__job_set_state(job, J_QUEUED);
	if (p->sleepers)
		pthread_cond_signal(&p->cond);
	maybe_replace_locked(p);
}

struct tmo_job *tmo__pool_pop_locked(struct tmo__pool_state *p)
{
	p->queued--;
	return tmo__job_of_link(tmo__list_pop_front(&p->queue));
}

void tmo__pool_unlink_queued_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__list_remove(&p->queue, &job->_link);
	p->queued--;
}

void tmo__pool_tie_up_locked(struct tmo__pool_state *p, struct tmo_job *job,
			     enum tmo__job_state state)
{
	tmo__job_set_state(job, state);
	p->tied_up++;
	maybe_replace_locked(p);
}

void tmo__pool_stop_running_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	struct tmo__worker *w = job->_worker;

	__atomic_store_n(&job->_cancel, 1, __ATOMIC_SEQ_CST);
	if (job->_overrun == TMO_OVERRUN_INTERRUPT && w->has_timer) {
		/* The worker's own timer, fired now and then every 5 ms as at a deadline: one
		 * signal could land while the function computes and interrupt nothing. The
		 * worker disarms it after the job, and we arm it only while the job runs. */
		struct itimerspec now;
		memset(&now, 0, sizeof(now));
		now.it_value.tv_nsec = 1;
		now.it_interval.tv_nsec = INTERRUPT_REPEAT_NS;
		timer_settime(w->timer, 0, &now, NULL);
	} else if (job->_overrun == TMO_OVERRUN_INTERRUPT && p->sig) {
		syscall(SYS_tgkill, getpid(), w->tid, p->sig); /* counted by the worker */
	} else if (job->_overrun == TMO_OVERRUN_KILL) {
		uint64_t one = 1;
		ssize_t n = write(w->helper.wake_fd, &one, sizeof(one));
		(void)n;
	}
}

/* ---- a worker's steps --------------------------------------------------------------------- */

/* Lets in the interrupt signal (the creator blocked every signal) and creates the timer that
 * sends it to this thread. Returns whether it made the timer. */
static bool worker_setup(struct tmo__worker *w, timer_t *timer)
{
	struct tmo__pool_state *p = w->pool;

	w->tid = (pid_t)syscall(SYS_gettid);
	running_in = p;
	if (!p->sig)
		return false;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, p->sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = p->sig;
	sev.sigev_notify_thread_id = w->tid;
	return timer_create(CLOCK_MONOTONIC, &sev, timer) == 0;
}

/* Waits for a job and takes it (RUNNING); a job whose deadline passed while it was queued is
 * skipped. NULL when the pool quits with nothing queued. Called and returns with the lock held. */
static struct tmo_job *take_job_locked(struct tmo__pool_state *p, struct tmo__worker *w)
{
	for (;;) {
		while (tmo__list_empty(&p->queue) && !p->quit) {
			p->sleepers++;
			pthread_cond_wait(&p->cond, &p->lock);
			p->sleepers--;
		}
		if (tmo__list_empty(&p->queue))
			return NULL; /* quitting, nothing left */
		struct tmo_job *job = tmo__pool_pop_locked(p);
		if (job->_deadline != TMO_NEVER_NS && tmo_now() >= job->_deadline) {
			/* Its deadline passed while it was queued; the loop has not seen it yet,
			 * but will (the job's timer is due): it never runs. */
			tmo__job_set_state(job, J_SKIPPED);
			continue;
		}
		tmo__job_set_state(job, J_RUNNING);
		job->_worker = w;
		w->job = job;
		p->stats.ran++;
		return job;
	}
}

/* Runs a thread-level job; an interrupt job arms this worker's timer for its deadline. */
static int64_t run_in_thread(struct tmo_job *job, timer_t *timer)
{
	if (timer && job->_deadline != TMO_NEVER_NS) {
		struct itimerspec its;
		memset(&its, 0, sizeof(its));
		its.it_value.tv_sec = job->_deadline / TMO_NSEC_PER_SEC;
		its.it_value.tv_nsec = job->_deadline % TMO_NSEC_PER_SEC;
		/* Repeated until the function returns: a blocking call it begins just after a
		 * signal (which then found nothing to interrupt) is interrupted by the next. */
		its.it_interval.tv_nsec = INTERRUPT_REPEAT_NS;
		timer_settime(*timer, TIMER_ABSTIME, &its, NULL);
	}
	return job->_fn(job);
}

/* Runs the job by its overrun level: in the helper (kill) or on this thread. `timer` is the
 * worker's timer, NULL if it has none. */
static int64_t run_job(struct tmo__worker *w, struct tmo_job *job, timer_t *timer)
{
	struct tmo__pool_state *p = w->pool;

	tmo__pool_interrupts_reset();
	if (job->_overrun == TMO_OVERRUN_KILL) {
		struct tmo__helper_events ev = { 0 };
		int64_t res = tmo__helper_run(&w->helper, &p->limits, job, &ev);
		stat_add(&p->helpers_started, ev.started);
		stat_add(&p->helpers_killed, ev.killed);
		stat_add(&p->helpers_sigkilled, ev.sigkilled);
		return res;
	}
	return run_in_thread(job, job->_overrun == TMO_OVERRUN_INTERRUPT ? timer : NULL);
}

/* The worker lets go of the job it ran: RUNNING_* -> FINISHED_*. Returns whether the job's
 * outcome was decided while it ran (its worker was counted tied up). Called with the lock held. */
static bool let_go_locked(struct tmo_job *job)
{
	uint8_t state = tmo__job_state(job);

	if (state == J_RUNNING_CANCELLED)
		tmo__job_set_state(job, J_FINISHED_CANCELLED);
	else if (state == J_RUNNING_REPORTED)
		tmo__job_set_state(job, J_FINISHED_REPORTED);
	else
		tmo__job_set_state(job, J_FINISHED);
	return state != J_RUNNING;
}

/* Lets go of the job under the lock (*overran: its outcome was decided while it ran). Returns
 * whether this worker retires. */
static bool finish_job(struct tmo__worker *w, struct tmo_job *job, bool *overran)
{
	struct tmo__pool_state *p = w->pool;

	pthread_mutex_lock(&p->lock);
	*overran = let_go_locked(job);
	w->job = NULL;
	if (*overran)
		p->tied_up--;
	/* A worker freed from an overrun leaves if replacements took its place: if, without
	 * it, `threads` workers are still free of overruns. Counted now, under the lock, so
	 * that workers freed together do not all leave. */
	bool retire = *overran && p->alive - p->tied_up > p->threads;
	if (retire)
		p->alive--;
	pthread_mutex_unlock(&p->lock);
	return retire;
}

/* What is left of the job on this worker once it let go: a stray interrupt, a cancel's wake of
 * the helper, the helper's output (copied back only for a result in time). */
static void clean_up_job(struct tmo__worker *w, struct tmo_job *job, bool overran, timer_t *timer)
{
	if (job->_overrun == TMO_OVERRUN_INTERRUPT) {
		/*
		 * Disarm the timer. This system call is also the fence against a stale
		 * interrupt: a signal sent for this job (the timer, or a cancel while w->job
		 * was still this job) is delivered when the call returns, here, not in the
		 * next job's system calls.
		 */
		if (timer) {
			struct itimerspec off;
			memset(&off, 0, sizeof(off));
			timer_settime(*timer, 0, &off, NULL);
		} else {
			syscall(SYS_getpid);
		}
		if (tmo__pool_interrupted())
			stat_add(&w->pool->interrupts, 1);
	} else if (job->_overrun == TMO_OVERRUN_KILL) {
		uint64_t v;
		/* A cancel's wake for this job, if any, must not hit the next one. */
		while (read(w->helper.wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			;
		if (!overran && !job->_late && w->helper.out_len) {
			size_t n = w->helper.out_len < job->_out_cap ? w->helper.out_len
								     : job->_out_cap;
			memcpy(job->_out, w->helper.out, n);
			job->_out_len = n;
		}
	}
}

static void *worker_main(void *arg)
{
	struct tmo__worker *w = arg;
	struct tmo__pool_state *p = w->pool;
	timer_t timer = 0; /* set only with has_timer: zeroed for the compilers that cannot tell */
	bool has_timer = worker_setup(w, &timer);
	timer_t *own_timer = has_timer ? &timer : NULL;

	pthread_mutex_lock(&p->lock);
	w->timer = timer;
	w->has_timer = has_timer; /* the loop arms it, under the lock, to cancel a job */
	for (;;) {
		struct tmo_job *job = take_job_locked(p, w);
		if (!job)
			break;
		/* Room in the queue: jobs waiting on the loop's side can come in. */
		bool nudge = p->waiting && !p->room_signal;
		if (nudge)
			p->room_signal = true;
		pthread_mutex_unlock(&p->lock);
		if (nudge)
			wake_loop(p);

		int64_t res = run_job(w, job, own_timer);
		/* A result that came after the deadline does not beat it (see on_finished). */
		job->_late = job->_deadline != TMO_NEVER_NS && tmo_now() >= job->_deadline;
		bool overran;
		bool retire = finish_job(w, job, &overran);
		clean_up_job(w, job, overran, own_timer);
		job->_res = res;
		post_done(p, job); /* the job belongs to the loop again from here */

		pthread_mutex_lock(&p->lock);
		if (retire)
			break;
	}
	/* EXITED before the helper is stopped: the slot is free for a replacement at once (a
	 * replacement that found no slot would not be retried). The price: a replacement joins
	 * this thread under the lock on the loop's thread, and waits for the helper to die. */
	w->state = W_EXITED;
	pthread_mutex_unlock(&p->lock);

	tmo__helper_stop(&w->helper, &p->limits);
	if (has_timer)
		timer_delete(timer);
	return NULL;
}

/* ---- starting and stopping workers -------------------------------------------------------- */

int tmo__pool_spawn_locked(struct tmo__pool_state *p)
{
	struct tmo__worker *w = NULL;

	for (uint32_t i = 0; i < p->max_threads && !w; i++) {
		if (p->workers[i].state == W_EXITED) {
			pthread_join(p->workers[i].thread, NULL); /* it has left the lock for good */
			p->workers[i].state = W_FREE;
		}
		if (p->workers[i].state == W_FREE)
			w = &p->workers[i];
	}
	if (!w)
		return -EAGAIN;
	memset(w, 0, sizeof(*w));
	w->pool = p;
	int ret = tmo__helper_init(&w->helper);
	if (ret)
		return ret;

	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		tmo__helper_stop(&w->helper, &p->limits);
		return -ret;
	}
	w->state = W_ALIVE;
	p->alive++;
	return 0;
}

void tmo__pool_stop_threads(struct tmo__pool_state *p)
{
	bool started[TMO__POOL_MAX_THREADS];

	pthread_mutex_lock(&p->lock);
	p->quit = true;
	pthread_cond_broadcast(&p->cond);
	for (uint32_t i = 0; i < p->max_threads; i++)
		started[i] = p->workers[i].state != W_FREE;
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 0; i < p->max_threads; i++) {
		if (started[i])
			pthread_join(p->workers[i].thread, NULL);
		p->workers[i].state = W_FREE;
	}
}
