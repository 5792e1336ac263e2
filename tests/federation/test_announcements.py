"""Agency announcements through a real gateway: intake, area routing, the hub's verification.

The gateway runs in the test's event loop on 127.0.0.1 (agency_fixtures.neighbourhood), with
a registry authority, one listed agency (10 km around the Dam) and member hubs whose streams
are real WebSockets. Every refusal is checked for its exact status and reason, and that
nothing was stored, counted or relayed.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.agency.tool import AgencyError, agency_announce
from federation.announcements import (
    AnnouncementAltered,
    AnnouncementInvalid,
    AnnouncementMalformed,
    AnnouncementOutsideJurisdiction,
    AnnouncementRegistryExpired,
    AnnouncementRejected,
    AnnouncementReplayed,
    AnnouncementUnknownAgency,
    announcement_id,
    sign_announcement,
    verify_announcement,
)
from federation.authority.tool import remove_agency
from federation.errors import MalformedMessage, SchemaError
from federation.keys import SigningKey, generate_signing_key
from federation.member.client import verify_relayed
from federation.replay import MemoryReplayStore
from federation.schemas import TYP_ANNOUNCEMENT
from federation.wire import AnnouncementAccepted, StreamMessage, parse_answer, parse_frame
from tests.federation.agency_fixtures import (
    CENTRE,
    east,
    get_json,
    neighbourhood,
    next_message,
    no_message,
    post_body,
)
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)

DAY = 86400
TEXT = "Road closed on the Damrak until 18:00 after a gas leak; please avoid the area."
NOT_STORED = ("announcements", "announcement_deliveries", "announcement_tallies", "replay")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_announcement(
    key: SigningKey, claims: dict[str, Any], *, header: dict[str, Any] | None = None
) -> str:
    """Sign claims by hand (no checks), so a test can break any rule."""
    head = header or {"alg": "Ed25519", "typ": TYP_ANNOUNCEMENT, "kid": key.kid}
    signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(key.private.sign(signing_input.encode()))}"


def claims_for(hood, key: SigningKey, **changes: Any) -> dict[str, Any]:
    """Return valid announcement claims from key to the gateway, then apply changes."""
    now = int(hood.clock())
    claims: dict[str, Any] = {
        "iss": key.kid,
        "aud": hood.kid,
        "iat": now,
        "exp": now + DAY,
        "jti": secrets.token_urlsafe(12),
        "text": TEXT,
        "category": "safety",
        "area": {"lat": CENTRE[0], "lon": CENTRE[1], "radius_m": 300.0},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


async def post_announcement(hood, token: str) -> tuple[int, dict[str, Any]]:
    """POST a token to /v1/announcements as an agency would."""
    return await post_body(hood.url + "/v1/announcements", token.encode(), "application/jose")


def message_for(token: str, *, seq: int = 1, kind: str = "announcement") -> StreamMessage:
    """Return the stream message a gateway would push for an announcement."""
    return StreamMessage(seq=seq, kind=kind, id=announcement_id(token), jws=token, jwk=None)


async def test_announcement_reaches_hubs_in_its_area_and_verifies_under_the_pinned_registry(
    tmp_path,
):
    async with neighbourhood(tmp_path) as hood:
        near = await hood.join(*east(*CENTRE, 100))
        far = await hood.join(*east(*CENTRE, 6_000))  # inside the jurisdiction, not the area
        local_id = await agency_announce(
            hood.agency_dir,
            hood.url,
            text=TEXT,
            category="safety",
            lat=CENTRE[0],
            lon=CENTRE[1],
            radius_m=300,
        )
        everyone_id = await agency_announce(
            hood.agency_dir,
            hood.url,
            text="Open day at the station on Saturday",
            category="neighbourly",
        )

        registry = hood.registry()
        replay = MemoryReplayStore()
        first = await next_message(near.client)
        assert (first.seq, first.kind, first.id, first.jwk) == (1, "announcement", local_id, None)
        verified = verify_announcement(
            first, registry=registry, gateway_kid=hood.kid, now=hood.clock(), replay_store=replay
        )
        assert verified.claims["text"] == TEXT
        assert registry.agency(verified.kid).name == "Amsterdam-Centrum police"
        second = await next_message(near.client, since=1)
        assert (second.seq, second.id) == (2, everyone_id)
        assert (
            "area"
            not in verify_announcement(
                second,
                registry=registry,
                gateway_kid=hood.kid,
                now=hood.clock(),
                replay_store=replay,
            ).claims
        )

        # The far hub never got the one for the Damrak: its first message is the second.
        only = await next_message(far.client)
        assert (only.seq, only.id) == (1, everyone_id)
        await no_message(far.client, since=1, wait=0.3)

        # The gateway relays the exact bytes the agency signed; its records say so too.
        record = json.loads((hood.agency_dir / "announcements" / f"{local_id}.json").read_text())
        assert announcement_id(record["jws"]) == local_id == announcement_id(first.jws)
        counts = hood.counts()
        assert (counts["announcements"], counts["announcement_deliveries"]) == (2, 3)

        with pytest.raises(AgencyError) as caught:
            await agency_announce(hood.agency_dir, hood.url, text=TEXT, category="safety", lat=1.0)
        assert caught.value.reason == "bad_area"

        # verify_relayed (alerts) refuses it and says what to use instead.
        with pytest.raises(MalformedMessage, match="verify_announcement"):
            verify_relayed(first, gateway_kid=hood.kid, now=hood.clock())

        # The public registry counts announcements per agency.
        status, summary = await get_json(hood.url + "/v1/registry/summary")
        assert status == 200 and summary["agencies"][0]["announcements"] == 2
        status, page = await get_json(hood.url + "/registry")
        assert status == 200 and "<th>Announcements</th>" in page
        assert "<td class=n>0</td><td class=n>0</td><td class=n>0</td><td class=n>2</td>" in page


def _bad(hood, case: str) -> tuple[str, int, str, str | None]:
    """Return (token, status, reason, field) for one way an announcement is refused."""
    agency = hood.agency_key
    stranger = generate_signing_key()
    now = int(hood.clock())
    if case == "unknown agency":
        return raw_announcement(stranger, claims_for(hood, stranger)), 403, "unknown_agency", None
    if case == "forged signature":
        # The agency's kid, another key's signature.
        header = {"alg": "Ed25519", "typ": TYP_ANNOUNCEMENT, "kid": agency.kid}
        token = raw_announcement(stranger, claims_for(hood, agency), header=header)
        return token, 400, "bad_signature", None
    if case == "jwk header injection":
        header = {
            "alg": "Ed25519",
            "typ": TYP_ANNOUNCEMENT,
            "kid": stranger.kid,
            "jwk": dict(stranger.public_jwk),
        }
        token = raw_announcement(stranger, claims_for(hood, stranger), header=header)
        return token, 400, "header_not_allowed", None
    if case == "wrong aud":
        return (
            raw_announcement(agency, claims_for(hood, agency, aud="A" * 43)),
            400,
            "wrong_aud",
            None,
        )
    if case == "expired":
        claims = claims_for(hood, agency, iat=now - 3 * DAY, exp=now - 2 * DAY)
        return raw_announcement(agency, claims), 400, "expired", None
    if case == "lifetime over 7 days":
        claims = claims_for(hood, agency, exp=now + 8 * DAY)
        return raw_announcement(agency, claims), 400, "lifetime_too_long", None
    if case == "area outside the jurisdiction":
        area = {"lat": CENTRE[0], "lon": CENTRE[1] + 0.2, "radius_m": 300.0}  # 13.6 km east
        token = raw_announcement(agency, claims_for(hood, agency, area=area))
        return token, 400, "outside_jurisdiction", None
    if case == "over-long text":
        token = raw_announcement(agency, claims_for(hood, agency, text="x" * 2001))
        return token, 400, "invalid_field", "text"
    if case == "unknown category":
        token = raw_announcement(agency, claims_for(hood, agency, category="wanted"))
        return token, 400, "invalid_field", "category"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "unknown agency",
        "forged signature",
        "jwk header injection",
        "wrong aud",
        "expired",
        "lifetime over 7 days",
        "area outside the jurisdiction",
        "over-long text",
        "unknown category",
    ],
)
async def test_bad_announcement_is_refused_and_nothing_is_stored_or_relayed(tmp_path, case):
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        token, status, reason, field = _bad(hood, case)
        before = hood.counts()
        got, answer = await post_announcement(hood, token)
        assert (got, answer["reason"]) == (status, reason), answer
        assert answer.get("field") == field
        after = hood.counts()
        assert {t: after[t] for t in NOT_STORED} == {t: before[t] for t in NOT_STORED}
        assert after["announcements"] == 0
        await no_message(hub.client, wait=0.3)


async def test_replay_rate_limit_removed_agency_and_registry_state(tmp_path):
    async with neighbourhood(tmp_path, agency_announcements_per_hour=2) as hood:
        hub = await hood.join(*CENTRE)
        token = sign_announcement(
            hood.agency_key, gateway_kid=hood.kid, text=TEXT, category="safety", now=hood.clock()
        )
        status, answer = await post_announcement(hood, token)
        assert status == 201 and answer["id"] == announcement_id(token)
        before = hood.counts()
        status, answer = await post_announcement(hood, token)
        assert (status, answer["reason"]) == (409, "replay")
        assert hood.counts() == before

        second = sign_announcement(
            hood.agency_key,
            gateway_kid=hood.kid,
            text="Second",
            category="safety",
            now=hood.clock(),
        )
        assert (await post_announcement(hood, second))[0] == 201
        third = sign_announcement(
            hood.agency_key, gateway_kid=hood.kid, text="Third", category="safety", now=hood.clock()
        )
        before = hood.counts()
        status, answer = await post_announcement(hood, third)
        assert (status, answer["reason"]) == (429, "rate_limited")
        assert hood.counts() == before

        # Removing the agency withdraws what it announced and refuses anything new.
        remove_agency(hood.authority_dir, hood.agency_key.kid)
        await hood.publish()
        assert hood.counts()["announcements"] == hood.counts()["announcement_deliveries"] == 0
        await no_message(hub.client, wait=0.3)
        hood.clock.advance(3601)  # past the quota's hour, so only the removal speaks
        fresh = sign_announcement(
            hood.agency_key, gateway_kid=hood.kid, text="Later", category="safety", now=hood.clock()
        )
        status, answer = await post_announcement(hood, fresh)
        assert (status, answer["reason"]) == (403, "agency_removed")

        # An expired registry: no agency is trusted until the authority publishes again.
        hood.clock.advance(91 * DAY)
        status, answer = await post_announcement(hood, fresh)
        assert (status, answer["reason"]) == (409, "registry_expired")
        assert hood.counts()["announcements"] == 0


async def test_no_registry_and_bodies_that_are_not_a_jws(tmp_path):
    async with neighbourhood(tmp_path, publish=False) as hood:
        token = sign_announcement(
            hood.agency_key, gateway_kid=hood.kid, text=TEXT, category="safety", now=hood.clock()
        )
        assert (await post_announcement(hood, token))[1]["reason"] == "no_registry"
        await hood.publish()
        for body, reason in ((b"", "empty"), (b"\xff\xfe", "not_ascii"), (b"a.b", "not_compact")):
            status, answer = await post_body(
                hood.url + "/v1/announcements", body, "application/jose"
            )
            assert (status, answer["reason"]) == (400, reason)
        rng = secrets.SystemRandom()
        async with aiohttp.ClientSession() as session:
            for _ in range(40):
                body = rng.randbytes(rng.randrange(0, 300))
                async with session.post(hood.url + "/v1/announcements", data=body) as resp:
                    assert 400 <= resp.status < 500
        assert hood.counts()["announcements"] == 0


# -- the hub's verification, a pure function ---------------------------------------------------


async def test_verify_announcement_rejections_each_with_its_reason(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        registry = hood.registry()
        now = hood.clock()
        good = sign_announcement(
            hood.agency_key, gateway_kid=hood.kid, text=TEXT, category="crime", now=now
        )

        def verify(message: StreamMessage, **kwargs: Any):
            options = {"registry": registry, "gateway_kid": hood.kid, "now": now}
            options.update(kwargs)
            return verify_announcement(message, replay_store=options.pop("replay", None), **options)

        assert verify(message_for(good)).claims["category"] == "crime"
        header, payload, signature = good.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["text"] = "Everyone must leave their doors unlocked"
        altered = ".".join((header, _b64(json.dumps(claims).encode()), signature))
        stranger = generate_signing_key()
        outside = raw_announcement(
            hood.agency_key,
            claims_for(hood, hood.agency_key, area={"lat": 52.0, "lon": 4.0, "radius_m": 100.0}),
        )
        cases = [
            (message_for(good, kind="alert"), AnnouncementMalformed, "malformed", {}),
            (
                message_for(good),
                AnnouncementRegistryExpired,
                "registry_expired",
                {"now": now + 91 * DAY},
            ),
            (
                message_for(raw_announcement(stranger, claims_for(hood, stranger))),
                AnnouncementUnknownAgency,
                "unknown_agency",
                {},
            ),
            (message_for(altered), AnnouncementAltered, "altered_announcement", {}),
            (message_for(good), AnnouncementInvalid, "wrong_aud", {"gateway_kid": "B" * 43}),
            (message_for(good), AnnouncementInvalid, "expired", {"now": now + 2 * DAY}),
            (
                dataclasses.replace(message_for(good), id="0" * 64),
                AnnouncementInvalid,
                "wrong_id",
                {},
            ),
            (message_for(outside), AnnouncementOutsideJurisdiction, "outside_jurisdiction", {}),
        ]
        for message, error, reason, kwargs in cases:
            with pytest.raises(error) as caught:
                verify(message, **kwargs)
            assert caught.value.reason == reason, (reason, caught.value)

        replay = MemoryReplayStore()
        verify(message_for(good), replay=replay)
        with pytest.raises(AnnouncementReplayed) as caught:
            verify(message_for(good, seq=2), replay=replay)
        assert caught.value.reason == "replayed"


async def test_verify_announcement_fuzz(tmp_path):
    async with neighbourhood(tmp_path, publish=True) as hood:
        registry = hood.registry()
        now = hood.clock()
        good = sign_announcement(
            hood.agency_key, gateway_kid=hood.kid, text=TEXT, category="crime", now=now
        )

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            kind=st.sampled_from(["announcement", "alert", "request", ""]),
            token=st.one_of(
                st.text(max_size=300),
                st.integers(0, len(good) - 1).flatmap(
                    lambda i: st.characters().map(lambda c: good[:i] + c + good[i + 1 :])
                ),
                st.integers(0, len(good)).map(lambda i: good[:i]),
            ),
            use_own_id=st.booleans(),
        )
        def check(kind: str, token: str, use_own_id: bool) -> None:
            message_id = announcement_id(token) if use_own_id and token.isascii() else "x"
            message = StreamMessage(seq=1, kind=kind, id=message_id, jws=token, jwk=None)
            try:
                verify_announcement(
                    message,
                    registry=registry,
                    gateway_kid=hood.kid,
                    now=now,
                    replay_store=MemoryReplayStore(),
                )
            except AnnouncementRejected as err:
                assert err.reason and len(str(err)) < 2000
            else:
                assert token == good and kind == "announcement"

        check()


ANSWER_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.just("c" * 64), st.text(max_size=70), st.integers()),
        "expires": st.one_of(st.floats(), st.integers(-5, 2**40), st.text(max_size=4)),
        "kind": st.sampled_from(["announcement", "alert", "Announcement"]),
        "seq": st.integers(-2, 2**54),
        "jws": st.one_of(st.just("e30.e30.c2ln"), st.text(max_size=40)),
        "jwk": st.none(),
    },
).map(lambda v: json.dumps(v).encode())


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=200), ANSWER_LIKE))
def test_fuzz_announcement_answer_and_frame(body):
    try:
        answer = parse_answer(AnnouncementAccepted, body, what="announcement answer")
    except (MalformedMessage, SchemaError):
        pass
    else:
        assert len(answer.id) == 64 and answer.expires >= 0
    try:
        frame = parse_frame(body)
    except (MalformedMessage, SchemaError):
        return
    assert frame.seq >= 1 and frame.jwk is None
