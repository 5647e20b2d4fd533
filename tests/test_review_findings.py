"""The check on a reviewer's answer: JSON, the schema, the file sent, lines that exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fallover._review import FINDINGS_SCHEMA, Change, collect_files, parse_findings
from fallover._review._findings import MalformedFindings


def change(tmp_path: Path) -> Change:
    (tmp_path / "a.py").write_text("one\ntwo\nthree\n")
    (c,), _ = collect_files(["a.py"], cwd=tmp_path)
    return c


def finding(**over: Any) -> dict[str, Any]:
    base = {
        "path": "a.py",
        "line": 1,
        "end_line": None,
        "severity": "warning",
        "category": "bug",
        "title": "A problem",
        "body": "Why.",
    }
    return {**base, **over}


def answer(*findings: dict[str, Any]) -> str:
    return json.dumps({"findings": list(findings)})


def test_the_schema_is_a_valid_json_schema_that_accepts_findings() -> None:
    """FINDINGS_SCHEMA is valid JSON Schema and accepts a well-formed answer."""
    jsonschema.Draft202012Validator.check_schema(dict(FINDINGS_SCHEMA.schema))
    jsonschema.validate(json.loads(answer(finding())), dict(FINDINGS_SCHEMA.schema))


def test_findings_come_back_in_line_order(tmp_path: Path) -> None:
    """Findings are ordered by line, then severity."""
    got = parse_findings(
        answer(
            finding(line=3), finding(line=1, severity="note"), finding(line=1, severity="error")
        ),
        change(tmp_path),
    )
    assert [(f.line, f.severity) for f in got] == [(1, "error"), (1, "note"), (3, "warning")]


def test_a_fenced_answer_is_accepted(tmp_path: Path) -> None:
    """JSON inside a fenced block, even with words around it (a habit without a schema), is read."""
    text = "Here you go:\n```json\n" + answer(finding(path="./a.py", end_line=2)) + "\n```\nBye."
    (f,) = parse_findings(text, change(tmp_path))
    assert (f.path, f.line, f.end_line) == ("a.py", 1, 2)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the reply is empty"),
        ("Looks good to me.", "the reply is not JSON"),
        (
            '{"issues": []}',
            "does not match the findings schema: Object missing required field `findings`",
        ),
        (answer(finding(severity="critical")), "at `$.findings[0].severity`"),
        (answer(finding(category="vibes")), "at `$.findings[0].category`"),
        (answer(finding(line="1")), "at `$.findings[0].line`"),
        (answer(finding(path="b.py")), "findings[0].path 'b.py' is not the file sent"),
        (answer(finding(line=0)), "findings[0].line 0 is not a line of the file (1..3)"),
        (answer(finding(line=4)), "findings[0].line 4 is not a line of the file (1..3)"),
        (answer(finding(line=2, end_line=1)), "findings[0].end_line 1 is not between line 2 and 3"),
        (answer(finding(title=" ")), "findings[0].title is empty"),
    ],
)
def test_malformed_answers_are_refused_with_the_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    """Each kind of bad answer is refused, naming what is wrong and where."""
    with pytest.raises(MalformedFindings) as caught:
        parse_findings(text, change(tmp_path))
    assert reason in str(caught.value)
