"""Deliver notifications to the configured targets, each in a task of its own.

Events reach the dispatcher through `Hub.listeners`, from any thread (camera threads emit
motion), and are handed to the event loop at once: the event's source never waits for a
target. Each target has its own queue and worker, so a slow or dead target delays only
itself; a failed send is tried again with exponential backoff, a capped number of times, and a
failure streak is logged once, without the target's URL or secrets.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from hub.config import NotifierEntry, NotifySection
from hub.errors import ConfigError, PorchlightError
from hub.notify import prefs
from hub.notify.notification import Notification, NotifyError, absolute
from hub.notify.triggers import Triggers
from hub.people import OWNER
from hub.plugins import collect_types

log = logging.getLogger(__name__)
# Notifications waiting for one target; beyond this (a target down for long while events
# pour in) new ones are dropped for that target only.
QUEUE_MAX = 100
CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed send is tried again."""

    attempts: int = 5
    backoff_s: float = 2.0
    max_backoff_s: float = 300.0
    timeout_s: float = 15.0

    @classmethod
    def from_config(cls, section: NotifySection) -> RetryPolicy:
        """Return the policy the [notify] section sets."""
        return cls(section.attempts, section.backoff_s, section.max_backoff_s, section.timeout_s)

    def delay(self, failures: int) -> float:
        """Return the wait after the given number of failed attempts (1, 2, ...)."""
        return min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s)


@dataclass(eq=False)
class Target:
    """One configured notifier and its own queue, worker and failure streak."""

    entry: NotifierEntry
    notifier: object
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    task: asyncio.Task | None = None
    failing: bool = False
    dropping: bool = False
    sent: int = 0
    given_up: int = 0


def build_notifier(hub, entry: NotifierEntry, types: dict) -> object:
    """Build the plugin object of one [[notifiers]] entry; raise ConfigError naming it."""
    cls = types.get(entry.type)
    if cls is None:
        known = ", ".join(sorted(types)) or "none"
        raise ConfigError(f"notifiers.{entry.name}: no notifier type {entry.type!r} "
                          f"(installed: {known})")
    try:
        return cls(hub, entry.model_dump())
    except ValidationError as err:
        from hub.config import describe

        raise ConfigError(describe(err, f"notifiers.{entry.name}")) from err
    except (ValueError, PorchlightError) as err:
        raise ConfigError(f"notifiers.{entry.name}: {err}") from err


def failure_reason(err: BaseException) -> str:
    """Say why a send failed without echoing URLs or secrets a library put in its message."""
    if isinstance(err, NotifyError):
        return str(err)
    if isinstance(err, TimeoutError):
        return "timed out"
    return type(err).__name__


class NotifyService:
    """Turn the hub's events into notifications and deliver them to every configured target."""

    def __init__(self, hub, *, policy: RetryPolicy | None = None) -> None:
        self.hub = hub
        section = hub.config.notify
        self.policy = policy or RetryPolicy.from_config(section)
        self.triggers = Triggers(section.motion_cooldown_s, hub.clock)
        self.targets: list[Target] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False

    async def __aenter__(self) -> NotifyService:
        self.loop = asyncio.get_running_loop()
        entries = self.hub.config.notifiers
        if entries:
            types = collect_types(self.hub.pm.hook.porchlight_notifier_types(), "notifier")
            for entry in entries:
                target = Target(entry, build_notifier(self.hub, entry, types))
                self.targets.append(target)
                if prefs.role_of(self.hub, entry.person) is None:
                    log.warning("notifier %s: no person %r on this hub; it gets nothing until "
                                "one is added", entry.name, entry.person)
        for target in self.targets:
            target.task = asyncio.create_task(self._work(target),
                                              name=f"notifier-{target.entry.name}")
        self.hub.listeners.append(self.listen)
        return self

    async def __aexit__(self, *exc) -> None:
        self.stopping = True
        if self.listen in self.hub.listeners:
            self.hub.listeners.remove(self.listen)
        tasks = [t.task for t in self.targets if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for target in self.targets:
            close = getattr(target.notifier, "close", None)
            if close is None:
                continue
            try:
                await asyncio.wait_for(close(), CLOSE_TIMEOUT_S)
            except Exception as err:  # one target's close must not keep the others open
                log.warning("notifier %s: close failed (%s)", target.entry.name,
                            failure_reason(err))

    def listen(self, event: dict) -> None:
        """Take one hub event, from any thread, without waiting for any target."""
        try:
            self.loop.call_soon_threadsafe(self.on_event, event)
        except RuntimeError:  # the loop has closed: the hub is stopping
            pass

    def on_event(self, event: dict) -> None:
        """Make the event's notification and queue it for each target that wants it."""
        try:
            notification = self.triggers.notification(event)
        except Exception:  # a malformed event must not stop notifications for good
            log.exception("could not make a notification of a %s event", event.get("kind"))
            return
        if notification is None:
            return
        for target in self.targets:
            if self.wants(target.entry, notification):
                self._offer(target, self.for_target(target.entry, notification))

    def wants(self, entry: NotifierEntry, n: Notification) -> bool:
        """Say whether this target's person should hear of this notification."""
        if entry.triggers is not None and n.trigger not in entry.triggers:
            return False
        role = prefs.role_of(self.hub, entry.person)
        if role is None or not prefs.is_on(self.hub.db, entry.person, role, n.trigger):
            return False
        if n.camera is not None and role != OWNER:
            person = self.hub.people.get(entry.person)
            return person is not None and person.sees(n.camera)
        return True

    def for_target(self, entry: NotifierEntry, n: Notification) -> Notification:
        """Return the notification as this target may get it: snapshot only where allowed."""
        allowed = entry.lan or (n.camera is not None and n.camera in entry.snapshots)
        return replace(n, snapshot=n.snapshot if allowed else None,
                       url=absolute(n.link, self.hub.config.notify.public_url))

    def _offer(self, target: Target, n: Notification) -> None:
        try:
            target.queue.put_nowait(n)
            target.dropping = False
        except asyncio.QueueFull:
            if not target.dropping:
                log.warning("notifier %s: %d notifications waiting; dropping new ones until it "
                            "catches up", target.entry.name, QUEUE_MAX)
            target.dropping = True

    async def _work(self, target: Target) -> None:
        while not self.stopping:
            n = await target.queue.get()
            await self.deliver(target, n)

    async def deliver(self, target: Target, n: Notification) -> bool:
        """Send one notification to one target, retrying with backoff; say if it arrived."""
        name = target.entry.name
        for attempt in range(1, self.policy.attempts + 1):
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                # that meets a finished send, and the worker would outlive the service.
                async with asyncio.timeout(self.policy.timeout_s):
                    await target.notifier.send(n)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not target.failing:
                    log.warning("notifier %s: sending failed (%s); trying again with backoff",
                                name, failure_reason(err))
                    target.failing = True
                if attempt == self.policy.attempts:
                    target.given_up += 1
                    log.warning("notifier %s: gave up on a %s notification after %d attempts",
                                name, n.trigger, attempt)
                    return False
                await asyncio.sleep(self.policy.delay(attempt))
            else:
                if target.failing:
                    log.info("notifier %s: delivering again", name)
                    target.failing = False
                target.sent += 1
                return True
        return False
