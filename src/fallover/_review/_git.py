"""The files changed since a revision, with their hunks, read from git.

The working tree is compared with the revision, so line numbers are those of the
files as they are on disk now, staged or not. Untracked files that git does not
ignore count as added: they are part of the change a reviewer is about to make.
Deleted, binary, oversized and non-text files are skipped with a note.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ._change import MAX_FILE_BYTES, Change, Hunk, Line, Status, UsageError, skip_reason

__all__ = ["DIFF_CONTEXT", "collect_diff"]

# Lines of unchanged code shown around each hunk: enough to see the enclosing block.
DIFF_CONTEXT = 10
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_GIT_TIMEOUT = 60.0


class _GitFailed(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


def _git(top: Path, *args: str) -> bytes:
    """Run git in ``top`` with literal pathspecs; raise _GitFailed on a non-zero exit."""
    try:
        done = subprocess.run(
            ["git", "--literal-pathspecs", "-C", str(top), *args],
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError("--diff needs git, and no git command was found") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"git {args[0]} took more than {_GIT_TIMEOUT:g}s") from None
    if done.returncode != 0:
        raise _GitFailed(done.stderr.decode("utf-8", "replace").strip())
    return done.stdout


def _toplevel(cwd: Path) -> Path:
    try:
        out = _git(cwd, "rev-parse", "--show-toplevel")
    except _GitFailed:
        raise UsageError(f"--diff needs a git repository, and {cwd} is not in one") from None
    return Path(out.decode("utf-8", "surrogateescape").strip()).resolve()


def _commit(top: Path, rev: str) -> str:
    if rev.startswith("-"):  # never let a revision be read as an option
        raise UsageError(f"--diff {rev}: not a revision")
    try:
        out = _git(top, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except _GitFailed:
        raise UsageError(f"--diff {rev}: unknown revision") from None
    return out.decode().strip()


def _pathspec(top: Path, cwd: Path, commit: str, raw: str) -> str:
    """``raw`` relative to the repository root; it must be inside it and exist somewhere."""
    full = (cwd / raw).resolve()
    try:
        rel = full.relative_to(top).as_posix()
    except ValueError:
        raise UsageError(f"{raw}: outside the repository at {top}") from None
    rel = rel or "."
    if not full.exists() and not _git(top, "ls-tree", "--name-only", commit, "--", rel).strip():
        raise UsageError(f"{raw}: no such file or directory, now or at the revision")
    return rel


def _split_z(out: bytes) -> list[str]:
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def _entries(top: Path, commit: str, specs: list[str]) -> list[tuple[str, str, str | None]]:
    """``(status letter, path, old path)`` for each file that differs from ``commit``."""
    fields = _split_z(
        _git(top, "diff", "--no-ext-diff", "--name-status", "-z", "-M", commit, "--", *specs)
    )
    entries: list[tuple[str, str, str | None]] = []
    i = 0
    while i < len(fields):
        letter = fields[i][0]
        if letter in "RC":
            entries.append((letter, fields[i + 2], fields[i + 1]))
            i += 3
        else:
            entries.append((letter, fields[i + 1], None))
            i += 2
    for path in _split_z(_git(top, "ls-files", "-o", "--exclude-standard", "-z", "--", *specs)):
        entries.append(("?", path, None))
    return sorted(entries, key=lambda e: e[1])


def _hunks(top: Path, commit: str, path: str, old: str | None) -> tuple[Hunk, ...]:
    paths = [old, path] if old else [path]
    out = _git(
        top,
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "-M",
        f"-U{DIFF_CONTEXT}",
        commit,
        "--",
        *paths,
    )
    return parse_hunks(out.decode("utf-8", "replace"))


def parse_hunks(patch: str) -> tuple[Hunk, ...]:
    """The hunks of a one-file unified diff, each line numbered in the new file."""
    hunks: list[Hunk] = []
    header = ""
    lines: list[Line] = []
    number = 0
    for raw in patch.splitlines():
        match = _HUNK.match(raw)
        if match:
            if header:
                hunks.append(Hunk(header=header, lines=tuple(lines)))
            header, lines, number = raw, [], int(match.group(1))
        elif not header or not raw or raw.startswith("\\"):
            continue  # file headers before the first hunk; "\ No newline at end of file"
        elif raw[0] == "-":
            lines.append(Line(None, "-", raw[1:]))
        elif raw[0] in "+ ":
            lines.append(Line(number, "+" if raw[0] == "+" else " ", raw[1:]))
            number += 1
    if header:
        hunks.append(Hunk(header=header, lines=tuple(lines)))
    return tuple(hunks)


def _added(text: str) -> tuple[Hunk, ...]:
    rows = text.splitlines()
    lines = tuple(Line(n, "+", row) for n, row in enumerate(rows, 1))
    return (Hunk(header=f"@@ -0,0 +1,{len(rows)} @@", lines=lines),)


_STATUS: dict[str, Status] = {"M": "modified", "T": "modified", "A": "added", "?": "added"}


def collect_diff(
    rev: str,
    paths: Sequence[str],
    *,
    cwd: Path,
    max_bytes: int = MAX_FILE_BYTES,
) -> tuple[list[Change], list[str]]:
    """The files changed since ``rev`` under ``paths`` (default: the whole repository).

    Returns the changes to review, in path order, and notes on what was skipped.
    Raises UsageError outside a repository, for an unknown revision, or for a path
    outside the repository.
    """
    cwd = cwd.resolve()
    top = _toplevel(cwd)
    commit = _commit(top, rev)
    specs = [_pathspec(top, cwd, commit, raw) for raw in paths] or ["."]
    changes: list[Change] = []
    notes: list[str] = []
    for letter, path, old in _entries(top, commit, specs):
        if letter == "D":
            notes.append(f"skipped {path}: deleted")
            continue
        if letter == "U":
            notes.append(f"skipped {path}: unmerged")
            continue
        why = skip_reason(top / path, max_bytes)
        if why:
            notes.append(f"skipped {path}: {why}")
            continue
        text = (top / path).read_text("utf-8")
        hunks = _added(text) if letter == "?" else _hunks(top, commit, path, old)
        if not hunks:
            notes.append(f"skipped {path}: no changed lines")
            continue
        changes.append(
            Change(
                path=path,
                uri=path,
                status="renamed" if letter in "RC" else _STATUS.get(letter, "modified"),
                old_path=old,
                since=rev,
                text=text,
                hunks=hunks,
            )
        )
    return changes, notes
