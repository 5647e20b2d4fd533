"""The benchmark suite's --quick mode completes every scenario (timings are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_quick_benchmarks_complete(tmp_path: Path) -> None:
    """Every figure runs to the end and reports its numbers."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    results = json.loads((tmp_path / "quick.json").read_text())
    assert {"cost", "fallover", "cooldown", "cancel", "load", "scale", "redis"} <= set(results)
    assert results["cooldown"]["primary_calls_after_first_429"]["max"] == 0
    assert results["load"]["errors"]["max"] == 0
    for size in ("1", "10", "100", "1000"):
        assert results["scale"][size]["priority"]["median"] > 0
