"""Stage: report (compare page). A comparison (`compare.compare`) as one self-contained
page, `compare.html`: per eval the metrics table, the per-seed differences as a plot
(one dot per seed, the mean and its interval as a band) and the per-achievement
differences as bars. Inline SVG and CSS; no script, no network. Every number is the
comparison's.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from . import compare

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}h1{font-size:20px;margin:0}
main{padding:8px 24px 32px;max-width:1100px}section{background:#fff;border-radius:8px;
padding:12px 18px;margin:16px 0;box-shadow:0 1px 3px #0002}h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #e3e6ec;
text-align:right}td:first-child,th:first-child{text-align:left}.worse{color:#b3261e;font-weight:600}
.better{color:#1b7f3b;font-weight:600}.gate{padding:6px 10px;border-radius:6px;margin:8px 0}
.gate.failed{background:#fde7e5}.gate.passed{background:#e5f5ea}.gate.not_judged{background:#eee}
svg{display:block;margin:8px 0}.note{color:#5b6270;font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render(out: Mapping[str, Any]) -> str:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Crafter comparison: {_e(out['base'])} vs {_e(out['cand'])}</title>",
        f"<style>{_CSS}</style></head><body><header><h1>Crafter comparison: ",
        f"{_e(out['base'])} vs {_e(out['cand'])}</h1></header><main>",
    ]
    for i, item in enumerate(out["comparisons"]):
        parts.append(_section(i, item, out))
    parts.append(
        "<p class=note>Differences are candidate − base over the seeds both sides completed. "
        "Intervals and p-values: exact sign-flip test (Monte Carlo above 16 seeds); "
        "achievements: McNemar's exact test; the score's interval: paired bootstrap "
        "(approximate, never gated).</p></main></body></html>"
    )
    return "".join(parts)


def _section(i: int, item: Mapping[str, Any], out: Mapping[str, Any]) -> str:
    rows = compare.metric_rows(item)
    head = "".join(f"<th>{_e(h)}</th>" for h in compare.HEADER)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='{_e(cell) if j == len(row) - 1 else ''}'>{_e(cell)}</td>"
            for j, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    parts = [
        f"<section class=comparison id='cmp-{i}'><h2>{_e(compare.title(item, out))}</h2>",
        f"<table class=metrics><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
    ]
    gate = item.get("gate")
    if gate:
        parts.append(f"<p class='gate {_e(gate['status'])}'>{_e(compare.gate_line(gate))}</p>")
    if item.get("settings"):
        parts.append(
            f"<p class=note>Settings differ (allowed): {_e('; '.join(item['settings']))}</p>"
        )
    parts.append(_seed_plot(item))
    parts.append(_achievement_bars(item))
    parts.append("</section>")
    return "".join(parts)


def _seed_plot(item: Mapping[str, Any]) -> str:
    """Dots: candidate - base per seed (in seed order); the band: the mean difference's
    interval; the line: the mean; the dashed line: no difference."""
    per_seed = item.get("per_seed") or {}
    seeds = per_seed.get("seeds") or []
    if not seeds:
        return ""
    diffs = [c - b for _, b, c in seeds]
    metric = item["metrics"].get(per_seed["metric"]) or {}
    est = metric.get("difference") or {}
    values = diffs + [v for v in (est.get("low"), est.get("high"), 0.0) if v is not None]
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    width, height, left, top = 760, 220, 48, 10
    inner_w, inner_h = width - left - 10, height - top - 28

    def x(k: int) -> float:
        return left + (k + 0.5) * inner_w / len(seeds)

    def y(v: float) -> float:
        return top + (hi - v) * inner_h / (hi - lo)

    parts = [
        f"<h3>Per-seed difference of {_e(per_seed['label'])} (candidate − base)</h3>",
        f"<svg class=seeds width={width} height={height} viewBox='0 0 {width} {height}' role=img>",
    ]
    if est.get("low") is not None and est.get("high") is not None:
        parts.append(
            f"<rect class=band x={left} y={y(est['high']):.1f} width={inner_w} "
            f"height={max(1.0, y(est['low']) - y(est['high'])):.1f} fill='#4c7bd955'/>"
        )
    parts.append(
        f"<line x1={left} x2={left + inner_w} y1={y(0):.1f} y2={y(0):.1f} stroke='#888' stroke-dasharray='4 3'/>"
    )
    if est:
        parts.append(
            f"<line class=mean x1={left} x2={left + inner_w} y1={y(est['value']):.1f} "
            f"y2={y(est['value']):.1f} stroke='#2a55b8' stroke-width='2'/>"
        )
    for k, ((seed, b, c), d) in enumerate(zip(seeds, diffs)):
        color = "#b3261e" if d < 0 else "#1b7f3b" if d > 0 else "#777"
        parts.append(
            f"<circle class=seed cx={x(k):.1f} cy={y(d):.1f} r=4 fill='{color}'>"
            f"<title>seed {seed}: {b:g} → {c:g} ({d:+g})</title></circle>"
        )
    for v in sorted({round(hi - pad, 6), 0.0, round(lo + pad, 6)}):
        parts.append(
            f"<text x={left - 6} y={y(v) + 4:.1f} text-anchor=end font-size=11>{v:+.1f}</text>"
        )
    parts.append(
        f"<text x={left + inner_w / 2} y={height - 6} text-anchor=middle font-size=11>"
        f"seeds {seeds[0][0]}…{seeds[-1][0]} ({len(seeds)})</text></svg>"
    )
    return "".join(parts)


def _achievement_bars(item: Mapping[str, Any]) -> str:
    shown = [
        (name, a)
        for name, a in item.get("achievements", {}).items()
        if a["base_rate"] or a["cand_rate"]
    ]
    if not shown:
        return ""
    rows = []
    for name, a in shown:
        d = a["difference"]
        bar = min(100.0, abs(d)) * 1.5
        color = "#b3261e" if d < 0 else "#1b7f3b"
        style = f"margin-left:{150 - bar if d < 0 else 150}px;width:{max(bar, 1):.0f}px;background:{color}"
        rows.append(
            f"<tr class=ach><td>{_e(name)}</td><td>{a['base_rate']:.0f}%</td><td>{a['cand_rate']:.0f}%</td>"
            f"<td style='width:300px;text-align:left'><div class=bar style='height:10px;{style}'></div></td>"
            f"<td>{d:+.0f}</td><td>{a['gained']}/{a['lost']}</td>"
            f"<td class='{_e(a['verdict'])}'>{_e(a['verdict'] or '')}</td></tr>"
        )
    return (
        "<h3>Achievements (success rate, percent of paired seeds)</h3><table class=achievements>"
        "<thead><tr><th>achievement</th><th>base</th><th>candidate</th><th>difference</th>"
        "<th>points</th><th>gained/lost</th><th>McNemar</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
