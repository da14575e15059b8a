"""Stage: report (files). Writes a run's report files into the report directory:
summary.json, summary.md (`summary.markdown`) and index.html (`html`); results.jsonl is
written as episodes end, by `results`. The only module of the stage that writes files
besides `results` and `html.write_html`.

    write_reports(report_dir, records, summary)   # -> the paths written
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .html import write_html
from .summary import markdown as summary_md

__all__ = ["write_comparison", "write_reports"]


def write_reports(
    report_dir: str | Path, records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]
) -> list[Path]:
    """Write summary.json, summary.md and index.html (`html`) into `report_dir`
    (results.jsonl is already there); append summary.md to $GITHUB_STEP_SUMMARY when
    set. Returns the paths written."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = report_dir / "summary.json"
    _write_atomic(path, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    written.append(path)
    md = summary_md(summary)
    path = report_dir / "summary.md"
    _write_atomic(path, md)
    written.append(path)
    written.append(write_html(report_dir, records, summary))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    return written


def write_comparison(out_dir: str | Path, comparison: Mapping[str, Any]) -> list[Path]:
    """Write compare.json, compare.md and compare.html (`compare_html`) of a
    `compare.compare` result into `out_dir`; append compare.md to $GITHUB_STEP_SUMMARY
    when set. Returns the paths written."""
    from .compare import markdown
    from .compare_html import render

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = markdown(comparison)
    texts = {
        "compare.json": json.dumps(comparison, indent=1, allow_nan=False) + "\n",
        "compare.md": md,
        "compare.html": render(comparison),
    }
    written = []
    for name, text in texts.items():
        _write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    return written


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
