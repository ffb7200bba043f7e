"""Budgets per key and per tag (daily, monthly or in total), checked before a call and debited after it.

Admission needs ``spent + reserved < limit`` on every budget that applies; the call's estimated cost is
reserved while it runs and swapped for the real cost when it ends (a stream: when it closes). So concurrent
requests overshoot a budget by at most one in-flight estimate. A spent budget is 429 ``insufficient_quota``,
which the server marks ``x-should-retry: false``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from modelyard import errors
from modelyard.middleware.limits import GuardedStream
from modelyard.middleware.policy import BudgetCheck, LimitPolicy
from modelyard.pipeline import Call, ChatStream, Handler, Outcome
from modelyard.storage.counters import Counters, Refusal, Reservation
from modelyard.types.usage import Usage

log = logging.getLogger("modelyard.budgets")
CostEstimator = Callable[[Call], float]
_background: set[asyncio.Task[None]] = set()


class BudgetMiddleware:
    """Reserve, run, settle. Sits outside the cost middleware, so it sees each call's final cost."""

    def __init__(self, counters: Counters, policy: LimitPolicy, estimate_cost: CostEstimator) -> None:
        self.counters = counters
        self.policy = policy
        self.estimate_cost = estimate_cost

    async def __call__(self, call: Call, next: Handler) -> Outcome:
        if not self.policy.may_budget(call):
            return await next(call)
        checks = self.policy.budgets(call, await self.policy.key(call))
        if not checks:
            return await next(call)
        estimate = self.estimate_cost(call)
        result = await self.counters.reserve([c.line for c in checks], estimate, call.request_id)
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
