"""An event-stream response that notices a client disconnect at once, even while the model is silent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from modelyard.server.http import DisconnectWatch
from modelyard.streaming import close_iterator


class LastFrame(bytes):
    """A body's final frame: written together with the end of the response (one write instead of two)."""


class EventStreamResponse(Response):
    """Streams ``body``; when the client goes away the producer is cancelled immediately (not at the next write).

    ``watch``: the request's ``DisconnectWatch`` when one already runs (``http.watched``); the response stops it."""

    media_type = "text/event-stream"

    def __init__(
        self, body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None, watch: DisconnectWatch | None = None
    ) -> None:
        # Like Starlette's StreamingResponse: no body attribute, so no Content-Length header.
        self.status_code = 200
        self.background = None
        self.body_iterator = body
        self.watch = watch
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = self.watch or DisconnectWatch(receive)
        try:
            # Inside the ``try``: a disconnect that came after the watch began may land on this first write.
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            more = True
            async for frame in self.body_iterator:  # run to its end even after the last frame: it may still raise
                if more:
                    more = not isinstance(frame, LastFrame)
                    await send({"type": "http.response.body", "body": frame, "more_body": more})
                    if not more:
                        watch.stop()  # the answer is whole: the client leaving now must not cancel what follows
            if more:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.disconnected or watch.task.uncancel() > 0:
                raise  # cancelled by someone else (server shutdown): not ours to swallow
        except OSError:
            pass  # the client left while we wrote
        finally:
            watch.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await close_iterator(self.body_iterator)
