#!/usr/bin/env python3
"""Bar charts for the benchmark reports, written as SVG by hand.

The benchmark scripts must run on a bare machine with only the Python standard
library (plotting libraries are large and not installed there), and an SVG is
text: it diffs, it renders on GitHub, and it needs no image library to write.

    from charts import bar_chart
    bar_chart("transform.svg", "Transform, unary UPPER", "calls/s", [
        ("64 in flight", [("Rust", 98000.0, 1500.0), ("Python aio", 9000.0, None)]),
    ])

Usage as a script: python3 bench/charts.py OUT.svg   (writes a sample chart)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

# A series: its name, the measured value, and an optional error (for example a
# standard deviation or half the min-max spread), drawn as a whisker.
Bar = tuple[str, float, float | None]
Group = tuple[str, Sequence[Bar]]

WIDTH = 720
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
BAR_HEIGHT = 20
BAR_GAP = 4
GROUP_GAP = 18
LEGEND_Y = 51  # the middle of the first legend row, below the title


def text_width(text: str, size: float) -> float:
    """An estimate of rendered width: no font metrics without a font library,
    and an average glyph is a little over half the font size wide."""
    return len(text) * size * 0.58


def middle_shift(size: float) -> float:
    """How far below a line the baseline goes to centre text on it. Done by
    hand because `dominant-baseline` is applied differently, or not at all, by
    the renderers an SVG meets (browsers, librsvg, image viewers)."""
    return size * 0.36


def nice_step(span: float, ticks: int = 5) -> float:
    """A tick spacing of 1, 2, 2.5 or 5 times a power of ten that gives about
    `ticks` intervals, so the axis reads in round numbers and ends close to
    the longest bar."""
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def format_value(value: float) -> str:
    """Thousands separated when large, three significant digits when small."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def value_label(value: float, error: float | None) -> str:
    return format_value(value) + (f" ± {format_value(error)}" if error else "")


def series_colours(groups: Sequence[Group]) -> dict[str, str]:
    """One colour per series, in order of first appearance, so a series keeps
    its colour in every group even when some group lacks it."""
    colours: dict[str, str] = {}
    for _, bars in groups:
        for name, _, _ in bars:
            if name not in colours:
                colours[name] = PALETTE[len(colours) % len(PALETTE)]
    return colours


def bar_chart(path: str, title: str, unit: str, groups: Sequence[Group]) -> None:
    """Writes a grouped horizontal bar chart to `path` as SVG.

    Horizontal bars because group labels (scenario variants such as
    "64 clients, 1 connection") stay readable at any length. The axis always
    starts at zero so bar lengths compare honestly, and each bar carries its
    value so nobody has to read it off the grid."""
    if not groups or not any(bars for _, bars in groups):
        raise ValueError("bar_chart needs at least one bar")
    colours = series_colours(groups)
    label_size, value_size = 13, 12

    left = 16 + min(260, max(text_width(label, label_size) for label, _ in groups))
    # Room on the right for the value printed after the longest bar.
    right = 16 + max(text_width(value_label(v, e), value_size) for _, bars in groups for _, v, e in bars)
    plot_width = WIDTH - left - right
    peak = max(value + (error or 0) for _, bars in groups for _, value, error in bars)
    step = nice_step(peak if peak > 0 else 1)
    axis_max = step * math.ceil(peak / step) if peak > 0 else step
    scale = plot_width / axis_max

    def x(value: float) -> float:
        return left + max(0.0, value) * scale

    # The legend, under the title: as many series a row as fit, then the next.
    legend: list[str] = []
    lx, ly = left, LEGEND_Y
    for name, colour in colours.items():
        item_width = 20 + text_width(name, 13)
        if lx > left and lx + item_width > WIDTH - 16:
            lx, ly = left, ly + 22
        legend.append(f'<rect x="{lx:.1f}" y="{ly - 7}" width="14" height="14" fill="{colour}"/>')
        legend.append(
            f'<text x="{lx + 20:.1f}" y="{ly + middle_shift(13):.1f}" font-size="13" fill="#222">{escape(name)}</text>'
        )
        lx += item_width + 22
    top = ly + 27

    out: list[str] = []
    y = top
    for label, bars in groups:
        group_height = len(bars) * BAR_HEIGHT + (len(bars) - 1) * BAR_GAP
        out.append(
            f'<text x="{left - 10:.1f}" y="{y + group_height / 2 + middle_shift(label_size):.1f}" '
            f'text-anchor="end" font-size="{label_size}" fill="#222">{escape(label)}</text>'
        )
        for name, value, error in bars:
            middle = y + BAR_HEIGHT / 2
            out.append(
                f'<rect x="{left:.1f}" y="{y:.1f}" width="{x(value) - left:.1f}" height="{BAR_HEIGHT}" '
                f'fill="{colours[name]}"><title>{escape(f"{name}: {format_value(value)} {unit}")}</title></rect>'
            )
            end = x(value)
            if error:
                low, high = x(value - error), x(value + error)
                cap = BAR_HEIGHT / 4
                out.append(
                    f'<path d="M{low:.1f},{middle:.1f}H{high:.1f}M{low:.1f},{middle - cap:.1f}V{middle + cap:.1f}'
                    f'M{high:.1f},{middle - cap:.1f}V{middle + cap:.1f}" stroke="#222" stroke-width="1.5" fill="none"/>'
                )
                end = max(end, high)
            shown = value_label(value, error)
            out.append(
                f'<text x="{end + 5:.1f}" y="{middle + middle_shift(value_size):.1f}" '
                f'font-size="{value_size}" fill="#222">{escape(shown)}</text>'
            )
            y += BAR_HEIGHT + BAR_GAP
        y += GROUP_GAP - BAR_GAP
    plot_bottom = y - GROUP_GAP + 10

    grid: list[str] = []
    ticks = round(axis_max / step)
    for i in range(ticks + 1):
        tick = i * step
        tx = x(tick)
        grid.append(
            f'<line x1="{tx:.1f}" y1="{top - 8}" x2="{tx:.1f}" y2="{plot_bottom:.1f}" '
            f'stroke="{"#888" if i == 0 else "#e3e3e3"}" stroke-width="1"/>'
        )
        grid.append(
            f'<text x="{tx:.1f}" y="{plot_bottom + 16:.1f}" text-anchor="middle" font-size="12" '
            f'fill="#555">{escape(format_value(tick))}</text>'
        )


    height = plot_bottom + 48
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" font-family="{FONT}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{height:.0f}" fill="#fff"/>',
        f'<text x="{WIDTH / 2}" y="26" text-anchor="middle" font-size="18" font-weight="bold" fill="#111">{escape(title)}</text>',
        *legend,
        *grid,
        *out,
        f'<text x="{left + plot_width / 2:.1f}" y="{plot_bottom + 38:.1f}" text-anchor="middle" '
        f'font-size="13" fill="#333">{escape(unit)}</text>',
        "</svg>",
    ]
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(svg) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="Writes a sample chart, to see what bar_chart draws.")
    parser.add_argument("out", help="where to write the SVG")
    args = parser.parse_args()
    bar_chart(
        args.out,
        "Transform: unary UPPER (sample figures)",
        "calls per second",
        [
            (
                "1 in flight",
                [("Rust (tonic)", 14_200.0, 310.0), ("Python grpcio aio", 2_950.0, 80.0),
                 ("Python grpcio threads", 1_900.0, None)],
            ),
            (
                "64 in flight",
                [("Rust (tonic)", 96_500.0, 2_100.0), ("Python grpcio aio", 8_700.0, 400.0),
                 ("Python grpcio threads", 4_100.0, 350.0)],
            ),
            ("64 in flight, 4 connections", [("Rust (tonic)", 121_000.0, None), ("Python grpcio aio", 8_900.0, None)]),
        ],
    )


if __name__ == "__main__":
    main()
