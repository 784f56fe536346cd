"""The stylesheets of the HTML reports: the replay report's, and the pieces the backtest's page
shares with it (page, tables, cards), so that the two read alike."""

from __future__ import annotations

__all__ = ["CARDS_CSS", "PAGE_CSS", "REPORT_CSS", "TABLE_CSS"]

# The page and its headings (h3 differs: each page adds its own).
PAGE_CSS = """
:root{color-scheme:light}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Liberation Sans",
sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px 48px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:8px 0 4px}
h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #dde2ea;padding-bottom:4px}
"""
# Code spans and tables (the th line differs: each page adds its own).
TABLE_CSS = """\
code{font:12.5px/1.3 ui-monospace,"DejaVu Sans Mono",monospace;background:#f3f5f8;padding:0 3px;
border-radius:3px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e9ef;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
"""
# Cards with a big number.
CARDS_CSS = """\
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid #dde2ea;border-radius:6px;padding:8px 12px;min-width:140px}
.card .big{font-size:22px;font-weight:600;display:block;font-variant-numeric:tabular-nums}
"""

REPORT_CSS = (
    PAGE_CSS
    + "h3{font-size:15px;margin:20px 0 6px}\n"
    + TABLE_CSS
    + """\
th{color:#4b5566;font-weight:600}.nowrap,td.num,th.num{white-space:nowrap}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#fff4f2}tr.omitted td{color:#6b7385;font-style:italic}
code{overflow-wrap:anywhere}.muted{color:#6b7385}.big-inline{font-weight:700;font-size:15px}.note{color:#6b7385;font-size:13px}
"""
    + CARDS_CSS
    + """\
.card ul{margin:2px 0 0;padding-left:16px;font-size:12.5px}
.banner{background:#fff8e1;border:1px solid #f0d98c;border-radius:6px;padding:6px 10px}
nav a{margin-right:12px}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}
svg text{font:11px system-ui,"Liberation Sans",sans-serif;fill:#39414f}
svg text.value{font-weight:600}
.grid{stroke:#e8ebf0;stroke-width:1}.axisline{stroke:#8a93a3;stroke-width:1}
.legend{font-size:12.5px;margin:2px 0}.key{margin-right:14px}
.swatch{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;border-radius:2px}
.c-critical{fill:#c0392b;background:#c0392b}.c-major{fill:#e69f00;background:#e69f00}
.c-other{fill:#8a93a3;background:#8a93a3}
.c-opened{fill:#c0392b;background:#c0392b}.c-escalated{fill:#7b1e12;background:#7b1e12}
.c-latency{fill:#3b6ea8;background:#3b6ea8}.c-late{fill:#c0392b;background:#c0392b}
.c-expected{background:#1f5fa8}.c-displayed{background:#e66100}
.c-band{background:#fbe3df}
.line-expected{fill:none;stroke:#1f5fa8;stroke-width:2}
.line-displayed{fill:none;stroke:#e66100;stroke-width:2;stroke-dasharray:6 3}
.line-cached{fill:none;stroke:#2e8540;stroke-width:2;stroke-dasharray:2 3}
.c-cached{background:#2e8540}
.dot-displayed{fill:#e66100}.dot-cached{fill:#2e8540}.drift-band{fill:#fbe3df}
.marker line{stroke-width:1.2;stroke-dasharray:2 2}
.m-opened line{stroke:#c0392b}.m-opened path{fill:#c0392b}
.m-escalated line{stroke:#7b1e12}.m-escalated path{fill:#7b1e12}
.m-resolved line{stroke:#2e8540}.m-resolved path{fill:#2e8540}
.c-m-resolved{background:#2e8540}
details{margin:6px 0}summary{cursor:pointer;color:#1f5fa8}
dl{margin:4px 0;display:grid;grid-template-columns:max-content auto;gap:2px 12px}
dt{color:#4b5566}dd{margin:0}
@media print{nav{display:none}section.timeline{break-inside:avoid}}
"""
)
