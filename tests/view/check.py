# SPDX-License-Identifier: MIT
"""Checks of tidemalloc view's output, for tests/view/view.sh.

Each subcommand checks one thing and exits 0 when it holds, or prints
what is wrong and exits 1:

  entries OUT JSON          one entry cell per chunk entry, in order, with
                            its state's colour and hover text
  scale OUT JSON LAYOUT     the to-scale boxes: one scale per region, a
                            power of two, each entry exactly span / scale
                            pixels wide and placed at its address
  runs OUT JSON LAYOUT      an outline around each run's run_bytes
  mmapped OUT JSON LAYOUT   each mapping of mmapped.list drawn, used colour
  legend OUT                every colour of COLOURS in the legend
  text OUT STRING...        each string in the picture's text
  html OUT                  an HTML page: the SVG inside it parses, a script
  known JSON                the scripted heap of pattern.c is in the dump: a
                            used mapping of 1 MiB or more, the 40 KiB block
                            free in a bin, seven or more 48-byte chunks in
                            this thread's cache, as many as the regions show
  find JSON seg|cell STATE SIZE | find JSON mmap MIN_SIZE
                            prints the layout prefix of the first such entry
                            (or mapping) and its colour key, tab-separated
  png-size PNG W H          the PNG is W x H pixels
  pixels PNG LAYOUT KIND... at the middle of every box of these kinds
                            (seg, cell, mmap, legend) that is big enough
                            and inside the PNG, the box's colour
  pixel PNG LAYOUT LINE-PREFIX COLOUR
                            the same for the boxes whose layout line starts
                            with LINE-PREFIX, against a colour named here

OUT is an SVG file or an HTML page holding one.  The colours are written
here on purpose, not read from the viewer: they are documented (README.md,
the legend), and changing one must be seen.
"""
import json
import re
import struct
import sys
import xml.etree.ElementTree as ET
import zlib

COLOURS = {
    "used": "#2f5d9e",
    "tcache": "#f28e2b",
    "tcache-other": "#9c4f12",
    "fast": "#e9c400",
    "remote": "#b0409c",
    "run": "#2b1d5c",
    "run-free": "#48b0a8",
    "run-uncarved": "#c6e8e4",
    "free-unsorted": "#9bdc6e",
    "free-unsorted-purged": "#e4f5d6",
    "free-small": "#3f9e3a",
    "free-small-purged": "#c9e6c4",
    "free-large": "#1d5e2a",
    "free-large-purged": "#a9c8ad",
    "top": "#8c8c8c",
    "fence": "#111111",
    "broken": "#ff00ff",
    "elided": "#d9c9a3",
    "unknown": "#e01e1e",
    "gap": "#efefef",
}
PLAIN = {"used", "tcache", "tcache-other", "fast", "remote", "run", "run-free", "run-uncarved", "top", "fence",
         "broken", "elided"}
SVG = "{http://www.w3.org/2000/svg}"


def key_of(c):
    """The colour key of one chunk entry, from the schema's words."""
    st = c.get("state")
    if st in PLAIN:
        return st
    if st == "free" and c.get("bin_kind") in ("unsorted", "small", "large"):
        return "free-" + c["bin_kind"] + ("-purged" if c.get("purge") == "purged" else "")
    return "unknown"


def span_of(c):
    if c["state"] == "elided":
        return c["size"]
    return c["size"] * c.get("count", 1)


def load_svg(path):
    text = open(path, encoding="utf-8").read()
    if path.endswith(".html") or text.lstrip().startswith("<!DOCTYPE html"):
        m = re.search(r"<svg\b.*?</svg>", text, re.S)
        if not m:
            raise SystemExit("no <svg> in " + path)
        text = m.group(0)
    return ET.fromstring(text)


def rects(root, cls):
    return [r for r in root.iter(SVG + "rect") if r.get("class") == cls]


def title(el):
    t = el.find(SVG + "title")
    return t.text if t is not None else ""


def fail(msgs):
    for m in msgs[:20]:
        print("  | " + m)
    if len(msgs) > 20:
        print("  | ... and %d more" % (len(msgs) - 20))
    return 1 if msgs else 0


def regions(doc):
    for ai, a in enumerate(doc.get("arenas", [])):
        for ri, r in enumerate(a.get("regions", [])):
            yield ai, ri, r


def read_layout(path):
    out = []
    for line in open(path):
        f = line.split()
        if f:
            out.append(f)
    return out


def cmd_entries(out, js):
    root, doc = load_svg(out), json.load(open(js))
    cells = rects(root, "entry")
    want = [(ai, ri, ci, c) for ai, ri, r in regions(doc) for ci, c in enumerate(r["chunks"])]
    bad = []
    if len(cells) != len(want):
        bad.append("%d entry cells, the dump has %d entries" % (len(cells), len(want)))
    for cell, (ai, ri, ci, c) in zip(cells, want):
        where = "arena %d region %d entry %d (%s)" % (ai, ri, ci, c["state"])
        k = key_of(c)
        if cell.get("fill") != COLOURS[k]:
            bad.append("%s: fill %s, want %s (%s)" % (where, cell.get("fill"), COLOURS[k], k))
        t = title(cell)
        need = [c["addr"]]
        if c["state"] != "elided":
            need.append("%d B" % c["size"])
        if c.get("count", 1) != 1:
            need.append("%d" % c["count"])
        if c["state"] == "free":
            need += ["%s bin %d" % (c["bin_kind"], c["bin"]), c["purge"]]
        elif k == "unknown":
            need.append(c["state"])
        else:
            need.append(c["state"])
        for n in need:
            if n not in t:
                bad.append("%s: hover text %r lacks %r" % (where, t, n))
    return fail(bad)


def strips(layout):
    """(arena, region) -> (x0, y0, pitch, bytes a pixel, bytes a row, rows)."""
    out = {}
    for f in read_layout(layout):
        if f[0] == "strip":
            out[(f[1], f[2])] = (float(f[3]), float(f[4]), float(f[5]), int(f[6]), int(f[7]), int(f[8]))
    return out


def where_drawn(strip, off):
    """The row's top and the x at which byte off of a strip is drawn."""
    x0, y0, pitch, bpp, row_bytes, _ = strip
    return y0 + (off // row_bytes) * pitch, x0 + (off % row_bytes) / bpp


def cmd_scale(out, js, layout, width="960", max_rows="8"):
    doc = json.load(open(js))
    st = strips(layout)
    segs = {}
    for f in read_layout(layout):
        if f[0] == "seg":
            segs.setdefault((int(f[1]), int(f[2]), int(f[3])), []).append(
                (f[4], float(f[5]), float(f[6]), float(f[7]), float(f[8])))
    bad = []
    for ai, ri, r in regions(doc):
        start, end = int(r["start"], 16), int(r["end"], 16)
        s = st.get((str(ai), str(ri)))
        if not s:
            bad.append("arena %d region %d: no strip" % (ai, ri))
            continue
        bpp, row_bytes, rows = s[3], s[4], s[5]
        # one scale, a power of two, the finest that fits the region in max_rows rows
        if bpp & (bpp - 1) or row_bytes != bpp * int(width) or rows != -(-(end - start) // row_bytes):
            bad.append("arena %d region %d: scale %d B/px, %d B a row, %d rows" % (ai, ri, bpp, row_bytes, rows))
        if rows > int(max_rows) or (bpp > 1 and -(-(end - start) // (row_bytes // 2)) <= int(max_rows)):
            bad.append("arena %d region %d: %d B/px is not the finest scale for %d rows" % (ai, ri, bpp, int(max_rows)))
        for ci, c in enumerate(r["chunks"]):
            addr = int(c["addr"], 16)
            boxes = segs.get((ai, ri, ci), [])
            span = min(span_of(c), end - addr) if start <= addr < end else 0
            where = "arena %d region %d entry %d" % (ai, ri, ci)
            if span == 0:
                if boxes:
                    bad.append("%s: drawn, but covers no byte of the region" % where)
                continue
            if not boxes:
                bad.append("%s: not drawn to scale" % where)
                continue
            if any(b[0] != key_of(c) for b in boxes):
                bad.append("%s: drawn as %s, want %s" % (where, boxes[0][0], key_of(c)))
            w = sum(b[3] for b in boxes)
            if abs(w * bpp - span) > 0.01 * bpp:
                bad.append("%s: %.3f px wide at %d B/px is %.1f B; the entry spans %d B" % (where, w, bpp, w * bpp, span))
            y, x = where_drawn(s, addr - start)
            if abs(boxes[0][1] - x) > 0.01 or abs(boxes[0][2] - y) > 0.01:
                bad.append("%s: drawn at (%.3f, %.3f), its address says (%.3f, %.3f)" %
                           (where, boxes[0][1], boxes[0][2], x, y))
            if len(boxes) != len({b[2] for b in boxes}):
                bad.append("%s: two boxes on one row" % where)
    return fail(bad)


def cmd_runs(out, js, layout):
    root, doc = load_svg(out), json.load(open(js))
    st = strips(layout)
    bad = []
    runs = [(ai, ri, r, c) for ai, ri, r in regions(doc) for c in r["chunks"] if c["state"] == "run"]
    if not runs:
        return fail(["the dump has no run"])
    outlines = [(float(o.get("x")), float(o.get("y")), float(o.get("width")), o) for o in rects(root, "run")]
    for o in outlines:
        if o[3].get("stroke") != "#000000" or o[3].get("fill") != "none":
            bad.append("run outline: stroke %s, fill %s" % (o[3].get("stroke"), o[3].get("fill")))
    # to scale: outlines from the header's place, row by row, run_bytes in all
    for ai, ri, r, c in runs:
        s = st[(str(ai), str(ri))]
        off = int(c["addr"], 16) - int(r["start"], 16)
        left = c["run_bytes"]
        while left > 0:
            y, x = where_drawn(s, off)
            piece = min(left, s[4] - off % s[4])
            hit = [o for o in outlines if abs(o[0] - x) < 0.01 and abs(o[1] - (y - 1)) < 0.01 and
                   abs(o[2] - piece / s[3]) < 0.01]
            if not hit:
                bad.append("run at %s: no outline of %.3f px at (%.3f, %.3f)" % (c["addr"], piece / s[3], x, y - 1))
                break
            off += piece
            left -= piece
    return fail(bad)


def cmd_mmapped(out, js, layout):
    doc = json.load(open(js))
    lst = doc["mmapped"].get("list", [])
    got = {}
    for f in read_layout(layout):
        if f[0] == "mmap":
            got.setdefault(int(f[1]), []).append(f)
    bad = []
    if set(got) != set(range(len(lst))):
        bad.append("mappings drawn: %s, listed: %d" % (sorted(got), len(lst)))
    ratios = set()
    for i, m in enumerate(lst):
        boxes = got.get(i, [])
        if any(b[2] != "used" for b in boxes):
            bad.append("mapping %d not in the used colour" % i)
        w = sum(float(b[5]) for b in boxes)
        if w:
            ratios.add(round(m["size"] / w, 3))
    if len(ratios) > 1:
        bad.append("mappings drawn at different scales: %s" % sorted(ratios))
    return fail(bad)


def cmd_legend(out):
    root = load_svg(out)
    seen = {}
    for r in rects(root, "legend"):
        t = title(r).split()
        if len(t) == 2:
            seen[t[0]] = (t[1], r.get("fill"))
    bad = []
    for k, c in COLOURS.items():
        if k not in seen:
            bad.append("legend lacks %s" % k)
        elif seen[k] != (c, c):
            bad.append("legend: %s is %s, want %s" % (k, seen[k], c))
    texts = " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))
    for k, c in COLOURS.items():
        if c not in texts:
            bad.append("legend text does not name %s's colour %s" % (k, c))
    return fail(bad)


def cmd_text(out, *needles):
    root = load_svg(out)
    texts = "\n".join("".join(t.itertext()) for t in root.iter(SVG + "text"))
    texts += "\n" + "\n".join(title(r) for r in root.iter(SVG + "rect"))
    return fail(["%r not in the picture" % n for n in needles if n not in texts])


def cmd_html(out):
    text = open(out, encoding="utf-8").read()
    bad = []
    if not text.startswith("<!DOCTYPE html>"):
        bad.append("does not start with <!DOCTYPE html>")
    if "<script>" not in text or "data-tip" not in text:
        bad.append("no hover script")
    try:
        root = load_svg(out)
        if root.tag != SVG + "svg":
            bad.append("the inline element is %s" % root.tag)
    except (ET.ParseError, SystemExit) as e:
        bad.append("the inline SVG does not parse: %s" % e)
    return fail(bad)


def cmd_known(js):
    doc = json.load(open(js))
    bad = []
    big = [m for m in doc["mmapped"].get("list", []) if m["size"] >= 1 << 20]
    if len(big) != 1:
        bad.append("mmapped chunks of 1 MiB or more: %d, want 1" % len(big))
    chunks = [c for _, _, r in regions(doc) for c in r["chunks"]]
    freed = [c for c in chunks if c["state"] == "free" and c["size"] == 40 * 1024 + 16]
    if len(freed) != 1 or freed[0].get("bin_kind") not in ("unsorted", "large"):
        bad.append("free 40976-byte chunks in a bin: %s" % freed)
    cache = {e["size"]: e["chunks"] for e in doc.get("this_thread_cache", [])}
    shown = sum(c.get("count", 1) for c in chunks if c["state"] == "tcache" and c["size"] == 48)
    if cache.get(48, 0) < 7:
        bad.append("this thread's cache holds %d 48-byte chunks, want 7 or more" % cache.get(48, 0))
    if shown != cache.get(48, 0):
        bad.append("the regions show %d 48-byte chunks in this thread's cache, the list says %d" %
                   (shown, cache.get(48, 0)))
    return fail(bad)


def cmd_find(js, kind, *args):
    doc = json.load(open(js))
    if kind == "mmap":
        for i, m in enumerate(doc["mmapped"].get("list", [])):
            if m["size"] >= int(args[0]):
                print("mmap %d \tused" % i)
                return 0
        return fail(["no mapping of %s B or more" % args[0]])
    for ai, ri, r in regions(doc):
        for ci, c in enumerate(r["chunks"]):
            if c["state"] == args[0] and c["size"] == int(args[1]):
                print("%s %d %d %d \t%s" % (kind, ai, ri, ci, key_of(c)))
                return 0
    return fail(["no %s entry of %s B" % (args[0], args[1])])


def read_png(path):
    """Width, height and rows of RGB triples of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError("PNG depth %d colour type %d interlace %d: not read here" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, at = [], bytearray(stride), 0
    for _ in range(h):
        ft = raw[at]
        line = bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            elif ft != 0:
                raise ValueError("PNG filter %d" % ft)
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return w, h, rows


def rgb(hexcol):
    return tuple(int(hexcol[i:i + 2], 16) for i in (1, 3, 5))


def pixel_at(rows, x, y):
    r = rows[y]
    return tuple(r[3 * x:3 * x + 3])


def box_of(f):
    """The key and the box (x, y, w, h) of a layout line."""
    if f[0] == "seg" or f[0] == "cell":
        return f[4], [float(v) for v in f[5:9]]
    if f[0] == "mmap":
        return f[2], [float(v) for v in f[3:7]]
    if f[0] == "legend":
        return f[1], [float(v) for v in f[3:7]]
    return None, None


def check_boxes(png, boxes):
    w, h, rows = read_png(png)
    bad, looked = [], 0
    for desc, want, (x, y, bw, bh) in boxes:
        if bw < 4 or bh < 4:
            continue
        # below the ticks along a row's top edge
        px, py = int(x + bw / 2), int(y + bh * 0.7)
        if px >= w or py >= h:
            continue
        looked += 1
        got = pixel_at(rows, px, py)
        if max(abs(g - e) for g, e in zip(got, rgb(want))) > 2:
            bad.append("%s: pixel (%d, %d) is #%02x%02x%02x, want %s" % ((desc, px, py) + got + (want,)))
    if not looked:
        bad.append("no box big enough inside the picture")
    print("#   %d boxes looked at" % looked)
    return fail(bad)


def cmd_pixels(png, layout, *kinds):
    boxes = []
    for f in read_layout(layout):
        if f[0] in kinds:
            k, b = box_of(f)
            boxes.append((" ".join(f[:5]), COLOURS[k], b))
    return check_boxes(png, boxes)


def cmd_pixel(png, layout, prefix, colour):
    boxes = []
    for f in read_layout(layout):
        if " ".join(f).startswith(prefix):
            boxes.append((" ".join(f[:5]), COLOURS[colour], box_of(f)[1]))
    if not boxes:
        return fail(["no layout line starts with %r" % prefix])
    return check_boxes(png, boxes)


def cmd_png_size(png, w, h):
    pw, ph, _ = read_png(png)
    return fail([] if (pw, ph) == (int(w), int(h)) else ["PNG is %d x %d, want %s x %s" % (pw, ph, w, h)])


def main():
    cmds = {"entries": cmd_entries, "scale": cmd_scale, "runs": cmd_runs, "mmapped": cmd_mmapped,
            "legend": cmd_legend, "text": cmd_text, "html": cmd_html, "png-size": cmd_png_size,
            "pixels": cmd_pixels, "pixel": cmd_pixel, "known": cmd_known, "find": cmd_find}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        return 2
    try:
        return cmds[sys.argv[1]](*sys.argv[2:])
    except (OSError, ValueError, KeyError, ET.ParseError, StopIteration, ZeroDivisionError) as e:
        print("  | %s: %s" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
