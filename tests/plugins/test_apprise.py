"""The Apprise notifier against a real SMTP server on loopback (aiosmtpd), through mailto://."""

from __future__ import annotations

import asyncio
import email
from email import policy

import pytest
from aiosmtpd.smtp import SMTP

from hub.config import NotifierEntry
from hub.errors import ConfigError
from hub.notify.dispatch import NotifyService, RetryPolicy, build_notifier
from hub.service import Hub

FAST = RetryPolicy(attempts=4, backoff_s=0.2, max_backoff_s=5.0, timeout_s=20.0)


class Mailbox:
    """An SMTP handler that keeps each message; `refuse` DATA commands are answered 554 first."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.attempts = 0
        self.messages: list[email.message.EmailMessage] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.attempts += 1
        self.arrived.set()
        if self.attempts <= self.refuse:
            return "554 not now"
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    async def wait_for(self, attempts: int, timeout: float = 60.0) -> None:
        """Wait until this many DATA commands came (a generous limit for a busy machine)."""
        async with asyncio.timeout(timeout):
            while self.attempts < attempts:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def smtp():
    servers = []

    async def start(mailbox: Mailbox) -> str:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(mailbox, hostname="mail.test"),
                                          "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"mailto://127.0.0.1:{port}?from=hub@example.org&to=owner@example.org"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _configure(root, *tables: str) -> None:
    config = root / "config.toml"
    config.write_text(config.read_text()
                      + '\n[notify]\npublic_url = "https://hub.example.lan:8765"\n'
                      + "".join(tables))


def _apprise(name: str, urls: str, extra: str = "") -> str:
    return f'\n[[notifiers]]\ntype = "apprise"\nname = "{name}"\nurls = {urls}\n{extra}'


def _text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def test_a_mail_arrives_with_the_title_and_the_link(hub_dir, smtp, monkeypatch):
    mailbox = Mailbox()
    monkeypatch.setenv("MAIL_URL", await smtp(mailbox))
    _configure(hub_dir, _apprise("mail", '[{ env = "MAIL_URL" }]'))
    hub = Hub(hub_dir)
    try:
        async with NotifyService(hub, policy=FAST):
            hub.emit({"kind": "request", "id": "r42", "agency": "Metro PD",
                      "summary": "Metro PD asks for footage (case 9); approve or deny it"})
            await mailbox.wait_for(1)
    finally:
        hub.close()
    [message] = mailbox.messages
    assert message["Subject"] == "Footage request from Metro PD"
    assert message["To"] == "owner@example.org"
    assert _text(message).split() == [*"Metro PD asks for footage (case 9); approve or deny "
                                      "it".split(), "https://hub.example.lan:8765/requests/r42"]
    assert not list(message.iter_attachments())


async def test_the_snapshot_is_attached_only_for_a_lan_target(hub_dir, smtp):
    lan_box, internet_box = Mailbox(), Mailbox()
    _configure(hub_dir, _apprise("lan", f'["{await smtp(lan_box)}"]', "lan = true\n"),
               _apprise("internet", f'["{await smtp(internet_box)}"]'))
    hub = Hub(hub_dir)
    try:
        async with NotifyService(hub, policy=FAST):
            hub.emit({"kind": "motion", "camera": "yard", "snapshot": b"\xff\xd8\xffjpeg",
                      "summary": "motion on yard"})
            await lan_box.wait_for(1)
            await internet_box.wait_for(1)
    finally:
        hub.close()
    [attachment] = list(lan_box.messages[0].iter_attachments())
    assert attachment.get_content_type() == "image/jpeg"
    assert attachment.get_filename() == "yard.jpg"
    assert attachment.get_content() == b"\xff\xd8\xffjpeg"
    assert lan_box.messages[0]["Subject"] == "Motion on yard"
    assert not list(internet_box.messages[0].iter_attachments())


async def test_a_failing_service_is_retried_with_backoff_and_the_others_get_one_mail(
        hub_dir, smtp):
    refusing, fine = Mailbox(refuse=2), Mailbox()
    urls = f'["{await smtp(refusing)}", "{await smtp(fine)}"]'
    _configure(hub_dir, _apprise("both", urls))
    hub = Hub(hub_dir)
    try:
        async with NotifyService(hub, policy=FAST) as service:
            hub.emit({"kind": "fork", "gateway": "kid", "peer": "p",
                      "summary": "the gateway showed this hub and a LAN neighbour different logs"})
            await refusing.wait_for(3)
            while service.targets[0].sent < 1:
                await asyncio.sleep(0.05)
    finally:
        hub.close()
    # Counted at the receiver: refused twice, taken the third time; the service that took it
    # the first time was not sent it again.
    assert (refusing.attempts, len(refusing.messages)) == (3, 1)
    assert (fine.attempts, len(fine.messages)) == (1, 1)
    assert fine.messages[0]["Subject"] == "Fork alarm: the gateway showed two different logs"


def test_a_url_apprise_does_not_know_stops_the_start_without_echoing_it(hub_dir):
    from plugins.notifiers import apprise as plugin

    hub = Hub(hub_dir)
    try:
        entry = NotifierEntry.model_validate(
            {"type": "apprise", "name": "phone", "urls": ["nosuchservice://token-1234@host"]})
        with pytest.raises(ConfigError) as caught:
            build_notifier(hub, entry, {"apprise": plugin.AppriseNotifier})
        empty = NotifierEntry.model_validate({"type": "apprise", "name": "phone", "urls": []})
        with pytest.raises(ConfigError) as none:
            build_notifier(hub, empty, {"apprise": plugin.AppriseNotifier})
    finally:
        hub.close()
    assert str(caught.value) == ("notifiers.phone: urls[0]: Apprise does not recognise this URL "
                                 "(scheme 'nosuchservice'); see Apprise's list of services")
    assert "token-1234" not in str(caught.value)
    assert str(none.value) == "notifiers.phone: urls: List should have at least 1 item after " \
                              "validation, not 0"
