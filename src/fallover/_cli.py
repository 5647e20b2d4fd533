"""The ``fallover`` command: a thin layer over ``_review``, the simulator and the config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import anyio

from . import __version__, _defaults
from ._client import LLMClient
from ._config import Member, Plan, auto_pool, build_client, load_config, plan, unconfigured
from ._endpoint import AnthropicClient, OpenAIClient
from ._errors import ConfigError, FalloverError
from ._redact import redact_url
from ._review import (
    DEFAULT_PROMPT,
    FileReview,
    UsageError,
    collect_diff,
    collect_files,
    progress,
    review_all,
    summary,
    write_jsonl,
    write_sarif,
    write_text,
)
from ._routing import AsyncRouter
from .testing import Fault, Scenario, Simulator, load_scenario

__all__ = ["main"]

EMBEDDED = Scenario(
    models={
        # A throttled primary: 429 with Retry-After on part of the traffic.
        "sim-primary": Fault(fail_rate=0.4, fail_status=429, retry_after=2, latency=0.05),
        "sim-backup": Fault(latency=0.08),
    },
    seed=7,
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


def _format(args: argparse.Namespace) -> str:
    if args.json and args.format not in (None, "jsonl"):
        raise UsageError(f"--json means --format jsonl, not --format {args.format}")
    return str(args.format or ("jsonl" if args.json else "text"))


def _verbose(err: TextIO) -> None:
    """Show the ``fallover`` logger's INFO lines (fallovers, parks) on ``err``."""
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("fallover: %(message)s"))
    logger = logging.getLogger("fallover")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _write(fmt: str, reviews: list[FileReview], out: TextIO, *, complete: bool) -> None:
    if fmt == "jsonl":
        write_jsonl(reviews, out)
    elif fmt == "sarif":
        write_sarif(reviews, out, complete=complete)
    else:
        write_text(reviews, out)


async def review(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    fmt = _format(args)
    if args.verbose:
        _verbose(err)
    config = load_config(args.config)  # a bad file is reported before any git work
    cwd = Path.cwd()
    if args.diff is not None:
        changes, notes = collect_diff(args.diff, args.paths, cwd=cwd)
    elif args.paths:
        changes, notes = collect_files(args.paths, cwd=cwd)
    else:
        raise UsageError("review needs PATH... to review, or --diff REV for a change")
    for note in notes:
        print(note, file=err)
    if not changes:
        if args.diff is not None:
            print(f"no changes to review since {args.diff}", file=err)
        else:
            print("nothing to review", file=err)
        if fmt == "sarif":
            write_sarif([], out)
        return 0
    sim: Simulator | None = None
    if args.pool is None and unconfigured(config, args.model):
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
        client = build_client(config, args.model, pool=args.pool)
    done: dict[int, FileReview] = {}
    start = time.perf_counter()
    bar = progress(len(changes), enabled=err.isatty())
    try:
        async with client:

            def finished(i: int, result: FileReview) -> None:
                done[i] = result
                bar.advance()

            await review_all(
                client,
                changes,
                instruction=args.prompt,
                concurrency=args.concurrency,
                on_done=finished,
            )
    finally:
        bar.stop()
        if sim is not None:
            with anyio.CancelScope(shield=True):
                await sim.close()
        # Print whatever finished, even when interrupted: nothing done is lost.
        reviews = [done[i] for i in range(len(changes)) if i in done]
        _write(fmt, reviews, out, complete=len(reviews) == len(changes))
        out.flush()
        for line in summary(reviews, len(changes), time.perf_counter() - start):
            print(line, file=err)
    return 0 if all(r.ok for r in reviews) else 1


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
        print(f"     {m.protocol} {redact_url(m.base_url)}", file=out)
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

    r = sub.add_parser(
        "review",
        help="review files, or the changes since a revision, concurrently through the pool",
    )
    r.add_argument("paths", nargs="*", metavar="PATH", help="files or directories to review")
    r.add_argument(
        "--diff",
        metavar="REV",
        help="review the files changed since git revision REV (under PATH..., if given)",
    )
    r.add_argument("--config", metavar="F", help="config file (default: the lookup chain)")
    which = r.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="P/M", help="pin one provider/model, ignoring routing")
    which.add_argument("--pool", metavar="NAME", help="use the pool [pools.NAME] of the config")
    r.add_argument(
        "--concurrency", type=_positive_int, default=_defaults.REVIEW_CONCURRENCY, metavar="N"
    )
    r.add_argument(
        "--format",
        choices=("text", "jsonl", "sarif"),
        help="text (default), JSON Lines (one object per file) or SARIF 2.1.0",
    )
    r.add_argument("--json", action="store_true", help="the same as --format jsonl")
    r.add_argument("--prompt", default=DEFAULT_PROMPT, metavar="TEXT", help="review instruction")
    r.add_argument(
        "-v", "--verbose", action="store_true", help="log each fallover and park to stderr"
    )

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
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do,
        # and keep the interpreter's final flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("fallover: interrupted", file=err)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
