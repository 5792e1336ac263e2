"""Hubs as witnesses, with real processes: a hub witnesses its gateway's log on its LAN server
(C2SP tlog-witness); the gateway that lists it gets its cosignatures; the hub refuses an
inconsistent checkpoint with 409 and the size it knows, storing nothing. Its LAN neighbour
learns its witness key over the LAN, `join` sets k = 1, and the neighbour keeps an agency
request that only the LAN witness cosigned."""

from __future__ import annotations

import base64
import json
import re
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from federation.keys import load_private_key
from federation.neighbourhood_log import checkpoint_signer
from federation.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from federation.tlog.cosignature import CosignatureVerifier, verify_cosignatures
from hub.config import parse_config
from tests.hub.neighbourhood.elm_street import CENTRE, all_requests, elm_street
from tests.hub.neighbourhood.test_neighbourhood import (
    NEAR_A,
    NEAR_B,
    Running,
    _porchlight,
    _wait_for,
    make_hub,  # noqa: F401  (fixture)
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _on_lan(hub: Path, port: int) -> None:
    config = hub / "config.toml"
    config.write_text(config.read_text().replace(
        'listen = "127.0.0.1:0"\ninterfaces', f'listen = "127.0.0.1:{port}"\ninterfaces')
        .replace('interfaces = ["127.0.0.1"]\n',
                 'interfaces = ["127.0.0.1"]\ngossip_interval_s = 0.5\n'))



def _get(url: str) -> str:
    with urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def _post(url: str, body: str) -> tuple[int, str, str]:
    request = Request(url, data=body.encode(), method="POST")
    try:
        with urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode(), reply.headers.get_content_type()
    except HTTPError as err:  # an answer with a status other than 2xx
        return err.code, err.read().decode(), err.headers.get_content_type()


def _cosigners(checkpoint: str, vkey: str) -> list[str]:
    return [c.witness for c in verify_cosignatures(checkpoint,
                                                   [CosignatureVerifier.from_string(vkey)])]


def _witness_record(hub: Path) -> dict | None:
    with sqlite3.connect(hub / "porchlight.db") as db:
        row = db.execute("select value from federation_state where key = 'witness_log'").fetchone()
    return json.loads(row[0]) if row else None


def test_a_hub_witnesses_its_gateway_and_its_lan_neighbour_counts_it(
    tmp_path, make_hub, clip25  # noqa: F811
):
    authority, agency, gw, authority_fp = elm_street(tmp_path)
    listen = f"127.0.0.1:{_free_port()}"
    gateway = Running("gateway", "run", "--data", gw, "--listen", listen)
    running = []
    try:
        url = gateway.ready.split(" on ", 1)[1].split(" as ")[0]
        _porchlight("registry", "publish", "--data", authority, "--gateway", url)

        # Maple joins (no witness trusted yet: k stays 0) and becomes a witness.
        maple = make_hub("maple", NEAR_B, lan=True)
        maple_port = _free_port()
        _on_lan(maple, maple_port)
        code = _porchlight("gateway", "invite", "--data", gw).stdout.strip()
        joined = _porchlight("join", "--data", maple, url, code, "--registry-key",
                             authority_fp).stdout
        assert "agency requests need no witness cosignatures yet" in joined
        enabled = _porchlight("witness", "enable", "--data", maple).stdout
        vkey = re.search(r"^witness key: (\S+)$", enabled, re.M).group(1)
        lines = f'[[witnesses]]\nurl = "http://127.0.0.1:{maple_port}"\nvkey = "{vkey}"\n'
        assert lines in enabled
        name = CosignatureVerifier.from_string(vkey).name
        assert name.startswith("porchlight-hub-witness/")
        assert parse_config((maple / "config.toml").read_text()).lan.witness is True

        # The gateway's operator adds the lines; the gateway asks maple from its next start.
        gateway.stop()
        with open(gw / "gateway.toml", "a") as settings:
            settings.write("\n" + lines)
        running.append(Running("run", "--data", maple, "--listen", "127.0.0.1:0"))
        gateway = Running("gateway", "run", "--data", gw, "--listen", listen)
        served = _wait_for(lambda: (lambda c: c if _cosigners(c, vkey) else None)(
            _get(url + "/checkpoint"))) or _get(url + "/checkpoint")
        assert _cosigners(served, vkey) == [name], served
        gateway_key = load_private_key(gw / "gateway.key")
        signer = checkpoint_signer(gateway_key)
        honest = open_checkpoint(served, signer.verifier())
        record = _witness_record(maple)
        assert (record["size"], record["root_hash"]) == (
            honest.size, base64.b64encode(honest.root_hash).decode())

        # A checkpoint of the same size with another root (a fork) is refused with 409 and the
        # size maple cosigned; maple's memory is unchanged.
        forked = sign_checkpoint(Checkpoint(signer.name, honest.size, b"\x07" * 32), signer)
        assert _post(f"http://127.0.0.1:{maple_port}/add-checkpoint",
                     f"old {honest.size}\n\n{forked}") == (
            409, f"{honest.size}\n", "text/x.tlog.size")
        assert _witness_record(maple) == record

        # Elm joins on the same LAN: it pins maple's witness key (served signed by maple's hub
        # key) and, since the gateway's checkpoint carries maple's cosignature, join sets k = 1.
        elm = make_hub("elm", NEAR_A, lan=True)
        _on_lan(elm, _free_port())
        start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
        _porchlight("footage", "import", "--data", elm, "--camera", "porch",
                    "--start", (start + timedelta(minutes=10)).isoformat(), clip25)
        code = _porchlight("gateway", "invite", "--data", gw).stdout.strip()
        joined = _porchlight("join", "--data", elm, url, code, "--registry-key",
                             authority_fp).stdout
        assert (f"agency requests need cosignatures by 1 of the 1 witnesses this hub trusts "
                f"(its own [witnesses] keys and its LAN neighbours'); the gateway's checkpoint "
                f"is cosigned by {name}") in joined, joined
        config = parse_config((elm / "config.toml").read_text())
        assert (config.witnesses.min, config.witnesses.keys) == (1, [])

        # An agency request: elm keeps it for its owner, cosigned by its LAN neighbour only.
        running.append(Running("run", "--data", elm, "--listen", "127.0.0.1:0"))
        out = _porchlight("agency", "request", "--data", agency, "--gateway", url,
                          "--case", "2026-PD9-0413", "--reason", "Bicycle theft",
                          "--from", start.isoformat(),
                          "--to", (start + timedelta(minutes=30)).isoformat(),
                          "--lat", str(CENTRE[0]), "--lon", str(CENTRE[1]), "--radius-m", "300")
        request_id = out.stdout.strip().splitlines()[-1]
        [kept] = _wait_for(lambda: all_requests(elm))
        assert (kept["id"], kept["status"], kept["detail"]) == (request_id, "pending", ""), kept
        # Maple witnessed the request's checkpoint too (it holds no footage, so it drops it).
        [dropped] = _wait_for(lambda: all_requests(maple))
        assert dropped["detail"] == "this hub holds no footage in the window", dropped
        assert _witness_record(maple)["size"] > honest.size
    finally:
        errors = [process.stop() for process in running]
        gateway.stop()
    for err in errors:
        assert "Traceback" not in err, err
