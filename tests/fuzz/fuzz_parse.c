/*
 * Fuzzes the DURATION and SIGNAL parsers of `tmo run` (cli/cli.h) and checks what they
 * promise, not only that they do not crash:
 *
 * durations
 *   - a parsed duration is never negative; a text with a leading '-' parses only to 0 ("-0");
 *   - parsing is deterministic (the same text twice gives the same answer);
 *   - a simple decimal (digits, at most 9 decimals, an optional s/m/h/d) gives its exact value
 *     in nanoseconds, rounded up, within the double arithmetic's error, or INT64_MAX beyond
 *     the saturation point; a positive value never gives 0 ("no limit");
 *   - a number without suffix parses as with "s", and the suffixes are ordered: s <= m <= h <= d;
 *   - under a locale whose decimal point is ',' (fr_FR.UTF-8, when the system has it), a
 *     simple decimal reads the same with ',' as with '.' (GNU timeout reads both there);
 * signals
 *   - a result is -1 or a signal number below NSIG;
 *   - case does not matter: the upper-cased text parses to the same number;
 *   - a name parses to the same number as its "SIG"-prefixed form;
 *   - the name cli_signal_name() gives a parsed signal parses back to it;
 *   - an exit status above 128 names the signal 128 below it, as a shell's $? does.
 *
 * The input is one NUL-terminated text (cut at its first NUL byte), given to both parsers.
 * The process runs in fr_FR.UTF-8 if the system has that locale (scripts/setup generates it),
 * else in the C locale: '.' must read in both.
 */
#include <ctype.h>
#include <locale.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "fuzz_common.h"

#define MAX_TEXT 256

/* The parser saturates here (cli/parse.c: "total < 9.2e18", below INT64_MAX's 9.22e18). */
#define SATURATION 9.2e18

/*
 * The exact value of a simple decimal "D[.F][s|m|h|d]" (D at most 9 digits, F at most 9), in
 * nanoseconds, computed with integers. Returns false when the text is not of that form.
 */
static bool simple_decimal_ns(const char *s, unsigned __int128 *ns)
{
	uint64_t whole = 0, frac = 0;
	int nd = 0, nf = 0;
	const char *p = s;
	while (isdigit((unsigned char)*p) && nd < 10) {
		whole = whole * 10 + (uint64_t)(*p++ - '0');
		nd++;
	}
	if (nd == 0 || nd > 9)
		return false;
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p) && nf < 10) {
			frac = frac * 10 + (uint64_t)(*p++ - '0');
			nf++;
		}
		if (nf > 9)
			return false;
	}
	uint64_t unit = 1;
	switch (*p) {
	case '\0': break;
	case 's': unit = 1; p++; break;
	case 'm': unit = 60; p++; break;
	case 'h': unit = 3600; p++; break;
	case 'd': unit = 86400; p++; break;
	default: return false;
	}
	if (*p)
		return false;
	for (int i = nf; i < 9; i++)
		frac *= 10; /* to nanoseconds: nf <= 9 decimals */
	*ns = ((unsigned __int128)whole * 1000000000u + frac) * unit;
	return true;
}

/* Whether the process runs in a locale whose decimal point is ','. */
static bool comma_locale;

static void check_duration(const char *text)
{
	int64_t ns = -42, again = -42;
	bool ok = cli_parse_duration(text, &ns);
	bool ok2 = cli_parse_duration(text, &again);
	FUZZ_CHECK(ok == ok2 && (!ok || ns == again), "'%s' parsed twice: %d %lld, %d %lld", text, ok,
	      (long long)ns, ok2, (long long)again);
	if (ok) {
		FUZZ_CHECK(ns >= 0, "'%s' -> %lld", text, (long long)ns);
		const char *t = text;
		while (isspace((unsigned char)*t))
			t++;
		if (*t == '-')
			FUZZ_CHECK(ns == 0, "'%s' (negative) -> %lld", text, (long long)ns);
	}

	unsigned __int128 exact;
	if (simple_decimal_ns(text, &exact)) {
		FUZZ_CHECK(ok, "simple decimal '%s' refused", text);
		/* Each of the parser's double operations may be off by half an ulp of the result
		 * (2^-53 relative); allow a few, plus the 1 ns that rounding up may add. */
		double e = (double)exact;
		double tol = 2 + e * 0x1p-50;
		if (e > SATURATION + tol)
			FUZZ_CHECK(ns == INT64_MAX, "'%s' (%.0f ns) -> %lld, not saturated", text, e,
			      (long long)ns);
		else if (e < SATURATION - tol)
			FUZZ_CHECK((double)ns >= e - tol && (double)ns <= e + tol,
			      "'%s' -> %lld ns, exact %.0f", text, (long long)ns, e);
		if (exact > 0)
			FUZZ_CHECK(ns > 0, "positive '%s' -> 0 (no limit)", text);

		/* The locale's decimal point reads as '.' does. */
		char *dot = strchr(text, '.');
		if (comma_locale && dot) {
			char with_comma[MAX_TEXT + 1];
			strcpy(with_comma, text);
			with_comma[dot - text] = ',';
			int64_t c = -42;
			bool okc = cli_parse_duration(with_comma, &c);
			FUZZ_CHECK(okc && c == ns, "'%s' -> %lld but '%s' -> %d %lld", text,
				   (long long)ns, with_comma, okc, (long long)c);
		}
	}

	/* Suffixes, on plain decimals ("0x1" + "d" would be the hexadecimal 0x1d). */
	size_t len = strlen(text);
	if (ok && len > 0 && len + 2 <= MAX_TEXT && strspn(text, "0123456789.") == len) {
		char with[MAX_TEXT + 2];
		int64_t prev = ns;
		static const char suffixes[] = "smhd";
		for (int i = 0; i < 4; i++) {
			memcpy(with, text, len);
			with[len] = suffixes[i];
			with[len + 1] = '\0';
			int64_t v = -42;
			FUZZ_CHECK(cli_parse_duration(with, &v), "'%s' parses but '%s' does not", text, with);
			if (i == 0)
				FUZZ_CHECK(v == ns, "'%s' -> %lld but '%s' -> %lld", text, (long long)ns, with,
				      (long long)v);
			FUZZ_CHECK(v >= prev, "'%s' -> %lld, less than the smaller unit's %lld", with,
			      (long long)v, (long long)prev);
			prev = v;
		}
	}
}

static void check_signal(const char *text)
{
	int sig = cli_parse_signal(text);
	FUZZ_CHECK(sig == -1 || (sig >= 0 && sig < NSIG), "'%s' -> %d", text, sig);
	FUZZ_CHECK(cli_parse_signal(text) == sig, "'%s' parsed twice differently", text);

	size_t len = strlen(text);
	char upper[MAX_TEXT + 4];
	for (size_t i = 0; i <= len; i++)
		upper[i] = (char)toupper((unsigned char)text[i]);
	int up = cli_parse_signal(upper);
	FUZZ_CHECK(up == sig, "'%s' -> %d but '%s' -> %d", text, sig, upper, up);

	if (sig < 0)
		return;

	/* A name (not a number, not already prefixed) means the same with "SIG" before it. */
	if (!isdigit((unsigned char)text[0]) && strncasecmp(text, "SIG", 3) != 0) {
		char prefixed[MAX_TEXT + 4] = "SIG";
		memcpy(prefixed + 3, text, len + 1);
		int p = cli_parse_signal(prefixed);
		FUZZ_CHECK(p == sig, "'%s' -> %d but '%s' -> %d", text, sig, prefixed, p);
	}

	char buf[16];
	const char *name = cli_signal_name(sig, buf);
	FUZZ_CHECK(name && *name, "no name for %d", sig);
	int back = cli_parse_signal(name);
	FUZZ_CHECK(back == sig, "'%s' -> %d, named '%s', which parses to %d", text, sig, name, back);

	/* A plain number: a signal number is itself; 129..254 is the exit status of signal n-128. */
	if (len > 0 && len <= 9 && strspn(text, "0123456789") == len) {
		long n = strtol(text, NULL, 10);
		if (n < 128)
			FUZZ_CHECK(sig == n, "'%s' -> %d", text, sig);
		else if (n > 128 && n < 255) {
			char low[8];
			snprintf(low, sizeof low, "%ld", n - 128);
			FUZZ_CHECK(cli_parse_signal(low) == sig, "'%s' -> %d but '%s' -> %d", text, sig,
			      low, cli_parse_signal(low));
		}
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (setlocale(LC_ALL, "fr_FR.UTF-8"))
		comma_locale = !strcmp(localeconv()->decimal_point, ",");
	fprintf(stderr, "fuzz_parse: locale %s\n",
		comma_locale ? "fr_FR.UTF-8 (decimal point ',')" : "C (fr_FR.UTF-8 is not installed)");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[MAX_TEXT + 1];
	size_t n = size < MAX_TEXT ? size : MAX_TEXT;
	memcpy(text, data, n);
	text[n] = '\0';
	check_duration(text);
	check_signal(text);
	return 0;
}
