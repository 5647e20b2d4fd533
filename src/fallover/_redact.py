"""Secrets: what is never shown, decided in one place.

Everything that shows error text, a URL or a command passes it through
:func:`redact` (or :func:`redact_url`, the same rules). The configured key is
removed whatever its shape (Gemini, Zhipu and Ark keys are not ``sk-...``);
anything shaped like a key, a bearer token, URL credentials and key-like query
parameters are removed too. Callers redact before they truncate, so a cut can
never leave a key's prefix behind.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact", "redact_url"]

MASK = "***"

# One pass over the text: each alternative names what it hides. No leading character
# classes or IGNORECASE at the top level, so the scan stays cheap on the failure path.
_PATTERN = re.compile(
    # scheme://user:password@host -> scheme://***@host
    r"(?P<creds>://)[^/\s@?#]*@"
    # ?key=... &api_key=... &token=... -> the name kept, the value hidden
    r"|(?P<param>[?&;][a-zA-Z0-9_\-]*(?i:key|token|secret|password|passwd|signature|sig|auth)=)"
    r"[^&#\s\"'<>]*"
    # Authorization: Bearer <token>
    r"|(?P<bearer>[Bb]earer\s+)[^\s\"',;]+"
    # key-shaped tokens: sk-..., key-..., ak-..., pk-..., and Google's AIza...
    r"|(?P<prefix>\b(?:sk|key|ak|pk|SK|KEY|AK|PK))-[A-Za-z0-9_\-*]{6,}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
)
# Every alternative above needs one of these; text with none of them is returned as it is.
_TRIGGERS = ("-", "=", "://", "earer", "AIza")


def _hide(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group is None:
        return "[redacted]"
    if group == "prefix":
        return f"{match[group]}-[redacted]"
    if group == "bearer":
        return f"{match[group]}[redacted]"
    if group == "creds":
        return f"://{MASK}@"
    return f"{match[group]}{MASK}"


def redact(text: str, secret: str | None = None) -> str:
    """``text`` without ``secret`` and without anything that looks like a credential."""
    if secret:
        text = text.replace(secret, "[redacted]")
    for trigger in _TRIGGERS:
        if trigger in text:
            return _PATTERN.sub(_hide, text)
    return text


def redact_url(url: str, secret: str | None = None) -> str:
    """A URL without its credentials or key-like query values (``redis://***@host``)."""
    return redact(url, secret)
