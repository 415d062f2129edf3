#!/usr/bin/env python3
"""The comparison's summary: reads the runs scripts/bench made and writes latest.json,
latest.md (ratios tmo / peer per workload, each target met or missed, then tmo's own tables)
and the gnuplot plots.

Input files in --dir: peers-r<round>-<peer>-w1.json (workload 1, one per round and peer) and
peers-r1-<peer>-w2345.json (workloads 2 to 5), each a google-benchmark JSON document (or
asyncio_peer.py's of the same shape); internal.json / internal.md from internal_report.py.
"""
import argparse
import glob
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--rounds", type=int, required=True)
ap.add_argument("--quick", action="store_true")
args = ap.parse_args()

PEER_ORDER = ["tmo", "tmo-loop", "tmo-ll", "libuv", "libevent", "epoll", "asyncio",
              "asyncio-wait_for"]
PEERS_COMPARED = ["libuv", "libevent", "epoll", "asyncio"]

runs = []    # every document, with where it came from
w1 = {}      # (peer, flows, deadline) -> {round: items/s}
res = {}     # (workload, peer, arg) -> the benchmark's entry (workloads 2 to 5)
failed = []  # "name: why"
contexts = {}
for path in sorted(glob.glob(os.path.join(args.dir, "peers-r*-*.json"))):
    m = re.match(r"peers-r(\d+)-(.+)-(w1|w2345)\.json$", os.path.basename(path))
    if not m:
        continue
    rnd, file_peer, part = int(m.group(1)), m.group(2), m.group(3)
    try:
        doc = json.load(open(path))
    except (OSError, ValueError) as e:
        failed.append(f"{file_peer} {part}: unreadable output ({e})")
        continue
    runs.append({"round": rnd, "peer": file_peer, "part": part, "doc": doc})
    contexts.setdefault(file_peer, doc.get("context", {}))
    if doc.get("crashed"):
        log = path + ".log"
        tail = open(log).read().strip().splitlines()[-1:] if os.path.exists(log) else []
        failed.append(f"{file_peer} {part}: the run crashed {tail}")
    for b in doc.get("benchmarks", []):
        name = b.get("run_name", b["name"]).replace("/real_time", "")
        name = re.sub(r"/iterations:\d+", "", name)
        parts = name.split("/")
        wl, peer, rest = parts[0], parts[1], [int(x) for x in parts[2:]]
        if b.get("error_occurred"):
            failed.append(f"{name}: {b.get('error_message', '?')}")
            continue
        if wl == "W1_Flows":
            w1.setdefault((peer, rest[0], rest[1]), {})[rnd] = b["items_per_second"]
        else:
            res[(wl, peer, rest[0] if rest else 0)] = b


def order(peers):
    return sorted(peers, key=lambda p: PEER_ORDER.index(p) if p in PEER_ORDER else 99)


def median_ratio(a, b):
    """Median over rounds of a/b, for two {round: value} maps; None without common rounds."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    return statistics.median(a[r] / b[r] for r in common)


def krate(v):
    return "n/a" if v is None else (f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.0f} k")


def us(ns):
    return "n/a" if ns is None else (f"{ns / 1e3:,.0f}" if ns >= 1e5 else f"{ns / 1e3:.1f}")


def ratio_txt(r):
    return "n/a" if r is None else f"{r:.2f}x"


md = []
verdicts = []
flows_all = sorted({k[1] for k in w1})
w1_peers = order({k[0] for k in w1})

# ---- W1 ----------------------------------------------------------------------------------
def w1_rate(peer, flows, d):
    v = w1.get((peer, flows, d))
    return statistics.median(v.values()) if v else None


def w1_tax(peer, flows):
    """Median over rounds of 1 - rate(with)/rate(without), in %."""
    r = median_ratio(w1.get((peer, flows, 1), {}), w1.get((peer, flows, 0), {}))
    return None if r is None else (1 - r) * 100


if w1:
    md += ["## 1. A deadline on every read: messages per second",
           "",
           "One-byte ping-pong on N socketpairs, both ends in the loop; every read carries a "
           "deadline 10 s ahead that never fires (re-armed per message). Messages received per "
           f"second, median over {args.rounds} round(s); every peer runs back to back within "
           "a round. Tax: throughput lost to the deadlines, per peer, against its own run "
           "without them.",
           "",
           "| flows | " + " | ".join(f"{p} msgs/s (tax)" for p in w1_peers) + " |",
           "|---:|" + "---:|" * len(w1_peers)]
    for f in flows_all:
        cells = []
        for p in w1_peers:
            rate, tax = w1_rate(p, f, 1), w1_tax(p, f)
            cells.append(f"{krate(rate)} ({tax:+.1f} %)" if tax is not None else krate(rate))
        md.append(f"| {f:,} | " + " | ".join(cells) + " |")
    cmp_peers = [p for p in PEERS_COMPARED + ["asyncio-wait_for"] if p in w1_peers]
    md += ["",
           "Ratio of throughputs with deadlines, tmo / peer (median of per-round ratios; above "
           "1 means tmo is faster):",
           "",
           "| flows | " + " | ".join(f"tmo / {p}" for p in cmp_peers)
           + " | " + " | ".join(f"tmo-loop / {p}" for p in cmp_peers) + " |",
           "|---:|" + "---:|" * (2 * len(cmp_peers))]
    for f in flows_all:
        cells = [ratio_txt(median_ratio(w1.get((t, f, 1), {}), w1.get((p, f, 1), {})))
                 for t in ("tmo", "tmo-loop") for p in cmp_peers]
        md.append(f"| {f:,} | " + " | ".join(cells) + " |")
    md.append("")
    for f in [f for f in flows_all if f >= 256]:
        for p in ("libuv", "libevent"):
            r = median_ratio(w1.get(("tmo", f, 1), {}), w1.get((p, f, 1), {}))
            rl = median_ratio(w1.get(("tmo-loop", f, 1), {}), w1.get((p, f, 1), {}))
            if r is not None:
                verdicts.append((f"W1, {f} flows: tmo throughput with deadlines >= 1.3x {p}",
                                 r >= 1.3, f"{r:.2f}x (tmo-loop {ratio_txt(rl)})"))
        t, tl = w1_tax("tmo", f), w1_tax("tmo-loop", f)
        if t is not None:
            verdicts.append((f"W1, {f} flows: tmo's deadline tax <= 5 %", t <= 5,
                             f"{t:+.1f} % (tmo-loop {tl:+.1f} %)" if tl is not None
                             else f"{t:+.1f} %"))

# ---- W2 ----------------------------------------------------------------------------------
PCTS = [("p1", 1), ("p10", 10), ("p25", 25), ("p50", 50), ("p75", 75), ("p90", 90),
        ("p95", 95), ("p99", 99), ("p999", 99.9)]
w2 = {(p, n): b for (wl, p, n), b in res.items() if wl == "W2_Precision"}
if w2:
    md += ["## 2. Precision: lateness of deadlines that fire",
           "",
           "N deadlines spread over 1 s, armed in shuffled order, each on its own pending read "
           "(tmo) or timer (the others); lateness = the time the callback runs minus the due "
           "time, in µs. `early`: deadlines that fired before they were due.",
           "",
           "| peer | N | p50 | p99 | p99.9 | max | early |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for n in sorted({k[1] for k in w2}):
        for p in order({k[0] for k in w2 if k[1] == n}):
            b = w2[(p, n)]
            md.append(f"| {p} | {n:,} | {us(b['late_p50_ns'])} | {us(b['late_p99_ns'])} | "
                      f"{us(b['late_p999_ns'])} | {us(b['late_max_ns'])} | {b['early']:.0f} |")
    md.append("")
    for p in ("tmo", "tmo-ll", "tmo-loop"):
        b = w2.get((p, 10000))
        if b:
            verdicts.append((f"W2, 10,000 deadlines: {p} p99 lateness <= 100 µs",
                             b["late_p99_ns"] <= 100e3 and b["early"] == 0,
                             f"p99 {us(b['late_p99_ns'])} µs, {b['early']:.0f} early"))

# ---- W3 ----------------------------------------------------------------------------------
w3 = {(p, n): b for (wl, p, n), b in res.items() if wl == "W3_Scale"}
if w3:
    sizes = sorted({k[1] for k in w3})
    md += ["## 3. Scale: arming and cancelling with many deadlines pending",
           "",
           "ns per deadline to arm, then to cancel, a batch of 1,000 with N others pending "
           "(tmo: a read with its deadline, started and submitted, then cancelled until its "
           "callback fired; the others: a timer). Memory per pending deadline: bytes of this "
           "process (VmRSS) and of the kernel (slab) per pending deadline, measured at the "
           "largest N.",
           "",
           "| peer | " + " | ".join(f"N = {n:,}: arm / cancel" for n in sizes)
           + " | growth, smallest to largest N | user / kernel bytes per pending |",
           "|---|" + "---:|" * (len(sizes) + 2)]
    for p in order({k[0] for k in w3}):
        cells = []
        for n in sizes:
            b = w3.get((p, n))
            cells.append(f"{b['arm_ns']:,.0f} / {b['cancel_ns']:,.0f}" if b else "n/a")
        have = [n for n in sizes if (p, n) in w3]
        lo, hi = have[0], have[-1]
        a0, a1 = w3[(p, lo)], w3[(p, hi)]
        growth = ((a1["arm_ns"] + a1["cancel_ns"]) / (a0["arm_ns"] + a0["cancel_ns"])
                  if hi != lo else None)
        mem = (f"{a1.get('rss_per_pending_bytes', 0):,.0f} / "
               f"{a1.get('kernel_per_pending_bytes', 0):,.0f}")
        md.append(f"| {p} | " + " | ".join(cells)
                  + f" | {ratio_txt(growth)} ({lo:,} to {hi:,}) | {mem} |")
        if p in ("tmo", "tmo-loop") and growth is not None:

            log_growth = math.log2(hi) / math.log2(lo)
            verdicts.append((f"W3: {p} arm+cancel grows no faster than log n "
                             f"({lo:,} to {hi:,}: log allows {log_growth:.2f}x)",
                             growth <= log_growth * 1.15, f"{growth:.2f}x"))
    md.append("")

# ---- W4 ----------------------------------------------------------------------------------
w4 = {(p, d): b for (wl, p, d), b in res.items() if wl == "W4_Idle"}
if w4:
    md += ["## 4. Idle connections: CPU spent on the deadlines",
           "",
           "10,000 connections, each read with an idle (gap) deadline of 60 s reset on every "
           "message, 10 of them active (a byte every 1 ms each, from a sender process); CPU "
           "time of the process per second of wall time, without and with the deadlines. "
           "The difference is what the deadlines cost.",
           "",
           "| peer | CPU/s without | CPU/s with | spent on deadlines (CPU ms per s) |",
           "|---|---:|---:|---:|"]
    for p in order({k[0] for k in w4}):
        a, b = w4.get((p, 0)), w4.get((p, 1))
        ca = a["cpu_per_s"] if a else None
        cb = b["cpu_per_s"] if b else None
        diff = f"{(cb - ca) * 1e3:+.1f}" if a and b else "n/a"
        md.append(f"| {p} | {'n/a' if ca is None else f'{ca * 100:.1f} %'} | "
                  f"{'n/a' if cb is None else f'{cb * 100:.1f} %'} | {diff} |")
    md.append("")

# ---- W5 ----------------------------------------------------------------------------------
w5 = {p: b for (wl, p, _), b in res.items() if wl == "W5_Offload"}
if w5:
    md += ["## 5. Offload: round trip of a no-op blocking job",
           "",
           "Submit on the loop thread to completion callback on the loop thread, one at a "
           "time, each pool at its default size; µs.",
           "",
           "| peer | p50 | p99 | max | tmo p50 / peer p50 |",
           "|---|---:|---:|---:|---:|"]
    for p in order(w5):
        b = w5[p]
        r = (w5["tmo"]["p50_ns"] / b["p50_ns"]) if "tmo" in w5 and b["p50_ns"] else None
        md.append(f"| {p} | {us(b['p50_ns'])} | {us(b['p99_ns'])} | {us(b['max_ns'])} | "
                  f"{ratio_txt(r)} |")
    md.append("")

# ---- Machine, verdicts, failures, plots -------------------------------------------------
def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1048576:.0f} GiB"
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "memory": mem,
            "kernel": platform.release(), "python": platform.python_version()}


mach = machine()
versions = {}
for ctx in contexts.values():
    for k, v in ctx.items():
        if k.startswith("version/"):
            versions[k[8:]] = v
    if ctx.get("peer") == "asyncio":
        versions["python"] = ctx.get("python", mach["python"])
date = next((c.get("date") for c in contexts.values() if c.get("date")), "")

head = ["# tmo against libuv, libevent, hand-written epoll and asyncio", ""]
if args.quick:
    head += ["**Quick run (a smoke test): short runs, small sizes, one round. "
             "Not figures to quote.**", ""]
head += [f"Machine: {mach['cpu']}, {mach['cpus']} CPUs, {mach['memory']}, Linux "
         f"{mach['kernel']}; {date}. Versions: "
         + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".",
         "Reproduce: `scripts/bench` (about 5 minutes; `--quick` for a smoke run). "
         "Absolute figures move from machine to machine; the ratios are the point.", ""]
if verdicts:
    head += ["## Targets", "", "| target | met | figure |", "|---|---|---|"]
    head += [f"| {t} | {'yes' if ok else '**no**'} | {fig} |" for t, ok, fig in verdicts]
    head.append("")
if failed:
    head += ["## Runs that failed or were not built", ""]
    head += [f"- {f}" for f in failed]
    head.append("")
built = sorted({k[0] for k in w1} | {k[1] for k in res})
missing = [p for p in ["libuv", "libevent", "epoll", "asyncio"] if p not in built]
if missing:
    head += [f"Not run on this machine (library or interpreter missing): {', '.join(missing)}.",
             ""]

plots = []
gp = shutil.which("gnuplot")
if gp:
    os.makedirs(args.out, exist_ok=True)
    d = args.dir
    script = ["set terminal pngcairo size 900,560 font ',10' noenhanced", "set key outside right top",
              "set grid"]
    if w1:
        with open(f"{d}/w1.dat", "w") as f:
            for p in w1_peers:
                f.write(f'"{p}"\n')
                for fl in flows_all:
                    r = w1_rate(p, fl, 1)
                    if r:
                        f.write(f"{fl} {r}\n")
                f.write("\n\n")
        script += [f"set output '{args.out}/w1-throughput.png'",
                   "set title 'W1: messages/s, every read with a deadline (higher is better)'",
                   "set logscale x 2", "unset logscale y", "set xlabel 'flows'",
                   "set ylabel 'messages per second'",
                   f"plot for [i=0:{len(w1_peers) - 1}] '{d}/w1.dat' index i using 1:2 "
                   "with linespoints lw 2 title columnheader(1)"]
        plots.append(("w1-throughput.png", "Workload 1: throughput against flows"))
    if w2:
        ns = sorted({k[1] for k in w2})
        with open(f"{d}/w2.dat", "w") as f:
            for n in ns:
                for p in order({k[0] for k in w2 if k[1] == n}):
                    b = w2[(p, n)]
                    f.write(f'"{p}"\n')
                    for i, (key, pct) in enumerate(PCTS):
                        f.write(f"{pct} {max(b[f'late_{key}_ns'], 100) / 1e3}\n")
                    f.write("\n\n")
        idx = 0
        script += [f"set output '{args.out}/w2-lateness.png'",
                   f"set multiplot layout 1,{len(ns)}", "unset logscale x",
                   "set logscale y 10", "set xlabel 'percentile'",
                   "set ylabel 'lateness, µs (log)'", "set xtics ('1' 1, '25' 25, '50' 50, "
                   "'75' 75, '90' 90, '99' 99)", "set xrange [0:100]"]
        for n in ns:
            k = len({q for q in w2 if q[1] == n})
            script += [f"set title 'W2: {n:,} deadlines over 1 s (lower is better)'",
                       f"plot for [i={idx}:{idx + k - 1}] '{d}/w2.dat' index i using 1:2 "
                       "with linespoints lw 2 title columnheader(1)"]
            idx += k
        script += ["unset multiplot", "unset xtics", "set xtics", "set autoscale x"]
        plots.append(("w2-lateness.png", "Workload 2: lateness percentiles"))
    if w3:
        w3_peers = order({k[0] for k in w3})
        with open(f"{d}/w3.dat", "w") as f:
            for p in w3_peers:
                f.write(f'"{p}"\n')
                for n in sorted({k[1] for k in w3 if k[0] == p}):
                    b = w3[(p, n)]
                    f.write(f"{n} {b['arm_ns']} {b['cancel_ns']}\n")
                f.write("\n\n")
        last = len(w3_peers) - 1
        script += [f"set output '{args.out}/w3-scale.png'", "set multiplot layout 1,2",
                   "set logscale x 10", "set logscale y 10", "set xlabel 'pending deadlines'",
                   "set ylabel 'ns per deadline (log)'", "set title 'W3: arm'",
                   f"plot for [i=0:{last}] '{d}/w3.dat' index i using 1:2 with linespoints "
                   "lw 2 title columnheader(1)",
                   "set title 'W3: cancel'",
                   f"plot for [i=0:{last}] '{d}/w3.dat' index i using 1:3 with linespoints "
                   "lw 2 title columnheader(1)", "unset multiplot"]
        plots.append(("w3-scale.png", "Workload 3: cost against pending deadlines"))
    open(f"{d}/plots.gp", "w").write("\n".join(script) + "\n")
    r = subprocess.run([gp, f"{d}/plots.gp"], capture_output=True, text=True)
    if r.returncode != 0:
        head += [f"gnuplot failed: {r.stderr.strip()[:300]}", ""]
        plots = []
else:
    head += ["gnuplot is not installed: no plots (scripts/setup installs gnuplot-nox).", ""]
if plots:
    md += ["## Plots", ""] + [f"![{t}]({f})" for f, t in plots] + [""]

internal_md = os.path.join(args.dir, "internal.md")
if os.path.exists(internal_md):
    md += ["## tmo's own costs (tmo_bench)", "", open(internal_md).read()]

text = "\n".join(head + md) + "\n"
os.makedirs(args.out, exist_ok=True)
open(os.path.join(args.out, "latest.md"), "w").write(text)
internal_json = os.path.join(args.dir, "internal.json")
json.dump({"machine": mach, "versions": versions, "quick": args.quick, "rounds": args.rounds,
           "peer_runs": runs,
           "tmo_bench_runs": json.load(open(internal_json)) if os.path.exists(internal_json)
           else []},
          open(os.path.join(args.out, "latest.json"), "w"), indent=1)
print(text, end="")
