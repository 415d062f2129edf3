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
// reads (no deadlines of their own: the loop's heap holds the scope's deadline alone);
// BM_ScopeShiftOpDeadlines/<pending> the same with every read also carrying its own loop-kept
// deadline (the heap holds <pending> + 1). Time per iteration is the time per shift.
//
// Contexts (ring, sockets, ops) are created and destroyed outside the timed loop. Real time is
// the measure, since much of the work happens in the kernel, partly outside this thread.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
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
	void (*mark)(const Workload *);
	int (*check)(benchmark::State &, const Workload *, double *items);
};

// Times `wl` (already created, untimed) for as many iterations as google-benchmark asks, then
// destroys it. Items are counted only if every run succeeded.
template <typename Workload>
void TimeWorkload(benchmark::State &state, Workload *wl, const WorkloadOps<Workload> &ops,
		  uint64_t warmup_items = kItemsPerIteration)
{
	// One untimed round first: the first messages and completions pay for page faults and
	// the kernel's first allocations of socket buffers and requests.
	int ret = ops.run(wl, warmup_items);
	if (ret < 0) {
		state.SkipWithError(Describe((std::string(ops.name) + " (warm-up)").c_str(), ret).c_str());
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
			state.SkipWithError(Describe(ops.name, ret).c_str());
			break;
		}
	}
	ops.stats(wl, &after);
	double items = double(state.iterations()) * double(kItemsPerIteration);
	if (ret >= 0 && ops.check) {
		ret = ops.check(state, wl, &items);
		if (ret < 0)
			state.SkipWithError(
				Describe((std::string(ops.name) + " (check)").c_str(), ret).c_str());
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

void StreamGapMark(const wl_stream_gap *wl)
{
	wl_stream_gap_get_counts(wl, &g_stream_gap_mark);
	wl_stream_gap_stats(wl, &g_stream_gap_loop_mark);
}

// Items are the DATA events of the timed loop, counted exactly (the last run's overshoot
// included). Per item: bytes (1), ops started (4: the reader's read, its echo, the peer's recv
// and send), reads the peer found in flight (1) and the share of them carrying a deadline (1
// with a limit, 0 without). TIMEOUT and END events and -ETIME completions over the workload's
// life, which must be 0. Then the workload's own check (warm-up included).
int StreamGapCheck(benchmark::State &state, const wl_stream_gap *wl, double *items)
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
	// Untimed warm-up: the first shifts reorganise the heap (a pairing heap's first removal
	// of its root melds every entry inserted since), the rest is the steady state.
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

BENCHMARK_MAIN();
