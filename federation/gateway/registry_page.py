"""The gateway's public page: the neighbourhood, its agencies and what they asked, its log.

Served at ``/`` (and ``/registry``). The open counterpart of a closed "active law enforcement
map": the neighbourhood's name and id; per agency its name, jurisdiction, the date the
partnership began, and the number of requests it sent and of approving and denying answers,
all counted from the public transparency log, and the number of announcements it posted
(counted by the gateway: announcements are not logged); the log's latest signed checkpoint and
links to it, its tiles and its entries. Server-rendered, with no external resources and no
script: a pure function of what the gateway knows, every value escaped, and a
Content-Security-Policy that allows nothing but this page's own style sheet.
"""

from __future__ import annotations

import base64
import hashlib
import html
from datetime import UTC, datetime
from typing import Any

from federation.neighbourhood_log import MAX_ENTRIES_PER_PAGE
from federation.tlog.tiles import ENTRIES, TILE_WIDTH, TileRef

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ccc; padding: .4rem .5rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
small code { color: #555; }
pre { background: #f4f4f4; padding: .75rem; overflow-x: auto; }
"""
# The one thing the page may load: its own style sheet, named by its hash.
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _date(value: int | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _agency_rows(agencies: list[dict[str, Any]]) -> str:
    rows = []
    for agency in agencies:
        status = "listed" if agency["listed"] else "removed"
        rows.append(
            "<tr>"
            f"<td>{_esc(agency['name'])}<br><small><code>{_esc(agency['kid'])}</code></small></td>"
            f"<td>{_esc(agency['jurisdiction'])}</td>"
            f"<td>{_date(agency['since'])}</td>"
            f"<td>{status}</td>"
            f"<td class=n>{int(agency['requests'])}</td>"
            f"<td class=n>{int(agency['approvals'])}</td>"
            f"<td class=n>{int(agency['denials'])}</td>"
            f"<td class=n>{int(agency.get('announcements', 0))}</td>"
            f"<td>{_esc(agency.get('contact') or '-')}</td>"
            "</tr>"
        )
    return "\n".join(rows) or "<tr><td colspan=9>No agency is registered.</td></tr>"


def _registry_state(summary: dict[str, Any], now: float) -> str:
    version = summary.get("version")
    if version is None:
        return "No registry has been published to this gateway."
    expires = summary.get("expires")
    expired = expires is not None and now > expires
    return (
        f"Registry version {int(version)}, "
        f"{'expired' if expired else 'valid until'} {_date(expires)}."
    )


def _log_links(size: int) -> str:
    links = [("/checkpoint", "the latest signed checkpoint (C2SP tlog-checkpoint)")]
    if size > 0:
        index, width = divmod(size - 1, TILE_WIDTH)
        width += 1
        links += [
            ("/" + TileRef(0, index, width).path, "the newest hash tile (C2SP tlog-tiles)"),
            ("/" + TileRef(ENTRIES, index, width).path, "the newest entry bundle"),
            (
                f"/v1/log/entries?start={max(0, size - MAX_ENTRIES_PER_PAGE)}&end={size}",
                "the newest entries, as JSON with their kind and signer",
            ),
        ]
    links.append(("/v1/registry/summary", "the figures on this page, as JSON"))
    return "\n".join(
        f'<li><a href="{_esc(href)}"><code>{_esc(href)}</code></a>: {_esc(text)}</li>'
        for href, text in links
    )


def render_public_page(
    summary: dict[str, Any],
    *,
    neighbourhood: str,
    neighbourhood_id: str,
    checkpoint: str,
    now: float,
) -> str:
    """Render the gateway's public page as a standalone HTML document."""
    lines = checkpoint.split("\n")
    # The signed checkpoint names its own tree size: link to the tiles of exactly that tree.
    size = int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else 0
    name = _esc(neighbourhood)
    return f"""<!doctype html>
<html lang=en>
<head>
<meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{name}: a Porchlight neighbourhood</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{name}</h1>
<p>A Porchlight neighbourhood. Its id (this gateway's key) is
<code>{_esc(neighbourhood_id)}</code>.</p>
</header>
<main>
<section aria-labelledby=agencies>
<h2 id=agencies>Agencies and their requests</h2>
<p>{_esc(_registry_state(summary, now))} Every request an agency sends and every household's
answer is recorded in this neighbourhood's public transparency log; the request counts below are
computed from it. Answers name no household. Announcements (public notices an agency signed) are
counted by this gateway; they are not in the log.</p>
<table>
<thead><tr><th>Agency</th><th>Jurisdiction</th><th>Partner since</th><th>Status</th>
<th>Requests</th><th>Approvals</th><th>Denials</th><th>Announcements</th>
<th>Contact</th></tr></thead>
<tbody>
{_agency_rows(summary["agencies"])}
</tbody>
</table>
</section>
<section aria-labelledby=log>
<h2 id=log>The public log</h2>
<p>{size} {"entry" if size == 1 else "entries"}: registry versions, agency requests and the
households' answers. Its latest checkpoint, signed by this gateway:</p>
<pre>{_esc(checkpoint)}</pre>
<ul>
{_log_links(size)}
</ul>
<p>Anyone can audit it: <code>porchlight log verify --gateway URL</code>.</p>
</section>
</main>
</body>
</html>
"""
