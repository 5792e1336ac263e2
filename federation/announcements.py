"""Agency announcements: public notices signed by an agency the registry lists.

An announcement (``porchlight-announcement+jws``: ``text``, ``category``, optional ``area``)
is what a hub shows as "verified law enforcement". The rules are the same on both sides: the
agency's key comes from the registry by kid (never a ``jwk`` from the message), the registry
has not expired, ``aud`` is the gateway's kid, the lifetime is at most 7 days, the schema
holds, and an ``area`` lies inside the agency's jurisdiction.

``check_announcement_jws`` is the gateway's intake check (it raises the registry and JWS
errors the gateway answers with); ``verify_announcement`` is the hub's, a pure function over a
stream message and the hub's own pinned registry that raises ``AnnouncementRejected`` with one
reason. An announcement's id is the lower-case hex SHA-256 of its exact JWS text, like an
alert's. docs/agency-protocol.md ("Announcements") is the specification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

from federation.errors import FederationError, MessageExpired, ReplayDetected, SignatureInvalid
from federation.jws import VerifiedMessage, sign_message
from federation.keys import SigningKey
from federation.registry import (
    AgencyEntry,
    OutsideJurisdiction,
    RegistryExpired,
    UnknownAgency,
    VerifiedRegistry,
    check_jurisdiction,
    verify_agency_message,
)
from federation.replay import ReplayStore
from federation.schemas import MAX_LIFETIME_S, TYP_ANNOUNCEMENT, AnnouncementClaims
from federation.wire import StreamMessage

KIND_ANNOUNCEMENT = "announcement"
DEFAULT_ANNOUNCEMENT_LIFETIME_S = 24 * 3600


class AnnouncementRejected(FederationError):
    """The hub refuses an announcement; ``reason`` says why, the message says it for people."""

    default_reason = "announcement_rejected"


class AnnouncementMalformed(AnnouncementRejected):
    """The gateway sent something that is not an announcement message."""

    default_reason = "malformed"


class AnnouncementRegistryExpired(AnnouncementRejected):
    """The hub's pinned registry has expired; refresh it before trusting any agency."""

    default_reason = "registry_expired"


class AnnouncementUnknownAgency(AnnouncementRejected):
    """The announcement is signed by a key that is not an agency in the hub's registry."""

    default_reason = "unknown_agency"


class AnnouncementAltered(AnnouncementRejected):
    """The signature does not verify: the text was changed after the agency signed it."""

    default_reason = "altered_announcement"


class AnnouncementInvalid(AnnouncementRejected):
    """The announcement breaks a message rule (audience, times, schema, id)."""

    default_reason = "invalid_announcement"


class AnnouncementOutsideJurisdiction(AnnouncementRejected):
    """The announcement's area is outside the agency's jurisdiction."""

    default_reason = "outside_jurisdiction"


class AnnouncementReplayed(AnnouncementRejected):
    """The hub has already received this announcement."""

    default_reason = "replayed"


@dataclass(frozen=True)
class CheckedAnnouncement:
    """An announcement that passed every rule but replay."""

    message: VerifiedMessage
    claims: AnnouncementClaims
    agency: AgencyEntry

    @property
    def id(self) -> str:
        """Return the announcement id: the SHA-256 of its exact JWS text."""
        return hashlib.sha256(self.message.raw).hexdigest()


def announcement_id(token: str) -> str:
    """Return an announcement's id: the lower-case hex SHA-256 of its exact JWS text."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def check_announcement_jws(
    token: str | bytes,
    *,
    registry: VerifiedRegistry,
    audience: str,
    now: float,
    ever_listed: Collection[str] = (),
) -> CheckedAnnouncement:
    """Verify an agency's announcement under the registry and check its area's jurisdiction."""
    registry.check_current(now)
    message = verify_agency_message(
        token,
        typ=TYP_ANNOUNCEMENT,
        registry=registry,
        audience=audience,
        now=now,
        ever_listed=ever_listed,
    )
    claims = cast(AnnouncementClaims, message.model)
    agency = registry.agency(message.kid)
    if claims.area is not None:
        area = claims.area
        check_jurisdiction(agency, area.lat, area.lon, area.radius_m)
    return CheckedAnnouncement(message=message, claims=claims, agency=agency)


def verify_announcement(
    message: StreamMessage,
    *,
    registry: VerifiedRegistry,
    gateway_kid: str,
    now: float,
    replay_store: ReplayStore | None,
) -> VerifiedMessage:
    """Verify an announcement the gateway relayed, under the hub's own pinned registry."""
    token = getattr(message, "jws", None)
    if getattr(message, "kind", None) != KIND_ANNOUNCEMENT or not isinstance(token, str):
        raise AnnouncementMalformed("the gateway sent a message that is not an announcement")
    try:
        checked = check_announcement_jws(token, registry=registry, audience=gateway_kid, now=now)
    except RegistryExpired as err:
        raise AnnouncementRegistryExpired(
            f"{err} Refresh the registry before showing any announcement."
        ) from err
    except UnknownAgency as err:
        raise AnnouncementUnknownAgency(str(err)) from err
    except SignatureInvalid as err:
        raise AnnouncementAltered(
            "the agency's signature does not verify: the announcement was changed after the "
            "agency signed it"
        ) from err
    except OutsideJurisdiction as err:
        raise AnnouncementOutsideJurisdiction(str(err)) from err
    except MessageExpired as err:
        raise AnnouncementInvalid(f"the announcement has expired: {err}", reason="expired") from err
    except FederationError as err:
        raise AnnouncementInvalid(str(err), reason=err.reason) from err
    if message.id != checked.id:
        raise AnnouncementInvalid(
            f"the gateway labelled announcement {checked.id} as {str(message.id)[:64]}",
            reason="wrong_id",
        )
    if replay_store is not None:
        claims = checked.claims
        try:
            replay_store.check_and_remember(checked.message.kid, claims.jti, claims.exp, now)
        except ReplayDetected as err:
            raise AnnouncementReplayed(
                f"announcement {checked.id[:16]}... was already received; a replay is ignored"
            ) from err
    return checked.message


def sign_announcement(
    key: SigningKey,
    *,
    gateway_kid: str,
    text: str,
    category: str,
    area: dict[str, float] | None = None,
    now: float,
    lifetime_s: int = DEFAULT_ANNOUNCEMENT_LIFETIME_S,
) -> str:
    """Sign an announcement as an agency for one neighbourhood."""
    issued = int(now)
    if not 0 < int(lifetime_s) <= MAX_LIFETIME_S[TYP_ANNOUNCEMENT]:
        raise AnnouncementInvalid(
            f"an announcement lives more than 0 s and at most "
            f"{MAX_LIFETIME_S[TYP_ANNOUNCEMENT] // 86400} days",
            reason="lifetime_too_long",
        )
    claims: dict[str, Any] = {
        "aud": gateway_kid,
        "text": text,
        "category": category,
        "iat": issued,
        "exp": issued + int(lifetime_s),
    }
    if area is not None:
        claims["area"] = dict(area)
    return sign_message(key, TYP_ANNOUNCEMENT, claims, now=issued)
