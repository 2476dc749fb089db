"""Small static SVG charts, written directly: rates with interval bars, lines with interval bands,
stacked share bars, count grids and a scatter with marked limits.

No plotting library: the report needs five simple chart kinds, and SVG written here is a few
kilobytes per chart, needs no import on any path (HTML or not), renders the same in every browser
without a script, and keeps its labels as text (searchable, selectable, legible at any zoom). Every
mark carries a <title>, the browser's own tooltip: the numbers on hover without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind-safe (Okabe-Ito) for series and outcomes; one per meaning, kept in this order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
OUTCOME_COLORS = {"answered": "#009E73", "no_json": "#E69F00", "truncated": "#D55E00", "wrong_shape": "#CC79A7",
                  "empty": "#999999", "no_code": "#56B4E9", "failed": "#000000"}
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Interval:
    """A value with its 95% bounds (None where undefined) and the items behind it."""

    value: float | None
    low: float | None
    high: float | None
    n_items: int = 0


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" {FONT}>'
            f'<title>{escape(label)}</title>' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _rate_axis(x0: float, x1: float, y: float, h: float, label: str) -> list[str]:
    """The y axis of a rate, 0 to 1, with gridlines at each 0.2."""
    out = []
    for k in range(6):
        v = k / 5
        yy = y + h - v * h
        out.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
        out.append(_text(x0 - 4, yy + 4, f"{v:.1f}", "end"))
    out.append(_text(12, y + h / 2, label, extra=f' transform="rotate(-90 12 {y + h / 2:.1f})"'))
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def interval_text(name: str, iv: Interval) -> str:
    return f"{name} {_fmt(iv.value)} [{_fmt(iv.low)}, {_fmt(iv.high)}] over {iv.n_items} items"


def rate_points(label: str, metric: str, categories: Sequence[str], points: Sequence[Interval],
                threshold: float | None = None) -> str:
    """One point per category with its interval bar; the threshold as a dashed line."""
    left, top, bottom, step = 50, 14, 46, 100
    width = max(260, left + 20 + step * len(categories))
    h = 160
    body = _rate_axis(left, width - 10, top, h, metric)
    if threshold is not None:
        ty = top + h - threshold * h
        body.append(f'<line class="threshold" x1="{left}" x2="{width - 10}" y1="{ty:.1f}" y2="{ty:.1f}" '
                    f'stroke="#D55E00" stroke-dasharray="5 3"><title>threshold {threshold:g}</title></line>')
        body.append(_text(width - 12, ty - 3, f"threshold {threshold:g}", "end", ' fill="#D55E00"'))
    for i, (name, iv) in enumerate(zip(categories, points, strict=True)):
        x = left + step / 2 + 10 + i * step
        tip = escape(f"{name}: {interval_text(metric, iv)}")
        parts = [f"<title>{tip}</title>"]
        if iv.low is not None and iv.high is not None:
            y_lo, y_hi = top + h - iv.low * h, top + h - iv.high * h
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_lo:.1f}" y2="{y_hi:.1f}" stroke="#0072B2" '
                         'stroke-width="2"/>')
            parts += [f'<line x1="{x - 6:.1f}" x2="{x + 6:.1f}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#0072B2" '
                      'stroke-width="2"/>' for yy in (y_lo, y_hi)]
        if iv.value is not None:
            parts.append(f'<circle cx="{x:.1f}" cy="{top + h - iv.value * h:.1f}" r="4.5" fill="#0072B2"/>')
            parts.append(_text(x + 8, top + h - iv.value * h - 6, _fmt(iv.value), "start"))
        body.append('<g class="mark">' + "".join(parts) + "</g>")
        body.append(_text(x, top + h + 16, _clip(name, 16)))
    return _svg(width, top + h + bottom - 16, label, body)


def rate_lines(label: str, axis: str, xs: Sequence[float], series: Mapping[str, Sequence[Interval]]) -> str:
    """One line per metric over a numeric axis, its interval as a band."""
    left, top, h, w = 50, 14, 160, 420
    lo_x, hi_x = min(xs), max(xs)
    span = (hi_x - lo_x) or 1.0

    def px(v: float) -> float:
        return left + 10 + (v - lo_x) / span * (w - 20)

    def py(v: float) -> float:
        return top + h - v * h

    body = _rate_axis(left, left + w, top, h, "rate")
    body += [_text(px(x), top + h + 16, f"{x:g}") for x in xs]
    body.append(_text(left + w / 2, top + h + 32, axis))
    for k, (name, ivs) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        band = [(x, iv) for x, iv in zip(xs, ivs, strict=True) if iv.low is not None and iv.high is not None]
        if len(band) > 1:
            pts = [f"{px(x):.1f},{py(iv.high):.1f}" for x, iv in band]  # type: ignore[arg-type]
            pts += [f"{px(x):.1f},{py(iv.low):.1f}" for x, iv in reversed(band)]  # type: ignore[arg-type]
            body.append(f'<polygon points="{" ".join(pts)}" fill="{color}" fill-opacity="0.15" stroke="none"/>')
        line = [(x, iv.value) for x, iv in zip(xs, ivs, strict=True) if iv.value is not None]
        if len(line) > 1:
            body.append(f'<polyline points="{" ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in line)}" fill="none" '
                        f'stroke="{color}" stroke-width="2"/>')
        for x, iv in zip(xs, ivs, strict=True):
            if iv.value is not None:
                body.append(f'<circle class="mark" cx="{px(x):.1f}" cy="{py(iv.value):.1f}" r="3.5" fill="{color}">'
                            f"<title>{escape(f'{axis}={x:g}: {interval_text(name, iv)}')}</title></circle>")
        ly = top + 4 + k * 14
        body.append(f'<rect x="{left + w + 10}" y="{ly}" width="10" height="10" fill="{color}"/>')
        body.append(_text(left + w + 24, ly + 9, name, "start"))
    return _svg(left + w + 110, top + h + 40, label, body)


def stacked_bars(label: str, rows: Sequence[tuple[str, dict[str, int]]], order: Sequence[str]) -> str:
    """One horizontal bar per row, split into the shares of each key (counts on hover)."""
    left, top, bar, gap, w = 230, 8, 16, 6, 360
    present = [k for k in order if any(counts.get(k) for _, counts in rows)]
    body: list[str] = []
    for i, (name, counts) in enumerate(rows):
        y = top + i * (bar + gap)
        total = sum(counts.values())
        body.append(_text(left - 6, y + bar - 4, _clip(name, 36), "end"))
        x = float(left)
        for key in present:
            n = counts.get(key, 0)
            if not n or not total:
                continue
            share = n / total
            tip = escape(f"{name}: {key} {n} of {total} ({share:.0%})")
            body.append(f'<rect class="mark" x="{x:.1f}" y="{y}" width="{share * w:.1f}" height="{bar}" '
                        f'fill="{OUTCOME_COLORS.get(key, "#888")}"><title>{tip}</title></rect>')
            x += share * w
    legend_y = top + len(rows) * (bar + gap) + 6
    lx = float(left)
    for key in present:
        color = OUTCOME_COLORS.get(key, "#888")
        body.append(f'<rect x="{lx:.1f}" y="{legend_y}" width="10" height="10" fill="{color}"/>')
        body.append(_text(lx + 14, legend_y + 9, key, "start"))
        lx += 24 + 7 * len(key)
    return _svg(left + w + 20, legend_y + 18, label, body)


def count_grid(label: str, row_names: Sequence[str], col_names: Sequence[str], counts: Sequence[Sequence[int]],
               good: set[tuple[int, int]]) -> str:
    """A table of counts as coloured squares (shade: the share of the row); `good` cells in green, others
    in orange (a confusion matrix: the diagonal is right)."""
    left, top, size = 80, 30, 72
    body = [_text(left + size * j + size / 2, top - 8, c) for j, c in enumerate(col_names)]
    for i, (r, line) in enumerate(zip(row_names, counts, strict=True)):
        total = sum(line)
        body.append(_text(left - 6, top + size * i + size / 2 + 4, r, "end"))
        for j, n in enumerate(line):
            share = n / total if total else 0.0
            color = "#009E73" if (i, j) in good else "#E69F00"
            body.append(f'<g class="mark"><title>{escape(f"{r}, {col_names[j]}: {n} of {total}")}</title>'
                        f'<rect x="{left + size * j}" y="{top + size * i}" width="{size - 2}" height="{size - 2}" '
                        f'fill="{color}" fill-opacity="{0.08 + 0.8 * share:.2f}" stroke="#bbb"/>'
                        + _text(left + size * j + size / 2 - 1, top + size * i + size / 2 + 4, str(n)) + "</g>")
    return _svg(left + size * len(col_names) + 10, top + size * len(row_names) + 6, label, body)


def context_scatter(label: str, probes: Sequence[tuple[int, int | None, str]], limit: int | None,
                    prompt_sizes: Sequence[int], max_tokens: int) -> str:
    """Tokens sent against tokens read per probe (colour: its status), the limit as a vertical line, the
    dataset's prompt sizes (plus max_tokens) as ticks under the axis."""
    left, top, h, w = 60, 14, 200, 420
    xs = [p[0] for p in probes] + [s + max_tokens for s in prompt_sizes] + ([limit] if limit else [])
    hi = max([*xs, 1]) * 1.05

    def px(v: float) -> float:
        return left + v / hi * w

    def py(v: float) -> float:
        return top + h - v / hi * h

    body = [f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#888"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#888"/>',
            f'<line x1="{px(0):.1f}" y1="{py(0):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" stroke="#ccc" '
            'stroke-dasharray="3 3"><title>read = sent</title></line>']
    for v in _ticks(hi):
        body.append(_text(px(v), top + h + 14, f"{v:g}"))
        body.append(_text(left - 4, py(v) + 4, f"{v:g}", "end"))
    body.append(_text(left + w / 2, top + h + 44, "tokens sent"))
    body.append(_text(12, top + h / 2, "tokens read", extra=f' transform="rotate(-90 12 {top + h / 2:.1f})"'))
    if limit:
        body.append(f'<line class="limit" x1="{px(limit):.1f}" x2="{px(limit):.1f}" y1="{top}" y2="{top + h}" '
                    f'stroke="#D55E00" stroke-width="2"><title>limit {limit} tokens</title></line>')
        body.append(_text(px(limit) - 4, top + 12, f"limit {limit}", "end", ' fill="#D55E00"'))
    colors = {"accepted": "#009E73", "refused": "#D55E00", "truncated": "#E69F00"}
    for sent, read, status in probes:
        y = py(read) if read is not None else top + h
        said = "?" if read is None else str(read)
        body.append(f'<circle class="mark" cx="{px(sent):.1f}" cy="{y:.1f}" r="4" fill="{colors.get(status, "#888")}">'
                    f"<title>{escape(f'sent {sent}, read {said}: {status}')}</title></circle>")
    for size in prompt_sizes:
        x = px(size + max_tokens)
        over = limit is not None and size + max_tokens > limit
        body.append(f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="{top + h + 18}" y2="{top + h + 28}" '
                    f'stroke="{"#D55E00" if over else "#0072B2"}"><title>a dataset prompt: {size} tokens + '
                    f"max_tokens {max_tokens}{' (over the limit)' if over else ''}</title></line>")
    legend = [("accepted", "#009E73"), ("truncated", "#E69F00"), ("refused", "#D55E00")]
    for k, (name, color) in enumerate(legend):
        body.append(f'<circle cx="{left + w + 16}" cy="{top + 6 + k * 14}" r="4" fill="{color}"/>')
        body.append(_text(left + w + 24, top + 10 + k * 14, name, "start"))
    body.append(_text(left + w + 10, top + 10 + 3 * 14, "| prompt + max_tokens", "start", ' fill="#0072B2"'))
    return _svg(left + w + 140, top + h + 52, label, body)


def _ticks(hi: float) -> list[float]:
    """Round tick values from 0 to below `hi`, about four of them (steps of 1, 2 or 5 times a power of 10)."""
    raw = hi / 4
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw / 1.5)
    return [k * step for k in range(int(hi // step) + 1)]


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
