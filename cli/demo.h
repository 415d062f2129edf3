/*
 * tmo demo: what the harness (demo.c, demo_harness.c, demo_print.c) and the scenario families
 * (demo_ops.c, demo_pool.c, demo_groups.c, demo_streams.c, demo_scopes.c) share. Private to the
 * command (cli/).
 *
 * A scenario builds what it needs (a loop, a pool, pipes, threads), runs it, measures what
 * happened, and decides pass or fail from the measurements with check() and on_time(): a
 * timeout is never early and at most max(60 ms, 25 % of the expected time) late, and the values
 * the seeds name (results, counts, sequences) must be the seeds'. It tears everything down before
 * it returns, except a pool whose abandoned worker runs on (demo_pool_close_deferred).
 *
 * Durations are in "units": one second of the seeds times --scale.
 */
#ifndef TMO_CLI_DEMO_H
#define TMO_CLI_DEMO_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <tmo/tmo.h>

#define MS TMO_NSEC_PER_MSEC

#define PRINTF(a, b) __attribute__((format(printf, a, b)))

struct deferred; /* an abandoned worker still running: closed at the end (demo_pool.c) */

struct demo {
	double scale;
	int64_t unit; /* nanoseconds per seed second */
	bool json;
	struct deferred *deferred;
};

static inline int64_t U(const struct demo *d, double units)
{
	return (int64_t)llround(units * (double)d->unit);
}

static inline double ms(int64_t ns)
{
	return (double)ns / (double)MS;
}

struct report {
	const char *name;
	char seed[256];
	const char *outcome; /* "ok", "timeout", "error" */
	int64_t elapsed_ns;
	bool pass;
	int checks;
	char happened[512];
	char keys[1536]; /* JSON members, each starting with ", " */
	char why[1024];  /* failed checks */
};

/* ---- the registered scenarios (demo_list.c) ------------------------------------------------ */

typedef void demo_fn(struct demo *d, struct report *r);

struct scenario {
	const char *name;
	const char *family; /* the file it lives in: demo_<family>.c */
	demo_fn *run;
	const char *seed; /* {N}: N seed seconds, printed scaled */
};

extern const struct scenario demo_scenarios[];
extern const size_t demo_nscenarios;

/* demo_ops.c */
demo_fn sc_blocking_inline, sc_cooperative;
/* demo_pool.c */
demo_fn sc_offloaded, sc_offloaded_interrupt, sc_offloaded_kill, sc_error_before_deadline,
	sc_already_done;
/* demo_groups.c */
demo_fn sc_gather_deadline, sc_gather_member_deadline, sc_wait_partial;
/* demo_streams.c */
demo_fn sc_stream_gap_raise, sc_stream_gap_sentinel, sc_periodic_refresh;
/* demo_scopes.c */
demo_fn sc_scope_shift, sc_scope_inner_timeout;

/* Waits for the workers the pool scenarios abandoned and closes their pools and loops; false
 * (and said on stderr) if one did not close cleanly. */
bool demo_pool_close_deferred(struct demo *d);

/* ---- reports (demo_harness.c) --------------------------------------------------------------- */

void appendv(char *buf, size_t size, const char *fmt, va_list ap) PRINTF(3, 0);
void append(char *buf, size_t size, const char *fmt, ...) PRINTF(3, 4);
/* A scenario-specific JSON member: key("stall_ms", "%.1f", v). */
void key(struct report *r, const char *name, const char *fmt, ...) PRINTF(3, 4);
void happened(struct report *r, const char *fmt, ...) PRINTF(2, 3);
/* Records one check of what happened; a failed one fails the scenario and says why. */
bool check(struct report *r, bool ok, const char *fmt, ...) PRINTF(3, 4);
/* A setup step failed: the scenario could not run as the seed describes. */
void setup_failed(struct report *r, const char *what, int err);
/* The lateness allowed for something due `expected` ns after its start. */
int64_t tolerance(int64_t expected);
/* `actual` (ns since the start) against `expected`: never early, at most tolerance() late. */
bool on_time(struct report *r, const char *what, int64_t actual, int64_t expected);
/* A result as the reports name it: "timeout", "cancelled", an errno name or the number. */
const char *res_name(int64_t res, char buf[64]);
/* The report's outcome for a result: "timeout", "error" or "ok". */
const char *outcome_of(int64_t res);

/* ---- loops, running, sleeping (demo_harness.c) ---------------------------------------------- */

bool loop_open(struct report *r, struct tmo_loop *loop);
void loop_close(struct report *r, struct tmo_loop *loop);
/* Runs the loop until *flag is set (callbacks that set it call tmo_loop_stop) or `limit`
 * (absolute) passes: a safety net, so that a misbehaving engine fails a scenario instead of
 * hanging the demo. */
bool run_until(struct report *r, struct tmo_loop *loop, const bool *flag, int64_t limit,
	       const char *what);
/* Runs the loop until no work is left, or `limit`. */
bool drain(struct report *r, struct tmo_loop *loop, int64_t limit);
void mark(struct tmo_loop *loop, bool *flag);
struct timespec timespec_of(int64_t ns);
/* Blocks the calling thread until `when` (tmo_now() clock: CLOCK_MONOTONIC). */
void block_until(int64_t when);

/* A chain of short sleeps on the loop: operations the loop serves while something else waits. */
struct chain {
	struct tmo_op op;
	struct tmo_loop *loop;
	int64_t period;
	uint64_t served;
	bool stopping;
};

int chain_start(struct chain *c, struct tmo_loop *loop, int64_t period);
void chain_stop(struct chain *c);

/* One op whose end is recorded (one_op_cb), and the loop stopped. */
struct one_op {
	struct tmo_op op;
	struct tmo_loop *loop;
	int32_t res;
	int64_t at;
	bool done;
};

void one_op_cb(struct tmo_op *op, int32_t res);

/* ---- output (demo_print.c) ------------------------------------------------------------------ */

/* The seed's text with its times scaled. */
void expand_seed(const struct demo *d, const char *tmpl, char *out, size_t size);
void print_header(const struct demo *d);
void print_row(const struct report *r);
void print_json(const struct report *r);

#endif
