#!/usr/bin/env python3
"""tmo_bench rounds -> the tables of tmo's own costs (deadline tax, gap limits, scope shift, pool).

Usage: internal_report.py DIR ROUNDS JSON_OUT MD_OUT, where DIR holds round-1.json ... round-N.json,
each the google-benchmark JSON of one tmo_bench run. Called by scripts/bench.
"""
import json
import platform
import statistics
import sys

tmp, rounds, json_out, md_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
docs = [json.load(open(f"{tmp}/round-{r}.json")) for r in range(1, rounds + 1)]
json.dump(docs, open(json_out, "w"), indent=1)

# rate[(name, args)] = [items/s in round 1, round 2, ...]; failures are reported, not hidden.
# counter[(name, args)][counter name] = [value in round 1, ...] for the pool's latency counters.
rate, failed, counter = {}, set(), {}
for doc in docs:
    for b in doc["benchmarks"]:
        parts = [p for p in b.get("run_name", b["name"]).split("/") if p != "real_time"]
        key = (parts[0], tuple(int(p) for p in parts[1:]))
        if b.get("error_occurred"):
            failed.add(key)
            continue
        if "items_per_second" in b:
            rate.setdefault(key, []).append(b["items_per_second"])
        if key[0].startswith("BM_Pool"):
            for c, v in b.items():
                if c.endswith("_ns") or c == "completions/wakeup":
                    counter.setdefault(key, {}).setdefault(c, []).append(v)

def fmt_rate(r):
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.0f} k"

def tax(base, other):
    """Median and range of the per-round tax 1 - other/base, as text."""
    if not base or not other or len(base) != len(other):
        return "n/a"
    t = [(1 - o / b) * 100 for b, o in zip(base, other)]
    return f"{statistics.median(t):+.1f} % ({min(t):+.0f} to {max(t):+.0f})"

workloads = [("Nop, batches of 64", ("BM_Nop", ()))]
for n in sorted({k[1][0] for k in rate if k[0] == "BM_PingPong"}):
    workloads.append((f"PingPong, {n} flow{'s' if n != 1 else ''}", ("BM_PingPong", (n,))))

tax_lines = []
for label, (name, args) in workloads:
    r = [rate.get((name, args + (d,))) for d in (0, 1, 2)]
    if not r[0]:
        continue
    med = [statistics.median(x) if x else None for x in r]
    tax_lines.append("| " + " | ".join([
        label,
        " / ".join(fmt_rate(m) if m else "n/a" for m in med),
        " / ".join(f"{1e9 / m:,.0f}" if m else "n/a" for m in med),
        tax(r[0], r[1]),
        tax(r[0], r[2]),
    ]) + " |")

def added_time(base, other):
    """Median and range of the per-round extra time per item, other's over base's, as text."""
    if not base or not other or len(base) != len(other):
        return "n/a"
    t = [(b / o - 1) * 100 for b, o in zip(base, other)]
    return f"{statistics.median(t):+.1f} % ({min(t):+.0f} to {max(t):+.0f})"

gap_lines = []
for n in sorted({k[1][0] for k in rate if k[0] == "BM_StreamGap"}):
    r = [rate.get(("BM_StreamGap", (n, d))) for d in (0, 1, 2)]
    if not r[0]:
        continue
    med = [statistics.median(x) if x else None for x in r]
    gap_lines.append("| " + " | ".join([
        f"{n:,}",
        " / ".join(fmt_rate(m) if m else "n/a" for m in med),
        " / ".join(f"{1e9 / m:,.0f}" if m else "n/a" for m in med),
        added_time(r[0], r[1]),
        added_time(r[0], r[2]),
    ]) + " |")

def ns_per_shift(rates):
    """Median and range over the rounds of the time per shift (1 / items per second), as text."""
    if not rates:
        return "n/a"
    ns = [1e9 / x for x in rates]
    return f"{statistics.median(ns):.1f} ({min(ns):.1f} to {max(ns):.1f})"

shift_sizes = sorted({k[1][0] for k in rate
                      if k[0] in ("BM_ScopeShift", "BM_ScopeShiftOpDeadlines") and k[1]})
shift_lines = []
for label, name in [("reads without deadlines of their own", "BM_ScopeShift"),
                    ("each read with its own loop-kept deadline", "BM_ScopeShiftOpDeadlines")]:
    cells = [ns_per_shift(rate.get((name, (n,)))) for n in shift_sizes]
    if any(c != "n/a" for c in cells):
        shift_lines.append(f"| {label} | " + " | ".join(cells) + " |")

def med(key, c, scale=1e-3, fmt="{:.1f}"):
    """Median over the rounds of one counter (ns shown as µs by default), as text."""
    v = counter.get(key, {}).get(c)
    return fmt.format(statistics.median(v) * scale) if v else "n/a"

wake_names = {1: "futex", 2: "eventfd"}
pool_lines = []
for wake in (1, 2):
    for threads in sorted({k[1][1] for k in list(rate) + list(counter)
                           if k[0] in ("BM_PoolRoundTrip", "BM_PoolFlood") and k[1][0] == wake}):
        rt, fl = ("BM_PoolRoundTrip", (wake, threads)), ("BM_PoolFlood", (wake, threads))
        fr = rate.get(fl)
        pool_lines.append("| " + " | ".join([
            wake_names[wake], str(threads),
            f"{med(rt, 'p50_ns')} / {med(rt, 'p99_ns')} / {med(rt, 'max_ns')}",
            fmt_rate(statistics.median(fr)) if fr else "n/a",
            med(fl, "completions/wakeup", 1, "{:.0f}"),
        ]) + " |")
hung_lines = []
for overrun, label in ((1, "interrupt (the pool's signal frees the worker)"),
                       (0, "abandon (the benchmark frees the worker from the callback)")):
    key = ("BM_PoolHungTimeout", (overrun,))
    if key in counter:
        hung_lines.append(f"| {label} | {med(key, 'late_p50_ns')} / {med(key, 'late_p99_ns')} | "
                          f"{med(key, 'free_p50_ns')} / {med(key, 'free_p99_ns')} |")

sections = []
if tax_lines:
    sections += [
        "Deadline tax: throughput lost when every operation (Nop) or every recv (PingPong) carries a",
        "deadline 10 s ahead that never fires, kept by a linked timeout per op (the default,",
        "TMO_DEADLINES_KERNEL) or by the loop's heap (TMO_DEADLINES_LOOP). The tax is computed per",
        "round from variants run back to back; the table gives its median over the rounds and, in",
        "brackets, the lowest and highest round. Rates and times are medians over the rounds.",
        "",
        "| workload | items/s: none / linked / loop-kept | ns per item: none / linked / loop-kept "
        "| tax, linked timeouts | tax, loop-kept |",
        "|---|---:|---:|---:|---:|",
        *tax_lines,
        "",
    ]
if gap_lines:
    sections += [
        "Gap-limit tax (StreamGap): N AF_UNIX socketpairs, each read by a tmo_reader",
        "(TMO_FRAME_CHUNK) whose peer, driven by plain ops on the same loop, bounces one byte with",
        "it: the reader's callback echoes each chunk, the peer sends the next byte on receiving",
        "the echo. One item is one DATA event (one byte). The reader has no limits, or a gap limit",
        "of 10 s that never fires, kept by a linked timeout per read or by the loop's heap; the",
        "peer's ops never carry a deadline. Tax = extra time per item with the limit",
        "(t_limit / t_none - 1), computed per round from variants run back to back: median over",
        "the rounds, lowest and highest round in brackets. Rates and times are medians.",
        "",
        "| streams | items/s: none / linked / loop-kept | ns per item: none / linked / loop-kept "
        "| tax, linked timeouts | tax, loop-kept |",
        "|---:|---:|---:|---:|---:|",
        *gap_lines,
        "",
    ]
if shift_lines:
    sections += [
        "Scope shift: ns per tmo_scope_shift() (+1 ms and -1 ms in turn, the deadline 60 s ahead)",
        "of a scope holding N pending reads on an idle pipe; median over the rounds, range in",
        "brackets. The scope's deadline is one entry in the loop's heap, so the cost should not",
        "grow with N; with every read's own deadline in the heap too, it holds N + 1 entries.",
        "",
        "| scope holding N pending reads | " + " | ".join(f"N = {n:,}" for n in shift_sizes) + " |",
        "|---|" + "---:|" * len(shift_sizes),
        *shift_lines,
        "",
    ]

if pool_lines:
    sections += [
        "Worker pool: a no-op job (its function returns 0 at once, deadline 10 s ahead) on a",
        "pool of 1 or 4 threads waking the loop by a futex (IORING_OP_FUTEX_WAIT) or an eventfd.",
        "Round trip: one job at a time, tmo_now() before tmo_job_start to tmo_now() in the",
        "callback on the loop, percentiles over every round trip of a round. Flood: 1,024 jobs",
        "keeping a queue of 1,024 full, each restarted from its callback; completions per wake-up",
        "from tmo_pool_get_stats (wake-ups are completions of the pool's request on the ring; with",
        "the futex, the loop drains results already posted without arming it, so it counts fewer",
        "of them). Medians over the rounds.",
        "",
        "| wake | threads | round trip µs: p50 / p99 / max | flood jobs/s | completions per wake-up |",
        "|---|---:|---:|---:|---:|",
        *pool_lines,
        "",
    ]
if hung_lines:
    sections += [
        "Hung job: a function blocked on a futex, deadline 1 ms ahead, one worker. Lateness of",
        "the -ETIME callback and time until the worker is free again (release callback seen),",
        "both from the deadline, µs; medians over the rounds.",
        "",
        "| overrun | -ETIME callback late: p50 / p99 | worker free after: p50 / p99 |",
        "|---|---:|---:|",
        *hung_lines,
        "",
    ]

ctx = docs[0].get("context", {})
text = "\n".join([
    *sections,
    f"{rounds} rounds; {ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, "
    f"Linux {platform.release()}, {ctx.get('date', '')}",
]) + "\n"
if failed:
    text += "\nFailed: " + ", ".join(f"{n}/{'/'.join(map(str, a))}" for n, a in sorted(failed)) + "\n"
open(md_out, "w").write(text)
