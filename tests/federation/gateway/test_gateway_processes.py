"""A gateway and hubs as separate processes on loopback: routing, latency, offline resume."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time

import h3

from federation.cells import cell_for, distance_m
from federation.gateway.operator import create_invite, init_gateway
from federation.gateway.store import GatewayStore
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    DB_FILE,
    no_leaked_tasks,
    no_leaked_threads,
    start_gateway_proc,
    start_hub_proc,
)

# Amsterdam, Dam square.
AUTHOR = (52.3731, 4.8926)
# How long the hub stays offline in the resume test; the scenario is 30 s, the logic
# does not depend on the length, so CI uses a short one.
OFFLINE_S = float(os.environ.get("PORCHLIGHT_TEST_OFFLINE_S", "3"))


def _east(lat: float, lon: float, metres: float) -> tuple[float, float]:
    return lat, lon + metres / (111_320 * math.cos(math.radians(lat)))


def _places() -> dict[str, tuple[float, float]]:
    author_cell = cell_for(*AUTHOR)
    ring = sorted(h3.grid_ring(author_cell, 1))
    places = {
        "author": AUTHOR,
        "same_cell": _east(*AUTHOR, 150),
        # Hubs in two of the six neighbouring cells, at those cells' centres.
        "neighbour_a": h3.cell_to_latlng(ring[0]),
        "neighbour_b": h3.cell_to_latlng(ring[3]),
        "far": _east(*AUTHOR, 5_000),
    }
    # The geometry the assertions rely on, checked rather than assumed.
    assert cell_for(*places["same_cell"]) == author_cell
    for name in ("neighbour_a", "neighbour_b"):
        assert h3.grid_distance(author_cell, cell_for(*places[name])) == 1
    assert h3.grid_distance(author_cell, cell_for(*places["far"])) >= 2
    assert 4_900 < distance_m(*AUTHOR, *places["far"]) < 5_100
    return places


async def test_alert_reaches_hubs_in_range_and_never_the_far_one(tmp_path):
    data = tmp_path / "gateway"
    init_gateway(data, name="Dam")
    gateway = await start_gateway_proc(data, tmp_path)
    hubs = {}
    try:
        places = _places()
        started = await asyncio.gather(
            *(
                start_hub_proc(
                    name, tmp_path / name, gateway.url, lat, lon, tmp_path, code=create_invite(data)
                )
                for name, (lat, lon) in places.items()
            )
        )
        hubs = dict(zip(places, started, strict=True))
        kids = {name: (await hub.wait_event("joined"))[0]["kid"] for name, hub in hubs.items()}

        await hubs["author"].send("post suspicious Someone is trying car doors on Damrak")
        (posted,) = await hubs["author"].wait_event("posted")
        in_range = ("same_cell", "neighbour_a", "neighbour_b")
        received = {
            name: (await hubs[name].wait_event("alert", timeout=10))[0] for name in in_range
        }

        latencies = []
        for alert in received.values():
            assert alert["id"] == posted["id"]
            assert alert["author"] == kids["author"]
            assert alert["seq"] == 1
            assert alert["text"] == "Someone is trying car doors on Damrak"
            latencies.append(alert["t"] - posted["t0"])
        print(
            "alert delivery latency (post -> verified at hub), ms: "
            + ", ".join(
                f"{name} {1000 * lat:.1f}" for name, lat in zip(in_range, latencies, strict=True)
            )
        )

        # The far hub's queue is empty at the source, and it saw nothing; nor did the author.
        with contextlib.closing(GatewayStore(data / DB_FILE)) as store:
            assert store.deliveries_after(kids["far"], 0, limit=10, now=time.time()) == []
            assert store.deliveries_after(kids["author"], 0, limit=10, now=time.time()) == []
            assert len(store.deliveries_after(kids["same_cell"], 0, limit=10, now=time.time())) == 1
        await asyncio.sleep(0.5)
        assert hubs["far"].of_kind("alert") == []
        assert hubs["author"].of_kind("alert") == []
    finally:
        for hub in hubs.values():
            await hub.stop()
        assert await gateway.proc.stop() == 0, gateway.proc.stderr()[-2000:]


async def test_offline_hub_gets_every_missed_alert_in_order_exactly_once(tmp_path):
    data = tmp_path / "gateway"
    init_gateway(data, name="Dam")
    gateway = await start_gateway_proc(data, tmp_path)
    author = hub = None
    neighbour = _east(*AUTHOR, 150)
    try:
        author = await start_hub_proc(
            "author", tmp_path / "author", gateway.url, *AUTHOR, tmp_path, code=create_invite(data)
        )
        hub = await start_hub_proc(
            "hub", tmp_path / "hub", gateway.url, *neighbour, tmp_path, code=create_invite(data)
        )

        async def post(text: str, count: int) -> str:
            await author.send(f"post safety {text}")
            return (await author.wait_event("posted", count))[-1]["id"]

        posted = [await post("alert 1 while online", 1)]
        first_run = await hub.wait_event("alert", 1)
        assert await hub.stop() == 0

        # Offline: alerts pile up in the hub's queue at the gateway.
        for n in range(2, 7):
            posted.append(await post(f"alert {n} while offline", n))
        await asyncio.sleep(OFFLINE_S)

        hub = await start_hub_proc("hub-again", tmp_path / "hub", gateway.url, *neighbour, tmp_path)
        second_run = await hub.wait_event("alert", 5, timeout=10)
        posted.append(await post("alert 7 after reconnecting", 7))
        second_run = await hub.wait_event("alert", 6, timeout=10)
        await asyncio.sleep(0.3)  # room for a duplicate to show up, if there were one
        second_run = hub.of_kind("alert")

        seen = first_run + second_run
        assert [a["seq"] for a in seen] == list(range(1, 8))
        assert [a["id"] for a in seen] == posted
        assert [a["text"] for a in second_run][:5] == [
            f"alert {n} while offline" for n in range(2, 7)
        ]
        assert (tmp_path / "hub" / "seq").read_text() == "7"
    finally:
        for proc in (author, hub):
            if proc is not None:
                await proc.stop()
        assert await gateway.proc.stop() == 0
