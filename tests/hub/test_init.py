"""`porchlight init`: keys, modes, refusals, and the data dir rules."""

from __future__ import annotations

import hashlib
import os
import stat

from hub.datadir import default_data_dir


def _tree(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_init_creates_a_hub(hub_template):
    root = hub_template
    assert (root / "config.toml").is_file()
    assert (root / "porchlight-hub").is_file()
    identity = (root / "keys" / "household.age").read_bytes()
    # Stored only sealed with the passphrase (age scrypt), never as a plain AGE-SECRET-KEY.
    assert identity.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert b"AGE-SECRET-KEY" not in identity
    assert (root / "keys" / "household.pub").read_text().startswith("age1")
    for secret in ("keys/household.age", "keys/hub-ed25519.pem"):
        assert stat.S_IMODE((root / secret).stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "keys").stat().st_mode) == 0o700
    for path in root.rglob("*"):
        if path.is_file():
            assert b"AGE-SECRET-KEY" not in path.read_bytes(), path


def test_init_by_cli(tmp_path, cli, passfile):
    code, out, err = cli("init", "--data", tmp_path / "new", "--name", "maple-12",
                         "--location", "51.5,-0.12", "--passphrase-file", passfile)
    assert code == 0, err
    assert "created hub in" in out
    config = (tmp_path / "new" / "config.toml").read_text()
    assert 'name = "maple-12"' in config
    # The keys are sealed at age's default work factor, written down for the people added later.
    assert "\npassphrase_work_factor = 18\n" in config
    assert (tmp_path / "new" / "keys" / "household.age").read_bytes().split(b"\n")[1].endswith(
        b" 18")


def test_init_takes_a_work_factor_and_refuses_one_out_of_range(tmp_path, cli, passfile):
    code, _, err = cli("init", "--data", tmp_path / "low", "--work-factor", "16",
                       "--passphrase-file", passfile)
    assert code == 0, err
    assert "\npassphrase_work_factor = 16\n" in (tmp_path / "low" / "config.toml").read_text()
    for bad in ("9", "23", "1e3", "-5"):
        code, _, err = cli("init", "--data", tmp_path / "bad", "--work-factor", bad,
                           "--passphrase-file", passfile)
        assert code == 2
        assert err.endswith(f"porchlight init: error: argument --work-factor: {bad!r} is not a "
                            "whole number from 10 to 22\n"), err
        assert not (tmp_path / "bad").exists()


def test_init_refuses_to_overwrite(hub_dir, cli, passfile):
    before = _tree(hub_dir)
    code, _, err = cli("init", "--data", hub_dir, "--passphrase-file", passfile)
    assert code == 1
    assert err == f"porchlight: error: {hub_dir} already holds a hub; refusing to overwrite it\n"
    assert _tree(hub_dir) == before


def test_init_refuses_short_passphrase(tmp_path, cli):
    short = tmp_path / "short"
    short.write_text("too-short\n")
    code, _, err = cli("init", "--data", tmp_path / "new", "--passphrase-file", short)
    assert code == 1
    assert err == ("porchlight: error: the passphrase must have at least 12 characters "
                   "(it has 9)\n")
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["short"]


def test_init_refuses_a_non_empty_dir(tmp_path, cli, passfile):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    code, _, err = cli("init", "--data", foreign, "--passphrase-file", passfile)
    assert code == 1
    assert "exists and is not empty" in err
    assert [p.name for p in foreign.iterdir()] == ["cat.jpg"]


def test_init_where_no_folder_can_be_made_is_one_line(tmp_path, cli, passfile):
    """A hub is staged beside its place; a parent that is not a writable folder is one line."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")

    code, out, err = cli("init", "--data", blocker / "hub", "--passphrase-file", passfile)

    assert (code, out) == (1, "")
    assert err == (f"porchlight: error: cannot create a hub in {blocker / 'hub'}: {blocker} is "
                   "not a folder this user can write in (File exists)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "passphrase.txt"]
    assert blocker.read_text() == "x"


def test_bad_location(tmp_path, cli, passfile):
    code, _, err = cli("init", "--data", tmp_path / "n", "--location", "north",
                       "--passphrase-file", passfile)
    assert code == 2
    assert err == "porchlight: error: --location: 'north' is not LAT,LON (example: 51.5007,-0.1246)\n"
    assert not (tmp_path / "n").exists()


def test_missing_and_foreign_data_dirs(tmp_path, cli):
    missing = tmp_path / "nowhere"
    code, _, err = cli("footage", "list", "--data", missing)
    assert code == 1
    assert err == (f"porchlight: error: no hub at {missing}: create one with "
                   f"`porchlight init --data {missing}`\n")
    assert not missing.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    code, _, err = cli("footage", "list", "--data", foreign)
    assert code == 1
    assert err == (f"porchlight: error: {foreign} is not a Porchlight hub data dir "
                   "(no porchlight-hub file)\n")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_data_dir_defaults(monkeypatch, tmp_path, hub_dir, cli):
    monkeypatch.setenv("PORCHLIGHT_DATA", str(hub_dir))
    assert default_data_dir() == hub_dir
    code, out, _ = cli("footage", "list")
    assert (code, out) == (0, "no footage\n")
    monkeypatch.delenv("PORCHLIGHT_DATA")
    assert default_data_dir().name == "porchlight"


def test_passphrase_from_environment(tmp_path, cli, monkeypatch, passphrase):
    monkeypatch.setenv("PORCHLIGHT_PASSPHRASE", passphrase)
    code, _, err = cli("init", "--data", tmp_path / "env-hub")
    assert code == 0, err
    assert os.path.exists(tmp_path / "env-hub" / "keys" / "household.age")


def test_no_passphrase_source(tmp_path, cli, monkeypatch):
    monkeypatch.delenv("PORCHLIGHT_PASSPHRASE", raising=False)
    code, _, err = cli("init", "--data", tmp_path / "x")
    assert code == 1
    assert err.startswith("porchlight: error: a passphrase is needed: use --passphrase-file FILE")
    assert not (tmp_path / "x").exists()
