"""Your own middleware: a callable (call, next) -> outcome that wraps every request, like the built-in ones.

Name it in settings (`middleware: ["mypackage.hooks:factory"]`) or pass it to a Gateway in code, as here.

    python examples/custom_middleware.py
"""

import asyncio
import time

from modelyard import AsyncClient, Call, ChatResponse, Gateway, load_settings


class Timing:
    """Prints each call's model, latency and cost; adds a tag so it shows up in cost reports."""

    async def __call__(self, call: Call, next):  # `next` runs the rest of the chain
        call.options.tags.append("timed")
        started = time.perf_counter()
        outcome = await next(call)
        if isinstance(outcome, ChatResponse):
            self.report(call, started)
            return outcome
        # A stream: look at it with hooks (per chunk, and once when it ends, however it ends); use
        # outcome.wrap(transform) instead only to change or add chunks.
        return outcome.observe(on_end=lambda end: self.report(call, started))

    @staticmethod
    def report(call: Call, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        print(f"[timing] {call.request.model} -> {call.info.served_model}: {elapsed:.1f} ms, cost {call.info.cost}")


async def main() -> None:
    gateway = Gateway(load_settings(), middleware=[Timing()])
    async with AsyncClient(gateway=gateway) as client:
        reply = await client.chat("fake/echo", [{"role": "user", "content": "hello middleware"}])
        print("answer:", reply.text)


asyncio.run(main())
