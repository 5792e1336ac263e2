"""Notifications: hub events turned into short messages for the household's targets.

`triggers.py` makes a `Notification` of a hub event, `prefs.py` keeps each person's switches,
`dispatch.py` delivers to the configured `[[notifiers]]` through the notifier plugins
(`porchlight_notifier_types`). A plugin class is built as `cls(hub, settings)` and has
`async def send(self, n: Notification) -> None` (raising on failure) and optionally
`async def close(self) -> None`.
May import the hub's shared root modules, `vault` and `cameras`; never `neighbourhood`, `web`
or `cli`, and no plugin by name.
"""

from hub.notify.notification import Notification, NotifyError

__all__ = ["Notification", "NotifyError"]
