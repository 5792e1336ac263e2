"""Settings > Cameras shows recording and analysis as config.toml has them now: switched by
`porchlight camera set` (or Home Assistant) while the hub runs, not as the hub started."""

from __future__ import annotations

import re

from tests.hub.web.conftest import PASSPHRASE, porchlight, sign_in


def _porch_line(page: str) -> str:
    return re.search(r"<strong>porch</strong>[^\n]*", page).group(0)


async def test_the_cameras_page_shows_recording_switched_while_the_hub_runs(web_hub):
    async with web_hub.client() as client:
        await sign_in(client, "owner", PASSPHRASE)
        async with client.get("/settings/cameras") as reply:
            before = _porch_line(await reply.text())
        porchlight("camera", "set", "--data", web_hub.root, "porch", "--recording", "off",
                   "--analysis", "off")
        async with client.get("/settings/cameras") as reply:
            after = _porch_line(await reply.text())

    assert "recording off" not in before and "no motion analysis" not in before
    assert " · recording off · no motion analysis · " in after
