"""``--format text``: findings grouped by file, each with its severity and line; a summary."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from ._findings import SEVERITIES, Finding
from ._outcome import FileReview

__all__ = ["summary", "write_text"]

_INDENT = "    "


def _where(f: Finding) -> str:
    if f.end_line is not None and f.end_line != f.line:
        return f"lines {f.line}-{f.end_line}"
    return f"line {f.line}"


def _heading(r: FileReview) -> str:
    path = r.change.path
    if r.change.old_path:
        path += f" (renamed from {r.change.old_path})"
    if r.response is None:
        return f"── {path}  FAILED: {r.error}"
    failed = [a.alias for a in r.attempts if a.outcome == "error"]
    skipped = [a.alias for a in r.attempts if a.outcome == "skipped"]
    extra = f", fell over from {', '.join(dict.fromkeys(failed))}" if failed else ""
    extra += f", skipped {', '.join(dict.fromkeys(skipped))}" if skipped else ""
    head = f"── {path}  ({r.response.alias}, {r.elapsed_s:.1f}s{extra})"
    return head if r.ok else f"{head}  FAILED: {r.error}"


def write_text(reviews: Sequence[FileReview], out: TextIO) -> None:
    """Print each file's findings, or its failure with the raw reply it got."""
    for r in reviews:
        print(_heading(r), file=out)
        if r.findings is None:
            if r.response is not None:
                print(f"{_INDENT}the reply, kept as it came:", file=out)
                print(textwrap.indent(r.response.text.strip() or "(empty)", _INDENT * 2), file=out)
        elif not r.findings:
            print(f"{_INDENT}no findings", file=out)
        for f in r.findings or ():
            print(f"{_INDENT}{f.severity:<8} {_where(f):<12} {f.title}  [{f.category}]", file=out)
            body = textwrap.fill(f.body.strip(), width=88, subsequent_indent=_INDENT * 2)
            if body:
                print(f"{_INDENT * 2}{body}", file=out)
        print(file=out)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(reviews: Sequence[FileReview], total: int, elapsed: float) -> list[str]:
    """The closing lines: files served by whom, fallovers, failures, findings, tokens."""
    served = Counter(r.response.alias for r in reviews if r.ok and r.response)
    failed = sum(not r.ok for r in reviews)
    fell = sum(1 for r in reviews if r.ok and any(a.outcome == "error" for a in r.attempts))
    by = ", ".join(f"{n} by {a}" for a, n in served.most_common()) or "none"
    line = (
        f"Reviewed {len(reviews) - failed} of {_count(total, 'file')} in {elapsed:.1f}s "
        f"({by}); {fell} fell over; {failed} failed"
    )
    missing = total - len(reviews)
    if missing:
        line += f"; {missing} not finished"
    levels: Counter[str] = Counter(f.severity for r in reviews for f in r.findings or ())
    found = sum(levels.values())
    detail = ", ".join(f"{levels[s]} {s}" for s in SEVERITIES if levels[s])
    lines = [line, f"{_count(found, 'finding')}" + (f" ({detail})" if detail else "")]
    tokens: dict[str, list[int]] = {}
    for r in reviews:
        if r.response is not None and r.usage is not None:
            sums = tokens.setdefault(r.response.alias, [0, 0])
            sums[0] += r.usage.input_tokens
            sums[1] += r.usage.output_tokens
    if tokens:
        lines.append(
            "Tokens: " + "; ".join(f"{a} {i} in, {o} out" for a, (i, o) in sorted(tokens.items()))
        )
    return lines
