"""A command that fails leaves the data dir byte for byte as it was: every file, every mode."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

START = "2026-11-20T14:00:00Z"
NO_NEIGHBOURS = ("this hub has no neighbours yet: join a gateway with `porchlight join URL "
                 "CODE`, or enable [lan] in config.toml")
NO_LOCATION = ("this hub has no location: add `location = { lat = .., lon = .. }` to [hub] in "
               "config.toml (it stays on the hub; only a coarse cell is shared)")


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Return every path under root with its mode and, for a file, the SHA-256 of its bytes."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(info.st_mode) else ""
        state[path.relative_to(root).as_posix()] = (info.st_mode, digest)
    return state


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "doorbell.jpg"
    image = np.zeros((240, 320, 3), np.uint8)
    cv2.circle(image, (160, 120), 60, (40, 160, 220), -1)
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    return path


def _config(root: Path, old: str, new: str) -> None:
    config = root / "config.toml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def _no_location(root: Path) -> None:
    _config(root, "location = { lat = 51.5007, lon = -0.1246 }\n", "")


def _lan(root: Path) -> None:
    _config(root, "[web]", '[lan]\nenabled = true\nlisten = "127.0.0.1:0"\n\n[web]')


def _broken_hub_key(root: Path) -> None:
    _lan(root)
    (root / "keys" / "hub-ed25519.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")


ALERT = ["alerts", "post", "--category", "suspicious", "--text", "Someone trying car doors"]

CASES = {
    # An alert with nowhere to go: the photo was processed and kept before (issue 9 item 9).
    "alert without neighbours": (None, [*ALERT, "--photo", "{photo}"], NO_NEIGHBOURS),
    "unblurred alert without neighbours": (
        None, [*ALERT, "--photo", "{photo}", "--no-blur"], NO_NEIGHBOURS),
    "unblurred alert without a location": (
        _no_location, [*ALERT, "--photo", "{photo}", "--no-blur"], NO_LOCATION),
    "alert whose signing fails after its photo is ready": (
        _broken_hub_key, [*ALERT, "--photo", "{photo}", "--no-blur"],
        "key file {hub}/keys/hub-ed25519.pem is not a readable PEM private key (or the "
        "passphrase is wrong); restore it from backup or generate a new identity"),
    "alert with a photo that is text": (
        _lan, [*ALERT, "--photo", "{text}", "--no-blur"], "the photo must be a JPEG or PNG file"),
    "alert about an unknown event": (
        _lan, [*ALERT, "--event", "nope"],
        "--event: no event 'nope' on this hub (see `porchlight events list`)"),
    "import of text": (
        None, ["footage", "import", "--camera", "porch", "--start", START, "{clip}", "{text}"],
        "{text}: not a media file (it is text)"),
    "import of a missing file": (
        None, ["footage", "import", "--camera", "porch", "--start", START, "{clip}", "{missing}"],
        "{missing}: no such file"),
    "camera with a bad name": (
        None, ["camera", "add", "Front Door", "--synthetic"],
        "camera name 'Front Door' is not valid: use 1-32 of a-z, 0-9, '-' and '_', starting "
        "with a letter or digit"),
    # Its wording is item 13's (what a camera URL looks like); here only that nothing changed.
    "camera with a bad URL": (None, ["camera", "add", "porch", "--rtsp", "http://x/y"], None),
    "removing an unknown camera": (
        None, ["camera", "remove", "nope"], "no camera 'nope' in config.toml"),
    "export into a missing folder": (
        None, ["footage", "export", "--camera", "porch", "--from", START,
               "--to", "2026-11-20T14:00:10Z", "--out", "{missing}/out.mp4",
               "--passphrase-file", "{passfile}"],
        "--out: the folder {missing} does not exist; create it or choose another"),
    "export with the wrong passphrase": (
        None, ["footage", "export", "--camera", "porch", "--from", START,
               "--to", "2026-11-20T14:00:10Z", "--out", "{out}", "--passphrase-file", "{text}"],
        "wrong passphrase for the household key"),
    "export of an empty window": (
        None, ["footage", "export", "--camera", "porch", "--from", "2025-01-01T00:00:00Z",
               "--to", "2025-01-01T01:00:00Z", "--out", "{out}", "--passphrase-file",
               "{passfile}"],
        "no footage of porch between 2025-01-01T00:00:00Z and 2025-01-01T01:00:00Z"),
    "approving an unknown request": (
        None, ["requests", "approve", "nope"],
        "no request 'nope' on this hub (see `porchlight requests list`)"),
}


def _fill(text: str, names: dict[str, Path]) -> str:
    for name, path in names.items():
        text = text.replace("{" + name + "}", str(path))
    return text


@pytest.mark.parametrize("case", CASES)
def test_a_failed_command_leaves_the_data_dir_as_it_was(
        case, hub_dir, clip25, cli, passfile, photo, tmp_path):
    prepare, args, message = CASES[case]
    assert cli("footage", "import", "--data", hub_dir, "--camera", "porch", "--start", START,
               clip25)[0] == 0
    if prepare is not None:
        prepare(hub_dir)
    text = tmp_path / "notes.txt"
    text.write_text("shopping list\n" * 50)
    names = {"photo": photo, "text": text, "clip": clip25, "missing": tmp_path / "missing",
             "out": tmp_path / "out.mp4", "passfile": passfile, "hub": hub_dir}
    args = [_fill(a, names) for a in args]
    before = snapshot(hub_dir)
    code, out, err = cli(*args[:2], "--data", hub_dir, *args[2:])
    assert code in (1, 2), out
    assert err.startswith("porchlight: error: ") and err.count("\n") == 1, err
    if message is not None:
        assert err == f"porchlight: error: {_fill(message, names)}\n"
    assert snapshot(hub_dir) == before
    assert not (tmp_path / "out.mp4").exists()
