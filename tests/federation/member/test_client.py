"""The hub's gateway client: backoff, circuit breaker, pinning, re-registration, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import signal
import socket
import time

import pytest

from federation.cells import cell_for
from federation.delivery import (
    Backoff,
    CircuitBreaker,
    CircuitOpen,
    Delivery,
    DeliveryFailed,
    TransientError,
)
from federation.errors import FederationError, SignatureInvalid
from federation.gateway.operator import create_invite, init_gateway
from federation.http import GatewayKeyChanged, GatewayRejected, GatewayUnavailable
from federation.keys import fingerprint, generate_signing_key
from federation.member.client import (
    GatewayClient,
    Membership,
    alert_id,
    join_gateway,
    verify_relayed,
)
from federation.wire import StreamMessage
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    first_frame,
    no_leaked_tasks,
    no_leaked_threads,
    running_gateway,
    start_gateway_proc,
)

CELL = cell_for(52.3731, 4.8926)
NEXT_CELL = cell_for(52.3731, 4.92)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_with_jitter_and_is_capped():
    backoff = Backoff(base=0.5, factor=2, cap=8, rng=random.Random(1))
    for attempt in range(12):
        ceiling = min(8, 0.5 * 2**attempt)
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    with pytest.raises(ValueError):
        Backoff(base=0)


def test_circuit_breaker_opens_cools_down_and_tries_once():
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cool_down=60, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after() == 60
    clock.now += 60
    assert breaker.state == "half_open" and breaker.allow()
    breaker.record_failure()  # the trial failed: a whole new cool-down
    assert breaker.state == "open" and breaker.retry_after() == 60
    clock.now += 60
    breaker.record_success()
    assert breaker.state == "closed" and breaker.failures == 0


async def test_delivery_retries_transient_failures_only():
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)
        clock.now += delay

    delivery = Delivery(
        max_attempts=4,
        backoff=Backoff(base=1, cap=100, rng=random.Random(2)),
        threshold=10,
        cool_down=30,
        clock=clock,
        sleep=sleep,
    )
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("down", retry_after=5 if len(calls) == 2 else None)
        return "ok"

    assert await delivery.send("http://peer", flaky) == "ok"
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1 and slept[1] == 5  # Retry-After wins

    async def refused() -> str:
        calls.append(1)
        raise FederationError("bad request", reason="schema")

    with pytest.raises(FederationError, match="bad request"):
        await delivery.send("http://peer", refused)
    assert delivery.breaker("http://peer").state == "closed"

    async def down() -> str:
        raise TransientError("down")

    with pytest.raises(DeliveryFailed) as caught:
        await delivery.send("http://other", down)
    assert isinstance(caught.value.__cause__, TransientError)
    assert delivery.breaker("http://other").failures == 4


async def test_circuit_opens_for_an_unreachable_gateway():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = Delivery(
        max_attempts=2, threshold=3, cool_down=300, backoff=Backoff(base=0.01, cap=0.02)
    )
    async with GatewayClient(
        f"http://127.0.0.1:{port}",
        generate_signing_key(),
        gateway_kid=generate_signing_key().kid,
        delivery=delivery,
    ) as client:
        token = client.sign_alert("safety", "x", CELL)
        with pytest.raises(DeliveryFailed):
            await client.post_alert(token)
        with pytest.raises(CircuitOpen) as caught:  # third failure opens it mid-way
            await client.post_alert(token)
        assert caught.value.retry_after > 290
        with pytest.raises(GatewayUnavailable):
            await client.info()


async def test_join_pins_the_gateway_key_and_is_idempotent(tmp_path):
    async with running_gateway(tmp_path / "gw") as gateway:
        key = generate_signing_key()
        with pytest.raises(GatewayKeyChanged):
            await join_gateway(
                gateway.url,
                create_invite(gateway.data_dir),
                key,
                CELL,
                pin=fingerprint(generate_signing_key().kid),
            )
        wrong_url = gateway.url.replace("127.0.0.1", "localhost")
        with pytest.raises(GatewayRejected) as caught:
            await join_gateway(wrong_url, create_invite(gateway.data_dir), key, CELL)
        assert caught.value.reason == "wrong_url"
        membership = await join_gateway(
            gateway.url, create_invite(gateway.data_dir), key, CELL, pin=fingerprint(gateway.kid)
        )
        assert membership.gateway_kid == gateway.kid and membership.cell == CELL
        assert Membership.from_dict(membership.to_dict()) == membership
        # The answer was "lost" and the hub joins again: same membership, no error.
        again = await join_gateway(gateway.url, create_invite(gateway.data_dir), key, NEXT_CELL)
        assert again.cell == NEXT_CELL and again.hub_kid == key.kid
        # A pinned client notices a re-keyed gateway.
        async with GatewayClient(gateway.url, key, gateway_kid=generate_signing_key().kid) as c:
            with pytest.raises(GatewayKeyChanged):
                await c.info()
        with pytest.raises(GatewayKeyChanged):
            Membership.from_dict({**membership.to_dict(), "gateway_kid": key.kid})


async def test_register_moves_the_hub_and_rotates_its_hop_key(tmp_path):
    async with running_gateway(tmp_path / "gw") as gateway:
        key, membership = await gateway.member(cell=CELL)
        new_hop = generate_signing_key()
        async with GatewayClient.for_membership(membership, key) as client:
            answer = await client.register(NEXT_CELL, new_hop_key=new_hop)
            assert (answer.member.cell, answer.member.hop_kid) == (NEXT_CELL, new_hop.kid)
            assert (await client.register(NEXT_CELL)).member.hop_kid == new_hop.kid
        async with GatewayClient.for_membership(membership, key) as old:
            with pytest.raises(GatewayRejected) as caught:
                await old.register(CELL)
            assert caught.value.reason == "hop_unknown_key"
        with pytest.raises(GatewayKeyChanged) as caught:
            GatewayClient.for_membership(membership, key, hop_key=new_hop)
        assert caught.value.reason == "wrong_key"
        # The hub stores what the gateway confirmed, and carries on with the new hop key.
        moved = dataclasses.replace(
            membership, cell=answer.member.cell, hop_kid=answer.member.hop_kid
        )
        async with GatewayClient.for_membership(moved, key, hop_key=new_hop) as client:
            assert (await client.register(CELL)).member.cell == CELL


async def test_relayed_alert_verifies_end_to_end_and_tampering_shows(tmp_path):
    async with running_gateway(tmp_path / "gw") as gateway:
        author, author_m = await gateway.member(cell=CELL)
        reader, reader_m = await gateway.member(cell=CELL)
        async with (
            GatewayClient.for_membership(author_m, author) as a,
            GatewayClient.for_membership(reader_m, reader) as r,
        ):
            token = a.sign_alert("lost_pet", "Grey cat, answers to Miso", CELL)
            assert await a.post_alert(token) == alert_id(token)
            message = await first_frame(r)
        verified = verify_relayed(message, gateway_kid=gateway.kid, now=time.time())
        assert verified.kid == author.kid and verified.claims["category"] == "lost_pet"
        header, payload, signature = message.jws.split(".")
        forged = StreamMessage(
            message.seq,
            message.kind,
            message.id,
            f"{header}.{payload}.{'B' if signature[0] != 'B' else 'C'}{signature[1:]}",
            message.jwk,
        )
        with pytest.raises(SignatureInvalid):
            verify_relayed(forged, gateway_kid=gateway.kid, now=time.time())


async def test_stream_survives_a_gateway_crash_and_restart(tmp_path):
    data = tmp_path / "gw"
    init_gateway(data, name="Crashy")
    gateway = await start_gateway_proc(data, tmp_path)
    author, reader = generate_signing_key(), generate_signing_key()
    author_m = await join_gateway(gateway.url, create_invite(data), author, CELL)
    reader_m = await join_gateway(gateway.url, create_invite(data), reader, CELL)
    delivery = Delivery(backoff=Backoff(base=0.05, cap=0.4), threshold=1000)
    states: list[str] = []
    received: list[StreamMessage] = []
    acked: list[int] = []
    got = asyncio.Event()

    async with (
        GatewayClient.for_membership(author_m, author) as a,
        GatewayClient.for_membership(reader_m, reader, delivery=delivery) as r,
    ):

        async def consume() -> None:
            async for message in r.stream(0, acked.append, on_state=states.append):
                received.append(message)
                got.set()

        task = asyncio.create_task(consume())
        try:
            first = await a.post_alert(a.sign_alert("safety", "before the crash", CELL))
            await asyncio.wait_for(got.wait(), 10)
            # An accepted alert survives kill -9: it was committed before the 202.
            second = await a.post_alert(a.sign_alert("safety", "accepted, then crash", CELL))
            await gateway.proc.stop(signal.SIGKILL)
            got.clear()
            gateway = await start_gateway_proc(data, tmp_path, port=gateway.port, name="gateway2")
            third = await a.post_alert(a.sign_alert("safety", "after the restart", CELL))
            for _ in range(100):
                if len(received) >= 3:
                    break
                await asyncio.sleep(0.1)
            assert [m.id for m in received] == [first, second, third]
            assert [m.seq for m in received] == [1, 2, 3]
            assert states.count("connected") >= 2 and "disconnected" in states
            assert acked[:2] == [1, 2]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await gateway.proc.stop()


async def test_blocked_hub_stream_ends_with_a_clear_reason(tmp_path):
    from federation.gateway.operator import block_hub

    async with running_gateway(tmp_path / "gw", check_interval_s=0.1) as gateway:
        key, membership = await gateway.member(cell=CELL)
        async with GatewayClient.for_membership(membership, key) as client:
            connected = asyncio.Event()

            async def consume() -> None:
                async for _ in client.stream(
                    0, lambda seq: None, on_state=lambda s: s == "connected" and connected.set()
                ):
                    pass

            task = asyncio.create_task(consume())
            await asyncio.wait_for(connected.wait(), 10)
            block_hub(gateway.data_dir, key.kid)
            with pytest.raises(GatewayRejected) as caught:
                await asyncio.wait_for(task, 10)
            assert caught.value.reason == "blocked"
            # Reconnecting is refused before the upgrade, with the reason in a header.
            with pytest.raises(GatewayRejected) as caught:
                await first_frame(client)
            assert (caught.value.reason, caught.value.status) == ("blocked", 403)
