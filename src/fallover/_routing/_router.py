"""AsyncRouter: one client over an ordered pool of clients.

The router holds the pool's configuration and the shared park store; the walk
of each call lives in ``_walk.py`` and the order in ``_policy.py``. Members are
never changed by the router: each member call runs inside ``pooled(...)``,
which tells the member how to behave in a pool for that call only
(docs/architecture.md, "Routing").
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Self, TypeVar, final

import anyio
import anyio.abc
import anyio.lowlevel

from .. import _defaults, _otel, _rules
from .. import _errors as e
from .._backoff import Backoff
from .._client import LLMClient, OnInterrupt, PoolSettings, aclose_all, pooled
from .._rules import POLICIES, Policy
from .._types import ChatRequest, ChatResponse, Completed, Restarted, StreamEvent, TextDelta
from ._budget import Alarm
from ._pacing import LeaseSource, Pace, Pacer, allowances, exhausted_for
from ._policy import Order, make_policy
from ._store import CooldownStore, MemoryCooldowns, ParkKind
from ._walk import Try, View, Walk

__all__ = ["POLICIES", "AsyncRouter"]

_T = TypeVar("_T")

log = logging.getLogger("fallover")


@final
class AsyncRouter:
    """Route each call over ``members``, falling over on failure, sharing parks across calls."""

    def __init__(
        self,
        members: Sequence[LLMClient],
        *,
        policy: Policy = _defaults.POLICY,
        call_timeout: float | None = _defaults.CALL_TIMEOUT,
        cooldown: float = _defaults.COOLDOWN,
        cooldown_max: float = _defaults.COOLDOWN_MAX,
        max_retry_wait: float = _defaults.MAX_RETRY_WAIT,
        store: CooldownStore | None = None,
        name: str | None = None,
        weights: Sequence[float] | None = None,
        limits: Mapping[str, Pace] | None = None,
        hedge_after: float = _defaults.HEDGE_AFTER,
        rng: random.Random | None = None,
    ) -> None:
        members = tuple(members)
        if not members:
            raise ValueError("AsyncRouter needs at least one member")
        for i, m in enumerate(members):
            if not isinstance(m, LLMClient):
                raise TypeError(f"members[{i}] is {type(m).__name__}, not an LLMClient")
        aliases = [m.alias for m in members]
        if len(set(aliases)) != len(aliases):
            dupes = sorted(a for a, n in collections.Counter(aliases).items() if n > 1)
            raise ValueError(f"duplicate members in the pool: {', '.join(dupes)}")
        _rules.check_policy(policy)
        _rules.check_cooldowns(cooldown, cooldown_max)
        _rules.check_positive("call_timeout", call_timeout)
        _rules.check_positive("max_retry_wait", max_retry_wait)
        if weights is not None:
            weights = tuple(weights)
            if len(weights) != len(members):
                raise ValueError(f"weights has {len(weights)} entries for {len(members)} members")
            for alias, w in zip(aliases, weights, strict=True):
                _rules.check_positive(f"the weight of {alias}", w)
        self._members = members
        self._policy_name = policy
        self._policy: Order = make_policy(policy, members, weights=weights, rng=rng)
        _rules.check_non_negative("hedge_after", hedge_after)
        self._hedge_after = hedge_after
        self._weights: tuple[float, ...] = tuple(weights or (_defaults.WEIGHT,) * len(members))
        self._call_timeout = call_timeout
        self._cooldown = cooldown
        self._cooldown_max = cooldown_max
        self._parks = Backoff(first=cooldown, cap=cooldown_max, jitter=False)
        self._pool = PoolSettings(
            max_retries=_defaults.POOLED_MAX_RETRIES,
            max_retry_wait=max_retry_wait,
            on_headers=self._read_headers,
        )
        self._store: CooldownStore = store if store is not None else MemoryCooldowns()
        limits = dict(limits or {})
        unknown = sorted(set(limits) - set(aliases))
        if unknown:
            raise ValueError(f"limits name no member of the pool: {', '.join(unknown)}")
        for alias, pace in limits.items():
            if not isinstance(pace, Pace):
                raise TypeError(f"limits[{alias!r}] is {type(pace).__name__}, not a fallover.Pace")
        self._limits: dict[str, Pace] = limits
        shared = self._store if isinstance(self._store, LeaseSource) else None
        self.pacer = Pacer(limits, clock=self._store.now, shared=shared)
        self._name = name or ",".join(aliases)
        self._view: View | None = None
        self._opened = False
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"AsyncRouter({[m.alias for m in self._members]!r}, policy={self._policy_name!r}, "
            f"call_timeout={self._call_timeout!r}, store={type(self._store).__name__})"
        )

    @property
    def alias(self) -> str:
        """The pool's name (``routing.name``, else its member aliases)."""
        return self._name

    @property
    def context_window(self) -> int | None:
        """The largest context window any member declares."""
        windows = [m.context_window for m in self._members if m.context_window is not None]
        return max(windows) if windows else None

    @property
    def capabilities(self) -> frozenset[str]:
        """What at least one member can take."""
        return frozenset().union(*(m.capabilities for m in self._members))

    def unfit(self, request: ChatRequest) -> str | None:
        """Why no member can take ``request``, or None when one can."""
        reasons = [m.unfit(request) for m in self._members]
        if all(reasons):
            return "; ".join(f"{m.alias}: {r}" for m, r in zip(self._members, reasons, strict=True))
        return None

    @property
    def members(self) -> tuple[LLMClient, ...]:
        """The pool, in configured order."""
        return self._members

    @property
    def store(self) -> CooldownStore:
        """Where parks live."""
        return self._store

    @property
    def policy(self) -> Order:
        """The order policy."""
        return self._policy

    @property
    def call_timeout(self) -> float | None:
        """The budget of one call, waits included."""
        return self._call_timeout

    @property
    def weights(self) -> tuple[float, ...]:
        """Each member's weight under the ``weighted`` policy, in member order."""
        return self._weights

    @property
    def limits(self) -> dict[str, Pace]:
        """Each paced member's requests and tokens per minute, by alias."""
        return dict(self._limits)

    @property
    def hedge_after(self) -> float:
        """Seconds without an answer before the next member is asked too (0: never)."""
        return self._hedge_after

    @property
    def cooldown_max(self) -> float:
        """The longest park the backoff reaches."""
        return self._cooldown_max

    def _read_headers(self, alias: str, headers: Mapping[str, str]) -> None:
        """A member's response headers: learn its limits; park it until its reset when they
        say nothing is left."""
        seen = allowances(headers)
        if not seen:
            return
        self.pacer.observe(alias, seen)
        seconds = exhausted_for(seen)
        if seconds is not None and seconds > 0:
            # Not a failure: the backoff streak is left alone.
            self._store.park(alias, seconds, count=False)
            log.info(
                "parked %s for %.1fs: its rate-limit headers say nothing is left", alias, seconds
            )

    def park_length(self, key: str, kind: ParkKind) -> float:
        """How long a failure of ``key`` parks it, before the server's Retry-After."""
        if kind == "long":
            return self._cooldown_max
        return self._parks.delay(self._store.streak(key))

    def view(self) -> View:
        """The pool split into live and parked members, reused while it is fresh."""
        view = self._view
        if view is None or not view.fresh(self._store):
            view = self._view = View(self._members, self._store)
        return view

    # -- calls -------------------------------------------------------------------

    def _begin(self, request: ChatRequest, *, stream: bool) -> Walk:
        if self._closed:
            raise RuntimeError(f"{self._name}: the router is closed")
        return Walk(self, request, _otel.TELEMETRY.call(self._name, request, stream=stream))

    async def _open(self) -> None:
        """Open the store on the first call (a Redis mirror loads its first view)."""
        if self._closed:
            raise RuntimeError(f"{self._name}: the router is closed")
        await self._store.open()
        self._opened = True

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Return the first answer the pool gives, falling over per the verdicts."""
        if not self._opened:
            await self._open()
        walk = self._begin(request, stream=False)
        try:
            if self._call_timeout is None:
                return await self._walk(walk, request)
            # asyncio.timeout rather than an anyio scope: cheaper per call, and on 3.11+
            # it nests correctly with the anyio scopes inside members.
            budget = asyncio.timeout(self._call_timeout)
            try:
                async with budget:
                    return await self._walk(walk, request)
            except TimeoutError:
                if not budget.expired():
                    raise
            walk.out_of_budget()
            raise e.RoutingTimeout(self._call_timeout, walk.attempts) from None
        except BaseException as exc:
            walk.ended(exc)
            raise
        finally:
            walk.close()

    async def _walk(self, walk: Walk, request: ChatRequest) -> ChatResponse:
        pool = self._pool
        hedge = self._hedge_after > 0
        while True:
            member = await walk.next_member()
            assert member is not None
            # A cancelled caller stops here, before the member is even asked.
            await anyio.lowlevel.checkpoint_if_cancelled()
            attempt = walk.start(member)
            if hedge:
                hedge = False  # never more than one hedge per call

                def ask(attempt: Try) -> Awaitable[ChatResponse]:
                    with pooled(pool):
                        if attempt.rec is None:
                            return attempt.member.complete(request)
                        return attempt.rec.complete(attempt.member.complete, request)

                won, _ = await self._race(walk, attempt, ask, walk.failed)
                if won is None:
                    continue
                return walk.answered(*won)
            try:
                with pooled(pool):
                    if attempt.rec is None:
                        response = await member.complete(request)
                    else:  # with telemetry on, the member runs under its attempt's span
                        response = await attempt.rec.complete(member.complete, request)
            except Exception as exc:
                walk.failed(attempt, exc)
                continue
            return walk.answered(attempt, response)

    async def _race(
        self,
        walk: Walk,
        first: Try,
        ask: Callable[[Try], Awaitable[_T]],
        failed: Callable[[Try, Exception], None],
    ) -> tuple[tuple[Try, _T] | None, list[Try]]:
        """Ask ``first``; if it has not answered within ``hedge_after``, ask the next live
        member too. The first answer wins; the other attempt is cancelled, not parked.

        ``ask(attempt)`` is made here (inside the pool's settings) and awaited in a task
        of its own; ``failed`` records an attempt that failed. Returns the winner and its
        answer (None when every attempt failed: the walk goes on) and the losers.
        """
        send, receive = anyio.create_memory_object_stream[tuple[Try, _T | Exception]](2)
        running: dict[Try, anyio.CancelScope] = {}

        async def run(
            attempt: Try,
            answer: Awaitable[_T],
            *,
            task_status: anyio.abc.TaskStatus[anyio.CancelScope],
        ) -> None:
            with anyio.CancelScope() as scope:
                task_status.started(scope)
                outcome: _T | Exception
                try:
                    outcome = await answer
                except Exception as exc:
                    outcome = exc
                send.send_nowait((attempt, outcome))

        won: tuple[Try, _T] | None = None
        raised: Exception | None = None
        with send, receive:
            async with anyio.create_task_group() as tg:
                running[first] = await tg.start(run, first, ask(first))
                done: tuple[Try, _T | Exception] | None = None
                with anyio.move_on_after(self._hedge_after):
                    done = await receive.receive()
                if done is None:
                    member = await walk.next_member(wait=False)
                    if member is not None:
                        second = walk.start(member)
                        running[second] = await tg.start(run, second, ask(second))
                    done = await receive.receive()
                while True:
                    attempt, outcome = done
                    del running[attempt]
                    if not isinstance(outcome, Exception):
                        won = (attempt, outcome)
                        break
                    try:
                        failed(attempt, outcome)
                    except Exception as exc:
                        raised = exc  # raised below, outside the task group, as it is
                        break
                    if not running:
                        break
                    done = await receive.receive()
                losers = list(running)
                for attempt, scope in running.items():
                    scope.cancel()
                    walk.lost_race(attempt)
        if raised is not None:
            raise raised
        return won, losers

    def _open_stream(self, attempt: Try, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """``attempt``'s stream, made inside the pool's settings (read when it is called)."""
        with pooled(self._pool):
            if attempt.rec is None:
                return attempt.member.stream(request, on_interrupt="error")
            return attempt.rec.ask(attempt.member.stream, request)

    async def _race_stream(
        self, walk: Walk, first: Try, request: ChatRequest
    ) -> tuple[Try, AsyncIterator[StreamEvent], StreamEvent] | None:
        """Hedge a stream: the first member to produce an event wins; the other stream is
        cancelled (in its own task, where it was started) and closed, not parked."""
        streams: dict[Try, AsyncIterator[StreamEvent]] = {}

        def ask(attempt: Try) -> Awaitable[StreamEvent]:
            events = streams[attempt] = self._open_stream(attempt, request)
            return self._first_event(attempt, events)

        def failed(attempt: Try, exc: Exception) -> None:
            walk.failed(attempt, exc)

        won, _ = await self._race(walk, first, ask, failed)
        for attempt in [a for a in streams if won is None or a is not won[0]]:
            await _aclose(streams.pop(attempt))  # the losers and the failed
        if won is None:
            return None
        attempt, event = won
        return attempt, streams[attempt], event

    @staticmethod
    async def _first_event(attempt: Try, events: AsyncIterator[StreamEvent]) -> StreamEvent:
        step = anext(events) if attempt.rec is None else attempt.rec.step(events)
        try:
            return await step
        except StopAsyncIteration:
            alias = attempt.member.alias
            raise e.ConnectionFailed("stream ended without Completed", alias=alias) from None

    async def stream(
        self, request: ChatRequest, *, on_interrupt: OnInterrupt = "error"
    ) -> AsyncIterator[StreamEvent]:
        """Stream from the first member that answers; see docs/streaming.md."""
        _rules.check_on_interrupt(on_interrupt)
        if not self._opened:
            await self._open()
        walk = self._begin(request, stream=True)
        budget = self._call_timeout
        alarm = None if budget is None else Alarm(asyncio.get_running_loop().time() + budget)
        hedge = self._hedge_after > 0
        try:
            while True:
                if alarm is not None:
                    if alarm.spent:
                        break
                    alarm.waiting = asyncio.current_task()
                try:
                    next_member = await walk.next_member()
                except asyncio.CancelledError:
                    if alarm is not None and alarm.settle():
                        break  # the call's budget ran out while waiting for a member
                    raise
                finally:
                    if alarm is not None:
                        alarm.waiting = None
                assert next_member is not None
                member = next_member
                await anyio.lowlevel.checkpoint_if_cancelled()
                attempt = walk.start(member)
                parts: list[str] = []
                yielded = False  # after the first event, a failure interrupts the stream
                events: AsyncIterator[StreamEvent] | None = None
                first: StreamEvent | None = None  # the hedge race's winning first event
                try:
                    if hedge:
                        hedge = False  # never more than one hedge per call
                        if alarm is not None:
                            alarm.waiting = asyncio.current_task()
                        try:
                            raced = await self._race_stream(walk, attempt, request)
                        finally:
                            if alarm is not None:
                                alarm.waiting = None
                        if raced is None:
                            continue  # every raced attempt failed before its first event
                        attempt, events, first = raced
                        member = attempt.member
                    else:
                        events = self._open_stream(attempt, request)
                    while True:
                        if first is not None:
                            event, first = first, None
                        else:
                            if alarm is not None and alarm.spent:
                                break
                            # With telemetry on, the member runs under its attempt's span.
                            rec = attempt.rec
                            step = anext(events) if rec is None else rec.step(events)
                            if alarm is None:
                                event = await step
                            else:
                                alarm.waiting = asyncio.current_task()
                                try:
                                    event = await step
                                finally:
                                    alarm.waiting = None
                        if isinstance(event, Completed):
                            yield Completed(response=walk.answered(attempt, event.response))
                            return
                        if isinstance(event, Restarted):
                            continue  # a member streams with "error": only a nested pool restarts
                        if isinstance(event, TextDelta):
                            parts.append(event.text)
                        if not yielded:
                            yielded = True
                            walk.first_event(attempt)
                        yield event
                except StopAsyncIteration:
                    walk.failed(
                        attempt,
                        e.ConnectionFailed("stream ended without Completed", alias=member.alias),
                    )
                    continue
                except asyncio.CancelledError:
                    if alarm is not None and alarm.settle():
                        break  # the call's budget ran out: not the member's fault, not parked
                    raise
                except Exception as exc:
                    if alarm is not None and alarm.settle():
                        break  # the member turned the budget's cancel into an error
                    interrupted = "".join(parts) if yielded and on_interrupt == "error" else None
                    walk.failed(attempt, exc, partial=interrupted)
                    if yielded:
                        cause = exc.error if isinstance(exc, e.StreamInterrupted) else exc
                        yield Restarted(alias=member.alias, reason=str(cause))
                    continue
                finally:
                    if events is not None:
                        await _aclose(events)
                break
            walk.out_of_budget()
            raise e.RoutingTimeout(budget or 0.0, walk.attempts)
        except BaseException as exc:
            walk.ended(exc)
            raise
        finally:
            if alarm is not None:
                alarm.close()
            walk.close()

    # -- lifecycle -----------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every member and the store, even when one of them fails to close."""
        self._closed = True
        await aclose_all([*(m.aclose for m in self._members), self._store.aclose])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _aclose(events: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
