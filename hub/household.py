"""The household's keys: the age identity (passphrase-sealed), its public recipients, the hub key."""

from __future__ import annotations

import getpass
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyrage

from federation.keys import SigningKey, load_private_key
from hub.config import Config
from hub.datadir import DataDir, write_private
from hub.errors import PassphraseError
from hub.passphrase_seal import DEFAULT_WORK_FACTOR, SealError, open_sealed, seal
from hub.words import plural

ENV_PASSPHRASE = "PORCHLIGHT_PASSPHRASE"
MIN_PASSPHRASE = 12
PROMPT_ATTEMPTS = 3


def read_passphrase(
    file: Path | None, *, confirm: bool = False, check: Callable[[str], None] | None = None,
    prompt: str = "Household passphrase", environment: bool = True,
) -> str:
    """Read the owner's passphrase from --passphrase-file, PORCHLIGHT_PASSPHRASE, or a prompt.

    `check` raises PassphraseError for a passphrase it refuses (too short, wrong); at a prompt
    it runs before the confirmation is asked, and a refused passphrase is asked again.
    `environment=False` skips PORCHLIGHT_PASSPHRASE (a new passphrase is never taken from it).
    """
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise PassphraseError(f"cannot read the passphrase file {file}: {err}") from err
        value = text.rstrip("\r\n")
    elif environment and os.environ.get(ENV_PASSPHRASE):
        value = os.environ[ENV_PASSPHRASE]
    elif sys.stdin.isatty():
        return _ask(confirm, check, prompt)
    else:
        raise PassphraseError(
            "a passphrase is needed: use --passphrase-file FILE, set PORCHLIGHT_PASSPHRASE, "
            "or run in a terminal"
        )
    _accept(value, check)
    return value


def _accept(value: str, check: Callable[[str], None] | None) -> None:
    if not value:
        raise PassphraseError("the passphrase is empty")
    if check is not None:
        check(value)


def _ask(confirm: bool, check: Callable[[str], None] | None, prompt: str) -> str:
    """Prompt until a passphrase is accepted, at most PROMPT_ATTEMPTS times."""
    for attempt in range(1, PROMPT_ATTEMPTS + 1):
        value = getpass.getpass(f"{prompt}: ")
        try:
            # Check first: confirming a passphrase that is then refused wastes the typing.
            _accept(value, check)
            if confirm and getpass.getpass("Repeat the passphrase: ") != value:
                raise PassphraseError("the two passphrases differ")
            return value
        except PassphraseError as err:
            if attempt == PROMPT_ATTEMPTS:
                raise
            left = PROMPT_ATTEMPTS - attempt
            sys.stderr.write(f"{err}; try again ({plural(left, 'try', 'tries')} left)\n")
    raise AssertionError("unreachable")


def unlock_household(data: DataDir, file: Path | None) -> pyrage.x25519.Identity:
    """Ask for the passphrase and open the household identity; at a prompt, ask again if wrong."""
    opened: list[pyrage.x25519.Identity] = []
    read_passphrase(file, check=lambda value: opened.append(
        unlock_household_identity(data, value)))
    return opened[-1]


def check_new_passphrase(value: str) -> None:
    """Refuse a passphrase that is too short to protect the footage."""
    if len(value) < MIN_PASSPHRASE:
        raise PassphraseError(
            f"the passphrase must have at least {MIN_PASSPHRASE} characters (it has {len(value)})"
        )


@contextmanager
def key_derivation_progress(what: str) -> Iterator[None]:
    """Show that a slow scrypt key derivation is running, with elapsed seconds on a terminal."""
    stream = sys.stderr
    done = threading.Event()
    started = time.monotonic()
    if stream.isatty():
        def spin() -> None:
            while not done.wait(0.25):
                stream.write(f"\r{what}... {time.monotonic() - started:4.1f} s")
                stream.flush()

        thread = threading.Thread(target=spin, name="kdf-progress", daemon=True)
        thread.start()
    else:
        # Off a terminal (scripts, CI) stay silent, so an error stays the only line on stderr.
        thread = None
    try:
        yield
    finally:
        done.set()
        if thread is not None:
            thread.join()
            stream.write(f"\r{what}: done in {time.monotonic() - started:.1f} s\n")


def create_household_identity(data: DataDir, passphrase: str,
                              work_factor: int = DEFAULT_WORK_FACTOR) -> str:
    """Generate the household X25519 identity, store it only passphrase-sealed; return its recipient."""
    check_new_passphrase(passphrase)
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    with key_derivation_progress("Sealing the household key with your passphrase (age scrypt)"):
        sealed = seal(f"{identity}\n".encode(), passphrase, work_factor)
    write_private(data.identity, sealed)
    data.recipient.write_text(recipient + "\n", encoding="utf-8")
    return recipient


def household_recipient(data: DataDir) -> str:
    """Return the household's public age recipient."""
    return data.recipient.read_text(encoding="utf-8").strip()


def vault_recipients(data: DataDir, config: Config) -> list[pyrage.x25519.Recipient]:
    """Return every recipient footage is sealed to: the household plus the config's extras."""
    texts = [household_recipient(data), *config.vault.extra_recipients]
    return [pyrage.x25519.Recipient.from_str(text) for text in dict.fromkeys(texts)]


def unlock_household_identity(data: DataDir, passphrase: str) -> pyrage.x25519.Identity:
    """Open the household identity with the passphrase; raise PassphraseError if it is wrong."""
    sealed = data.identity.read_bytes()
    with key_derivation_progress("Unlocking the household key (age scrypt)"):
        try:
            plain = open_sealed(sealed, passphrase)
        except SealError:
            raise PassphraseError("wrong passphrase for the household key") from None
    return pyrage.x25519.Identity.from_str(plain.decode().strip())


def change_household_passphrase(data: DataDir, identity: pyrage.x25519.Identity, new: str,
                                work_factor: int) -> None:
    """Seal the (unlocked) household identity with a new passphrase; the old one opens nothing.

    The identity itself is unchanged, so every segment stays readable. Backups taken before
    hold the key sealed with the passphrase of their day (docs/backup.md).
    """
    check_new_passphrase(new)
    if str(identity.to_public()) != household_recipient(data):
        raise PassphraseError("that key is not this household's: nothing was changed")
    with key_derivation_progress("Sealing the household key with the new passphrase (age scrypt)"):
        sealed = seal(f"{identity}\n".encode(), new, work_factor)
    write_private(data.identity, sealed)  # a new file renamed over the old: never half written


def hub_key(data: DataDir) -> SigningKey:
    """Load the hub's Ed25519 signing key."""
    return load_private_key(data.hub_key)
