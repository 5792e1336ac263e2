"""Asking witnesses to cosign the log's checkpoints (C2SP tlog-witness, the client side).

After each append the gateway submits its new checkpoint to every witness its settings name:
``old <size>``, the consistency proof from that size one base64 hash a line, an empty line,
then the signed checkpoint. A witness answers 200 with its cosignature line, or 409 with the
size it last cosigned (after a restart, or a round it missed), and the gateway resubmits once
from that size. Rounds run in their own task, never on a request's path: a witness that is slow
or down times out, is retried with backoff, and the gateway publishes the checkpoint with the
cosignatures it did get. Every cosignature is checked against the witness's key before it is
served.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from federation.gateway.settings import WitnessSetting
from federation.tlog.checkpoint import parse_checkpoint
from federation.tlog.cosignature import CosignatureVerifier, verify_cosignatures
from federation.tlog.note import parse_note
from federation.tlog.proof import format_tlog_proof
from federation.tlog.witness import SIZE_CONTENT_TYPE

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 4096  # a cosignature line or a size: a few hundred bytes at most
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0


class _Witness:
    """One witness as the gateway sees it: where, whose key, and how it has been answering."""

    def __init__(self, setting: WitnessSetting) -> None:
        self.url = setting.url
        self.verifier: CosignatureVerifier = setting.verifier()
        self.size = 0  # the size the gateway believes this witness last cosigned
        self.failures = 0
        self.retry_at = 0.0

    def failed(self, now: float) -> None:
        self.failures += 1
        self.retry_at = now + min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self.failures - 1))

    def succeeded(self, size: int) -> None:
        self.size = size
        self.failures = 0
        self.retry_at = 0.0


class Witnessing:
    """Collects cosignatures on the log's checkpoints and holds the one to publish."""

    def __init__(
        self,
        tiles: Any,
        witnesses: list[WitnessSetting],
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tiles = tiles  # the gateway's TileLog
        self._witnesses = [_Witness(w) for w in witnesses]
        self._run = run  # tile reads go to the gateway's worker thread
        self._timeout = timeout_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._published_changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        # Until the first round ends, the log's checkpoint is served as it is, and nothing
        # counts as witnessed (so routing waits for that round).
        self._published = tiles.signed_checkpoint
        self._published_size = 0
        self._published_signed = self._published  # the log's note it was built from
        self._cosigned_by: set[str] = set()

    @property
    def published(self) -> str:
        """Return the checkpoint to serve: the latest cosigned round's, or the log's latest."""
        return self._published if self.enabled else self._tiles.signed_checkpoint

    @property
    def published_size(self) -> int:
        """Return the size of the checkpoint to serve."""
        return self._published_size if self.enabled else self._tiles.size

    @property
    def enabled(self) -> bool:
        """Say whether any witness is configured."""
        return bool(self._witnesses)

    def start(self) -> None:
        """Start the cosigning task (nothing to do without witnesses)."""
        if not self.enabled:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": "porchlight-gateway"},
        )
        self._task = asyncio.create_task(self._loop(), name="gateway-witnessing")
        self._wake.set()

    async def stop(self) -> None:
        """Stop the cosigning task and close its connections."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def notify(self) -> None:
        """Say that the log has a new checkpoint to cosign."""
        self._wake.set()

    async def wait_published(self, size: int, timeout: float) -> None:
        """Wait until a published checkpoint covers size entries, or timeout seconds pass."""
        if not self.enabled:
            return

        async def covered() -> None:
            async with self._published_changed:
                await self._published_changed.wait_for(lambda: self._published_size >= size)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(covered(), timeout)

    def tlog_proof(self, index: int) -> str:
        """Return a tlog-proof of entry index under the published (cosigned) checkpoint.

        Runs on the gateway's worker thread (it reads tiles). An entry newer than the
        published checkpoint gets the log's latest checkpoint, without cosignatures.
        """
        published, size = self._published, self._published_size
        if not self.enabled or index >= size:
            return self._tiles.tlog_proof(index)
        return format_tlog_proof(index, self._tiles.inclusion_proof(index, size), published)

    async def _loop(self) -> None:
        while True:
            await self._wait_for_work()
            self._wake.clear()
            signed = self._tiles.signed_checkpoint
            try:
                await self._round(signed)
            except Exception:
                # A bug, not a witness's answer: keep the log served and try again later.
                log.exception("cosigning round failed")
                await asyncio.sleep(BACKOFF_FIRST_S)

    async def _wait_for_work(self) -> None:
        # A new checkpoint, or a witness missing from the published one whose backoff ends.
        missing = [w for w in self._witnesses if w.verifier.name not in self._cosigned_by]
        if not missing or self._wake.is_set():
            await self._wake.wait()
            return
        delay = max(0.0, min(w.retry_at for w in missing) - self._clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _round(self, signed: str) -> None:
        checkpoint = parse_checkpoint(parse_note(signed)[0])
        now = self._clock()
        again = signed == self._published_signed
        due = [
            w for w in self._witnesses
            if w.retry_at <= now and not (again and w.verifier.name in self._cosigned_by)
        ]
        lines = await asyncio.gather(*(self._ask(w, checkpoint.size, signed) for w in due))
        cosignatures = [line for line in lines if line]
        names = {
            c.witness
            for c in verify_cosignatures(
                signed + "".join(cosignatures), [w.verifier for w in self._witnesses]
            )
        }
        if again:
            # A retry round on the same checkpoint: keep what earlier rounds collected.
            kept = self._published[len(signed):].splitlines(keepends=True)
            cosignatures = [line for line in kept if line not in cosignatures] + cosignatures
            names |= self._cosigned_by
        async with self._published_changed:
            self._published = signed + "".join(cosignatures)
            self._published_signed = signed
            self._published_size = checkpoint.size
            self._cosigned_by = names
            self._published_changed.notify_all()
        log.info(
            "checkpoint %s published with %s of %s cosignatures",
            checkpoint.size,
            len(names),
            len(self._witnesses),
        )

    async def _ask(self, witness: _Witness, size: int, signed: str) -> str | None:
        """Submit the checkpoint to one witness; return its verified cosignature line."""
        assert self._session is not None
        try:
            for _ in range(2):  # once, and once more from the size a 409 names
                if witness.size > size:
                    log.warning(
                        "witness %s has cosigned size %s, past this log's %s: is it "
                        "following another log under this name?",
                        witness.url, witness.size, size,
                    )
                    witness.failed(self._clock())
                    return None
                proof = (
                    await self._run(
                        functools.partial(self._tiles.consistency_proof, witness.size, size)
                    )
                    if witness.size
                    else []
                )
                body = "".join(
                    line + "\n"
                    for line in [f"old {witness.size}"]
                    + [base64.b64encode(h).decode("ascii") for h in proof]
                ) + "\n" + signed
                async with self._session.post(
                    witness.url + "/add-checkpoint", data=body.encode("utf-8")
                ) as reply:
                    answer = (await reply.content.read(MAX_ANSWER_BYTES)).decode("utf-8", "replace")
                    status, content_type = reply.status, reply.content_type
                if status == 200:
                    if verify_cosignatures(signed + answer, [witness.verifier]):
                        witness.succeeded(size)
                        return answer if answer.endswith("\n") else answer + "\n"
                    log.warning("witness %s answered a cosignature that does not verify",
                                witness.url)
                    break
                if status == 409 and content_type == SIZE_CONTENT_TYPE:
                    text = answer.strip()
                    if text.isdigit() and int(text) != witness.size:
                        log.info("witness %s last cosigned size %s; resubmitting from there",
                                 witness.url, text)
                        witness.size = int(text)
                        continue
                log.warning(
                    "witness %s refused checkpoint %s: %s %s",
                    witness.url, size, status, answer.strip().splitlines()[:1],
                )
                break
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            log.warning("witness %s unreachable, will retry: %s", witness.url,
                        str(err) or type(err).__name__)
        witness.failed(self._clock())
        return None

