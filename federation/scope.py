"""Request scope: how much an agency request may ask for.

The defaults come from DESIGN.md ("Request scope"): a time window of 15 min to 12 h that ends
in the past and starts at most 30 days ago, a circle of 10 m to 650 m radius, and a lifetime
(``exp`` - ``iat``) of at most 14 days. A case number and a non-blank reason are required; the
request schema already enforces those. A neighbourhood may tighten every limit, never loosen
one. These are pure functions of the claims, the limits and the injected clock.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, cast

from federation.errors import ScopeError
from federation.schemas import TYP_REQUEST, RequestClaims, parse_claims

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True)
class ScopeLimits:
    """Bounds on an agency request's window, area and lifetime."""

    min_window_s: float = 15 * MINUTE
    max_window_s: float = 12 * HOUR
    max_window_age_s: float = 30 * DAY
    min_radius_m: float = 10.0
    max_radius_m: float = 650.0
    max_lifetime_s: float = 14 * DAY

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ScopeError(f"{item.name}: must be a number", reason="bad_limits")
            if not math.isfinite(value) or value <= 0:
                raise ScopeError(f"{item.name}: must be a positive number", reason="bad_limits")
        if self.min_window_s > self.max_window_s:
            raise ScopeError(
                "min_window_s: larger than max_window_s, so no window could pass",
                reason="bad_limits",
            )
        if self.min_radius_m > self.max_radius_m:
            raise ScopeError(
                "min_radius_m: larger than max_radius_m, so no area could pass",
                reason="bad_limits",
            )

    def tighten(self, other: ScopeLimits) -> ScopeLimits:
        """Return other if it is at least as strict as these limits, else raise ScopeError."""
        looser = (
            ("min_window_s", other.min_window_s < self.min_window_s, format_duration, "shorter"),
            ("max_window_s", other.max_window_s > self.max_window_s, format_duration, "longer"),
            (
                "max_window_age_s",
                other.max_window_age_s > self.max_window_age_s,
                format_duration,
                "longer",
            ),
            ("min_radius_m", other.min_radius_m < self.min_radius_m, _metres, "smaller"),
            ("max_radius_m", other.max_radius_m > self.max_radius_m, _metres, "larger"),
            (
                "max_lifetime_s",
                other.max_lifetime_s > self.max_lifetime_s,
                format_duration,
                "longer",
            ),
        )
        for name, is_looser, show, word in looser:
            if is_looser:
                raise ScopeError(
                    f"{name}: {show(getattr(other, name))} is {word} than the allowed "
                    f"{show(getattr(self, name))}; a neighbourhood may only tighten scope limits",
                    reason="looser_than_allowed",
                )
        return other

    def tightened(self, **changes: float) -> ScopeLimits:
        """Return a copy with some limits changed, refusing any change that loosens them."""
        unknown = sorted(set(changes) - set(asdict(self)))
        if unknown:
            raise ScopeError(f"{unknown[0]}: unknown scope limit", reason="bad_limits")
        return self.tighten(replace(self, **changes))


DEFAULT_LIMITS = ScopeLimits()


def format_duration(seconds: float) -> str:
    """Format seconds as '13 h', '12 h 30 min', '31 d' or '45 s'."""
    whole = int(seconds)
    frac = seconds - whole
    days, rest = divmod(whole, DAY)
    hours, rest = divmod(rest, HOUR)
    minutes, secs = divmod(rest, MINUTE)
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes else []
    if secs or frac or not parts:
        parts.append(f"{secs + frac:g} s")
    return " ".join(parts)


def _metres(value: float) -> str:
    return f"{value:g} m"


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_request_scope(
    claims: RequestClaims | dict[str, Any],
    limits: ScopeLimits = DEFAULT_LIMITS,
    *,
    now: float,
    leeway: float = 60,
) -> RequestClaims:
    """Check a request against the scope limits and return its parsed claims."""
    if isinstance(claims, RequestClaims):
        request = claims
    else:
        request = cast(RequestClaims, parse_claims(TYP_REQUEST, claims))
    start = request.window.start_at
    end = request.window.end_at
    length = (end - start).total_seconds()
    if length < limits.min_window_s:
        raise ScopeError(
            f"window: {format_duration(length)} is shorter than the "
            f"{format_duration(limits.min_window_s)} minimum",
            reason="window_too_short",
        )
    if length > limits.max_window_s:
        raise ScopeError(
            f"window: {format_duration(length)} is longer than the {format_duration(limits.max_window_s)} limit",
            reason="window_too_long",
        )
    now_at = datetime.fromtimestamp(now, tz=UTC)
    ahead = (end - now_at).total_seconds()
    if ahead > leeway:
        raise ScopeError(
            f"window.end: {_timestamp(end)} is {format_duration(round(ahead))} in the future; "
            "a request may only cover the past",
            reason="window_in_future",
        )
    age = (now_at - start).total_seconds()
    if age > limits.max_window_age_s:
        raise ScopeError(
            f"window.start: {format_duration(round(age))} ago is older than the "
            f"{format_duration(limits.max_window_age_s)} limit",
            reason="window_too_old",
        )
    radius = request.area.radius_m
    if radius < limits.min_radius_m:
        raise ScopeError(
            f"area.radius_m: {_metres(radius)} is smaller than the "
            f"{_metres(limits.min_radius_m)} minimum",
            reason="radius_too_small",
        )
    if radius > limits.max_radius_m:
        raise ScopeError(
            f"area.radius_m: {_metres(radius)} is larger than the "
            f"{_metres(limits.max_radius_m)} limit",
            reason="radius_too_large",
        )
    lifetime = request.exp - request.iat
    if lifetime > limits.max_lifetime_s:
        raise ScopeError(
            f"exp: lifetime {format_duration(lifetime)} is longer than the "
            f"{format_duration(limits.max_lifetime_s)} limit",
            reason="lifetime_too_long",
        )
    return request
