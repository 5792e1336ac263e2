"""`log verify`: rebuild a gateway's whole log from its tiles, and notice forks, altered tiles
and entries, new keys."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from federation.auditor.verify import STATE_CHECKPOINT, log_verify
from federation.gateway.app import KEY_FILE, Gateway
from federation.gateway.log import GatewayLog
from federation.gateway.settings import load_settings
from federation.http import GatewayKeyChanged
from federation.keys import generate_signing_key, load_private_key
from federation.neighbourhood_log import checkpoint_signer, log_origin
from federation.sealed import seal_clip, sha256_hex
from federation.tlog.checkpoint import Checkpoint, sign_checkpoint
from federation.tlog.tiles import TileMissing, bundles_for_size, tiles_for_size
from tests.federation.agency_fixtures import (
    CENTRE,
    east,
    neighbourhood,
    next_message,
    serve,
    sign_request,
)
from tests.federation.agency_fixtures import answer as post_answer
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)
from tests.federation.proxy import slow_proxy


async def _activity(hood, hub) -> str:
    status, answer = await hood.post_request(hood.sign())
    assert status == 201, answer
    request_id = answer["id"]
    await next_message(hub.client, since=hub_seq(hood, hub))
    sealed = seal_clip(b"frames" * 50, hood.card["recipient"])
    clip = {
        "sha256": sha256_hex(sealed),
        "size": len(sealed),
        "start": int(time.time()) - 9000,
        "end": int(time.time()) - 8990,
        "camera": "porch",
    }
    await post_answer(hood, hub, request_id, "approved", [(clip, sealed)])
    return request_id


def hub_seq(hood, hub) -> int:
    member = hood.gateway.store.member(hub.key.kid)
    return member.last_seq - 1


async def test_an_honest_log_verifies_and_grows_consistently(tmp_path):
    state = tmp_path / "auditor"
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*east(*CENTRE, 50))
        await _activity(hood, hub)
        report = await log_verify(hood.url, state, authority_kid=hood.authority_kid)
        assert report.ok, report.problems
        assert report.counts == {"registry": 1, "request": 1, "answer": 1}
        assert (report.size, report.proofs_checked, report.previous_size) == (3, 3, None)
        assert (state / STATE_CHECKPOINT).read_text() == hood.gateway.requests.log.signed_checkpoint

        await hood.publish()
        await _activity(hood, hub)
        report = await log_verify(hood.url, state, authority_kid=hood.authority_kid)
        assert report.ok, report.problems
        assert (report.size, report.previous_size) == (6, 3)

        # Pinned to another authority: every registry version is reported.
        wrong = await log_verify(hood.url, tmp_path / "other", authority_kid=hood.kid)
        assert {p.reason for p in wrong.problems} >= {"registry_wrong_signer"}


async def test_a_forked_log_is_reported_and_not_remembered(tmp_path):
    state = tmp_path / "auditor"
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        await _activity(hood, hub)
        await _activity(hood, hub)
        assert (await log_verify(hood.url, state)).ok
        seen = (state / STATE_CHECKPOINT).read_text()
        data_dir, clock = hood.data_dir, hood.clock
    # The operator rewrites history under the same key: a fresh log and database.
    shutil.rmtree(data_dir / "log")
    (data_dir / "gateway.sqlite").unlink()
    from federation.gateway.store import GatewayStore

    GatewayStore(data_dir / "gateway.sqlite", create=True).close()
    async with Gateway(data_dir, settings=load_settings(data_dir), clock=clock) as gateway:
        async with serve(gateway) as url:
            hood.gateway, hood.url = gateway, url
            await hood.publish()
            for _ in range(6):
                assert (await hood.post_request(hood.sign()))[0] == 201
            report = await log_verify(url, state)
    assert not report.ok
    assert [p.reason for p in report.problems] == ["checkpoint_inconsistent"]
    assert (state / STATE_CHECKPOINT).read_text() == seen


ROOT = Path(__file__).resolve().parents[3]
OK_LINE = (
    "OK: the tiles rebuild the signed checkpoint, every entry checks out, and the log is "
    "consistent with every checkpoint seen"
)


async def porchlight(*args: str) -> tuple[int, str, str]:
    """Run the porchlight command line in its own process; return (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


@dataclass
class FilledLog:
    """A gateway serving a log filled with real signed entries."""

    url: str
    gateway: Gateway

    @property
    def size(self) -> int:
        """Return the log's size."""
        return self.gateway.requests.log.size


@contextlib.asynccontextmanager
async def filled_log(root: Path, requests: int) -> AsyncIterator[FilledLog]:
    """Serve a log of a registry, a request and its answer, then `requests` more requests.

    The extra requests are real agency-signed requests appended with the gateway's own log
    code while it is stopped; its next start indexes them, as it does after a crash. Posting
    thousands over HTTP would test the intake, not the audit.
    """
    async with neighbourhood(root) as hood:
        hub = await hood.join(*CENTRE)
        await _activity(hood, hub)
        data_dir, clock, agency_key, kid = hood.data_dir, hood.clock, hood.agency_key, hood.kid
    tokens = [sign_request(agency_key, kid, clock()).encode() for _ in range(requests)]
    GatewayLog(data_dir, load_private_key(data_dir / KEY_FILE)).tiles.append_batch(tokens)
    async with (
        Gateway(data_dir, settings=load_settings(data_dir), clock=clock) as gateway,
        serve(gateway) as url,
    ):
        yield FilledLog(url, gateway)


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


async def test_a_log_of_10000_entries_verifies_through_a_slow_proxy(tmp_path):
    async with filled_log(tmp_path, 10_000) as log, slow_proxy(log.url) as proxy:
        url = proxy.url
        code, out, err = await porchlight(
            "log", "verify", "--gateway", url, "--data", str(tmp_path / "auditor")
        )
        size = log.size
    tiles = len(tiles_for_size(size)) + len(bundles_for_size(size))
    assert (code, err, size, tiles) == (0, "", 10_003, 81)
    assert out.splitlines() == [
        f"log of {url}: 10003 entries (1 registry version, 10001 requests, 1 answer), "
        "81 tiles and 1024 proofs checked",
        OK_LINE,
    ]
    # Whole bodies: an entry bundle of 256 requests came in hundreds of 512-byte pieces.
    assert proxy.largest > 200 * proxy.piece
    assert sum(1 for _, target in proxy.requests if target.startswith("/tile/")) == 81
    assert (tmp_path / "auditor" / "log-state" / STATE_CHECKPOINT).exists()


# A log of 303 entries: tiles 0/000, 0/001.p/47, 1/000.p/1, entries 000, 001.p/47. Each case
# flips one byte: of the last entry of a bundle (a request's signature), or of a hash.
# An altered entry bundle leaves its entry unchecked; an altered hash tile leaves none.
CHECKED_ALL = "301 requests, 1 answer), 5 tiles and 303 proofs checked"
CHECKED_BUT_ONE = "300 requests, 1 answer, 1 unchecked), 5 tiles and 302 proofs checked"
ALTERED = [
    ("tile/entries/000", -1,
     "tile/entries/000 is altered: entry 255 does not match the signed checkpoint",
     CHECKED_BUT_ONE),
    ("tile/0/000", 5,
     "tile/0/000 is altered: its hashes do not match the entries or the hash tile/1/000.p/1 "
     "holds for it", CHECKED_ALL),
    ("tile/0/001.p/47", 5,
     "tile/0/001.p/47 is altered: its hashes do not match the entries or the signed checkpoint",
     CHECKED_ALL),
    ("tile/entries/001.p/47", -1,
     "tile/entries/001.p/47 is altered: entry 302 does not match the signed checkpoint",
     CHECKED_BUT_ONE),
]


async def test_one_flipped_byte_in_any_tile_is_named(tmp_path):
    altered: dict[str, int] = {}

    def rewrite(method: str, target: str, status: int, body: bytes) -> bytes | None:
        offset = altered.get(target.removeprefix("/"))
        return None if offset is None else _flip(body, offset % len(body))

    async with (
        filled_log(tmp_path, 300) as log,
        slow_proxy(log.url, rewrite=rewrite) as proxy,
    ):
        assert log.size == 303
        for number, (path, offset, message, checked) in enumerate(ALTERED):
            altered.clear()
            altered[path] = offset
            state = tmp_path / f"auditor-{number}"
            code, out, err = await porchlight(
                "log", "verify", "--gateway", proxy.url, "--data", str(state)
            )
            assert (code, err) == (1, ""), path
            assert out.splitlines() == [
                f"log of {proxy.url}: 303 entries (1 registry version, {checked}",
                f"problem: {message}",
                "NOT OK: 1 problem",
            ], path
            assert proxy.rewritten[-1] == "/" + path
            assert not (state / "log-state" / STATE_CHECKPOINT).exists(), path

        # The same audit in JSON names the tile too.
        altered.clear()
        altered["tile/0/000"] = 5
        code, out, _ = await porchlight(
            "log", "verify", "--gateway", proxy.url, "--data", str(tmp_path / "j"), "--json"
        )
    assert code == 1
    report = json.loads(out)
    assert (report["ok"], report["size"], report["tiles_checked"]) == (False, 303, 5)
    assert report["problems"] == [
        {"index": None, "reason": "tile_altered", "tile": "tile/0/000", "message": ALTERED[1][2]}
    ]


def _b64(value: bytes) -> str:
    import base64

    return base64.b64encode(value).decode()


async def test_checkpoints_others_saw_reveal_a_fork(tmp_path):
    async with filled_log(tmp_path, 10) as log:
        tiles = log.gateway.requests.log.tiles
        key = load_private_key(log.gateway.data_dir / KEY_FILE)
        signer, origin = checkpoint_signer(key), log_origin(key.kid)
        size, root = log.size, tiles.root_hash
        forged_7, forged_13, forged_20, forged_20b = (
            sha256_bytes(name) for name in (b"7", b"13", b"20", b"20b")
        )
        files = {}
        for name, checkpoint in {
            "honest.txt": Checkpoint(origin, 5, tiles.root_at(5)),
            "same-size.txt": Checkpoint(origin, size, forged_13),
            "older.txt": Checkpoint(origin, 7, forged_7),
            "longer.txt": Checkpoint(origin, 20, forged_20),
            "longer-too.txt": Checkpoint(origin, 20, forged_20b),
        }.items():
            files[name] = tmp_path / name
            files[name].write_text(sign_checkpoint(checkpoint, signer))

        state = tmp_path / "auditor"
        code, out, err = await porchlight(
            "log", "verify", "--gateway", log.url, "--data", str(state),
            "--checkpoint", str(files["honest.txt"]),
        )
        assert (code, err, out.splitlines()[-1]) == (0, "", OK_LINE)
        seen = (state / "log-state" / STATE_CHECKPOINT).read_text()

        args = [arg for name in files for arg in ("--checkpoint", str(files[name]))]
        code, out, err = await porchlight(
            "log", "verify", "--gateway", log.url, "--data", str(state), *args
        )
        here = f"the gateway's checkpoint (size 13, root {_b64(root)})"
        assert (code, err) == (1, "")
        assert out.splitlines()[1:] == [
            f"problem: fork: {files['same-size.txt']} (size 13, root {_b64(forged_13)}) and "
            f"{here} cannot both be true: the same size with two roots",
            f"problem: fork: {files['older.txt']} (size 7, root {_b64(forged_7)}) and {here} "
            "cannot both be true: no valid consistency proof between them",
            f"problem: fork: {files['longer.txt']} (size 20, root {_b64(forged_20)}) and {here} "
            "cannot both be true: the log would have shrunk",
            f"problem: fork: {files['longer-too.txt']} (size 20, root {_b64(forged_20b)}) and "
            f"{here} cannot both be true: the log would have shrunk",
            f"problem: fork: {files['longer.txt']} and {files['longer-too.txt']} cannot both be "
            "true: the same size 20 with two roots",
            "NOT OK: 5 problems",
        ]
        # A fork is not remembered as the last checkpoint seen.
        assert (state / "log-state" / STATE_CHECKPOINT).read_text() == seen

        code, out, err = await porchlight(
            "log", "verify", "--gateway", log.url, "--data", str(state), "--json",
            "--checkpoint", str(files["older.txt"]),
        )
        report = json.loads(out)
        assert (code, err, report["ok"], report["checkpoints_checked"]) == (1, "", False, 1)
        assert [(p["reason"], p["tile"]) for p in report["problems"]] == [
            ("checkpoint_inconsistent", None)
        ]

        # A checkpoint the gateway did not sign is no evidence of anything: refused whole.
        other = tmp_path / "other.txt"
        other.write_text(sign_checkpoint(
            Checkpoint(origin, 5, tiles.root_at(5)), checkpoint_signer(generate_signing_key())
        ))
        code, out, err = await porchlight(
            "log", "verify", "--gateway", log.url, "--data", str(tmp_path / "fresh"),
            "--checkpoint", str(other),
        )
        assert (code, out) == (1, "")
        assert err == (
            f"porchlight: error: checkpoint {other} is not a checkpoint of this gateway's log: "
            "checkpoint signature not accepted: no trusted key signed this note; check the log's "
            "verifier key\n"
        )
        assert not (tmp_path / "fresh" / "log-state").exists()

    missing = tmp_path / "nowhere.txt"
    code, out, err = await porchlight(
        "log", "verify", "--gateway", "http://127.0.0.1:9", "--data", str(tmp_path / "fresh"),
        "--checkpoint", str(missing),
    )
    assert (code, out, err) == (
        2, "", f"porchlight: error: cannot read checkpoint {missing}: No such file or directory\n"
    )


def sha256_bytes(data: bytes) -> bytes:
    """Return SHA-256 of data (a root hash no log has)."""
    import hashlib

    return hashlib.sha256(data).digest()


async def test_an_entry_the_json_serves_otherwise_and_a_new_gateway_key_are_caught(tmp_path):
    def rewrite(method: str, target: str, status: int, body: bytes) -> bytes | None:
        if not target.startswith("/v1/log/entries") or status != 200:
            return None
        data = json.loads(body)
        for entry in data["entries"]:
            if entry["index"] == 2:  # the answer: its key comes from this endpoint
                header, payload, signature = entry["jws"].split(".")
                tail = "AA" if signature[-2:] != "AA" else "BA"
                entry["jws"] = f"{header}.{payload}.{signature[:-2]}{tail}"
        return json.dumps(data).encode()

    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        await _activity(hood, hub)
        async with slow_proxy(hood.url, rewrite=rewrite) as proxy:
            report = await log_verify(proxy.url, tmp_path / "a")
        assert [(p.index, p.reason) for p in report.problems] == [(2, "entries_disagree")]
        assert report.problems[0].line() == (
            "entry 2: the gateway's JSON entries serve other bytes than its entry bundle "
            "tile/entries/000"
        )
        assert report.counts == {"registry": 1, "request": 1, "answer": 1}  # from the tiles
        # The tiles, the public record, rebuild the checkpoint: it is remembered.
        assert (tmp_path / "a" / STATE_CHECKPOINT).exists()

        assert (await log_verify(hood.url, tmp_path / "b")).ok
        with pytest.raises(GatewayKeyChanged):
            await log_verify(hood.url, tmp_path / "b", gateway_kid=generate_signing_key().kid)


async def test_a_checkpoint_whose_partial_tiles_are_gone_still_verifies(tmp_path):
    """The log grew since the checkpoint the auditor holds: its partial tiles are now full."""
    old: dict[str, bytes] = {}

    def rewrite(method: str, target: str, status: int, body: bytes) -> bytes | None:
        return old.get(target)  # the checkpoint a cache or a slow mirror still serves

    async with filled_log(tmp_path, 300) as log, slow_proxy(log.url, rewrite=rewrite) as proxy:
        tiles = log.gateway.requests.log.tiles
        old["/checkpoint"] = tiles.signed_checkpoint.encode()
        # Entries past the auditor's checkpoint are never read: any bytes will do.
        tiles.append_batch(f"later entry {i}".encode() for i in range(300))
        assert tiles.size == 603
        with pytest.raises(TileMissing):
            tiles.read("tile/0/001.p/47")  # gone: tile/0/001 is full now
        report = await log_verify(proxy.url, tmp_path / "auditor")
    assert report.ok, report.problems
    assert (report.size, report.tiles_checked) == (303, 5)
    # Each partial tile of size 303 was read from its full tile, as tlog-tiles allows.
    asked = [target for _, target in proxy.requests if target.startswith("/tile/")]
    assert {
        "/tile/0/001.p/47", "/tile/0/001", "/tile/entries/001.p/47", "/tile/entries/001"
    } <= set(asked)
