"""The fault-injecting server: OpenAI ``/v1/chat/completions`` and Anthropic ``/v1/messages``."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import math
import random
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

from aiohttp import web

from ._sim_answer import plan, prompt_text
from ._sim_checks import problem
from ._sim_limits import Limits, Refusal, go_duration
from ._sim_scenario import Fault, Scenario
from ._sim_wire import (
    Frame,
    Reply,
    anthropic_events,
    anthropic_message,
    openai_chunks,
    openai_completion,
)

__all__ = ["Simulator", "spawn"]

Protocol: TypeAlias = Literal["openai", "anthropic"]

_ERROR_TYPES_OPENAI = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    402: "insufficient_quota",
    403: "permission_denied",
    404: "model_not_found",
    409: "conflict",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    529: "overloaded",
}
_ERROR_TYPES_ANTHROPIC = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
# The header each API names its request id in (what the SDKs expose as `_request_id`).
_REQUEST_ID_HEADER = {"openai": "x-request-id", "anthropic": "request-id"}
LOG_SIZE = 10_000
_STALL = 3600.0  # a stall outlasts any client timeout worth testing


class _ModelState:
    __slots__ = ("admitted", "count")

    def __init__(self) -> None:
        self.count = 0  # every request that named the model
        self.admitted = 0  # those the rate limits let through: the scripted faults count these


class Simulator:
    """Serve a scenario on loopback; ``async with Simulator(...) as sim: sim.base_url``.

    ``clock`` (monotonic seconds) times the ``down_for`` window, the rate-limit buckets and
    the log; ``sleep`` performs the scripted delays (latency, first-token and token delays,
    thinking). Tests pass their own to run them without waiting.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.scenario = scenario or Scenario()
        self.host = host
        self.port = port
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_SIZE)
        self._clock = clock
        self._sleep = sleep
        epoch, start = time.time(), clock()
        self._limits = Limits(clock, lambda: epoch + clock() - start)
        self._state: dict[str, _ModelState] = collections.defaultdict(_ModelState)
        self._rng = random.Random(self.scenario.seed)
        self._started = clock()
        self._seq = itertools.count()
        self._runner: web.AppRunner | None = None
        self.app = _make_app(self)

    def __repr__(self) -> str:
        return f"Simulator(base_url={self.base_url!r}, models={sorted(self.scenario.models)!r})"

    @property
    def base_url(self) -> str:
        """``http://host:port`` (OpenAI clients add ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    def set_scenario(self, scenario: Scenario) -> None:
        """Swap the scenario and restart the counters and the down_for clock."""
        self.scenario = scenario
        self.reset()

    def reset(self) -> None:
        """Forget request counts and the log; restart the down_for clock."""
        self._state.clear()
        self._limits.reset()
        self.log.clear()
        self._rng = random.Random(self.scenario.seed)
        self._started = self._clock()

    def requests_for(self, model: str) -> int:
        """How many requests asked for ``model``."""
        return self._state[model].count if model in self._state else 0

    async def start(self) -> None:
        """Listen; ``port`` is filled in when it was 0."""
        runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        # A fan-out opens hundreds of connections at once; the default backlog (128) would
        # drop the rest until the kernel retries them, seconds later.
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        self._runner = runner
        self._started = self._clock()

    async def close(self) -> None:
        """Stop listening and end every handler."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- deciding ------------------------------------------------------------------

    def _status(self, fault: Fault, n: int) -> tuple[int, str]:
        if n < fault.after:
            return 200, "healthy"
        n -= fault.after
        if fault.down_for and self._clock() - self._started < fault.down_for:
            return fault.fail_status, "down"
        if fault.statuses:
            if fault.repeat:
                return fault.statuses[n % len(fault.statuses)], "sequence"
            if n < len(fault.statuses):
                return fault.statuses[n], "sequence"
        if fault.fail_rate and self._rng.random() < fault.fail_rate:
            return fault.fail_status, "fail_rate"
        return 200, ""

    def _latency(self, fault: Fault) -> tuple[float, str]:
        """Seconds before the headers: a `slow_rate` share of calls takes `slow_latency`."""
        if fault.slow_rate and self._rng.random() < fault.slow_rate:
            return fault.slow_latency, "slow"
        return fault.latency, ""

    async def _handle(self, request: web.Request, protocol: Protocol) -> web.StreamResponse:
        seq = next(self._seq)
        headers = {_REQUEST_ID_HEADER[protocol]: f"req_sim{seq:06d}"}
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(protocol, 400, "invalid_request_error", "body is not JSON", headers)
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return _error(protocol, 400, "invalid_request_error", "model is required", headers)
        model: str = body["model"]
        fault = self.scenario.fault(model)
        stream = bool(body.get("stream"))
        prompt_tokens = len(prompt_text(body)) // 4
        state = self._state[model]
        state.count += 1
        # A request refused by a limit never reaches the model: it does not advance the
        # scripted statuses or `after`.
        refusal = self._limits.admit(model, fault, prompt_tokens)
        latency, slow = 0.0, ""
        if refusal is not None:
            status, why = 429, "rate_limit"
        else:
            status, why = self._status(fault, state.admitted)
            state.admitted += 1
            if why == "healthy":
                fault = fault.healthy()
            if status == 200 and fault.context_window and prompt_tokens > fault.context_window:
                status, why = 400, "context"
            latency, slow = self._latency(fault)
        self.log.append(
            {
                "seq": seq,
                "t": round(self._clock() - self._started, 4),
                "model": model,
                "protocol": protocol,
                "stream": stream,
                "status": status,
                "fault": (why if why != "healthy" else "")
                or slow
                or _transport_fault(fault)
                or "ok",
                # Whether a key was sent, never the key itself.
                "auth": "authorization" in request.headers or "x-api-key" in request.headers,
            }
        )
        if protocol == "anthropic" and "anthropic-version" not in request.headers:
            return _error(
                protocol, 400, "invalid_request_error", "anthropic-version missing", headers
            )
        if invalid := problem(body, protocol):
            return _error(protocol, 400, "invalid_request_error", invalid, headers)
        if refusal is not None:
            headers |= self._limits.headers(model, fault, protocol)
            return _rate_limited(protocol, model, fault, refusal, headers)
        if latency:
            await self._sleep(latency)
        if status != 200:
            headers |= self._limits.headers(model, fault, protocol) | _retry_after(fault)
            if why == "context":
                return _error(protocol, 400, "context_length_exceeded", "", headers)
            kind = fault.error_type
            return _error(protocol, status, kind, f"simulated {status}", headers, html=fault.html)
        if fault.hang:
            await asyncio.Event().wait()  # until the client goes away or the server stops
        if fault.reset:
            _drop(request)
            return web.Response()
        call_id = f"toolu_sim{seq:06d}_" if protocol == "anthropic" else f"call_sim{seq:06d}_"
        turn = plan(body, fault, protocol=protocol, call_id=call_id)
        self._limits.charge(model, fault, prompt_tokens + turn.output_tokens)
        headers |= self._limits.headers(model, fault, protocol)
        options = body.get("stream_options")
        reply = Reply(
            id=f"msg_sim{seq:06d}" if protocol == "anthropic" else f"chatcmpl-sim{seq:06d}",
            model=fault.model or model,
            created=int(time.time()),
            input_tokens=prompt_tokens,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        )
        if stream:
            if protocol == "anthropic":
                frames = anthropic_events(turn, reply)
            else:
                frames = openai_chunks(turn, reply)
            return await self._stream(request, protocol, fault, frames, headers)
        if turn.reasoning_pause:
            await self._sleep(turn.reasoning_pause * len(turn.reasoning))
        payload = anthropic_message(turn, reply) if protocol == "anthropic" else None
        data = json.dumps(payload or openai_completion(turn, reply)).encode()
        if fault.truncate:
            resp = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            _drop(request)
            return resp
        return web.Response(body=data, content_type="application/json", headers=headers)

    async def _pause(self, resp: web.StreamResponse, seconds: float, keepalive: float) -> None:
        """Wait, sending an SSE comment every ``keepalive`` seconds when asked."""
        while keepalive and seconds > keepalive:
            await self._sleep(keepalive)
            await resp.write(b": keep-alive\n\n")
            seconds -= keepalive
        await self._sleep(seconds)

    async def _stall(self, resp: web.StreamResponse, keepalive: float) -> None:
        """Go silent (keep-alive comments aside) until the client gives up."""
        while True:
            await asyncio.sleep(keepalive or _STALL)  # real time: nothing scripted ends it
            if keepalive:
                await resp.write(b": keep-alive\n\n")

    async def _stream(
        self,
        request: web.Request,
        protocol: Protocol,
        fault: Fault,
        frames: list[Frame],
        headers: dict[str, str],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
        )
        await resp.prepare(request)
        sent = 0  # deltas sent: the faults below count them
        for frame in frames:
            if frame.kind == "delta":
                if fault.stream_cut_after is not None and sent >= fault.stream_cut_after:
                    _drop(request)
                    return resp
                if fault.stall_after is not None and sent >= fault.stall_after:
                    await self._stall(resp, fault.keepalive)
                if fault.malformed_after is not None and sent >= fault.malformed_after:
                    await resp.write(_MALFORMED[protocol])
                    return resp
                if fault.error_after is not None and sent >= fault.error_after:
                    await resp.write(_MID_STREAM_ERROR[protocol])
                    return resp
                delay = fault.token_delay if sent else fault.first_token_delay
                if delay + frame.pause:
                    await self._pause(resp, delay + frame.pause, fault.keepalive)
                sent += 1
            elif _omitted(frame, fault):
                continue
            await resp.write(frame.encode())
        return resp


# A chunk cut off mid-JSON, under the event name a real chunk has, so the SDKs parse it.
_MALFORMED = {
    "openai": b'data: {"id": "chatcmpl-sim", "object": "chat.completion.chunk", "choices": [ \n\n',
    "anthropic": (
        b"event: content_block_delta\n"
        b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": \n\n'
    ),
}
_MID_STREAM_ERROR = {
    "openai": Frame(
        "delta",
        {"error": {"type": "server_error", "message": "simulated mid-stream error", "code": None}},
    ).encode(),
    "anthropic": Frame(
        "delta",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        event="error",
    ).encode(),
}


def _omitted(frame: Frame, fault: Fault) -> bool:
    """Whether ``no_finish`` / ``no_terminal`` leave this frame out."""
    if frame.kind == "terminal":
        return fault.no_terminal
    return frame.kind in ("finish", "usage") and fault.no_finish


def _transport_fault(f: Fault) -> str:
    for name in ("hang", "reset", "truncate", "no_terminal", "no_finish"):
        if getattr(f, name):
            return name
    for name in ("stream_cut_after", "stall_after", "malformed_after", "error_after"):
        if getattr(f, name) is not None:
            return name
    return ""


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _retry_after(fault: Fault) -> dict[str, str]:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = str(fault.retry_after_ms)
    return headers


def _rate_limited(
    protocol: Protocol, model: str, fault: Fault, refusal: Refusal, headers: dict[str, str]
) -> web.Response:
    """The 429 a provider's limiter answers, with the wait it asks for."""
    wait = refusal.retry_after
    headers = headers | {"retry-after": str(max(1, math.ceil(wait)))}
    window = go_duration(fault.limit_window)
    if protocol == "anthropic":
        message = (
            f"This request would exceed the rate limit for {model} of {refusal.limit} "
            f"{refusal.kind} per {window}. Please retry after the time in retry-after."
        )
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": message},
        }
    else:
        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
        message = (
            f"Rate limit reached for {model} on {refusal.kind} per {window}: "
            f"Limit {refusal.limit}. Please try again in {go_duration(wait)}."
        )
        payload = {
            "error": {
                "message": message,
                "type": refusal.kind,
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    return web.json_response(payload, status=429, headers=headers)


def _error(
    protocol: Protocol,
    status: int,
    kind: str | None,
    message: str,
    headers: dict[str, str],
    *,
    html: bool = False,
) -> web.Response:
    if html:
        page = f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
        return web.Response(status=status, text=page, content_type="text/html", headers=headers)
    payload: dict[str, Any]
    if protocol == "anthropic":
        etype = kind or _ERROR_TYPES_ANTHROPIC.get(status, "api_error")
        if kind == "context_length_exceeded":
            etype, message = "invalid_request_error", "prompt is too long: context length exceeded"
        payload = {"type": "error", "error": {"type": etype, "message": message}}
    else:
        etype = kind or _ERROR_TYPES_OPENAI.get(status, "server_error")
        if kind == "context_length_exceeded":
            message = "This model's maximum context length was exceeded."
        payload = {"error": {"type": etype, "code": etype, "message": message, "param": None}}
    return web.json_response(payload, status=status, headers=headers)


def _make_app(sim: Simulator) -> web.Application:
    """The aiohttp application behind a Simulator."""
    app = web.Application()

    async def openai(request: web.Request) -> web.StreamResponse:
        return await sim._handle(request, "openai")

    async def anthropic(request: web.Request) -> web.StreamResponse:
        return await sim._handle(request, "anthropic")

    async def log(request: web.Request) -> web.Response:
        return web.json_response(list(sim.log))

    async def reset(request: web.Request) -> web.Response:
        sim.reset()
        return web.json_response({"ok": True})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "models": sorted(sim.scenario.models)})

    app.router.add_post("/v1/chat/completions", openai)
    app.router.add_post("/chat/completions", openai)
    app.router.add_post("/v1/messages", anthropic)
    app.router.add_get("/_sim/log", log)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/health", health)
    return app


def spawn(
    scenario: str | None = None, *, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``fallover simulate`` in its own process on a free loopback port.

    Returns the process (terminate it when done) and its base URL, once it accepts
    connections. For benchmarks and docs checks, where client and server must not
    share an event loop.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "fallover._cli", "simulate", "--port", str(port)]
    if scenario is not None:
        argv += ["--scenario", scenario]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)  # a process we started is not listening yet
    proc.kill()
    raise RuntimeError("the simulator did not start")
