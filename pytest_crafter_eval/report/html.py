"""Stage: report (HTML). The run as one self-contained page: `<report-dir>/index.html`.

    html = render_html(records, summary)      # pure: records and summary in, text out
    write_html(report_dir, records, summary)  # writes index.html, returns its path

Per eval the page shows a leaderboard of the models, an achievement heatmap (models x
the 22 achievements, success rate per cell) and one row per episode with its outcome
and the animated GIF of its frames (`record["gif"]`, relative to the report dir).
Everything else is inline: CSS, and Crafter's own textures as data URIs for the
achievement icons. The page makes no network request and runs no script.

Every number on the page is the summary's (`report.summarize`; metrics are computed
once, there): the evals, models and their order, metrics with intervals, outcome counts,
gates. `records` (results.jsonl records) only give each episode's row. The leaderboard
keeps the summary's order; medals (`medals`) go to models that passed their gate, or,
without a gate, passed an episode, and beat every model below them beyond the intervals.
"""

from __future__ import annotations

import base64
import functools
import html
import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .compare import COMPARISON_HEADER, comparison_rows
from .metrics import ACHIEVEMENTS
from .summary import balrog_lines, behaviour_line, incomplete_line

# Crafter's texture (crafter/assets/<name>.png) that stands for each achievement.
_ICONS = {
    "collect_coal": "coal",
    "collect_diamond": "diamond",
    "collect_drink": "drink",
    "collect_iron": "iron",
    "collect_sapling": "sapling",
    "collect_stone": "stone",
    "collect_wood": "wood",
    "defeat_skeleton": "skeleton",
    "defeat_zombie": "zombie",
    "eat_cow": "cow",
    "eat_plant": "plant-ripe",
    "make_iron_pickaxe": "iron_pickaxe",
    "make_iron_sword": "iron_sword",
    "make_stone_pickaxe": "stone_pickaxe",
    "make_stone_sword": "stone_sword",
    "make_wood_pickaxe": "wood_pickaxe",
    "make_wood_sword": "wood_sword",
    "place_furnace": "furnace",
    "place_plant": "plant-young",
    "place_stone": "stone",
    "place_table": "table",
    "wake_up": "player-sleep",
}
OUTCOMES = ("passed", "failed", "xfailed", "error", "skipped")


def write_html(
    report_dir: str | os.PathLike,
    records: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
) -> Path:
    """Write `<report_dir>/index.html`. A record whose GIF file is missing is shown
    with a placeholder instead of a broken image."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    shown = [
        r if not r.get("gif") or (report_dir / r["gif"]).is_file() else {**r, "gif": None}
        for r in records
    ]
    path = report_dir / "index.html"
    path.write_text(render_html(shown, summary), encoding="utf-8")
    return path


def render_html(records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    """The report page as one HTML string. Every number is the summary's
    (`report.summarize`): evals, models and their order, metrics, intervals, gates; the
    records only give each episode's row (its GIF, facts and why it ended)."""
    by_eval: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_eval.setdefault(str(record.get("eval", "?")), []).append(record)
    entries = summary.get("evals") or {}
    evals = {name: by_eval.get(name, []) for name in entries}
    records = [r for name in evals for r in evals[name]]
    models = {m for entry in entries.values() for m in entry.get("models") or {}}  # distinct
    totals = _count(r.get("outcome") for r in records)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        "<title>Crafter eval report</title><style>",
        _CSS,
        _icon_css(),
        "</style></head><body>",
        "<header><div class=wrap><div class=brand>",
        _icon("collect_diamond", big=True),
        "<div><h1>Crafter eval report</h1><p class=sub>",
        _e(
            f"{len(records)} episode{'s' * (len(records) != 1)} · {len(models)} model"
            f"{'s' * (len(models) != 1)} · {len(evals)} eval{'s' * (len(evals) != 1)}"
        ),
        f" · {_e(_when(summary['created_at']))}" if summary.get("created_at") else "",
        "</p></div></div><div class=totals>",
        "".join(
            f"<span class='pill {o}'><b>{totals[o]}</b> {_outcome_word(o, totals[o])}</span>"
            for o in OUTCOMES
            if totals[o]
        ),
        "</div>",
    ]
    if len(evals) > 1:
        parts.append(
            "<nav>"
            + "".join(f"<a href='#{_anchor(name)}'>{_e(name)}</a>" for name in evals)
            + "</nav>"
        )
    parts.append("</div></header><main class=wrap>")
    if summary.get("complete") is False:
        line = incomplete_line(summary) or ""
        parts.append(f"<p class=incomplete>{_e(line[0].upper() + line[1:])}.</p>")
    if not models:
        parts.append("<p class=empty>No episodes were recorded.</p>")
    for name, eval_records in evals.items():
        parts.append(_eval_section(name, eval_records, entries[name]))
    parts.append(
        "<footer>pytest-crafter-eval · success rate = share of episodes that "
        "unlocked an achievement at least once · Crafter score = exp(mean ln(1 + s)) − 1 "
        "over the 22 achievements (Hafner, 2021)</footer></main></body></html>"
    )
    return "".join(parts)


# -- one eval ------------------------------------------------------------------------


def _eval_section(name: str, records: list[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_model.setdefault(str(record.get("model", "?")), []).append(record)
    models = summary.get("models") or {}
    rows = _ranked([_model_stats(item, by_model.get(m, [])) for m, item in models.items()])
    seeds = sorted({r["seed"] for r in records if isinstance(r.get("seed"), int)})
    out = [
        f"<section id='{_anchor(name)}'><div class=evalhead><h2>{_e(name)}</h2>",
        (
            f"<span class=meta>{len(models)} model{'s' * (len(models) != 1)} · "
            f"{len(records)} episodes · seeds {_e(_ranges(seeds))}</span></div>"
        ),
        "<div class=card><h3>Leaderboard</h3>",
        _leaderboard(rows),
        *[f"<p class=hint>BALROG: {_e(line)}</p>" for line in balrog_lines(summary)],
        "</div>",
        (
            "<div class=card><h3>Achievements <span class=hint>success rate per model, "
            "% of episodes</span></h3>"
        ),
        _heatmap(rows),
        "</div>",
        _comparisons(summary.get("comparisons") or []),
        "<div class=card><h3>Episodes</h3>",
    ]
    for stats in rows:
        out.append(_episodes(stats))
    out.append("</div></section>")
    return "".join(out)


def _score_label(summary: Mapping[str, Any]) -> str:
    """The summary's `score_label` (cut at N steps; an uninformative upper end)."""
    label = (summary.get("metrics") or {}).get("score_label")
    return f"<small class=scorenote>({_e(label)})</small>" if label else ""


def _comparisons(comparisons: list[Mapping[str, Any]]) -> str:
    """The eval's `compare: {baseline: MODEL}` table: the summary's paired differences."""
    if not comparisons:
        return ""
    head = "".join(f"<th>{_e(h)}</th>" for h in COMPARISON_HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>"
        for row in comparison_rows(comparisons)
    )
    return (
        "<div class=card><h3>Paired by seed <span class=hint>candidate − baseline, 95% CI, "
        "exact sign-flip test</span></h3><table class=paired><thead><tr>"
        f"{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _model_stats(item: Mapping[str, Any], records: list[Mapping[str, Any]]) -> dict:
    """A model's row: the summary's numbers (`item`, from summary["evals"][eval]["models"])
    and its episode records."""
    values = item.get("metrics") or {}

    def value(metric: str, scale: float = 1.0) -> float | None:
        est = values.get(metric)
        return None if not isinstance(est, Mapping) else scale * float(est["value"])

    rates = values.get("success_rates")
    outcomes = dict(item.get("outcomes") or {})
    gate = item.get("gate") or {}
    return {
        "model": item["model"],
        "records": records,
        "n": values.get("episodes", 0),
        "outcomes": {o: int(outcomes.get(o, 0)) for o in OUTCOMES},
        "summary": item,
        "rates": None if not rates else {a: float(rates[a]["value"]) for a in ACHIEVEMENTS},
        "score": value("crafter_score"),
        "mean_ach": value("mean_achievements"),
        "mean_reward": value("mean_reward"),
        "tool_rate": value("tool_call_rate"),
        "cost": values.get("cost_usd"),
        "cached": values.get("cached_share") if values.get("tokens_cached") else None,
        # a medal needs a passed gate, or without a gate a passed episode
        "medal": gate.get("status") in ("passed", "xpassed")
        if gate
        else bool(outcomes.get("passed")),
    }


def _ranked(rows: list[dict]) -> list[dict]:
    """The rows in the summary's order (the terminal's and summary.md's), each with its
    `medal`: 1, 2, 3 or None (`medals`)."""
    places = medals(rows)
    return [{**s, "place": places.get(s["model"])} for s in rows]


def medals(rows: list[dict]) -> dict[str, int]:
    """model -> 1, 2 or 3. Among the models that may have one (a passed gate, or without a
    gate a passed episode) ranked by Crafter score, the k-th gets medal k only when the
    ones above it got theirs and its score's interval lies above the intervals of every
    model ranked below it: no medal for a tie, for overlapping intervals, or for a model
    with no other to beat (a lone random agent got gold)."""
    eligible = sorted(
        (s for s in rows if s["medal"] and s["score"] is not None),
        key=lambda s: (-s["score"], s["model"]),
    )
    if len(eligible) < 2:
        return {}
    out: dict[str, int] = {}
    for k, s in enumerate(eligible[:3]):
        low = _bound(s, "low")
        below = [_bound(t, "high") for t in eligible[k + 1 :]]
        if low is None or not below or any(b is None or b >= low for b in below):
            break
        out[s["model"]] = k + 1
    return out


def _bound(s: dict, end: str) -> float | None:
    est = _estimate(s["summary"], "crafter_score")
    value = None if est is None else est.get(end)
    return None if value is None else float(value)


def _leaderboard(rows: list[dict]) -> str:
    best = max((s["score"] or 0 for s in rows), default=0) or 1
    with_cost = any(s["cost"] is not None for s in rows)
    with_cached = any(s["cached"] is not None for s in rows)  # a prompt cache served some
    out = [
        (
            "<table class=board><thead><tr><th>#</th><th>model</th><th>Crafter score</th>"
            "<th class=num>achievements<br><small>per episode</small></th>"
            "<th class=num>reward<br><small>per episode</small></th>"
            "<th class=num>tool-call rate<br><small>share of steps</small></th>"
        ),
        "<th class=num>cost</th>" if with_cost else "",
        "<th class=num>cached<br><small>of input tokens</small></th>" if with_cached else "",
        "<th>episodes</th><th>gate</th></tr></thead><tbody>",
    ]
    for s in rows:
        summ = s["summary"]
        score = s["score"]
        place = s.get("place")
        medal = (
            f"<tr><td><span class='rank r{place}'>{place}</span></td>"
            if place
            else "<tr class=unranked><td></td>"
        )
        how = behaviour_line(summ.get("metrics") or {})
        bar = (
            ""
            if score is None
            else (f"<div class=bar><i style='width:{max(2.0, 100 * score / best):.1f}%'></i></div>")
        )
        out.append(
            f"{medal}<td class=model>{_e(s['model'])}</td>"
            f"<td class=score>{bar}<b>{_num(score, '%', 1)}</b>{_interval(summ, 'crafter_score', 1, 1)}"
            f"{_score_label(summ)}</td>"
            f"<td class=num>{_num(s['mean_ach'], '', 2)}{_interval(summ, 'mean_achievements')}</td>"
            f"<td class=num>{_num(s['mean_reward'], '', 2)}{_interval(summ, 'mean_reward')}</td>"
            f"<td class=num>{_num(s['tool_rate'], '', 2)}{_interval(summ, 'tool_call_rate')}</td>"
            + (f"<td class=num>{_cost(s['cost'])}</td>" if with_cost else "")
            + (f"<td class=num>{_num(_percent(s['cached']), '%', 0)}</td>" if with_cached else "")
            + f"<td>{_outcome_bar(s['outcomes'])}"
            + (f"<small class=how>{_e(how)}</small>" if how else "")
            + f"</td><td>{_gate(summ)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _heatmap(rows: list[dict]) -> str:
    head = "".join(
        f"<th title='{_e(a)}'><span>{_e(a.replace('_', ' '))}</span>{_icon(a)}</th>"
        for a in ACHIEVEMENTS
    )
    out = [
        (
            f"<div class=scroll><table class=heat><thead><tr><th class=corner>model</th>{head}"
            "</tr></thead><tbody>"
        )
    ]
    for s in rows:
        cells = []
        for a in ACHIEVEMENTS:
            if s["rates"] is None:
                cells.append("<td class=na>·</td>")
                continue
            rate = s["rates"][a]
            bg, fg = _heat_color(rate)
            cells.append(
                f"<td style='background:{bg};color:{fg}' title='{_e(s['model'])}: "
                f"{_e(a)} {rate:.0f}%'>{rate:.0f}</td>"
            )
        out.append(
            f"<tr><th class=model>{_e(s['model'])}<small>{s['n']} ep.</small></th>"
            f"{''.join(cells)}</tr>"
        )
    out.append("</tbody></table></div>")
    return "".join(out)


def _episodes(stats: dict) -> str:
    records = sorted(stats["records"], key=lambda r: (r.get("seed") is None, r.get("seed")))
    counts = stats["outcomes"]
    head = " ".join(
        f"<span class='pill {o}'><b>{counts[o]}</b> {o}</span>" for o in OUTCOMES if counts[o]
    )
    out = [
        (
            f"<details open><summary><span class=model>{_e(stats['model'])}</span>{head}</summary>"
            "<table class=episodes><tbody>"
        )
    ]
    for r in records:
        outcome = r.get("outcome") or "unknown"
        gif = r.get("gif")
        film = (
            f"<img class=film src='{_e(quote(str(gif)))}' width=96 height=96 "
            f"alt='frames of {_e(r.get('model'))} seed {_e(r.get('seed'))}'>"
            if gif
            else f"<div class='film none'>{'skipped' if outcome == 'skipped' else 'no frames'}</div>"
        )
        achievements = r.get("achievements") or {}
        icons = (
            "".join(
                f"<span class=got title='{_e(a)} ×{_e(c)}'>{_icon(a)}"
                f"{f'<sub>{_e(c)}</sub>' if isinstance(c, int) and c > 1 else ''}</span>"
                for a, c in achievements.items()
            )
            or "<span class=dim>none</span>"
        )
        out.append(
            f"<tr class='ep {outcome}' data-seed='{_e(r.get('seed'))}'><td class=filmcell>{film}</td>"
            f"<td class=who><span class=seed>seed {_e(r.get('seed'))}</span>"
            f"<span class='badge {outcome}'>{_e(outcome)}</span>"
            f"<div class=facts>{_facts(r)}</div></td>"
            + (
                "<td class=achs></td>"
                if outcome == "skipped"
                else f"<td class=achs><div class=count><b>{len(achievements)}</b> achievement"
                f"{'s' * (len(achievements) != 1)}</div><div class=icons>{icons}</div></td>"
            )
            + f"<td class=note>{_note(r)}</td></tr>"
        )
    out.append("</tbody></table></details>")
    return "".join(out)


def _facts(r: Mapping[str, Any]) -> str:
    if r.get("outcome") == "skipped":
        return "not run"
    facts = [_plural(r.get("steps") or 0, "call"), _plural(r.get("env_steps") or 0, "move")]
    if r.get("reward") is not None:
        facts.append(f"reward {float(r['reward']):.1f}")
    if r.get("steps"):
        facts.append(f"tools {100 * (r.get('tool_calls') or 0) / r['steps']:.0f}%")
    tokens = (r.get("tokens_in") or 0) + (r.get("tokens_out") or 0)
    if tokens:
        facts.append(f"{_si(tokens)} tokens")
    if r.get("tokens_cached") and r.get("tokens_in"):
        facts.append(f"{100 * r['tokens_cached'] / r['tokens_in']:.0f}% of input cached")
    if isinstance(r.get("cost_usd"), (int, float)) and r["cost_usd"]:
        facts.append(_cost(r["cost_usd"]))
    if r.get("duration_s"):
        facts.append(f"{float(r['duration_s']):.1f} s")
    return " · ".join(facts)


def _note(r: Mapping[str, Any]) -> str:
    """Why the episode ended, and the verdict's message when it is not a pass."""
    outcome, message = r.get("outcome"), r.get("message")
    if r.get("error") or outcome == "error":
        return f"<span class=err>{_e(r.get('error') or message or 'error')}</span>"
    if outcome == "skipped":
        return f"<span class=msg>{_e(message or 'skipped')}</span>"
    ntc = r.get("no_tool_call")
    if isinstance(ntc, Mapping):
        ended = (
            f"<b>no tool call</b> at step {_e(ntc.get('step'))}: "
            f"<span class=msg>{_e(ntc.get('message'))}</span>"
        )
    elif r.get("end") == "done":
        ended = f"the player died after {_plural(r.get('env_steps') or 0, 'move')}"
    elif r.get("end") == "steps":
        ended = f"played all {_plural(r.get('steps') or 0, 'step')}"
    else:
        ended = _e(r.get("end") or "")
    if outcome == "failed" and message and not isinstance(ntc, Mapping):
        ended += f"<div class=why>{_e(message)}</div>"
    return ended


# -- summary lookups -------------------------------------------------------------------


def _estimate(summary: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    metrics = summary.get("metrics")
    value = metrics.get(metric) if isinstance(metrics, Mapping) else None
    return value if isinstance(value, Mapping) and value.get("value") is not None else None


def _interval(summary: Mapping[str, Any], metric: str, scale: float = 1.0, digits: int = 2) -> str:
    value = _estimate(summary, metric)
    if value is None or value.get("low") is None or value.get("high") is None:
        return ""
    return (
        f"<small class=ci>95% [{scale * value['low']:.{digits}f}, "
        f"{scale * value['high']:.{digits}f}]</small>"
    )


def _gate(summary: Mapping[str, Any]) -> str:
    """The gate verdict of a model: a badge, with every threshold in its tooltip."""
    gate = summary.get("gate")
    if not isinstance(gate, Mapping) or not gate.get("status"):
        return "<span class=dim>—</span>"
    status = str(gate["status"]).replace("_", " ")
    checks = [c for c in gate.get("checks") or [] if isinstance(c, Mapping)]
    lines = []
    for c in checks:
        value = "—" if c.get("compared") is None else f"{c['compared']:.3g}"
        mark = "✓" if c.get("passed") else "✗"
        note = f" ({c['note']})" if c.get("note") else ""
        lines.append(
            f"{mark} {c.get('metric')} {value} {c.get('op', '')} {c.get('threshold')}{note}"
        )
    css = {
        "passed": "passed",
        "failed": "failed",
        "xfailed": "xfailed",
        "xpassed": "failed",
        "skipped": "skipped",
    }.get(status, "unknown")
    failing = [line for line in lines if line.startswith("✗")]
    detail = "".join(f"<small class=gatewhy>{_e(line)}</small>" for line in failing[:3])
    return (
        f"<span class='badge {css}' title='{_e(chr(10).join(lines))}'>gate {_e(status)}</span>"
        f"{detail}"
    )


# -- small pieces -----------------------------------------------------------------------


def _outcome_bar(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    segments = "".join(
        f"<i class={o} style='width:{100 * counts[o] / total:.2f}%' "
        f"title='{counts[o]} {_outcome_word(o, counts[o])}'></i>"
        for o in OUTCOMES
        if counts[o]
    )
    labels = " ".join(
        f"<span class={o}>{counts[o]} {_outcome_word(o, counts[o])}</span>"
        for o in OUTCOMES
        if counts[o]
    )
    return f"<div class=stack>{segments}</div><div class=stacklabels>{labels}</div>"


def _outcome_word(outcome: str, n: int) -> str:
    """`2 errors`, `1 error`; the other outcomes read the same for any count (2 passed)."""
    return "errors" if outcome == "error" and n != 1 else outcome


def _heat_color(rate: float) -> tuple[str, str]:
    """Background and text colour of a heatmap cell: pale for 0 %, deep green at 100 %."""
    if rate <= 0:
        return "#f3f4f1", "#c3c8bf"
    stops = [
        (0.0, (226, 243, 214)),
        (0.35, (148, 211, 118)),
        (0.7, (62, 155, 70)),
        (1.0, (20, 83, 45)),
    ]
    t = min(1.0, rate / 100)
    for (t0, c0), (t1, c1) in itertools.pairwise(stops):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            rgb = tuple(round(a + (b - a) * f) for a, b in zip(c0, c1))
            break
    return "#{:02x}{:02x}{:02x}".format(*rgb), "#fff" if t > 0.5 else "#1d3a12"


def _count(outcomes: Iterable[Any]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for outcome in outcomes:
        if outcome in counts:
            counts[outcome] += 1
    return counts


def _ranges(seeds: list[int]) -> str:
    if not seeds:
        return "—"
    spans, start = [], seeds[0]
    for i, a in enumerate(seeds):
        if i + 1 == len(seeds) or seeds[i + 1] != a + 1:
            spans.append(str(start) if start == a else f"{start}–{a}")
            start = seeds[i + 1] if i + 1 < len(seeds) else a
    return ", ".join(spans)


def _when(iso: Any) -> str:
    """`2026-11-25T11:46:40+00:00` as `2026-11-25 11:46 UTC`."""
    text = str(iso)
    if len(text) >= 16 and text[10] == "T" and text.endswith("+00:00"):
        return f"{text[:10]} {text[11:16]} UTC"
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _num(value: float | None, unit: str, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def _cost(usd: float | None) -> str:
    return "—" if usd is None else "$0" if usd == 0 else f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def _percent(share: float | None) -> float | None:
    return None if share is None else 100 * share


def _si(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _anchor(name: str) -> str:
    return "eval-" + "".join(c if c.isalnum() else "-" for c in name)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _icon(achievement: str, big: bool = False) -> str:
    return f"<i class='ic ic-{achievement}{' big' if big else ''}'></i>"


@functools.lru_cache(maxsize=1)
def _icon_css() -> str:
    """One CSS class per achievement with its Crafter texture inlined as a data URI.
    The textures are read where crafter is installed, without importing it (0.1 s in
    a controller that plays no episode)."""
    import importlib.util

    spec = importlib.util.find_spec("crafter")
    if spec is None or spec.origin is None:
        raise ImportError("crafter is not installed")
    assets = Path(spec.origin).parent / "assets"
    rules = []
    for achievement, texture in _ICONS.items():
        data = base64.b64encode((assets / f"{texture}.png").read_bytes()).decode("ascii")
        rules.append(f".ic-{achievement}{{background-image:url(data:image/png;base64,{data})}}")
    grass = base64.b64encode((assets / "grass.png").read_bytes()).decode("ascii")
    rules.append(
        "header{background-image:linear-gradient(rgba(16,38,12,.86),rgba(26,58,18,.78)),"
        f"url(data:image/png;base64,{grass})}}"
    )
    return "".join(rules)


_CSS = """
:root{--bg:#f4f5f0;--card:#fff;--ink:#1c2419;--muted:#6d7767;--line:#e4e7df;
--passed:#2f9e44;--failed:#e03131;--xfailed:#e8890c;--error:#9c36b5;--skipped:#99a19a;--unknown:#99a19a}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1280px;margin:0 auto;padding:0 32px}
header{color:#fff;padding:26px 0 18px;background-size:auto,48px;image-rendering:pixelated}
.brand{display:flex;gap:16px;align-items:center}
h1{margin:0;font-size:28px;letter-spacing:.2px}
.sub{margin:2px 0 0;opacity:.85}
.totals{margin-top:14px;display:flex;gap:8px;flex-wrap:wrap}
header .pill{background:rgba(0,0,0,.28);color:#fff;border:1px solid rgba(255,255,255,.18);padding:3px 12px 3px 10px}
header .pill::before{content:"";display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:7px;background:var(--c)}
header .pill b{color:#fff}
nav{margin-top:14px;display:flex;gap:6px;flex-wrap:wrap}
nav a{color:#fff;text-decoration:none;padding:4px 10px;border-radius:6px;background:rgba(0,0,0,.25)}
nav a:hover{background:rgba(0,0,0,.45)}
section{margin:28px 0 40px}
.evalhead{display:flex;align-items:baseline;gap:14px;margin-bottom:12px}
h2{margin:0;font-size:22px}
h3{margin:0 0 12px;font-size:15px;text-transform:uppercase;letter-spacing:.6px;color:var(--muted)}
.hint,.meta{color:var(--muted);font-weight:400;text-transform:none;letter-spacing:0;font-size:13px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 20px;overflow-x:auto;
margin-bottom:18px;box-shadow:0 1px 2px rgba(20,30,10,.05),0 4px 14px rgba(20,30,10,.04)}
table{border-collapse:collapse;width:100%}
th{font-weight:600;text-align:left}
.num{text-align:right;white-space:nowrap}
small{color:var(--muted);font-weight:400}
.board th{font-size:12px;color:var(--muted);padding:0 10px 8px;border-bottom:1px solid var(--line);vertical-align:bottom}
.board td{padding:10px;border-bottom:1px solid var(--line);vertical-align:middle}
.board tr:last-child td{border-bottom:0}
.board tr.unranked td{color:var(--muted)}
.board td.model{white-space:nowrap;font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.rank{display:inline-grid;place-items:center;width:26px;height:26px;border-radius:50%;
background:#eef0ea;color:var(--muted);font-weight:700;font-size:12px}
.rank.r1{background:#f7c948;color:#5c4400}.rank.r2{background:#d5d9dd;color:#3d4650}
.rank.r3{background:#e6a672;color:#5a2d0c}
td.score{min-width:190px}
td.score b{font-size:16px}
.bar{height:8px;border-radius:4px;background:#edf0e8;margin-bottom:4px;overflow:hidden}
.bar i{display:block;height:100%;border-radius:4px;background:linear-gradient(90deg,#74c365,#2b8a3e)}
.ci{display:block;font-size:11px;white-space:nowrap}
.scorenote{display:block;font-size:11px;color:#8a5a00;max-width:16em}
.gatewhy{display:block;font-size:11px;color:var(--failed);white-space:normal;overflow-wrap:anywhere;max-width:22em}
.board small.how{display:block;font-weight:400;font-size:11px;color:#6b7280;white-space:normal;max-width:28em}
.stack{display:flex;height:8px;width:150px;border-radius:4px;overflow:hidden;background:#eee}
.stack i{display:block;height:100%}
.stacklabels{font-size:11px;margin-top:3px;display:flex;gap:8px}
.stacklabels span{white-space:nowrap}
i.passed{background:var(--passed)}i.failed{background:var(--failed)}i.xfailed{background:var(--xfailed)}
i.error{background:var(--error)}i.skipped{background:var(--skipped)}
span.passed{color:var(--passed)}span.failed{color:var(--failed)}span.xfailed{color:#b86a00}
span.error{color:var(--error)}span.skipped{color:var(--skipped)}
.pill{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;background:#f0f2ec;color:var(--muted)}
.badge{display:inline-block;padding:1px 8px;border-radius:6px;font-size:11px;font-weight:700;
text-transform:uppercase;letter-spacing:.5px;color:#fff;background:var(--unknown)}
.badge.passed,.badge.failed,.badge.xfailed,.badge.error,.badge.skipped{color:#fff}
.badge.passed{background:var(--passed)}.badge.failed{background:var(--failed)}
.badge.xfailed{background:var(--xfailed)}.badge.error{background:var(--error)}.badge.skipped{background:var(--skipped)}
.pill.passed{--c:var(--passed)}.pill.failed{--c:var(--failed)}.pill.xfailed{--c:var(--xfailed)}
.pill.error{--c:#c77dde}.pill.skipped{--c:var(--skipped)}
.dim{color:#b3b9ae}
.ic{display:inline-block;width:24px;height:24px;background-size:100% 100%;image-rendering:pixelated;vertical-align:middle}
.ic.big{width:48px;height:48px;filter:drop-shadow(0 2px 4px rgba(0,0,0,.4))}
.scroll{overflow-x:auto}
.heat{width:auto;border-collapse:separate;border-spacing:3px}
.heat thead th{vertical-align:bottom;text-align:center;padding:0 0 4px;font-size:11px;color:var(--muted);font-weight:500}
.heat thead th span{display:block;writing-mode:vertical-rl;transform:rotate(180deg);margin:0 auto 6px;
white-space:nowrap;line-height:1}
.heat th.corner{text-align:left;vertical-align:bottom;font-size:12px}
.heat td{width:38px;min-width:38px;height:34px;text-align:center;border-radius:5px;font-size:12px;
font-weight:600;font-variant-numeric:tabular-nums}
.heat td.na{background:#f7f7f5;color:#ccc}
.heat td.zero{font-weight:400}
.heat th.model{padding-right:12px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:12px;white-space:nowrap}
.heat th.model small{display:block;font-family:system-ui,sans-serif;font-size:11px}
details{border-top:1px solid var(--line)}
details:first-of-type{border-top:0}
summary{cursor:pointer;padding:10px 0;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
summary .model{font-weight:700;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin-right:6px}
.episodes td{padding:8px 10px;border-top:1px solid var(--line);vertical-align:top}
tr.ep{border-left:4px solid var(--unknown)}
tr.ep.passed{border-left-color:var(--passed)}tr.ep.failed{border-left-color:var(--failed)}
tr.ep.xfailed{border-left-color:var(--xfailed)}tr.ep.error{border-left-color:var(--error)}
tr.ep.skipped{border-left-color:var(--skipped)}
.filmcell{width:112px}
.film{display:block;width:96px;height:96px;border-radius:6px;image-rendering:pixelated;background:#222;
box-shadow:0 1px 3px rgba(0,0,0,.25)}
.film.none{display:grid;place-items:center;color:#9aa095;background:repeating-linear-gradient(45deg,#f2f3ef,#f2f3ef 6px,#e9ebe5 6px,#e9ebe5 12px);
font-size:11px;box-shadow:none}
td.who{width:230px}
.seed{font-weight:700;margin-right:8px}
.facts{color:var(--muted);font-size:12px;margin-top:6px}
td.achs{width:330px}
.count{font-size:12px;color:var(--muted);margin-bottom:4px}.count b{color:var(--ink);font-size:15px}
.icons{display:flex;flex-wrap:wrap;gap:3px}
.got{position:relative;display:inline-block;background:#f3f5ef;border-radius:5px;padding:2px}
.got sub{position:absolute;right:-3px;bottom:-3px;font-size:9px;background:#1c2419;color:#fff;border-radius:6px;padding:0 3px;line-height:12px}
td.note{color:#3d4639;font-size:13px}
.note .msg{color:var(--muted)}
.note .err{color:var(--error)}
.note .why{color:var(--failed);margin-top:4px}
.empty{padding:40px;text-align:center;color:var(--muted)}
.incomplete{margin:16px 0;padding:12px 16px;border-radius:8px;background:#fde8e8;color:#8a1c1c;font-weight:600}
footer{color:var(--muted);font-size:12px;padding:10px 0 40px}
"""
