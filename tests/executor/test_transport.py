"""Reaching a subgraph over real loopback HTTP when it drops a pooled keep-alive connection."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from gateway.executor import HttpPool, HttpSubgraph, SubgraphUnavailable


class DroppingSubgraph:
    """A raw HTTP/1.1 server: answers the first request on each connection with keep-alive, then
    closes the connection when the next request arrives on it without answering (a subgraph whose
    idle timeout fired just as the gateway reused the connection). Records every body it reads."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.connections = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/graphql"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                self.bodies.append(orjson.loads(await reader.readexactly(length)))
                if answered:
                    return  # dropped without an answer
                payload = orjson.dumps({"data": {"answer": len(self.bodies)}})
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                    b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
                )
                await writer.drain()
                answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def dropping():
    server = DroppingSubgraph()
    url = await server.start()
    pool = HttpPool(share_identical=False)
    yield server, HttpSubgraph(pool, url, timeout=5)
    await pool.close()
    await server.stop()


async def test_a_query_is_sent_again_on_a_new_connection(dropping):
    server, subgraph = dropping
    first = orjson.loads(await subgraph.send("query A { answer }", None))
    again = orjson.loads(await subgraph.send("query B { answer }", None))  # the pooled connection drops it
    assert first == {"data": {"answer": 1}}
    assert again == {"data": {"answer": 3}}  # its second sending, on a new connection, was answered
    assert [b["query"] for b in server.bodies] == ["query A { answer }", "query B { answer }", "query B { answer }"]
    assert server.connections == 2


async def test_a_mutation_is_never_sent_twice(dropping):
    server, subgraph = dropping
    await subgraph.send("query A { answer }", None)
    with pytest.raises(SubgraphUnavailable, match="unreachable"):
        await subgraph.send("mutation M { pay }", None)
    assert [b["query"] for b in server.bodies].count("mutation M { pay }") == 1


async def test_a_cookie_a_subgraph_sets_never_goes_back_to_it():
    """A partner setting a cookie while answering one resident's request must not see it on the
    next request, which may be another resident's: the gateway keeps no cookie jar."""
    from aiohttp import web

    seen: list[str | None] = []

    async def graphql(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response({"data": {"answer": len(seen)}})
        response.set_cookie("resident", f"resident-{len(seen)}", path="/")
        return response

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    pool = HttpPool(share_identical=False)
    try:
        # a name, not an IP literal: aiohttp's default jar refuses cookies from IP addresses
        subgraph = HttpSubgraph(pool, f"http://localhost:{port}/graphql", timeout=5)
        answers = [orjson.loads(await subgraph.send(f"query Q{n} {{ answer }}", None)) for n in range(3)]
    finally:
        await pool.close()
        await runner.cleanup()
    assert [a["data"]["answer"] for a in answers] == [1, 2, 3]
    assert seen == [None, None, None]
