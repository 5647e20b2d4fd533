"""``--format jsonl``: one JSON object per file, in input order (``--json`` is an alias)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from ._outcome import FileReview

__all__ = ["write_jsonl"]


def write_jsonl(reviews: Sequence[FileReview], out: TextIO) -> None:
    """Write one line per file: ``FileReview.record()``."""
    for r in reviews:
        out.write(json.dumps(r.record(), ensure_ascii=False) + "\n")
