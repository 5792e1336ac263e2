"""Web UI test helpers: a real `porchlight run` over HTTPS with synthetic cameras, a pinned
HTTPS client, and Debian's Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from hub.cli.main import main as cli_main
from tests.conftest import PASSPHRASE, WORK_FACTOR

# The viewer most web tests add, and the refusal a form without the session's CSRF token gets.
VIEWER, VIEWER_PASS = "sam", "sam-passphrase-long"
FORGED = "the form is out of date or forged (no valid CSRF token)"
LONG_WAIT_MS = 60_000  # Playwright's waits on a busy machine; no speed is tested

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 800}


def porchlight(*args) -> None:
    """Run a `porchlight` command in process; fail the test on a non-zero exit."""
    code = cli_main([str(a) for a in args])
    assert code == 0, args


class WebHub:
    """A hub data dir with synthetic cameras, served by a real `porchlight run` process."""

    def __init__(self, root: Path, cameras: tuple[str, ...] = ("porch",), config: str = "",
                 work_factor: int = WORK_FACTOR) -> None:
        self.root = root
        secret = root.parent / f"{root.name}.pass"
        secret.write_text(PASSPHRASE + "\n")
        porchlight("init", "--data", root, "--name", root.name, "--location", "51.5007,-0.1246",
                   "--work-factor", work_factor, "--passphrase-file", secret)
        for camera in cameras:
            porchlight("camera", "add", "--data", root, camera, "--synthetic")
        if config:
            path = root / "config.toml"
            path.write_text(path.read_text() + "\n" + config)
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.fingerprint = ""
        self.log: list[str] = []

    def start(self, *extra: str) -> WebHub:
        """Start `porchlight run` and wait for its URL and certificate fingerprint."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--data", str(self.root),
             "--listen", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        for _ in range(2 if "--http" not in extra else 1):
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"hub did not start: {self.proc.stderr.read()}")
            if found := re.search(r"listening on (\S+)", line):
                self.url = found.group(1)
            if found := re.search(r"certificate SHA-256 (\S+)", line):
                self.fingerprint = found.group(1)
        self._drainer = threading.Thread(target=self._drain, daemon=True, name="hub-log")
        self._drainer.start()
        return self

    def _drain(self) -> None:
        assert self.proc is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self) -> None:
        """Stop the hub (SIGTERM) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "_drainer", None) is not None:
            self._drainer.join(10)

    def client(self) -> aiohttp.ClientSession:
        """Return an HTTPS client that trusts exactly the hub's printed certificate fingerprint
        (a plain HTTP client for a hub started with --http, which prints none)."""
        pin = aiohttp.Fingerprint(bytes.fromhex(self.fingerprint.replace(":", ""))) \
            if self.fingerprint else False
        # unsafe=True: keep cookies for an IP-address host (127.0.0.1), as a browser does.
        return aiohttp.ClientSession(base_url=self.url, connector=aiohttp.TCPConnector(ssl=pin),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     headers={"Origin": self.url})


async def sign_in(client: aiohttp.ClientSession, name: str, passphrase: str) -> aiohttp.ClientResponse:
    """Post the sign-in form as a browser would (its login token from the form's cookie)."""
    async with client.get("/login") as page:
        text = await page.text()
    # The sign-in form's token: the last on the page (a signed-in page also has the sign-out form).
    token = re.findall(r'name="csrf" value="([^"]+)"', text)[-1]
    return await client.post("/login", data={"csrf": token, "name": name, "passphrase": passphrase,
                                             "next": "/"}, allow_redirects=False)


async def csrf_of(client: aiohttp.ClientSession, path: str = "/") -> str:
    """Return the session's CSRF token, read from a page's forms."""
    async with client.get(path) as page:
        return re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)


def assert_page_clean(page, hub: WebHub, what: str = "") -> None:
    """Check the page so far: no console error, no request to any host but the hub."""
    assert page.console_errors == [], (what, page.console_errors)
    assert page.hosts == {urlsplit(hub.url).netloc}, (what, page.hosts)


async def add_viewer(hub: WebHub, name: str, passphrase: str, *cameras: str) -> None:
    """Add a viewer through the settings page, signed in as the owner, and share cameras with them."""
    async with hub.client() as owner:
        assert (await sign_in(owner, "owner", PASSPHRASE)).status == 303
        token = await csrf_of(owner, "/settings")
        async with owner.post("/settings/people", data={
                "csrf": token, "name": name, "role": "viewer", "passphrase": passphrase}) as reply:
            assert reply.status == 200
        for camera in cameras:
            async with owner.post(f"/settings/people/{name}/share", data={
                    "csrf": token, "camera": camera, "shared": "yes"}) as reply:
                assert reply.status == 200


@pytest.fixture
def web_hub(tmp_path):
    """A running hub with one synthetic camera `porch`."""
    hub = WebHub(tmp_path / "maple").start()
    yield hub
    hub.stop()


def run_async(coroutine):
    """Run a coroutine to completion in a thread of its own (Playwright's sync API owns the
    main thread's event loop)."""
    result: list = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as err:  # handed back to the caller's thread
            failure.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0] if result else None


def chromium_missing() -> str | None:
    """Say why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (scripts/setup --test installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[test])"
    return None


def pytest_collection_modifyitems(items):
    """Refuse a module whose async test comes after one of its browser tests: from a module's
    first browser test to its end, Playwright's sync API holds this thread's event loop, and the
    async test would fail with "Runner.run() cannot be called from a running event loop" (or
    pass, when pytest-xdist happens to run it on another worker). Tests keep the order they are
    written in: some modules' tests build on the ones before."""
    browsed: set = set()
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            browsed.add(item.module)
        elif item.module in browsed and inspect.iscoroutinefunction(getattr(item, "obj", None)):
            raise pytest.UsageError(
                f"{item.nodeid}: an async test after a browser test of its module; move it "
                "before them (tests/hub/web/conftest.py says why)")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (per module: its sync API holds an event
    loop in this thread while it runs, which async tests of other modules must not meet)."""
    why = chromium_missing()
    if why:
        pytest.fail(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def page_for(browser, hub: WebHub, viewport=LAPTOP):
    """Open a page on the hub that records console errors and every host it asks."""
    context = browser.new_context(ignore_https_errors=True, viewport=viewport)
    page = context.new_page()
    page.console_errors = []
    page.hosts = set()
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    page.on("request", lambda r: page.hosts.add(re.sub(r"^\w+://([^/]+).*", r"\1", r.url)))
    try:
        yield page
    finally:
        context.close()


def shots_dir() -> Path:
    """Return the folder this test run saves page screenshots in (named by the run)."""
    folder = Path(os.environ.get("PORCHLIGHT_SCREENSHOTS", "test-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def browser_sign_in(page, hub: WebHub, name: str = "owner", passphrase: str = PASSPHRASE) -> None:
    """Sign in through the form."""
    page.goto(hub.url + "/login")
    page.fill("#name", name)
    page.fill("#passphrase", passphrase)
    page.click("button[type=submit]")
    page.wait_for_url(hub.url + "/")


def age_cli_missing() -> str | None:
    """Say why the age CLI checks cannot run, or None."""
    return None if shutil.which("age") else "the age CLI is not installed"
