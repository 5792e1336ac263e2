"""Sealed clips: footage encrypted (age v1, X25519) to one agency's recipient.

A hub seals each approved clip to the agency's recipient from the registry; the gateway only
ever holds the sealed bytes, named by their SHA-256, and holds no key that opens them. The
agency opens them with its age identity; the ``age`` CLI does the same.
"""

from __future__ import annotations

import hashlib

import pyrage
from pyrage import x25519

from federation.errors import FederationError

AGE_MAGIC = b"age-encryption.org/v1\n"


class SealError(FederationError):
    """A clip could not be sealed or opened."""

    default_reason = "seal_error"


def sha256_hex(data: bytes) -> str:
    """Return the lower-case hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def is_age_file(data: bytes) -> bool:
    """Tell whether bytes start like an age v1 file."""
    return bytes(data[: len(AGE_MAGIC)]) == AGE_MAGIC


def seal_clip(plaintext: bytes, recipient: str) -> bytes:
    """Seal a clip to one agency's age X25519 recipient."""
    try:
        key = x25519.Recipient.from_str(recipient)
    except (ValueError, pyrage.RecipientError) as err:
        raise SealError(
            f"{recipient[:70]!r} is not an age X25519 recipient", reason="bad_recipient"
        ) from err
    try:
        return pyrage.encrypt(bytes(plaintext), [key])
    except pyrage.EncryptError as err:
        raise SealError(f"could not seal the clip: {err}") from err


def open_clip(ciphertext: bytes, identity: str | x25519.Identity) -> bytes:
    """Open a sealed clip with an age X25519 identity."""
    if isinstance(identity, str):
        try:
            identity = x25519.Identity.from_str(identity.strip())
        except (ValueError, pyrage.IdentityError) as err:
            raise SealError("not an age X25519 identity", reason="bad_identity") from err
    try:
        return pyrage.decrypt(bytes(ciphertext), [identity])
    except pyrage.DecryptError as err:
        raise SealError(
            f"the sealed clip does not open with this identity: {err}", reason="not_sealed_for_us"
        ) from err
