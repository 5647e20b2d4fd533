"""The ``fallover`` command: review files through the pool, run the simulator, check a config."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio

from . import __version__, _defaults
from ._classify import redact_url
from ._client import LLMClient
from ._config import Member, Plan, auto_pool, build_client, load_config, plan, unconfigured
from ._errors import AllModelsFailed, ConfigError, FalloverError, ProviderError, RoutingTimeout
from ._fanout import fan_out
from ._providers._anthropic import AnthropicClient
from ._providers._openai import OpenAIClient
from ._router import AsyncRouter
from ._types import Attempt, ChatRequest, ChatResponse, Message
from .testing import Fault, Scenario, Simulator, load_scenario

__all__ = ["main"]

MAX_FILE_BYTES = _defaults.REVIEW_MAX_FILE_BYTES
DEFAULT_PROMPT = (
    "You are a careful senior engineer reviewing one file of a change. Point out bugs, "
    "risky constructs and unclear code, most important first, briefly. Say so if it looks fine."
)
EMBEDDED = Scenario(
    models={
        # A throttled primary: 429 with Retry-After on part of the traffic.
        "sim-primary": Fault(fail_rate=0.4, fail_status=429, retry_after=2, latency=0.05),
        "sim-backup": Fault(latency=0.08),
    },
    seed=7,
)


class UsageError(Exception):
    """Bad command-line input: exit 2 with this message."""


# -- files --------------------------------------------------------------------------


def _git_files(directory: Path) -> list[Path] | None:
    """Files git would consider (tracked + untracked, ignores applied), or None outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "ls-files", "-co", "--exclude-standard", "-z"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [directory / p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def _hidden(path: Path, root: Path) -> bool:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts
    return any(p.startswith(".") for p in parts)


def collect(
    paths: Sequence[str], *, max_bytes: int = MAX_FILE_BYTES
) -> tuple[list[Path], list[str]]:
    """The files to review, in a stable order, and notes on what was skipped."""
    files: list[Path] = []
    notes: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            candidates = [p]
        elif p.is_dir():
            listed = _git_files(p)
            if listed is None:
                listed = [q for q in p.rglob("*") if q.is_file()]
            candidates = sorted(q for q in listed if q.is_file() and not _hidden(q, p))
        else:
            raise UsageError(f"{raw}: no such file or directory")
        files.extend(candidates)
    seen: set[Path] = set()
    kept: list[Path] = []
    for path in files:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        why = _skip_reason(path, max_bytes)
        if why:
            notes.append(f"skipped {path}: {why}")
        else:
            kept.append(path)
    return kept, notes


def _skip_reason(path: Path, max_bytes: int) -> str | None:
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty"
        if size > max_bytes:
            return f"{size} bytes is over the {max_bytes}-byte limit"
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if b"\0" in head:
        return "binary"
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None


def _request(path: Path, prompt: str) -> ChatRequest:
    text = path.read_text("utf-8")
    return ChatRequest(
        messages=[
            Message(role="system", content=prompt),
            Message(role="user", content=f"File: {path}\n\n```\n{text}\n```"),
        ]
    )


# -- the embedded default -----------------------------------------------------------


def _embedded_pool(sim: Simulator) -> AsyncRouter:
    primary = OpenAIClient(
        model="sim-primary", base_url=sim.base_url + "/v1", alias="sim/primary", timeout=10
    )
    backup = AnthropicClient(
        model="sim-backup", base_url=sim.base_url, alias="sim/backup", timeout=10
    )
    return AsyncRouter([primary, backup], cooldown=1.0, cooldown_max=4.0, call_timeout=60)


# -- review ---------------------------------------------------------------------------


class _Timed:
    """Wraps a client to time each request (a request is one file)."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.elapsed: dict[int, float] = {}

    @property
    def alias(self) -> str:
        return self.client.alias

    @property
    def context_window(self) -> int | None:
        return self.client.context_window

    @property
    def capabilities(self) -> frozenset[str]:
        return self.client.capabilities

    def unfit(self, request: ChatRequest) -> str | None:
        return self.client.unfit(request)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        start = time.perf_counter()
        try:
            return await self.client.complete(request)
        finally:
            self.elapsed[id(request)] = round(time.perf_counter() - start, 4)

    def stream(self, request: ChatRequest, **kw: Any) -> Any:  # pragma: no cover - not used
        return self.client.stream(request, **kw)

    async def aclose(self) -> None:  # pragma: no cover - the caller closes the client
        await self.client.aclose()

    async def __aenter__(self) -> _Timed:  # pragma: no cover
        return self

    async def __aexit__(self, *exc: object) -> None:  # pragma: no cover
        await self.aclose()


def _attempts_of(result: ChatResponse | Exception) -> tuple[Attempt, ...]:
    if isinstance(result, ChatResponse):
        return result.attempts
    if isinstance(result, AllModelsFailed | RoutingTimeout):
        return result.attempts
    if isinstance(result, ProviderError):
        return (
            Attempt(
                alias=result.alias or "?", outcome="error", error=str(result), status=result.status
            ),
        )
    return ()


def _record(path: Path, result: ChatResponse | Exception, elapsed: float) -> dict[str, Any]:
    answer = result if isinstance(result, ChatResponse) else None
    return {
        "path": str(path),
        "ok": answer is not None,
        "alias": answer.alias if answer else None,
        "model": answer.model if answer else None,
        "text": answer.text if answer else None,
        "error": None if answer else f"{type(result).__name__}: {result}",
        "attempts": [
            {
                "alias": a.alias,
                "outcome": a.outcome,
                "status": a.status,
                "error": a.error,
                "elapsed_s": a.elapsed_s,
            }
            for a in _attempts_of(result)
        ],
        "elapsed_s": elapsed,
    }


def _print_human(records: list[dict[str, Any]], out: TextIO) -> None:
    for r in records:
        if r["ok"]:
            failed = [a["alias"] for a in r["attempts"] if a["outcome"] == "error"]
            skipped = [a["alias"] for a in r["attempts"] if a["outcome"] == "skipped"]
            extra = f", fell over from {', '.join(dict.fromkeys(failed))}" if failed else ""
            extra += f", skipped {', '.join(dict.fromkeys(skipped))}" if skipped else ""
            print(f"── {r['path']}  ({r['alias']}, {r['elapsed_s']:.1f}s{extra})", file=out)
            print(r["text"].strip(), file=out)
        else:
            print(f"── {r['path']}  FAILED: {r['error']}", file=out)
        print(file=out)


def _summary(records: list[dict[str, Any]], total: int, elapsed: float) -> str:
    served = Counter(r["alias"] for r in records if r["ok"])
    failed = sum(not r["ok"] for r in records)
    fell = sum(
        1 for r in records if r["ok"] and any(a["outcome"] == "error" for a in r["attempts"])
    )
    by = ", ".join(f"{n} by {a}" for a, n in served.most_common()) or "none"
    missing = total - len(records)
    line = (
        f"Reviewed {len(records) - failed} of {total} files in {elapsed:.1f}s "
        f"({by}); {fell} fell over; {failed} failed"
    )
    if missing:
        line += f"; {missing} not finished"
    return line


async def review(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    files, notes = collect(args.paths)
    for note in notes:
        print(note, file=err)
    if not files:
        print("nothing to review", file=err)
        return 0
    config = load_config(args.config)
    sim: Simulator | None = None
    if unconfigured(config, args.model):
        sim = Simulator(EMBEDDED)
        await sim.start()
        client: LLMClient = _embedded_pool(sim)
        print(
            "No provider configured: reviewing against the built-in simulator "
            "(a throttled primary, a healthy backup). Set a key such as OPENAI_API_KEY "
            "or write fallover.toml to use real models.",
            file=err,
        )
    else:
        client = build_client(config, args.model)
    requests = [_request(p, args.prompt) for p in files]
    timed = _Timed(client)
    done: dict[int, ChatResponse | Exception] = {}
    start = time.perf_counter()
    progress = _progress(len(files), enabled=not args.json and err.isatty())
    try:
        async with client:

            def finished(i: int, result: ChatResponse | Exception) -> None:
                done[i] = result
                progress.advance()

            await fan_out(timed, requests, concurrency=args.concurrency, on_result=finished)
    finally:
        progress.stop()
        if sim is not None:
            with anyio.CancelScope(shield=True):
                await sim.close()
        # Print whatever finished, even when interrupted: nothing done is lost.
        records = [
            _record(files[i], done[i], timed.elapsed.get(id(requests[i]), 0.0))
            for i in range(len(files))
            if i in done
        ]
        if args.json:
            for r in records:
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            _print_human(records, out)
            print(_summary(records, len(files), time.perf_counter() - start), file=err)
        out.flush()
    return 0 if all(r["ok"] for r in records) else 1


class _NoProgress:
    def advance(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _RichProgress:
    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._p = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_stderr_console(),
            transient=True,
        )
        self._task = self._p.add_task("reviewing", total=total)
        self._p.start()

    def advance(self) -> None:
        self._p.advance(self._task)

    def stop(self) -> None:
        self._p.stop()


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _progress(total: int, *, enabled: bool) -> _NoProgress | _RichProgress:
    if not enabled:
        return _NoProgress()
    try:
        return _RichProgress(total)
    except ImportError:  # rich is the optional `cli` extra
        return _NoProgress()


# -- check ----------------------------------------------------------------------------


def _key_state(member: Member) -> str:
    if member.key_literal:
        return "api_key in the config file (set, redacted)"
    if member.key_env:
        state = "set" if os.environ.get(member.key_env) else "NOT SET"
        return f"env {member.key_env} ({state})"
    return member.key_source


def check(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    present = auto_pool()
    print(f"config: {config.path or 'none (built-in providers)'}", file=out)
    if unconfigured(config):
        print("pool: none configured and no provider key set;", file=out)
        print("      `fallover review` will use the built-in simulator", file=out)
        return 0
    p: Plan = plan(config)
    r = p.routing
    budget = f"{r.call_timeout:g}s" if r.call_timeout else "none"
    cooldown = f"{r.cooldown:g}s..{r.cooldown_max:g}s"
    print(
        f"policy: {r.policy}  call_timeout: {budget}  cooldown: {cooldown}"
        f"  max_retry_wait: {r.max_retry_wait:g}s  store: {redact_url(r.store)}",
        file=out,
    )
    if p.auto:
        print("pool: every built-in provider whose key is set, in preset order", file=out)
    for i, m in enumerate(p.members, 1):
        timeouts = f"timeout {m.timeout:g}s" if m.timeout else "no timeout"
        if m.first_token_timeout:
            timeouts += f", first token {m.first_token_timeout:g}s"
        if m.idle_timeout:
            timeouts += f", idle {m.idle_timeout:g}s"
        pooled = _defaults.POOLED_MAX_RETRIES if len(p.members) > 1 else _defaults.MAX_RETRIES
        retries = m.max_retries if m.max_retries is not None else pooled
        window = f", context {m.context_window}" if m.context_window else ""
        print(f"  {i}. {m.alias}", file=out)
        print(f"     {m.protocol} {m.base_url}", file=out)
        print(f"     key: {_key_state(m)}", file=out)
        print(f"     {timeouts}, retries {retries}{window}", file=out)
    print(f"presets with keys in the environment: {', '.join(present) or 'none'}", file=out)
    build_client(config)  # resolves keys: a missing one is an error here (no I/O is opened)
    return 0


# -- simulate -------------------------------------------------------------------------


async def simulate(args: argparse.Namespace, out: TextIO) -> int:
    scenario = load_scenario(args.scenario) if args.scenario else Scenario()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}, not loopback", file=sys.stderr)
    async with Simulator(scenario, host=args.host, port=args.port) as sim:
        print(f"fallover simulator on {sim.base_url}", file=out)
        print(f"  OpenAI:    {sim.base_url}/v1/chat/completions", file=out)
        print(f"  Anthropic: {sim.base_url}/v1/messages", file=out)
        print(f"  request log: GET {sim.base_url}/_sim/log   reset: POST /_sim/reset", file=out)
        out.flush()
        await anyio.sleep_forever()
    return 0  # pragma: no cover


# -- entry point ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fallover",
        description="Route LLM calls over a pool of models, falling over on failure.",
    )
    parser.add_argument("--version", action="version", version=f"fallover {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("review", help="review files concurrently through the pool")
    r.add_argument("paths", nargs="+", metavar="PATH")
    r.add_argument("--config", metavar="F", help="config file (default: the lookup chain)")
    r.add_argument("--model", metavar="P/M", help="pin one provider/model, ignoring routing")
    r.add_argument(
        "--concurrency", type=_positive_int, default=_defaults.REVIEW_CONCURRENCY, metavar="N"
    )
    r.add_argument("--json", action="store_true", help="print JSON Lines, one per file")
    r.add_argument("--prompt", default=DEFAULT_PROMPT, metavar="TEXT", help="review instruction")

    s = sub.add_parser("simulate", help="serve the fault-injecting simulator")
    s.add_argument("--port", type=int, default=_defaults.SIMULATOR_PORT, metavar="N")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--scenario", metavar="FILE", help="TOML file of per-model faults")

    g = sub.add_parser("serve", help="serve the pools as an OpenAI- and Anthropic-compatible API")
    g.add_argument("--config", metavar="F")
    g.add_argument("--host", help="default: server.host, else 127.0.0.1")
    g.add_argument("--port", type=int, metavar="N", help="default: server.port, else 8080")
    g.add_argument("--workers", type=_positive_int, default=1, metavar="N")

    c = sub.add_parser("check", help="validate the config and print the resolved pool")
    c.add_argument("--config", metavar="F")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    args = _parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        if args.command == "review":
            return asyncio.run(review(args, out, err))
        if args.command == "simulate":
            return asyncio.run(simulate(args, out))
        if args.command == "serve":
            from ._serve import main as serve

            return serve(
                config_path=args.config, host=args.host, port=args.port, workers=args.workers
            )
        return check(args, out)
    except (ConfigError, UsageError) as exc:
        print(f"fallover: {exc}", file=err)
        return 2
    except FalloverError as exc:  # pragma: no cover - review reports per file
        print(f"fallover: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        print("fallover: interrupted", file=err)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
