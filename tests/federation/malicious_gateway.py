"""A gateway run by an adversary, for testing what hubs notice.

It holds a real gateway key and a real tile log (so its checkpoints are validly signed), serves
``/v1/info``, ``/checkpoint``, ``/v1/log/proof/consistency`` and a ``/v1/stream`` WebSocket
whose frames the test scripts: it can alter a request, replay one, leave one out of its log,
switch to a forked log, or withhold proofs. Hub clients talk to it with the real
``GatewayClient`` (it does not check their signatures). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import WSMsgType, web

from federation.keys import SigningKey, generate_signing_key
from federation.neighbourhood_log import checkpoint_signer, encode_hashes, log_origin
from federation.tlog.tiles import DirectoryStorage, TileLog


class MaliciousGateway:
    """A scripted, dishonest gateway with its own key and (possibly forked) logs."""

    def __init__(self, root: Path, key: SigningKey | None = None) -> None:
        self.root = root
        self.key = key or generate_signing_key()
        self.log = self.new_log("log")
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.withhold_consistency = False
        self.seq = 0
        self.url = ""

    @property
    def kid(self) -> str:
        """Return the gateway's kid."""
        return self.key.kid

    def new_log(self, name: str) -> TileLog:
        """Start another log under the same key (a fork, when entries differ)."""
        return TileLog(
            DirectoryStorage(self.root / name, durable=False),
            checkpoint_signer(self.key),
            origin=log_origin(self.key.kid),
        )

    def push(self, token: str, proof: str | None, *, request_id: str | None = None) -> int:
        """Queue one request frame for the hub; return its seq."""
        self.seq += 1
        frame = {"seq": self.seq, "kind": "request", "id": request_id, "jws": token}
        if frame["id"] is None:
            frame["id"] = json.loads(_payload(token))["jti"]
        if proof is not None:
            frame["proof"] = proof
        self.frames.put_nowait(json.dumps(frame))
        return self.seq

    def log_and_push(self, token: str) -> int:
        """Log a request honestly and push it with its proof; return its log index."""
        index = self.log.append(token.encode("ascii"))
        self.push(token, self.log.tlog_proof(index))
        return index

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "v": 1,
                "gateway": {
                    "kid": self.key.kid,
                    "jwk": dict(self.key.public_jwk),
                    "name": "Evil",
                    "url": self.url,
                },
            }
        )

    async def _checkpoint(self, request: web.Request) -> web.Response:
        return web.Response(text=self.log.signed_checkpoint)

    async def _consistency(self, request: web.Request) -> web.Response:
        if self.withhold_consistency:
            return web.json_response(
                {"error": "not today", "reason": "not_found"},
                status=404,
                headers={"Porchlight-Error-Reason": "not_found"},
            )
        old, new = int(request.query["old"]), int(request.query["new"])
        hashes = self.log.consistency_proof(old, new)
        return web.json_response({"old": old, "new": new, "hashes": encode_hashes(hashes)})

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def send() -> None:
            while True:
                await ws.send_str(await self.frames.get())

        sender = asyncio.create_task(send())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 and yield the URL."""
        app = web.Application()
        app.router.add_get("/v1/info", self._info)
        app.router.add_get("/checkpoint", self._checkpoint)
        app.router.add_get("/v1/log/proof/consistency", self._consistency)
        app.router.add_get("/v1/stream", self._stream)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield self.url
        finally:
            await runner.cleanup()


def _payload(token: str) -> bytes:
    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def altered(token: str, **changes: object) -> str:
    """Return the token with claims changed and the agency's signature kept."""
    header, _, signature = token.split(".")
    claims = json.loads(_payload(token))
    claims.update(changes)
    body = json.dumps(claims, separators=(",", ":")).encode()
    segment = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    return f"{header}.{segment}.{signature}"
