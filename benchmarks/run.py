"""fallover benchmarks: what the library costs, and how it behaves under faults at scale.

    python benchmarks/run.py              # the full run (several minutes on 2 cores)
    python benchmarks/run.py --quick      # a smoke test: every figure completes, tiny counts
    python benchmarks/run.py --only cost stream

Each ``benchmarks/bench_*.py`` module lists its figures in ``FIGURES``: small async
functions that measure a baseline and a subject in the same run and return a
``Figure`` with its goals beside its numbers. The fault server is the fallover
simulator in its own process, so client and server never share an event loop.
Results go to ``benchmarks/results/`` and, for a full run, ``docs/benchmarks.md``,
``docs/benchmarks.json`` and ``docs/img/benchmarks.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fallover as f  # noqa: E402
from benchmarks._common import Env, Figure, stop  # noqa: E402
from fallover.testing import spawn  # noqa: E402

NOISE = (
    "On this shared 2-core virtual machine the same figure moves by 10–30% between runs; "
    "a goal within that distance of its target can flip from one run to the next. "
    "The gateway peers run when `FALLOVER_BENCH_LITELLM` (a `litellm` proxy executable) "
    "and `FALLOVER_BENCH_PORTKEY` (a folder with `@portkey-ai/gateway` installed) are set."
)

# Sections appear in this order; modules not listed here follow, by name.
ORDER = ["bench_hotpath", "bench_faults", "bench_routing", "bench_codecs", "bench_redis"]


def modules(with_peers: bool) -> list[ModuleType]:
    names = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    names.sort(key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    if not with_peers:
        names = [n for n in names if n != "bench_peers"]
    return [importlib.import_module(f"benchmarks.{n}") for n in names]


async def measure(mods: list[ModuleType], *, quick: bool, only: set[str]) -> list[Figure]:
    """Run every figure (or the ``only`` ones) against one simulator process."""
    scenario = "\n".join(getattr(m, "SCENARIO", "") for m in mods)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.toml"
        path.write_text(scenario)
        proc, base = spawn(str(path))
        try:
            env = Env(base=base, quick=quick, repeats=2 if quick else 5)
            for m in mods:
                for fn in m.FIGURES:
                    if only and fn.__name__ not in only and m.__name__.split("_", 1)[1] not in only:
                        continue
                    start = time.perf_counter()
                    figure = await fn(env)
                    took = time.perf_counter() - start
                    print(f"{figure.key:>12}: {took:6.1f} s", file=sys.stderr)
                    figures.append(figure)
        finally:
            stop(proc)
    return figures


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "fallover": f.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def markdown(results: dict[str, Any], figures: list[Figure]) -> str:
    m = results["machine"]
    goals = [g for fig in figures for g in fig.goals]
    lines = [
        "# Benchmarks",
        "",
        "Produced by `nox -s bench` (`python benchmarks/run.py`). Every figure compares with a",
        "baseline measured in the same run; times are medians with (min–max) over",
        f"{results['repeats']} repeats. The server is the fallover simulator in its own process "
        "on loopback.",
        "",
        f"Machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, fallover "
        f"{m['fallover']}; {m['date']}.",
        "",
        f"Goals met: {sum(g.met for g in goals)} of {len(goals)}.",
        "",
        NOISE,
        "",
    ]
    for fig in figures:
        lines += fig.markdown()
    lines += [
        "![benchmarks](img/benchmarks.png)",
        "",
        "The same results for machines: [benchmarks.json](benchmarks.json).",
        "",
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    """Per-call cost, fallover latency and routing cost by pool size, in one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = results["figures"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    if "cost" in figs:
        seq = figs["cost"]["data"]["sequential"]
        labels = ["raw aiohttp", "client", "router"]
        vals = [
            seq["raw_aiohttp"],
            seq["client"] if "client" in seq else seq["adapter"],
            seq["router"],
        ]
        axes[0].bar(labels, [v["median"] * 1e6 for v in vals], color="#4c72b0")
        axes[0].set_ylabel("µs per call (sequential)")
        axes[0].set_title("Per-call cost")
    if "fallover" in figs:
        fo = figs["fallover"]["data"]
        keys = [k for k in ("healthy", "e503", "e429", "reset") if k in fo]
        axes[1].bar(keys, [fo[k]["median"] * 1e3 for k in keys], color="#dd8452")
        axes[1].set_ylabel("ms per call")
        axes[1].set_title("Fallover latency")
    if "scale" in figs:
        sc = figs["scale"]["data"]
        sizes = [s for s in ("1", "10", "100", "1000") if s in sc]
        axes[2].plot([int(s) for s in sizes], [sc[s]["cost_us"] for s in sizes], marker="o")
        axes[2].set_xscale("log")
        axes[2].set_ylim(bottom=0)
        axes[2].set_xlabel("members")
        axes[2].set_ylabel("routing cost, µs per call")
        axes[2].set_title("Scale")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts, no report files")
    parser.add_argument("--no-peers", action="store_true", help="skip LiteLLM and the openai SDK")
    parser.add_argument("--only", nargs="*", default=[], help="figure keys or module areas")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "benchmarks" / "results", help="where JSON goes"
    )
    args = parser.parse_args()
    mods = modules(with_peers=not args.no_peers)
    figures = asyncio.run(measure(mods, quick=args.quick, only=set(args.only)))
    results = {
        "quick": args.quick,
        "repeats": 2 if args.quick else 5,
        "machine": machine(),
        "figures": {fig.key: fig.json() for fig in figures},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    name = "quick.json" if args.quick else "latest.json"
    (args.results / name).write_text(json.dumps(results, indent=2) + "\n")
    for fig in figures:
        for g in fig.goals:
            print(f"{'met   ' if g.met else 'MISSED'} {g.label}: {g.value:,.3f}", file=sys.stderr)
    if not args.quick and not args.only:
        (ROOT / "docs" / "benchmarks.md").write_text(markdown(results, figures))
        (ROOT / "docs" / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
        chart(results, ROOT / "docs" / "img" / "benchmarks.png")


if __name__ == "__main__":
    main()
