/* Parsing what the command line gives: durations and signals as GNU timeout reads them. */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <tmo/clock.h>

#include "cli.h"

/* strtod(3) in the C locale, whatever the process's locale: '.' is the decimal point. */
static double c_strtod(const char *text, char **end)
{
	static locale_t c_locale;
	if (!c_locale)
		c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!c_locale) {
		*end = (char *)text; /* no C locale object: nothing read this way */
		return 0;
	}
	return strtod_l(text, end, c_locale);
}

/*
 * As gnulib's cl_strtod, which GNU timeout reads durations with: strtod in the current locale
 * (the caller's setlocale), and when that stops before the end, in the C locale too; the
 * longer reading wins, the current locale's on a tie. So "0,3" reads under fr_FR.UTF-8, and
 * "0.3" under every locale.
 */
static double locale_strtod(const char *text, char **end)
{
	double v = strtod(text, end);
	if (**end) {
		char *c_end;
		double c = c_strtod(text, &c_end);
		if (c_end > *end) {
			v = c;
			*end = c_end;
		}
	}
	return v;
}

/*
 * As GNU timeout (coreutils 9.1, parse_duration): whatever strtod(3) reads (leading blanks,
 * a sign, hexadecimal, "inf"; an overflow saturates, an underflow gives 0), in the current
 * locale or the C locale (locale_strtod), then at most one suffix character. Anything below
 * zero or NaN is refused ("-0" is zero, as there).
 */
bool cli_parse_duration(const char *text, int64_t *ns)
{
	if (!text || !ns)
		return false;
	char *end;
	double v = locale_strtod(text, &end);
	if (end == text || !(v >= 0))
		return false;
	double unit = 1;
	if (*end) {
		if (end[1])
			return false;
		switch (*end) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		default: return false;
		}
	}
	double total = ceil(v * unit * (double)TMO_NSEC_PER_SEC);
	if (!(total < 9.2e18))
		*ns = INT64_MAX;
	else if (v > 0 && total < 1)
		*ns = 1; /* a positive duration is never "no limit" */
	else
		*ns = (int64_t)total;
	return true;
}

/* gnulib's sig2str table: names with their aliases (the first one per number is the name). */
static const struct {
	const char *name;
	int sig;
} sig_names[] = {
	{ "EXIT", 0 },
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL },
	{ "TRAP", SIGTRAP }, { "ABRT", SIGABRT }, { "IOT", SIGIOT }, { "BUS", SIGBUS },
	{ "FPE", SIGFPE }, { "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
	{ "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CLD", SIGCHLD }, { "CONT", SIGCONT },
	{ "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU },
	{ "URG", SIGURG }, { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM },
	{ "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO }, { "POLL", SIGPOLL },
	{ "PWR", SIGPWR }, { "SYS", SIGSYS },
};

/* gnulib str2sig on an upper-cased name without "SIG": -1 if unknown. */
static int str2sig(const char *name)
{
	if (isdigit((unsigned char)*name)) {
		char *end;
		errno = 0;
		long n = strtol(name, &end, 10);
		return *end || errno || n >= NSIG ? -1 : (int)n;
	}
	for (size_t i = 0; i < sizeof(sig_names) / sizeof(sig_names[0]); i++)
		if (!strcasecmp(sig_names[i].name, name))
			return sig_names[i].sig;
	int rtmin = SIGRTMIN, rtmax = SIGRTMAX;
	char *end;
	if (!strncasecmp(name, "RTMIN", 5)) {
		long n = strtol(name + 5, &end, 10);
		if (!*end && 0 <= n && n <= rtmax - rtmin)
			return rtmin + (int)n;
	} else if (!strncasecmp(name, "RTMAX", 5)) {
		long n = strtol(name + 5, &end, 10);
		if (!*end && rtmin - rtmax <= n && n <= 0)
			return rtmax + (int)n;
	}
	return -1;
}

/* True if gnulib's sig2str names `sig` (GNU timeout refuses the others). */
static bool sig_named(int sig)
{
	if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		return true;
	for (size_t i = 0; i < sizeof(sig_names) / sizeof(sig_names[0]); i++)
		if (sig_names[i].sig == sig)
			return true;
	return false;
}

/*
 * As GNU timeout (gnulib operand2sig): a number (an exit status such as 137 or 265 names the
 * signal that gives it), or a name, case-insensitive, with or without "SIG"; "EXIT" and 0 are
 * the null signal. The result must be a signal sig2str names.
 */
int cli_parse_signal(const char *text)
{
	if (!text)
		return -1;
	int sig;
	if (isdigit((unsigned char)*text)) {
		char *end;
		errno = 0;
		long n = strtol(text, &end, 10);
		if (*end || errno || n > 0x7fffffff)
			return -1;
		sig = (int)n;
		sig &= sig >= 0xff ? 0xff : 0x7f;
	} else {
		sig = str2sig(text);
		if (sig < 0 && !strncasecmp(text, "SIG", 3))
			sig = str2sig(text + 3);
	}
	return sig >= 0 && sig_named(sig) ? sig : -1;
}

const char *cli_signal_name(int sig, char buf[16])
{
	int rtmin = SIGRTMIN, rtmax = SIGRTMAX;
	if (sig >= rtmin && sig <= rtmax) {
		if (sig == rtmin)
			return "RTMIN";
		if (sig == rtmax)
			return "RTMAX";
		if (sig - rtmin <= (rtmax - rtmin) / 2)
			snprintf(buf, 16, "RTMIN+%u", (unsigned)(sig - rtmin) & 0xffu);
		else
			snprintf(buf, 16, "RTMAX-%u", (unsigned)(rtmax - sig) & 0xffu);
		return buf;
	}
	for (size_t i = 0; i < sizeof(sig_names) / sizeof(sig_names[0]); i++)
		if (sig_names[i].sig == sig)
			return sig_names[i].name;
	snprintf(buf, 16, "%d", sig);
	return buf;
}
