"""Calls to tenants' endpoints stay within their bounds, against hostile HTTP servers.

The servers here are real HTTP on loopback, written to misbehave as no real Prometheus or
webhook would on purpose: trickling an answer a byte at a time, answering 50 MB, never
answering. A real Prometheus cannot be made to do these, which is why they are hand-written.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from tollgate.adapters.metrics.prometheus import PrometheusClient, PrometheusError
from tollgate.adapters.notify.webhooks import ask_gates
from tollgate.adapters.outbound import AnswerTooLargeError, CallError, Outbound
from tollgate.api.gates import Gate
from tollgate.engine.observations import GateState

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _drain_request(reader: asyncio.StreamReader) -> None:
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if length:
        await reader.readexactly(length)


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _drain_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
    try:
        for _ in range(100000):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)
    except (ConnectionError, asyncio.CancelledError):
        pass


async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _drain_request(reader)
    size = 50 * 1024 * 1024
    writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n".encode())
    chunk = b"{" * 65536
    try:
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass


async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _drain_request(reader)
    await asyncio.sleep(30)


async def chatty_error(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _drain_request(reader)
    secret = "internal-token=hunter2 " * 500
    body = ('{"status":"error","errorType":"bad_data","error":"' + secret + '\\u0007\\n"}').encode()
    writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n")
    writer.write(f"content-length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    writer.close()


async def fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _drain_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    await writer.drain()
    writer.close()


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=10)) as http:
        yield http


async def test_a_trickling_answer_ends_at_the_total_deadline(client: httpx.AsyncClient) -> None:
    server, url = await serve(trickle)
    started = time.monotonic()
    with pytest.raises(CallError, match="within 1s"):
        await Outbound(client).request("GET", url, timeout=1.0)
    assert time.monotonic() - started < 4.0  # a per-read timeout would wait forever
    server.close()


async def test_an_answer_past_the_cap_is_refused_before_it_is_all_read(
    client: httpx.AsyncClient,
) -> None:
    server, url = await serve(huge)
    with pytest.raises(AnswerTooLargeError, match="larger than 1,048,576 bytes"):
        await Outbound(client, max_bytes=1024 * 1024).request("GET", url, timeout=20.0)
    server.close()


async def test_one_slow_endpoint_holds_only_its_share_of_the_pool(
    client: httpx.AsyncClient,
) -> None:
    slow_server, slow_url = await serve(slow)
    fast_server, fast_url = await serve(fast)
    outbound = Outbound(client, per_endpoint=4)
    stuck = [
        asyncio.ensure_future(outbound.request("GET", slow_url, timeout=5.0)) for _ in range(30)
    ]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    answer = await outbound.request("GET", fast_url, timeout=2.0)
    assert answer.body == b"ok"
    assert time.monotonic() - started < 4.0
    assert not any(task.done() for task in stuck)  # answered while the slow ones still hold
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
    slow_server.close()
    fast_server.close()


async def test_waiting_for_a_slot_counts_toward_the_deadline(client: httpx.AsyncClient) -> None:
    server, url = await serve(slow)
    outbound = Outbound(client, per_endpoint=1)
    first = asyncio.ensure_future(outbound.request("GET", url, timeout=5.0))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(CallError):
        await outbound.request("GET", url, timeout=0.5)
    assert time.monotonic() - started < 4.0
    assert not first.done()  # gave up while the slot was still held
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    server.close()


async def test_a_prometheus_error_body_is_echoed_only_as_a_short_excerpt(
    client: httpx.AsyncClient,
) -> None:
    server, url = await serve(chatty_error)
    with pytest.raises(PrometheusError) as raised:
        await PrometheusClient(url, 5.0, client=client).instant("up")
    message = str(raised.value)
    assert len(message) < 300
    assert "\x07" not in message
    assert message.startswith("HTTP 400: bad_data: internal-token=hunter2")
    server.close()


async def test_slow_gates_are_asked_together_each_within_its_deadline(
    client: httpx.AsyncClient,
) -> None:
    server, url = await serve(slow)
    gates = [
        Gate.model_validate(
            {
                "name": f"g{i}",
                "stage": "BeforeStep",
                "type": "Webhook",
                "webhook": {"url": f"{url}/{i}", "timeout": "1s"},
            }
        )
        for i in range(5)
    ]
    started = time.monotonic()
    answers = await ask_gates(Outbound(client), gates, [g.name for g in gates], {})
    assert answers == {g.name: GateState.ERROR for g in gates}
    assert time.monotonic() - started < 4.5  # one after another would take 5s
    server.close()
