"""Recordings: the owner imports a media file into the vault from the browser, as `porchlight
footage import` does, on a real `porchlight run --http`. The footage then lists and exports
byte-identically to a CLI import of the same file into another hub; a file that is not media, a
bad start, a bad camera name, a file over the in-memory cap, a viewer and a forged form are each
refused with their exact error and leave the vault's index and folder as they were."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import timedelta
from pathlib import Path

import aiohttp

from hub.cli.main import main as cli_main
from hub.timeutil import iso, utcnow
from hub.web.pages.recordings import IMPORT_TOO_LARGE, MAX_IMPORT_BYTES
from tests.hub.web.conftest import (
    FORGED,
    PASSPHRASE,
    PHONE,
    WebHub,
    add_viewer,
    browser_sign_in,
    csrf_of,
    page_for,
    porchlight,
    run_async,
    sign_in,
)


def _web_hub(root: Path) -> WebHub:
    """A hub on `porchlight run --http` whose camera porch records nothing: an RTSP source at
    a closed port, so the vault holds only what the test imports."""
    hub = WebHub(root, cameras=())
    porchlight("camera", "add", "--data", root, "porch", "--rtsp", "rtsp://127.0.0.1:9/none",
               "--no-analysis")
    return hub.start("--http")


def _cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _listing(capsys, root: Path) -> list[dict]:
    code, out, _ = _cli(capsys, "footage", "list", "--data", root, "--json")
    assert code == 0
    return [{k: s[k] for k in ("camera", "start", "end", "media_type")} for s in json.loads(out)]


def _vault_files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size
            for p in sorted((root / "vault").rglob("*")) if p.is_file()}


def _form(token: str, camera: str, start: str, name: str, data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    form.add_field("camera", camera)
    form.add_field("start", start)
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return form


def _shown(page: str, element: str) -> list[str]:
    """Return the lines of the page's import result (a div of lines) or error (one line)."""
    closing = "div" if element == "imported" else "p"
    found = re.search(rf'id="{element}"[^>]*>(.*?)</{closing}>', page, re.S)
    assert found, page
    lines = re.findall(r"<p>(.*?)</p>", found.group(1)) if closing == "div" else [found.group(1)]
    return [html.unescape(line) for line in lines]


def test_the_owner_imports_a_clip_that_exports_as_the_cli_import_does(tmp_path, clip25, capsys):
    start = iso(utcnow().replace(microsecond=0) - timedelta(hours=2))
    cli_hub = WebHub(tmp_path / "birch")
    began = time.perf_counter()
    code, out, err = _cli(capsys, "footage", "import", "--data", cli_hub.root, "--camera",
                          "porch", "--start", start, clip25)
    cli_seconds = time.perf_counter() - began
    assert code == 0, err
    hub = _web_hub(tmp_path / "maple")
    try:
        page, web_seconds = run_async(_import(hub, start, clip25.read_bytes()))
    finally:
        hub.stop()
    with capsys.disabled():
        # A figure, not an assertion: the upload and import against the CLI's (in process).
        print(f"\nfootage import of {clip25.stat().st_size} bytes: web POST {web_seconds:.2f} s, "
              f"`porchlight footage import` {cli_seconds:.2f} s, ratio "
              f"{web_seconds / cli_seconds:.2f}")
    # The page says what the CLI printed, line for line, and the range it covers.
    assert _shown(page, "imported")[:-1] == out.splitlines()
    listing = _listing(capsys, hub.root)
    assert listing == _listing(capsys, cli_hub.root) and len(listing) == 3
    assert f"{listing[0]['start'][:19]}Z to {listing[-1]['end'][:19]}Z" in page
    exports = []
    for root in (hub.root, cli_hub.root):
        target = tmp_path / f"{root.name}.mp4"
        code, _, err = _cli(capsys, "footage", "export", "--data", root, "--camera", "porch",
                            "--from", start, "--to", listing[-1]["end"], "--out", target,
                            "--passphrase-file", tmp_path / f"{root.name}.pass")
        assert code == 0, err
        exports.append(target.read_bytes())
    assert len(exports[0]) > 100_000 and exports[0] == exports[1]


async def _import(hub: WebHub, start: str, clip: bytes) -> tuple[str, float]:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/recordings")
        began = time.perf_counter()
        async with owner.post("/recordings/import",
                              data=_form(token, "porch", start, "clip25.mp4", clip)) as reply:
            page = await reply.text()
            assert reply.status == 200, page
        seconds = time.perf_counter() - began
        # The imported day is listed on the recordings page.
        async with owner.get("/recordings") as reply:
            day = re.search(r'id="imported".*?\?day=([0-9-]+)', page, re.S).group(1)
            assert f"/recordings/porch?day={day}" in await reply.text()
        return page, seconds


def test_imports_that_are_refused_store_nothing(tmp_path, clip25, capsys, monkeypatch):
    start = iso(utcnow().replace(microsecond=0) - timedelta(hours=2))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a clip\n" * 50)
    # What the CLI says of each bad input, run from the file's folder so it names the file
    # as the page does (by its own name).
    cli_hub = WebHub(tmp_path / "birch")
    monkeypatch.chdir(tmp_path)
    expected = {}
    for key, camera, when, path in (("not-media", "porch", start, "notes.txt"),
                                    ("bad-start", "porch", "last tuesday", "notes.txt"),
                                    ("bad-camera", "Porch!", start, "notes.txt")):
        code, _, err = _cli(capsys, "footage", "import", "--data", cli_hub.root, "--camera",
                            camera, "--start", when, path)
        assert code != 0 and err.startswith("porchlight: error: "), err
        expected[key] = (camera, when, err.removeprefix("porchlight: error: ").strip())
    assert _listing(capsys, cli_hub.root) == []
    hub = _web_hub(tmp_path / "maple")
    try:
        run_async(add_viewer(hub, "robin", "robin's own passphrase", "porch"))
        before = _vault_files(hub.root)
        run_async(_refusals(hub, expected, notes.read_bytes(), clip25.read_bytes()))
        assert _vault_files(hub.root) == before
    finally:
        hub.stop()
    assert _listing(capsys, hub.root) == []
    assert not any("Traceback" in line for line in hub.log), "".join(hub.log)


async def _refusals(hub: WebHub, expected: dict, notes: bytes, clip: bytes) -> None:
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/recordings")
        for camera, when, error in expected.values():
            async with owner.post("/recordings/import",
                                  data=_form(token, camera, when, "notes.txt", notes)) as reply:
                page = await reply.text()
                assert reply.status == 400, page
                assert _shown(page, "import-error") == [error]
                assert 'id="imported"' not in page
        # A file over the cap: read into memory only up to it (a chunked upload, no length)...
        boundary = "porchlightcapcheck"

        async def too_big():
            yield (f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}'
                   f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="camera"\r\n\r\n'
                   f'porch\r\n--{boundary}\r\nContent-Disposition: form-data; name="start"'
                   f'\r\n\r\n{expected["not-media"][1]}\r\n--{boundary}\r\nContent-Disposition: '
                   f'form-data; name="file"; filename="big.mp4"\r\n\r\n').encode()
            yield clip
            chunk = bytes(1 << 20)
            for _ in range(MAX_IMPORT_BYTES // len(chunk) + 1):
                yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()

        content_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        async with owner.post("/recordings/import", data=too_big(),
                              headers=content_type) as reply:
            assert (reply.status, await reply.text()) == (413, IMPORT_TOO_LARGE)
        # ...and one that says its length is over it is refused before a byte is read (the
        # connection is not used again: the hub would take what follows as the body's rest).
        async with owner.post("/recordings/import", data=b"--x--\r\n", headers={
                **content_type, "Content-Length": str(MAX_IMPORT_BYTES * 2),
                "Connection": "close"}) as reply:
            assert (reply.status, await reply.text()) == (413, IMPORT_TOO_LARGE)
        # A forged form: a real clip, a wrong token.
        async with owner.post("/recordings/import", data=_form(
                "forged" + token, "porch", expected["not-media"][1], "clip25.mp4", clip)) as reply:
            assert (reply.status, await reply.text()) == (403, FORGED)
    async with hub.client() as viewer:
        assert (await sign_in(viewer, "robin", "robin's own passphrase")).status == 303
        page = await (await viewer.get("/recordings")).text()
        assert 'action="/recordings/import"' not in page
        token = await csrf_of(viewer, "/recordings")
        async with viewer.post("/recordings/import", data=_form(
                token, "porch", expected["not-media"][1], "clip25.mp4", clip)) as reply:
            assert (reply.status, await reply.text()) == (403, "only an owner may do this")


def test_the_owner_imports_a_clip_in_chromium_on_a_phone(browser, tmp_path, clip25):
    hub = _web_hub(tmp_path / "maple")
    start = iso(utcnow().replace(microsecond=0) - timedelta(hours=2))
    try:
        with page_for(browser, hub, PHONE) as page:
            browser_sign_in(page, hub)
            page.goto(hub.url + "/recordings")
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            page.fill("#import-camera", "porch")
            page.fill("#import-start", start)
            page.set_input_files("#import-file", str(clip25))
            page.focus("#import button[type=submit]")
            page.keyboard.press("Enter")
            page.wait_for_selector("#imported")
            assert page.inner_text("#imported").splitlines()[0] == \
                "sealed 3 segments of porch into the vault"
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            assert page.console_errors == [] and page.hosts == {hub.url.split("://")[1]}
    finally:
        hub.stop()
