"""The hub as a witness of its gateway's log, and its LAN neighbours as witnesses it trusts.

A hub with `[lan] witness = true` answers C2SP tlog-witness `POST /add-checkpoint` on its LAN
server for the one log it follows, its gateway's, with the rules every witness shares
(`federation/tlog/witness.py`). Its cosigning key is a key of its own
(`keys/witness-ed25519.pem`), never the hub's identity key, and its name is derived from that
key, so the cosignatures the gateway publishes do not name the household. The latest checkpoint
it cosigned is kept in the hub's database.

Each LAN neighbour that witnesses serves its witness key beside its hub key, signed by that hub
key; the first witness key seen for a neighbour is pinned and counts toward the hub's k
(`[witnesses] min`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path

import tomlkit
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation.errors import FederationError
from federation.keys import SigningKey, generate_signing_key, load_private_key, save_private_key
from federation.tlog.cosignature import CosignatureSigner, CosignatureVerifier
from federation.tlog.note import NoteVerifier
from federation.tlog.witness import Answer, LogRecord, Update, add_checkpoint
from hub.config import ConfigEdit
from hub.datadir import DataDir
from hub.errors import PorchlightError

log = logging.getLogger(__name__)

KEY_FILE = "witness-ed25519.pem"  # under the data dir's keys/
NAME_PREFIX = "porchlight-hub-witness/"
STATE_KEY = "witness_log"  # federation_state: the latest checkpoint this hub cosigned
LAN_WITNESSES_KEY = "lan_witnesses"  # federation_state: {hub kid: witness vkey}, pinned
MAX_LAN_WITNESSES = 32
MAX_VKEY_CHARS = 1000
# What a hub's identity key signs to vouch for its witness key (domain-separated, so the
# signature can mean nothing else).
BINDING_CONTEXT = b"porchlight-lan-witness-v1\n"


def witness_key_path(data: DataDir) -> Path:
    """Return where the hub keeps its witness key."""
    return data.root / "keys" / KEY_FILE


def witness_name(public_key: bytes) -> str:
    """Return the witness name a key gets: derived from the key, never from the household."""
    digest = hashlib.sha256(public_key).digest()[:12]
    return NAME_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def load_signer(data: DataDir, *, create: bool = False) -> CosignatureSigner | None:
    """Load the hub's witness key (creating it if asked); None if it has none."""
    path = witness_key_path(data)
    if not path.exists():
        if not create:
            return None
        save_private_key(generate_signing_key(), path)
    key = load_private_key(path)
    raw = base64.urlsafe_b64decode(key.public_jwk["x"] + "==")
    return CosignatureSigner(witness_name(raw), key.private)


class HubWitnessMemory:
    """The latest checkpoint this hub cosigned for its gateway's log, in the hub's database
    (a `federation.tlog.witness.WitnessMemory` that follows one log)."""

    def __init__(self, db, verifier: NoteVerifier) -> None:
        self.db = db
        self.verifier = verifier

    def get(self, origin: str) -> LogRecord | None:
        """Return the gateway's log, or None for any other origin."""
        if origin != self.verifier.name:
            return None
        row = self.db.execute("select value from federation_state where key = ?",
                              [STATE_KEY]).fetchone()
        stored = json.loads(row[0]) if row else {}
        if stored.get("origin") != origin:  # another gateway's log before a re-join
            stored = {}
        return LogRecord(origin, self.verifier, stored.get("size", 0),
                         base64.b64decode(stored.get("root_hash", "")),
                         stored.get("checkpoint", ""))

    def advance(self, origin: str, decide) -> LogRecord | None:
        """Check and record a submission in one transaction (racing submissions cannot roll
        the record back, as C2SP tlog-witness requires)."""
        with self.db.write_lock, self.db.conn:
            self.db.execute("BEGIN IMMEDIATE")
            record = self.get(origin)
            if record is None:
                return None
            update: Update | None = decide(record)
            if update is not None:
                size, root_hash, checkpoint = update
                value = json.dumps({"origin": origin, "size": size,
                                    "root_hash": base64.b64encode(root_hash).decode(),
                                    "checkpoint": checkpoint})
                self.db.execute("insert into federation_state (key, value) values (?, ?) "
                                "on conflict(key) do update set value = excluded.value",
                                [STATE_KEY, value])
            return record


class HubWitness:
    """What the LAN server needs to witness: the signer, its memory, and a clock."""

    def __init__(self, signer: CosignatureSigner, memory: HubWitnessMemory, clock) -> None:
        self.signer = signer
        self.memory = memory
        self.clock = clock

    @property
    def vkey(self) -> str:
        """Return the witness key, as the gateway's operator and readers write it."""
        return self.signer.verifier.to_string()

    def add_checkpoint(self, body: bytes) -> Answer:
        """Answer one add-checkpoint submission (blocking: run it in a thread)."""
        return add_checkpoint(self.memory, self.signer, body, int(self.clock().timestamp()))


def open_witness(hub, gateway_jwk: dict) -> HubWitness:
    """Open the hub's witness of its gateway's log (the key must exist: `witness enable`)."""
    from federation.neighbourhood_log import checkpoint_verifier

    signer = load_signer(hub.data)
    if signer is None:
        raise PorchlightError("[lan] witness = true but this hub has no witness key: run "
                         "`porchlight witness enable`")
    return HubWitness(signer, HubWitnessMemory(hub.db, checkpoint_verifier(gateway_jwk)),
                      hub.clock)


def enable_witness(hub, membership) -> str:
    """Turn on this hub's witness of its gateway's log; return its witness key."""
    if membership is None:
        raise PorchlightError("this hub is not a member of a gateway: join one first (`porchlight "
                         "join`), then it can witness that gateway's log")
    if not hub.config.lan.enabled:
        raise PorchlightError("a hub witnesses on its LAN server: set enabled = true under [lan] in "
                         "config.toml first (docs/witness.md)")
    signer = load_signer(hub.data, create=True)
    if not hub.config.lan.witness:
        set_config_value(hub.data, "lan", "witness", True)
    return signer.verifier.to_string()


def set_config_value(data: DataDir, table: str, key: str, value) -> None:
    """Set one key of config.toml, keeping the owner's comments; refuse a config the hub
    would refuse."""
    with ConfigEdit(data.root) as edit:
        if table not in edit.document:
            edit.document[table] = tomlkit.table()
        edit.document[table][key] = value
        edit.save()


def sign_binding(hub_key: SigningKey, vkey: str) -> str:
    """Return the hub key's signature vouching for its witness key (base64url)."""
    signature = hub_key.private.sign(BINDING_CONTEXT + vkey.encode("utf-8"))
    return base64.urlsafe_b64encode(signature).decode().rstrip("=")


def verify_binding(hub_jwk: dict, vkey: str, signature: str) -> CosignatureVerifier | None:
    """Return a LAN neighbour's witness key if its hub key signed it, else None."""
    if not isinstance(vkey, str) or not isinstance(signature, str) or len(vkey) > MAX_VKEY_CHARS \
            or len(signature) > 128:
        return None
    try:
        public = base64.urlsafe_b64decode(hub_jwk["x"] + "==")
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        Ed25519PublicKey.from_public_bytes(public).verify(raw, BINDING_CONTEXT + vkey.encode())
        return CosignatureVerifier.from_string(vkey)
    except (InvalidSignature, FederationError, ValueError, KeyError, TypeError):
        return None


def pinned_lan_witnesses(db) -> dict[str, str]:
    """Return {hub kid: witness vkey} of the LAN neighbours' witnesses pinned so far."""
    row = db.execute("select value from federation_state where key = ?",
                     [LAN_WITNESSES_KEY]).fetchone()
    return json.loads(row[0]) if row else {}


def pin_lan_witness(db, hub_kid: str, verifier: CosignatureVerifier) -> bool:
    """Pin a LAN neighbour's witness key on first sight; return whether it is (now) pinned.

    A neighbour that later serves another witness key keeps the first one: a changed key is
    what a device impersonating it would show.
    """
    vkey = verifier.to_string()
    with db.write_lock, db.conn:
        db.execute("BEGIN IMMEDIATE")
        pinned = pinned_lan_witnesses(db)
        if hub_kid in pinned:
            if pinned[hub_kid] != vkey:
                log.warning("LAN: hub %s now serves another witness key than the one pinned; "
                            "the pinned key stays", hub_kid[:12])
            return pinned[hub_kid] == vkey
        if len(pinned) >= MAX_LAN_WITNESSES:
            log.warning("LAN: %s witnesses pinned already; hub %s's is not counted",
                        MAX_LAN_WITNESSES, hub_kid[:12])
            return False
        pinned[hub_kid] = vkey
        db.execute("insert into federation_state (key, value) values (?, ?) "
                   "on conflict(key) do update set value = excluded.value",
                   [LAN_WITNESSES_KEY, json.dumps(pinned, sort_keys=True)])
    log.info("LAN: pinned the witness key of hub %s: %s", hub_kid[:12], verifier.name)
    return True


def trusted_witnesses(config, db) -> list[CosignatureVerifier]:
    """Return every witness this hub trusts: the owner's keys, then the LAN neighbours'
    pinned ones (with [lan] on, unless [witnesses] lan = false)."""
    trusted = {(v.name, v.key_id): v for v in config.witnesses.verifiers()}
    if config.lan.enabled and config.witnesses.lan:
        for vkey in pinned_lan_witnesses(db).values():
            verifier = CosignatureVerifier.from_string(vkey)
            trusted.setdefault((verifier.name, verifier.key_id), verifier)
    return list(trusted.values())
