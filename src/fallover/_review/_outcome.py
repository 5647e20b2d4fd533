"""The result of reviewing one file, and its JSON record (one line of ``--format jsonl``)."""

from __future__ import annotations

from typing import Any

import msgspec

from .._types import Attempt, ChatResponse, Usage
from ._change import Change
from ._findings import Finding

__all__ = ["FileReview"]


class FileReview(msgspec.Struct, kw_only=True, frozen=True):
    """One file's review: its findings, or why there are none.

    ``response`` is the member's answer when one came, even when its findings were
    malformed (then ``text`` keeps what it said). ``structured`` tells whether the
    answer was held to the findings schema by the provider.
    """

    change: Change
    findings: tuple[Finding, ...] | None
    response: ChatResponse | None = None
    error: str | None = None
    attempts: tuple[Attempt, ...] = ()
    structured: bool = False
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the findings came back well formed."""
        return self.findings is not None

    @property
    def usage(self) -> Usage | None:
        """The tokens the answering member reported, if any."""
        return self.response.usage if self.response else None

    def record(self) -> dict[str, Any]:
        """The JSON object written for this file by ``--format jsonl``."""
        r = self.response
        return {
            "path": self.change.path,
            "status": self.change.status,
            "old_path": self.change.old_path,
            "ok": self.ok,
            "alias": r.alias if r else None,
            "model": r.model if r else None,
            "structured": self.structured if r else None,
            "findings": (
                [msgspec.to_builtins(f) for f in self.findings]
                if self.findings is not None
                else None
            ),
            "text": r.text if r and not self.ok else None,  # the raw reply, kept when malformed
            "error": self.error,
            "usage": msgspec.to_builtins(r.usage) if r and r.usage else None,
            "attempts": [
                {
                    "alias": a.alias,
                    "outcome": a.outcome,
                    "status": a.status,
                    "error": a.error,
                    "elapsed_s": a.elapsed_s,
                }
                for a in self.attempts
            ],
            "elapsed_s": self.elapsed_s,
        }
