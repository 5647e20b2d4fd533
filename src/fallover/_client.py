"""The LLMClient protocol: what a pool needs of a member, and what every client offers.

This module imports no HTTP machinery, so routing code and user-written
clients depend on the shape alone. It also carries the one seam through which a
pool tells a member how to behave inside it (``pooled``): a member inside a
pool fails fast instead of retrying, but building a pool never changes the
member itself; the setting is read when the pool makes the call.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Literal, Protocol, Self, final, runtime_checkable

import msgspec

from . import _defaults
from ._types import ChatRequest, ChatResponse, StreamEvent

__all__ = ["LLMClient", "OnInterrupt", "PoolSettings", "aclose_all", "current_pool", "pooled"]

OnInterrupt = Literal["error", "restart"]


@runtime_checkable
class LLMClient(Protocol):
    """What the router needs of a member, and what every fallover client offers."""

    @property
    def alias(self) -> str:
        """``provider/model`` (or the pool's name), used in attempts and errors."""
        ...

    @property
    def context_window(self) -> int | None:
        """Declared context window in tokens, or None when unknown."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """What requests this client can take: a subset of tools, vision, json_schema, reasoning."""
        ...

    def unfit(self, request: ChatRequest) -> str | None:
        """Why this client cannot take ``request`` faithfully (a pool skips it), or None."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Return the whole answer."""
        ...

    def stream(
        self, request: ChatRequest, *, on_interrupt: OnInterrupt = "error"
    ) -> AsyncIterator[StreamEvent]:
        """Yield the answer as it arrives, ending with ``Completed``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class PoolSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How a pool asks its members to behave for one call.

    A member's explicit settings win over these; these win over the member's
    standalone defaults.
    """

    max_retries: int = _defaults.POOLED_MAX_RETRIES
    max_retry_wait: float | None = None
    # Called with (alias, response headers) for every response the member gets:
    # how a pool reads the providers' rate-limit headers (docs/routing.md, "Pacing").
    on_headers: Callable[[str, Mapping[str, str]], None] | None = None


_POOL: contextvars.ContextVar[PoolSettings | None] = contextvars.ContextVar(
    "fallover_pool", default=None
)


def current_pool() -> PoolSettings | None:
    """The settings of the pool making the current call, or None for a direct call.

    A client reads this synchronously when ``complete()`` or ``stream()`` is
    called (not later, when a stream is iterated), so a pool scopes it to the call.
    """
    return _POOL.get()


@final
class pooled:
    """Make calls started inside this block calls from a pool with ``settings``.

    A class rather than a generator-based context manager: the router enters one
    per attempt, and this costs a third as much.
    """

    __slots__ = ("_settings", "_token")

    def __init__(self, settings: PoolSettings) -> None:
        self._settings = settings

    def __enter__(self) -> None:
        self._token = _POOL.set(self._settings)

    def __exit__(self, *exc_info: object) -> None:
        _POOL.reset(self._token)


async def aclose_all(closers: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Call every closer, even when one fails; then raise the first failure."""
    failure: Exception | None = None
    for close in closers:
        try:
            await close()
        except Exception as exc:  # the rest must still be closed
            failure = failure or exc
    if failure is not None:
        raise failure
