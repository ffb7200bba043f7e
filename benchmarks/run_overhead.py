"""Added latency and throughput: modelyard vs the upstream called directly vs a bare aiohttp relay vs LiteLLM.

Starts the mock upstream (``mock_upstream.py``) and, each in its own process with one worker, on 127.0.0.1:
  direct            the mock itself
  relay             ``aiohttp_relay.py`` (the CPU floor of issue 4's target)
  asgi-relay        ``asgi_relay.py``: the same relay as a bare ASGI app on uvicorn, the server stack modelyard uses
  lean              ``lean_floor.py``: modelyard's per-request work (validation, cost, metrics, a logged row) and
                    nothing else, the floor a rewrite of modelyard's request path could reach
  lean-nolog        the same without its request log
  lean-onloop       the same with its log's batches written on the event loop's thread instead of a thread
  lean-full         ``lean_full.py``: the floor with every per-request duty modelyard has by default (host check,
                    limits, routing plan, breaker, deadline, retries, disconnect watch, attempts, TTFT, headers)
  modelyard         one uvicorn worker, request logging ON into a SQLite file in a temp dir
  modelyard-nolog   the same with ``MODELYARD_LOG_REQUESTS=false`` (shows what logging costs)
  modelyard-b       a second ``modelyard`` (logging on): its difference from the first is the noise floor (A/A)
  modelyard-pg      ``modelyard`` logging into PostgreSQL (a database made for the run on ``--pg``, dropped after),
                    as at scale: the database's own work is then in its server, not counted, like the mock's
  litellm           the LiteLLM proxy, one worker, from the separate venv ``/tmp/litellm-venv`` (skipped if absent)
Then runs interleaved rounds: for each scenario (plain/streamed x concurrency 1, 16, 64) every target runs once,
back to back, in a different order each round; ``load.py`` (its own process) drives each run. Added latency is
target p50 - direct p50 in the same round; the tables show the median over rounds. Peak RSS is the largest
``VmHWM`` seen (process tree). Prints markdown; ``--json`` keeps every run.

With ``--first-delay-ms``/``--chunk-delay-ms`` the mock answers like a model that takes time (issue 3's question
"does logging add latency to a call" for upstreams that are not instantaneous: the log's work can then run while
the gateway waits, as it does with every real model).

Run: .venv/bin/python benchmarks/run_overhead.py [--rounds 3] [--duration 3] [--targets direct,relay,modelyard]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from load import revision

HERE = Path(__file__).resolve().parent
PY = sys.executable
LITELLM = Path(os.environ.get("LITELLM_BIN", "/tmp/litellm-venv/bin/litellm"))
ALL_TARGETS = (
    "direct",
    "relay",
    "asgi-relay",
    "lean",
    "lean-nolog",
    "lean-onloop",
    "lean-full",
    "modelyard",
    "modelyard-nolog",
    "modelyard-b",
    "modelyard-pg",
    "litellm",
)
LEAN_FLAGS = {"lean": [], "lean-nolog": ["--no-log"], "lean-onloop": ["--log-on-loop"], "lean-full": []}
#: Targets run unless --targets says otherwise: not the floor's variants, nor modelyard-pg (it needs PostgreSQL).
DEFAULT_TARGETS = tuple(t for t in ALL_TARGETS if t not in ("lean-nolog", "lean-onloop", "lean-full", "modelyard-pg"))
PATH = "/v1/chat/completions"


@dataclass
class Target:
    name: str
    port: int
    model: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_ok(target: Target) -> bool:
    body = orjson.dumps({"model": target.model, "messages": [{"role": "user", "content": "ping"}]})
    headers = {"Content-Type": "application/json", **target.headers}
    request = urllib.request.Request(target.url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start(target: Target, argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120.0) -> None:
    assert target.log is not None
    handle = target.log.open("wb")
    target.process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.process.returncode}; see {target.log}")
        if post_ok(target):
            return
        time.sleep(0.3)
    stop(target)
    raise RuntimeError(f"{target.name} did not answer within {timeout:.0f} s; see {target.log}")


def stop(target: Target) -> None:
    if target.process is None or target.process.poll() is not None:
        return
    target.process.terminate()
    try:
        target.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        target.process.kill()
        target.process.wait()


def modelyard_env(
    tmp: Path, upstream: str, log_requests: bool, name: str, database_url: str | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    home = tmp / name
    (home / "data").mkdir(parents=True)
    (home / "config").mkdir()
    env.update(
        {
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "MODELYARD_PROVIDERS__UP__BASE_URL": upstream,
            "MODELYARD_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{home / 'modelyard.db'}",
            "MODELYARD_LOG_REQUESTS": "true" if log_requests else "false",
            "MODELYARD_SPILL_DIR": str(home / "spill"),
        }
    )
    return env


def pg_database(admin_url: str, tmp: Path) -> str:
    """A new, empty PostgreSQL database for one run (its name is kept in ``tmp`` for ``drop_pg_database``)."""
    name = f"modelyard_bench_{os.getpid()}"
    pg_admin(admin_url, f'CREATE DATABASE "{name}"')
    (tmp / "pg-database").write_text(name)
    return admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"


def drop_pg_database(admin_url: str, tmp: Path) -> None:
    marker = tmp / "pg-database"
    if marker.exists():
        pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{marker.read_text()}" WITH (FORCE)')


def pg_admin(admin_url: str, statement: str) -> None:
    """Run one statement (a database made or dropped) on PostgreSQL at ``admin_url``."""
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def litellm_config(tmp: Path, upstream: str) -> Path:
    path = tmp / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: x\n"
        "    litellm_params:\n"
        "      model: openai/x\n"
        f"      api_base: {upstream}\n"
        "      api_key: sk-bench-not-a-key\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  set_verbose: false\n"
    )
    return path


def launch(names: list[str], tmp: Path, args: argparse.Namespace, targets: dict[str, Target]) -> None:
    """Start the mock and each target, adding each to ``targets`` as soon as it runs (so it is always stopped)."""
    mock = Target("direct", free_port(), "x", log=tmp / "mock.log")
    pacing = ["--first-delay-ms", str(args.first_delay_ms), "--chunk-delay-ms", str(args.chunk_delay_ms)]
    start(
        mock,
        [PY, str(HERE / "mock_upstream.py"), "--port", str(mock.port), "--chunks", str(args.chunks), *pacing],
        dict(os.environ),
        tmp,
    )
    targets["direct"] = mock  # up before the targets that relay to it
    upstream = f"http://127.0.0.1:{mock.port}/v1"
    for name in names:
        if name == "direct":
            continue
        if name == "relay":
            target = Target(name, free_port(), "x", log=tmp / "relay.log")
            argv = [PY, str(HERE / "aiohttp_relay.py"), "--port", str(target.port), "--upstream", upstream]
            start(target, argv, dict(os.environ), tmp)
        elif name == "asgi-relay":
            target = Target(name, free_port(), "x", log=tmp / "asgi-relay.log")
            argv = [PY, str(HERE / "asgi_relay.py"), "--port", str(target.port), "--upstream", upstream]
            start(target, argv, dict(os.environ), tmp)
        elif name in LEAN_FLAGS:
            target = Target(name, free_port(), "up/x", log=tmp / f"{name}.log")
            script = "lean_full.py" if name == "lean-full" else "lean_floor.py"
            argv = [PY, str(HERE / script), "--port", str(target.port), "--upstream", upstream]
            argv += ["--db", str(tmp / f"{name}.db"), *LEAN_FLAGS[name]]
            start(target, argv, dict(os.environ), tmp)
        elif name in ("modelyard", "modelyard-nolog", "modelyard-b", "modelyard-pg"):
            target = Target(name, free_port(), "up/x", log=tmp / f"{name}.log")
            code = (
                "from modelyard.config import load_settings; from modelyard.server.run import serve; "
                f"serve(load_settings(), '127.0.0.1', {target.port})"
            )
            database = pg_database(args.pg, tmp) if name == "modelyard-pg" else None
            env = modelyard_env(tmp, upstream, name != "modelyard-nolog", name, database)
            start(target, [PY, "-c", code], env, tmp / name)
        elif name == "litellm":
            if not LITELLM.exists():
                print(f"# litellm skipped: {LITELLM} not found", file=sys.stderr)
                continue
            key = "sk-bench-" + os.urandom(16).hex()
            target = Target(name, free_port(), "x", log=tmp / "litellm.log", headers={"Authorization": f"Bearer {key}"})
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELYARD_", "VIRTUAL_ENV"))}
            env.update(
                {
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    "LITELLM_LOG": "ERROR",
                    "DISABLE_SCHEMA_UPDATE": "true",
                    "LITELLM_TELEMETRY": "False",
                    "HOME": str(tmp),
                    "LITELLM_MASTER_KEY": key,
                }
            )
            argv = [
                str(LITELLM),
                "--config",
                str(litellm_config(tmp, upstream)),
                "--host",
                "127.0.0.1",
                "--port",
                str(target.port),
                "--num_workers",
                "1",
            ]
            try:
                start(target, argv, env, tmp, timeout=240)
            except RuntimeError as exc:
                print(f"# litellm skipped: {exc}", file=sys.stderr)
                stop(target)
                continue
        else:
            raise SystemExit(f"unknown target {name!r}; choose from {', '.join(ALL_TARGETS)}")
        targets[name] = target


def load(
    target: Target, stream: bool, concurrency: int, warmup: float, duration: float, requests: int, harness: list[int]
) -> dict[str, Any]:
    argv = [
        PY,
        str(HERE / "load.py"),
        "--url",
        target.url,
        "--model",
        target.model,
        "--target",
        target.name,
        "--concurrency",
        str(concurrency),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
        "--requests",
        str(requests),
        "--pid",
        str(target.pid),
        "--json",
    ]
    if stream:
        argv.append("--stream")
    for name, value in target.headers.items():
        argv += ["--header", f"{name}: {value}"]
    for pid in harness:
        argv += ["--harness-pid", str(pid)]
    out = subprocess.run(argv, capture_output=True, check=True, timeout=duration + warmup + 180)
    result: dict[str, Any] = orjson.loads(out.stdout)
    return result


def measure(
    target: Target, stream: bool, concurrency: int, args: argparse.Namespace, harness: list[int]
) -> dict[str, Any]:
    """One run; repeated (up to ``--tries``) while other processes took more than ``--retry-foreign`` % of the CPUs."""
    best: dict[str, Any] | None = None
    for attempt in range(1, args.tries + 1):
        result = load(target, stream, concurrency, args.warmup, args.duration, args.requests, harness)
        result["kept_try"] = attempt
        if best is None or (result["foreign_cpu_pct"] or 0) < (best["foreign_cpu_pct"] or 0):
            best = result
        if not args.retry_foreign or (result["foreign_cpu_pct"] or 0) <= args.retry_foreign:
            break
        time.sleep(args.retry_pause)
    assert best is not None
    best["tries"] = attempt
    return best


def scenarios(levels: list[int], modes: list[bool]) -> Iterator[tuple[bool, int]]:
    for stream in modes:
        for concurrency in levels:
            yield stream, concurrency


def machine() -> str:
    """CPU model, cores, memory, Python, kernel, date: the header of every result."""
    model = cores = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "CPU(s)":
                cores = value.strip()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem = next((x.split()[1] for x in meminfo if x.startswith("MemTotal")), "0")
    return (
        f"{model}, {cores} cores, {int(mem) / 1024 / 1024:.1f} GiB RAM, Python {sys.version.split()[0]}, "
        f"Linux {os.uname().release}, {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 2) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:,.{digits}f}"


def report(targets: dict[str, Target], levels: list[int], modes: list[bool], rounds: int) -> str:
    direct = targets["direct"]
    lines = []
    for stream in modes:
        kind = "streamed (20 chunks + usage + [DONE])" if stream else "non-streamed"
        lines.append(f"\n### {kind}\n")
        head = "| target | c | req/s | p50 ms | p95 ms | p99 ms | added p50 ms |"
        rule = "|---|---:|---:|---:|---:|---:|---:|"
        if stream:
            head += " TTFB p50 ms | added TTFB p50 ms |"
            rule += "---:|---:|"
        head += " CPU ms/req | peak RSS MB | errors |"
        rule += "---:|---:|---:|"
        lines += [head, rule]
        for concurrency in levels:
            base = {r["round"]: r for r in direct.runs if r["stream"] == stream and r["concurrency"] == concurrency}
            for target in targets.values():
                runs = [r for r in target.runs if r["stream"] == stream and r["concurrency"] == concurrency]
                if not runs:
                    continue
                added = [r["p50_ms"] - base[r["round"]]["p50_ms"] for r in runs if r["round"] in base]
                added_ttfb = [
                    r["ttfb_p50_ms"] - base[r["round"]]["ttfb_p50_ms"]
                    for r in runs
                    if r["round"] in base and r["ttfb_p50_ms"] is not None
                ]
                row = (
                    f"| {target.name} | {concurrency} | {fmt(median([r['rps'] for r in runs]), 0)} "
                    f"| {fmt(median([r['p50_ms'] for r in runs]))} | {fmt(median([r['p95_ms'] for r in runs]))} "
                    f"| {fmt(median([r['p99_ms'] for r in runs]))} "
                    f"| {'—' if target is direct else fmt(median(added))} |"
                )
                if stream:
                    row += (
                        f" {fmt(median([r['ttfb_p50_ms'] for r in runs]))} "
                        f"| {'—' if target is direct else fmt(median(added_ttfb))} |"
                    )
                cpu = [r["cpu_ms_per_req"] for r in runs]
                rss = max((r["peak_rss_mb"] or 0) for r in runs)
                row += (
                    f" {fmt(median(cpu), 3)} ({fmt(min(cpu), 3)}-{fmt(max(cpu), 3)}) | {fmt(rss, 0)} "
                    f"| {sum(r['errors'] for r in runs)} |"
                )
                lines.append(row)
    lines.append(
        f"\nMedians over {rounds} interleaved round(s); CPU column: median (min-max over rounds). "
        "Added = target p50 - direct p50 in the same round."
    )
    return "\n".join(lines)


def logging_latency(targets: dict[str, Target], levels: list[int]) -> list[tuple[str, str, str, bool]]:
    """Issue 3's bar over real sockets: p50 of logging on minus off at c=1, against two identical servers' (A/A)."""
    on, off, twin = (targets.get(n) for n in ("modelyard", "modelyard-nolog", "modelyard-b"))
    if on is None or off is None or twin is None or 1 not in levels:
        return []
    rows = []
    measures = {
        (False, "p50_ms"): "p50, non-streamed",
        (True, "ttfb_p50_ms"): "TTFB p50, streamed",
        (True, "p50_ms"): "p50 of the whole stream, streamed",
    }
    for (stream, key), label in measures.items():

        def by_round(t: Target, stream: bool = stream, key: str = key) -> dict[int, float]:
            return {r["round"]: r[key] for r in t.runs if r["stream"] == stream and r["concurrency"] == 1}

        a, b, c = by_round(on), by_round(off), by_round(twin)
        added = median([a[k] - b[k] for k in a if k in b])
        noise = median([abs(a[k] - c[k]) for k in a if k in c])
        rows.append(
            (
                f"logging on - off, {label}, c=1 (issue 3)",
                f"within A/A noise ({fmt(noise)} ms)",
                f"{fmt(added)} ms",
                added <= noise,  # one-sided: a server that logs and answers sooner adds nothing
            )
        )
    return rows


def verdicts(targets: dict[str, Target], levels: list[int]) -> str:
    """Issue 4 item 10's targets for the ``modelyard`` target (logging on)."""
    gw, relay, direct = targets.get("modelyard"), targets.get("relay"), targets["direct"]
    if gw is None:
        return ""

    def runs(t: Target, stream: bool, c: int) -> list[dict[str, Any]]:
        return [r for r in t.runs if r["stream"] == stream and r["concurrency"] == c]

    def added(stream: bool, key: str) -> float:
        base = {r["round"]: r for r in runs(direct, stream, 1)}
        return median([r[key] - base[r["round"]][key] for r in runs(gw, stream, 1) if r["round"] in base])

    rows = []
    if 1 in levels:
        v = added(False, "p50_ms")
        rows.append(("added p50, non-streamed, c=1", "<= 1 ms", f"{fmt(v)} ms", v <= 1))
        v = added(True, "ttfb_p50_ms")
        rows.append(("added TTFB p50, streamed, c=1", "<= 1 ms", f"{fmt(v)} ms", v <= 1))
    if 16 in levels:
        v = median([r["rps"] for r in runs(gw, False, 16)])
        rows.append(("requests/s, non-streamed, c=16", ">= 1,000", fmt(v, 0), v >= 1000))
        v = median([r["rps"] for r in runs(gw, True, 16)])
        rows.append(("streams/s, streamed, c=16", ">= 800", fmt(v, 0), v >= 800))
    if relay is not None:
        lean = targets.get("lean")
        for stream in (False, True):
            mine = median([r["cpu_ms_per_req"] for c in levels for r in runs(gw, stream, c)])
            floor = median([r["cpu_ms_per_req"] for c in levels for r in runs(relay, stream, c)])
            label = "streamed" if stream else "non-streamed"
            measured = f"{fmt(mine, 3)} ms = {fmt(mine / floor, 1)}x"
            if lean is not None:
                least = median([r["cpu_ms_per_req"] for c in levels for r in runs(lean, stream, c)])
                measured += f" (lean_floor.py: {fmt(least / floor, 2)}x)"
            rows.append(
                (
                    f"CPU per request, {label} (median over c)",
                    f"<= 2x relay ({fmt(2 * floor, 3)} ms)",
                    measured,
                    mine <= 2 * floor,
                )
            )
    rss = max((r["peak_rss_mb"] or 0) for r in gw.runs)
    rows.append(("peak RSS", "<= 100 MB", f"{fmt(rss, 0)} MB", rss <= 100))
    rows += logging_latency(targets, levels)
    out = [
        "\n### issue 4 item 10 targets (modelyard, logging on)\n",
        "| target | bar | measured | met |",
        "|---|---|---|---|",
    ]
    out += [f"| {a} | {b} | {c} | {'met' if ok else '**not met**'} |" for a, b, c, ok in rows]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help=f"from {', '.join(ALL_TARGETS)}")
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="where modelyard-pg gets a database",
    )
    parser.add_argument("--levels", default="1,16,64")
    parser.add_argument("--modes", default="plain,stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run, at most")
    parser.add_argument("--requests", type=int, default=6000, help="measured requests per run, at most")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--first-delay-ms", type=float, default=0.0, help="the mock waits this long before answering")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="the mock waits this long between frames")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument(
        "--retry-foreign",
        type=float,
        default=0.0,
        help="repeat a run when processes outside the benchmark used more than this %% of the CPUs (0: never)",
    )
    parser.add_argument("--tries", type=int, default=4, help="runs at most per measurement with --retry-foreign")
    parser.add_argument("--retry-pause", type=float, default=10.0, help="seconds to wait before a repeat")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs, SQLite file)")
    args = parser.parse_args()
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    levels = [int(c) for c in args.levels.split(",")]
    modes = [m == "stream" for m in args.modes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    targets: dict[str, Target] = {}
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_at_start = loadavg()
    code_revision = revision()
    print(f"# run_overhead {started}; load {load_at_start}; temp {tmp}", file=sys.stderr)
    try:
        launch(names, tmp, args, targets)
        harness = [t.pid for t in targets.values()]
        for target in targets.values():  # warm every target up once (first-use imports, pools, caches)
            for stream in modes:
                load(target, stream, 16, 0.2, 1.0, 2000, harness)
        order = list(targets.values())
        for round_no in range(args.rounds):
            for stream, concurrency in scenarios(levels, modes):
                shift = round_no % len(order)
                for target in order[shift:] + order[:shift]:
                    result = measure(target, stream, concurrency, args, harness)
                    result.update(round=round_no, loadavg=loadavg())
                    target.runs.append(result)
                    print(
                        f"# round {round_no} {'stream' if stream else 'plain'} c={concurrency} {target.name}: "
                        f"{result['rps']} req/s p50 {fmt(result['p50_ms'])} ms "
                        f"cpu {fmt(result['cpu_ms_per_req'], 3)} ms/req errors {result['errors']} "
                        f"foreign CPU {result['foreign_cpu_pct']}% "
                        f"(tries {result['tries']}, kept {result['kept_try']}) "
                        f"load {result['loadavg']}",
                        file=sys.stderr,
                    )
        print(
            f"## overhead run {started}\n\nMachine: {machine()}. Load average (1, 5, 15 min) at start "
            f"{load_at_start}, at end {loadavg()}. Code: {code_revision}. Mock upstream pacing: "
            f"{args.first_delay_ms:g} ms before answering, {args.chunk_delay_ms:g} ms between stream frames."
        )
        foreign = [r["foreign_cpu_pct"] for t in targets.values() for r in t.runs]
        retried = sum(r["tries"] > 1 for t in targets.values() for r in t.runs)
        print(
            f"CPU used by processes outside the benchmark while it measured (share of both cores): median "
            f"{fmt(median(foreign), 1)}%, max {fmt(max(foreign), 1)}%; {retried} run(s) repeated for it "
            f"(--retry-foreign {args.retry_foreign:g}%)."
        )
        print(report(targets, levels, modes, args.rounds))
        print(verdicts(targets, levels))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_bytes(orjson.dumps({t.name: t.runs for t in targets.values()}, option=orjson.OPT_INDENT_2))
    finally:
        for target in reversed(list(targets.values())):
            stop(target)
        drop_pg_database(args.pg, tmp)
        if not args.keep:
            import shutil

            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
