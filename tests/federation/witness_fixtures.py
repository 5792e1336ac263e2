"""Real witnesses for the tests: `porchlight witness run` processes on 127.0.0.1.

Each is stopped by the test that started it, by its process group id.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from federation.keys import load_private_key
from federation.neighbourhood_log import checkpoint_signer
from federation.tlog.cosignature import CosignatureVerifier
from federation.witness.operator import follow_log, init_witness

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_KEY_FILE = "gateway.key"


@dataclass
class WitnessProc:
    """A running witness: its data dir, URL, key and process."""

    data: Path
    url: str
    vkey: str
    proc: subprocess.Popen[str]

    @property
    def verifier(self) -> CosignatureVerifier:
        """Return the witness's cosignature verifier."""
        return CosignatureVerifier.from_string(self.vkey)

    @property
    def name(self) -> str:
        """Return the witness's name."""
        return self.verifier.name

    def follow_gateway_dir(self, gateway_dir: Path) -> None:
        """Follow the log of the gateway in gateway_dir (read from its key file)."""
        signer = checkpoint_signer(load_private_key(gateway_dir / GATEWAY_KEY_FILE))
        follow_log(self.data, signer.name, signer.verifier().to_string())

    def stop(self) -> None:
        """Stop the witness by its process group id and wait for it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def running_witness(data: Path, name: str) -> Iterator[WitnessProc]:
    """Create a witness in data and run it until the block ends."""
    vkey = init_witness(data, name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "witness", "run", "--data", str(data),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=ROOT,
    )
    witness = WitnessProc(data, "", vkey, proc)
    try:
        assert proc.stdout is not None
        found = re.search(r"listening on (\S+)", proc.stdout.readline())
        assert found, "the witness did not start"
        witness.url = found.group(1)
        yield witness
    finally:
        witness.stop()
