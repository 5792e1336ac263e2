"""The gateway's public page at `/`, against a real gateway process (issue 9 item 5)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import aiohttp

from federation.agency.tool import agency_request, init_agency
from federation.authority.tool import add_agency, authority_kid, init_authority, publish_registry
from federation.gateway.operator import init_gateway
from federation.gateway.registry_page import CONTENT_SECURITY_POLICY
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
    start_gateway_proc,
)

CENTRE = (52.3731, 4.8926)
HOSTILE_AGENCY = '<script>alert("agency")</script> Police & Co'
HOSTILE_HOOD = "Elm & <b>Oak</b> Street"


async def _get(url: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url) as reply:
        return reply.status, dict(reply.headers), (await reply.read()).decode("utf-8", "replace")


async def test_public_page_shows_the_neighbourhood_registry_and_log_escaped(tmp_path):
    authority, agency, data = tmp_path / "authority", tmp_path / "agency", tmp_path / "gateway"
    init_authority(authority, "Oversight <i>board</i>")
    card = init_agency(agency, HOSTILE_AGENCY)
    # No contact given: the registry lists none, and the page says so.
    add_agency(authority, card, jurisdiction=(*CENTRE, 10_000.0), since="2024-03-01")
    init_gateway(data, name=HOSTILE_HOOD, registry_key=authority_kid(authority))
    gateway = await start_gateway_proc(data, tmp_path)
    try:
        status, _, empty_page = await _get(gateway.url + "/")
        assert status == 200 and "No registry has been published" in empty_page
        await publish_registry(authority, gateway.url)
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        request_id = await agency_request(
            agency, gateway.url, case="2026-0001", reason="Burglary <b>at</b> No. 5",
            start=end - timedelta(minutes=30), end=end, lat=CENTRE[0], lon=CENTRE[1],
            radius_m=200,
        )
        status, headers, page = await _get(gateway.url + "/")
        _, _, registry_page = await _get(gateway.url + "/registry")
        # Every link on the page works against the same gateway.
        links = {html.unescape(h): (await _get(gateway.url + html.unescape(h)))[0]
                 for h in re.findall(r'<a href="([^"]+)">', page)}
    finally:
        await gateway.proc.stop()

    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none'; style-src 'sha256-")
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert registry_page == page
    # Every outside value is escaped; the page has no script and loads nothing from elsewhere.
    assert "<script" not in page.lower() and "<b>" not in page and "<i>" not in page
    assert html.escape(HOSTILE_AGENCY) in page
    assert f"<h1>{html.escape(HOSTILE_HOOD)}</h1>" in page
    assert not re.search(r"(src|href)=\"?(https?:)?//", page)
    assert re.findall(r"<style>", page) == ["<style>"]
    # The registry: the agency, its counts (one request, no answers yet), no contact.
    assert "Registry version 1, valid until" in page
    assert "<td>2024-03-01</td><td>listed</td><td class=n>1</td><td class=n>0</td>" in page
    assert "<td class=n>0</td><td class=n>0</td><td>-</td></tr>" in page
    assert request_id not in page  # the page counts requests; the log holds them
    # The log: two entries (the registry and the request), the checkpoint, and links.
    assert "<p>2 entries:" in page
    checkpoint = re.search(r"<pre>(.*?)</pre>", page, re.S).group(1)
    origin, size = html.unescape(checkpoint).split("\n")[:2]
    assert origin == f"porchlight-gateway/{gateway.kid}" and size == "2"
    assert gateway.kid in page
    for href in ("/checkpoint", "/tile/0/000.p/2", "/tile/entries/000.p/2",
                 "/v1/log/entries?start=0&amp;end=2", "/v1/registry/summary"):
        assert f'<a href="{href}">' in page, href
    assert len(links) == 5 and set(links.values()) == {200}, links
