"""Strict claim schemas for every signed message type.

Each message ``typ`` has one pydantic model of its full claim set (the registered claims
``iss``, ``aud``, ``iat``, ``exp``, ``jti`` plus the type's own). Models reject unknown fields,
coerce nothing, and bound every string and list, so a message that parses is safe to store
and show. ``parse_claims`` turns any failure into a ``SchemaError`` naming the field.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from federation.cells import is_valid_cell
from federation.errors import SchemaError
from federation.keys import thumbprint

TYP_REGISTRATION = "porchlight-registration+jws"
TYP_ALERT = "porchlight-alert+jws"
TYP_ANNOUNCEMENT = "porchlight-announcement+jws"
TYP_REGISTRY = "porchlight-registry+jws"
TYP_REQUEST = "porchlight-request+jws"
TYP_ANSWER = "porchlight-answer+jws"
# Never logged: the hub's chain-of-custody statement, sealed to the agency (federation/answers.py).
TYP_CUSTODY = "porchlight-custody+jws"

HOUR = 3600
DAY = 24 * HOUR
# Longest allowed exp - iat per message type (DESIGN.md, "Messages").
MAX_LIFETIME_S: dict[str, int] = {
    TYP_REGISTRATION: 1 * HOUR,
    TYP_ALERT: 7 * DAY,
    TYP_ANNOUNCEMENT: 7 * DAY,
    TYP_REGISTRY: 90 * DAY,
    TYP_REQUEST: 14 * DAY,
    TYP_ANSWER: 14 * DAY,
    TYP_CUSTODY: 14 * DAY,
}

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
MAX_CLIP_BYTES = 4 * 1024 * 1024 * 1024
MAX_TEXT = 2000
# NumericDates are whole seconds between 1970 and 9999-12-31, so they always convert to a
# datetime and never overflow SQLite's 64-bit integers.
MAX_NUMERIC_DATE = 253_402_300_799

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KID = re.compile(r"[A-Za-z0-9_-]{43}")
_JTI = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")
_RFC3339_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")


def _hex64(value: str) -> str:
    if not _HEX64.fullmatch(value):
        raise ValueError("must be 64 lower-case hex digits (a SHA-256 digest)")
    return value


def _kid(value: str) -> str:
    if not _KID.fullmatch(value):
        raise ValueError("must be a kid: 43 characters of unpadded base64url")
    return value


def _jti(value: str) -> str:
    if not _JTI.fullmatch(value):
        raise ValueError("must be 1 to 128 characters of A-Z a-z 0-9 _ . : -")
    return value


def _cell(value: str) -> str:
    if not is_valid_cell(value, 7):
        raise ValueError("must be an H3 resolution-7 cell (15 lower-case hex digits)")
    return value


def _rfc3339_utc(value: str) -> str:
    if not _RFC3339_UTC.fullmatch(value):
        raise ValueError("must be an RFC 3339 UTC time like 2024-05-01T21:30:00Z")
    try:
        datetime.fromisoformat(value)
    except ValueError as err:
        raise ValueError(f"is not a real date and time ({err})") from err
    return value


def _age_recipient(value: str) -> str:
    if not _AGE_RECIPIENT.fullmatch(value):
        raise ValueError("must be an age X25519 recipient (age1 followed by 58 characters)")
    return value


def _b64url_32(value: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError as err:
        raise ValueError("must be 32 bytes in unpadded base64url") from err
    if len(raw) != 32 or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != value:
        raise ValueError("must be 32 bytes in canonical unpadded base64url")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Hex64 = Annotated[str, Field(max_length=64), AfterValidator(_hex64)]
Kid = Annotated[str, Field(max_length=43), AfterValidator(_kid)]
Jti = Annotated[str, Field(max_length=128), AfterValidator(_jti)]
Cell = Annotated[str, Field(max_length=15), AfterValidator(_cell)]
Rfc3339Utc = Annotated[str, Field(max_length=32), AfterValidator(_rfc3339_utc)]
NumericDate = Annotated[int, Field(ge=0, le=MAX_NUMERIC_DATE)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Text100 = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_not_blank)]
Text200 = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
Text500 = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_not_blank)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)]
AlertCategory = Literal[
    "crime", "safety", "suspicious", "unknown_visitor", "lost_pet", "neighbourly"
]
AttachmentType = Literal["image/jpeg", "image/png", "video/mp4"]
ALERT_CATEGORIES: tuple[str, ...] = get_args(AlertCategory)
ATTACHMENT_TYPES: tuple[str, ...] = get_args(AttachmentType)
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PublicJwk(_Strict):
    """An Ed25519 public JWK (RFC 8037)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: Annotated[str, Field(max_length=43), AfterValidator(_b64url_32)]
    kid: Kid | None = None
    alg: Literal["Ed25519", "EdDSA"] | None = None
    use: Literal["sig"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_private_part(cls, data: Any) -> Any:
        if isinstance(data, dict) and "d" in data:
            raise ValueError("contains private key material (d); send the public JWK only")
        return data

    @model_validator(mode="after")
    def _kid_is_thumbprint(self) -> PublicJwk:
        if self.kid is not None and self.kid != self.thumbprint():
            raise ValueError("kid is not the RFC 7638 thumbprint of this key")
        return self

    def thumbprint(self) -> str:
        """Return the RFC 7638 thumbprint of this key."""
        return thumbprint({"kty": self.kty, "crv": self.crv, "x": self.x})


class Area(_Strict):
    """A circle on the ground."""

    lat: Latitude
    lon: Longitude
    radius_m: Annotated[float, Field(gt=0, le=50_000, allow_inf_nan=False)]


class Window(_Strict):
    """A time window in RFC 3339 UTC."""

    start: Rfc3339Utc
    end: Rfc3339Utc

    @model_validator(mode="after")
    def _end_after_start(self) -> Window:
        if self.end_at <= self.start_at:
            raise ValueError("end must be after start")
        return self

    @property
    def start_at(self) -> datetime:
        """Return start as an aware UTC datetime."""
        return datetime.fromisoformat(self.start).replace(tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        """Return end as an aware UTC datetime."""
        return datetime.fromisoformat(self.end).replace(tzinfo=UTC)


class Attachment(_Strict):
    """A file attached to an alert, named by its digest."""

    sha256: Hex64
    size: Annotated[int, Field(gt=0, le=MAX_ATTACHMENT_BYTES)]
    type: AttachmentType


class Clip(_Strict):
    """A sealed clip listed in a hub's answer."""

    sha256: Hex64
    size: Annotated[int, Field(gt=0, le=MAX_CLIP_BYTES)]
    start: NumericDate
    end: NumericDate
    camera: Text100

    @model_validator(mode="after")
    def _end_after_start(self) -> Clip:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class SealedFile(_Strict):
    """A sealed file named in a public answer by its SHA-256 alone (no size, no camera, no time)."""

    sha256: Hex64


class Agency(_Strict):
    """One agency entry in the registry."""

    kid: Kid
    name: Text200
    jurisdiction: Annotated[str, Field(min_length=1, max_length=2000)]  # federation.registry
    since: NumericDate
    jwk: PublicJwk
    recipient: Annotated[str, Field(max_length=62), AfterValidator(_age_recipient)]
    # How residents reach the agency; optional, and absent when the authority gave none.
    contact: Text500 | None = None

    @model_validator(mode="after")
    def _kid_matches_jwk(self) -> Agency:
        if self.jwk.thumbprint() != self.kid:
            raise ValueError("kid is not the RFC 7638 thumbprint of jwk")
        return self


class Claims(_Strict):
    """The registered claims every message carries."""

    iss: Kid
    aud: Kid
    iat: NumericDate
    exp: NumericDate
    jti: Jti


class RegistrationClaims(Claims):
    """A hub's registration of its cell and hop-by-hop key with a gateway."""

    cell: Cell
    hop_key: PublicJwk


class AlertClaims(Claims):
    """A neighbourhood alert posted by a hub."""

    category: AlertCategory
    text: Text
    cell: Cell
    attachments: Annotated[list[Attachment], Field(max_length=4)] = []


class AnnouncementClaims(Claims):
    """A public announcement signed by an agency."""

    category: AlertCategory
    text: Text
    area: Area | None = None


class RegistryClaims(Claims):
    """A version of the agency registry signed by the registry authority."""

    version: Annotated[int, Field(ge=1, le=2**53)]
    agencies: Annotated[list[Agency], Field(max_length=500)]

    @model_validator(mode="after")
    def _unique_kids(self) -> RegistryClaims:
        seen: set[str] = set()
        for agency in self.agencies:
            if agency.kid in seen:
                raise ValueError(f"agencies: kid {agency.kid} is listed twice")
            seen.add(agency.kid)
        return self


class RequestClaims(Claims):
    """An agency's signed request for footage in a window and area."""

    case: Text100
    reason: Text
    legal_basis: Literal["voluntary", "warrant"]
    warrant_sha256: Hex64 | None = None
    window: Window
    area: Area

    @model_validator(mode="after")
    def _warrant_digest(self) -> RequestClaims:
        if self.legal_basis == "warrant" and self.warrant_sha256 is None:
            raise ValueError("warrant_sha256: required when legal_basis is warrant")
        if self.legal_basis == "voluntary" and self.warrant_sha256 is not None:
            raise ValueError("warrant_sha256: only allowed when legal_basis is warrant")
        return self


class AnswerClaims(Claims):
    """A hub's public decision on a request, signed by a key used for that request only."""

    request: Jti
    decision: Literal["approved", "denied"]
    # The one-time key itself: the answer carries the key it is checked with, so it names
    # no household; iss and the header's kid are its thumbprint.
    key: PublicJwk
    clips: Annotated[list[SealedFile], Field(max_length=256)] = []
    custody: SealedFile | None = None

    @model_validator(mode="after")
    def _decision_and_files(self) -> AnswerClaims:
        if self.key.thumbprint() != self.iss:
            raise ValueError("key: iss is not the RFC 7638 thumbprint of key")
        if self.decision == "denied" and (self.clips or self.custody is not None):
            raise ValueError("clips: a denied answer must not list clips or a custody file")
        if self.decision == "approved" and (not self.clips or self.custody is None):
            raise ValueError("custody: an approval lists its sealed clips and custody file")
        named = [clip.sha256 for clip in self.clips]
        if self.custody is not None:
            named.append(self.custody.sha256)
        if len(set(named)) != len(named):
            raise ValueError("clips: a sealed file is listed twice")
        return self


class CustodyClaims(Claims):
    """The hub's chain-of-custody statement, signed by its long-term key, sealed to the agency."""

    hub_key: PublicJwk
    gateway: Kid
    request: Jti
    answer_key: Kid
    clips: Annotated[list[Clip], Field(min_length=1, max_length=256)]

    @model_validator(mode="after")
    def _signer_is_hub_key(self) -> CustodyClaims:
        if self.hub_key.thumbprint() != self.iss:
            raise ValueError("hub_key: iss is not the RFC 7638 thumbprint of hub_key")
        if len({clip.sha256 for clip in self.clips}) != len(self.clips):
            raise ValueError("clips: a sealed clip is listed twice")
        return self


SCHEMAS: dict[str, type[Claims]] = {
    TYP_REGISTRATION: RegistrationClaims,
    TYP_ALERT: AlertClaims,
    TYP_ANNOUNCEMENT: AnnouncementClaims,
    TYP_REGISTRY: RegistryClaims,
    TYP_REQUEST: RequestClaims,
    TYP_ANSWER: AnswerClaims,
    TYP_CUSTODY: CustodyClaims,
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_REASONS = {"extra_forbidden": "unknown_field", "missing": "missing_field"}

_TYPE_NAMES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_unicode": "must be valid Unicode text",
    "finite_number": "must be a finite number",
    "missing": "required",
    "extra_forbidden": "unknown field",
}


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _describe(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _TYPE_NAMES:
        return _TYPE_NAMES[kind]
    if kind == "string_too_long":
        return f"longer than {ctx['max_length']} characters"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else (f"shorter than {ctx['min_length']} characters")
        )
    if kind == "too_long":
        return f"more than {ctx['max_length']} items"
    if kind == "too_short":
        return f"fewer than {ctx['min_length']} items"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "greater_than":
        return f"must be greater than {_number(ctx['gt'])}"
    if kind == "greater_than_equal":
        return f"must be at least {_number(ctx['ge'])}"
    if kind == "less_than":
        return f"must be less than {_number(ctx['lt'])}"
    if kind == "less_than_equal":
        return f"must be at most {_number(ctx['le'])}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    return str(error.get("msg", kind))


def parse_claims(typ: str, claims: Any) -> Claims:
    """Validate a message's claims against its type's schema and return the model."""
    model = SCHEMAS.get(typ) if isinstance(typ, str) else None
    if model is None:
        raise SchemaError(
            f"typ: unknown message type {typ!r}; expected one of {', '.join(SCHEMAS)}",
            reason="unknown_typ",
            field="typ",
        )
    if not isinstance(claims, dict):
        raise SchemaError("claims: must be a JSON object", field="claims")
    if not all(isinstance(key, str) for key in claims):
        raise SchemaError("claims: every field name must be a string", field="claims")
    try:
        return model.model_validate(claims)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        path = _field_path(tuple(first["loc"]))
        detail = _describe(first)
        if not path:
            # Model-level rules name their own field ("warrant_sha256: required when ...").
            path, _, detail = detail.partition(": ") if ": " in detail else ("claims", "", detail)
        reason = _REASONS.get(first["type"], "invalid_field")
        raise SchemaError(f"{path}: {detail}", reason=reason, field=path) from err
