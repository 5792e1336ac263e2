"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A signed note is a UTF-8 text ending in a newline, a blank line, and one or more signature
lines ``— <key name> base64(key id || signature)``. Keys are written as strings:

- verifier key: ``<name>+<key id, 8 hex digits>+base64(0x01 || 32-byte public key)``
- signer key: ``PRIVATE+KEY+<name>+<key id>+base64(0x01 || 32-byte private seed)``

with key id = the first 4 bytes, big-endian, of SHA-256(name || 0x0A || 0x01 || public key).
These are the formats of golang.org/x/mod/sumdb/note, so keys and notes interoperate with Go
logs and witnesses.

Opening a note trusts only the verifiers the caller passes in; signatures by other keys are
kept aside as unverified, and a note that no trusted key signed is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from federation.errors import FederationError

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
# Go's reference implementation accepts at most 100 signatures; the spec asks for at least 16.
MAX_SIGNATURES = 100
# Room for 16 post-quantum signatures (nearly 5 kB each) plus a generous text.
MAX_NOTE_BYTES = 256 * 1024

_KEY_ID_PATTERN = re.compile(r"[0-9a-f]{8}")
_BAD_NAME_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cs"})


class NoteError(FederationError):
    """Base of every signed-note failure."""

    default_reason = "note_error"


class NoteMalformed(NoteError):
    """The bytes are not a well-formed signed note."""

    default_reason = "note_malformed"


class NoteKeyInvalid(NoteError):
    """A verifier or signer key string is not a valid Ed25519 note key."""

    default_reason = "note_key_invalid"


class NoteSignatureInvalid(NoteError):
    """A signature by a trusted key does not verify: the note was altered or forged."""

    default_reason = "note_bad_signature"


class NoteKeyAmbiguous(NoteError):
    """Two different trusted keys share one key name and key id."""

    default_reason = "note_key_ambiguous"


class NoteUnverified(NoteError):
    """No trusted key signed the note; ``note`` holds what was parsed."""

    default_reason = "note_unverified"

    def __init__(self, message: str, *, note: Note, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.note = note


def _b64decode(text: str) -> bytes:
    # Strict and canonical: a note or key has exactly one spelling, so nothing can be smuggled
    # into the unused bits of the last base64 character.
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as err:
        raise ValueError("not standard base64") from err
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def is_valid_key_name(name: object) -> bool:
    """Tell whether a key name is non-empty and free of spaces, plus signs and controls."""
    if not isinstance(name, str) or not name:
        return False
    for ch in name:
        # Go's reference rejects Unicode spaces and '+'; controls and surrogates cannot
        # appear in a note at all.
        if ch == "+" or ch.isspace() or unicodedata.category(ch) in _BAD_NAME_CATEGORIES:
            return False
    return _utf8_ok(name)


def _utf8_ok(text: str) -> bool:
    # A Python str may hold lone surrogates, which have no UTF-8 encoding.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_forbidden_control(text: str) -> bool:
    return any(ch < " " and ch != "\n" for ch in text)


def key_id(name: str, public_key: bytes) -> int:
    """Return the key id of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 public key with its note key name and key id."""

    name: str
    key_id: int
    public_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise NoteKeyInvalid(
                f"key name {self.name!r} must be non-empty without spaces or '+'",
                reason="note_bad_key_name",
            )
        if len(self.public_key) != 32:
            raise NoteKeyInvalid("an Ed25519 public key is 32 bytes")
        if self.key_id != key_id(self.name, self.public_key):
            raise NoteKeyInvalid(
                f"key id {self.key_id:08x} does not match the key named {self.name!r}",
                reason="note_key_id_mismatch",
            )

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey | bytes) -> NoteVerifier:
        """Make a verifier for an Ed25519 public key under a key name."""
        if isinstance(public_key, Ed25519PublicKey):
            public_key = public_key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        if not is_valid_key_name(name):
            raise NoteKeyInvalid(
                f"key name {name!r} must be non-empty without spaces or '+'",
                reason="note_bad_key_name",
            )
        return cls(name=name, key_id=key_id(name, bytes(public_key)), public_key=bytes(public_key))

    @classmethod
    def from_string(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string ``name+keyid+base64(0x01||public key)``."""
        if not isinstance(vkey, str):
            raise NoteKeyInvalid("a verifier key is a string")
        # The name holds no '+', but the base64 key material may, so split twice only.
        name, sep1, rest = vkey.partition("+")
        id_hex, sep2, key64 = rest.partition("+")
        if not (sep1 and sep2 and is_valid_key_name(name) and _KEY_ID_PATTERN.fullmatch(id_hex)):
            raise NoteKeyInvalid(
                "a verifier key looks like name+1234abcd+base64key; check it was copied whole",
                reason="note_bad_verifier_key",
            )
        try:
            material = _b64decode(key64)
        except ValueError as err:
            raise NoteKeyInvalid(
                "the verifier key material is not canonical base64",
                reason="note_bad_verifier_key",
            ) from err
        if len(material) != 33 or material[0] != ALG_ED25519:
            raise NoteKeyInvalid(
                "the verifier key is not an Ed25519 key (0x01 and 32 bytes)",
                reason="note_bad_verifier_key",
            )
        return cls(name=name, key_id=int(id_hex, 16), public_key=material[1:])

    def to_string(self) -> str:
        """Return the verifier key string ``name+keyid+base64(0x01||public key)``."""
        return f"{self.name}+{self.key_id:08x}+{_b64encode(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Tell whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class NoteSigner:
    """An Ed25519 private key that signs notes under a key name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not is_valid_key_name(name):
            raise NoteKeyInvalid(
                f"key name {name!r} must be non-empty without spaces or '+'",
                reason="note_bad_key_name",
            )
        if not isinstance(private_key, Ed25519PrivateKey):
            raise NoteKeyInvalid("a note signer needs an Ed25519 private key")
        self.name = name
        self._private = private_key
        self._verifier = NoteVerifier.from_public_key(name, private_key.public_key())
        self.key_id = self._verifier.key_id

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """Generate a new Ed25519 note signer."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_string(cls, skey: str) -> NoteSigner:
        """Parse a signer key string ``PRIVATE+KEY+name+keyid+base64(0x01||seed)``."""
        if not isinstance(skey, str):
            raise NoteKeyInvalid("a signer key is a string")
        prefix = "PRIVATE+KEY+"
        name, sep1, rest = skey.removeprefix(prefix).partition("+")
        id_hex, sep2, key64 = rest.partition("+")
        if not (
            skey.startswith(prefix)
            and sep1
            and sep2
            and is_valid_key_name(name)
            and _KEY_ID_PATTERN.fullmatch(id_hex)
        ):
            raise NoteKeyInvalid(
                "a signer key looks like PRIVATE+KEY+name+1234abcd+base64key",
                reason="note_bad_signer_key",
            )
        try:
            material = _b64decode(key64)
        except ValueError as err:
            raise NoteKeyInvalid(
                "the signer key material is not canonical base64", reason="note_bad_signer_key"
            ) from err
        if len(material) != 33 or material[0] != ALG_ED25519:
            raise NoteKeyInvalid(
                "the signer key is not an Ed25519 key (0x01 and a 32-byte seed)",
                reason="note_bad_signer_key",
            )
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(material[1:]))
        if signer.key_id != int(id_hex, 16):
            raise NoteKeyInvalid(
                f"key id {id_hex} does not match the signer key named {name!r}",
                reason="note_key_id_mismatch",
            )
        return signer

    def to_string(self) -> str:
        """Return the secret signer key string; store it like any private key."""
        seed = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return (
            f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{_b64encode(bytes([ALG_ED25519]) + seed)}"
        )

    def verifier(self) -> NoteVerifier:
        """Return the matching verifier."""
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        """Return the Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def __repr__(self) -> str:
        # Never show the private key, not even in a traceback.
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id:08x})"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key id and the raw signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """Return the signature line, newline included."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {_b64encode(blob)}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, the verified signatures and the ones from unknown keys."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()
    unverified: tuple[NoteSignature, ...] = ()


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise NoteMalformed("note text must be a string")
    if not text.endswith("\n"):
        raise NoteMalformed("note text must end with a newline", reason="note_no_final_newline")
    if _has_forbidden_control(text) or not _utf8_ok(text):
        raise NoteMalformed(
            "note text must be UTF-8 without control characters other than newline",
            reason="note_bad_characters",
        )
    return text


def sign_note(text: str, *signers: NoteSigner) -> str:
    """Sign a note text with one or more signers and return the signed note."""
    _check_text(text)
    if not signers:
        raise ValueError("a signed note needs at least one signer")
    lines: list[str] = []
    seen: set[tuple[str, int]] = set()
    message = text.encode("utf-8")
    for signer in signers:
        if (signer.name, signer.key_id) in seen:
            continue
        seen.add((signer.name, signer.key_id))
        lines.append(NoteSignature(signer.name, signer.key_id, signer.sign(message)).line())
    note = text + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteMalformed(
            f"signed note would exceed {MAX_NOTE_BYTES} bytes", reason="note_too_large"
        )
    return note


def _decode(message: bytes | bytearray | str) -> str:
    if isinstance(message, bytes | bytearray):
        if len(message) > MAX_NOTE_BYTES:
            raise NoteMalformed(f"note exceeds {MAX_NOTE_BYTES} bytes", reason="note_too_large")
        try:
            return bytes(message).decode("utf-8")
        except UnicodeDecodeError as err:
            raise NoteMalformed("note is not valid UTF-8", reason="note_bad_characters") from err
    if not isinstance(message, str):
        raise NoteMalformed("a note is bytes or a string")
    if not _utf8_ok(message):
        raise NoteMalformed("note is not valid UTF-8", reason="note_bad_characters")
    # Cheap upper bound first: UTF-8 is at most 4 bytes a character.
    if len(message) > MAX_NOTE_BYTES or len(message.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteMalformed(f"note exceeds {MAX_NOTE_BYTES} bytes", reason="note_too_large")
    return message


def parse_note(message: bytes | bytearray | str) -> tuple[str, tuple[NoteSignature, ...]]:
    """Split a signed note into its text and signature lines without verifying anything."""
    note = _decode(message)
    if _has_forbidden_control(note):
        raise NoteMalformed(
            "note contains control characters other than newline", reason="note_bad_characters"
        )
    # The text ends at the last blank line; signature lines are never empty.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteMalformed(
            "note has no blank line before its signatures", reason="note_no_signatures"
        )
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteMalformed(
            "note must end with signature lines, each ending in a newline",
            reason="note_no_signatures",
        )
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteMalformed(
            f"note has more than {MAX_SIGNATURES} signatures", reason="note_too_many_signatures"
        )
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteMalformed(
                "signature lines start with an em dash and a space",
                reason="note_bad_signature_line",
            )
        name, sep, blob64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = _b64decode(blob64)
        except ValueError:
            blob = b""
        if not sep or not is_valid_key_name(name) or len(blob) < 5:
            raise NoteMalformed(
                "a signature line is '— <key name> <base64 key id and signature>'",
                reason="note_bad_signature_line",
            )
        signatures.append(NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:]))
    return text, tuple(signatures)


def _as_verifiers(verifiers: NoteVerifier | Iterable[NoteVerifier]) -> list[NoteVerifier]:
    if isinstance(verifiers, NoteVerifier):
        return [verifiers]
    result = list(verifiers)
    for verifier in result:
        if not isinstance(verifier, NoteVerifier):
            raise TypeError(f"expected NoteVerifier, got {type(verifier).__name__}")
    return result


def open_note(
    message: bytes | bytearray | str, verifiers: NoteVerifier | Iterable[NoteVerifier]
) -> Note:
    """Parse a signed note and verify it against trusted keys; return the opened note."""
    known: dict[tuple[str, int], NoteVerifier | None] = {}
    for verifier in _as_verifiers(verifiers):
        slot = (verifier.name, verifier.key_id)
        previous = known.get(slot, verifier)
        # The same key listed twice is harmless; two keys behind one (name, id) are not.
        same = previous is not None and hmac.compare_digest(
            previous.public_key, verifier.public_key
        )
        known[slot] = verifier if same else None

    text, signatures = parse_note(message)
    payload = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    for signature in signatures:
        slot = (signature.name, signature.key_id)
        if slot not in known:
            # The spec requires ignoring unknown keys (witnesses, rotated keys).
            if signature not in unverified:
                unverified.append(signature)
            continue
        verifier = known[slot]
        if verifier is None:
            raise NoteKeyAmbiguous(
                f"two trusted keys are named {signature.name}+{signature.key_id:08x}; "
                "remove the stale one from the trusted keys"
            )
        # A signature by a trusted key that fails means tampering: reject the whole note.
        if not verifier.verify(payload, signature.signature):
            raise NoteSignatureInvalid(
                f"signature by {signature.name}+{signature.key_id:08x} does not verify; "
                "the note was altered or signed by another key"
            )
        if signature not in verified:
            verified.append(signature)
    note = Note(text=text, signatures=tuple(verified), unverified=tuple(unverified))
    if not verified:
        raise NoteUnverified(
            "no trusted key signed this note; check the log's verifier key", note=note
        )
    return note
