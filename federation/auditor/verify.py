"""Audit a neighbourhood's transparency log: ``porchlight log verify --gateway URL``.

Anyone can run it, against any gateway. It reads the log as the public reads it, from the
C2SP tlog-tiles the gateway serves (every hash tile and entry bundle, full and partial), and
checks that

- the checkpoint is signed by the gateway's key (pinned in the state directory on first use);
- the tiles and entry bundles rebuild exactly its root hash; a tile or bundle that does not is
  named by its path (``federation.auditor.tiles``);
- every registry version is signed by the registry authority (pinned if given, else on first
  use) for this neighbourhood, with versions only going up;
- every request verifies under the agency key of the registry version in force at its place
  in the log, and met the scope and jurisdiction rules when it was signed;
- every answer verifies under the one-time key it carries (its kid is the key's thumbprint;
  the JSON entries endpoint must name the same key and serve the same entry bytes), answers
  a request logged before it, and is the only answer under its key to it;
- the gateway's inclusion proofs verify (all of them, or a sample of ``max_proofs`` in big
  logs: the rebuilt root already proves every entry's inclusion);
- the log is consistent with the last checkpoint this machine saw, which is then replaced,
  and with every checkpoint others saw that is given: two validly signed checkpoints that
  cannot both be true (the same size with two roots, or no valid consistency proof between
  them) are a fork.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from federation.answers import verify_answer
from federation.auditor.tiles import RebuiltLog, rebuild_log
from federation.errors import FederationError
from federation.http import GatewayKeyChanged, GatewayRejected, PublicGatewayClient
from federation.keys import KeyInvalid, thumbprint
from federation.neighbourhood_log import (
    MAX_ENTRIES_PER_PAGE,
    PeekedEntry,
    checkpoint_verifier,
    peek_entry,
)
from federation.registry import VerifiedRegistry, verify_registry
from federation.request_rules import check_request_jws
from federation.tlog.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from federation.tlog.cosignature import CosignatureVerifier, verify_cosignatures
from federation.tlog.merkle import (
    HASH_SIZE,
    ProofInvalid,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from federation.tlog.note import NoteVerifier
from federation.tlog.tiles import (
    MAX_ENTRY_SIZE,
    TILE_WIDTH,
    TileRef,
    bundles_for_size,
    decode_bundle,
    encode_bundle,
    tiles_for_size,
)

STATE_GATEWAY = "gateway.json"
STATE_CHECKPOINT = "checkpoint"
PROOF_CONCURRENCY = 16
TILE_CONCURRENCY = 8
MAX_HASH_TILE_BYTES = TILE_WIDTH * HASH_SIZE
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_ENTRY_SIZE)
FORK = "checkpoint_inconsistent"
NOT_WITNESSED = "not_witnessed"


class LogVerifyError(FederationError):
    """The log cannot be audited at all (its checkpoint does not verify, say)."""

    default_reason = "log_unverifiable"


@dataclass(frozen=True)
class LogProblem:
    """One thing wrong with the log, at an entry index when it is about one entry."""

    index: int | None
    reason: str
    message: str
    tile: str | None = None

    def line(self) -> str:
        """Return the problem as one line of text."""
        if self.index is not None and self.tile is None:
            return f"entry {self.index}: {self.message}"
        return self.message


@dataclass
class LogReport:
    """What ``log_verify`` found."""

    gateway_url: str
    gateway_kid: str
    origin: str
    size: int = 0
    previous_size: int | None = None
    authority_kid: str | None = None
    authority_pinned: bool = False
    counts: dict[str, int] = field(
        default_factory=lambda: {"registry": 0, "request": 0, "answer": 0}
    )
    proofs_checked: int = 0
    tiles_checked: int = 0
    entries_unchecked: int = 0
    checkpoints_checked: int = 0
    # The witnesses given that validly cosigned the checkpoint, and how many were required.
    cosigned_by: list[str] = field(default_factory=list)
    min_witnesses: int = 0
    problems: list[LogProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tell whether the log checked out entirely."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def add(self, index: int | None, reason: str, message: str, tile: str | None = None) -> None:
        """Record a problem."""
        self.problems.append(LogProblem(index, reason, message, tile))


def _write_state(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Auditor:
    """Checks entries in log order, keeping the registry in force and the requests seen."""

    def __init__(self, report: LogReport, gateway_kid: str, authority_kid: str | None) -> None:
        self.report = report
        self.gateway_kid = gateway_kid
        self.authority_kid = authority_kid
        self.registry: VerifiedRegistry | None = None
        self.ever_listed: set[str] = set()
        self.requests: set[str] = set()
        self.answered: set[tuple[str, str]] = set()

    def check(self, index: int, jws: str, jwk: dict[str, Any], peeked: PeekedEntry) -> None:
        """Check one entry, in log order."""
        self.report.counts[peeked.kind] = self.report.counts.get(peeked.kind, 0) + 1
        iat = peeked.claims.get("iat")
        # Entries are records: check them as of when they were signed.
        at = float(iat) if isinstance(iat, int) and not isinstance(iat, bool) else 0.0
        try:
            getattr(self, f"_{peeked.kind}")(index, jws, jwk, peeked, at)
        except FederationError as err:
            self.report.add(index, err.reason, f"{peeked.kind}: {err}")

    def _registry(self, index: int, jws: str, jwk: dict[str, Any], peeked: Any, at: float) -> None:
        if self.authority_kid is None:
            # Not pinned: trust the first registry's signer, and say so in the report.
            self.authority_kid = thumbprint(jwk)
            self.report.authority_kid = self.authority_kid
        registry = verify_registry(
            jws,
            authority_jwk=jwk,
            authority_kid=self.authority_kid,
            audience=self.gateway_kid,
            now=at,
            last_version=self.registry.version if self.registry else None,
        )
        self.registry = registry
        self.ever_listed |= set(registry.agencies)

    def _request(self, index: int, jws: str, jwk: dict[str, Any], peeked: Any, at: float) -> None:
        if self.registry is None:
            self.report.add(index, "no_registry", "a request was logged before any registry")
            return
        checked = check_request_jws(
            jws,
            registry=self.registry,
            audience=self.gateway_kid,
            now=at,
            ever_listed=self.ever_listed,
        )
        if checked.id in self.requests:
            self.report.add(index, "duplicate_request", f"request {checked.id} is logged twice")
        self.requests.add(checked.id)

    def _answer(self, index: int, jws: str, jwk: dict[str, Any], peeked: Any, at: float) -> None:
        try:
            signer = thumbprint(jwk)
        except KeyInvalid as err:
            self.report.add(
                index, "answer_key_invalid", f"the gateway vouches no usable key: {err}"
            )
            return
        if signer != peeked.kid:
            self.report.add(
                index, "answer_key_mismatch", "the key the gateway vouches for is not the signer's"
            )
            return
        # Signed by a one-time key it carries (federation/answers.py): it names no household.
        message = verify_answer(jws, audience=self.gateway_kid, now=at)
        claims = message.claims
        if claims.request not in self.requests:
            self.report.add(
                index,
                "answer_to_unknown_request",
                f"answer to request {claims.request}, which is not logged before it",
            )
        pair = (claims.request, message.kid)
        if pair in self.answered:
            self.report.add(
                index, "duplicate_answer", f"key {message.kid} answered {claims.request} twice"
            )
        self.answered.add(pair)


async def log_verify(
    gateway_url: str,
    state_dir: str | os.PathLike[str],
    *,
    authority_kid: str | None = None,
    gateway_kid: str | None = None,
    max_proofs: int = 1024,
    checkpoints: Sequence[tuple[str, str]] = (),
    witnesses: Sequence[CosignatureVerifier] = (),
    min_witnesses: int = 0,
) -> LogReport:
    """Rebuild and check a gateway's whole log from its tiles; remember its checkpoint if sound.

    ``checkpoints`` are (name, signed note) pairs that others saw; each must be signed by the
    gateway, and any that cannot be true together with the log served now is reported as a fork.
    The served checkpoint must carry cosignatures by at least ``min_witnesses`` of
    ``witnesses``; which of them cosigned is reported either way.
    """
    state = Path(state_dir)
    async with PublicGatewayClient(gateway_url, timeout=60.0) as client:
        info = await client.info()
        kid = info.gateway.kid
        jwk = info.gateway.jwk.model_dump(exclude_none=True)
        pinned_path = state / STATE_GATEWAY
        pinned = json.loads(pinned_path.read_text())["kid"] if pinned_path.exists() else None
        for expected in (gateway_kid, pinned):
            if expected is not None and expected != kid:
                raise GatewayKeyChanged(
                    f"the gateway at {gateway_url} has key {kid}, not {expected}; this is "
                    "another log, or the gateway was re-keyed"
                )
        verifier = checkpoint_verifier(jwk)
        report = LogReport(
            gateway_url=gateway_url,
            gateway_kid=kid,
            origin=verifier.name,
            authority_kid=authority_kid,
            authority_pinned=authority_kid is not None,
        )
        # Others' checkpoints first: one that is not this gateway's is an error in the input.
        seen = [(name, _open_seen(name, text, verifier)) for name, text in checkpoints]
        signed = await client.get_checkpoint()
        try:
            checkpoint = open_checkpoint(signed, verifier, origin=verifier.name)
        except CheckpointError as err:
            raise LogVerifyError(
                f"the gateway's checkpoint is not signed by its key: {err}"
            ) from err
        report.size = checkpoint.size
        report.min_witnesses = min_witnesses
        report.cosigned_by = sorted(c.witness for c in verify_cosignatures(signed, witnesses))
        witnessed = len(report.cosigned_by) >= min_witnesses
        if not witnessed:
            report.add(
                None,
                NOT_WITNESSED,
                f"the checkpoint is cosigned by {len(report.cosigned_by)} of the "
                f"{min_witnesses} witnesses required "
                f"({', '.join(report.cosigned_by) or 'none of those given'})",
            )

        rebuilt = await _rebuild(client, checkpoint, report)
        await _check_entries(client, rebuilt, report, kid, authority_kid)
        await _check_inclusion_proofs(client, rebuilt, checkpoint, report, max_proofs)

        stored_path = state / STATE_CHECKPOINT
        if stored_path.exists():
            try:
                previous = open_checkpoint(
                    stored_path.read_text(), verifier, origin=verifier.name
                )
            except CheckpointError as err:
                raise LogVerifyError(
                    f"the stored checkpoint {stored_path} does not open: {err}"
                ) from err
            report.previous_size = previous.size
            seen.insert(0, ("the checkpoint this machine saw last", previous))
        forks_before = len(report.problems)
        await _check_forks(client, rebuilt, checkpoint, seen, report)
        report.checkpoints_checked = len(checkpoints)
        forked = any(p.reason == FORK for p in report.problems[forks_before:])
    # A checkpoint the witnesses did not vouch for may be a view shown to this machine alone:
    # it is not remembered as the one seen last.
    if rebuilt.verified and not forked and witnessed:
        _write_state(pinned_path, json.dumps({"url": gateway_url, "kid": kid}) + "\n")
        _write_state(state / STATE_CHECKPOINT, signed)
    return report


def _open_seen(name: str, text: str, verifier: NoteVerifier) -> Checkpoint:
    try:
        return open_checkpoint(text, verifier, origin=verifier.name)
    except CheckpointError as err:
        raise LogVerifyError(
            f"checkpoint {name} is not a checkpoint of this gateway's log: {err}",
            reason="checkpoint_unverified",
        ) from err


async def _rebuild(
    client: PublicGatewayClient, checkpoint: Checkpoint, report: LogReport
) -> RebuiltLog:
    """Fetch every hash tile and entry bundle of the checkpoint's tree and rebuild it."""
    size = checkpoint.size
    semaphore = asyncio.Semaphore(TILE_CONCURRENCY)

    async def fetch(ref: TileRef) -> bytes | None:
        limit = MAX_BUNDLE_BYTES if ref.level == "entries" else MAX_HASH_TILE_BYTES
        async with semaphore:
            try:
                return await client.get_tile(ref.path, limit)
            except GatewayRejected as err:
                if err.status != 404 or not ref.is_partial:
                    return None
            # tlog-tiles lets a log drop a partial tile once the full one exists (the log
            # grew since its checkpoint): the full tile's first W hashes or entries are it.
            try:
                full = await client.get_tile(TileRef(ref.level, ref.index).path, limit)
            except GatewayRejected:
                return None
        if ref.level == "entries":
            try:
                return encode_bundle(decode_bundle(full)[: ref.width])
            except FederationError:
                return None
        return full[: HASH_SIZE * ref.width]

    tile_refs = tiles_for_size(size)
    bundle_refs = bundles_for_size(size)
    fetched = await asyncio.gather(*(fetch(ref) for ref in tile_refs + bundle_refs))
    tiles = dict(zip(tile_refs, fetched[: len(tile_refs)], strict=True))
    bundles = dict(zip(bundle_refs, fetched[len(tile_refs) :], strict=True))
    report.tiles_checked = len(tile_refs) + len(bundle_refs)
    rebuilt = await asyncio.to_thread(rebuild_log, size, checkpoint.root_hash, tiles, bundles)
    for fault in rebuilt.faults:
        report.add(None, fault.reason, fault.message, fault.path)
    return rebuilt


async def _check_entries(
    client: PublicGatewayClient,
    rebuilt: RebuiltLog,
    report: LogReport,
    gateway_kid: str,
    authority_kid: str | None,
) -> None:
    """Check every entry the tiles hold, with the signer keys the gateway vouches for."""
    peeked: dict[int, PeekedEntry] = {}
    for index, entry in enumerate(rebuilt.entries):
        if entry is None:
            continue
        try:
            peeked[index] = peek_entry(entry)
        except FederationError as err:
            report.add(index, "unknown_entry", f"entry is not a logged message: {err}")
    # Requests verify under the registry; registry versions and answers need the key the
    # gateway names for them, which only its JSON entries carry.
    keyed = [i for i, p in peeked.items() if p.kind in ("registry", "answer")]
    keys = await _entry_keys(client, keyed, rebuilt, report)
    auditor = _Auditor(report, gateway_kid, authority_kid)
    for index in sorted(peeked):
        entry = rebuilt.entries[index]
        assert entry is not None
        auditor.check(index, entry.decode("ascii", "replace"), keys.get(index, {}), peeked[index])
    report.entries_unchecked = sum(1 for entry in rebuilt.entries if entry is None)


async def _entry_keys(
    client: PublicGatewayClient, indices: list[int], rebuilt: RebuiltLog, report: LogReport
) -> dict[int, dict[str, Any]]:
    """Return the signer key the gateway serves for each entry index, page by page."""
    pages: dict[int, list[int]] = {}
    for index in indices:
        pages.setdefault(index // MAX_ENTRIES_PER_PAGE, []).append(index)
    keys: dict[int, dict[str, Any]] = {}
    for wanted in pages.values():
        start, end = min(wanted), max(wanted) + 1
        page = await client.get_entries(start, end)
        served = {item.index: item for item in page.entries}
        for index in wanted:
            item = served.get(index)
            if item is None:
                report.add(index, "entry_not_served", "the gateway's JSON entries leave it out")
                continue
            if item.jws.encode("ascii") != rebuilt.entries[index]:
                report.add(
                    index,
                    "entries_disagree",
                    "the gateway's JSON entries serve other bytes than its entry bundle "
                    f"{TileRef('entries', index // TILE_WIDTH).path}",
                )
            keys[index] = dict(item.jwk)
    return keys


async def _check_inclusion_proofs(
    client: PublicGatewayClient,
    rebuilt: RebuiltLog,
    checkpoint: Checkpoint,
    report: LogReport,
    max_proofs: int,
) -> None:
    """Check the gateway's inclusion proofs: of every entry, or of a sample in big logs."""
    size = checkpoint.size
    indices = [i for i in range(size) if rebuilt.entries[i] is not None]
    if len(indices) > max_proofs:
        indices = sorted({indices[0], indices[-1], *random.sample(indices[1:-1], max_proofs - 2)})
    semaphore = asyncio.Semaphore(PROOF_CONCURRENCY)

    async def check_proof(index: int) -> None:
        entry = rebuilt.entries[index]
        assert entry is not None
        async with semaphore:
            try:
                hashes = await client.get_inclusion_proof(index, size)
                verify_inclusion(index, size, leaf_hash(entry), hashes, checkpoint.root_hash)
            except (FederationError, ProofInvalid) as err:
                report.add(index, "bad_inclusion_proof", f"inclusion proof: {err}")

    await asyncio.gather(*(check_proof(index) for index in indices))
    report.proofs_checked = len(indices)


def _short(root_hash: bytes) -> str:
    return base64.b64encode(root_hash).decode("ascii")


async def _check_forks(
    client: PublicGatewayClient,
    rebuilt: RebuiltLog,
    current: Checkpoint,
    seen: list[tuple[str, Checkpoint]],
    report: LogReport,
) -> None:
    """Report every seen checkpoint that cannot be true together with the current one."""
    reader = rebuilt.reader()
    here = f"the gateway's checkpoint (size {current.size}, root {_short(current.root_hash)})"
    for name, other in seen:
        there = f"{name} (size {other.size}, root {_short(other.root_hash)})"
        if other.size > current.size:
            report.add(None, FORK, f"fork: {there} and {here} cannot both be true: the log "
                       "would have shrunk")
            continue
        if other.size == current.size:
            if other.root_hash != current.root_hash:
                report.add(None, FORK, f"fork: {there} and {here} cannot both be true: the "
                           "same size with two roots")
            continue
        try:
            hashes = await client.get_consistency_proof(other.size, current.size)
            verify_consistency(
                other.size, current.size, other.root_hash, current.root_hash, hashes
            )
            proof_ok = True
        except (FederationError, ProofInvalid):
            proof_ok = False
        if reader is not None:
            # The tiles are the whole tree: they settle it, whatever the proof endpoint says.
            consistent = reader.root(other.size) == other.root_hash
            if consistent and not proof_ok:
                report.add(None, "bad_consistency_proof", f"the gateway serves no valid "
                           f"consistency proof from size {other.size} to {current.size}, "
                           "though its tiles are consistent")
        else:
            consistent = proof_ok
        if not consistent:
            report.add(None, FORK, f"fork: {there} and {here} cannot both be true: no valid "
                       "consistency proof between them")
    # Two seen checkpoints beyond the log served now can still contradict each other.
    beyond: dict[int, tuple[str, Checkpoint]] = {}
    for name, other in seen:
        if other.size <= current.size:
            continue
        first = beyond.setdefault(other.size, (name, other))
        if first[1].root_hash != other.root_hash:
            report.add(None, FORK, f"fork: {first[0]} and {name} cannot both be true: the same "
                       f"size {other.size} with two roots")
