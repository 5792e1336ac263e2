"""One-time invite codes: typed by people, so short, unambiguous and forgiving.

A code is 20 Crockford base32 characters shown in five groups (``7KQ2-M9XD-...``). The first
group names the invite (so the gateway finds it without comparing secrets); the other 16
characters (80 bits) are the secret, which the gateway stores only as a SHA-256 digest.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_CHARS = 4
SECRET_CHARS = 16
_CODE_CHARS = ID_CHARS + SECRET_CHARS
# Crockford base32 reads the letters people confuse with digits as those digits.
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_invite_code() -> str:
    """Return a fresh random invite code in groups of four."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(_CODE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, _CODE_CHARS, 4))


def normalize_invite(code: str) -> str:
    """Return a code's canonical characters, ignoring case, spaces and dashes."""
    if not isinstance(code, str):
        raise ValueError("an invite code is text")
    compact = "".join(code.split()).replace("-", "").upper().translate(_READ_AS)
    if len(compact) != _CODE_CHARS or any(c not in ALPHABET for c in compact):
        raise ValueError(
            f"an invite code has {_CODE_CHARS} letters and digits, like XXXX-XXXX-XXXX-XXXX-XXXX"
        )
    return compact


def split_invite(code: str) -> tuple[str, str]:
    """Split a code into its public id and its secret."""
    compact = normalize_invite(code)
    return compact[:ID_CHARS], compact[ID_CHARS:]
