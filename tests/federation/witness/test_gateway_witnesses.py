"""The gateway asks its witnesses to cosign each checkpoint and serves what they cosigned."""

from __future__ import annotations

import logging

from federation.gateway.settings import WitnessSetting
from federation.neighbourhood_log import checkpoint_verifier
from federation.tlog.checkpoint import open_checkpoint
from federation.tlog.cosignature import verify_cosignatures
from federation.tlog.proof import parse_tlog_proof, verify_tlog_proof
from tests.federation.agency_fixtures import (
    CENTRE,
    east,
    get_json,
    neighbourhood,
    next_message,
)
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)
from tests.federation.witness_fixtures import running_witness


def _cosigners(signed: str, witnesses) -> list[str]:
    return sorted(c.witness for c in verify_cosignatures(signed, [w.verifier for w in witnesses]))


async def test_a_gateway_serves_checkpoints_its_witnesses_cosigned_and_goes_on_without_one(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="federation.gateway.witnessing")
    with (
        running_witness(tmp_path / "w1", "witness.example/one") as one,
        running_witness(tmp_path / "w2", "witness.example/two") as two,
    ):
        settings = [WitnessSetting(url=w.url, vkey=w.vkey) for w in (one, two)]

        def follow(gateway_dir):
            one.follow_gateway_dir(gateway_dir)
            two.follow_gateway_dir(gateway_dir)

        async with neighbourhood(
            tmp_path, on_init=follow, witnesses=settings, witness_timeout_s=5
        ) as hood:
            verifier = checkpoint_verifier(hood.gateway.key.public_jwk)
            hub = await hood.join(*east(*CENTRE, 100))
            token = hood.sign()
            status, answer = await hood.post_request(token)
            assert status == 201, answer

            # The routed request's proof carries a checkpoint both witnesses cosigned, which
            # still opens with the log's key and proves the request included.
            message = await next_message(hub.client)
            bundle = parse_tlog_proof(message.proof)
            assert _cosigners(bundle.checkpoint, [one, two]) == [one.name, two.name]
            assert verify_tlog_proof(token.encode(), message.proof, verifier).index == 1
            status, served = await get_json(hood.url + "/checkpoint")
            assert status == 200
            assert open_checkpoint(served, verifier).size == 2
            assert _cosigners(served, [one, two]) == [one.name, two.name]

            # One witness goes down: the log goes on, cosigned by the other, and says so.
            two.stop()
            second = hood.sign()
            status, answer = await hood.post_request(second)
            assert status == 201, answer
            message = await next_message(hub.client, since=message.seq)
            assert message.jws == second
            bundle = parse_tlog_proof(message.proof)
            assert open_checkpoint(bundle.checkpoint, verifier).size == 3
            assert _cosigners(bundle.checkpoint, [one, two]) == [one.name]
            status, served = await get_json(hood.url + "/checkpoint")
            assert open_checkpoint(served, verifier).size == 3
            assert _cosigners(served, [one, two]) == [one.name]
            unreachable = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
            assert unreachable and two.url in unreachable[0], caplog.text
