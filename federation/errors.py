"""Typed failures of the federation protocol.

Every failure carries a short machine code (``reason``) for logs, metrics and API responses,
and a human message that says what is wrong and what to do about it.
"""

from __future__ import annotations


class FederationError(Exception):
    """Base of every federation failure: a machine ``reason`` plus a human message."""

    default_reason = "federation_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r})"


class MalformedMessage(FederationError):
    """The token is not a well-formed compact JWS of acceptable size and encoding."""

    default_reason = "malformed"


class AlgorithmRejected(FederationError):
    """The JWS ``alg`` is not one this verifier accepts."""

    default_reason = "alg_not_allowed"


class HeaderRejected(FederationError):
    """The JWS header carries a parameter that is not allowed, or lacks a required one."""

    default_reason = "header_not_allowed"


class WrongType(FederationError):
    """The JWS ``typ`` is not the message type the caller expects."""

    default_reason = "wrong_typ"


class SignatureInvalid(FederationError):
    """The signature does not verify under the trusted key named by ``kid``."""

    default_reason = "bad_signature"


class UnknownKey(FederationError):
    """The ``kid`` names no key in the trusted set."""

    default_reason = "unknown_kid"


class KeyInvalid(FederationError):
    """A key file or JWK could not be used as an Ed25519 key."""

    default_reason = "bad_key"


class ClaimInvalid(FederationError):
    """A registered claim (iss, iat, exp, jti) breaks a protocol rule."""

    default_reason = "bad_claim"


class MessageExpired(FederationError):
    """The message's ``exp`` has passed."""

    default_reason = "expired"


class MessageNotYetValid(FederationError):
    """The message's ``iat`` lies in the future beyond the allowed clock skew."""

    default_reason = "not_yet_valid"


class ReplayDetected(FederationError):
    """The ``(iss, jti)`` pair was already seen while the message is still live."""

    default_reason = "replay"


class WrongAudience(FederationError):
    """The message's ``aud`` is not this neighbourhood."""

    default_reason = "wrong_aud"


class SchemaError(FederationError):
    """The claims do not match the message type's schema; the message names the field."""

    default_reason = "schema"

    def __init__(self, message: str, *, reason: str | None = None, field: str = "") -> None:
        super().__init__(message, reason=reason)
        self.field = field


class ScopeError(FederationError):
    """An agency request asks for more than the neighbourhood's scope limits allow."""

    default_reason = "out_of_scope"
