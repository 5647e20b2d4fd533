"""``fallover review``: choose files, ask the pool for structured findings, report them.

One concern per module: ``_change`` (what a review covers), ``_files`` and ``_git``
(choosing whole files or the changes since a revision), ``_prompt`` (what is
sent), ``_findings`` (the schema and the check on return), ``_ask`` (the request
per file and the fallback without ``json_schema``), ``_run`` (concurrency),
``_text``/``_jsonl``/``_sarif`` (output), ``_progress`` (the bar on stderr),
``_simulated`` (the simulator's reviewer).
"""

from ._change import MAX_FILE_BYTES, Change, UsageError
from ._files import collect_files
from ._findings import FINDINGS_SCHEMA, Finding, parse_findings
from ._git import collect_diff
from ._jsonl import write_jsonl
from ._outcome import FileReview
from ._progress import progress
from ._prompt import DEFAULT_PROMPT, review_request
from ._run import review_all
from ._sarif import sarif_log, write_sarif
from ._simulated import findings_answer
from ._text import summary, write_text

__all__ = [
    "DEFAULT_PROMPT",
    "FINDINGS_SCHEMA",
    "MAX_FILE_BYTES",
    "Change",
    "FileReview",
    "Finding",
    "UsageError",
    "collect_diff",
    "collect_files",
    "findings_answer",
    "parse_findings",
    "progress",
    "review_all",
    "review_request",
    "sarif_log",
    "summary",
    "write_jsonl",
    "write_sarif",
    "write_text",
]
