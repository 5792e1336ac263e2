"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): a log's signed tree head.

The note text is the origin line, the tree size in decimal, the base64 root hash, and optional
non-empty extension lines, each ending in a newline. The checkpoint is signed as a C2SP
signed note (``note.py``); opening one checks the signature and the origin together, because
a valid signature over another log's checkpoint proves nothing about this log.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from federation.errors import FederationError
from federation.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE
from federation.tlog.note import (
    NoteError,
    NoteMalformed,
    NoteSigner,
    NoteVerifier,
    open_note,
    sign_note,
)

_SIZE_PATTERN = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(FederationError):
    """Base of every checkpoint failure."""

    default_reason = "checkpoint_error"


class CheckpointMalformed(CheckpointError):
    """The text is not a well-formed checkpoint."""

    default_reason = "checkpoint_malformed"


class CheckpointUnverified(CheckpointError):
    """The checkpoint is not signed by the log's trusted key, or is for another log."""

    default_reason = "checkpoint_unverified"


def _bad_line(text: str) -> bool:
    # A line holds no control characters (newline included) and must be encodable as UTF-8.
    if any(ch < " " for ch in text):
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or _bad_line(self.origin):
            raise CheckpointMalformed(
                "checkpoint origin must be a non-empty line of text", reason="checkpoint_origin"
            )
        if (
            not isinstance(self.size, int)
            or isinstance(self.size, bool)
            or not 0 <= self.size <= MAX_TREE_SIZE
        ):
            raise CheckpointMalformed(
                "checkpoint tree size must be an integer from 0 to 2^64-1",
                reason="checkpoint_size",
            )
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise CheckpointMalformed(
                f"checkpoint root hash must be {HASH_SIZE} bytes", reason="checkpoint_root"
            )
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            if not isinstance(line, str) or not line or _bad_line(line):
                raise CheckpointMalformed(
                    "checkpoint extension lines must be non-empty lines of text",
                    reason="checkpoint_extension",
                )

    def to_text(self) -> str:
        """Return the checkpoint's note text."""
        root64 = base64.b64encode(self.root_hash).decode("ascii")
        lines = [self.origin, str(self.size), root64, *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (without signatures) into a Checkpoint."""
    if not isinstance(text, str):
        raise CheckpointMalformed("checkpoint text must be a string")
    if not text.endswith("\n"):
        raise CheckpointMalformed("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointMalformed(
            "checkpoint needs an origin, a tree size and a root hash line",
            reason="checkpoint_short",
        )
    origin, size_text, root64, *extensions = lines
    if not _SIZE_PATTERN.fullmatch(size_text):
        raise CheckpointMalformed(
            "checkpoint tree size must be ASCII decimal without leading zeros",
            reason="checkpoint_size",
        )
    # Bound the digits before int() so a huge line cannot cost quadratic time.
    if len(size_text) > 20 or int(size_text) > MAX_TREE_SIZE:
        raise CheckpointMalformed("checkpoint tree size exceeds 2^64-1", reason="checkpoint_size")
    try:
        root_hash = base64.b64decode(root64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as err:
        raise CheckpointMalformed(
            "checkpoint root hash is not base64", reason="checkpoint_root"
        ) from err
    if base64.b64encode(root_hash).decode("ascii") != root64:
        raise CheckpointMalformed(
            "checkpoint root hash is not canonical base64", reason="checkpoint_root"
        )
    return Checkpoint(
        origin=origin, size=int(size_text), root_hash=root_hash, extensions=tuple(extensions)
    )


def sign_checkpoint(checkpoint: Checkpoint, *signers: NoteSigner) -> str:
    """Sign a checkpoint and return the signed note."""
    return sign_note(checkpoint.to_text(), *signers)


def open_checkpoint(
    signed: bytes | str,
    verifiers: NoteVerifier | Iterable[NoteVerifier],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint from the expected log and return it."""
    if isinstance(verifiers, NoteVerifier):
        verifiers = [verifiers]
    verifiers = list(verifiers)
    try:
        note = open_note(signed, verifiers)
    except NoteMalformed as err:
        raise CheckpointMalformed(
            f"checkpoint is not a well-formed signed note: {err}", reason="checkpoint_malformed"
        ) from err
    except NoteError as err:
        raise CheckpointUnverified(
            f"checkpoint signature not accepted: {err}", reason=err.reason
        ) from err
    checkpoint = parse_checkpoint(note.text)
    if origin is None:
        # Without an explicit origin, the log's key name must match the origin line, as the
        # spec recommends; otherwise one log's key could vouch for another log's tree.
        if checkpoint.origin not in {sig.name for sig in note.signatures}:
            raise CheckpointUnverified(
                f"checkpoint origin {checkpoint.origin!r} is not the name of the key that "
                "signed it; pass the log's origin explicitly",
                reason="checkpoint_wrong_origin",
            )
    elif checkpoint.origin != origin:
        raise CheckpointUnverified(
            f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}",
            reason="checkpoint_wrong_origin",
        )
    return checkpoint
