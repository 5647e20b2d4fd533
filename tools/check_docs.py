"""Check the docs: links resolve, TOML examples are valid configs or scenarios, and
every Python example compiles; complete programs run against the simulator."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import msgspec

import fallover
from fallover.testing import Scenario, spawn

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def pages() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "README.zh-CN.md", ROOT / "CHANGELOG.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    return [p for p in found if p.exists()]


def slug(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text("utf-8"))
    return {slug(m) for m in re.findall(r"^#+\s+(.*)$", text, re.MULTILINE)}


def check_links(page: Path) -> list[str]:
    problems = []
    text = FENCE.sub("", page.read_text("utf-8"))
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # external: not reachable from here, not checked
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{page.relative_to(ROOT)}: broken link {target}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(
                f"{page.relative_to(ROOT)}: no heading #{anchor} in {path or page.name}"
            )
    return problems


def check_toml(page: Path, body: str) -> list[str]:
    where = page.relative_to(ROOT)
    try:
        data = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        return [f"{where}: TOML example does not parse: {exc}"]
    try:
        if (
            "models" in data and "routing" not in data and "providers" not in data
        ) or "default" in data:
            msgspec.convert(data, Scenario)
        else:
            with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
                fh.write(body)
            try:
                fallover.load_config(fh.name)
            finally:
                os.unlink(fh.name)
    except (msgspec.ValidationError, Exception) as exc:
        return [f"{where}: TOML example is not valid: {exc}"]
    return []


def run_python(page: Path, body: str, base: str) -> list[str]:
    where = page.relative_to(ROOT)
    try:
        compile(body, str(where), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as exc:
        return [f"{where}: Python example does not compile: {exc}"]
    if "asyncio.run(" not in body:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith("_API_KEY") and "FALLOVER" not in k
        }
        env.update(
            HOME=tmp,
            XDG_CONFIG_HOME=tmp,
            OPENAI_API_KEY="sk-docs-example",
            OPENAI_BASE_URL=base + "/v1",
        )
        done = subprocess.run(
            [sys.executable, "-c", body], cwd=tmp, env=env, capture_output=True, timeout=60
        )
    if done.returncode != 0:
        return [f"{where}: Python example failed:\n{done.stderr.decode()[-2000:]}"]
    return []


def main() -> int:
    problems: list[str] = []
    proc, base = spawn()
    ran = 0
    try:
        for page in pages():
            problems += check_links(page)
            for lang, body in FENCE.findall(page.read_text("utf-8")):
                if lang == "toml":
                    problems += check_toml(page, body)
                elif lang == "python":
                    problems += run_python(page, body, base)
                    ran += "asyncio.run(" in body
    finally:
        proc.terminate()
        proc.wait()
    for p in problems:
        print(p)
    print(f"checked {len(pages())} pages, ran {ran} examples: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
