"""What the simulator does to each model: the scenario file's schema."""

# No `from __future__ import annotations`: msgspec resolves these annotations through
# `__module__`, which names the public package (`fallover.testing`).
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeAlias, TypeVar

import msgspec

from .._errors import ConfigError

__all__ = ["Fault", "Scenario", "load_scenario"]

NonNeg: TypeAlias = Annotated[float, msgspec.Meta(ge=0)]
Count: TypeAlias = Annotated[int, msgspec.Meta(ge=0)]
T = TypeVar("T")
Fraction: TypeAlias = Annotated[float, msgspec.Meta(ge=0, le=1)]
Positive: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]
Limit: TypeAlias = Annotated[int, msgspec.Meta(ge=1)]


class Fault(
    msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True, repr_omit_defaults=True
):
    """How one model misbehaves. Every field is off by default: a healthy model."""

    after: Count = 0  # the first N requests are healthy; the faults below start after them
    statuses: list[int] = []  # status per request in order (200 = answer); then healthy
    repeat: bool = False  # cycle `statuses` forever instead
    fail_rate: Fraction = 0.0  # after `statuses`: this share of requests fail with fail_status
    fail_status: int = 503
    down_for: NonNeg = 0.0  # fail with fail_status for this many seconds after start
    retry_after: NonNeg | None = None  # Retry-After (seconds) on failures
    retry_after_ms: Count | None = None  # retry-after-ms on failures
    error_type: str | None = None  # error.type/code in error bodies (default from status)
    html: bool = False  # error bodies as an HTML page
    latency: NonNeg = 0.0  # before response headers
    slow_rate: Fraction = 0.0  # this share of requests takes slow_latency instead (a heavy tail)
    slow_latency: NonNeg = 0.0
    hang: bool = False  # never send headers
    reset: bool = False  # drop the connection before headers
    truncate: bool = False  # send half a body, then drop
    first_token_delay: NonNeg = 0.0  # streams: headers to first text
    token_delay: NonNeg = 0.0  # streams: between chunks
    keepalive: NonNeg = 0.0  # streams: SSE comment every N s while delayed or stalled
    stream_cut_after: Count | None = None  # drop the stream after N text chunks
    stall_after: Count | None = None  # go silent after N text chunks
    malformed_after: Count | None = None  # send a broken chunk after N text chunks
    error_after: Count | None = None  # send an error event after N text chunks
    no_terminal: bool = False  # omit [DONE] / message_stop (finish_reason stays)
    no_finish: bool = False  # omit the finish_reason chunk / message_delta too
    refusal: str | None = None  # refuse with this text instead of answering
    content_filter: bool = False  # answer nothing: finish_reason content_filter
    # What a healthy answer looks like (kept during `after`: these describe the model).
    reply: str | None = None  # fixed answer text (default: a review of the prompt)
    model: str | None = None  # the model name to report (default: the requested one)
    context_window: Count | None = None  # prompts longer than this (in chars/4) get 400 context
    reasoning: str | None = None  # reasoning text streamed before the answer
    thinking: NonNeg = 0.0  # seconds of reasoning deltas before the answer
    thinking_interval: Positive = 0.25  # seconds between reasoning deltas while thinking
    call_tools: list[str] = []  # tools to call in one turn ("*": all); default: the first
    tool_arguments: dict[str, dict[str, Any]] = {}  # arguments per tool (default: from schema)
    tool_rounds: Count = 1  # tool-call turns before the text answer
    limit_requests: Limit | None = None  # requests per limit_window, as a provider's limiter
    limit_tokens: Limit | None = None  # input + output tokens per limit_window
    limit_window: Positive = 60.0  # seconds for a spent limit to refill

    def healthy(self) -> "Fault":
        """The same model without its faults: what `after` serves first."""
        return Fault(**{name: getattr(self, name) for name in _DESCRIBES_THE_MODEL})


_DESCRIBES_THE_MODEL = (
    "reply",
    "model",
    "context_window",
    "reasoning",
    "thinking",
    "thinking_interval",
    "call_tools",
    "tool_arguments",
    "tool_rounds",
    "limit_requests",
    "limit_tokens",
    "limit_window",
)


class Scenario(
    msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True, repr_omit_defaults=True
):
    """``[default]`` applies to models not listed under ``[models.NAME]``."""

    default: Fault = msgspec.field(default_factory=Fault)
    models: dict[str, Fault] = {}
    seed: int = 0

    def fault(self, model: str) -> Fault:
        """The fault for ``model``."""
        return self.models.get(model, self.default)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file; errors name the file and key."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read scenario: {exc.strerror}", path=str(p)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(p)) from exc
    models = data.get("models")
    if isinstance(models, dict):
        # One by one, so an error names the model (msgspec says "models[...]").
        for name, fault in models.items():
            _convert(fault, Fault, path=str(p), prefix=f"models.{name}")
    return _convert(data, Scenario, path=str(p), prefix="")


def _convert(data: object, kind: type[T], *, path: str, prefix: str) -> T:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        msg, _, at = str(exc).partition(" - at `$")
        key = ".".join(k for k in (prefix, at.rstrip("`").lstrip(".")) if k)
        unknown = re.match(r"Object contains unknown field `([^`]+)`", msg)
        if unknown:
            key = ".".join(k for k in (key, unknown.group(1)) if k)
            msg = f"unknown key {unknown.group(1)!r}"
        raise ConfigError(msg, path=path, key=key or None) from None
