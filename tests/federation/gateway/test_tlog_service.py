"""The gateway's transparency log as served: tlog-tiles, JSON entries and proofs, group
commits, re-indexing after a crash, and the parsers of everything new on the wire."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.errors import FederationError
from federation.gateway.app import Gateway
from federation.gateway.settings import load_settings
from federation.http import PublicGatewayClient
from federation.keys import load_private_key
from federation.neighbourhood_log import (
    checkpoint_signer,
    checkpoint_verifier,
    decode_hashes,
    log_origin,
    parse_index,
)
from federation.tlog.checkpoint import open_checkpoint
from federation.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from federation.tlog.tiles import DirectoryStorage, TileLog, TileReader, parse_tile_path
from federation.wire import parse_frame, parse_registry_upload
from tests.federation.agency_fixtures import (
    CENTRE,
    get_json,
    neighbourhood,
    next_message,
    serve,
)
from tests.federation.gateway_fixtures import (  # noqa: F401 - autouse leak checks
    no_leaked_tasks,
    no_leaked_threads,
)


async def _get(url: str) -> tuple[int, bytes, dict]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def test_tiles_entries_and_proofs(tmp_path):
    async with neighbourhood(tmp_path, agency_requests_per_hour=1000) as hood:
        tokens = [hood.sign() for _ in range(300)]
        # Concurrent intake is appended in groups; every request gets its own index.
        answers = await asyncio.gather(*(hood.post_request(t) for t in tokens))
        indices = sorted(answer["log_index"] for status, answer in answers if status == 201)
        assert indices == list(range(1, 301))
        size = hood.log_size
        verifier = checkpoint_verifier(hood.gateway.key.public_jwk)
        assert verifier.name == log_origin(hood.kid)

        status, body, headers = await _get(hood.url + "/checkpoint")
        checkpoint = open_checkpoint(body, verifier, origin=verifier.name)
        assert (status, checkpoint.size) == (200, size)

        # A client that knows only tlog-tiles rebuilds the root from the tiles.
        async def tile(ref):
            status, data, headers = await _get(f"{hood.url}/{ref.path}")
            assert status == 200, ref.path
            assert ("immutable" in headers["Cache-Control"]) == (not ref.is_partial)
            return data

        cache = {}
        from federation.tlog.tiles import tiles_for_size

        for ref in tiles_for_size(size):
            cache[ref] = await tile(ref)
        reader = TileReader(size, lambda ref: cache[ref])
        assert reader.root() == checkpoint.root_hash
        bundle = await tile(parse_tile_path("tile/entries/000"))
        assert bundle[2:].startswith(b"eyJ")  # the first entry: the registry JWS
        for bad, expected in (("tile/0/999", 404), ("tile/x/001", 400), ("tile/0/001.p/0", 400)):
            status, body, headers = await _get(f"{hood.url}/{bad}")
            assert status == expected, (bad, body)
            assert headers["Porchlight-Error-Reason"]

        async with PublicGatewayClient(hood.url) as client:
            page = await client.get_entries(250, 301)
            assert [e.index for e in page.entries] == list(range(250, 301))
            assert page.entries[0].kind == "request"
            assert page.entries[0].jwk == hood.agency_key.public_jwk
            for index in (0, 1, 150, 300):
                proof = await client.get_inclusion_proof(index, size)
                verify_inclusion(
                    index,
                    size,
                    leaf_hash(hood.gateway.requests.log.entry(index)),
                    proof,
                    checkpoint.root_hash,
                )
            old_root = TileReader(size, lambda ref: cache[ref]).root(7)
            proof = await client.get_consistency_proof(7, size)
            verify_consistency(7, size, old_root, checkpoint.root_hash, proof)

        for query, reason in (
            ("/v1/log/entries?start=0&end=300", "bad_range"),
            ("/v1/log/entries?start=5&end=4", "bad_range"),
            ("/v1/log/entries?start=300&end=302", "beyond_log"),
            ("/v1/log/entries?start=01", "bad_range"),
            ("/v1/log/proof/inclusion?index=5&size=3", "bad_range"),
            ("/v1/log/proof/inclusion?index=1&size=999", "beyond_log"),
            ("/v1/log/proof/inclusion?size=3", "bad_range"),
            ("/v1/log/proof/consistency?old=9&new=3", "bad_range"),
            ("/v1/log/proof/consistency?old=1&new=999", "beyond_log"),
            ("/v1/log/proof/consistency?old=-1", "bad_range"),
        ):
            status, answer = await get_json(hood.url + query)
            assert (status, answer["reason"]) == (400, reason), query


async def test_entries_appended_before_a_crash_are_indexed_and_routed(tmp_path):
    async with neighbourhood(tmp_path) as hood:
        hub = await hood.join(*CENTRE)
        token = hood.sign()
        data_dir, clock = hood.data_dir, hood.clock
        membership, key = hub.membership, hub.key
    # The gateway died after the append but before its database commit: the log has the
    # request, the database does not.
    gateway_key = load_private_key(data_dir / "gateway.key")
    log = TileLog(
        DirectoryStorage(data_dir / "log"),
        checkpoint_signer(gateway_key),
        origin=log_origin(gateway_key.kid),
    )
    index = log.append(token.encode())
    async with Gateway(data_dir, settings=load_settings(data_dir), clock=clock) as gateway:
        async with serve(gateway) as url:
            from federation.member.client import GatewayClient

            membership = type(membership)(**{**membership.to_dict(), "url": url})
            async with GatewayClient.for_membership(membership, key) as client:
                message = await next_message(client)
            assert message.jws == token
            assert gateway.requests.log.size == index + 1
            from tests.federation.gateway_fixtures import store_counts

            assert store_counts(data_dir)["requests"] == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.none())
def test_fuzzed_indices(value):
    try:
        number = parse_index(value, "index", default=None if value is None else 0)
    except FederationError as err:
        assert err.reason == "bad_range"
    else:
        assert str(number) == value or value == ""


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=50) | st.integers(), max_size=70) | st.integers() | st.none())
def test_fuzzed_proof_hashes(values):
    try:
        hashes = decode_hashes(values)
    except FederationError as err:
        assert err.reason == "bad_proof"
    else:
        assert all(len(h) == 32 for h in hashes)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["seq", "kind", "id", "jws", "jwk", "proof", "registry", "x"]),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSONISH)
def test_fuzzed_frames_and_registry_uploads(value):
    text = json.dumps(value)
    for parse in (parse_frame, parse_registry_upload):
        try:
            parse(text.encode())
        except FederationError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_binary_bodies(data):
    for parse in (parse_frame, parse_registry_upload):
        with pytest.raises(FederationError):
            parse(b"\xff" + data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_fuzzed_log_entries_peek_or_fail_cleanly(entry):
    from federation.neighbourhood_log import peek_entry

    try:
        peeked = peek_entry(entry)
    except FederationError:
        return
    assert peeked.kind in ("registry", "request", "answer")
