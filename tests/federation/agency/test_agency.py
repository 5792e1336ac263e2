"""The agency tool end to end, and what hubs do with routed requests, even from a bad gateway."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.agency.tool import (
    AGENCY_IDENTITY_FILE,
    AGENCY_KEY_FILE,
    ClipCorrupt,
    agency_fetch,
    agency_request,
    agency_status,
    init_agency,
    load_agency,
)
from federation.answers import sign_answer
from federation.authority.tool import (
    add_agency,
    authority_jwk,
    authority_kid,
    init_authority,
    sign_registry,
)
from federation.keys import generate_signing_key
from federation.member.client import GatewayClient
from federation.member.requests import (
    ProofWithheld,
    RequestRejected,
    parse_routed_request,
    verify_routed_request,
)
from federation.neighbourhood_log import checkpoint_verifier
from federation.registry import verify_registry
from federation.replay import MemoryReplayStore
from federation.sealed import seal_clip, sha256_hex
from federation.wire import StreamMessage
from tests.federation.agency_fixtures import (
    CENTRE,
    JURISDICTION,
    answer,
    east,
    get_json,
    neighbourhood,
    next_message,
    no_message,
    sign_request,
    sign_request_unchecked,
)
from tests.federation.custody_check import check_evidence
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)
from tests.federation.malicious_gateway import MaliciousGateway, altered

FOOTAGE = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 300


def _window() -> tuple[datetime, datetime]:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return end - timedelta(hours=2), end


async def test_agency_request_status_and_fetch_end_to_end(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        approver = await hood.join(*east(*CENTRE, 80))
        denier = await hood.join(*east(*CENTRE, -150))
        far = await hood.join(*east(*CENTRE, 5_000))
        start, end = _window()
        request_id = await agency_request(
            hood.agency_dir,
            hood.url,
            case="2024-000123",
            reason="Burglary on the Damrak",
            start=start,
            end=end,
            lat=CENTRE[0],
            lon=CENTRE[1],
            radius_m=300,
        )
        assert (
            json.loads((hood.agency_dir / "requests" / f"{request_id}.json").read_text())[
                "log_index"
            ]
            == 1
        )

        registry = hood.registry()
        verifier = checkpoint_verifier(hood.gateway.key.public_jwk)
        last = None
        for hub in (approver, denier):
            message = await next_message(hub.client)
            verified = verify_routed_request(
                message,
                registry=registry,
                gateway_kid=hood.kid,
                last_checkpoint=last,
                verifier_key=verifier,
                now=time.time(),
                replay_store=MemoryReplayStore(),
                consistency_proof=await hub.client.consistency_for(message, last),
            )
            last = verified.store_checkpoint
        await no_message(far.client)

        sealed = seal_clip(FOOTAGE, verified.agency.recipient)
        clip = {
            "sha256": sha256_hex(sealed),
            "size": len(sealed),
            "start": int(start.timestamp()),
            "end": int(start.timestamp()) + 60,
            "camera": "front door",
        }
        approval, _ = await answer(hood, approver, request_id, "approved", [(clip, sealed)])
        await answer(hood, denier, request_id, "denied")

        status = await agency_status(hood.agency_dir, hood.url, request_id)
        assert {k: status[k] for k in ("asked", "approved", "denied", "pending")} == {
            "asked": 2,
            "approved": 1,
            "denied": 1,
            "pending": 0,
        }

        out = tmp_path / "evidence"
        manifest = await agency_fetch(hood.agency_dir, hood.url, request_id, out)
        (entry,) = manifest["clips"]
        assert entry["status"] == "fetched"
        assert (out / entry["file"]).read_bytes() == FOOTAGE
        assert entry["hub_kid"] == approver.key.kid and entry["camera"] == "front door"
        assert entry["sealed_sha256"] == clip["sha256"]
        (checked,) = manifest["answers"]
        assert checked["log_index"] == 2 and checked["hub_kid"] == approver.key.kid
        assert checked["key"] == approval.key_kid != approver.key.kid
        assert checked["custody"]["statement"] == approval.statement
        # Offline, with the age CLI and jwcrypto only: the chain of custody holds.
        identity = hood.agency_dir / AGENCY_IDENTITY_FILE
        assert check_evidence(out, identity) == [approver.key.kid]
        # The checker is not blind: a custody file swapped for another hub's claim fails it.
        forged = tmp_path / "forged"
        shutil.copytree(out, forged)
        other = sign_answer(
            denier.key, gateway_kid=hood.kid, request_id=request_id, decision="approved",
            clips=[clip], agency_kid=hood.card["kid"], recipient=hood.card["recipient"],
            now=time.time(),
        )
        (forged / "sealed" / f"{approval.custody_sha256}.age").write_bytes(other.custody)
        with pytest.raises(AssertionError, match="custody file altered"):
            check_evidence(forged, identity)
        assert json.loads((out / "manifest.json").read_text()) == manifest
        # Picked up: the gateway holds no ciphertext any more.
        assert not any((hood.data_dir / "clips").rglob("*.age"))
        # Fetching again works from the local copies.
        again = await agency_fetch(hood.agency_dir, hood.url, request_id, out)
        assert again["clips"][0]["sha256"] == entry["sha256"]

        status, page = await get_json(hood.url + "/registry")
        assert status == 200 and "Amsterdam-Centrum police" in page
        assert "<td class=n>1</td><td class=n>1</td><td class=n>1</td>" in page
        status, summary = await get_json(hood.url + "/v1/registry/summary")
        (agency,) = summary["agencies"]
        assert (agency["requests"], agency["approvals"], agency["denials"]) == (1, 1, 1)


async def test_fetched_evidence_is_private_and_never_named_like_an_option(tmp_path):
    """Decrypted footage is written 0600 in 0700 folders; names start with a letter or digit."""
    key = generate_signing_key()
    while not key.kid.startswith("-"):  # one kid in 64 does; the old names then began with '-'
        key = generate_signing_key()
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*east(*CENTRE, 80), key=key)
        start, end = _window()
        request_id = await agency_request(
            hood.agency_dir, hood.url, case="2024-000124", reason="Bike theft", start=start,
            end=end, lat=CENTRE[0], lon=CENTRE[1], radius_m=300,
        )
        message = await next_message(hub.client)
        verified = verify_routed_request(
            message, registry=hood.registry(), gateway_kid=hood.kid, last_checkpoint=None,
            verifier_key=checkpoint_verifier(hood.gateway.key.public_jwk), now=time.time(),
            replay_store=MemoryReplayStore(),
            consistency_proof=await hub.client.consistency_for(message, None),
        )
        sealed = seal_clip(FOOTAGE, verified.agency.recipient)
        clip = {"sha256": sha256_hex(sealed), "size": len(sealed),
                "start": int(start.timestamp()), "end": int(start.timestamp()) + 60,
                "camera": "-rf front"}
        approval, _ = await answer(hood, hub, request_id, "approved", [(clip, sealed)])
        out = tmp_path / "evidence"
        manifest = await agency_fetch(hood.agency_dir, hood.url, request_id, out)
    (entry,) = manifest["clips"]
    stamp = datetime.fromtimestamp(clip["start"], UTC).strftime("%Y%m%dT%H%M%SZ")
    assert entry["file"] == f"{stamp}-rf_front-{key.kid[:8].strip('-_')}.mp4"
    assert (out / entry["file"]).read_bytes() == FOOTAGE
    files = [p for p in out.rglob("*") if p.is_file()]
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert sorted(p.relative_to(out).as_posix() for p in files) == sorted(
        [entry["file"], "manifest.json", f"sealed/{clip['sha256']}.age",
         f"sealed/{approval.custody_sha256}.age"])
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o600"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {"0o700"}
    assert all(p.name[0].isalnum() for p in files)


async def test_fetch_refuses_a_clip_altered_on_the_gateway(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        start, end = _window()
        request_id = await agency_request(
            hood.agency_dir,
            hood.url,
            case="7",
            reason="Theft",
            start=start,
            end=end,
            lat=CENTRE[0],
            lon=CENTRE[1],
            radius_m=200,
        )
        sealed = seal_clip(FOOTAGE, hood.card["recipient"])
        digest = sha256_hex(sealed)
        clip = {
            "sha256": digest,
            "size": len(sealed),
            "start": int(start.timestamp()),
            "end": int(start.timestamp()) + 30,
            "camera": "drive",
        }
        approval, _ = await answer(hood, hub, request_id, "approved", [(clip, sealed)])
        stored = hood.data_dir / "clips" / request_id / f"{digest}.age"
        stored.write_bytes(sealed[:-8] + b"tampered")
        out = tmp_path / "out"
        with pytest.raises(ClipCorrupt):
            await agency_fetch(hood.agency_dir, hood.url, request_id, out)
        assert not list(out.glob("*.mp4"))
        # Only the custody file (checked) was kept; the altered clip was not.
        assert [p.name for p in (out / "sealed").iterdir()] == [f"{approval.custody_sha256}.age"]


def test_agency_init_keys_and_card(tmp_path):
    card = init_agency(tmp_path / "a", "Springfield PD")
    for name in (AGENCY_KEY_FILE, AGENCY_IDENTITY_FILE):
        assert stat.S_IMODE(os.stat(tmp_path / "a" / name).st_mode) == 0o600
    assert set(card) == {"name", "kid", "jwk", "recipient"}
    assert json.loads((tmp_path / "a" / "agency.json").read_text()) == card
    agency = load_agency(tmp_path / "a")
    assert str(agency.identity.to_public()) == card["recipient"]
    if shutil.which("age"):
        sealed = subprocess.run(
            ["age", "-r", card["recipient"]], input=b"hello", capture_output=True, check=True
        ).stdout
        opened = subprocess.run(
            ["age", "-d", "-i", str(tmp_path / "a" / AGENCY_IDENTITY_FILE)],
            input=sealed,
            capture_output=True,
            check=True,
        ).stdout
        assert opened == b"hello"
    with pytest.raises(Exception, match="already holds an agency"):
        init_agency(tmp_path / "a", "Again")


# -- a malicious gateway ----------------------------------------------------------------------


class _Setup:
    """An authority, an agency and a hub pinned to a malicious gateway."""

    def __init__(self, root, evil: MaliciousGateway) -> None:
        init_authority(root / "authority", "Board")
        card = init_agency(root / "agency", "Police")
        add_agency(
            root / "authority",
            card,
            jurisdiction=JURISDICTION,
            since="2024-01-01",
            contact="desk@example.org",
        )
        token = sign_registry(root / "authority", audience=evil.kid)
        self.registry = verify_registry(
            token,
            authority_jwk=authority_jwk(root / "authority"),
            authority_kid=authority_kid(root / "authority"),
            audience=evil.kid,
            now=time.time(),
        )
        self.agency = load_agency(root / "agency").key
        self.evil = evil
        self.replay = MemoryReplayStore()
        self.last: str | None = None
        self.verifier = checkpoint_verifier(evil.key.public_jwk)

    def sign(self, **changes) -> str:
        return sign_request(self.agency, self.evil.kid, time.time(), **changes)

    async def receive(self, client: GatewayClient):
        message = await next_message(client, since=self.evil.seq - 1)
        proof = await client.consistency_for(message, self.last)
        verified = verify_routed_request(
            message,
            registry=self.registry,
            gateway_kid=self.evil.kid,
            last_checkpoint=self.last,
            verifier_key=self.verifier,
            now=time.time(),
            replay_store=self.replay,
            consistency_proof=proof,
        )
        self.last = verified.store_checkpoint
        return verified


async def _reason(setup: _Setup, client: GatewayClient) -> str:
    with pytest.raises(RequestRejected) as caught:
        await setup.receive(client)
    return caught.value.reason


async def test_a_malicious_gateway_is_caught_every_way(tmp_path):
    evil = MaliciousGateway(tmp_path / "evil")
    setup = _Setup(tmp_path, evil)
    async with evil.serve() as url:
        client = GatewayClient(url, generate_signing_key(), gateway_kid=evil.kid)
        async with client:
            # Honest first: the hub accepts it and remembers the checkpoint.
            honest = setup.sign()
            evil.log_and_push(honest)
            assert (await setup.receive(client)).log_index == 0

            # It alters a request (and even logs the altered bytes).
            changed = altered(setup.sign(), reason="Looking for everybody, all week")
            evil.log_and_push(changed)
            assert await _reason(setup, client) == "altered_request"

            # It replays a request the hub already received.
            evil.push(honest, evil.log.tlog_proof(0))
            assert await _reason(setup, client) == "replayed"

            # It leaves a request out of the log, sending another entry's proof.
            unlogged = setup.sign()
            other = evil.log.append(setup.sign().encode())
            evil.push(unlogged, evil.log.tlog_proof(other))
            assert await _reason(setup, client) == "not_in_log"

            # It withholds the proof, or the consistency proof.
            evil.push(setup.sign(), None)
            assert await _reason(setup, client) == "proof_withheld"
            fresh = setup.sign()
            index = evil.log.append(fresh.encode())
            evil.withhold_consistency = True
            evil.push(fresh, evil.log.tlog_proof(index))
            with pytest.raises(ProofWithheld):
                await setup.receive(client)
            evil.withhold_consistency = False

            # It forks: a log under the same key that rewrites what the hub saw.
            evil.log = evil.new_log("fork")
            evil.log.append(setup.sign().encode())
            for _ in range(4):
                evil.log.append(setup.sign().encode())
            evil.log_and_push(setup.sign())
            assert await _reason(setup, client) == "checkpoint_inconsistent"

            # Its checkpoint signed by some other key.
            forger = MaliciousGateway(tmp_path / "forger")
            token = setup.sign()
            index = forger.log.append(token.encode())
            evil.push(token, forger.log.tlog_proof(index))
            assert await _reason(setup, client) == "checkpoint_unverified"


def test_scope_and_registry_rejections_at_the_hub(tmp_path):
    evil = MaliciousGateway(tmp_path / "evil")
    setup = _Setup(tmp_path, evil)
    now = time.time()
    end = datetime.fromtimestamp(now, tz=UTC) - timedelta(hours=1)

    def message(token: str) -> StreamMessage:
        index = evil.log.append(token.encode())
        jti = json.loads(_claims(token))["jti"]
        return StreamMessage(1, "request", jti, token, None, evil.log.tlog_proof(index))

    def reason(token: str, registry=None, at: float = now) -> str:
        with pytest.raises(RequestRejected) as caught:
            verify_routed_request(
                message(token),
                registry=registry or setup.registry,
                gateway_kid=evil.kid,
                last_checkpoint=None,
                verifier_key=setup.verifier,
                now=at,
                replay_store=MemoryReplayStore(),
            )
        return caught.value.reason

    fmt = "%Y-%m-%dT%H:%M:%SZ"
    assert (
        reason(
            setup.sign(
                window={
                    "start": (end - timedelta(hours=13)).strftime(fmt),
                    "end": end.strftime(fmt),
                }
            )
        )
        == "window_too_long"
    )
    assert reason(setup.sign(area={"lat": CENTRE[0], "lon": CENTRE[1], "radius_m": 700.0})) == (
        "radius_too_large"
    )
    unchecked = sign_request_unchecked(setup.agency, evil.kid, time.time(), case=None)
    assert reason(unchecked) == "missing_field"
    assert reason(setup.sign(area={"lat": 52.0, "lon": 5.5, "radius_m": 100.0})) == (
        "outside_jurisdiction"
    )
    stranger = sign_request(generate_signing_key(), evil.kid, now)
    assert reason(stranger) == "unknown_agency"
    assert reason(setup.sign(), at=now + 91 * 86400) == "registry_expired"


def _claims(token: str) -> bytes:
    import base64

    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_TEXT = st.text(st.characters(codec="utf-8"), max_size=300)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["request", "alert", "x"]), jws=_TEXT, proof=st.none() | _TEXT)
def test_fuzzed_routed_requests_fail_only_with_reasons(tmp_path_factory, kind, jws, proof):
    root = tmp_path_factory.mktemp("fuzz")
    evil = MaliciousGateway(root / "evil")
    registry_setup = _FUZZ_SETUP.get("setup")
    if registry_setup is None:
        registry_setup = _FUZZ_SETUP["setup"] = _Setup(root, evil)
    message = StreamMessage(1, kind, "abc", jws, None, proof)
    with pytest.raises(RequestRejected):
        verify_routed_request(
            message,
            registry=registry_setup.registry,
            gateway_kid=registry_setup.evil.kid,
            last_checkpoint=None,
            verifier_key=registry_setup.verifier,
            now=time.time(),
            replay_store=None,
        )
    if kind == "request" and proof is not None:
        try:
            parse_routed_request(message)
        except RequestRejected as err:
            assert err.reason == "proof_malformed"


_FUZZ_SETUP: dict = {}
