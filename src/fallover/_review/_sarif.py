"""``--format sarif``: a SARIF 2.1.0 log for code-scanning tools.

One run; one rule per finding category (``fallover/<category>``); one result per
finding, located by a URI relative to the repository root and a line region in
the new version of the file. A file that could not be reviewed is a tool
execution notification, and the run is then marked unsuccessful.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import quote

from ._findings import CATEGORIES, Finding
from ._outcome import FileReview

__all__ = ["SARIF_SCHEMA", "sarif_log", "write_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _rule_id(category: str) -> str:
    return f"fallover/{category}"


def _rules() -> list[dict[str, Any]]:
    return [
        {
            "id": _rule_id(name),
            "name": name.title().replace("-", ""),
            "shortDescription": {"text": f"Review finding: {name}"},
            "fullDescription": {"text": text},
            "defaultConfiguration": {"level": "warning"},
            "properties": {"tags": ["review", name]},
        }
        for name, text in CATEGORIES.items()
    ]


def _location(uri: str, f: Finding | None = None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": quote(uri), "uriBaseId": "SRCROOT"}}
    if f is not None:
        region = {"startLine": f.line}
        if f.end_line is not None:
            region["endLine"] = f.end_line
        physical["region"] = region
    return {"physicalLocation": physical}


def _result(f: Finding, uri: str, index: dict[str, int]) -> dict[str, Any]:
    text = f.title.strip()
    if f.body.strip():
        text += "\n\n" + f.body.strip()
    return {
        "ruleId": _rule_id(f.category),
        "ruleIndex": index[f.category],
        "level": f.severity,
        "message": {"text": text},
        "locations": [_location(uri, f)],
    }


def sarif_log(reviews: Sequence[FileReview], *, complete: bool = True) -> dict[str, Any]:
    """The SARIF log for ``reviews``; ``complete`` is False when the run was interrupted."""
    from .. import __version__  # here, not at import: the simulator imports this package

    index = {name: i for i, name in enumerate(CATEGORIES)}
    results = [_result(f, r.change.uri, index) for r in reviews for f in r.findings or ()]
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{r.change.path}: not reviewed: {r.error}"},
            "locations": [_location(r.change.uri)],
        }
        for r in reviews
        if not r.ok
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": complete and not notifications,
    }
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "fallover",
                        "version": __version__,
                        "rules": _rules(),
                    }
                },
                "originalUriBaseIds": {
                    "SRCROOT": {"description": {"text": "The root of the repository under review."}}
                },
                "invocations": [invocation],
                "results": results,
            }
        ],
    }


def write_sarif(reviews: Sequence[FileReview], out: TextIO, *, complete: bool = True) -> None:
    """Write the SARIF log for ``reviews`` as one JSON document."""
    json.dump(sarif_log(reviews, complete=complete), out, ensure_ascii=False, indent=2)
    out.write("\n")
