// tmo_bench: what a deadline costs. Each benchmark runs a workload from workloads.c without
// deadlines (last argument 0), with deadlines kept by linked timeouts (1, the default), and
// with deadlines kept by the loop (2, TMO_DEADLINES_LOOP); scripts/bench turns them into the
// "deadline tax". Names: BM_Nop/<deadline>, BM_PingPong/<flows>/<deadline>.
//
// Contexts (ring, sockets, ops) are created and destroyed outside the timed loop. Real time is
// the measure, since much of the work happens in the kernel, partly outside this thread.

#include <benchmark/benchmark.h>

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
		     const tmo_loop_stats &after)
{
	const double items = double(state.iterations()) * double(kItemsPerIteration);

	if (items <= 0)
		return;
	state.counters["enters/item"] = double(after.submit_calls - before.submit_calls) / items;
	state.counters["sq_full/item"] = double(after.sq_full - before.sq_full) / items;
}

void BM_Nop(benchmark::State &state)
{
	const auto deadline = wl_deadline(state.range(0));
	wl_nop *wl = nullptr;

	int ret = wl_nop_create(&wl, deadline, kNopBatch);
	if (ret < 0) {
		state.SkipWithError(Describe("wl_nop_create", ret).c_str());
		return;
	}
	// One untimed round first: the first messages and completions pay for page faults and
	// the kernel's first allocations of socket buffers and requests.
	ret = wl_nop_run(wl, kItemsPerIteration);
	if (ret < 0) {
		state.SkipWithError(Describe("wl_nop_run (warm-up)", ret).c_str());
		wl_nop_destroy(wl);
		return;
	}
	tmo_loop_stats before{}, after{};
	wl_nop_stats(wl, &before);
	for (auto _ : state) {
		ret = wl_nop_run(wl, kItemsPerIteration);
		if (ret < 0) {
			state.SkipWithError(Describe("wl_nop_run", ret).c_str());
			break;
		}
	}
	wl_nop_stats(wl, &after);
	if (ret >= 0) {
		ReportLoopStats(state, before, after);
		state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(kItemsPerIteration));
	}
	wl_nop_destroy(wl);
}

void BM_PingPong(benchmark::State &state)
{
	const auto flows = uint32_t(state.range(0));
	const auto deadline = wl_deadline(state.range(1));
	wl_pingpong *wl = nullptr;

	int ret = wl_pingpong_create(&wl, flows, deadline);
	if (ret < 0) {
		state.SkipWithError(Describe("wl_pingpong_create", ret).c_str());
		return;
	}
	// One untimed round first: the first messages and completions pay for page faults and
	// the kernel's first allocations of socket buffers and requests.
	ret = wl_pingpong_run(wl, kItemsPerIteration);
	if (ret < 0) {
		state.SkipWithError(Describe("wl_pingpong_run (warm-up)", ret).c_str());
		wl_pingpong_destroy(wl);
		return;
	}
	tmo_loop_stats before{}, after{};
	wl_pingpong_stats(wl, &before);
	for (auto _ : state) {
		ret = wl_pingpong_run(wl, kItemsPerIteration);
		if (ret < 0) {
			state.SkipWithError(Describe("wl_pingpong_run", ret).c_str());
			break;
		}
	}
	wl_pingpong_stats(wl, &after);
	if (ret >= 0) {
		ReportLoopStats(state, before, after);
		state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(kItemsPerIteration));
	}
	wl_pingpong_destroy(wl);
}

}  // namespace

BENCHMARK(BM_Nop)->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_PingPong)
	->ArgsProduct({{1, 256}, {0, 1, 2}})
	->UseRealTime();

BENCHMARK_MAIN();
