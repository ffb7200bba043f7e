"""Usage: spend, tokens, latency, time to first token, error and fallback rates, over time and by group."""

from __future__ import annotations

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelyard.web.base import Workbench
from modelyard.web.charts import Series, bar_chart, hbar_chart, line_chart
from modelyard.web.render import millis, money, number
from modelyard.web.usage_data import GROUP_KEYS, GroupKey, UsageReport, usage_report

PERIODS = (1, 7, 30, 90)
GROUP_LABELS = {"model": "Model", "caller": "Key", "tag": "Tag", "provider": "Provider"}


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def charts(report: UsageReport) -> dict[str, Markup]:
    """The page's SVG charts."""
    labels = [d.key for d in report.days]
    days = report.days
    return {
        "spend": bar_chart(labels, [d.summary.cost for d in days], money, "Spend per day"),
        "requests": line_chart(
            labels,
            [
                Series("requests", [float(d.summary.requests) for d in days], 1),
                Series("errors", [float(d.summary.errors) for d in days], 3),
            ],
            lambda v: number(v),
            "Requests and errors per day",
        ),
        "latency": line_chart(
            labels,
            [
                Series("p50", [d.summary.p50_latency_ms for d in days], 1),
                Series("p95", [d.summary.p95_latency_ms for d in days], 2),
                Series("TTFT p50", [d.sampled.ttft_p50 for d in days], 4),
            ],
            millis,
            "Latency per day (p50, p95, time to first token)",
        ),
        "rates": line_chart(
            labels,
            [
                Series("error rate", [d.error_rate if d.summary.requests else None for d in days], 3),
                Series("fallback rate", [d.sampled.fallback_rate for d in days], 2),
            ],
            _percent,
            "Error and fallback rate per day",
            least_top=0.2,
        ),
        "by_group": hbar_chart([(g.key, g.summary.cost) for g in report.groups[:12]], money, "Spend by group"),
        "by_group_latency": hbar_chart(
            [(g.key, g.summary.p50_latency_ms or 0.0) for g in report.groups[:12]], millis, "p50 latency by group", 2
        ),
    }


class UsagePage:
    """``/usage?days=7&by=model``."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def routes(self) -> list[Route]:
        """The page's route."""
        return [Route("/usage", self.page)]

    async def page(self, request: Request) -> Response:
        """The Usage page for a period (``days``) and a grouping (``by``)."""
        raw_days = request.query_params.get("days", "7")
        days = int(raw_days) if raw_days.isdigit() and int(raw_days) in PERIODS else 7
        raw_by = request.query_params.get("by", "model")
        by: GroupKey = "model"
        for key in GROUP_KEYS:
            if raw_by == key:
                by = key
        report = await usage_report(await self.bench.settled_store(), days, by)
        return self.bench.page(
            request,
            "usage.html",
            report=report,
            charts=charts(report),
            days=days,
            by=by,
            periods=PERIODS,
            group_labels=GROUP_LABELS,
            active="usage",
        )
