"""Signed messages: RFC 8037 vectors, every rejection with its exact reason, and fuzzing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import OKPKey

from federation.errors import (
    AlgorithmRejected,
    ClaimInvalid,
    FederationError,
    HeaderRejected,
    MalformedMessage,
    MessageExpired,
    MessageNotYetValid,
    ReplayDetected,
    SchemaError,
    SignatureInvalid,
    UnknownKey,
    WrongAudience,
    WrongType,
)
from federation.jws import (
    DEFAULT_MAX_TOKEN_BYTES,
    sign_compact,
    sign_message,
    split_compact,
    verify_message,
    verify_signature,
)
from federation.keys import KeySet, SigningKey
from federation.replay import MemoryReplayStore, SqliteReplayStore
from federation.schemas import (
    ALERT_CATEGORIES,
    MAX_LIFETIME_S,
    TYP_ALERT,
    TYP_ANNOUNCEMENT,
    TYP_ANSWER,
    TYP_REGISTRATION,
    TYP_REGISTRY,
    TYP_REQUEST,
)
from tests.outcomes import Outcomes

NOW = 1_750_000_000  # 2025-06-15T15:06:40Z
CELL = "871969c9bffffff"  # Amsterdam, resolution 7


def fixed_key(seed: int) -> SigningKey:
    return SigningKey.from_private(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


HUB = fixed_key(1)
GATEWAY = fixed_key(2)
AGENCY = fixed_key(3)
ATTACKER = fixed_key(4)
AUD = GATEWAY.kid

# RFC 8037 Appendix A.1 key and A.4 example.
RFC8037_PRIVATE = {
    "kty": "OKP",
    "crv": "Ed25519",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_A4_JWS = (
    "eyJhbGciOiJFZERTQSJ9"
    ".RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def to_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def forge(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, signer: Any) -> str:
    """Build a compact JWS by hand, signing with raw Ed25519, HMAC bytes, or nothing."""
    header_bytes = header if isinstance(header, bytes) else to_json(header)
    payload_bytes = payload if isinstance(payload, bytes) else to_json(payload)
    signing_input = f"{b64(header_bytes)}.{b64(payload_bytes)}".encode("ascii")
    if isinstance(signer, SigningKey):
        signature = signer.private.sign(signing_input)
    elif isinstance(signer, bytes):
        signature = hmac.new(signer, signing_input, hashlib.sha256).digest()
    else:
        signature = b""
    return f"{signing_input.decode('ascii')}.{b64(signature)}"


def header_for(key: SigningKey, typ: str = TYP_ALERT, **extra: Any) -> dict[str, Any]:
    return {"alg": "Ed25519", "typ": typ, "kid": key.kid, **extra}


def alert_claims(key: SigningKey = HUB, **changes: Any) -> dict[str, Any]:
    claims = {
        "iss": key.kid,
        "aud": AUD,
        "iat": NOW,
        "exp": NOW + 3600,
        "jti": "alert-0001",
        "category": "suspicious",
        "text": "Someone is trying car doors on Elm Street",
        "cell": CELL,
        "attachments": [{"sha256": "ab" * 32, "size": 48_213, "type": "image/jpeg"}],
    }
    claims.update(changes)
    return claims


VALID_BODIES: dict[str, tuple[SigningKey, dict[str, Any]]] = {
    TYP_REGISTRATION: (HUB, {"aud": AUD, "cell": CELL, "hop_key": dict(ATTACKER.public_jwk)}),
    TYP_ALERT: (
        HUB,
        {"aud": AUD, "category": "lost_pet", "text": "Grey cat, answers to Mo", "cell": CELL},
    ),
    TYP_ANNOUNCEMENT: (
        AGENCY,
        {
            "aud": AUD,
            "category": "safety",
            "text": "Road closed for the fair on Saturday",
            "area": {"lat": 52.37, "lon": 4.89, "radius_m": 400},
        },
    ),
    TYP_REGISTRY: (
        GATEWAY,
        {
            "aud": AUD,
            "version": 3,
            "agencies": [
                {
                    "kid": AGENCY.kid,
                    "name": "Springfield Police Department",
                    "jurisdiction": "Springfield",
                    "since": NOW - 86400,
                    "jwk": dict(AGENCY.public_jwk),
                    "recipient": "age1" + "q" * 58,
                    "contact": "records@springfield.example",
                }
            ],
        },
    ),
    TYP_REQUEST: (
        AGENCY,
        {
            "aud": AUD,
            "case": "2025-004411",
            "reason": "Burglary reported at 21:40 on Elm Street",
            "legal_basis": "voluntary",
            "window": {"start": "2025-06-14T21:00:00Z", "end": "2025-06-14T23:00:00Z"},
            "area": {"lat": 52.37, "lon": 4.89, "radius_m": 300},
        },
    ),
    TYP_ANSWER: (
        HUB,
        {
            "aud": AUD,
            "request": "req-0001",
            "decision": "approved",
            "key": dict(HUB.public_jwk),  # in real answers, a one-time key (federation/answers.py)
            "clips": [{"sha256": "cd" * 32}],
            "custody": {"sha256": "ef" * 32},
        },
    ),
}


def trusted() -> KeySet:
    return KeySet([HUB.public_jwk, AGENCY.public_jwk, GATEWAY.public_jwk])


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryReplayStore()
    else:
        with SqliteReplayStore(tmp_path / "replay.sqlite3") as sqlite_store:
            yield sqlite_store


def verify(token: str | bytes, store: Any = None, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = {
        "typ": TYP_ALERT,
        "trusted": trusted(),
        "audience": AUD,
        "now": NOW,
        "replay_store": store,
    }
    kwargs.update(overrides)
    return verify_message(token, **kwargs)


def assert_rejected(
    token: str | bytes,
    store: Any,
    error: type[FederationError],
    reason: str,
    message: str,
    **overrides: Any,
) -> None:
    with pytest.raises(error) as caught:
        verify(token, store, **overrides)
    assert type(caught.value) is error
    assert caught.value.reason == reason
    assert str(caught.value) == message
    assert len(store) == 0, "a rejected message must leave no trace in the replay store"


# --- RFC 8037 Appendix A -------------------------------------------------------------


def test_rfc8037_a4_signature_is_reproduced_exactly() -> None:
    key = SigningKey.from_private(OKPKey.import_key(RFC8037_PRIVATE).private_key)
    token = sign_compact(
        key, {"alg": "EdDSA"}, b"Example of Ed25519 signing", allow_legacy_eddsa=True
    )
    assert token == RFC8037_A4_JWS


def test_rfc8037_a4_needs_the_legacy_switch_to_sign() -> None:
    key = SigningKey.from_private(OKPKey.import_key(RFC8037_PRIVATE).private_key)
    with pytest.raises(AlgorithmRejected) as caught:
        sign_compact(key, {"alg": "EdDSA"}, b"Example of Ed25519 signing")
    assert caught.value.reason == "alg_legacy"


def test_rfc8037_a5_verification() -> None:
    public = KeySet([{k: v for k, v in RFC8037_PRIVATE.items() if k != "d"}])
    parts = split_compact(RFC8037_A4_JWS)
    assert parts.header == {"alg": "EdDSA"}
    assert parts.payload == b"Example of Ed25519 signing"
    key = public.get("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
    verify_signature(parts, key, allow_legacy_eddsa=True)

    with pytest.raises(AlgorithmRejected) as caught:
        verify_signature(parts, key)
    assert caught.value.reason == "alg_legacy"
    assert str(caught.value) == (
        "alg EdDSA is the legacy name and is not accepted here; sign with alg Ed25519 (RFC 9864)"
    )

    header, _, signature = RFC8037_A4_JWS.split(".")
    tampered = split_compact(f"{header}.{b64(b'Example of Ed25519 signinG')}.{signature}")
    with pytest.raises(SignatureInvalid):
        verify_signature(tampered, key, allow_legacy_eddsa=True)


def test_legacy_eddsa_message_is_accepted_only_when_allowed(store: Any) -> None:
    token = forge({**header_for(HUB), "alg": "EdDSA"}, alert_claims(), HUB)
    assert_rejected(
        token,
        store,
        AlgorithmRejected,
        "alg_legacy",
        "alg EdDSA is the legacy name and is not accepted here; sign with alg Ed25519 (RFC 9864)",
    )
    assert verify(token, store, allow_legacy_eddsa=True).header["alg"] == "EdDSA"


# --- happy paths ------------------------------------------------------------------------


@pytest.mark.parametrize("typ", sorted(VALID_BODIES))
def test_every_message_type_round_trips(typ: str, store: Any) -> None:
    key, body = VALID_BODIES[typ]
    token = sign_message(key, typ, body, now=NOW)
    message = verify(token, store, typ=typ)
    assert message.raw == token.encode("ascii") and message.token == token
    assert message.kid == key.kid and message.typ == typ
    assert message.header == {"alg": "Ed25519", "typ": typ, "kid": key.kid}
    assert message.claims == {
        **body,
        "iss": key.kid,
        "iat": NOW,
        "exp": NOW + MAX_LIFETIME_S[typ],
        "jti": message.claims["jti"],
    }
    assert message.model.model_dump(exclude_unset=True) == message.claims
    assert (key.kid, message.claims["jti"]) in store
    assert len(store) == 1


def test_sign_keeps_given_registered_claims() -> None:
    token = sign_message(HUB, TYP_ALERT, alert_claims(), now=NOW)
    assert verify(token).claims == alert_claims()


def test_sign_refuses_what_receivers_would_reject() -> None:
    with pytest.raises(ClaimInvalid) as caught:
        sign_message(HUB, TYP_ALERT, alert_claims(iss=AGENCY.kid), now=NOW)
    assert caught.value.reason == "iss_mismatch"
    with pytest.raises(ClaimInvalid) as caught:
        sign_message(HUB, TYP_ALERT, alert_claims(exp=NOW + 7 * 86400 + 1), now=NOW)
    assert str(caught.value) == (
        "lifetime exp - iat is 7 d 1 s; a porchlight-alert+jws may live at most 7 d"
    )
    with pytest.raises(SchemaError) as caught:
        sign_message(HUB, TYP_ALERT, alert_claims(category="gossip"), now=NOW)
    assert caught.value.field == "category"
    with pytest.raises(WrongType):
        sign_message(HUB, "JWT", alert_claims(), now=NOW)
    with pytest.raises(MalformedMessage) as caught:
        sign_message(
            HUB,
            TYP_REGISTRY,
            {
                **VALID_BODIES[TYP_REGISTRY][1],
                "agencies": [
                    {
                        **VALID_BODIES[TYP_REGISTRY][1]["agencies"][0],
                        "kid": k.kid,
                        "jwk": k.public_jwk,
                    }
                    for k in (fixed_key(i) for i in range(10, 200))
                ],
            },
            now=NOW,
        )
    assert caught.value.reason == "too_large"


def test_leeway_boundaries_are_inclusive(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(), HUB)
    assert verify(token, now=NOW + 3600 + 60).kid == HUB.kid
    future = forge(header_for(HUB), alert_claims(iat=NOW + 60, exp=NOW + 120), HUB)
    assert verify(future, now=NOW).kid == HUB.kid


# --- every bad input: exact reason, nothing stored --------------------------------------


def test_forged_signature(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(), ATTACKER)
    message = (
        "signature does not verify under the trusted key for this kid; "
        "the message was altered or not signed by that key"
    )
    assert_rejected(token, store, SignatureInvalid, "bad_signature", message)
    header, payload, signature = forge(header_for(HUB), alert_claims(), HUB).split(".")
    altered = forge(header_for(HUB), alert_claims(text="Nothing to see"), HUB).split(".")[1]
    assert_rejected(
        f"{header}.{altered}.{signature}", store, SignatureInvalid, "bad_signature", message
    )
    assert_rejected(f"{header}.{payload}.", store, SignatureInvalid, "bad_signature", message)


def test_unknown_kid(store: Any) -> None:
    token = forge(header_for(ATTACKER), alert_claims(ATTACKER), ATTACKER)
    assert_rejected(
        token,
        store,
        UnknownKey,
        "unknown_kid",
        f"no trusted key has kid {ATTACKER.kid!r}; pin the sender's key or refresh the registry",
    )


def test_unknown_kid_is_not_echoed_at_length(store: Any) -> None:
    kid = "K" * 5000
    token = forge({**header_for(HUB), "kid": kid}, alert_claims(), HUB)
    assert_rejected(
        token,
        store,
        UnknownKey,
        "unknown_kid",
        f"no trusted key has kid '{'K' * 60}...; pin the sender's key or refresh the registry",
    )


def test_missing_kid(store: Any) -> None:
    token = forge({"alg": "Ed25519", "typ": TYP_ALERT}, alert_claims(), HUB)
    assert_rejected(
        token,
        store,
        HeaderRejected,
        "kid_missing",
        "header has no kid; the sender must name its key",
    )


def test_alg_none(store: Any) -> None:
    token = forge(header_for(HUB, alg="none"), alert_claims(), None)
    assert token.endswith(".")
    assert_rejected(
        token,
        store,
        AlgorithmRejected,
        "alg_none",
        "alg none (an unsigned token) is never accepted",
    )


class CountingKeySet(KeySet):
    """A real key set that counts lookups, to prove alg is checked before any key."""

    lookups = 0

    def get(self, kid: str) -> OKPKey:
        self.lookups += 1
        return super().get(kid)


@pytest.mark.parametrize(
    "secret",
    [
        base64.urlsafe_b64decode(HUB.public_jwk["x"] + "="),
        json.dumps(HUB.public_jwk).encode(),
        HUB.public_jwk["x"].encode(),
    ],
    ids=["raw-public-key", "jwk-json", "jwk-x"],
)
def test_hs256_with_the_public_key_as_hmac_secret(store: Any, secret: bytes) -> None:
    token = forge(header_for(HUB, alg="HS256"), alert_claims(), secret)
    keys = CountingKeySet([HUB.public_jwk])
    assert_rejected(
        token,
        store,
        AlgorithmRejected,
        "alg_not_allowed",
        "alg 'HS256' is not allowed; Porchlight messages are signed with Ed25519",
        trusted=keys,
    )
    assert keys.lookups == 0


@pytest.mark.parametrize(
    "alg", ["RS256", "ES256", "ES256K", "PS256", "HS512", "Ed448", "ED25519", ""]
)
def test_every_other_alg(store: Any, alg: str) -> None:
    token = forge(header_for(HUB, alg=alg), alert_claims(), HUB)
    keys = CountingKeySet([HUB.public_jwk])
    assert_rejected(
        token,
        store,
        AlgorithmRejected,
        "alg_not_allowed",
        f"alg {alg!r} is not allowed; Porchlight messages are signed with Ed25519",
        trusted=keys,
    )
    assert keys.lookups == 0


def test_missing_alg(store: Any) -> None:
    token = forge({"typ": TYP_ALERT, "kid": HUB.kid}, alert_claims(), HUB)
    assert_rejected(
        token, store, AlgorithmRejected, "alg_missing", "header has no alg; sign with Ed25519"
    )


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("jwk", ATTACKER.public_jwk),
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("x5c", ["MIIBszCCAVmgAwIBAgIU"]),
    ],
)
def test_key_injection_headers(store: Any, member: str, value: Any) -> None:
    # The attacker signs with its own key and offers that key in the header, naming either
    # its own kid or the victim's.
    for kid in (ATTACKER.kid, HUB.kid):
        token = forge(
            {**header_for(ATTACKER), "kid": kid, member: value}, alert_claims(ATTACKER), ATTACKER
        )
        keys = CountingKeySet([HUB.public_jwk])
        assert_rejected(
            token,
            store,
            HeaderRejected,
            "header_not_allowed",
            f"header member {member!r} is not allowed: "
            "keys come only from the trusted key set, never from a message",
            trusted=keys,
        )
        assert keys.lookups == 0


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("crit", "no critical extensions are defined"),
        ("b64", "a header may carry only alg, typ and kid"),
        ("cty", "a header may carry only alg, typ and kid"),
    ],
)
def test_other_header_members(store: Any, member: str, why: str) -> None:
    token = forge(
        header_for(HUB, **{member: ["b64"] if member == "crit" else False}), alert_claims(), HUB
    )
    assert_rejected(
        token,
        store,
        HeaderRejected,
        "header_not_allowed",
        f"header member {member!r} is not allowed: {why}",
    )


def test_expired(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(), HUB)
    assert_rejected(
        token,
        store,
        MessageExpired,
        "expired",
        "message expired 61 s ago; ask the sender for a fresh one",
        now=NOW + 3600 + 61,
    )


def test_iat_in_the_future(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(iat=NOW + 61, exp=NOW + 3600), HUB)
    assert_rejected(
        token,
        store,
        MessageNotYetValid,
        "not_yet_valid",
        "iat is 61 s in the future (allowed clock skew 60 s); check the sender's clock",
    )


def test_replayed_jti(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(), HUB)
    verify(token, store)
    with pytest.raises(ReplayDetected) as caught:
        verify(token, store, now=NOW + 30)
    assert caught.value.reason == "replay"
    assert str(caught.value) == (
        f"message 'alert-0001' from {HUB.kid} was already received; a replayed message is ignored"
    )
    # The same jti re-signed with new content is still a replay.
    again = forge(header_for(HUB), alert_claims(text="Different words"), HUB)
    with pytest.raises(ReplayDetected):
        verify(again, store, now=NOW + 30)
    assert len(store) == 1


def test_wrong_audience(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(aud=ATTACKER.kid), HUB)
    assert_rejected(
        token,
        store,
        WrongAudience,
        "wrong_aud",
        f"aud {ATTACKER.kid!r} is not this neighbourhood ({AUD}); "
        "the message was meant for another gateway",
    )


def test_wrong_typ(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(), HUB)
    assert_rejected(
        token,
        store,
        WrongType,
        "wrong_typ",
        "typ is 'porchlight-alert+jws', expected porchlight-request+jws",
        typ=TYP_REQUEST,
    )
    untyped = forge({"alg": "Ed25519", "kid": HUB.kid}, alert_claims(), HUB)
    assert_rejected(
        untyped, store, WrongType, "typ_missing", "header has no typ; expected porchlight-alert+jws"
    )
    jwt = forge(header_for(HUB, typ="JWT"), alert_claims(), HUB)
    assert_rejected(
        jwt, store, WrongType, "wrong_typ", "typ is 'JWT', expected porchlight-alert+jws"
    )


def test_iss_must_be_the_signing_kid(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(iss=AGENCY.kid), HUB)
    assert_rejected(
        token,
        store,
        ClaimInvalid,
        "iss_mismatch",
        f"iss {AGENCY.kid!r} is not the signing key's kid {HUB.kid}",
    )


@pytest.mark.parametrize(
    ("typ", "lifetime", "shown", "limit"),
    [
        (TYP_REGISTRATION, 3601, "1 h 1 s", "1 h"),
        (TYP_ALERT, 7 * 86400 + 1, "7 d 1 s", "7 d"),
        (TYP_REQUEST, 15 * 86400, "15 d", "14 d"),
        (TYP_REGISTRY, 91 * 86400, "91 d", "90 d"),
    ],
)
def test_lifetime_over_the_max(store: Any, typ: str, lifetime: int, shown: str, limit: str) -> None:
    key, body = VALID_BODIES[typ]
    claims = {**body, "iss": key.kid, "iat": NOW, "exp": NOW + lifetime, "jti": "j1"}
    token = forge(header_for(key, typ), claims, key)
    assert_rejected(
        token,
        store,
        ClaimInvalid,
        "lifetime_too_long",
        f"lifetime exp - iat is {shown}; a {typ} may live at most {limit}",
        typ=typ,
    )


def test_exp_before_iat(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(exp=NOW), HUB)
    assert_rejected(
        token, store, ClaimInvalid, "exp_before_iat", f"exp {NOW} is not after iat {NOW}"
    )


def test_token_over_the_size_limit(store: Any) -> None:
    big = forge(header_for(HUB), alert_claims(padding="x" * DEFAULT_MAX_TOKEN_BYTES), HUB)
    assert_rejected(
        big,
        store,
        MalformedMessage,
        "too_large",
        f"token is {len(big)} bytes; the limit is 65536 bytes",
    )
    # Size comes first: a huge blob of garbage is refused without being parsed.
    assert_rejected(
        b"\xff" * (DEFAULT_MAX_TOKEN_BYTES + 1),
        store,
        MalformedMessage,
        "too_large",
        "token is 65537 bytes; the limit is 65536 bytes",
    )
    token = forge(header_for(HUB), alert_claims(), HUB)
    assert_rejected(
        token,
        store,
        MalformedMessage,
        "too_large",
        f"token is {len(token)} bytes; the limit is 100 bytes",
        max_bytes=100,
    )


@pytest.mark.parametrize("depth", [9, 20_000])
def test_deeply_nested_payload(store: Any, depth: int) -> None:
    payload = (
        to_json(alert_claims())[:-1] + b',"x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    )
    token = forge(header_for(HUB), payload, HUB)
    assert_rejected(
        token,
        store,
        MalformedMessage,
        "too_deep",
        f"payload JSON is nested {depth} levels deep; the limit is 8",
    )


def test_brackets_inside_strings_are_not_nesting(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(text='[[[[[[[[[[{{{{{{{{{{ "quoted \\" [[[['), HUB)
    assert verify(token, store).claims["text"].startswith("[[[[")


def test_pathological_header_is_scanned_in_linear_time(store: Any) -> None:
    # An unterminated string of escaped quotes made an earlier scanner quadratic; this
    # header arrives before any signature check, so it must be cheap to reject.
    def token(n: int) -> str:
        return forge(b'{"alg":"' + b'\\"' * n, alert_claims(), None)

    def seconds(sent: str) -> float:
        best = float("inf")
        for _ in range(7):  # the best of several runs: the machine's noise only adds time
            began = time.perf_counter()
            with pytest.raises(MalformedMessage) as caught:
                verify(sent, store)
            best = min(best, time.perf_counter() - began)
            assert caught.value.reason == "bad_json"
            if best > 1.0:
                break  # slow enough to tell already
        return best

    small, large = seconds(token(2_000)), seconds(token(20_000))
    print(f"\nheader of 2,000 escaped quotes {small * 1e3:.2f} ms, of 20,000 "
          f"{large * 1e3:.2f} ms: {large / small:.1f}x")
    # Ten times the input: about 10x the time when linear, about 100x when quadratic.
    assert large / small < 35
    assert len(store) == 0


def test_invalid_utf8_payload(store: Any) -> None:
    payload = to_json(alert_claims(text="caf_"))
    payload = payload.replace(b"caf_", b"caf\xe9")  # Latin-1, not UTF-8
    token = forge(header_for(HUB), payload, HUB)
    offset = payload.index(b"\xe9")
    assert_rejected(
        token,
        store,
        MalformedMessage,
        "not_utf8",
        f"payload is not valid UTF-8 (bad byte at offset {offset}); "
        "the sender must encode its JSON as UTF-8",
    )


def test_lone_surrogate_escape(store: Any) -> None:
    payload = to_json(alert_claims(text="x")).replace(b'"text":"x"', b'"text":"\\ud800"')
    token = forge(header_for(HUB), payload, HUB)
    assert_rejected(
        token,
        store,
        MalformedMessage,
        "bad_unicode",
        "payload contains an unpaired surrogate escape; send valid Unicode text",
    )


@pytest.mark.parametrize(
    ("payload", "reason", "message"),
    [
        (b"[1,2]", "not_object", "payload must be a JSON object"),
        (b"", "bad_json", "payload is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            b'{"iat":1,"iat":2}',
            "bad_json",
            "payload is not valid JSON: duplicate member 'iat'",
        ),
        (b'{"x":NaN}', "bad_json", "payload is not valid JSON: NaN is not allowed in JSON"),
        (b'{"x":1e999}', "bad_json", "payload is not valid JSON: number 1e999 is out of range"),
    ],
)
def test_payload_json_is_strict(store: Any, payload: bytes, reason: str, message: str) -> None:
    token = forge(header_for(HUB), payload, HUB)
    assert_rejected(token, store, MalformedMessage, reason, message)


def test_unknown_alert_category(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(category="gossip"), HUB)
    assert_rejected(
        token,
        store,
        SchemaError,
        "invalid_field",
        "category: must be one of 'crime', 'safety', 'suspicious', 'unknown_visitor', "
        "'lost_pet' or 'neighbourly'",
    )
    assert len(ALERT_CATEGORIES) == 6


def test_unknown_field(store: Any) -> None:
    token = forge(header_for(HUB), alert_claims(colour="red"), HUB)
    assert_rejected(token, store, SchemaError, "unknown_field", "colour: unknown field")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"jti": None}, "jti: must be a string"),
        ({"iat": "1750000000"}, "iat: must be an integer NumericDate (seconds since 1970)"),
        ({"exp": 1.5e9}, "exp: must be an integer NumericDate (seconds since 1970)"),
        ({"aud": [AUD]}, "aud: must be a string"),
        ({"iat": 10**30}, "iat: must be between 0 and 253402300799"),
        ({"exp": -1}, "exp: must be between 0 and 253402300799"),
    ],
)
def test_registered_claim_types(store: Any, change: dict[str, Any], message: str) -> None:
    token = forge(header_for(HUB), alert_claims(**change), HUB)
    assert_rejected(token, store, SchemaError, "invalid_field", message)


def test_missing_registered_claim(store: Any) -> None:
    claims = alert_claims()
    del claims["exp"]
    token = forge(header_for(HUB), claims, HUB)
    assert_rejected(token, store, SchemaError, "missing_field", "exp: required")


@pytest.mark.parametrize(
    ("token", "reason", "message"),
    [
        (
            "",
            "not_compact",
            "token has 1 segments; a compact JWS has exactly 3 (header.payload.signature)",
        ),
        (
            "a.b",
            "not_compact",
            "token has 2 segments; a compact JWS has exactly 3 (header.payload.signature)",
        ),
        (
            "a.b.c.d.e",
            "not_compact",
            "token has 5 segments; a compact JWS has exactly 3 (header.payload.signature)",
        ),
        (".e30.", "not_compact", "token has an empty header segment"),
        ("e30=.e30.AA", "bad_base64", "header segment is not unpadded base64url"),
        ("e3+.e30.AA", "bad_base64", "header segment is not unpadded base64url"),
        ("e31.e30.AA", "bad_base64", "header segment is not canonical base64url"),
        ("e30.e30.AA\n", "bad_base64", "signature segment is not unpadded base64url"),
        ("W10.e30.AA", "not_object", "header must be a JSON object"),
        ("e30.e30.AA", "alg_missing", "header has no alg; sign with Ed25519"),
        (
            "ëe30.e30.AA",
            "not_ascii",
            "token contains non-ASCII characters; a compact JWS is base64url text",
        ),
    ],
)
def test_malformed_structure(store: Any, token: str, reason: str, message: str) -> None:
    with pytest.raises(FederationError) as caught:
        verify(token, store)
    assert (caught.value.reason, str(caught.value)) == (reason, message)
    assert len(store) == 0


def test_non_text_token(store: Any) -> None:
    assert_rejected(
        12345,  # type: ignore[arg-type]
        store,
        MalformedMessage,
        "not_text",
        "a token must be text, not int",
    )


def test_bytes_tokens_are_accepted() -> None:
    token = forge(header_for(HUB), alert_claims(), HUB)
    assert verify(token.encode("ascii")).raw == token.encode("ascii")
    assert verify(bytearray(token.encode("ascii"))).raw == token.encode("ascii")


def test_unknown_expected_typ_is_a_caller_bug() -> None:
    with pytest.raises(ValueError):
        verify("a.b.c", typ="JWT")


# --- fuzzing --------------------------------------------------------------------------

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID_TOKEN = sign_message(HUB, TYP_ALERT, alert_claims(), now=NOW)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def _only_federation_errors(token: Any, **overrides: Any) -> Any:
    try:
        return verify(token, MemoryReplayStore(), **overrides)
    except FederationError:
        return None


@FUZZ
@given(st.text())
def test_fuzz_arbitrary_text(token: str) -> None:
    assert _only_federation_errors(token) is None


@FUZZ
@given(st.binary())
def test_fuzz_arbitrary_bytes(token: bytes) -> None:
    assert _only_federation_errors(token) is None


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete", "truncate"]),
            st.integers(min_value=0, max_value=len(VALID_TOKEN)),
            st.characters(codec="ascii"),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_mutated_valid_token(mutations: list[tuple[str, int, str]]) -> None:
    token = VALID_TOKEN
    for op, at, char in mutations:
        at = min(at, len(token))
        if op == "replace" and at < len(token):
            token = token[:at] + char + token[at + 1 :]
        elif op == "insert":
            token = token[:at] + char + token[at:]
        elif op == "delete":
            token = token[:at] + token[at + 1 :]
        elif op == "truncate":
            token = token[:at]
    result = _only_federation_errors(token)
    if result is not None:
        # No malleability: the only token that verifies is the original, byte for byte.
        assert token == VALID_TOKEN
        assert result.raw == VALID_TOKEN.encode("ascii")


@st.composite
def near_valid_headers(draw: st.DrawFn) -> dict[str, Any]:
    """Draw the valid header of a hub's alert, with each member kept, changed or dropped."""
    header: dict[str, Any] = header_for(HUB)
    for member in ("alg", "typ", "kid"):
        edit = draw(st.sampled_from(["keep", "keep", "keep", "keep", "change", "drop"]))
        if edit == "change":
            header[member] = draw(
                st.sampled_from(["Ed25519", "EdDSA", "none", "HS256", TYP_ALERT, HUB.kid])
                | json_values
            )
        elif edit == "drop":
            del header[member]
    extra = draw(
        st.dictionaries(
            st.sampled_from(["jwk", "crit", "b64", "zip"]) | st.text(max_size=5),
            json_values,
            max_size=2,
        )
    )
    return {**header, **extra} if draw(st.integers(0, 3)) == 0 else header


def test_fuzz_validly_framed_tokens() -> None:
    outcomes = Outcomes()

    @FUZZ
    @given(
        header=near_valid_headers(),
        claims=st.sampled_from(["valid", "valid", "fuzzed"]).flatmap(
            lambda how: st.just({}) if how == "valid"
            else st.dictionaries(st.text(max_size=12), json_values, max_size=8)
        ),
        signer=st.sampled_from([HUB, HUB, ATTACKER, None, b"secret"]),
        legacy=st.booleans(),
    )
    def check(header: dict[str, Any], claims: dict[str, Any], signer: Any, legacy: bool) -> None:
        sent = {**alert_claims(), **claims}
        token = forge(header, sent, signer)
        message = _only_federation_errors(token, allow_legacy_eddsa=legacy)
        if message is None:
            outcomes.note("refused")
            return
        outcomes.note("verified")
        # Only a hub's own signature under exactly the header a hub sends verifies.
        assert signer is HUB
        assert header == header_for(HUB, alg=header["alg"])
        assert header["alg"] == "Ed25519" or (legacy and header["alg"] == "EdDSA")
        assert message.claims == sent
        assert message.raw == token.encode("ascii")

    check()
    outcomes.require("verified", "refused")


@FUZZ
@given(
    typ=st.sampled_from(sorted(VALID_BODIES)),
    changes=st.dictionaries(
        st.sampled_from(["iss", "aud", "iat", "exp", "jti", "text", "cell", "window", "area"])
        | st.text(max_size=8),
        json_values | st.integers(min_value=-(10**30), max_value=10**30),
        max_size=4,
    ),
)
def test_fuzz_signed_claims_from_a_trusted_key(typ: str, changes: dict[str, Any]) -> None:
    key, body = VALID_BODIES[typ]
    claims = {**body, "iss": key.kid, "iat": NOW, "exp": NOW + 600, "jti": "fuzz-1", **changes}
    token = forge(header_for(key, typ), claims, key)
    message = _only_federation_errors(token, typ=typ)
    if message is not None:
        assert message.claims == claims
        assert message.raw == token.encode("ascii")


@FUZZ
@given(
    text=st.text(min_size=1, max_size=2000).filter(lambda t: t.strip()),
    category=st.sampled_from(ALERT_CATEGORIES),
    attachments=st.lists(
        st.fixed_dictionaries(
            {
                "sha256": st.binary(min_size=32, max_size=32).map(
                    lambda b: hashlib.sha256(b).hexdigest()
                ),
                "size": st.integers(min_value=1, max_value=25 * 1024 * 1024),
                "type": st.sampled_from(["image/jpeg", "image/png", "video/mp4"]),
            }
        ),
        max_size=4,
    ),
    skew=st.integers(min_value=-60, max_value=60),
)
def test_fuzz_signed_alerts_round_trip(
    text: str, category: str, attachments: list[dict[str, Any]], skew: int
) -> None:
    body = {
        "aud": AUD,
        "category": category,
        "text": text,
        "cell": CELL,
        "attachments": attachments,
    }
    token = sign_message(HUB, TYP_ALERT, body, now=NOW + skew)
    message = verify(token, MemoryReplayStore())
    assert message.token == token
    assert {k: message.claims[k] for k in body} == body
    assert verify(message.raw, MemoryReplayStore()).claims == message.claims
