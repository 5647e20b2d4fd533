"""OpenTelemetry: GenAI spans and metrics per call, the log lines, and nothing when off."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import fallover as f


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_the_api_nothing_is_imported_and_instrument_says_what_to_install() -> None:
    """With OpenTelemetry absent, calls work, nothing is imported, instrument() names the extra."""
    done = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import asyncio, fallover as f

        async def ok(request):
            return "fine"

        router = f.AsyncRouter([f.MockClient(ok, alias="a/x"), f.MockClient(ok, alias="b/y")])
        req = f.ChatRequest(messages=[f.Message(role="user", content="hi")])
        print(asyncio.run(router.complete(req)).text)
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry.")))
        try:
            f.instrument(tracer_provider=object())
        except RuntimeError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    text, imported, error = done.stdout.splitlines()
    assert (text, imported) == ("fine", "[]")
    assert "pip install 'fallover[otel]'" in error


def test_instrument_refuses_what_is_not_a_provider() -> None:
    """instrument() names the argument that is not an OpenTelemetry provider."""
    with pytest.raises(TypeError, match=r"tracer_provider=\.\.\.\) got str"):
        f.instrument(tracer_provider="console")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"meter_provider=\.\.\.\) got int"):
        f.instrument(meter_provider=3)  # type: ignore[arg-type]
