"""How one file is asked of the pool: with the findings schema where a member takes it.

The fallback for members without ``json_schema`` is decided per request, so it
works for a single client and for a pool alike (docs/review.md, "Members without
structured output"):

1. The structured request (``response_format=FINDINGS_SCHEMA``) is sent when the
   client can take it: for a pool, when at least one member declares
   ``json_schema``; the pool skips the members that do not.
2. Otherwise the plain request is sent: the same messages, which spell out the
   JSON in words, with no ``response_format``, so every member can take it.
3. When the structured request fails on every member it was tried on and some
   member was skipped, the plain request is sent once more, so a file is not lost
   while the schema-capable members are down and others could answer.

Whichever request got the answer, it is checked by the same ``parse_findings``.
"""

from __future__ import annotations

import time

import msgspec

from .._client import LLMClient
from .._errors import AllModelsFailed, ProviderError, RoutingTimeout
from .._types import Attempt
from ._change import Change
from ._findings import MalformedFindings, parse_findings
from ._outcome import FileReview
from ._prompt import review_request

__all__ = ["ask"]


def _attempts(exc: Exception) -> tuple[Attempt, ...]:
    if isinstance(exc, AllModelsFailed | RoutingTimeout):
        return tuple(exc.attempts)
    if isinstance(exc, ProviderError):
        return (
            Attempt(alias=exc.alias or "?", outcome="error", error=str(exc), status=exc.status),
        )
    return ()


def _failed(
    change: Change, exc: Exception, earlier: tuple[Attempt, ...], start: float
) -> FileReview:
    return FileReview(
        change=change,
        findings=None,
        error=f"{type(exc).__name__}: {exc}",
        attempts=earlier + _attempts(exc),
        elapsed_s=round(time.perf_counter() - start, 4),
    )


async def ask(client: LLMClient, change: Change, instruction: str) -> FileReview:
    """Review ``change`` through ``client``; a failure is returned, never raised."""
    start = time.perf_counter()
    structured = review_request(change, instruction, structured=True)
    plain = msgspec.structs.replace(structured, response_format=None)
    request = structured if client.unfit(structured) is None else plain
    earlier: tuple[Attempt, ...] = ()
    try:
        try:
            response = await client.complete(request)
        except AllModelsFailed as exc:
            skipped = any(a.outcome == "skipped" for a in exc.attempts)
            if request is plain or not skipped:
                raise
            earlier, request = tuple(exc.attempts), plain
            response = await client.complete(request)
    except Exception as exc:  # one file's failure is reported, never fatal to the others
        return _failed(change, exc, earlier, start)
    attempts = earlier + tuple(response.attempts)
    elapsed = round(time.perf_counter() - start, 4)
    try:
        findings = parse_findings(response.text, change)
    except MalformedFindings as exc:
        if response.finish_reason == "length":
            exc = MalformedFindings(f"the reply was cut off at the token limit; {exc}")
        return FileReview(
            change=change,
            findings=None,
            response=response,
            error=f"malformed findings: {exc}",
            attempts=attempts,
            structured=request is structured,
            elapsed_s=elapsed,
        )
    return FileReview(
        change=change,
        findings=findings,
        response=response,
        attempts=attempts,
        structured=request is structured,
        elapsed_s=elapsed,
    )
