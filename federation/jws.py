"""Signed end-to-end messages: compact JWS with Ed25519, checked strictly.

``verify_message`` checks a token in a fixed order and stops at the first problem, so every
rejection has one exact reason and nothing is recorded for a rejected token:

1. size, then structure: three canonical base64url segments, a flat JSON header;
2. ``alg`` (only ``Ed25519``; legacy ``EdDSA`` on request) before any key is looked at;
3. header members (only ``alg``, ``typ``, ``kid``), then ``typ``;
4. the key, taken only from the caller's trusted set by ``kid``, then the signature;
5. the payload: strict UTF-8, bounded nesting, one JSON object;
6. registered claims: ``iss`` is the signing kid, ``aud``, ``iat``, ``exp``, lifetime;
7. the message type's schema;
8. the replay store, last, so only fully valid messages are remembered.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import secrets
import warnings
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws as jose_jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import OKPKey

from federation.errors import (
    AlgorithmRejected,
    ClaimInvalid,
    HeaderRejected,
    MalformedMessage,
    MessageExpired,
    MessageNotYetValid,
    SchemaError,
    SignatureInvalid,
    WrongAudience,
    WrongType,
)
from federation.keys import KeySet, SigningKey
from federation.replay import ReplayStore
from federation.schemas import MAX_LIFETIME_S, MAX_NUMERIC_DATE, Claims, parse_claims
from federation.scope import format_duration

log = logging.getLogger(__name__)

ALG = "Ed25519"
LEGACY_ALG = "EdDSA"
DEFAULT_MAX_TOKEN_BYTES = 64 * 1024
DEFAULT_MAX_DEPTH = 8
DEFAULT_LEEWAY_S = 60
ALLOWED_HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})
# Header members that would let a message choose or point at its own verification key.
_KEY_CARRYING_MEMBERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# A JSON string (so brackets inside it are not counted as nesting) or a bracket. The closing
# quote is optional so an unterminated string is consumed once, keeping the scan linear.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]+|\\.)*"?|[\[\]{}]', re.DOTALL)


@dataclass(frozen=True)
class CompactParts:
    """The decoded segments of a compact JWS; nothing in it is verified yet."""

    header: dict[str, Any]
    payload: bytes
    signature: bytes
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class VerifiedMessage:
    """A message whose signature, claims, schema and freshness all checked out."""

    header: dict[str, Any]
    claims: dict[str, Any]
    raw: bytes = field(repr=False)
    kid: str
    typ: str
    model: Claims = field(repr=False)

    @property
    def token(self) -> str:
        """Return the exact token text that was verified."""
        return self.raw.decode("ascii")


def _show(value: Any, limit: int = 80) -> str:
    """Render an untrusted value for an error message without echoing megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def new_jti() -> str:
    """Return a fresh random message id."""
    return secrets.token_urlsafe(18)


def _b64url_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64url_decode(segment: bytes, name: str) -> bytes:
    # Only canonical base64url is accepted, so one message has exactly one byte form:
    # the log and the relays carry these exact bytes.
    if not _B64URL.fullmatch(segment.decode("ascii")) or len(segment) % 4 == 1:
        raise MalformedMessage(f"{name} segment is not unpadded base64url", reason="bad_base64")
    data = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    if _b64url_encode(data) != segment:
        raise MalformedMessage(f"{name} segment is not canonical base64url", reason="bad_base64")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two parsers could pick different values for a repeated name.
            raise ValueError(f"duplicate member {_show(key)}")
        result[key] = value
    return result


def _nesting_depth(text: str) -> int:
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _check_unicode(value: Any, name: str) -> None:
    # JSON escapes can spell lone surrogates (\ud800), which are not Unicode text and
    # cannot be stored or shown; reject them like invalid UTF-8.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise MalformedMessage(
                f"{name} contains an unpaired surrogate escape; send valid Unicode text",
                reason="bad_unicode",
            ) from err
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key, name)
            _check_unicode(item, name)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item, name)


def loads_json_object(data: bytes, *, name: str, max_depth: int = DEFAULT_MAX_DEPTH) -> dict:
    """Parse strict UTF-8 JSON that must be one object, nested at most max_depth deep."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MalformedMessage(
            f"{name} is not valid UTF-8 (bad byte at offset {err.start}); "
            "the sender must encode its JSON as UTF-8",
            reason="not_utf8",
        ) from err
    # Python's json module recurses once per nesting level, so measure depth before parsing.
    depth = _nesting_depth(text)
    if depth > max_depth:
        raise MalformedMessage(
            f"{name} JSON is nested {depth} levels deep; the limit is {max_depth}",
            reason="too_deep",
        )
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
        )
    except ValueError as err:
        raise MalformedMessage(f"{name} is not valid JSON: {err}", reason="bad_json") from err
    if not isinstance(value, dict):
        raise MalformedMessage(f"{name} must be a JSON object", reason="not_object")
    _check_unicode(value, name)
    return value


def split_compact(token: str | bytes, *, max_bytes: int = DEFAULT_MAX_TOKEN_BYTES) -> CompactParts:
    """Split a compact JWS into decoded header, payload and signature, checking size first."""
    if not isinstance(token, str | bytes | bytearray | memoryview):
        raise MalformedMessage(
            f"a token must be text, not {type(token).__name__}", reason="not_text"
        )
    if len(token) > max_bytes:
        raise MalformedMessage(
            f"token is {len(token)} bytes; the limit is {max_bytes} bytes",
            reason="too_large",
        )
    if isinstance(token, str):
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError as err:
            raise MalformedMessage(
                "token contains non-ASCII characters; a compact JWS is base64url text",
                reason="not_ascii",
            ) from err
    else:
        raw = bytes(token)
        if not raw.isascii():
            raise MalformedMessage(
                "token contains non-ASCII bytes; a compact JWS is base64url text",
                reason="not_ascii",
            )
    segments = raw.split(b".")
    if len(segments) != 3:
        raise MalformedMessage(
            f"token has {len(segments)} segments; a compact JWS has exactly 3 "
            "(header.payload.signature)",
            reason="not_compact",
        )
    header_b64, payload_b64, signature_b64 = segments
    if not header_b64:
        raise MalformedMessage("token has an empty header segment", reason="not_compact")
    header_bytes = _b64url_decode(header_b64, "header")
    payload = _b64url_decode(payload_b64, "payload")
    signature = _b64url_decode(signature_b64, "signature")
    # Deep enough that a smuggled jwk or x5c is reported as such, not as "too deep".
    header = loads_json_object(header_bytes, name="header", max_depth=4)
    return CompactParts(header=header, payload=payload, signature=signature, raw=raw)


def check_alg(header: dict[str, Any], *, allow_legacy_eddsa: bool = False) -> str:
    """Return the header's alg if it is Ed25519 (or allowed legacy EdDSA), else reject it."""
    alg = header.get("alg")
    if alg is None:
        raise AlgorithmRejected("header has no alg; sign with Ed25519", reason="alg_missing")
    if alg == ALG or (alg == LEGACY_ALG and allow_legacy_eddsa):
        return alg
    if alg == "none":
        raise AlgorithmRejected("alg none (an unsigned token) is never accepted", reason="alg_none")
    if alg == LEGACY_ALG:
        raise AlgorithmRejected(
            "alg EdDSA is the legacy name and is not accepted here; sign with alg Ed25519 "
            "(RFC 9864)",
            reason="alg_legacy",
        )
    raise AlgorithmRejected(
        f"alg {_show(alg)} is not allowed; Porchlight messages are signed with Ed25519",
    )


def check_header_members(header: dict[str, Any]) -> None:
    """Reject any header member besides alg, typ and kid."""
    extra = sorted(set(header) - ALLOWED_HEADER_MEMBERS)
    if not extra:
        return
    name = extra[0]
    if name in _KEY_CARRYING_MEMBERS:
        why = "keys come only from the trusted key set, never from a message"
    elif name == "crit":
        why = "no critical extensions are defined"
    else:
        why = "a header may carry only alg, typ and kid"
    raise HeaderRejected(f"header member {_show(name)} is not allowed: {why}")


def verify_signature(parts: CompactParts, key: OKPKey, *, allow_legacy_eddsa: bool = False) -> None:
    """Check the JWS signature with the given public key, or raise SignatureInvalid."""
    alg = check_alg(parts.header, allow_legacy_eddsa=allow_legacy_eddsa)
    try:
        with warnings.catch_warnings():
            # joserfc warns that EdDSA is deprecated; we only reach it when asked to.
            warnings.simplefilter("ignore", SecurityWarning)
            jose_jws.deserialize_compact(parts.raw, key, algorithms=[alg])
    except JoseError as err:
        raise SignatureInvalid(
            "signature does not verify under the trusted key for this kid; "
            "the message was altered or not signed by that key",
        ) from err


def sign_compact(
    key: SigningKey, header: dict[str, Any], payload: bytes, *, allow_legacy_eddsa: bool = False
) -> str:
    """Sign a payload as a compact JWS with exactly the given header members."""
    check_alg(header, allow_legacy_eddsa=allow_legacy_eddsa)
    check_header_members(header)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return jose_jws.serialize_compact(header, payload, key.okp, algorithms=[header["alg"]])


def sign_message(key: SigningKey, typ: str, claims: dict[str, Any], *, now: float) -> str:
    """Sign claims as a message of type typ, adding iss, iat, exp and jti when missing."""
    if typ not in MAX_LIFETIME_S:
        raise WrongType(f"cannot sign unknown message type {_show(typ)}", reason="unknown_typ")
    body = dict(claims)
    body.setdefault("iss", key.kid)
    if body["iss"] != key.kid:
        raise ClaimInvalid(
            f"iss {_show(body['iss'])} is not the signing key's kid {key.kid}; "
            "leave iss out and it is filled in",
            reason="iss_mismatch",
        )
    body.setdefault("iat", int(now))
    if isinstance(body["iat"], int) and not isinstance(body["iat"], bool):
        body.setdefault("exp", body["iat"] + MAX_LIFETIME_S[typ])
    body.setdefault("jti", new_jti())
    parse_claims(typ, body)
    _check_lifetime(typ, body["iat"], body["exp"])
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )
    token = sign_compact(key, {"alg": ALG, "typ": typ, "kid": key.kid}, payload)
    if len(token) > DEFAULT_MAX_TOKEN_BYTES:
        raise MalformedMessage(
            f"signed {typ} is {len(token)} bytes; receivers accept at most "
            f"{DEFAULT_MAX_TOKEN_BYTES} bytes, so shorten the message",
            reason="too_large",
        )
    return token


def _check_lifetime(typ: str, iat: int, exp: int) -> None:
    if exp <= iat:
        raise ClaimInvalid(f"exp {exp} is not after iat {iat}", reason="exp_before_iat")
    limit = MAX_LIFETIME_S[typ]
    if exp - iat > limit:
        raise ClaimInvalid(
            f"lifetime exp - iat is {format_duration(exp - iat)}; a {typ} may live at most "
            f"{format_duration(limit)}",
            reason="lifetime_too_long",
        )


def _registered_claims(claims: dict[str, Any]) -> tuple[str, str, int, int, str]:
    for name in ("iss", "aud", "jti"):
        if name not in claims:
            raise SchemaError(f"{name}: required", reason="missing_field", field=name)
        if not isinstance(claims[name], str):
            raise SchemaError(f"{name}: must be a string", reason="invalid_field", field=name)
    for name in ("iat", "exp"):
        if name not in claims:
            raise SchemaError(f"{name}: required", reason="missing_field", field=name)
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(
                f"{name}: must be an integer NumericDate (seconds since 1970)",
                reason="invalid_field",
                field=name,
            )
        if not 0 <= value <= MAX_NUMERIC_DATE:
            raise SchemaError(
                f"{name}: must be between 0 and {MAX_NUMERIC_DATE}",
                reason="invalid_field",
                field=name,
            )
    return claims["iss"], claims["aud"], claims["iat"], claims["exp"], claims["jti"]


def verify_message(
    token: str | bytes,
    *,
    typ: str,
    trusted: KeySet,
    audience: str,
    now: float,
    replay_store: ReplayStore | None = None,
    leeway: float = DEFAULT_LEEWAY_S,
    max_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    allow_legacy_eddsa: bool = False,
) -> VerifiedMessage:
    """Verify a signed message of type typ for this audience and return its claims."""
    if typ not in MAX_LIFETIME_S:
        raise ValueError(f"unknown message type {typ!r}")
    parts = split_compact(token, max_bytes=max_bytes)
    header = parts.header
    check_alg(header, allow_legacy_eddsa=allow_legacy_eddsa)
    check_header_members(header)
    got_typ = header.get("typ")
    if got_typ is None:
        raise WrongType(f"header has no typ; expected {typ}", reason="typ_missing")
    if got_typ != typ:
        raise WrongType(f"typ is {_show(got_typ)}, expected {typ}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise HeaderRejected(
            "header has no kid; the sender must name its key", reason="kid_missing"
        )
    key = trusted.get(kid)
    verify_signature(parts, key, allow_legacy_eddsa=allow_legacy_eddsa)

    claims = loads_json_object(parts.payload, name="payload", max_depth=max_depth)
    iss, aud, iat, exp, jti = _registered_claims(claims)
    if iss != kid:
        raise ClaimInvalid(
            f"iss {_show(iss)} is not the signing key's kid {kid}", reason="iss_mismatch"
        )
    if aud != audience:
        raise WrongAudience(
            f"aud {_show(aud)} is not this neighbourhood ({audience}); "
            "the message was meant for another gateway",
        )
    if iat > now + leeway:
        raise MessageNotYetValid(
            f"iat is {iat - now:.0f} s in the future (allowed clock skew {leeway:g} s); "
            "check the sender's clock",
        )
    if now > exp + leeway:
        raise MessageExpired(
            f"message expired {now - exp:.0f} s ago; ask the sender for a fresh one",
        )
    _check_lifetime(typ, iat, exp)
    model = parse_claims(typ, claims)
    if replay_store is not None:
        replay_store.check_and_remember(iss, jti, exp, now)
    log.debug("verified %s %s from %s", typ, jti, kid)
    return VerifiedMessage(
        header=header, claims=claims, raw=parts.raw, kid=kid, typ=typ, model=model
    )
