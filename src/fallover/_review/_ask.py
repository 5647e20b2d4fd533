"""How one file is asked of the pool: with the findings schema when every member takes it.

The fallback for members without ``json_schema`` is decided per request, so it
works for a single client and for a pool alike (docs/review.md, "Members without
structured output"):

- The structured request (``response_format=FINDINGS_SCHEMA``) is sent when every
  member can take it: a plain client that declares ``json_schema``, or a pool
  whose members all do (nested pools are looked into).
- Otherwise the plain request is sent: the same messages, which spell out the
  JSON in words, with no ``response_format``. A pool skips members that cannot
  take a request, and waits for its parked members that can: a schema request in
  a mixed pool would leave the other members idle while the schema-capable ones
  are down, so a mixed pool is asked in words and falls over as usual.

Whichever request got the answer, it is checked by the same ``parse_findings``.
"""

from __future__ import annotations

import time

import msgspec

from .._client import LLMClient
from .._errors import AllModelsFailed, ProviderError, RoutingTimeout
from .._routing import AsyncRouter
from .._types import Attempt, ChatRequest
from ._change import Change
from ._findings import MalformedFindings, parse_findings
from ._outcome import FileReview
from ._prompt import review_request

__all__ = ["ask", "takes_schema"]


def takes_schema(client: LLMClient, request: ChatRequest) -> bool:
    """True when every member ``client`` may route ``request`` to can take it as it is."""
    if isinstance(client, AsyncRouter):
        return all(takes_schema(m, request) for m in client.members)
    return client.unfit(request) is None


def _attempts(exc: Exception) -> tuple[Attempt, ...]:
    if isinstance(exc, AllModelsFailed | RoutingTimeout):
        return tuple(exc.attempts)
    if isinstance(exc, ProviderError):
        return (
            Attempt(alias=exc.alias or "?", outcome="error", error=str(exc), status=exc.status),
        )
    return ()


async def ask(client: LLMClient, change: Change, instruction: str) -> FileReview:
    """Review ``change`` through ``client``; a failure is returned, never raised."""
    start = time.perf_counter()
    structured = review_request(change, instruction, structured=True)
    if takes_schema(client, structured):
        request = structured
    else:
        request = msgspec.structs.replace(structured, response_format=None)
    try:
        response = await client.complete(request)
    except Exception as exc:  # one file's failure is reported, never fatal to the others
        return FileReview(
            change=change,
            findings=None,
            error=f"{type(exc).__name__}: {exc}",
            attempts=_attempts(exc),
            elapsed_s=round(time.perf_counter() - start, 4),
        )
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
            attempts=tuple(response.attempts),
            structured=request is structured,
            elapsed_s=elapsed,
        )
    return FileReview(
        change=change,
        findings=findings,
        response=response,
        attempts=tuple(response.attempts),
        structured=request is structured,
        elapsed_s=elapsed,
    )
