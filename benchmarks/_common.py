"""What every benchmark figure shares: the environment, timing, and the Figure it returns.

A figure is one small async function ``(env) -> Figure``. It measures a
baseline and the subject in the same run, reports ratios, and states its goals
beside the numbers they judge; nothing here asserts a timing.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio

import fallover as f

ROOT = Path(__file__).resolve().parent.parent
REQ = f.ChatRequest(messages=[f.Message(role="user", content="Review: def f(): return 1")])


@dataclass(frozen=True)
class Stats:
    """Min, median and max over repeats (seconds unless a figure says otherwise)."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        return cls(min(values), statistics.median(values), max(values))

    def us(self) -> str:
        return f"{self.median * 1e6:,.1f} µs ({self.min * 1e6:,.1f}–{self.max * 1e6:,.1f})"

    def ms(self) -> str:
        return f"{self.median * 1e3:,.1f} ms ({self.min * 1e3:,.1f}–{self.max * 1e3:,.1f})"

    def json(self) -> dict[str, float]:
        return {"min": self.min, "median": self.median, "max": self.max}


def ratio(a: Stats, b: Stats) -> float:
    """Median over median."""
    return a.median / b.median


@dataclass(frozen=True)
class Goal:
    """A target a figure is judged by: ``value`` should be at most (or least) ``limit``."""

    label: str
    value: float
    limit: float
    better: Literal["lower", "higher"] = "lower"
    unit: str = "×"

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.better == "lower" else self.value >= self.limit

    def row(self) -> list[str]:
        sign = "≤" if self.better == "lower" else "≥"
        return [
            self.label,
            f"{self.value:,.2f}{self.unit}",
            f"{sign} {self.limit:g}{self.unit}",
            "met" if self.met else "**missed**",
        ]


@dataclass
class Figure:
    """One measured figure: a table for people, data for machines, goals for both."""

    key: str
    title: str
    about: str
    header: list[str]
    rows: list[list[str]]
    data: dict[str, Any]
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> list[str]:
        out = [f"## {self.title}", "", self.about, ""]
        if self.rows:
            out += [_row(self.header), _row(["---"] * len(self.header))]
            out += [_row(r) for r in self.rows]
            out.append("")
        if self.goals:
            out += [_row(["goal", "measured", "target", ""]), _row(["---"] * 4)]
            out += [_row(g.row()) for g in self.goals]
            out.append("")
        out += [*self.notes, ""] if self.notes else []
        return out

    def json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "data": self.data,
            "goals": [
                {"label": g.label, "value": g.value, "limit": g.limit, "met": g.met}
                for g in self.goals
            ],
        }


def skipped(key: str, title: str, why: str) -> Figure:
    """A figure that could not be measured on this machine, and why."""
    return Figure(key, title, f"Not measured: {why}.", [], [], {"skipped": why})


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


@dataclass(frozen=True)
class Env:
    """What a figure runs against: the simulator's base URL and the size of the run."""

    base: str
    quick: bool
    repeats: int

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def client(self, model: str, **kw: Any) -> f.OpenAIClient:
        return f.OpenAIClient(model=model, base_url=self.base + "/v1", api_key="sk-bench", **kw)


FigureFn = Callable[[Env], Awaitable[Figure]]


async def per_call(
    fn: Callable[[], Awaitable[object]], n: int, repeats: int, concurrency: int = 1
) -> Stats:
    """Seconds per call, min/median/max over repeats, after a warm-up."""
    for _ in range(min(n, 20)):
        await fn()  # warm connections and caches
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        if concurrency == 1:
            for _ in range(n):
                await fn()
        else:

            async def worker(count: int) -> None:
                for _ in range(count):
                    await fn()

            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(worker, n // concurrency)
        samples.append((time.perf_counter() - start) / n)
    return Stats.of(samples)


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), in MiB."""
    with open(f"/proc/{pid or 'self'}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a helper process and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
