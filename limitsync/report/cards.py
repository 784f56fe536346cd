"""Cards with a big number, and the lists of counts under them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from limitsync.report.text import esc

__all__ = ["card", "count_items", "ordered_keys"]


def ordered_keys(known: Sequence[str], seen: Iterable[str]) -> list[str]:
    """The known keys in their order, then any other key seen, sorted."""
    extra = sorted(set(seen) - set(known))
    return [*known, *extra]


def card(title: str, big_id: str, big: str, body: str = "", attrs: str = "") -> str:
    return (
        f'<div class="card"><span class="muted">{esc(title)}</span>'
        f'<span class="big" id="{big_id}"{attrs}>{big}</span>{body}</div>'
    )


def count_items(prefix: str, attr: str, counts: dict[str, int], known: Sequence[str]) -> str:
    items = []
    for key in ordered_keys(known, counts):
        item_id = f' id="{prefix}-{esc(key)}"' if key in known else ""
        items.append(
            f'<li data-{attr}="{esc(key)}">{esc(key)}: '
            f'<span class="n"{item_id}>{int(counts.get(key, 0))}</span></li>'
        )
    return "<ul>" + "".join(items) + "</ul>"
