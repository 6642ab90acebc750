"""The ``digest report --html`` page (pure): the last editions as inline SVG charts.

Self-contained: no JavaScript, no external stylesheet or font, so it can be mailed or opened
from disk. Two charts -- deliveries by state (sent, deferred, failed) as stacked bars, and the
bounce and complaint rates as lines with the 0.1 % and 0.3 % complaint thresholds drawn -- and
the numbers in a table below, for the reader who would rather read.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from digest.feedback.rates import COMPLAINT_ALARM, COMPLAINT_WARN

__all__ = ["render_report"]

_W, _H, _PAD = 720, 240, 44
_COLORS = {"sent": "#2f7d32", "deferred": "#e0a800", "failed": "#c62828",
           "bounce_rate": "#6a1b9a", "complaint_rate": "#c62828"}


def _x(i: int, n: int) -> float:
    return _PAD + (i + 0.5) * (_W - 2 * _PAD) / max(n, 1)


def _bars(rows: Sequence[dict[str, Any]]) -> str:
    n = len(rows)
    top = max([sum(r["counts"].get(s, 0) for s in ("sent", "deferred", "failed")) for r in rows]
              + [1])
    width = max(4.0, (_W - 2 * _PAD) / max(n, 1) * 0.6)
    parts = []
    for i, r in enumerate(rows):
        y = _H - _PAD
        for state in ("sent", "deferred", "failed"):
            value = r["counts"].get(state, 0)
            height = value / top * (_H - 2 * _PAD)
            if value:
                parts.append(f'<rect class="{state}" x="{_x(i, n) - width / 2:.1f}" '
                             f'y="{y - height:.1f}" width="{width:.1f}" height="{height:.1f}" '
                             f'fill="{_COLORS[state]}"><title>{html.escape(r["date"])} {state}: '
                             f'{value}</title></rect>')
                y -= height
    return _frame("Deliveries per edition", f"max {top}", rows, "".join(parts),
                  ["sent", "deferred", "failed"])


def _lines(rows: Sequence[dict[str, Any]]) -> str:
    n = len(rows)
    top = max([r["bounce_rate"] for r in rows] + [r["complaint_rate"] for r in rows]
              + [COMPLAINT_ALARM * 1.2])

    def y(v: float) -> float:
        return float(_H - _PAD - v / top * (_H - 2 * _PAD))

    parts = []
    # On a scale of several per cent the two limits are close: keep their labels apart.
    label_y = {COMPLAINT_ALARM: y(COMPLAINT_ALARM) + 4,
               COMPLAINT_WARN: max(y(COMPLAINT_WARN) + 4, y(COMPLAINT_ALARM) + 16)}
    for limit, label in ((COMPLAINT_WARN, "0.1 %"), (COMPLAINT_ALARM, "0.3 %")):
        parts.append(f'<line class="threshold" x1="{_PAD}" x2="{_W - _PAD}" y1="{y(limit):.1f}" '
                     f'y2="{y(limit):.1f}" stroke="#999" stroke-dasharray="4 3"/>'
                     f'<text x="{_W - _PAD + 4}" y="{label_y[limit]:.1f}" font-size="11">'
                     f'{label}</text>')
    for key in ("bounce_rate", "complaint_rate"):
        points = " ".join(f"{_x(i, n):.1f},{y(r[key]):.1f}" for i, r in enumerate(rows))
        parts.append(f'<polyline class="{key}" points="{points}" fill="none" '
                     f'stroke="{_COLORS[key]}" stroke-width="2"/>')
        parts += [f'<circle cx="{_x(i, n):.1f}" cy="{y(r[key]):.1f}" r="3" '
                  f'fill="{_COLORS[key]}"><title>{html.escape(r["date"])} {key}: '
                  f'{r[key] * 100:.2f} %</title></circle>' for i, r in enumerate(rows)]
    return _frame("Bounce and complaint rates", f"max {top * 100:.2f} %", rows, "".join(parts),
                  ["bounce_rate", "complaint_rate"])


def _frame(title: str, scale: str, rows: Sequence[dict[str, Any]], body: str,
           legend: list[str]) -> str:
    n = len(rows)
    labels = "".join(f'<text x="{_x(i, n):.1f}" y="{_H - _PAD + 16}" font-size="10" '
                     f'text-anchor="middle">{html.escape(r["date"][5:])}</text>'
                     for i, r in enumerate(rows))
    keys = "".join(f'<rect x="{_PAD + i * 130}" y="8" width="12" height="12" '
                   f'fill="{_COLORS[k]}"/><text x="{_PAD + i * 130 + 16}" y="18" '
                   f'font-size="12">{k.replace("_", " ")}</text>' for i, k in enumerate(legend))
    return (f'<figure><figcaption>{html.escape(title)}</figcaption>'
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_W}" height="{_H}" '
            f'viewBox="0 0 {_W} {_H}"><title>{html.escape(title)}</title>'
            f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" '
            f'stroke="#333"/><text x="4" y="{_PAD}" font-size="10">{html.escape(scale)}</text>'
            f'{keys}{body}{labels}</svg></figure>')


def _table(rows: Sequence[dict[str, Any]]) -> str:
    head = ("<tr><th>edition</th><th>date</th><th>sent</th><th>deferred</th><th>failed</th>"
            "<th>bounces</th><th>bounce rate</th><th>complaints</th><th>complaint rate</th></tr>")
    body = "".join(
        f'<tr class="{r["complaint_level"]}"><td>{r["id"]}</td><td>{html.escape(r["date"])} '
        f'{html.escape(r["frequency"])}</td><td>{r["counts"].get("sent", 0)}</td>'
        f'<td>{r["counts"].get("deferred", 0)}</td><td>{r["counts"].get("failed", 0)}</td>'
        f'<td>{r["bounces"]}</td><td>{r["bounce_rate"] * 100:.2f} %</td>'
        f'<td>{r["complaints"]}</td><td>{r["complaint_rate"] * 100:.2f} %</td></tr>'
        for r in rows)
    return f"<table>{head}{body}</table>"


def render_report(site_name: str, rows: Sequence[dict[str, Any]]) -> str:
    """The page for ``rows`` (oldest first): status rows merged with ``edition_rates``."""
    title = f"{site_name}: the last {len(rows)} editions"
    charts = _bars(rows) + _lines(rows) if rows else "<p>No editions yet.</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}"
        "figure{margin:0 0 24px}figcaption{font-weight:600;margin-bottom:4px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}tr.warn td{background:#fff4d6}tr.alarm td{background:#fde0e0}"
        f"</style></head><body><h1>{html.escape(title)}</h1>{charts}{_table(rows)}"
        "<p>Complaints above 0.1 % (yellow) risk throttling by Gmail and Yahoo; above 0.3 % "
        "(red) they block.</p></body></html>")
