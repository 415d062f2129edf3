/*
 * The worker pool's API: tmo_pool_init/shutdown/close/get_stats and tmo_job_*. The pool's other
 * parts are in pool_worker.c (threads and the queue), pool_loop.c (the loop's side: deadlines,
 * callbacks, the wake-up), pool_signals.c (the interrupt signal's handler) and pool_helper.c
 * (helper processes); src/pool.h has what they share, and a job's life as a transition table.
 * A job's life in short: start -> QUEUED (or WAITING on the loop's side when the queue is full
 * and the caller asked to wait) -> RUNNING on a worker -> FINISHED and pushed to `done` -> the
 * loop drains it and delivers. A deadline or cancel may decide the outcome first: an unstarted
 * job is then taken out and never runs (DECIDED); a running one is reported at once and released
 * when its worker lets go.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pool.h"

#define DEFAULT_THREADS 4u
#define DEFAULT_QUEUE 1024u
#define MAX_QUEUE (1u << 20)
#define DEFAULT_GRACE_NS TMO_NSEC_PER_SEC
#define DEFAULT_CHANNEL (64u * 1024)
#define MAX_CHANNEL (16u * 1024 * 1024)

/* The caller's TMO_JOB_* flags, all job->_flags holds. */
#define JOB_FLAGS ((unsigned)TMO_JOB_WAIT)

int64_t tmo__job_run_syscall(struct tmo_job *job)
{
	const long *a = job->_sys_args;
	long r = syscall(job->_sys_nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	return r < 0 ? -(int64_t)errno : r;
}

static int check_options(const struct tmo_pool_options *o, struct tmo__loop_state *st,
			 struct tmo__pool_state *p)
{
	p->threads = o->threads ? o->threads : DEFAULT_THREADS;
	p->max_threads = o->max_threads ? o->max_threads : 2 * p->threads;
	p->queue_size = o->queue_size ? o->queue_size : DEFAULT_QUEUE;
	if (p->threads > TMO__POOL_MAX_THREADS || p->max_threads > TMO__POOL_MAX_THREADS ||
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

static void free_state(struct tmo__pool_state *p)
{
	if (p->sig)
		tmo__pool_signal_release(p->sig);
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
		ret = tmo__pool_signal_acquire(sig);
		if (ret)
			goto fail;
		p->sig = sig;
	}
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < p->threads && !ret; i++)
		ret = tmo__pool_spawn_locked(p);
	pthread_mutex_unlock(&p->lock);
	if (ret) {
		tmo__pool_stop_threads(p);
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
		struct tmo_job *job = tmo__job_of_link(p->wait.first);
		tmo__pool_unlink_waiting(p, job);
		__atomic_store_n(&job->_cancel, 1, __ATOMIC_SEQ_CST);
		tmo__pool_decide_unstarted(p, job, -ECANCELED);
	}
	pthread_mutex_lock(&p->lock);
	while (!tmo__list_empty(&p->queue)) {
		struct tmo_job *job = tmo__pool_pop_locked(p);
		__atomic_store_n(&job->_cancel, 1, __ATOMIC_SEQ_CST);
		tmo__pool_decide_unstarted(p, job, -ECANCELED);
	}
	for (uint32_t i = 0; i < p->max_threads; i++) {
		struct tmo__worker *w = &p->workers[i];
		struct tmo_job *job = w->state == W_ALIVE ? w->job : NULL;
		uint8_t state = job ? tmo__job_state(job) : J_IDLE;
		if (state == J_RUNNING)
			tmo__pool_cancel_running_locked(p, job);
		else if (tmo__job_running(state)) /* reported already: stopped all the same */
			tmo__pool_stop_running_locked(p, job);
	}
	pthread_mutex_unlock(&p->lock);
	tmo__pool_need_attention(p);
	return 0;
}

int tmo_pool_close(struct tmo_pool *pool)
{
	if (!pool || !pool->_state)
		return -EINVAL;
	struct tmo__pool_state *p = pool->_state;
	if (tmo__pool_runs_here(p) || p->busy_jobs || p->wake_in_flight || p->dispatching)
		return -EBUSY;
	tmo__undefer(p->st, &p->deferred); /* a callback may close it while the loop owes it */
	tmo__pool_stop_threads(p);
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
	tmo__pool_need_attention(p);

	if (expired) {
		tmo__pool_decide_unstarted(p, job, -ETIME);
		return 0;
	}
	if (deadline != TMO_NEVER_NS)
		tmo__timer_arm(p->st, &job->_timer, deadline);
	pthread_mutex_lock(&p->lock);
	if (room)
		tmo__pool_enqueue_locked(p, job);
	else
		tmo__pool_add_waiting_locked(p, job);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int tmo_job_cancel(struct tmo_job *job)
{
	if (!job || !job->_pool)
		return -EINVAL;
	struct tmo__pool_state *p = job->_pool;
	uint8_t state = tmo__job_state(job);

	if (state != J_WAITING && state != J_QUEUED && state != J_RUNNING)
		return -EALREADY; /* idle, finished, or its outcome is decided or delivered */
	/* The stop request (_cancel) is set only once the cancel is sure to win: set before the
	 * check, a function that returned meanwhile would see itself cancelled while its own
	 * result stands. */
	if (state == J_WAITING) {
		__atomic_store_n(&job->_cancel, 1, __ATOMIC_SEQ_CST);
		tmo__pool_unlink_waiting(p, job);
		tmo__pool_decide_unstarted(p, job, -ECANCELED);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	state = tmo__job_state(job);
	if (state == J_QUEUED) {
		__atomic_store_n(&job->_cancel, 1, __ATOMIC_SEQ_CST);
		tmo__pool_unlink_queued_locked(p, job);
		pthread_mutex_unlock(&p->lock);
		tmo__pool_decide_unstarted(p, job, -ECANCELED);
		return 0;
	}
	if (state != J_RUNNING) {
		pthread_mutex_unlock(&p->lock);
		return -EALREADY; /* finished: its result decides */
	}
	tmo__pool_cancel_running_locked(p, job); /* sets _cancel: the function may poll it */
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
