"""The registry authority's tool: keep the list of agencies, sign and publish registry versions.

An authority's data directory holds:

| file | what |
|---|---|
| ``authority.key`` | its Ed25519 signing key (PKCS#8 PEM, mode 0600); neighbours pin its fingerprint |
| ``registry.json`` | the authority's name, the agencies listed now, and the last version signed |
| ``registry.jws`` | the last registry version signed |

Versions only go up: ``sign_registry`` records the new version before it returns, so a
publish that fails leaves a gap, never a reused number.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from federation.errors import FederationError, KeyInvalid
from federation.jws import sign_message
from federation.keys import (
    fingerprint,
    generate_signing_key,
    load_private_key,
    save_private_key,
    thumbprint,
)
from federation.registry import RegistryError, jurisdiction_from, since_from_date
from federation.schemas import DAY, MAX_LIFETIME_S, TYP_REGISTRY, Agency

log = logging.getLogger(__name__)

AUTHORITY_KEY_FILE = "authority.key"
REGISTRY_STATE_FILE = "registry.json"
REGISTRY_TOKEN_FILE = "registry.jws"
DEFAULT_REGISTRY_LIFETIME_S = 90 * DAY
_CARD_MEMBERS = {"name", "jwk", "recipient", "kid"}


class AuthorityError(FederationError):
    """The authority's data directory or an agency card is not usable."""

    default_reason = "authority_error"


def _state_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / REGISTRY_STATE_FILE


def _load_state(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = _state_path(data_dir)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise AuthorityError(
            f"no registry authority in {data_dir}; run registry init first",
            reason="no_authority",
        ) from err
    except ValueError as err:
        raise AuthorityError(f"{path} is not valid JSON: {err}", reason="bad_state") from err


def _save_state(data_dir: str | os.PathLike[str], state: dict[str, Any]) -> None:
    path = _state_path(data_dir)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as fh:
        json.dump(state, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def init_authority(data_dir: str | os.PathLike[str], name: str) -> str:
    """Create a registry authority (key and empty registry); return its key fingerprint."""
    root = Path(data_dir)
    if (root / AUTHORITY_KEY_FILE).exists() or _state_path(root).exists():
        raise AuthorityError(
            f"{root} already holds a registry authority; refusing to overwrite it",
            reason="authority_exists",
        )
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise AuthorityError("the authority's name must be 1 to 200 characters", reason="bad_name")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = generate_signing_key()
    save_private_key(key, root / AUTHORITY_KEY_FILE)
    _save_state(root, {"name": name, "kid": key.kid, "version": 0, "agencies": []})
    log.info("created registry authority %s (%s)", name, key.kid)
    return fingerprint(key.kid)


def authority_kid(data_dir: str | os.PathLike[str]) -> str:
    """Return the authority's kid."""
    return str(_load_state(data_dir)["kid"])


def load_card(card: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """Read an agency's public card (agency.json) and check it."""
    if not isinstance(card, Mapping):
        path = Path(card)
        try:
            card = json.loads(path.read_text())
        except OSError as err:
            raise AuthorityError(f"cannot read agency card {path}: {err.strerror}") from err
        except ValueError as err:
            raise AuthorityError(
                f"agency card {path} is not JSON: {err}", reason="bad_card"
            ) from err
    if not isinstance(card, Mapping):
        raise AuthorityError("an agency card is a JSON object", reason="bad_card")
    unknown = sorted(set(card) - _CARD_MEMBERS)
    if unknown:
        raise AuthorityError(f"agency card: unknown member {unknown[0]!r}", reason="bad_card")
    for member in ("name", "jwk", "recipient"):
        if member not in card:
            raise AuthorityError(f"agency card: {member} is missing", reason="bad_card")
    try:
        kid = thumbprint(card["jwk"])
    except KeyInvalid as err:
        raise AuthorityError(f"agency card: jwk: {err}", reason="bad_card") from err
    if "kid" in card and card["kid"] != kid:
        raise AuthorityError("agency card: kid is not the thumbprint of jwk", reason="bad_card")
    return {
        "name": card["name"],
        "kid": kid,
        "jwk": {k: card["jwk"][k] for k in ("kty", "crv", "x")},
        "recipient": card["recipient"],
    }


def add_agency(
    data_dir: str | os.PathLike[str],
    card: Mapping[str, Any] | str | os.PathLike[str],
    *,
    jurisdiction: Any,
    since: date | str,
    contact: str | None = None,
) -> dict[str, Any]:
    """List an agency in the next registry version; return its registry entry."""
    state = _load_state(data_dir)
    public = load_card(card)
    jurisdiction_text = jurisdiction_from(jurisdiction).to_text()
    entry = {
        "kid": public["kid"],
        "name": public["name"],
        "jurisdiction": jurisdiction_text,
        "since": since_from_date(since),
        "jwk": public["jwk"],
        "recipient": public["recipient"],
    }
    if contact:  # optional: a registry without one says nothing rather than ""
        entry["contact"] = contact
    try:
        Agency.model_validate(entry)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "agency"
        detail = first["msg"].removeprefix("Value error, ")
        raise AuthorityError(f"{where}: {detail}", reason="bad_card") from err
    if any(a["kid"] == entry["kid"] for a in state["agencies"]):
        raise AuthorityError(
            f"agency {entry['kid']} is already listed; remove it first to change it",
            reason="agency_exists",
        )
    state["agencies"].append(entry)
    _save_state(data_dir, state)
    log.info("listed agency %s (%s)", entry["name"], entry["kid"])
    return entry


def remove_agency(data_dir: str | os.PathLike[str], kid: str) -> dict[str, Any]:
    """Remove an agency from the next registry version; return the entry removed."""
    state = _load_state(data_dir)
    for index, agency in enumerate(state["agencies"]):
        if agency["kid"] == kid:
            del state["agencies"][index]
            _save_state(data_dir, state)
            log.info("removed agency %s (%s)", agency["name"], kid)
            return dict(agency)
    raise AuthorityError(f"no listed agency has kid {kid[:43]!r}", reason="unknown_agency")


def sign_registry(
    data_dir: str | os.PathLike[str],
    *,
    audience: str,
    version: int | None = None,
    lifetime_s: int = DEFAULT_REGISTRY_LIFETIME_S,
    now: float | None = None,
) -> str:
    """Sign the next registry version for a neighbourhood (its gateway's kid) and return it."""
    root = Path(data_dir)
    state = _load_state(root)
    last = int(state["version"])
    if version is None:
        version = last + 1
    if isinstance(version, bool) or not isinstance(version, int) or version <= last:
        raise RegistryError(
            f"version {version!r} is not newer than the last version signed ({last}); "
            "registry versions only go up",
            reason="registry_rollback",
        )
    if not 0 < lifetime_s <= MAX_LIFETIME_S[TYP_REGISTRY]:
        raise RegistryError(
            "a registry lives at most 90 days; sign a new version before it expires",
            reason="lifetime_too_long",
        )
    key = load_private_key(root / AUTHORITY_KEY_FILE)
    issued = int(time.time() if now is None else now)
    claims = {
        "aud": audience,
        "version": version,
        "agencies": state["agencies"],
        "iat": issued,
        "exp": issued + int(lifetime_s),
    }
    token = sign_message(key, TYP_REGISTRY, claims, now=issued)
    state["version"] = version
    _save_state(root, state)
    (root / REGISTRY_TOKEN_FILE).write_text(token + "\n")
    log.info("signed registry version %s with %s agencies", version, len(state["agencies"]))
    return token


def authority_jwk(data_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Return the authority's public JWK."""
    return dict(load_private_key(Path(data_dir) / AUTHORITY_KEY_FILE).public_jwk)


async def publish_registry(
    data_dir: str | os.PathLike[str], gateway_url: str, *, now: float | None = None
) -> dict[str, Any]:
    """Sign the next registry version for the gateway at gateway_url and upload it."""
    from federation.http import PublicGatewayClient

    async with PublicGatewayClient(gateway_url) as client:
        info = await client.info()
        token = sign_registry(data_dir, audience=info.gateway.kid, now=now)
        answer = await client.post_registry(token, authority_jwk(data_dir))
    log.info("published registry version %s to %s", answer["version"], gateway_url)
    return answer


def show_registry(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the authority's name, kid, fingerprint, last version and listed agencies."""
    state = _load_state(data_dir)
    return {
        "name": state["name"],
        "kid": state["kid"],
        "fingerprint": fingerprint(state["kid"]),
        "version": state["version"],
        "agencies": state["agencies"],
    }
