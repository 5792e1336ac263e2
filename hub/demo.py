"""`porchlight demo`: a whole neighbourhood on one machine, on embedded defaults.

A registry authority lists a police agency; a gateway serves the street; three households run
hubs with a synthetic camera each (two on Maple Street, one 5 km away). The demo records real
H.264 into the encrypted vaults, exports footage with the passphrase, checks that no plaintext
reached any disk, posts a neighbourhood alert, and walks an agency request through the public
log, each owner's decision and the agency's end-to-end encrypted pickup. Services run as real
processes (`porchlight gateway run`, `porchlight run`) talking over loopback.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av

from hub.cameras.admin import add_camera
from hub.datadir import DataDir
from hub.household import unlock_household_identity
from hub.init import create_hub
from hub.neighbourhood.alerts import OWN, list_alerts
from hub.neighbourhood.requests import approve, deny, list_requests
from hub.neighbourhood.service import join, queue_alert, with_gateway_client
from hub.service import Hub
from hub.timeutil import iso_second, utcnow
from hub.vault.footage import export_footage
from hub.words import plural

STREET = (51.5007, -0.1246)
HOUSES = {"maple-12": (51.5007, -0.1246), "maple-14": (51.5010, -0.1240),
          "oak-3": (51.5450, -0.1246)}
RECORD_SECONDS = 24


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


class _Service:
    """A `porchlight` service process of the demo, stopped by its pid."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "hub.cli", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.ready = self.proc.stdout.readline().strip()
        if "listening on" not in self.ready:
            raise RuntimeError(f"`porchlight {' '.join(args[:2])}` did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


def run_demo(keep: Path | None = None, wait: bool = True) -> int:
    """Run the neighbourhood demo, then keep it running for the newcomer until Ctrl-C."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with tempfile.TemporaryDirectory(prefix="porchlight-demo-") as scratch:
            base = Path(keep) if keep else Path(scratch)
            base.mkdir(parents=True, exist_ok=True)
            services: list[_Service] = []
            street: dict = {}
            try:
                street = _neighbourhood(base, services)
                if wait and not stop.is_set():
                    _your_turn(base, street, stop)
            finally:
                for service in reversed(services):
                    service.stop()
            owner = street.get("hubs", {}).get("maple-12", (None, None))[1]
            for line in closing_lines(base, kept=keep is not None, passphrase=owner):
                _say(line)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def closing_lines(base: Path, *, kept: bool, passphrase: str | None = None) -> list[str]:
    """Say where the demo's data went and what to try next."""
    if not kept:
        return ["stopped every process and removed the demo's data",
                "next: `porchlight demo --keep DIR` keeps it, to look inside the hubs afterwards;",
                "      `porchlight init --data DIR` makes a hub of your own (docs/cli.md)"]
    hub, gateway = base / "maple-12", base / "gateway"
    return [f"stopped every process; kept everything in {base}",
            "next, look inside a hub (no passphrase needed to list):",
            f"      porchlight footage list --data {hub}",
            f"      porchlight events list --data {hub}",
            "  run it again and open its web UI, signing in as owner"
            + (f" with the passphrase {passphrase}:" if passphrase else ":"),
            f"      porchlight run --data {hub}",
            "  serve the gateway's public page again, at http://127.0.0.1:8470/:",
            f"      porchlight gateway run --data {gateway}"]


def _your_turn(base: Path, street: dict, stop: threading.Event) -> None:
    """Send a second request, print every UI and login, and relay the agency's pickups."""
    from federation.agency.tool import agency_fetch, agency_request, agency_status

    url = street["gateway"]
    request_id = asyncio.run(agency_request(
        base / "agency", url, case="2026-PD9-0415", reason="Bicycle theft on Maple Street",
        start=utcnow() - timedelta(minutes=20), end=utcnow() - timedelta(seconds=2),
        lat=STREET[0], lon=STREET[1], radius_m=300))
    _say("5. Your turn: the neighbourhood keeps running")
    _say(f"   Metro Police sent another request, {request_id}: open a hub's web UI, sign in as")
    _say("   owner with its passphrase, and approve or deny it under Requests (the browser will")
    _say("   warn about the hub's self-signed certificate: each hub prints its fingerprint)")
    for name, (ui, passphrase) in street["hubs"].items():
        _say(f"   {name}: {ui}  owner / {passphrase}")
    _say(f"   the gateway's public page: {url}/")
    _say(f"   look inside a hub: porchlight footage list --data {base / 'maple-12'}")
    _say("   Press Ctrl-C to stop.")
    fetched = 0
    while not stop.wait(2.0):
        try:
            status = asyncio.run(agency_status(base / "agency", url, request_id))
        except Exception as err:  # the demo goes on: a gateway hiccup is reported, not fatal
            _say(f"   agency status failed: {err}")
            continue
        if status["approved"] > fetched:
            manifest = asyncio.run(agency_fetch(base / "agency", url, request_id,
                                                base / "evidence-2"))
            fetched = status["approved"]
            _say(f"   the agency received and decrypted {plural(len(manifest['clips']), 'clip')} of "
                 f"request {request_id}: see {base / 'evidence-2'}")


def _neighbourhood(base: Path, services: list[_Service]) -> dict:
    from federation.agency.tool import agency_fetch, agency_request, agency_status, init_agency
    from federation.auditor.verify import log_verify
    from federation.authority.tool import add_agency, init_authority, publish_registry
    from federation.gateway.operator import create_invite, init_gateway

    _say("1. The neighbourhood")
    authority_fp = init_authority(base / "authority", "Maple Street Oversight Board")
    _say(f"   registry authority 'Maple Street Oversight Board', key {authority_fp[:19]}...")
    card = init_agency(base / "agency", "Metro Police, Precinct 9")
    add_agency(base / "authority", card, jurisdiction=(*STREET, 8000.0), since="2025-03-01",
               contact="precinct9@example.org")
    gateway_info = init_gateway(base / "gateway", name="Maple Street",
                                registry_key=authority_fp)
    gateway = _Service("gateway", "run", "--data", str(base / "gateway"), "--listen",
                       "127.0.0.1:0")
    services.append(gateway)
    url = gateway.ready.split(" on ", 1)[1].split(" as ")[0]
    _say(f"   gateway 'Maple Street' at {url}, key {gateway_info.fingerprint[:19]}...")
    published = asyncio.run(publish_registry(base / "authority", url))
    _say(f"   registry v{published['version']} lists Metro Police, Precinct 9 "
         f"(in the public log at index {published['log_index']})")

    passphrases, roots = {}, {}
    for name, where in HOUSES.items():
        passphrases[name] = secrets.token_urlsafe(18)
        root = base / name
        create_hub(root, passphrases[name], name=name, location=where)
        add_camera(DataDir(root), "porch", synthetic=True)
        hub = Hub(root)
        try:
            membership = join(hub, url, create_invite(base / "gateway"), pin=gateway_info.kid,
                              registry_key=authority_fp)
        finally:
            hub.close()
        roots[name] = root
        _say(f"   hub {name}: joined, registered only its coarse cell {membership.cell}")
    uis: dict[str, str] = {}
    for name, root in roots.items():
        hub_service = _Service("run", "--data", str(root), "--listen", "127.0.0.1:0")
        services.append(hub_service)
        uis[name] = hub_service.ready.split(" on ", 1)[1]

    _say(f"2. Recording: each hub records its synthetic porch camera for {RECORD_SECONDS} s")
    started = utcnow()
    time.sleep(RECORD_SECONDS)
    hub = Hub(roots["maple-12"])
    try:
        segments = [s for s in hub.vault.segments("porch") if s.media_type == "video/mp4"]
        _say(f"   maple-12 sealed {plural(len(segments), 'segment')} with its public key only, e.g. "
             f"{segments[0].path}")
        identity = unlock_household_identity(hub.data, passphrases["maple-12"])
        out = base / "maple-12-export.mp4"
        result = export_footage(hub, "porch", started - timedelta(minutes=1), utcnow(), out,
                                lambda: identity, progress=False)
        with av.open(str(out)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        _say(f"   exported {plural(len(result.exported), 'segment')} with the passphrase: "
             f"{plural(frames, 'frame')}, "
             "remuxed without re-encoding")
        leaked = _plaintext_on_disk(base, hub.vault.read(segments[0], identity), skip=out)
        _say("   searched every file of every data dir: "
             + ("no plaintext footage anywhere" if not leaked else f"LEAK in {leaked}"))

        _say("3. An alert")
        queue_alert(hub, "suspicious", "Someone trying car doors on Maple Street")
    finally:
        hub.close()
    got = _wait(lambda: _feed(roots["maple-14"]))
    _say(f"   maple-14 received it ({got[0].verification}): \"{got[0].text}\"")
    _say(f"   oak-3, 5 km away, received {plural(len(_feed(roots['oak-3'])), 'alert')}")

    _say("4. An agency request")
    window_start = utcnow() - timedelta(minutes=16)
    request_id = asyncio.run(agency_request(
        base / "agency", url, case="2026-PD9-0412", reason="Car break-ins on Maple Street",
        start=window_start, end=utcnow() - timedelta(seconds=2), lat=STREET[0], lon=STREET[1],
        radius_m=300))
    _say(f"   Metro Police asked for footage around Maple Street: request {request_id}")
    for name in HOUSES:
        waiting = _wait(lambda n=name: _inbox(roots[n]), timeout=10 if name == "oak-3" else 30)
        state = waiting[0]["status"] if waiting else "never saw it (outside the circle)"
        _say(f"   {name}: {state}")
    hub = Hub(roots["maple-12"])
    try:
        decision = asyncio.run(with_gateway_client(hub, lambda client, kid: approve(
            hub, client, kid, request_id, identity)))
    finally:
        hub.close()
    _say(f"   maple-12 approved: {plural(len(decision.clips), 'clip')} sealed to the agency's "
         "age key")
    hub = Hub(roots["maple-14"])
    try:
        asyncio.run(with_gateway_client(hub, lambda client, kid: deny(hub, client, kid, request_id,
                                                               silent=False)))
    finally:
        hub.close()
    _say("   maple-14 denied it (a signed denial; the agency never learns which house)")
    status = asyncio.run(agency_status(base / "agency", url, request_id))
    _say(f"   agency status: asked {status['asked']}, approved {status['approved']}, "
         f"denied {status['denied']}, pending {status['pending']}")
    manifest = asyncio.run(agency_fetch(base / "agency", url, request_id, base / "evidence"))
    for clip in manifest["clips"]:
        with av.open(str(base / "evidence" / clip["file"])) as container:
            frames = sum(1 for _ in container.decode(video=0))
        _say(f"   agency decrypted {clip['file']}: {frames} frames, camera {clip['camera']}, "
             f"{clip['start']}..{clip['end']}, chain of custody in evidence/manifest.json")
    with urllib.request.urlopen(f"{url}/v1/registry/summary", timeout=10) as reply:
        listed = json.load(reply)["agencies"][0]
    since = datetime.fromtimestamp(listed["since"], UTC).date() \
        if isinstance(listed["since"], int) else listed["since"]
    _say(f"   public registry page {url}/registry: {listed['name']} since {since}: "
         f"{plural(listed['requests'], 'request')}, {plural(listed['approvals'], 'approval')}, "
         f"{plural(listed['denials'], 'denial')}")
    report = asyncio.run(log_verify(url, base / "log-state"))
    _say(f"   log verify: {report.size} entries checked, "
         + ("all consistent" if report.ok else f"PROBLEMS: {report.problems}"))
    _say(f"done at {iso_second(utcnow())}")
    return {"gateway": url, "hubs": {n: (uis[n], passphrases[n]) for n in HOUSES}}


def _feed(root: Path):
    hub = Hub(root)
    try:
        return [a for a in list_alerts(hub.db) if a.via == "gateway" and a.verification != OWN]
    finally:
        hub.close()


def _inbox(root: Path) -> list[dict]:
    hub = Hub(root)
    try:
        return list_requests(hub)
    finally:
        hub.close()


def _plaintext_on_disk(base: Path, plain: bytes, skip: Path) -> list[str]:
    """Return files under base, other than the export, holding a slice of a segment's video."""
    with av.open(io.BytesIO(plain)) as container:
        packet = next(p for p in container.demux(video=0) if p.size > 256)
        needle = bytes(packet)[64:128]
    return [str(p.relative_to(base)) for p in base.rglob("*")
            if p.is_file() and p != skip and needle in p.read_bytes()]
