"""Age files sealed with a passphrase (age's scrypt recipient) at a work factor the hub fixes.

Written by hand from the age v1 spec (C2SP age), on the cryptography package's scrypt,
ChaCha20-Poly1305, HKDF and HMAC, because no library seals at a work factor one chooses:
rage (pyrage) picks it from how fast the machine is at that moment, and when opening refuses
any file above "what takes about 16 s right now". So a key sealed on an idle machine could be
refused on the same machine when busy, as if the passphrase were wrong (seen in CI). Here the
factor is the config's `[vault] passphrase_work_factor`, and opening accepts up to the same
limit as the age CLI (2^22). The files are ordinary age files: `age -d` opens them, and files
that rage sealed open here (tests/hub/test_passphrase_seal.py).
"""

from __future__ import annotations

import base64
import os
import re

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

DEFAULT_WORK_FACTOR = 18  # log2 of scrypt's N: age's own default, about 1 s on a laptop core
MIN_WORK_FACTOR = 10
MAX_WORK_FACTOR = 22  # the age CLI's limit for opening: 4 GiB of memory, tens of seconds

VERSION_LINE = b"age-encryption.org/v1\n"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
CHUNK = 64 * 1024
TAG = 16
MAX_SEALED = 1 << 20  # the sealed keys are a few hundred bytes; refuse to read more than this
# The header of a file sealed with one scrypt stanza: its salt (16 bytes), log2 N, the wrapped
# file key (32 bytes), and the header MAC (32 bytes), each in unpadded standard base64.
HEADER = re.compile(
    rb"age-encryption\.org/v1\n"
    rb"-> scrypt (?P<salt>[A-Za-z0-9+/]{22}) (?P<log_n>[1-9][0-9]?)\n"
    rb"(?P<body>[A-Za-z0-9+/]{43})\n"
    rb"--- (?P<mac>[A-Za-z0-9+/]{43})\n"
)


class SealError(ValueError):
    """The passphrase does not open the file, or it is not a passphrase-sealed age file."""


def seal(plain: bytes, passphrase: str, work_factor: int = DEFAULT_WORK_FACTOR) -> bytes:
    """Seal bytes as an age file that only the passphrase opens (scrypt at 2^work_factor)."""
    if not MIN_WORK_FACTOR <= work_factor <= MAX_WORK_FACTOR:
        raise ValueError(f"work factor {work_factor} is outside "
                         f"{MIN_WORK_FACTOR}..{MAX_WORK_FACTOR}")
    file_key = os.urandom(16)
    salt = os.urandom(16)
    wrap_key = _scrypt(passphrase, salt, work_factor)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    header = (VERSION_LINE + b"-> scrypt " + _b64(salt) + b" " + str(work_factor).encode()
              + b"\n" + _b64(body) + b"\n---")
    nonce = os.urandom(16)
    return header + b" " + _b64(_header_mac(file_key, header)) + b"\n" + nonce + _stream(
        _hkdf(file_key, nonce, b"payload"), plain)


def open_sealed(sealed: bytes, passphrase: str) -> bytes:
    """Open a passphrase-sealed age file; raise SealError if the passphrase or the file is wrong."""
    if len(sealed) > MAX_SEALED:
        raise SealError("the sealed file is too large to be a key")
    match = HEADER.match(sealed)
    if match is None:
        raise SealError("not an age file sealed with a passphrase alone")
    log_n = int(match["log_n"])
    if log_n > MAX_WORK_FACTOR:
        raise SealError(f"its work factor {log_n} is above {MAX_WORK_FACTOR}, the most opened")
    salt, body, mac = (_unb64(match[name]) for name in ("salt", "body", "mac"))
    try:
        file_key = ChaCha20Poly1305(_scrypt(passphrase, salt, log_n)).decrypt(bytes(12), body, None)
    except InvalidTag:
        raise SealError("wrong passphrase") from None
    header_end = match.start("mac") - 1  # the MAC covers the header up to "---", not the space
    check = hmac.HMAC(_hkdf(file_key, b"", b"header"), hashes.SHA256())
    check.update(sealed[:header_end])
    try:
        check.verify(mac)  # constant time
    except InvalidSignature:
        raise SealError("the file's header is damaged") from None
    payload = sealed[match.end():]
    if len(payload) < 16 + TAG:
        raise SealError("the file is cut short")
    return _unstream(_hkdf(file_key, payload[:16], b"payload"), payload[16:])


def spend_open_work(passphrase: str, work_factor: int) -> None:
    """Spend the scrypt work of opening a file sealed at work_factor, for a key that does not exist.

    A sign-in with an unknown name must cost what a wrong passphrase costs, or its speed tells
    which names exist.
    """
    _scrypt(passphrase, os.urandom(16), work_factor)


def _scrypt(passphrase: str, salt: bytes, log_n: int) -> bytes:
    return Scrypt(salt=SCRYPT_LABEL + salt, length=32, n=1 << log_n, r=8, p=1).derive(
        passphrase.encode("utf-8"))


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(key)


def _header_mac(file_key: bytes, header: bytes) -> bytes:
    mac = hmac.HMAC(_hkdf(file_key, b"", b"header"), hashes.SHA256())
    mac.update(header)
    return mac.finalize()


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _stream(key: bytes, plain: bytes) -> bytes:
    """Encrypt with age's STREAM: 64 KiB chunks, each with a counter and a last-chunk flag."""
    aead = ChaCha20Poly1305(key)
    starts = range(0, max(len(plain), 1), CHUNK)
    return b"".join(aead.encrypt(_nonce(i, i == len(starts) - 1), plain[start:start + CHUNK], None)
                    for i, start in enumerate(starts))


def _unstream(key: bytes, cipher: bytes) -> bytes:
    aead = ChaCha20Poly1305(key)
    out = []
    counter = 0
    while True:
        last = len(cipher) <= CHUNK + TAG
        try:
            chunk = aead.decrypt(_nonce(counter, last), cipher[:CHUNK + TAG], None)
        except InvalidTag:
            raise SealError("the file is damaged or cut short") from None
        if last:
            if not chunk and counter:
                raise SealError("the file ends with an empty chunk")  # the spec forbids it
            out.append(chunk)
            return b"".join(out)
        out.append(chunk)
        cipher = cipher[CHUNK + TAG:]
        counter += 1


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    raw = base64.b64decode(text + b"=" * (-len(text) % 4))
    if _b64(raw) != text:  # the spec takes only the canonical encoding (no stray low bits)
        raise SealError("not an age file sealed with a passphrase alone")
    return raw
