/*
 * Benchmark workloads, written in C against the public tmo API only, for the google-benchmark
 * driver (tmo_bench.cc) to time. Each workload is an opaque context: create it (untimed), run
 * it for a number of items (timed), read the loop's counters, destroy it (untimed).
 *
 * Every function that can fail returns 0 or a negative errno, as tmo does. Errors from
 * tmo_loop_init (-EPERM in a container, ...) come back unchanged, so the caller can pass them
 * to tmo_loop_describe_error().
 */
#ifndef TMO_BENCH_WORKLOADS_H
#define TMO_BENCH_WORKLOADS_H

#include <stdbool.h>
#include <stdint.h>

#include <tmo/pool.h>
#include <tmo/tmo.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What deadline each measured op carries (the benchmarks' last argument). */
enum wl_deadline {
	WL_DEADLINE_NONE = 0,    /* TMO_NEVER */
	WL_DEADLINE_KERNEL = 1,  /* a deadline, kept by a linked timeout (the default strategy) */
	WL_DEADLINE_LOOP = 2,    /* a deadline, kept by the loop (TMO_DEADLINES_LOOP) */
};

/* How far in the future the "with deadline" variants set their deadlines: far enough that
 * none ever fires, so only the cost of carrying one is measured. */
#define WL_DEADLINE_NS (10 * TMO_NSEC_PER_SEC)

/*
 * Nop: batches of `batch` nop ops, each started with TMO_NEVER or a deadline WL_DEADLINE_NS
 * ahead (see enum wl_deadline), then the loop run until the batch is done. One item is one nop
 * completed.
 */
struct wl_nop;

int wl_nop_create(struct wl_nop **out, enum wl_deadline deadline, uint32_t batch);
int wl_nop_run(struct wl_nop *wl, uint64_t items);
int wl_nop_stats(const struct wl_nop *wl, struct tmo_loop_stats *stats);
void wl_nop_destroy(struct wl_nop *wl);

/*
 * PingPong: `flows` AF_UNIX stream socketpairs, each bouncing one byte back and forth. Every
 * recv is pending before its peer sends, carries TMO_NEVER or a deadline WL_DEADLINE_NS ahead
 * (enum wl_deadline), and is re-armed from its own callback; sends have no deadline. One item is one message
 * received (one recv completing with the byte the other side sent). The flows keep running
 * from one wl_pingpong_run call to the next; the count of items is kept across calls so that
 * a call which overshoots (several flows complete in one loop iteration) is made up for by
 * the next.
 */
struct wl_pingpong;

int wl_pingpong_create(struct wl_pingpong **out, uint32_t flows, enum wl_deadline deadline);
int wl_pingpong_run(struct wl_pingpong *wl, uint64_t items);
int wl_pingpong_stats(const struct wl_pingpong *wl, struct tmo_loop_stats *stats);
void wl_pingpong_destroy(struct wl_pingpong *wl);

/*
 * StreamGap: `streams` AF_UNIX stream socketpairs. One end of each is read by a struct
 * tmo_reader (TMO_FRAME_CHUNK, a WL_STREAM_BUF-byte buffer); the other end, the peer, is driven
 * by plain tmo ops on the same loop. The peer sends one byte; the reader delivers it (a DATA
 * event) and its callback sends one byte back with a plain send op; the peer's recv callback
 * re-arms the recv and sends the next byte. Only the reader's reads carry a deadline: `limit`
 * (enum wl_deadline) WL_DEADLINE_NONE gives the reader no limits at all, WL_DEADLINE_KERNEL a
 * gap limit of WL_DEADLINE_NS (TMO_GAP_END) kept by linked timeouts, WL_DEADLINE_LOOP the same
 * gap limit on a loop created with TMO_DEADLINES_LOOP. The peer's ops never have a deadline.
 * One item is one DATA event (a one-byte chunk, checked against the byte the peer sent). The
 * streams keep running from one wl_stream_gap_run call to the next; items are counted across
 * calls as in PingPong.
 *
 * Soft RLIMIT_NOFILE is raised (up to the hard limit) when 2 * streams fds do not fit.
 *
 * wl_stream_gap_get_counts gives what the run must prove: every item a DATA event of one byte,
 * no TIMEOUT or END event before destroy (a gap that never fires), and, each time the peer
 * receives a byte (the reader's next read is in flight then), whether that read carries a
 * deadline (tmo_op_deadline() of the reader's op), which must be so exactly when `limit` is not
 * WL_DEADLINE_NONE, and lie within (now, now + WL_DEADLINE_NS] (checked for every 64th one).
 * wl_stream_gap_check returns 0 if all of that holds, -ETIME if a gap fired, -EPROTO otherwise.
 */
#define WL_STREAM_BUF 16

struct wl_stream_gap_counts {
	uint64_t data;              /* DATA events since create */
	uint64_t bytes;             /* bytes in them */
	uint64_t timeouts;          /* TIMEOUT events (must stay 0) */
	uint64_t ends;              /* END events before destroy (must stay 0) */
	uint64_t sampled;           /* peer receptions that found the reader's read in flight */
	uint64_t with_deadline;     /* ... of which that read carried a deadline */
	uint64_t clock_checked;     /* ... of which had it checked against tmo_now() */
	uint64_t deadline_wrong;    /* deadlines outside (now, now + WL_DEADLINE_NS] */
};

struct wl_stream_gap;

int wl_stream_gap_create(struct wl_stream_gap **out, uint32_t streams, enum wl_deadline limit);
int wl_stream_gap_run(struct wl_stream_gap *wl, uint64_t items);
int wl_stream_gap_stats(const struct wl_stream_gap *wl, struct tmo_loop_stats *stats);
void wl_stream_gap_get_counts(const struct wl_stream_gap *wl,
			      struct wl_stream_gap_counts *counts);
int wl_stream_gap_check(const struct wl_stream_gap *wl);
void wl_stream_gap_destroy(struct wl_stream_gap *wl);

/*
 * ScopeShift: a scope entered with a deadline WL_SCOPE_DEADLINE_NS ahead, holding `pending`
 * reads that never complete (all on the read end of one pipe that nobody writes to, so that
 * 10,000 of them take two fds), started while the scope is current so that each joins it and
 * handed to the kernel before anything is timed. One item is one tmo_scope_shift() of the
 * scope, alternately by +WL_SCOPE_SHIFT_NS and -WL_SCOPE_SHIFT_NS, so the deadline stays where
 * it was; nothing else runs meanwhile (the loop is not run: a shift costs no kernel work).
 *
 * `op_deadlines` false: the reads have no deadline of their own (TMO_NEVER), so the loop's
 * timer wheel of kept deadlines holds the scope's alone. True: the loop keeps deadlines
 * (TMO_DEADLINES_LOOP) and every read also carries its own, WL_SCOPE_OP_DEADLINE_NS ahead
 * (after the scope's), so the wheel holds pending + 1 entries and the scope's is the earliest.
 *
 * wl_scope_shift_destroy cancels every read, runs the loop until none is active (each must
 * report -ECANCELED), exits the scope and closes the loop and the pipe.
 */
#define WL_SCOPE_DEADLINE_NS (60 * TMO_NSEC_PER_SEC)
#define WL_SCOPE_OP_DEADLINE_NS (120 * TMO_NSEC_PER_SEC)
#define WL_SCOPE_SHIFT_NS TMO_NSEC_PER_MSEC

struct wl_scope_shift;

int wl_scope_shift_create(struct wl_scope_shift **out, uint32_t pending, bool op_deadlines);
int wl_scope_shift_run(struct wl_scope_shift *wl, uint64_t items);
int wl_scope_shift_stats(const struct wl_scope_shift *wl, struct tmo_loop_stats *stats);
/* 0 if every read is still pending in the scope and nothing has completed since create. */
int wl_scope_shift_check(const struct wl_scope_shift *wl);
void wl_scope_shift_destroy(struct wl_scope_shift *wl);

/* ---- Pool -------------------------------------------------------------------------------- */

/*
 * Latency samples of the pool workloads, in ns. Each series keeps up to `cap` samples in an
 * array allocated at create (a uniform reservoir sample beyond that, so a long run costs no
 * memory while timed); the maximum is exact over every sample. Percentiles are nearest-rank
 * over the kept samples, sorted once at the end.
 */
#define WL_POOL_SAMPLES (1u << 20)

struct wl_latency {
	uint64_t count;  /* samples taken since the last reset */
	uint64_t kept;   /* ... of which in the array (= count up to its capacity) */
	int64_t p50;
	int64_t p99;
	int64_t max;
};

/*
 * Why the last pool workload call failed, beyond its errno ("" if it said nothing): what was
 * expected and what came instead (a job's result, a release's late result, a count). The
 * benchmarks run one at a time, so one buffer serves them all.
 */
const char *wl_pool_why(void);
void wl_pool_why_clear(void);

/* 1 if a loop on this kernel has TMO_FEAT_FUTEX_WAIT, 0 if not, or tmo_loop_init's error. */
int wl_pool_probe_futex(void);

/*
 * PoolRoundTrip: a pool of `threads` workers waking the loop by `wake`, and one job whose
 * function returns 0 at once, started with a deadline WL_DEADLINE_NS ahead (never fires).
 * One item is one round trip: tmo_now() just before tmo_job_start, the loop run (TMO_RUN_ONCE)
 * until the job's callback has fired, tmo_now() in the callback; the difference is the
 * sample. Every callback must see 0 and the job must be idle once it fired.
 * wl_pool_rt_reset drops the samples so far (after a warm-up); wl_pool_rt_latency sorts them.
 */
struct wl_pool_rt;

int wl_pool_rt_create(struct wl_pool_rt **out, enum tmo_pool_wake wake, uint32_t threads);
int wl_pool_rt_run(struct wl_pool_rt *wl, uint64_t items);
int wl_pool_rt_stats(const struct wl_pool_rt *wl, struct tmo_loop_stats *stats);
int wl_pool_rt_pool_stats(const struct wl_pool_rt *wl, struct tmo_pool_stats *stats);
void wl_pool_rt_reset(struct wl_pool_rt *wl);
void wl_pool_rt_latency(struct wl_pool_rt *wl, struct wl_latency *lat);
void wl_pool_rt_destroy(struct wl_pool_rt *wl);

/*
 * PoolFlood: a pool of `threads` workers waking the loop by `wake`, its queue of
 * WL_FLOOD_QUEUE kept full: as many no-op jobs (function returning 0 at once, deadline
 * WL_DEADLINE_NS ahead), each restarted from its own callback. One item is one job completed
 * (its callback fired with 0). Items are counted across calls as in PingPong;
 * wl_pool_flood_completed gives the exact count since create.
 */
#define WL_FLOOD_QUEUE 1024

struct wl_pool_flood;

int wl_pool_flood_create(struct wl_pool_flood **out, enum tmo_pool_wake wake, uint32_t threads);
int wl_pool_flood_run(struct wl_pool_flood *wl, uint64_t items);
int wl_pool_flood_stats(const struct wl_pool_flood *wl, struct tmo_loop_stats *stats);
int wl_pool_flood_pool_stats(const struct wl_pool_flood *wl, struct tmo_pool_stats *stats);
uint64_t wl_pool_flood_completed(const struct wl_pool_flood *wl);
void wl_pool_flood_destroy(struct wl_pool_flood *wl);

/*
 * PoolHungTimeout: a pool of one worker (default wake-up) and one job whose function hangs:
 * it waits on a futex word nobody changes (TMO_OVERRUN_INTERRUPT: until the pool's signal
 * interrupts the wait; the function then returns -EINTR), or on a gate that the benchmark
 * opens from the -ETIME callback (TMO_OVERRUN_ABANDON: the function then returns 0). Either
 * way it re-checks tmo_job_cancelled() once a second, as a backstop that a measured item never
 * uses (it returns WL_HUNG_POLLED then, which fails the run).
 *
 * One item is one job started with a deadline `deadline_ns` ahead, its function begun before
 * that deadline (a worker hung at its deadline), and the loop run until its release callback.
 * Two samples per item, both relative to the deadline: `late`, when the callback saw -ETIME
 * (tmo_now() in it), and `free`, when the release callback saw the worker let go. The callback
 * must see -ETIME, the release -EINTR (interrupt) or 0 (abandon); a release later than 5 s
 * past the deadline fails the run with -ETIMEDOUT.
 *
 * Jobs that were not running at their deadline are not items: their callback must still see
 * -ETIME, and they are counted (wl_hung_counts) and replaced by another job. They happen when
 * the worker took the job more than `deadline_ns` after its start (scheduling delays): either
 * the loop expired it in the queue (documented: it never runs), or the worker began it after
 * its deadline.
 */
struct wl_hung_counts {
	uint64_t measured;        /* items: hung at their deadline, released as required */
	uint64_t expired_queued;  /* still queued at the deadline: never ran, no release */
	uint64_t began_late;      /* begun by the worker after the deadline */
	uint64_t lost_interrupts; /* ... of which (interrupt) the signal did not end the wait */
};

#define WL_HUNG_DEADLINE_NS TMO_NSEC_PER_MSEC
#define WL_HUNG_POLLED 1

struct wl_pool_hung;

int wl_pool_hung_create(struct wl_pool_hung **out, enum tmo_overrun overrun, int64_t deadline_ns);
int wl_pool_hung_run(struct wl_pool_hung *wl, uint64_t items);
int wl_pool_hung_pool_stats(const struct wl_pool_hung *wl, struct tmo_pool_stats *stats);
void wl_pool_hung_reset(struct wl_pool_hung *wl);
void wl_pool_hung_get_counts(const struct wl_pool_hung *wl, struct wl_hung_counts *counts);
void wl_pool_hung_latency(struct wl_pool_hung *wl, struct wl_latency *late,
			  struct wl_latency *freed);
void wl_pool_hung_destroy(struct wl_pool_hung *wl);

#ifdef __cplusplus
}
#endif

#endif
