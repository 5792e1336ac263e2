"""Answers that name no household: a one-time key per request, and a sealed chain of custody.

A hub's answer to an agency request goes into the neighbourhood's public log, next to the
request and its public circle. Signed by the hub's long-term key, every answer of one hub would
carry the same key: anyone could intersect the circles it answered and read its history. So:

- **The public answer** is signed by a key used for that request only (``answer_key``). It
  carries that key (``key``, whose thumbprint is ``iss`` and the header's ``kid``), the request,
  the decision and, for an approval, the SHA-256 of each sealed file and nothing else: no size,
  no camera, no time, no member id. The gateway accepts it because it arrives over the
  hop-signed channel of a member the request was routed to.
- **The chain-of-custody statement** (``porchlight-custody+jws``) is signed by the hub's
  long-term key: the hub's key, the gateway, the request, the one-time key's kid and every clip
  (SHA-256 and size of the sealed file, camera, start, end). It is sealed with age to the
  agency's recipient and uploaded like a clip; the public answer lists its SHA-256 as
  ``custody``. Only the agency opens it, so only the agency learns which hub approved. A denial
  has no statement: the agency learns only that a hub in the circle said no.

The one-time key is derived, not stored: HKDF-SHA256 over the hub's long-term private key, with
the gateway's kid and the request id in ``info``. The hub can derive it again at any time, to
prove that an answer in the log is its own or to re-send an answer after a crash, and holds no
new secret to back up or lose. Nobody without the hub's private key can compute it, or link two
of its answers. docs/threat-model.md says what each party can still link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyrage import x25519

from federation.errors import FederationError, MalformedMessage
from federation.jws import loads_json_object, sign_message, split_compact, verify_message
from federation.keys import KeySet, SigningKey
from federation.schemas import (
    MAX_LIFETIME_S,
    TYP_ANSWER,
    TYP_CUSTODY,
    AnswerClaims,
    CustodyClaims,
)
from federation.sealed import SealError, open_clip, seal_clip, sha256_hex

__all__ = [
    "ANSWER_KEY_INFO",
    "AnswerInvalid",
    "CustodyInvalid",
    "SignedAnswer",
    "VerifiedAnswer",
    "VerifiedCustody",
    "answer_key",
    "open_custody",
    "sign_answer",
    "verify_answer",
    "verify_custody",
]

ANSWER_KEY_INFO = b"porchlight answer key v1"
# A statement lists at most 256 clips; 64 KiB is the JWS limit every receiver applies.
MAX_CUSTODY_BYTES = 64 * 1024


class AnswerInvalid(FederationError):
    """A public answer does not verify under the key it carries, or breaks the answer rules."""

    default_reason = "answer_invalid"


class CustodyInvalid(FederationError):
    """A chain-of-custody statement does not open, verify, or match its public answer."""

    default_reason = "custody_invalid"


def answer_key(hub_key: SigningKey, *, gateway_kid: str, request_id: str) -> SigningKey:
    """Derive the hub's one-time signing key for one request of one neighbourhood."""
    info = b"\0".join((ANSWER_KEY_INFO, gateway_kid.encode("ascii"), request_id.encode("ascii")))
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        hub_key.private.private_bytes_raw()
    )
    return SigningKey.from_private(Ed25519PrivateKey.from_private_bytes(seed))


@dataclass(frozen=True)
class SignedAnswer:
    """What a hub sends for one decision: the public answer and, for an approval, custody."""

    token: str
    key_kid: str
    custody: bytes | None = field(default=None, repr=False)
    statement: str | None = field(default=None, repr=False)

    @property
    def custody_sha256(self) -> str | None:
        """Return the SHA-256 of the sealed custody file, or None for a denial."""
        return None if self.custody is None else sha256_hex(self.custody)


def sign_answer(
    hub_key: SigningKey,
    *,
    gateway_kid: str,
    request_id: str,
    decision: Literal["approved", "denied"],
    clips: Iterable[Mapping[str, Any]] = (),
    agency_kid: str | None = None,
    recipient: str | None = None,
    now: float,
    lifetime_s: int | None = None,
) -> SignedAnswer:
    """Sign the public answer with the one-time key, and seal custody for an approval."""
    one_time = answer_key(hub_key, gateway_kid=gateway_kid, request_id=request_id)
    issued = int(now)
    exp = issued + int(lifetime_s or MAX_LIFETIME_S[TYP_ANSWER])
    listed = [dict(clip) for clip in clips]
    claims: dict[str, Any] = {
        "aud": gateway_kid,
        "request": request_id,
        "decision": decision,
        "key": dict(one_time.public_jwk),
        "iat": issued,
        "exp": exp,
    }
    statement = custody = None
    if decision == "approved":
        if agency_kid is None or recipient is None:
            raise ValueError("an approval needs the agency's kid and age recipient")
        statement = sign_message(
            hub_key,
            TYP_CUSTODY,
            {
                "aud": agency_kid,
                "hub_key": dict(hub_key.public_jwk),
                "gateway": gateway_kid,
                "request": request_id,
                "answer_key": one_time.kid,
                "clips": listed,
                "iat": issued,
                "exp": exp,
            },
            now=issued,
        )
        custody = seal_clip(statement.encode("ascii"), recipient)
        claims["clips"] = [{"sha256": clip["sha256"]} for clip in listed]
        claims["custody"] = {"sha256": sha256_hex(custody)}
    elif listed:
        raise ValueError("a denial lists no clips")
    token = sign_message(one_time, TYP_ANSWER, claims, now=issued)
    return SignedAnswer(token=token, key_kid=one_time.kid, custody=custody, statement=statement)


@dataclass(frozen=True)
class VerifiedAnswer:
    """A public answer whose signature under its own one-time key checked out."""

    token: str
    kid: str
    jwk: dict[str, str]
    claims: AnswerClaims = field(repr=False)

    @property
    def sealed(self) -> list[str]:
        """Return the SHA-256 of every sealed file it lists: the clips, then the custody file."""
        named = [clip.sha256 for clip in self.claims.clips]
        if self.claims.custody is not None:
            named.append(self.claims.custody.sha256)
        return named


def verify_answer(
    token: str | bytes, *, audience: str, now: float, leeway: float | None = None
) -> VerifiedAnswer:
    """Verify a public answer under the one-time key it carries, for this neighbourhood."""
    try:
        parts = split_compact(token)
        payload = loads_json_object(parts.payload, name="payload")
        jwk = payload.get("key")
        if not isinstance(jwk, dict):
            raise MalformedMessage(
                "key: an answer carries the public JWK of its one-time key", reason="missing_key"
            )
        # The key only names itself: the signature, iss == kid == its thumbprint, and the
        # gateway's routing (or the agency's custody statement) are what make it trusted.
        trusted = KeySet([jwk])
        options: dict[str, Any] = {} if leeway is None else {"leeway": leeway}
        message = verify_message(
            token, typ=TYP_ANSWER, trusted=trusted, audience=audience, now=now, **options
        )
    except AnswerInvalid:
        raise
    except FederationError as err:
        raise AnswerInvalid(str(err), reason=err.reason) from err
    claims = cast(AnswerClaims, message.model)
    return VerifiedAnswer(
        token=message.token, kid=message.kid, jwk=trusted.jwk(message.kid), claims=claims
    )


@dataclass(frozen=True)
class VerifiedCustody:
    """A chain-of-custody statement that opened, verified and matches its public answer."""

    statement: str
    hub_kid: str
    hub_jwk: dict[str, str]
    claims: CustodyClaims = field(repr=False)


def open_custody(sealed: bytes, identity: str | x25519.Identity) -> str:
    """Open a sealed custody file with the agency's age identity; return the statement JWS."""
    try:
        data = open_clip(sealed, identity)
    except SealError as err:
        raise CustodyInvalid(f"the custody file does not open: {err}", reason=err.reason) from err
    if len(data) > MAX_CUSTODY_BYTES or not data.isascii():
        raise CustodyInvalid("the custody file does not hold a compact JWS", reason="malformed")
    return data.decode("ascii")


def verify_custody(
    statement: str, answer: VerifiedAnswer, *, agency_kid: str
) -> VerifiedCustody:
    """Verify a custody statement under the hub key it names, and match it to its answer."""
    try:
        payload = loads_json_object(split_compact(statement).payload, name="payload")
        trusted = KeySet([payload.get("hub_key")])
        message = verify_message(
            statement,
            typ=TYP_CUSTODY,
            trusted=trusted,
            audience=agency_kid,
            # A record: checked as of when it was signed, like the answer it goes with.
            now=float(answer.claims.iat),
        )
    except FederationError as err:
        raise CustodyInvalid(f"the custody statement does not verify: {err}") from err
    claims = cast(CustodyClaims, message.model)
    public = answer.claims
    problems = []
    if claims.answer_key != answer.kid:
        problems.append("it names another one-time key than the answer's")
    if claims.request != public.request:
        problems.append(f"it is about request {claims.request}, not {public.request}")
    if claims.gateway != public.aud:
        problems.append("it names another neighbourhood than the answer's")
    if [clip.sha256 for clip in claims.clips] != [clip.sha256 for clip in public.clips]:
        problems.append("its clips are not the ones the public answer lists")
    if problems:
        raise CustodyInvalid(f"the custody statement does not match its answer: {problems[0]}")
    return VerifiedCustody(
        statement=statement,
        hub_kid=message.kid,
        hub_jwk=trusted.jwk(message.kid),
        claims=claims,
    )
