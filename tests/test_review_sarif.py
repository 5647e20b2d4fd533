"""SARIF 2.1.0 from review results, checked against the official schema in tests/data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import fallover
from fallover._review import Change, FileReview, Finding, sarif_log

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())


def validate(log: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)


def reviewed(path: str, *findings: Finding) -> FileReview:
    change = Change(path=path, uri=path, status="added", text="a\nb\nc\n")
    answer = fallover.ChatResponse(text="{}", model="m", alias="p/m")
    return FileReview(change=change, findings=findings, response=answer)


def finding(path: str, **over: Any) -> Finding:
    fields: dict[str, Any] = {
        "path": path,
        "line": 2,
        "end_line": 3,
        "severity": "error",
        "category": "security",
        "title": "Title",
        "body": "Body.",
    }
    return Finding(**{**fields, **over})


def test_a_result_per_finding_located_by_a_relative_uri() -> None:
    """Each finding is a result with its rule, level, URI and line region."""
    path = "src/my file ü.py"
    log = sarif_log([reviewed(path, finding(path), finding(path, end_line=None, severity="note"))])
    validate(log)
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    first, second = run["results"]
    assert rules[first["ruleIndex"]]["id"] == first["ruleId"] == "fallover/security"
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "src/my%20file%20%C3%BC.py"
    assert location["region"] == {"startLine": 2, "endLine": 3}
    assert (first["level"], second["level"]) == ("error", "note")
    assert "endLine" not in second["locations"][0]["physicalLocation"]["region"]
    assert first["message"]["text"] == "Title\n\nBody."


def test_one_rule_per_category() -> None:
    """The driver declares a rule for every finding category, whether used or not."""
    log = sarif_log([])
    validate(log)
    ids = [r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]]
    assert ids == [
        f"fallover/{c}"
        for c in ("bug", "security", "performance", "reliability", "maintainability", "style")
    ]


@pytest.mark.parametrize("complete", [True, False])
def test_an_interrupted_run_is_not_successful(complete: bool) -> None:
    """A run cut short by Ctrl-C says so in its invocation."""
    log = sarif_log([reviewed("a.py")], complete=complete)
    validate(log)
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is complete
