"""Claim schemas: exact field-naming errors for bad claims, and fuzzing of parse_claims."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.errors import SchemaError
from federation.keys import SigningKey
from federation.schemas import (
    SCHEMAS,
    TYP_ALERT,
    TYP_ANNOUNCEMENT,
    TYP_ANSWER,
    TYP_CUSTODY,
    TYP_REGISTRATION,
    TYP_REGISTRY,
    TYP_REQUEST,
    AlertClaims,
    RequestClaims,
    parse_claims,
)

NOW = 1_750_000_000
CELL = "871969c9bffffff"


def fixed_key(seed: int) -> SigningKey:
    return SigningKey.from_private(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


HUB, GATEWAY, AGENCY = fixed_key(1), fixed_key(2), fixed_key(3)
BASE = {"iss": HUB.kid, "aud": GATEWAY.kid, "iat": NOW, "exp": NOW + 3600, "jti": "m-1"}

VALID: dict[str, dict[str, Any]] = {
    TYP_REGISTRATION: {**BASE, "cell": CELL, "hop_key": dict(HUB.public_jwk)},
    TYP_ALERT: {
        **BASE,
        "category": "crime",
        "text": "Bike stolen from the rack outside no. 12",
        "cell": CELL,
        "attachments": [{"sha256": "0f" * 32, "size": 1, "type": "video/mp4"}],
    },
    TYP_ANNOUNCEMENT: {
        **BASE,
        "iss": AGENCY.kid,
        "category": "safety",
        "text": "Gas leak, stay away",
    },
    TYP_REGISTRY: {
        **BASE,
        "iss": GATEWAY.kid,
        "version": 1,
        "agencies": [
            {
                "kid": AGENCY.kid,
                "name": "Springfield PD",
                "jurisdiction": "Springfield",
                "since": NOW,
                "jwk": dict(AGENCY.public_jwk),
                "recipient": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
                "contact": "https://springfield.example/records",
            }
        ],
    },
    TYP_REQUEST: {
        **BASE,
        "iss": AGENCY.kid,
        "case": "24-1187",
        "reason": "Hit and run",
        "legal_basis": "warrant",
        "warrant_sha256": "ee" * 32,
        "window": {"start": "2025-06-14T21:00:00Z", "end": "2025-06-14T21:30:00.250Z"},
        "area": {"lat": 52.37, "lon": 4.89, "radius_m": 250.5},
    },
    TYP_ANSWER: {**BASE, "request": "req-1", "decision": "denied", "key": dict(HUB.public_jwk)},
    TYP_CUSTODY: {
        **BASE,
        "aud": AGENCY.kid,
        "hub_key": dict(HUB.public_jwk),
        "gateway": GATEWAY.kid,
        "request": "req-1",
        "answer_key": GATEWAY.kid,
        "clips": [{"sha256": "aa" * 32, "size": 10, "start": NOW, "end": NOW + 10,
                   "camera": "porch"}],
    },
}


def changed(typ: str, path: str, value: Any) -> dict[str, Any]:
    """Return a copy of a valid claim set with one dotted path set (or deleted if value is ...)."""
    claims = copy.deepcopy(VALID[typ])
    target: Any = claims
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return claims


@pytest.mark.parametrize("typ", sorted(VALID))
def test_valid_claims_parse(typ: str) -> None:
    model = parse_claims(typ, VALID[typ])
    assert isinstance(model, SCHEMAS[typ])
    assert model.model_dump(exclude_unset=True) == VALID[typ]


def test_parsed_window_and_defaults() -> None:
    request = parse_claims(TYP_REQUEST, VALID[TYP_REQUEST])
    assert isinstance(request, RequestClaims)
    assert (request.window.end_at - request.window.start_at).total_seconds() == 1800.25
    alert = parse_claims(TYP_ALERT, changed(TYP_ALERT, "attachments", ...))
    assert isinstance(alert, AlertClaims) and alert.attachments == []


@pytest.mark.parametrize(
    ("typ", "path", "value", "message", "reason"),
    [
        (TYP_ALERT, "text", "x" * 2001, "text: longer than 2000 characters", "invalid_field"),
        (TYP_ALERT, "text", "", "text: must not be empty", "invalid_field"),
        (TYP_ALERT, "text", " \n\t", "text: must not be blank", "invalid_field"),
        (TYP_ALERT, "text", 42, "text: must be a string", "invalid_field"),
        (TYP_ALERT, "text", ..., "text: required", "missing_field"),
        (TYP_ALERT, "colour", "red", "colour: unknown field", "unknown_field"),
        (
            TYP_ALERT,
            "category",
            "gossip",
            "category: must be one of 'crime', 'safety', 'suspicious', 'unknown_visitor', "
            "'lost_pet' or 'neighbourly'",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "cell",
            "881969c9b1fffff",
            "cell: must be an H3 resolution-7 cell (15 lower-case hex digits)",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "cell",
            CELL.upper(),
            "cell: must be an H3 resolution-7 cell (15 lower-case hex digits)",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "attachments",
            [{"sha256": "0f" * 32, "size": 1, "type": "image/png"}] * 5,
            "attachments: more than 4 items",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "attachments.0.size",
            0,
            "attachments[0].size: must be greater than 0",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "attachments.0.size",
            25 * 1024 * 1024 + 1,
            "attachments[0].size: must be at most 26214400",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "attachments.0.size",
            True,
            "attachments[0].size: must be an integer",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "attachments.0.size",
            "12",
            "attachments[0].size: must be an integer",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "attachments.0.sha256",
            "0F" * 32,
            "attachments[0].sha256: must be 64 lower-case hex digits (a SHA-256 digest)",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "attachments.0.type",
            "image/gif",
            "attachments[0].type: must be one of 'image/jpeg', 'image/png' or 'video/mp4'",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "attachments.0.name",
            "x.jpg",
            "attachments[0].name: unknown field",
            "unknown_field",
        ),
        (TYP_ALERT, "iat", -1, "iat: must be at least 0", "invalid_field"),
        (TYP_ALERT, "exp", 10**30, "exp: must be at most 253402300799", "invalid_field"),
        (
            TYP_ALERT,
            "jti",
            "has space",
            "jti: must be 1 to 128 characters of A-Z a-z 0-9 _ . : -",
            "invalid_field",
        ),
        (
            TYP_ALERT,
            "aud",
            "gateway",
            "aud: must be a kid: 43 characters of unpadded base64url",
            "invalid_field",
        ),
        (
            TYP_REGISTRATION,
            "hop_key.d",
            "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "hop_key: contains private key material (d); send the public JWK only",
            "invalid_field",
        ),
        (
            TYP_REGISTRATION,
            "hop_key.crv",
            "X25519",
            "hop_key.crv: must be one of 'Ed25519'",
            "invalid_field",
        ),
        (
            TYP_REGISTRATION,
            "hop_key.kid",
            AGENCY.kid,
            "hop_key: kid is not the RFC 7638 thumbprint of this key",
            "invalid_field",
        ),
        (
            TYP_REGISTRATION,
            "hop_key.x",
            "AAAA",
            "hop_key.x: must be 32 bytes in canonical unpadded base64url",
            "invalid_field",
        ),
        (
            TYP_ANNOUNCEMENT,
            "area",
            {"lat": 91, "lon": 0, "radius_m": 5},
            "area.lat: must be at most 90",
            "invalid_field",
        ),
        (
            TYP_ANNOUNCEMENT,
            "area",
            {"lat": 0, "lon": 0, "radius_m": float("inf")},
            "area.radius_m: must be a finite number",
            "invalid_field",
        ),
        (
            TYP_REQUEST,
            "warrant_sha256",
            ...,
            "warrant_sha256: required when legal_basis is warrant",
            "invalid_field",
        ),
        (
            TYP_REQUEST,
            "legal_basis",
            "voluntary",
            "warrant_sha256: only allowed when legal_basis is warrant",
            "invalid_field",
        ),
        (
            TYP_REQUEST,
            "legal_basis",
            "subpoena",
            "legal_basis: must be one of 'voluntary' or 'warrant'",
            "invalid_field",
        ),
        (
            TYP_REQUEST,
            "window.start",
            "2025-06-14T21:00:00+00:00",
            "window.start: must be an RFC 3339 UTC time like 2024-05-01T21:30:00Z",
            "invalid_field",
        ),
        (
            TYP_REQUEST,
            "window.start",
            "\uff12025-06-14T21:00:00Z",
            "window.start: must be an RFC 3339 UTC time like 2024-05-01T21:30:00Z",
            "invalid_field",
        ),
        (
            TYP_REQUEST,
            "window.start",
            "2025-02-30T21:00:00Z",
            "window.start: is not a real date and time (day is out of range for month)",
            "invalid_field",
        ),
        (
            TYP_REQUEST,
            "window.end",
            "2025-06-14T20:00:00Z",
            "window: end must be after start",
            "invalid_field",
        ),
        (TYP_REQUEST, "case", "", "case: must not be empty", "invalid_field"),
        (TYP_REQUEST, "reason", ..., "reason: required", "missing_field"),
        (TYP_REQUEST, "area.radius_m", 0, "area.radius_m: must be greater than 0", "invalid_field"),
        (
            TYP_ANSWER,
            "clips",
            [{"sha256": "aa" * 32}],
            "clips: a denied answer must not list clips or a custody file",
            "invalid_field",
        ),
        # The public answer names a clip by its digest alone: a camera would link a household.
        (
            TYP_ANSWER,
            "clips",
            [{"sha256": "aa" * 32, "camera": "porch"}],
            "clips[0].camera: unknown field",
            "unknown_field",
        ),
        (
            TYP_ANSWER,
            "key",
            dict(AGENCY.public_jwk),
            "key: iss is not the RFC 7638 thumbprint of key",
            "invalid_field",
        ),
        (TYP_ANSWER, "key", ..., "key: required", "missing_field"),
        (
            TYP_ANSWER,
            "decision",
            "approved",
            "custody: an approval lists its sealed clips and custody file",
            "invalid_field",
        ),
        (
            TYP_CUSTODY,
            "hub_key",
            dict(AGENCY.public_jwk),
            "hub_key: iss is not the RFC 7638 thumbprint of hub_key",
            "invalid_field",
        ),
        (TYP_CUSTODY, "clips", [], "clips: fewer than 1 items", "invalid_field"),
        (
            TYP_ANSWER,
            "decision",
            "maybe",
            "decision: must be one of 'approved' or 'denied'",
            "invalid_field",
        ),
        (
            TYP_REGISTRY,
            "agencies.0.kid",
            HUB.kid,
            "agencies[0]: kid is not the RFC 7638 thumbprint of jwk",
            "invalid_field",
        ),
        (
            TYP_REGISTRY,
            "agencies.0.recipient",
            "age1notvalid",
            "agencies[0].recipient: must be an age X25519 recipient (age1 followed by 58 characters)",
            "invalid_field",
        ),
        (TYP_REGISTRY, "version", 0, "version: must be at least 1", "invalid_field"),
    ],
)
def test_bad_claims_name_the_field(
    typ: str, path: str, value: Any, message: str, reason: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        parse_claims(typ, changed(typ, path, value))
    assert str(caught.value) == message
    assert caught.value.reason == reason
    assert caught.value.field == message.split(":")[0]


def test_duplicate_agency_kids() -> None:
    claims = copy.deepcopy(VALID[TYP_REGISTRY])
    claims["agencies"].append(copy.deepcopy(claims["agencies"][0]))
    with pytest.raises(SchemaError) as caught:
        parse_claims(TYP_REGISTRY, claims)
    assert str(caught.value) == f"agencies: kid {AGENCY.kid} is listed twice"


def test_unknown_typ_and_non_object_claims() -> None:
    with pytest.raises(SchemaError) as caught:
        parse_claims("JWT", {})
    assert caught.value.reason == "unknown_typ"
    assert str(caught.value).startswith("typ: unknown message type 'JWT'; expected one of ")
    with pytest.raises(SchemaError) as caught:
        parse_claims(TYP_ALERT, ["not", "a", "dict"])
    assert str(caught.value) == "claims: must be a JSON object"
    with pytest.raises(SchemaError) as caught:
        parse_claims(TYP_ALERT, {1: "x"})
    assert str(caught.value) == "claims: every field name must be a string"


def test_models_are_immutable() -> None:
    model = parse_claims(TYP_ALERT, VALID[TYP_ALERT])
    with pytest.raises(ValueError):
        model.text = "changed"  # type: ignore[misc]


# --- fuzzing --------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from([CELL, HUB.kid, "crime", "warrant", "2025-06-14T21:00:00Z", "ab" * 32])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
FUZZ = settings(max_examples=300, deadline=None)


@FUZZ
@given(
    typ=st.sampled_from(sorted(SCHEMAS)),
    claims=st.dictionaries(st.text(max_size=12), json_values, max_size=10),
)
def test_fuzz_arbitrary_dicts_raise_only_schema_error(typ: str, claims: dict[str, Any]) -> None:
    try:
        parse_claims(typ, claims)
    except SchemaError as err:
        assert ": " in str(err) and err.field


@FUZZ
@given(typ=st.sampled_from(sorted(VALID)), data=st.data())
def test_fuzz_one_field_replaced(typ: str, data: st.DataObject) -> None:
    claims = copy.deepcopy(VALID[typ])
    name = data.draw(st.sampled_from(sorted(claims)) | st.text(max_size=8))
    claims[name] = data.draw(json_values)
    try:
        model = parse_claims(typ, claims)
    except SchemaError as err:
        assert err.field
    else:
        assert model.model_dump(exclude_unset=True) == claims
