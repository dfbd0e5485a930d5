"""The console's drift chart: a server-rendered SVG (no script, no style attribute, so
the page's CSP holds), two panels sharing the time axis: the clock offset (seconds the
token runs ahead: each payment's observed offset as a dot, the learned offset as a line)
and the learned rate (ppm).

Usage::

    svg = drift_svg(operators.drift_history(backend, 42))   # markup, already escaped
"""

from __future__ import annotations

import datetime as dt
import math

from markupsafe import Markup, escape

W, H = 760, 420
LEFT, RIGHT = 64, 16
PANELS = ((28, 230), (268, 380))  # (top, bottom) of the offset and the rate panel


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = max(1.0, (hi - lo) * 0.1)
    return lo - pad, hi + pad


def _label(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.2e}"


def drift_svg(points: list[dict]) -> Markup:
    """The chart of ``operators.drift_history`` points (oldest first)."""
    if not points:
        return Markup('<p class="empty">No accepted payment yet: no drift to show.</p>')
    t0, t1 = points[0]["at"], points[-1]["at"]
    if t1 == t0:
        t0, t1 = t0 - 3600, t1 + 3600

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * (W - LEFT - RIGHT)

    out = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" xmlns="http://www.w3.org/2000/svg" '
           f'aria-label="drift offset and rate over time">']
    offsets = [p["observed_s"] for p in points] + [p["offset_s"] for p in points if p["offset_s"] is not None]
    rates = [p["ppm"] for p in points if p["ppm"] is not None] or [0.0]
    panels = (("offset, s ahead", offsets, "observed_s", "offset_s"), ("rate, ppm", rates, None, "ppm"))
    for (top, bottom), (title, values, dots, line) in zip(PANELS, panels, strict=True):
        lo, hi = _span(values)

        def y(v: float, lo=lo, hi=hi, top=top, bottom=bottom) -> float:
            return bottom - (v - lo) / (hi - lo) * (bottom - top)

        out.append(f'<text class="title" x="{LEFT}" y="{top - 10}">{escape(title)}</text>')
        for v in _ticks(lo, hi, 4):
            out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                       f'<text class="tick" x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_label(v)}</text>')
        if lo < 0 < hi:
            out.append(f'<line class="zero" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>')
        pts = [(x(p["at"]), y(p[line])) for p in points if p[line] is not None]
        if len(pts) > 1:
            out.append('<polyline class="model" points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        elif pts:
            out.append(f'<circle class="model" cx="{pts[0][0]:.1f}" cy="{pts[0][1]:.1f}" r="3"/>')
        if dots:
            for p in points:
                out.append(f'<circle class="obs" cx="{x(p["at"]):.1f}" cy="{y(p[dots]):.1f}" r="3.2">'
                           f'<title>{escape(_when(p["at"]))}: {p[dots]:+d} s observed</title></circle>')
        out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{bottom}"/>'
                   f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{bottom}" y2="{bottom}"/>')
    ticks = _time_ticks(t0, t1)
    for i, t in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        out.append(f'<text class="tick" x="{x(t):.1f}" y="{H - 20}" text-anchor="{anchor}">'
                   f'{escape(_when(t, t1 - t0))}</text>')
    out.append(f'<text class="legend" x="{W - RIGHT}" y="{H - 4}" text-anchor="end">dots: offset a payment '
               f'showed · line: the learned model · {len(points)} payments · UTC</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _when(t: float, span: float = 0) -> str:
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    if span and span < 2 * 86_400:
        return d.strftime("%H:%M")
    return d.strftime("%Y-%m-%d" if not span or span > 60 * 86_400 else "%b %d")


def _time_ticks(t0: float, t1: float, n: int = 5) -> list[float]:
    return [t0 + i * (t1 - t0) / (n - 1) for i in range(n)]
