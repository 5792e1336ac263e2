"""Settings, for owners: download a backup of the hub (`porchlight backup`), sealed to the
household key, so no passphrase is asked and only the household passphrase opens it.

The archive is written by `hub.backup.take` into the data dir's own downloads folder (age
ciphertext only: the backup file's outer tar header is written last, by seeking back, so it
cannot be made straight into a socket), streamed to the browser with its length known, and
removed as soon as the response ends, however it ends. One backup at a time.

While the backup is taken (minutes with footage on a Pi, before the download can start), the
page's script polls its progress: the form carries a ticket the script made, and
`GET /settings/backup/progress?ticket=T` answers that backup's bytes done and total.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import web

from hub.backup.archive import BackupError
from hub.backup.take import take_for_download
from hub.timeutil import utcnow
from hub.web.ui import HUB, owner_only, read_form

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TICKET = re.compile(r"^[A-Za-z0-9-]{8,64}$")


@dataclass
class BackupProgress:
    """Where the latest backup is, for the page's poll (plain counts, no path, no secret)."""

    ticket: str = ""
    state: str = "idle"  # taking, sending, sent, failed
    done: int = 0
    total: int = 0
    error: str = ""

    def as_json(self) -> dict:
        """Return what the poll answers."""
        return asdict(self)


BUSY = web.AppKey("backup_busy", asyncio.Lock)
PROGRESS = web.AppKey("backup_progress", BackupProgress)


def download_name(hub_name: str, when) -> str:
    """Return the file name a downloaded backup gets: porchlight-backup-HUB-YYYYMMDD-HHMM.tar."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in hub_name)[:64] or "hub"
    return f"porchlight-backup-{safe}-{when.strftime('%Y%m%d-%H%M')}.tar"


@owner_only
async def download_backup(request: web.Request) -> web.StreamResponse:
    """Take a backup sealed to the household and stream it to the owner's browser."""
    hub = request.app[HUB]
    form = await read_form(request)
    with_footage = form.get("with_footage") == "yes"
    ticket = form.get("ticket", "")
    busy = request.app[BUSY]
    if busy.locked():
        raise web.HTTPConflict(text="a backup is already being taken; wait for it to finish")
    async with busy:
        progress = BackupProgress(ticket if TICKET.match(ticket) else "", "taking")
        request.app[PROGRESS] = progress

        def report(done: int, total: int) -> None:
            progress.done, progress.total = done, total  # read by the poll: plain ints

        loop = asyncio.get_running_loop()
        taking = loop.run_in_executor(None, lambda: take_for_download(
            hub.data.root, with_footage=with_footage, on_progress=report))
        try:
            summary = await asyncio.shield(taking)
        except asyncio.CancelledError:
            # The browser went away: the backup still finishes in its thread; remove it then.
            taking.add_done_callback(_remove_result)
            progress.state, progress.error = "failed", "the browser stopped waiting"
            raise
        except BackupError as err:
            log.warning("web: backup failed: %s", err)
            progress.state, progress.error = "failed", str(err)
            raise web.HTTPInternalServerError(text=f"the backup failed: {err}") from None
        progress.state = "sending"
        try:
            response = await _stream(request, summary.path, download_name(hub.config.hub.name,
                                                                           utcnow()))
            progress.state = "sent"
            return response
        finally:
            summary.path.unlink(missing_ok=True)
            if progress.state != "sent":
                progress.state, progress.error = "failed", "the download was cut short"


@owner_only
async def backup_progress(request: web.Request) -> web.Response:
    """Answer the progress of the backup the page's ticket names (waiting until it starts)."""
    progress = request.app[PROGRESS]
    ticket = request.query.get("ticket", "")
    answer = progress.as_json() if ticket and ticket == progress.ticket else \
        BackupProgress(ticket[:64], "waiting").as_json()
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def _stream(request: web.Request, path: Path, name: str) -> web.StreamResponse:
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        response = web.StreamResponse(headers={
            "Content-Type": "application/x-tar",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(path.stat().st_size),
            "Cache-Control": "no-store"})
        await response.prepare(request)
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        handle.close()


def _remove_result(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().path.unlink(missing_ok=True)


def setup(app: web.Application) -> None:
    """Add the backup download."""
    app[BUSY] = asyncio.Lock()
    app[PROGRESS] = BackupProgress()
    app.router.add_post("/settings/backup", download_backup)
    app.router.add_get("/settings/backup/progress", backup_progress)
