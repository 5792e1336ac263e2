"""C2SP tlog-witness: the add-checkpoint rules, as a pure function of a request body and the
witness's memory of each log it follows.

Every witness shares these rules: the stand-alone program (`federation/witness/`) keeps its
memory in a file of its own, a hub witnessing its gateway's log keeps it in the hub's database.

The answer statuses are the spec's: 404 for an unknown origin, 403 when no trusted log
signature verifies, 400 for a malformed body or an old size above the new one, 409 (with the
witness's size, `text/x.tlog.size`) when the old size is not the last cosigned one or the same
size comes with another root, 422 when the consistency proof fails, else 200 with the
cosignature line.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from federation.errors import FederationError
from federation.tlog.checkpoint import parse_checkpoint
from federation.tlog.cosignature import CosignatureSigner
from federation.tlog.merkle import verify_consistency
from federation.tlog.note import MAX_NOTE_BYTES, NoteError, NoteVerifier, open_note, parse_note

MAX_PROOF_LINES = 63
MAX_BODY_BYTES = MAX_NOTE_BYTES + 64 * 48
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class LogRecord:
    """A log the witness follows: its origin, key, and the latest checkpoint it cosigned."""

    origin: str
    verifier: NoteVerifier
    size: int
    root_hash: bytes
    checkpoint: str


# What decide() returns to be stored: the new size, root hash and signed checkpoint.
Update = tuple[int, bytes, str]


class WitnessMemory(Protocol):
    """Where a witness keeps the latest checkpoint it cosigned for each log it follows."""

    def get(self, origin: str) -> LogRecord | None:
        """Return one log, or None if the witness does not follow it."""

    def advance(self, origin: str, decide: Callable[[LogRecord], Update | None]
                ) -> LogRecord | None:
        """Atomically read a log's record, let decide() check the submission, and store its
        answer if it returns one; return the record decide saw (None for an unknown log)."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, content type and body."""

    status: int
    body: str
    content_type: str = "text/plain"


def _bad(message: str) -> Answer:
    return Answer(400, message + "\n")


def _conflict(size: int) -> Answer:
    return Answer(409, f"{size}\n", SIZE_CONTENT_TYPE)


def add_checkpoint(memory: WitnessMemory, signer: CosignatureSigner, body: bytes,
                   now: int) -> Answer:
    """Check a submitted checkpoint against the last one cosigned; cosign it if consistent."""
    if len(body) > MAX_BODY_BYTES:
        return _bad("request body too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _bad("request body is not UTF-8")
    head, sep, note = text.partition("\n\n")
    if not sep:
        return _bad("no empty line between the proof and the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        return _bad("the first line must be 'old <size>'")
    old_size = int(match.group(1))
    if len(lines) - 1 > MAX_PROOF_LINES:
        return _bad(f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except (binascii.Error, ValueError):
        return _bad("a consistency proof line is not base64")
    try:
        checkpoint_text, _ = parse_note(note)
        checkpoint = parse_checkpoint(checkpoint_text)
    except FederationError:
        return _bad("the checkpoint is not a signed checkpoint note")
    record = memory.get(checkpoint.origin)
    if record is None:
        return Answer(404, "unknown log origin\n")
    try:
        open_note(note, [record.verifier])
    except NoteError:
        return Answer(403, "no signature by the log's key verifies\n")
    if old_size > checkpoint.size:
        return _bad("the old size is above the checkpoint's size")

    outcome: list[Answer] = []

    def decide(current: LogRecord) -> Update | None:
        if old_size != current.size:
            outcome.append(_conflict(current.size))
            return None
        if old_size == checkpoint.size and current.size and checkpoint.root_hash != current.root_hash:
            outcome.append(_conflict(current.size))
            return None
        if old_size == 0 and proof:
            outcome.append(Answer(422, "the proof must be empty from size 0\n"))
            return None
        if old_size:
            try:
                verify_consistency(old_size, checkpoint.size, current.root_hash,
                                   checkpoint.root_hash, proof)
            except FederationError:
                outcome.append(Answer(422, "the consistency proof does not verify\n"))
                return None
        outcome.append(Answer(200, signer.cosign(checkpoint_text, now)))
        return checkpoint.size, checkpoint.root_hash, note

    if memory.advance(checkpoint.origin, decide) is None:
        return Answer(404, "unknown log origin\n")  # no longer followed since get()
    return outcome[0]
