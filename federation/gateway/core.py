"""What the gateway's services (requests, announcements, attachments) need of the gateway.

``Gateway`` (federation.gateway.app) builds the services and hands each itself; they see it
through this protocol, so no service imports the app that imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiohttp import web

from federation.gateway.settings import GatewaySettings
from federation.gateway.store import GatewayStore, Member
from federation.gateway.stream import StreamHub
from federation.hop import HopSignature
from federation.keys import SigningKey

_T = TypeVar("_T")


class GatewayCore(Protocol):
    """The gateway as its services see it: key, settings, store, streams, clock and hop checks."""

    data_dir: Path
    settings: GatewaySettings
    clock: Callable[[], float]
    streams: StreamHub
    key: SigningKey | None
    store: GatewayStore | None
    # The sibling services, each seen as Any: they reach each other only through the gateway.
    requests: Any
    announcements: Any

    @property
    def kid(self) -> str:
        """Return the gateway's kid."""

    async def _db(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run fn on the gateway's one database thread."""

    async def _read_body(self, request: web.Request) -> bytes:
        """Read a request body within the gateway's size limit."""

    async def authenticate(self, request: web.Request, body: bytes | None) -> Member:
        """Check a member hub's hop signature and return the member."""

    def _fresh_signature(self, request: web.Request, now: float) -> HopSignature:
        """Parse a request's hop signature and check it is fresh."""

    def _verify_hop(
        self, request: web.Request, body: bytes | None, sig: HopSignature, jwk: dict[str, str],
        now: float,
    ) -> None:
        """Verify a hop signature under the given key."""

    async def _admit(self, sig: HopSignature, kid: str | None, now: float) -> None:
        """Record the hop signature's nonce, refusing a replay."""
