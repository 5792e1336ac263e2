"""`porchlight registry add`: `--contact` is optional, as docs/cli.md and docs/registry.md say."""

from __future__ import annotations

import json
import time

from federation.authority.tool import authority_jwk, authority_kid
from federation.keys import generate_signing_key
from federation.registry import verify_registry

JURISDICTION = "52.3731,4.8926,5000"


def test_registry_add_takes_contact_as_an_option(cli, tmp_path):
    authority = tmp_path / "authority"
    assert cli("registry", "init", "--data", authority, "--name", "Oversight Board")[0] == 0
    cards = {}
    for name in ("Quiet PD", "Desk PD", "Blank PD"):
        folder = tmp_path / name.split()[0].lower()
        assert cli("agency", "init", "--data", folder, "--name", name)[0] == 0
        cards[name] = folder / "agency.json"
    add = ("registry", "add", "--data", authority, "--jurisdiction", JURISDICTION,
           "--since", "2024-03-01")

    code, out, err = cli(*add, "--card", cards["Quiet PD"])
    assert (code, err) == (0, "")
    assert out.startswith("listed Quiet PD (") and out.endswith(") in the next registry version\n")
    assert cli(*add, "--card", cards["Desk PD"], "--contact", "desk@pd.example")[0] == 0
    # A contact that says nothing is refused, and nothing is listed.
    state_files = {p: p.read_bytes() for p in authority.iterdir() if p.is_file()}
    assert cli(*add, "--card", cards["Blank PD"], "--contact", "   ") == (
        1, "", "porchlight: error: contact: must not be blank\n")
    assert {p: p.read_bytes() for p in authority.iterdir() if p.is_file()} == state_files

    code, out, _ = cli("registry", "show", "--data", authority)
    listed = {a["name"]: a for a in json.loads(out)["agencies"]}
    assert set(listed) == {"Quiet PD", "Desk PD"}
    assert "contact" not in listed["Quiet PD"]
    assert listed["Desk PD"]["contact"] == "desk@pd.example"

    # The signed registry verifies, and says "no contact" as an empty one to its readers.
    audience = generate_signing_key().kid
    code, token, _ = cli("registry", "sign", "--data", authority, "--audience", audience)
    assert code == 0
    registry = verify_registry(token.strip(), authority_jwk=authority_jwk(authority),
                               authority_kid=authority_kid(authority), audience=audience,
                               now=time.time())
    contacts = {a.name: a.contact for a in registry.agencies.values()}
    assert contacts == {"Quiet PD": "", "Desk PD": "desk@pd.example"}
