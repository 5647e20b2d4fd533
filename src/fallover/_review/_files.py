"""Whole files to review: the paths given, directories walked as git would list them."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from ._change import MAX_FILE_BYTES, Change, UsageError, skip_reason

__all__ = ["collect_files", "repo_root"]


def repo_root(directory: Path) -> Path | None:
    """The top of the git work tree holding ``directory``, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    top = out.decode("utf-8", "surrogateescape").strip()
    return Path(top).resolve() if top else None


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


def _uri(path: Path, root: Path | None, cwd: Path) -> str:
    resolved = path.resolve()
    for base in (root, cwd):
        if base is not None:
            try:
                return resolved.relative_to(base).as_posix()
            except ValueError:
                pass
    return resolved.as_posix()


def collect_files(
    paths: Sequence[str], *, cwd: Path, max_bytes: int = MAX_FILE_BYTES
) -> tuple[list[Change], list[str]]:
    """The files to review whole, in a stable order, and notes on what was skipped."""
    # (shown path, path on disk): shown as given, or under the directory as given.
    files: list[tuple[Path, Path]] = []
    for raw in paths:
        shown = Path(raw)
        full = cwd / shown
        if full.is_file():
            files.append((shown, full))
        elif full.is_dir():
            listed = _git_files(full)
            if listed is None:
                listed = [q for q in full.rglob("*") if q.is_file()]
            files.extend(
                (shown / q.relative_to(full), q)
                for q in sorted(q for q in listed if q.is_file() and not _hidden(q, full))
            )
        else:
            raise UsageError(f"{raw}: no such file or directory")
    root = repo_root(cwd)
    seen: set[Path] = set()
    changes: list[Change] = []
    notes: list[str] = []
    for path, full in files:
        key = full.resolve()
        if key in seen:
            continue
        seen.add(key)
        why = skip_reason(full, max_bytes)
        if why:
            notes.append(f"skipped {path}: {why}")
            continue
        changes.append(
            Change(
                path=str(path),
                uri=_uri(full, root, cwd.resolve()),
                status="file",
                text=full.read_text("utf-8"),
            )
        )
    return changes, notes
