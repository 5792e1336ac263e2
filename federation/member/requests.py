"""What a hub does with an agency request its gateway routed to it, before the owner sees it.

``verify_routed_request`` is a pure function: the agency's signature under the hub's own
pinned registry (never a key from the gateway), the registry's expiry, the claims, the scope,
the jurisdiction, then the C2SP tlog-proof that these exact bytes are in the neighbourhood's
public log, under a checkpoint consistent with the last one this hub saw, and last the replay
store. Each failure is a ``RequestRejected`` with one reason the hub can record and show, so
a dishonest gateway cannot alter a request, replay one, keep one out of the public log, fork
the log or withhold the proof without the hub noticing. The hub adds its own two checks: its
exact location is inside the circle, and it holds footage in the window.

docs/agency-protocol.md lists the reasons in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from federation.errors import (
    FederationError,
    MessageExpired,
    ReplayDetected,
    ScopeError,
    SignatureInvalid,
)
from federation.neighbourhood_log import checkpoint_verifier, log_origin
from federation.registry import (
    AgencyEntry,
    OutsideJurisdiction,
    RegistryExpired,
    UnknownAgency,
    VerifiedRegistry,
)
from federation.replay import ReplayStore
from federation.request_rules import check_request_jws
from federation.schemas import RequestClaims
from federation.scope import DEFAULT_LIMITS, ScopeLimits
from federation.tlog.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    parse_checkpoint,
)
from federation.tlog.cosignature import CosignatureVerifier, verify_cosignatures
from federation.tlog.note import NoteError, NoteVerifier, parse_note
from federation.tlog.proof import (
    TlogProof,
    TlogProofError,
    TlogProofInconsistent,
    TlogProofMalformed,
    TlogProofNotIncluded,
    TlogProofUnverified,
    parse_tlog_proof,
    verify_tlog_proof,
)
from federation.wire import StreamMessage

__all__ = [
    "CheckpointInconsistent",
    "ProofWithheld",
    "RequestAltered",
    "RequestInvalid",
    "RequestMalformed",
    "RequestNotLogged",
    "RequestOutOfScope",
    "RequestOutsideJurisdiction",
    "RequestRegistryExpired",
    "RequestRejected",
    "RequestReplayed",
    "RequestUnknownAgency",
    "RoutedRequest",
    "VerifiedRequest",
    "checkpoint_verifier",
    "consistency_sizes",
    "log_origin",
    "parse_routed_request",
    "verify_routed_request",
]


class RequestRejected(FederationError):
    """The hub refuses a routed request; ``reason`` says why, the message says it for people."""

    default_reason = "request_rejected"


class RequestMalformed(RequestRejected):
    """The gateway sent something that is not a request message."""

    default_reason = "malformed"


class RequestRegistryExpired(RequestRejected):
    """The hub's pinned registry has expired; refresh it before trusting any agency."""

    default_reason = "registry_expired"


class RequestUnknownAgency(RequestRejected):
    """The request is signed by a key that is not an agency in the hub's registry."""

    default_reason = "unknown_agency"


class RequestAltered(RequestRejected):
    """The signature does not verify: the request was changed after the agency signed it."""

    default_reason = "altered_request"


class RequestInvalid(RequestRejected):
    """The request breaks a message rule (audience, times, schema, id)."""

    default_reason = "invalid_request"


class RequestOutOfScope(RequestRejected):
    """The request asks for more than the scope limits allow."""

    default_reason = "out_of_scope"


class RequestOutsideJurisdiction(RequestRejected):
    """The request's circle is outside the agency's jurisdiction."""

    default_reason = "outside_jurisdiction"


class ProofWithheld(RequestRejected):
    """The gateway did not prove that the request is in the public log."""

    default_reason = "proof_withheld"


class RequestNotLogged(RequestRejected):
    """The proof does not show these exact bytes in the gateway's signed log."""

    default_reason = "not_in_log"


class CheckpointInconsistent(RequestRejected):
    """The log the proof is against is not an extension of the one the hub saw before."""

    default_reason = "checkpoint_inconsistent"


class CheckpointNotWitnessed(RequestRejected):
    """Fewer of the witnesses this hub trusts cosigned the checkpoint than its policy needs."""

    default_reason = "not_witnessed"


def check_witness_policy(
    signed_checkpoint: str, witnesses: Sequence[CosignatureVerifier], min_witnesses: int
) -> list[str]:
    """Return who of the trusted witnesses cosigned; raise unless at least min_witnesses did."""
    names = sorted(c.witness for c in verify_cosignatures(signed_checkpoint, witnesses))
    if len(names) < min_witnesses:
        raise CheckpointNotWitnessed(
            f"the log checkpoint is cosigned by {len(names)} of the {min_witnesses} trusted "
            f"witnesses this hub requires ({', '.join(names) or 'none'}); without them the "
            "gateway could be showing this hub a forked log"
        )
    return names


class RequestReplayed(RequestRejected):
    """The hub has already received this request."""

    default_reason = "replayed"


@dataclass(frozen=True)
class RoutedRequest:
    """A request message's parts, before any check but its shape."""

    id: str
    token: str
    proof: TlogProof | None
    checkpoint_size: int | None


def parse_routed_request(message: StreamMessage) -> RoutedRequest:
    """Split a stream message of kind request into its JWS and tlog-proof (unverified)."""
    if getattr(message, "kind", None) != "request" or not isinstance(
        getattr(message, "jws", None), str
    ):
        raise RequestMalformed("the gateway sent a message that is not an agency request")
    proof = None
    size = None
    if message.proof is not None:
        try:
            proof = parse_tlog_proof(message.proof)
            text, _ = parse_note(proof.checkpoint)
            size = parse_checkpoint(text).size
        except (TlogProofError, NoteError, CheckpointError) as err:
            raise RequestNotLogged(
                f"the request's log proof is malformed: {err}", reason="proof_malformed"
            ) from err
    return RoutedRequest(id=message.id, token=message.jws, proof=proof, checkpoint_size=size)


def consistency_sizes(message: StreamMessage, last_checkpoint: str) -> tuple[int, int] | None:
    """Return the (old, new) sizes a consistency proof must cover, or None if none is needed."""
    routed = parse_routed_request(message)
    if routed.checkpoint_size is None:
        return None
    try:
        text, _ = parse_note(last_checkpoint)
        last = parse_checkpoint(text).size
    except (NoteError, CheckpointError):
        return None
    if last == routed.checkpoint_size:
        return None
    return min(last, routed.checkpoint_size), max(last, routed.checkpoint_size)


@dataclass(frozen=True)
class VerifiedRequest:
    """A routed request that passed every check; show it to the owner."""

    id: str
    token: str
    agency: AgencyEntry
    claims: RequestClaims = field(repr=False)
    registry_version: int
    log_index: int
    checkpoint: Checkpoint = field(repr=False)
    store_checkpoint: str = field(repr=False)

    @property
    def window_start(self) -> datetime:
        """Return the start of the requested window (aware, UTC)."""
        return self.claims.window.start_at

    @property
    def window_end(self) -> datetime:
        """Return the end of the requested window (aware, UTC)."""
        return self.claims.window.end_at

    @property
    def lat(self) -> float:
        """Return the latitude of the circle's centre."""
        return self.claims.area.lat

    @property
    def lon(self) -> float:
        """Return the longitude of the circle's centre."""
        return self.claims.area.lon

    @property
    def radius_m(self) -> float:
        """Return the circle's radius in metres."""
        return self.claims.area.radius_m


def _check_claims(
    token: str,
    *,
    registry: VerifiedRegistry,
    gateway_kid: str,
    now: float,
    limits: ScopeLimits,
) -> Any:
    try:
        return check_request_jws(
            token, registry=registry, audience=gateway_kid, now=now, limits=limits
        )
    except RegistryExpired as err:
        raise RequestRegistryExpired(
            f"{err} Refresh the registry before answering any request.", reason="registry_expired"
        ) from err
    except UnknownAgency as err:
        raise RequestUnknownAgency(str(err), reason="unknown_agency") from err
    except SignatureInvalid as err:
        raise RequestAltered(
            "the agency's signature does not verify: the request was changed after the agency "
            "signed it",
            reason="altered_request",
        ) from err
    except OutsideJurisdiction as err:
        raise RequestOutsideJurisdiction(str(err), reason="outside_jurisdiction") from err
    except ScopeError as err:
        raise RequestOutOfScope(str(err), reason=err.reason) from err
    except MessageExpired as err:
        raise RequestInvalid(f"the request has expired: {err}", reason="expired") from err
    except FederationError as err:
        raise RequestInvalid(str(err), reason=err.reason) from err


def verify_routed_request(
    message: StreamMessage,
    *,
    registry: VerifiedRegistry,
    gateway_kid: str,
    last_checkpoint: str | None,
    verifier_key: NoteVerifier,
    now: float,
    replay_store: ReplayStore | None,
    consistency_proof: Sequence[bytes] | None = None,
    limits: ScopeLimits = DEFAULT_LIMITS,
    witnesses: Sequence[CosignatureVerifier] = (),
    min_witnesses: int = 0,
) -> VerifiedRequest:
    """Verify a request the gateway routed: signature, scope, log, witnesses, replay."""
    routed = parse_routed_request(message)
    checked = _check_claims(
        routed.token, registry=registry, gateway_kid=gateway_kid, now=now, limits=limits
    )
    if routed.id != checked.id:
        raise RequestInvalid(
            f"the gateway labelled request {checked.id} as {routed.id[:64]}", reason="wrong_id"
        )
    if routed.proof is None:
        raise ProofWithheld(
            "the gateway sent the request without a proof that it is in the public log; it "
            "must not be shown until it is"
        )
    last: Checkpoint | None = None
    if last_checkpoint is not None:
        # The hub's own stored checkpoint; if it no longer opens, the hub's state is broken.
        try:
            last = open_checkpoint(last_checkpoint, verifier_key, origin=verifier_key.name)
        except CheckpointError as err:
            raise RequestRejected(
                f"the checkpoint this hub stored does not open with the gateway's key: {err}; "
                "the hub's state is damaged or belongs to another gateway",
                reason="last_checkpoint_unreadable",
            ) from err
    if last is not None and routed.checkpoint_size != last.size and consistency_proof is None:
        raise ProofWithheld(
            f"no consistency proof between the log at size {last.size}, seen before, and at "
            f"size {routed.checkpoint_size}; ask the gateway for one"
        )
    try:
        verified = verify_tlog_proof(
            checked.message.raw,
            routed.proof,
            verifier_key,
            last_seen_checkpoint=last,
            consistency_proof=consistency_proof,
        )
    except TlogProofUnverified as err:
        raise RequestNotLogged(
            f"the log checkpoint is not signed by the gateway's key: {err}",
            reason="checkpoint_unverified",
        ) from err
    except TlogProofMalformed as err:
        raise RequestNotLogged(
            f"the request's log proof is malformed: {err}", reason="proof_malformed"
        ) from err
    except TlogProofNotIncluded as err:
        raise RequestNotLogged(
            "the request is not in the public log: the proof does not lead from these exact "
            f"bytes to the signed checkpoint ({err})",
            reason="not_in_log",
        ) from err
    except TlogProofInconsistent as err:
        raise CheckpointInconsistent(
            "the gateway's log is not consistent with the checkpoint this hub saw before: "
            f"the log was rewritten or forked ({err})",
            reason="checkpoint_inconsistent",
        ) from err
    # Before the replay store: a request dropped here comes again with a cosigned checkpoint.
    check_witness_policy(verified.signed_checkpoint, witnesses, min_witnesses)
    claims = checked.claims
    if replay_store is not None:
        try:
            replay_store.check_and_remember(checked.message.kid, claims.jti, claims.exp, now)
        except ReplayDetected as err:
            raise RequestReplayed(
                f"request {claims.jti} was already received; a replayed request is ignored",
                reason="replayed",
            ) from err
    store = verified.signed_checkpoint if verified.newer_than_last_seen else last_checkpoint
    return VerifiedRequest(
        id=claims.jti,
        token=checked.message.token,
        agency=checked.agency,
        claims=claims,
        registry_version=registry.version,
        log_index=verified.index,
        checkpoint=verified.checkpoint,
        store_checkpoint=store or verified.signed_checkpoint,
    )

