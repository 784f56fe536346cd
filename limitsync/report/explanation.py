"""An account's explanation (``streams.core.explain``), rendered generically: nested lists,
tables of records, money where a key names an amount; every value escaped."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from limitsync.report.text import Memo, as_int, esc
from limitsync.report.vocabulary import EXPLANATION_DEPTH_MAX, EXPLANATION_ROWS_MAX

__all__ = ["render_explanation"]

_MONEY_KEY_HINTS = (
    "available", "amount", "principal", "credit_line", "outstanding", "interest", "fee",
    "delta", "drift",
)  # fmt: skip


def render_explanation(explanation: dict[str, Any], memo: Memo) -> str:
    return _render_value("", explanation, 0, memo)


# An explanation's keys are few and repeat in every record: each is judged once.
@functools.lru_cache(maxsize=1024)
def _is_money_key(key: str) -> bool:
    return any(hint in key for hint in _MONEY_KEY_HINTS)


@functools.lru_cache(maxsize=1024)
def _cell_opening(key: str) -> str:
    one_line = key in ("at", "since", "code") or key.endswith("_at") or _is_money_key(key)
    return '<td class="nowrap">' if one_line else "<td>"


def _render_value(key: str, value: object, depth: int, memo: Memo) -> str:
    """Generic, escaped rendering of an explain() value."""
    kind = type(value)
    if kind is str:  # text, whatever its key or depth
        return memo.text(value)
    if depth > EXPLANATION_DEPTH_MAX:
        return esc(value)
    if kind is int:
        return memo.money(value) if _is_money_key(key) else str(value)
    if isinstance(value, dict):
        items = "".join(
            f"<dt>{memo.text(k)}</dt><dd>{_render_value(str(k), v, depth + 1, memo)}</dd>"
            for k, v in value.items()
        )
        return f"<dl>{items}</dl>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if not value:
            return '<span class="muted">none</span>'
        if all(isinstance(item, dict) for item in value):
            return _render_records(value, depth, memo)
        return (
            "<ul>"
            + "".join(f"<li>{_render_value(key, v, depth + 1, memo)}</li>" for v in value)
            + "</ul>"
        )
    if _is_money_key(key) and as_int(value) is not None:
        return memo.money(value)
    return esc(value)


def _render_records(records: Sequence[dict[str, Any]], depth: int, memo: Memo) -> str:
    columns: list[str] = []
    for record in records:
        columns += [str(k) for k in record if str(k) not in columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    cells = [(c, _cell_opening(c)) for c in columns]
    rows = "".join(_record_row(r, cells, depth + 1, memo) for r in records[:EXPLANATION_ROWS_MAX])
    more = len(records) - EXPLANATION_ROWS_MAX
    tail = f'<p class="note">… {more} more not shown.</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{tail}"


def _record_row(
    record: dict[str, Any], cells: Sequence[tuple[str, str]], depth: int, memo: Memo
) -> str:
    parts = ["<tr>"]
    for column, opening in cells:
        value = record.get(column)
        # Text, the commonest cell, as _render_value writes it, without the call.
        cell = memo.text(value) if type(value) is str else _render_value(column, value, depth, memo)
        parts.append(f"{opening}{cell}</td>")
    parts.append("</tr>")
    return "".join(parts)
