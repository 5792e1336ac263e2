"""`porchlight requests list --json` carries the fork alarm at its top level, with both signed
checkpoints, as the text listing carries the ALARM line; without an alarm the field is null."""

from __future__ import annotations

import json
import subprocess
import sys

from federation.keys import generate_signing_key
from federation.neighbourhood_log import checkpoint_signer
from federation.tlog.checkpoint import Checkpoint, sign_checkpoint
from federation.tlog.fork import find_split_view
from hub.neighbourhood.gossip import raise_fork_alarm
from hub.service import Hub


def _list(root, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", "requests", "list", "--data",
                           str(root), *extra], capture_output=True, text=True, timeout=60,
                          check=True)


def test_requests_list_json_shows_the_fork_alarm_with_both_checkpoints(hub_dir):
    assert json.loads(_list(hub_dir, "--json").stdout) == {"fork_alarm": None, "requests": []}

    gateway = generate_signing_key()
    signer = checkpoint_signer(gateway)
    ours = sign_checkpoint(Checkpoint(signer.name, 3, b"\x01" * 32), signer)
    theirs = sign_checkpoint(Checkpoint(signer.name, 3, b"\x02" * 32), signer)
    split = find_split_view(signer.verifier(), ours, theirs)
    peer = generate_signing_key().kid
    hub = Hub(hub_dir)
    try:
        raise_fork_alarm(hub, gateway.kid, split, peer)
    finally:
        hub.close()

    line = _list(hub_dir).stdout.splitlines()[0]
    assert line.startswith("ALARM: fork: ")
    listed = json.loads(_list(hub_dir, "--json", "--all").stdout)
    alarm = listed["fork_alarm"]
    assert alarm["message"] == line
    assert (alarm["gateway"], alarm["peer"], alarm["why"]) == (
        gateway.kid, peer, "two different trees of size 3")
    assert alarm["proof"].startswith("federation/forks/")
    assert alarm["checkpoints"] == {"ours": ours, "theirs": theirs}
    assert listed["requests"] == []
