/*
 * tmo demo's printer: a scenario's report as a row of the table (the seed's text and what
 * happened side by side, wrapped) or as one JSON line.
 */
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static void format_duration(double seconds, char *buf, size_t size)
{
	if (seconds >= 1 || seconds == 0)
		snprintf(buf, size, "%g s", seconds);
	else
		snprintf(buf, size, "%g ms", round(seconds * 1e4) / 10);
}

void expand_seed(const struct demo *d, const char *tmpl, char *out, size_t size)
{
	out[0] = 0;
	for (const char *p = tmpl; *p;) {
		const char *open = strchr(p, '{');
		if (!open) {
			append(out, size, "%s", p);
			break;
		}
		append(out, size, "%.*s", (int)(open - p), p);
		char *end;
		double units = strtod(open + 1, &end);
		char dur[32];
		format_duration(units * d->scale, dur, sizeof(dur));
		append(out, size, "%s", dur);
		p = *end == '}' ? end + 1 : end;
	}
}

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

void print_json(const struct report *r)
{
	printf("{\"scenario\": \"%s\", \"outcome\": \"%s\", \"elapsed_ms\": %.1f", r->name,
	       r->outcome, ms(r->elapsed_ns));
	fputs(r->keys, stdout);
	printf(", \"seed\": ");
	json_string(stdout, r->seed);
	printf(", \"happened\": ");
	json_string(stdout, r->happened);
	if (!r->pass) {
		printf(", \"failed\": ");
		json_string(stdout, r->why);
	}
	printf(", \"pass\": %s}\n", r->pass ? "true" : "false");
	fflush(stdout);
}

#define COL_NAME 23
#define COL_SEED 44
#define COL_HAPPENED 56

/* A space not to break at: the one between a number and its unit ("2.5 s", "100 ms"). */
static bool glued(const char *space)
{
	const char *u = space + 1;
	if (u[0] == 'm' && u[1] == 's')
		u++;
	return u[0] == 's' && !isalnum((unsigned char)u[1]) && isdigit((unsigned char)space[-1]);
}

/* Cuts the next line of at most `width` characters off *text, at a space where possible. */
static int wrap(const char **text, int width)
{
	const char *s = *text;
	int len = (int)strlen(s);
	if (len <= width) {
		*text = s + len;
		return len;
	}
	int cut = width;
	while (cut > 0 && (s[cut] != ' ' || glued(s + cut)))
		cut--;
	if (cut == 0)
		cut = width;
	*text = s + cut;
	while (**text == ' ')
		(*text)++;
	return cut;
}

void print_header(const struct demo *d)
{
	printf("tmo demo: the seed scenarios on the engine; times at scale %g (1 seed second = "
	       "%.0f ms)\n\n",
	       d->scale, ms(d->unit));
	printf("%-*s %-*s %-*s %9s  %s\n", COL_NAME, "scenario", COL_SEED, "the seed says", COL_HAPPENED,
	       "what happened", "elapsed", "result");
	printf("%-*s %-*s %-*s %9s  %s\n", COL_NAME, "--------", COL_SEED, "-------------",
	       COL_HAPPENED, "-------------", "-------", "------");
}

void print_row(const struct report *r)
{
	const char *seed = r->seed, *hap = r->happened;
	bool first = true;
	while (first || *seed || *hap) {
		const char *s0 = seed, *h0 = hap;
		int sl = wrap(&seed, COL_SEED), hl = wrap(&hap, COL_HAPPENED);
		if (first)
			printf("%-*s %-*.*s %-*.*s %6.0f ms  %s\n", COL_NAME, r->name, COL_SEED, sl, s0,
			       COL_HAPPENED, hl, h0, ms(r->elapsed_ns), r->pass ? "pass" : "FAIL");
		else
			printf("%-*s %-*.*s %.*s\n", COL_NAME, "", COL_SEED, sl, s0, hl, h0);
		first = false;
	}
	if (!r->pass) {
		const char *why = r->why;
		while (*why) {
			const char *w0 = why;
			int wl = wrap(&why, COL_SEED + COL_HAPPENED);
			printf("%-*s   ! %.*s\n", COL_NAME, "", wl, w0);
		}
	}
	putchar('\n');
	fflush(stdout);
}
