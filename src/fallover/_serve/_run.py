"""``fallover serve``: the gateway built from the configuration, run in one or N processes.

One process: an aiohttp runner whose SIGTERM (or SIGINT) drains — the
listening socket closes, idle connections close, in-flight calls finish
(up to ``DRAIN_TIMEOUT``), then the pools close and the process exits 0.
N processes (``--workers N``): a parent starts N workers that each bind the
same port with ``SO_REUSEPORT`` (the kernel spreads connections over them),
forwards SIGTERM/SIGINT to them, and exits 0 when all drained. Parks are
shared between workers only through a Redis store (``routing.store``); with
the memory store each worker parks on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .._client import LLMClient
from .._config import Config, build_client, load_config, pools
from .._errors import ConfigError
from .._routing import AsyncRouter
from ._gateway import Gateway
from ._metrics import install_prometheus

__all__ = ["DEFAULT_POOL", "DRAIN_TIMEOUT", "gateway_from_config", "main", "serve"]

DRAIN_TIMEOUT = 60.0
"""Seconds SIGTERM waits for in-flight calls before cancelling them."""
DEFAULT_POOL = "default"
"""The name ``[routing]``'s pool is served under when ``routing.name`` is unset."""


def gateway_from_config(
    config: Config,
    *,
    api_keys: Sequence[str] = (),
    meter_provider: Any | None = None,
    registry: Any | None = None,
) -> Gateway:
    """A Gateway serving the config's pools by name and each of their members pinned.

    The ``[routing]`` pool is served as ``routing.name`` (or ``default``), each
    ``[pools.NAME]`` as ``NAME``, and every member as its ``provider/model``.
    """
    models: dict[str, LLMClient] = {}
    built: list[LLMClient] = []
    try:
        names = pools(config)
        if not config.routing.name:
            default = build_client(config)
            built.append(default)
            models[DEFAULT_POOL] = default
        for name in names:
            pool = build_client(config, pool=name)
            built.append(pool)
            models[name] = pool
        for pool in list(built):
            members = pool.members if isinstance(pool, AsyncRouter) else (pool,)
            for member in members:
                if member.alias in models:
                    continue
                pinned = pool if pool is member else build_client(config, model=member.alias)
                if pinned is not pool:
                    built.append(pinned)
                models[member.alias] = pinned
    except BaseException:
        for client in built:
            _close_now(client)
        raise
    return Gateway(
        models,
        api_keys=api_keys,
        max_body_bytes=config.server.max_body_bytes,
        max_concurrency=config.server.max_concurrency,
        meter_provider=meter_provider,
        registry=registry,
    )


def _close_now(client: LLMClient) -> None:
    with contextlib.suppress(Exception):  # already failing: the first error is the one shown
        asyncio.run(client.aclose())


def _keys(config: Config) -> list[str]:
    env = config.server.api_keys_env
    raw = os.environ.get(env, "") if env else ""
    return [k.strip() for k in raw.split(",") if k.strip()]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _say(text: str) -> None:
    print(f"fallover serve: {text}", file=sys.stderr, flush=True)


async def serve(
    gateway: Gateway,
    *,
    host: str,
    port: int,
    reuse_port: bool = False,
    drain_timeout: float = DRAIN_TIMEOUT,
) -> None:
    """Serve ``gateway`` until SIGTERM or SIGINT, then drain and close it."""
    runner = web.AppRunner(
        gateway.app(),
        handler_cancellation=True,  # a client that disconnects cancels its upstream call
        access_log=None,
        shutdown_timeout=drain_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        bound = runner.addresses[0][1] if runner.addresses else port
        _say(
            f"worker {os.getpid()} listening on http://{host}:{bound} "
            f"(models: {', '.join(gateway.models)})"
        )
        await stop.wait()
        _say(f"worker {os.getpid()} draining {gateway.in_flight} call(s)")
    finally:
        await runner.cleanup()
        await gateway.aclose()


def main(
    *,
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers: int,
    reuse_port: bool = False,
) -> int:
    """Run ``fallover serve``; the exit status."""
    if workers < 1:
        _say(f"--workers must be at least 1, got {workers}")
        return 2
    try:
        config = load_config(config_path)
        keys = _keys(config)
        env = config.server.api_keys_env
        where = f"${env}" if env else "server.api_keys_env"
        host = host or config.server.host
        port = port if port is not None else config.server.port
        if not keys and not _loopback(host):
            _say(
                f"refusing to listen on {host} without client keys: set {where} "
                "(comma-separated keys) or listen on 127.0.0.1"
            )
            return 2
        if workers > 1:
            if port == 0:
                _say("--workers needs a fixed --port: every worker binds the same one")
                return 2
            # Build once here so a config error is told once, not by every worker.
            asyncio.run(gateway_from_config(config).aclose())
            return _run_workers(config_path, host, port, workers)
        install_prometheus()  # before any instrument is made, so all of them reach /metrics
        gateway = gateway_from_config(config, api_keys=keys)
        if not keys:
            _say(f"no client keys ({where} is unset): auth is off, listening on loopback only")
    except ConfigError as exc:
        _say(str(exc))
        return 2
    asyncio.run(serve(gateway, host=host, port=port, reuse_port=reuse_port))
    return 0


def _run_workers(config_path: str | None, host: str, port: int, workers: int) -> int:
    argv = [sys.executable, "-m", "fallover._serve", "--host", host, "--port", str(port)]
    if config_path is not None:
        argv += ["--config", config_path]
    procs = [subprocess.Popen(argv) for _ in range(workers)]
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = 0
        while procs:
            # os.wait returns as soon as any worker exits; a signal interrupts nothing here
            # (PEP 475 retries it) but the handler above has already forwarded it.
            pid, code = os.wait()
            done = next((p for p in procs if p.pid == pid), None)
            if done is None:
                continue
            procs.remove(done)
            done.returncode = os.waitstatus_to_exitcode(code)
            if done.returncode != 0:
                status = 1
                if not stopping:
                    _say(f"worker {pid} exited with {done.returncode}; stopping the others")
                    forward(signal.SIGTERM, None)
        return status
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
