"""Tables of rows for people: one cell format, two renderings (aligned text and Markdown).

The CLI prints :func:`text_table`; reports, sweep summaries and the results grid write
:func:`markdown_table`. Both take a list of dicts or a data frame and format every cell the same
way: floats with 4 decimals (large ones as whole numbers), missing values empty.

>>> rows = [{"model": "dt", "accuracy": 0.91234, "rps": 1234.5}]
>>> print(markdown_table(rows))
| model | accuracy | rps |
|---|---|---|
| dt | 0.9123 | 1234 |
>>> print(text_table(rows))
model  accuracy  rps
dt     0.9123    1234
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["cell", "markdown_table", "text_table"]

Rows = pd.DataFrame | Sequence[Mapping[str, Any]]


def cell(value: Any) -> str:
    """One value as table text.

    >>> cell(0.123456), cell(12345.6), cell(float("nan")), cell(None), cell(3)
    ('0.1235', '12346', '', '', '3')
    """
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None or value is pd.NA else str(value)


def _grid(rows: Rows, columns: Sequence[str] | None, index: str | None) -> tuple[list[str], list[list[str]]]:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if index is not None:
        frame = frame.rename_axis(index).reset_index()
    names = list(columns) if columns is not None else [str(c) for c in frame.columns]
    frame = frame.reindex(columns=names)
    body = [[cell(None if _missing(v) else v) for v in row] for row in frame.itertuples(index=False)]
    return names, body


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value)) and not isinstance(value, float)
    except (TypeError, ValueError):  # lists, dicts
        return False


def markdown_table(rows: Rows, columns: Sequence[str] | None = None, index: str | None = None) -> str:
    """Rows as a Markdown table (``|`` in a cell is escaped); ``index`` names a column for a frame's index."""
    names, body = _grid(rows, columns, index)
    if not body:
        return "(no rows)"
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in body]
    return "\n".join(lines)


def text_table(rows: Rows, columns: Sequence[str] | None = None, index: str | None = None) -> str:
    """Rows as aligned plain text with a header line."""
    names, body = _grid(rows, columns, index)
    widths = [max([len(n), *(len(row[i]) for row in body)]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)
