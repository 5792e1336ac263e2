"""Built-in notifier `webhook`: a JSON POST signed with HMAC-SHA256 under the owner's secret.

The exact format (docs/integrations.md):
- body: UTF-8 JSON, {"id", "trigger", "title", "body", "link", "url", "camera", "hub",
  "sent", "event"} and, only for a target allowed to get the camera's pictures,
  "snapshot": the JPEG in standard base64;
- `X-Porchlight-Timestamp`: the sending time, in whole Unix seconds;
- `X-Porchlight-Signature`: `sha256=` and the lower-case hex HMAC-SHA256, under the secret's
  UTF-8 bytes, of the timestamp, a full stop, and the raw body: `f"{timestamp}.".encode() + body`.
A receiver recomputes it over the bytes it received, compares in constant time, and refuses a
timestamp too far from its clock (a replayed request); `id` is the same on every retry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Annotated
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.config import NotifierEntry, SecretRef
from hub.hookspecs import hookimpl
from hub.notify import Notification, NotifyError

SIGNATURE_HEADER = "X-Porchlight-Signature"
TIMESTAMP_HEADER = "X-Porchlight-Timestamp"
# A receiver that checks signatures should refuse timestamps further than this from now.
DEFAULT_TOLERANCE_S = 300
MIN_SECRET_BYTES = 16


class WebhookSettings(BaseModel):
    """Settings of a webhook target."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url: Annotated[str, Field(max_length=2000)]
    # The HMAC key, by reference: {env = "NAME"} or {file = "path"} (relative to the data dir).
    secret: SecretRef

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("use an http:// or https:// URL")
        return url


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Return the signature header's value for a body sent at `timestamp`."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *, now: float,
           tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """Say whether a received webhook is signed under `secret` and recent (for receivers)."""
    # Whole ASCII seconds only: int() would also take "+1_7e9"-like forms and other digits.
    if not (0 < len(timestamp) <= 12 and timestamp.isascii() and timestamp.isdigit()):
        return False
    sent = int(timestamp)
    if abs(now - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)


def payload(n: Notification, hub_name: str, sent: int) -> bytes:
    """Return the JSON body of a notification."""
    data = {"id": n.id, "trigger": n.trigger, "title": n.title, "body": n.body,
            "link": n.link, "url": n.url, "camera": n.camera, "hub": hub_name,
            "sent": sent, "event": n.event}
    if n.snapshot is not None:
        data["snapshot"] = base64.b64encode(n.snapshot).decode("ascii")
    return json.dumps(data, separators=(",", ":"), default=str).encode("utf-8")


class WebhookNotifier:
    """POST each notification as signed JSON to one URL."""

    def __init__(self, hub, settings: dict) -> None:
        own = {k: v for k, v in settings.items() if k not in NotifierEntry.HUB_KEYS}
        self.settings = WebhookSettings.model_validate(own)
        secret = self.settings.secret.resolve(hub.data.root).encode("utf-8")
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret: use at least {MIN_SECRET_BYTES} bytes "
                             "(for example: openssl rand -hex 32)")
        self._secret = secret
        self.hub_name = hub.config.hub.name
        self.clock = hub.clock
        self._session: aiohttp.ClientSession | None = None

    async def send(self, n: Notification) -> None:
        """POST the notification; raise NotifyError unless the receiver answers 2xx."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        sent = int(self.clock().timestamp())
        body = payload(n, self.hub_name, sent)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(sent),
                   SIGNATURE_HEADER: sign(self._secret, sent, body),
                   "User-Agent": "porchlight-webhook"}
        try:
            # No redirects: a signed body goes to the URL the owner wrote, nowhere else.
            async with self._session.post(self.settings.url, data=body, headers=headers,
                                          allow_redirects=False) as answer:
                if not 200 <= answer.status < 300:
                    raise NotifyError(f"the receiver answered HTTP {answer.status}")
        except aiohttp.ClientConnectionError as err:
            # The error's text names the URL, which may carry a token: say only what failed.
            raise NotifyError(f"cannot reach the receiver ({type(err).__name__})") from err

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


@hookimpl
def porchlight_notifier_types():
    """Provide the `webhook` notifier."""
    return {"webhook": WebhookNotifier}
