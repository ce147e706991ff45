"""A minimal, fast OpenAI-compatible SSE server for benchmarks (not a simulator).

It answers every ``POST .../chat/completions`` with one pre-built ``text/event-stream`` body:
a role chunk, N content chunks shaped like OpenAI's (``{"content": "tok "}``), a finish chunk,
a usage chunk (``choices: []``) and ``data: [DONE]``. The body is built once per N and sent with
``Content-Length`` in large writes, so the server costs next to nothing per chunk.

N is ``--chunks`` by default; a request path starting with ``/n<digits>/`` (e.g. a base URL of
``http://127.0.0.1:PORT/n20000/v1``) asks for a body of that many content chunks instead.

A path starting with ``/e/`` (before any ``/n<digits>/``) asks for the same events framed as a
model server streams them: chunked transfer encoding, one SSE event per HTTP chunk and per
write (a client then reads the stream in small pieces, as it does from a real provider).

Run it in its own process (it prints ``PORT <n>`` on stdout once listening)::

    python bench/fast_server.py --chunks 100000
"""

from __future__ import annotations

import argparse
import asyncio
import re

CONTENT = "tok "
_PATH_N = re.compile(rb"^/n(\d+)(/|$)")
_PER_EVENT = b"/e/"
_WRITE = 1 << 20  # bytes per write


def chunk_line(obj: str) -> bytes:
    return b"data: " + obj.encode() + b"\n\n"


def build_body(n: int, model: str = "bench-model") -> bytes:
    """The whole SSE body for a stream of ``n`` content chunks."""
    head = f'{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"{model}",'
    role = chunk_line(
        head + '"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
        '"finish_reason":null}]}'
    )
    content = chunk_line(
        head + f'"choices":[{{"index":0,"delta":{{"content":"{CONTENT}"}},"finish_reason":null}}]}}'
    )
    finish = chunk_line(head + '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
    usage = chunk_line(
        head + f'"choices":[],"usage":{{"prompt_tokens":1,"completion_tokens":{n},'
        f'"total_tokens":{n + 1}}}}}'
    )
    return b"".join([role, content * n, finish, usage, b"data: [DONE]\n\n"])


class Server:
    def __init__(self, default_chunks: int) -> None:
        self.default_chunks = default_chunks
        self.bodies: dict[int, bytes] = {default_chunks: build_body(default_chunks)}
        self.framed: dict[int, list[bytes]] = {}

    def body(self, n: int) -> bytes:
        if n not in self.bodies:
            self.bodies[n] = build_body(n)
        return self.bodies[n]

    def frames(self, n: int) -> list[bytes]:
        """The body of ``n`` chunks as HTTP chunks of one SSE event each, then the last chunk."""
        key = -n - 1  # beside the bodies, apart from them
        if key not in self.framed:
            events = [e + b"\n\n" for e in self.body(n).split(b"\n\n") if e]
            self.framed[key] = [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]
        return self.framed[key]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on the same connection
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                length = 0
                close = False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value.strip())
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if length:
                    await reader.readexactly(length)  # the request body is not needed
                if method != b"POST" or not path.rstrip(b"/").endswith(b"/chat/completions"):
                    msg = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
                    writer.write(
                        b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(msg), msg)
                    )
                    await writer.drain()
                    continue
                per_event = path.startswith(_PER_EVENT)
                if per_event:
                    path = path[len(_PER_EVENT) - 1 :]
                m = _PATH_N.match(path)
                n = int(m.group(1)) if m else self.default_chunks
                if per_event:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                        b"cache-control: no-cache\r\nx-request-id: req-bench\r\n"
                        b"transfer-encoding: chunked\r\n\r\n"
                    )
                    for i, frame in enumerate(self.frames(n)):
                        writer.write(frame)
                        if i % 64 == 63:  # let a slower reader hold the writes back
                            await writer.drain()
                    await writer.drain()
                    if close:
                        return
                    continue
                body = self.body(n)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"cache-control: no-cache\r\nx-request-id: req-bench\r\n"
                    b"content-length: %d\r\n\r\n" % len(body)
                )
                view = memoryview(body)
                for i in range(0, len(body), _WRITE):
                    writer.write(view[i : i + _WRITE])
                    await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def serve(self, host: str, port: int) -> None:
        server = await asyncio.start_server(self.handle, host, port, backlog=64)
        bound = server.sockets[0].getsockname()[1]
        print(f"PORT {bound}", flush=True)
        async with server:
            await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    try:
        asyncio.run(Server(args.chunks).serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
