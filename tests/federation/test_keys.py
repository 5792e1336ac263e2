"""Keys, kids and fingerprints, checked against the RFC 8037 Appendix A vectors."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import KeyInvalid, UnknownKey
from federation.keys import (
    KeySet,
    SigningKey,
    fingerprint,
    generate_signing_key,
    import_public_jwk,
    load_private_key,
    parse_pin,
    save_private_key,
    thumbprint,
)

# RFC 8037 Appendix A.1 (private key) and A.2 (public key).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_PUBLIC_JWK = {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}
# RFC 8037 Appendix A.3: the SHA-256 thumbprint, in hex and as the base64url kid.
RFC8037_THUMBPRINT_HEX = "90facafea9b1556698540f70c0117a22ea37bd5cf3ed3c47093c1707282b4b89"
RFC8037_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

FEDERATION_DIR = Path(__file__).resolve().parents[2] / "federation"


def b64url_decode(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc8037_key() -> SigningKey:
    return SigningKey.from_private(Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D)))


def test_rfc8037_a1_private_key_gives_a2_public_key() -> None:
    key = rfc8037_key()
    assert key.public_jwk == RFC8037_PUBLIC_JWK


def test_rfc8037_a3_thumbprint_is_the_kid() -> None:
    key = rfc8037_key()
    assert key.kid == RFC8037_KID
    assert thumbprint(RFC8037_PUBLIC_JWK) == RFC8037_KID
    assert b64url_decode(RFC8037_KID).hex() == RFC8037_THUMBPRINT_HEX


def test_fingerprint_is_the_thumbprint_in_grouped_hex() -> None:
    text = fingerprint(RFC8037_KID)
    assert text == (
        "90FA CAFE A9B1 5566 9854 0F70 C011 7A22 EA37 BD5C F3ED 3C47 093C 1707 282B 4B89"
    )
    assert parse_pin(text) == RFC8037_KID
    assert parse_pin(text.lower().replace(" ", ":")) == RFC8037_KID
    assert parse_pin(f"  {RFC8037_KID}\n") == RFC8037_KID


@pytest.mark.parametrize("text", ["", "hello", "90FA CAFE", RFC8037_KID[:-1], RFC8037_KID + "A"])
def test_parse_pin_rejects_what_is_not_a_key_id(text: str) -> None:
    with pytest.raises(KeyInvalid) as err:
        parse_pin(text)
    assert err.value.reason == "bad_pin"
    assert str(err.value) == "a pinned key must be a 43-character kid or a 64-digit hex fingerprint"


def test_fingerprint_rejects_a_non_kid() -> None:
    with pytest.raises(KeyInvalid) as err:
        fingerprint("not a kid")
    assert str(err.value) == "a kid is 43 characters of unpadded base64url"


def test_generated_keys_are_distinct_and_self_consistent() -> None:
    one, two = generate_signing_key(), generate_signing_key()
    assert one.kid != two.kid
    assert thumbprint(one.public_jwk) == one.kid
    assert "d" not in one.public_jwk
    assert "private" not in repr(one) and RFC8037_D not in repr(rfc8037_key())


def test_saved_key_is_owner_only_and_loads_back(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "hub.key"
    old_umask = os.umask(0)  # prove the mode does not depend on the caller's umask
    try:
        save_private_key(key, path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_private_key(path).kid == key.kid
    assert [p.name for p in tmp_path.iterdir()] == ["hub.key"]


def test_saved_key_with_passphrase(tmp_path: Path) -> None:
    key = generate_signing_key()
    path = tmp_path / "agency.key"
    save_private_key(key, path, passphrase=b"correct horse")
    assert b"ENCRYPTED" in path.read_bytes()
    assert load_private_key(path, passphrase=b"correct horse").kid == key.kid
    with pytest.raises(KeyInvalid) as err:
        load_private_key(path)
    assert err.value.reason == "key_passphrase"
    with pytest.raises(KeyInvalid) as err:
        load_private_key(path, passphrase=b"wrong")
    assert err.value.reason == "key_unparsable"


def test_save_refuses_to_overwrite_an_identity(tmp_path: Path) -> None:
    path = tmp_path / "hub.key"
    first = generate_signing_key()
    save_private_key(first, path)
    with pytest.raises(KeyInvalid) as err:
        save_private_key(generate_signing_key(), path)
    assert err.value.reason == "key_exists"
    assert str(err.value) == (
        f"key file {path} already exists; refusing to overwrite a signing key "
        "(move it away first if you really mean to replace this identity)"
    )
    assert load_private_key(path).kid == first.kid
    second = generate_signing_key()
    save_private_key(second, path, overwrite=True)
    assert load_private_key(path).kid == second.kid


def test_save_into_a_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "hub.key"
    with pytest.raises(KeyInvalid) as err:
        save_private_key(generate_signing_key(), path)
    assert err.value.reason == "key_unwritable"
    assert str(err.value) == (
        f"cannot write key file {path}: No such file or directory; "
        "check that the directory exists and is writable"
    )


def test_load_rejects_missing_garbage_and_foreign_keys(tmp_path: Path) -> None:
    with pytest.raises(KeyInvalid) as err:
        load_private_key(tmp_path / "absent.key")
    assert err.value.reason == "key_unreadable"

    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    with pytest.raises(KeyInvalid) as err:
        load_private_key(garbage)
    assert err.value.reason == "key_unparsable"

    ec_path = tmp_path / "ec.key"
    ec_path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyInvalid) as err:
        load_private_key(ec_path)
    assert err.value.reason == "wrong_key_type"
    assert str(err.value) == (
        f"key file {ec_path} holds another kind of key, not Ed25519; "
        "Porchlight signs only with Ed25519"
    )


@pytest.mark.parametrize(
    ("jwk", "reason", "message"),
    [
        ("x", "bad_jwk", "JWK must be a JSON object"),
        (
            {**RFC8037_PUBLIC_JWK, "d": RFC8037_D},
            "private_jwk",
            "JWK contains private key material (d); share only the public JWK",
        ),
        (
            {"kty": "OKP", "crv": "X25519", "x": RFC8037_X},
            "wrong_key_type",
            "JWK must be an Ed25519 key (kty OKP, crv Ed25519)",
        ),
        (
            {"kty": "EC", "crv": "Ed25519", "x": RFC8037_X},
            "wrong_key_type",
            "JWK must be an Ed25519 key (kty OKP, crv Ed25519)",
        ),
        (
            {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X[:-1]},
            "bad_jwk",
            "JWK x must be 32 bytes in unpadded base64url",
        ),
        (
            {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X[:-1] + "p"},
            "bad_jwk",
            "JWK x must be 32 bytes in canonical base64url",
        ),
        (
            {**RFC8037_PUBLIC_JWK, "x5u": "https://evil.example/key"},
            "bad_jwk",
            "JWK has unknown member 'x5u'",
        ),
        (
            {**RFC8037_PUBLIC_JWK, "kid": "A" * 43},
            "kid_mismatch",
            f"JWK kid {'A' * 43!r} is not the RFC 7638 thumbprint of its key; drop it or fix it",
        ),
    ],
)
def test_import_public_jwk_rejects(jwk: object, reason: str, message: str) -> None:
    with pytest.raises(KeyInvalid) as err:
        import_public_jwk(jwk)
    assert err.value.reason == reason
    assert str(err.value) == message


def test_keyset_looks_up_by_kid_only() -> None:
    keys = KeySet([RFC8037_PUBLIC_JWK])
    assert RFC8037_KID in keys and len(keys) == 1 and list(keys) == [RFC8037_KID]
    assert keys.jwk(RFC8037_KID) == RFC8037_PUBLIC_JWK
    assert keys.add({**RFC8037_PUBLIC_JWK, "kid": RFC8037_KID, "use": "sig"}) == RFC8037_KID
    assert len(keys) == 1
    other = generate_signing_key()
    assert keys.add(other) == other.kid
    with pytest.raises(UnknownKey) as err:
        keys.get("A" * 43)
    assert err.value.reason == "unknown_kid"
    assert str(err.value) == (
        f"no trusted key has kid {'A' * 43!r}; pin the sender's key or refresh the registry"
    )
    keys.remove(other.kid)
    assert other.kid not in keys
    with pytest.raises(UnknownKey):
        keys.get(None)  # type: ignore[arg-type]


def test_federation_imports_neither_hub_nor_plugins() -> None:
    """Walk every module of federation/ and check the dependency direction."""
    sources = sorted(FEDERATION_DIR.rglob("*.py"))
    assert sources, "found no federation modules"
    offenders = []
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 1:
                    names = ["(relative import out of federation)"]
                else:
                    names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in {"hub", "plugins"} or name.startswith("(relative"):
                    offenders.append(f"{source.name}:{node.lineno} imports {name}")
    assert offenders == []
