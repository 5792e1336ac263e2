"""Typed failures of the neighbourhood gateway, and the HTTP status each one maps to."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from federation.errors import FederationError, ReplayDetected
from federation.hop import HopAuthError


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


class UnknownRequest(GatewayError):
    """No agency request has this id here."""

    default_reason = "unknown_request"


class NotRecipient(GatewayError):
    """The request was not routed to this hub, so it may not answer it."""

    default_reason = "not_recipient"


class NotYourRequest(GatewayError):
    """An agency asked about another agency's request."""

    default_reason = "not_your_request"


class AlreadyAnswered(GatewayError):
    """This hub has already answered this request."""

    default_reason = "already_answered"


class RequestClosed(GatewayError):
    """The request has expired: no hub may answer it any more."""

    default_reason = "request_closed"


class RequestIdTaken(GatewayError):
    """Another agency's request already has this id."""

    default_reason = "request_id_taken"


class ClipMissing(GatewayError):
    """An approving answer lists a clip this hub has not uploaded (or with another size)."""

    default_reason = "clip_missing"

    def __init__(self, message: str, *, field: str = "", reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.field = field


class ClipGone(GatewayError):
    """The sealed clip is not (or no longer) held by the gateway."""

    default_reason = "clip_gone"


class StoreFull(GatewayError):
    """The gateway holds as many sealed clips as it is set up to."""

    default_reason = "store_full"


class LengthRequired(GatewayError):
    """A clip upload must say its length up front."""

    default_reason = "length_required"


class NoRegistry(GatewayError):
    """The gateway has no agency registry yet."""

    default_reason = "no_registry"


class UnknownAlert(GatewayError):
    """No live alert has this id here (unknown, expired or withdrawn)."""

    default_reason = "unknown_alert"


class NotAuthor(GatewayError):
    """Only the hub that posted an alert may upload its photos."""

    default_reason = "not_author"


class AttachmentNotListed(GatewayError):
    """The alert lists no attachment with this SHA-256."""

    default_reason = "not_listed"


class AttachmentNotUploaded(GatewayError):
    """The alert lists this photo, but its author has not uploaded it (yet)."""

    default_reason = "not_uploaded"


class NotAPhoto(GatewayError):
    """The gateway relays JPEG and PNG photos only: never video, never anything else."""

    default_reason = "not_a_photo"


# Failures whose status is not implied by their class above.
_STATUS_BY_REASON = {
    "too_large": 413,
    "store_full": 413,
    "length_required": 411,
    "registry_rollback": 409,
    "registry_expired": 409,
    "registry_not_configured": 409,
    "no_registry": 409,
    "request_id_taken": 409,
    "already_answered": 409,
    "request_closed": 409,
    "clip_exists": 409,
    "registry_wrong_signer": 403,
    "unknown_agency": 403,
    "agency_removed": 403,
    "not_recipient": 403,
    "not_your_request": 403,
    "unknown_request": 404,
    "clip_gone": 404,
    "not_author": 403,
    "unknown_alert": 404,
    "not_listed": 404,
    "not_uploaded": 404,
    "not_a_photo": 415,
}


def http_status(err: FederationError) -> int:
    """Return the HTTP status for a failure caused by a request."""
    if err.reason in _STATUS_BY_REASON:
        return _STATUS_BY_REASON[err.reason]
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


def error_response(status: int, message: str, reason: str, **extra: Any) -> web.Response:
    """Return the JSON error body every failing route answers with."""
    body = {"error": message, "reason": reason}
    body.update({k: v for k, v in extra.items() if v})
    # The reason also travels as a header: a refused WebSocket handshake shows the client
    # the status and headers but not the body.
    headers = {"Porchlight-Error-Reason": reason}
    if "retry_after" in extra and extra["retry_after"] is not None:
        headers["Retry-After"] = str(max(1, int(extra["retry_after"] + 0.999)))
        body.pop("retry_after", None)
    return web.json_response(body, status=status, headers=headers)
