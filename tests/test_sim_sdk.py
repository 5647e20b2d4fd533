"""The simulator as the official ``openai`` and ``anthropic`` SDKs see it.

Every answer is validated with the SDKs' own model classes, and every fault makes the SDK
raise (or retry) as it does against the real API.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import anthropic
import anyio
import httpx2
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fallover.testing import Fault, Scenario, Simulator

from .conftest import SimFactory
from .sdk import HELLO, STREAM_EVENT, claude, oai, sse


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as s:
        yield s


# -- OpenAI: answers ------------------------------------------------------------------


async def test_openai_create_validates_and_carries_a_request_id(sim: Simulator) -> None:
    """A plain completion is a valid ChatCompletion, with x-request-id like the real API."""
    async with oai(sim) as client:
        raw = await client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
    completion = ChatCompletion.model_validate(raw.http_response.json())
    assert completion.choices[0].message.content and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().id == completion.id


async def test_openai_raw_chunks_validate_and_usage_comes_only_when_asked(sim: Simulator) -> None:
    """Each chunk is a valid ChatCompletionChunk; the usage-only chunk needs include_usage."""
    body = {"model": "m", "messages": HELLO}
    plain = await sse(sim, "/v1/chat/completions", body)
    assert plain[-1][1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(data) for _, data in plain[:-1]]
    assert all(c.choices and c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({(c.id, c.created) for c in chunks}) == 1
    with_usage = await sse(
        sim, "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}}
    )
    last = ChatCompletionChunk.model_validate_json(with_usage[-2][1])
    assert last.choices == [] and last.usage is not None and last.usage.total_tokens > 0


async def test_openai_sdk_stream_loop_reads_every_chunk(sim: Simulator) -> None:
    """The usual `chunk.choices[0].delta.content` loop over a raw SDK stream works."""
    async with oai(sim) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text.startswith("Simulated review")


async def test_openai_stream_helper_assembles_the_final_completion(sim: Simulator) -> None:
    """chat.completions.stream() yields content events and get_final_completion() works."""
    async with (
        oai(sim) as client,
        client.chat.completions.stream(
            model="m", messages=HELLO, stream_options={"include_usage": True}
        ) as stream,
    ):
        deltas = [e.delta async for e in stream if e.type == "content.delta"]
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "".join(deltas) != ""
    assert final.usage is not None and final.usage.completion_tokens == len(
        [d for d in deltas if d]
    )


# -- Anthropic: answers ---------------------------------------------------------------


async def test_anthropic_create_validates_and_carries_a_request_id(sim: Simulator) -> None:
    """A plain message is a valid Message, with request-id like the real API."""
    async with claude(sim) as client:
        raw = await client.messages.with_raw_response.create(
            model="c", max_tokens=100, messages=HELLO
        )
    message = Message.model_validate(raw.http_response.json())
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"
    assert raw.headers["request-id"].startswith("req_")


async def test_anthropic_raw_events_validate(sim: Simulator) -> None:
    """Every streamed event is a valid Anthropic stream event, in the documented order."""
    events = await sse(sim, "/v1/messages", {"model": "c", "max_tokens": 100, "messages": HELLO})
    assert events[1] == ("ping", '{"type": "ping"}')  # the SDKs skip pings; the union lacks them
    parsed = [STREAM_EVENT.validate_json(data) for name, data in events if name != "ping"]
    assert [name for name, _ in events if name != "ping"] == [e.type for e in parsed]
    types = [e.type for e in parsed]
    assert types[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_anthropic_stream_helper_text_and_final_message(sim: Simulator) -> None:
    """messages.stream() gives text_stream and get_final_message() with usage."""
    async with (
        claude(sim) as client,
        client.messages.stream(model="c", max_tokens=100, messages=HELLO) as stream,
    ):
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == text != ""
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


# -- faults: statuses -----------------------------------------------------------------


async def test_openai_sdk_honours_retry_after_on_429(
    simulator: SimFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 with retry-after-ms makes the OpenAI SDK wait exactly that long, then succeed."""
    sim = await simulator(m=Fault(statuses=[429], retry_after_ms=20))
    caplog.set_level(logging.INFO, logger="openai")
    async with oai(sim, max_retries=1) as client:
        completion = await client.chat.completions.create(model="m", messages=HELLO)
    assert completion.choices[0].message.content
    assert [e["status"] for e in sim.log] == [429, 200]
    waits = [r.args[0] for r in caplog.records if r.msg.startswith("Retrying request in")]  # type: ignore[index]
    assert waits == [pytest.approx(0.02)]


async def test_anthropic_sdk_honours_retry_after_on_429(
    simulator: SimFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 with retry-after-ms makes the Anthropic SDK wait exactly that long, then succeed."""
    sim = await simulator(c=Fault(statuses=[429], retry_after_ms=20))
    caplog.set_level(logging.INFO, logger="anthropic")
    async with claude(sim, max_retries=1) as client:
        message = await client.messages.create(model="c", max_tokens=100, messages=HELLO)
    assert message.content
    assert [e["status"] for e in sim.log] == [429, 200]
    waits = [r.args[1] for r in caplog.records if r.msg.startswith("Retrying request to")]  # type: ignore[index]
    assert waits == [pytest.approx(0.02)]


async def test_rate_limit_errors_carry_retry_after(simulator: SimFactory) -> None:
    """Without retries, a 429 is the SDK's RateLimitError with Retry-After on its response."""
    sim = await simulator(m=Fault(statuses=[429], repeat=True, retry_after=7))
    async with oai(sim) as client:
        with pytest.raises(openai.RateLimitError) as oerr:
            await client.chat.completions.create(model="m", messages=HELLO)
    async with claude(sim) as client:
        with pytest.raises(anthropic.RateLimitError) as aerr:
            await client.messages.create(model="m", max_tokens=10, messages=HELLO)
    assert oerr.value.response.headers["retry-after"] == "7"
    assert aerr.value.response.headers["retry-after"] == "7"
    assert oerr.value.code == "rate_limit_exceeded"
    error = {"type": "rate_limit_error", "message": "simulated 429"}
    assert aerr.value.body == {"type": "error", "error": error}


async def test_server_errors_and_overload_map_to_the_sdk_classes(simulator: SimFactory) -> None:
    """5xx is InternalServerError in both SDKs; 529 is Anthropic's OverloadedError."""
    sim = await simulator(
        down=Fault(statuses=[503], repeat=True), busy=Fault(statuses=[529], repeat=True)
    )
    async with oai(sim) as client:
        with pytest.raises(openai.InternalServerError) as oerr:
            await client.chat.completions.create(model="down", messages=HELLO)
        assert oerr.value.status_code == 503
    async with claude(sim) as client:
        with pytest.raises(anthropic.InternalServerError) as aerr:
            await client.messages.create(model="down", max_tokens=10, messages=HELLO)
        assert aerr.value.status_code == 503
        with pytest.raises(anthropic.OverloadedError) as overloaded:
            await client.messages.create(model="busy", max_tokens=10, messages=HELLO)
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "simulated 529"},
    }


async def test_sdk_retries_a_5xx_then_succeeds(simulator: SimFactory) -> None:
    """Both SDKs retry a 500 on their own (Retry-After keeps it quick) and then succeed."""
    sim = await simulator(m=Fault(statuses=[500], retry_after_ms=1))
    async with oai(sim, max_retries=1) as client:
        assert (await client.chat.completions.create(model="m", messages=HELLO)).choices
    sim.reset()
    async with claude(sim, max_retries=1) as client:
        assert (await client.messages.create(model="m", max_tokens=10, messages=HELLO)).content
    assert [e["status"] for e in sim.log] == [500, 200]


async def test_html_error_pages_reach_the_sdk_as_text(simulator: SimFactory) -> None:
    """An HTML 502 page is a status error whose body is the page text, in both SDKs."""
    sim = await simulator(m=Fault(statuses=[502], repeat=True, html=True))
    async with oai(sim) as client:
        with pytest.raises(openai.InternalServerError) as oerr:
            await client.chat.completions.create(model="m", messages=HELLO)
    async with claude(sim) as client:
        with pytest.raises(anthropic.InternalServerError) as aerr:
            await client.messages.create(model="m", max_tokens=10, messages=HELLO)
    assert oerr.value.status_code == aerr.value.status_code == 502
    assert "<html>" in oerr.value.response.text and "<html>" in aerr.value.response.text


# -- faults: streams ------------------------------------------------------------------


async def test_cut_stream_is_a_connection_error(simulator: SimFactory) -> None:
    """A stream dropped mid-way raises, never a short success.

    OpenAI's SDK wraps the transport error in APIConnectionError; Anthropic's lets httpx's
    RemoteProtocolError through, as it does against the real API.
    """
    sim = await simulator(m=Fault(stream_cut_after=2))
    with anyio.fail_after(10):
        async with oai(sim) as client:
            stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
            with pytest.raises(openai.APIConnectionError):
                async for _ in stream:
                    pass
        async with claude(sim) as client:
            with pytest.raises(httpx2.RemoteProtocolError):
                async with client.messages.stream(
                    model="m", max_tokens=10, messages=HELLO
                ) as mstream:
                    await mstream.get_final_message()


async def test_stalled_stream_times_out_in_the_sdk(simulator: SimFactory) -> None:
    """A stream that goes silent ends in the SDKs' read timeout.

    OpenAI's SDK raises APITimeoutError; Anthropic's lets httpx's ReadTimeout through.
    """
    sim = await simulator(m=Fault(stall_after=1))
    with anyio.fail_after(10):
        async with oai(sim, timeout=0.5) as client:
            stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
            with pytest.raises(openai.APITimeoutError):
                async for _ in stream:
                    pass
        async with claude(sim, timeout=0.5) as client:
            with pytest.raises(httpx2.ReadTimeout):
                async with client.messages.stream(
                    model="m", max_tokens=10, messages=HELLO
                ) as mstream:
                    await mstream.get_final_message()


async def test_malformed_chunk_is_a_decode_error_in_the_sdk(simulator: SimFactory) -> None:
    """A chunk cut off mid-JSON makes both SDKs raise while decoding it."""
    sim = await simulator(m=Fault(malformed_after=2))
    with anyio.fail_after(10):
        async with oai(sim) as client:
            stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
            with pytest.raises(json.JSONDecodeError):
                async for _ in stream:
                    pass
        async with claude(sim) as client:
            with pytest.raises(json.JSONDecodeError):
                async with client.messages.stream(
                    model="m", max_tokens=10, messages=HELLO
                ) as mstream:
                    await mstream.get_final_message()


async def test_mid_stream_error_event_raises_in_the_sdk(simulator: SimFactory) -> None:
    """An error event mid-stream is OpenAI's APIError and Anthropic's OverloadedError."""
    sim = await simulator(m=Fault(error_after=2))
    with anyio.fail_after(10):
        async with oai(sim) as client:
            stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
            with pytest.raises(openai.APIError, match="simulated mid-stream error"):
                async for _ in stream:
                    pass
        async with claude(sim) as client:
            with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
                async with client.messages.stream(
                    model="m", max_tokens=10, messages=HELLO
                ) as mstream:
                    await mstream.get_final_message()


async def test_missing_terminal_event_ends_the_sdk_stream_early(simulator: SimFactory) -> None:
    """Without [DONE] / message_stop the SDKs end the stream quietly, as on a real cut.

    What they assembled still carries the finish reason the simulator sent before stopping.
    """
    sim = await simulator(m=Fault(no_terminal=True))
    raw_openai = await sse(sim, "/v1/chat/completions", {"model": "m", "messages": HELLO})
    raw_claude = await sse(sim, "/v1/messages", {"model": "m", "max_tokens": 9, "messages": HELLO})
    assert "[DONE]" not in [data for _, data in raw_openai]
    assert "message_stop" not in [name for name, _ in raw_claude]
    with anyio.fail_after(10):
        async with (
            oai(sim) as client,
            client.chat.completions.stream(model="m", messages=HELLO) as stream,
        ):
            final = await stream.get_final_completion()
        assert final.choices[0].finish_reason == "stop"
        async with (
            claude(sim) as client,
            client.messages.stream(model="m", max_tokens=100, messages=HELLO) as mstream,
        ):
            types = [event.type async for event in mstream]
            message = await mstream.get_final_message()
        assert "message_stop" not in types and message.stop_reason == "end_turn"


async def test_truncated_body_is_an_error_in_the_sdk(simulator: SimFactory) -> None:
    """Half a JSON body, then a dropped connection: a connection error, never a result."""
    sim = await simulator(m=Fault(truncate=True))
    with anyio.fail_after(10):
        async with oai(sim) as client:
            with pytest.raises(openai.APIConnectionError):
                await client.chat.completions.create(model="m", messages=HELLO)
        async with claude(sim) as client:
            with pytest.raises(anthropic.APIConnectionError):
                await client.messages.create(model="m", max_tokens=10, messages=HELLO)


async def test_scenario_model_name_is_reported_to_the_sdk() -> None:
    """A fault's `model` is the model name every answer reports."""
    scenario = Scenario(models={"alias": Fault(model="gpt-4o-2024-08-06")})
    async with Simulator(scenario) as sim, oai(sim) as client:
        completion = await client.chat.completions.create(model="alias", messages=HELLO)
    assert completion.model == "gpt-4o-2024-08-06"


async def test_hang_and_reset_before_headers(simulator: SimFactory) -> None:
    """No headers ever is the SDKs' timeout; a connection dropped before them, a connection error."""
    sim = await simulator(hang=Fault(hang=True), reset=Fault(reset=True))
    with anyio.fail_after(10):
        async with oai(sim, timeout=0.5) as client:
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(model="hang", messages=HELLO)
            with pytest.raises(openai.APIConnectionError) as oerr:
                await client.chat.completions.create(model="reset", messages=HELLO)
        assert not isinstance(oerr.value, openai.APITimeoutError)
        async with claude(sim, timeout=0.5) as client:
            with pytest.raises(anthropic.APITimeoutError):
                await client.messages.create(model="hang", max_tokens=10, messages=HELLO)
            with pytest.raises(anthropic.APIConnectionError) as aerr:
                await client.messages.create(model="reset", max_tokens=10, messages=HELLO)
        assert not isinstance(aerr.value, anthropic.APITimeoutError)
