"""Findings: the JSON a reviewer answers with, its schema, and the check on return.

The same check runs whether the member was held to the schema by structured
output or only asked for JSON in the prompt (docs/review.md, "Members without
structured output"): a reply is accepted only when it parses and every finding
names the file it was sent and a line that exists in the new version of that file.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, TypeAlias

import msgspec

from .._types import JsonSchema
from ._change import Change

__all__ = [
    "CATEGORIES",
    "FINDINGS_SCHEMA",
    "SEVERITIES",
    "Finding",
    "MalformedFindings",
    "parse_findings",
]

Severity: TypeAlias = Literal["error", "warning", "note"]
Category: TypeAlias = Literal[
    "bug", "security", "performance", "reliability", "maintainability", "style"
]
# Most severe first; the values are SARIF's result levels.
SEVERITIES: tuple[str, ...] = ("error", "warning", "note")
CATEGORIES: dict[str, str] = {
    "bug": "Incorrect behaviour: wrong results, crashes, broken edge cases.",
    "security": "Vulnerabilities: injection, unsafe input handling, exposed secrets.",
    "performance": "Needless work: quadratic loops, repeated I/O, blocking calls.",
    "reliability": "Failure handling: swallowed errors, leaks, races, missing timeouts.",
    "maintainability": "Code that is hard to change: duplication, unclear names, dead code.",
    "style": "Readability and convention: formatting, naming, leftover debugging.",
}


class Finding(msgspec.Struct, kw_only=True, frozen=True):
    """One problem the reviewer found, located in the new version of the file."""

    path: str
    line: int
    end_line: int | None
    severity: Severity
    category: Category
    title: str
    body: str


class _Answer(msgspec.Struct, kw_only=True, frozen=True):
    findings: list[Finding]


def _schema() -> dict[str, Any]:
    # Written for strict structured output: every property required, no extras,
    # nullable as a type union, no numeric keywords some providers reject.
    finding = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path", "line", "end_line", "severity", "category", "title", "body"],
        "properties": {
            "path": {"type": "string", "description": "The file under review, as given."},
            "line": {
                "type": "integer",
                "description": "First line of the problem, numbered in the new version.",
            },
            "end_line": {
                "type": ["integer", "null"],
                "description": "Last line of the problem, or null for a single line.",
            },
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "title": {"type": "string", "description": "The problem, in one short line."},
            "body": {"type": "string", "description": "Why it matters and how to fix it."},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["findings"],
        "properties": {"findings": {"type": "array", "items": finding}},
    }


FINDINGS_SCHEMA = JsonSchema(
    name="review_findings",
    schema=_schema(),
    description="Problems found in one file of a change.",
)


class MalformedFindings(Exception):
    """A reply that is not the findings JSON for the file it was about."""


_FENCE = re.compile(r"^[ \t]*(`{3,})[^\n]*\n(.*?)\n[ \t]*\1[ \t]*$", re.DOTALL | re.MULTILINE)


def _json_text(text: str) -> str:
    """The JSON in a reply: bare, or in its first fenced block (a habit without a schema)."""
    match = _FENCE.search(text)
    return match.group(2) if match else text.strip()


def _norm(path: str) -> str:
    return path.strip().removeprefix("./")


def parse_findings(text: str, change: Change) -> tuple[Finding, ...]:
    """The findings in ``text`` for ``change``, in line order; MalformedFindings if not."""
    if not text.strip():
        raise MalformedFindings("the reply is empty")
    try:
        data = json.loads(_json_text(text))
    except ValueError as exc:
        raise MalformedFindings(f"the reply is not JSON ({exc})") from None
    try:
        answer = msgspec.convert(data, _Answer)
    except msgspec.ValidationError as exc:
        raise MalformedFindings(f"the reply does not match the findings schema: {exc}") from None
    last = change.line_count
    for i, f in enumerate(answer.findings):
        where = f"findings[{i}]"
        if _norm(f.path) not in (change.path, change.uri):
            raise MalformedFindings(f"{where}.path {f.path!r} is not the file sent")
        if not 1 <= f.line <= last:
            raise MalformedFindings(f"{where}.line {f.line} is not a line of the file (1..{last})")
        if f.end_line is not None and not f.line <= f.end_line <= last:
            raise MalformedFindings(
                f"{where}.end_line {f.end_line} is not between line {f.line} and {last}"
            )
        if not f.title.strip():
            raise MalformedFindings(f"{where}.title is empty")
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted(answer.findings, key=lambda f: (f.line, rank[f.severity]))
    return tuple(msgspec.structs.replace(f, path=change.path) for f in ordered)
