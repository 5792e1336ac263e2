"""C2SP tlog-cosignature: timestamped Ed25519 cosignatures (cosignature/v1) on checkpoints.

A cosignature is a note signature line on a checkpoint by a witness:

    — <witness name> base64(key ID || u64 timestamp || Ed25519 signature)

with key ID = SHA-256(name || "\\n" || 0x04 || public key)[:4], over the message

    cosignature/v1
    time <timestamp>
    <the whole checkpoint note text>

It says: as of that time, the largest consistent tree the witness observed for the log of that
origin has that root hash. Written by hand: no Python library implements the format, and it is
a few lines over the signed-note code beside it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from federation.errors import FederationError
from federation.tlog.note import SIGNATURE_PREFIX, is_valid_key_name, parse_note

ALG_COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1


class CosignatureError(FederationError):
    """A cosignature or a witness key is malformed."""

    default_reason = "cosignature_invalid"


def cosignature_key_id(name: str, public_key: bytes) -> int:
    """Return a cosigner's key ID: SHA-256(name || 0x0A || 0x04 || key)[:4]."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1])
                            + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """Return the bytes a cosignature/v1 signs for a checkpoint's note text at a time."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError("a cosignature's timestamp is 0 to 2^63-1")
    return (HEADER + f"time {timestamp}\n" + checkpoint_text).encode("utf-8")


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness the reader trusts: its name and Ed25519 public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise CosignatureError(f"witness name {self.name!r} is not a valid key name")
        if len(self.public_key) != 32:
            raise CosignatureError("a witness key is a 32-byte Ed25519 public key")

    @property
    def key_id(self) -> int:
        """Return this witness's cosignature key ID."""
        return cosignature_key_id(self.name, self.public_key)

    def to_string(self) -> str:
        """Return the witness key as a vkey: name+keyid+base64(0x04 || key)."""
        blob = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{blob}"

    @classmethod
    def from_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse a witness vkey (name+keyid+base64(0x04 || key)), checking its key ID."""
        try:
            # Split from the left: names have no "+", base64 may.
            name, key_id_hex, blob64 = vkey.strip().split("+", 2)
            blob = base64.b64decode(blob64, validate=True)
            key_id = int(key_id_hex, 16)
        except (ValueError, binascii.Error) as err:
            raise CosignatureError("a witness key is name+keyid+base64 key") from err
        if len(key_id_hex) != 8 or len(blob) != 33 or blob[0] != ALG_COSIGNATURE_V1:
            raise CosignatureError("a witness key has an 8-digit key ID and type 0x04")
        verifier = cls(name, blob[1:])
        if verifier.key_id != key_id:
            raise CosignatureError(f"witness key {name}: the key ID does not match the key")
        return verifier

    def verify(self, checkpoint_text: str, timestamp: int, signature: bytes) -> bool:
        """Say whether a cosignature by this witness on this checkpoint text is valid."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature, cosigned_message(checkpoint_text, timestamp))
        except (InvalidSignature, CosignatureError):
            return False
        return True


class CosignatureSigner:
    """A witness's signing side."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = name
        self.private_key = private_key
        self.verifier = CosignatureVerifier(name, _raw(private_key.public_key()))

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """Return the cosignature line (newline included) on a checkpoint's note text."""
        signature = self.private_key.sign(cosigned_message(checkpoint_text, timestamp))
        blob = (self.verifier.key_id.to_bytes(4, "big") + struct.pack(">Q", timestamp)
                + signature)
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: which witness, and when it cosigned."""

    witness: str
    timestamp: int


def verify_cosignatures(signed_note: str,
                        witnesses: Iterable[CosignatureVerifier]) -> list[Cosignature]:
    """Return the valid cosignatures on a signed checkpoint by the given witnesses.

    Signature lines of other keys (the log's own, unknown witnesses) are ignored, as the spec
    requires; a line with a trusted name and key ID but a bad signature is not counted.
    """
    text, signatures = parse_note(signed_note)
    trusted = {(w.name, w.key_id): w for w in witnesses}
    found: dict[str, Cosignature] = {}
    for line in signatures:
        witness = trusted.get((line.name, line.key_id))
        if witness is None or len(line.signature) != 8 + 64:
            continue
        timestamp = struct.unpack(">Q", line.signature[:8])[0]
        if timestamp > MAX_TIMESTAMP:
            continue
        if witness.verify(text, timestamp, line.signature[8:]):
            found.setdefault(witness.name, Cosignature(witness.name, timestamp))
    return list(found.values())
