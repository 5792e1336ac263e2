"""Real gateways and hubs for the federation tests: processes and in-process servers.

Everything listens on 127.0.0.1 only and every process is stopped by the test that started
it, by its process id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from federation.gateway.operator import create_invite, init_gateway, serve_gateway
from federation.gateway.settings import load_settings, render_settings, settings_path
from federation.gateway.store import GatewayStore
from federation.hop import sign_request
from federation.keys import SigningKey, generate_signing_key
from federation.member.client import GatewayClient, Membership, join_gateway

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves threads running (a gateway's writer thread, say)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=2)
    leaked = [t for t in leaked if t.is_alive() and not t.name.startswith("asyncio_")]
    assert not leaked, f"threads leaked: {leaked}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    """Fail a test that leaves asyncio tasks pending."""
    yield
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    if pending:
        # Give tasks that are already winding down (a closed connection's handler) a moment.
        _, pending = await asyncio.wait(pending, timeout=2)
    assert not pending, f"tasks leaked: {pending}"


DB_FILE = "gateway.sqlite"


def write_settings(data_dir: Path, **overrides: Any) -> None:
    """Change a gateway's settings file."""
    settings = load_settings(data_dir).model_copy(update=overrides)
    settings_path(data_dir).write_text(render_settings(settings))


def store_counts(data_dir: Path) -> dict[str, int]:
    """Return the gateway's row counts, read from its database file."""
    with contextlib.closing(GatewayStore(data_dir / DB_FILE)) as store:
        return store.counts()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    """A child process whose stdout lines are collected as events."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, log_path: Path) -> None:
        self.proc = proc
        self.name = name
        self.log_path = log_path
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name=f"read-{name}")

    @classmethod
    async def start(
        cls,
        name: str,
        args: list[str],
        log_dir: Path,
        *,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Proc:
        """Start `python ARGS...` from the repository root (preexec_fn runs in the child)."""
        log_path = log_dir / f"{name}.stderr"
        with open(log_path, "ab") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                cwd=ROOT,
                env=_env(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                preexec_fn=preexec_fn,
            )
        return cls(proc, name, log_path)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode().strip()
            if text.startswith("READY "):
                event: dict[str, Any] = {"event": "ready"}
                event.update(part.split("=", 1) for part in text.split()[1:])
            else:
                try:
                    event = json.loads(text)
                except ValueError:
                    event = {"event": "raw", "line": text}
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def stderr(self) -> str:
        """Return what the process wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 15.0
    ) -> Any:
        """Wait until predicate(events) is truthy and return its value."""

        async def check() -> Any:
            async with self._changed:
                while not (result := predicate(self.events)):
                    if self._reader.done():
                        raise AssertionError(
                            f"{self.name} exited ({self.proc.returncode}) before the expected "
                            f"event; events {self.events}; stderr:\n{self.stderr()[-3000:]}"
                        )
                    await self._changed.wait()
                return result

        try:
            return await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: expected event did not come within {timeout} s; "
                f"events {self.events}; stderr:\n{self.stderr()[-3000:]}"
            ) from None

    async def wait_event(self, kind: str, count: int = 1, timeout: float = 15.0) -> list[dict]:
        """Wait until `count` events of a kind have arrived and return them all."""
        return await self.wait_for(
            lambda events: (
                (found := [e for e in events if e.get("event") == kind])
                and len(found) >= count
                and found
            ),
            timeout,
        )

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Return every event of a kind so far."""
        return [e for e in self.events if e.get("event") == kind]

    async def send(self, line: str) -> None:
        """Write one command line to the process's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Stop the process by its pid and wait for it; return its exit status."""
        if self.proc.returncode is None:
            os.kill(self.proc.pid, sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                os.kill(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await self._reader
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return self.proc.returncode


@dataclass
class GatewayProc:
    """A gateway running as its own process."""

    proc: Proc
    data_dir: Path
    url: str
    kid: str
    port: int


async def start_gateway_proc(
    data_dir: Path,
    log_dir: Path,
    *,
    port: int = 0,
    name: str = "gateway",
    preexec_fn: Callable[[], None] | None = None,
    log_level: str = "INFO",
) -> GatewayProc:
    """Run `python -m federation.gateway run` and wait for its READY line."""
    proc = await Proc.start(
        name,
        [
            "-m",
            "federation.gateway",
            "run",
            "--data",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--log-level",
            log_level,
        ],
        log_dir,
        preexec_fn=preexec_fn,
    )
    (ready,) = await proc.wait_event("ready")
    return GatewayProc(proc, data_dir, ready["url"], ready["kid"], int(ready["port"]))


async def start_hub_proc(
    name: str,
    state: Path,
    gateway_url: str,
    lat: float,
    lon: float,
    log_dir: Path,
    *,
    code: str | None = None,
) -> Proc:
    """Run the stand-in hub and wait until its stream is connected."""
    args = [
        "-m",
        "tests.federation.hub_client_proc",
        "--state",
        str(state),
        "--gateway",
        gateway_url,
        "--lat",
        repr(lat),
        "--lon",
        repr(lon),
    ]
    if code:
        args += ["--code", code]
    proc = await Proc.start(name, args, log_dir)
    await proc.wait_event("connected")
    return proc


@dataclass
class RunningGateway:
    """A gateway served in the test's own event loop (a real server on loopback)."""

    url: str
    kid: str
    data_dir: Path

    def counts(self) -> dict[str, int]:
        """Return the gateway's database row counts."""
        return store_counts(self.data_dir)

    async def member(
        self, *, cell: str, key: SigningKey | None = None
    ) -> tuple[SigningKey, Membership]:
        """Join a new hub (a fresh key unless given) and return its key and membership."""
        key = key or generate_signing_key()
        membership = await join_gateway(self.url, create_invite(self.data_dir), key, cell)
        return key, membership


@contextlib.asynccontextmanager
async def running_gateway(data_dir: Path, **settings: Any) -> AsyncIterator[RunningGateway]:
    """Create a gateway in data_dir and serve it on 127.0.0.1 until the block ends."""
    init_gateway(data_dir, name="Test Street")
    if settings:
        write_settings(data_dir, **settings)
    stop = asyncio.Event()
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_gateway(data_dir, "127.0.0.1", 0, stop=stop, on_ready=ready.set_result),
        name="test-gateway",
    )
    try:
        listening = await asyncio.wait_for(asyncio.shield(ready), 10)
        yield RunningGateway(listening.url, listening.kid, data_dir)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def signed_request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: bytes,
    key: SigningKey,
    *,
    sign_url: str | None = None,
    now: float | None = None,
    extra_headers: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Send a hop-signed request and return (status, JSON body)."""
    if headers is None:
        headers = sign_request(
            key, method, sign_url or url, body, now=time.time() if now is None else now
        )
    headers = {**headers, **(extra_headers or {})}
    async with session.request(method, url, data=body, headers=headers) as resp:
        data = await resp.read()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, {"raw": data[:200].decode(errors="replace")}


async def first_frame(client: GatewayClient, since: int = 0, timeout: float = 10.0):
    """Return the first message a hub's stream yields."""

    async def one():
        async with contextlib.aclosing(client.stream(since, lambda seq: None)) as messages:
            async for message in messages:
                return message

    return await asyncio.wait_for(one(), timeout)
