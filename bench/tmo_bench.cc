// tmo_bench: what a deadline costs. Each benchmark runs a workload from workloads.c without
// deadlines (last argument 0), with deadlines kept by linked timeouts (1, the default), and
// with deadlines kept by the loop (2, TMO_DEADLINES_LOOP); scripts/bench turns them into the
// "deadline tax". Names: BM_Nop/<deadline>, BM_PingPong/<flows>/<deadline>.
//
// BM_StreamGap/<streams>/<limit> is the same for a struct tmo_reader: <streams> socketpairs,
// each read by a reader with no limits (0), with a gap limit of 10 s kept by linked timeouts
// (1), or kept by the loop (2); one item is one DATA event. After the timed loop the workload
// must prove what it measured (every item a one-byte DATA event, no TIMEOUT or END, the reads
// carrying a deadline exactly when there is a limit), or the benchmark fails.
//
// BM_ScopeShift/<pending> times one tmo_scope_shift() of a scope holding <pending> pending
// reads (no deadlines of their own: the loop's timer wheel holds the scope's deadline alone);
// BM_ScopeShiftOpDeadlines/<pending> the same with every read also carrying its own loop-kept
// deadline (the wheel holds <pending> + 1). Time per iteration is the time per shift.
//
// The worker pool (tmo/pool.h), <wake> 1 = TMO_POOL_WAKE_FUTEX (skipped where the loop lacks
// TMO_FEAT_FUTEX_WAIT), 2 = TMO_POOL_WAKE_EVENTFD:
//   BM_PoolRoundTrip/<wake>/<threads>: one job at a time, whose function returns 0 at once
//     (deadline 10 s ahead, never fires); one item is one round trip, from just before
//     tmo_job_start to the callback on the loop, each timed with tmo_now(): counters p50_ns,
//     p99_ns, max_ns over the timed loop, and wakeups/item.
//   BM_PoolFlood/<wake>/<threads>: 1,024 such jobs keeping a queue of 1,024 full, each
//     restarted from its own callback; one item is one job completed. Counter
//     completions/wakeup: callbacks delivered per wake-up of the loop (tmo_pool_get_stats).
//   BM_PoolHungTimeout/<overrun>: one worker, one job per iteration whose function hangs on a
//     futex, deadline 1 ms ahead: 1 = TMO_OVERRUN_INTERRUPT (the pool's signal ends the wait),
//     0 = TMO_OVERRUN_ABANDON (the benchmark opens the futex from the -ETIME callback).
//     Counters late_* (-ETIME callback seen minus the deadline) and free_* (release callback
//     seen, i.e. the worker free again, minus the deadline), p50/p99/max in ns. A job whose
//     worker had not begun it by its deadline is no item (it is replaced and counted in
//     not_running_at_deadline; lost_interrupts counts those of them, under interrupt, that the
//     signal did not stop); more than 1 % of such jobs fails the benchmark.
// Every pool benchmark fails unless each no-op job's callback saw 0, each hung job's -ETIME
// and its release -EINTR (interrupt) or 0 (abandon), and the pool's counters agree.
//
// Contexts (ring, sockets, ops) are created and destroyed outside the timed loop. Real time is
// the measure, since much of the work happens in the kernel, partly outside this thread.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

#include "workloads.h"

namespace {

// Items per benchmark iteration: enough that one iteration spans many loop iterations (and,
// for PingPong/256, several rounds of every flow), so per-iteration overhead is noise.
constexpr uint64_t kItemsPerIteration = 1024;
// Nops in flight at once: a batch is started, then the loop runs until it is done.
constexpr uint32_t kNopBatch = 64;

std::string Describe(const char *what, int err)
{
	char buf[256];

	tmo_loop_describe_error(err, buf, sizeof(buf));
	return std::string(what) + ": " + buf;
}

// What the last pool workload said about its failure, as a suffix for an error message ("" from
// the other workloads, which never set it).
std::string Why()
{
	const char *why = wl_pool_why();

	return why[0] ? std::string(" (") + why + ")" : std::string();
}

// Counters from the loop, per item: io_uring_enter calls and full-SQ flushes show whether the
// work batched as intended.
void ReportLoopStats(benchmark::State &state, const tmo_loop_stats &before,
		     const tmo_loop_stats &after, double items)
{
	if (items <= 0)
		return;
	state.counters["enters/item"] = double(after.submit_calls - before.submit_calls) / items;
	state.counters["sq_full/item"] = double(after.sq_full - before.sq_full) / items;
}

// The C calls of one workload, so that one driver times them all.
template <typename Workload> struct WorkloadOps {
	const char *name;
	int (*run)(Workload *, uint64_t);
	int (*stats)(const Workload *, tmo_loop_stats *);
	void (*destroy)(Workload *);
	// Optional, untimed: called once just before the timed loop (to note the workload's own
	// counts), and once after it to report counters and prove the items were what the
	// benchmark names (0, or the error that fails it). `items` comes in as the items asked
	// for (iterations * kItemsPerIteration); check may replace it with the exact count of
	// items done in the timed loop, overshoot included.
	void (*mark)(Workload *);
	int (*check)(benchmark::State &, Workload *, double *items);
};

// Times `wl` (already created, untimed) for as many iterations as google-benchmark asks, then
// destroys it. Items are counted only if every run succeeded.
template <typename Workload>
void TimeWorkload(benchmark::State &state, Workload *wl, const WorkloadOps<Workload> &ops,
		  uint64_t warmup_items = kItemsPerIteration)
{
	wl_pool_why_clear();
	// One untimed round first: the first messages and completions pay for page faults and
	// the kernel's first allocations of socket buffers and requests.
	int ret = ops.run(wl, warmup_items);
	if (ret < 0) {
		state.SkipWithError(
			(Describe((std::string(ops.name) + " (warm-up)").c_str(), ret) + Why()).c_str());
		ops.destroy(wl);
		return;
	}
	tmo_loop_stats before{}, after{};
	ops.stats(wl, &before);
	if (ops.mark)
		ops.mark(wl);
	for (auto _ : state) {
		ret = ops.run(wl, kItemsPerIteration);
		if (ret < 0) {
			state.SkipWithError((Describe(ops.name, ret) + Why()).c_str());
			break;
		}
	}
	ops.stats(wl, &after);
	double items = double(state.iterations()) * double(kItemsPerIteration);
	if (ret >= 0 && ops.check) {
		ret = ops.check(state, wl, &items);
		if (ret < 0)
			state.SkipWithError(
				(Describe((std::string(ops.name) + " (check)").c_str(), ret) + Why())
					.c_str());
	}
	if (ret >= 0) {
		ReportLoopStats(state, before, after, items);
		state.SetItemsProcessed(int64_t(items));
	}
	ops.destroy(wl);
}

void BM_Nop(benchmark::State &state)
{
	static const WorkloadOps<wl_nop> ops = {"wl_nop_run", wl_nop_run, wl_nop_stats,
						 wl_nop_destroy, nullptr, nullptr};
	wl_nop *wl = nullptr;

	int ret = wl_nop_create(&wl, wl_deadline(state.range(0)), kNopBatch);
	if (ret < 0) {
		state.SkipWithError(Describe("wl_nop_create", ret).c_str());
		return;
	}
	TimeWorkload(state, wl, ops);
}

void BM_PingPong(benchmark::State &state)
{
	static const WorkloadOps<wl_pingpong> ops = {"wl_pingpong_run", wl_pingpong_run,
						      wl_pingpong_stats, wl_pingpong_destroy,
						      nullptr, nullptr};
	wl_pingpong *wl = nullptr;

	int ret = wl_pingpong_create(&wl, uint32_t(state.range(0)), wl_deadline(state.range(1)));
	if (ret < 0) {
		state.SkipWithError(Describe("wl_pingpong_create", ret).c_str());
		return;
	}
	TimeWorkload(state, wl, ops);
}

// StreamGap's own counts and the loop's when the timed loop starts (benchmarks run one at a
// time).
wl_stream_gap_counts g_stream_gap_mark;
tmo_loop_stats g_stream_gap_loop_mark;

void StreamGapMark(wl_stream_gap *wl)
{
	wl_stream_gap_get_counts(wl, &g_stream_gap_mark);
	wl_stream_gap_stats(wl, &g_stream_gap_loop_mark);
}

// Items are the DATA events of the timed loop, counted exactly (the last run's overshoot
// included). Per item: bytes (1), ops started (4: the reader's read, its echo, the peer's recv
// and send), reads the peer found in flight (1) and the share of them carrying a deadline (1
// with a limit, 0 without). TIMEOUT and END events and -ETIME completions over the workload's
// life, which must be 0. Then the workload's own check (warm-up included).
int StreamGapCheck(benchmark::State &state, wl_stream_gap *wl, double *items)
{
	wl_stream_gap_counts now{};
	tmo_loop_stats loop{};
	const wl_stream_gap_counts &was = g_stream_gap_mark;

	wl_stream_gap_get_counts(wl, &now);
	wl_stream_gap_stats(wl, &loop);
	const double data = double(now.data - was.data);
	const double per = std::max(1.0, data);
	const double sampled = double(now.sampled - was.sampled);
	*items = data;
	state.counters["bytes/item"] = double(now.bytes - was.bytes) / per;
	state.counters["ops/item"] = double(loop.started - g_stream_gap_loop_mark.started) / per;
	state.counters["sampled/item"] = sampled / per;
	state.counters["deadline/sampled"] =
		double(now.with_deadline - was.with_deadline) / std::max(1.0, sampled);
	state.counters["timeouts"] = double(now.timeouts);
	state.counters["ends"] = double(now.ends);
	state.counters["timed_out"] = double(loop.timed_out);
	if (now.timeouts || now.ends || loop.timed_out)
		return -ETIME;
	return wl_stream_gap_check(wl);
}

void BM_StreamGap(benchmark::State &state)
{
	static const WorkloadOps<wl_stream_gap> ops = {"wl_stream_gap_run", wl_stream_gap_run,
							wl_stream_gap_stats, wl_stream_gap_destroy,
							StreamGapMark, StreamGapCheck};
	wl_stream_gap *wl = nullptr;
	const uint32_t streams = uint32_t(state.range(0));

	int ret = wl_stream_gap_create(&wl, streams, wl_deadline(state.range(1)));
	if (ret < 0) {
		state.SkipWithError(Describe("wl_stream_gap_create", ret).c_str());
		return;
	}
	// Warm up until every stream has bounced a couple of times.
	TimeWorkload(state, wl, ops, std::max<uint64_t>(kItemsPerIteration, 2 * uint64_t(streams)));
}

// One shift per iteration, so the time per iteration is the time per shift.
void TimeScopeShift(benchmark::State &state, bool op_deadlines)
{
	wl_scope_shift *wl = nullptr;

	int ret = wl_scope_shift_create(&wl, uint32_t(state.range(0)), op_deadlines);
	if (ret < 0) {
		state.SkipWithError(Describe("wl_scope_shift_create", ret).c_str());
		return;
	}
	// Untimed warm-up: the first shifts bring caches and the loop's timer wheel to the steady
	// state that the timed ones measure.
	ret = wl_scope_shift_run(wl, 1024);
	for (auto _ : state) {
		if (ret < 0)
			break;
		ret = wl_scope_shift_run(wl, 1);
	}
	// Every read must still be pending in the scope: a shift must not have disturbed them.
	if (ret >= 0)
		ret = wl_scope_shift_check(wl);
	if (ret < 0)
		state.SkipWithError(Describe("wl_scope_shift_run", ret).c_str());
	else
		state.SetItemsProcessed(int64_t(state.iterations()));
	wl_scope_shift_destroy(wl);
}

void BM_ScopeShift(benchmark::State &state)
{
	TimeScopeShift(state, false);
}

void BM_ScopeShiftOpDeadlines(benchmark::State &state)
{
	TimeScopeShift(state, true);
}

// ---- Pool -------------------------------------------------------------------------------------

// The pool's counters when the timed loop starts (benchmarks run one at a time).
tmo_pool_stats g_pool_mark;

void ReportLatency(benchmark::State &state, const char *prefix, const wl_latency &lat)
{
	const std::string p(prefix);

	state.counters[p + "p50_ns"] = double(lat.p50);
	state.counters[p + "p99_ns"] = double(lat.p99);
	state.counters[p + "max_ns"] = double(lat.max);
}

// Skips the benchmark unless the loop can use `wake`. True if it may go on.
bool WakeSupported(benchmark::State &state, int64_t wake)
{
	if (wake != TMO_POOL_WAKE_FUTEX)
		return true;
	int ret = wl_pool_probe_futex();
	if (ret < 0) {
		state.SkipWithError(Describe("tmo_loop_init", ret).c_str());
		return false;
	}
	if (ret == 0) {
		state.SkipWithError("the loop lacks TMO_FEAT_FUTEX_WAIT (IORING_OP_FUTEX_WAIT, Linux "
				    "6.7): no futex wake-up to measure");
		return false;
	}
	return true;
}

void PoolRtMark(wl_pool_rt *wl)
{
	wl_pool_rt_reset(wl);
	wl_pool_rt_pool_stats(wl, &g_pool_mark);
}

// Items: iterations * kItemsPerIteration round trips, each one sample; the pool must have
// completed exactly that many jobs, none by its deadline, with one wake-up each at most.
int PoolRtCheck(benchmark::State &state, wl_pool_rt *wl, double *items)
{
	tmo_pool_stats now{};
	wl_latency lat{};

	wl_pool_rt_pool_stats(wl, &now);
	wl_pool_rt_latency(wl, &lat);
	const double completed = double(now.completed - g_pool_mark.completed);
	ReportLatency(state, "", lat);
	state.counters["wakeups/item"] = double(now.wakeups - g_pool_mark.wakeups) / std::max(1.0, *items);
	if (now.timed_out != g_pool_mark.timed_out || completed != *items ||
	    double(lat.count) != *items) {
		std::fprintf(stderr,
			     "BM_PoolRoundTrip check: %.0f round trips, pool completed %.0f, timed out "
			     "%" PRIu64 ", samples %" PRIu64 "\n",
			     *items, completed, now.timed_out - g_pool_mark.timed_out, lat.count);
		return -EPROTO;
	}
	return 0;
}

// BM_PoolRoundTrip/<wake>/<threads>: one no-op job at a time, submit to callback seen.
void BM_PoolRoundTrip(benchmark::State &state)
{
	static const WorkloadOps<wl_pool_rt> ops = {"wl_pool_rt_run", wl_pool_rt_run,
						     wl_pool_rt_stats, wl_pool_rt_destroy,
						     PoolRtMark, PoolRtCheck};
	if (!WakeSupported(state, state.range(0)))
		return;
	wl_pool_rt *wl = nullptr;
	int ret = wl_pool_rt_create(&wl, tmo_pool_wake(state.range(0)), uint32_t(state.range(1)));
	if (ret < 0) {
		state.SkipWithError((Describe("wl_pool_rt_create", ret) + Why()).c_str());
		return;
	}
	TimeWorkload(state, wl, ops);
}

uint64_t g_flood_mark;

void PoolFloodMark(wl_pool_flood *wl)
{
	g_flood_mark = wl_pool_flood_completed(wl);
	wl_pool_flood_pool_stats(wl, &g_pool_mark);
}

// Items: the jobs completed in the timed loop, counted exactly; the pool must agree, with none
// timed out and no start refused.
int PoolFloodCheck(benchmark::State &state, wl_pool_flood *wl, double *items)
{
	tmo_pool_stats now{};

	wl_pool_flood_pool_stats(wl, &now);
	const uint64_t done = wl_pool_flood_completed(wl) - g_flood_mark;
	const uint64_t pool_done = now.completed - g_pool_mark.completed;
	const uint64_t wakeups = now.wakeups - g_pool_mark.wakeups;
	*items = double(done);
	state.counters["completions/wakeup"] = double(pool_done) / double(std::max<uint64_t>(1, wakeups));
	state.counters["wakeups"] = double(wakeups);
	if (now.timed_out != g_pool_mark.timed_out || now.refused != g_pool_mark.refused ||
	    pool_done != done) {
		std::fprintf(stderr,
			     "BM_PoolFlood check: %" PRIu64 " callbacks with 0, pool completed %" PRIu64
			     ", timed out %" PRIu64 ", refused %" PRIu64 "\n",
			     done, pool_done, now.timed_out - g_pool_mark.timed_out,
			     now.refused - g_pool_mark.refused);
		return -EPROTO;
	}
	return 0;
}

// BM_PoolFlood/<wake>/<threads>: WL_FLOOD_QUEUE no-op jobs restarting themselves.
void BM_PoolFlood(benchmark::State &state)
{
	static const WorkloadOps<wl_pool_flood> ops = {"wl_pool_flood_run", wl_pool_flood_run,
							wl_pool_flood_stats, wl_pool_flood_destroy,
							PoolFloodMark, PoolFloodCheck};
	if (!WakeSupported(state, state.range(0)))
		return;
	wl_pool_flood *wl = nullptr;
	int ret = wl_pool_flood_create(&wl, tmo_pool_wake(state.range(0)), uint32_t(state.range(1)));
	if (ret < 0) {
		state.SkipWithError((Describe("wl_pool_flood_create", ret) + Why()).c_str());
		return;
	}
	TimeWorkload(state, wl, ops, 4 * uint64_t(WL_FLOOD_QUEUE));
}

// BM_PoolHungTimeout/<overrun>: one hung job per iteration (1 = TMO_OVERRUN_INTERRUPT, 0 =
// TMO_OVERRUN_ABANDON, released by the benchmark from the -ETIME callback), its deadline
// WL_HUNG_DEADLINE_NS ahead. Counters: late_* = -ETIME callback seen minus the deadline,
// free_* = release callback seen (the worker let go) minus the deadline.
void BM_PoolHungTimeout(benchmark::State &state)
{
	wl_pool_why_clear();
	wl_pool_hung *wl = nullptr;
	int ret = wl_pool_hung_create(&wl, tmo_overrun(state.range(0)), WL_HUNG_DEADLINE_NS);
	if (ret < 0) {
		state.SkipWithError((Describe("wl_pool_hung_create", ret) + Why()).c_str());
		return;
	}
	// Untimed: the worker's first job, its timer and first signal.
	ret = wl_pool_hung_run(wl, 4);
	if (ret < 0) {
		state.SkipWithError((Describe("wl_pool_hung_run (warm-up)", ret) + Why()).c_str());
		wl_pool_hung_destroy(wl);
		return;
	}
	wl_pool_hung_reset(wl);
	tmo_pool_stats before{}, after{};
	wl_pool_hung_pool_stats(wl, &before);
	for (auto _ : state) {
		ret = wl_pool_hung_run(wl, 1);
		if (ret < 0) {
			state.SkipWithError((Describe("wl_pool_hung_run", ret) + Why()).c_str());
			break;
		}
	}
	if (ret >= 0) {
		wl_latency late{}, freed{};
		wl_hung_counts c{};
		wl_pool_hung_pool_stats(wl, &after);
		wl_pool_hung_latency(wl, &late, &freed);
		wl_pool_hung_get_counts(wl, &c);
		const double n = double(state.iterations());
		// Every job started (items and the replaced ones) must have timed out.
		const uint64_t jobs = c.measured + c.expired_queued + c.began_late;
		ReportLatency(state, "late_", late);
		ReportLatency(state, "free_", freed);
		state.counters["interrupts/item"] = double(after.interrupts - before.interrupts) / n;
		state.counters["replacements/item"] =
			double(after.replacements - before.replacements) / n;
		state.counters["not_running_at_deadline"] = double(c.expired_queued + c.began_late);
		state.counters["lost_interrupts"] = double(c.lost_interrupts);
		if (double(c.measured) != n || after.timed_out - before.timed_out != jobs ||
		    after.completed - before.completed != jobs || late.count != c.measured ||
		    freed.count != c.measured ||
		    after.expired_queued - before.expired_queued != c.expired_queued) {
			std::fprintf(stderr,
				     "BM_PoolHungTimeout check: %.0f items, %" PRIu64 " measured, %" PRIu64
				     " jobs; pool timed out %" PRIu64 ", completed %" PRIu64
				     ", expired queued %" PRIu64 " (workload saw %" PRIu64
				     "); samples %" PRIu64 " / %" PRIu64 "\n",
				     n, c.measured, jobs, after.timed_out - before.timed_out,
				     after.completed - before.completed,
				     after.expired_queued - before.expired_queued, c.expired_queued,
				     late.count, freed.count);
			state.SkipWithError("wl_pool_hung_run (check): the pool's counts of timed-out "
					    "jobs or the samples differ from the jobs started");
		} else if (100 * (c.expired_queued + c.began_late) > jobs) {
			// More than 1 % of the jobs not hung at their deadline: the machine is too
			// busy for a deadline this short to mean what the benchmark says.
			state.SkipWithError(("wl_pool_hung_run: " +
					     std::to_string(c.expired_queued + c.began_late) + " of " +
					     std::to_string(jobs) +
					     " jobs were not running at their deadline (worker too late)")
						    .c_str());
		} else {
			state.SetItemsProcessed(int64_t(state.iterations()));
		}
	}
	wl_pool_hung_destroy(wl);
}

}  // namespace

BENCHMARK(BM_Nop)->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_PingPong)
	->ArgsProduct({{1, 256}, {0, 1, 2}})
	->UseRealTime();
BENCHMARK(BM_StreamGap)
	->ArgsProduct({{1, 256, 4096}, {0, 1, 2}})
	->UseRealTime();
BENCHMARK(BM_ScopeShift)->Arg(100)->Arg(1000)->Arg(10000)->UseRealTime();
BENCHMARK(BM_ScopeShiftOpDeadlines)->Arg(100)->Arg(1000)->Arg(10000)->UseRealTime();

BENCHMARK(BM_PoolRoundTrip)->ArgsProduct({{1, 2}, {1, 4}})->UseRealTime();
BENCHMARK(BM_PoolFlood)->ArgsProduct({{1, 2}, {1, 4}})->UseRealTime();
BENCHMARK(BM_PoolHungTimeout)->Arg(1)->Arg(0)->UseRealTime();

BENCHMARK_MAIN();
