"""The agency registry: which agencies a neighbourhood trusts, and where each may ask.

The registry authority (an oversight board, a council) signs the registry as one
``porchlight-registry+jws`` with a monotonic ``version`` and an ``exp``. Hubs and gateways pin
the authority's kid; ``verify_registry`` refuses another signer, an older or equal version
(rollback) and an expired registry. Agencies' signing keys are only ever taken from a
verified registry, never from a request.

A jurisdiction is written as text in the registry (its ``jurisdiction`` claim):

- a circle: ``LAT,LON,RADIUS_M`` in decimal degrees and metres, e.g. ``52.37,4.89,8000``;
- H3 cells: ``h3:CELL,CELL,...``, cells of resolution 0 to 7. They stand for every
  resolution-7 cell below them in the H3 hierarchy (the cells hubs register).

Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, cast

import h3

from federation.cells import DEFAULT_RES, cells_covering_circle, distance_m
from federation.errors import FederationError, KeyInvalid, MessageExpired, UnknownKey
from federation.jws import DEFAULT_LEEWAY_S, VerifiedMessage, split_compact, verify_message
from federation.keys import KeySet, thumbprint
from federation.schemas import TYP_REGISTRY, RegistryClaims

MAX_JURISDICTION_TEXT = 2000
MAX_JURISDICTION_RADIUS_M = 1_000_000.0
_NUMBER = r"-?(?:0|[1-9][0-9]{0,6})(?:\.[0-9]{1,9})?"
_CIRCLE = re.compile(rf"({_NUMBER}),({_NUMBER}),({_NUMBER})")
_CELL = re.compile(r"[0-9a-f]{15}")


class RegistryError(FederationError):
    """The registry cannot be used; the reason says which rule it breaks."""

    default_reason = "registry_error"


class RegistryWrongSigner(RegistryError):
    """The registry is not signed by the pinned registry authority."""

    default_reason = "registry_wrong_signer"


class RegistryRollback(RegistryError):
    """The registry is not newer than the version already accepted."""

    default_reason = "registry_rollback"


class RegistryExpired(RegistryError):
    """The registry's exp has passed; the authority must sign a new version."""

    default_reason = "registry_expired"


class UnknownAgency(RegistryError):
    """The key is not an agency in the registry."""

    default_reason = "unknown_agency"


class AgencyRemoved(UnknownAgency):
    """The agency was in an earlier registry version and has been removed."""

    default_reason = "agency_removed"


class OutsideJurisdiction(RegistryError):
    """The request's circle is not inside the agency's jurisdiction."""

    default_reason = "outside_jurisdiction"


class JurisdictionInvalid(RegistryError):
    """A jurisdiction is not written as a circle or a list of H3 cells."""

    default_reason = "bad_jurisdiction"


@dataclass(frozen=True)
class Jurisdiction:
    """Where an agency may ask for footage: a circle, or a set of H3 cells (resolution <= 7)."""

    circle: tuple[float, float, float] | None = None
    cells: frozenset[str] = frozenset()

    def to_text(self) -> str:
        """Return the registry's text form."""
        if self.circle is not None:
            lat, lon, radius = self.circle
            return f"{_num(lat)},{_num(lon)},{_num(radius)}"
        return "h3:" + ",".join(sorted(self.cells))

    def contains_circle(self, lat: float, lon: float, radius_m: float) -> bool:
        """Tell whether a circle lies wholly inside this jurisdiction."""
        if self.circle is not None:
            centre_lat, centre_lon, limit = self.circle
            return distance_m(centre_lat, centre_lon, lat, lon) + radius_m <= limit
        # Every resolution-7 cell that may touch the circle (a generous superset, the same
        # cells the gateway routes to) must descend from a listed cell. Near the border this
        # refuses a few circles that would just fit: never the other way round.
        resolutions = sorted({h3.get_resolution(cell) for cell in self.cells})
        for cell in cells_covering_circle(lat, lon, radius_m, DEFAULT_RES):
            if not any(h3.cell_to_parent(cell, res) in self.cells for res in resolutions):
                return False
        return True


def _num(value: float) -> str:
    text = f"{value:.7f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def jurisdiction_from(value: Any) -> Jurisdiction:
    """Build a jurisdiction from text, a (lat, lon, radius_m) tuple or an iterable of cells."""
    if isinstance(value, Jurisdiction):
        return value
    if isinstance(value, str):
        return parse_jurisdiction(value)
    if (
        isinstance(value, tuple)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        lat, lon, radius = (float(v) for v in value)
        return _circle(lat, lon, radius)
    if isinstance(value, Iterable):
        cells = list(value)
        if not all(isinstance(cell, str) for cell in cells):
            raise JurisdictionInvalid("jurisdiction cells must be H3 cell strings")
        # Compact so a whole district of resolution-7 cells fits the registry's 2000 characters.
        try:
            compacted = h3.compact_cells(_check_cells(cells, compactable=True))
        except (ValueError, h3.H3BaseException) as err:
            raise JurisdictionInvalid(f"jurisdiction cells cannot be compacted: {err}") from err
        jurisdiction = Jurisdiction(cells=frozenset(compacted))
        _check_length(jurisdiction.to_text())
        return jurisdiction
    raise JurisdictionInvalid(
        "a jurisdiction is LAT,LON,RADIUS_M or a list of H3 cells of resolution 0 to 7"
    )


def _circle(lat: float, lon: float, radius: float) -> Jurisdiction:
    if not (math.isfinite(lat) and -90 <= lat <= 90 and math.isfinite(lon) and -180 <= lon <= 180):
        raise JurisdictionInvalid("jurisdiction centre must be a latitude and a longitude")
    if not (math.isfinite(radius) and 0 < radius <= MAX_JURISDICTION_RADIUS_M):
        raise JurisdictionInvalid(
            f"jurisdiction radius must be more than 0 and at most {MAX_JURISDICTION_RADIUS_M:g} m"
        )
    return Jurisdiction(circle=(lat, lon, radius))


def _check_length(text: str) -> None:
    if len(text) > MAX_JURISDICTION_TEXT:
        raise JurisdictionInvalid(
            f"jurisdiction is {len(text)} characters written out; the registry allows "
            f"{MAX_JURISDICTION_TEXT}: use coarser cells or a circle"
        )


def _check_cells(cells: list[str], *, compactable: bool = False) -> list[str]:
    if not cells:
        raise JurisdictionInvalid("a jurisdiction needs at least one H3 cell")
    seen: set[str] = set()
    for cell in cells:
        if not _CELL.fullmatch(cell) or not h3.is_valid_cell(cell):
            raise JurisdictionInvalid(f"{cell[:20]!r} is not an H3 cell in lower-case hex")
        if h3.get_resolution(cell) > DEFAULT_RES:
            raise JurisdictionInvalid(
                f"cell {cell} is finer than resolution {DEFAULT_RES}; hubs register "
                f"resolution-{DEFAULT_RES} cells"
            )
        if cell in seen:
            raise JurisdictionInvalid(f"cell {cell} is listed twice")
        seen.add(cell)
    if not compactable:
        # A listed cell inside another listed cell says the same thing twice.
        for cell in cells:
            for res in range(h3.get_resolution(cell)):
                if h3.cell_to_parent(cell, res) in seen:
                    raise JurisdictionInvalid(f"cell {cell} lies inside another listed cell")
    return cells


def parse_jurisdiction(text: str) -> Jurisdiction:
    """Parse a registry jurisdiction: ``LAT,LON,RADIUS_M`` or ``h3:CELL,CELL,...``."""
    if not isinstance(text, str):
        raise JurisdictionInvalid("a jurisdiction is text")
    _check_length(text)
    if text.startswith("h3:"):
        return Jurisdiction(cells=frozenset(_check_cells(text[3:].split(","))))
    match = _CIRCLE.fullmatch(text)
    if match is None:
        raise JurisdictionInvalid(
            f"jurisdiction {text[:60]!r} is neither LAT,LON,RADIUS_M nor h3:CELL,CELL,..."
        )
    lat, lon, radius = (float(group) for group in match.groups())
    return _circle(lat, lon, radius)


def since_from_date(value: date | str) -> int:
    """Return the NumericDate of midnight UTC on a partnership date (YYYY-MM-DD)."""
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise RegistryError("since must be a date written YYYY-MM-DD", reason="bad_since")
        try:
            value = date.fromisoformat(value)
        except ValueError as err:
            raise RegistryError(f"since: {err}", reason="bad_since") from err
    if isinstance(value, datetime) or not isinstance(value, date):
        raise RegistryError("since must be a date", reason="bad_since")
    return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class AgencyEntry:
    """One agency as a verified registry lists it."""

    kid: str
    name: str
    jurisdiction: Jurisdiction
    jurisdiction_text: str
    since: int
    jwk: dict[str, str] = field(compare=False)
    recipient: str
    contact: str  # empty when the registry lists none

    @property
    def since_date(self) -> date:
        """Return the partnership date."""
        return datetime.fromtimestamp(self.since, tz=UTC).date()


@dataclass(frozen=True)
class VerifiedRegistry:
    """A registry version whose signature, audience, version and jurisdictions checked out."""

    token: str
    version: int
    iat: int
    exp: int
    authority_kid: str
    authority_jwk: dict[str, str] = field(compare=False)
    audience: str = ""
    agencies: Mapping[str, AgencyEntry] = field(default_factory=dict, compare=False)
    keyset: KeySet = field(default_factory=KeySet, compare=False, repr=False)

    def agency(self, kid: str) -> AgencyEntry:
        """Return the listed agency with this kid, or raise UnknownAgency."""
        entry = self.agencies.get(kid) if isinstance(kid, str) else None
        if entry is None:
            shown = kid[:43] if isinstance(kid, str) else type(kid).__name__
            raise UnknownAgency(
                f"key {shown!r} is not an agency in registry version {self.version}; "
                "only agencies the registry authority lists may send requests"
            )
        return entry

    def check_current(self, now: float, *, leeway: float = DEFAULT_LEEWAY_S) -> None:
        """Raise RegistryExpired once the registry's exp has passed."""
        if now > self.exp + leeway:
            raise RegistryExpired(
                f"registry version {self.version} expired "
                f"{datetime.fromtimestamp(self.exp, tz=UTC):%Y-%m-%d %H:%M} UTC; the registry "
                "authority must publish a new version"
            )


def verify_registry(
    token: str | bytes,
    *,
    authority_jwk: Mapping[str, Any],
    authority_kid: str,
    audience: str,
    now: float,
    last_version: int | None = None,
) -> VerifiedRegistry:
    """Verify a registry version under the pinned authority and return its agencies."""
    try:
        signer = thumbprint(authority_jwk)
    except KeyInvalid as err:
        raise RegistryWrongSigner(f"the authority's key is not a usable JWK: {err}") from err
    if signer != authority_kid:
        raise RegistryWrongSigner(
            f"registry authority key {signer} is not the pinned authority {authority_kid}; "
            "a registry is accepted only from the authority pinned at set-up"
        )
    trusted = KeySet([authority_jwk])
    try:
        message = verify_message(
            token, typ=TYP_REGISTRY, trusted=trusted, audience=audience, now=now
        )
    except UnknownKey as err:
        raise RegistryWrongSigner(
            f"registry is signed by another key than the pinned authority {authority_kid}"
        ) from err
    except MessageExpired as err:
        raise RegistryExpired(
            f"registry has expired ({err}); the registry authority must publish a new version"
        ) from err
    claims = cast(RegistryClaims, message.model)
    if last_version is not None and claims.version <= last_version:
        raise RegistryRollback(
            f"registry version {claims.version} is not newer than version {last_version} "
            "already accepted; an older registry could bring back a removed agency"
        )
    agencies: dict[str, AgencyEntry] = {}
    keys = KeySet()
    for index, agency in enumerate(claims.agencies):
        try:
            jurisdiction = parse_jurisdiction(agency.jurisdiction)
        except JurisdictionInvalid as err:
            raise JurisdictionInvalid(f"agencies[{index}].jurisdiction: {err}") from err
        jwk = agency.jwk.model_dump(exclude_none=True)
        jwk = {k: jwk[k] for k in ("kty", "crv", "x")}
        keys.add(jwk)
        agencies[agency.kid] = AgencyEntry(
            kid=agency.kid,
            name=agency.name,
            jurisdiction=jurisdiction,
            jurisdiction_text=agency.jurisdiction,
            since=agency.since,
            jwk=jwk,
            recipient=agency.recipient,
            contact=agency.contact or "",
        )
    return VerifiedRegistry(
        token=message.token,
        version=claims.version,
        iat=claims.iat,
        exp=claims.exp,
        authority_kid=authority_kid,
        authority_jwk={k: str(authority_jwk[k]) for k in ("kty", "crv", "x")},
        audience=audience,
        agencies=MappingProxyType(agencies),
        keyset=keys,
    )


def check_jurisdiction(agency: AgencyEntry, lat: float, lon: float, radius_m: float) -> None:
    """Raise OutsideJurisdiction unless the circle lies inside the agency's jurisdiction."""
    if not agency.jurisdiction.contains_circle(lat, lon, radius_m):
        raise OutsideJurisdiction(
            f"area: the circle of {radius_m:g} m around {lat:.5f},{lon:.5f} is not inside "
            f"{agency.name}'s jurisdiction ({agency.jurisdiction_text})"
        )


def verify_agency_message(
    token: str | bytes,
    *,
    typ: str,
    registry: VerifiedRegistry,
    audience: str,
    now: float,
    ever_listed: Collection[str] = (),
) -> VerifiedMessage:
    """Verify a message an agency signed, under the registry's key for its kid."""
    # The key comes from the registry by kid, never from the message; a kid an earlier
    # version listed is "removed", not "unknown", so the agency learns why.
    try:
        return verify_message(token, typ=typ, trusted=registry.keyset, audience=audience, now=now)
    except UnknownKey as err:
        kid = split_compact(token).header.get("kid")
        if isinstance(kid, str) and kid in ever_listed:
            raise AgencyRemoved(
                f"agency {kid} was removed from the registry; its messages are refused"
            ) from err
        shown = kid[:43] if isinstance(kid, str) else type(kid).__name__
        raise UnknownAgency(
            f"key {shown!r} is not an agency in registry version {registry.version}; only "
            "agencies the registry authority lists are trusted"
        ) from err
