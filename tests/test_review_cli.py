"""`fallover review --diff`: a real git repository, a fake provider on loopback, the CLI as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from aiohttp import web

from .conftest import SECRET, interrupt_when
from .test_cli import env

DATA = Path(__file__).parent / "data"
ROW = re.compile(r"^ *(\d*) ([+\- |]) (.*)$")
Answer = Callable[[str, str], str]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def numbered(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def make_repo(root: Path) -> Path:
    """A repository with one commit on main, then every kind of change in the working tree."""
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "test")
    base = [f"line {n}" for n in range(1, 41)]
    (repo / "src" / "modified.py").write_text(numbered(base))
    (repo / "src" / "deleted.py").write_text("gone = True\n")
    (repo / "src" / "old_name.py").write_text(numbered([f"keep {n}" for n in range(1, 21)]))
    (repo / "src" / "same.py").write_text("unchanged = True\n")
    (repo / "src" / "blob.bin").write_bytes(b"\x00\x01")
    (repo / "src" / "big.txt").write_text("small\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    # Three lines inserted at the top move every later line down: numbers must follow.
    changed = ["import os", "import sys", "import re", *base]
    changed[3 + 29] = "line 30 BUG_HERE"
    (repo / "src" / "modified.py").write_text(numbered(changed))
    (repo / "src" / "deleted.py").unlink()
    git(repo, "mv", "src/old_name.py", "src/new_name.py")
    renamed = [f"keep {n}" for n in range(1, 21)]
    renamed[9] = "keep 10 BUG_HERE"
    (repo / "src" / "new_name.py").write_text(numbered(renamed))
    (repo / "src" / "added.py").write_text("first = 1\nsecond = 2  # BUG_HERE\n")
    git(repo, "add", "src/added.py")
    (repo / "src" / "untracked.py").write_text("untracked = True\n")
    (repo / "src" / "blob.bin").write_bytes(b"\x00\x01\x02\x03")
    (repo / "src" / "big.txt").write_text("x\n" * 150_000)
    return repo


CHANGED = ["src/added.py", "src/modified.py", "src/new_name.py", "src/untracked.py"]


def rows(prompt: str) -> list[tuple[int | None, str, str]]:
    """The numbered lines inside the prompt's fenced block."""
    body = prompt.split("```\n", 1)[1].rsplit("\n```", 1)[0]
    out: list[tuple[int | None, str, str]] = []
    for raw in body.splitlines():
        m = ROW.match(raw)
        if m and not raw.startswith("@@"):
            out.append((int(m.group(1)) if m.group(1) else None, m.group(2), m.group(3)))
    return out


def flag_marked_lines(path: str, prompt: str) -> str:
    """Answer with a finding on every line the prompt shows containing BUG_HERE."""
    findings = [
        {
            "path": path,
            "line": n,
            "end_line": None,
            "severity": "warning",
            "category": "bug",
            "title": "Marked line",
            "body": "The test marked this line.",
        }
        for n, _, code in rows(prompt)
        if n is not None and "BUG_HERE" in code
    ]
    return json.dumps({"findings": findings})


class Provider:
    """An OpenAI-protocol fake on loopback: records prompts, counts requests in flight."""

    def __init__(self) -> None:
        self.answer: Answer = flag_marked_lines
        self.prompts: dict[str, str] = {}
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = 0
        self.gate: tuple[int, int] | None = None  # (hold until this many in flight, total files)
        self.down: set[str] = set()  # models that answer 503
        self.hang: set[str] = set()  # files never answered
        self.changed = asyncio.Condition()
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        if body["model"] in self.down:
            error = {"message": "down", "type": "server_error", "code": None}
            return web.json_response({"error": error}, status=503)
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        path = user.split("\n", 1)[0].removeprefix("File under review: ")
        self.prompts[path] = user
        if path in self.hang:
            await asyncio.Event().wait()  # until the client goes away
        async with self.changed:
            self.in_flight += 1
            self.started += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.changed.notify_all()
            if self.gate is not None:
                width, total = self.gate
                await self.changed.wait_for(
                    lambda: self.in_flight >= width or self.started == total
                )
        try:
            text = self.answer(path, user)
        finally:
            async with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
            }
        )


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    """A recording fake provider on a loopback port."""
    fake = Provider()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def config(root: Path, base_url: str) -> Path:
    cfg = root / "fallover.toml"
    cfg.write_text(
        f'[providers.fake]\nprotocol = "openai"\nbase_url = "{base_url}/v1"\n'
        f'api_key = "{SECRET}"\nmodel = "fake-model"\n'
        '[routing]\nmodels = [{ provider = "fake" }]\n'
    )
    cfg.chmod(0o600)
    return cfg


async def review(
    cwd: Path, *args: str, cfg: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    extra = ["--config", str(cfg)] if cfg else []
    with anyio.fail_after(60):
        return await anyio.run_process(
            [sys.executable, "-m", "fallover._cli", "review", *args, *extra],
            check=False,
            cwd=cwd,
            env=env(cwd.parent if cfg is None else cfg.parent),
        )


def jsonl(done: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


async def test_exactly_the_changed_files_are_sent_with_their_hunks(
    tmp_path: Path, provider: Provider
) -> None:
    """Modified, added, renamed and untracked files are sent; the rest are skipped with a note."""
    repo = make_repo(tmp_path)
    done = await review(
        repo, "--diff", "main", "--format", "jsonl", cfg=config(tmp_path, provider.base_url)
    )
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert sorted(provider.prompts) == CHANGED
    assert [r["path"] for r in jsonl(done)] == CHANGED
    assert [r["status"] for r in jsonl(done)] == ["added", "modified", "renamed", "added"]
    assert jsonl(done)[2]["old_path"] == "src/old_name.py"
    assert "skipped src/deleted.py: deleted" in err
    assert "skipped src/blob.bin: binary" in err
    assert "skipped src/big.txt: 300000 bytes is over the 204800-byte limit" in err
    assert "same.py" not in err + str(provider.prompts)
    modified = rows(provider.prompts["src/modified.py"])
    assert (1, "+", "import os") in modified and (None, "-", "line 30") in modified
    assert (33, "+", "line 30 BUG_HERE") in modified
    assert (13, " ", "line 10") in modified and (23, " ", "line 20") in modified  # context
    assert (18, " ", "line 15") not in modified  # between the hunks, beyond the context
    assert "was src/old_name.py" in provider.prompts["src/new_name.py"]


async def test_finding_lines_are_lines_of_the_working_tree(
    tmp_path: Path, provider: Provider
) -> None:
    """Each finding's line number points at the flagged line in the file on disk."""
    repo = make_repo(tmp_path)
    done = await review(repo, "--diff", "main", "--json", cfg=config(tmp_path, provider.base_url))
    assert done.returncode == 0, done.stderr.decode()
    found = [(r["path"], f["line"]) for r in jsonl(done) for f in r["findings"]]
    assert sorted(found) == [("src/added.py", 2), ("src/modified.py", 33), ("src/new_name.py", 10)]
    for path, line in found:
        assert "BUG_HERE" in (repo / path).read_text().splitlines()[line - 1]


async def test_concurrency_is_bounded(tmp_path: Path, provider: Provider) -> None:
    """With --concurrency 2, two files are in flight at once and never more."""
    repo = make_repo(tmp_path)
    for n in range(4):
        (repo / "src" / f"extra{n}.py").write_text(f"extra = {n}\n")
    provider.gate = (2, len(CHANGED) + 4)
    done = await review(
        repo, "--diff", "main", "--concurrency", "2", cfg=config(tmp_path, provider.base_url)
    )
    assert done.returncode == 0, done.stderr.decode()
    assert provider.started == len(CHANGED) + 4
    assert provider.max_in_flight == 2


async def test_paths_narrow_the_change_and_keep_input_order(
    tmp_path: Path, provider: Provider
) -> None:
    """PATH... after --diff limits the review to those paths; records come in path order."""
    repo = make_repo(tmp_path)
    done = await review(
        repo / "src",
        "--diff",
        "main",
        "--json",
        "new_name.py",
        "modified.py",
        cfg=config(tmp_path, provider.base_url),
    )
    assert done.returncode == 0, done.stderr.decode()
    assert [r["path"] for r in jsonl(done)] == ["src/modified.py", "src/new_name.py"]
    assert sorted(provider.prompts) == ["src/modified.py", "src/new_name.py"]


async def test_malformed_findings_for_one_file_do_not_lose_the_others(
    tmp_path: Path, provider: Provider
) -> None:
    """A file whose reply is not findings JSON fails with its raw text kept; exit 1."""
    repo = make_repo(tmp_path)

    def answer(path: str, prompt: str) -> str:
        return (
            "I think it looks fine!"
            if path == "src/modified.py"
            else flag_marked_lines(path, prompt)
        )

    provider.answer = answer
    done = await review(repo, "--diff", "main", "--json", cfg=config(tmp_path, provider.base_url))
    assert done.returncode == 1
    records = {r["path"]: r for r in jsonl(done)}
    assert list(records) == CHANGED
    bad = records.pop("src/modified.py")
    assert bad["ok"] is False and bad["findings"] is None
    assert bad["text"] == "I think it looks fine!"
    assert bad["error"].startswith("malformed findings: the reply is not JSON")
    assert all(r["ok"] for r in records.values())
    assert "1 failed" in done.stderr.decode()


async def test_findings_on_lines_that_do_not_exist_are_malformed(
    tmp_path: Path, provider: Provider
) -> None:
    """A finding past the end of the new file is refused, and the text output says why."""
    repo = make_repo(tmp_path)
    bogus = {
        "path": "src/added.py",
        "line": 99,
        "end_line": None,
        "severity": "note",
        "category": "style",
        "title": "t",
        "body": "b",
    }
    provider.answer = lambda path, prompt: json.dumps({"findings": [{**bogus, "path": path}]})
    done = await review(
        repo, "--diff", "main", "src/added.py", cfg=config(tmp_path, provider.base_url)
    )
    out = done.stdout.decode()
    assert done.returncode == 1
    assert "FAILED: malformed findings: findings[0].line 99 is not a line of the file (1..2)" in out
    assert '"line": 99' in out  # the raw reply is kept


async def test_sarif_validates_against_the_official_schema(
    tmp_path: Path, provider: Provider
) -> None:
    """--format sarif writes SARIF 2.1.0 with repo-relative URIs and one rule per category."""
    repo = make_repo(tmp_path)
    done = await review(
        repo / "src", "--diff", "main", "--format", "sarif", cfg=config(tmp_path, provider.base_url)
    )
    assert done.returncode == 0, done.stderr.decode()
    log = json.loads(done.stdout.decode())
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(log)
    (run,) = log["runs"]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert "fallover/bug" in rules and "fallover/security" in rules
    located = sorted(
        (
            res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            res["locations"][0]["physicalLocation"]["region"]["startLine"],
            rules[res["ruleIndex"]],
            res["level"],
        )
        for res in run["results"]
    )
    assert located == [
        ("src/added.py", 2, "fallover/bug", "warning"),
        ("src/modified.py", 33, "fallover/bug", "warning"),
        ("src/new_name.py", 10, "fallover/bug", "warning"),
    ]
    assert run["invocations"][0]["executionSuccessful"] is True


async def test_sarif_reports_a_failed_file_as_a_notification(
    tmp_path: Path, provider: Provider
) -> None:
    """A file that could not be reviewed is a tool notification; the log still validates."""
    repo = make_repo(tmp_path)
    provider.answer = lambda path, prompt: "not json"
    done = await review(
        repo,
        "--diff",
        "main",
        "src/added.py",
        "--format",
        "sarif",
        cfg=config(tmp_path, provider.base_url),
    )
    assert done.returncode == 1
    log = json.loads(done.stdout.decode())
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(log)
    (invocation,) = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["message"]["text"].startswith("src/added.py: not reviewed: malformed findings")


async def test_text_output_groups_findings_by_file(tmp_path: Path, provider: Provider) -> None:
    """Text output: a heading per file, then severity, line and title; a count in the summary."""
    repo = make_repo(tmp_path)
    done = await review(repo, "--diff", "main", cfg=config(tmp_path, provider.base_url))
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    assert "── src/modified.py  (fake/fake-model" in out
    assert re.search(r"^    warning  line 33 +Marked line  \[bug\]$", out, re.MULTILINE)
    assert "── src/untracked.py  (fake/fake-model" in out and "    no findings" in out
    assert "3 findings (3 warning)" in err
    assert "Tokens: fake/fake-model 400 in, 40 out" in err
    assert SECRET not in out + err


async def test_no_changes_exits_0_with_a_message(tmp_path: Path, provider: Provider) -> None:
    """Nothing changed since the revision: exit 0, say so, ask nobody."""
    repo = make_repo(tmp_path)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    done = await review(repo, "--diff", "HEAD", cfg=config(tmp_path, provider.base_url))
    assert done.returncode == 0
    assert "no changes to review since HEAD" in done.stderr.decode()
    assert provider.started == 0


async def test_no_changes_in_sarif_is_an_empty_valid_log(
    tmp_path: Path, provider: Provider
) -> None:
    """--format sarif with nothing changed still writes a valid log, with no results."""
    repo = make_repo(tmp_path)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    done = await review(
        repo, "--diff", "HEAD", "--format", "sarif", cfg=config(tmp_path, provider.base_url)
    )
    assert done.returncode == 0
    log = json.loads(done.stdout.decode())
    jsonschema.Draft4Validator(json.loads((DATA / "sarif-schema-2.1.0.json").read_text())).validate(
        log
    )
    assert log["runs"][0]["results"] == []


@pytest.mark.parametrize(
    ("where", "args", "message"),
    [
        ("outside", ["--diff", "main"], "--diff needs a git repository, and "),
        ("repo", ["--diff", "no-such-branch"], "--diff no-such-branch: unknown revision"),
        ("repo", ["--diff", "main", "../outside.py"], "../outside.py: outside the repository at "),
        ("repo", ["--diff", "main", "src/nope.py"], "src/nope.py: no such file or directory"),
        ("repo", ["--diff=--upload"], "--diff --upload: not a revision"),
        ("repo", ["--diff", "main", "--json", "--format", "sarif"], "--json means --format jsonl"),
        ("repo", [], "review needs PATH... to review, or --diff REV"),
    ],
)
async def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, where: str, args: list[str], message: str
) -> None:
    """Bad --diff input: exit 2, one line naming the problem, no traceback."""
    repo = make_repo(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "outside.py").write_text("x = 1\n")
    done = await review(outside if where == "outside" else repo, *args)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert err.startswith(f"fallover: {message}") and err.count("\n") == 1, err


def pools_config(root: Path, base_url: str) -> Path:
    cfg = root / "fallover.toml"
    cfg.write_text(
        f'[providers.fake]\nprotocol = "openai"\nbase_url = "{base_url}/v1"\n'
        f'api_key = "{SECRET}"\n'
        '[routing]\nmodels = [{ provider = "fake", model = "down" }, '
        '{ provider = "fake", model = "main-model" }]\ncooldown = 30\n'
        '[pools.fast]\nmodels = [{ provider = "fake", model = "fast-model" }]\n'
    )
    cfg.chmod(0o600)
    return cfg


async def test_pool_picks_a_named_pool(tmp_path: Path, provider: Provider) -> None:
    """--pool NAME reviews through [pools.NAME] only."""
    repo = make_repo(tmp_path)
    cfg = pools_config(tmp_path, provider.base_url)
    done = await review(repo, "--diff", "main", "--pool", "fast", "--json", cfg=cfg)
    assert done.returncode == 0, done.stderr.decode()
    assert {b["model"] for b in provider.bodies} == {"fast-model"}
    assert {r["alias"] for r in jsonl(done)} == {"fake/fast-model"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pool", "nope"], "no pool named 'nope' (known: fast"),
        (["--pool", "fast", "--model", "fake/x"], "not allowed with argument"),
    ],
)
async def test_pool_errors_exit_2(
    tmp_path: Path, provider: Provider, args: list[str], message: str
) -> None:
    """An unknown pool, or a pool and a pinned model together: exit 2, nobody asked."""
    repo = make_repo(tmp_path)
    done = await review(
        repo, "--diff", "main", *args, cfg=pools_config(tmp_path, provider.base_url)
    )
    assert done.returncode == 2
    assert message in done.stderr.decode()
    assert provider.bodies == []


async def test_unknown_pool_without_a_config_is_not_the_simulator(tmp_path: Path) -> None:
    """--pool with nothing configured names the missing pool instead of using the simulator."""
    repo = make_repo(tmp_path)
    done = await review(repo, "--diff", "main", "--pool", "fast")
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "no pool named 'fast'" in err and "simulator" not in err


@pytest.mark.parametrize("verbose", [True, False])
async def test_verbose_shows_the_fallover_log(
    tmp_path: Path, provider: Provider, verbose: bool
) -> None:
    """--verbose prints the fallover logger's INFO lines (a park) to stderr; without it, none."""
    repo = make_repo(tmp_path)
    provider.down = {"down"}
    flag = ["--verbose"] if verbose else []
    cfg = pools_config(tmp_path, provider.base_url)
    done = await review(repo, "--diff", "main", "src/added.py", *flag, cfg=cfg)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    logged = [line for line in err.splitlines() if line.startswith("fallover: ")]
    if verbose:
        assert any("fake/down" in line for line in logged), err
    else:
        assert logged == []
    assert "Tokens: fake/main-model 100 in, 10 out" in err
    assert SECRET not in err


async def test_ctrl_c_exits_130_and_keeps_what_finished(tmp_path: Path, provider: Provider) -> None:
    """SIGINT during a --diff review: exit 130 promptly, the finished file printed as JSON."""
    repo = make_repo(tmp_path)
    provider.hang = {"src/modified.py"}
    cfg = config(tmp_path, provider.base_url)
    proc = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "fallover._cli",
            "review",
            "--diff",
            "main",
            "--json",
            "--concurrency",
            "1",
            "--config",
            str(cfg),
        ],
        cwd=repo,
        env=env(tmp_path),
    )
    code, elapsed, out, err = await interrupt_when(
        proc, lambda: "src/modified.py" in provider.prompts
    )
    assert code == 130
    assert elapsed < 5  # a guard against hanging, not a timing benchmark
    assert "Traceback" not in err and "Reviewed 1 of 4 files" in err and "3 not finished" in err
    assert [json.loads(line)["path"] for line in out.splitlines()] == ["src/added.py"]


async def test_a_closed_pipe_ends_quietly(tmp_path: Path, provider: Provider) -> None:
    """A reader that goes away (`| head`) ends the command without a traceback."""
    repo = make_repo(tmp_path)
    cfg = config(tmp_path, provider.base_url)
    read, write = os.pipe()
    os.close(read)
    try:
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [
                    sys.executable,
                    "-m",
                    "fallover._cli",
                    "review",
                    "--diff",
                    "main",
                    "--format",
                    "sarif",
                    "--config",
                    str(cfg),
                ],
                check=False,
                cwd=repo,
                env=env(tmp_path),
                stdout=write,
            )
    finally:
        os.close(write)
    err = done.stderr.decode()
    assert done.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err


def capable_config(root: Path, base_url: str, *members: tuple[str, list[str]]) -> Path:
    """One provider per (model, capabilities), all on the fake, routed in that order."""
    text = ""
    for model, caps in members:
        text += (
            f'[providers.{model}]\nprotocol = "openai"\nbase_url = "{base_url}/v1"\n'
            f'api_key = "{SECRET}"\nmodel = "{model}"\ncapabilities = {json.dumps(caps)}\n'
        )
    entries = ", ".join(f'{{ provider = "{model}" }}' for model, _ in members)
    text += f"[routing]\nmodels = [{entries}]\ncooldown = 30\n"
    cfg = root / "fallover.toml"
    cfg.write_text(text)
    cfg.chmod(0o600)
    return cfg


async def test_the_findings_schema_goes_out_as_structured_output(
    tmp_path: Path, provider: Provider
) -> None:
    """A member declaring json_schema is sent the findings schema as response_format."""
    repo = make_repo(tmp_path)
    cfg = capable_config(tmp_path, provider.base_url, ("strong", ["json_schema"]))
    done = await review(repo, "--diff", "main", "src/added.py", "--json", cfg=cfg)
    assert done.returncode == 0, done.stderr.decode()
    (body,) = provider.bodies
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "review_findings"
    assert fmt["json_schema"]["schema"]["required"] == ["findings"]
    assert jsonl(done)[0]["structured"] is True


async def test_a_member_without_json_schema_is_asked_in_words(
    tmp_path: Path, provider: Provider
) -> None:
    """Without json_schema: no response_format; the prompt spells out the JSON; checked alike."""
    repo = make_repo(tmp_path)
    cfg = capable_config(tmp_path, provider.base_url, ("plain", ["tools"]))
    done = await review(repo, "--diff", "main", "src/added.py", "--json", cfg=cfg)
    assert done.returncode == 0, done.stderr.decode()
    (body,) = provider.bodies
    assert "response_format" not in body
    assert "Answer with one JSON object" in body["messages"][0]["content"]
    (record,) = jsonl(done)
    assert record["structured"] is False
    assert [f["line"] for f in record["findings"]] == [2]


async def test_a_mixed_pool_falls_over_when_the_schema_member_is_down(
    tmp_path: Path, provider: Provider
) -> None:
    """One member lacks json_schema: the pool is asked in words and the file falls over."""
    repo = make_repo(tmp_path)
    provider.down = {"strong"}
    cfg = capable_config(
        tmp_path, provider.base_url, ("strong", ["json_schema"]), ("plain", ["tools"])
    )
    done = await review(repo, "--diff", "main", "src/added.py", "--json", cfg=cfg)
    assert done.returncode == 0, done.stderr.decode()
    assert [(b["model"], "response_format" in b) for b in provider.bodies] == [
        ("strong", False),
        ("plain", False),
    ]
    (record,) = jsonl(done)
    assert record["ok"] and record["alias"] == "plain/plain" and record["structured"] is False
    assert [(a["alias"], a["outcome"]) for a in record["attempts"]] == [
        ("strong/strong", "error"),
        ("plain/plain", "ok"),
    ]
