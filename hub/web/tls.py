"""HTTPS for the hub's web UI: a self-signed certificate made at init, or the owner's own.

A hub on a LAN has no public name a certificate authority would vouch for, so `init` makes a
self-signed certificate and the hub prints its SHA-256 fingerprint at start: the owner checks it
once in the browser (or scans the QR code with a phone) and pins it from then on.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.datadir import write_private
from hub.errors import ConfigError

CERT_DAYS = 3650


def make_self_signed(cert_path: Path, key_path: Path, hub_name: str) -> str:
    """Write a new self-signed certificate and key (0600); return its SHA-256 fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "porchlight"
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(host),
                                     x509.DNSName(f"{host}.local"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Porchlight hub {hub_name}"[:64])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(pem)
    return fingerprint(pem)


def fingerprint(pem: bytes) -> str:
    """Return a certificate's SHA-256 fingerprint as colon-separated upper-case hex."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as err:
        raise ConfigError(f"the web certificate is not a PEM certificate: {err}") from err
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """Return a TLS 1.2+ server context for the certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"cannot load the web certificate {cert_path.name}: {err}") from err
    return context


def terminal_qr(text: str) -> str:
    """Return a QR code of text drawn for a terminal (a phone's camera opens the URL)."""
    import segno  # only for a terminal: a headless hub never draws one

    lines: list[str] = []

    class _Sink:
        def write(self, chunk: str) -> None:
            lines.append(chunk)

    segno.make(text, error="l").terminal(out=_Sink(), compact=True)
    return "".join(lines)
