"""The camera service at the hub's stop: a settings change that lands as the hub stops starts
no camera again (a restart racing the stop held the hub past its shutdown timeout in CI)."""

from __future__ import annotations

import os

from hub.cameras.service import CameraService
from hub.service import Hub


async def test_a_restart_asked_while_the_hub_stops_starts_nothing(hub_dir, cli):
    assert cli("camera", "add", "--data", hub_dir, "porch", "--synthetic")[0] == 0
    hub = Hub(hub_dir)
    try:
        async with CameraService(hub) as cameras:
            [(entry, recorder, _)] = cameras.running.values()
            assert entry.analysis
            # Turning analysis off needs a restart; the hub is stopping when the watcher sees it.
            assert cli("camera", "set", "--data", hub_dir, "porch", "--analysis", "off")[0] == 0
            config = hub.data.config
            os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
            cameras._closing.set()
            cameras.reconcile()
            # Not restarted: the same recorder runs until the service stops it.
            assert cameras.running["porch"][1] is recorder
            assert not recorder.stop_event.is_set()
        assert cameras.running == {}
        assert recorder.stop_event.is_set()
    finally:
        hub.close()
