"""The simulator's reviewer: deterministic findings, only for the lines it was sent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import fallover
from fallover._review import (
    collect_diff,
    collect_files,
    findings_answer,
    parse_findings,
    review_request,
)

CODE = (
    "import os\n"
    "def load(text):\n"
    "    try:\n"
    "        return eval(text)  # TODO: parse\n"
    "    except:\n"
    "        pass\n"
    'password = "hunter2hunter2"\n'
    "print('done')\n"
)


def test_non_review_requests_get_none() -> None:
    """A request that is not a review is left to the simulator's other answers."""
    request = fallover.ChatRequest(messages=[fallover.Message(role="user", content="hi")])
    assert findings_answer(request) is None


def test_whole_file_findings_are_valid_and_deterministic(tmp_path: Path) -> None:
    """Each flagged line gets one finding that passes the same check real answers do."""
    (tmp_path / "a.py").write_text(CODE)
    (change,), _ = collect_files([str(tmp_path / "a.py")], cwd=tmp_path)
    request = review_request(change, "Review.", structured=True)
    answer = findings_answer(request)
    assert answer is not None and answer == findings_answer(request)
    found = [(f.line, f.severity, f.category) for f in parse_findings(answer, change)]
    assert found == [
        (4, "error", "security"),
        (5, "warning", "reliability"),
        (7, "error", "security"),
        (8, "note", "style"),
    ]


def test_only_added_lines_of_a_diff_are_flagged(tmp_path: Path) -> None:
    """Context lines are not judged: a TODO already there is not reported again."""
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1  # TODO old\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run(
        [*git, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "base"], check=True
    )
    (tmp_path / "a.py").write_text("x = 1  # TODO old\ny = 2  # FIXME new\n")
    (change,), _ = collect_diff("HEAD", [], cwd=tmp_path)
    answer = findings_answer(review_request(change, "Review.", structured=False))
    assert answer is not None
    assert [(f.line, f.title) for f in parse_findings(answer, change)] == [
        (2, "Unresolved FIXME marker")
    ]
