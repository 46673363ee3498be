"""Injected failures: a seeded random mix, scripted rules, and the Nylas rate limiter."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass

from .query import ApiError

# The random transient mix (``Faults.kinds`` default): what a long sync meets in the wild.
FAULT_KINDS: tuple[str, ...] = (
    "429_provider",  # provider throttled, passed through by Nylas, no Retry-After
    "429_provider_retry_after",  # the same with Retry-After
    "429_nylas",  # Nylas's own limiter: nylas_rate_limit_exceeded, no provider_error
    "500",
    "503",
    "drop",  # headers and half the body, then the connection closes
)
# Older names, still accepted: "429" = 429_provider, "429_retry_after" = with Retry-After.
LEGACY_FAULT_KINDS: tuple[str, ...] = ("429", "429_retry_after")
# Kinds only scripted rules inject (hostile answers a retry will not fix, or odd ones).
RULE_ONLY_KINDS: tuple[str, ...] = (
    "429_retry_after_soon",  # Retry-After: soon (not a number, not a date)
    "502",  # a gateway's text/html page
    "no_data",  # 200, a JSON object without "data"
    "error_200",  # 200 carrying an error object
    "truncated_json",  # 200, Content-Length matches, body cut mid-JSON
    "html",  # 200 text/html page
    "trickle",  # 200, the real body one byte every ``trickle_interval`` seconds
    "403",
    "404",
)
RULE_KINDS: tuple[str, ...] = FAULT_KINDS + LEGACY_FAULT_KINDS + RULE_ONLY_KINDS
# Kinds whose body is written specially by the server (not an ApiError envelope).
BODY_KINDS = frozenset({"drop", "no_data", "error_200", "truncated_json", "html", "trickle"})
MAX_FAULT_STREAK = 2  # a client retrying 3 times always gets through

_PROVIDER_429 = {"error": {"code": 429, "message": "Rate Limit Exceeded"}}
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>{title}</title></head>"
    "<body><h1>{title}</h1><p>Please try again later.</p></body></html>"
)


@dataclass(frozen=True)
class Faults:
    """Which fraction of requests fail, and how."""

    rate: float = 0.05
    retry_after: float = 1
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int | None = None  # defaults to the simulator's seed

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS + LEGACY_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be within [0, 1]")


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` value; whole seconds print without a decimal point."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def html_page(title: str) -> bytes:
    """A small HTML error page, as load balancers and proxies send."""
    return _HTML_PAGE.format(title=title).encode()


def fault_error(kind: str, retry_after: float = 1) -> ApiError:  # noqa: PLR0911 - one per kind
    """The error answered for a kind that is an ordinary error status."""
    if kind in ("429_provider_retry_after", "429_retry_after"):
        headers = {"Retry-After": retry_after_header(retry_after)}
        return ApiError(429, "rate_limit_error", "Too many requests", _PROVIDER_429, headers)
    if kind in ("429_provider", "429"):
        return ApiError(429, "rate_limit_error", "Too many requests", _PROVIDER_429)
    if kind == "429_retry_after_soon":
        headers = {"Retry-After": "soon"}
        return ApiError(429, "rate_limit_error", "Too many requests", _PROVIDER_429, headers)
    if kind == "429_nylas":
        return ApiError(
            429, "nylas_rate_limit_exceeded", "Too many requests. Please try again later."
        )
    if kind == "503":
        return ApiError(503, "service_unavailable", "Service unavailable, please retry")
    if kind == "403":
        return ApiError(
            403,
            "forbidden",
            "Insufficient permissions for this request",
            {"error": {"code": 403, "message": "Request had insufficient authentication scopes."}},
        )
    if kind == "404":
        return ApiError(404, "not_found_error", "Not found")
    return ApiError(500, "internal_error", "Internal server error, please retry")


class FaultInjector:
    """Decides, deterministically in arrival order, which requests fail."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self._seed = faults.seed if faults.seed is not None else seed
        self._lock = threading.Lock()
        self.rewind()

    def rewind(self) -> None:
        """Start the sequence of faults over, as if no request had come yet."""
        with self._lock:
            self._rng = random.Random(f"faults:{self._seed}")  # noqa: S311 - not crypto
            self._streaks: dict[str, int] = {}

    def draw(self, key: str) -> str | None:
        """The fault for this request (keyed by path and params), or None."""
        with self._lock:
            # Draw both numbers every time so the sequence never depends on outcomes.
            roll = self._rng.random()
            kind = self._rng.choice(self.faults.kinds)
            streak = self._streaks.get(key, 0)
            if roll >= self.faults.rate or streak >= MAX_FAULT_STREAK:
                self._streaks.pop(key, None)
                return None
            self._streaks[key] = streak + 1
            return kind

    def error(self, kind: str) -> ApiError:
        """The error answered for a non-drop fault."""
        return fault_error(kind, self.faults.retry_after)


@dataclass
class FaultRule:
    """A scripted fault: requests whose target matches ``pattern`` get ``kind``."""

    pattern: re.Pattern[str]
    kind: str
    remaining: int | None  # None: forever


class FaultRules:
    """Scripted faults for tests, checked in the order they were added."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, path_regex: str, kind: str, times: int | None = None) -> None:
        """Answer ``kind`` to the next ``times`` matching requests (None: all of them)."""
        if kind not in RULE_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {RULE_KINDS}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for forever)")
        rule = FaultRule(re.compile(path_regex), kind, times)
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Drop every rule."""
        with self._lock:
            self._rules.clear()

    def match(self, target: str) -> str | None:
        """The kind of the first live rule matching ``target`` (path and query), used up."""
        with self._lock:
            for rule in self._rules:
                if rule.pattern.search(target):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._rules.remove(rule)
                    return rule.kind
        return None


def parse_rule(spec: str) -> tuple[str, str, int | None]:
    """``REGEX:KIND[:TIMES]`` (the regex may contain colons) as (regex, kind, times)."""
    head, _, last = spec.rpartition(":")
    before_last = head.rpartition(":")[2]
    # Kinds such as "500" are digits too: a number is TIMES only after a kind.
    if last.isdigit() and before_last in RULE_KINDS:
        regex, _, kind = head.rpartition(":")
        times: int | None = int(last)
    else:
        regex, kind, times = head, last, None
    if not regex or kind not in RULE_KINDS:
        raise ValueError(f"expected REGEX:KIND[:TIMES] with KIND one of {RULE_KINDS}: {spec!r}")
    return regex, kind, times


class GrantGate:
    """At most ``limit`` requests in flight per grant, like Microsoft's 4 per mailbox."""

    def __init__(self, limit: int, retry_after: float = 1) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self._in_flight: dict[str, int] = {}
        self._rejected = 0
        self._lock = threading.Lock()

    def enter(self, grant_id: str) -> ApiError | None:
        """Take a slot, or the 429 to answer (then no slot is held)."""
        with self._lock:
            held = self._in_flight.get(grant_id, 0)
            if held < self.limit:
                self._in_flight[grant_id] = held + 1
                return None
            self._rejected += 1
            # Every other rejection carries Retry-After: providers are not consistent.
            with_header = self._rejected % 2 == 1
        provider_error = {
            "error": {
                "code": "ApplicationThrottled",
                "message": "Application is over its MailboxConcurrency limit.",
            }
        }
        headers = {"Retry-After": retry_after_header(self.retry_after)} if with_header else {}
        return ApiError(
            429,
            "rate_limit_error",
            f"Too many concurrent requests for this grant (limit {self.limit})",
            provider_error,
            headers,
        )

    def leave(self, grant_id: str) -> None:
        """Give the slot back."""
        with self._lock:
            held = self._in_flight.get(grant_id, 0) - 1
            if held > 0:
                self._in_flight[grant_id] = held
            else:
                self._in_flight.pop(grant_id, None)


class RateLimiter:
    """Sliding one-second windows per key (a grant, or the application)."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, limit: int) -> bool:
        """Record a request under ``key`` unless it exceeds ``limit`` per second."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            return True


def rate_limited() -> ApiError:
    """The Nylas-side 429."""
    return ApiError(
        429,
        "nylas_rate_limit_exceeded",
        "Too many requests. Please try again later.",
        headers={"Retry-After": "1"},
    )
