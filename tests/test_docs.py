"""The docs stay in step: every config key documented in English is in the Chinese reference."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from fallover._config import Config, ProviderConfig, RouteEntry, RoutingConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"
KEY = re.compile(r"^\|\s*`([a-z_]+)`\s*\|", re.MULTILINE)


def documented(page: Path) -> set[str]:
    return set(KEY.findall(page.read_text("utf-8")))


def schema_keys() -> set[str]:
    keys: set[str] = set()
    for struct in (Config, ProviderConfig, RoutingConfig):
        keys |= set(struct.__struct_fields__)
    return keys - {"path"}


def test_english_reference_documents_every_schema_key() -> None:
    """Every key the schema accepts has a row in docs/configuration.md."""
    missing = schema_keys() - documented(DOCS / "configuration.md")
    assert not missing, f"undocumented keys: {sorted(missing)}"
    assert set(RouteEntry.__struct_fields__) <= set(
        re.findall(r"(\w+) = ", (DOCS / "configuration.md").read_text("utf-8"))
    )


def test_chinese_reference_has_every_english_key() -> None:
    """A key documented in English is missing from docs/zh-CN/configuration.md: fail."""
    english = documented(DOCS / "configuration.md")
    chinese = documented(DOCS / "zh-CN" / "configuration.md")
    assert english, "no keys found in the English reference"
    assert english - chinese == set(), f"missing in Chinese: {sorted(english - chinese)}"


def test_chinese_pages_mirror_the_english_ones() -> None:
    """Quick start, configuration reference and routing guide exist in both languages."""
    for name in ("quickstart.md", "configuration.md", "routing.md"):
        assert (DOCS / name).exists() and (DOCS / "zh-CN" / name).exists(), name


def test_configuration_examples_are_valid() -> None:
    """The TOML examples in both references decode with the real schema."""
    import tomllib

    for page in (DOCS / "configuration.md", DOCS / "zh-CN" / "configuration.md"):
        blocks = re.findall(r"```toml\n(.*?)```", page.read_text("utf-8"), re.DOTALL)
        assert blocks, page
        for block in blocks:
            msgspec.convert(tomllib.loads(block), Config)
