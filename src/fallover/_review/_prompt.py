"""What a reviewer is sent: the instruction, the output contract, and the lines to judge.

A file changed since a revision is sent as its hunks with surrounding context; a
whole file is sent in full. Either way every line carries its number in the new
version of the file, so findings can point at it. The user message starts with
``FILE_HEADER`` so a simulator (``_simulated.py``) can recognise a review.
"""

from __future__ import annotations

import re

from .._types import ChatRequest, JsonSchema, Message
from ._change import Change
from ._findings import CATEGORIES, FINDINGS_SCHEMA, SEVERITIES

__all__ = ["DEFAULT_PROMPT", "FILE_HEADER", "review_request"]

DEFAULT_PROMPT = (
    "You are a careful senior engineer reviewing one file of a change. Point out bugs, "
    "security problems, risky constructs and unclear code. Be brief and specific; report "
    "nothing when the code looks fine."
)
FILE_HEADER = "File under review: "

_CONTRACT = (
    "Answer with one JSON object and nothing else: "
    '{{"findings": [...]}}, an empty list when you find nothing. Each finding has: '
    '"path" (the file under review, exactly as given), '
    '"line" (the first line of the problem, numbered as shown), '
    '"end_line" (its last line, or null), '
    '"severity" ({severities}: error for a bug or vulnerability that must be fixed, '
    "warning for risky code, note for a suggestion), "
    '"category" ({categories}), '
    '"title" (the problem in one short line) and '
    '"body" (why it matters and how to fix it). {scope}'
)
_SCOPE_DIFF = "Report problems in the added or changed lines (+), using the rest as context."
_SCOPE_FILE = "Report problems anywhere in the file."


def _contract(change: Change) -> str:
    return _CONTRACT.format(
        severities=", ".join(SEVERITIES),
        categories=", ".join(CATEGORIES),
        scope=_SCOPE_FILE if change.status == "file" else _SCOPE_DIFF,
    )


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _describe(change: Change) -> str:
    if change.status == "file":
        return "Change: the whole file is under review."
    what = f"Change: {change.status} since {change.since}"
    if change.old_path:
        what += f" (was {change.old_path})"
    return what + "."


def _body(change: Change) -> tuple[str, str]:
    """The explanation of the numbered lines, and the lines themselves."""
    width = len(str(max(change.line_count, 1)))
    if change.status == "file":
        rows = [f"{n:>{width}} | {row}" for n, row in enumerate(change.text.splitlines(), 1)]
        return "Each line is its number, a bar, then the code.", "\n".join(rows)
    rows = []
    for hunk in change.hunks:
        rows.append(hunk.header)
        for line in hunk.lines:
            number = "" if line.number is None else str(line.number)
            rows.append(f"{number:>{width}} {line.mark} {line.text}")
    return (
        "The changed hunks follow with their context. Each line is its number in the new "
        "version (blank for a removed line), a mark (+ added, - removed, a space for "
        "unchanged), then the code.",
        "\n".join(rows),
    )


def review_request(change: Change, instruction: str, *, structured: bool) -> ChatRequest:
    """The request reviewing ``change``: held to the findings schema when ``structured``.

    Without the schema the same messages go out: they spell out the JSON in words,
    and the answer is checked the same way (docs/review.md, "Members without
    structured output").
    """
    explain, lines = _body(change)
    fence = _fence(lines)
    user = (
        f"{FILE_HEADER}{change.path}\n"
        f"{_describe(change)}\n"
        f"The new version has {change.line_count} lines.\n\n"
        f"{explain}\n\n"
        f"{fence}\n{lines}\n{fence}\n"
    )
    response_format: JsonSchema | None = FINDINGS_SCHEMA if structured else None
    return ChatRequest(
        messages=[
            Message(role="system", content=f"{instruction.strip()}\n\n{_contract(change)}"),
            Message(role="user", content=user),
        ],
        response_format=response_format,
    )
