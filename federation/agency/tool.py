"""The agency's tool: keys, signed requests, status, and fetching the clips owners approved.

An agency's data directory holds:

| file | what |
|---|---|
| ``agency.key`` | its Ed25519 signing key (PKCS#8 PEM, mode 0600), listed in the registry |
| ``agency.age`` | its age X25519 identity (mode 0600): the only key that opens sealed clips |
| ``agency.json`` | its public card for the registry authority: name, signing JWK, age recipient |
| ``gateways.json`` | the kid of each gateway it talked to, pinned on first use |
| ``requests/<id>.json`` | each request it sent: the exact JWS, where the log put it |
| ``announcements/<id>.json`` | each announcement it posted: the exact JWS, the gateway |

``agency_fetch`` takes every approving answer: it checks the public answer (under the one-time
key it carries, and in the public log), downloads and opens the sealed custody file, checks the
hub's chain-of-custody statement in it (signed by the hub's long-term key, naming the one-time
key and every clip), then downloads, checks and opens each clip, and writes the MP4s with a
chain-of-custody manifest that can be checked offline (docs/agency-protocol.md). The gateway
never says which hub answered: only the sealed statement does. The network functions are
coroutines; the CLI runs them with asyncio.run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pyrage import x25519

from federation.announcements import (
    DEFAULT_ANNOUNCEMENT_LIFETIME_S,
    announcement_id,
    sign_announcement,
)
from federation.answers import (
    MAX_CUSTODY_BYTES,
    CustodyInvalid,
    VerifiedAnswer,
    VerifiedCustody,
    open_custody,
    verify_answer,
    verify_custody,
)
from federation.bodies import read_error_body
from federation.errors import FederationError, KeyInvalid
from federation.http import GatewayHTTP, GatewayKeyChanged, GatewayRejected, GatewayUnavailable
from federation.jws import new_jti, sign_message
from federation.keys import (
    SigningKey,
    generate_signing_key,
    load_private_key,
    save_private_key,
)
from federation.neighbourhood_log import check_request_id, checkpoint_verifier, peek_entry
from federation.schemas import DAY, TYP_REQUEST, parse_claims
from federation.scope import check_request_scope
from federation.sealed import SealError, open_clip
from federation.tlog.proof import TlogProofError, verify_tlog_proof
from federation.wire import (
    MAX_ENTRIES_BYTES,
    AnnouncementAccepted,
    AnswersAnswer,
    Info,
    RequestAccepted,
    RequestStatus,
    parse_answer,
    parse_error,
)

log = logging.getLogger(__name__)

AGENCY_KEY_FILE = "agency.key"
AGENCY_IDENTITY_FILE = "agency.age"
AGENCY_CARD_FILE = "agency.json"
GATEWAYS_FILE = "gateways.json"
REQUESTS_DIR = "requests"
ANNOUNCEMENTS_DIR = "announcements"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "porchlight-chain-of-custody/2"
# The age header and armour around a custody statement: one X25519 stanza, the MAC, one chunk.
_CUSTODY_SEALED_MAX = MAX_CUSTODY_BYTES + 1024
DEFAULT_REQUEST_LIFETIME_S = 14 * DAY
_DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)


class AgencyError(FederationError):
    """The agency tool cannot go on; the message says what to do."""

    default_reason = "agency_error"


class AnswerInvalid(AgencyError):
    """A hub's answer does not verify, or is not in the gateway's log."""

    default_reason = "answer_invalid"


class ClipCorrupt(AgencyError):
    """A downloaded clip is not the file the hub's signed answer lists."""

    default_reason = "clip_corrupt"


@dataclass(frozen=True)
class AgencyIdentity:
    """An agency's keys: the signing key and the age identity that opens sealed clips."""

    key: SigningKey
    identity: x25519.Identity = field(repr=False)
    card: dict[str, Any]


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def init_agency(data_dir: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """Create an agency's keys and return its public card (also written to agency.json)."""
    root = Path(data_dir)
    existing = [f for f in (AGENCY_KEY_FILE, AGENCY_IDENTITY_FILE) if (root / f).exists()]
    if existing:
        raise AgencyError(
            f"{root} already holds an agency ({existing[0]}); refusing to overwrite its keys",
            reason="agency_exists",
        )
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise AgencyError("the agency's name must be 1 to 200 characters", reason="bad_name")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = generate_signing_key()
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The age CLI's own identity file format, so `age -d -i agency.age` opens sealed clips.
    _write_private(
        root / AGENCY_IDENTITY_FILE,
        f"# created: {created}\n# public key: {recipient}\n{identity}\n".encode(),
    )
    save_private_key(key, root / AGENCY_KEY_FILE)
    card = {"name": name, "kid": key.kid, "jwk": dict(key.public_jwk), "recipient": recipient}
    _write_json(root / AGENCY_CARD_FILE, card)
    log.info("created agency %s (%s)", name, key.kid)
    return card


def load_agency(data_dir: str | os.PathLike[str]) -> AgencyIdentity:
    """Load an agency's keys and card."""
    root = Path(data_dir)
    try:
        card = json.loads((root / AGENCY_CARD_FILE).read_text())
        lines = (root / AGENCY_IDENTITY_FILE).read_text().splitlines()
    except FileNotFoundError as err:
        raise AgencyError(
            f"no agency in {root}; run agency init first", reason="no_agency"
        ) from err
    secret = [line for line in lines if line.startswith("AGE-SECRET-KEY-")]
    if len(secret) != 1:
        raise AgencyError(f"{root / AGENCY_IDENTITY_FILE} holds no single age identity")
    key = load_private_key(root / AGENCY_KEY_FILE)
    if card.get("kid") != key.kid:
        raise KeyInvalid("agency.json names another key than agency.key", reason="kid_mismatch")
    return AgencyIdentity(key=key, identity=x25519.Identity.from_str(secret[0]), card=card)


def _rfc3339(value: datetime | str) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise AgencyError(
                f"{value!r} is not a date and time like 2024-05-01T21:30:00Z", reason="bad_time"
            ) from err
    if value.tzinfo is None:
        raise AgencyError(
            f"{value.isoformat()} has no time zone; give UTC (Z) or an offset", reason="bad_time"
        )
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AgencyClient(GatewayHTTP):
    """An agency's calls to a gateway, hop-signed with its registry signing key."""

    async def post_request(self, token: str) -> RequestAccepted:
        """Submit a signed request (POST /v1/requests)."""
        data = await self._request(
            "POST",
            "/v1/requests",
            token.encode("ascii"),
            content_type="application/jose",
            signed=False,
        )
        return parse_answer(RequestAccepted, data, what="request answer")

    async def post_announcement(self, token: str) -> AnnouncementAccepted:
        """Post a signed announcement (POST /v1/announcements)."""
        data = await self._request(
            "POST",
            "/v1/announcements",
            token.encode("ascii"),
            content_type="application/jose",
            signed=False,
        )
        return parse_answer(AnnouncementAccepted, data, what="announcement answer")

    async def status(self, request_id: str) -> RequestStatus:
        """Return a request's counts (GET /v1/requests/{id}/status)."""
        path = f"/v1/requests/{check_request_id(request_id)}/status"
        return await self._json(RequestStatus, path, "request status")

    async def answers(self, request_id: str) -> AnswersAnswer:
        """Return a request's approving answers (GET /v1/requests/{id}/answers)."""
        path = f"/v1/requests/{check_request_id(request_id)}/answers"
        return await self._json(AnswersAnswer, path, "answers", limit=MAX_ENTRIES_BYTES)

    async def download_clip(self, request_id: str, sha256: str, dest: Path, size: int) -> None:
        """Download a sealed clip to dest, checking its size and SHA-256 as it arrives."""
        url = f"{self.url}/v1/requests/{check_request_id(request_id)}/clips/{sha256}"
        assert self._signer is not None
        headers = self._signer.headers("GET", url, b"")
        tmp = dest.with_name(f"{dest.name}.tmp-{secrets.token_hex(4)}")
        digest = hashlib.sha256()
        received = 0
        try:
            async with self._http().get(url, headers=headers, timeout=_DOWNLOAD_TIMEOUT) as resp:
                if resp.status >= 400:
                    error = parse_error(await read_error_body(resp))
                    raise GatewayRejected(
                        f"gateway refused the clip: {error.error if error else resp.status}",
                        reason=error.reason if error else f"http_{resp.status}",
                        status=resp.status,
                    )
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    async for chunk in resp.content.iter_chunked(256 * 1024):
                        received += len(chunk)
                        if received > size:
                            break
                        digest.update(chunk)
                        fh.write(chunk)
            if received != size or digest.hexdigest() != sha256:
                raise ClipCorrupt(
                    f"sealed clip {sha256[:16]}... arrived as {received} bytes with SHA-256 "
                    f"{digest.hexdigest()[:16]}...; the hub's answer lists {size} bytes. The "
                    "file was altered or cut off; it was not kept"
                )
            os.replace(tmp, dest)
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise GatewayUnavailable(f"downloading clip {sha256[:16]}... failed: {err}") from err
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    async def confirm_pickup(self, request_id: str, sha256: str) -> None:
        """Tell the gateway a clip arrived intact, so it deletes it (DELETE .../clips/{sha256})."""
        path = f"/v1/requests/{check_request_id(request_id)}/clips/{sha256}"
        await self._request("DELETE", path)


async def _gateway(client: GatewayHTTP, data_dir: Path) -> Info:
    """Return the gateway's identity, pinning its kid on first use."""
    info = await client.info()
    path = data_dir / GATEWAYS_FILE
    pins = json.loads(path.read_text()) if path.exists() else {}
    pinned = pins.get(client.url)
    if pinned is None:
        pins[client.url] = info.gateway.kid
        _write_json(path, pins)
    elif pinned != info.gateway.kid:
        raise GatewayKeyChanged(
            f"the gateway at {client.url} now has key {info.gateway.kid}, not {pinned} as "
            f"before; if its operator re-keyed it, remove it from {path}"
        )
    return info


async def agency_request(
    data_dir: str | os.PathLike[str],
    gateway_url: str,
    *,
    case: str,
    reason: str,
    start: datetime | str,
    end: datetime | str,
    lat: float,
    lon: float,
    radius_m: float,
    legal_basis: str = "voluntary",
    warrant_file: str | os.PathLike[str] | None = None,
    lifetime_s: int = DEFAULT_REQUEST_LIFETIME_S,
    now: float | None = None,
) -> str:
    """Sign a request for footage and submit it; return the request id."""
    root = Path(data_dir)
    agency = load_agency(root)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "case": case,
        "reason": reason,
        "legal_basis": legal_basis,
        "window": {"start": _rfc3339(start), "end": _rfc3339(end)},
        "area": {"lat": float(lat), "lon": float(lon), "radius_m": float(radius_m)},
        "iat": issued,
        "exp": issued + int(lifetime_s),
        "jti": new_jti(),
    }
    if warrant_file is not None:
        claims["warrant_sha256"] = hashlib.sha256(Path(warrant_file).read_bytes()).hexdigest()
    async with AgencyClient(gateway_url, signing_key=agency.key) as client:
        info = await _gateway(client, root)
        claims["aud"] = info.gateway.kid
        parsed = parse_claims(TYP_REQUEST, {**claims, "iss": agency.key.kid})
        # The gateway checks the same; saying it here first gives a clearer error.
        check_request_scope(parsed, now=issued)  # type: ignore[arg-type]
        token = sign_message(agency.key, TYP_REQUEST, claims, now=issued)
        accepted = await client.post_request(token)
        verifier = checkpoint_verifier(info.gateway.jwk.model_dump(exclude_none=True))
        try:
            proven = verify_tlog_proof(token.encode("ascii"), accepted.proof, verifier)
        except TlogProofError as err:
            raise AgencyError(
                f"the gateway accepted request {accepted.id} but its proof that the request "
                f"is in the public log does not verify: {err}",
                reason="not_in_log",
            ) from err
    if accepted.id != claims["jti"] or proven.index != accepted.log_index:
        raise AgencyError("the gateway answered for another request", reason="bad_answer")
    _write_json(
        root / REQUESTS_DIR / f"{accepted.id}.json",
        {
            "id": accepted.id,
            "gateway": gateway_url,
            "gateway_kid": info.gateway.kid,
            "jws": token,
            "log_index": accepted.log_index,
            "proof": accepted.proof,
        },
    )
    log.info("request %s logged at %s", accepted.id, accepted.log_index)
    return accepted.id


async def agency_announce(
    data_dir: str | os.PathLike[str],
    gateway_url: str,
    *,
    text: str,
    category: str,
    lat: float | None = None,
    lon: float | None = None,
    radius_m: float | None = None,
    lifetime_s: int = DEFAULT_ANNOUNCEMENT_LIFETIME_S,
    now: float | None = None,
) -> str:
    """Sign a public announcement and post it; return its id (the SHA-256 of its JWS)."""
    area = None
    if lat is not None and lon is not None and radius_m is not None:
        area = {"lat": float(lat), "lon": float(lon), "radius_m": float(radius_m)}
    elif (lat, lon, radius_m) != (None, None, None):
        raise AgencyError(
            "an announcement's area needs lat, lon and radius_m together (or none of them, "
            "to reach every household of the neighbourhood)",
            reason="bad_area",
        )
    root = Path(data_dir)
    agency = load_agency(root)
    issued = int(time.time() if now is None else now)
    async with AgencyClient(gateway_url, signing_key=agency.key) as client:
        info = await _gateway(client, root)
        token = sign_announcement(
            agency.key,
            gateway_kid=info.gateway.kid,
            text=text,
            category=category,
            area=area,
            now=issued,
            lifetime_s=lifetime_s,
        )
        accepted = await client.post_announcement(token)
    if accepted.id != announcement_id(token):
        raise AgencyError("the gateway answered for another announcement", reason="bad_answer")
    _write_json(
        root / ANNOUNCEMENTS_DIR / f"{accepted.id}.json",
        {
            "id": accepted.id,
            "gateway": gateway_url,
            "gateway_kid": info.gateway.kid,
            "jws": token,
            "expires": accepted.expires,
        },
    )
    log.info("announcement %s posted to %s", accepted.id[:12], gateway_url)
    return accepted.id


async def agency_status(
    data_dir: str | os.PathLike[str], gateway_url: str, request_id: str
) -> dict[str, Any]:
    """Return how many hubs were asked, approved, denied and have not answered yet."""
    root = Path(data_dir)
    agency = load_agency(root)
    async with AgencyClient(gateway_url, signing_key=agency.key) as client:
        await _gateway(client, root)
        status = await client.status(request_id)
    return status.model_dump()


def _safe_label(text: str, fallback: str = "camera") -> str:
    # Leading '-' or '.' would make a name an option or a hidden file to the tools that open it.
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")[:40] or fallback


def evidence_name(hub_kid: str, camera: str, start: int) -> str:
    """Name a fetched clip `<start>-<camera>-<hub kid 8>.mp4`: it always starts with a digit."""
    stamp = datetime.fromtimestamp(start, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{_safe_label(camera)}-{_safe_label(hub_kid[:8], 'hub')}.mp4"


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _verify_answer(item: Any, request_id: str, gateway_kid: str, verifier: Any) -> VerifiedAnswer:
    try:
        # An answer is a record: check it as of when it was signed, not whether it still lives.
        iat = peek_entry(item.jws).claims.get("iat")
        answer = verify_answer(
            item.jws,
            audience=gateway_kid,
            now=float(iat) if isinstance(iat, int) else time.time(),
        )
    except FederationError as err:
        raise AnswerInvalid(f"answer {item.key}'s signature does not verify: {err}") from err
    claims = answer.claims
    if answer.kid != item.key or claims.request != request_id or claims.decision != "approved":
        raise AnswerInvalid(f"answer {item.key} is not an approval of {request_id}")
    try:
        proven = verify_tlog_proof(item.jws.encode("ascii"), item.proof, verifier)
    except TlogProofError as err:
        raise AnswerInvalid(f"answer {item.key} is not in the public log: {err}") from err
    if proven.index != item.log_index:
        raise AnswerInvalid(f"answer {item.key} is at another log index than stated")
    return answer


async def agency_fetch(
    data_dir: str | os.PathLike[str],
    gateway_url: str,
    request_id: str,
    out_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Download, check and open the approved clips of a request; write MP4s and a manifest."""
    root = Path(data_dir)
    out = Path(out_dir)
    agency = load_agency(root)
    # Evidence: folders the tool creates are the agency user's alone (0700), files 0600.
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    sealed_dir = out / "sealed"
    sealed_dir.mkdir(exist_ok=True, mode=0o700)
    sealed_dir.chmod(0o700)
    record_path = root / REQUESTS_DIR / f"{check_request_id(request_id)}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    answers: list[dict[str, Any]] = []
    clips: list[dict[str, Any]] = []
    async with AgencyClient(gateway_url, signing_key=agency.key) as client:
        info = await _gateway(client, root)
        gateway_jwk = info.gateway.jwk.model_dump(exclude_none=True)
        verifier = checkpoint_verifier(gateway_jwk)
        listing = await client.answers(request_id)
        for item in listing.answers:
            answer = _verify_answer(item, request_id, info.gateway.kid, verifier)
            files = {state.sha256: state for state in item.files}
            entry: dict[str, Any] = {
                "key": answer.kid,
                "decision": answer.claims.decision,
                "jws": item.jws,
                "log_index": item.log_index,
                "tlog_proof": item.proof,
            }
            answers.append(entry)
            custody = await _fetch_custody(client, agency, request_id, answer, files, sealed_dir)
            if custody is None:
                entry["status"] = "custody missing"
                continue
            custody_sha256 = answer.sealed[-1]  # an approval's custody file comes last
            entry.update(
                status="checked",
                hub_kid=custody.hub_kid,
                hub_jwk=custody.hub_jwk,
                custody={
                    "sealed_sha256": custody_sha256,
                    "sealed_file": f"sealed/{custody_sha256}.age",
                    "statement": custody.statement,
                },
            )
            for clip in custody.claims.clips:
                clips.append(
                    await _fetch_clip(
                        client, agency, request_id, custody.hub_kid, clip, files, out, sealed_dir
                    )
                )
    manifest = {
        "format": MANIFEST_FORMAT,
        "request": {
            "id": request_id,
            "jws": record.get("jws"),
            "log_index": record.get("log_index"),
            "tlog_proof": record.get("proof"),
        },
        "agency": {"kid": agency.key.kid, "name": agency.card.get("name")},
        "gateway": {"url": gateway_url, "kid": info.gateway.kid, "jwk": gateway_jwk},
        "fetched_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "answers": answers,
        "clips": clips,
    }
    _write_json(out / MANIFEST_FILE, manifest)
    return manifest


async def _sealed_copy(
    client: AgencyClient,
    request_id: str,
    sha256: str,
    size: int | None,
    files: Mapping[str, Any],
    sealed_dir: Path,
) -> Path | None:
    """Return the local copy of a sealed file, downloading it if needed; None if it is gone."""
    path = sealed_dir / f"{sha256}.age"
    if path.exists() and await asyncio.to_thread(_sha256_file, path) == sha256:
        return path
    state = files.get(sha256)
    if state is None or not state.available:
        return None
    if size is None:
        # The custody file: no signed size yet, so take the gateway's, within a custody's bound.
        if state.size is None or state.size > _CUSTODY_SEALED_MAX:
            raise ClipCorrupt(
                f"the gateway lists custody file {sha256[:16]}... with a size of {state.size}; "
                f"a custody file is at most {_CUSTODY_SEALED_MAX} bytes"
            )
        size = state.size
    await client.download_clip(request_id, sha256, path, size)
    return path


async def _fetch_custody(
    client: AgencyClient,
    agency: AgencyIdentity,
    request_id: str,
    answer: VerifiedAnswer,
    files: Mapping[str, Any],
    sealed_dir: Path,
) -> VerifiedCustody | None:
    custody = answer.claims.custody
    assert custody is not None  # an approval always lists one (federation/schemas.py)
    path = await _sealed_copy(client, request_id, custody.sha256, None, files, sealed_dir)
    if path is None:
        return None
    try:
        statement = open_custody(await asyncio.to_thread(path.read_bytes), agency.identity)
        verified = verify_custody(statement, answer, agency_kid=agency.key.kid)
    except CustodyInvalid as err:
        raise AnswerInvalid(f"answer {answer.kid}'s chain of custody: {err}") from err
    if files.get(custody.sha256) is not None and files[custody.sha256].available:
        with contextlib.suppress(GatewayRejected):
            await client.confirm_pickup(request_id, custody.sha256)
    return verified


async def _fetch_clip(
    client: AgencyClient,
    agency: AgencyIdentity,
    request_id: str,
    hub: str,
    clip: Any,
    files: Mapping[str, Any],
    out: Path,
    sealed_dir: Path,
) -> dict[str, Any]:
    sealed_path = sealed_dir / f"{clip.sha256}.age"
    entry: dict[str, Any] = {
        "hub_kid": hub,
        "camera": clip.camera,
        "start": _utc(clip.start),
        "end": _utc(clip.end),
        "sealed_sha256": clip.sha256,
        "sealed_size": clip.size,
        "sealed_file": str(sealed_path.relative_to(out)),
    }
    if await _sealed_copy(client, request_id, clip.sha256, clip.size, files, sealed_dir) is None:
        entry["status"] = "missing"
        return entry
    sealed = await asyncio.to_thread(sealed_path.read_bytes)
    try:
        plaintext = await asyncio.to_thread(open_clip, sealed, agency.identity)
    except SealError as err:
        raise ClipCorrupt(
            f"clip {clip.sha256[:16]}... from hub {hub} does not open with this agency's "
            f"identity: {err}"
        ) from err
    name = evidence_name(hub, clip.camera, clip.start)
    mp4_path = out / name
    await asyncio.to_thread(_write_file, mp4_path, plaintext)
    state = files.get(clip.sha256)
    if state is not None and state.available:
        with contextlib.suppress(GatewayRejected):
            await client.confirm_pickup(request_id, clip.sha256)
    entry.update(
        status="fetched",
        file=name,
        sha256=hashlib.sha256(plaintext).hexdigest(),
        size=len(plaintext),
    )
    return entry


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    _write_private(path, data)
