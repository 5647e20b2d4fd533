"""The Python examples of the tools and reasoning pages (both languages) run on the simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples(page: str) -> list[str]:
    blocks = BLOCK.findall((DOCS / page).read_text("utf-8"))
    assert blocks, f"no python example in docs/{page}"
    return blocks


@pytest.mark.parametrize(
    "page",
    [
        "tools.md",
        "zh-CN/tools.md",
        pytest.param("reasoning.md", marks=pytest.mark.slow),
        pytest.param("zh-CN/reasoning.md", marks=pytest.mark.slow),
    ],
)
def test_page_examples_run(page: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each example of the page runs to its end and prints the answer."""
    for block in examples(page):
        exec(compile(block, f"docs/{page}", "exec"), {"__name__": "__docs__"})
        assert capsys.readouterr().out.strip(), f"docs/{page}: the example printed nothing"
