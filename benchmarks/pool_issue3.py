"""Issue 3's question ("does logging add latency to a call?") pooled over many rounds of ``run_overhead.py``.

One run's verdict compares one median with one A/A difference, and on this machine either moves by ~0.1 ms from run
to run. This pools every round of the given JSON files (``run_overhead.py --json``, or a file of such runs keyed by
name): per round, logging on minus off for both logged targets (``modelyard`` and ``modelyard-b`` against
``modelyard-nolog``), and the A/A difference (``modelyard`` minus ``modelyard-b``). It prints mean, median, spread and
the standard error of each, at concurrency 1 (or ``--concurrency``): a mean within about two standard errors of zero
is no measurable difference.

Run: .venv/bin/python benchmarks/pool_issue3.py results/run-b.json results/run-c.json [--concurrency 1]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import orjson

METRICS = (("plain", False, "p50_ms"), ("stream TTFB", True, "ttfb_p50_ms"), ("whole stream", True, "p50_ms"))


def runs_in(path: Path) -> list[dict[str, list[dict[str, Any]]]]:
    """The runs a file holds: one run (target -> rows), or several keyed by name."""
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    if "modelyard" in data:
        return [data]
    return [run for run in data.values() if isinstance(run, dict) and "modelyard-nolog" in run]


def by_round(run: dict[str, list[dict[str, Any]]], target: str, stream: bool, metric: str, c: int) -> dict[int, float]:
    return {
        row["round"]: row[metric]
        for row in run.get(target, [])
        if row["stream"] == stream and row["concurrency"] == c and row[metric] is not None
    }


def describe(values: list[float]) -> str:
    if len(values) < 2:
        return f"n={len(values)} (too few)"
    spread = statistics.stdev(values)
    mean, median = statistics.mean(values), statistics.median(values)
    return (
        f"mean {mean:+.3f} ms (standard error {spread / len(values) ** 0.5:.3f}), median {median:+.3f}, "
        f"sd {spread:.3f}, n={len(values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    runs = [run for path in args.files for run in runs_in(path)]
    for label, stream, metric in METRICS:
        on_minus_off: list[float] = []
        a_a: list[float] = []
        for run in runs:
            first, second, off = (
                by_round(run, target, stream, metric, args.concurrency)
                for target in ("modelyard", "modelyard-b", "modelyard-nolog")
            )
            for key in sorted(off.keys() & first.keys() & second.keys()):
                on_minus_off += [first[key] - off[key], second[key] - off[key]]
                a_a.append(first[key] - second[key])
        print(f"{label}: logging on - off: {describe(on_minus_off)}")
        print(f"{' ' * len(label)}  A/A (on - on):     {describe(a_a)}")


if __name__ == "__main__":
    main()
