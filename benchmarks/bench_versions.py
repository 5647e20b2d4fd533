"""This code against v0.1 in the same run: the reshape must not cost the hot path."""

from __future__ import annotations

import json
import os
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


FIGURES = [versions]
