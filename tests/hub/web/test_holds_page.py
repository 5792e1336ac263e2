"""Footage holds in the web UI, against a real `porchlight run`: the owner holds a range of a
camera's day under a label, sees it listed and on the timeline, and releases it; bad input gets
its exact error and stores nothing; a viewer and a forged form are refused and change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from markupsafe import escape

from hub.datadir import DataDir
from hub.db import connect
from hub.vault.store import Vault
from tests.hub.web.conftest import (
    FORGED,
    PASSPHRASE,
    VIEWER,
    VIEWER_PASS,
    WebHub,
    add_viewer,
    csrf_of,
    porchlight,
    run_async,
    sign_in,
)


@pytest.fixture(scope="module")
def held_hub(tmp_path_factory, clip25):
    """A running hub with 25 s of `porch` imported at 10:00:00 local time yesterday, and a viewer
    that porch is shared with."""
    root = tmp_path_factory.mktemp("holds") / "maple"
    hub = WebHub(root, cameras=())
    day = datetime.now().astimezone().date() - timedelta(days=1)
    start = datetime.fromisoformat(f"{day.isoformat()}T10:00:00").astimezone()
    # porch is configured (so it can be shared with the viewer) but nothing answers at its
    # address: the vault holds only the imported footage, and no camera costs CPU.
    porchlight("camera", "add", "--data", root, "porch", "--rtsp", "rtsp://127.0.0.1:9/none",
               "--no-analysis")
    porchlight("footage", "import", "--data", root, "--camera", "porch", "--start",
               start.isoformat(), clip25)
    hub.start()
    run_async(add_viewer(hub, VIEWER, VIEWER_PASS, "porch"))
    hub.day = day.isoformat()
    hub.start_at = start
    yield hub
    hub.stop()
    assert "Traceback" not in "".join(hub.log), "".join(hub.log)[-4000:]


def holds(hub: WebHub) -> list[tuple[str, str, str]]:
    """Return every hold row as (segment id, kind, reference)."""
    db = connect(hub.root / "porchlight.db")
    try:
        return sorted(tuple(r) for r in db.execute(
            "select segment_id, kind, reference from holds"))
    finally:
        db.conn.close()


def segment_ids(hub: WebHub, start: datetime, end: datetime) -> list[str]:
    db = connect(hub.root / "porchlight.db")
    try:
        return sorted(s.id for s in Vault(DataDir(hub.root), db, []).segments("porch", start, end))
    finally:
        db.conn.close()


def test_owner_holds_a_range_sees_it_listed_and_releases_it(held_hub):
    run_async(_hold_and_release(held_hub))


async def _hold_and_release(hub: WebHub) -> None:
    label = "break-in 12"
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, f"/recordings/porch?day={hub.day}")
        form = {"csrf": token, "day": hub.day, "from": "10:00:12", "to": "10:00:14",
                "label": label}
        async with owner.post("/recordings/porch/hold", data=form, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            assert r.headers["Location"] == (f"/recordings/porch?day={hub.day}&held="
                                              f"{quote(label, safe='')}")
        expected = segment_ids(hub, hub.start_at + timedelta(seconds=12),
                               hub.start_at + timedelta(seconds=14))
        assert expected and len(expected) < len(segment_ids(hub, hub.start_at, hub.start_at +
                                                            timedelta(seconds=30)))
        assert holds(hub) == [(s, "owner", label) for s in expected]
        # The same range again under the same label adds nothing twice.
        async with owner.post("/recordings/porch/hold", data=form, allow_redirects=False) as r:
            assert r.status == 303
        assert holds(hub) == [(s, "owner", label) for s in expected]

        async with owner.get("/recordings") as page:
            text = await page.text()
        assert f'<th scope="row">{label}</th>' in text
        assert f'aria-label="Release {label}"' in text
        async with owner.get(f"/recordings/porch?day={hub.day}&held={quote(label)}") as page:
            text = await page.text()
        assert "Held break-in 12: retention keeps it until you release it." in text
        assert 'class="tl-hold"' in text and f'<th scope="row">{label}</th>' in text

        async with owner.post("/recordings/release", data={
                "csrf": token, "label": label, "back": f"/recordings/porch?day={hub.day}"},
                allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == f"/recordings/porch?day={hub.day}"
        assert holds(hub) == []
        async with owner.get("/recordings") as page:
            assert "Nothing is on hold." in await page.text()
        async with owner.post("/recordings/release", data={"csrf": token, "label": label}) as r:
            assert (r.status, await r.text()) == (400, f"no hold is labelled {label!r}")


BAD_HOLDS = [
    ({"label": ""}, "the label is empty: name the hold so that you can release it later"),
    ({"label": "   "}, "the label is empty: name the hold so that you can release it later"),
    ({"label": "x" * 65}, "the label has 65 characters; the limit is 64"),
    ({"label": 'a "quoted" <b>'},
     "the label may hold letters, digits, spaces and . , : # / + ( ) - _ only"),
    ({"from": "25:00"}, "from: '25:00' is not a time of day (example: 14:05:30)"),
    ({"to": "later"}, "to: 'later' is not a time of day (example: 14:05:30)"),
    ({"from": "10:00:20", "to": "10:00:10"}, "the hold must end after it starts ({day}T10:00:20Z"
     " to {day}T10:00:10Z)"),
    ({"from": "10:00:10", "to": "10:00:10"}, "the hold must end after it starts ({day}T10:00:10Z"
     " to {day}T10:00:10Z)"),
    ({"from": "11:00:00", "to": "11:30:00"},
     "no footage of porch between {day}T11:00:00Z and {day}T11:30:00Z to hold"),
]


def test_bad_holds_show_their_exact_error_and_store_nothing(held_hub):
    if datetime.now().astimezone().utcoffset():
        pytest.skip("the expected UTC times assume the hub's zone is UTC")
    run_async(_bad_holds(held_hub))


async def _bad_holds(hub: WebHub) -> None:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, f"/recordings/porch?day={hub.day}")
        for fields, error in BAD_HOLDS:
            form = {"csrf": token, "day": hub.day, "from": "10:00:00", "to": "10:00:10",
                    "label": "insurance", **fields}
            async with owner.post("/recordings/porch/hold", data=form) as r:
                assert r.status == 400, fields
                text = await r.text()
            shown = str(escape(error.format(day=hub.day)))
            assert f'<p class="error" role="alert" id="error">{shown}</p>' in text, fields
            assert holds(hub) == [], fields


def test_a_viewer_and_a_forged_form_cannot_hold_or_release(held_hub):
    run_async(_refused(held_hub))


async def _refused(hub: WebHub) -> None:
    form = {"day": hub.day, "from": "10:00:00", "to": "10:00:10", "label": "mine"}
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, f"/recordings/porch?day={hub.day}")
        async with owner.post("/recordings/porch/hold", data={**form, "csrf": token}) as r:
            assert r.status == 200
        kept = holds(hub)
        assert kept
        # The owner's own session, without its token: refused, nothing changes.
        async with owner.post("/recordings/porch/hold", data=form) as r:
            assert (r.status, await r.text()) == (403, FORGED)
        async with owner.post("/recordings/release", data={"label": "mine"}) as r:
            assert (r.status, await r.text()) == (403, FORGED)
        assert holds(hub) == kept
        async with hub.client() as viewer:
            assert (await sign_in(viewer, VIEWER, VIEWER_PASS)).status == 303
            async with viewer.get("/recordings") as page:
                text = await page.text()
            assert 'id="holds"' not in text and "mine" not in text
            async with viewer.get(f"/recordings/porch?day={hub.day}") as page:
                text = await page.text()
            # She sees the hold on porch's timeline, but no hold form and no release button.
            assert 'class="tl-hold"' in text
            assert 'id="hold"' not in text and "Release" not in text
            viewer_token = await csrf_of(viewer, "/recordings")
            async with viewer.post("/recordings/porch/hold",
                                   data={**form, "csrf": viewer_token}) as r:
                assert (r.status, await r.text()) == (403, "only an owner may do this")
            async with viewer.post("/recordings/release",
                                   data={"label": "mine", "csrf": viewer_token}) as r:
                assert (r.status, await r.text()) == (403, "only an owner may do this")
        assert holds(hub) == kept
        async with owner.post("/recordings/release", data={"label": "mine", "csrf": token}) as r:
            assert r.status == 200
        assert holds(hub) == []
