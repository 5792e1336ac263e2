"""The v1 wire formats between hubs and a gateway, and their strict parsers.

Each parser takes the raw bytes or text that came off the network and either returns a typed
value or raises a ``FederationError`` with a reason; none raises anything else. JSON goes
through ``loads_json_object`` (strict UTF-8, bounded nesting, no duplicate names), then a
pydantic model that forbids unknown fields where the sender is a hub. Parsers of the
gateway's answers ignore unknown fields, so a newer gateway can add some without breaking
older hubs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from federation.errors import MalformedMessage, SchemaError
from federation.jws import loads_json_object
from federation.schemas import Cell, Kid, PublicJwk

PROTOCOL_VERSION = 1
MAX_TOKEN_CHARS = 64 * 1024
MAX_JOIN_BYTES = MAX_TOKEN_CHARS + 4096
MAX_ACK_BYTES = 128
# A frame carries one JWS plus, for a request, its tlog-proof (64 hashes and a checkpoint).
MAX_FRAME_BYTES = MAX_TOKEN_CHARS + 16 * 1024
MAX_ANSWER_BYTES = 16 * 1024
MAX_PROOF_CHARS = 12 * 1024
# 256 entries of a request or answer JWS each (a few KiB) plus their keys.
MAX_ENTRIES_BYTES = 8 * 1024 * 1024
MAX_SEQ = 2**53 - 1
_SEQ_TEXT = re.compile(r"0|[1-9][0-9]{0,15}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
_ALERT_ID = re.compile(r"[0-9a-f]{64}")
# A stream message id: an alert's SHA-256, or an agency request's id (its jti).
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

Token = Annotated[
    str, Field(min_length=5, max_length=MAX_TOKEN_CHARS, pattern=rf"^{_TOKEN.pattern}$")
]
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _FromHub(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _FromGateway(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class JoinRequest(_FromHub):
    """POST /v1/join: an invite code, the hub's public key and its signed registration."""

    code: Annotated[str, Field(min_length=1, max_length=64)]
    jwk: PublicJwk
    registration: Token


class Ack(_FromHub):
    """A hub's acknowledgement on the stream: every message up to seq is safely stored."""

    ack: Seq


class GatewayKey(_FromGateway):
    """The gateway's identity as it presents it."""

    kid: Kid
    jwk: PublicJwk
    name: Name
    url: Annotated[str, Field(min_length=1, max_length=2048)]


class Info(_FromGateway):
    """GET /v1/info."""

    v: int
    gateway: GatewayKey


class MemberView(_FromGateway):
    """A member as the gateway confirms it after join or register."""

    kid: Kid
    cell: Cell
    hop_kid: Kid


class JoinAnswer(_FromGateway):
    """The gateway's answer to a join: its key (to pin) and the new membership."""

    gateway: GatewayKey
    member: MemberView
    since: Seq


class RegisterAnswer(_FromGateway):
    """The gateway's answer to a registration."""

    member: MemberView


class AlertAnswer(_FromGateway):
    """The gateway's answer to an accepted alert."""

    id: Annotated[str, Field(pattern=rf"^{_ALERT_ID.pattern}$", max_length=64)]


class RegistryAnswer(_FromGateway):
    """GET /v1/registry."""

    registry: Token
    authority_jwk: PublicJwk
    version: Annotated[int, Field(ge=1, le=2**53)]
    log_index: Seq


class RegistryPosted(_FromGateway):
    """The gateway's answer to POST /v1/registry."""

    version: Annotated[int, Field(ge=1, le=2**53)]
    log_index: Seq


class AnswerPosted(_FromGateway):
    """The gateway's receipt for a hub's answer, with a tlog-proof of it (if it sent one)."""

    log_index: Seq
    checkpoint: Annotated[str, Field(min_length=1, max_length=MAX_PROOF_CHARS)]
    proof: Annotated[str, Field(min_length=1, max_length=MAX_PROOF_CHARS)] | None = None


ProofHashes = Annotated[list[str], Field(max_length=64)]


class InclusionAnswer(_FromGateway):
    """GET /v1/log/proof/inclusion."""

    index: Seq
    size: Seq
    hashes: ProofHashes


class ConsistencyAnswer(_FromGateway):
    """GET /v1/log/proof/consistency."""

    old: Seq
    new: Seq
    hashes: ProofHashes


class LogEntry(_FromGateway):
    """One entry of GET /v1/log/entries; jwk is the signer's key as the gateway knows it."""

    index: Seq
    kind: Annotated[str, Field(max_length=32)]
    jws: Token
    jwk: dict[str, Any]


class EntriesAnswer(_FromGateway):
    """GET /v1/log/entries."""

    size: Seq
    entries: Annotated[list[LogEntry], Field(max_length=256)]


class RequestAccepted(_FromGateway):
    """The gateway's answer to an agency's POST /v1/requests."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    log_index: Seq
    proof: Annotated[str, Field(min_length=1, max_length=MAX_PROOF_CHARS)]


class RequestStatus(_FromGateway):
    """GET /v1/requests/{id}/status: counts only, never which hub."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    log_index: Seq
    asked: Seq
    approved: Seq
    denied: Seq
    pending: Seq
    clips_waiting: Seq


class ClipState(_FromGateway):
    """A sealed file an approving answer lists, its size and whether the gateway still holds it."""

    sha256: Annotated[str, Field(pattern=rf"^{_ALERT_ID.pattern}$", max_length=64)]
    size: Annotated[int, Field(ge=1)] | None = None
    available: bool


class ApprovedAnswer(_FromGateway):
    """One approving answer as the agency fetches it: its one-time key, never the member."""

    key: Kid
    jws: Token
    log_index: Seq
    proof: Annotated[str, Field(min_length=1, max_length=MAX_PROOF_CHARS)]
    files: Annotated[list[ClipState], Field(max_length=257)]


class AnswersAnswer(_FromGateway):
    """GET /v1/requests/{id}/answers."""

    answers: Annotated[list[ApprovedAnswer], Field(max_length=100_000)]


class AnnouncementAccepted(_FromGateway):
    """The gateway's answer to an agency's POST /v1/announcements."""

    id: Annotated[str, Field(pattern=rf"^{_ALERT_ID.pattern}$", max_length=64)]
    expires: Annotated[float, Field(ge=0)]


class AttachmentStored(_FromGateway):
    """The gateway's answer to a photo upload (POST /v1/alerts/{id}/attachments/{sha256})."""

    sha256: Annotated[str, Field(pattern=rf"^{_ALERT_ID.pattern}$", max_length=64)]
    size: Annotated[int, Field(ge=1)]
    type: Annotated[str, Field(max_length=64)]
    expires: Annotated[float, Field(ge=0)]


class ErrorAnswer(_FromGateway):
    """Any 4xx or 5xx answer: a short reason code and a human message."""

    error: Annotated[str, Field(max_length=2000)]
    reason: Annotated[str, Field(max_length=64)]
    field: Annotated[str, Field(max_length=200)] | None = None


class Frame(_FromGateway):
    """One message pushed on the stream, numbered by the gateway per hub."""

    seq: Annotated[int, Field(ge=1, le=MAX_SEQ)]
    kind: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z_]*$")]
    id: Annotated[str, Field(pattern=rf"^{_MESSAGE_ID.pattern}$", max_length=64)]
    jws: Token
    jwk: PublicJwk | None = None
    # kind "request": the C2SP tlog-proof of the request in the neighbourhood's log.
    proof: Annotated[str, Field(min_length=1, max_length=MAX_PROOF_CHARS)] | None = None


class RegistryUpload(_FromHub):
    """POST /v1/registry: a registry version and the authority's public key."""

    registry: Token
    jwk: PublicJwk


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], data: dict[str, Any], what: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        path = ".".join(str(part) for part in first["loc"]) or what
        kind = first["type"]
        reason = {"extra_forbidden": "unknown_field", "missing": "missing_field"}.get(
            kind, "invalid_field"
        )
        detail = {"extra_forbidden": "unknown field", "missing": "required"}.get(
            kind, str(first.get("msg", kind))
        )
        raise SchemaError(f"{what} {path}: {detail}"[:300], reason=reason, field=path) from err


def _json(data: bytes | str, *, what: str, limit: int, depth: int) -> dict[str, Any]:
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as err:
            raise MalformedMessage(f"{what} is not valid Unicode text", reason="not_utf8") from err
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage(f"{what} must be text", reason="not_text")
    if len(data) > limit:
        raise MalformedMessage(
            f"{what} is {len(data)} bytes; the limit is {limit} bytes", reason="too_large"
        )
    return loads_json_object(bytes(data), name=what, max_depth=depth)


def parse_join_request(body: bytes) -> JoinRequest:
    """Parse a POST /v1/join body."""
    return _validate(
        JoinRequest, _json(body, what="join body", limit=MAX_JOIN_BYTES, depth=3), "join body"
    )


def parse_token_body(body: bytes, *, what: str) -> str:
    """Parse a body that is one compact JWS (application/jose), returning its text."""
    if len(body) > MAX_TOKEN_CHARS:
        raise MalformedMessage(
            f"{what} is {len(body)} bytes; the limit is {MAX_TOKEN_CHARS} bytes",
            reason="too_large",
        )
    try:
        text = bytes(body).decode("ascii").strip()
    except UnicodeDecodeError as err:
        raise MalformedMessage(
            f"{what} must be a compact JWS in ASCII (header.payload.signature)",
            reason="not_ascii",
        ) from err
    if not text:
        raise MalformedMessage(f"{what} is empty; send one compact JWS", reason="empty")
    return text


def parse_since(value: str | None) -> int:
    """Parse the stream's since query parameter (the last sequence the hub has stored)."""
    if value is None or value == "":
        return 0
    if not isinstance(value, str) or not _SEQ_TEXT.fullmatch(value) or int(value) > MAX_SEQ:
        raise SchemaError(
            "since must be a non-negative integer sequence number without leading zeros",
            reason="bad_since",
            field="since",
        )
    return int(value)


def parse_ack(data: bytes | str) -> int:
    """Parse one acknowledgement sent by a hub on the stream."""
    return _validate(Ack, _json(data, what="ack", limit=MAX_ACK_BYTES, depth=1), "ack").ack


def encode_ack(seq: int) -> str:
    """Encode an acknowledgement of every message up to seq."""
    return json.dumps({"ack": int(seq)}, separators=(",", ":"))


def encode_frame(seq: int, kind: str, alert_id: str, token: str, jwk_json: str) -> str:
    """Encode one stream message; the token and JWK are already safe JSON text."""
    # Built by hand because the same alert goes to many hubs with different seq numbers, and
    # base64url tokens and a serialized JWK need no escaping.
    return (
        f'{{"seq":{int(seq)},"kind":"{kind}","id":"{alert_id}","jws":"{token}","jwk":{jwk_json}}}'
    )


def encode_request_frame(seq: int, request_id: str, token: str, proof: str) -> str:
    """Encode one agency request pushed on a hub's stream, with its tlog-proof."""
    return json.dumps(
        {"seq": int(seq), "kind": "request", "id": request_id, "jws": token, "proof": proof},
        separators=(",", ":"),
    )


def encode_announcement_frame(seq: int, announcement_id: str, token: str) -> str:
    """Encode one agency announcement pushed on a hub's stream (no key: hubs use their registry)."""
    return json.dumps(
        {"seq": int(seq), "kind": "announcement", "id": announcement_id, "jws": token},
        separators=(",", ":"),
    )


def parse_registry_upload(body: bytes) -> RegistryUpload:
    """Parse a POST /v1/registry body."""
    return _validate(
        RegistryUpload,
        _json(body, what="registry body", limit=MAX_TOKEN_CHARS + 4096, depth=3),
        "registry body",
    )


def parse_frame(data: bytes | str) -> Frame:
    """Parse one message pushed by the gateway on the stream."""
    return _validate(Frame, _json(data, what="frame", limit=MAX_FRAME_BYTES, depth=3), "frame")


def parse_answer(model: type[_M], body: bytes, *, what: str, limit: int = MAX_ANSWER_BYTES) -> _M:
    """Parse a JSON answer from the gateway into the given model."""
    return _validate(model, _json(body, what=what, limit=limit, depth=5), what)


def parse_error(body: bytes) -> ErrorAnswer | None:
    """Parse an error answer, or return None when the body is not one."""
    try:
        return parse_answer(ErrorAnswer, body, what="error answer")
    except (MalformedMessage, SchemaError):
        return None


@dataclass(frozen=True)
class StreamMessage:
    """One message from the gateway's stream, not yet verified end to end."""

    seq: int
    kind: str
    id: str
    jws: str
    jwk: dict[str, str] | None
    proof: str | None = None
