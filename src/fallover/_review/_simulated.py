"""The simulator's reviewer: deterministic, plausible findings for the lines it was sent.

``findings_answer`` reads a review request as ``_prompt.py`` writes it, picks out
the lines under review (the added lines of a diff, or every line of a whole
file) and flags what a quick human pass would: unresolved TODOs, swallowed
exceptions, ``eval``, hard-coded secrets, leftover prints, very long lines. It
answers with the findings JSON, so the embedded review shows what a real one
looks like without a provider.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .._types import ChatRequest
from ._prompt import FILE_HEADER

__all__ = ["findings_answer"]

_MAX_FINDINGS = 5
_ROW = re.compile(r"^ *(\d+) ([+|]) (.*)$")
_FENCE = re.compile(r"^`{3,}$")


def _todo(path: str, code: str) -> tuple[str, str, str, str] | None:
    m = re.search(r"\b(TODO|FIXME|XXX)\b", code)
    if not m:
        return None
    return (
        "note",
        "maintainability",
        f"Unresolved {m.group(1)} marker",
        "This line leaves work for later. Resolve it before merging, or link an issue "
        "so it is not forgotten. (simulated review)",
    )


def _bare_except(path: str, code: str) -> tuple[str, str, str, str] | None:
    if not re.match(r"\s*except\s*(Exception\s*)?:\s*(pass)?\s*(#.*)?$", code):
        return None
    return (
        "warning",
        "reliability",
        "Exception handler swallows every error",
        "Catching everything hides real failures, including bugs. Catch the specific "
        "exceptions this code expects and let the rest propagate. (simulated review)",
    )


def _eval(path: str, code: str) -> tuple[str, str, str, str] | None:
    if not re.search(r"\b(eval|exec)\(", code):
        return None
    return (
        "error",
        "security",
        "Code built from data is executed",
        "eval/exec run arbitrary code; if any part of the input comes from outside, "
        "this is a code-injection hole. Parse the data instead. (simulated review)",
    )


def _secret(path: str, code: str) -> tuple[str, str, str, str] | None:
    if not re.search(r"(?i)(password|secret|api_key|token)\s*[:=]\s*['\"][^'\"]{4,}['\"]", code):
        return None
    return (
        "error",
        "security",
        "Credential written in the source",
        "A secret in the code ends up in every clone and log. Read it from the "
        "environment or a secret store. (simulated review)",
    )


def _print(path: str, code: str) -> tuple[str, str, str, str] | None:
    if not path.endswith(".py") or not re.match(r"\s*print\(", code):
        return None
    return (
        "note",
        "style",
        "Leftover print call",
        "Output written with print() is easy to lose and hard to silence; use the "
        "logging module, or remove it if it was for debugging. (simulated review)",
    )


def _long(path: str, code: str) -> tuple[str, str, str, str] | None:
    if len(code) <= 100:
        return None
    return (
        "note",
        "style",
        f"Line of {len(code)} characters",
        "Long lines are hard to read side by side in a review; wrap it. (simulated review)",
    )


_CHECKS = (_eval, _secret, _bare_except, _todo, _print, _long)


def _user_text(request: ChatRequest) -> str | None:
    for message in reversed(request.messages):
        if message.role == "user":
            return message.text
    return None


def _rows(text: str) -> list[tuple[int, str]]:
    """``(line number, code)`` for each line under review in the fenced block."""
    rows: list[tuple[int, str]] = []
    inside = False
    for raw in text.splitlines():
        if _FENCE.match(raw):
            if inside:
                break
            inside = True
            continue
        match = _ROW.match(raw) if inside else None
        if match:
            rows.append((int(match.group(1)), match.group(3)))
    return rows


def findings_answer(request: ChatRequest) -> str | None:
    """The findings JSON for a review request, or None when ``request`` is not one."""
    text = _user_text(request)
    if text is None or not text.startswith(FILE_HEADER):
        return None
    path = text[len(FILE_HEADER) :].split("\n", 1)[0]
    findings: list[dict[str, Any]] = []
    for number, code in _rows(text):
        for check in _CHECKS:
            hit = check(path, code)
            if hit is None:
                continue
            severity, category, title, body = hit
            findings.append(
                {
                    "path": path,
                    "line": number,
                    "end_line": None,
                    "severity": severity,
                    "category": category,
                    "title": title,
                    "body": body,
                }
            )
            break  # one finding per line reads like a person, not a linter
        if len(findings) == _MAX_FINDINGS:
            break
    return json.dumps({"findings": findings})
