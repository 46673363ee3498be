"""Injected failures and the optional Nylas rate limiter."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass

from .query import ApiError

FAULT_KINDS: tuple[str, ...] = ("429_retry_after", "429", "500", "503", "drop")
MAX_FAULT_STREAK = 2  # a client retrying 3 times always gets through


@dataclass(frozen=True)
class Faults:
    """Which fraction of requests fail, and how."""

    rate: float = 0.05
    retry_after: float = 1
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int | None = None  # defaults to the simulator's seed

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be within [0, 1]")


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` value; whole seconds print without a decimal point."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


class FaultInjector:
    """Decides, deterministically in arrival order, which requests fail."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        fault_seed = faults.seed if faults.seed is not None else seed
        self._rng = random.Random(f"faults:{fault_seed}")  # noqa: S311 - not crypto
        self._streaks: dict[str, int] = {}
        self._lock = threading.Lock()

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
        if kind.startswith("429"):
            headers = {}
            if kind == "429_retry_after":
                headers["Retry-After"] = retry_after_header(self.faults.retry_after)
            provider_error = {"error": {"code": 429, "message": "Rate Limit Exceeded"}}
            return ApiError(429, "rate_limit_error", "Too many requests", provider_error, headers)
        if kind == "503":
            return ApiError(503, "service_unavailable", "Service unavailable, please retry")
        return ApiError(500, "internal_error", "Internal server error, please retry")


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
