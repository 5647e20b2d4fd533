"""Sessions: tests, lint, typing, docs (the default set), bench, demo."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing", "docs"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage."""
    session.install("-e", ".[test,redis,cli]")
    session.run(
        "pytest",
        "--cov=fallover",
        "--cov-branch",
        "--cov-report=term-missing:skip-covered",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint (with the ASYNC rules) and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "benchmarks", "tools", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "tools", "noxfile.py")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package and the typed API examples."""
    session.install("-e", ".[redis,cli,serve]", "mypy>=1.10")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Check the docs' links and run their Python examples against the simulator."""
    # The examples show the official SDKs pointed at the simulator and the gateway.
    session.install("-e", ".[test]")
    session.run("python", "tools/check_docs.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: ratios against baselines measured in the same run (pass --quick to smoke)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Review this repository's sources against the built-in simulator."""
    session.install("-e", ".[cli]")
    session.run("fallover", "review", "src", external=False)
