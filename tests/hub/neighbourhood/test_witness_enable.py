"""`porchlight witness enable` on a hub: refused with one line, and nothing stored, until the
hub has joined a gateway and turned its LAN server on; then it makes one key, turns the
witness on in config.toml, and prints the same key each time."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from federation.cells import cell_for
from federation.keys import generate_signing_key
from federation.member.client import Membership
from hub.config import parse_config
from hub.datadir import DataDir, write_private
from hub.neighbourhood.service import membership_path


def _enable(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", "witness", "enable", "--data",
                           str(root)], capture_output=True, text=True, timeout=60)


def _join_on_paper(root) -> None:
    gateway, hub = generate_signing_key(), generate_signing_key()
    membership = Membership(url="http://127.0.0.1:9", gateway_kid=gateway.kid,
                            gateway_jwk=dict(gateway.public_jwk), gateway_name="Elm Street",
                            hub_kid=hub.kid, hop_kid=hub.kid, cell=cell_for(51.5, -0.12))
    write_private(membership_path(DataDir(root)), json.dumps(membership.to_dict()).encode())


def test_witness_enable_needs_a_gateway_and_the_lan_then_prints_one_key(hub_dir):
    config = hub_dir / "config.toml"
    key = hub_dir / "keys" / "witness-ed25519.pem"
    text = config.read_text()

    done = _enable(hub_dir)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("porchlight: error: this hub is not a member of a gateway: join one "
                           "first (`porchlight join`), then it can witness that gateway's log\n")
    assert not key.exists() and config.read_text() == text

    _join_on_paper(hub_dir)
    done = _enable(hub_dir)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("porchlight: error: a hub witnesses on its LAN server: set enabled = "
                           "true under [lan] in config.toml first (docs/witness.md)\n")
    assert not key.exists() and config.read_text() == text

    config.write_text(text + '\n[lan]\nenabled = true\nlisten = "127.0.0.1:8766"\n')
    first = _enable(hub_dir)
    assert first.returncode == 0, first.stderr
    vkey = re.search(r"^witness key: (\S+)$", first.stdout, re.M).group(1)
    assert f'[[witnesses]]\nurl = "http://127.0.0.1:8766"\nvkey = "{vkey}"\n' in first.stdout
    assert key.stat().st_mode & 0o777 == 0o600
    assert parse_config(config.read_text()).lan.witness is True
    again = _enable(hub_dir)
    assert again.returncode == 0 and again.stdout == first.stdout
