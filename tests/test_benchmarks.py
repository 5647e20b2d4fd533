"""The benchmark suite's --quick mode completes every figure (timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_quick_benchmarks_complete(tmp_path: Path) -> None:
    """Every figure runs to the end, and the conduct goals (no lost calls) hold."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--no-peers",
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        timeout=580,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    figures = json.loads((tmp_path / "quick.json").read_text())["figures"]
    assert {"cost", "fallover", "stream", "scale", "cooldown", "cancel", "load", "redis"} <= set(
        figures
    )
    assert figures["cooldown"]["data"]["primary_calls_after_first_429"]["max"] == 0
    assert figures["load"]["data"]["errors"]["max"] == 0
    assert "skipped" not in figures["redis"]["data"]
