"""The review pages stay in step with the command: every option documented in both languages."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def options() -> set[str]:
    """The long options `fallover review --help` lists."""
    done = subprocess.run(
        [sys.executable, "-m", "fallover._cli", "review", "--help"],
        capture_output=True,
        check=True,
        text=True,
    )
    return set(re.findall(r"(--[a-z][a-z-]+)", done.stdout)) - {"--help"}


@pytest.mark.parametrize("page", ["review.md", "zh-CN/review.md"])
def test_every_review_option_is_documented(page: str) -> None:
    """Each option of `fallover review` has a row in the review page's option table."""
    first_cells = re.findall(r"^\| (.*?) \| ", (DOCS / page).read_text("utf-8"), re.MULTILINE)
    documented = {opt for cell in first_cells for opt in re.findall(r"`(--[a-z-]+)", cell)}
    found = options()
    assert {"--diff", "--format", "--pool", "--verbose"} <= found
    assert found - documented == set(), f"undocumented in {page}"
