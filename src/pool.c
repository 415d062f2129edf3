/*
 * The worker pool: a bounded queue of jobs under one mutex, worker threads, a lock-free list of
 * finished jobs, and the loop's side (deadlines in the loop's heap, callbacks, one wake-up
 * request on the ring).
 *
 * Who touches what:
 *   - the queue, worker slots, `tied_up`, `alive`, `waiting`: under `lock`;
 *   - a job's state: see the transition table in pool.h (workers move it under `lock` only);
 *   - the finished list `done` and the futex word: atomics (workers push, the loop takes all);
 *   - everything else about a job (callbacks, the wait and decided lists, `_flags`): the loop's
 *     thread only.
 * A job's life: start -> QUEUED (or WAITING on the loop's side when the queue is full and the
 * caller asked to wait) -> RUNNING on a worker -> FINISHED and pushed to `done` -> the loop
 * drains it and delivers. A deadline or cancel may decide the outcome first: an unstarted job
 * is then taken out and never runs (DECIDED); a running one is reported at once and released
 * when its worker lets go.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "container.h"
#include "hooks.h"
#include "list.h"
#include "pool.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX2_PRIVATE
#define FUTEX2_PRIVATE 128
#endif

#define DEFAULT_THREADS 4u
#define MAX_THREADS 1024u
#define DEFAULT_QUEUE 1024u
#define MAX_QUEUE (1u << 20)
#define DEFAULT_GRACE_NS TMO_NSEC_PER_SEC
#define DEFAULT_CHANNEL (64u * 1024)
#define MAX_CHANNEL (16u * 1024 * 1024)
#define INTERRUPT_REPEAT_NS (5 * TMO_NSEC_PER_MSEC)

/* The caller's TMO_JOB_* flags, all job->_flags holds. */
#define JOB_FLAGS ((unsigned)TMO_JOB_WAIT)

enum worker_state { W_FREE = 0, W_ALIVE, W_EXITED };

struct worker {
	struct tmo__pool_state *pool;
	pthread_t thread;
	pid_t tid;
	timer_t timer;       /* signals this thread (interrupt jobs); valid if has_timer */
	bool has_timer;
	struct tmo_job *job; /* under lock */
	uint8_t state;       /* under lock */
	struct tmo__helper helper;
};

struct tmo__pool_state {
	struct tmo_loop *loop;
	struct tmo__loop_state *st;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct tmo__list queue;   /* QUEUED jobs, by _link */
	uint32_t queued, queue_size;
	uint32_t sleepers;        /* workers waiting on cond */
	uint32_t waiting;         /* jobs on the loop's wait list (workers read it) */
	uint32_t alive, tied_up;  /* worker threads; ... running an already reported job */
	uint32_t threads, max_threads;
	bool quit;
	bool room_signal;         /* a worker told the loop there is room for waiting jobs */
	struct worker *workers;   /* max_threads slots */

	/* Finished jobs, newest first, linked by _done_next; and the wake-up. Not a tmo__list:
	 * workers push onto it without the lock (a compare-and-swap on the one head pointer) and
	 * the loop takes it whole with one exchange, which a two-pointer list cannot do lock-free;
	 * and a job cancelled while it ran is on it and on the decided list (_link) at once. */
	struct tmo_job *done;
	uint32_t futex_word;
	int efd;
	uint64_t efd_buf;
	enum tmo_pool_wake wake;

	/* The loop's side. */
	struct tmo__list wait;    /* WAITING jobs, in order, by _link */
	struct tmo__list decided; /* DECIDED jobs and running ones cancelled, by _link */
	struct tmo__deferred deferred; /* on the loop's deferred queue: the loop owes it work */
	bool wake_in_flight;      /* the wake-up request is in the kernel (counts as active) */
	bool wake_cancel_sent;
	bool shutdown;
	uint32_t dispatching;     /* callbacks of this pool running now: no close meanwhile */
	uint32_t busy_jobs;

	int sig;                  /* interrupt signal, or 0 */
	struct tmo__helper_limits limits;
	struct tmo_pool_stats stats;
	/* Bumped by workers outside the lock: atomics. */
	uint32_t helpers_alive;
	uint64_t helpers_started, helpers_killed, helpers_sigkilled, interrupts;
};

/* The pool whose job the current thread runs: tmo_pool_close must not be called from it. */
static _Thread_local struct tmo__pool_state *running_in;

/* ---- the interrupt signal's handler, shared by every pool using the signal ---------------- */

static pthread_mutex_t handlers_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t handler_refs[NSIG];
static struct sigaction handler_saved[NSIG];

/* Signals this worker received for its current job (reset per job). Initial-exec TLS: a
 * signal handler must not be the first to touch a thread's dynamic TLS. */
static _Thread_local volatile sig_atomic_t interrupts_received
	__attribute__((tls_model("initial-exec")));

/* Its purpose is that a blocking system call returns EINTR; it only counts. */
static void on_interrupt(int sig)
{
	(void)sig;
	interrupts_received = interrupts_received + 1;
}

static int handler_acquire(int sig)
{
	int ret = 0;
	pthread_mutex_lock(&handlers_lock);
	if (handler_refs[sig] == 0) {
		struct sigaction old, sa;
		sigaction(sig, NULL, &old);
		bool foreign = (old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL
			       : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN &&
					 old.sa_handler != on_interrupt;
		if (foreign) {
			ret = -EBUSY;
		} else {
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = on_interrupt;
			sigemptyset(&sa.sa_mask);
			sa.sa_flags = 0; /* no SA_RESTART: that is the point */
			if (sigaction(sig, &sa, NULL) < 0)
				ret = -errno;
			else
				handler_saved[sig] = old;
		}
	}
	if (!ret)
		handler_refs[sig]++;
	pthread_mutex_unlock(&handlers_lock);
	return ret;
}

static void handler_release(int sig)
{
	pthread_mutex_lock(&handlers_lock);
	if (--handler_refs[sig] == 0)
		sigaction(sig, &handler_saved[sig], NULL);
	pthread_mutex_unlock(&handlers_lock);
}

/* ---- small helpers ------------------------------------------------------------------------ */

static void stat_add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

int64_t tmo__job_run_syscall(struct tmo_job *job)
{
	const long *a = job->_sys_args;
	long r = syscall(job->_sys_nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	return r < 0 ? -(int64_t)errno : r;
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

/* ---- workers ------------------------------------------------------------------------------ */

static void enqueue_locked(struct tmo__pool_state *p, struct tmo_job *job);

static struct tmo_job *job_of(struct tmo__link *link)
{
	return tmo__container_of(link, struct tmo_job, _link);
}

/* Takes the first job of a queue that is not empty. */
static struct tmo_job *pop_locked(struct tmo__pool_state *p)
{
	p->queued--;
	return job_of(tmo__list_pop_front(&p->queue));
}

static void unlink_queued_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__list_remove(&p->queue, &job->_link);
	p->queued--;
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

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct tmo__pool_state *p = w->pool;
	timer_t timer = 0; /* set only with has_timer: zeroed for the compilers that cannot tell */
	bool has_timer = false;

	w->tid = (pid_t)syscall(SYS_gettid);
	running_in = p;
	/* The creator blocked every signal; only the interrupt signal is let in. */
	if (p->sig) {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, p->sig);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		struct sigevent sev;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev.sigev_signo = p->sig;
		sev.sigev_notify_thread_id = w->tid;
		has_timer = timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0;
	}

	pthread_mutex_lock(&p->lock);
	w->timer = timer;
	w->has_timer = has_timer; /* the loop arms it, under the lock, to cancel a job */
	for (;;) {
		while (tmo__list_empty(&p->queue) && !p->quit) {
			p->sleepers++;
			pthread_cond_wait(&p->cond, &p->lock);
			p->sleepers--;
		}
		if (tmo__list_empty(&p->queue))
			break; /* quitting, nothing left */
		struct tmo_job *job = pop_locked(p);
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
		/* Room in the queue: jobs waiting on the loop's side can come in. */
		bool nudge = p->waiting && !p->room_signal;
		if (nudge)
			p->room_signal = true;
		pthread_mutex_unlock(&p->lock);
		if (nudge)
			wake_loop(p);

		uint8_t overrun = job->_overrun;
		int64_t res;
		interrupts_received = 0;
		if (overrun == TMO_OVERRUN_KILL) {
			struct tmo__helper_events ev = { 0 };
			res = tmo__helper_run(&w->helper, &p->limits, job, &ev);
			stat_add(&p->helpers_started, ev.started);
			stat_add(&p->helpers_killed, ev.killed);
			stat_add(&p->helpers_sigkilled, ev.sigkilled);
		} else {
			res = run_in_thread(job, overrun == TMO_OVERRUN_INTERRUPT && has_timer ? &timer
											       : NULL);
		}
		/* A result that came after the deadline does not beat it (see on_finished). */
		job->_late = job->_deadline != TMO_NEVER_NS && tmo_now() >= job->_deadline;

		pthread_mutex_lock(&p->lock);
		bool overran = let_go_locked(job);
		w->job = NULL;
		if (overran)
			p->tied_up--;
		/* A worker freed from an overrun leaves if replacements took its place: if, without
		 * it, `threads` workers are still free of overruns. Counted now, under the lock, so
		 * that workers freed together do not all leave. */
		bool retire = overran && p->alive - p->tied_up > p->threads;
		if (retire)
			p->alive--;
		pthread_mutex_unlock(&p->lock);

		if (overrun == TMO_OVERRUN_INTERRUPT) {
			/*
			 * Disarm the timer. This system call is also the fence against a stale
			 * interrupt: a signal sent for this job (the timer, or a cancel while w->job
			 * was still this job) is delivered when the call returns, here, not in the
			 * next job's system calls.
			 */
			if (has_timer) {
				struct itimerspec off;
				memset(&off, 0, sizeof(off));
				timer_settime(timer, 0, &off, NULL);
			} else {
				syscall(SYS_getpid);
			}
			if (interrupts_received)
				stat_add(&p->interrupts, 1);
		} else if (overrun == TMO_OVERRUN_KILL) {
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
		job->_res = res;
		post_done(p, job); /* the job belongs to the loop again from here */

		pthread_mutex_lock(&p->lock);
		if (retire)
			break;
	}
	w->state = W_EXITED;
	pthread_mutex_unlock(&p->lock);

	tmo__helper_stop(&w->helper, &p->limits);
	if (has_timer)
		timer_delete(timer);
	return NULL;
}

/* Starts a worker in a free slot. Called with the lock held. */
static int spawn_locked(struct tmo__pool_state *p)
{
	struct worker *w = NULL;

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

/* Workers tied up by overrunning jobs are replaced, up to max_threads, while jobs wait for
 * a worker that no idle one will take. Called with the lock held. */
static void maybe_replace_locked(struct tmo__pool_state *p)
{
	while (p->tied_up && p->alive - p->tied_up < p->threads && p->alive < p->max_threads &&
	       p->queued > p->sleepers && !p->quit) {
		if (spawn_locked(p))
			return;
		p->stats.replacements++;
	}
}

static void enqueue_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__list_push_back(&p->queue, &job->_link);
	p->queued++;
	tmo__job_set_state(job, J_QUEUED);
	if (p->sleepers)
		pthread_cond_signal(&p->cond);
	maybe_replace_locked(p);
}

/* ---- the loop's side ---------------------------------------------------------------------- */

static void need_attention(struct tmo__pool_state *p)
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
		need_attention(p); /* the wake-up request is no longer needed */
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
	need_attention(p);
}

/* An unstarted job's outcome is decided (a deadline passed at start, a cancel, a shutdown):
 * it never runs; the callback fires from the loop's next pass. */
static void decide_unstarted(struct tmo__pool_state *p, struct tmo_job *job, int64_t res)
{
	tmo__job_set_state(job, J_DECIDED);
	job->_res = res;
	tmo__timer_disarm(p->st, &job->_timer);
	push_decided(p, job);
}

static void unlink_waiting(struct tmo__pool_state *p, struct tmo_job *job)
{
	tmo__list_remove(&p->wait, &job->_link);
	pthread_mutex_lock(&p->lock);
	p->waiting--;
	pthread_mutex_unlock(&p->lock);
}

/* Stops a running job by its overrun level: the signal now (interrupt), the helper killed
 * now (kill); abandoned work is only flagged. Called with the lock held. */
static void stop_running_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	struct worker *w = job->_worker;

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

/* A running job's outcome is decided before its worker lets go: RUNNING -> `state`
 * (RUNNING_REPORTED or RUNNING_CANCELLED), and its worker counts as tied up. Called with the
 * lock held. */
static void tie_up_locked(struct tmo__pool_state *p, struct tmo_job *job,
			  enum tmo__job_state state)
{
	tmo__job_set_state(job, state);
	p->tied_up++;
	maybe_replace_locked(p);
}

/* Cancels a running job (tmo_job_cancel, tmo_pool_shutdown): its worker is stopped by the
 * job's overrun level and -ECANCELED waits on the decided list. Called with the lock held. */
static void cancel_running_locked(struct tmo__pool_state *p, struct tmo_job *job)
{
	stop_running_locked(p, job);
	tie_up_locked(p, job, J_RUNNING_CANCELLED);
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
		unlink_waiting(p, job);
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
		need_attention(p); /* room for a waiting job */
		return;
	}
	if (state == J_QUEUED) {
		unlink_queued_locked(p, job);
		pthread_mutex_unlock(&p->lock);
		p->stats.expired_queued++;
		deliver(p, job, -ETIME, true);
		need_attention(p); /* room for a waiting job */
		return;
	}
	if (state != J_RUNNING) {
		/* Finished just now: its own result, already on its way, decides. */
		pthread_mutex_unlock(&p->lock);
		return;
	}
	/* An interrupt job's worker got its signal from its own timer at this deadline; a kill
	 * job's worker kills its helper by itself. */
	tie_up_locked(p, job, J_RUNNING_REPORTED);
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
		tmo__job_set_state(job, J_DRAINED_CANCELLED); /* the pending -ECANCELED releases it */
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
		struct tmo_job *job = job_of(link);
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
		enqueue_locked(p, job_of(tmo__list_pop_front(&p->wait)));
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
			need_attention(p); /* no SQE: retry on the next pass */
			break;
		}
		if (armed > 0)
			break;
		drain(p); /* results or room came first */
	}
	if (!p->busy_jobs && p->wake_in_flight && !p->wake_cancel_sent) {
		struct io_uring_sqe *sqe = tmo__get_sqes(p->st, 1);
		if (sqe) {
			io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)p | TMO__TAG_POOL, 0);
			/* Its own completion is never read: the pool may be gone by then. */
			io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)p | TMO__TAG_IGNORED);
			p->wake_cancel_sent = true;
		} else {
			need_attention(p);
		}
	}
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

/* ---- the API ------------------------------------------------------------------------------ */

static int check_options(const struct tmo_pool_options *o, struct tmo__loop_state *st,
			 struct tmo__pool_state *p)
{
	p->threads = o->threads ? o->threads : DEFAULT_THREADS;
	p->max_threads = o->max_threads ? o->max_threads : 2 * p->threads;
	p->queue_size = o->queue_size ? o->queue_size : DEFAULT_QUEUE;
	if (p->threads > MAX_THREADS || p->max_threads > MAX_THREADS ||
	    p->max_threads < p->threads || p->queue_size > MAX_QUEUE || o->kill_grace_ns < 0 ||
	    o->max_input > MAX_CHANNEL || o->max_output > MAX_CHANNEL)
		return -EINVAL;
	if (o->interrupt_signal == 0)
		p->sig = SIGRTMIN + 3;
	else if (o->interrupt_signal == -1)
		p->sig = 0;
	else if (o->interrupt_signal > 0 && o->interrupt_signal < NSIG &&
		 o->interrupt_signal != SIGKILL && o->interrupt_signal != SIGSTOP)
		p->sig = o->interrupt_signal;
	else
		return -EINVAL;
	p->limits.kill_grace_ns = o->kill_grace_ns ? o->kill_grace_ns : DEFAULT_GRACE_NS;
	p->limits.max_input = o->max_input ? o->max_input : DEFAULT_CHANNEL;
	p->limits.max_output = o->max_output ? o->max_output : DEFAULT_CHANNEL;
	p->limits.alive = &p->helpers_alive;
	switch (o->wake) {
	case TMO_POOL_WAKE_AUTO:
		p->wake = tmo__has(st, TMO_FEAT_FUTEX_WAIT) ? TMO_POOL_WAKE_FUTEX
							    : TMO_POOL_WAKE_EVENTFD;
		return 0;
	case TMO_POOL_WAKE_FUTEX:
		if (!tmo__has(st, TMO_FEAT_FUTEX_WAIT))
			return -EINVAL;
		p->wake = o->wake;
		return 0;
	case TMO_POOL_WAKE_EVENTFD:
		p->wake = o->wake;
		return 0;
	}
	return -EINVAL;
}

static void stop_threads(struct tmo__pool_state *p)
{
	bool started[MAX_THREADS];

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

static void free_state(struct tmo__pool_state *p)
{
	if (p->sig)
		handler_release(p->sig);
	if (p->efd >= 0)
		close(p->efd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->workers);
	free(p);
}

int tmo_pool_init(struct tmo_pool *pool, struct tmo_loop *loop,
		  const struct tmo_pool_options *options)
{
	static const struct tmo_pool_options defaults;

	if (!pool)
		return -EINVAL;
	pool->_state = NULL;
	if (!loop || !loop->_state)
		return -EINVAL;
	struct tmo__loop_state *st = tmo__state(loop);
	struct tmo__pool_state *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->efd = -1;
	int ret = check_options(options ? options : &defaults, st, p);
	if (ret) {
		free(p);
		return ret;
	}
	p->loop = loop;
	p->st = st;
	p->workers = calloc(p->max_threads, sizeof(*p->workers));
	if (!p->workers) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	int sig = p->sig;
	p->sig = 0; /* nothing to release yet */
	if (p->wake == TMO_POOL_WAKE_EVENTFD) {
		p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->efd < 0) {
			ret = -errno;
			goto fail;
		}
	}
	if (sig) {
		ret = handler_acquire(sig);
		if (ret)
			goto fail;
		p->sig = sig;
	}
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < p->threads && !ret; i++)
		ret = spawn_locked(p);
	pthread_mutex_unlock(&p->lock);
	if (ret) {
		stop_threads(p);
		goto fail;
	}
	pool->_state = p;
	st->attached++;
	return 0;
fail:
	free_state(p);
	return ret;
}

int tmo_pool_shutdown(struct tmo_pool *pool)
{
	if (!pool || !pool->_state)
		return -EINVAL;
	struct tmo__pool_state *p = pool->_state;
	if (p->shutdown)
		return -EALREADY;
	p->shutdown = true;

	while (!tmo__list_empty(&p->wait)) {
		struct tmo_job *job = job_of(p->wait.first);
		unlink_waiting(p, job);
		__atomic_store_n(&job->_cancel, 1, __ATOMIC_SEQ_CST);
		decide_unstarted(p, job, -ECANCELED);
	}
	pthread_mutex_lock(&p->lock);
	while (!tmo__list_empty(&p->queue)) {
		struct tmo_job *job = pop_locked(p);
		__atomic_store_n(&job->_cancel, 1, __ATOMIC_SEQ_CST);
		decide_unstarted(p, job, -ECANCELED);
	}
	for (uint32_t i = 0; i < p->max_threads; i++) {
		struct worker *w = &p->workers[i];
		struct tmo_job *job = w->state == W_ALIVE ? w->job : NULL;
		uint8_t state = job ? tmo__job_state(job) : J_IDLE;
		if (state == J_RUNNING)
			cancel_running_locked(p, job);
		else if (tmo__job_running(state))
			stop_running_locked(p, job); /* reported already: stopped again all the same */
	}
	pthread_mutex_unlock(&p->lock);
	need_attention(p);
	return 0;
}

int tmo_pool_close(struct tmo_pool *pool)
{
	if (!pool || !pool->_state)
		return -EINVAL;
	struct tmo__pool_state *p = pool->_state;
	if (running_in == p || p->busy_jobs || p->wake_in_flight || p->dispatching)
		return -EBUSY;
	tmo__undefer(p->st, &p->deferred); /* a callback may close it while the loop owes it */
	stop_threads(p);
	p->st->attached--;
	free_state(p);
	pool->_state = NULL;
	return 0;
}

int tmo_pool_get_stats(const struct tmo_pool *pool, struct tmo_pool_stats *stats)
{
	if (!pool || !pool->_state || !stats)
		return -EINVAL;
	struct tmo__pool_state *p = pool->_state;
	pthread_mutex_lock(&p->lock);
	*stats = p->stats;
	stats->threads = p->alive;
	stats->tied_up = p->tied_up;
	stats->queued = p->queued;
	stats->waiting = p->waiting;
	stats->helpers = __atomic_load_n(&p->helpers_alive, __ATOMIC_RELAXED);
	stats->helpers_started = __atomic_load_n(&p->helpers_started, __ATOMIC_RELAXED);
	stats->helpers_killed = __atomic_load_n(&p->helpers_killed, __ATOMIC_RELAXED);
	stats->helpers_sigkilled = __atomic_load_n(&p->helpers_sigkilled, __ATOMIC_RELAXED);
	stats->interrupts = __atomic_load_n(&p->interrupts, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Not busy: never prepared, or idle. */
static bool job_idle(const struct tmo_job *job)
{
	return tmo__job_state(job) <= J_IDLE;
}

int tmo_job_prep(struct tmo_job *job, tmo_job_fn fn)
{
	if (!job || !fn)
		return -EINVAL;
	if (!job_idle(job))
		return -EBUSY; /* a worker or the loop still holds it: wiping it would lose it */
	void *data = job->data;
	memset(job, 0, sizeof(*job));
	job->data = data;
	job->_fn = fn;
	job->_timer.kind = TMO__TIMER_JOB;
	tmo__job_set_state(job, J_IDLE);
	return 0;
}

int tmo_job_prep_syscall(struct tmo_job *job, long nr, const long args[6])
{
	int ret = tmo_job_prep(job, tmo__job_run_syscall);

	if (ret)
		return ret;
	job->_sys_nr = nr;
	if (args)
		memcpy(job->_sys_args, args, sizeof(job->_sys_args));
	return 0;
}

static int check_settable(const struct tmo_job *job)
{
	if (!job || tmo__job_state(job) == J_NEW)
		return -EINVAL;
	return job_idle(job) ? 0 : -EBUSY;
}

int tmo_job_set_overrun(struct tmo_job *job, enum tmo_overrun overrun)
{
	int ret = check_settable(job);
	if (ret)
		return ret;
	if (overrun != TMO_OVERRUN_ABANDON && overrun != TMO_OVERRUN_INTERRUPT &&
	    overrun != TMO_OVERRUN_KILL)
		return -EINVAL;
	job->_overrun = (uint8_t)overrun;
	return 0;
}

int tmo_job_set_flags(struct tmo_job *job, unsigned flags)
{
	int ret = check_settable(job);
	if (ret)
		return ret;
	if (flags & ~JOB_FLAGS)
		return -EINVAL;
	job->_flags = (uint8_t)flags;
	return 0;
}

int tmo_job_set_release(struct tmo_job *job, tmo_job_release_cb release)
{
	int ret = check_settable(job);
	if (ret)
		return ret;
	job->_release = release;
	return 0;
}

int tmo_job_set_io(struct tmo_job *job, const void *in, size_t in_len, void *out, size_t out_cap)
{
	int ret = check_settable(job);
	if (ret)
		return ret;
	if ((!in && in_len) || (!out && out_cap))
		return -EINVAL;
	job->_in = in;
	job->_in_len = in_len;
	job->_out = out;
	job->_out_cap = out_cap;
	return 0;
}

int tmo_job_start(struct tmo_pool *pool, struct tmo_job *job, tmo_deadline until, tmo_job_cb cb)
{
	int64_t deadline = tmo__deadline_in(until);

	if (!pool || !pool->_state || !job || !cb || deadline < 0)
		return -EINVAL;
	if (tmo__job_state(job) == J_NEW || !job->_fn)
		return -EINVAL;
	if (!job_idle(job))
		return -EBUSY;
	struct tmo__pool_state *p = pool->_state;
	if (p->shutdown)
		return -ESHUTDOWN;
	if (job->_overrun == TMO_OVERRUN_INTERRUPT && !p->sig)
		return -EOPNOTSUPP;
	if (job->_overrun == TMO_OVERRUN_KILL && job->_in_len > p->limits.max_input)
		return -EMSGSIZE;

	bool expired = deadline != TMO_NEVER_NS && deadline <= tmo_now();
	bool room = true;
	if (!expired) {
		/* Only the loop's thread adds to the queue, so room seen here stays. */
		pthread_mutex_lock(&p->lock);
		room = p->queued < p->queue_size && tmo__list_empty(&p->wait);
		if (!room && !(job->_flags & TMO_JOB_WAIT))
			p->stats.refused++;
		pthread_mutex_unlock(&p->lock);
		if (!room && !(job->_flags & TMO_JOB_WAIT))
			return -EAGAIN;
	}

	job->_pool = p;
	job->_cb = cb;
	job->_deadline = deadline;
	job->_res = 0;
	job->_out_len = 0;
	job->_worker = NULL;
	job->_late = 0;
	job->_link = (struct tmo__link){ 0 };
	job->_done_next = NULL;
	__atomic_store_n(&job->_cancel, 0, __ATOMIC_SEQ_CST);
	p->busy_jobs++;
	p->st->active++;
	p->stats.started++;
	need_attention(p);

	if (expired) {
		decide_unstarted(p, job, -ETIME);
		return 0;
	}
	if (deadline != TMO_NEVER_NS)
		tmo__timer_arm(p->st, &job->_timer, deadline);
	pthread_mutex_lock(&p->lock);
	if (room) {
		enqueue_locked(p, job);
	} else {
		tmo__job_set_state(job, J_WAITING);
		tmo__list_push_back(&p->wait, &job->_link);
		p->waiting++;
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int tmo_job_cancel(struct tmo_job *job)
{
	if (!job || !job->_pool)
		return -EINVAL;
	struct tmo__pool_state *p = job->_pool;
	uint8_t state = tmo__job_state(job);

	if (state != J_WAITING && state != J_QUEUED && state != J_RUNNING && state != J_FINISHED)
		return -EALREADY; /* idle, or its outcome is decided or delivered */
	__atomic_store_n(&job->_cancel, 1, __ATOMIC_SEQ_CST);
	if (state == J_WAITING) {
		unlink_waiting(p, job);
		decide_unstarted(p, job, -ECANCELED);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	state = tmo__job_state(job);
	if (state == J_QUEUED) {
		unlink_queued_locked(p, job);
		pthread_mutex_unlock(&p->lock);
		decide_unstarted(p, job, -ECANCELED);
		return 0;
	}
	if (state != J_RUNNING) {
		pthread_mutex_unlock(&p->lock);
		return -EALREADY; /* finished: its result decides */
	}
	cancel_running_locked(p, job);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

bool tmo_job_busy(const struct tmo_job *job)
{
	return job && !job_idle(job);
}

tmo_deadline tmo_job_deadline(const struct tmo_job *job)
{
	return tmo__deadline_out(job ? job->_deadline : TMO_NEVER_NS);
}

bool tmo_job_cancelled(const struct tmo_job *job)
{
	if (!job)
		return false;
	return __atomic_load_n(&job->_cancel, __ATOMIC_RELAXED) ||
	       (job->_deadline != TMO_NEVER_NS && tmo_now() >= job->_deadline);
}

const void *tmo_job_input(const struct tmo_job *job, size_t *len)
{
	if (len)
		*len = job ? job->_in_len : 0;
	return job ? job->_in : NULL;
}

void *tmo_job_output(struct tmo_job *job, size_t *cap)
{
	if (cap)
		*cap = job ? job->_out_cap : 0;
	return job ? job->_out : NULL;
}

int tmo_job_set_output_len(struct tmo_job *job, size_t len)
{
	if (!job)
		return -EINVAL;
	if (len > job->_out_cap)
		return -EMSGSIZE;
	job->_out_len = len;
	return 0;
}

size_t tmo_job_output_len(const struct tmo_job *job)
{
	return job ? job->_out_len : 0;
}
