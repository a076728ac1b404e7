"""Charts as SVG drawn on the server: readable without JavaScript, printable, and with the numbers in them.

Each chart carries a <title> and <desc> for screen readers and every bar its value as text, so a
printed page or a PDF shows the figures and not only the shapes. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = {"fax": "#b5462f", "digital": "#2f6fb5", "paper": "#8a6d3b", "seal": "#2d6a3e", "muted": "#9aa3ad"}


@dataclass(frozen=True)
class Series:
    """A named row of values drawn in one colour."""

    name: str
    colour: str
    values: Sequence[float]


def _fmt(value: float) -> str:
    return f"{value:.1f}" if value != int(value) else str(int(value))


def _short(category: str) -> str:
    """A week or month label that fits under a bar: W49, 12月."""
    if len(category) == 7 and category[4] == "-" and category[5:].isdigit():
        return f"{int(category[5:])}月"
    return category[-3:]


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, width: int = 720,
              height: int = 240, chart_id: str = "chart") -> str:
    """Grouped bars, one group per category (weeks, months), values printed above the bars."""
    left, right, top, bottom = 40, 10, 28, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for s in series for v in s.values] + [1])
    group_w = plot_w / max(1, len(categories))
    bar_w = max(2.0, (group_w - 6) / max(1, len(series)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" class="chart" id="{escape(chart_id)}">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">' + escape("; ".join(
            f"{s.name}: " + ", ".join(f"{c} {_fmt(v)}" for c, v in zip(categories, s.values, strict=True))
            for s in series)) + "</desc>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#888"/>',
    ]
    for i, category in enumerate(categories):
        gx = left + i * group_w + 3
        for j, s in enumerate(series):
            value = s.values[i]
            h = plot_h * value / peak
            x, y = gx + j * bar_w, top + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                         f'fill="{s.colour}"><title>{escape(f"{category} {s.name}: {_fmt(value)}")}</title></rect>')
            if value:
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" font-size="9" text-anchor="middle">'
                             f'{escape(_fmt(value))}</text>')
        label = _short(category) if len(categories) > 8 else category
        parts.append(f'<text x="{gx + group_w / 2 - 3:.1f}" y="{top + plot_h + 14}" font-size="10" '
                     f'text-anchor="middle">{escape(label)}</text>')
    x = left
    for s in series:
        parts.append(f'<rect x="{x}" y="{height - 18}" width="10" height="10" fill="{s.colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{height - 9}" font-size="11">{escape(s.name)}</text>')
        x += 24 + 12 * len(s.name)
    parts.append("</svg>")
    return "".join(parts)


def share_line(title: str, categories: Sequence[str], values: Sequence[float | None], *, width: int = 720,
               height: int = 160, chart_id: str = "share") -> str:
    """A percentage (0–100) per category as a line with its points labelled; gaps where there is no value."""
    left, right, top, bottom = 40, 10, 20, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(1, len(categories))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" class="chart" id="{escape(chart_id)}">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">' + escape(", ".join(
            f"{c} {'-' if v is None else _fmt(v) + '%'}" for c, v in zip(categories, values, strict=True)))
        + "</desc>",
    ]
    for pct in (0, 50, 100):
        y = top + plot_h * (1 - pct / 100)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="9" text-anchor="end">{pct}%</text>')
    points = []
    for i, (category, value) in enumerate(zip(categories, values, strict=True)):
        x = left + step * (i + 0.5)
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" font-size="10" text-anchor="middle">'
                     f'{escape(_short(category) if len(categories) > 8 else category)}</text>')
        if value is None:
            continue
        y = top + plot_h * (1 - value / 100)
        points.append(f"{x:.1f},{y:.1f}")
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{PALETTE["digital"]}"/>')
        parts.append(f'<text x="{x:.1f}" y="{y - 5:.1f}" font-size="9" text-anchor="middle">'
                     f'{escape(_fmt(value))}%</text>')
    if len(points) > 1:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{PALETTE["digital"]}" '
                     'stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def progress_bar(label: str, percent: float, *, width: int = 320, height: int = 22) -> str:
    """A horizontal bar filled to ``percent`` with the figure written on it."""
    filled = width * max(0.0, min(100.0, percent)) / 100
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
            f'class="progress" aria-label="{escape(label)} {percent:.1f}%">'
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eee" stroke="#bbb"/>'
            f'<rect x="0" y="0" width="{filled:.1f}" height="{height}" fill="{PALETTE["seal"]}"/>'
            f'<text x="{width / 2}" y="{height / 2 + 4}" font-size="12" text-anchor="middle">{percent:.1f}%</text>'
            "</svg>")
