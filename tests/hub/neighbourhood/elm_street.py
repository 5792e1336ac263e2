"""The neighbourhood the witness tests share, made with the CLI as its people would: an
oversight board's registry listing one police agency, and a gateway pinned to that board."""

from __future__ import annotations

import json
from pathlib import Path

from tests.hub.neighbourhood.test_neighbourhood import _porchlight

CENTRE = (51.5008, -0.1243)


def elm_street(tmp_path: Path) -> tuple[Path, Path, Path, str]:
    """Make the board, the agency and the gateway; return their dirs and the board's key."""
    authority, agency, gw = tmp_path / "authority", tmp_path / "agency", tmp_path / "gateway"
    out = _porchlight("registry", "init", "--data", authority, "--name", "Elm Street Oversight Board")
    authority_fp = out.stdout.strip().rsplit(": ", 1)[1]
    _porchlight("agency", "init", "--data", agency, "--name", "Metro Police, Precinct 9")
    _porchlight("registry", "add", "--data", authority, "--card", agency / "agency.json",
                "--jurisdiction", f"{CENTRE[0]},{CENTRE[1]},8000", "--since", "2025-03-01")
    _porchlight("gateway", "init", "--data", gw, "--name", "Elm Street",
                "--registry-key", authority_fp)
    return authority, agency, gw, authority_fp


def all_requests(hub: Path) -> list[dict]:
    """Return every request the hub holds (`requests list --json --all`)."""
    return json.loads(_porchlight("requests", "list", "--data", hub, "--json",
                                  "--all").stdout)["requests"]
