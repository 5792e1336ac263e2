"""The neighbourhood's transparency log: its name and key, its entries, and proof encodings.

Each gateway keeps one RFC 9162 log of the exact JWS bytes of registry versions, agency
requests and hub answers. It signs checkpoints (C2SP signed notes) with its own Ed25519 key
under the key name and origin ``porchlight-gateway/<gateway kid>``, so a hub that pinned the
gateway's key at join already holds the log's verifier key. Note signatures, JWS and hop
signatures never sign the same bytes: a note is lines of text, a JWS signing input is one line
of base64url with a dot, a hop signature base starts with ``"@method"``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from federation.errors import FederationError, MalformedMessage, SchemaError
from federation.jws import loads_json_object, split_compact
from federation.keys import SigningKey, import_public_jwk
from federation.schemas import TYP_ANSWER, TYP_REGISTRY, TYP_REQUEST
from federation.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE
from federation.tlog.note import NoteSigner, NoteVerifier

ORIGIN_PREFIX = "porchlight-gateway/"
ENTRY_KINDS = {TYP_REGISTRY: "registry", TYP_REQUEST: "request", TYP_ANSWER: "answer"}
# Request ids travel in URL paths; new_jti() makes 24 characters.
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_ENTRIES_PER_PAGE = 256
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


class LogRangeError(FederationError):
    """A log index, size or range is malformed or beyond the log."""

    default_reason = "bad_range"


def log_origin(gateway_kid: str) -> str:
    """Return the log's origin and checkpoint key name for a gateway kid."""
    return ORIGIN_PREFIX + gateway_kid


def checkpoint_signer(key: SigningKey) -> NoteSigner:
    """Return the note signer a gateway signs its checkpoints with (its own key)."""
    return NoteSigner(log_origin(key.kid), key.private)


def checkpoint_verifier(gateway_jwk: Mapping[str, Any]) -> NoteVerifier:
    """Return the verifier of a gateway's checkpoints, from its pinned public JWK."""
    key = import_public_jwk(gateway_jwk)
    return NoteVerifier.from_public_key(log_origin(key.thumbprint()), key.public_key)


def check_request_id(value: object) -> str:
    """Return a request id (a jti fit for URL paths), or raise SchemaError."""
    if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
        raise SchemaError(
            "jti: a request id must be 16 to 64 characters of A-Z a-z 0-9 _ - "
            "(federation.jws.new_jti makes one)",
            reason="bad_request_id",
            field="jti",
        )
    return value


@dataclass(frozen=True)
class PeekedEntry:
    """A log entry's kind, signer and claims, read without checking the signature."""

    kind: str
    typ: str
    kid: str
    claims: dict[str, Any]


def peek_entry(entry: bytes | str) -> PeekedEntry:
    """Read a log entry's typ, kid and claims without verifying it (to pick the key)."""
    parts = split_compact(entry)
    typ = parts.header.get("typ")
    kind = ENTRY_KINDS.get(typ) if isinstance(typ, str) else None
    if kind is None:
        raise MalformedMessage(
            f"log entry has typ {str(typ)[:60]!r}; the log holds only registry versions, "
            "requests and answers",
            reason="unknown_typ",
        )
    kid = parts.header.get("kid")
    if not isinstance(kid, str):
        raise MalformedMessage("log entry has no kid", reason="kid_missing")
    claims = loads_json_object(parts.payload, name="payload")
    return PeekedEntry(kind=kind, typ=typ, kid=kid, claims=claims)


def encode_hashes(hashes: Iterable[bytes]) -> list[str]:
    """Encode proof hashes as standard base64 strings for JSON."""
    return [base64.b64encode(value).decode("ascii") for value in hashes]


def decode_hashes(values: Any, *, limit: int = 64) -> list[bytes]:
    """Decode a JSON list of base64 proof hashes strictly."""
    if not isinstance(values, list) or len(values) > limit:
        raise LogRangeError("proof hashes must be a list of at most 64 items", reason="bad_proof")
    hashes = []
    for value in values:
        try:
            raw = base64.b64decode(value.encode("ascii"), validate=True)
        except (AttributeError, UnicodeEncodeError, binascii.Error, ValueError) as err:
            raise LogRangeError("a proof hash is not base64", reason="bad_proof") from err
        if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != value:
            raise LogRangeError(
                "a proof hash is not 32 bytes of canonical base64", reason="bad_proof"
            )
        hashes.append(raw)
    return hashes


def parse_index(value: str | None, name: str, *, default: int | None = None) -> int:
    """Parse a decimal index or size from a query string."""
    if value is None or value == "":
        if default is None:
            raise LogRangeError(f"{name} is required", reason="bad_range")
        return default
    if not _DECIMAL.fullmatch(value) or int(value) > MAX_TREE_SIZE:
        raise LogRangeError(
            f"{name} must be a non-negative decimal integer without leading zeros",
            reason="bad_range",
        )
    return int(value)
