"""Nylas's application limit: a 429 on an application endpoint holds those requests only.

Application endpoints (`/v3/grants`, `/v3/connectors`, their credentials) share the
application's rate limit; grant-scoped requests are limited per grant and go on. After a
429 there, application requests wait out its `Retry-After` (or backoff), and at most
half as many run at once until successes grow the number back. Nothing else pauses:
holding every grant's requests for an application 429 stopped work the application
limit never covered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterator

LOGGER = logging.getLogger("tap-nylas.throttle")

#: Successes after which a cut grows back by one. Nylas's application limit is per
#: second: at 8 requests and ~100 ms a request, 10 successes bring one more back about
#: every quarter second (20 took 2.7 s from 4 to 8, measured).
SUCCESSES_PER_STEP = 10


class ApplicationThrottle:
    """How many application requests may run, and when, after the application's 429s."""

    def __init__(self, limit: int) -> None:
        """At most `limit` application requests in flight while nothing was throttled."""
        self.ceiling = max(1, limit)
        self.limit = self.ceiling
        self._in_flight = 0
        self._resume = 0.0
        self._successes = 0
        self._cv = threading.Condition()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold an application request until it may go, and count it while it runs."""
        with self._cv:
            while True:
                wait = self._resume - time.monotonic()
                if wait <= 0 and self._in_flight < self.limit:
                    break
                self._cv.wait(wait if wait > 0 else None)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cv:
                self._in_flight -= 1
                self._cv.notify_all()

    def throttled(self, wait: float) -> None:
        """A 429 on an application endpoint: hold for `wait` s, then run half as many."""
        with self._cv:
            self._resume = max(self._resume, time.monotonic() + wait)
            self._successes = 0
            if self.limit > 1:
                self.limit = max(1, self.limit // 2)
                LOGGER.warning(
                    "Nylas throttled the application: %d application requests in flight at "
                    "most, for now (grant requests go on)",
                    self.limit,
                )
            self._cv.notify_all()

    def succeeded(self) -> None:
        """An application request succeeded: after `SUCCESSES_PER_STEP`, one more may run."""
        with self._cv:
            if self.limit >= self.ceiling:
                return
            self._successes += 1
            if self._successes >= SUCCESSES_PER_STEP:
                self._successes = 0
                self.limit += 1
                LOGGER.info(
                    "Application requests in flight back up to %d of %d", self.limit, self.ceiling
                )
                self._cv.notify_all()
