"""Typed failures of the hub: each message says what went wrong and what to do."""


class PorchlightError(Exception):
    """A failure shown to the user as one line on stderr."""

    exit_code = 1


class UsageError(PorchlightError):
    """The command line or its values are wrong."""

    exit_code = 2


class ConfigError(PorchlightError):
    """config.toml is missing, malformed or holds an unknown or mistyped key."""


class DataDirError(PorchlightError):
    """The data dir is missing, foreign, or already holds a hub."""


class PassphraseError(PorchlightError):
    """The passphrase is wrong, too short, or could not be read."""


class MediaError(PorchlightError):
    """A file is not media, or media could not be remuxed."""


class SegmentCorrupt(PorchlightError):
    """A vault file is missing, truncated, or fails its hash or its decryption."""

    def __init__(self, segment_id: str, path: str, why: str) -> None:
        super().__init__(f"segment {segment_id} ({path}) is damaged: {why}")
        self.segment_id = segment_id
        self.path = path
        self.why = why


class StorageFull(PorchlightError):
    """The disk is full; nothing was indexed."""


class NotSealedToYou(PorchlightError):
    """A segment was not sealed to the key that tried to open it (a role enforced by encryption)."""
