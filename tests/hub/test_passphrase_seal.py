"""Passphrase-sealed age files at a fixed work factor: the age CLI and rage open them, they
open what rage sealed, and a wrong passphrase or a damaged file is one typed error."""

from __future__ import annotations

import re
import shutil

import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.passphrase_seal import (
    CHUNK,
    DEFAULT_WORK_FACTOR,
    SealError,
    open_sealed,
    seal,
)

PASS = "correct horse battery staple"
LOW = 10  # the lowest factor the hub accepts: these tests are about the format, not the cost


def work_factor_of(sealed: bytes) -> int:
    return int(re.match(rb"age-encryption\.org/v1\n-> scrypt \S+ (\d+)\n", sealed)[1])


@pytest.mark.parametrize("size", [0, 1, 75, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7])
def test_rage_opens_what_is_sealed_here_and_back(size):
    plain = bytes(range(256)) * (size // 256) + b"k" * (size % 256)
    sealed = seal(plain, PASS, LOW)
    assert work_factor_of(sealed) == LOW
    assert pyrage.passphrase.decrypt(sealed, PASS) == plain
    assert open_sealed(sealed, PASS) == plain


def test_the_default_work_factor_is_age_s_own():
    assert DEFAULT_WORK_FACTOR == 18
    assert work_factor_of(seal(b"AGE-SECRET-KEY-1\n", PASS)) == 18


def test_a_file_rage_sealed_opens_here():
    # rage picks its own work factor from the machine's speed (about 1 s of scrypt).
    sealed = pyrage.passphrase.encrypt(b"AGE-SECRET-KEY-1XYZ\n", PASS)
    assert open_sealed(sealed, PASS) == b"AGE-SECRET-KEY-1XYZ\n"


@pytest.mark.skipif(shutil.which("age") is None, reason="no age CLI (scripts/setup --test)")
def test_the_age_cli_opens_what_is_sealed_here(tmp_path):
    import pexpect

    path = tmp_path / "key.age"
    path.write_bytes(seal(b"AGE-SECRET-KEY-1ABC\n", PASS, 14))
    # The age CLI reads a passphrase only from a terminal.
    child = pexpect.spawn("age", ["-d", str(path)], timeout=60)
    child.expect_exact("Enter passphrase:")
    child.sendline(PASS)
    child.expect_exact(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert b"AGE-SECRET-KEY-1ABC" in child.before


def test_a_wrong_passphrase_is_one_error():
    sealed = seal(b"secret", PASS, LOW)
    with pytest.raises(SealError, match="^wrong passphrase$"):
        open_sealed(sealed, PASS + " ")


def test_a_work_factor_above_the_age_cli_s_limit_is_refused_before_any_scrypt():
    sealed = seal(b"secret", PASS, LOW)
    heavy = sealed.replace(b" 10\n", b" 30\n", 1)
    with pytest.raises(SealError, match="^its work factor 30 is above 22, the most opened$"):
        open_sealed(heavy, PASS)
    with pytest.raises(ValueError, match="^work factor 9 is outside 10..22$"):
        seal(b"secret", PASS, 9)


def test_damage_anywhere_is_a_seal_error():
    sealed = seal(b"x" * 100, PASS, LOW)
    header_end = sealed.index(b"\n---") + 4
    for at in (header_end + 3, header_end + 50, len(sealed) - 1):  # the MAC, nonce, payload tag
        flipped = bytearray(sealed)
        flipped[at] ^= 0x01
        with pytest.raises(SealError):
            open_sealed(bytes(flipped), PASS)
    for cut in (len(sealed) - 1, header_end + 20, 30):
        with pytest.raises(SealError):
            open_sealed(sealed[:cut], PASS)
    with pytest.raises(SealError, match="^not an age file sealed with a passphrase alone$"):
        open_sealed(b"AGE-SECRET-KEY-1ABC\n", PASS)


def test_a_non_canonical_base64_salt_is_refused():
    sealed = seal(b"x", PASS, LOW)
    salt = re.match(rb"age-encryption\.org/v1\n-> scrypt (\S+) ", sealed)[1]
    # The salt's last base64 letter carries 4 spare bits: set one, and the bytes stay the same.
    last = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twisted = salt[:-1] + bytes([last[last.index(salt[-1:]) ^ 1]])
    with pytest.raises(SealError, match="^not an age file sealed with a passphrase alone$"):
        open_sealed(sealed.replace(salt, twisted, 1), PASS)


SEALED = seal(b"AGE-SECRET-KEY-1" + b"Q" * 58 + b"\n", PASS, LOW)
# A flipped work factor digit makes a valid file of up to 2^20 (a GiB of scrypt memory): the
# test above covers the factor, the fuzz spares the machine.
FACTOR_DIGITS = range(SEALED.index(b" 10\n") + 1, SEALED.index(b" 10\n") + 3)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_mutation_is_a_seal_error_or_the_same_plain_text(data):
    # Fuzz: a flipped, cut or inserted byte anywhere raises SealError and nothing else.
    at = data.draw(st.integers(0, len(SEALED) - 1).filter(lambda i: i not in FACTOR_DIGITS))
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if how == "flip":
        mutated = SEALED[:at] + bytes([SEALED[at] ^ data.draw(st.integers(1, 255))]) + SEALED[at + 1:]
    elif how == "cut":
        mutated = SEALED[:at]
    else:
        mutated = SEALED[:at] + data.draw(st.binary(min_size=1, max_size=3)) + SEALED[at:]
    with pytest.raises(SealError):
        open_sealed(mutated, PASS)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3000), st.text(min_size=1, max_size=40))
def test_any_bytes_and_passphrase_round_trip(plain, passphrase):
    assert open_sealed(seal(plain, passphrase, LOW), passphrase) == plain


def test_an_unknown_name_costs_the_same_scrypt_as_a_wrong_passphrase(hub_dir, monkeypatch):
    # What a sign-in costs must not tell which names exist (the web UI's sign-in calls this).
    import hub.passphrase_seal as module
    from hub.datadir import DataDir
    from hub.db import connect
    from hub.errors import PassphraseError
    from hub.people import People
    from tests.conftest import WORK_FACTOR

    db = connect(hub_dir / "porchlight.db")
    try:
        people = People(DataDir(hub_dir), db)
        people.add("ann", "viewer", "ann's own passphrase")
        spent: list[int] = []
        real = module._scrypt
        monkeypatch.setattr(module, "_scrypt",
                            lambda pw, salt, log_n: spent.append(log_n) or real(pw, salt, log_n))
        for name in ("ann", "nobody"):
            with pytest.raises(PassphraseError, match="^wrong name or passphrase$"):
                people.unlock(name, "not the passphrase")
        assert spent == [WORK_FACTOR, WORK_FACTOR]
    finally:
        db.conn.close()
