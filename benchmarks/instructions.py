"""Machine instructions per request (valgrind's callgrind): a count that a noisy machine does not disturb.

CPU time per request on a shared 2-core VM moved by up to 2x from one minute to the next in session 8 (the same
pure-Python loop took 152-311 ms), which hides any change smaller than that. Instructions executed do not
depend on the host: two runs of the same code agree within ~0.5 %. This script drives an ASGI app in-process (no
uvicorn, no load generator: the HTTP server's own parsing is left out, the same for every target) against the
fast mock upstream in its own process, with callgrind counting only the measured requests of the app's process,
all its threads included (the SQLite writer's too).

Targets: ``relay`` (``asgi_relay.py``'s app), ``modelyard`` (``create_app``, request logging into a SQLite file),
``modelyard-nolog``, ``lean`` and ``lean-nolog`` (``lean_floor.py``'s app with and without its log) and
``lean-full`` (``lean_full.py``'s). Modes: ``plain``, ``stream`` (20 chunks + usage + [DONE]).

With ``--served`` each target runs as a real server under callgrind instead and ``load.py`` sends the requests
over sockets, one at a time: the HTTP server's work is counted too, and ``relay`` is ``aiohttp_relay.py``, the
relay issue 4's CPU bar is measured against (``asgi-relay`` is there as well, ``lean``: ``lean_floor.py``, the
least a gateway doing modelyard's per-request work costs, and ``lean-full``: ``lean_full.py``, that floor with every
duty modelyard has on its default configuration).

Run (needs ``valgrind``: ``apt-get install -y valgrind``; ~15 s a measurement):
    .venv/bin/python benchmarks/instructions.py [--targets relay,modelyard,modelyard-nolog] [--modes plain,stream]
        [--requests 400] [--served] [--src other/checkout/src]   # --src: count another checkout's code
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGETS = ("relay", "modelyard", "modelyard-nolog")
SERVED_TARGETS = ("relay", "asgi-relay", "lean", "lean-full", "modelyard", "modelyard-nolog")
MODELYARD_SERVE = (
    "from modelyard.config import load_settings; from modelyard.server.run import serve; "
    "serve(load_settings(), '127.0.0.1', {port})"
)
MODES = ("plain", "stream")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def request_body(stream: bool) -> bytes:
    import orjson

    body: dict[str, Any] = {
        "model": "up/x",
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
        "max_tokens": 32,
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return orjson.dumps(body)


async def call_app(app: Any, raw: bytes) -> None:
    """One POST /v1/chat/completions through the ASGI app, the response read to its end."""
    sent: list[dict[str, Any]] = []
    finished = asyncio.Event()
    pending = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:4000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4000),
    }
    await app(scope, receive, send)
    finished.set()
    if sent[0].get("status") != 200 or sent[-1].get("more_body"):
        raise RuntimeError(f"bad response: {sent[:2]}")


class Lifespan:
    """Runs the app's lifespan startup and shutdown."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.get_running_loop().create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        reply = await self.outbox.get()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {reply}")

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        assert self.task is not None
        await self.task


def modelyard_env(home: Path, upstream: str, log_requests: bool) -> dict[str, str]:
    """Settings for a modelyard with its own data folder, the mock as provider ``up``, logging on or off."""
    (home / "data").mkdir(parents=True)
    (home / "config").mkdir()
    return {
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "MODELYARD_PROVIDERS__UP__BASE_URL": upstream,
        "MODELYARD_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'modelyard.db'}",
        "MODELYARD_SPILL_DIR": str(home / "spill"),
        "MODELYARD_LOG_REQUESTS": "true" if log_requests else "false",
    }


def build_app(target: str, upstream: str, home: Path) -> Any:
    if target == "relay":
        sys.path.insert(0, str(HERE))
        import asgi_relay

        return asgi_relay.build_app(upstream)
    if target in ("lean", "lean-nolog", "lean-full"):
        sys.path.insert(0, str(HERE))
        os.environ.update(modelyard_env(home, upstream, True))
        import lean_floor
        import lean_full

        with ThreadPoolExecutor(1) as pool:  # the migration runs its own event loop
            pool.submit(lean_floor.migrate, str(home / "lean.db")).result()
        if target == "lean-full":
            return lean_full.FullGateway(upstream, str(home / "lean.db"))
        return lean_floor.LeanGateway(upstream, str(home / "lean.db"), log_requests=target == "lean")
    os.environ.update(modelyard_env(home, upstream, target != "modelyard-nolog"))
    from modelyard.config import load_settings
    from modelyard.server.app import create_app

    return create_app(load_settings())


async def child(args: argparse.Namespace) -> None:
    """Inside valgrind: warm up, count ``--requests`` requests, dump the counts, stop counting."""
    app = build_app(args.target, args.upstream, Path(args.home))
    raw = request_body(args.mode == "stream")
    lifespan = Lifespan(app)
    await lifespan.start()
    for _ in range(args.warmup):
        await call_app(app, raw)
    await asyncio.sleep(1.0)  # the warm-up's log rows written
    pid = os.getpid()
    subprocess.run(["callgrind_control", "--instr=on", str(pid)], check=True, capture_output=True)
    for _ in range(args.requests):
        await call_app(app, raw)
    await asyncio.sleep(1.0)  # the measured requests' log rows written (the writer flushes every 0.2 s)
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "--instr=off", str(pid)], check=True, capture_output=True)
    await lifespan.stop()


def measure(target: str, mode: str, args: argparse.Namespace, upstream: str, tmp: Path) -> float:
    """Instructions per request of one target and mode."""
    name = f"{target}-{mode}"
    out = tmp / f"{name}.callgrind"
    env = source_env(args)
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        "--target",
        target,
        "--mode",
        mode,
        "--requests",
        str(args.requests),
        "--warmup",
        str(args.warmup),
        "--upstream",
        upstream,
        "--home",
        str(tmp / name),
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    return dumped_instructions(tmp, name) / int(args.requests)


def source_env(args: argparse.Namespace) -> dict[str, str]:
    """This environment, importing modelyard from ``--src`` when given."""
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join([args.src, env.get("PYTHONPATH", "")])
    return env


def dumped_instructions(tmp: Path, name: str) -> int:
    """The instruction count in the first dump ``callgrind_control --dump`` made for ``name``."""
    dumps = sorted(tmp.glob(f"{name}.callgrind.*"))
    if not dumps:
        raise RuntimeError(f"{name}: callgrind wrote no dump")
    for line in dumps[0].read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"{name}: no totals in {dumps[0]}")


def measure_served(target: str, mode: str, args: argparse.Namespace, upstream: str, tmp: Path) -> float:
    """Instructions per request of one target running as a server, requests sent over sockets one at a time."""
    name = f"served-{target}-{mode}"
    port = free_port()
    env = dict(os.environ)
    model = "x"
    if target in ("relay", "asgi-relay"):
        script = "aiohttp_relay.py" if target == "relay" else "asgi_relay.py"
        argv = [sys.executable, str(HERE / script), "--port", str(port), "--upstream", upstream]
    elif target in ("lean", "lean-full"):
        script = "lean_floor.py" if target == "lean" else "lean_full.py"
        argv = [sys.executable, str(HERE / script), "--port", str(port), "--upstream", upstream]
        argv += ["--db", str(tmp / f"{name}.db")]
        model = "up/x"
    else:
        argv = [sys.executable, "-c", MODELYARD_SERVE.format(port=port)]
        env = {**source_env(args), **modelyard_env(tmp / name, upstream, target != "modelyard-nolog")}
        model = "up/x"
    out = tmp / f"{name}.callgrind"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    with (tmp / f"{name}.log").open("w") as log:
        server = subprocess.Popen([*valgrind, *argv], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        wait_until_serving(server, url, model)
        load = [sys.executable, str(HERE / "load.py"), "--url", url, "--model", model, "--concurrency", "1"]
        load += ["--warmup", "0", "--duration", "600", *(["--stream"] if mode == "stream" else [])]
        subprocess.run([*load, "--requests", str(args.warmup)], check=True, capture_output=True)
        time.sleep(1.0)  # the warm-up's log rows written
        subprocess.run(["callgrind_control", "--instr=on", str(server.pid)], check=True, capture_output=True)
        subprocess.run([*load, "--requests", str(args.requests)], check=True, capture_output=True)
        time.sleep(2.0)  # the measured requests' log rows written
        subprocess.run(["callgrind_control", "--dump", str(server.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--instr=off", str(server.pid)], check=True, capture_output=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return dumped_instructions(tmp, name) / int(args.requests)


def wait_until_serving(server: subprocess.Popen[bytes], url: str, model: str, timeout: float = 300.0) -> None:
    """Until the server under valgrind (slow to start) answers a chat request."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"no answer from {url} within {timeout:g}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    served = ",".join(SERVED_TARGETS)
    others = "lean, lean-nolog, lean-full"
    parser.add_argument("--targets", help=f"default: {','.join(TARGETS)} (or {others}); served: {served}")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--served", action="store_true", help="count real servers fed over sockets")
    parser.add_argument("--src", help="import modelyard from this folder instead (another checkout's src/)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(child(args))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian/Ubuntu: apt-get install -y valgrind)")
    tmp = Path(tempfile.mkdtemp(prefix="modelyard-instructions-"))
    port = free_port()
    mock_argv = [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(port), "--chunks", "20"]
    mock = subprocess.Popen(mock_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        upstream = f"http://127.0.0.1:{port}/v1"
        rows: dict[tuple[str, str], float] = {}
        targets = args.targets or ",".join(SERVED_TARGETS if args.served else TARGETS)
        measure_one = measure_served if args.served else measure
        for mode in args.modes.split(","):
            for target in targets.split(","):
                rows[target, mode] = measure_one(target, mode, args, upstream, tmp)
                print(f"# {target} {mode}: {rows[target, mode] / 1000:,.0f} k instructions/request", file=sys.stderr)
        print("\n| target | mode | instructions per request | x relay |\n|---|---|---:|---:|")
        for (target, mode), count in rows.items():
            relay = rows.get(("relay", mode))
            ratio = f"{count / relay:.2f}" if relay else "—"
            print(f"| {target} | {mode} | {count / 1000:,.0f} k | {ratio} |")
    finally:
        mock.kill()
        mock.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
