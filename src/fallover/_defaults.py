"""Every default value, defined once.

The config schema, the clients, the router, the gateway and the command line
all read their defaults from here, so a documented default is the one in force
whichever way a pool is built (see ``docs/architecture.md``). Validation rules
for these settings live in ``_rules.py``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ANTHROPIC_MAX_TOKENS",
    "BACKOFF_CAP",
    "BACKOFF_FIRST",
    "CALL_TIMEOUT",
    "COOLDOWN",
    "COOLDOWN_MAX",
    "FIRST_TOKEN_TIMEOUT",
    "HEDGE_AFTER",
    "IDLE_TIMEOUT",
    "KEY_CMD_TIMEOUT",
    "MAX_BODY_BYTES",
    "MAX_CONNECTIONS",
    "MAX_LINE_BYTES",
    "MAX_RETRIES",
    "MAX_RETRY_WAIT",
    "ON_INTERRUPT",
    "POLICY",
    "POOLED_MAX_RETRIES",
    "REVIEW_CONCURRENCY",
    "REVIEW_MAX_FILE_BYTES",
    "SERVER_HOST",
    "SERVER_MAX_BODY_BYTES",
    "SERVER_MAX_CONCURRENCY",
    "SERVER_PORT",
    "SIMULATOR_PORT",
    "STORE",
    "TIMEOUT",
    "WEIGHT",
]

# -- a provider (one member) ------------------------------------------------------------

TIMEOUT: Final = 60.0
"""Seconds per attempt: the whole answer, or a stream's response headers."""

FIRST_TOKEN_TIMEOUT: Final[float | None] = None
"""Streams: seconds from the headers to the first event; None waits as long as ``timeout``."""

IDLE_TIMEOUT: Final[float | None] = None
"""Streams: the longest silence between events; None means no limit."""

MAX_RETRIES: Final = 5
"""Retries of transient failures by a client used alone."""

POOLED_MAX_RETRIES: Final = 0
"""Retries by a member inside a pool: it fails fast, the pool falls over instead."""

MAX_RETRY_WAIT: Final = 10.0
"""The longest server-requested delay (Retry-After) waited out on the member."""

BACKOFF_FIRST: Final = 0.5
"""The first member retry delay in seconds; it doubles per retry, with jitter."""

BACKOFF_CAP: Final = 8.0
"""The longest member retry delay in seconds."""

MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""The largest response body (or a stream's text) read from a provider."""

MAX_LINE_BYTES: Final = 1024 * 1024
"""The longest SSE line read from a provider."""

MAX_CONNECTIONS: Final[int | None] = 1000
"""Connections a client keeps open at once (as the OpenAI SDK); a fan-out's concurrency bounds
the calls. Waiting for a free one is not counted in the attempt's ``timeout``."""

ANTHROPIC_MAX_TOKENS: Final = 4096
"""``max_tokens`` sent to the Messages API, which requires one, when a request sets none."""

KEY_CMD_TIMEOUT: Final = 10.0
"""Seconds an ``api_key_cmd`` may run."""

# -- a pool (routing) -------------------------------------------------------------------

POLICY: Final = "priority"
"""The order a call walks the members in."""

CALL_TIMEOUT: Final[float | None] = 180.0
"""Seconds for a whole call through a pool, waits and every attempt included."""

COOLDOWN: Final = 5.0
"""The first park of a member, in seconds; it doubles per consecutive park."""

COOLDOWN_MAX: Final = 60.0
"""The longest backoff park, and the park after auth, quota or unknown-model failures."""

HEDGE_AFTER: Final = 0.0
"""Seconds without a first event before a second member races; 0 turns hedging off."""

WEIGHT: Final = 1.0
"""A member's share under the ``weighted`` policy."""

STORE: Final = "memory"
"""Where parks live: this process's memory."""

ON_INTERRUPT: Final = "error"
"""What a stream does when it fails after its first event."""

# -- the gateway (fallover serve) -------------------------------------------------------

SERVER_HOST: Final = "127.0.0.1"
"""The gateway listens on loopback unless told otherwise."""

SERVER_PORT: Final = 8080
"""The gateway's port."""

SERVER_MAX_BODY_BYTES: Final = 16 * 1024 * 1024
"""The largest request body the gateway accepts (a few base64 images fit)."""

SERVER_MAX_CONCURRENCY: Final = 1024
"""Calls the gateway serves at once; more wait or are refused."""

# -- the command line -------------------------------------------------------------------

REVIEW_CONCURRENCY: Final = 8
"""Files ``fallover review`` sends at once."""

REVIEW_MAX_FILE_BYTES: Final = 200 * 1024
"""Files larger than this are skipped by ``fallover review``."""

SIMULATOR_PORT: Final = 8000
"""The port of ``fallover simulate``."""
