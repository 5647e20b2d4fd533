"""The walk of one call: which member to ask next, what to record, what to park.

The router asks ``Walk.next_member()`` for a member, starts an attempt
(``start``), makes the call, and reports the outcome (``answered``/``failed``,
or ``lost_race`` for a hedge's loser). The walk decides everything in
between (docs/architecture.md, "Routing"):

- live members in policy order; a member that cannot take the request
  (``unfit``, or a context window no larger than one that refused) is skipped
  with the reason in ``attempts``;
- parked members are set aside, summarised in one ``Attempt``, and never tried
  while parked; a half-open member is asked only by the call that wins its probe;
- a member at its rate limit (``_pacing.py``) is passed over for the next;
- when no fitting member is live, the call waits for the soonest park to run
  out, or the soonest capacity to come back, if that is within its budget,
  then probes it (or follows another call's probe); otherwise it raises
  ``AllModelsFailed`` at once, having sent nothing. Parks for
  ``MemberUnusable`` errors are not waited for;
- a success clears a park, and a failure lengthens one, only when its attempt
  began after the park was set.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from types import MappingProxyType
from typing import TYPE_CHECKING

import msgspec

from .. import _errors as e
from .. import _otel
from .._classify import Verdict, verdict
from .._client import LLMClient
from .._types import Attempt, ChatRequest, ChatResponse
from ._pacing import estimate_tokens
from ._store import CooldownStore, ParkKind

if TYPE_CHECKING:
    from .._otel._record import AttemptRecorder, CallRecorder
    from ._router import AsyncRouter

__all__ = ["Try", "View", "Walk"]

log = logging.getLogger("fallover")

_BEFORE_ANY_PARK = -math.inf  # an attempt begun when nothing was parked predates every park
_NONE: AbstractSet[str] = frozenset()
_NO_REASONS: Mapping[str, str] = MappingProxyType({})
_NO_WAITS: Mapping[str, float] = MappingProxyType({})


class View:
    """The pool split into live and parked members, valid while the store is unchanged.

    Computing it costs one store read per member; a pool of a thousand with
    most of them parked reuses it across calls until a park changes or the
    soonest one runs out.
    """

    __slots__ = ("expires", "live", "parked", "summary", "version")

    def __init__(self, members: Sequence[LLMClient], store: CooldownStore) -> None:
        live: list[LLMClient] = []
        parked: list[LLMClient] = []
        soonest = math.inf
        for m in members:
            left = store.remaining(m.alias)
            if left is None:
                live.append(m)
            else:
                parked.append(m)
                soonest = min(soonest, left)
        self.live = tuple(live)
        self.parked = tuple(parked)
        self.expires = store.now() + soonest
        self.version = store.version
        summary = ", ".join(m.alias for m in parked[:3])
        if len(parked) > 3:
            summary += f" and {len(parked) - 3} more"
        self.summary = summary

    def fresh(self, store: CooldownStore) -> bool:
        """True while no park has changed or run out since the view was made."""
        return store.version == self.version and store.now() < self.expires


class Try:
    """One attempt: a member being asked, when it began, when its first event came."""

    __slots__ = ("first_event", "member", "perf", "rec", "started")

    def __init__(self, member: LLMClient, started: float) -> None:
        self.member = member
        self.rec: AttemptRecorder | None = None  # its telemetry, when the call is recorded
        self.started = started  # on the store's clock; before every park if none was set
        self.perf = time.perf_counter()
        self.first_event: float | None = None

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.perf, 6)


class Walk:
    """The state of one routed call: what was tried, what was skipped, probes held."""

    __slots__ = (
        "_deadline",
        "_following",
        "_order",
        "_paced",
        "_pacer",
        "_policy",
        "_pos",
        "_probes",
        "_running",
        "_spent",
        "_store",
        "_tokens",
        "_unfit",
        "attempts",
        "context_floor",
        "rec",
        "request",
        "router",
    )

    def __init__(
        self, router: AsyncRouter, request: ChatRequest, rec: CallRecorder | None = None
    ) -> None:
        self.router = router
        self.request = request
        self.rec = rec  # the call's telemetry, None when nothing is recorded
        # The router's parts every step asks for, read once per call.
        store = self._store = router.store
        self._policy = router.policy
        self._pacer = router.pacer
        budget = router.call_timeout
        # When the call's budget runs out, on the store's clock (parks are timed on it).
        self._deadline = None if budget is None else store.now() + budget
        # What a walk collects only when something goes wrong is immutable and replaced
        # on change: a healthy call allocates none of it.
        self._following: AbstractSet[str] = _NONE  # half-open members another call is probing
        self.attempts: list[Attempt] = []
        self.context_floor: int | None = None  # after ContextTooLong: only larger windows
        self._order: Sequence[LLMClient] = ()
        self._pos = -1  # -1: the order of the next pass is not computed yet
        self._probes: tuple[str, ...] = ()  # probes this call holds
        self._spent: AbstractSet[str] = _NONE  # tried in this call and not parked: never again
        self._unfit: Mapping[str, str] = _NO_REASONS  # skipped for good, with the reason
        self._running: list[Try] = []  # attempts under way (two while a hedge races)
        self._paced: Mapping[str, float] = _NO_WAITS  # at their rate limit in this pass: wait
        self._tokens = -1  # the request's estimated tokens, when a pacer needs them

    # -- choosing ------------------------------------------------------------------

    def _new_pass(self) -> None:
        router = self.router
        store = self._store
        self._following = _NONE
        self._paced = _NO_WAITS
        if not store.has_parks():
            live: Sequence[LLMClient] = router.members
        else:
            view = router.view()
            live = view.live
            if view.parked:
                soonest = max(view.expires - store.now(), 0.0)
                if len(view.parked) == 1:
                    alias, error = view.parked[0].alias, f"parked ({soonest:.1f}s left)"
                else:
                    alias = view.summary
                    error = f"{len(view.parked)} parked (soonest back in {soonest:.1f}s)"
                self.attempts.append(Attempt(alias=alias, outcome="skipped", error=error))
        self._order = self._policy.order(live)
        self._pos = 0

    async def next_member(self, *, wait: bool = True) -> LLMClient | None:
        """The next member to ask; waits when every fitting member is parked.

        Raises ``AllModelsFailed`` or ``Unsupported`` when there is none. With
        ``wait=False`` (a hedge) it returns None instead of waiting or raising.
        """
        store = self._store
        while True:
            if self._pos < 0:
                self._new_pass()
            order = self._order
            while self._pos < len(order):
                member = order[self._pos]
                self._pos += 1
                key = member.alias
                if key in self._spent or key in self._unfit:
                    continue
                if store.has_parks():
                    left = store.remaining(key)
                    if left is not None:  # parked since the pass began
                        error = f"parked ({left:.1f}s left)"
                        self.attempts.append(Attempt(alias=key, outcome="skipped", error=error))
                        continue
                    if store.half_open(key):
                        if not await store.begin_probe(key):
                            self._following = {*self._following, key}  # follow that probe
                            continue
                        self._probes = (*self._probes, key)
                        _otel.probed(self.rec, key)
                if not self._fits(member):
                    self._give_back(key)
                    continue
                pacer = self._pacer
                if pacer.limited(key):
                    if self._tokens < 0:
                        self._tokens = estimate_tokens(self.request)
                    capacity_in = pacer.wait(key, self._tokens)
                    if capacity_in > 0:
                        self._paced = {**self._paced, key: capacity_in}  # the next, or wait
                        self._give_back(key)
                        continue
                    pacer.take(key, self._tokens)
                return member
            if not wait:
                return None
            await self._wait_or_raise()

    def _fits(self, member: LLMClient) -> bool:
        reason = member.unfit(self.request)
        if reason is None:
            floor = self.context_floor
            if floor is None:
                return True
            window = member.context_window
            if window is not None and window > floor:
                return True
            reason = f"context window {window or 'unknown'} is not larger than {floor}"
        self._unfit = {**self._unfit, member.alias: reason}
        self.attempts.append(Attempt(alias=member.alias, outcome="skipped", error=reason))
        return False

    async def _wait_or_raise(self) -> None:
        """No member to ask in this pass: wait for one within the budget, or raise."""
        router = self.router
        store = self._store
        soonest = math.inf  # seconds until a waitable parked member may be probed
        following = False  # another call probes a member: its outcome may free this call
        retry_after: float | None = None
        any_fit = False
        for m in router.members:
            key = m.alias
            if key in self._unfit:
                continue
            if key not in self._spent and m.unfit(self.request) is not None:
                continue
            any_fit = True
            if key in self._spent:
                continue
            left = store.remaining(key)
            if left is not None:
                retry_after = left if retry_after is None else min(retry_after, left)
                if store.kind(key) != "long":  # a person has to act on a long park
                    soonest = min(soonest, left)
            elif key in self._paced:
                soonest = min(soonest, self._paced[key])  # capacity comes back
            elif store.half_open(key):
                if key in self._following:
                    following = True
                else:
                    soonest = 0.0  # its park ran out during this pass: look again at once
        if not any_fit:
            needs = ", ".join(sorted(self.request.needs)) or "this request"
            reasons = "; ".join(f"{k}: {r}" for k, r in self._unfit.items())
            raise e.Unsupported(f"no member can take {needs} ({reasons})", alias=router.alias)
        budget = math.inf if self._deadline is None else self._deadline - store.now()
        if soonest > budget and not (following and budget > 0):
            raise e.AllModelsFailed(self.attempts, retry_after=retry_after)
        # Wake when the soonest park runs out, or earlier when any park changes (a
        # probe's outcome); following a probe only, wait within the budget.
        await store.wait(min(soonest, budget, router.cooldown_max))
        self._pos = -1

    # -- outcomes ------------------------------------------------------------------

    def start(self, member: LLMClient) -> Try:
        """Note that ``member`` is being asked now."""
        store = self._store
        attempt = Try(member, store.now() if store.has_parks() else _BEFORE_ANY_PARK)
        self._running.append(attempt)
        policy = self._policy
        if policy.learns:
            policy.started(member)
        if self.rec is not None:
            attempt.rec = self.rec.attempt(member)
        return attempt

    def first_event(self, attempt: Try) -> None:
        """``attempt``'s member produced its first event (streams)."""
        if attempt.first_event is None:
            attempt.first_event = time.perf_counter() - attempt.perf
        if self.rec is not None:
            self.rec.first_event()

    def _settle(self, attempt: Try, *, ok: bool) -> None:
        if attempt in self._running:
            self._running.remove(attempt)
        policy = self._policy
        if policy.learns:
            if ok and attempt.first_event is None:
                attempt.first_event = time.perf_counter() - attempt.perf
            policy.finished(attempt.member, attempt.first_event if ok else None)

    def lost_race(self, attempt: Try) -> None:
        """A hedged attempt that another member beat to the first event: cancelled, not parked."""
        self._interrupted(attempt, "cancelled: the hedge answered first")
        self._give_back(attempt.member.alias)
        if attempt.rec is not None:
            attempt.rec.end("cancelled")

    def _interrupted(self, attempt: Try, why: str) -> None:
        """``attempt`` was stopped from outside, not failed: recorded, never parked."""
        self._settle(attempt, ok=False)
        self.attempts.append(
            Attempt(
                alias=attempt.member.alias, outcome="error", error=why, elapsed_s=attempt.elapsed()
            )
        )

    def _give_back(self, key: str) -> None:
        if key in self._probes:
            self._probes = tuple(k for k in self._probes if k != key)
            self._store.end_probe(key)

    def answered(self, attempt: Try, response: ChatResponse) -> ChatResponse:
        """Record the answer, clear the member's park if this is newer news."""
        key = attempt.member.alias
        self._settle(attempt, ok=True)
        store = self._store
        if store.has_parks() or store.streak(key):
            store.succeeded(key, started=attempt.started)
        if self._tokens >= 0:  # estimated only for a paced member
            self._pacer.settle(key, self._tokens, response.usage)
        if self._probes:
            self._give_back(key)
        if self.rec is not None:
            self.rec.answered(response, attempt.rec)
        if response.attempts and not self.attempts:
            return response  # a nested pool already told the whole story
        own = response.attempts or (
            Attempt(alias=response.alias, outcome="ok", elapsed_s=attempt.elapsed()),
        )
        return msgspec.structs.replace(response, attempts=(*self.attempts, *own))

    def failed(self, attempt: Try, exc: Exception, *, partial: str | None = None) -> None:
        """Record a failure and apply its verdict; raise when the verdict says so.

        ``partial`` is the text a stream already yielded when it must not restart.
        """
        member = attempt.member
        self._settle(attempt, ok=False)
        if attempt.rec is not None:
            attempt.rec.failed(exc)
        v = verdict(exc)
        cause = exc.error if isinstance(exc, e.StreamInterrupted) else exc
        # The attempt already names the member: keep the alias out of its error text.
        detail = cause.message if isinstance(cause, e.ProviderError) else str(cause)
        status = getattr(cause, "status", None)
        reason = f"{type(cause).__name__}: {detail}"
        self.attempts.append(
            Attempt(
                alias=member.alias,
                outcome="error",
                error=reason,
                status=status if isinstance(status, int) else None,
                elapsed_s=attempt.elapsed(),
            )
        )
        if not isinstance(exc, e.FalloverError):
            log.warning(
                "%s raised %s; falling over", member.alias, type(exc).__name__, exc_info=exc
            )
        self._park(attempt, exc, v, reason)
        if v.action == "raise":
            raise exc
        if v.action == "larger_context":
            window = member.context_window or 0
            self.context_floor = max(self.context_floor or 0, window)
            if not any(
                m.context_window is not None and m.context_window > self.context_floor
                for m in self.router.members
            ):
                raise exc
        if partial is not None:
            if isinstance(exc, e.StreamInterrupted):
                raise exc
            raise e.StreamInterrupted(
                f"{member.alias}: stream failed after text: {exc}", partial_text=partial, error=exc
            ) from exc
        _otel.fell_over(self.rec, member.alias, cause, reason)

    def _park(self, attempt: Try, exc: Exception, v: Verdict, reason: str) -> None:
        key = attempt.member.alias
        self._give_back(key)
        if v.park == "none":
            self._spent = {*self._spent, key}
            return
        store = self._store
        retry_after = getattr(exc, "retry_after", None)
        server = float(retry_after) if isinstance(retry_after, int | float) else 0.0
        kind: ParkKind = "long" if v.park == "long" else "backoff"
        set_at = store.parked_at(key)
        if set_at is not None and attempt.started < set_at:
            # Old news: a park set after this attempt began already stands. Honour a
            # longer server delay, but the failure does not count towards the backoff.
            seconds = max(self.router.park_length(key, kind) if kind == "long" else 0.0, server)
            if seconds > 0:
                store.park(key, seconds, kind=kind, count=False)
            return
        seconds = max(self.router.park_length(key, kind), server)
        left = store.park(key, seconds, kind=kind)
        _otel.parked(self.rec, key, left, exc, reason)

    def out_of_budget(self) -> None:
        """Record the members interrupted by the call budget (they are not parked)."""
        for attempt in list(self._running):
            self._interrupted(attempt, "interrupted: call_timeout ran out")

    def ended(self, exc: BaseException) -> None:
        """The call raised ``exc`` to its caller, or was cancelled."""
        if self.rec is not None:
            self.rec.ended(exc)

    def close(self) -> None:
        """Give back probes that were taken but not settled (the call ended or was cancelled)."""
        if self._running:
            for attempt in list(self._running):
                self._settle(attempt, ok=False)
        if self._probes:
            store = self._store
            for key in self._probes:
                store.end_probe(key)
            self._probes = ()
