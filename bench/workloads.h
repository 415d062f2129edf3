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

#ifdef __cplusplus
}
#endif

#endif
