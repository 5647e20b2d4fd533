"""Type-checked only (mypy --strict): the public API as a user calls it."""

from __future__ import annotations

import fallover


async def single() -> str:
    client = fallover.OpenAIClient(
        model="gpt-4o-mini", api_key="k", base_url="http://127.0.0.1:1/v1"
    )
    async with client:
        resp: fallover.ChatResponse = await client.complete(
            fallover.ChatRequest(messages=[fallover.Message(role="user", content="hi")])
        )
    usage: fallover.Usage | None = resp.usage
    attempts: tuple[fallover.Attempt, ...] = resp.attempts
    return resp.text + resp.alias + resp.model + str(usage) + str(len(attempts))


async def pool() -> list[str]:
    router = fallover.AsyncRouter(
        [
            fallover.OpenAIClient(model="gpt-4o-mini", api_key="k"),
            fallover.AnthropicClient(
                model="claude-sonnet-4-5", api_key="k", context_window=200_000
            ),
        ],
        policy="round-robin",
        call_timeout=180.0,
        cooldown=5.0,
        cooldown_max=60.0,
        store=fallover.MemoryCooldowns(),
    )
    request = fallover.ChatRequest(messages=[fallover.Message(role="user", content="x")])
    out: list[str] = []
    async with router:
        async for event in router.stream(request, on_interrupt="restart"):
            match event:
                case fallover.TextDelta(text=t):
                    out.append(t)
                case fallover.Restarted(alias=a, reason=r):
                    out.clear()
                    out.append(a + r)
                case fallover.Completed(response=done):
                    out.append(done.alias)
        results = await fallover.fan_out(router, [request] * 3, concurrency=2)
        for result in results:
            if isinstance(result, fallover.ChatResponse):
                out.append(result.text)
            elif isinstance(result, fallover.AllModelsFailed):
                out.extend(a.alias for a in result.attempts)
    return out


def configured() -> fallover.LLMClient:
    config: fallover.Config = fallover.load_config()
    try:
        return fallover.build_client(config, model="openai/gpt-4o-mini")
    except fallover.ConfigError as exc:
        raise SystemExit(f"{exc.path}: {exc.key}: {exc}") from exc


def handles(exc: Exception) -> str:
    if isinstance(exc, fallover.ProviderError):
        return f"{exc.alias} {exc.status} {exc.retry_after} {exc.code}"
    if isinstance(exc, fallover.StreamInterrupted):
        return exc.partial_text
    if isinstance(exc, fallover.RoutingTimeout):
        return str(len(exc.attempts))
    return str(exc)
