"""Audit a neighbourhood's transparency log: ``porchlight log verify --gateway URL``.

Anyone can run it, against any gateway. It downloads every entry and checks that

- the checkpoint is signed by the gateway's key (pinned in the state directory on first use),
  and the entries rebuild exactly its root hash;
- every registry version is signed by the registry authority (pinned if given, else on first
  use) for this neighbourhood, with versions only going up;
- every request verifies under the agency key of the registry version in force at its place
  in the log, and met the scope and jurisdiction rules when it was signed;
- every answer verifies under the key the gateway vouches for (its kid is the key's
  thumbprint), answers a request logged before it, and is the hub's only answer to it;
- the gateway's inclusion proofs verify (all of them, or a sample of ``max_proofs`` in big
  logs: the rebuilt root already proves every entry's inclusion);
- the log is consistent with the last checkpoint this machine saw, which is then replaced.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from federation.errors import FederationError
from federation.http import GatewayKeyChanged, PublicGatewayClient
from federation.jws import verify_message
from federation.keys import KeyInvalid, KeySet, thumbprint
from federation.neighbourhood_log import MAX_ENTRIES_PER_PAGE, checkpoint_verifier, peek_entry
from federation.registry import VerifiedRegistry, verify_registry
from federation.request_rules import check_request_jws
from federation.schemas import TYP_ANSWER, AnswerClaims
from federation.tlog.checkpoint import CheckpointError, open_checkpoint
from federation.tlog.merkle import (
    MemoryTree,
    ProofInvalid,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

STATE_GATEWAY = "gateway.json"
STATE_CHECKPOINT = "checkpoint"
PROOF_CONCURRENCY = 16


class LogVerifyError(FederationError):
    """The log cannot be audited at all (its checkpoint does not verify, say)."""

    default_reason = "log_unverifiable"


@dataclass(frozen=True)
class LogProblem:
    """One thing wrong with the log, at an entry index when it is about one entry."""

    index: int | None
    reason: str
    message: str


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

    def add(self, index: int | None, reason: str, message: str) -> None:
        """Record a problem."""
        self.problems.append(LogProblem(index, reason, message))


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

    def check(self, index: int, jws: str, jwk: dict[str, Any]) -> None:
        try:
            peeked = peek_entry(jws)
        except FederationError as err:
            self.report.add(index, "unknown_entry", f"entry is not a logged message: {err}")
            return
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
        message = verify_message(
            jws, typ=TYP_ANSWER, trusted=KeySet([jwk]), audience=self.gateway_kid, now=at
        )
        claims = cast(AnswerClaims, message.model)
        if claims.request not in self.requests:
            self.report.add(
                index,
                "answer_to_unknown_request",
                f"answer to request {claims.request}, which is not logged before it",
            )
        pair = (claims.request, message.kid)
        if pair in self.answered:
            self.report.add(
                index, "duplicate_answer", f"hub {message.kid} answered {claims.request} twice"
            )
        self.answered.add(pair)


async def log_verify(
    gateway_url: str,
    state_dir: str | os.PathLike[str],
    *,
    authority_kid: str | None = None,
    gateway_kid: str | None = None,
    max_proofs: int = 4096,
) -> LogReport:
    """Replay and check a gateway's whole log; remember its checkpoint if it is consistent."""
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
        signed = await client.get_checkpoint()
        try:
            checkpoint = open_checkpoint(signed, verifier, origin=verifier.name)
        except CheckpointError as err:
            raise LogVerifyError(
                f"the gateway's checkpoint is not signed by its key: {err}"
            ) from err
        size = checkpoint.size
        report.size = size

        tree = MemoryTree()
        auditor = _Auditor(report, kid, authority_kid)
        entries: list[bytes] = []
        for start in range(0, size, MAX_ENTRIES_PER_PAGE):
            end = min(size, start + MAX_ENTRIES_PER_PAGE)
            page = await client.get_entries(start, end)
            if [item.index for item in page.entries] != list(range(start, end)):
                raise LogVerifyError(f"the gateway did not serve entries {start} to {end - 1}")
            for item in page.entries:
                entry = item.jws.encode("ascii")
                entries.append(entry)
                tree.append(entry)
                auditor.check(item.index, item.jws, dict(item.jwk))
        root_ok = tree.root() == checkpoint.root_hash
        if not root_ok:
            report.add(
                None,
                "root_mismatch",
                "the entries the gateway serves do not rebuild its signed checkpoint's root hash",
            )

        indices = list(range(size))
        if size > max_proofs:
            indices = sorted({0, size - 1, *random.sample(range(size), max_proofs - 2)})
        semaphore = asyncio.Semaphore(PROOF_CONCURRENCY)

        async def check_proof(index: int) -> None:
            async with semaphore:
                try:
                    hashes = await client.get_inclusion_proof(index, size)
                    verify_inclusion(
                        index, size, leaf_hash(entries[index]), hashes, checkpoint.root_hash
                    )
                except (FederationError, ProofInvalid) as err:
                    report.add(index, "bad_inclusion_proof", f"inclusion proof: {err}")

        await asyncio.gather(*(check_proof(index) for index in indices))
        report.proofs_checked = len(indices)

        consistent = await _check_consistency(client, state, report, verifier, checkpoint, tree)
    if consistent and root_ok:
        _write_state(pinned_path, json.dumps({"url": gateway_url, "kid": kid}) + "\n")
        _write_state(state / STATE_CHECKPOINT, signed)
    return report


async def _check_consistency(
    client: PublicGatewayClient,
    state: Path,
    report: LogReport,
    verifier: Any,
    checkpoint: Any,
    tree: MemoryTree,
) -> bool:
    path = state / STATE_CHECKPOINT
    if not path.exists():
        return True
    try:
        previous = open_checkpoint(path.read_text(), verifier, origin=verifier.name)
    except CheckpointError as err:
        raise LogVerifyError(f"the stored checkpoint {path} does not open: {err}") from err
    report.previous_size = previous.size
    if previous.size > checkpoint.size:
        report.add(
            None,
            "checkpoint_inconsistent",
            f"the log shrank from {previous.size} entries, seen before, to {checkpoint.size}",
        )
        return False
    try:
        hashes = await client.get_consistency_proof(previous.size, checkpoint.size)
        verify_consistency(
            previous.size, checkpoint.size, previous.root_hash, checkpoint.root_hash, hashes
        )
    except (FederationError, ProofInvalid) as err:
        report.add(
            None,
            "checkpoint_inconsistent",
            f"the log at size {checkpoint.size} is not consistent with the checkpoint at size "
            f"{previous.size} seen before: {err}",
        )
        return False
    if tree.size >= previous.size and tree.root(previous.size) != previous.root_hash:
        report.add(
            None,
            "checkpoint_inconsistent",
            f"the entries do not rebuild the checkpoint at size {previous.size} seen before",
        )
        return False
    return True
