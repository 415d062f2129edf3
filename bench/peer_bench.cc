// peer_bench: the comparison of tmo with the libraries a user would pick instead, on the same
// workloads (bench/peers/peer.h defines each exactly). Every peer in the table runs:
//
//   W1_Flows/<peer>/<flows>/<deadline>   1-byte ping-pong on <flows> socketpairs, every read
//       with (1) or without (0) a deadline that never fires; items_per_second is messages
//       received per second. scripts/bench computes each peer's deadline tax and tmo's ratios.
//   W2_Precision/<peer>/<n>   n deadlines that fire, spread over 1 s: lateness (seen - due)
//       percentiles late_*_ns, and `early` (fired before due: must be 0 to be correct).
//   W3_Scale/<peer>/<pending>  arm then cancel a batch of 1,000 deadlines with <pending> others
//       pending: arm_ns and cancel_ns per deadline; rss_per_pending_bytes and
//       kernel_per_pending_bytes, the memory the <pending> cost (VmRSS and slab deltas).
//   W4_Idle/<peer>/<deadline>  10,000 connections, 10 active (a byte every 1 ms from a sender
//       process), with (1) or without (0) an idle deadline on each: cpu_per_s, the CPU time of
//       this process per second of wall time while the loop runs.
//   W5_Offload/<peer>  round trip of a no-op job through the peer's thread pool: p50/p99/max.
//
// --quick (taken out of argv before google-benchmark sees it) runs the smaller sizes only:
// W2 at 10,000, W3 up to 100,000, W4 for 0.5 s instead of 2 s. Python's asyncio runs the same
// workloads from bench/peers/asyncio_peer.py.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

#ifdef TMO_BENCH_HAVE_LIBUV
#include <uv.h>
#endif
#ifdef TMO_BENCH_HAVE_LIBEVENT
#include <event2/event.h>
#endif

namespace {

bool quick = false;

constexpr uint64_t kFlowItems = 1024;
constexpr uint32_t kScaleBatch = 1000;
constexpr uint32_t kIdleConns = 10000;
constexpr uint32_t kIdleActive = 10;
constexpr int64_t kIdleGapNs = 60 * PEER_NSEC_PER_SEC;

std::string Why(const char *what, int err)
{
	std::string s = std::string(what) + ": " + strerror(-err);
	if (peer_why()[0])
		s += std::string(" (") + peer_why() + ")";
	return s;
}

// Nearest-rank percentile of sorted values.
int64_t Pct(const std::vector<int64_t> &v, double pct)
{
	if (v.empty())
		return 0;
	size_t rank = (size_t)((pct / 100.0) * (double)v.size() + 0.999999);
	rank = std::min(std::max(rank, (size_t)1), v.size());
	return v[rank - 1];
}

void Flows(benchmark::State &state, const peer *p)
{
	void *ctx = nullptr;
	peer_why_clear();
	int ret = p->flows_create(&ctx, (uint32_t)state.range(0), state.range(1) != 0);
	if (ret < 0) {
		state.SkipWithError(Why("flows_create", ret).c_str());
		return;
	}
	ret = p->flows_run(ctx, kFlowItems); // warm-up: every flow under way
	for (auto _ : state) {
		if (ret < 0)
			break;
		ret = p->flows_run(ctx, kFlowItems);
	}
	if (ret < 0)
		state.SkipWithError(Why("flows_run", ret).c_str());
	state.SetItemsProcessed((int64_t)(state.iterations() * kFlowItems));
	p->flows_destroy(ctx);
}

void Precision(benchmark::State &state, const peer *p)
{
	const uint32_t n = (uint32_t)state.range(0);
	std::vector<int64_t> offset(n), late(n, INT64_MIN);
	for (uint32_t i = 0; i < n; i++)
		offset[i] = (int64_t)i * PEER_NSEC_PER_SEC / n;
	std::shuffle(offset.begin(), offset.end(), std::mt19937_64(1));

	peer_precision pp = {};
	pp.n = n;
	pp.lead_ns = 100 * PEER_NSEC_PER_MSEC + (int64_t)n * 3000;
	pp.offset = offset.data();
	pp.late = late.data();
	int ret = 0;
	for (auto _ : state) {
		peer_why_clear();
		ret = p->precision(&pp);
	}
	if (ret < 0) {
		state.SkipWithError(Why("precision", ret).c_str());
		return;
	}
	if (pp.armed_ns > 0) {
		char buf[128];
		snprintf(buf, sizeof(buf), "arming took %.1f ms past the first due time",
			 (double)pp.armed_ns / 1e6);
		state.SkipWithError(buf);
		return;
	}
	std::vector<int64_t> sorted(late);
	std::sort(sorted.begin(), sorted.end());
	if (sorted[0] == INT64_MIN) {
		state.SkipWithError("a deadline never reported its lateness");
		return;
	}
	uint64_t early = 0;
	for (int64_t v : sorted)
		early += v < 0;
	state.counters["late_min_ns"] = (double)sorted.front();
	static const struct {
		const char *name;
		double pct;
	} pcts[] = {{"late_p1_ns", 1},   {"late_p10_ns", 10}, {"late_p25_ns", 25},
		    {"late_p50_ns", 50}, {"late_p75_ns", 75}, {"late_p90_ns", 90},
		    {"late_p95_ns", 95}, {"late_p99_ns", 99}, {"late_p999_ns", 99.9}};
	for (const auto &q : pcts)
		state.counters[q.name] = (double)Pct(sorted, q.pct);
	state.counters["late_max_ns"] = (double)sorted.back();
	state.counters["early"] = (double)early;
	state.counters["armed_before_due_ns"] = (double)-pp.armed_ns;
}

void Scale(benchmark::State &state, const peer *p)
{
	const uint32_t pending = (uint32_t)state.range(0);
	peer_mem before{}, after{};
	void *ctx = nullptr;
	peer_why_clear();
	malloc_trim(0); // memory freed by earlier benchmarks would otherwise hide this one's
	int ret = peer_mem_read(&before);
	if (ret == 0)
		ret = p->scale_create(&ctx, pending);
	if (ret < 0) {
		state.SkipWithError(Why("scale_create", ret).c_str());
		return;
	}
	bool have_mem = peer_mem_read(&after) == 0;
	int64_t arm_total = 0, cancel_total = 0;
	for (auto _ : state) {
		int64_t arm = 0, cancel = 0;
		ret = p->scale_run(ctx, kScaleBatch, &arm, &cancel);
		if (ret < 0)
			break;
		arm_total += arm;
		cancel_total += cancel;
	}
	if (ret < 0) {
		state.SkipWithError(Why("scale_run", ret).c_str());
	} else {
		double deadlines = (double)state.iterations() * kScaleBatch;
		state.counters["arm_ns"] = (double)arm_total / deadlines;
		state.counters["cancel_ns"] = (double)cancel_total / deadlines;
		if (have_mem) {
			state.counters["rss_per_pending_bytes"] =
				(double)(after.rss_bytes - before.rss_bytes) / pending;
			state.counters["kernel_per_pending_bytes"] =
				(double)(after.kernel_bytes - before.kernel_bytes) / pending;
			state.SetLabel(std::string("kernel memory from ") + after.kernel_source);
		}
	}
	p->scale_destroy(ctx);
}

// ---- W4: the sender process and the clocks ------------------------------------------------

struct IdleHarness {
	int control = -1;     // SOCK_SEQPACKET to the sender: "go" out, the byte count back
	int stop_read = -1;   // stop_fd: the sender writes a byte when the run is over
	pid_t sender = -1;
	int64_t duration_ns = 0;
	int64_t wall0 = 0, wall1 = 0, cpu0 = 0, cpu1 = 0;
	uint64_t sent = 0;
	bool started = false, stopped = false;
};

int64_t CpuNow()
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * PEER_NSEC_PER_SEC + ts.tv_nsec;
}

void IdleStart(peer_idle *p)
{
	auto *h = static_cast<IdleHarness *>(p->harness);
	h->started = true;
	h->wall0 = peer_now();
	h->cpu0 = CpuNow();
	char go = 'g';
	if (send(h->control, &go, 1, 0) != 1)
		perror("peer_bench: telling the sender to start");
}

void IdleStop(peer_idle *p)
{
	auto *h = static_cast<IdleHarness *>(p->harness);
	if (h->stopped)
		return;
	h->stopped = true;
	h->cpu1 = CpuNow();
	h->wall1 = peer_now();
	uint64_t sent = 0;
	if (recv(h->control, &sent, sizeof(sent), 0) == (ssize_t)sizeof(sent))
		h->sent = sent;
}

// The sender: holds the far ends, waits for "go", writes a byte to each of the first `active`
// every PEER_IDLE_INTERVAL_NS (absolute times, so that its own delays do not add up) for the
// duration, reports the bytes written, signals stop_fd, and waits for the parent to hang up.
[[noreturn]] void SenderMain(int control, int stop_write, uint32_t conns, uint32_t active,
			     int64_t duration_ns)
{
	std::vector<int> far;
	far.reserve(conns);
	while (far.size() < conns) {
		char byte;
		char cbuf[CMSG_SPACE(sizeof(int) * 200)];
		struct iovec iov = {&byte, 1};
		struct msghdr msg = {};
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		if (recvmsg(control, &msg, 0) <= 0)
			_exit(2);
		for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			const int *fds = reinterpret_cast<const int *>(CMSG_DATA(c));
			far.insert(far.end(), fds, fds + k);
		}
	}
	char go;
	if (recv(control, &go, 1, 0) != 1)
		_exit(3);
	uint64_t sent = 0;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	const int64_t end = peer_now() + duration_ns;
	char byte = 'x';
	while (peer_now() < end) {
		for (uint32_t i = 0; i < active; i++)
			sent += write(far[i], &byte, 1) == 1;
		next.tv_nsec += PEER_IDLE_INTERVAL_NS;
		if (next.tv_nsec >= PEER_NSEC_PER_SEC) {
			next.tv_nsec -= PEER_NSEC_PER_SEC;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
		}
	}
	if (send(control, &sent, sizeof(sent), 0) != (ssize_t)sizeof(sent))
		_exit(4);
	if (write(stop_write, &byte, 1) != 1)
		_exit(5);
	while (recv(control, &go, 1, 0) > 0) {
	}
	_exit(0);
}

// Makes the connections: the peer's ends stay here, the far ends go to the sender (passed
// over the control socket, 200 at a time, and closed here), so that 10,000 connections cost
// this process 10,000 fds, not 20,000.
int IdleSetup(IdleHarness &h, std::vector<int> &fds)
{
	int ctl[2], stop[2];
	int ret = peer_want_fds(kIdleConns + 256);
	if (ret < 0)
		return ret;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
		return -errno;
	if (pipe2(stop, O_CLOEXEC) < 0) {
		ret = -errno;
		close(ctl[0]);
		close(ctl[1]);
		return ret;
	}
	fflush(nullptr);
	pid_t pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(ctl[0]);
		close(ctl[1]);
		close(stop[0]);
		close(stop[1]);
		return ret;
	}
	if (pid == 0) {
		close(ctl[0]);
		close(stop[0]);
		SenderMain(ctl[1], stop[1], kIdleConns, kIdleActive, h.duration_ns);
	}
	close(ctl[1]);
	close(stop[1]);
	h.control = ctl[0];
	h.stop_read = stop[0];
	h.sender = pid;

	std::vector<int> batch;
	for (uint32_t i = 0; i < kIdleConns && ret == 0; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			ret = peer_fail(-errno, "socketpair %u of %u", i + 1, kIdleConns);
			break;
		}
		fds.push_back(sv[0]);
		batch.push_back(sv[1]);
		if (batch.size() == 200 || i + 1 == kIdleConns) {
			char byte = 'f';
			char cbuf[CMSG_SPACE(sizeof(int) * 200)] = {};
			struct iovec iov = {&byte, 1};
			struct msghdr msg = {};
			msg.msg_iov = &iov;
			msg.msg_iovlen = 1;
			msg.msg_control = cbuf;
			msg.msg_controllen = CMSG_SPACE(sizeof(int) * batch.size());
			cmsghdr *c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * batch.size());
			memcpy(CMSG_DATA(c), batch.data(), sizeof(int) * batch.size());
			if (sendmsg(h.control, &msg, 0) < 0)
				ret = peer_fail(-errno, "passing connections to the sender");
			for (int fd : batch)
				close(fd);
			batch.clear();
		}
	}
	return ret;
}

// fds: connections not handed to a peer (setup failed half way).
void IdleTeardown(IdleHarness &h, std::vector<int> &fds)
{
	for (int fd : fds)
		close(fd);
	fds.clear();
	if (h.control >= 0)
		close(h.control); // the sender sees the hang-up and exits
	if (h.stop_read >= 0)
		close(h.stop_read);
	if (h.sender > 0) {
		int status;
		while (waitpid(h.sender, &status, 0) < 0 && errno == EINTR) {
		}
	}
}

void Idle(benchmark::State &state, const peer *p)
{
	IdleHarness h;
	h.duration_ns = quick ? PEER_NSEC_PER_SEC / 2 : 2 * PEER_NSEC_PER_SEC;
	std::vector<int> fds;
	peer_idle pi = {};
	int ret = 0;
	for (auto _ : state) {
		peer_why_clear();
		ret = IdleSetup(h, fds);
		if (ret < 0)
			break;
		pi.fds = fds.data();
		pi.conns = kIdleConns;
		pi.active = kIdleActive;
		pi.deadline = state.range(0) != 0;
		pi.gap_ns = kIdleGapNs;
		pi.stop_fd = h.stop_read;
		pi.start = IdleStart;
		pi.stop = IdleStop;
		pi.harness = &h;
		ret = p->idle(&pi);
		// The peer owned the connections and must have closed them all: this thread has
		// opened nothing since, so an fd still open is one the peer left behind.
		uint32_t left = 0;
		for (int fd : fds)
			if (fcntl(fd, F_GETFD) >= 0) {
				left++;
				close(fd);
			}
		fds.clear();
		if (left && ret == 0)
			ret = peer_fail(-EBADFD, "the peer left %u of its %u connections open", left,
					kIdleConns);
	}
	IdleTeardown(h, fds);
	if (ret < 0) {
		state.SkipWithError(Why("idle", ret).c_str());
		return;
	}
	const char *wrong = nullptr;
	if (!h.started || !h.stopped)
		wrong = "the peer did not call start() and stop()";
	else if (pi.timeouts)
		wrong = "an idle deadline fired during the run";
	else if (h.sent == 0 || pi.bytes == 0 || pi.bytes > h.sent)
		wrong = "bytes received do not match bytes sent";
	if (wrong) {
		state.SkipWithError(wrong);
		return;
	}
	double wall = (double)(h.wall1 - h.wall0) / 1e9;
	state.counters["cpu_per_s"] = (double)(h.cpu1 - h.cpu0) / 1e9 / wall;
	state.counters["bytes"] = (double)pi.bytes;
	state.counters["sent"] = (double)h.sent;
	state.counters["timeouts"] = (double)pi.timeouts;
	state.counters["wall_s"] = wall;
}

void Offload(benchmark::State &state, const peer *p)
{
	void *ctx = nullptr;
	peer_why_clear();
	int ret = p->offload_create(&ctx);
	if (ret < 0) {
		state.SkipWithError(Why("offload_create", ret).c_str());
		return;
	}
	std::vector<int64_t> samples;
	samples.reserve(1 << 20);
	int64_t warm[64];
	ret = p->offload_run(ctx, 64, warm);
	for (auto _ : state) {
		if (ret < 0)
			break;
		int64_t s;
		ret = p->offload_run(ctx, 1, &s);
		if (samples.size() < samples.capacity())
			samples.push_back(s);
	}
	p->offload_destroy(ctx);
	if (ret < 0) {
		state.SkipWithError(Why("offload_run", ret).c_str());
		return;
	}
	std::sort(samples.begin(), samples.end());
	state.counters["p50_ns"] = (double)Pct(samples, 50);
	state.counters["p99_ns"] = (double)Pct(samples, 99);
	state.counters["max_ns"] = samples.empty() ? 0.0 : (double)samples.back();
	state.SetItemsProcessed((int64_t)state.iterations());
}

void RegisterPeer(const peer *p)
{
	std::string n = p->name;
	if (p->flows_create)
		for (int64_t flows : {1, 64, 256, 1024})
			for (int64_t d : {0, 1})
				benchmark::RegisterBenchmark(("W1_Flows/" + n).c_str(), Flows, p)
					->Args({flows, d})
					->UseRealTime();
	if (p->precision)
		for (int64_t count : {10000, 100000})
			if (!quick || count <= 10000)
				benchmark::RegisterBenchmark(("W2_Precision/" + n).c_str(), Precision, p)
					->Arg(count)
					->Iterations(1)
					->UseRealTime()
					->Unit(benchmark::kMillisecond);
	if (p->scale_create)
		for (int64_t pending : {1000, 10000, 100000, 1000000})
			if (!quick || pending <= 100000)
				benchmark::RegisterBenchmark(("W3_Scale/" + n).c_str(), Scale, p)
					->Arg(pending)
					->Iterations(quick ? 10 : 50)
					->UseRealTime()
					->Unit(benchmark::kMicrosecond);
	if (p->idle)
		for (int64_t d : {0, 1})
			benchmark::RegisterBenchmark(("W4_Idle/" + n).c_str(), Idle, p)
				->Arg(d)
				->Iterations(1)
				->UseRealTime()
				->Unit(benchmark::kMillisecond);
	if (p->offload_create)
		benchmark::RegisterBenchmark(("W5_Offload/" + n).c_str(), Offload, p)
			->UseRealTime()
			->Unit(benchmark::kMicrosecond);
}

} // namespace

int main(int argc, char **argv)
{
	std::vector<char *> args;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = true;
		else
			args.push_back(argv[i]);
	}
	int n = (int)args.size();
	args.push_back(nullptr);

	const peer *peers[] = {
		&peer_tmo,
		&peer_tmo_loop,
		&peer_tmo_ll,
#ifdef TMO_BENCH_HAVE_LIBUV
		&peer_libuv,
#endif
#ifdef TMO_BENCH_HAVE_LIBEVENT
		&peer_libevent,
#endif
		&peer_epoll,
	};
	std::string names;
	for (const peer *p : peers) {
		RegisterPeer(p);
		names += std::string(names.empty() ? "" : " ") + p->name;
		benchmark::AddCustomContext(std::string("how/") + p->name, p->how ? p->how : "");
	}
	benchmark::AddCustomContext("peers", names);
	benchmark::AddCustomContext("quick", quick ? "1" : "0");
#ifdef TMO_BENCH_HAVE_LIBUV
	benchmark::AddCustomContext("version/libuv", uv_version_string());
#endif
#ifdef TMO_BENCH_HAVE_LIBEVENT
	benchmark::AddCustomContext("version/libevent", event_get_version());
#endif
	signal(SIGPIPE, SIG_IGN);
	benchmark::Initialize(&n, args.data());
	if (benchmark::ReportUnrecognizedArguments(n, args.data()))
		return 2;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
