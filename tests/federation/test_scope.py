"""Request scope rules: exact reasons for every limit, and tightening only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.errors import SchemaError, ScopeError
from federation.keys import SigningKey
from federation.schemas import TYP_REQUEST, RequestClaims, parse_claims
from federation.scope import (
    DAY,
    DEFAULT_LIMITS,
    HOUR,
    MINUTE,
    ScopeLimits,
    check_request_scope,
    format_duration,
)

NOW = 1_750_000_000  # 2025-06-15T15:06:40Z
AGENCY = SigningKey.from_private(Ed25519PrivateKey.from_private_bytes(b"\x03" * 32))
GATEWAY = SigningKey.from_private(Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))


def at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request(
    start: float = NOW - 20 * HOUR,
    end: float = NOW - 18 * HOUR,
    radius: float = 300,
    lifetime: int = 14 * DAY,
    **changes: Any,
) -> dict[str, Any]:
    claims = {
        "iss": AGENCY.kid,
        "aud": GATEWAY.kid,
        "iat": NOW,
        "exp": NOW + lifetime,
        "jti": "req-1",
        "case": "2025-004411",
        "reason": "Burglary reported on Elm Street",
        "legal_basis": "voluntary",
        "window": {"start": at(start), "end": at(end)},
        "area": {"lat": 52.37, "lon": 4.89, "radius_m": radius},
    }
    claims.update(changes)
    return claims


def rejected(claims: dict[str, Any], limits: ScopeLimits = DEFAULT_LIMITS) -> ScopeError:
    with pytest.raises(ScopeError) as caught:
        check_request_scope(claims, limits, now=NOW)
    return caught.value


def test_defaults_match_the_design() -> None:
    assert DEFAULT_LIMITS == ScopeLimits(
        min_window_s=15 * MINUTE,
        max_window_s=12 * HOUR,
        max_window_age_s=30 * DAY,
        min_radius_m=10,
        max_radius_m=650,
        max_lifetime_s=14 * DAY,
    )


def test_a_request_within_scope_passes() -> None:
    parsed = check_request_scope(request(), now=NOW)
    assert isinstance(parsed, RequestClaims) and parsed.case == "2025-004411"
    model = parse_claims(TYP_REQUEST, request())
    assert check_request_scope(model, now=NOW) is model


@pytest.mark.parametrize(
    ("claims", "reason", "message"),
    [
        (
            request(start=NOW - 20 * HOUR, end=NOW - 7 * HOUR),
            "window_too_long",
            "window: 13 h is longer than the 12 h limit",
        ),
        (
            request(start=NOW - 20 * HOUR, end=NOW - 8 * HOUR + 1),
            "window_too_long",
            "window: 12 h 1 s is longer than the 12 h limit",
        ),
        (
            request(start=NOW - 2 * HOUR, end=NOW - 2 * HOUR + 10 * MINUTE),
            "window_too_short",
            "window: 10 min is shorter than the 15 min minimum",
        ),
        (
            request(start=NOW + HOUR, end=NOW + 2 * HOUR),
            "window_in_future",
            "window.end: 2025-06-15T17:06:40Z is 2 h in the future; a request may only cover the past",
        ),
        (
            request(start=NOW - 30 * MINUTE, end=NOW + 61),  # just beyond the clock leeway
            "window_in_future",
            "window.end: 2025-06-15T15:07:41Z is 1 min 1 s in the future; "
            "a request may only cover the past",
        ),
        (
            request(start=NOW - 31 * DAY, end=NOW - 31 * DAY + HOUR),
            "window_too_old",
            "window.start: 31 d ago is older than the 30 d limit",
        ),
        (
            request(radius=800),
            "radius_too_large",
            "area.radius_m: 800 m is larger than the 650 m limit",
        ),
        (
            request(radius=650.5),
            "radius_too_large",
            "area.radius_m: 650.5 m is larger than the 650 m limit",
        ),
        (
            request(radius=5),
            "radius_too_small",
            "area.radius_m: 5 m is smaller than the 10 m minimum",
        ),
        (
            request(lifetime=15 * DAY),
            "lifetime_too_long",
            "exp: lifetime 15 d is longer than the 14 d limit",
        ),
    ],
)
def test_out_of_scope_requests(claims: dict[str, Any], reason: str, message: str) -> None:
    error = rejected(claims)
    assert (error.reason, str(error)) == (reason, message)


@pytest.mark.parametrize(
    "claims",
    [
        request(start=NOW - 20 * HOUR, end=NOW - 8 * HOUR),  # exactly 12 h
        request(start=NOW - 2 * HOUR, end=NOW - 2 * HOUR + 15 * MINUTE),  # exactly 15 min
        request(start=NOW - 30 * DAY, end=NOW - 30 * DAY + HOUR),  # starts exactly 30 d ago
        request(start=NOW - HOUR, end=NOW + 60),  # ends within the clock leeway
        request(radius=650),
        request(radius=10),
    ],
)
def test_boundaries_are_inside_scope(claims: dict[str, Any]) -> None:
    check_request_scope(claims, now=NOW)


def test_case_and_reason_are_required_by_the_schema() -> None:
    with pytest.raises(SchemaError) as caught:
        check_request_scope(request(case="   "), now=NOW)
    assert str(caught.value) == "case: must not be blank"
    claims = request()
    del claims["reason"]
    with pytest.raises(SchemaError) as caught:
        check_request_scope(claims, now=NOW)
    assert str(caught.value) == "reason: required"


def test_a_neighbourhood_may_tighten() -> None:
    strict = DEFAULT_LIMITS.tightened(max_radius_m=300, max_window_s=6 * HOUR, max_lifetime_s=DAY)
    assert strict.max_radius_m == 300 and strict.min_radius_m == 10
    error = rejected(request(radius=400), strict)
    assert str(error) == "area.radius_m: 400 m is larger than the 300 m limit"
    error = rejected(request(start=NOW - 20 * HOUR, end=NOW - 13 * HOUR), strict)
    assert str(error) == "window: 7 h is longer than the 6 h limit"
    error = rejected(request(lifetime=2 * DAY), strict)
    assert str(error) == "exp: lifetime 2 d is longer than the 1 d limit"
    assert DEFAULT_LIMITS.tighten(strict) is strict


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"max_radius_m": 800},
            "max_radius_m: 800 m is larger than the allowed 650 m; "
            "a neighbourhood may only tighten scope limits",
        ),
        (
            {"min_radius_m": 1},
            "min_radius_m: 1 m is smaller than the allowed 10 m; "
            "a neighbourhood may only tighten scope limits",
        ),
        (
            {"min_window_s": 60},
            "min_window_s: 1 min is shorter than the allowed 15 min; "
            "a neighbourhood may only tighten scope limits",
        ),
        (
            {"max_window_s": 24 * HOUR},
            "max_window_s: 1 d is longer than the allowed 12 h; "
            "a neighbourhood may only tighten scope limits",
        ),
        (
            {"max_window_age_s": 90 * DAY},
            "max_window_age_s: 90 d is longer than the allowed 30 d; "
            "a neighbourhood may only tighten scope limits",
        ),
        (
            {"max_lifetime_s": 30 * DAY},
            "max_lifetime_s: 30 d is longer than the allowed 14 d; "
            "a neighbourhood may only tighten scope limits",
        ),
    ],
)
def test_a_neighbourhood_may_not_loosen(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ScopeError) as caught:
        DEFAULT_LIMITS.tightened(**changes)
    assert caught.value.reason == "looser_than_allowed"
    assert str(caught.value) == message
    with pytest.raises(ScopeError):
        DEFAULT_LIMITS.tightened(max_radius_m=300).tighten(ScopeLimits())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: ScopeLimits(min_radius_m=700),
            "min_radius_m: larger than max_radius_m, so no area could pass",
        ),
        (
            lambda: ScopeLimits(min_window_s=13 * HOUR),
            "min_window_s: larger than max_window_s, so no window could pass",
        ),
        (lambda: ScopeLimits(max_window_s=-1), "max_window_s: must be a positive number"),
        (lambda: ScopeLimits(max_radius_m=float("nan")), "max_radius_m: must be a positive number"),
        (lambda: ScopeLimits(max_radius_m="650"), "max_radius_m: must be a number"),
        (lambda: DEFAULT_LIMITS.tightened(max_area_km2=1), "max_area_km2: unknown scope limit"),
    ],
)
def test_inconsistent_limits(build: Any, message: str) -> None:
    with pytest.raises(ScopeError) as caught:
        build()
    assert caught.value.reason == "bad_limits"
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (900, "15 min"),
        (46800, "13 h"),
        (45000, "12 h 30 min"),
        (31 * DAY, "31 d"),
        (DAY + 1, "1 d 1 s"),
        (1.5, "1.5 s"),
        (3600.25, "1 h 0.25 s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=200, deadline=None)
@given(
    start_ago=st.integers(min_value=-2 * DAY, max_value=40 * DAY),
    length=st.integers(min_value=1, max_value=2 * DAY),
    radius=st.floats(min_value=0.5, max_value=2000),
)
def test_passing_requests_obey_every_limit(start_ago: int, length: int, radius: float) -> None:
    claims = request(start=NOW - start_ago, end=NOW - start_ago + length, radius=radius)
    try:
        parsed = check_request_scope(claims, now=NOW)
    except ScopeError:
        return
    window = (parsed.window.end_at - parsed.window.start_at).total_seconds()
    assert 15 * MINUTE <= window <= 12 * HOUR
    assert parsed.window.end_at.timestamp() <= NOW + 60
    assert NOW - parsed.window.start_at.timestamp() <= 30 * DAY
    assert 10 <= parsed.area.radius_m <= 650
