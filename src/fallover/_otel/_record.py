"""The recording side: spans and metrics for one call, when OpenTelemetry is on.

Imported only once a tracer or meter provider is in use (``_switch`` decides),
so an application without OpenTelemetry never loads this module or the API.
The names follow the OpenTelemetry GenAI semantic conventions; fallover's own
additions live under ``fallover.*``. Attributes carry aliases, model names,
error classes and fallover's own (redacted) error text, never a key or a
header; message contents only when ``capture_content`` is on.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _errors as e
from .._types import Completed, Restarted
from ._content import input_messages, output_messages

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter
    from opentelemetry.trace import Span, Tracer

    from .._client import LLMClient
    from .._types import ChatRequest, ChatResponse, StreamEvent

__all__ = [
    "INSIDE",
    "AttemptRecorder",
    "CallRecorder",
    "Instruments",
    "Live",
    "error_type",
    "provider_name",
]

OPERATION: Final = "chat"

# Bucket boundaries the GenAI metric conventions advise for these histograms.
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

# Provider names in aliases mapped to the conventions' well-known values; any other
# name is passed through (the conventions allow custom values).
_PROVIDERS: Final = {
    "gemini": "gcp.gemini",
    "google": "gcp.gen_ai",
    "vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "watsonx": "ibm.watsonx.ai",
}


INSIDE: Final[contextvars.ContextVar[bool]] = contextvars.ContextVar(
    "fallover_otel_inside", default=False
)
"""True while a recorded call is asking a member: a call made there (a nested pool) is
inner, and leaves durations and tokens to the outer call so nothing is counted twice."""


def provider_name(alias: str) -> str:
    """``gen_ai.provider.name`` for a member alias (``provider/model``)."""
    provider = alias.partition("/")[0]
    return _PROVIDERS.get(provider, provider)


def _provider_of(member: LLMClient) -> str | None:
    """The member's own provider name (an endpoint's ``provider``), None for a pool."""
    provider = getattr(member, "provider", None)
    return _PROVIDERS.get(provider, provider) if isinstance(provider, str) else None


def _model(member: LLMClient) -> str:
    model = getattr(member, "model", None)
    return model if isinstance(model, str) else member.alias.rpartition("/")[2]


def error_type(exc: BaseException) -> str:
    """``error.type``: fallover's class name for its own errors, else the qualified name."""
    cls = type(exc)
    if isinstance(exc, e.FalloverError) or cls.__module__ == "builtins":
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(exc: BaseException) -> str:
    """The failure as fallover words it (its messages are redacted); a stranger's by class only."""
    if isinstance(exc, e.ProviderError):
        return f"{type(exc).__name__}: {exc.message}"
    if isinstance(exc, e.FalloverError):
        return f"{type(exc).__name__}: {exc}"
    # An unknown exception's text is not fallover's to vouch for: its class only.
    return error_type(exc)


@final
class Instruments:
    """The metric instruments, created once per meter."""

    __slots__ = ("duration", "fallovers", "first_chunk", "parks", "probes", "tokens")

    def __init__(self, meter: Meter) -> None:
        self.duration: Histogram = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens: Histogram = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.first_chunk: Histogram = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the start of a streamed call to its first event.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.fallovers: Counter = meter.create_counter(
            "fallover.fallovers",
            unit="{fallover}",
            description="Attempts that failed and sent the call on to the next member.",
        )
        self.parks: Counter = meter.create_counter(
            "fallover.parks", unit="{park}", description="Members parked after a failure."
        )
        self.probes: Counter = meter.create_counter(
            "fallover.probes",
            unit="{probe}",
            description="Half-open probes: a parked member asked again after its park ran out.",
        )


@final
class Live:
    """What recording goes to: a tracer and/or instruments, and the content opt-in."""

    __slots__ = ("capture_content", "inside", "instruments", "recorder", "tracer")

    def __init__(
        self, tracer: Tracer | None, instruments: Instruments | None, capture_content: bool
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.capture_content = capture_content
        self.recorder = CallRecorder  # what each call gets, without an import per call
        self.inside = INSIDE


@final
class CallRecorder:
    """Spans and metrics for one routed call; the router reports what happens to it.

    The call span (kind CLIENT, ``chat {pool}``) parents one span per attempt,
    each recorded by its own ``AttemptRecorder``: a hedge runs two attempts at
    once (docs/routing.md, "Pacing and hedging"). An inner call (a pool asked
    by a recorded call) records spans but no durations or tokens: the outer
    call records those once.
    """

    __slots__ = (
        "_asked",
        "_attempts",
        "_context",
        "_done",
        "_first",
        "_live",
        "_measures",
        "_open",
        "_pool",
        "_provider",
        "_span",
        "_started",
        "_stream",
    )

    def __init__(
        self, live: Live, pool: str, request: ChatRequest, *, stream: bool, inner: bool
    ) -> None:
        self._live = live
        self._measures = None if inner else live.instruments  # durations and tokens
        self._pool = pool
        self._stream = stream
        self._started = time.perf_counter()
        self._first: float | None = None
        self._attempts = 0
        self._provider: str | None = None
        self._asked: str | None = None  # the provider of the member asked last, if it has one
        self._open: list[AttemptRecorder] = []  # attempts not ended yet (two while a hedge races)
        self._done = False
        self._span: Span | None = None
        self._context: otel_context.Context | None = None
        tracer = live.tracer
        if tracer is not None:
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": OPERATION,
                "gen_ai.request.model": pool,
            }
            if stream:
                attributes["gen_ai.request.stream"] = True
            for key, value in (
                ("gen_ai.request.max_tokens", request.max_tokens),
                ("gen_ai.request.temperature", request.temperature),
                ("gen_ai.request.top_p", request.top_p),
                ("gen_ai.request.seed", request.seed),
            ):
                if value is not None:
                    attributes[key] = value
            if request.stop is not None:
                attributes["gen_ai.request.stop_sequences"] = list(request.stop_sequences)
            if live.capture_content:
                attributes["gen_ai.input.messages"] = input_messages(request)
            self._span = tracer.start_span(
                f"{OPERATION} {pool}", kind=SpanKind.CLIENT, attributes=attributes
            )
            self._context = trace.set_span_in_context(self._span)

    # -- attempts ------------------------------------------------------------------

    def attempt(self, member: LLMClient) -> AttemptRecorder:
        """A member is asked: the handle that records this attempt."""
        self._attempts += 1
        alias = member.alias
        self._asked = asked = _provider_of(member)
        self._provider = provider = asked or provider_name(alias)
        span = None
        tracer = self._live.tracer
        if tracer is not None:
            span = tracer.start_span(
                f"attempt {alias}",
                context=self._context,
                kind=SpanKind.INTERNAL,
                attributes={
                    "fallover.alias": alias,
                    "fallover.attempt": self._attempts,
                    "gen_ai.provider.name": provider,
                    "gen_ai.request.model": _model(member),
                },
            )
        attempt = AttemptRecorder(self, span, asked)
        self._open.append(attempt)
        return attempt

    async def observe(
        self, events: AsyncIterator[StreamEvent], member: LLMClient
    ) -> AsyncGenerator[StreamEvent, None]:
        """A plain client's own call: pass ``events`` through, recording the call they make."""
        self._attempts = 1
        self._asked = _provider_of(member)
        self._provider = self._asked or provider_name(member.alias)
        context = self._context
        try:
            while True:
                token = None if context is None else otel_context.attach(context)
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                finally:
                    if token is not None:
                        otel_context.detach(token)
                if type(event) is Completed:
                    self.answered(event.response)
                elif type(event) is not Restarted:
                    self.first_event()
                yield event
            if not self._done:  # a client that ends without Completed has not answered
                self.ended(e.ConnectionFailed("stream ended without Completed", alias=member.alias))
        except BaseException as exc:
            self.ended(exc)
            raise
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def first_event(self) -> None:
        """A stream yielded its first event (text, reasoning or a tool call)."""
        if self._first is not None:
            return
        self._first = elapsed = time.perf_counter() - self._started
        if self._span is not None:
            self._span.set_attribute("gen_ai.response.time_to_first_chunk", elapsed)
        measures = self._measures
        if measures is not None:
            measures.first_chunk.record(elapsed, self._metric_attributes())

    # -- what the pool did ------------------------------------------------------------

    def fell_over(self, alias: str, exc: BaseException) -> None:
        """The call left ``alias`` for the next member because of ``exc``."""
        instruments = self._live.instruments
        if instruments is not None:
            instruments.fallovers.add(1, {"fallover.alias": alias, "error.type": error_type(exc)})

    def park(self, alias: str, seconds: float, exc: BaseException) -> None:
        """``alias`` was parked for ``seconds`` because of ``exc``."""
        kind = error_type(exc)
        if self._span is not None:
            self._span.add_event(
                "fallover.park",
                {
                    "fallover.alias": alias,
                    "fallover.park.seconds": round(seconds, 3),
                    "error.type": kind,
                },
            )
        instruments = self._live.instruments
        if instruments is not None:
            instruments.parks.add(1, {"fallover.alias": alias, "error.type": kind})

    def probe(self, alias: str) -> None:
        """This call won the half-open probe of ``alias``."""
        if self._span is not None:
            self._span.add_event("fallover.probe", {"fallover.alias": alias})
        instruments = self._live.instruments
        if instruments is not None:
            instruments.probes.add(1, {"fallover.alias": alias})

    # -- the end -----------------------------------------------------------------------

    def _metric_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.request.model": self._pool,
        }
        if self._provider is not None:
            attributes["gen_ai.provider.name"] = self._provider
        return attributes

    def answered(self, response: ChatResponse, attempt: AttemptRecorder | None = None) -> None:
        """The call succeeded with ``response``, given by ``attempt`` (None for a plain
        client's own call, which has no attempt span): every span ends."""
        if self._done:
            return
        self._done = True
        asked = self._asked
        if attempt is not None:
            attempt.end("ok")
            asked = attempt.asked
        self._end_open("cancelled")  # none is left: a hedge's loser has ended already
        elapsed = time.perf_counter() - self._started
        # A pool that answered is named by the member inside it that did.
        self._provider = asked or provider_name(response.alias)
        usage = response.usage
        span = self._span
        if span is not None:
            attributes: dict[str, Any] = {
                "gen_ai.provider.name": self._provider,
                "gen_ai.response.model": response.model,
                "fallover.alias": response.alias,
                "fallover.outcome": "ok",
                "fallover.attempts": self._attempts,
            }
            if response.finish_reason is not None:
                attributes["gen_ai.response.finish_reasons"] = [response.finish_reason]
            if usage is not None and self._measures is not None:
                attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
                attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
                attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
                attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
            if self._live.capture_content:
                attributes["gen_ai.output.messages"] = output_messages(response)
            span.set_attributes(attributes)
            span.end()
        measures = self._measures
        if measures is not None:
            metric = self._metric_attributes()
            metric["gen_ai.response.model"] = response.model
            measures.duration.record(elapsed, metric)
            if usage is not None:
                measures.tokens.record(usage.input_tokens, {**metric, "gen_ai.token.type": "input"})
                measures.tokens.record(
                    usage.output_tokens, {**metric, "gen_ai.token.type": "output"}
                )

    def _end_open(self, outcome: str, exc: BaseException | None = None) -> None:
        for attempt in list(self._open):
            attempt.end(outcome, exc)

    def ended(self, exc: BaseException) -> None:
        """The call ended with ``exc`` (raised to the caller): every span ends.

        Cancellation (and a stream closed by its consumer) is not a failure of
        the call: its spans end with outcome ``cancelled`` and no error, and no
        duration is recorded.
        """
        if self._done:
            return
        self._done = True
        cancelled = not isinstance(exc, Exception)
        outcome = "cancelled" if cancelled else "error"
        # The members running when the call's budget ran out did not fail: they were cut off.
        self._end_open("interrupted" if isinstance(exc, e.RoutingTimeout) else outcome, exc)
        span = self._span
        if span is not None:
            span.set_attribute("fallover.outcome", outcome)
            span.set_attribute("fallover.attempts", self._attempts)
            if self._provider is not None:
                span.set_attribute("gen_ai.provider.name", self._provider)
            if not cancelled:
                span.set_attribute("error.type", error_type(exc))
                span.set_status(Status(StatusCode.ERROR, _describe(exc)))
            span.end()
        measures = self._measures
        if measures is not None and not cancelled:
            metric = self._metric_attributes()
            metric["error.type"] = error_type(exc)
            measures.duration.record(time.perf_counter() - self._started, metric)


@final
class AttemptRecorder:
    """One attempt of a recorded call: its own span, ended with its own outcome.

    The attempt span is the current span only while its member runs (for
    ``complete``, while it is awaited; for a stream, during each ``step``,
    never while the consumer holds an event), and in the task that runs it,
    so HTTP spans and nested pools hang under the right attempt even when a
    hedge runs two at once.
    """

    __slots__ = ("_call", "_context", "_span", "asked")

    def __init__(self, call: CallRecorder, span: Span | None, asked: str | None) -> None:
        self._call = call
        self._span = span
        self._context = None if span is None else trace.set_span_in_context(span)
        self.asked = asked  # the member's own provider name, None for a pool

    def complete(
        self, complete: Callable[[ChatRequest], Awaitable[ChatResponse]], request: ChatRequest
    ) -> Coroutine[Any, Any, ChatResponse]:
        """``complete(request)``, called now (a member reads its pool settings when called)
        and awaited with this attempt current."""
        inside = INSIDE.set(True)
        try:
            answer = complete(request)
        finally:
            INSIDE.reset(inside)
        return self._current(answer)

    async def _current(self, answer: Awaitable[ChatResponse]) -> ChatResponse:
        inside = INSIDE.set(True)
        context = self._context
        token = None if context is None else otel_context.attach(context)
        try:
            return await answer
        finally:
            if token is not None:
                otel_context.detach(token)
            INSIDE.reset(inside)

    def ask(
        self, stream: Callable[..., AsyncIterator[StreamEvent]], request: ChatRequest
    ) -> AsyncIterator[StreamEvent]:
        """``stream(request, on_interrupt="error")``, called as this attempt.

        A member decides when it is called whether it is asked by a recorded
        call (a plain client records its own call only when it is not).
        """
        inside = INSIDE.set(True)
        try:
            return stream(request, on_interrupt="error")
        finally:
            INSIDE.reset(inside)

    async def step(self, events: AsyncIterator[StreamEvent]) -> StreamEvent:
        """The member's next stream event, awaited with this attempt as the current span."""
        inside = INSIDE.set(True)
        context = self._context
        token = None if context is None else otel_context.attach(context)
        try:
            return await anext(events)
        finally:
            if token is not None:
                otel_context.detach(token)
            INSIDE.reset(inside)

    def failed(self, exc: BaseException) -> None:
        """The attempt failed with ``exc``."""
        self.end("error", exc)

    def end(self, outcome: str, exc: BaseException | None = None) -> None:
        """End the attempt with ``outcome``: ``ok``, ``error`` (with ``exc``), ``cancelled``
        (the caller stopped, or another member won the hedge) or ``interrupted``."""
        call = self._call
        if self not in call._open:
            return  # ended already
        call._open.remove(self)
        span = self._span
        if span is None:
            return
        span.set_attribute("fallover.outcome", outcome)
        if exc is not None and outcome == "error":
            # A member's own interrupted stream is reported by what interrupted it.
            cause = exc.error if isinstance(exc, e.StreamInterrupted) else exc
            span.set_attribute("error.type", error_type(cause))
            span.set_status(Status(StatusCode.ERROR, _describe(cause)))
        span.end()
