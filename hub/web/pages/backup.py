"""Settings, for owners: download a backup of the hub (`porchlight backup`), sealed to the
household key, so no passphrase is asked and only the household passphrase opens it.

The archive is written by `hub.backup.take` into the data dir's own downloads folder (age
ciphertext only: the backup file's outer tar header is written last, by seeking back, so it
cannot be made straight into a socket), streamed to the browser with its length known, and
removed as soon as the response ends, however it ends. One backup at a time.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from hub.backup.archive import BackupError
from hub.backup.take import take_for_download
from hub.timeutil import utcnow
from hub.web.ui import HUB, owner_only, read_form

log = logging.getLogger(__name__)

BUSY = web.AppKey("backup_busy", asyncio.Lock)
CHUNK = 1 << 20


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
    busy = request.app[BUSY]
    if busy.locked():
        raise web.HTTPConflict(text="a backup is already being taken; wait for it to finish")
    async with busy:
        loop = asyncio.get_running_loop()
        taking = loop.run_in_executor(None, lambda: take_for_download(
            hub.data.root, with_footage=with_footage))
        try:
            summary = await asyncio.shield(taking)
        except asyncio.CancelledError:
            # The browser went away: the backup still finishes in its thread; remove it then.
            taking.add_done_callback(_remove_result)
            raise
        except BackupError as err:
            log.warning("web: backup failed: %s", err)
            raise web.HTTPInternalServerError(text=f"the backup failed: {err}") from None
        try:
            return await _stream(request, summary.path, download_name(hub.config.hub.name,
                                                                       utcnow()))
        finally:
            summary.path.unlink(missing_ok=True)


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
    app.router.add_post("/settings/backup", download_backup)
