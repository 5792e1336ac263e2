"""A hub's witness policy, with real processes: a gateway asks one witness to cosign; a hub that
trusts that witness (k = 1) keeps the agency's request for its owner, a hub that requires
another witness drops it, saying why, and keeps nothing else of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from federation.witness.operator import init_witness
from tests.federation.witness_fixtures import running_witness
from tests.hub.neighbourhood.elm_street import CENTRE, all_requests, elm_street
from tests.hub.neighbourhood.test_neighbourhood import (
    NEAR_A,
    NEAR_B,
    Running,
    _porchlight,
    _wait_for,
    make_hub,  # noqa: F401  (fixture)
)


def _trust(hub: Path, keys: list[str], k: int) -> None:
    config = hub / "config.toml"
    config.write_text(config.read_text() + f"\n[witnesses]\nkeys = {json.dumps(keys)}\nmin = {k}\n")


def test_a_hub_drops_a_request_its_trusted_witnesses_did_not_cosign(
    tmp_path, make_hub, clip25  # noqa: F811
):
    authority, agency, gw, authority_fp = elm_street(tmp_path)
    # A witness the gateway never asks: the strict hub requires it.
    absent = init_witness(tmp_path / "absent-witness", "witness.example/absent")
    with running_witness(tmp_path / "witness", "witness.example/maple") as witness:
        witness.follow_gateway_dir(gw)
        with open(gw / "gateway.toml", "a") as settings:
            settings.write(f'\n[[witnesses]]\nurl = "{witness.url}"\nvkey = "{witness.vkey}"\n')
        gateway = Running("gateway", "run", "--data", gw, "--listen", "127.0.0.1:0")
        running = []
        try:
            url = gateway.ready.split(" on ", 1)[1].split(" as ")[0]
            _porchlight("registry", "publish", "--data", authority, "--gateway", url)
            hubs = {"trusting": make_hub("trusting", NEAR_A), "strict": make_hub("strict", NEAR_B)}
            start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
            # Footage for the trusting hub only: the strict one drops the request before it
            # would look for footage.
            _porchlight("footage", "import", "--data", hubs["trusting"], "--camera", "porch",
                        "--start", (start + timedelta(minutes=10)).isoformat(), clip25)
            for hub in hubs.values():
                code = _porchlight("gateway", "invite", "--data", gw).stdout.strip()
                joined = _porchlight("join", "--data", hub, url, code,
                                     "--registry-key", authority_fp).stdout
                assert "agency requests need no witness cosignatures yet" in joined
            _trust(hubs["trusting"], [witness.vkey], 1)
            _trust(hubs["strict"], [witness.vkey, absent], 2)
            running = [Running("run", "--data", h, "--listen", "127.0.0.1:0")
                       for h in hubs.values()]
            out = _porchlight("agency", "request", "--data", agency, "--gateway", url,
                              "--case", "2026-PD9-0413", "--reason", "Bicycle theft",
                              "--from", start.isoformat(),
                              "--to", (start + timedelta(minutes=30)).isoformat(),
                              "--lat", str(CENTRE[0]), "--lon", str(CENTRE[1]),
                              "--radius-m", "300")
            request_id = out.stdout.strip().splitlines()[-1]

            [kept] = _wait_for(lambda: all_requests(hubs["trusting"]))
            assert (kept["id"], kept["status"]) == (request_id, "pending"), kept
            [dropped] = _wait_for(lambda: all_requests(hubs["strict"]))
            assert (dropped["id"], dropped["status"]) == (request_id, "dropped")
            assert dropped["detail"] == (
                "the log checkpoint is cosigned by 1 of the 2 trusted witnesses this hub "
                "requires (witness.example/maple); without them the gateway could be showing "
                "this hub a forked log")
            # Nothing of it is shown to the owner: `requests list` without --all is empty.
            listed = _porchlight("requests", "list", "--data", hubs["strict"], "--json").stdout
            assert json.loads(listed) == {"fork_alarm": None, "requests": []}
        finally:
            for process in running:
                process.stop()
            gateway.stop()
