"""The fallover command, driven as a subprocess against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from fallover.testing import Fault

from .conftest import SECRET, SimFactory, interrupt_when

KEYS = [
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "DEEPSEEK_API_KEY",
    "DASHSCOPE_API_KEY",
    "ARK_API_KEY",
    "MOONSHOT_API_KEY",
    "ZHIPUAI_API_KEY",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
    "VLLM_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "FALLOVER_CONFIG",
]


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in KEYS}
    e.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "xdg"), **extra)
    return e


async def run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(60):
        return await anyio.run_process(
            [sys.executable, "-m", "fallover._cli", *args],
            check=False,
            cwd=tmp_path,
            env=env(tmp_path, **extra),
        )


RECORD_KEYS = {
    "path",
    "status",
    "old_path",
    "ok",
    "alias",
    "model",
    "structured",
    "findings",
    "text",
    "error",
    "usage",
    "attempts",
    "elapsed_s",
}


def tree(root: Path) -> list[str]:
    files = {
        "src/a.py": "def a():\n    return 1  # TODO\n",
        "src/b.py": "print('b')\n",
        "src/c.md": "# notes\n",
        "src/.hidden.py": "secret = 1\n",
        "src/build/gen.py": "generated = True\n",
        "src/blob.bin": None,
        "src/empty.py": "",
    }
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            p.write_bytes(b"\x00\x01\x02")
        else:
            p.write_text(text)
    (root / "src" / "big.txt").write_text("x" * 300_000)
    (root / "src" / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    return ["src/a.py", "src/b.py", "src/build/gen.py", "src/c.md"]


def config_for(tmp_path: Path, base: str, *models: str) -> Path:
    entries = ", ".join(f'{{ provider = "sim", model = "{m}" }}' for m in models)
    cfg = tmp_path / "fallover.toml"
    cfg.write_text(
        f'[providers.sim]\nprotocol = "openai"\nbase_url = "{base}/v1"\napi_key = "{SECRET}"\n'
        f"[routing]\nmodels = [{entries}]\ncooldown = 0.2\ncooldown_max = 0.5\n"
    )
    cfg.chmod(0o600)
    return cfg


async def test_embedded_default_reviews_with_nothing_set_up(tmp_path: Path) -> None:
    """No config, no key: the built-in simulator is used and every file is reviewed."""
    expected = tree(tmp_path)
    done = await run(tmp_path, "review", "src", "--json")
    assert done.returncode == 0, done.stderr.decode()
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["path"] for r in lines] == expected
    for r in lines:
        assert set(r) == RECORD_KEYS
        assert r["ok"] and r["alias"] in {"sim/primary", "sim/backup"} and r["error"] is None
        for a in r["attempts"]:
            assert set(a) == {"alias", "outcome", "status", "error", "elapsed_s"}
    found = {(r["path"], f["line"], f["category"]) for r in lines for f in r["findings"]}
    assert found == {("src/a.py", 2, "maintainability"), ("src/b.py", 1, "style")}
    stderr = done.stderr.decode()
    assert stderr.count("built-in simulator") == 1
    for skipped in (
        "blob.bin: binary",
        "empty.py: empty",
        "big.txt: 300000 bytes",
        "latin1.txt: not UTF-8",
    ):
        assert skipped in stderr
    assert ".hidden" not in done.stdout.decode() + stderr


async def test_gitignored_files_are_skipped(tmp_path: Path) -> None:
    """Inside a git repository, ignored paths are not reviewed."""
    tree(tmp_path)
    (tmp_path / ".gitignore").write_text("build/\n*.md\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    done = await run(tmp_path, "review", "src", "--json")
    paths = [json.loads(line)["path"] for line in done.stdout.decode().splitlines()]
    assert paths == ["src/a.py", "src/b.py"]


async def test_human_output_names_the_writer_and_summarises(
    tmp_path: Path, simulator: SimFactory
) -> None:
    """Each review names the member that wrote it; the summary counts fallovers."""
    tree(tmp_path)
    sim = await simulator(
        bad=Fault(statuses=[503], repeat=True), good=Fault(reply='{"findings": []}')
    )
    config_for(tmp_path, sim.base_url, "bad", "good")
    done = await run(tmp_path, "review", "src/a.py", "src/b.py")
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    assert "── src/a.py  (sim/good" in out and "fell over from sim/bad" in out
    assert out.count("no findings") == 2
    assert "Reviewed 2 of 2 files" in err and "2 by sim/good" in err
    assert SECRET not in out + err


async def test_one_failed_file_exits_1_and_loses_nothing(
    tmp_path: Path, simulator: SimFactory
) -> None:
    """A file that fails is reported; the others are still printed; exit 1."""
    tree(tmp_path)
    sim = await simulator(only=Fault(statuses=[400]))
    config_for(tmp_path, sim.base_url, "only")
    done = await run(tmp_path, "review", "src", "--json", "--concurrency", "1")
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["ok"] for r in lines] == [False, True, True, True]
    assert lines[0]["error"].startswith("BadRequest")
    assert lines[0]["attempts"][0]["status"] == 400


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["review", "nope/"], "nope/: no such file or directory"),
        (["review", "src", "--config", "missing.toml"], "missing.toml: no such config file"),
        (["review", "src", "--model", "nosuch/x"], "'nosuch' is not a provider"),
        (["review", "src", "--concurrency", "0"], "must be at least 1"),
        (["check", "--config", "bad.toml"], "bad.toml: routing.policy: 'fastest' is not a policy"),
    ],
)
async def test_usage_and_config_errors_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Usage and config errors: exit 2, the message on stderr, no traceback."""
    tree(tmp_path)
    (tmp_path / "bad.toml").write_text('[routing]\npolicy = "fastest"\n')
    done = await run(tmp_path, *args)
    err = done.stderr.decode()
    assert done.returncode == 2
    assert message in err
    assert "Traceback" not in err


async def test_check_prints_the_pool_with_keys_redacted(tmp_path: Path) -> None:
    """check lists members, protocols, URLs and key sources, never the key."""
    cfg = tmp_path / "fallover.toml"
    cfg.write_text(
        '[routing]\nmodels = [{ provider = "openai" }, { provider = "deepseek" }]\npolicy = "round-robin"\n'
    )
    done = await run(tmp_path, "check", OPENAI_API_KEY=SECRET, DEEPSEEK_API_KEY=SECRET)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "openai/gpt-4o-mini" in out and "deepseek/deepseek-chat" in out
    assert "env OPENAI_API_KEY (set)" in out and "round-robin" in out
    assert "presets with keys in the environment: openai, deepseek" in out
    assert SECRET not in out + done.stderr.decode()


async def test_check_names_a_missing_key(tmp_path: Path) -> None:
    """check fails with exit 2 when a member's key variable is unset."""
    (tmp_path / "fallover.toml").write_text('model = "deepseek"\n')
    done = await run(tmp_path, "check")
    assert done.returncode == 2
    assert "DEEPSEEK_API_KEY" in done.stderr.decode()


async def test_ctrl_c_exits_130_promptly_and_keeps_what_finished(
    tmp_path: Path, simulator: SimFactory
) -> None:
    """SIGINT mid-run: exit 130 promptly, finished files printed, no traceback."""
    tree(tmp_path)
    sim = await simulator(slow=Fault(after=1, hang=True))  # the first file answers, then silence
    config_for(tmp_path, sim.base_url, "slow")
    proc = await anyio.open_process(
        [sys.executable, "-m", "fallover._cli", "review", "src", "--json", "--concurrency", "1"],
        cwd=tmp_path,
        env=env(tmp_path),
    )
    code, elapsed, out, err = await interrupt_when(proc, lambda: sim.requests_for("slow") >= 2)
    assert code == 130
    assert elapsed < 5  # a guard against hanging, not a timing benchmark
    assert "Traceback" not in err
    assert [json.loads(line)["path"] for line in out.splitlines()] == ["src/a.py"]


async def test_simulate_serves_both_protocols(tmp_path: Path) -> None:
    """`fallover simulate` answers OpenAI and Anthropic requests and logs them."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scenario = tmp_path / "faults.toml"
    scenario.write_text("[models.flaky]\nstatuses = [429]\nretry_after = 0\n")
    proc = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "fallover._cli",
            "simulate",
            "--port",
            str(port),
            "--scenario",
            str(scenario),
        ],
        env=env(tmp_path),
    )
    import fallover as f

    async with proc:
        assert proc.stdout is not None
        with anyio.fail_after(20):
            first = (await proc.stdout.receive()).decode()
        assert f"http://127.0.0.1:{port}" in first
        base = f"http://127.0.0.1:{port}"
        req = f.ChatRequest(messages=[f.Message(role="user", content="hi")])
        async with f.OpenAIClient(model="flaky", base_url=base + "/v1", max_retries=0) as a:
            with pytest.raises(f.RateLimited):
                await a.complete(req)
            assert (await a.complete(req)).text
        async with f.AnthropicClient(model="claude", base_url=base) as b:
            assert (await b.complete(req)).text
        import aiohttp

        async with aiohttp.ClientSession() as s, s.get(base + "/_sim/log") as resp:
            log = await resp.json()
        assert [(e["model"], e["status"]) for e in log] == [
            ("flaky", 429),
            ("flaky", 200),
            ("claude", 200),
        ]
        proc.terminate()
        await proc.wait()
