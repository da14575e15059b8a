"""Stage: report (tables). Plain-text tables for the terminal, shared by the summary and
the comparison. Pure."""

from __future__ import annotations

from collections.abc import Iterable


def text_table(header: Iterable[str], rows: list[list[str]]) -> list[str]:
    """Lines of a table: columns left-aligned to their widest cell, two spaces apart."""
    header = list(header)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [line(header)] + [line(r) for r in rows]
