#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The first part of `make demo`: the daily-rotation service
(tools/rotation_demo.c) on glibc's malloc and on tidemalloc, RSS against the
bytes the program holds, over time.

Runs the program twice, first with no preload, then with
LD_PRELOAD=<library>, each time reading /proc/<pid>/statm every
--interval-ms while it runs.  Then prints a chart of both RSS curves and of
the program's live bytes (from its own "live" lines), a table of each day's
end, and a verdict line; writes the chart as SVG.  Every figure comes from
these two runs.

  rotation_chart.py --prog PATH --lib PATH --out DIR [--svg PATH]
                    [--interval-ms 20] [program arguments: days=5 day_mib=128 ...]

Files in DIR: rotation.<run>.out (the program's output), rotation.<run>.rss
(the samples: seconds since the program's start, RSS in bytes), and
rotation.svg unless --svg says otherwise.  Exits 1 if a run fails.
"""
import argparse
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # (no __pycache__ beside the sources)
import charts  # noqa: E402  (tools/charts.py)

MIB = 1048576.0
RUNS = (("glibc", "glibc RSS", "#", "#d62728"), ("tidemalloc", "tidemalloc RSS", "o", "#1f77b4"))
LIVE = ("live bytes", ".", "#2ca02c")


def die(msg):
    print(f"rotation_chart: {msg}", file=sys.stderr)
    sys.exit(1)


def run_sampled(cmd, env, out_path, err_path, interval):
    """Run cmd, reading its RSS every `interval` seconds until it exits.
    Returns (exit status, [(monotonic time, RSS bytes)])."""
    page = os.sysconf("SC_PAGE_SIZE")
    samples = []
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        statm = f"/proc/{proc.pid}/statm"
        due = time.monotonic()
        while proc.poll() is None:
            t = time.monotonic()
            try:
                with open(statm) as f:
                    resident = int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                resident = 0
            if resident:  # (an exited process, not yet reaped, reads 0)
                samples.append((t, resident * page))
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))
    return proc.returncode, samples


def fields(line):
    return dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)


def parse(path):
    """The program's output: start time, live points, phases, day lines."""
    start = end = conf = None
    live, phases, days = [], [], []
    with open(path) as f:
        for line in f:
            kind = line.split(" ", 1)[0]
            v = fields(line)
            if kind == "start":
                start = float(v["t"])
                conf = v
            elif kind == "live":
                live.append((float(v["t"]), int(v["bytes"])))
            elif kind == "phase":
                phases.append((float(v["t"]), int(v["day"]), v["name"]))
            elif kind == "day":
                days.append((int(v["n"]), float(v["t"]), int(v["live"]), int(v["rss"])))
            elif kind == "end":
                end = float(v["t"])
    if start is None or end is None:
        die(f"{path}: no start or end line")
    return {"conf": conf, "start": start, "end": end, "live": live, "phases": phases, "days": days}


def mib(b):
    return b / MIB


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prog", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--svg")
    ap.add_argument("--interval-ms", type=float, default=20)
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    svg_path = a.svg or os.path.join(a.out, "rotation.svg")
    os.makedirs(a.out, exist_ok=True)

    results = {}
    for name, _, _, _ in RUNS:
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        if name == "tidemalloc":
            env["LD_PRELOAD"] = a.lib
        base = os.path.join(a.out, f"rotation.{name}")
        rc, samples = run_sampled([a.prog] + a.args, env, base + ".out", base + ".err", a.interval_ms / 1000)
        if rc != 0:
            with open(base + ".err") as f:
                tail = f.read().strip().splitlines()[-3:]
            die(f"the {name} run exited with status {rc}: {' / '.join(tail)}")
        r = parse(base + ".out")
        t0 = r["start"]
        r["rss"] = [(t - t0, b) for t, b in samples if t0 <= t <= r["end"]]
        if len(r["rss"]) < 2 or not r["days"]:
            die(f"the {name} run gave too few samples ({len(r['rss'])}) or no day line")
        with open(base + ".rss", "w") as f:
            f.write("".join(f"{t:.4f}\t{b}\n" for t, b in r["rss"]))
        results[name] = r

    g, t = results["glibc"], results["tidemalloc"]
    if len(g["days"]) != len(t["days"]):
        die(f"the runs wrote {len(g['days'])} and {len(t['days'])} day lines")
    g0 = g["start"]
    loads = [(x - g0, d) for x, d, what in g["phases"] if what == "load"]
    rss = {name: {"label": label, "mark": mark, "color": color,
                  "points": [(x, mib(b)) for x, b in results[name]["rss"]]}
           for name, label, mark, color in RUNS}
    live = {"label": LIVE[0], "mark": LIVE[1], "color": LIVE[2],
            "points": [(x - g0, mib(b)) for x, b in g["live"]]}
    # Where lines meet, the text chart shows the last one drawn, the SVG
    # the last one written: glibc on top in text, the live bytes in SVG.
    in_text = [live, rss["tidemalloc"], rss["glibc"]]
    in_svg = [rss["glibc"], rss["tidemalloc"], live]

    c = g["conf"]
    print(f"{len(g['days'])} days: two threads load a day's records ({c['day_mib']} MiB, over {c['load_ms']} ms), "
          f"a third frees the day before, then {c['idle_ms']} ms idle")
    legend = "   ".join(f"{s['mark']} {s['label']}" for s in in_text[::-1])
    print(f"  {legend}   (RSS read every {a.interval_ms:g} ms; live: the program's own count)")
    for line in charts.text_chart(in_text, marks=[(x, f"d{d + 1}") for x, d in loads]):
        print("  " + line)
    print("  (d1, d2, ...: each day's load starts)")

    print()
    print(f"  {'at the end of each idle':<24} {'live':>10} {'glibc RSS':>12} {'tidemalloc RSS':>15}")
    same_live = True
    for (n, _, g_live, g_rss), (_, _, t_live, t_rss) in zip(g["days"], t["days"]):
        same_live &= g_live == t_live
        both = f"{mib(g_live):.1f}" if g_live == t_live else f"{mib(g_live):.1f}/{mib(t_live):.1f}"
        print(f"  {'day ' + str(n + 1):<24} {both:>10} {mib(g_rss):>12.1f} {mib(t_rss):>15.1f}   MiB")
    top_live = max(b for _, b in g["live"] + t["live"])
    top_g, top_t = (max(b for _, b in r["rss"]) for r in (g, t))
    print(f"  {'highest, while running':<24} {mib(top_live):>10.1f} {mib(top_g):>12.1f} {mib(top_t):>15.1f}   MiB")

    # (the loop leaves the last day's figures in n, g_live, g_rss, t_live, t_rss)
    live_txt = f"live {mib(g_live):.1f} MiB" if same_live else \
        f"live {mib(g_live):.1f} MiB (glibc run) / {mib(t_live):.1f} MiB (tidemalloc run)"
    verdict = (f"after day {n + 1}: glibc holds {mib(g_rss):.1f} MiB, tidemalloc {mib(t_rss):.1f} MiB, {live_txt}"
               f" (glibc {g_rss / g_live:.2f} x live, tidemalloc {t_rss / t_live:.2f} x)")
    print()
    print("verdict: " + verdict)

    conf = " ".join(f"{k}={c[k]}" for k in ("days", "day_mib", "load_ms", "idle_ms"))
    svg = charts.svg_chart(
        in_svg, title="Daily rotation: RSS on glibc and on tidemalloc, and the bytes the service holds",
        subtitle=verdict, xlabel="seconds since the program started", ylabel="MiB",
        note=f"tools/rotation_demo {conf}: 2 loader threads, a janitor thread\n"
             f"RSS read from /proc/PID/statm every {a.interval_ms:g} ms; live bytes: the program's own count",
        marks=[(x, f"day {d + 1}") for x, d in loads])
    with open(svg_path, "w") as f:
        f.write(svg)
    print(f"chart: {svg_path}")


if __name__ == "__main__":
    main()
