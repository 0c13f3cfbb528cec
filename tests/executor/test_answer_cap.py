"""A GraphQL subgraph's answer is read under a size cap: a hostile partner cannot make the gateway
buffer what it likes.

A raw HTTP/1.1 server on loopback (a partner misbehaving on purpose: a client library cannot) streams
an answer past the cap, chunked or behind a huge Content-Length, or compressed so that it inflates
past it. The gateway refuses it, cuts the connection (the partner's writes fail before it has sent
its answer) and answers its client with the other subgraphs' data and a stable error.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import socketserver
import threading
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.engine import Engine
from gateway.executor import BreakerSettings, HttpPool, HttpSubgraph, SubgraphCircuitOpen, Subgraphs
from gateway.executor._transport import DEFAULT_MAX_ANSWER_BYTES, SubgraphAnswerTooLarge
from gateway.http import GatewayState, create_app
from gateway.settings import Settings, load_settings
from gateway.supergraph import load_supergraph
from tests.http.edge import ServeProcess, post_graphql, world_to_serve

MiB = 1024 * 1024
CAP = 1 * MiB
PIECE = 64 * 1024
# what the partner means to send: far past the cap and past what the kernel's socket buffers hold
# on loopback (a few MB), so its writes fail once the gateway has closed the connection
HUGE = 256 * MiB
QUERY = "{ districts { name spots { name rating } } }"


class MisbehavingPartner:
    """Answers every request as `mode` says, one request per connection:

    - `chunked`: a 200 with Transfer-Encoding: chunked, `total` bytes of a JSON string in 64 KiB chunks
    - `declared`: a 200 declaring Content-Length: `total`, then the bytes
    - `gzip`: `answer`, gzip-compressed, with the compressed length declared
    - `pieces`: `answer` chunked in pieces of `piece` bytes

    Records, per answer, the body bytes it managed to send and whether a write failed (the
    gateway closed the connection under it) before it had sent them all."""

    def __init__(self, mode: str, total: int = HUGE, answer: bytes = b"", piece: int = PIECE) -> None:
        self.mode, self.total, self.answer, self.piece = mode, total, answer, piece
        self.requests = 0
        self.outcomes: list[tuple[int, bool]] = []  # (body bytes sent, cut before the end)
        self.answered = threading.Condition()
        partner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                partner._handle(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/graphql"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MisbehavingPartner:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, connection: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = connection.recv(65536)
            if not data:
                return
            head += data
        head, _, body = head.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        while len(body) < length:
            body += connection.recv(65536)
        self.requests += 1
        sent, cut = 0, False
        try:
            sent = self._answer(connection)
        except OSError as error:  # reset or broken pipe: the gateway hung up
            sent, cut = getattr(error, "sent", 0), True
        with self.answered:
            self.outcomes.append((sent, cut))
            self.answered.notify_all()

    def _answer(self, connection: socket.socket) -> int:
        status = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        if self.mode == "gzip":
            compressed = gzip.compress(self.answer)
            connection.sendall(
                status + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(compressed) + compressed
            )
            return len(compressed)
        if self.mode == "pieces":
            connection.sendall(status + b"Transfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(self.answer), self.piece):
                piece = self.answer[start : start + self.piece]
                connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.sendall(b"0\r\n\r\n")
            return len(self.answer)
        chunked = self.mode == "chunked"
        framing = b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % self.total
        connection.sendall(status + framing)
        opening = b'{"data":{"_entities":[{"rating":"'
        piece = opening + b"x" * (PIECE - len(opening))
        sent = 0
        try:
            while sent < self.total:
                connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
                piece = b"x" * PIECE
            if chunked:
                connection.sendall(b"0\r\n\r\n")
        except OSError as error:
            error.sent = sent  # type: ignore[attr-defined]
            raise
        return sent

    def wait_for(self, count: int) -> list[tuple[int, bool]]:
        """The outcomes once `count` answers have ended (10 s at most: a liveness bound, not a timing)."""
        with self.answered:
            self.answered.wait_for(lambda: len(self.outcomes) >= count, timeout=10)
            return list(self.outcomes)

    async def ended(self, count: int) -> list[tuple[int, bool]]:
        """wait_for, off the event loop: the gateway's connection closes on the loop's next turns."""
        return await asyncio.to_thread(self.wait_for, count)


@pytest.fixture
async def pool():
    pool = HttpPool(share_identical=False, max_answer_bytes=CAP)
    yield pool
    await pool.close()


# -- one subgraph client ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["chunked", "declared"])
async def test_an_answer_past_the_cap_is_refused_and_its_stream_cut(pool, mode):
    with MisbehavingPartner(mode) as partner:
        subgraph = HttpSubgraph(pool, partner.url, timeout=30)
        with pytest.raises(SubgraphAnswerTooLarge, match=f"^the answer is over {CAP} bytes$") as refused:
            await subgraph.send("{ _entities { rating } }", None)
        assert refused.value.code == "SUBREQUEST_HTTP_ERROR"
        ((sent, cut),) = await partner.ended(1)
    # the partner's writes failed long before its answer was out: the gateway stopped reading
    assert cut and sent < HUGE, (sent, cut)


async def test_a_compressed_answer_is_counted_as_it_inflates(pool):
    """A few kilobytes of gzip declared honestly that inflate to 64 MiB: the Content-Length is no bound."""
    bomb = b'{"data":{"x":"' + b" " * (64 * MiB) + b'"}}'
    with MisbehavingPartner("gzip", answer=bomb) as partner:
        subgraph = HttpSubgraph(pool, partner.url, timeout=30)
        with pytest.raises(SubgraphAnswerTooLarge, match=f"over {CAP} bytes"):
            await subgraph.send("{ x }", None)
        ((sent, _),) = await partner.ended(1)
    assert sent < CAP  # what it declared was within the cap


@pytest.mark.parametrize(
    ("mode", "size"),
    [("pieces", CAP), ("pieces", 1000), ("gzip", CAP), ("declared", CAP)],
    ids=["chunked-at-the-cap", "chunked-small", "gzip-at-the-cap", "declared-at-the-cap"],
)
async def test_an_answer_within_the_cap_is_read_whole(pool, mode, size):
    text = ("r" * size)[: size - len('{"data":{"x":""}}')]
    answer = orjson.dumps({"data": {"x": text}})
    assert len(answer) == size
    with MisbehavingPartner(mode, total=size, answer=answer, piece=4096) as partner:
        if mode == "declared":  # the partner's own body: a JSON string's opening, then x's
            expected_start = b'{"data":{"_entities":[{"rating":"'
            content = await HttpSubgraph(pool, partner.url, timeout=30).send("{ x }", None)
            assert len(content) == size and content.startswith(expected_start)
        else:
            assert await HttpSubgraph(pool, partner.url, timeout=30).send("{ x }", None) == answer
        assert (await partner.ended(1))[0][1] is False  # sent whole


async def test_refused_answers_open_the_breaker(pool):
    with MisbehavingPartner("chunked") as partner:
        subgraph = HttpSubgraph(pool, partner.url, timeout=30, breaker=BreakerSettings(failures=2, cool_down=60))
        for n in range(2):
            with pytest.raises(SubgraphAnswerTooLarge):
                await subgraph.send(f"query Q{n} {{ x }}", None)
        with pytest.raises(SubgraphCircuitOpen):
            await subgraph.send("query Q2 { x }", None)
        assert partner.requests == 2  # the third never left the gateway
        assert subgraph.breaker.state == "open"


# -- the gateway's client --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["chunked", "declared"])
async def test_the_client_gets_the_others_data_and_a_stable_error(world, mode):
    model = load_supergraph(world.supergraph())
    with MisbehavingPartner(mode) as partner:
        urls = {name: world.url(name) for name in model.subgraphs} | {"ratings": partner.url}
        pool = HttpPool(max_answer_bytes=CAP)
        engine = Engine(model, Subgraphs.over_http(urls, http_pool=pool))
        try:
            transport = httpx.ASGITransport(app=create_app(GatewayState(engine)))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                response = await client.post("/graphql", json={"query": QUERY})
        finally:
            await engine.close()
            await pool.close()
        ((sent, cut),) = await partner.ended(1)
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] == [
        {
            "message": f"subgraph 'ratings' failed: the answer is over {CAP} bytes",
            "extensions": {"code": "SUBREQUEST_HTTP_ERROR", "serviceName": "ratings"},
            "path": ["districts", "spots"],  # where the ratings fetch's entities are
        }
    ]
    districts = body["data"]["districts"]
    assert districts and all(spot["name"] and spot["rating"] is None for d in districts for spot in d["spots"])
    assert cut and sent < HUGE


# -- the setting -----------------------------------------------------------------------------------


def test_the_setting_defaults_to_the_pools_cap_and_leaves_the_http_limits_alone():
    assert Settings().limits.max_subgraph_answer_bytes == DEFAULT_MAX_ANSWER_BYTES == HttpPool().max_answer_bytes
    given = load_settings(
        None, {"CITYGATE_MAX_SUBGRAPH_ANSWER_BYTES": "2048"}, {"limits.max_subgraph_answer_bytes": 4096}
    )
    assert given.limits.max_subgraph_answer_bytes == 4096  # the option over the variable
    given.http_limits()  # the HTTP edge's limits take no such key


def test_serve_caps_subgraph_answers_at_its_option(world, tmp_path: Path):
    """`citygate serve --max-subgraph-answer-bytes`: the option reaches the subgraph pool."""
    folder, supergraph, _policy = world_to_serve(world, tmp_path, "app-key")
    with MisbehavingPartner("chunked") as partner:
        supergraph.write_text(supergraph.read_text().replace(world.url("ratings"), partner.url))
        gateway = ServeProcess(
            ["--supergraph", str(supergraph), "--store", f"sqlite:///{folder / 'c.db'}"]
            + ["--max-subgraph-answer-bytes", "65536"],
            {"CITYGATE_MAX_SUBGRAPH_ANSWER_BYTES": "4096"},  # the option wins over it
        )
        try:
            response, _ = post_graphql(gateway, QUERY)
        finally:
            gateway.stop()
        ((sent, cut),) = partner.wait_for(1)
    assert cut and sent < HUGE
    errors = response.json()["errors"]
    assert [(e["message"], e["extensions"]["code"]) for e in errors] == [
        ("subgraph 'ratings' failed: the answer is over 65536 bytes", "SUBREQUEST_HTTP_ERROR")
    ]
