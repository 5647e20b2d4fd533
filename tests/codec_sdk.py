"""Strict validators built from the official SDKs' request types, for the codec tests.

The SDKs' TypedDicts accept unknown keys and their ``Iterable`` fields are
validated lazily, so a plain ``TypeAdapter`` would pass a misspelt field. These
validators forbid extra keys everywhere and walk every iterable.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import msgspec
from pydantic import TypeAdapter
from pydantic_core import SchemaValidator


def _forbid_extras(schema: Any) -> None:
    if isinstance(schema, dict):
        if schema.get("type") in ("typed-dict", "model-fields"):
            schema["extra_behavior"] = "forbid"
            schema.pop("extras_schema", None)
        if schema.get("type") == "model":
            schema.get("config", {}).pop("extra_fields_behavior", None)
        for value in schema.values():
            _forbid_extras(value)
    elif isinstance(schema, list):
        for value in schema:
            _forbid_extras(value)


@functools.cache
def _validator(kind: str) -> SchemaValidator:
    if kind == "openai":
        from openai.types.chat import completion_create_params as o

        t: Any = o.CompletionCreateParamsNonStreaming
    elif kind == "openai-stream":
        from openai.types.chat import completion_create_params as o

        t = o.CompletionCreateParamsStreaming
    elif kind == "anthropic":
        from anthropic.types import message_create_params as a

        t = a.MessageCreateParamsNonStreaming
    else:
        from anthropic.types import message_create_params as a

        t = a.MessageCreateParamsStreaming
    schema = copy.deepcopy(TypeAdapter(t).core_schema)
    _forbid_extras(schema)
    return SchemaValidator(schema)


def _drain(value: Any) -> None:
    if isinstance(value, dict):
        for v in value.values():
            _drain(v)
    elif not isinstance(value, str | bytes) and hasattr(value, "__iter__"):
        for v in value:
            _drain(v)


def _without(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def valid_body(
    protocol: str, body: bytes, *, stream: bool = False, beyond: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``body`` decoded, after the SDK's request type for ``protocol`` accepted it.

    ``beyond`` names fields the SDK's types do not have (a provider's own
    extensions, sent by the SDK as ``extra_body``): they are left out of the
    check, wherever they are, and kept in the returned body.
    """
    decoded = msgspec.json.decode(body)
    kind = protocol + ("-stream" if stream else "")
    _drain(_validator(kind).validate_python(_without(decoded, frozenset(beyond))))
    assert isinstance(decoded, dict)
    return decoded
