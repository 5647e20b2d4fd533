"""This code against v0.1 in the same run: the reshape must not cost the hot path."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from ._common import ROOT, Env, Figure, Goal, Stats, skipped

TITLE = "Against v0.1, same run"
BASELINE = "380da6a"  # the v0.1 release commit on main
LABELS = {
    "client": "client call",
    "router": "router call",
    "fallover_503": "503 fallover",
    "client_c100": "client call, 100 in flight (client CPU)",
    "router_c100": "router call, 100 in flight (client CPU)",
    "stream_client": "500-chunk stream, client",
    "stream_router": "500-chunk stream, router",
}


def _export(rev: str, into: Path) -> bool:
    """Write ``rev``'s ``src/`` under ``into``; False when git or the revision is missing."""
    try:
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return True


def _probe(src: Path, base: str, n: int, repeats: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "probe.py"), base, str(n), str(repeats)],
        capture_output=True,
        check=True,
        env=env,
    )
    return dict(json.loads(done.stdout))


def _instructions(src: Path, base: str, which: str, n: int) -> int:
    """Instructions the probe process executes for ``n`` calls (valgrind's count)."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            str(ROOT / "benchmarks" / "probe.py"),
            "--in-flight",
            which,
            base,
            str(n),
        ],
        capture_output=True,
        check=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


async def instructions(env: Env) -> Figure:
    """Instructions per call, 100 in flight, under v0.1's source and this one's.

    Counted by valgrind, they move far less with the machine's load than time does:
    the difference between runs of two sizes is what the calls cost, start-up excluded.
    How the event loop batches ready responses still varies from run to run (about
    ±2%), so each figure is the median of three pairs of runs, v0.1's and this
    tree's alternating.
    """
    title = "Instructions per call against v0.1, same run"
    if shutil.which("valgrind") is None:
        return skipped("instructions", title, "valgrind is not installed")
    small, large = env.n(1000, 100), env.n(3000, 200)
    rows, goals, data = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        if not _export(BASELINE, old):
            return skipped("instructions", title, "v0.1's source is not in this clone's history")
        for which in ("client", "router"):
            pairs: dict[str, list[float]] = {"v0.1": [], "now": []}
            for _ in range(env.n(3, 1)):
                for label, src in (("v0.1", old / "src"), ("now", ROOT / "src")):
                    a = _instructions(src, env.base, which, small)
                    b = _instructions(src, env.base, which, large)
                    pairs[label].append((b - a) / (large - small))
            per_call = {label: statistics.median(runs) for label, runs in pairs.items()}
            data[which] = {**per_call, "runs": pairs}
            change = per_call["now"] / per_call["v0.1"]
            rows.append(
                [
                    f"{which} call",
                    f"{per_call['v0.1']:,.0f}",
                    f"{per_call['now']:,.0f}",
                    f"{change:.3f}×",
                ]
            )
            goals.append(Goal(f"{which} call, instructions: now ÷ v0.1", change, 1.05))
    return Figure(
        "instructions",
        title,
        "valgrind's instruction count for one call with 100 in flight (the whole "
        "process: client, aiohttp and the event loop), v0.1's source against this tree's.",
        ["call", "v0.1", "now", "now ÷ v0.1"],
        rows,
        data,
        goals,
    )


async def versions(env: Env) -> Figure:
    """The same probe under v0.1's source and this one's, alternating, five rounds each.

    Each figure is judged by the best round of each: on a shared machine interference
    only ever adds time, so the minimum is the steadiest estimate of what the code costs.
    """
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        if not _export(BASELINE, old):
            return skipped("versions", TITLE, "v0.1's source is not in this clone's history")
        n, repeats = env.n(300, 20), env.n(3, 1)
        runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for _ in range(env.n(5, 1)):
            runs["old"].append(_probe(old / "src", env.base, n, repeats))
            runs["new"].append(_probe(ROOT / "src", env.base, n, repeats))
    rows, goals, data = [], [], {}
    for key, label in LABELS.items():
        o = Stats.of([r[key] for r in runs["old"]])
        w = Stats.of([r[key] for r in runs["new"]])
        data[key] = {"v0.1": o.json(), "now": w.json()}
        rows.append([label, o.us(), w.us(), f"{w.min / o.min:.2f}×"])
        goals.append(Goal(f"{label}: now ÷ v0.1 (best rounds)", w.min / o.min, 1.05))
    return Figure(
        "versions",
        TITLE,
        "One probe (public API only) run in subprocesses under v0.1's source and this "
        "tree's, alternating, against the same simulator; each judged by its best round.",
        ["figure", "v0.1", "now", "now ÷ v0.1"],
        rows,
        data,
        goals,
    )


FIGURES = [versions, instructions]
