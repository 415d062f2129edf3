#!/usr/bin/env python3
"""
The Python asyncio peer of the comparison (bench/peers/peer.h defines the workloads): the same
five workloads with the same parameters as peer_bench, written the way asyncio's users write
them (streams, asyncio.timeout(), loop.call_at(), asyncio.to_thread()), on the default event
loop of CPython 3.11 (selector loop over epoll), standard library only. Writes
google-benchmark-shaped JSON so that the report reads it like peer_bench's.

  python3 bench/peers/asyncio_peer.py --out FILE [--quick] [--filter REGEX] [--min-time S]
                                      [--cold-malloc]

--min-time applies to W1 and W3 (default 0.3 s, 0.05 s with --quick); W2 is one run of each
size, W4 runs 2 s (0.5 s), W5 1 s (0.2 s). --cold-malloc: see warm_malloc(). A benchmark that
fails, or whose checks fail, gets an entry with error_occurred and the run goes on; the exit
status is 0 unless the arguments were bad.
"""
import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import random
import re
import resource
import socket
import sys
import time
import traceback

NSEC_PER_SEC = 1_000_000_000
NSEC_PER_MSEC = 1_000_000

FLOW_DEADLINE_S = 10.0         # PEER_FLOW_DEADLINE_NS
FLOW_ITEMS_PER_ITER = 1024
SCALE_TIMEOUT_S = 3600.0       # PEER_SCALE_TIMEOUT_NS
SCALE_BATCH = 1000
IDLE_CONNS = 10_000
IDLE_ACTIVE = 10
IDLE_INTERVAL_NS = NSEC_PER_MSEC   # PEER_IDLE_INTERVAL_NS
IDLE_GAP_S = 60.0
IDLE_BYTE = 0x5A
PRECISION_SEED = 20240601      # fixed, so every run arms the deadlines in the same order

# One bytes object per value, so that a send does not build a new one.
BYTE = [bytes((i,)) for i in range(256)]


class BenchError(Exception):
    """A check failed or the workload could not run: reported as the benchmark's error."""


def now_ns():
    # CLOCK_MONOTONIC, the clock of peer_now() and of asyncio's loop.time() (time.monotonic()).
    return time.monotonic_ns()


def nearest_rank(sorted_v, p):
    """As rank() in bench/workloads.c: the smallest sample with at least p of them at or below
    it."""
    n = len(sorted_v)
    k = int(p * n + 0.999999)
    k = min(max(k, 1), n)
    return sorted_v[k - 1]


def new_loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def close_loop(loop):
    """What asyncio.run() does on the way out: cancel what is left, then close."""
    try:
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in left:
            t.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def gbench_iterations(min_time_s, run):
    """google-benchmark's way to pick the iteration count: run(n) returns the elapsed ns of n
    iterations; grow n (at most x10 a step, aiming 40% past min_time) until a run lasts at
    least min_time. Returns (n, elapsed_ns, extra) of the last run."""
    n = 1
    while True:
        elapsed, extra = run(n)
        secs = elapsed / NSEC_PER_SEC
        if secs >= min_time_s or n >= 1_000_000_000:
            return n, elapsed, extra
        mult = min_time_s * 1.4 / max(secs, 1e-9)
        if secs / min_time_s <= 0.1:
            mult = 10.0
        mult = min(mult, 10.0)
        n = max(int(mult * n), n + 1)


def entry(name, iterations, real_ns, cpu_ns, items=None, **counters):
    e = {
        "name": name,
        "family_index": 0,
        "per_family_instance_index": 0,
        "run_name": name,
        "run_type": "iteration",
        "repetitions": 1,
        "repetition_index": 0,
        "threads": 1,
        "iterations": iterations,
        "real_time": real_ns / iterations,
        "cpu_time": cpu_ns / iterations,
        "time_unit": "ns",
    }
    if items is not None and real_ns > 0:
        e["items_per_second"] = items * NSEC_PER_SEC / real_ns
    for k, v in counters.items():
        e[k] = float(v)
    return e


# ---- Workload 1: a deadline on every read ------------------------------------------------

class Flows:
    """`flows` socketpairs, each end an asyncio stream (StreamReader/StreamWriter) read by its
    own task, bouncing one byte: the opener sends 0, 1, 2, ...; the replier echoes. Every read
    carries a fresh 10 s deadline when mode is "timeout" (async with asyncio.timeout(10), the
    3.11 idiom) or "wait_for" (asyncio.wait_for(reader.read(1), 10), the older one); none when
    mode is None. Every write is followed by await writer.drain(), as the streams docs ask
    ("The intended use is to write w.write(data); await w.drain()"): it returns at once while
    the transport's buffer is below its high-water mark, which it always is here."""

    def __init__(self, flows, mode):
        self.flows = flows
        self.mode = mode
        self.loop = new_loop()
        self.received = 0
        self.target = 0
        self.done = None
        self.error = None
        self.tasks = []
        self.writers = []
        self.ends = []
        try:
            self.loop.run_until_complete(self._open())
        except BaseException:
            self.close()
            raise

    async def _open(self):
        for _ in range(self.flows):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                ra, wa = await asyncio.open_unix_connection(sock=a)
            except BaseException:
                a.close()
                b.close()
                raise
            self.writers.append(wa)
            try:
                rb, wb = await asyncio.open_unix_connection(sock=b)
            except BaseException:
                b.close()
                raise
            self.writers.append(wb)
            self.ends.append((ra, wa, rb, wb))

    def _start(self):
        # Every flow is open before any starts bouncing. The replier's task starts first, so
        # its read is pending before the opener's first byte leaves; the opener arms its own
        # read right after sending, before the echo can come back (that takes the replier's
        # turn in the loop).
        for ra, wa, rb, wb in self.ends:
            self.tasks.append(self.loop.create_task(self._side(rb, wb, True)))
            self.tasks.append(self.loop.create_task(self._side(ra, wa, False)))
        self.ends = None

    def _fail(self, msg):
        if self.error is None:
            self.error = msg
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def _side(self, reader, writer, replier):
        mode = self.mode
        expect = 0
        try:
            if not replier:
                writer.write(BYTE[0])
                await writer.drain()
            while True:
                if mode == "timeout":
                    async with asyncio.timeout(FLOW_DEADLINE_S):
                        b = await reader.read(1)
                elif mode == "wait_for":
                    b = await asyncio.wait_for(reader.read(1), FLOW_DEADLINE_S)
                else:
                    b = await reader.read(1)
                if b != BYTE[expect]:
                    self._fail(f"flow got {b!r}, expected {BYTE[expect]!r}")
                    return
                expect = (expect + 1) & 0xFF
                self.received += 1
                if self.received == self.target and not self.done.done():
                    self.done.set_result(None)
                writer.write(b if replier else BYTE[expect])
                await writer.drain()
        except TimeoutError:
            self._fail(f"a {FLOW_DEADLINE_S:g} s read deadline fired")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure ends the run with its reason
            self._fail(f"flow failed: {exc!r}")

    def run(self, items):
        """Runs the loop until `items` more messages have been received since the previous
        call's target (overshoot counts toward the next), as peer.h's flows_run."""
        if not self.tasks:
            self._start()
        self.target += items
        if self.error is None and self.received < self.target:
            self.done = self.loop.create_future()
            self.loop.run_until_complete(self.done)
            self.done = None
        if self.error is not None:
            raise BenchError(self.error)

    def close(self):
        for w in self.writers:
            w.close()
        close_loop(self.loop)


def bench_flows(name, flows, mode, min_time):
    fl = Flows(flows, mode)
    try:
        fl.run(FLOW_ITEMS_PER_ITER)  # every flow bouncing before the clock starts

        def run(n):
            c0 = time.process_time_ns()
            t0 = time.perf_counter_ns()
            fl.run(n * FLOW_ITEMS_PER_ITER)
            t1 = time.perf_counter_ns()
            return t1 - t0, time.process_time_ns() - c0

        n, real, cpu = gbench_iterations(min_time, run)
    finally:
        fl.close()
    return entry(name, n, real, cpu, items=n * FLOW_ITEMS_PER_ITER)


# ---- Workload 2: precision of deadlines that fire ----------------------------------------

def precision_offsets(n):
    """n offsets spread uniformly over one second (i * 1 s / n, as peer_bench), shuffled with a
    fixed seed (Python's Mersenne Twister, so not peer_bench's order)."""
    off = [i * NSEC_PER_SEC // n for i in range(n)]
    random.Random(PRECISION_SEED).shuffle(off)
    return off


def precision_counters(late, armed_ns):
    s = sorted(late)
    c = {"late_min_ns": s[0]}
    for tag, p in (("p1", 0.01), ("p10", 0.10), ("p25", 0.25), ("p50", 0.50), ("p75", 0.75),
                   ("p90", 0.90), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
        c[f"late_{tag}_ns"] = nearest_rank(s, p)
    c["late_max_ns"] = s[-1]
    c["early"] = sum(1 for v in late if v < 0)
    c["armed_before_due_ns"] = -armed_ns
    return c


async def precision_call_at(lead_ns, offsets, late):
    """One loop.call_at() per deadline (what asyncio.timeout() arms underneath), due at
    base + offset[i] converted to loop time: loop.time() is time.monotonic(), seconds of the
    same CLOCK_MONOTONIC as time.monotonic_ns(), so due_ns / 1e9 is the loop time of due_ns
    (a double holds it to well under a nanosecond)."""
    loop = asyncio.get_running_loop()
    n = len(offsets)
    fired = bytearray(n)
    left = n
    done = loop.create_future()
    problem = []

    def on_due(i, due):
        t = time.monotonic_ns()  # the moment the user's code learns of it
        nonlocal left
        if fired[i]:
            problem.append(f"deadline {i} fired twice")
            return
        fired[i] = 1
        late[i] = t - due
        left -= 1
        if left == 0:
            done.set_result(None)

    base = now_ns() + lead_ns
    for i in range(n):
        due = base + offsets[i]
        loop.call_at(due / NSEC_PER_SEC, on_due, i, due)
    armed = now_ns() - base
    return await precision_finish(done, base, armed, offsets, fired, problem)


async def precision_timeout(lead_ns, offsets, late):
    """The same deadlines kept the way asyncio users wait with one: n tasks, each waiting
    (on a future nobody completes, standing for a read) under async with
    asyncio.timeout_at(due). The user's code learns of the deadline when TimeoutError reaches
    it: the timer's callback cancels the task, which runs in a later loop turn. Arming ends
    when the last task has entered its timeout."""
    loop = asyncio.get_running_loop()
    n = len(offsets)
    fired = bytearray(n)
    left = n
    entered = 0
    armed_at = 0
    done = loop.create_future()
    problem = []

    async def sleeper(i, due):
        nonlocal left, entered, armed_at
        try:
            async with asyncio.timeout_at(due / NSEC_PER_SEC):
                entered += 1
                if entered == n:
                    armed_at = now_ns()
                await loop.create_future()
        except TimeoutError:
            t = time.monotonic_ns()
            if fired[i]:
                problem.append(f"deadline {i} fired twice")
                return
            fired[i] = 1
            late[i] = t - due
            left -= 1
            if left == 0:
                done.set_result(None)
            return
        problem.append(f"sleeper {i} woke without its deadline")

    base = now_ns() + lead_ns
    tasks = [asyncio.create_task(sleeper(i, base + offsets[i])) for i in range(n)]
    try:
        while entered < n and not done.done():
            await asyncio.sleep(0)
        return await precision_finish(done, base, armed_at - base, offsets, fired, problem)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def precision_finish(done, base, armed, offsets, fired, problem):
    first = min(offsets)
    if armed > first:
        raise BenchError(f"arming ran {(armed - first) / 1e6:.1f} ms past the first due time")
    guard_s = (base + max(offsets) - now_ns()) / NSEC_PER_SEC + 5.0
    try:
        async with asyncio.timeout(guard_s):
            await done
    except TimeoutError:
        raise BenchError(f"{fired.count(0)} of {len(fired)} deadlines never fired") from None
    # A deadline firing twice would have done so by now: give the loop turns to show it.
    await asyncio.sleep(0.01)
    if problem:
        raise BenchError(problem[0])
    if fired.count(1) != len(fired):
        raise BenchError("not every deadline fired exactly once")
    return armed


def bench_precision(name, n, how, per_deadline_lead_ns=3000):
    lead_ns = 100 * NSEC_PER_MSEC + n * per_deadline_lead_ns
    offsets = precision_offsets(n)
    late = [0] * n
    gc.collect()
    loop = new_loop()
    try:
        c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        armed = loop.run_until_complete(how(lead_ns, offsets, late))
        t1 = time.perf_counter_ns()
        c1 = time.process_time_ns()
    finally:
        close_loop(loop)
    return entry(name, 1, t1 - t0, c1 - c0, lead_ns=lead_ns, **precision_counters(late, armed))


# ---- Workload 3: cost of arming and cancelling with many pending ---------------------------

def proc_kb(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line[len(key):].split()[0]) * 1024
    except OSError:
        pass
    return -1


def slabinfo_bytes():
    """As common.c: active objects x object size over /proc/slabinfo (root only)."""
    total = 0
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("#") or line.startswith("slabinfo"):
                    continue
                parts = line.split()
                if len(parts) >= 4:
                    total += int(parts[1]) * int(parts[3])
    except (OSError, ValueError):
        return -1
    return total


def mem_read():
    rss = proc_kb("/proc/self/status", "VmRSS:")
    kern, src = slabinfo_bytes(), "/proc/slabinfo"
    if kern < 0:
        kern, src = proc_kb("/proc/meminfo", "Slab:"), "/proc/meminfo Slab"
    if rss < 0 or kern < 0:
        raise BenchError("cannot read VmRSS or slab usage from /proc")
    return rss, kern, src


def noop():
    pass


def malloc_trim():
    try:
        import ctypes
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


async def scale(pending, min_time):
    """`pending` handles from loop.call_at(loop.time() + 3600, cb), kept as users keep them
    (to cancel them later); then batches of 1000 more armed and cancelled with
    handle.cancel(). asyncio deletes lazily: cancel() only marks the handle, and the loop's
    next turn drops cancelled handles from the heap's head, or rebuilds the heap without them
    once more than half of it is cancelled. That deferred work is part of what a cancel costs,
    so the cancel phase is the cancel() calls plus the loop turn that follows, and timing
    covers whole rebuild cycles (a batch's handles are due after every pending one, so they
    are never at the head: the heap is rebuilt every pending // batch + 1 batches)."""
    loop = asyncio.get_running_loop()
    call_at = loop.call_at
    ltime = loop.time
    gc.collect()
    malloc_trim()  # as peer_bench: memory freed by earlier benchmarks would hide this one's
    rss0, kern0, _ = mem_read()
    held = [call_at(ltime() + SCALE_TIMEOUT_S, noop) for _ in range(pending)]
    rss1, kern1, src = mem_read()
    await asyncio.sleep(0)

    batch = [None] * SCALE_BATCH
    cycle = pending // SCALE_BATCH + 1
    arm = cancel_call = cleanup = 0
    iters = 0
    c0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    while True:
        for _ in range(cycle):
            a = now_ns()
            for j in range(SCALE_BATCH):
                batch[j] = call_at(ltime() + SCALE_TIMEOUT_S, noop)
            b = now_ns()
            for h in batch:
                h.cancel()
            c = now_ns()
            await asyncio.sleep(0)  # one loop turn: the lazy deletion
            d = now_ns()
            arm += b - a
            cancel_call += c - b
            cleanup += d - c
        iters += cycle
        if time.perf_counter_ns() - t0 >= min_time * NSEC_PER_SEC:
            break
    real = time.perf_counter_ns() - t0
    cpu = time.process_time_ns() - c0
    if len(loop._scheduled) != pending:  # private, read only as a check: nothing lost
        raise BenchError(f"{len(loop._scheduled)} timers in the heap, expected {pending}")
    for h in held:
        h.cancel()
    held = None
    await asyncio.sleep(0)
    per = iters * SCALE_BATCH
    return iters, real, cpu, {
        "arm_ns": arm / per,
        "cancel_ns": (cancel_call + cleanup) / per,
        "cancel_call_ns": cancel_call / per,
        "cleanup_ns": cleanup / per,
        "rss_per_pending_bytes": (rss1 - rss0) / pending,
        "kernel_per_pending_bytes": (kern1 - kern0) / pending,
    }, src


_py_heap_per_timer = None


def py_heap_per_timer():
    """Python heap bytes per pending timer (TimerHandle, its copy of the context, its slots in
    the loop's heap and in the user's list), from tracemalloc over 10,000 of them: VmRSS
    deltas miss memory that pymalloc reuses from earlier benchmarks. Measured once."""
    global _py_heap_per_timer
    if _py_heap_per_timer is None:
        import tracemalloc
        n = 10_000
        loop = new_loop()
        try:
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            held = [loop.call_at(loop.time() + SCALE_TIMEOUT_S, noop) for _ in range(n)]
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            for h in held:
                h.cancel()
            del held
        finally:
            close_loop(loop)
        _py_heap_per_timer = (after - before) / n
    return _py_heap_per_timer


def bench_scale(name, pending, min_time):
    loop = new_loop()
    try:
        iters, real, cpu, counters, src = loop.run_until_complete(scale(pending, min_time))
    finally:
        close_loop(loop)
    e = entry(name, iters, real, cpu, items=iters * SCALE_BATCH,
              py_heap_per_pending_bytes=py_heap_per_timer(), **counters)
    e["label"] = f"kernel memory from {src}"
    return e


# ---- Workload 4: idle connections with gap deadlines --------------------------------------

def sender_child(ctrl, conns, active, run_ns):
    """The sender process: receives the far ends over `ctrl`, says ready, waits for go, then
    writes one byte to each of the first `active` every 1 ms on a clock-aligned tick for
    run_ns, and reports on `ctrl` how many bytes it sent."""
    code = 0
    fds = []
    try:
        while len(fds) < conns:
            _msg, got, flags, _ = socket.recv_fds(ctrl, 16, 253)
            if not got or flags & socket.MSG_CTRUNC:
                raise OSError("lost fds on the control socket")
            fds.extend(got)
        ctrl.sendall(b"R")
        if ctrl.recv(16) != b"G":
            raise OSError("no go")
        start = time.monotonic_ns()
        end = start + run_ns
        tick = (start // IDLE_INTERVAL_NS + 1) * IDLE_INTERVAL_NS
        sent = 0
        byte = BYTE[IDLE_BYTE]
        while tick < end:
            d = tick - time.monotonic_ns()
            if d > 0:
                time.sleep(d / NSEC_PER_SEC)
            for fd in fds[:active]:
                sent += os.write(fd, byte)
            tick += IDLE_INTERVAL_NS
        ctrl.sendall(b"S%d" % sent)
        ctrl.recv(16)  # the parent closing its end: the run is over
    except (BrokenPipeError, ConnectionResetError):
        code = 1  # the parent gave up on the run and closed its ends: it knows why
    except BaseException:  # noqa: BLE001 -- the child reports by its exit status
        traceback.print_exc()
        code = 1
    os._exit(code)


class Idle:
    def __init__(self, deadline):
        self.deadline = deadline
        self.bytes = 0
        self.timeouts = 0
        self.waiting = 0
        self.error = None
        self.all_waiting = None
        self.stopped = None

    def fail(self, msg):
        if self.error is None:
            self.error = msg
        if self.stopped is not None and not self.stopped.done():
            self.stopped.set_result(None)

    async def conn(self, sock, writers):
        """One task per connection, as a server has: read whatever comes (up to 64 bytes)
        under a 60 s gap deadline, re-armed for every read (async with asyncio.timeout(60))."""
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        writers.append(writer)
        self.waiting += 1
        if self.waiting == IDLE_CONNS:
            self.all_waiting.set_result(None)
        try:
            while True:
                if self.deadline:
                    async with asyncio.timeout(IDLE_GAP_S):
                        data = await reader.read(64)
                else:
                    data = await reader.read(64)
                if not data:
                    self.fail("a connection saw EOF: the sender died")
                    return
                if data.count(IDLE_BYTE) != len(data):
                    self.fail(f"a connection got {data!r}")
                    return
                self.bytes += len(data)
        except TimeoutError:
            self.timeouts += 1
            self.fail(f"a {IDLE_GAP_S:g} s gap deadline fired")


def bench_idle(name, deadline, run_s):
    run_ns = int(run_s * NSEC_PER_SEC)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_CONNS + 1000
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise BenchError(f"needs {want} fds, the hard RLIMIT_NOFILE is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    # The far ends go to the child over a SOCK_SEQPACKET control socket (message boundaries
    # keep each SCM_RIGHTS batch whole) and are closed here, so that neither process holds
    # 20,000 fds. Fork before any loop exists: the child is plain blocking code.
    ctrl, child_ctrl = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    gc.collect()
    pid = os.fork()
    if pid == 0:
        ctrl.close()
        sender_child(child_ctrl, IDLE_CONNS, IDLE_ACTIVE, run_ns)
    child_ctrl.close()
    mine = []
    loop = None
    try:
        chunk = 250
        for i in range(0, IDLE_CONNS, chunk):
            far = []
            try:
                for _ in range(min(chunk, IDLE_CONNS - i)):
                    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                    mine.append(a)
                    far.append(b)
                socket.send_fds(ctrl, [b"F"], [s.fileno() for s in far])
            finally:
                for s in far:
                    s.close()
        if ctrl.recv(16) != b"R":
            raise BenchError("the sender did not get every connection")

        loop = new_loop()
        st = Idle(deadline)
        result = loop.run_until_complete(idle_run(st, mine, ctrl, run_ns))
        mine = []  # the transports own and closed them
    finally:
        if loop is not None:
            close_loop(loop)
        for s in mine:  # close() is a no-op on those a transport closed
            s.close()
        ctrl.close()
        _, status = os.waitpid(pid, 0)
    if status != 0:
        raise BenchError(f"the sender process failed (wait status {status})")
    wall, cpu, got, sent, timeouts, faults = result
    # Minor page faults per second of the run: asyncio's socket transport reads with
    # sock.recv(256 KiB), and glibc may serve each such buffer with a fresh mmap
    # (python/cpython#85451), which shows here and in cpu_per_s.
    return entry(name, 1, wall, cpu, cpu_per_s=cpu / wall, bytes=got, sent=sent,
                 timeouts=timeouts, wall_s=wall / NSEC_PER_SEC,
                 minflt_per_s=faults * NSEC_PER_SEC / wall)


async def idle_run(st, socks, ctrl, run_ns):
    loop = asyncio.get_running_loop()
    st.all_waiting = loop.create_future()
    st.stopped = loop.create_future()
    writers = []
    tasks = [asyncio.create_task(st.conn(s, writers)) for s in socks]
    try:
        async with asyncio.timeout(60):
            await st.all_waiting
        await asyncio.sleep(0)  # the last task reached its read in the same turn it counted
        if st.error:
            raise BenchError(st.error)
        # Setting up 10,000 connections leaves ~300,000 young objects, whose first full
        # collections (50-150 ms each) would otherwise land in the run. A server whose
        # connections came in a while ago has had them; so has this one before the clocks start.
        gc.collect()

        sent = None
        marks = {}

        def on_ctrl():
            nonlocal sent
            c1 = time.process_time_ns()
            t1 = time.perf_counter_ns()
            f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            msg = ctrl.recv(64)
            marks["stop"] = (t1, c1, f1)
            loop.remove_reader(ctrl.fileno())
            if not msg.startswith(b"S"):
                st.fail(f"the sender said {msg!r}")
                return
            sent = int(msg[1:])
            if not st.stopped.done():
                st.stopped.set_result(None)

        ctrl.setblocking(False)
        loop.add_reader(ctrl.fileno(), on_ctrl)
        # start(): the clocks, then the sender.
        bytes0 = st.bytes
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter_ns()
        c0 = time.process_time_ns()
        ctrl.send(b"G")
        async with asyncio.timeout(run_ns / NSEC_PER_SEC + 30):
            await st.stopped
        if st.error:
            raise BenchError(st.error)
        t1, c1, f1 = marks["stop"]
        # Bytes still in flight when the sender stopped: let them arrive, then check the
        # count against what the sender wrote.
        limit = time.monotonic() + 1.0
        while st.bytes - bytes0 < sent and time.monotonic() < limit:
            await asyncio.sleep(0.001)
        got = st.bytes - bytes0
        if st.error:
            raise BenchError(st.error)
        if st.timeouts:
            raise BenchError(f"{st.timeouts} gap deadlines fired")
        if got != sent:
            raise BenchError(f"received {got} bytes, the sender wrote {sent}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in writers:
            w.close()
        await asyncio.sleep(0)

    return t1 - t0, c1 - c0, got, sent, st.timeouts, f1 - f0


# ---- Workload 5: offloading a blocking call ------------------------------------------------

async def offload(run_s):
    """await asyncio.to_thread(noop), one after another, on the loop's default executor (a
    ThreadPoolExecutor of min(32, cpus + 4) threads, made at first use): each timed from just
    before the call to the awaiting task resuming on the loop thread with the result."""
    to_thread = asyncio.to_thread
    for _ in range(100):  # untimed: the executor and its first thread exist before timing
        await to_thread(noop)
    samples = []
    add = samples.append
    c0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    end = t0 + int(run_s * NSEC_PER_SEC)
    while True:
        a = time.monotonic_ns()
        r = await to_thread(noop)
        b = time.monotonic_ns()
        if r is not None:
            raise BenchError(f"the job returned {r!r}")
        add(b - a)
        if len(samples) % 64 == 0 and time.perf_counter_ns() >= end:
            break
    real = time.perf_counter_ns() - t0
    cpu = time.process_time_ns() - c0
    return samples, real, cpu


def bench_offload(name, run_s):
    loop = new_loop()
    try:
        samples, real, cpu = loop.run_until_complete(offload(run_s))
    finally:
        close_loop(loop)
    s = sorted(samples)
    return entry(name, len(s), real, cpu, items=len(s), p50_ns=nearest_rank(s, 0.50),
                 p99_ns=nearest_rank(s, 0.99), max_ns=s[-1])


# ---- Driver --------------------------------------------------------------------------------

def benchmarks(quick, min_time):
    w1_min = min_time if min_time is not None else (0.05 if quick else 0.3)
    w3_min = w1_min
    out = []
    for flows in (1, 64, 256, 1024):
        for dl in (0, 1):
            out.append((f"W1_Flows/asyncio/{flows}/{dl}", bench_flows,
                        (flows, "timeout" if dl else None, w1_min)))
    out.append(("W1_Flows/asyncio-wait_for/256/1", bench_flows, (256, "wait_for", w1_min)))
    for n in ((10_000,) if quick else (10_000, 100_000)):
        out.append((f"W2_Precision/asyncio/{n}", bench_precision, (n, precision_call_at)))
    # Not in the C matrix: the same deadlines as tasks under asyncio.timeout_at(). Making a
    # task and entering its timeout takes ~15 us here, more than the 3 us per deadline of
    # lead the matrix allows, so this one gets 30 us per deadline (lead_ns says so).
    out.append(("W2_Precision/asyncio-timeout/10000", bench_precision,
                (10_000, precision_timeout, 30_000)))
    for p in ((1000, 10_000, 100_000) if quick else (1000, 10_000, 100_000, 1_000_000)):
        out.append((f"W3_Scale/asyncio/{p}", bench_scale, (p, w3_min)))
    for dl in (0, 1):
        out.append((f"W4_Idle/asyncio/{dl}", bench_idle, (bool(dl), 0.5 if quick else 2.0)))
    out.append(("W5_Offload/asyncio", bench_offload, (0.2 if quick else 1.0,)))
    return out


def warm_malloc():
    """asyncio's socket transport reads with sock.recv(256 KiB) (selector_events.py, max_size)
    and shrinks the result to what arrived. While glibc's mmap threshold is at its starting
    128 KiB, every such buffer is a fresh mmap, faulted in, shrunk and unmapped: two page
    faults and ~15 us per read on this machine (python/cpython#85451). The threshold rises
    for good the first time the process frees a bigger mmapped block, which any long-running
    server soon does (a large read, a dict or list that grew and went away); whether it has
    happened would otherwise depend on which benchmarks ran before. Free one 1 MiB block
    first, so that every benchmark sees that steady state (--cold-malloc does not)."""
    b = bytearray(1 << 20)
    del b


def loop_kind():
    loop = asyncio.new_event_loop()
    try:
        sel = getattr(loop, "_selector", None)
        return type(loop).__name__ + (f" ({type(sel).__name__})" if sel else "")
    finally:
        loop.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--quick", action="store_true", help="short runs, smaller sizes")
    ap.add_argument("--filter", default="", help="regex matched (re.search) against names")
    ap.add_argument("--cold-malloc", action="store_true",
                    help="leave glibc malloc as Python starts it (see warm_malloc)")
    ap.add_argument("--min-time", type=float, default=None,
                    help="seconds per W1/W3 benchmark (default 0.3, 0.05 with --quick)")
    args = ap.parse_args()
    try:
        pat = re.compile(args.filter)
    except re.error as e:
        ap.error(f"bad --filter: {e}")
    if args.min_time is not None and not args.min_time > 0:
        ap.error("--min-time must be positive")

    if not args.cold_malloc:
        warm_malloc()
    results = []
    families = {}
    for name, fn, params in benchmarks(args.quick, args.min_time):
        if not pat.search(name):
            continue
        fam = name.split("/")[0]
        family = families.setdefault(fam, [len(families), 0])
        gc.collect()
        t = time.perf_counter()
        try:
            e = fn(name, *params)
        except Exception as exc:  # noqa: BLE001 -- reported, and the next one runs
            msg = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
            e = {"name": name, "run_name": name, "run_type": "iteration",
                 "error_occurred": True, "error_message": msg}
        e["family_index"], e["per_family_instance_index"] = family
        family[1] += 1
        results.append(e)
        shown = e.get("error_message") or " ".join(
            f"{k}={v:.4g}" for k, v in e.items()
            if k in ("real_time", "items_per_second", "late_p50_ns", "late_p99_ns",
                     "arm_ns", "cancel_ns", "rss_per_pending_bytes", "cpu_per_s",
                     "p50_ns", "p99_ns"))
        print(f"{name:40s} {time.perf_counter() - t:6.2f}s  {shown}", file=sys.stderr)

    doc = {
        "context": {
            "peer": "asyncio",
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "event_loop": loop_kind(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host_name": platform.node(),
            "executable": sys.argv[0],
            "num_cpus": os.cpu_count(),
            "quick": args.quick,
            "malloc": "cold" if args.cold_malloc else "warm (1 MiB freed at start)",
            "library_build_type": "release",
        },
        "benchmarks": results,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
