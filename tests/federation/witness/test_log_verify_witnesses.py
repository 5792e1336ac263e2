"""`porchlight log verify --witness ... --min-witnesses K` reports who cosigned, and fails the
policy otherwise."""

from __future__ import annotations

import asyncio
import sys

from federation.gateway.settings import WitnessSetting
from federation.witness.operator import init_witness
from tests.federation.agency_fixtures import neighbourhood
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    ROOT,
    no_leaked_tasks,
    no_leaked_threads,
)
from tests.federation.witness_fixtures import running_witness


async def porchlight(*args: str) -> tuple[int, str, str]:
    """Run the porchlight command line in its own process; return (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", *map(str, args), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_log_verify_reports_the_cosigners_and_fails_the_policy(tmp_path):
    absent = init_witness(tmp_path / "absent", "witness.example/absent")
    with running_witness(tmp_path / "w1", "witness.example/one") as one:
        async with neighbourhood(
            tmp_path, on_init=one.follow_gateway_dir,
            witnesses=[WitnessSetting(url=one.url, vkey=one.vkey)],
        ) as hood:
            witnessing = hood.gateway.requests.witnessing
            await witnessing.wait_published(hood.log_size, 15)
            assert witnessing.published_size == hood.log_size == 1

            base = ["log", "verify", "--gateway", hood.url, "--witness", one.vkey,
                    "--witness", absent]
            code, out, err = await porchlight(*base, "--min-witnesses", "1",
                                              "--data", tmp_path / "a")
            assert code == 0, out + err
            assert ("cosigned by 1 of the 2 witnesses given (1 required): witness.example/one"
                    in out.splitlines())
            assert "OK: " in out

            state = tmp_path / "b"
            code, out, err = await porchlight(*base, "--min-witnesses", "2", "--data", state)
            assert code == 1, out + err
            assert ("problem: the checkpoint is cosigned by 1 of the 2 witnesses required "
                    "(witness.example/one)") in out.splitlines()
            assert out.splitlines()[-1] == "NOT OK: 1 problem"
            # A checkpoint that fails the policy is not remembered as the last one seen.
            assert not (state / "log-state" / "checkpoint").exists()

            code, out, err = await porchlight(*base, "--min-witnesses", "3",
                                              "--data", tmp_path / "c")
            assert (code, out) == (2, "")
            assert err == ("porchlight: error: --min-witnesses 3: give 0 to 2 (the number of "
                           "--witness keys)\n")
            code, out, err = await porchlight("log", "verify", "--gateway", hood.url,
                                              "--witness", "nobody", "--data", tmp_path / "d")
            assert (code, out) == (2, "")
            assert err == ("porchlight: error: --witness nobody: a witness key is name+keyid+base64 "
                           "key\n")
            assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
