"""HTTP calls to a neighbourhood gateway that every party makes: the base client and its errors.

``GatewayHTTP`` makes the calls, hop-signed (RFC 9421) when it holds a key;
``PublicGatewayClient`` the unsigned ones anyone may make (the log, the registry). A member
hub's client (federation.member.client), the agency tool, the authority tool and the log
auditor all build on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp

from federation.bodies import BodyTooLarge, read_body, read_error_body
from federation.delivery import Delivery, TransientError
from federation.errors import FederationError, MalformedMessage
from federation.hop import HopSigner, join_url
from federation.keys import SigningKey
from federation.neighbourhood_log import decode_hashes
from federation.tlog.note import MAX_NOTE_BYTES
from federation.tlog.tiles import parse_tile_path
from federation.wire import (
    MAX_ANSWER_BYTES,
    MAX_ENTRIES_BYTES,
    MAX_TOKEN_CHARS,
    ConsistencyAnswer,
    EntriesAnswer,
    InclusionAnswer,
    Info,
    RegistryAnswer,
    RegistryPosted,
    parse_answer,
    parse_error,
)

_M = TypeVar("_M")


class GatewayRejected(FederationError):
    """The gateway refused a request; retrying the same request will not help."""

    default_reason = "rejected"

    def __init__(self, message: str, *, reason: str | None = None, status: int = 0) -> None:
        super().__init__(message, reason=reason)
        self.status = status


class GatewayUnavailable(TransientError):
    """The gateway could not be reached or failed; try again later."""


class GatewayKeyChanged(FederationError):
    """The gateway's key is not the one pinned; refuse to talk to it."""

    default_reason = "gateway_key_changed"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class GatewayHTTP:
    """HTTP calls to a gateway, hop-signed when a key is given; the base of every client."""

    def __init__(
        self,
        url: str,
        *,
        signing_key: SigningKey | None = None,
        gateway_kid: str | None = None,
        clock: Callable[[], float] = time.time,
        delivery: Delivery | None = None,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.origin = _origin(self.url)
        self.gateway_kid = gateway_kid
        self.clock = clock
        self.delivery = delivery or Delivery()
        self._signer = HopSigner(signing_key, clock=clock) if signing_key is not None else None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # -- one request ------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        signed: bool = True,
        query: Iterable[tuple[str, str]] = (),
        limit: int = MAX_ANSWER_BYTES,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> bytes:
        url = join_url(self.url, path, query)
        if signed and self._signer is None:
            raise ValueError("this client has no key to sign requests with")
        headers = self._signer.headers(method, url, body) if signed and self._signer else {}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            async with self._http().request(
                method, url, data=body or None, headers=headers, timeout=timeout or self._timeout
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After", "")
                if status >= 400:
                    data = await read_error_body(resp)
                else:
                    try:
                        data = await read_body(resp, limit)
                    except BodyTooLarge as err:
                        raise GatewayUnavailable(
                            f"gateway at {self.origin} answered more than {limit} bytes",
                            reason="too_large",
                        ) from err
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise GatewayUnavailable(
                f"cannot reach the gateway at {self.origin}: {err or type(err).__name__}",
            ) from err
        if status < 400:
            return data
        error = parse_error(data)
        message = error.error if error else f"HTTP {status}"
        reason = error.reason if error else f"http_{status}"
        if status >= 500 or status in (408, 429):
            raise GatewayUnavailable(
                f"gateway at {self.origin} answered {status}: {message}",
                reason=reason,
                retry_after=float(retry_after) if retry_after.isdigit() else None,
            )
        raise GatewayRejected(f"gateway refused: {message}", reason=reason, status=status)

    async def _json(self, model: type[_M], path: str, what: str, **kwargs: Any) -> _M:
        data = await self._request("GET", path, **kwargs)
        return parse_answer(model, data, what=what, limit=kwargs.get("limit", MAX_ANSWER_BYTES))

    async def info(self) -> Info:
        """Fetch the gateway's identity (GET /v1/info, unsigned)."""
        data = await self._request("GET", "/v1/info", signed=False)
        info = parse_answer(Info, data, what="gateway info")
        key = info.gateway
        if key.jwk.thumbprint() != key.kid:
            raise GatewayKeyChanged("gateway info: kid is not the thumbprint of its JWK")
        if self.gateway_kid is not None and key.kid != self.gateway_kid:
            raise GatewayKeyChanged(
                f"gateway at {self.origin} now has key {key.kid}, not the pinned "
                f"{self.gateway_kid}; if its operator re-keyed it, join it again",
            )
        return info

    async def get_checkpoint(self) -> str:
        """Return the gateway log's current signed checkpoint (GET /checkpoint)."""
        data = await self._request("GET", "/checkpoint", signed=False, limit=MAX_NOTE_BYTES)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise MalformedMessage("the checkpoint is not UTF-8", reason="bad_answer") from err

    async def get_tile(self, path: str, limit: int) -> bytes:
        """Return one C2SP tlog-tiles resource (a hash tile or an entry bundle) as served."""
        ref = parse_tile_path(path)  # only tile paths go into the URL
        return await self._request("GET", "/" + ref.path, signed=False, limit=limit)

    async def get_consistency_proof(self, old: int, new: int) -> list[bytes]:
        """Return the log's consistency proof from size old to size new."""
        return await self._proof(ConsistencyAnswer, "/v1/log/proof/consistency",
                                 "consistency proof", {"old": old, "new": new})

    async def get_inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the log's inclusion proof of entry index in the tree of size entries."""
        return await self._proof(InclusionAnswer, "/v1/log/proof/inclusion", "inclusion proof",
                                 {"index": index, "size": size})

    async def _proof(self, model: type, path: str, what: str, asked: dict[str, int]) -> list[bytes]:
        answer = await self._json(model, path, what, signed=False,
                                  query=[(k, str(v)) for k, v in asked.items()])
        if any(getattr(answer, k) != v for k, v in asked.items()):
            raise MalformedMessage(f"gateway answered a {what} for something else",
                                   reason="bad_answer")
        return decode_hashes(answer.hashes)

    async def get_entries(self, start: int, end: int) -> EntriesAnswer:
        """Return log entries [start, end) with their kinds and signer keys."""
        return await self._json(
            EntriesAnswer,
            "/v1/log/entries",
            "log entries",
            signed=False,
            query=[("start", str(start)), ("end", str(end))],
            limit=MAX_ENTRIES_BYTES,
        )

    async def get_registry(self) -> RegistryAnswer:
        """Return the gateway's current registry as served, unverified (GET /v1/registry)."""
        return await self._json(
            RegistryAnswer, "/v1/registry", "registry", signed=False, limit=MAX_TOKEN_CHARS + 4096
        )


class PublicGatewayClient(GatewayHTTP):
    """Unsigned calls anyone may make: info, the log, the registry, posting a registry."""

    async def post_registry(self, token: str, authority_jwk: dict[str, str]) -> dict[str, int]:
        """Upload a registry version signed by the authority (POST /v1/registry)."""
        body = json.dumps({"registry": token, "jwk": authority_jwk}, separators=(",", ":"))
        data = await self._request(
            "POST", "/v1/registry", body.encode(), content_type="application/json", signed=False
        )
        answer = parse_answer(RegistryPosted, data, what="registry answer")
        return {"version": answer.version, "log_index": answer.log_index}
