/*
 * tmo run's signals, as GNU timeout 9.1 has them: which it catches (catch_signals), and what its
 * cleanup() does with one, or with its own ALRM when a limit passes (on_signal): the command,
 * and without --foreground its process group, get the signal, then CONT. tmo reads the signals
 * it catches from a signalfd (sig_cb, run_loop.c) instead of running handlers.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <tmo/tmo.h>

#include "cli.h"
#include "run.h"

/* ---- catching them ------------------------------------------------------------------------ */

/* Catches `sig` as GNU timeout does (see catch_signals). */
static void catch_signal(struct run *r, int sig, const sigset_t *inherited)
{
	signal(sig, SIG_DFL);
	if (sig == SIGALRM || !sigismember(inherited, sig))
		sigaddset(&r->caught, sig);
}

/*
 * The signals, as GNU timeout 9.1 sets them up. It catches INT, QUIT, HUP, TERM, ALRM and the
 * -s signal; tmo blocks them and reads them from a signalfd instead. Their disposition is set
 * to the default so that none is discarded, and so that the command gets them at their
 * default, as after GNU's handlers and exec. As with GNU:
 *   - a signal the parent blocked stays blocked, so it is not forwarded (GNU waits in
 *     sigsuspend with the mask it inherited), except ALRM, which GNU unblocks for its timer;
 *   - TTIN and TTOU are ignored, even as the -s signal (GNU's SIG_IGN replaces its handler
 *     for them): tmo must not stop when a background child uses the tty;
 *   - the command inherits the parent's mask without CHLD: GNU unblocks CHLD before the fork,
 *     and ALRM after it, in itself only.
 * Stores the command's signal mask in *child_mask.
 */
void catch_signals(struct run *r, sigset_t *child_mask)
{
	static const int handled[] = { SIGALRM, SIGINT, SIGQUIT, SIGHUP, SIGTERM };
	sigset_t inherited;
	sigprocmask(SIG_BLOCK, NULL, &inherited);
	sigemptyset(&r->caught);
	sigemptyset(&r->ignored);
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		catch_signal(r, handled[i], &inherited);
	int t = r->term_signal;
	if (t > 0 && t != SIGKILL && t != SIGSTOP && t != SIGCHLD && t != SIGTTIN &&
	    t != SIGTTOU && !(r->nstreams && t == SIGPIPE))
		catch_signal(r, t, &inherited);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	signal(SIGCHLD, SIG_DFL); /* not SIG_IGN, which would reap the command for us */
	sigprocmask(SIG_BLOCK, &r->caught, NULL);
	*child_mask = inherited;
	sigdelset(child_mask, SIGCHLD);
}

/* ---- signals: GNU timeout's cleanup() ----------------------------------------------------- */

void kill_group_now(void)
{
	kill(0, SIGKILL); /* tmo is in the group: this is the end, as for GNU timeout */
}

/* GNU send_sig(0, sig): the process group, ignoring the signal ourselves. */
static void send_group(struct run *r, int sig)
{
	if (sig == SIGKILL && r->nstreams) {
		/* With -i the command's output would die with tmo: forward what is left first. */
		if (!r->group_kill_pending) {
			r->group_kill_pending = true;
			r->group_kill_cap = add_sat(tmo_now(), KILL_DRAIN_CAP_NS);
		}
		return;
	}
	if (sig > 0) {
		signal(sig, SIG_IGN);
		sigaddset(&r->ignored, sig);
	}
	kill(0, sig);
}

/* "2s", "0.3s": a duration in seconds, in integer arithmetic, so with '.' in every locale. */
static const char *format_secs(int64_t ns, char buf[32])
{
	int n = snprintf(buf, 32, "%lld", (long long)(ns / TMO_NSEC_PER_SEC));
	int64_t frac = ns % TMO_NSEC_PER_SEC;
	if (frac) {
		n += snprintf(buf + n, (size_t)(32 - n), ".%09lld", (long long)frac);
		while (buf[n - 1] == '0')
			buf[--n] = '\0';
	}
	snprintf(buf + n, (size_t)(32 - n), "s");
	return buf;
}

/* -v: GNU's line; for the idle limit, a line that names it (CI logs tell "silent" from "slow"). */
static void say_sending(const struct run *r, int sig, bool idle)
{
	char name[16], q[512], secs[32];
	const char *sig_name = cli_signal_name(sig, name);
	quote(r->command, q, sizeof(q));
	if (idle)
		msg("no output for %s (idle limit): sending signal %s to command %s",
		    format_secs(r->idle, secs), sig_name, q);
	else
		msg("sending signal %s to command %s", sig_name, q);
}

/* `sig` was caught (SIGALRM: a limit passed). */
void on_signal(struct run *r, int sig)
{
	bool idle = r->idle_fired;
	r->idle_fired = false;
	if (sig == SIGALRM) {
		r->timed_out = true;
		sig = r->term_signal;
	}
	if (r->reaped)
		return;
	if (r->kill_after) {
		/* As GNU: the KILL timer replaces the first one, and only the first signal arms it. */
		r->term_signal = SIGKILL;
		r->kill_at = add_sat(tmo_now(), r->kill_after);
		r->limits_armed = false;
		r->kill_after = 0;
	}
	if (r->verbose)
		say_sending(r, sig, idle);
	kill(r->pid, sig);
	if (!r->foreground) {
		send_group(r, sig);
		if (sig != SIGKILL && sig != SIGCONT) {
			kill(r->pid, SIGCONT);
			send_group(r, SIGCONT);
		}
	}
}
