"""The gateway: what `fallover serve` adds per request, beside LiteLLM's proxy and Portkey's gateway.

Every gateway runs in its own process in front of the same simulator, and one
lean aiohttp client (this process) sends the same OpenAI request directly and
through each gateway. Overhead is the median latency through the gateway minus
the median latency direct, measured in the same run, one request at a time and
at concurrency 50. The peers are optional: point ``FALLOVER_BENCH_LITELLM`` at
the ``litellm`` executable of a venv that has LiteLLM's proxy, and
``FALLOVER_BENCH_PORTKEY`` at a directory where ``npm install
@portkey-ai/gateway`` ran (``docs/gateway.md`` shows how); a peer that is not
there is reported as not measured.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ._common import Env, Figure, Goal, rss_mib, stop

SCENARIO = """
[models.gw-stream]
reply = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"
token_delay = 0.1
"""

BODY = {"model": "fast", "messages": [{"role": "user", "content": "Review: def f(): return 1"}]}
# Portkey's Node server listens on every interface; this preload keeps it on loopback.
_LOOPBACK_PRELOAD = """
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") {
    const cb = args.find((a) => typeof a === "function");
    return cb ? listen.call(this, args[0], "127.0.0.1", cb) : listen.call(this, args[0], "127.0.0.1");
  }
  return listen.apply(this, args);
};
"""


# The least any Python gateway does: read the body, forward it on one pooled session,
# return the answer. Its overhead is the floor a gateway written with aiohttp stands on.
_PASSTHROUGH = """
import sys
import aiohttp
from aiohttp import web

upstream, port = sys.argv[1], int(sys.argv[2])

async def session(app):
    app["s"] = aiohttp.ClientSession()
    yield
    await app["s"].close()

async def forward(request):
    async with request.app["s"].post(upstream, data=await request.read(),
                                     headers={"Content-Type": "application/json"}) as r:
        return web.Response(body=await r.read(), status=r.status, content_type="application/json")

app = web.Application()
app.cleanup_ctx.append(session)
app.router.add_post("/v1/chat/completions", forward)
web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """Where to send the benchmark request, and how."""

    name: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    pid: int | None = None


@dataclass(frozen=True)
class Load:
    """Median per-request latency and throughput of one target."""

    median: float
    rps: float
    errors: int


class _Meter:
    """Sends the benchmark request to a target and records how long each one took."""

    def __init__(self, session: aiohttp.ClientSession, t: Target) -> None:
        self.session = session
        self.t = t
        self.errors = 0

    async def one(self) -> float | None:
        start = time.perf_counter()
        try:
            async with self.session.post(self.t.url, json=self.t.body, headers=self.t.headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"status {r.status}")
        except (RuntimeError, aiohttp.ClientError):
            self.errors += 1
            return None
        return time.perf_counter() - start

    async def burst(self, n: int, concurrency: int) -> tuple[float, float]:
        """Median latency and requests/s of ``n`` requests, ``concurrency`` at a time."""
        latencies: list[float] = []

        async def worker(count: int) -> None:
            for _ in range(count):
                took = await self.one()
                if took is not None:
                    latencies.append(took)

        start = time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        wall = time.perf_counter() - start
        return (statistics.median(latencies) if latencies else float("nan")), len(latencies) / wall


async def _interleaved(
    meters: list[_Meter], n_seq: int, n_c50: int, repeats: int
) -> dict[str, tuple[Load, Load]]:
    """Every target measured in the same time window: the machine's load falls on all alike.

    Sequential requests go round-robin over the targets; the concurrency-50
    bursts take turns, ``repeats`` rounds.
    """
    for m in meters:
        for _ in range(20):
            await m.one()  # warm connections and each gateway's caches
    seq: dict[str, list[float]] = {m.t.name: [] for m in meters}
    for _ in range(n_seq):
        for m in meters:
            took = await m.one()
            if took is not None:
                seq[m.t.name].append(took)
    bursts: dict[str, list[tuple[float, float]]] = {m.t.name: [] for m in meters}
    for _ in range(repeats):
        for m in meters:
            bursts[m.t.name].append(await m.burst(n_c50, 50))
    out = {}
    for m in meters:
        name = m.t.name
        seq_load = Load(statistics.median(seq[name]), 0.0, m.errors)
        c50_load = Load(
            statistics.median(b[0] for b in bursts[name]),
            statistics.median(b[1] for b in bursts[name]),
            m.errors,
        )
        out[name] = (seq_load, c50_load)
    return out


def _wait_ready(proc: subprocess.Popen[bytes], port: int, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)  # an external process is not listening yet
    raise RuntimeError(f"{name} did not start within {timeout:g}s")


@contextmanager
def _fallover(
    env: Env, tmp: Path, *, model: str = "fast", max_concurrency: int = 4096
) -> Iterator[Target]:
    config = tmp / "fallover.toml"
    config.write_text(
        f'[providers.sim]\nprotocol = "openai"\nbase_url = "{env.base}/v1"\napi_key = "sk-b"\n'
        f'model = "{model}"\n[routing]\nname = "bench"\nmodels = [{{ provider = "sim" }}]\n'
        f"[server]\nmax_concurrency = {max_concurrency}\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fallover", "serve", "--config", str(config), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(proc, port, "fallover serve", 60)
        yield Target(
            "fallover serve",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {},
            {**BODY, "model": "bench"},
            proc.pid,
        )
    finally:
        stop(proc)


@contextmanager
def _passthrough(env: Env) -> Iterator[Target]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _PASSTHROUGH, f"{env.base}/v1/chat/completions", str(port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(proc, port, "aiohttp pass-through", 60)
        yield Target(
            "bare aiohttp pass-through",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {},
            dict(BODY),
            proc.pid,
        )
    finally:
        stop(proc)


@contextmanager
def _litellm(env: Env, tmp: Path, binary: str) -> Iterator[Target]:
    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/fast\n"
        f"      api_base: {env.base}/v1\n"
        "      api_key: sk-b\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        "  master_key: os.environ/LITELLM_MASTER_KEY\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "LITELLM_MASTER_KEY": "sk-master",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
        },
    )
    try:
        _wait_ready(proc, port, "LiteLLM proxy", 180)
        yield Target(
            "LiteLLM proxy",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"Authorization": "Bearer sk-master"},
            {**BODY, "model": "bench"},
            proc.pid,
        )
    finally:
        stop(proc)


@contextmanager
def _portkey(env: Env, tmp: Path, root: str) -> Iterator[Target]:
    preload = tmp / "loopback.cjs"
    preload.write_text(_LOOPBACK_PRELOAD)
    server = Path(root) / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    port = _free_port()
    proc = subprocess.Popen(
        ["node", "--require", str(preload), str(server), f"--port={port}", "--headless"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(proc, port, "Portkey gateway", 60)
        yield Target(
            "Portkey gateway",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": f"{env.base}/v1",
                "Authorization": "Bearer sk-b",
            },
            dict(BODY),
            proc.pid,
        )
    finally:
        stop(proc)


def _peer_version(what: str) -> str:
    try:
        if what == "litellm":
            python = Path(os.environ["FALLOVER_BENCH_LITELLM"]).parent / "python"
            out = subprocess.run(
                [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                capture_output=True,
                check=True,
                timeout=30,
            )
            return out.stdout.decode().strip()
        pkg = Path(os.environ["FALLOVER_BENCH_PORTKEY"]) / "node_modules/@portkey-ai/gateway"
        import json

        return str(json.loads((pkg / "package.json").read_text())["version"])
    except (OSError, KeyError, subprocess.SubprocessError, ValueError):
        return "?"


OVERHEAD_TITLE = "Gateway overhead: fallover serve, LiteLLM proxy, Portkey gateway"


async def overhead(env: Env) -> Figure:
    """Latency added per request by each gateway, one at a time and at concurrency 50."""
    n_seq, n_c50 = env.n(400, 20), env.n(600, 100)
    repeats = min(env.repeats, 3)  # a slow peer at concurrency 50 takes minutes per repeat
    direct = Target("direct", f"{env.base}/v1/chat/completions", {}, dict(BODY))
    missing: list[str] = []
    connector = aiohttp.TCPConnector(limit=0)
    with tempfile.TemporaryDirectory() as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        targets = [
            direct,
            stack.enter_context(_passthrough(env)),
            stack.enter_context(_fallover(env, tmp)),
        ]
        litellm = os.environ.get("FALLOVER_BENCH_LITELLM")
        if litellm and Path(litellm).exists():
            targets.append(stack.enter_context(_litellm(env, tmp, litellm)))
        else:
            missing.append("LiteLLM proxy (set FALLOVER_BENCH_LITELLM)")
        portkey = os.environ.get("FALLOVER_BENCH_PORTKEY")
        if portkey and Path(portkey).exists():
            targets.append(stack.enter_context(_portkey(env, tmp, portkey)))
        else:
            missing.append("Portkey gateway (set FALLOVER_BENCH_PORTKEY)")
        async with aiohttp.ClientSession(connector=connector) as session:
            meters = [_Meter(session, t) for t in targets]
            results = await _interleaved(meters, n_seq, n_c50, repeats)
    base_seq, base_c50 = results.pop("direct")
    rows = [
        [
            "direct (no gateway)",
            f"{base_seq.median * 1e3:.2f} ms",
            "—",
            f"{base_c50.median * 1e3:.2f} ms",
            "—",
            f"{base_c50.rps:,.0f}",
        ]
    ]
    data: dict[str, Any] = {
        "direct": {
            "seq_ms": base_seq.median * 1e3,
            "c50_ms": base_c50.median * 1e3,
            "rps_c50": base_c50.rps,
        },
    }
    added: dict[str, tuple[float, float]] = {}
    for name, (seq, c50) in results.items():
        added[name] = (seq.median - base_seq.median, c50.median - base_c50.median)
        rows.append(
            [
                name,
                f"{seq.median * 1e3:.2f} ms",
                f"{added[name][0] * 1e3:+.2f} ms",
                f"{c50.median * 1e3:.2f} ms",
                f"{added[name][1] * 1e3:+.2f} ms",
                f"{c50.rps:,.0f}",
            ]
        )
        data[name] = {
            "seq_ms": seq.median * 1e3,
            "seq_overhead_ms": added[name][0] * 1e3,
            "c50_ms": c50.median * 1e3,
            "c50_overhead_ms": added[name][1] * 1e3,
            "rps_c50": c50.rps,
            "errors": seq.errors + c50.errors,
        }
    goals = []
    ours = added["fallover serve"][0]
    if "Portkey gateway" in added:
        goals.append(
            Goal(
                "fallover overhead / Portkey's (sequential)",
                ours / added["Portkey gateway"][0],
                1.0,
            )
        )
    if "LiteLLM proxy" in added:
        goals.append(
            Goal(
                "fallover overhead / LiteLLM's (sequential)",
                ours / added["LiteLLM proxy"][0],
                0.2,
            )
        )
    notes = [f"Not measured: {', '.join(missing)}."] if missing else []
    versions = []
    if "LiteLLM proxy" in results:
        versions.append(f"LiteLLM {_peer_version('litellm')}")
    if "Portkey gateway" in results:
        versions.append(f"@portkey-ai/gateway {_peer_version('portkey')}")
    return Figure(
        "gateway",
        OVERHEAD_TITLE,
        "One upstream (the simulator), one aiohttp client; each gateway in its own process, "
        f"one worker ({', '.join(versions) or 'no peers'}), all running at once and measured "
        f"interleaved: {n_seq} sequential rounds of one request to each, then {repeats} rounds "
        f"of {n_c50} requests at concurrency 50 to each in turn, so the machine's load falls "
        "on all alike. Median latency per request; overhead is through the gateway minus "
        "direct. The bare aiohttp pass-through (read, forward, return) is the floor for a "
        "gateway built on aiohttp.",
        ["path", "sequential", "overhead", "concurrency 50", "overhead", "requests/s (c50)"],
        rows,
        data,
        goals,
        notes,
    )


STREAMS_TITLE = "Gateway under 1000 concurrent streams"


class _RssPeak:
    """Samples a process's RSS in a thread until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> _RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def streams(env: Env) -> Figure:
    """1000 streams at once through one `fallover serve` process: failures, and memory per stream."""
    n = env.n(1000, 50)
    open_now = peak_open = failures = 0
    first_error = ""
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        _fallover(env, Path(tmpdir), model="gw-stream") as t,
    ):
        assert t.pid is not None
        body = {**t.body, "stream": True, "model": "bench"}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            # One stream first, so the idle figure includes warmed connections and imports.
            async with session.post(t.url, json=body) as resp:
                await resp.read()
            idle = rss_mib(t.pid)

            async def one() -> None:
                nonlocal open_now, peak_open, failures, first_error
                counted = False
                try:
                    async with session.post(t.url, json=body) as resp:
                        if resp.status != 200:
                            raise RuntimeError(f"status {resp.status}")
                        last = b""
                        async for line in resp.content:
                            if not counted:
                                counted = True
                                open_now += 1
                                peak_open = max(peak_open, open_now)
                            if line.strip():
                                last = line.strip()
                        if last != b"data: [DONE]":
                            raise RuntimeError(f"ended with {last[:80]!r}")
                except (TimeoutError, RuntimeError, aiohttp.ClientError) as exc:
                    failures += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                finally:
                    if counted:
                        open_now -= 1

            start = time.perf_counter()
            with _RssPeak(t.pid) as rss:
                await asyncio.gather(*(one() for _ in range(n)))
            took = time.perf_counter() - start
    per_stream_kib = (rss.peak - idle) * 1024 / max(peak_open, 1)
    return Figure(
        "gateway_streams",
        STREAMS_TITLE,
        f"{n} streamed requests started at once through one `fallover serve` process; the "
        "upstream sends 20 chunks 0.1 s apart, so every stream is open at the same time. "
        "RSS is the gateway process's resident memory, sampled every 20 ms.",
        ["streams", "failed", "most open at once", "took", "RSS idle", "RSS peak", "per stream"],
        [
            [
                str(n),
                str(failures),
                str(peak_open),
                f"{took:.1f} s",
                f"{idle:.1f} MiB",
                f"{rss.peak:.1f} MiB",
                f"{per_stream_kib:.1f} KiB",
            ]
        ],
        {
            "streams": n,
            "failures": failures,
            "peak_open": peak_open,
            "seconds": took,
            "rss_idle_mib": idle,
            "rss_peak_mib": rss.peak,
            "rss_per_stream_kib": per_stream_kib,
        },
        [Goal("failed streams", failures, 0, unit="")],
        [f"First failure: {first_error}"] if first_error else [],
    )


FIGURES = [overhead, streams]
