/*
 * The interrupt signal's handler (TMO_OVERRUN_INTERRUPT), shared by every pool of the process
 * that uses the same signal: installed by the first, put back as it was by the last. The handler
 * only counts, per thread: its purpose is that a blocking system call returns EINTR.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "pool.h"

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

int tmo__pool_signal_acquire(int sig)
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

void tmo__pool_signal_release(int sig)
{
	pthread_mutex_lock(&handlers_lock);
	if (--handler_refs[sig] == 0)
		sigaction(sig, &handler_saved[sig], NULL);
	pthread_mutex_unlock(&handlers_lock);
}

void tmo__pool_interrupts_reset(void)
{
	interrupts_received = 0;
}

bool tmo__pool_interrupted(void)
{
	return interrupts_received != 0;
}
