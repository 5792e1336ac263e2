"""`porchlight passphrase change`: the household key sealed with a new passphrase, the same key
inside (footage stays readable), and every refusal leaves the sealed key as it was."""

from __future__ import annotations

import os
import sys

import pytest

from hub.datadir import DataDir
from hub.household import unlock_household_identity
from hub.passphrase_seal import open_sealed
from tests.conftest import PASSPHRASE, WORK_FACTOR

NEW = "a brand new household passphrase"


@pytest.fixture
def newfile(tmp_path):
    path = tmp_path / "new.txt"
    path.write_text(NEW + "\n")
    return path


def test_the_new_passphrase_opens_the_same_key_and_the_old_one_nothing(hub_dir, cli, passfile,
                                                                       newfile):
    data = DataDir(hub_dir)
    before = str(unlock_household_identity(data, PASSPHRASE))
    code, out, err = cli("passphrase", "change", "--data", hub_dir, "--passphrase-file", passfile,
                         "--new-passphrase-file", newfile)
    assert code == 0, err
    assert out == (f"the household key in {data.identity} is now sealed with the new passphrase "
                   f"(age scrypt 2^{WORK_FACTOR}); the old one no longer opens it\n"
                   "backups taken before still open with the old passphrase (docs/backup.md)\n")
    assert str(unlock_household_identity(data, NEW)) == before
    with pytest.raises(Exception, match="wrong passphrase for the household key"):
        unlock_household_identity(data, PASSPHRASE)
    assert oct(data.identity.stat().st_mode & 0o777) == "0o600"
    assert not list(data.identity.parent.glob("*.tmp"))


@pytest.mark.parametrize("case", ["wrong current", "short new", "unreadable new",
                                  "no new source"])
def test_refusals_say_why_and_change_nothing(hub_dir, cli, passfile, newfile, tmp_path,
                                            monkeypatch, case):
    data = DataDir(hub_dir)
    sealed = data.identity.read_bytes()
    args = ["passphrase", "change", "--data", hub_dir, "--passphrase-file", passfile,
            "--new-passphrase-file", newfile]
    if case == "wrong current":
        wrong = tmp_path / "wrong.txt"
        wrong.write_text("not the household passphrase\n")
        args[5] = wrong
        expected = "porchlight: error: wrong passphrase for the household key\n"
    elif case == "short new":
        newfile.write_text("too short\n")
        expected = ("porchlight: error: the passphrase must have at least 12 characters "
                    "(it has 9)\n")
    elif case == "unreadable new":
        args[7] = tmp_path / "absent.txt"
        expected = (f"porchlight: error: cannot read the passphrase file {tmp_path / 'absent.txt'}"
                    f": [Errno 2] No such file or directory: '{tmp_path / 'absent.txt'}'\n")
    else:
        # $PORCHLIGHT_PASSPHRASE is the current passphrase, never taken as the new one.
        monkeypatch.setenv("PORCHLIGHT_PASSPHRASE", PASSPHRASE)
        args = ["passphrase", "change", "--data", hub_dir]
        expected = ("porchlight: error: a new passphrase is needed: use --new-passphrase-file "
                    "FILE, or run in a terminal\n")
    code, out, err = cli(*args)
    assert (code, out, err) == (1, "", expected)
    assert data.identity.read_bytes() == sealed
    assert open_sealed(sealed, PASSPHRASE).startswith(b"AGE-SECRET-KEY-1")


@pytest.mark.parametrize("current_from", ["prompt", "environment"])
def test_at_a_terminal_the_new_passphrase_is_asked_twice(hub_dir, current_from):
    import pexpect

    env = {k: v for k, v in os.environ.items() if k != "PORCHLIGHT_PASSPHRASE"}
    if current_from == "environment":
        env["PORCHLIGHT_PASSPHRASE"] = PASSPHRASE  # the current one; the new one is still asked
    child = pexpect.spawn(sys.executable, ["-m", "hub.cli", "passphrase", "change", "--data",
                                           str(hub_dir)], env=env, encoding="utf-8", timeout=120)
    if current_from == "prompt":
        child.expect_exact("Household passphrase: ")
        child.sendline(PASSPHRASE)
    child.expect_exact("New household passphrase: ")
    child.sendline(NEW)
    child.expect_exact("Repeat the passphrase: ")
    child.sendline(NEW + " typo")
    child.expect_exact("New household passphrase: ")
    assert "the two passphrases differ; try again (2 tries left)" in child.before
    child.sendline(NEW)
    child.expect_exact("Repeat the passphrase: ")
    child.sendline(NEW)
    child.expect_exact(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "now sealed with the new passphrase" in child.before
    assert unlock_household_identity(DataDir(hub_dir), NEW)
