"""Gateway: LLM clients served under model names as OpenAI and Anthropic HTTP APIs.

Each request is decoded into the neutral model by the protocol's server codec,
handed to the client its ``model`` names (a pool, or one pinned endpoint), and
the answer is written back in the caller's protocol, whatever protocol the
member that answered speaks. The gateway adds no routing of its own: fallover,
parks and budgets are the router's; what a client sees is in ``docs/gateway.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, final

import anyio
from aiohttp import web

from .. import _defaults as d
from .._client import LLMClient, aclose_all
from .._codecs import _anthropic_server as anthropic
from .._codecs import _openai_server as openai
from .._config import Config, load_config
from .._routing import AsyncRouter
from .._types import Attempt, ChatRequest, ChatResponse, Completed, StreamEvent
from ._metrics import CONTENT_TYPE, GatewayMetrics, render
from ._status import Failure, failure

__all__ = ["Gateway"]

log = logging.getLogger("fallover")

Protocol = Literal["openai", "anthropic"]

_MAX_ATTEMPTS_SHOWN = 16

_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # a reverse proxy in front must not buffer the stream
}
_ROUTES = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


def _header_safe(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _attempts_header(attempts: Sequence[Attempt]) -> str:
    """``alias=outcome[/status]`` for each attempt, comma-separated."""
    shown = [
        f"{a.alias}={a.outcome}" + (f"/{a.status}" if a.status is not None else "")
        for a in attempts[:_MAX_ATTEMPTS_SHOWN]
    ]
    if len(attempts) > _MAX_ATTEMPTS_SHOWN:
        shown.append(f"+{len(attempts) - _MAX_ATTEMPTS_SHOWN} more")
    return _header_safe(", ".join(shown))


def _debug(resp: ChatResponse) -> dict[str, Any]:
    return {
        "alias": resp.alias,
        "attempts": [
            {"alias": a.alias, "outcome": a.outcome, "status": a.status, "error": a.error}
            for a in resp.attempts[:_MAX_ATTEMPTS_SHOWN]
        ],
    }


def _parked(router: AsyncRouter) -> dict[str, float]:
    """Each parked member of ``router`` and the seconds until it may be tried."""
    store = router.store
    return {
        m.alias: round(left, 3)
        for m in router.members
        if (left := store.remaining(m.alias)) is not None
    }


async def _aclose(events: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


@final
class Gateway:
    """Serve ``models`` (name → client) as ``/v1/chat/completions`` and ``/v1/messages``.

    ``api_keys``: the keys clients must present (``Authorization: Bearer`` or
    ``x-api-key``); none means no auth (``fallover serve`` then listens on
    loopback only). Past ``max_concurrency`` calls in flight, one more is
    refused at once with 429 and ``Retry-After: 1`` (the official SDKs retry
    it), so a burst never queues behind the pool's own waits.
    ``meter_provider`` and ``registry``: where the gateway's metrics go and
    what ``/metrics`` renders (default: the global OpenTelemetry provider and
    prometheus-client's default registry).
    """

    def __init__(
        self,
        models: Mapping[str, LLMClient],
        *,
        api_keys: Sequence[str] = (),
        max_body_bytes: int = d.SERVER_MAX_BODY_BYTES,
        max_concurrency: int = d.SERVER_MAX_CONCURRENCY,
        meter_provider: Any | None = None,
        registry: Any | None = None,
    ) -> None:
        if not models:
            raise ValueError("Gateway needs at least one model to serve")
        for name, client in models.items():
            if not isinstance(client, LLMClient):
                raise TypeError(f"models[{name!r}] is {type(client).__name__}, not an LLMClient")
        if max_body_bytes <= 0 or max_concurrency <= 0:
            raise ValueError("max_body_bytes and max_concurrency must be positive")
        keys = [k for k in api_keys if k]
        self._models = dict(models)
        self._keys = [k.encode() for k in keys]
        self._max_body = max_body_bytes
        self._max_concurrency = max_concurrency
        self._in_flight = 0
        self._metrics = GatewayMetrics(meter_provider)
        self._registry = registry
        self._pid = str(os.getpid())
        self._created = int(time.time())

    @classmethod
    def from_config(
        cls,
        config: Config | None = None,
        *,
        api_keys: Sequence[str] = (),
        meter_provider: Any | None = None,
        registry: Any | None = None,
    ) -> Gateway:
        """The config's pools by name and each of their members pinned as ``provider/model``.

        ``[routing]`` is served as ``routing.name`` (or ``default``), each
        ``[pools.NAME]`` as ``NAME``; ``[server]`` sets the limits.
        """
        from ._run import gateway_from_config

        return gateway_from_config(
            config if config is not None else load_config(),
            api_keys=api_keys,
            meter_provider=meter_provider,
            registry=registry,
        )

    def __repr__(self) -> str:
        return (
            f"Gateway(models={sorted(self._models)!r}, auth={bool(self._keys)}, "
            f"max_concurrency={self._max_concurrency})"
        )

    @property
    def models(self) -> tuple[str, ...]:
        """The names a request's ``model`` may use, sorted."""
        return tuple(sorted(self._models))

    @property
    def in_flight(self) -> int:
        """Chat calls being served right now."""
        return self._in_flight

    def app(self) -> web.Application:
        """The aiohttp application (serve it with ``handler_cancellation=True``)."""
        app = web.Application(client_max_size=self._max_body)
        app.on_startup.append(self._warm)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/metrics", self._metrics_page)
        return app

    async def _warm(self, app: web.Application) -> None:
        """Open each pool's store: a shared one has loaded its parks before the gateway listens."""
        stores = {
            id(client.store): client.store
            for client in self._models.values()
            if isinstance(client, AsyncRouter)
        }
        # Each store bounds its own open (Redis: ``first_load_timeout``), so an unreachable
        # store never keeps the gateway from serving; opened together, the slowest bounds all.
        async with anyio.create_task_group() as tg:
            for store in stores.values():
                tg.start_soon(store.open)

    async def aclose(self) -> None:
        """Close every client (each once, even when it serves under two names)."""
        unique = {id(client): client for client in self._models.values()}
        await aclose_all(client.aclose for client in unique.values())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- plumbing ------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        if not self._keys:
            return True
        given = request.headers.get("x-api-key")
        if given is None:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else ""
        presented = given.encode("utf-8", "replace")
        # Every key is compared, in constant time each, so timing tells nothing.
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(presented, key)
        return ok

    def _error(
        self, protocol: Protocol, f: Failure, extra: Mapping[str, str] | None = None
    ) -> web.Response:
        if protocol == "anthropic":
            body = anthropic.encode_error(f.status, f.message)
        else:
            body = openai.encode_error(f.status, f.message, code=f.code)
        headers = {**f.headers, "x-fallover-worker": self._pid, **(extra or {})}
        return web.Response(
            status=f.status, body=body, content_type="application/json", headers=headers
        )

    def _caller(self, request: web.Request) -> Protocol:
        return "anthropic" if "anthropic-version" in request.headers else "openai"

    # -- routes --------------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, "openai")

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, "anthropic")

    async def _health(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok", "pid": os.getpid()}
        if self._authorized(request):
            # Pool names and parks are for operators: shown only to a caller with a key.
            body["in_flight"] = self._in_flight
            body["parked"] = {
                name: parked
                for name, client in self._models.items()
                if isinstance(client, AsyncRouter) and (parked := _parked(client))
            }
        return web.json_response(body)

    async def _list_models(self, request: web.Request) -> web.Response:
        protocol = self._caller(request)
        if not self._authorized(request):
            return self._error(protocol, Failure(status=401, message="invalid or missing API key"))
        names = self.models
        if protocol == "anthropic":
            data: list[dict[str, Any]] = [
                {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
                for n in names
            ]
            return web.json_response(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": names[0] if names else None,
                    "last_id": names[-1] if names else None,
                }
            )
        data = [
            {"id": n, "object": "model", "created": self._created, "owned_by": "fallover"}
            for n in names
        ]
        return web.json_response({"object": "list", "data": data})

    async def _metrics_page(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(
                self._caller(request), Failure(status=401, message="invalid or missing API key")
            )
        text = render(self._registry)
        if text is None:
            return web.Response(status=501, text="prometheus-client is not installed\n")
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})

    async def _chat(self, request: web.Request, protocol: Protocol) -> web.StreamResponse:
        route = _ROUTES[protocol]
        started = time.perf_counter()
        status = 500
        model = ["unknown"]  # the served name, once the request names one
        self._metrics.started(route)
        try:
            response = await self._serve_chat(request, protocol, model)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's code for it); the cancel goes on
            raise
        finally:
            self._metrics.finished(route, status, time.perf_counter() - started, model[0])

    async def _serve_chat(
        self, request: web.Request, protocol: Protocol, model: list[str]
    ) -> web.StreamResponse:
        if not self._authorized(request):
            return self._error(protocol, Failure(status=401, message="invalid or missing API key"))
        if self._in_flight >= self._max_concurrency:
            return self._error(
                protocol,
                Failure(
                    status=429,
                    message=f"the gateway is serving {self._max_concurrency} calls; retry shortly",
                    code="gateway_busy",
                    retry_after=1.0,
                ),
            )
        self._in_flight += 1
        try:
            return await self._call(request, protocol, model)
        except Exception as exc:
            # A bug must still answer in the caller's protocol, and never with its text.
            return self._failed(protocol, exc, model[0])
        finally:
            self._in_flight -= 1

    async def _call(
        self, request: web.Request, protocol: Protocol, model: list[str]
    ) -> web.StreamResponse:
        too_large = Failure(
            status=413, message=f"the request body is over {self._max_body} bytes", code="too_large"
        )
        if request.content_length is not None and request.content_length > self._max_body:
            return self._error(protocol, too_large)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._error(protocol, too_large)
        try:
            if protocol == "anthropic":
                a = anthropic.decode_request(body)
                chat, stream, include_usage = a.request, a.stream, False
            else:
                o = openai.decode_request(body)
                chat, stream, include_usage = o.request, o.stream, o.include_usage
        except ValueError as exc:
            return self._error(
                protocol, Failure(status=400, message=str(exc), code="invalid_request")
            )
        name = chat.model or ""
        client = self._models.get(name)
        if client is None:
            known = ", ".join(self.models)
            return self._error(
                protocol,
                Failure(
                    status=404,
                    message=f"model {name[:200]!r} is not served here (known: {known})",
                    code="model_not_found",
                ),
            )
        model[0] = name
        if stream:
            return await self._stream(request, protocol, client, chat, include_usage)
        try:
            resp = await client.complete(chat)
        except Exception as exc:
            return self._failed(protocol, exc, name)
        if protocol == "anthropic":
            data = anthropic.encode_response(resp, id=f"msg_{secrets.token_hex(12)}")
        else:
            data = openai.encode_response(
                resp, id=f"chatcmpl-{secrets.token_hex(12)}", created=int(time.time())
            )
        return web.Response(
            body=data,
            content_type="application/json",
            headers={
                "x-fallover-alias": _header_safe(resp.alias),
                "x-fallover-attempts": _attempts_header(resp.attempts),
                "x-fallover-worker": self._pid,
            },
        )

    def _failed(self, protocol: Protocol, exc: Exception, name: str) -> web.Response:
        f = failure(exc)
        if f.status == 500:
            # Only the type: an unexpected error's text is not known to be free of secrets.
            log.error("fallover serve: %s failed with %s", name, type(exc).__name__)
        return self._error(protocol, f)

    async def _stream(
        self,
        request: web.Request,
        protocol: Protocol,
        client: LLMClient,
        chat: ChatRequest,
        include_usage: bool,
    ) -> web.StreamResponse:
        events = client.stream(chat, on_interrupt="error")
        try:
            # Nothing is sent until the first event: a pool that cannot answer at all is
            # an HTTP error with its status, not a stream that starts and then fails.
            try:
                event = await anext(events)
            except StopAsyncIteration:
                return self._error(
                    protocol,
                    Failure(status=502, message="the stream ended without an answer"),
                )
            except Exception as exc:
                return self._failed(protocol, exc, chat.model or "")
            encoder: openai.StreamEncoder | anthropic.StreamEncoder
            if protocol == "anthropic":
                encoder = anthropic.StreamEncoder(
                    id=f"msg_{secrets.token_hex(12)}", model=chat.model or ""
                )
            else:
                encoder = openai.StreamEncoder(
                    id=f"chatcmpl-{secrets.token_hex(12)}",
                    created=int(time.time()),
                    model=chat.model or "",
                    include_usage=include_usage,
                )
            response = web.StreamResponse(headers={**_SSE_HEADERS, "x-fallover-worker": self._pid})
            await response.prepare(request)
            try:
                await self._relay(response, encoder, event, events)
            except ConnectionResetError:
                pass  # the client went away: the upstream stream is closed below, nothing else
            except Exception as exc:
                # The headers are gone: the stream can only end, with an error event if it can.
                log.error(
                    "fallover serve: a stream from %s failed with %s",
                    chat.model,
                    type(exc).__name__,
                )
                with contextlib.suppress(Exception):
                    await response.write(encoder.error(500, "internal error in the gateway"))
            return response
        finally:
            await _aclose(events)

    async def _relay(
        self,
        response: web.StreamResponse,
        encoder: openai.StreamEncoder | anthropic.StreamEncoder,
        event: StreamEvent,
        events: AsyncIterator[StreamEvent],
    ) -> None:
        while True:
            if isinstance(event, Completed):
                await response.write(encoder.event(event, debug=_debug(event.response)))
                await response.write_eof()
                return
            try:
                chunk = encoder.event(event)
            except ValueError as exc:
                await response.write(encoder.error(502, str(exc)))
                return
            await response.write(chunk)
            try:
                event = await anext(events)
            except StopAsyncIteration:
                # Never a clean end: the client must not take a cut stream for a whole answer.
                await response.write(encoder.error(502, "the stream ended without finishing"))
                return
            except Exception as exc:
                f = failure(exc)
                await response.write(encoder.error(f.status, f.message))
                return
