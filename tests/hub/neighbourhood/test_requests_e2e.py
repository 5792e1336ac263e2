"""Agency requests end to end with real processes: a registry, a gateway, three hubs (two in
range), an agency; one owner approves, one denies; the agency fetches and decrypts; the public
page counts; the far hub never sees the request."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest

from tests.federation.custody_check import check_evidence, check_inclusion
from tests.hub.neighbourhood.test_neighbourhood import (
    FAR,
    NEAR_A,
    NEAR_B,
    Running,
    _porchlight,
    _wait_for,
    make_hub,  # noqa: F401  (fixture)
)

CENTRE = (51.5008, -0.1243)


def _requests(hub: Path, *extra) -> list[dict]:
    return json.loads(_porchlight("requests", "list", "--data", hub, "--json",
                                  *extra).stdout)["requests"]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture
def world(tmp_path, make_hub, clip25):  # noqa: F811
    """An authority, an agency, a gateway with the registry published, and three hubs with footage."""
    authority, agency, gw = tmp_path / "authority", tmp_path / "agency", tmp_path / "gateway"
    out = _porchlight("registry", "init", "--data", authority, "--name", "Elm Street Oversight Board")
    authority_fp = out.stdout.strip().rsplit(": ", 1)[1]
    _porchlight("agency", "init", "--data", agency, "--name", "Metro Police, Precinct 9")
    _porchlight("registry", "add", "--data", authority, "--card", agency / "agency.json",
                "--jurisdiction", f"{CENTRE[0]},{CENTRE[1]},8000", "--since", "2025-03-01",
                "--contact", "precinct9@example.org")
    _porchlight("gateway", "init", "--data", gw, "--name", "Elm Street",
                "--registry-key", authority_fp)
    gateway = Running("gateway", "run", "--data", gw, "--listen", "127.0.0.1:0")
    url = gateway.ready.split(" on ", 1)[1].split(" as ")[0]
    _porchlight("registry", "publish", "--data", authority, "--gateway", url)
    window_start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    hubs = {}
    for name, where in (("approver", NEAR_A), ("denier", NEAR_B), ("far", FAR)):
        hub = make_hub(name, where)
        _porchlight("footage", "import", "--data", hub, "--camera", "porch", "--start",
                    (window_start + timedelta(minutes=10)).isoformat(), clip25)
        code = _porchlight("gateway", "invite", "--data", gw).stdout.strip()
        _porchlight("join", "--data", hub, url, code, "--registry-key", authority_fp)
        hubs[name] = hub
    running = [Running("run", "--http", "--data", h, "--listen", "127.0.0.1:0") for h in hubs.values()]
    yield {"url": url, "agency": agency, "hubs": hubs, "gateway_dir": gw,
           "start": window_start, "end": window_start + timedelta(minutes=45)}
    for process in running:
        process.stop()
    gateway.stop()


def test_request_approve_deny_fetch(world, clip25, passfile, tmp_path):
    hubs, url = world["hubs"], world["url"]
    out = _porchlight("agency", "request", "--data", world["agency"], "--gateway", url,
                      "--case", "2026-PD9-0412", "--reason", "Package theft on Elm Street",
                      "--from", world["start"].isoformat(), "--to", world["end"].isoformat(),
                      "--lat", str(CENTRE[0]), "--lon", str(CENTRE[1]), "--radius-m", "300")
    request_id = out.stdout.strip().splitlines()[-1]
    for name in ("approver", "denier"):
        pending = _wait_for(lambda n=name: _requests(hubs[n]), timeout=30)
        assert [(r["id"], r["status"]) for r in pending] == [(request_id, "pending")], name
        assert pending[0]["case_number"] == "2026-PD9-0412"

    done = _porchlight("requests", "approve", "--data", hubs["approver"], request_id,
                       "--passphrase-file", passfile)
    assert "sent porch:" in done.stdout
    _porchlight("requests", "deny", "--data", hubs["denier"], request_id)
    assert _requests(hubs["approver"])[0]["status"] == "approved"
    assert _requests(hubs["denier"])[0]["status"] == "denied"
    _far_hub_never_saw(world)  # now that the gateway routed it and both near hubs answered

    status = json.loads(_porchlight("agency", "status", "--data", world["agency"], "--gateway",
                                    url, request_id).stdout)
    assert (status["asked"], status["approved"], status["denied"], status["pending"]) == (2, 1, 1, 0)

    # The sealed clip on the gateway's disk opens with no key the gateway holds.
    sealed = [p for p in world["gateway_dir"].rglob("*") if p.is_file()
              and p.read_bytes()[:22] == b"age-encryption.org/v1\n"]
    assert sealed
    _no_gateway_key_opens(world["gateway_dir"], sealed[0])

    fetched = tmp_path / "evidence"
    _porchlight("agency", "fetch", "--data", world["agency"], "--gateway", url, request_id,
                "--out", fetched)
    manifest = json.loads((fetched / "manifest.json").read_text())
    [clip] = manifest["clips"]
    assert clip["status"] == "fetched" and clip["camera"] == "porch"
    [answer] = manifest["answers"]
    assert answer["decision"] == "approved" and answer["jws"].count(".") == 2
    recorded, received = _frames(clip25), _frames(fetched / clip["file"])
    assert len(received) == len(recorded) == 375
    assert all(np.array_equal(a, b) for a, b in zip(recorded, received, strict=True))

    with urllib.request.urlopen(f"{url}/v1/registry/summary", timeout=10) as reply:
        [listed] = json.load(reply)["agencies"]
    assert (listed["requests"], listed["approvals"], listed["denials"]) == (1, 1, 1)
    with urllib.request.urlopen(f"{url}/registry", timeout=10) as reply:
        page = reply.read().decode()
    assert "Metro Police, Precinct 9" in page and "2025-03-01" in page


def _far_hub_never_saw(world) -> None:
    """Check that the far hub holds no request, not even a dropped one, once its stream is past it.

    Called after the gateway routed the request and every near hub answered. An announcement
    to every hub then follows the request on each hub's stream, which a hub reads in order: once
    the far hub shows it, a request routed there would already have been recorded.
    """
    far, text = world["hubs"]["far"], "Police activity on Elm Street has ended"
    _porchlight("agency", "announce", "--data", world["agency"], "--gateway", world["url"],
                "--text", text, "--category", "safety")
    feed = _wait_for(lambda: json.loads(_porchlight(
        "alerts", "list", "--data", far, "--json").stdout), timeout=30)
    assert [item["text"] for item in feed] == [text]
    assert _requests(far, "--all") == []


def _no_gateway_key_opens(gateway_dir: Path, sealed: Path) -> None:
    """Try every file of the gateway's data dir as an age identity: none opens the clip."""
    tried = 0
    for path in gateway_dir.rglob("*"):
        if not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        done = subprocess.run(["age", "-d", "-i", str(path), str(sealed)], capture_output=True,
                              timeout=30)
        assert done.returncode != 0, f"{path} opened a sealed clip"
        tried += 1
    assert tried >= 3


def test_announcement_shows_as_verified_law_enforcement(world):
    hubs, url = world["hubs"], world["url"]
    _porchlight("agency", "announce", "--data", world["agency"], "--gateway", url, "--text",
                "Road closed on Elm Street until 6 pm", "--category", "safety",
                "--lat", str(CENTRE[0]), "--lon", str(CENTRE[1]), "--radius-m", "500")
    feed = _wait_for(lambda: json.loads(_porchlight(
        "alerts", "list", "--data", hubs["approver"], "--json").stdout), timeout=30)
    assert feed[0]["text"] == "Road closed on Elm Street until 6 pm"
    assert feed[0]["verification"] == "verified law enforcement: Metro Police, Precinct 9"
    far = json.loads(_porchlight("alerts", "list", "--data", hubs["far"], "--json").stdout)
    assert far == []


def test_out_of_scope_requests_are_refused_and_reach_no_hub(world):
    hubs, url = world["hubs"], world["url"]
    base = ["agency", "request", "--data", world["agency"], "--gateway", url, "--case", "C-1",
            "--reason", "x", "--lat", str(CENTRE[0]), "--lon", str(CENTRE[1])]
    start = world["start"]
    cases = [
        (["--from", start.isoformat(), "--to", (start + timedelta(hours=13)).isoformat(),
          "--radius-m", "300"], "window"),
        (["--from", start.isoformat(), "--to", world["end"].isoformat(), "--radius-m", "700"],
         "650"),
    ]
    for extra, why in cases:
        done = _porchlight(*base, *extra, check=False)
        assert done.returncode == 1
        assert done.stderr.startswith("porchlight: error: ") and why in done.stderr
    for hub in hubs.values():
        assert _requests(hub, "--all") == []


@pytest.mark.skipif(shutil.which("age") is None, reason="the age CLI is not installed")
def test_chain_of_custody_verifies_offline_and_the_hub_proves_its_answer(world, passfile, tmp_path):
    """The agency needs only `age`, its identity and any JWS library to check its evidence."""
    hubs, url = world["hubs"], world["url"]
    out = _porchlight("agency", "request", "--data", world["agency"], "--gateway", url,
                      "--case", "C-2", "--reason", "Hit and run",
                      "--from", world["start"].isoformat(), "--to", world["end"].isoformat(),
                      "--lat", str(CENTRE[0]), "--lon", str(CENTRE[1]), "--radius-m", "300")
    request_id = out.stdout.strip().splitlines()[-1]
    _wait_for(lambda: _requests(hubs["approver"]), timeout=30)
    _porchlight("requests", "approve", "--data", hubs["approver"], request_id,
                "--passphrase-file", passfile)
    fetched = tmp_path / "evidence"
    _porchlight("agency", "fetch", "--data", world["agency"], "--gateway", url, request_id,
                "--out", fetched)
    identity = world["agency"] / "agency.age"
    membership = json.loads((hubs["approver"] / "federation" / "membership.json").read_text())
    assert check_evidence(fetched, identity) == [membership["hub_kid"]]
    custodian = membership["hub_kid"]
    manifest = json.loads((fetched / "manifest.json").read_text())
    [answer] = manifest["answers"]
    assert answer["key"] != custodian  # the public answer's key is not the hub's

    # The hub proves the answer in the log is its own: the outside checker agrees.
    proof = json.loads(_porchlight("requests", "prove", "--data", hubs["approver"],
                                   request_id).stdout)
    assert (proof["key"], proof["answer"], proof["decision"]) == (
        answer["key"], answer["jws"], "approved")
    gateway = manifest["gateway"]
    origin = "porchlight-gateway/" + gateway["kid"]
    public_key = base64.urlsafe_b64decode(gateway["jwk"]["x"] + "=")
    assert check_inclusion(proof["answer"], proof["tlog_proof"], origin, public_key) == (
        answer["log_index"])
    # The denier, who sent nothing, has nothing to prove.
    failed = _porchlight("requests", "prove", "--data", hubs["denier"], request_id, check=False)
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines()[-1] == (
        f"porchlight: error: this hub sent no answer to request '{request_id}'")
