"""Per-person switches set in the web UI of a real `porchlight run`, and obeyed by its targets."""

from __future__ import annotations

import pytest

from tests.hub.web.conftest import PASSPHRASE, WebHub, csrf_of, sign_in
from tests.notify_peers import Receiver

SECRET = "s3cret-s3cret-s3cret-0123456789"
ANN = "ann-passphrase-long"


def _webhook(name: str, url: str, person: str) -> str:
    return (f'\n[[notifiers]]\ntype = "webhook"\nname = "{name}"\nurl = "{url}"\n'
            f'person = "{person}"\nlan = true\nsecret = {{ env = "HOOK_SECRET" }}\n')


@pytest.fixture
async def peers():
    owners = await Receiver(SECRET.encode()).start()
    anns = await Receiver(SECRET.encode()).start()
    yield owners, anns
    await owners.stop()
    await anns.stop()


@pytest.fixture
def hub(tmp_path, peers, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    owners, anns = peers
    made = WebHub(tmp_path / "rowan", cameras=("porch",),
                  config="[notify]\nmotion_cooldown_s = 0\n"
                  + _webhook("owner-hook", owners.url, "owner")
                  + _webhook("ann-hook", anns.url, "ann"))
    config = made.root / "config.toml"
    config.write_text(config.read_text().replace(
        'type = "synthetic"', 'type = "synthetic"\nscenario = "walking_figure"\n'
        'loop_seconds = 15.0\nwidth = 320\nheight = 180'))
    made.start()
    yield made
    made.stop()
    assert SECRET not in "".join(made.log)


def _motions(receiver: Receiver) -> list[str]:
    return [b["event"]["id"] for b in receiver.accepted if b["trigger"] == "motion"]


async def test_switches_set_in_the_web_ui_decide_who_is_notified(hub, peers):
    owners, anns = peers
    async with hub.client() as owner, hub.client() as ann:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings")
        async with owner.post("/settings/people", data={
                "csrf": token, "name": "ann", "role": "viewer", "passphrase": ANN}) as reply:
            assert reply.status == 200
        async with owner.post("/settings/people/ann/share", data={
                "csrf": token, "camera": "porch", "shared": "yes"}) as reply:
            assert reply.status == 200
        # The owner switches motion off for themself (every box but motion).
        async with owner.post("/settings/notifications/owner", allow_redirects=False, data=[
                ("csrf", token), ("on", "request"), ("on", "alert"), ("on", "camera"),
                ("on", "disk"), ("on", "fork")]) as reply:
            assert (reply.status, reply.headers["Location"]) == (
                303, "/settings/notifications?saved=owner")
        async with owner.get("/settings/notifications") as page:
            text = await page.text()
        assert 'id="notify-owner"' in text and 'id="notify-ann"' in text
        assert "Targets: ann-hook (webhook)" in text

        assert (await sign_in(ann, "ann", ANN)).status == 303
        ann_token = await csrf_of(ann, "/settings/notifications")
        async with ann.get("/settings/notifications") as page:
            text = await page.text()
        # A viewer sees only their own switches, and only the triggers a viewer may have.
        assert 'id="notify-ann"' in text and 'id="notify-owner"' not in text
        assert 'value="request"' not in text and 'value="motion" checked' in text
        async with ann.post("/settings/notifications/owner", data=[
                ("csrf", ann_token), ("on", "motion")]) as reply:
            assert (reply.status, await reply.text()) == (
                403, "you may change only your own notifications")
        async with ann.post("/settings/notifications/ann", data=[
                ("csrf", ann_token), ("on", "request")]) as reply:
            assert reply.status == 400
            assert "no trigger &#39;request&#39; for a viewer: choose from alert, motion, " \
                   "camera" in await reply.text()
        async with ann.post("/settings/notifications/ann", data=[("on", "alert")]) as reply:
            assert reply.status == 403  # no CSRF token
        async with ann.post("/settings/notifications/nobody", data=[
                ("csrf", ann_token)]) as reply:
            assert reply.status == 403
        async with owner.post("/settings/notifications/nobody", data=[
                ("csrf", token)]) as reply:
            assert (reply.status, await reply.text()) == (404, "no such person")
        async with ann.get("/settings/notifications") as page:
            # Nothing the refused posts sent was stored: motion still on, the rest as before.
            text = await page.text()
            assert 'value="motion" checked' in text and 'value="alert" checked' in text

        # The walker's first motion reaches Ann's target, not the owner's.
        await anns.wait_for(1, timeout=120)
        first = _motions(anns)[0]
        async with owner.post("/settings/notifications/owner", allow_redirects=False, data=[
                ("csrf", token), ("on", "motion")]) as reply:
            assert reply.status == 303
        # Switched on again: the owner's target hears of the next walker. Its queue is in order,
        # so had the first motion been sent to it, that would have arrived first.
        await owners.wait_for(1, timeout=120)
    assert _motions(owners) and first not in _motions(owners)
    assert all(b["trigger"] == "motion" for b in owners.accepted)
