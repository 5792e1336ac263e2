"""Read whole HTTP bodies, with a size cap, wherever Porchlight reads an answer.

``aiohttp``'s ``content.read(n)`` returns as soon as anything is buffered, so a single call
reads only the first TCP pieces of a big or slow answer; ``resp.read()`` reads it all, but with
no limit. ``read_body`` reads until the end of the body or the cap, whichever comes first, and
refuses an answer that says or turns out to be bigger than the cap before holding it all.
"""

from __future__ import annotations

import aiohttp

from federation.errors import FederationError

CHUNK = 64 * 1024
# An error answer is one short JSON object; anything bigger is not one of ours.
MAX_ERROR_BYTES = 16 * 1024


class BodyTooLarge(FederationError):
    """An HTTP answer is bigger than the caller is willing to hold."""

    default_reason = "too_large"

    def __init__(self, limit: int, *, declared: int | None = None) -> None:
        said = f" (it announces {declared})" if declared is not None else ""
        super().__init__(f"the answer is more than {limit} bytes{said}")
        self.limit = limit


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Return a response's whole body; raise BodyTooLarge past limit bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit, declared=declared)
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


async def read_error_body(resp: aiohttp.ClientResponse, limit: int = MAX_ERROR_BYTES) -> bytes:
    """Return an error answer's whole body, or nothing if it is too big to be an error message."""
    try:
        return await read_body(resp, limit)
    except BodyTooLarge:
        return b""
