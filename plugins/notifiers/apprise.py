"""Built-in notifier `apprise`: every service Apprise opens (ntfy, Gotify, Matrix, email, ...).

One target lists Apprise URLs; each is sent the title, the text and the link, and the
snapshot as an attachment when the target may get it. Apprise is synchronous, so it runs in a
small thread pool of this target's own: a service that hangs holds none of the hub's threads.
A retry goes only to the services that failed the previous attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import apprise
from pydantic import BaseModel, ConfigDict, Field

from hub.config import NotifierEntry, SecretRef
from hub.hookspecs import hookimpl
from hub.notify import Notification, NotifyError

MAX_URLS = 32
# Notifications whose delivered services are remembered, so a retry skips them.
REMEMBERED = 64


class AppriseSettings(BaseModel):
    """Settings of an Apprise target."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # An Apprise URL, or a reference to one ({env = "NAME"} or {file = "path"}): URLs with
    # a token or password in them belong in a secret, not in config.toml.
    urls: list[Annotated[str, Field(max_length=4000)] | SecretRef] = Field(
        min_length=1, max_length=MAX_URLS)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0][:20] if "://" in url else "?"


class AppriseNotifier:
    """Send each notification to every Apprise URL of the target."""

    def __init__(self, hub, settings: dict) -> None:
        own = {k: v for k, v in settings.items() if k not in NotifierEntry.HUB_KEYS}
        parsed = AppriseSettings.model_validate(own)
        # Apprise's debug lines print the URLs it loaded and each payload: keep them out of
        # the hub's log even when it runs verbose (its warnings name only the host).
        logging.getLogger("apprise").setLevel(logging.WARNING)
        self.services: list[tuple[str, apprise.Apprise]] = []
        for index, url in enumerate(parsed.urls):
            if isinstance(url, SecretRef):
                url = url.resolve(hub.data.root)
            service = apprise.Apprise()
            # Never echo the URL: it may hold a token or a password.
            if not service.add(url):
                raise ValueError(f"urls[{index}]: Apprise does not recognise this URL "
                                 f"(scheme {_scheme(url)!r}); see Apprise's list of services")
            self.services.append((_scheme(url), service))
        self.executor = ThreadPoolExecutor(max_workers=min(len(self.services), 4))
        self._delivered: OrderedDict[str, set[int]] = OrderedDict()

    async def send(self, n: Notification) -> None:
        """Send to each service not yet reached; raise NotifyError naming the schemes that failed."""
        done = self._delivered.setdefault(n.id, set())
        self._delivered.move_to_end(n.id)
        while len(self._delivered) > REMEMBERED:
            self._delivered.popitem(last=False)
        loop = asyncio.get_running_loop()
        pending = [i for i in range(len(self.services)) if i not in done]
        results = await asyncio.gather(*(
            loop.run_in_executor(self.executor, self._notify, self.services[i][1], n)
            for i in pending), return_exceptions=True)
        failed = []
        for index, result in zip(pending, results, strict=True):
            if result is True:
                done.add(index)
            else:
                failed.append(self.services[index][0])
        if failed:
            raise NotifyError(f"{len(failed)} of {len(self.services)} Apprise services failed "
                              f"({', '.join(failed)})")
        self._delivered.pop(n.id, None)

    @staticmethod
    def _notify(service: apprise.Apprise, n: Notification) -> bool:
        attach = None
        if n.snapshot is not None:
            from apprise.attachment.memory import AttachMemory

            attach = apprise.AppriseAttachment()
            attach.add(AttachMemory(content=n.snapshot, name=f"{n.camera or 'snapshot'}.jpg",
                                    mimetype="image/jpeg"))
        body = f"{n.body}\n{n.url}" if n.body else n.url
        return bool(service.notify(title=n.title, body=body, attach=attach))

    async def close(self) -> None:
        """Stop the thread pool; a send still hanging in a service is left to its own timeout."""
        self.executor.shutdown(wait=False, cancel_futures=True)


@hookimpl
def porchlight_notifier_types():
    """Provide the `apprise` notifier."""
    return {"apprise": AppriseNotifier}
