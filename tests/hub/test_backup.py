"""`porchlight backup` and `porchlight restore` in process: a whole hub in one age-encrypted file
and back, with the right modes; every bad archive or target refused with its exact error and
nothing written."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pyrage
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.backup.archive import ArchiveWriter, BackupError, open_archive
from hub.backup.restore import restore_backup, unlock

START = "2026-11-20T14:00:00Z"
OTHER = "a different backup passphrase"


def _files(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every dir and file under root but the database: its mode, and its bytes for a file."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("porchlight.db"):
            continue
        found[relative] = (path.stat().st_mode & 0o777, path.read_bytes() if path.is_file() else None)
    return found


def _rows(path: Path) -> dict[str, list]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")]
        return {t: sorted(db.execute(f"select * from [{t}]").fetchall(), key=repr) for t in tables}


@pytest.fixture
def recorded(hub_dir, clip25, cli):
    """The template hub with 25 s of footage of one camera and a second person."""
    assert cli("camera", "add", "--data", hub_dir, "porch", "--synthetic")[0] == 0
    code, _, err = cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start",
                       START, clip25)
    assert code == 0, err
    return hub_dir


@pytest.fixture
def backup_file(recorded, cli, tmp_path):
    out = tmp_path / "hub.backup"
    code, text, err = cli("backup", "--data", recorded, "--out", out, "--with-footage")
    assert code == 0, err
    return out


def test_backup_and_restore_give_back_the_same_hub(recorded, backup_file, cli, passfile,
                                                    tmp_path, monkeypatch):
    monkeypatch.delenv("PORCHLIGHT_PASSPHRASE", raising=False)
    target = tmp_path / "restored"
    target.mkdir()
    code, out, err = cli("restore", backup_file, "--data", target, "--passphrase-file", passfile)
    assert code == 0, err
    assert out.startswith("restored the hub of ")
    assert f" into {target}: 11 files, 3 segments of footage\n" in out
    original, restored = _files(recorded), _files(target)
    for skipped in ("vault/.tmp",):  # made again by the hub when it records
        original.pop(skipped)
    assert restored == original  # bytes and modes, keys 0600 included
    assert restored["keys"][0] == 0o700 and restored["keys/hub-ed25519.pem"][0] == 0o600
    assert _rows(target / "porchlight.db") == _rows(recorded / "porchlight.db")
    assert not [p for p in target.iterdir() if p.name.startswith(".restore-")]
    exports = []
    for root in (recorded, target):
        export = tmp_path / f"{root.name}.mp4"
        code, _, err = cli("footage", "export", "--data", root, "--camera", "porch", "--from",
                           START, "--to", "2026-11-20T14:00:25Z", "--out", export,
                           "--passphrase-file", passfile)
        assert code == 0, err
        exports.append(export.read_bytes())
    assert exports[0] == exports[1]


def test_a_backup_holds_no_plaintext_and_leaves_nothing_behind(recorded, cli, tmp_path):
    before = sorted(p.relative_to(recorded).as_posix() for p in recorded.rglob("*"))
    out_dir = tmp_path / "backups"
    out_dir.mkdir()
    code, out, err = cli("backup", "--data", recorded, "--out", out_dir / "hub.backup")
    assert (code, err) == (0, "")
    assert "4 segments" not in out and out.endswith(
        "sealed to the household key: it opens with the household passphrase\n")
    assert sorted(p.relative_to(recorded).as_posix() for p in recorded.rglob("*")) == before
    assert [p.name for p in out_dir.iterdir()] == ["hub.backup"]
    data = (out_dir / "hub.backup").read_bytes()
    assert (out_dir / "hub.backup").stat().st_mode & 0o777 == 0o600
    for secret in (b"test-hub", b"PRIVATE KEY", b"SQLite format 3", b'"porch"', b"2026-11-20"):
        assert secret not in data
    # By hand, with the tar and age tools: the key opens with the passphrase.
    with tarfile.open(out_dir / "hub.backup") as tar:
        assert tar.getnames() == ["porchlight-backup.json", "key.age", "data.tar.age"]
        assert tar.extractfile("key.age").read() == (recorded / "keys/household.age").read_bytes()


def test_without_footage_the_restored_hub_has_an_empty_vault(recorded, cli, passfile, tmp_path):
    out = tmp_path / "small.backup"
    code, text, err = cli("backup", "--data", recorded, "--out", out)
    assert code == 0, err
    assert ", no footage\n" in text
    target = tmp_path / "restored"
    code, text, err = cli("restore", out, "--data", target, "--passphrase-file", passfile)
    assert code == 0, err
    assert "no footage (the backup was taken without --with-footage)" in text
    assert [p for p in (target / "vault").rglob("*")] == []
    rows = _rows(target / "porchlight.db")
    assert rows["segments"] == [] and rows["holds"] == []
    assert rows["people"] == _rows(recorded / "porchlight.db")["people"]
    assert (target / "config.toml").read_bytes() == (recorded / "config.toml").read_bytes()


def test_a_passphrase_backup_opens_with_that_passphrase_only(recorded, cli, passfile, tmp_path):
    other = tmp_path / "other.pass"
    other.write_text(OTHER + "\n")
    out = tmp_path / "pass.backup"
    code, text, err = cli("backup", "--data", recorded, "--out", out, "--passphrase",
                          "--passphrase-file", other)
    assert code == 0, err
    assert "sealed with its own passphrase" in text
    target = tmp_path / "restored"
    code, text, err = cli("restore", out, "--data", target, "--passphrase-file", passfile)
    assert (code, text, err) == (1, "", "porchlight: error: wrong passphrase for this backup\n")
    assert not target.exists()
    code, text, err = cli("restore", out, "--data", target, "--passphrase-file", other)
    assert code == 0, err
    assert (target / "keys/household.age").read_bytes() == (
        recorded / "keys/household.age").read_bytes()


def test_restore_refuses_a_dir_that_is_not_empty(backup_file, cli, passfile, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    code, out, err = cli("restore", backup_file, "--data", target, "--passphrase-file", passfile)
    assert (code, out) == (1, "")
    assert err == f"porchlight: error: {target} is not empty: restore into a new or empty directory\n"
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_restore_refuses_a_truncated_backup(backup_file, cli, passfile, tmp_path):
    data = backup_file.read_bytes()
    cut = tmp_path / "cut.backup"
    cut.write_bytes(data[:len(data) // 2])
    missing = _data_end(backup_file) - len(data) // 2
    target = tmp_path / "restored"
    target.mkdir()
    code, out, err = cli("restore", cut, "--data", target, "--passphrase-file", passfile)
    assert (code, out) == (1, "")
    assert err == (f"porchlight: error: {cut} is incomplete: its last {missing} bytes are "
                   "missing (a copy that stopped early?); nothing was restored\n")
    assert list(target.iterdir()) == []


def test_restore_refuses_a_tampered_backup(backup_file, cli, passfile, tmp_path):
    data = bytearray(backup_file.read_bytes())
    data[_data_end(backup_file) - 5000] ^= 0x01  # one bit, deep in the encrypted tar
    bad = tmp_path / "tampered.backup"
    bad.write_bytes(bytes(data))
    target = tmp_path / "restored"
    target.mkdir()
    code, out, err = cli("restore", bad, "--data", target, "--passphrase-file", passfile)
    assert (code, out) == (1, "")
    assert err == (f"porchlight: error: {bad} is damaged or was altered: its encrypted contents "
                   "do not authenticate; nothing was restored\n")
    assert list(target.iterdir()) == []


def test_restore_refuses_a_file_that_is_not_a_backup(cli, passfile, tmp_path, clip25):
    target = tmp_path / "restored"
    for path in (clip25, tmp_path / "absent.backup"):
        code, out, err = cli("restore", path, "--data", target, "--passphrase-file", passfile)
        assert code == 1
        assert err in (f"porchlight: error: {path} is not a Porchlight backup (made by "
                       "`porchlight backup`)\n", f"porchlight: error: {path} does not exist\n")
    assert not target.exists()


def test_backup_never_overwrites_and_never_writes_into_the_data_dir(recorded, cli, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    code, out, err = cli("backup", "--data", recorded, "--out", taken)
    assert (code, out) == (1, "")
    assert err == (f"porchlight: error: {taken} already exists; choose a new file name (a backup "
                   "never overwrites a file)\n")
    assert taken.read_text() == "keep me"
    inside = recorded / "hub.backup"
    code, out, err = cli("backup", "--data", recorded, "--out", inside)
    assert err == (f"porchlight: error: --out {inside} is inside the data dir; write the backup "
                   "somewhere else\n")
    assert not inside.exists()
    code, out, err = cli("backup", "--data", recorded, "--out", tmp_path / "x", "--passphrase-file",
                         tmp_path / "taken")
    assert (code, err) == (2, "porchlight: error: --passphrase-file goes with --passphrase (a "
                              "backup sealed to the household key needs no passphrase)\n")


def _data_end(path: Path) -> int:
    with tarfile.open(path) as tar:
        member = tar.getmember("data.tar.age")
        return member.offset_data + member.size


def _hostile_archive(path: Path, key: bytes, recipient, members: list[tuple[str, bytes]]) -> None:
    """A backup file whose encrypted tar holds whatever names the test chooses."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    with open(path, "wb") as out:
        writer = ArchiveWriter(out, "household", key)
        pyrage.encrypt_io(io.BytesIO(inner.getvalue()), writer.data, [recipient])
        writer.finish()


@pytest.mark.parametrize("name", ["data/../escaped", "/etc/escaped", "data//", "elsewhere/x"])
def test_an_archive_that_names_a_path_outside_is_refused(hub_template, household_identity,
                                                         tmp_path, name):
    key = (hub_template / "keys/household.age").read_bytes()
    path = tmp_path / "hostile.backup"
    _hostile_archive(path, key, household_identity.to_public(),
                     [("data/config.toml", b"x"), (name, b"owned")])
    target = tmp_path / "box" / "restored"
    with pytest.raises(BackupError) as caught:
        restore_backup(open_archive(path), household_identity, target, progress=False)
    assert str(caught.value) == (f"{path} is damaged: its contents are not a whole backup; "
                                 "nothing was restored")
    assert not target.exists()
    assert [p.name for p in (tmp_path / "box").iterdir()] == []
    assert not (tmp_path / "escaped").exists() and not Path("/etc/escaped").exists()


@pytest.mark.parametrize("comment", [1000, 1 << 20])
def test_an_archive_with_a_huge_extended_header_is_refused(hub_template, household_identity,
                                                           tmp_path, comment):
    """A pax header is read whole into memory by tarfile: one over 64 KiB is refused unread,
    in an archive that is whole otherwise (and restores with a small one)."""
    import hashlib

    from hub.backup.archive import Digest

    digest = Digest()
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("config.toml", "porchlight-hub", "porchlight.db"):
            content = (hub_template / name).read_bytes()
            info = tarfile.TarInfo(f"data/{name}")
            info.size, info.mode = len(content), 0o600
            if name == "config.toml":
                info.pax_headers = {"comment": "x" * comment}
            tar.addfile(info, io.BytesIO(content))
            digest.add_file(name, len(content), hashlib.sha256(content).hexdigest())
        manifest = digest.manifest(version=1, sealed="household", with_footage=False)
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    path = tmp_path / "extended.backup"
    with open(path, "wb") as out:
        writer = ArchiveWriter(out, "household", (hub_template / "keys/household.age").read_bytes())
        pyrage.encrypt_io(io.BytesIO(inner.getvalue()), writer.data,
                          [household_identity.to_public()])
        writer.finish()
    target = tmp_path / "restored"
    if comment < 64 * 1024:
        restore_backup(open_archive(path), household_identity, target, progress=False)
        assert sorted(p.name for p in target.iterdir()) == [
            "config.toml", "porchlight-hub", "porchlight.db"]
        return
    with pytest.raises(BackupError) as caught:
        restore_backup(open_archive(path), household_identity, target, progress=False)
    assert str(caught.value) == (f"{path} is damaged: its contents are not a whole backup; "
                                 "nothing was restored")
    assert not target.exists()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_damage_to_a_backup_is_refused_whole(backup_file, household_identity, tmp_path_factory,
                                                 data):
    """Bytes cut or flipped anywhere: a BackupError (or a wrong key), and the target left empty."""
    original = backup_file.read_bytes()
    mutated = bytearray(original)
    if data.draw(st.booleans()):
        mutated = mutated[:data.draw(st.integers(0, len(original) - 1))]
    else:
        for at in data.draw(st.lists(st.integers(0, len(original) - 1), min_size=1, max_size=4)):
            mutated[at] ^= data.draw(st.integers(1, 255))
    work = tmp_path_factory.mktemp("damaged")
    path = work / "damaged.backup"
    path.write_bytes(bytes(mutated))
    target = work / "restored"
    try:
        opened = open_archive(path)
        restore_backup(opened, household_identity, target, progress=False)
    except BackupError:
        assert not target.exists()
        return
    # Only damage to the end padding or to header fields that tar and age do not read survives.
    assert _files(target)["keys/hub-ed25519.pem"][1] is not None


def test_backup_and_restore_memory_stays_flat_however_large_the_vault(recorded, tmp_path,
                                                                      passphrase):
    """Peak memory with 96 MB of footage against without, backing up and restoring: it streams."""
    db = sqlite3.connect(recorded / "porchlight.db")
    folder = recorded / "vault" / "porch" / "2026-11-21"
    folder.mkdir(parents=True)
    for n in range(24):  # 24 x 4 MB of (already encrypted, so incompressible) footage
        name = f"20261121T10{n:02d}00.000000Z_20261121T10{n:02d}10.000000Z_{n:032x}.mp4.age"
        (folder / name).write_bytes(os.urandom(4 << 20))
        db.execute("insert into segments (id, camera, start, end, size, media_type, sha256, path,"
                   " status) values (?, 'porch', ?, ?, ?, 'video/mp4', 'x', ?, 'ok')",
                   [f"{n:032x}", f"2026-11-21T10:{n:02d}:00Z", f"2026-11-21T10:{n:02d}:10Z",
                    4 << 20, f"vault/porch/2026-11-21/{name}"])
    db.commit()
    db.close()
    peaks, restores = {}, {}
    for flag in ("", "--with-footage"):
        out = tmp_path / f"b{flag}.backup"
        args = ["backup", "--data", str(recorded), "--out", str(out)] + ([flag] if flag else [])
        peaks[flag] = _peak_memory(f"from hub.cli.main import main\nassert main({args!r}) == 0\n")
        size = out.stat().st_size
        # Unlocking the key (age scrypt) alone takes up to hundreds of MiB, by the work factor
        # age chose: measured apart, the peak is reset once the key is open.
        restores[flag] = _peak_memory(
            "from hub.backup.restore import open_for_restore, restore_backup, unlock\n"
            f"opened = open_for_restore({str(out)!r}, {str(tmp_path / ('r' + flag))!r})\n"
            f"identity = unlock(opened, {passphrase!r})\n"
            "open('/proc/self/clear_refs', 'w').write('5')  # the peak so far: forgotten\n"
            f"restore_backup(opened, identity, {str(tmp_path / ('r' + flag))!r}, progress=False)\n")
    vault = 96 << 20
    growth = peaks["--with-footage"] - peaks[""]
    restore_growth = restores["--with-footage"] - restores[""]
    print(f"\nbackup peak RSS: {peaks[''] / 2**20:.0f} MiB without footage, "
          f"{peaks['--with-footage'] / 2**20:.0f} MiB with {vault / 2**20:.0f} MiB of footage "
          f"(archive {size / 2**20:.0f} MiB); growth {growth / vault:.2f} of the vault's size"
          f"\nrestore peak RSS once the key is open: {restores[''] / 2**20:.0f} MiB without "
          f"footage, {restores['--with-footage'] / 2**20:.0f} MiB with; growth "
          f"{restore_growth / vault:.2f} of the vault's size")
    assert size > vault
    assert growth < vault / 4
    assert restore_growth < vault / 4
    assert len(list((tmp_path / "r--with-footage" / "vault").rglob("*.age"))) == 27


def _peak_memory(code: str) -> int:
    """Run Python code in a process of its own; return its peak resident memory in bytes."""
    # VmHWM, not ru_maxrss: that one keeps the forking test process's peak across exec.
    script = (code + "import sys\n"
              "peak = [line for line in open('/proc/self/status') if line.startswith('VmHWM')]\n"
              "print(peak[0].split()[1], file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1]) * 1024


def test_unlock_says_which_passphrase_a_household_backup_needs(backup_file):
    from hub.errors import PassphraseError

    with pytest.raises(PassphraseError) as caught:
        unlock(open_archive(backup_file), "not the household passphrase")
    assert str(caught.value) == ("wrong passphrase for this backup (it opens with the household "
                                 "passphrase of when it was taken)")


@pytest.mark.skipif(shutil.which("age") is None, reason="no age CLI (scripts/setup --test)")
def test_the_age_and_tar_tools_open_a_backup_by_hand(backup_file, recorded, passphrase, tmp_path):
    """docs/backup.md's steps: tar out the members, open key.age, then age and tar do the rest."""
    with tarfile.open(backup_file) as tar:
        key = tar.extractfile("key.age").read()
        (tmp_path / "data.tar.age").write_bytes(tar.extractfile("data.tar.age").read())
    # The age CLI reads a passphrase only from a terminal: pyrage opens key.age as it would.
    (tmp_path / "key.txt").write_bytes(pyrage.passphrase.decrypt(key, passphrase))
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    age = subprocess.run(["age", "-d", "-i", tmp_path / "key.txt", tmp_path / "data.tar.age"],
                         capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", unpacked], input=age.stdout, check=True)
    assert (unpacked / "data" / "config.toml").read_bytes() == (recorded / "config.toml").read_bytes()
    assert len(list((unpacked / "data" / "vault").rglob("*.age"))) == 3
    assert (unpacked / "manifest.json").is_file()


def test_a_backup_that_cannot_be_written_whole_leaves_no_file(recorded, tmp_path):
    """A disk that fills up (here: a file size limit) stops the backup with one line, and no
    backup, partial file or database copy is left anywhere."""
    out = tmp_path / "full" / "hub.backup"
    out.parent.mkdir()
    before = sorted(p.relative_to(recorded).as_posix() for p in recorded.rglob("*"))
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails with EFBIG instead\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))\n"
              "from hub.cli.main import main\n"
              f"sys.exit(main(['backup', '--data', {str(recorded)!r}, '--out', {str(out)!r}, "
              "'--with-footage']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"porchlight: error: could not write the backup {out}: File too "
                           "large; no backup was written\n")
    assert list(out.parent.iterdir()) == []
    assert sorted(p.relative_to(recorded).as_posix() for p in recorded.rglob("*")) == before


def test_backup_and_restore_ask_their_passphrases_at_a_terminal(recorded, backup_file, tmp_path):
    import pexpect

    from tests.conftest import PASSPHRASE

    env = {k: v for k, v in os.environ.items() if k != "PORCHLIGHT_PASSPHRASE"}

    def spawn(*args) -> pexpect.spawn:
        return pexpect.spawn(sys.executable, ["-m", "hub.cli", *map(str, args)], env=env,
                             encoding="utf-8", timeout=120)

    target = tmp_path / "restored"
    child = spawn("restore", backup_file, "--data", target)
    child.expect_exact("Household passphrase (of when the backup was taken): ")
    child.sendline("not the household passphrase")
    child.expect_exact("Household passphrase (of when the backup was taken): ")
    assert ("wrong passphrase for this backup (it opens with the household passphrase of when "
            "it was taken); try again (2 tries left)") in child.before
    assert not target.exists()  # nothing is written while the passphrase is asked
    child.sendline(PASSPHRASE)
    child.expect_exact(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert (target / "keys" / "hub-ed25519.pem").is_file()

    out = tmp_path / "own.backup"
    child = spawn("backup", "--data", recorded, "--out", out, "--passphrase")
    child.expect_exact("Backup passphrase: ")
    child.sendline(OTHER)
    child.expect_exact("Repeat the passphrase: ")
    child.sendline(OTHER)
    child.expect_exact(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert open_archive(out).sealed == "passphrase"


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(blob=st.binary(max_size=4096), as_tar=st.booleans())
def test_any_file_is_a_backup_or_refused_in_one_line(blob, as_tar, tmp_path_factory):
    """open_archive reads outside input: anything at all is a BackupError, never a traceback."""
    path = tmp_path_factory.mktemp("any") / "any.backup"
    if as_tar:  # the right member names around arbitrary contents
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in ("porchlight-backup.json", "key.age", "data.tar.age"):
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        blob = buffer.getvalue()
    path.write_bytes(blob)
    try:
        open_archive(path)
    except BackupError as err:
        assert "\n" not in str(err)


def test_a_header_of_nested_brackets_is_not_a_backup(tmp_path):
    path = tmp_path / "deep.backup"
    with tarfile.open(path, "w") as tar:
        for name, content in (("porchlight-backup.json", b"[" * 2000 + b"]" * 2000),
                              ("key.age", b"k"), ("data.tar.age", b"d")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    with pytest.raises(BackupError) as caught:
        open_archive(path)
    assert str(caught.value) == f"{path} is not a Porchlight backup (made by `porchlight backup`)"
