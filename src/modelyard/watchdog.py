"""Time limits on a series of waits (network reads, queue gets) with one timer for the whole series.

``asyncio.timeout`` schedules a timer when each wait starts and cancels it when it ends (~3-4 µs on uvloop, and
aiohttp's ``sock_read`` does the same on every network read): a stream of 20 chunks paid for ~40 timers. A
``Watchdog`` only records each wait's deadline; its one timer, when it fires before the current deadline, re-arms
itself for that deadline, so a busy series costs about one timer per time limit, not one per wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: A timer may fire up to about a millisecond early (libuv counts in milliseconds): that close counts as due.
EARLY = 0.001


class Watchdog:
    """``await watchdog.wait(awaitable, seconds)`` is ``async with asyncio.timeout(seconds): await awaitable``
    (``TimeoutError`` when it expires, other cancellations untouched), cheaper when called many times.

    Use it from one task at a time; ``close()`` drops its timer once the series is over."""

    __slots__ = ("_deadline", "_expired", "_handle", "_loop", "_task", "_when")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[object] | None = None
        self._deadline: float | None = None  # of the wait in progress
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0  # when the handle fires
        self._expired = False

    async def wait(self, awaitable: Awaitable[T], seconds: float) -> T:
        """The awaitable's result, or ``TimeoutError`` if it takes more than ``seconds``."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or the owner moved to another loop: its timer stays behind
            self.close()
            self._loop = loop
        task = self._task = asyncio.current_task(loop)
        assert task is not None, "Watchdog.wait runs in a task"
        deadline = self._deadline = loop.time() + seconds
        self._expired = False
        if self._handle is None or self._when > deadline:
            self._arm(deadline)
        cancelling = task.cancelling()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                if task.uncancel() <= cancelling:
                    raise TimeoutError from None
            raise
        finally:
            self._deadline = self._task = None  # a timer left behind by an abandoned series holds nothing

    def close(self) -> None:
        """Cancel the timer (a later ``wait`` starts a new one)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline
        if deadline is None:  # between waits: the next one arms a timer again
            return
        assert self._loop is not None and self._task is not None
        if deadline - self._loop.time() > EARLY:
            self._arm(deadline)
            return
        self._expired = True
        self._task.cancel()
