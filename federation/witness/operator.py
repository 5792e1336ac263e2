"""Running a witness: init, follow a log, run (what `porchlight witness ...` calls).

A witness's data directory holds:

| file | what |
|---|---|
| ``witness.key`` | its Ed25519 cosigning key (PKCS#8 PEM, mode 0600) |
| ``witness.json`` | its name (a schema-less URL such as ``witness.maple-street.example/w1``) |
| ``witness.db`` | the logs it follows and the latest checkpoint it cosigned for each |
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from federation.errors import FederationError
from federation.keys import generate_signing_key, load_private_key, save_private_key
from federation.serving import HardenedServer
from federation.tlog.cosignature import CosignatureSigner
from federation.tlog.note import is_valid_key_name
from federation.tlog.witness import MAX_BODY_BYTES, add_checkpoint
from federation.witness.state import WitnessState

KEY_FILE = "witness.key"
CARD_FILE = "witness.json"
DB_FILE = "witness.db"


class WitnessError(FederationError):
    """A witness's data directory is missing or wrong."""

    default_reason = "witness_error"


@dataclass(frozen=True)
class Listening:
    """Where a running witness listens."""

    port: int
    url: str
    vkey: str


def init_witness(data_dir: Path, name: str) -> str:
    """Create a witness; return its verifier key (vkey) for the logs and readers that trust it."""
    if not is_valid_key_name(name):
        raise WitnessError(f"witness name {name!r} is not a valid key name (no spaces or '+')")
    data_dir = Path(data_dir)
    if (data_dir / KEY_FILE).exists():
        raise WitnessError(f"{data_dir} already holds a witness")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = generate_signing_key()
    save_private_key(key, data_dir / KEY_FILE)
    (data_dir / CARD_FILE).write_text(json.dumps({"name": name}) + "\n")
    WitnessState(data_dir / DB_FILE).close()
    return load_signer(data_dir).verifier.to_string()


def load_signer(data_dir: Path) -> CosignatureSigner:
    """Load the witness's cosigning key and name."""
    data_dir = Path(data_dir)
    try:
        name = json.loads((data_dir / CARD_FILE).read_text())["name"]
    except (OSError, ValueError, KeyError) as err:
        raise WitnessError(f"no witness in {data_dir}: run `porchlight witness init`") from err
    return CosignatureSigner(name, load_private_key(data_dir / KEY_FILE).private)


def follow_log(data_dir: Path, origin: str, vkey: str) -> None:
    """Follow a log: its checkpoint origin line and its note verifier key."""
    load_signer(data_dir)
    state = WitnessState(Path(data_dir) / DB_FILE)
    try:
        state.add_log(origin, vkey)
    finally:
        state.close()


def make_app(state: WitnessState, signer: CosignatureSigner,
             clock: Callable[[], float] = time.time) -> web.Application:
    """Build the witness's HTTP API: POST /add-checkpoint (C2SP tlog-witness)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    lock = asyncio.Lock()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        async with lock:
            answer = await asyncio.to_thread(add_checkpoint, state, signer, body, int(clock()))
        return web.Response(status=answer.status, text=answer.body,
                            content_type=answer.content_type)

    async def info(request: web.Request) -> web.Response:
        return web.json_response({"name": signer.name, "vkey": signer.verifier.to_string(),
                                  "logs": [r.origin for r in state.logs()]})

    app.router.add_post("/add-checkpoint", handle)
    app.router.add_get("/", info)
    return app


def run_witness(data_dir: Path, host: str, port: int,
                on_ready: Callable[[Listening], None] | None = None) -> None:
    """Serve the witness until SIGINT or SIGTERM."""
    signer = load_signer(data_dir)
    state = WitnessState(Path(data_dir) / DB_FILE)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with HardenedServer(make_app(state, signer), host, port) as server:
            if on_ready is not None:
                on_ready(Listening(server.port, f"http://{host}:{server.port}",
                                   signer.verifier.to_string()))
            await stop.wait()

    try:
        asyncio.run(main())
    finally:
        state.close()


async def follow_gateway(data_dir: Path, url: str, pin: str | None = None) -> str:
    """Follow a Porchlight gateway's log: fetch its key (checked against pin if given); return
    the log's origin."""
    from federation.http import PublicGatewayClient
    from federation.keys import parse_pin
    from federation.neighbourhood_log import checkpoint_verifier

    async with PublicGatewayClient(url, gateway_kid=parse_pin(pin) if pin else None) as client:
        info = await client.info()
    verifier = checkpoint_verifier(info.gateway.jwk.model_dump(exclude_none=True))
    follow_log(data_dir, verifier.name, verifier.to_string())
    return verifier.name
