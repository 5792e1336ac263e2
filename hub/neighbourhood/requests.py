"""The requests inbox: agency requests for footage, checked by this hub, decided by its owner.

A routed request is verified against the pinned registry, the public log (inclusion, and
consistency with the last checkpoint seen), its scope, this hub's exact location and the
footage it holds; only then does it wait for the owner. Nothing leaves without the owner's
explicit approval of that request: then each chosen camera's footage in the window is joined
into one MP4 (stream copy; re-encoded only to blur faces), sealed with age to the agency's
recipient from the registry, uploaded, and a signed answer lists the SHA-256 of every file.
The public answer is signed by a key used for this request only; the hub's own key signs the
chain of custody, sealed to the agency with the clips (federation/answers.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from federation.answers import answer_key, sign_answer, verify_answer
from federation.cells import distance_m
from federation.errors import FederationError
from federation.member.requests import VerifiedRequest, checkpoint_verifier
from federation.neighbourhood_log import peek_entry
from federation.registry import VerifiedRegistry, verify_registry
from federation.sealed import seal_clip, sha256_hex
from federation.tlog.checkpoint import open_checkpoint, parse_checkpoint
from federation.tlog.note import parse_note
from federation.tlog.proof import TlogProofError, verify_tlog_proof
from hub.errors import PorchlightError, UsageError
from hub.household import hub_key
from hub.timeutil import iso, utcnow
from hub.vault.footage import build_clip
from hub.vault.media import SEGMENT_TYPE

log = logging.getLogger(__name__)

PENDING, APPROVED, DENIED, DENIED_SILENTLY, DROPPED = (
    "pending", "approved", "denied", "denied silently", "dropped")
# Footage sent to an agency stays held until the gateway's clip time-to-live has surely passed.
HOLD_FOR = timedelta(days=8)
# The steps of an approval, reported to a progress callback as (step, detail): a camera's clip
# is cut (decrypted, joined, blurred if asked), then sealed; then each file is uploaded; then
# the answer is posted to the public log.
CUT, SEAL, UPLOAD, ANSWER = "cut", "seal", "upload", "answer"
Progress = Callable[[str, str], None]


def _quiet(step: str, detail: str) -> None:
    """Report nothing (the command line's approval)."""


@dataclass(frozen=True)
class Decision:
    """What the owner decided and what left the house."""

    status: str
    clips: list[dict]
    answer: str | None
    log_index: int | None = None


def registry_path(data):
    """Return where the hub keeps its pinned registry authority and latest registry."""
    return data.root / "federation" / "registry.json"


def load_registry(data, gateway_kid: str, now: float) -> VerifiedRegistry | None:
    """Re-open the stored registry (verified again under the pinned authority), or None."""
    path = registry_path(data)
    if not path.exists():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    if not state.get("token"):
        return None
    return verify_registry(state["token"], authority_jwk=state["authority_jwk"],
                           authority_kid=state["authority_kid"], audience=gateway_kid, now=now)


def pin_authority(data, authority_kid: str) -> None:
    """Pin the registry authority's key (given out of band) for this hub."""
    from hub.datadir import write_private

    write_private(registry_path(data), json.dumps({"authority_kid": authority_kid}).encode())


def pinned_authority(data) -> str | None:
    """Return the pinned registry authority's kid, or None."""
    path = registry_path(data)
    return json.loads(path.read_text(encoding="utf-8"))["authority_kid"] if path.exists() else None


def store_registry(data, registry: VerifiedRegistry) -> None:
    """Keep a newer verified registry (callers refuse rollbacks before this)."""
    from hub.datadir import write_private

    write_private(registry_path(data), json.dumps({
        "authority_kid": registry.authority_kid, "authority_jwk": dict(registry.authority_jwk),
        "token": registry.token, "version": registry.version}).encode())


def own_checks(hub, request: VerifiedRequest) -> str | None:
    """Return why this hub must drop a verified request, or None if the owner should see it."""
    location = hub.config.hub.location
    if location is None:
        return "this hub has no location, so it cannot tell whether it is inside the circle"
    distance = distance_m(location.lat, location.lon, request.lat, request.lon)
    if distance > request.radius_m:
        return f"this hub is {distance:.0f} m from the centre, outside the {request.radius_m:.0f} m circle"
    if not footage_in_window(hub, request.window_start, request.window_end):
        return "this hub holds no footage in the window"
    return None


def footage_in_window(hub, start: datetime, end: datetime) -> dict[str, int]:
    """Return {camera: segments} of the video this hub holds in a window."""
    counts: dict[str, int] = {}
    for segment in hub.vault.segments(None, start, end):
        if segment.media_type == SEGMENT_TYPE and segment.status == "ok":
            counts[segment.camera] = counts.get(segment.camera, 0) + 1
    return counts


def record_request(hub, request: VerifiedRequest | None, *, status: str, detail: str = "",
                   request_id: str | None = None, token: str | None = None) -> None:
    """Keep a request in the inbox (pending) or in the record of what was dropped and why."""
    row = {"id": request.id if request else request_id, "status": status, "detail": detail,
           "received": iso(utcnow()), "token": request.token if request else token}
    if request is not None:
        claims = request.claims
        row.update(agency_kid=request.agency.kid, agency=request.agency.name,
                   case_number=claims.case, reason=claims.reason,
                   legal_basis=claims.legal_basis, start=iso(request.window_start),
                   end=iso(request.window_end), lat=request.lat, lon=request.lon,
                   radius_m=request.radius_m, log_index=request.log_index,
                   recipient=request.agency.recipient,
                   checkpoint=checkpoint_text(request.checkpoint))
    with hub.db.write_lock:
        existing = hub.db.execute("select status from requests where id = ?", [row["id"]]).fetchone()
        if existing is not None and existing[0] != DROPPED:
            return  # a request the owner already saw is never replaced
        hub.db["requests"].upsert(row, pk="id", alter=False)


def checkpoint_text(checkpoint) -> str:
    """Return a checkpoint's body (origin, tree size, root hash) as the log signed it."""
    root = base64.b64encode(checkpoint.root_hash).decode()
    return f"{checkpoint.origin}\n{checkpoint.size}\n{root}\n"


def list_requests(hub, include_dropped: bool = False) -> list[dict]:
    """Return the inbox, newest first; dropped requests only when asked."""
    where = None if include_dropped else "status != 'dropped'"
    return [_shown(r) for r in hub.db["requests"].rows_where(where, order_by="received desc")]


def get_request(hub, request_id: str) -> dict:
    """Return one request of the inbox or raise a clear error."""
    row = hub.db.execute("select 1 from requests where id = ?", [request_id]).fetchone()
    if row is None:
        raise UsageError(f"no request {request_id!r} on this hub (see `porchlight requests list`)")
    return _shown(next(hub.db["requests"].rows_where("id = ?", [request_id])))


def _shown(row: dict) -> dict:
    keys = ("id", "status", "detail", "agency", "agency_kid", "case_number", "reason",
            "legal_basis", "start", "end", "radius_m", "log_index", "received", "decided",
            "checkpoint")
    shown = {k: row.get(k) for k in keys}
    shown["clips"] = json.loads(row.get("clips") or "[]")
    return shown


def _pending(hub, request_id: str) -> dict:
    request = get_request(hub, request_id)
    if request["status"] != PENDING:
        raise UsageError(f"request {request_id} is {request['status']}, not pending")
    return next(hub.db["requests"].rows_where("id = ?", [request_id]))


def build_clips(hub, row: dict, identity, cameras: list[str] | None,
                blur_faces: bool, progress: Progress | None = None) -> list[tuple[dict, bytes]]:
    """Join each chosen camera's footage in the window and seal it to the agency."""
    progress = progress or _quiet
    start, end = datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"])
    available = footage_in_window(hub, start, end)
    chosen = cameras or sorted(available)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise UsageError(f"no footage of {', '.join(unknown)} in the request's window "
                         f"(cameras with footage: {', '.join(sorted(available)) or 'none'})")
    clips = []
    for camera in chosen:
        segments = [s for s in hub.vault.segments(camera, start, end)
                    if s.media_type == SEGMENT_TYPE and s.status == "ok"]
        progress(CUT, camera)
        clip = build_clip(hub, segments, identity, start, end)
        plaintext = clip.data
        if blur_faces:
            redacted = hub.pm.hook.porchlight_redact_faces(data=plaintext, media_type=SEGMENT_TYPE)
            if redacted is None:
                raise PorchlightError("no face redaction plugin is installed")
            plaintext = redacted[0]
        progress(SEAL, camera)
        sealed = seal_clip(plaintext, row["recipient"])
        del plaintext  # only the agency's ciphertext leaves memory for the network
        clips.append(({"sha256": sha256_hex(sealed), "size": len(sealed),
                       "start": int(clip.start.timestamp()),
                       "end": math.ceil(clip.end.timestamp()), "camera": camera}, sealed))
        hub.vault.hold(segments, "request", row["id"])
    return clips


async def approve(hub, client, gateway_kid: str, request_id: str, identity,
                  cameras: list[str] | None = None, blur_faces: bool = False,
                  progress: Progress | None = None) -> Decision:
    """Seal, upload and answer for one request the owner approved."""
    progress = progress or _quiet
    row = _pending(hub, request_id)
    try:
        # Decrypting, blurring and sealing take seconds of CPU: off the event loop.
        clips = await asyncio.to_thread(build_clips, hub, row, identity, cameras, blur_faces,
                                        progress)
    except BaseException:
        # A camera's footage held before a later camera failed, or before the hub stopped:
        # nothing was sent, so nothing stays held for this request.
        hub.vault.release("request", request_id)
        raise
    del identity  # every clip is sealed: the owner's key is needed no more
    listed = [d for d, _ in clips]
    signed = sign_answer(hub_key(hub.data), gateway_kid=gateway_kid, request_id=request_id,
                         decision="approved", clips=listed, agency_kid=row["agency_kid"],
                         recipient=row["recipient"], now=hub.clock().timestamp())
    try:
        files = len(clips) + 1
        for number, (descriptor, sealed) in enumerate(clips, 1):
            progress(UPLOAD, f"{number} of {files}")
            await client.upload_clip(request_id, descriptor["sha256"], sealed)
        # The hub's long-term signature travels only inside this file, sealed to the agency.
        progress(UPLOAD, f"{files} of {files}")
        await client.upload_clip(request_id, signed.custody_sha256, signed.custody)
        progress(ANSWER, "")
        receipt = await client.post_answer(request_id, signed.token)
    except (FederationError, OSError) as err:
        hub.vault.release("request", request_id)
        raise PorchlightError(f"the approval could not be delivered: {err}; nothing was "
                              "answered, try again") from err
    except asyncio.CancelledError:
        # The hub is stopping mid-upload (the web UI's job is cancelled): nothing was answered.
        hub.vault.release("request", request_id)
        raise
    _decide(hub, request_id, APPROVED, listed, signed.token, receipt)
    return Decision(APPROVED, listed, signed.token, receipt.log_index)


async def deny(hub, client, gateway_kid: str, request_id: str, silent: bool) -> Decision:
    """Deny a request: a signed denial, or nothing at all if the owner prefers."""
    _pending(hub, request_id)
    if silent:
        _decide(hub, request_id, DENIED_SILENTLY, [], None)
        return Decision(DENIED_SILENTLY, [], None)
    signed = sign_answer(hub_key(hub.data), gateway_kid=gateway_kid, request_id=request_id,
                         decision="denied", now=hub.clock().timestamp())
    try:
        receipt = await client.post_answer(request_id, signed.token)
    except (FederationError, OSError) as err:
        raise PorchlightError(f"the denial could not be delivered: {err}; try again") from err
    _decide(hub, request_id, DENIED, [], signed.token, receipt)
    return Decision(DENIED, [], signed.token, receipt.log_index)


def _decide(hub, request_id: str, status: str, clips: list[dict], answer: str | None,
            receipt=None) -> None:
    with hub.db.write_lock:
        hub.db["requests"].update(request_id, {
            "status": status, "decided": iso(utcnow()), "clips": json.dumps(clips),
            "answer": answer, "hold_until": iso(utcnow() + HOLD_FOR) if clips else None,
            "answer_index": receipt.log_index if receipt else None,
            "answer_proof": receipt.proof if receipt else None})


def prove_answer(hub, request_id: str, gateway_jwk: dict) -> dict:
    """Return this hub's proof that its answer to a request is in the public log, checked."""
    row = next(hub.db["requests"].rows_where("id = ?", [request_id]), None)
    if row is None or not row.get("answer"):
        raise UsageError(f"this hub sent no answer to request {request_id!r}")
    if not row.get("answer_proof"):
        raise PorchlightError(f"the gateway gave no proof of the answer to {request_id}; "
                              "this hub answered before answers carried one")
    verifier = checkpoint_verifier(gateway_jwk)
    gateway_kid = verifier.name.rsplit("/", 1)[-1]
    token = row["answer"]
    try:
        answer = verify_answer(token, audience=gateway_kid, now=_issued(token))
        proven = verify_tlog_proof(token.encode("ascii"), row["answer_proof"], verifier)
    except (FederationError, TlogProofError) as err:
        raise PorchlightError(f"the stored proof of the answer to {request_id} does not "
                              f"verify: {err}") from err
    # Only this hub can derive the one-time key: that is what makes the answer its own.
    own = answer_key(hub_key(hub.data), gateway_kid=gateway_kid, request_id=request_id)
    if own.kid != answer.kid or proven.index != row.get("answer_index"):
        raise PorchlightError(f"the logged answer to {request_id} is not this hub's")
    return {"request": request_id, "decision": answer.claims.decision, "key": answer.kid,
            "log_index": proven.index, "answer": token, "tlog_proof": row["answer_proof"]}


@dataclass(frozen=True)
class ProvedAgain:
    """The answer found again in the log as it is now, and the checkpoint that shows it."""

    index: int
    size: int
    root_hash: str
    origin: str
    first_size: int
    witnesses: list[str]


async def prove_answer_again(hub, client, gateway_jwk: dict, request_id: str) -> ProvedAgain:
    """Fetch the log's latest checkpoint and a fresh proof that this hub's answer is in it; check both."""
    from federation.member.requests import check_witness_policy
    from federation.tlog.proof import format_tlog_proof, parse_tlog_proof

    stored = prove_answer(hub, request_id, gateway_jwk)  # the proof kept since answering
    verifier = checkpoint_verifier(gateway_jwk)
    first = parse_checkpoint(parse_note(parse_tlog_proof(stored["tlog_proof"]).checkpoint)[0])
    try:
        latest_signed = await client.get_checkpoint()
    except FederationError as err:
        raise PorchlightError(f"could not fetch the log's latest checkpoint: {err.message}; "
                              "try again later") from err
    try:
        latest = open_checkpoint(latest_signed, verifier, origin=verifier.name)
    except FederationError as err:
        raise PorchlightError(f"the gateway's latest checkpoint does not open with its key: "
                              f"{err.message}") from err
    try:
        hashes = await client.get_inclusion_proof(stored["log_index"], latest.size)
        # A log smaller now than when it proved the answer fails below: not a prefix of it.
        sizes = sorted((first.size, latest.size))
        consistency = (await client.get_consistency_proof(*sizes)
                       if latest.size != first.size else None)
    except FederationError as err:
        raise PorchlightError(f"could not fetch a fresh proof from the gateway: {err.message}; "
                              "try again later") from err
    bundle = format_tlog_proof(stored["log_index"], hashes, latest_signed)
    try:
        # The answer at its index under the latest root, and the latest log a continuation of
        # the one the answer was first proved in: nothing was removed or rewritten since.
        verify_tlog_proof(stored["answer"].encode("ascii"), bundle, verifier,
                          last_seen_checkpoint=first, consistency_proof=consistency)
        policy = hub.config.witnesses
        witnesses = check_witness_policy(latest_signed, policy.verifiers(), policy.min)
    except (FederationError, TlogProofError) as err:
        raise PorchlightError(f"the public log at size {latest.size} does not prove the answer "
                              f"to {request_id}: {err}") from err
    return ProvedAgain(index=stored["log_index"], size=latest.size, origin=latest.origin,
                       root_hash=base64.b64encode(latest.root_hash).decode(),
                       first_size=first.size, witnesses=witnesses)


def _issued(token: str) -> float:
    return float(peek_entry(token).claims["iat"])


def release_expired_holds(hub, now: datetime | None = None) -> int:
    """Lift request holds whose clips the gateway no longer keeps."""
    now = now or utcnow()
    released = 0
    rows = hub.db.execute("select id from requests where hold_until is not null and hold_until < ?",
                          [iso(now)]).fetchall()
    for (request_id,) in rows:
        released += hub.vault.release("request", request_id)
        with hub.db.write_lock:
            hub.db["requests"].update(request_id, {"hold_until": None})
    return released

