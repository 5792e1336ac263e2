"""Hop-by-hop authentication of hub-to-gateway HTTP calls: RFC 9421 with Ed25519.

Every call a hub makes to its gateway carries an HTTP Message Signature (library:
http-message-signatures) over exactly ``@method``, ``@target-uri`` and ``content-digest``, with
the parameters ``created``, ``nonce`` and ``keyid``. ``Content-Digest`` (RFC 9530, sha-256)
binds the body. The verifier checks, in a fixed order so each rejection has one reason:

1. both headers present, one signature, well-formed, exactly the three components and the
   allowed parameters (``parse_signature``, a pure parser of outside input);
2. ``created`` within the freshness window (by the injected clock, never the library's);
3. the key, looked up by ``keyid`` in the verifier's trusted set, never taken from the message;
4. the signature over the target URI the *server* knows itself as (its public base URL plus
   the request path), so a request signed for another server or path does not verify;
5. the body against the signed ``Content-Digest``;
6. the nonce, remembered in a replay store until the signature can no longer be fresh.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
)
from http_message_signatures.algorithms import ED25519
from joserfc.jwk import OKPKey

from federation.errors import FederationError, ReplayDetected
from federation.keys import KID_PATTERN, SigningKey
from federation.replay import ReplayStore

log = logging.getLogger(__name__)

COVERED_COMPONENTS = ("@method", "@target-uri", "content-digest")
SIGNATURE_LABEL = "porchlight"
ALGORITHM_ID = ED25519.algorithm_id
DEFAULT_MAX_AGE_S = 60
DEFAULT_MAX_FUTURE_S = 5
# Both signature headers together stay far below this; anything longer is not ours.
MAX_HEADER_CHARS = 2048
_REQUIRED_PARAMS = frozenset({"created", "keyid", "nonce"})
_ALLOWED_PARAMS = _REQUIRED_PARAMS | {"alg"}
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class HopAuthError(FederationError):
    """A hop-by-hop HTTP signature is missing, malformed, stale or does not verify."""

    default_reason = "hop_auth"


class HopSignatureMissing(HopAuthError):
    """The request carries no Signature-Input / Signature headers."""

    default_reason = "hop_signature_missing"


class HopSignatureMalformed(HopAuthError):
    """The signature headers do not parse, or cover the wrong components or parameters."""

    default_reason = "hop_signature_malformed"


class HopNotFresh(HopAuthError):
    """The signature's ``created`` lies outside the freshness window."""

    default_reason = "hop_stale"


class HopUnknownKey(HopAuthError):
    """The signature's ``keyid`` names no trusted hop key."""

    default_reason = "hop_unknown_key"


class HopSignatureInvalid(HopAuthError):
    """The signature does not verify over this request as this server sees it."""

    default_reason = "hop_bad_signature"


class HopDigestError(HopAuthError):
    """Content-Digest is missing, malformed, or does not match the body."""

    default_reason = "digest_mismatch"


class HopReplay(HopAuthError):
    """The signature's nonce was already used while the signature is still fresh."""

    default_reason = "hop_replay"


@dataclass(frozen=True)
class HopSignature:
    """The parsed, not yet verified, signature of one request."""

    label: str
    components: tuple[str, ...]
    created: int
    keyid: str
    nonce: str
    signature: bytes


@dataclass(frozen=True)
class HopIdentity:
    """Who signed a request that verified, and when."""

    keyid: str
    created: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def content_digest(body: bytes) -> str:
    """Return the RFC 9530 Content-Digest field value (sha-256) for a body."""
    return f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"


def _parse_dictionary(value: str, name: str) -> dict[str, Any]:
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS:
        raise HopSignatureMalformed(
            f"{name} header is longer than {MAX_HEADER_CHARS} characters",
        )
    if not value.isascii():
        raise HopSignatureMalformed(f"{name} header is not ASCII")

    def reject_duplicate(key: str, context: str) -> None:
        raise ValueError(f"duplicate {context} key {key!r}")

    try:
        parsed = http_sf.parse(
            value.encode("ascii"), tltype="dictionary", on_duplicate_key=reject_duplicate
        )
    except (ValueError, TypeError, KeyError, IndexError, UnicodeError) as err:
        raise HopSignatureMalformed(
            f"{name} header is not a structured-field dictionary (RFC 8941): {err}",
        ) from err
    if not isinstance(parsed, dict):
        raise HopSignatureMalformed(f"{name} header is not a structured-field dictionary")
    return parsed


def parse_signature(signature_input: str, signature: str) -> HopSignature:
    """Parse the Signature-Input and Signature headers of a request, checking their shape."""
    inputs = _parse_dictionary(signature_input, "Signature-Input")
    sigs = _parse_dictionary(signature, "Signature")
    if len(inputs) != 1 or len(sigs) != 1:
        raise HopSignatureMalformed(
            f"expected exactly one signature, found {len(inputs)} in Signature-Input and "
            f"{len(sigs)} in Signature",
        )
    label, (members, params) = next(iter(inputs.items()))
    if label not in sigs:
        raise HopSignatureMalformed(
            "Signature-Input and Signature carry different labels",
        )
    sig_value, _sig_params = sigs[label]
    if not isinstance(members, list):
        raise HopSignatureMalformed("Signature-Input member must be an inner list of components")
    components: list[str] = []
    for item, item_params in members:
        if not isinstance(item, str) or item_params:
            raise HopSignatureMalformed(
                "covered components must be plain strings without parameters",
                reason="hop_components",
            )
        components.append(item)
    if sorted(components) != sorted(COVERED_COMPONENTS) or len(set(components)) != len(components):
        raise HopSignatureMalformed(
            f"the signature must cover exactly {', '.join(COVERED_COMPONENTS)}; "
            f"it covers {', '.join(components[:8]) or 'nothing'}",
            reason="hop_components",
        )
    missing = sorted(_REQUIRED_PARAMS - set(params))
    if missing:
        raise HopSignatureMalformed(
            f"signature parameter {missing[0]} is required", reason="hop_params"
        )
    extra = sorted(set(params) - _ALLOWED_PARAMS)
    if extra:
        raise HopSignatureMalformed(
            f"signature parameter {extra[0][:32]!r} is not allowed; use created, nonce and keyid",
            reason="hop_params",
        )
    created, keyid, nonce = params["created"], params["keyid"], params["nonce"]
    if isinstance(created, bool) or not isinstance(created, int) or created < 0:
        raise HopSignatureMalformed("created must be a non-negative integer", reason="hop_params")
    if not isinstance(keyid, str) or not KID_PATTERN.fullmatch(keyid):
        raise HopSignatureMalformed(
            "keyid must be a kid (43 characters of base64url)", reason="hop_params"
        )
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise HopSignatureMalformed(
            "nonce must be 16 to 64 characters of base64url", reason="hop_params"
        )
    if "alg" in params and params["alg"] != ALGORITHM_ID:
        raise HopSignatureMalformed(f"alg must be {ALGORITHM_ID} when present", reason="hop_params")
    if not isinstance(sig_value, bytes) or len(sig_value) != 64:
        raise HopSignatureMalformed(
            "Signature member must be a 64-byte Ed25519 signature (a byte sequence)",
        )
    return HopSignature(
        label=label,
        components=tuple(components),
        created=created,
        keyid=keyid,
        nonce=nonce,
        signature=sig_value,
    )


def parse_content_digest(value: str | None) -> dict[str, bytes]:
    """Parse a Content-Digest header into {algorithm: digest}; sha-256 is required."""
    if value is None:
        raise HopDigestError(
            "Content-Digest header is missing; sign the body's sha-256", reason="digest_missing"
        )
    try:
        members = _parse_dictionary(value, "Content-Digest")
    except HopSignatureMalformed as err:
        raise HopDigestError(err.message, reason="digest_malformed") from err
    digests: dict[str, bytes] = {}
    for algorithm, (digest, _params) in members.items():
        if isinstance(digest, bytes):
            digests[algorithm] = digest
    sha256 = digests.get("sha-256")
    if sha256 is None or len(sha256) != 32:
        raise HopDigestError(
            "Content-Digest must carry a 32-byte sha-256 member", reason="digest_malformed"
        )
    return digests


def check_fresh(
    sig: HopSignature,
    *,
    now: float,
    max_age: float = DEFAULT_MAX_AGE_S,
    max_future: float = DEFAULT_MAX_FUTURE_S,
) -> None:
    """Reject a signature created too long ago or too far in the future."""
    if sig.created < now - max_age:
        raise HopNotFresh(
            f"signature was created {now - sig.created:.0f} s ago; the limit is {max_age:g} s "
            "(sign each request just before sending it, and check the hub's clock)",
        )
    if sig.created > now + max_future:
        raise HopNotFresh(
            f"signature was created {sig.created - now:.0f} s in the future; the limit is "
            f"{max_future:g} s (check the hub's clock)",
            reason="hop_future",
        )


class _Message:
    """The request view the library reads: method, absolute URL and header field lines."""

    def __init__(self, method: str, url: str, headers: Any) -> None:
        self.method = method
        self.url = url
        self.headers = headers


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, keyid: str, public: Ed25519PublicKey | None = None, private: Any = None):
        self._keyid = keyid
        self._public = public
        self._private = private

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        return self._public if key_id == self._keyid else None

    def resolve_private_key(self, key_id: str) -> Any:
        if key_id != self._keyid or self._private is None:
            raise KeyError(key_id)
        return self._private


class _Verifier(HTTPMessageVerifier):
    # Freshness was already checked against the injected clock (check_fresh); the library's
    # own check reads the wall clock, which tests and replays of old traffic cannot control.
    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


def _public_key(key: Ed25519PublicKey | OKPKey) -> Ed25519PublicKey:
    if isinstance(key, OKPKey):
        key = key.public_key
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError("a hop key must be an Ed25519 public key")
    return key


def _signature_verifies(
    sig: HopSignature, key: Ed25519PublicKey, method: str, url: str, headers: Any
) -> bool:
    verifier = _Verifier(signature_algorithm=ED25519, key_resolver=_OneKey(sig.keyid, key))
    try:
        verifier.verify(
            _Message(method, url, headers),
            max_age=None,
            expect_tag=None,
            require_components=COVERED_COMPONENTS,
        )
    except HTTPMessageSignaturesException:
        return False
    return True


def _header_values(headers: Any, name: str) -> str | None:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        values = getall(name, [])
    else:
        values = [v for k, v in headers.items() if k.lower() == name.lower()]
    if not values:
        return None
    # Repeated field lines of a structured field combine with ", " (RFC 9110 section 5.3).
    return ", ".join(values)


def signature_from_headers(headers: Any) -> HopSignature:
    """Parse the signature of a request from its headers (a multidict or mapping)."""
    signature_input = _header_values(headers, "Signature-Input")
    signature = _header_values(headers, "Signature")
    if signature_input is None or signature is None:
        raise HopSignatureMissing(
            "request is not signed: Signature-Input and Signature headers are required "
            "(RFC 9421 hop-by-hop authentication)",
        )
    return parse_signature(signature_input, signature)


def verify_signed_request(
    sig: HopSignature,
    key: Ed25519PublicKey | OKPKey,
    *,
    method: str,
    target_uri: str,
    headers: Any,
    body: bytes | None,
    now: float,
    max_age: float = DEFAULT_MAX_AGE_S,
    replay_store: ReplayStore | None = None,
    presented_uri: str | None = None,
) -> HopIdentity:
    """Verify a parsed signature with the trusted key, then the body digest and the nonce."""
    # body=None: the caller streams the body and checks it against the signed Content-Digest
    # itself (parse_content_digest), as the gateway does for sealed clips.
    public = _public_key(key)
    # Parse the digest before the signature so a malformed field has its own reason.
    digests = parse_content_digest(_header_values(headers, "Content-Digest"))
    if not _signature_verifies(sig, public, method, target_uri, headers):
        # Tell a request signed for another server (a relayed or misaddressed one) from a
        # forgery: the only other URI worth trying is the one the request itself names.
        if (
            presented_uri is not None
            and presented_uri != target_uri
            and _signature_verifies(sig, public, method, presented_uri, headers)
        ):
            raise HopSignatureInvalid(
                f"request was signed for {presented_uri[:200]}, but this gateway is "
                f"{target_uri[:200]}; sign the URL of this gateway",
                reason="hop_wrong_target",
            )
        raise HopSignatureInvalid(
            "hop signature does not verify under the key for this keyid over this "
            "method and URL; the request was altered or signed by another key",
        )
    for algorithm, digest in digests.items() if body is not None else ():
        hasher = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}.get(algorithm)
        if hasher is not None and not hmac.compare_digest(digest, hasher(body).digest()):
            raise HopDigestError(
                f"Content-Digest {algorithm} does not match the body; the body was altered",
            )
    if replay_store is not None:
        try:
            replay_store.check_and_remember(sig.keyid, sig.nonce, sig.created + max_age, now)
        except ReplayDetected as err:
            raise HopReplay(
                "this signed request was already received (its nonce was used); "
                "sign every request afresh",
            ) from err
    return HopIdentity(keyid=sig.keyid, created=sig.created, nonce=sig.nonce)


def verify_request(
    *,
    method: str,
    target_uri: str,
    headers: Any,
    body: bytes,
    resolve_key: Callable[[str], Ed25519PublicKey | OKPKey | None] | Mapping[str, Any],
    now: float,
    max_age: float = DEFAULT_MAX_AGE_S,
    max_future: float = DEFAULT_MAX_FUTURE_S,
    replay_store: ReplayStore | None = None,
    presented_uri: str | None = None,
) -> HopIdentity:
    """Verify a request's hop signature in one call, looking the key up by keyid."""
    sig = signature_from_headers(headers)
    check_fresh(sig, now=now, max_age=max_age, max_future=max_future)
    key = resolve_key.get(sig.keyid) if isinstance(resolve_key, Mapping) else resolve_key(sig.keyid)
    if key is None:
        raise HopUnknownKey(
            f"keyid {sig.keyid} is not a registered hop key; join the gateway or register "
            "the hop key first",
        )
    return verify_signed_request(
        sig,
        key,
        method=method,
        target_uri=target_uri,
        headers=headers,
        body=body,
        now=now,
        max_age=max_age,
        replay_store=replay_store,
        presented_uri=presented_uri,
    )


def new_nonce() -> str:
    """Return a fresh random nonce for one signature."""
    return secrets.token_urlsafe(16)


def sign_request(
    key: SigningKey,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    now: float,
    nonce: str | None = None,
    include_alg: bool = False,
) -> dict[str, str]:
    """Return the Content-Digest, Signature-Input and Signature headers for a request."""
    headers: dict[str, str] = {}
    signer = HTTPMessageSigner(
        signature_algorithm=ED25519, key_resolver=_OneKey(key.kid, private=key.private)
    )
    try:
        signer.sign(
            _Message(method.upper(), url, headers),
            key_id=key.kid,
            created=datetime.datetime.fromtimestamp(int(now), tz=datetime.UTC),
            nonce=nonce or new_nonce(),
            label=SIGNATURE_LABEL,
            include_alg=include_alg,
            covered_component_ids=COVERED_COMPONENTS,
            body=bytes(body),
        )
    except HTTPMessageSignaturesException as err:
        # Only our own inputs can be wrong here, such as a URL that is not percent-encoded.
        raise ValueError(f"cannot sign a request to {url[:200]!r}: {err}") from err
    return headers


class HopSigner:
    """Signs a hub's requests to its gateway with its hop key and a clock."""

    def __init__(self, key: SigningKey, *, clock: Callable[[], float]) -> None:
        self.key = key
        self._clock = clock

    @property
    def keyid(self) -> str:
        """Return the kid of the hop key."""
        return self.key.kid

    def headers(self, method: str, url: str, body: bytes = b"") -> dict[str, str]:
        """Return fresh signature headers for one request."""
        return sign_request(self.key, method, url, body, now=self._clock())


def join_url(base: str, path: str, query: Iterable[tuple[str, str]] = ()) -> str:
    """Join a base URL and an absolute path (plus query pairs) into the URL to sign."""
    url = base.rstrip("/") + path
    pairs = list(query)
    return f"{url}?{urlencode(pairs)}" if pairs else url
