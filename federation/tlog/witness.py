"""The add-checkpoint rules of C2SP tlog-witness, as a pure function of the request body.

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
from dataclasses import dataclass

from federation.errors import FederationError
from federation.tlog.checkpoint import parse_checkpoint
from federation.tlog.cosignature import CosignatureSigner
from federation.tlog.merkle import verify_consistency
from federation.tlog.note import MAX_NOTE_BYTES, NoteError, open_note, parse_note
from federation.witness.state import LogRecord, WitnessState

MAX_PROOF_LINES = 63
MAX_BODY_BYTES = MAX_NOTE_BYTES + 64 * 48
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, content type and body."""

    status: int
    body: str
    content_type: str = "text/plain"


def _bad(message: str) -> Answer:
    return Answer(400, message + "\n")


def add_checkpoint(state: WitnessState, signer: CosignatureSigner, body: bytes,
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
    record = state.get(checkpoint.origin)
    if record is None:
        return Answer(404, "unknown log origin\n")
    try:
        open_note(note, [record.verifier])
    except NoteError:
        return Answer(403, "no signature by the log's key verifies\n")
    if old_size > checkpoint.size:
        return _bad("the old size is above the checkpoint's size")

    outcome: list[Answer] = []

    def decide(current: LogRecord) -> tuple[int, bytes, str] | None:
        if old_size != current.size:
            outcome.append(Answer(409, f"{current.size}\n", "text/x.tlog.size"))
            return None
        if old_size == checkpoint.size and current.size and checkpoint.root_hash != current.root_hash:
            outcome.append(Answer(409, f"{current.size}\n", "text/x.tlog.size"))
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

    state.advance(checkpoint.origin, decide)
    return outcome[0]
