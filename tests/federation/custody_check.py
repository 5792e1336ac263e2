"""An outside check of an agency's evidence folder, written from the specs, not from our code.

It uses only the ``age`` CLI (to open sealed files), jwcrypto (an independent JWS library),
the ``cryptography`` package's Ed25519 and hashlib; it imports nothing from ``federation`` or
``hub``. It follows docs/agency-protocol.md ("Chain of custody") and:

- RFC 7515/7638/8037/9864: compact JWS, JWK thumbprints, Ed25519;
- RFC 9162 2.1.3.2: verifying an inclusion proof;
- C2SP signed-note (key id = SHA-256(name || 0x0A || 0x01 || key)[:4]) and tlog-checkpoint,
  tlog-proof (``c2sp.org/tlog-proof@v1``, ``index N``, hashes, blank line, checkpoint).

``check_evidence`` returns the hub kids it found, or raises AssertionError naming what failed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwcrypto import jwk as jw_jwk
from jwcrypto import jws as jw_jws


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_jws(token: str, key_claim: str, typ: str) -> dict[str, Any]:
    """Verify a compact JWS with jwcrypto under the JWK its own claim carries; return claims."""
    header = json.loads(_b64url(token.split(".")[0]))
    claims = json.loads(_b64url(token.split(".")[1]))
    assert header == {"alg": "Ed25519", "typ": typ, "kid": header["kid"]}, header
    key = jw_jwk.JWK(**claims[key_claim])
    # RFC 7638: the kid, the issuer and the carried key are one.
    assert key.thumbprint() == header["kid"] == claims["iss"], "kid is not the key's thumbprint"
    verifier = jw_jws.JWS()
    verifier.deserialize(token)
    verifier.verify(key, alg="Ed25519")
    assert json.loads(verifier.payload) == claims
    return claims


def _leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2, step by step."""
    assert index < size, "index beyond the tree"
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        assert sn != 0, "proof too long"
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node_hash(r, p)
        fn >>= 1
        sn >>= 1
    assert sn == 0, "proof too short"
    return r


def _open_checkpoint(note: str, origin: str, public_key: bytes) -> tuple[int, bytes]:
    """Check a C2SP signed note's Ed25519 signature by the log's key; return (size, root)."""
    text, _, signatures = note.partition("\n\n")
    text += "\n"
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + public_key).digest()[:4]
    verified = False
    for line in signatures.splitlines():
        name, blob = line.removeprefix("\u2014 ").rsplit(" ", 1)
        raw = base64.b64decode(blob)
        if name == origin and raw[:4] == key_id:
            try:
                Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], text.encode())
            except InvalidSignature as err:
                raise AssertionError("the checkpoint signature does not verify") from err
            verified = True
    assert verified, "the checkpoint is not signed by the gateway's key"
    lines = text.splitlines()
    assert lines[0] == origin, "the checkpoint is of another log"
    return int(lines[1]), base64.b64decode(lines[2])


def check_inclusion(entry: str, bundle: str, origin: str, public_key: bytes) -> int:
    """Check a tlog-proof bundle puts these exact bytes in the signed log; return the index."""
    head, _, checkpoint = bundle.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == "c2sp.org/tlog-proof@v1", "not a tlog-proof"
    lines = [line for line in lines[1:] if not line.startswith("extra ")]
    index = int(lines[0].removeprefix("index "))
    hashes = [base64.b64decode(line) for line in lines[1:]]
    size, root = _open_checkpoint(checkpoint, origin, public_key)
    assert _root_from_inclusion(index, size, _leaf_hash(entry.encode()), hashes) == root, (
        "the entry is not in the log"
    )
    return index


def _age_open(identity: Path, sealed: Path) -> bytes:
    done = subprocess.run(
        ["age", "-d", "-i", str(identity), str(sealed)], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_evidence(folder: Path, identity: Path) -> list[str]:
    """Check an evidence folder offline; return the kid of each hub whose custody verified."""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "porchlight-chain-of-custody/2"
    gateway = manifest["gateway"]
    origin = "porchlight-gateway/" + gateway["kid"]
    assert jw_jwk.JWK(**gateway["jwk"]).thumbprint() == gateway["kid"]
    public_key = _b64url(gateway["jwk"]["x"])
    request = manifest["request"]
    if request.get("tlog_proof"):
        assert check_inclusion(request["jws"], request["tlog_proof"], origin, public_key) == (
            request["log_index"]
        )
    hubs = []
    for answer in manifest["answers"]:
        claims = verify_jws(answer["jws"], "key", "porchlight-answer+jws")
        assert claims["aud"] == gateway["kid"] and claims["request"] == request["id"]
        assert claims["decision"] == "approved"
        assert answer["key"] == claims["iss"]
        index = check_inclusion(answer["jws"], answer["tlog_proof"], origin, public_key)
        assert index == answer["log_index"]
        custody_file = folder / answer["custody"]["sealed_file"]
        assert _sha256(custody_file) == claims["custody"]["sha256"], "custody file altered"
        statement = _age_open(identity, custody_file).decode("ascii")
        assert statement == answer["custody"]["statement"]
        custody = verify_jws(statement, "hub_key", "porchlight-custody+jws")
        assert custody["iss"] == answer["hub_kid"]
        assert custody["aud"] == manifest["agency"]["kid"]
        assert custody["answer_key"] == claims["iss"], "custody names another one-time key"
        assert custody["request"] == request["id"] and custody["gateway"] == gateway["kid"]
        assert [c["sha256"] for c in custody["clips"]] == [c["sha256"] for c in claims["clips"]]
        for clip in custody["clips"]:
            (entry,) = [c for c in manifest["clips"] if c["sealed_sha256"] == clip["sha256"]]
            sealed = folder / entry["sealed_file"]
            assert _sha256(sealed) == clip["sha256"] and sealed.stat().st_size == clip["size"]
            assert entry["hub_kid"] == custody["iss"] and entry["camera"] == clip["camera"]
            plaintext = _age_open(identity, sealed)
            assert plaintext == (folder / entry["file"]).read_bytes()
            assert hashlib.sha256(plaintext).hexdigest() == entry["sha256"]
        hubs.append(custody["iss"])
    return hubs
