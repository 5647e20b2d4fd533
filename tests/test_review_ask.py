"""How each file is asked: the findings schema when every member takes it, in words otherwise."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import fallover
from fallover._review import FINDINGS_SCHEMA, Change, FileReview, collect_files, review_all
from fallover.testing import MockClient

ALL = frozenset({"tools", "vision", "json_schema", "reasoning"})
NO_SCHEMA = ALL - {"json_schema"}


def scripted(
    handler: Callable[[fallover.ChatRequest], Awaitable[Any]],
    *,
    capabilities: frozenset[str] = ALL,
    alias: str = "test/member",
) -> MockClient:
    """A scripted member with chosen capabilities."""
    return MockClient(handler, alias=alias, capabilities=capabilities)


def one_file(tmp_path: Any) -> list[Change]:
    (tmp_path / "a.py").write_text("x = 1\ny = 2\n")
    changes, _ = collect_files([str(tmp_path / "a.py")], cwd=tmp_path)
    return changes


def finding(path: str, line: int = 1) -> str:
    return json.dumps(
        {
            "findings": [
                {
                    "path": path,
                    "line": line,
                    "end_line": None,
                    "severity": "note",
                    "category": "style",
                    "title": "t",
                    "body": "b",
                }
            ]
        }
    )


async def run(client: fallover.LLMClient, changes: list[Change]) -> list[FileReview]:
    done: dict[int, FileReview] = {}
    with anyio.fail_after(10):
        await review_all(
            client, changes, instruction="Review.", concurrency=4, on_done=done.__setitem__
        )
    return [done[i] for i in range(len(changes))]


async def test_a_member_with_json_schema_gets_the_schema(tmp_path: Any) -> None:
    """A client that takes json_schema is sent response_format=FINDINGS_SCHEMA."""
    changes = one_file(tmp_path)

    async def answer(request: fallover.ChatRequest) -> str:
        return finding(changes[0].path)

    member = scripted(answer)
    (result,) = await run(member, changes)
    assert result.ok and result.structured
    assert member.requests[0].response_format == FINDINGS_SCHEMA


async def test_a_member_without_json_schema_gets_the_plain_request(tmp_path: Any) -> None:
    """Without json_schema: the same messages, no response_format, the answer checked alike."""
    changes = one_file(tmp_path)

    async def answer(request: fallover.ChatRequest) -> str:
        return "```json\n" + finding(changes[0].path, line=2) + "\n```"

    member = scripted(answer, capabilities=NO_SCHEMA)
    (result,) = await run(member, changes)
    (request,) = member.requests
    assert request.response_format is None
    assert "Answer with one JSON object" in request.messages[0].text
    assert result.ok and not result.structured
    assert result.findings is not None and result.findings[0].line == 2


async def test_the_plain_answer_is_validated_the_same_way(tmp_path: Any) -> None:
    """A plain answer naming a line the file lacks is malformed, as a structured one would be."""
    changes = one_file(tmp_path)

    async def answer(request: fallover.ChatRequest) -> str:
        return finding(changes[0].path, line=3)

    (result,) = await run(scripted(answer, capabilities=NO_SCHEMA), changes)
    assert not result.ok
    assert result.error == "malformed findings: findings[0].line 3 is not a line of the file (1..2)"
    assert result.response is not None and '"line": 3' in result.response.text


async def test_a_reply_cut_off_at_the_token_limit_says_so(tmp_path: Any) -> None:
    """A truncated reply fails as malformed, and the error names the token limit."""
    changes = one_file(tmp_path)

    async def answer(request: fallover.ChatRequest) -> fallover.ChatResponse:
        text = finding(changes[0].path)[:30]
        return fallover.ChatResponse(text=text, model="m", alias="a", finish_reason="length")

    (result,) = await run(scripted(answer), changes)
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith(
        "malformed findings: the reply was cut off at the token limit; the reply is not JSON"
    )


async def test_a_pool_whose_members_all_take_the_schema_gets_it(tmp_path: Any) -> None:
    """A pool (nested pools included) of json_schema members is sent the schema."""
    changes = one_file(tmp_path)

    async def answer(request: fallover.ChatRequest) -> str:
        return finding(changes[0].path)

    first, second = scripted(answer, alias="t/first"), scripted(answer, alias="t/second")
    inner = fallover.AsyncRouter([second])
    async with fallover.AsyncRouter([first, inner]) as pool:
        (result,) = await run(pool, changes)
    assert result.ok and result.structured
    assert first.requests[0].response_format == FINDINGS_SCHEMA


async def test_a_mixed_pool_is_asked_in_words_and_falls_over(tmp_path: Any) -> None:
    """One member without json_schema: no schema for anyone, so a failure falls over to it."""
    changes = one_file(tmp_path)

    async def down(request: fallover.ChatRequest) -> str:
        raise fallover.ServerFailed("strong: 503", alias="strong", status=503)

    async def answer(request: fallover.ChatRequest) -> str:
        return finding(changes[0].path)

    strong = scripted(down, alias="t/strong")
    plain = scripted(answer, capabilities=NO_SCHEMA, alias="t/plain")
    async with fallover.AsyncRouter([strong, plain]) as pool:
        (result,) = await run(pool, changes)
    assert [r.response_format for r in strong.requests + plain.requests] == [None, None]
    assert result.ok and not result.structured
    assert [a.outcome for a in result.attempts] == ["error", "ok"]


async def test_concurrency_never_exceeds_the_limit(tmp_path: Any) -> None:
    """review_all keeps at most `concurrency` files in flight."""
    for n in range(10):
        (tmp_path / f"f{n}.py").write_text(f"n = {n}\n")
    changes, _ = collect_files([str(tmp_path)], cwd=tmp_path)
    in_flight = peak = 0

    async def answer(request: fallover.ChatRequest) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.wait_all_tasks_blocked()
        in_flight -= 1
        return '{"findings": []}'

    done: dict[int, FileReview] = {}
    with anyio.fail_after(10):
        await review_all(
            scripted(answer),
            changes,
            instruction="Review.",
            concurrency=3,
            on_done=done.__setitem__,
        )
    assert len(done) == 10 and all(r.ok for r in done.values())
    assert peak == 3
