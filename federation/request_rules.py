"""The rules every agency request must meet, shared by the gateway's intake and the hubs.

``check_request_jws`` is a pure function of the token, a verified registry, the audience, the
scope limits and the clock. In order: the JWS (structure, alg, header, typ), the agency's key
from the registry by kid (``unknown_agency``, or ``agency_removed`` when an earlier version
listed it), the signature, the claims and schema, the request id, the scope, the
jurisdiction. It never consults a replay store: callers remember ``(iss, jti)`` last, once
everything else has passed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

from federation.jws import VerifiedMessage
from federation.neighbourhood_log import check_request_id
from federation.registry import (
    AgencyEntry,
    VerifiedRegistry,
    check_jurisdiction,
    verify_agency_message,
)
from federation.schemas import TYP_REQUEST, RequestClaims
from federation.scope import DEFAULT_LIMITS, ScopeLimits, check_request_scope


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every rule but replay and the log."""

    message: VerifiedMessage
    claims: RequestClaims
    agency: AgencyEntry

    @property
    def id(self) -> str:
        """Return the request id (its jti)."""
        return self.claims.jti


def check_request_jws(
    token: str | bytes,
    *,
    registry: VerifiedRegistry,
    audience: str,
    now: float,
    limits: ScopeLimits = DEFAULT_LIMITS,
    ever_listed: Collection[str] = (),
) -> CheckedRequest:
    """Verify an agency request under the registry and check its id, scope and jurisdiction."""
    registry.check_current(now)
    message = verify_agency_message(
        token,
        typ=TYP_REQUEST,
        registry=registry,
        audience=audience,
        now=now,
        ever_listed=ever_listed,
    )
    claims = cast(RequestClaims, message.model)
    check_request_id(claims.jti)
    check_request_scope(claims, limits, now=now)
    agency = registry.agency(message.kid)
    check_jurisdiction(agency, claims.area.lat, claims.area.lon, claims.area.radius_m)
    return CheckedRequest(message=message, claims=claims, agency=agency)
