"""The fault-injecting server: OpenAI ``/v1/chat/completions`` and Anthropic ``/v1/messages``."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from ._scenario import Fault, Scenario

__all__ = ["Simulator", "make_app", "spawn"]

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
LOG_SIZE = 10_000
_HEALTHY = Fault()


def _review(prompt: str) -> str:
    """A deterministic, plausible-looking review of whatever was sent."""
    lines = prompt.splitlines()
    longest = max((len(line) for line in lines), default=0)
    todos = sum("TODO" in line or "FIXME" in line for line in lines)
    notes = [f"Simulated review of {len(lines)} lines."]
    if longest > 100:
        notes.append(f"The longest line has {longest} characters; consider wrapping it.")
    if todos:
        plural = "s" if todos != 1 else ""
        notes.append(f"{todos} TODO/FIXME marker{plural} left to resolve.")
    if not todos and longest <= 100:
        notes.append("Nothing stands out; the structure reads clearly.")
    return " ".join(notes)


def _unfence(text: str) -> str:
    """The code inside the first fenced block, if the message has one (what review sends)."""
    start = text.find("```\n")
    end = text.rfind("\n```")
    return text[start + 4 : end] if 0 <= start < end else text


class _ModelState:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Simulator:
    """Serve a scenario on loopback; ``async with Simulator(...) as sim: sim.base_url``."""

    def __init__(
        self, scenario: Scenario | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.scenario = scenario or Scenario()
        self.host = host
        self.port = port
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_SIZE)
        self._state: dict[str, _ModelState] = collections.defaultdict(_ModelState)
        self._rng = random.Random(self.scenario.seed)
        self._started = time.monotonic()
        self._seq = itertools.count()
        self._runner: web.AppRunner | None = None
        self.app = make_app(self)

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
        self.log.clear()
        self._rng = random.Random(self.scenario.seed)
        self._started = time.monotonic()

    def requests_for(self, model: str) -> int:
        """How many requests asked for ``model``."""
        return self._state[model].count if model in self._state else 0

    async def start(self) -> None:
        """Listen; ``port`` is filled in when it was 0."""
        runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        self._runner = runner
        self._started = time.monotonic()

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
        if fault.down_for and time.monotonic() - self._started < fault.down_for:
            return fault.fail_status, "down"
        if fault.statuses:
            if fault.repeat:
                return fault.statuses[n % len(fault.statuses)], "sequence"
            if n < len(fault.statuses):
                return fault.statuses[n], "sequence"
        if fault.fail_rate and self._rng.random() < fault.fail_rate:
            return fault.fail_status, "fail_rate"
        return 200, ""

    async def handle(self, request: web.Request, protocol: str) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(protocol, 400, "invalid_request_error", "body is not JSON", Fault())
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return _error(protocol, 400, "invalid_request_error", "model is required", Fault())
        model: str = body["model"]
        fault = self.scenario.fault(model)
        state = self._state[model]
        n = state.count
        state.count += 1
        stream = bool(body.get("stream"))
        status, why = self._status(fault, n)
        prompt = "\n".join(
            str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict)
        )
        if why == "healthy":
            fault = _HEALTHY
        if status == 200 and fault.context_window and len(prompt) // 4 > fault.context_window:
            status, why = 400, "context"
        auth = "authorization" in request.headers or "x-api-key" in request.headers
        entry: dict[str, Any] = {
            "seq": next(self._seq),
            "t": round(time.monotonic() - self._started, 4),
            "model": model,
            "protocol": protocol,
            "stream": stream,
            "status": status,
            "fault": (why if why != "healthy" else "") or _transport_fault(fault) or "ok",
            "auth": auth,
        }
        self.log.append(entry)
        if protocol == "anthropic" and "anthropic-version" not in request.headers:
            return _error(
                protocol, 400, "invalid_request_error", "anthropic-version missing", fault
            )
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if status != 200:
            kind = "context_length_exceeded" if why == "context" else None
            return _error(protocol, status, kind, f"simulated {status}", fault)
        if fault.hang:
            await asyncio.Event().wait()  # until the client goes away or the server stops
        if fault.reset:
            _drop(request)
            return web.Response()
        user = [
            m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"
        ]
        last = str(user[-1].get("content", "")) if user else prompt
        text = fault.reply if fault.reply is not None else _review(_unfence(last))
        reported = fault.model or model
        if stream:
            return await _stream(request, protocol, fault, text, reported, len(prompt) // 4)
        payload = _answer(protocol, text, reported, len(prompt) // 4)
        data = json.dumps(payload).encode()
        if fault.truncate:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            _drop(request)
            return resp
        return web.Response(body=data, content_type="application/json")


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


def _error(
    protocol: str, status: int, kind: str | None, message: str, fault: Fault
) -> web.Response:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = str(fault.retry_after_ms)
    if fault.html:
        page = f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
        return web.Response(status=status, text=page, content_type="text/html", headers=headers)
    if protocol == "anthropic":
        etype = kind or fault.error_type or _ERROR_TYPES_ANTHROPIC.get(status, "api_error")
        if kind == "context_length_exceeded":
            etype, message = "invalid_request_error", "prompt is too long: context length exceeded"
        payload: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": message}}
    else:
        etype = kind or fault.error_type or _ERROR_TYPES_OPENAI.get(status, "server_error")
        payload = {"error": {"type": etype, "code": etype, "message": message, "param": None}}
    return web.json_response(payload, status=status, headers=headers)


def _answer(protocol: str, text: str, model: str, prompt_tokens: int) -> dict[str, Any]:
    out_tokens = len(text.split())
    if protocol == "anthropic":
        return {
            "id": "msg_sim",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": prompt_tokens, "output_tokens": out_tokens},
        }
    return {
        "id": "chatcmpl-sim",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": out_tokens,
            "total_tokens": prompt_tokens + out_tokens,
        },
    }


async def _pause(resp: web.StreamResponse, seconds: float, keepalive: float) -> None:
    """Wait, sending SSE comments every ``keepalive`` seconds when asked."""
    if not keepalive:
        await asyncio.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(keepalive, left))
        await resp.write(b": keep-alive\n\n")


async def _stream(
    request: web.Request, protocol: str, fault: Fault, text: str, model: str, prompt_tokens: int
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    anthropic = protocol == "anthropic"

    async def send(event: str, data: dict[str, Any] | str) -> None:
        raw = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {event}\n" if anthropic else ""
        await resp.write(f"{head}data: {raw}\n\n".encode())

    if anthropic:
        await send(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "model": model,
                    "usage": {"input_tokens": prompt_tokens, "output_tokens": 1},
                },
            },
        )
        await send("content_block_start", {"type": "content_block_start", "index": 0})
    else:
        await send("", {"model": model, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    if fault.first_token_delay:
        await _pause(resp, fault.first_token_delay, fault.keepalive)
    for i, piece in enumerate(pieces):
        if fault.stream_cut_after is not None and i >= fault.stream_cut_after:
            _drop(request)
            return resp
        if fault.stall_after is not None and i >= fault.stall_after:
            await _pause(resp, 3600.0, fault.keepalive)
        if fault.malformed_after is not None and i >= fault.malformed_after:
            await resp.write(b'data: {"choices": [ this is not json\n\n')
            return resp
        if fault.error_after is not None and i >= fault.error_after:
            if anthropic:
                await send(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                )
            else:
                await send(
                    "", {"error": {"type": "server_error", "message": "simulated mid-stream error"}}
                )
            return resp
        if i and fault.token_delay:
            await _pause(resp, fault.token_delay, fault.keepalive)
        if anthropic:
            await send(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        else:
            await send("", {"model": model, "choices": [{"index": 0, "delta": {"content": piece}}]})
    out_tokens = len(words)
    if anthropic:
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": out_tokens},
            },
        )
        if not fault.no_terminal:
            await send("message_stop", {"type": "message_stop"})
    else:
        if not fault.no_finish:
            await send(
                "",
                {"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            )
            await send(
                "",
                {
                    "model": model,
                    "choices": [],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out_tokens},
                },
            )
        if not fault.no_terminal:
            await resp.write(b"data: [DONE]\n\n")
    return resp


def make_app(sim: Simulator) -> web.Application:
    """The aiohttp application behind a Simulator."""
    app = web.Application()

    async def openai(request: web.Request) -> web.StreamResponse:
        return await sim.handle(request, "openai")

    async def anthropic(request: web.Request) -> web.StreamResponse:
        return await sim.handle(request, "anthropic")

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
