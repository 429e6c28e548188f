# SPDX-License-Identifier: MIT
"""Line charts for the demo: one drawn in text for the terminal, one written
as SVG.  Standard library only.

A series is a dict: label, points (a list of (x, y) pairs, x ascending),
and for text_chart a mark (one character), for svg_chart a color (and
optionally dash, an SVG stroke-dasharray).  Both charts start their axes at
0 and end them at a round value above the largest x and y.
"""
import math
from xml.sax.saxutils import escape, quoteattr


def nice_step(top, most):
    """The smallest of 1, 2, 2.5, 5 times a power of ten such that `most`
    steps reach `top` or more."""
    if top <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(top / most))
    for base in (1, 2, 2.5, 5, 10, 20):
        step = base * power
        if step * most >= top * (1 - 1e-9):
            return step
    return 20 * power


def fmt(v):
    """A tick label: no trailing zeros."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


def text_chart(series, *, width=62, most_rows=15, x_unit="s", y_unit="MiB", marks=None):
    """The chart as a list of lines: a y axis of `y_unit` (one label every
    other row), `width` columns of plot, an x axis of `x_unit`, and under it
    `marks` (a list of (x, text), e.g. where each day starts).  Each column
    stands for an equal slice of x; a series fills every row between the
    smallest and the largest of its values in the slice (and its last value
    before it, so steps stay joined).  Where series meet, the later one in
    the list is drawn."""
    xmax = max(p[0] for s in series for p in s["points"])
    ymax = max(p[1] for s in series for p in s["points"])
    xstep = nice_step(xmax, 10)
    xtop = xmax  # the plot ends with the last point; ticks at whole steps before it
    ystep = nice_step(ymax, most_rows)
    levels = max(1, math.ceil(ymax / ystep - 1e-9))
    grid = [[" "] * width for _ in range(levels + 1)]

    def col(x):
        return min(width - 1, int(x / xtop * width))

    def level(y):
        return min(levels, max(0, int(round(y / ystep))))

    for s in series:
        pts = s["points"]
        lo = [None] * width
        hi = [None] * width
        end = [None] * width  # the last value in each column
        prev = None
        for x, y in pts:
            c = col(x)
            if lo[c] is None:
                lo[c] = hi[c] = y if prev is None else prev
            lo[c] = min(lo[c], y)
            hi[c] = max(hi[c], y)
            end[c] = prev = y
        carry = None
        for c in range(col(pts[0][0]), col(pts[-1][0]) + 1):
            if lo[c] is None:  # no point in this slice: the line goes on flat
                lo[c] = hi[c] = carry
            else:
                carry = end[c]
            for L in range(level(lo[c]), level(hi[c]) + 1):
                grid[levels - L][c] = s["mark"]

    label_w = max(len(fmt(ystep * levels)), len(y_unit))
    out = [f"{y_unit:>{label_w}}"]
    for r, row in enumerate(grid):
        L = levels - r
        label = fmt(ystep * L) if L % 2 == 0 else ""
        out.append(f"{label:>{label_w}} |" + "".join(row).rstrip())
    # The axis row starts at the corner under the '|': the tick of 0.
    axis = ["+"] + ["-"] * width
    ticks = [" "] * (width + 9)
    for i in range(int(xtop / xstep + 1e-9) + 1):
        c = col(i * xstep) + 1 if i else 0
        axis[c] = "+"
        for k, ch in enumerate(fmt(i * xstep)):
            if c + k < len(ticks):
                ticks[c + k] = ch
    out.append(" " * (label_w + 1) + "".join(axis))
    out.append(" " * (label_w + 1) + "".join(ticks).rstrip() + f"  {x_unit}")
    if marks:
        row = [" "] * (width + 8)
        for x, text in marks:
            c = col(x)
            for k, ch in enumerate(text):
                if c + k < len(row):
                    row[c + k] = ch
        out.append(" " * (label_w + 2) + "".join(row).rstrip())
    return out


def svg_chart(series, *, title, subtitle="", note="", xlabel, ylabel, width=900, height=500, marks=None):
    """The chart as the text of an SVG document: a plot box (the rect with
    id "plot"), grid lines and tick labels on both axes, the axis labels,
    one polyline per series (class "series", its label in data-label), a
    legend under the plot, `note` in small print under the legend (a line
    of print for each line of it), and
    `marks` (a list of (x, text)) as dotted vertical lines with their text
    at the top of the plot."""
    notes = note.splitlines()
    left, right, top, bottom = 72, 24, 64 if subtitle else 44, 84 + 14 * len(notes)
    pw, ph = width - left - right, height - top - bottom
    xmax = max(p[0] for s in series for p in s["points"])
    ymax = max(p[1] for s in series for p in s["points"])
    xstep, ystep = nice_step(xmax, 10), nice_step(ymax, 8)
    xtop = xstep * math.ceil(xmax / xstep - 1e-9)
    ytop = ystep * math.ceil(ymax / ystep - 1e-9)

    def X(x):
        return left + pw * x / xtop

    def Y(y):
        return top + ph - ph * y / ytop

    el = []
    add = el.append
    add("<!-- SPDX-License-Identifier: MIT -->")  # (a chart in docs/ is a file of the project too)
    add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">')
    add(f'<rect width="{width}" height="{height}" fill="white"/>')
    add(f'<text x="{width / 2:.1f}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
        f"{escape(title)}</text>")
    if subtitle:
        add(f'<text x="{width / 2:.1f}" y="46" text-anchor="middle" fill="#444">{escape(subtitle)}</text>')
    add(f'<rect id="plot" x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    i = 0
    while i * ystep <= ytop * (1 + 1e-9):
        y = Y(i * ystep)
        add(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        add(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(i * ystep)}</text>')
        i += 1
    i = 0
    while i * xstep <= xtop * (1 + 1e-9):
        x = X(i * xstep)
        add(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#e4e4e4"/>')
        add(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">{fmt(i * xstep)}</text>')
        i += 1
    for x, text in marks or []:
        add(f'<line x1="{X(x):.1f}" y1="{top}" x2="{X(x):.1f}" y2="{top + ph}" stroke="#bbb" '
            f'stroke-dasharray="2,3"/>')
        add(f'<text x="{X(x) + 3:.1f}" y="{top + 14}" fill="#777" font-size="11">{escape(text)}</text>')
    add(f'<text x="{left + pw / 2:.1f}" y="{top + ph + 40}" text-anchor="middle">{escape(xlabel)}</text>')
    add(f'<text transform="translate(18 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{escape(ylabel)}</text>")
    for s in series:
        pts = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in s["points"])
        dash = f' stroke-dasharray="{s["dash"]}"' if s.get("dash") else ""
        add(f'<polyline class="series" data-label={quoteattr(s["label"])} fill="none" stroke="{s["color"]}" '
            f'stroke-width="2" stroke-linejoin="round"{dash} points="{pts}"/>')
    lx, ly = left, top + ph + 66
    for s in series:
        dash = f' stroke-dasharray="{s["dash"]}"' if s.get("dash") else ""
        add(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 28}" y2="{ly - 4}" stroke="{s["color"]}" '
            f'stroke-width="3"{dash}/>')
        add(f'<text x="{lx + 34}" y="{ly}">{escape(s["label"])}</text>')
        lx += 34 + 8 * len(s["label"]) + 30
    for k, line in enumerate(notes):
        add(f'<text x="{left}" y="{ly + 22 + 14 * k}" fill="#666" font-size="11">{escape(line)}</text>')
    add("</svg>")
    return "\n".join(el) + "\n"
