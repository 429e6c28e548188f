# SPDX-License-Identifier: MIT
"""Checks of tests/stats/stats.sh on the files scripted-std wrote.

    python3 check.py NAME DIR      exit 0 if check NAME holds, else 1 (and why)

The heap dump, the statistics, malloc_info's XML and the figures of
mallinfo2/tide_stats_get are read from DIR and compared with each other
and with the pointers the program recorded: each comes from a different
walk of the heap (the bins' lists, the regions chunk by chunk, the
counters), so they agree only if each is right.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

HDR = 16  # a chunk's header: the program's pointer is addr + 16


def load(d, name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def entries(heap):
    """Every chunk entry of every region of every arena, with its arena."""
    for a in heap["arenas"]:
        for r in a["regions"]:
            for e in r["chunks"]:
                yield a, r, e


def covering(heap, ptr):
    """The entry whose chunks hold the program's pointer ptr, and the chunk's address."""
    for a, r, e in entries(heap):
        lo, size = int(e["addr"], 16), e["size"]
        n = 1 if e["state"] == "elided" else e["count"]
        span = size if e["state"] == "elided" else size * n
        if lo <= ptr - HDR < lo + span:
            at = lo + ((ptr - HDR - lo) // size) * size if e["state"] != "elided" else None
            return e, at
    return None, None


def fail(why):
    print("  why: " + why)
    return 1


def c_schema(d):
    for name, kind in (("heap.json", "heap"), ("stats.json", "stats")):
        doc = load(d, name)
        t = doc["tidemalloc"]
        if t["schema"] != 1 or t["kind"] != kind or t["pid"] <= 0:
            return fail(f"{name}: {t}")
        for key in ("totals", "arenas", "mmapped"):
            if key not in doc:
                return fail(f"{name}: no {key}")
    if "regions" in load(d, "stats.json")["arenas"][0]:
        return fail("the statistics carry the regions")
    return 0


def c_tiling(d):
    """Each region's entries cover it exactly, in address order."""
    heap = load(d, "heap.json")
    for a in heap["arenas"]:
        for r in a["regions"]:
            at = int(r["start"], 16)
            for e in r["chunks"]:
                if int(e["addr"], 16) != at:
                    return fail(f"gap or overlap at {hex(at)}: entry {e}")
                at += e["size"] if e["state"] == "elided" else e["size"] * e["count"]
            if at != int(r["end"], 16) or at - int(r["start"], 16) != r["bytes"]:
                return fail(f"region {r['start']}..{r['end']} ends at {hex(at)}")
    return 0


def c_known_chunks(d):
    heap, facts = load(d, "heap.json"), load(d, "facts.json")
    e, at = covering(heap, int(facts["binned"], 16))
    if not e or e["state"] != "free" or at != int(facts["binned"], 16) - HDR or e["size"] < 100 * 1024:
        return fail(f"the freed 100 KiB block: {e}")
    if e["bin_kind"] not in ("unsorted", "large"):
        return fail(f"freed 100 KiB block in bin {e['bin_kind']}")
    for p in facts["cached"]:
        e, _ = covering(heap, int(p, 16))
        if not e or e["state"] != "tcache" or e["size"] != 48:
            return fail(f"cached block {p}: {e}")
    for name, least in (("used", 3000), ("guard", 200)):
        e, at = covering(heap, int(facts[name], 16))
        if not e or e["state"] != "used" or e["size"] < least:
            return fail(f"{name} block: {e}")
    kept = int(facts["kept"], 16) - HDR
    mm = [m for m in heap["mmapped"]["list"] if int(m["addr"], 16) == kept]
    if len(mm) != 1 or mm[0]["size"] < (1 << 20):
        return fail(f"the 1 MiB block not among the mmapped chunks: {heap['mmapped']}")
    return 0


def c_walk_vs_lists(d):
    """The walk's free chunks are the bins' chunks; its fast chunks the fast bins'."""
    heap = load(d, "heap.json")
    for a in heap["arenas"]:
        free = [(e["count"], e["size"]) for r in a["regions"] for e in r["chunks"] if e["state"] == "free"]
        fast = [(e["count"], e["size"]) for r in a["regions"] for e in r["chunks"] if e["state"] == "fast"]
        if any(e["state"] == "elided" for r in a["regions"] for e in r["chunks"]):
            continue
        if sum(n for n, _ in free) != a["free"]["chunks"] or sum(n * s for n, s in free) != a["free"]["bytes"]:
            return fail(f"arena {a['index']}: walk {free} vs bins {a['free']}")
        if sum(n for n, _ in fast) != a["fast"]["chunks"] or sum(n * s for n, s in fast) != a["fast"]["bytes"]:
            return fail(f"arena {a['index']}: walk {fast} vs fast bins {a['fast']}")
        if sum(b["chunks"] for b in a["bins"]) != a["free"]["chunks"]:
            return fail(f"arena {a['index']}: bins list {a['bins']} vs {a['free']}")
        for b in a["bins"]:
            if b["min"] > b["max"] or b["min"] < b["lo"] or (b["hi"] is not None and b["max"] > b["hi"]):
                return fail(f"bin {b}: chunks outside its range")
        tops = [e for r in a["regions"] for e in r["chunks"] if e["state"] == "top"]
        if sum(e["size"] for e in tops) != a["top_bytes"]:
            return fail(f"arena {a['index']}: top {tops} vs {a['top_bytes']}")
    return 0


def xml_heaps(d):
    root = ET.parse(os.path.join(d, "info.xml")).getroot()
    if root.tag != "malloc" or root.get("version") != "1":
        raise ValueError("not <malloc version=1>")
    return root


def c_xml_shape(d):
    root = xml_heaps(d)
    heaps = root.findall("heap")
    if [int(h.get("nr")) for h in heaps] != list(range(len(heaps))) or not heaps:
        return fail("heap numbers")
    for h in heaps:
        kids = [k.tag for k in h]
        want = ["sizes", "total", "total", "system", "system", "aspace", "aspace"]
        if kids[:7] != want or (len(kids) == 8 and kids[7] != "aspace") or len(kids) > 8:
            return fail(f"heap {h.get('nr')}: children {kids}")
        for s in h.find("sizes"):
            if s.tag not in ("size", "unsorted"):
                return fail(f"<{s.tag}> in sizes")
            lo, hi, total, count = (int(s.get(k)) for k in ("from", "to", "total", "count"))
            if not (0 < lo <= hi) or count <= 0 or not (lo * count <= total <= hi * count):
                return fail(f"size line {s.attrib}")
    tail = [(k.tag, k.get("type")) for k in root if k.tag != "heap"]
    want = [("total", "fast"), ("total", "rest"), ("total", "mmap"), ("system", "current"), ("system", "max"),
            ("aspace", "total"), ("aspace", "mprotect")]
    if tail != want:
        return fail(f"process totals {tail}")
    return 0


def c_xml_figures(d):
    """malloc_info's figures are the heap dump's (taken right before it)."""
    root, heap = xml_heaps(d), load(d, "heap.json")
    for h, a in zip(root.findall("heap"), heap["arenas"]):
        tot = {t.get("type"): (int(t.get("count")), int(t.get("size"))) for t in h.findall("total")}
        lines = list(h.find("sizes"))
        want_rest = (a["free"]["chunks"] + (1 if a["top_bytes"] else 0), a["free"]["bytes"] + a["top_bytes"])
        if tot["rest"] != want_rest:
            return fail(f"heap {h.get('nr')}: rest {tot['rest']} vs dump {want_rest}")
        want_fast = (a["fast"]["chunks"] + a["runs"]["free_blocks"], a["fast"]["bytes"] + a["runs"]["free_bytes"])
        if tot["fast"] != want_fast:
            return fail(f"heap {h.get('nr')}: fast {tot['fast']} vs dump {want_fast}")
        if sum(int(s.get("count")) for s in lines) != tot["fast"][0] + tot["rest"][0] - (1 if a["top_bytes"] else 0):
            return fail(f"heap {h.get('nr')}: size lines do not add up to the totals")
        if sum(int(s.get("total")) for s in lines) != tot["fast"][1] + tot["rest"][1] - a["top_bytes"]:
            return fail(f"heap {h.get('nr')}: size lines' bytes do not add up")
        # each bin: its chunks' real smallest and largest size
        for b in a["bins"]:
            tag = "unsorted" if b["kind"] == "unsorted" else "size"
            match = [s for s in lines if s.tag == tag and int(s.get("from")) == b["min"] and
                     int(s.get("to")) == b["max"] and int(s.get("count")) == b["chunks"] and
                     int(s.get("total")) == b["bytes"]]
            if not match:
                return fail(f"bin {b} not in malloc_info")
        sysc = [int(s.get("size")) for s in h.findall("system") if s.get("type") == "current"][0]
        if sysc != a["system_bytes"]:
            return fail(f"system {sysc} vs {a['system_bytes']}")
    mm = [k for k in root if k.tag == "total" and k.get("type") == "mmap"][0]
    if (int(mm.get("count")), int(mm.get("size"))) != (heap["mmapped"]["chunks"], heap["mmapped"]["bytes"]):
        return fail(f"mmap {mm.attrib} vs {heap['mmapped']}")
    return 0


def c_totals(d):
    st, facts = load(d, "stats.json"), load(d, "facts.json")
    t = st["totals"]
    if t["live_bytes"] + t["cached_bytes"] != t["in_use_bytes"]:
        return fail(f"live + cached != in use: {t}")
    if t["cached_bytes"] < 7 * 48 or t["live_bytes"] < (1 << 20) + 3000:
        return fail(f"cached {t['cached_bytes']} (7 x 48 B at least), live {t['live_bytes']} (1 MiB + 3000 at least)")
    if t["resident_bytes"] < (1 << 20):
        return fail(f"resident {t['resident_bytes']}")
    s = facts["stats"]
    if (s["in_use_bytes"], s["cached_bytes"], s["live_bytes"]) != (t["in_use_bytes"], t["cached_bytes"],
                                                                    t["live_bytes"]):
        return fail(f"tide_stats_get {s} vs the JSON {t}")
    mi = facts["mallinfo2"]
    arenas = st["arenas"]
    if mi["uordblks"] != sum(a["in_use_bytes"] for a in arenas) or mi["hblkhd"] != st["mmapped"]["bytes"]:
        return fail(f"mallinfo2 {mi} vs arenas in use {[a['in_use_bytes'] for a in arenas]}")
    if mi["arena"] != sum(a["system_bytes"] for a in arenas):
        return fail(f"mallinfo2 arena {mi['arena']}")
    return 0


def c_threads(d):
    t = load(d, "stats.json")["totals"]
    # 4 threads x 20 blocks of 64-byte chunks, each thread's own cache
    if t["cached_bytes"] < 4 * 20 * 64:
        return fail(f"cached {t['cached_bytes']}: the other threads' caches are not counted")
    if t["live_bytes"] + t["cached_bytes"] != t["in_use_bytes"]:
        return fail(f"{t}")
    return 0


def c_exitfile(d):
    """DIR holds one s.<pid>.json: the heap dump written at exit."""
    pid = open(os.path.join(d, "pid")).read().strip()
    doc = load(d, f"s.{pid}.json")
    if doc["tidemalloc"]["kind"] != "heap" or str(doc["tidemalloc"]["pid"]) != pid:
        return fail(f"{doc['tidemalloc']}")
    return 0


def c_ondemand(d):
    pid = open(os.path.join(d, "pid")).read().strip()
    for name in ("answer1.json", "answer2.json"):
        doc = load(d, name)
        if doc["tidemalloc"]["kind"] != "heap" or str(doc["tidemalloc"]["pid"]) != pid:
            return fail(f"{name}: {doc['tidemalloc']}")
        if doc["totals"]["live_bytes"] < 5000:
            return fail(f"{name}: live {doc['totals']['live_bytes']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(globals()["c_" + sys.argv[1]](sys.argv[2]))
    except (OSError, ValueError, KeyError, IndexError, TypeError, ET.ParseError) as e:
        print(f"  why: {type(e).__name__}: {e}")
        sys.exit(1)
