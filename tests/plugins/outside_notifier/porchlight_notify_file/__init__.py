# porchlight_notify_file/__init__.py: append each notification to a file, one JSON line each.
import asyncio
import json

from hub.hookspecs import hookimpl
from hub.notify import NotifyError


class FileNotifier:
    def __init__(self, hub, settings: dict) -> None:
        self.path = hub.data.root / settings["path"]

    async def send(self, n) -> None:
        line = json.dumps({"trigger": n.trigger, "title": n.title, "url": n.url}) + "\n"
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as err:
            raise NotifyError(f"cannot write {self.path.name}: {err.strerror}") from err

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)


@hookimpl
def porchlight_notifier_types():
    return {"file": FileNotifier}
