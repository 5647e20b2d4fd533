"""Secrets are hidden in one place, whatever their shape."""

from __future__ import annotations

import pytest

from fallover._redact import redact, redact_url


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("token key-ABCDEFGH12", "ABCDEFGH12"),
        ("Incorrect API key provided: sk-proj-abc123def456", "abc123def456"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("key AIzaSyD-0123456789abcdefghijklmnopqrstu not valid", "0123456789abcdefghij"),
        ("see https://u:hunter22@host.test/v1", "hunter22"),
        ("GET https://host.test/v1?api_key=zz-top&x=1", "zz-top"),
        ("GET https://host.test/v1?x=1&access_token=t0k3n", "t0k3n"),
    ],
)
def test_credential_shapes_are_hidden(text: str, hidden: str) -> None:
    """Key-shaped tokens, bearer tokens, URL credentials and key-like query values are hidden."""
    assert hidden not in redact(text)


def test_the_configured_key_is_hidden_whatever_its_shape() -> None:
    """A key that looks like nothing in particular is still hidden when it is ours."""
    key = "4f2c8d0e9b1a4c7e.Xy12AbCd"
    assert redact(f"bad key {key}!", key) == "bad key [redacted]!"
    assert key in redact(f"bad key {key}!")  # only because it is ours


def test_plain_text_is_left_alone() -> None:
    """Text with nothing secret comes back unchanged."""
    text = "server_error: The server is overloaded (try again in 2-3 s)."
    assert redact(text) == text


def test_redact_url_keeps_what_is_not_secret() -> None:
    """Host, path and harmless query parameters stay readable."""
    assert redact_url("redis://user:pw@cache.test:6379/0") == "redis://***@cache.test:6379/0"
    assert (
        redact_url("https://x.test/v1?api-version=2024-10-21&key=abc")
        == "https://x.test/v1?api-version=2024-10-21&key=***"
    )


def test_config_repr_and_check_hide_base_url_credentials(
    tmp_path: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A base_url with user info or ?key= shows neither in the config's repr nor in `check`."""
    import fallover
    from fallover._cli import main

    path = tmp_path / "fallover.toml"  # type: ignore[operator]
    path.write_text(
        'model = "corp/m"\n[providers.corp]\nprotocol = "openai"\n'
        'base_url = "https://bob:hunter22@llm.corp.test/v1?key=AQ.gem-key-42"\napi_key = "k"\n'
    )
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    from fallover._config import plan

    config = fallover.load_config(str(path))
    shown = repr(config) + repr(plan(config).members)
    assert main(["check", "--config", str(path)]) == 0
    shown += capsys.readouterr().out
    assert "llm.corp.test" in shown
    assert "hunter22" not in shown and "AQ.gem-key-42" not in shown
