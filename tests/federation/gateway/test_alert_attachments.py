"""Alert photos through a real gateway: upload by the author, fetch by the alert's recipients.

The gateway runs in the test's event loop on 127.0.0.1 with a clock the test moves
(agency_fixtures.neighbourhood); hubs are real clients with real hop signatures. Every
refused upload is checked for its exact status and reason, and that no row and no file was
kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import zlib
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.cells import cell_for
from federation.errors import MalformedMessage, SchemaError
from federation.gateway.errors import NotAPhoto
from federation.gateway.operator import block_hub
from federation.gateway.photo_relay import PHOTO_MAGIC, check_photo
from federation.hop import sign_request
from federation.http import GatewayRejected
from federation.member.client import AttachmentCorrupt, verify_relayed
from federation.wire import AttachmentStored, parse_answer
from tests.federation.agency_fixtures import CENTRE, east, neighbourhood, next_message
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)
from tests.outcomes import Outcomes


def png(width: int = 8, height: int = 8) -> bytes:
    """Return a real PNG (grey pixels), built with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes([128] * width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg(size: int) -> bytes:
    """Return bytes shaped like a JPEG of the given size (SOI, APP0, data, EOI)."""
    return b"\xff\xd8\xff\xe0" + os.urandom(size - 6) + b"\xff\xd9"


MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom(2000)


def listing(data: bytes, media_type: str) -> dict[str, Any]:
    """Return the attachment entry an alert lists for these bytes."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "type": media_type}


async def post_alert(hub, attachments: list[dict[str, Any]], **kwargs: Any) -> str:
    """Sign and post an alert from a hub; return its id."""
    cell = cell_for(*hub.location)
    token = hub.client.sign_alert(
        "suspicious", "Someone tried the doors", cell, attachments=attachments, **kwargs
    )
    return await hub.client.post_alert(token)


async def upload(
    hood, hub, alert_id: str, sha256: str, body: bytes, *, sign_body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """POST a photo with a hop signature (over sign_body, when given, to send a lie)."""
    url = f"{hood.url}/v1/alerts/{alert_id}/attachments/{sha256}"
    headers = sign_request(
        hub.key, "POST", url, body if sign_body is None else sign_body, now=hood.clock()
    )
    headers["Content-Type"] = "application/octet-stream"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


def photo_files(hood) -> list[str]:
    """Return every file under the gateway's photo directory."""
    root = hood.data_dir / "attachments"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_photo_round_trip_to_a_hub_in_range_and_refused_to_others(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        author = await hood.join(*CENTRE)
        neighbour = await hood.join(*east(*CENTRE, 100))
        distant = await hood.join(*east(*CENTRE, 6_000))
        photo, diagram = jpeg(40_000), png()
        attachments = [listing(photo, "image/jpeg"), listing(diagram, "image/png")]
        alert_id = await post_alert(author, attachments)

        message = await next_message(neighbour.client)
        verified = verify_relayed(message, gateway_kid=hood.kid, now=hood.clock())
        listed = verified.claims["attachments"]
        assert listed == attachments

        # Receivers fetch lazily: before the author uploads, "not yet".
        with pytest.raises(GatewayRejected) as caught:
            await neighbour.client.fetch_attachment(
                alert_id, listed[0]["sha256"], listed[0]["size"]
            )
        assert (caught.value.status, caught.value.reason) == (404, "not_uploaded")

        await author.client.upload_attachment(alert_id, listed[0]["sha256"], photo)
        await author.client.upload_attachment(alert_id, listed[0]["sha256"], photo)  # idempotent
        await author.client.upload_attachment(alert_id, listed[1]["sha256"], diagram)
        assert photo_files(hood) == sorted(f"{alert_id}/{item['sha256']}" for item in listed)

        for item, data in zip(listed, (photo, diagram), strict=True):
            got = await neighbour.client.fetch_attachment(alert_id, item["sha256"], item["size"])
            assert got == data
        # The receiver checks the size and SHA-256 itself, and keeps nothing that differs.
        for item, size in ((listed[0], len(photo) - 1), (listed[1], len(diagram) + 1)):
            with pytest.raises(AttachmentCorrupt):
                await neighbour.client.fetch_attachment(alert_id, item["sha256"], size)

        # Only hubs the alert was relayed to may fetch: not one 6 km away, not the author.
        for outsider in (distant, author):
            with pytest.raises(GatewayRejected) as caught:
                await outsider.client.fetch_attachment(alert_id, listed[0]["sha256"], len(photo))
            assert (caught.value.status, caught.value.reason) == (403, "not_recipient")
        with pytest.raises(GatewayRejected) as caught:
            await neighbour.client.fetch_attachment(alert_id, "0" * 64, 10)
        assert (caught.value.status, caught.value.reason) == (404, "not_listed")
        with pytest.raises(AttachmentCorrupt):
            await author.client.upload_attachment(alert_id, listed[0]["sha256"], diagram)
        assert hood.counts()["alert_attachments"] == 2


async def test_refused_uploads_keep_nothing(tmp_path):
    async with neighbourhood(tmp_path, max_attachment_bytes=64 * 1024) as hood:
        author = await hood.join(*CENTRE)
        other = await hood.join(*east(*CENTRE, 100))
        photo = jpeg(20_000)
        big = jpeg(100 * 1024)
        text = b"just some text, not a picture at all\n" * 20
        entries = [
            listing(photo, "image/jpeg"),
            listing(MP4, "video/mp4"),
            listing(text, "image/jpeg"),
            listing(big, "image/jpeg"),
        ]
        alert_id = await post_alert(author, entries)
        own, video, fake, large = (entry["sha256"] for entry in entries)
        others_alert = await post_alert(other, [listing(MP4, "image/png")])
        cases = [
            ("bad photo name", author, alert_id, "XYZ", photo, None, 400, "bad_sha256"),
            ("unknown alert", author, "ab" * 32, own, photo, None, 404, "unknown_alert"),
            ("not the author", other, alert_id, own, photo, None, 403, "not_author"),
            (
                "not the author, not listed",
                other,
                alert_id,
                hashlib.sha256(b"x").hexdigest(),
                b"x",
                None,
                403,
                "not_author",
            ),
            (
                "not listed",
                author,
                alert_id,
                hashlib.sha256(b"x").hexdigest(),
                b"x",
                None,
                404,
                "not_listed",
            ),
            (
                "body is not the named photo",
                author,
                alert_id,
                own,
                jpeg(20_000),
                None,
                401,
                "digest_mismatch",
            ),
            (
                "body altered after signing",
                author,
                alert_id,
                own,
                photo[:-3] + b"abc",
                photo,
                401,
                "digest_mismatch",
            ),
            ("wrong size", author, alert_id, own, photo + b"\xff\xd9", photo, 400, "wrong_size"),
            ("listed as video/mp4", author, alert_id, video, MP4, None, 415, "not_a_photo"),
            ("text listed as a JPEG", author, alert_id, fake, text, None, 415, "not_a_photo"),
            (
                "a video listed as a PNG",
                other,
                others_alert,
                hashlib.sha256(MP4).hexdigest(),
                MP4,
                None,
                415,
                "not_a_photo",
            ),
            ("too large", author, alert_id, large, big, None, 413, "too_large"),
        ]
        for name, hub, alert, sha, body, signed, status, reason in cases:
            got, answer = await upload(hood, hub, alert, sha, body, sign_body=signed)
            assert (got, answer["reason"]) == (status, reason), (name, answer)
            assert hood.counts()["alert_attachments"] == 0, name
            assert photo_files(hood) == [], name
        assert not any((hood.data_dir / "attachments").rglob("*"))

        got, answer = await upload(hood, author, alert_id, own, photo)
        assert got == 201 and (answer["size"], answer["type"]) == (len(photo), "image/jpeg")


async def test_photos_are_deleted_with_their_alert(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        author = await hood.join(*CENTRE)
        neighbour = await hood.join(*east(*CENTRE, 100))
        photo = png(16, 16)
        entry = listing(photo, "image/png")
        short = await post_alert(author, [entry], lifetime_s=600)
        await author.client.upload_attachment(short, entry["sha256"], photo)
        kept = await post_alert(author, [entry])  # the same photo in a longer-lived alert
        await author.client.upload_attachment(kept, entry["sha256"], photo)
        assert len(photo_files(hood)) == 2

        hood.clock.advance(601)
        # Expired: refused at once, even before the purge runs.
        with pytest.raises(GatewayRejected) as caught:
            await neighbour.client.fetch_attachment(short, entry["sha256"], len(photo))
        assert (caught.value.status, caught.value.reason) == (404, "unknown_alert")
        counts = await hood.gateway.purge()
        assert counts["alerts"] == 1 and counts["photos"] == 1
        assert photo_files(hood) == [f"{kept}/{entry['sha256']}"]
        assert await neighbour.client.fetch_attachment(kept, entry["sha256"], len(photo)) == photo

        # Blocking the author withdraws its alerts and deletes their photos right away.
        block_hub(hood.data_dir, author.key.kid, clock=hood.clock)
        assert photo_files(hood) == [] and hood.counts()["alert_attachments"] == 0
        with pytest.raises(GatewayRejected) as caught:
            await neighbour.client.fetch_attachment(kept, entry["sha256"], len(photo))
        assert (caught.value.status, caught.value.reason) == (404, "unknown_alert")


@st.composite
def photo_edges(draw):
    """Draw the first and last bytes of a real photo, maybe spoiled; return them and the slip."""
    media_type = draw(st.sampled_from(sorted(PHOTO_MAGIC)))
    magic, trailer = PHOTO_MAGIC[media_type]
    head = magic + draw(st.binary(max_size=16))
    tail = draw(st.binary(max_size=16)) + trailer
    slip = draw(st.sampled_from(["none", "none", "head", "tail", "type", "video"]))
    if slip in ("head", "tail"):
        edge = bytearray(head if slip == "head" else tail)
        at = draw(st.integers(0, len(edge) - 1))
        edge[at] ^= draw(st.integers(1, 255))
        head, tail = (bytes(edge), tail) if slip == "head" else (head, bytes(edge))
    elif slip == "type":
        media_type = draw(st.sampled_from([*PHOTO_MAGIC, "video/mp4", "", "IMAGE/PNG"]))
    elif slip == "video":
        head, tail = MP4[:16], MP4[-16:]
    return head, tail, media_type, slip


def test_check_photo_accepts_only_what_begins_and_ends_like_the_listed_photo():
    outcomes = Outcomes()

    @settings(max_examples=500, deadline=None)
    @given(
        sent=photo_edges()
        | st.tuples(
            st.binary(max_size=16),
            st.binary(max_size=16),
            st.one_of(st.sampled_from([*PHOTO_MAGIC, "video/mp4", ""]), st.text(max_size=20)),
            st.just("random"),
        )
    )
    def check(sent):
        head, tail, media_type, slip = sent
        try:
            check_photo(head, tail, media_type)
        except NotAPhoto as err:
            outcomes.note("refused")
            assert err.reason == "not_a_photo"
            assert slip != "none", "a photo's own edges were refused"
            return
        outcomes.note("accepted")
        magic, trailer = PHOTO_MAGIC[media_type]
        assert head.startswith(magic) and tail.endswith(trailer)

    check()
    outcomes.require("accepted", "refused")


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64))
def test_no_video_passes_as_a_photo(body):
    for media_type in PHOTO_MAGIC:
        with pytest.raises(NotAPhoto):
            check_photo(MP4[:16] + body, MP4[-16:] + body, media_type)


async def test_no_5xx_for_junk_at_the_photo_routes(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        alert_id = await post_alert(hub, [listing(png(), "image/png")])
        rng = random.Random(4)
        names = [alert_id, "0" * 64, "A" * 64, "", "x", "%2e%2e", "%ff", "a" * 300, "é"]
        async with aiohttp.ClientSession() as session:
            for _ in range(40):
                first, second = (quote(rng.choice(names), safe="%") for _ in range(2))
                url = f"{hood.url}/v1/alerts/{first}/attachments/{second}"
                body = rng.randbytes(rng.randrange(0, 200))
                for method in ("POST", "GET"):
                    sent = body if method == "POST" else b""
                    headers = sign_request(hub.key, method, url, sent, now=hood.clock())
                    async with session.request(method, url, data=sent, headers=headers) as resp:
                        assert 400 <= resp.status < 500, (method, url, resp.status)
        assert hood.counts()["alert_attachments"] == 0


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.fixed_dictionaries(
            {},
            optional={
                "sha256": st.one_of(st.just("a" * 64), st.text(max_size=70), st.integers()),
                "size": st.one_of(st.integers(-2, 2**40), st.text(max_size=5)),
                "type": st.one_of(st.sampled_from(["image/png", ""]), st.integers()),
                "expires": st.one_of(st.floats(), st.integers(), st.none()),
            },
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_fuzz_photo_upload_answer(body):
    try:
        answer = parse_answer(AttachmentStored, body, what="photo answer")
    except (MalformedMessage, SchemaError):
        return
    assert answer.size >= 1 and len(answer.sha256) == 64
