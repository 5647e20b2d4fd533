"""What one review covers: a file, how it changed, and the lines a reviewer is shown.

Both ways of choosing files (whole files, or the changes since a revision) produce
the same ``Change``, so prompts, findings and reports never ask which one it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeAlias

import msgspec

from .. import _defaults

__all__ = ["MAX_FILE_BYTES", "Change", "Hunk", "Line", "Status", "UsageError", "skip_reason"]

MAX_FILE_BYTES = _defaults.REVIEW_MAX_FILE_BYTES
Status: TypeAlias = Literal["file", "modified", "added", "renamed"]
Mark: TypeAlias = Literal["+", "-", " "]


class UsageError(Exception):
    """Bad command-line input: the command exits 2 with this message."""


class Line(msgspec.Struct, frozen=True, array_like=True):
    """One line shown to the reviewer: its number in the new file (None when removed)."""

    number: int | None
    mark: Mark
    text: str


class Hunk(msgspec.Struct, kw_only=True, frozen=True):
    """A run of changed lines with their context, as a unified diff groups them."""

    header: str
    lines: tuple[Line, ...]


class Change(msgspec.Struct, kw_only=True, frozen=True):
    """One file to review.

    ``path`` is what the user sees and what findings name; ``uri`` is the same file
    relative to the repository root (the current directory outside git), written
    with ``/``, for code-scanning reports. ``hunks`` is empty for a whole-file
    review, where every line of ``text`` is under review.
    """

    path: str
    uri: str
    status: Status
    text: str
    old_path: str | None = None
    since: str | None = None
    hunks: tuple[Hunk, ...] = ()

    @property
    def line_count(self) -> int:
        """Lines in the new version of the file."""
        return len(self.text.splitlines())


def skip_reason(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """Why ``path`` is not reviewed (empty, too big, binary, not UTF-8), or None."""
    if path.is_symlink():
        return "a symbolic link"
    if not path.is_file():
        return "not a regular file"
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty"
        if size > max_bytes:
            return f"{size} bytes is over the {max_bytes}-byte limit"
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if b"\0" in data[:8192]:
        return "binary"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None
