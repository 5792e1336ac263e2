"""Gateway intake of agency requests: checks, log, routing; hub answers and sealed clips."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pyrage
import pytest
from pyrage import x25519

from federation.agency.tool import AGENCY_IDENTITY_FILE, AgencyClient
from federation.answers import answer_key, sign_answer
from federation.authority.tool import remove_agency
from federation.hop import sign_request
from federation.http import GatewayRejected
from federation.jws import new_jti
from federation.keys import generate_signing_key
from federation.member.requests import verify_routed_request
from federation.neighbourhood_log import checkpoint_verifier
from federation.replay import MemoryReplayStore
from federation.schemas import TYP_ANSWER
from federation.sealed import open_clip, seal_clip, sha256_hex
from federation.tlog.proof import verify_tlog_proof
from tests.federation.agency_fixtures import (
    CENTRE,
    answer,
    east,
    get_json,
    neighbourhood,
    next_message,
    no_message,
    rfc3339,
)
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    DB_FILE,
    no_leaked_tasks,
    no_leaked_threads,
)

DAY = 86400


def _window(now: float, *, hours: float, end_ago_h: float = 1.0) -> dict[str, str]:
    end = datetime.fromtimestamp(now, tz=UTC) - timedelta(hours=end_ago_h)
    return {"start": rfc3339(end - timedelta(hours=hours)), "end": rfc3339(end)}


async def test_request_is_logged_and_routed_only_to_hubs_in_range(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        near = await hood.join(*east(*CENTRE, 100))
        far = await hood.join(*east(*CENTRE, 5_000))
        token = hood.sign()
        status, answer = await hood.post_request(token)
        assert status == 201, answer
        assert answer["log_index"] == 1  # after the registry version
        verifier = checkpoint_verifier(hood.gateway.key.public_jwk)
        proven = verify_tlog_proof(token.encode(), answer["proof"], verifier)
        assert proven.index == 1
        assert hood.gateway.requests.log.entry(1) == token.encode()

        message = await next_message(near.client)
        assert (message.kind, message.jws) == ("request", token)
        verified = verify_routed_request(
            message,
            registry=hood.registry(),
            gateway_kid=hood.kid,
            last_checkpoint=None,
            verifier_key=verifier,
            now=hood.clock(),
            replay_store=MemoryReplayStore(),
        )
        assert verified.id == answer["id"]
        assert verified.agency.name == "Amsterdam-Centrum police"
        assert verified.log_index == 1
        await no_message(far.client)
        counts = hood.counts()
        assert counts["request_recipients"] == 1


def _cases(now: float) -> dict[str, tuple[dict, int, str]]:
    return {
        "13 h window": ({"window": _window(now, hours=13)}, 400, "window_too_long"),
        "700 m radius": (
            {"area": {"lat": CENTRE[0], "lon": CENTRE[1], "radius_m": 700.0}},
            400,
            "radius_too_large",
        ),
        "window in the future": (
            {"window": _window(now, hours=2, end_ago_h=-2)},
            400,
            "window_in_future",
        ),
        "start 31 days ago": (
            {"window": _window(now, hours=2, end_ago_h=31 * 24 - 2)},
            400,
            "window_too_old",
        ),
        "no case number": ({"case": None}, 400, "missing_field"),
        "circle outside the jurisdiction": (
            {"area": {"lat": CENTRE[0], "lon": CENTRE[1] + 0.2, "radius_m": 300.0}},
            400,
            "outside_jurisdiction",
        ),
        "bad request id": ({"jti": "short"}, 400, "bad_request_id"),
        "wrong audience": ({"aud": "A" * 43}, 400, "wrong_aud"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "13 h window",
        "700 m radius",
        "window in the future",
        "start 31 days ago",
        "no case number",
        "circle outside the jurisdiction",
        "bad request id",
        "wrong audience",
    ],
)
async def test_out_of_scope_requests_are_refused_with_nothing_logged_or_routed(tmp_path, case):
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        changes, status, reason = _cases(hood.clock())[case]
        before = hood.log_size
        # sign_message refuses to sign a request without its case number: sign it unchecked.
        sign = hood.sign_unchecked if case == "no case number" else hood.sign
        got, answer = await hood.post_request(sign(**changes))
        assert (got, answer["reason"]) == (status, reason), answer
        if case == "no case number":
            assert answer["field"] == "case"
        assert hood.log_size == before
        counts = hood.counts()
        assert counts["requests"] == counts["request_recipients"] == 0
        await no_message(hub.client, wait=0.3)


async def test_unknown_removed_agency_expired_and_rolled_back_registry(tmp_path):
    from federation.keys import generate_signing_key
    from tests.federation.agency_fixtures import sign_request

    async with neighbourhood(tmp_path) as hood:
        await hood.join(*CENTRE)
        stranger = generate_signing_key()
        status, answer = await hood.post_request(sign_request(stranger, hood.kid, hood.clock()))
        assert (status, answer["reason"]) == (403, "unknown_agency")

        # Version 2 removes the agency; version 1 posted again is a rollback.
        version1 = hood.gateway.requests.registry.token
        remove_agency(hood.authority_dir, hood.agency_key.kid)
        await hood.publish()
        status, answer = await hood.post_request(hood.sign())
        assert (status, answer["reason"]) == (403, "agency_removed")
        import federation.authority.tool as ra

        status, answer = await _post_registry(hood, version1, ra.authority_jwk(hood.authority_dir))
        assert (status, answer["reason"]) == (409, "registry_rollback")
        assert hood.gateway.requests.registry.version == 2

        # A registry that has expired: every request is refused until a new one comes.
        hood.clock.advance(91 * DAY)
        status, answer = await hood.post_request(hood.sign())
        assert (status, answer["reason"]) == (409, "registry_expired")
        assert hood.log_size == 2  # the two registry versions, nothing else
        assert hood.counts()["requests"] == 0


async def _post_registry(hood, token, jwk):
    from tests.federation.agency_fixtures import post_body

    body = json.dumps({"registry": token, "jwk": jwk}).encode()
    return await post_body(hood.url + "/v1/registry", body, "application/json")


async def test_replay_rate_limit_and_taken_ids(tmp_path):
    async with neighbourhood(tmp_path, agency_requests_per_hour=2) as hood:
        token = hood.sign()
        assert (await hood.post_request(token))[0] == 201
        status, answer = await hood.post_request(token)
        assert (status, answer["reason"]) == (409, "replay")
        assert (await hood.post_request(hood.sign()))[0] == 201
        status, answer = await hood.post_request(hood.sign())
        assert (status, answer["reason"]) == (429, "rate_limited")
        assert hood.log_size == 3


async def _agency_client(hood) -> AgencyClient:
    return AgencyClient(hood.url, signing_key=hood.agency_key)


async def _hub_request(hood, hub):
    token = hood.sign()
    status, answer = await hood.post_request(token)
    assert status == 201, answer
    message = await next_message(hub.client)
    return answer["id"], message


async def test_answers_clips_status_and_pickup(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        approver = await hood.join(*CENTRE)
        denier = await hood.join(*east(*CENTRE, 120))
        outsider = await hood.join(*east(*CENTRE, 6_000))
        request_id, _ = await _hub_request(hood, approver)
        await next_message(denier.client)
        recipient = hood.card["recipient"]
        footage = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 400
        sealed = seal_clip(footage, recipient)
        digest = sha256_hex(sealed)
        now = hood.clock()
        clip = {
            "sha256": digest,
            "size": len(sealed),
            "start": int(now) - 7200,
            "end": int(now) - 7100,
            "camera": "front door",
        }

        # An answer listing a clip that was not uploaded is refused, nothing logged.
        approve = dict(
            gateway_kid=hood.kid,
            request_id=request_id,
            decision="approved",
            clips=[clip],
            agency_kid=hood.card["kid"],
            recipient=recipient,
            now=now,
        )
        early = sign_answer(approver.key, **approve)
        size = hood.log_size
        with pytest.raises(GatewayRejected) as caught:
            await approver.client.post_answer(request_id, early.token)
        assert caught.value.reason == "clip_missing"
        assert hood.log_size == size

        # A hub the request was not routed to can neither upload nor answer.
        with pytest.raises(GatewayRejected) as caught:
            await outsider.client.upload_clip(request_id, digest, sealed)
        assert caught.value.reason == "not_recipient"

        await approver.client.upload_clip(request_id, digest, sealed)
        await approver.client.upload_clip(request_id, digest, sealed)  # idempotent
        answer = sign_answer(approver.key, **approve)
        # Without its custody file the approval is refused too.
        with pytest.raises(GatewayRejected) as caught:
            await approver.client.post_answer(request_id, answer.token)
        assert caught.value.reason == "clip_missing"
        await approver.client.upload_clip(request_id, answer.custody_sha256, answer.custody)
        receipt = await approver.client.post_answer(request_id, answer.token)
        again = await approver.client.post_answer(request_id, answer.token)
        assert again.log_index == receipt.log_index == size
        verifier = checkpoint_verifier(hood.gateway.key.public_jwk)
        assert verify_tlog_proof(answer.token.encode(), receipt.proof, verifier).index == size
        denial = sign_answer(
            denier.key, gateway_kid=hood.kid, request_id=request_id, decision="denied", now=now
        )
        await denier.client.post_answer(request_id, denial.token)
        second = sign_answer(
            denier.key, gateway_kid=hood.kid, request_id=request_id, decision="denied", now=now
        )
        with pytest.raises(GatewayRejected) as caught:
            await denier.client.post_answer(request_id, second.token)
        assert caught.value.reason == "already_answered"

        async with await _agency_client(hood) as agency:
            status = await agency.status(request_id)
            assert (status.asked, status.approved, status.denied, status.pending) == (2, 1, 1, 0)
            listing = await agency.answers(request_id)
            # The one-time key, never the member: only the sealed custody file names the hub.
            assert [a.key for a in listing.answers] == [answer.key_kid]
            assert answer.key_kid != approver.key.kid
            assert approver.key.kid not in json.dumps(listing.model_dump())
            files = listing.answers[0].files
            assert [(f.sha256, f.size, f.available) for f in files] == [
                (digest, len(sealed), True),
                (answer.custody_sha256, len(answer.custody), True),
            ]

            # The sealed clip on the gateway's disk: no key the gateway holds opens it.
            stored = hood.data_dir / "clips" / request_id / f"{digest}.age"
            assert stored.read_bytes() == sealed
            _no_gateway_key_opens(hood.data_dir, stored.read_bytes())
            identity = hood.agency_dir / AGENCY_IDENTITY_FILE
            if shutil.which("age"):
                opened = subprocess.run(
                    ["age", "-d", "-i", str(identity), str(stored)],
                    capture_output=True,
                    check=True,
                ).stdout
                assert opened == footage

            dest = tmp_path / "clip.age"
            await agency.download_clip(request_id, digest, dest, len(sealed))
            assert open_clip(dest.read_bytes(), identity.read_text().splitlines()[-1]) == footage
            await agency.confirm_pickup(request_id, digest)
            assert not stored.exists()
            with pytest.raises(GatewayRejected) as caught:
                await agency.confirm_pickup(request_id, digest)
            assert caught.value.reason == "clip_gone"


def _raw_answer(signer, **claims) -> str:
    """Sign answer claims as given, with no checks (bad answers on purpose)."""
    from federation.jws import ALG, sign_compact

    payload = json.dumps({"iss": signer.kid, "iat": int(time.time()), "jti": new_jti(),
                          "exp": int(time.time()) + 3600, **claims}).encode()
    return sign_compact(signer, {"alg": ALG, "typ": TYP_ANSWER, "kid": signer.kid}, payload)


async def test_bad_public_answers_are_refused_and_nothing_is_kept(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        request_id, _ = await _hub_request(hood, hub)
        one_time = answer_key(hub.key, gateway_kid=hood.kid, request_id=request_id)
        other = generate_signing_key()
        base = {"aud": hood.kid, "request": request_id, "decision": "denied"}
        cases = [
            # The hub's own key would name the household in the public log for good.
            (_raw_answer(hub.key, **base, key=hub.key.public_jwk), "long_term_key",
             "the answer is signed by a member's own key; sign it with the one-time key for "
             "this request (federation/answers.py)"),
            (_raw_answer(one_time, **base), "missing_key",
             "key: an answer carries the public JWK of its one-time key"),
            (_raw_answer(one_time, **base, key=other.public_jwk), "unknown_kid", None),
            (_raw_answer(one_time, **{**base, "decision": "approved"}, key=one_time.public_jwk,
                         clips=[{"sha256": "ab" * 32, "camera": "porch"}],
                         custody={"sha256": "cd" * 32}),
             "unknown_field", "clips[0].camera: unknown field"),
        ]
        size = hood.log_size
        for token, reason, message in cases:
            with pytest.raises(GatewayRejected) as caught:
                await hub.client.post_answer(request_id, token)
            assert (caught.value.status, caught.value.reason) == (400, reason)
            if message is not None:
                assert str(caught.value) == f"gateway refused: {message}"
        assert hood.log_size == size
        assert hood.counts()["answers"] == 0


def _answer_rows(hood) -> list[tuple[str, str]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(hood.data_dir / DB_FILE)) as db:
        return db.execute("SELECT hub, token FROM answers ORDER BY log_index").fetchall()


async def test_the_gateway_keeps_who_answered_privately_and_only_while_the_request_lives(
    tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        late = await hood.join(*east(*CENTRE, 50))
        request_id, _ = await _hub_request(hood, hub)
        sealed = seal_clip(b"frames" * 100, hood.card["recipient"])
        clip = {"sha256": sha256_hex(sealed), "size": len(sealed), "camera": "porch",
                "start": int(hood.clock()) - 7200, "end": int(hood.clock()) - 7100}
        logged = len(caplog.records)
        signed, _ = await answer(hood, hub, request_id, "approved", [(clip, sealed)])
        one_time = answer_key(hub.key, gateway_kid=hood.kid, request_id=request_id)
        assert signed.key_kid == one_time.kid != hub.key.kid
        # The gateway's log lines about the uploads and the answer never name the member.
        lines = [record.getMessage() for record in caplog.records[logged:]]
        assert any(one_time.kid in line for line in lines)
        assert not any(hub.key.kid in line or hub.membership.hop_kid in line for line in lines)

        # Public: the log and its JSON index name only the one-time key.
        status, page = await get_json(f"{hood.url}/v1/log/entries?start=0&end={hood.log_size}")
        public = json.dumps(page)
        assert hub.key.kid not in public and hub.key.public_jwk["x"] not in public
        assert page["entries"][-1]["jwk"] == one_time.public_jwk
        # Private: the gateway still knows the member, for already_answered.
        assert _answer_rows(hood) == [(hub.key.kid, signed.token)]

        # Once the request has closed, no answer is taken and the member is forgotten.
        hood.clock.advance(8 * 86400)
        late_denial = sign_answer(
            late.key, gateway_kid=hood.kid, request_id=request_id, decision="denied",
            now=hood.clock(),
        )
        size = hood.log_size
        with pytest.raises(GatewayRejected) as caught:
            await late.client.post_answer(request_id, late_denial.token)
        assert (caught.value.status, caught.value.reason) == (409, "request_closed")
        assert hood.log_size == size
        assert _answer_rows(hood) == [(hub.key.kid, signed.token)]
        await hood.gateway.requests.purge(hood.clock())
        assert _answer_rows(hood) == [(one_time.kid, signed.token)]
        assert "sealed file" in "".join(lines)
        async with AgencyClient(hood.url, signing_key=hood.agency_key, clock=hood.clock) as agency:
            status = await agency.status(request_id)
        assert (status.approved, status.denied) == (1, 0)


def _no_gateway_key_opens(data_dir: Path, sealed: bytes) -> None:
    """Try every file in the gateway's data directory as an age identity: none opens it."""
    from cryptography.hazmat.primitives import serialization

    tried = 0
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        candidates = [line.strip() for line in data.decode(errors="ignore").splitlines()]
        # The gateway's Ed25519 key too, turned into every X25519 form it could take.
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            candidates.append(_age_identity(raw))
            candidates.append(_age_identity(hashlib.sha512(raw).digest()[:32]))
        for text in candidates:
            if not text.startswith("AGE-SECRET-KEY-"):
                continue
            tried += 1
            with pytest.raises(pyrage.DecryptError):
                pyrage.decrypt(sealed, [x25519.Identity.from_str(text)])
    assert tried >= 2


def _age_identity(raw: bytes) -> str:
    """Encode 32 bytes as an age X25519 identity (Bech32, HRP age-secret-key-)."""
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

    def polymod(values):
        gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
        chk = 1
        for value in values:
            top = chk >> 25
            chk = (chk & 0x1FFFFFF) << 5 ^ value
            for i in range(5):
                chk ^= gen[i] if ((top >> i) & 1) else 0
        return chk

    hrp = "age-secret-key-"
    data, acc, bits = [], 0, 0
    for byte in raw:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    checksum = polymod(expanded + data + [0] * 6) ^ 1
    data += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return (hrp + "1" + "".join(charset[d] for d in data)).upper()


async def test_clip_upload_checks(tmp_path):
    async with neighbourhood(tmp_path, max_clip_bytes=64 * 1024) as hood:
        hub = await hood.join(*CENTRE)
        request_id, _ = await _hub_request(hood, hub)
        url = f"{hood.url}/v1/requests/{request_id}/clips"
        sealed = seal_clip(b"frames" * 100, hood.card["recipient"])
        digest = sha256_hex(sealed)

        async def upload(name, body, *, sign_body=None):
            headers = sign_request(
                hub.key, "POST", f"{url}/{name}", sign_body or body, now=hood.clock()
            )
            headers["Content-Type"] = "application/octet-stream"
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{url}/{name}", data=body, headers=headers) as resp:
                    return resp.status, await resp.json()

        assert await upload("XYZ", sealed) == (
            400,
            {"error": _any, "reason": "bad_sha256", "field": "sha256"},
        )
        status, answer = await upload(sha256_hex(b"other"), sealed)
        assert (status, answer["reason"]) == (401, "digest_mismatch")
        plain = b"not sealed at all" * 10
        status, answer = await upload(sha256_hex(plain), plain)
        assert (status, answer["reason"]) == (400, "not_age")
        big = seal_clip(bytes(70 * 1024), hood.card["recipient"])
        status, answer = await upload(sha256_hex(big), big)
        assert (status, answer["reason"]) == (413, "too_large")
        status, answer = await upload(digest, sealed[:-1] + b"\x00", sign_body=sealed)
        assert (status, answer["reason"]) == (401, "digest_mismatch")
        assert hood.counts()["clips"] == 0
        assert not any((hood.data_dir / "clips").rglob("*.age*"))
        status, answer = await upload(digest, sealed)
        assert status == 201 and answer["size"] == len(sealed)


class _Anything:
    def __eq__(self, other):
        return True


_any = _Anything()


async def test_expired_clips_are_deleted(tmp_path):
    async with neighbourhood(tmp_path, clip_ttl_s=3600) as hood:
        hub = await hood.join(*CENTRE)
        request_id, _ = await _hub_request(hood, hub)
        sealed = seal_clip(b"x" * 1000, hood.card["recipient"])
        await hub.client.upload_clip(request_id, sha256_hex(sealed), sealed)
        assert await hood.gateway.requests.purge(hood.clock()) == 0
        hood.clock.advance(3601)
        assert await hood.gateway.requests.purge(hood.clock()) == 1
        assert hood.counts()["clips"] == 0
        assert not any((hood.data_dir / "clips").rglob("*.age"))


async def test_other_agency_cannot_see_a_request(tmp_path):
    from federation.agency.tool import init_agency, load_agency
    from federation.authority.tool import add_agency
    from tests.federation.agency_fixtures import JURISDICTION

    async with neighbourhood(tmp_path) as hood:
        other_dir = tmp_path / "other"
        card = init_agency(other_dir, "Another police")
        add_agency(
            hood.authority_dir,
            card,
            jurisdiction=JURISDICTION,
            since="2024-01-01",
            contact="x@example.org",
        )
        await hood.publish()
        await hood.join(*CENTRE)
        status, answer = await hood.post_request(hood.sign())
        assert status == 201
        async with AgencyClient(hood.url, signing_key=load_agency(other_dir).key) as other:
            with pytest.raises(GatewayRejected) as caught:
                await other.status(answer["id"])
            assert caught.value.reason == "not_your_request"
            with pytest.raises(GatewayRejected) as caught:
                await other.status(new_jti())
            assert caught.value.reason == "unknown_request"


async def test_racing_uploads_of_one_clip_keep_it(tmp_path):
    """Two uploads of the same clip at once (a retry racing its original): both succeed, no 5xx,
    and the stored clip survives."""
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        request_id, _ = await _hub_request(hood, hub)
        sealed = seal_clip(b"\x00" * 300_000, hood.card["recipient"])
        digest = sha256_hex(sealed)
        await asyncio.gather(*(hub.client.upload_clip(request_id, digest, sealed)
                               for _ in range(4)))
        assert hood.counts()["clips"] == 1
        stored = list((hood.data_dir / "clips").rglob("*.age"))
        assert [p.read_bytes() for p in stored] == [sealed]
