"""Operating a neighbourhood gateway: init, invite, block, run.

These functions are what ``porchlight gateway ...`` calls; ``python -m federation.gateway``
offers the same commands on their own (tests start real gateway processes with it)::

    python -m federation.gateway init --data DIR --name NAME
    python -m federation.gateway invite --data DIR
    python -m federation.gateway block --data DIR KID
    python -m federation.gateway run --data DIR --listen HOST:PORT [--public-url URL]

``run`` prints one line ``READY port=PORT url=URL kid=KID`` once it accepts connections and
stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from federation.errors import FederationError, KeyInvalid
from federation.gateway.app import DB_FILE, KEY_FILE, Gateway
from federation.gateway.errors import GatewayError, GatewayExists
from federation.gateway.invites import new_invite_code, split_invite
from federation.gateway.photo_relay import sweep_orphan_photos
from federation.gateway.settings import (
    GatewaySettings,
    load_settings,
    render_settings,
    settings_path,
    validate_settings,
)
from federation.gateway.store import GatewayStore, Member
from federation.keys import (
    KID_PATTERN,
    fingerprint,
    generate_signing_key,
    load_private_key,
    parse_pin,
    save_private_key,
)
from federation.serving import HardenedServer, ServerLimits, raise_open_file_limit

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 5.0
LINGERING_S = 1.0


@dataclass(frozen=True)
class GatewayInfo:
    """A gateway's identity: what an operator shares with the neighbourhood."""

    kid: str
    fingerprint: str
    name: str
    public_jwk: dict[str, str]
    registry_kid: str | None
    data_dir: Path


def _store(data_dir: str | os.PathLike[str]) -> GatewayStore:
    path = Path(data_dir) / DB_FILE
    try:
        return GatewayStore(path)
    except FileNotFoundError as err:
        raise GatewayError(
            f"no gateway in {data_dir}; run gateway init first", reason="no_gateway"
        ) from err


def init_gateway(
    data_dir: str | os.PathLike[str], *, name: str, registry_key: str | None = None
) -> GatewayInfo:
    """Create a gateway (key, database, settings) in an empty data directory."""
    root = Path(data_dir)
    existing = [p for p in (KEY_FILE, DB_FILE, settings_path(root).name) if (root / p).exists()]
    if existing:
        raise GatewayExists(
            f"{root} already holds a gateway ({existing[0]}); refusing to overwrite it. "
            "Use another --data directory, or move this one away first",
        )
    registry_kid = parse_pin(registry_key) if registry_key else None
    settings = validate_settings({"name": name, "registry_key": registry_kid})
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = generate_signing_key()
    save_private_key(key, root / KEY_FILE)
    GatewayStore(root / DB_FILE, create=True).close()
    settings_path(root).write_text(render_settings(settings))
    log.info("created gateway %s (%s) in %s", name, key.kid, root)
    return GatewayInfo(
        kid=key.kid,
        fingerprint=fingerprint(key.kid),
        name=settings.name,
        public_jwk=dict(key.public_jwk),
        registry_kid=registry_kid,
        data_dir=root,
    )


def gateway_info(data_dir: str | os.PathLike[str]) -> GatewayInfo:
    """Return an existing gateway's identity."""
    settings = load_settings(data_dir)
    key = load_private_key(Path(data_dir) / KEY_FILE)
    return GatewayInfo(
        kid=key.kid,
        fingerprint=fingerprint(key.kid),
        name=settings.name,
        public_jwk=dict(key.public_jwk),
        registry_kid=settings.registry_key,
        data_dir=Path(data_dir),
    )


def create_invite(
    data_dir: str | os.PathLike[str],
    *,
    ttl_s: float | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """Create a one-time invite code and return it (it is shown once, stored only hashed)."""
    settings = load_settings(data_dir)
    ttl = settings.invite_ttl_s if ttl_s is None else ttl_s
    with contextlib.closing(_store(data_dir)) as store:
        for _ in range(16):
            code = new_invite_code()
            invite_id, secret = split_invite(code)
            if not store.invite_exists(invite_id):
                store.add_invite(invite_id, secret, now=clock(), ttl_s=ttl)
                log.info("created invite %s", invite_id)
                return code
    raise GatewayError("could not find a free invite id; purge old invites", reason="invite_ids")


def _check_kid(kid: str) -> str:
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise KeyInvalid("a hub is named by its kid: 43 characters of base64url", reason="bad_kid")
    return kid


def block_hub(
    data_dir: str | os.PathLike[str],
    kid: str,
    *,
    note: str = "",
    clock: Callable[[], float] = time.time,
) -> int:
    """Block a hub (member or not yet); withdraw its alerts; return how many were withdrawn."""
    with contextlib.closing(_store(data_dir)) as store:
        withdrawn = store.block(_check_kid(kid), note=note, now=clock())
        # The withdrawn alerts' photos go now, not at the running gateway's next purge.
        sweep_orphan_photos(store, data_dir)
    log.info("blocked hub %s, withdrew %s alerts", kid, withdrawn)
    return withdrawn


def unblock_hub(data_dir: str | os.PathLike[str], kid: str) -> bool:
    """Lift a block; return whether the hub was blocked."""
    with contextlib.closing(_store(data_dir)) as store:
        return store.unblock(_check_kid(kid))


def list_members(data_dir: str | os.PathLike[str]) -> list[Member]:
    """Return every member of the neighbourhood."""
    with contextlib.closing(_store(data_dir)) as store:
        return store.members()


def _url_host(host: str) -> str:
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
        if address.is_unspecified:
            return "127.0.0.1" if address.version == 4 else "[::1]"
        return f"[{host}]" if address.version == 6 else host
    return host


@dataclass(frozen=True)
class Listening:
    """Where a running gateway accepts connections."""

    host: str
    port: int
    url: str
    kid: str


async def serve_gateway(
    data_dir: str | os.PathLike[str],
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    settings: GatewaySettings | None = None,
    clock: Callable[[], float] = time.time,
    on_ready: Callable[[Listening], None] | None = None,
) -> None:
    """Serve the gateway until stop is set, then shut down cleanly."""
    settings = settings or load_settings(data_dir)
    async with contextlib.AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(Gateway(data_dir, settings=settings, clock=clock))
        server = HardenedServer(
            gateway.make_app(),
            host,
            port,
            limits=ServerLimits(
                idle_timeout_s=settings.idle_timeout_s,
                max_per_address=settings.max_connections_per_address,
            ),
            backlog=4096,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            # After refusing a request (say a 10 MB body), aiohttp keeps reading and
            # discarding its body so the client sees the answer; bound that to one second.
            lingering_time=LINGERING_S,
        )
        await stack.enter_async_context(server)
        bound = server.port
        if settings.public_url is None:
            gateway.set_public_url(f"http://{_url_host(host)}:{bound}")
            if host not in ("127.0.0.1", "::1", "localhost"):
                log.warning(
                    "public_url is not set; hubs must sign %s exactly. Set public_url in %s",
                    gateway.public_url,
                    settings_path(data_dir),
                )
        assert gateway.public_url is not None
        listening = Listening(host=host, port=bound, url=gateway.public_url, kid=gateway.kid)
        log.info("gateway listening on %s:%s as %s", host, bound, gateway.public_url)
        if on_ready is not None:
            on_ready(listening)
        await stop.wait()
        log.info("gateway stopping")


def run_gateway(
    data_dir: str | os.PathLike[str],
    host: str,
    port: int,
    *,
    public_url: str | None = None,
    on_ready: Callable[[Listening], None] | None = None,
) -> None:
    """Run the gateway in the foreground until SIGTERM or SIGINT."""
    settings = load_settings(data_dir, public_url=public_url)
    # Every hub holds a connection: use all the descriptors the system allows this process.
    raise_open_file_limit()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve_gateway(data_dir, host, port, stop=stop, settings=settings, on_ready=on_ready)

    asyncio.run(main())


def parse_listen(text: str) -> tuple[str, int]:
    """Parse HOST:PORT (IPv6 as [ADDR]:PORT)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m federation.gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create a gateway in an empty data directory")
    p.add_argument("--data", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--registry-key", help="the registry authority's kid or fingerprint")
    p = sub.add_parser("invite", help="print a new one-time invite code")
    p.add_argument("--data", required=True)
    for name in ("block", "unblock"):
        p = sub.add_parser(name, help=f"{name} a hub by its kid")
        p.add_argument("--data", required=True)
        p.add_argument("kid")
    p = sub.add_parser("run", help="serve the gateway until SIGTERM")
    p.add_argument("--data", required=True)
    p.add_argument("--listen", default="127.0.0.1:8470")
    p.add_argument("--public-url", help="the URL hubs use to reach this gateway")
    p.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one gateway command; return the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "init":
            info = init_gateway(args.data, name=args.name, registry_key=args.registry_key)
            print(f"gateway {info.name}\nkid {info.kid}\nfingerprint {info.fingerprint}")
        elif args.command == "invite":
            print(create_invite(args.data))
        elif args.command == "block":
            withdrawn = block_hub(args.data, args.kid)
            print(f"blocked {args.kid}; withdrew {withdrawn} alerts")
        elif args.command == "unblock":
            print("unblocked" if unblock_hub(args.data, args.kid) else "was not blocked")
        elif args.command == "run":
            host, port = parse_listen(args.listen)

            def ready(listening: Listening) -> None:
                print(
                    f"READY port={listening.port} url={listening.url} kid={listening.kid}",
                    flush=True,
                )

            run_gateway(args.data, host, port, public_url=args.public_url, on_ready=ready)
    except (FederationError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
