"""Typed failures of the neighbourhood gateway, and the HTTP status each one maps to."""

from __future__ import annotations

from .errors import FederationError, ReplayDetected
from .hop import HopAuthError


class GatewayError(FederationError):
    """A gateway operation failed; the reason says which rule."""

    default_reason = "gateway_error"


class GatewayExists(GatewayError):
    """A gateway already lives in this data directory."""

    default_reason = "gateway_exists"


class InviteInvalid(GatewayError):
    """The invite code is unknown, already used or expired."""

    default_reason = "invite_invalid"


class AlreadyMember(GatewayError):
    """The hub is already a member of this neighbourhood."""

    default_reason = "already_member"


class NotMember(GatewayError):
    """The hub is not (or no longer) a member of this neighbourhood."""

    default_reason = "not_member"


class HubBlocked(GatewayError):
    """The gateway's operator has blocked this hub."""

    default_reason = "blocked"


class RateLimited(GatewayError):
    """The hub sent more than its share; it may retry after ``retry_after`` seconds."""

    default_reason = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class OutOfRange(GatewayError):
    """An alert's cell is too far from the cell its author registered."""

    default_reason = "cell_out_of_range"


def http_status(err: FederationError) -> int:
    """Return the HTTP status for a failure caused by a request."""
    if err.reason == "too_large":
        return 413
    if isinstance(err, HopAuthError):
        return 401
    if isinstance(err, ReplayDetected | AlreadyMember):
        return 409
    if isinstance(err, InviteInvalid | NotMember | HubBlocked):
        return 403
    if isinstance(err, RateLimited):
        return 429
    # Every other failure (structure, schema, key, signature, alg, header, typ, claims,
    # audience, time, range) is a message the gateway will not accept as sent.
    return 400
