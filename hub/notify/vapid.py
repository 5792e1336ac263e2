"""The hub's VAPID key pair (RFC 8292): it identifies the hub to the browsers' push services.

Made at first need and kept in the data dir (`keys/vapid-p256.pem`, mode 0600). A browser's
subscription is bound to the public key it was made with, so the key must never change under
a subscription: creating it is atomic (a hard link that fails if another process won the race),
and every caller reads the one that landed.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub.datadir import DataDir, fsync_dir
from hub.errors import ConfigError

_creating = threading.Lock()


@dataclass(frozen=True)
class VapidKey:
    """The hub's P-256 VAPID key pair."""

    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_raw(self) -> bytes:
        """Return the public key as an uncompressed P-256 point (65 bytes)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    @property
    def application_server_key(self) -> str:
        """Return the public key as base64url, as PushManager.subscribe takes it."""
        return base64.urlsafe_b64encode(self.public_raw).rstrip(b"=").decode()

    def private_pem(self) -> bytes:
        """Return the private key as PKCS#8 PEM."""
        return self.private_key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())


def load_or_create_vapid_key(data: DataDir) -> VapidKey:
    """Return the hub's VAPID key, making it on first need."""
    path = data.vapid_key
    with _creating:
        if not path.exists():
            _create(data)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read the VAPID key {path}: {err}; move it away and the hub "
                          "makes a new one (every browser must then subscribe again)") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{path} is not a P-256 key; move it away and the hub makes a new one")
    return VapidKey(key)


def _create(data: DataDir) -> None:
    path = data.vapid_key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = VapidKey(ec.generate_private_key(ec.SECP256R1())).private_pem()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link, not replace: another process that made a key first keeps it.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
