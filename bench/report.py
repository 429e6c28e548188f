#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn build/bench/{raw.tsv,fastpath.tsv,out/} into results.md, summary.txt
and the gnuplot inputs (chart.gp + *.dat) for results.svg.

Usage: report.py OUTDIR

raw.tsv has one line per run: workload, allocator, run number, the runner's
line (status= wall= user= sys= maxrss_kb=) and the workload's "result" line
(key=value pairs).  Nothing here measures anything; it only summarises.
"""
import math
import os
import re
import statistics
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
ALLOC_ORDER = ["tidemalloc", "tidemalloc-nohard", "glibc", "jemalloc", "tcmalloc", "mimalloc"]
WORKLOAD_ORDER = ["churn", "symbolic", "larson-1t", "larson-2t", "xmalloc", "cache-thrash",
                  "cache-scratch", "realloc", "large", "rotation", "bulk", "bulk-xthread", "sliding",
                  "prodcons", "larson-sized", "espresso", "barnes", "randsmall", "aligned"]
# The shapes issue 12 asked for (live sets larger than a thread cache, cross-thread
# frees in bursts, single-threaded programs of many small objects): their own table.
ISSUE12 = ["bulk", "bulk-xthread", "sliding", "prodcons", "larson-sized", "espresso", "barnes", "randsmall"]
DESCRIPTION = {
    "churn": "small-object churn, 1 thread, 8 B-1 KiB, random replacement in a pool",
    "symbolic": "cfrac/espresso-like: bignum temporaries + a growing table of tiny list cells",
    "larson-1t": "larson-like server, 1 thread (tables handed to a new thread each generation)",
    "larson-2t": "larson-like server, 2 threads freeing each other's blocks after hand-over",
    "xmalloc": "producer/consumer: one thread allocates 16-512 B, another frees",
    "cache-thrash": "active false sharing: 2 threads, 8 B objects written in a loop",
    "cache-scratch": "passive false sharing: objects from the main thread freed by workers",
    "realloc": "vectors doubling/shrinking to 4 MiB, strings growing by small appends",
    "large": "64 KiB-32 MiB blocks around the mmap threshold, 24 live",
    "rotation": "daily-rotation service: 2 loaders, janitor frees the previous day, 1 s settle",
    "bulk": "4 threads fill arrays of 10k-50k blocks (size histogram 8 B-160 KiB), free bottom 2/5 "
            "in order and top 2/5 in reverse, keep the middle fifth a round (sh6bench idea)",
    "bulk-xthread": "bulk, plus 1 block in 4 allocated for the other threads, freed there in batches "
                    "of 100 sent to each thread in turn, at most 10,000 waiting per receiver (sh8bench idea)",
    "sliding": "4 threads, each a sliding window of 4000 blocks of 16 B-16 KiB (weighted small); "
               "1 retired block in 8 freed by another thread (at most 2,000 waiting per receiver)",
    "prodcons": "2 workers send each other 64 B messages over rings (up to 65536 in flight each way), "
                "in bursts; peak RSS is the point",
    "larson-sized": "larson-2t with free_sized(p, size) where the allocator exports it (dlsym), else free",
    "espresso": "logic minimiser: covers of 16-32 B cubes merged, made irredundant by tautology "
                "checks (recursive cofactor covers), checked against the problem",
    "barnes": "Barnes-Hut n-body, 4000 bodies: an octree of 64 B leaves and 152 B cells built and "
              "freed every step",
    "randsmall": "1 thread, random malloc(1-128 B) or free on a table of 5000 entries",
    "aligned": "2 threads, 40-512 B blocks aligned to 32-128 B (posix_memalign, aligned_alloc) "
               "replaced at random in 20,000 slots, and bursts of 256",
}


def kv(text):
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S+)", text or ""))


def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def med(xs):
    return statistics.median(xs) if xs else None


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt(x, digits=2):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


# ---- read the runs -------------------------------------------------------------------
runs = {}  # (workload, alloc) -> list of dicts
allocs_seen, workloads_seen = [], []
with open(os.path.join(OUT, "raw.tsv")) as f:
    for line in f:
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 4:
            continue
        w, a, rep, m = parts[:4]
        res = parts[4] if len(parts) > 4 else ""
        r = kv(m)
        r.update({"res": kv(res), "rep": rep})
        if r.get("status") == "ok" and not res:
            r["status"] = "no-result"
        runs.setdefault((w, a), []).append(r)
        if a not in allocs_seen:
            allocs_seen.append(a)
        if w not in workloads_seen:
            workloads_seen.append(w)

allocs = [a for a in ALLOC_ORDER if a in allocs_seen] + [a for a in allocs_seen if a not in ALLOC_ORDER]
# tables-1t/2t: larson without its malloc and free, the machine's ceiling
# for larson's scaling (run beside it); not workloads of the tables.
CALIBRATION = ("tables-1t", "tables-2t")
workloads = [w for w in WORKLOAD_ORDER if w in workloads_seen] + \
            [w for w in workloads_seen if w not in WORKLOAD_ORDER and w not in CALIBRATION]


def time_of(w, r):
    """The time a workload is judged by: wall time, except for rotation,
    where the settle sleeps are taken out (the workload's own work_secs)."""
    if w == "rotation":
        return fnum(r["res"].get("work_secs"))
    return fnum(r.get("wall"))


stats = {}  # (w, a) -> summary dict
for (w, a), rs in runs.items():
    ok = [r for r in rs if r.get("status") == "ok"]
    bad = [r.get("status", "?") for r in rs if r.get("status") != "ok"]
    s = {"n": len(rs), "ok": len(ok), "fail": bad}
    if ok:
        t = [time_of(w, r) for r in ok]
        cpu = [fnum(r["user"]) + fnum(r["sys"]) for r in ok]
        rss = [fnum(r["maxrss_kb"]) / 1024.0 for r in ok]
        s.update(time=med(t), tmin=min(t), tmax=max(t), cpu=med(cpu), rss=med(rss), rmin=min(rss),
                 rmax=max(rss), wall=med([fnum(r["wall"]) for r in ok]))
        for key in ("mops_per_s", "steady_ratio", "max_ratio", "final_rss_mib", "max_rss_mib"):
            vals = [fnum(r["res"].get(key)) for r in ok if r["res"].get(key) is not None]
            if vals:
                s[key] = med(vals)
    stats[(w, a)] = s


def usable(w, a):
    s = stats.get((w, a))
    return s is not None and s["ok"] == s["n"] and s["ok"] > 0


best = {}
for w in workloads:
    good = [a for a in allocs if usable(w, a)]
    best[w] = {k: (min(stats[(w, a)][k] for a in good) if good else None) for k in ("time", "cpu", "rss")}


def ratio(w, a, k):
    if not usable(w, a) or not best[w][k]:
        return None
    return stats[(w, a)][k] / best[w][k]


# ---- the summary table ---------------------------------------------------------------
machine = ""
mpath = os.path.join(OUT, "machine.txt")
if os.path.exists(mpath):
    machine = open(mpath).read().strip()
method = re.search(r"^method: (\S+)", machine, re.M)
method = method.group(1) if method else "none"

md = []
md.append("# tidemalloc benchmark results\n")
md.append("Produced by `make bench` (bench/run.sh). Each cell is the median of the runs; "
          "ratios are to the best allocator on that workload (1.00 = best, lower is better). "
          "Time is wall time (rotation: wall time minus the 1 s settle sleeps). "
          "Peak RSS is the process's maximum resident set (getrusage of the child).\n")
md.append("```\n" + machine + "\n```\n")

md.append("## Summary: time ratio / peak-RSS ratio to the best\n")
hdr = "| workload | " + " | ".join(allocs) + " |"
md.append(hdr)
md.append("|---" * (len(allocs) + 1) + "|")
summary_lines = []
for w in workloads:
    cells = []
    for a in allocs:
        s = stats.get((w, a))
        if s is None:
            cells.append("-")
        elif not usable(w, a):
            cells.append("FAILED " + ",".join(sorted(set(s["fail"]))))
        else:
            tr, rr = ratio(w, a, "time"), ratio(w, a, "rss")
            t = f"**{tr:.2f}**" if tr is not None and tr < 1.005 else f"{tr:.2f}"
            r = f"**{rr:.2f}**" if rr is not None and rr < 1.005 else f"{rr:.2f}"
            cells.append(f"{t} / {r}")
    md.append(f"| {w} | " + " | ".join(cells) + " |")
gm_t = {a: geomean([ratio(w, a, "time") for w in workloads]) for a in allocs}
gm_r = {a: geomean([ratio(w, a, "rss") for w in workloads]) for a in allocs}
gm_c = {a: geomean([ratio(w, a, "cpu") for w in workloads]) for a in allocs}
nfail = {a: sum(1 for w in workloads if (w, a) in stats and not usable(w, a)) for a in allocs}
md.append("| **geomean time ratio** | " + " | ".join(fmt(gm_t[a]) for a in allocs) + " |")
md.append("| **geomean peak-RSS ratio** | " + " | ".join(fmt(gm_r[a]) for a in allocs) + " |")
md.append("| geomean CPU-time ratio | " + " | ".join(fmt(gm_c[a]) for a in allocs) + " |")
if any(nfail.values()):
    md.append("| workloads failed | " + " | ".join(str(nfail[a]) for a in allocs) + " |")
md.append("\nGeometric means are over the workloads an allocator completed (failures are left out "
          "and counted in the last row, if any). The CPU-time row (user+sys, ratio to the least) is "
          "less disturbed than wall time when other processes share the machine.\n")

# Where tidemalloc is furthest behind the best peer: the three worst
# workloads by time and, separately, by peak RSS (a failure counts as worst).
behind_lines = []
if "tidemalloc" in allocs:
    peers = [a for a in allocs if not a.startswith("tidemalloc")]  # (its variants are not peers)
    md.append("### Where tidemalloc is furthest behind the best peer\n")
    for k, label in (("time", "time"), ("rss", "peak RSS")):
        behind = []
        for w in workloads:
            if (w, "tidemalloc") not in stats:
                continue
            if not usable(w, "tidemalloc"):
                behind.append((float("inf"), w, "-"))
                continue
            pv = [(stats[(w, a)][k], a) for a in peers if usable(w, a)]
            if pv and min(pv)[0]:
                bv, ba = min(pv)
                behind.append((stats[(w, "tidemalloc")][k] / bv, w, ba))
        behind.sort(reverse=True)
        items = []
        for r_, w, ba in behind[:3]:
            if r_ == float("inf"):
                items.append(f"**{w}** failed ({','.join(sorted(set(stats[(w, 'tidemalloc')]['fail'])))})")
            else:
                items.append(f"**{w}** {r_:.2f}x ({ba})")
        md.append(f"- by {label}: " + "; ".join(items))
        behind_lines.append(f"tidemalloc furthest behind the best peer by {label}: " + "; ".join(items).replace("**", ""))
    md.append("")

# ---- the issue 12 workloads: tidemalloc against each allocator -----------------------------
new12 = [w for w in ISSUE12 if w in workloads]
if new12 and "tidemalloc" in allocs:
    peers = [a for a in allocs if not a.startswith("tidemalloc")]  # (its variants are not peers)
    md.append("## Issue 12 workloads: tidemalloc's time and peak RSS divided by each allocator's\n")
    md.append("Each cell is tidemalloc's median over the other allocator's median, time / peak RSS "
              "(above 1.00: tidemalloc is slower or bigger). Targets (issue 12): time <= 1.1 x the best "
              "of jemalloc, tcmalloc and mimalloc and <= glibc's; peak RSS <= 1.1 x glibc's.\n")
    md.append("| workload | " + " | ".join(f"/ {a}" for a in peers) + " | / best peer | targets |")
    md.append("|---" * (len(peers) + 3) + "|")
    for w in new12:
        if not usable(w, "tidemalloc"):
            md.append(f"| {w} | FAILED |" + " |" * (len(peers) + 1))
            continue
        t = stats[(w, "tidemalloc")]
        cells = []
        for a in peers:
            cells.append(f"{t['time'] / stats[(w, a)]['time']:.2f} / {t['rss'] / stats[(w, a)]['rss']:.2f}"
                         if usable(w, a) else "-")
        pv = [a for a in peers if usable(w, a)]
        bt = min(pv, key=lambda a: stats[(w, a)]["time"]) if pv else None
        br = min(pv, key=lambda a: stats[(w, a)]["rss"]) if pv else None
        best_cell = (f"{t['time'] / stats[(w, bt)]['time']:.2f} ({bt}) / {t['rss'] / stats[(w, br)]['rss']:.2f} ({br})"
                     if pv else "-")
        goals = []
        fast = [a for a in pv if a != "glibc"]
        if fast:
            goals.append(t["time"] <= 1.1 * min(stats[(w, a)]["time"] for a in fast))
        if "glibc" in pv:
            goals.append(t["time"] <= stats[(w, "glibc")]["time"])
            goals.append(t["rss"] <= 1.1 * stats[(w, "glibc")]["rss"])
        met = sum(goals)
        md.append(f"| {w} | " + " | ".join(cells) + f" | {best_cell} | {met}/{len(goals)} met |")
    md.append("")

# ---- per-workload tables ---------------------------------------------------------------
md.append("## Per workload\n")
for w in workloads:
    md.append(f"### {w}\n")
    md.append(DESCRIPTION.get(w, "") + "\n")
    tl = "time s (no settle)" if w == "rotation" else "wall s"
    md.append(f"| allocator | runs ok | {tl} median | min-max | x best | CPU s | x best | "
              "peak RSS MiB | min-max | x best |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    for a in allocs:
        s = stats.get((w, a))
        if s is None:
            continue
        if not s["ok"]:
            md.append(f"| {a} | 0/{s['n']} ({','.join(s['fail'])}) | - | - | - | - | - | - | - | - |")
            continue
        md.append(f"| {a} | {s['ok']}/{s['n']}{' (' + ','.join(s['fail']) + ')' if s['fail'] else ''} | "
                  f"{fmt(s['time'], 3)} | {fmt(s['tmin'], 3)}-{fmt(s['tmax'], 3)} | {fmt(ratio(w, a, 'time'))} | "
                  f"{fmt(s['cpu'], 3)} | {fmt(ratio(w, a, 'cpu'))} | "
                  f"{fmt(s['rss'], 1)} | {fmt(s['rmin'], 1)}-{fmt(s['rmax'], 1)} | {fmt(ratio(w, a, 'rss'))} |")
    md.append("")

def paired_ratio(a, w1, w2, key):
    """Median over the runs of 2-thread over 1-thread throughput, each run
    k of w2 against run k of w1 (run.sh runs them interleaved, so run k of
    each saw the same machine).  key: "mops" (larson's figure) or "secs"
    (time for twice the work)."""
    if not (usable(w1, a) and usable(w2, a)):
        return None
    by_rep = {}
    for w in (w1, w2):
        for r in runs.get((w, a), []):
            v = fnum(r["res"].get("mops_per_s" if key == "mops" else "secs")) if r.get("status") == "ok" else None
            if v:
                by_rep.setdefault(r["rep"], {})[w] = v
    pairs = [d for d in by_rep.values() if len(d) == 2]
    if key == "mops":
        return med([d[w2] / d[w1] for d in pairs])
    return med([2 * d[w1] / d[w2] for d in pairs])


def scaling(a):
    return paired_ratio(a, "larson-1t", "larson-2t", "mops")


def ceiling(a):
    """The same for larson's table work without malloc/free (tables-*)."""
    return paired_ratio(a, "tables-1t", "tables-2t", "secs")


# ---- threads ----------------------------------------------------------------------------
if any(w in workloads for w in ("larson-1t", "larson-2t", "xmalloc")):
    md.append("## Thread throughput (million operations per second, median)\n")
    md.append("larson: malloc+free replacements per second over all threads; scaling = 2-thread / "
              "1-thread figure, the median of the runs' ratios (run k of each runs beside the other; "
              "2.0 is perfect on 2 cores). xmalloc: cross-thread frees per second "
              "(one producer, one consumer).\n")
    md.append("| allocator | larson 1 thread | larson 2 threads | scaling | machine's ceiling | scaling / ceiling "
              "| xmalloc cross-thread frees |")
    md.append("|---|---|---|---|---|---|---|")
    for a in allocs:
        def mops(w):
            s = stats.get((w, a))
            return s.get("mops_per_s") if s and usable(w, a) else None
        l1, l2, x = mops("larson-1t"), mops("larson-2t"), mops("xmalloc")
        sc, ce = scaling(a), ceiling(a)
        md.append(f"| {a} | {fmt(l1)} | {fmt(l2)} | {fmt(sc)} | {fmt(ce)} | "
                  f"{fmt(sc / ce) if sc and ce else '-'} | {fmt(x)} |")
    md.append("")
    md.append("The machine's ceiling is larson with its malloc and free taken out (`spin tables=5000`: the "
              "same tables, blocks placed by the same allocator, the same checks and writes, the same "
              "generations of threads, three times the operations), run beside each larson run: what this machine gives larson's own "
              "memory traffic on 2 threads. On a shared VM it moves with the neighbours' load.\n")
    cal = re.findall(r"^cpu scaling (\w+): ([0-9.]+)", machine, re.M)
    if cal:
        md.append("Pure arithmetic, with no memory traffic, scales " +
                  " and ".join(f"{v} ({k} the runs)" for k, v in cal) + " from 1 to 2 threads.\n")
    if "tidemalloc" in allocs:
        checks = []
        sc, ce = scaling("tidemalloc"), ceiling("tidemalloc")
        if sc is not None:
            checks.append(f"larson 2-thread scaling {sc:.2f} >= 1.8: {'met' if sc >= 1.8 else 'NOT met'}" +
                          (f" (the machine's ceiling in the same runs: {ce:.2f})" if ce else ""))
        for w in ("xmalloc", "larson-2t"):
            pv = [stats[(w, a)]["time"] for a in allocs if a not in ("tidemalloc", "glibc") and usable(w, a)]
            if pv and usable(w, "tidemalloc"):
                r_ = stats[(w, "tidemalloc")]["time"] / min(pv)
                checks.append(f"{w} time {r_:.2f}x the best peer (target <= 1.0): {'met' if r_ <= 1.0 else 'NOT met'}")
        if checks:
            md.append("Issue 4 targets: " + "; ".join(checks) + ".\n")

# ---- fast path ----------------------------------------------------------------------------
fp = {}
fpath = os.path.join(OUT, "fastpath.tsv")
if os.path.exists(fpath):
    for line in open(fpath):
        p = line.split()
        if len(p) == 3:
            fp[(p[0], int(p[1]))] = fnum(p[2])
sizes = sorted({s for (_, s) in fp})
if fp:
    md.append("## Fast path: instructions per malloc+free pair (1 thread)\n")
    md.append(f"Measured with {method}: two runs of 100000 and 300000 pairs of the same size, the "
              "difference divided by 200000, so start-up and exit cancel. Includes about 7 "
              "instructions of the loop and the PLT calls.\n")
    md.append("| allocator | " + " | ".join(f"{s} B" for s in sizes) + " |")
    md.append("|---" * (len(sizes) + 1) + "|")
    for a in allocs:
        if any((a, s) in fp for s in sizes):
            md.append(f"| {a} | " + " | ".join(fmt(fp.get((a, s)), 1) if fp.get((a, s)) is not None
                                                else "FAILED" for s in sizes) + " |")
    md.append("")
    peers64 = [fp[(a, 64)] for a in allocs if a != "tidemalloc" and fp.get((a, 64))]
    if fp.get(("tidemalloc", 64)) and peers64:
        r_ = fp[("tidemalloc", 64)] / min(peers64)
        md.append(f"Issue 4 target: 64 B pair within 1.2x of the fewest among the others: {r_:.2f}x, "
                  f"{'met' if r_ <= 1.2 else 'NOT met'}.\n")

# ---- rotation ------------------------------------------------------------------------------
day_ratio = {}  # alloc -> {day: [ratios]}
if "rotation" in workloads:
    for a in allocs:
        for r in runs.get(("rotation", a), []):
            if r.get("status") != "ok":
                continue
            path = os.path.join(OUT, "out", f"rotation.{a}.{r['rep']}.txt")
            if not os.path.exists(path):
                continue
            for line in open(path):
                if line.startswith("day "):
                    d = kv(line)
                    day_ratio.setdefault(a, {}).setdefault(int(d["n"]), []).append(
                        (fnum(d["ratio"]), fnum(d["live_mib"]), fnum(d["rss_mib"])))
    days = sorted({d for a in day_ratio for d in day_ratio[a]})
    md.append("## Daily rotation: RSS against live bytes\n")
    md.append("RSS from /proc/self/statm 1 s after each day boundary (the janitor has freed the "
              "previous day), divided by the bytes the program holds (one day of records + cache). "
              "Steady = mean over days 1.., final = RSS 1 s after everything is freed. "
              "Targets for tidemalloc (issue 5): steady <= 1.3, final <= 16 MiB, time no worse than glibc.\n")
    md.append("| allocator | " + " | ".join(f"day {d}" for d in days) +
              " | steady | max | final RSS MiB | peak RSS MiB | time s |")
    md.append("|---" * (len(days) + 6) + "|")
    for a in allocs:
        s = stats.get(("rotation", a))
        if not s or not s["ok"]:
            if s:
                md.append(f"| {a} | FAILED ({','.join(s['fail'])}) |" + " |" * (len(days) + 4))
            continue
        cells = []
        for d in days:
            v = day_ratio.get(a, {}).get(d)
            cells.append(f"{med([x[0] for x in v]):.2f} ({med([x[2] for x in v]):.0f}/{med([x[1] for x in v]):.0f})"
                         if v else "-")
        md.append(f"| {a} | " + " | ".join(cells) +
                  f" | {fmt(s.get('steady_ratio'))} | {fmt(s.get('max_ratio'))} | {fmt(s.get('final_rss_mib'), 1)} | "
                  f"{fmt(s['rss'], 0)} | {fmt(s['time'], 3)} |")
    md.append("\nCells: ratio (RSS MiB / live MiB).\n")
    if usable("rotation", "tidemalloc"):
        s = stats[("rotation", "tidemalloc")]
        g = stats.get(("rotation", "glibc"))
        checks = [("steady RSS <= 1.3 x live", s.get("steady_ratio") is not None and s["steady_ratio"] <= 1.3),
                  ("RSS after free <= 16 MiB", s.get("final_rss_mib") is not None and s["final_rss_mib"] <= 16)]
        if g and usable("rotation", "glibc"):
            checks.append(("time no worse than glibc", s["time"] <= g["time"]))
        md.append("Issue 5 targets: " + "; ".join(f"{n}: {'met' if ok else 'NOT met'}" for n, ok in checks) + "\n")

# ---- tidemalloc's own counters (TIDEMALLOC_STATS=1 line of run 1) ------------------------------
if "tidemalloc" in allocs:
    rows = []
    for w in workloads:
        path = os.path.join(OUT, "out", f"{w}.tidemalloc.1.txt.err")
        if not os.path.exists(path):
            continue
        line = next((l for l in open(path, errors="replace") if l.startswith("tidemalloc stats:")), None)
        if not line:
            continue
        c = {k: fnum(v) for k, v in kv(line).items()}
        mib = 1048576.0
        pu, po = c.get("peak_in_use"), c.get("peak_os")
        rows.append(f"| {w} | {c.get('malloc_calls', 0):,.0f} | {c.get('free_calls', 0):,.0f} | "
                    f"{c.get('realloc_calls', 0):,.0f} | {fmt(pu / mib if pu is not None else None, 1)} | "
                    f"{fmt(po / mib if po is not None else None, 1)} | "
                    f"{fmt(po / pu if pu and po else None)} | {c.get('arenas', 0) or 0:.0f} | "
                    f"{fmt(c.get('purged', 0) / mib, 1)} |")
    if rows:
        md.append("## What tidemalloc did (its TIDEMALLOC_STATS=1 line, run 1)\n")
        md.append("| workload | malloc calls | free calls | realloc calls | peak in use MiB | peak from OS MiB | "
                  "OS / in use | arenas | purged MiB |")
        md.append("|---|---|---|---|---|---|---|---|---|")
        md.extend(rows)
        md.append("")

# ---- failures: the first line each failed run left on stderr -------------------------------------
fails = []
for w in workloads:
    for a in allocs:
        for r in runs.get((w, a), []):
            if r.get("status") == "ok":
                continue
            path = os.path.join(OUT, "out", f"{w}.{a}.{r['rep']}.txt.err")
            msg = ""
            if os.path.exists(path):
                lines = [l.strip() for l in open(path, errors="replace") if l.strip()
                         and not l.startswith("tidemalloc stats:")]
                msg = lines[0] if lines else ""
            fails.append(f"| {w} | {a} | {r['rep']} | {r.get('status')} | {msg.replace('|', '/')[:160] or '(nothing)'} |")
if fails:
    md.append("## Failed runs\n")
    md.append("| workload | allocator | run | status | first line on stderr |")
    md.append("|---|---|---|---|---|")
    md.extend(fails)
    md.append("")

md.append("## Chart\n\n![results](results.svg)\n")
open(os.path.join(OUT, "results.md"), "w").write("\n".join(md) + "\n")

# ---- plain-text summary for the terminal ------------------------------------------------------
col = max([12] + [len(a) + 2 for a in allocs])
lines = ["time ratio / peak-RSS ratio to the best (median of runs; 1.00 = best)",
         f"{'workload':<15}" + "".join(f"{a:>{col + 2}}" for a in allocs)]
for w in workloads:
    row = f"{w:<15}"
    for a in allocs:
        if (w, a) not in stats:
            c = "-"
        elif not usable(w, a):
            c = "FAILED"
        else:
            c = f"{ratio(w, a, 'time'):.2f} / {ratio(w, a, 'rss'):.2f}"
        row += f"{c:>{col + 2}}"
    lines.append(row)
lines.append(f"{'geomean time':<15}" + "".join(f"{fmt(gm_t[a]):>{col + 2}}" for a in allocs))
lines.append(f"{'geomean RSS':<15}" + "".join(f"{fmt(gm_r[a]):>{col + 2}}" for a in allocs))
lines.extend(behind_lines)
open(os.path.join(OUT, "summary.txt"), "w").write("\n".join(lines) + "\n")

# ---- chart inputs ------------------------------------------------------------------------------
COLORS = {"tidemalloc": "#d62728", "glibc": "#7f7f7f", "jemalloc": "#1f77b4", "tcmalloc": "#2ca02c",
          "mimalloc": "#9467bd"}


def write_dat(name, key):
    with open(os.path.join(OUT, name), "w") as f:
        f.write("# workload " + " ".join(allocs) + "\n")
        for w in workloads:
            vals = [ratio(w, a, key) for a in allocs]
            f.write(w + " " + " ".join(f"{v:.3f}" if v is not None else "0" for v in vals) + "\n")


write_dat("time.dat", "time")
write_dat("rss.dat", "rss")
with open(os.path.join(OUT, "fastpath.dat"), "w") as f:
    f.write("# size " + " ".join(allocs) + "\n")
    for s in sizes:
        f.write(f"{s}B " + " ".join(f"{fp[(a, s)]:.1f}" if fp.get((a, s)) else "0" for a in allocs) + "\n")
days = sorted({d for a in day_ratio for d in day_ratio[a]})
with open(os.path.join(OUT, "rotation.dat"), "w") as f:
    f.write("# day " + " ".join(allocs) + "\n")
    for d in days:
        vals = [med([x[0] for x in day_ratio.get(a, {}).get(d, [])]) for a in allocs]
        f.write(f"{d} " + " ".join(f"{v:.3f}" if v is not None else "NaN" for v in vals) + "\n")
    # the point after everything is freed cannot be a ratio (live = 0): shown in the table

n = len(allocs)
gp = []
gp.append('set terminal svg size 2000,1300 dynamic enhanced font "sans,12" background "white"')
gp.append('set output "results.svg"')
gp.append('set datafile missing "NaN"')
gp.append("set multiplot title \"tidemalloc vs glibc, jemalloc, tcmalloc, mimalloc "
          "(lower is better)\" font \",16\"")
gp.append("set style data histogram")
gp.append("set style histogram clustered gap 1")
gp.append("set style fill solid 0.9 border -1")
gp.append("set boxwidth 0.9")
gp.append("set grid ytics")
gp.append("set key outside top center horizontal")
gp.append("set xtics nomirror font \",10\"")
gp.append("set yrange [0:*]")


def plot_cols(datafile):
    parts = []
    for i, a in enumerate(allocs):
        src = f"'{datafile}'" if i == 0 else "''"
        parts.append(f"{src} using {i + 2}:xtic(1) title '{a}' lc rgb '{COLORS.get(a, '#000000')}'")
    return "plot " + ", ".join(parts)


gp.append("set size 1, 0.32")
gp.append("set origin 0, 0.64")
gp.append('set title "Time / best time, per workload (1.0 = fastest; no bar = run failed)"')
gp.append("set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 front")
gp.append(f"set xrange [-0.6:{len(workloads) - 0.4}]")
# A failed run leaves no bar: say so where the bar would be.
nal = len(allocs)
for wi, w in enumerate(workloads):
    for ai, a in enumerate(allocs):
        if (w, a) in stats and not usable(w, a):
            x = wi + (ai - (nal - 1) / 2) / (nal + 1)
            gp.append(f"set label 'failed' at first {x:.3f}, graph 0.03 rotate by 90 left "
                      f"tc rgb '{COLORS.get(a, '#000000')}' font ',10' front")
gp.append(plot_cols("time.dat"))
gp.append("set origin 0, 0.32")
gp.append('set title "Peak RSS / lowest peak RSS, per workload (1.0 = smallest; no bar = run failed)"')
gp.append(plot_cols("rss.dat"))
gp.append("unset arrow 1")
gp.append("unset label")
gp.append("set xtics font \",12\"")
gp.append("set size 0.5, 0.32")
gp.append("set origin 0, 0")
gp.append('set title "Fast path: instructions per malloc+free pair, 1 thread"')

gp.append(f"set xrange [-0.6:{max(len(sizes), 1) - 0.4}]")
gp.append(plot_cols("fastpath.dat") if sizes else "set label 1 'not measured' at graph 0.5, 0.5 center\nplot [0:1] [0:1] -1 notitle\nunset label 1")
gp.append("set origin 0.5, 0")
gp.append('set title "Daily rotation: RSS / live bytes 1 s after each day boundary (target <= 1.3)"')
gp.append("set style data linespoints")
gp.append("set xlabel 'day'")
gp.append("set xtics 1")
gp.append("set xrange [*:*]")
gp.append("set arrow 2 from graph 0, first 1.3 to graph 1, first 1.3 nohead dt 2 lw 1.5 lc rgb 'black'")
plotted = [i for i, a in enumerate(allocs) if day_ratio.get(a)]
if days and plotted:
    parts = []
    for i, a in enumerate(allocs):
        if i not in plotted:
            continue
        src = "'rotation.dat'" if not parts else "''"
        parts.append(f"{src} using 1:{i + 2} with linespoints title '{a}' lw 2 pt 7 ps 0.8 lc rgb '{COLORS.get(a, '#000000')}'")
    gp.append("plot " + ", ".join(parts))
else:
    gp.append("set label 1 'not measured' at graph 0.5, 0.5 center\nplot [0:1] [0:1] -1 notitle\nunset label 1")
gp.append("unset multiplot")
open(os.path.join(OUT, "chart.gp"), "w").write("\n".join(gp) + "\n")
