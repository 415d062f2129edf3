/*
 * tmo demo: the one list of its scenarios, in the order they run. `tmo demo --list` prints the
 * names, and CMakeLists.txt reads them from this file to make one CTest per scenario
 * (cli-demo-NAME): keep each entry's `.name = "..."` on one line.
 */
#include <stddef.h>

#include "demo.h"

const struct scenario demo_scenarios[] = {
	{ .name = "blocking-inline", .family = "ops", .run = sc_blocking_inline,
	  .seed = "a {5} blocking call on the loop thread under a {1} deadline finishes after "
		  "{5}; the stall is reported, and the kernel had cancelled the deadline-bound "
		  "read at {1}" },
	{ .name = "cooperative", .family = "ops", .run = sc_cooperative,
	  .seed = "a {3} cooperative sleep under a {1} deadline times out at {1}" },
	{ .name = "offloaded", .family = "pool", .run = sc_offloaded,
	  .seed = "the {5} blocking call sent to the pool times out at {1}; the loop serves "
		  "other operations meanwhile (loop_ops)" },
	{ .name = "offloaded-interrupt", .family = "pool", .run = sc_offloaded_interrupt,
	  .seed = "as offloaded, with interrupt: timeout at {1}, the worker is free at about {1}" },
	{ .name = "offloaded-kill", .family = "pool", .run = sc_offloaded_kill,
	  .seed = "a CPU loop that never yields (and ignores SIGTERM), with kill: timeout at "
		  "{1}, worker free at {1} plus the grace period ({0.5})" },
	{ .name = "error-before-deadline", .family = "pool", .run = sc_error_before_deadline,
	  .seed = "work failing at {0.5} under a {1} deadline ends as an error at {0.5}, not a "
		  "timeout" },
	{ .name = "already-done", .family = "pool", .run = sc_already_done,
	  .seed = "work already finished returns at once, whatever its deadline ({1})" },
	{ .name = "gather-deadline", .family = "groups", .run = sc_gather_deadline,
	  .seed = "ten {5} members under a {2.5} group deadline: timeout at {2.5}, 10 cancelled" },
	{ .name = "gather-member-deadline", .family = "groups", .run = sc_gather_member_deadline,
	  .seed = "ten {5} members returning i*100, the first with its own {2.5} deadline: done "
		  "at {5}, results [timeout, 100, 200, ..., 900]" },
	{ .name = "wait-partial", .family = "groups", .run = sc_wait_partial,
	  .seed = "wait with a {2.5} deadline over members of {1} to {5}: 2 done, 3 pending, "
		  "pending not cancelled" },
	{ .name = "stream-gap-raise", .family = "streams", .run = sc_stream_gap_raise,
	  .seed = "chunks at {0.2} and {0.5}, then a {1.5} silence under a {1} gap limit: the "
		  "stream ends with a timeout at that gap" },
	{ .name = "stream-gap-sentinel", .family = "streams", .run = sc_stream_gap_sentinel,
	  .seed = "chunks 1, gap {1.1}, 2, gap {2.1}, 3 under a {1} gap limit: sequence [1, "
		  "timeout, 2, timeout, timeout, 3]" },
	{ .name = "scope-shift", .family = "scopes", .run = sc_scope_shift,
	  .seed = "a {1.5} scope shifted by +{1} expires at {2.5}: expired true" },
	{ .name = "scope-inner-timeout", .family = "scopes", .run = sc_scope_inner_timeout,
	  .seed = "an op whose own {0.5} deadline fires inside a {2} scope times out at {0.5}: "
		  "expired false" },
	{ .name = "periodic-refresh", .family = "streams", .run = sc_periodic_refresh,
	  .seed = "a refresh runs at least every {1} during a {3.5} stream: 3 or more refreshes" },
};

const size_t demo_nscenarios = sizeof(demo_scenarios) / sizeof(demo_scenarios[0]);
