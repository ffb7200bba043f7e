"""How long `import modelyard` takes (target < 150 ms) and what a first `Client` import costs.

Run: .venv/bin/python benchmarks/import_time.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys

RUNS = 11
PROBE = "import time; t = time.perf_counter(); {stmt}; print((time.perf_counter() - t) * 1000)"


def wall_ms(stmt: str) -> float:
    samples = []
    for _ in range(RUNS):
        argv = [sys.executable, "-c", PROBE.format(stmt=stmt)]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        samples.append(float(out.stdout))
    return statistics.median(samples)


def importtime_total_us() -> int:
    """Cumulative microseconds of the `modelyard` line in `python -X importtime`."""
    samples = []
    for _ in range(RUNS):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import modelyard"], capture_output=True, text=True, check=True
        ).stderr
        line = next(x for x in reversed(err.splitlines()) if x.rstrip().endswith("| modelyard"))
        samples.append(int(line.split("|")[1]))
    return int(statistics.median(samples))


if __name__ == "__main__":
    print(f"python -X importtime, import modelyard (cumulative): {importtime_total_us() / 1000:.1f} ms")
    print(f"wall, import modelyard: {wall_ms('import modelyard'):.1f} ms")
    print(f"wall, from modelyard import Client: {wall_ms('from modelyard import Client'):.1f} ms")
    print(f"wall, import modelyard.gateway (providers not loaded): {wall_ms('import modelyard.gateway'):.1f} ms")
