"""Answers in the public log name no household: a grid of hubs, overlapping requests, an outsider.

Nine hubs in a 3 x 3 grid answer 20 overlapping requests: each approves, denies or stays silent
for every request whose circle holds it. An outsider then reads the public log the way anyone
can, from the C2SP tlog-tiles the gateway serves (decoded here from the spec, not with our
code), and finds no key, kid or other value shared by two answers beyond what every answer or
every answer to one request carries; no hub's long-term key, hop key, cell or camera anywhere;
and the public counts as before. Each hub can still find and prove its own answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections import defaultdict
from typing import Any

import aiohttp

from federation.answers import answer_key
from federation.cells import distance_m
from federation.neighbourhood_log import checkpoint_verifier
from federation.sealed import seal_clip, sha256_hex
from federation.tlog.proof import verify_tlog_proof
from tests.federation.agency_fixtures import CENTRE, answer, east, get_json, neighbourhood
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)

FOOTAGE = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40
SPACING_M = 150.0
# Values every answer carries alike (the key type, the neighbourhood), or every answer to one
# request, or the time it was posted (public anyway: the log's order): they link no household.
SHARED_BY_DESIGN = {"alg", "typ", "aud", "decision", "request", "iat", "exp", "key.kty", "key.crv"}


def _north(lat: float, lon: float, metres: float) -> tuple[float, float]:
    return lat + metres / 111_320, lon


def _grid() -> list[tuple[float, float]]:
    return [
        east(*_north(*CENTRE, SPACING_M * row), SPACING_M * col)
        for row in (-1, 0, 1)
        for col in (-1, 0, 1)
    ]


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- the outsider: C2SP tlog-tiles and RFC 9162, from the specs --------------------------------


def _tile_index(n: int) -> str:
    digits = f"{n:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def _mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


async def _read_log_as_outsider(url: str) -> list[bytes]:
    """Fetch /checkpoint and every entry bundle; check the entries rebuild the root."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/checkpoint") as resp:
            checkpoint = await resp.text()
        _, size_line, root_line = checkpoint.split("\n\n")[0].splitlines()
        size = int(size_line)
        entries: list[bytes] = []
        for n in range((size + 255) // 256):
            width = min(256, size - n * 256)
            path = f"tile/entries/{_tile_index(n)}" + (f".p/{width}" if width < 256 else "")
            async with session.get(f"{url}/{path}") as resp:
                assert resp.status == 200, path
                data = await resp.read()
            pos = 0
            while pos < len(data):
                length = int.from_bytes(data[pos : pos + 2], "big")
                entries.append(data[pos + 2 : pos + 2 + length])
                pos += 2 + length
    assert len(entries) == size > 0, checkpoint
    leaves = [hashlib.sha256(b"\x00" + entry).digest() for entry in entries]
    assert _mth(leaves) == base64.b64decode(root_line), "the tiles do not rebuild the checkpoint"
    return entries


def _values(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Return every leaf value of a JSON document with its path (list positions dropped)."""
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _values(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [pair for value in node for pair in _values(value, path)]
    return [(path.lstrip("."), json.dumps(node))]


# -- the test ----------------------------------------------------------------------------------


async def test_answers_in_the_public_log_name_no_household(tmp_path):
    rng = random.Random(11)
    async with neighbourhood(tmp_path, agency_requests_per_hour=100) as hood:
        hubs = [await hood.join(lat, lon) for lat, lon in _grid()]
        requests: list[tuple[str, tuple[float, float, float]]] = []
        for _ in range(20):
            lat, lon = east(*_north(*CENTRE, rng.uniform(-200, 200)), rng.uniform(-200, 200))
            radius = rng.uniform(150, 400)
            token = hood.sign(area={"lat": lat, "lon": lon, "radius_m": radius})
            status, accepted = await hood.post_request(token)
            assert status == 201, accepted
            requests.append((accepted["id"], (lat, lon, radius)))

        truth: dict[str, tuple[int, str]] = {}  # one-time kid -> (hub, request)
        uploaded: dict[str, list[dict[str, Any]]] = {}
        receipts = []
        decided: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for j, (request_id, (lat, lon, radius)) in enumerate(requests):
            for i, hub in enumerate(hubs):
                if distance_m(*hub.location, lat, lon) > radius:
                    continue  # outside the circle: the hub drops it
                choice = ("approved", "denied", "silent")[(i + j) % 3]
                decided[i][choice] += 1
                if choice == "silent":
                    continue
                clips = []
                if choice == "approved":
                    for camera in ("front door",):
                        sealed = seal_clip(FOOTAGE, hood.card["recipient"])
                        clips.append(({"sha256": sha256_hex(sealed), "size": len(sealed),
                                       "start": int(hood.clock()) - 7200,
                                       "end": int(hood.clock()) - 7140,
                                       "camera": camera}, sealed))
                signed, receipt = await answer(hood, hub, request_id, choice, clips)
                truth[signed.key_kid] = (i, request_id)
                uploaded[signed.key_kid] = [descriptor for descriptor, _ in clips]
                receipts.append((hub, request_id, signed, receipt))
        # Every hub answered several requests both ways: there was something to link.
        assert all(d["approved"] >= 2 and d["denied"] >= 2 for d in decided.values()), decided
        assert sum(d["silent"] for d in decided.values()) >= 10

        entries = await _read_log_as_outsider(hood.url)
        # The public counts are the same as with named answers: every answer is counted.
        status, summary = await get_json(hood.url + "/v1/registry/summary")
        (agency,) = summary["agencies"]
        assert (agency["requests"], agency["approvals"], agency["denials"]) == (
            20,
            sum(d["approved"] for d in decided.values()),
            sum(d["denied"] for d in decided.values()),
        )

    answers = []
    for entry in entries:
        header_b64, payload_b64, _ = entry.decode("ascii").split(".")
        header = json.loads(_b64url(header_b64))
        if header["typ"] == "porchlight-answer+jws":
            answers.append((header, json.loads(_b64url(payload_b64)), entry))
    assert len(answers) == len(receipts) >= 60

    owners: dict[str, set[int]] = defaultdict(set)
    for position, (header, claims, _) in enumerate(answers):
        assert set(header) == {"alg", "typ", "kid"}
        assert set(claims) <= {"iss", "aud", "iat", "exp", "jti", "request", "decision", "key",
                               "clips", "custody"}
        assert set(claims["key"]) == {"kty", "crv", "x"}
        for path, value in _values({**header, **claims}):
            if path not in SHARED_BY_DESIGN:
                owners[f"{path}={value}"].add(position)
    shared = {value: positions for value, positions in owners.items() if len(positions) > 1}
    assert not shared, f"values shared by several answers: {sorted(shared)[:5]}"

    # Every value an answer has of its own is accounted for: the key only its hub can derive,
    # a random jti, or the digest of a file age sealed with a fresh ephemeral key.
    sent = {signed.key_kid: (hub, request_id, signed) for hub, request_id, signed, _ in receipts}
    for header, claims, _ in answers:
        hub, request_id, signed = sent[header["kid"]]
        derived = answer_key(hub.key, gateway_kid=hood.kid, request_id=request_id)
        own = {path for path, _ in _values({**header, **claims})} - SHARED_BY_DESIGN
        assert own <= {"kid", "iss", "key.x", "jti", "clips.sha256", "custody.sha256"}
        assert header["kid"] == claims["iss"] == derived.kid
        assert claims["key"]["x"] == derived.public_jwk["x"]
        assert len(claims["jti"]) == 24  # secrets.token_urlsafe(18)
        if claims["decision"] == "approved":
            assert claims["custody"]["sha256"] == signed.custody_sha256
            assert [c["sha256"] for c in claims["clips"]] == [
                clip["sha256"] for clip in uploaded[signed.key_kid]
            ]

    # The kids alone, and the truth: one key per hub and request, never the hub's own.
    kids = [header["kid"] for header, _, _ in answers]
    assert len(set(kids)) == len(kids) and set(kids) == set(truth)
    log_bytes = b"\n".join(entry for _, _, entry in answers)
    for hub in hubs:
        for secret_free in (hub.key.kid, hub.key.public_jwk["x"], hub.membership.hop_kid,
                            hub.membership.cell):
            assert secret_free.encode() not in log_bytes
    decoded = json.dumps([[header, claims] for header, claims, _ in answers])
    assert "front door" not in decoded
    assert all(hub.key.kid not in decoded for hub in hubs)

    # Each hub finds and proves its own answers; it derives keys no outsider can.
    verifier = checkpoint_verifier(hood.gateway.key.public_jwk)
    for hub, request_id, signed, receipt in receipts:
        derived = answer_key(hub.key, gateway_kid=hood.kid, request_id=request_id)
        assert derived.kid == signed.key_kid
        proven = verify_tlog_proof(signed.token.encode(), receipt.proof, verifier)
        assert entries[proven.index] == signed.token.encode()
