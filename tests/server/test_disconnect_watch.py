"""``DisconnectWatch``: cancels the request's task when the client leaves, and leaves nothing behind once stopped."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from modelyard.server.http import DisconnectWatch


async def test_a_disconnect_cancels_the_watched_task() -> None:
    leave = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await leave.wait()
        return {"type": "http.disconnect"}

    async def request() -> DisconnectWatch:
        watch = DisconnectWatch(receive)
        await asyncio.sleep(30)  # an upstream call that would take long
        return watch

    task = asyncio.get_running_loop().create_task(request())
    await asyncio.sleep(0)
    leave.set()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done and task.cancelled()


async def test_a_stopped_watch_is_freed_without_the_garbage_collector() -> None:
    """Each finished request's objects must go when it ends, not wait for a collection (a cycle through the watcher
    task kept them: +4 MB peak RSS at concurrency 64)."""
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    gc.disable()
    try:
        watch = DisconnectWatch(receive)
        freed = weakref.ref(watch)
        watch.stop()
        del watch
        for _ in range(3):
            await asyncio.sleep(0)  # the watcher task takes its cancellation and ends
        assert freed() is None
    finally:
        gc.enable()
