"""Budgets per key and per tag (daily, monthly or in total), checked before a call and debited after it.

Admission needs ``spent + reserved < limit`` on every budget that applies; the call's estimated cost is
reserved while it runs and swapped for the real cost when it ends (a stream: when it closes). So concurrent
requests overshoot a budget by at most one in-flight estimate. A spent budget is 429 ``insufficient_quota``,
which the server marks ``x-should-retry: false``. A counter that does not exist yet (a restarted process with
in-memory counters, a flushed Redis) starts from what the request log says its period has spent, not from 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from modelyard import errors
from modelyard.middleware.limits import GuardedStream
from modelyard.middleware.policy import BudgetCheck, LimitPolicy
from modelyard.pipeline import Call, ChatStream, Handler, Outcome
from modelyard.storage.base import LogQuery
from modelyard.storage.counters import BudgetLine, Counters, Refusal, Reservation
from modelyard.types.usage import Usage

log = logging.getLogger("modelyard.budgets")
CostEstimator = Callable[[Call], float]
LoggedCost = Callable[[LogQuery], Awaitable[float]]
_background: set[asyncio.Task[None]] = set()
#: Seconds a budget's logged spend is reused as its seed; entries kept before the memo is cleared.
SEED_MAX_AGE = 60.0
SEED_MEMO_SIZE = 10_000


class LoggedSpend:
    """Seeds for budget counters from the request log (``logged_cost`` sums the cost of matching rows).

    A seed only fills a counter that is missing, so it is looked up at most once per ``SEED_MAX_AGE`` per
    budget; a counter lost later (Redis flushed) restarts from a seed at most that old."""

    def __init__(self, logged_cost: LoggedCost) -> None:
        self.logged_cost = logged_cost
        self._seen: dict[str, tuple[float, float]] = {}  # budget key -> (spent, when looked up)

    async def seeded(self, check: BudgetCheck) -> BudgetLine:
        line = check.line
        if line.initial is not None or check.logged is None:
            return line
        now = time.monotonic()
        seen = self._seen.get(line.key)
        if seen is None or now - seen[1] > SEED_MAX_AGE:
            try:
                seen = (await self.logged_cost(check.logged.query()), now)
            except Exception as exc:  # no log database: the counter alone decides, as it would without seeds
                log.warning("could not read the logged spend of %s (%s): counting from 0", line.key, exc)
                seen = (0.0, now)
            if len(self._seen) >= SEED_MEMO_SIZE:
                self._seen.clear()
            self._seen[line.key] = seen
        return replace(line, initial=seen[0])


class BudgetMiddleware:
    """Reserve, run, settle. Sits outside the cost middleware, so it sees each call's final cost."""

    def __init__(
        self,
        counters: Counters,
        policy: LimitPolicy,
        estimate_cost: CostEstimator,
        seeds: LoggedSpend | None = None,
    ) -> None:
        self.counters = counters
        self.policy = policy
        self.estimate_cost = estimate_cost
        self.seeds = seeds

    def skips(self, call: Call) -> bool:
        return not self.policy.may_budget(call)

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        if self.skips(call):
            return await next(call)
        checks = self.policy.budgets(call, await self.policy.key(call))
        if not checks:
            return await next(call)
        estimate = self.estimate_cost(call)
        lines = [await self.seeds.seeded(c) if self.seeds is not None else c.line for c in checks]
        result = await self.counters.reserve(lines, estimate, call.request_id)
        if isinstance(result, Refusal):
            raise _spent_error(checks[result.index], result.spent, call.request_id)
        try:
            outcome = await next(call)
        except BaseException:
            await self._settle(result, call.info.cost or 0.0)
            raise
        if isinstance(outcome, ChatStream):
            return self._held(outcome, call, result)
        await self._settle(result, call.info.cost or 0.0)
        return outcome

    def _held(self, stream: ChatStream, call: Call, reservation: Reservation) -> ChatStream:
        async def on_close(usage: Usage | None, delivered: bool) -> None:
            cost = call.info.cost
            if cost is None:  # ended before the provider's usage was priced: never debit less than expected
                cost = reservation.estimate if delivered else 0.0
            await self._settle(reservation, cost)

        return ChatStream(GuardedStream(stream, on_close), stream.info)

    async def _settle(self, reservation: Reservation, cost: float) -> None:
        """Debit ``cost``; completes even while the caller is being cancelled, and never raises."""

        async def settle() -> None:
            try:
                await self.counters.settle(reservation, cost)
            except Exception as exc:
                log.error("budget debit of $%.6f failed (%s)", cost, type(exc).__name__)

        task = asyncio.ensure_future(settle())
        _background.add(task)
        task.add_done_callback(_background.discard)
        await asyncio.shield(task)


def _spent_error(check: BudgetCheck, spent: float, request_id: str) -> errors.BudgetExceededError:
    period = "" if check.period == "total" else f"{check.period} "
    return errors.BudgetExceededError(
        f"{check.label} has spent its {period}budget of ${check.line.limit:.2f} (spent ${spent:.4f})",
        code="insufficient_quota",
        request_id=request_id,
    )
