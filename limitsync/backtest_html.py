"""The backtest's HTML section, in the replay report's style (its cards, tables and colours),
one self-contained file: no script, no fetch, every text escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from limitsync.report.css import CARDS_CSS, PAGE_CSS, TABLE_CSS
from streams.core.ledger import yuan

__all__ = ["render_backtest"]

BAR_WIDTH_PX = 240
REASONS_SHOWN_MAX = 20

_CSS = (
    PAGE_CSS
    + TABLE_CSS
    + """\
th{color:#4b5566;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
"""
    + CARDS_CSS
    + """\
.bar{display:inline-block;height:11px;background:#3b6ea8;border-radius:2px;vertical-align:-1px}
.bar.cut{background:#c0392b}.note{color:#6b7385;font-size:13px}
.bad{color:#c0392b;font-weight:600}
"""
)


def _card(key: str, label: str, value: object) -> str:
    return (f'<div class="card"><span class="big" id="bt-{key}">{escape(str(value))}</span>'
            f"{escape(label)}</div>")


def _money(fen: int | None) -> str:
    return "-" if fen is None else f"¥{yuan(fen)}"


def render_backtest(summary: dict[str, Any], cut_accounts: list[str]) -> str:
    s = summary
    cards = "".join([
        _card("rescore-points", "rescore points", s["rescore_points"]),
        _card("lines-changed", "lines the candidate changes", s["lines_changed"]),
        _card("differs", "decisions unlike the incumbent's", s["differs_from_incumbent"]),
        _card("cuts", "cuts", s["cuts"]),
        _card("accounts-cut", "accounts cut", s["accounts_cut"]),
        _card("reason-problems", "cuts whose reasons a notice cannot carry",
              s["reason_problems"]),
        _card("alerts-added", "alerts added (candidate - incumbent)", s["alerts_added"]),
    ])
    change = s["change_fen"]
    quantiles = "".join(
        f'<tr><th>{name}</th><td class="num" id="bt-change-{name}">{_money(change[name])}</td></tr>'
        for name in ("min", "p10", "p50", "p90", "max")
    )
    top = max(s["change_buckets"].values(), default=0) or 1
    buckets = "".join(
        f'<tr><th>{escape(name)}</th><td class="num">{n}</td><td>'
        f'<span class="bar{" cut" if name.startswith(("<", "-")) else ""}" '
        f'style="width:{max(1, n * BAR_WIDTH_PX // top) if n else 0}px"></span></td></tr>'
        for name, n in s["change_buckets"].items()
    )
    reasons = "".join(
        f"<tr><td>{escape(r)}</td><td class=\"num\">{n}</td></tr>"
        for r, n in list(s["reasons_used"].items())[:REASONS_SHOWN_MAX]
    ) or '<tr><td class="note" colspan="2">no cuts</td></tr>'
    declared = ("" if s["reasons_declared"] else
                '<p class="bad" id="bt-undeclared">The scorer declares no reason list '
                "(<code>declared_reasons</code>): no cut's reasons can be checked.</p>")
    cut_rows = "".join(f"<li><code>{escape(a)}</code></li>" for a in cut_accounts)
    more = s["accounts_cut"] - len(cut_accounts)
    cut_more = f'<p class="note">and {more} more in decisions.jsonl</p>' if more > 0 else ""
    body = f"""
<h1>Scorecard backtest</h1>
<p class="note">Candidate <code>{escape(s['scorer'])}</code>
(model <code>{escape(s['model_version'] or '-')}</code>) at every rescore point of the log:
{s['records']} records, {s['invalid']} invalid.</p>
<section id="backtest">
<div class="cards">{cards}</div>
<h2>How far lines would move</h2>
<table><tr><th>change</th><th class="num">amount</th></tr>{quantiles}</table>
<table id="bt-buckets"><tr><th>change of the line</th><th class="num">decisions</th><th></th></tr>
{buckets}</table>
<h2>Reasons given for cuts</h2>{declared}
<table id="bt-reasons"><tr><th>reason</th><th class="num">cuts</th></tr>{reasons}</table>
<h2>Accounts that would be cut</h2><ul id="bt-cut-accounts">{cut_rows}</ul>{cut_more}
<h2>Alerts</h2>
<p>The incumbent's history raised <span id="bt-alerts-incumbent">{s['alerts_incumbent']}</span>
alerts; with the candidate's lines, <span id="bt-alerts-candidate">{s['alerts_candidate']}</span>
(the log's display observations kept: an upper bound on what the changes cost the display).</p>
</section>"""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>limitsync backtest</title>"
        f"<style>{_CSS}</style></head>\n<body>{body}</body></html>\n"
    )
