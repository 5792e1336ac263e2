"""Ed25519 signing keys, their public JWKs and RFC 7638 key ids.

Every hub, gateway, agency and registry authority has one Ed25519 signing key. Its key id
(``kid``) is the RFC 7638 JWK thumbprint (SHA-256, base64url) of its public JWK, so a kid
names exactly one key and anyone can recompute it. Keys that verify messages are only ever
taken from a ``KeySet`` the caller trusts, never from a message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from federation.errors import KeyInvalid, UnknownKey

log = logging.getLogger(__name__)

KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
_PUBLIC_JWK_MEMBERS = {"kty", "crv", "x"}
# Members a public JWK may carry besides the required ones; all are ignored by the thumbprint.
_OPTIONAL_JWK_MEMBERS = {"kid", "alg", "use"}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key with its public JWK and kid."""

    private: Ed25519PrivateKey = field(repr=False, compare=False)
    kid: str
    public_jwk: dict[str, str] = field(compare=False)
    okp: OKPKey = field(repr=False, compare=False)

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey) -> SigningKey:
        """Wrap a cryptography Ed25519 private key."""
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyInvalid(
                f"expected an Ed25519 private key, got {type(private).__name__}; "
                "Porchlight signs only with Ed25519",
                reason="wrong_key_type",
            )
        okp = OKPKey.import_key(private)
        jwk = public_jwk_of(okp)
        return cls(private=private, kid=okp.thumbprint(), public_jwk=jwk, okp=okp)

    def public_okp(self) -> OKPKey:
        """Return the public half as a joserfc OKPKey."""
        return OKPKey.import_key(dict(self.public_jwk))


def public_jwk_of(key: OKPKey) -> dict[str, str]:
    """Return the bare public JWK (kty, crv, x) of a joserfc OKP key."""
    data = key.as_dict(private=False)
    return {"kty": data["kty"], "crv": data["crv"], "x": data["x"]}


def generate_signing_key() -> SigningKey:
    """Generate a new Ed25519 signing key."""
    return SigningKey.from_private(Ed25519PrivateKey.generate())


def save_private_key(
    key: SigningKey,
    path: str | os.PathLike[str],
    *,
    passphrase: bytes | None = None,
    overwrite: bool = False,
) -> None:
    """Write the private key as a PKCS#8 PEM file readable only by its owner (mode 0600)."""
    path = os.fspath(path)
    if not overwrite and os.path.lexists(path):
        raise KeyInvalid(
            f"key file {path} already exists; refusing to overwrite a signing key "
            "(move it away first if you really mean to replace this identity)",
            reason="key_exists",
        )
    encryption: serialization.KeySerializationEncryption
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
    else:
        encryption = serialization.NoEncryption()
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # Write a 0600 temporary file next to the target and rename it into place, so a power
    # cut leaves either the old file or the complete new one, and the key is never readable
    # by others, not even for a moment.
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as err:
        raise KeyInvalid(
            f"cannot write key file {path}: {err.strerror}; check that the directory exists "
            "and is writable",
            reason="key_unwritable",
        ) from err
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))
    log.info("wrote signing key %s to %s", key.kid, path)


def _fsync_directory(directory: str) -> None:
    # Make the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_private_key(
    path: str | os.PathLike[str], *, passphrase: bytes | None = None
) -> SigningKey:
    """Load an Ed25519 private key from a PEM file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            pem = fh.read()
    except OSError as err:
        raise KeyInvalid(
            f"cannot read key file {path}: {err.strerror}; check the path and permissions",
            reason="key_unreadable",
        ) from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is accessible by other users; run chmod 600 on it", path)
    try:
        private = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as err:
        # cryptography raises TypeError for a missing or unexpected password.
        raise KeyInvalid(
            f"key file {path}: {err}; pass the passphrase the key was saved with",
            reason="key_passphrase",
        ) from err
    except ValueError as err:
        raise KeyInvalid(
            f"key file {path} is not a readable PEM private key (or the passphrase is wrong); "
            "restore it from backup or generate a new identity",
            reason="key_unparsable",
        ) from err
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyInvalid(
            f"key file {path} holds another kind of key, not Ed25519; "
            "Porchlight signs only with Ed25519",
            reason="wrong_key_type",
        )
    return SigningKey.from_private(private)


def import_public_jwk(jwk: Any) -> OKPKey:
    """Import an Ed25519 public JWK, rejecting private material and other key types."""
    if not isinstance(jwk, Mapping):
        raise KeyInvalid("JWK must be a JSON object", reason="bad_jwk")
    if "d" in jwk:
        raise KeyInvalid(
            "JWK contains private key material (d); share only the public JWK",
            reason="private_jwk",
        )
    unknown = sorted(str(k) for k in jwk if k not in _PUBLIC_JWK_MEMBERS | _OPTIONAL_JWK_MEMBERS)
    if unknown:
        raise KeyInvalid(f"JWK has unknown member {unknown[0]!r}", reason="bad_jwk")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise KeyInvalid(
            "JWK must be an Ed25519 key (kty OKP, crv Ed25519)", reason="wrong_key_type"
        )
    x = jwk.get("x")
    if not isinstance(x, str) or not KID_PATTERN.fullmatch(x):
        raise KeyInvalid("JWK x must be 32 bytes in unpadded base64url", reason="bad_jwk")
    raw = _b64url_decode(x)
    if len(raw) != 32 or _b64url_encode(raw) != x:
        raise KeyInvalid("JWK x must be 32 bytes in canonical base64url", reason="bad_jwk")
    try:
        key = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": x})
    except (JoseError, ValueError) as err:
        raise KeyInvalid(f"JWK is not a usable Ed25519 key: {err}", reason="bad_jwk") from err
    kid = jwk.get("kid")
    if kid is not None and kid != key.thumbprint():
        raise KeyInvalid(
            f"JWK kid {kid!r} is not the RFC 7638 thumbprint of its key; drop it or fix it",
            reason="kid_mismatch",
        )
    return key


def thumbprint(jwk: Any) -> str:
    """Return the RFC 7638 SHA-256 thumbprint (the kid) of an Ed25519 public JWK."""
    return import_public_jwk(jwk).thumbprint()


def fingerprint(kid: str) -> str:
    """Format a kid as 16 groups of 4 upper-case hex digits for comparing out of band."""
    digest = _kid_digest(kid)
    text = digest.hex().upper()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_pin(text: str) -> str:
    """Turn a pinned key given as a kid or as a hex fingerprint into a kid."""
    stripped = text.strip()
    if KID_PATTERN.fullmatch(stripped):
        _kid_digest(stripped)
        return stripped
    compact = re.sub(r"[\s:]", "", stripped)
    if re.fullmatch(r"[0-9A-Fa-f]{64}", compact):
        return _b64url_encode(binascii.unhexlify(compact))
    raise KeyInvalid(
        "a pinned key must be a 43-character kid or a 64-digit hex fingerprint",
        reason="bad_pin",
    )


def _kid_digest(kid: str) -> bytes:
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise KeyInvalid("a kid is 43 characters of unpadded base64url", reason="bad_kid")
    digest = _b64url_decode(kid)
    if _b64url_encode(digest) != kid:
        raise KeyInvalid("a kid must be canonical base64url", reason="bad_kid")
    return digest


class KeySet:
    """A set of trusted Ed25519 public keys, looked up by kid."""

    def __init__(self, jwks: Iterable[Mapping[str, Any]] = ()) -> None:
        self._keys: dict[str, OKPKey] = {}
        for jwk in jwks:
            self.add(jwk)

    def add(self, jwk: Mapping[str, Any] | OKPKey | SigningKey) -> str:
        """Trust a public key and return its kid."""
        if isinstance(jwk, SigningKey):
            jwk = jwk.public_jwk
        elif isinstance(jwk, OKPKey):
            jwk = public_jwk_of(jwk)
        key = import_public_jwk(jwk)
        kid = key.thumbprint()
        self._keys[kid] = key
        return kid

    def remove(self, kid: str) -> None:
        """Stop trusting the key with this kid."""
        self._keys.pop(kid, None)

    def get(self, kid: str) -> OKPKey:
        """Return the trusted key for a kid, or raise UnknownKey."""
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            shown = repr(kid)
            if len(shown) > 64:
                shown = shown[:61] + "..."
            raise UnknownKey(
                f"no trusted key has kid {shown}; pin the sender's key or refresh the registry",
            )
        return key

    def jwk(self, kid: str) -> dict[str, str]:
        """Return the public JWK for a trusted kid."""
        return public_jwk_of(self.get(kid))

    def __contains__(self, kid: object) -> bool:
        return isinstance(kid, str) and kid in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeySet({sorted(self._keys)!r})"
