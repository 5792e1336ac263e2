"""A gateway that shows two hubs on one LAN two different logs (a fork per hub) is caught by
their gossip: each hub raises the alarm (an event, a line in `requests list`), keeps both signed
checkpoints as proof, and withholds the gateway's new requests until the owner looks. A witness
cosigned the honest view and refused the fork, so the forked checkpoint fails the policy of a
hub that requires that witness."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from federation.member.requests import CheckpointNotWitnessed, check_witness_policy
from federation.neighbourhood_log import checkpoint_signer, checkpoint_verifier
from federation.tlog.checkpoint import open_checkpoint
from federation.tlog.proof import format_tlog_proof
from federation.witness.operator import follow_log
from tests.federation.agency_fixtures import sign_request
from tests.federation.malicious_gateway import MaliciousGateway
from tests.federation.witness_fixtures import running_witness
from tests.hub.neighbourhood.dishonest import (
    agency_under,
    cli,
    hub_at_centre,
    inbox,
    jti,
    pin_to,
    until,
)


async def _submit(http: aiohttp.ClientSession, witness, old: int, signed: str) -> tuple[int, str]:
    async with http.post(witness.url + "/add-checkpoint",
                         data=f"old {old}\n\n{signed}".encode()) as reply:
        return reply.status, await reply.text()


async def test_a_gateway_forking_the_log_for_one_hub_is_caught_by_its_lan_neighbour(
    tmp_path, hub_template
):
    with running_witness(tmp_path / "witness", "witness.example/maple") as witness:
        await _forked_for_one_hub(tmp_path, hub_template, witness)


async def _forked_for_one_hub(tmp_path, hub_template, witness) -> None:
    # One gateway key, two servers: each hub is shown a log of its own.
    honest = MaliciousGateway(tmp_path / "gw-a")
    forked = MaliciousGateway(tmp_path / "gw-b", key=honest.key)
    registry, agency = agency_under(tmp_path, honest.kid)
    signer = checkpoint_signer(honest.key)
    follow_log(witness.data, signer.name, signer.verifier().to_string())

    def sign() -> str:
        return sign_request(agency, honest.kid, time.time())

    roots, keys = {}, {}
    for name in ("a", "b"):
        root = tmp_path / f"hub-{name}"
        # Hub a requires the witness (k = 1); hub b requires none, so it takes the fork.
        policy = (f'\n[witnesses]\nkeys = ["{witness.vkey}"]\nmin = 1\n' if name == "a"
                  else "")
        keys[name] = hub_at_centre(
            hub_template, root, registry,
            '\n[lan]\nenabled = true\nlisten = "127.0.0.1:0"\ninterfaces = ["127.0.0.1"]\n'
            "gossip_interval_s = 0.5\n" + policy)
        roots[name] = root

    async with honest.serve() as url_a, forked.serve() as url_b:
        procs = {}
        try:
            for name, url in (("a", url_a), ("b", url_b)):
                pin_to(roots[name], keys[name], honest, url)
                procs[name] = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "hub.cli", "run", "--data", str(roots[name]),
                    "--listen", "127.0.0.1:0", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                assert b"listening on" in await procs[name].stdout.readline()

            # Each hub is routed a different request under a checkpoint of the same size.
            # The witness cosigns the honest view and refuses the fork (same size, other root).
            first_a, first_b = sign(), sign()
            index = honest.log.append(first_a.encode())
            async with aiohttp.ClientSession() as http:
                status, line = await _submit(http, witness, 0, honest.log.signed_checkpoint)
                assert status == 200
                assert await _submit(http, witness, 1, forked_checkpoint(forked, first_b)) == (
                    409, "1\n")
            honest.push(first_a, format_tlog_proof(index, honest.log.inclusion_proof(index),
                                                   honest.log.signed_checkpoint + line))
            forked.push(first_b, forked.log.tlog_proof(0))
            for name, token in (("a", first_a), ("b", first_b)):
                rows = await until(lambda n=name: inbox(roots[n], "--all"))
                assert [r["id"] for r in rows] == [jti(token)], rows

            # Gossip over the LAN: both hubs see the fork and raise the alarm.
            for name in ("a", "b"):
                listed = await until(lambda n=name: _alarm(roots[n]))
                assert listed.startswith(
                    f"ALARM: fork: gateway {honest.kid[:12]} showed this hub and LAN neighbour "
                    f"{keys['b' if name == 'a' else 'a'].kid[:12]} different logs (two "
                    "different trees of size 1), found "), listed
                proof = roots[name] / listed.split("both signed checkpoints are in ", 1)[1] \
                    .split(";", 1)[0]
                verifier = checkpoint_verifier(honest.key.public_jwk)
                ours = open_checkpoint((proof / "ours.checkpoint").read_text(), verifier)
                theirs = open_checkpoint((proof / "theirs.checkpoint").read_text(), verifier)
                assert ours.size == theirs.size == 1 and ours.root_hash != theirs.root_hash
                # `requests list --json` carries the same alarm and both checkpoints on top.
                done = await asyncio.to_thread(cli, "requests", "list", "--data", roots[name],
                                               "--json")
                alarm = json.loads(done.stdout)["fork_alarm"]
                assert alarm["message"] == listed
                assert alarm["checkpoints"] == {
                    side: (proof / f"{side}.checkpoint").read_text() for side in ("ours", "theirs")}
                if name == "a":
                    # What hub a saw the witness cosigned; the forked one fails the policy.
                    texts = [(proof / f).read_text() for f in ("ours.checkpoint",
                                                              "theirs.checkpoint")]
                    assert check_witness_policy(texts[0], [witness.verifier], 1) == [
                        witness.name]
                    with pytest.raises(CheckpointNotWitnessed):
                        check_witness_policy(texts[1], [witness.verifier], 1)

            # The gateway's next request is withheld from the owner of hub a, with why.
            second = sign()
            honest.log_and_push(second)
            rows = await until(lambda: _withheld(roots["a"]))
            assert rows[0]["id"] == jti(second)
            assert rows[0]["detail"].startswith(
                "withheld: this gateway showed this hub and a LAN neighbour different logs "
                "(two different trees of size 1)")

            # The owner looks, and resumes: the alarm goes, the proof stays.
            done = await asyncio.to_thread(cli, "requests", "resume", "--data", roots["a"])
            assert done.stdout.startswith("showing new requests again; the proof stays in ")
            assert await _alarm(roots["a"]) is None
            assert proof.exists()
        finally:
            errors = {}
            for name, proc in procs.items():
                proc.send_signal(signal.SIGTERM)
                _, errors[name] = await proc.communicate()
    for err in errors.values():
        assert b"Traceback" not in err, err.decode()
        # The hub event for notifier plugins (the built-in log notifier writes it).
        assert b"event fork: the gateway showed this hub and a LAN neighbour different logs" \
            in err, err.decode()[-3000:]


def forked_checkpoint(forked: MaliciousGateway, token: str) -> str:
    """Log a request in the forked view and return its checkpoint."""
    forked.log.append(token.encode())
    return forked.log.signed_checkpoint


async def _alarm(root) -> str | None:
    done = await asyncio.to_thread(cli, "requests", "list", "--data", root)
    first = done.stdout.splitlines()[0] if done.stdout else ""
    return first if first.startswith("ALARM: ") else None


async def _withheld(root):
    rows = [r for r in await inbox(root, "--all") if (r["detail"] or "").startswith("withheld")]
    return rows or None
