"""The passphrase prompt at a terminal: length checked before confirming, asked again if refused."""

from __future__ import annotations

import os
import sys

import pexpect

from tests.conftest import PASSPHRASE

TIMEOUT_S = 60


def spawn(*args) -> pexpect.spawn:
    """Run `porchlight ARGS` on a pseudo-terminal, with no passphrase in the environment."""
    env = {k: v for k, v in os.environ.items() if k != "PORCHLIGHT_PASSPHRASE"}
    return pexpect.spawn(sys.executable, ["-m", "hub.cli", *map(str, args)], env=env,
                         encoding="utf-8", timeout=TIMEOUT_S)


def test_init_checks_the_length_before_asking_to_repeat_and_asks_again(tmp_path):
    child = spawn("init", "--data", tmp_path / "hub", "--name", "maple")

    child.expect_exact("Household passphrase: ")
    child.sendline("short")
    # Refused at once: no "Repeat the passphrase" for a passphrase that cannot be used.
    index = child.expect_exact(["Repeat the passphrase: ", "Household passphrase: "])
    assert index == 1
    assert ("the passphrase must have at least 12 characters (it has 5); try again "
            "(2 tries left)") in child.before
    child.sendline(PASSPHRASE)
    child.expect_exact("Repeat the passphrase: ")
    child.sendline(PASSPHRASE + "!")
    child.expect_exact("Household passphrase: ")
    assert "the two passphrases differ; try again (1 try left)" in child.before
    child.sendline(PASSPHRASE)
    child.expect_exact("Repeat the passphrase: ")
    child.sendline(PASSPHRASE)
    child.expect_exact(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0
    assert "created hub in" in child.before
    assert (tmp_path / "hub" / "keys" / "household.age").is_file()


def test_init_gives_up_after_three_refused_passphrases_and_creates_nothing(tmp_path):
    child = spawn("init", "--data", tmp_path / "hub")

    for _ in range(3):
        child.expect_exact("Household passphrase: ")
        child.sendline("too short")
    child.expect_exact(pexpect.EOF)
    child.close()

    assert child.exitstatus == 1
    assert child.before.strip().splitlines()[-1] == (
        "porchlight: error: the passphrase must have at least 12 characters (it has 9)")
    assert not (tmp_path / "hub").exists()


def test_export_asks_again_after_a_wrong_passphrase(hub_dir, clip25, cli, tmp_path):
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start",
               "2026-11-28T14:00:00Z", clip25)[0] == 0
    out = tmp_path / "clip.mp4"
    child = spawn("footage", "export", "--data", hub_dir, "--camera", "porch", "--from",
                  "2026-11-28T14:00:00Z", "--to", "2026-11-28T14:00:20Z", "--out", out)

    child.expect_exact("Household passphrase: ")
    child.sendline("not the household passphrase")
    child.expect_exact("Household passphrase: ")
    assert "wrong passphrase for the household key; try again (2 tries left)" in child.before
    assert not out.exists()
    child.sendline(PASSPHRASE)
    child.expect_exact(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0, child.before
    assert out.stat().st_size > 0
