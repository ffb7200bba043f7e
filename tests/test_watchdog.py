"""``Watchdog``: asyncio.timeout's behaviour for a series of waits, with one timer for the series."""

from __future__ import annotations

import asyncio
import time

import pytest

from modelyard.watchdog import Watchdog


async def test_a_wait_in_time_returns_its_result() -> None:
    watchdog = Watchdog()
    assert await watchdog.wait(asyncio.sleep(0.01, result="done"), 1.0) == "done"
    watchdog.close()


async def test_a_wait_too_long_raises_timeout_error_on_time() -> None:
    watchdog = Watchdog()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await watchdog.wait(asyncio.sleep(5), 0.2)
    assert 0.19 <= time.monotonic() - started < 1.0


async def test_each_wait_gets_its_full_time_after_a_pause_between_waits() -> None:
    # The first wait's timer is due 0.3 s after it started; the second wait starts 0.2 s later and must get its own
    # 0.3 s: the early timer finds a later deadline and re-arms instead of expiring.
    watchdog = Watchdog()
    await watchdog.wait(asyncio.sleep(0), 0.3)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await watchdog.wait(asyncio.sleep(5), 0.3)
    assert 0.29 <= time.monotonic() - started < 1.0


async def test_many_quick_waits_share_one_timer() -> None:
    loop = asyncio.get_running_loop()
    watchdog = Watchdog()
    scheduled = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback: object, *args: object) -> asyncio.TimerHandle:
        scheduled.append(when)
        return call_at(when, callback, *args)  # type: ignore[arg-type]

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    try:
        for _ in range(100):
            await watchdog.wait(asyncio.sleep(0), 30)
    finally:
        del loop.call_at
    watchdog.close()
    assert len(scheduled) == 1


async def test_another_cancellation_is_not_turned_into_a_timeout() -> None:
    watchdog = Watchdog()
    task = asyncio.get_running_loop().create_task(watchdog.wait(asyncio.sleep(5), 10))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_watchdog_used_on_a_second_event_loop_times_waits_there() -> None:
    watchdog = Watchdog()

    async def series() -> None:
        await watchdog.wait(asyncio.sleep(0), 30)
        with pytest.raises(TimeoutError):
            await watchdog.wait(asyncio.sleep(5), 0.1)

    asyncio.run(series())
    asyncio.run(series())  # a timer armed on the first (closed) loop must not stand in for this one
