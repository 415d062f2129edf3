/*
 * tmo demo: the seed documents' scenarios (../shared/seeds/), run on the engine and timed.
 *
 * This file is the command: its options, the scenarios it runs (from the one list in
 * demo_list.c) and the exit status. Each scenario fills a report (demo_harness.c) that
 * demo_print.c prints; the scenarios live in one file per family (demo_ops.c, demo_pool.c,
 * demo_groups.c, demo_streams.c, demo_scopes.c).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tmo/tmo.h>

#include "cli.h"
#include "demo.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: tmo demo [--json] [--scale F] [NAME]...\n"
		"  or:  tmo demo --list\n"
		"Runs the scenarios of the seed documents (blocking versus cooperative deadlines,\n"
		"the worker pool, groups, per-gap stream limits, scopes, ticks) on the engine, each\n"
		"timed, and prints what the seed says happens, what happened, the elapsed time and\n"
		"pass or fail.\n"
		"\n"
		"  --json       one JSON object per scenario per line\n"
		"  --scale F    multiply every duration by F (default 1; 0.001 to 100)\n"
		"  --list       print the scenarios' names, one per line, and exit\n"
		"  --help       display this help and exit\n"
		"\n"
		"Scenarios (all by default), each with its family:\n");
	for (size_t i = 0; i < demo_nscenarios; i++)
		fprintf(out, "  %-24s %s\n", demo_scenarios[i].name, demo_scenarios[i].family);
	fprintf(out, "\nExit status: 0 if every scenario run passed, 1 if one failed, 125 for bad "
		     "usage.\n");
}

static bool parse_scale(const char *text, double *scale)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (end == text || *end || errno || !isfinite(v) || v < 0.001 || v > 100)
		return false;
	*scale = v;
	return true;
}

/* --list: the names alone, for scripts (CTest's list of cli-demo tests is the same). */
static int list(void)
{
	for (size_t i = 0; i < demo_nscenarios; i++)
		printf("%s\n", demo_scenarios[i].name);
	return 0;
}

/* NAME: selects that scenario; false (and said) if there is none of that name. */
static bool select_scenario(const char *name, bool *selected)
{
	size_t k = 0;
	while (k < demo_nscenarios && strcmp(demo_scenarios[k].name, name))
		k++;
	if (k == demo_nscenarios) {
		fprintf(stderr, "tmo demo: unknown scenario '%s'\n"
				"Try 'tmo demo --help' for the list.\n", name);
		return false;
	}
	selected[k] = true;
	return true;
}

/* The options and names: -1 to go on and run the scenarios, else the exit status. */
static int parse_args(int argc, char **argv, struct demo *d, bool *selected, bool *any)
{
	bool options = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (options && !strcmp(a, "--")) {
			options = false;
		} else if (options && !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (options && !strcmp(a, "--list")) {
			return list();
		} else if (options && !strcmp(a, "--json")) {
			d->json = true;
		} else if (options && (!strcmp(a, "--scale") || !strncmp(a, "--scale=", 8))) {
			const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v) {
				fprintf(stderr, "tmo demo: option '--scale' requires an argument\n"
						"Try 'tmo demo --help' for more information.\n");
				return EXIT_TMO_FAILED;
			}
			if (!parse_scale(v, &d->scale)) {
				fprintf(stderr, "tmo demo: invalid scale '%s': a number from 0.001 to 100\n",
					v);
				return EXIT_TMO_FAILED;
			}
		} else if (options && a[0] == '-' && a[1]) {
			fprintf(stderr, "tmo demo: unknown option '%s'\n"
					"Try 'tmo demo --help' for more information.\n", a);
			return EXIT_TMO_FAILED;
		} else {
			if (!select_scenario(a, selected))
				return EXIT_TMO_FAILED;
			*any = true;
		}
	}
	return -1;
}

/* Runs one scenario and prints its report; false if there was no memory for the report. */
static bool run_one(struct demo *d, const struct scenario *sc, bool *pass)
{
	struct report *r = calloc(1, sizeof(*r));
	if (!r)
		return false;
	r->name = sc->name;
	r->pass = true;
	r->outcome = "error";
	expand_seed(d, sc->seed, r->seed, sizeof(r->seed));
	sc->run(d, r);
	if (r->checks == 0)
		check(r, false, "nothing was measured");
	*pass = r->pass;
	if (d->json)
		print_json(r);
	else
		print_row(r);
	free(r);
	return true;
}

/* Runs the scenarios selected (all if `selected` is NULL), in the list's order; the exit
 * status. */
static int run_selected(struct demo *d, const bool *selected)
{
	d->unit = (int64_t)llround(d->scale * (double)TMO_NSEC_PER_SEC);

	if (!d->json)
		print_header(d);
	int64_t start = tmo_now();
	int run = 0, passed = 0;
	for (size_t k = 0; k < demo_nscenarios; k++) {
		if (selected && !selected[k])
			continue;
		bool pass;
		if (!run_one(d, &demo_scenarios[k], &pass)) {
			fprintf(stderr, "tmo demo: out of memory\n");
			demo_pool_close_deferred(d);
			return EXIT_TMO_FAILED;
		}
		run++;
		passed += pass;
	}
	bool closed = demo_pool_close_deferred(d);
	if (!d->json)
		printf("%d of %d scenarios passed in %.1f s\n", passed, run,
		       (double)(tmo_now() - start) / 1e9);
	return passed == run && closed ? 0 : 1;
}

int cli_demo(int argc, char **argv)
{
	struct demo d = { .scale = 1 };
	bool *selected = calloc(demo_nscenarios, sizeof(*selected));
	bool any = false;
	if (!selected) {
		fprintf(stderr, "tmo demo: out of memory\n");
		return EXIT_TMO_FAILED;
	}
	int status = parse_args(argc, argv, &d, selected, &any);
	if (status < 0)
		status = run_selected(&d, any ? selected : NULL);
	free(selected);
	/* Whatever was printed (--help, --list, the reports): a write that failed is an error
	 * with its reason, as for tmo run. */
	if (!cli_close_stdout("tmo demo") && status == 0)
		status = EXIT_TMO_FAILED;
	return status;
}
