"""Compact HTML tables for notebooks (``_repr_html_``): escaped text, no styling of our own."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return html.escape(str(value))


def html_table(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """One row per mapping, one column per name in ``columns``."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_fields(fields: Iterable[tuple[str, object]]) -> str:
    """A two-column table of names and values."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(name)}</th><td>{_cell(value)}</td></tr>"
        for name, value in fields
    )
    return f"<table><tbody>{body}</tbody></table>"
