"""The gateway's public registry page: every agency, its jurisdiction, and what it asked.

The open counterpart of a closed "active law enforcement map": per agency its name,
jurisdiction, the date the partnership began, and the number of requests it sent and of
approving and denying answers, all counted from the public transparency log, and the number
of announcements it posted (counted by the gateway: announcements are not logged). A pure
function of the summary the gateway computes; every value is escaped.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any


def _date(value: int | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d")


def render_registry_page(summary: dict[str, Any], *, neighbourhood: str, now: float) -> str:
    """Render the registry summary as a standalone HTML page."""
    esc = html.escape
    rows = []
    for agency in summary["agencies"]:
        status = "listed" if agency["listed"] else "removed"
        rows.append(
            "<tr>"
            f"<td>{esc(agency['name'])}<br><small><code>{esc(agency['kid'])}</code></small></td>"
            f"<td>{esc(agency['jurisdiction'])}</td>"
            f"<td>{_date(agency['since'])}</td>"
            f"<td>{esc(status)}</td>"
            f"<td class=n>{int(agency['requests'])}</td>"
            f"<td class=n>{int(agency['approvals'])}</td>"
            f"<td class=n>{int(agency['denials'])}</td>"
            f"<td class=n>{int(agency.get('announcements', 0))}</td>"
            f"<td>{esc(agency['contact'])}</td>"
            "</tr>"
        )
    table = "\n".join(rows) or "<tr><td colspan=9>No agency is registered.</td></tr>"
    version = summary.get("version")
    expires = summary.get("expires")
    if version is None:
        state = "No registry has been published to this gateway."
    else:
        expired = expires is not None and now > expires
        state = (
            f"Registry version {int(version)}, "
            f"{'expired' if expired else 'valid until'} {_date(expires)}."
        )
    title = f"Agencies in {esc(neighbourhood)}"
    return f"""<!doctype html>
<html lang=en>
<head>
<meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ccc; padding: .4rem .5rem; text-align: left; vertical-align: top; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
small code {{ color: #666; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{esc(state)} Every request an agency sends and every household's answer is recorded in
this neighbourhood's public transparency log ({int(summary.get("log_size", 0))} entries);
the request counts below are computed from it. Answers name no household. Announcements
(public notices an agency signed) are counted by this gateway; they are not in the log.</p>
<table>
<thead><tr><th>Agency</th><th>Jurisdiction</th><th>Partner since</th><th>Status</th>
<th>Requests</th><th>Approvals</th><th>Denials</th><th>Announcements</th>
<th>Contact</th></tr></thead>
<tbody>
{table}
</tbody>
</table>
<p><small>Machine-readable: <a href="/v1/registry/summary">/v1/registry/summary</a>,
the log: <a href="/checkpoint">/checkpoint</a>.</small></p>
</body>
</html>
"""
