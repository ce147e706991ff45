"""The HTTP client a run streams through: httpx2's API over an aiohttp connection pool.

Everything above this module speaks httpx2 (``AsyncClient``, ``Response``, ``EventSource``,
``Timeout``, its exceptions); only the bytes on the wire move through aiohttp. httpcore2, httpx2's
own pool, walks and probes every pooled connection on each request, which at a few hundred
connections costs more CPU than the streams themselves; aiohttp's pool does not.

``new_client`` builds the client a ``Runner`` uses when it is given none:

- ``AiohttpTransport`` (the default): an ``httpx2.AsyncBaseTransport`` whose responses stream
  straight from an ``aiohttp`` response. aiohttp's exceptions are translated here, once, into
  httpx2's (a refused connection is ``ConnectError``, a stall ``ReadTimeout``, a broken chunked
  body ``RemoteProtocolError``), so callers see one exception tree whatever the transport.
- httpx2's own transport (httpcore2) where aiohttp cannot serve: ``http2=True``, a SOCKS or
  HTTPS proxy; or when asked, with ``transport="httpx2"`` or ``STREAMBENCH_TRANSPORT=httpx2``.

Proxies come from the environment exactly as httpx2 reads them (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``, ``NO_PROXY``): an ``http://`` proxy is served by aiohttp, any other scheme by
httpcore2. Nothing else is taken from the environment (no ``.netrc``).
"""

from __future__ import annotations

import functools
import os
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Literal

import aiohttp
import httpx2
from httpx2._utils import get_environment_proxies  # the very rules httpx2 applies itself
from multidict import CIMultiDict
from yarl import URL

from ..errors import ConfigError

TRANSPORT_ENV = "STREAMBENCH_TRANSPORT"
TransportName = Literal["aiohttp", "httpx2"]
TRANSPORTS: tuple[TransportName, ...] = ("aiohttp", "httpx2")
DEFAULT_KEEPALIVE_S = 5.0  # httpx2's default keep-alive expiry
HTTPCORE2_KEEPALIVE = 20  # idle connections httpcore2 keeps (httpx2's default)
READ_SIZE = 16 * 1024  # the most bytes one read of a response body hands on

Verify = ssl.SSLContext | Callable[[], ssl.SSLContext] | bool


def transport_name(requested: str | None = None, *, http2: bool = False) -> TransportName:
    """Which transport a new client uses: ``requested``, else ``$STREAMBENCH_TRANSPORT``, else
    ``aiohttp``; ``httpx2`` whenever HTTP/2 is asked for.

    Raises:
        ConfigError: an unknown transport name.
    """
    name = requested or os.environ.get(TRANSPORT_ENV, "").strip().lower() or "aiohttp"
    if name not in TRANSPORTS:
        where = "transport=" if requested else TRANSPORT_ENV
        raise ConfigError(f"unknown {where} {name!r}; choose one of {list(TRANSPORTS)}.")
    return "httpx2" if http2 else name


def new_client(
    max_connections: int,
    *,
    verify: Verify = True,
    transport: str | None = None,
    http2: bool = False,
    proxies: Mapping[str, str | None] | None = None,
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` for one run, its pool sized to the run's concurrency.

    Args:
        max_connections: the most connections open at once (and kept alive; httpcore2
            keeps at most ``HTTPCORE2_KEEPALIVE`` idle).
        verify: an SSL context, a function that builds one (called on the first ``https``
            request, so plain-``http`` runs never pay for loading the CA bundle), ``True`` for
            httpx2's default context or ``False`` to skip verification.
        transport: ``"aiohttp"`` or ``"httpx2"``; default ``$STREAMBENCH_TRANSPORT``, else aiohttp.
        http2: allow HTTP/2 (served by httpcore2 only).
        proxies: URL pattern -> proxy URL (``None``: no proxy), as httpx2's ``mounts`` keys;
            default: read from the environment as httpx2 does.
    """
    limits = httpx2.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=DEFAULT_KEEPALIVE_S,
    )
    if transport_name(transport, http2=http2) == "httpx2":
        # httpcore2 probes every idle pooled connection on each request: past a few dozen
        # kept-alive connections that costs more than the handshakes reuse saves.
        keep = min(max_connections, HTTPCORE2_KEEPALIVE)
        limits = httpx2.Limits(
            max_connections=max_connections,
            max_keepalive_connections=keep,
            keepalive_expiry=DEFAULT_KEEPALIVE_S,
        )
        return httpx2.AsyncClient(verify=_context(verify), limits=limits, http2=http2)
    proxy_map = _environment_proxies() if proxies is None else dict(proxies)
    mounts: dict[str, httpx2.AsyncBaseTransport | None] = {}
    for pattern, proxy in proxy_map.items():
        if proxy is None:
            mounts[pattern] = None  # NO_PROXY: the direct transport
        elif proxy.startswith("http://"):
            mounts[pattern] = AiohttpTransport(limits=limits, verify=verify, proxy=proxy)
        else:  # socks5://, https:// proxies: aiohttp cannot (or not reliably) tunnel these
            mounts[pattern] = httpx2.AsyncHTTPTransport(
                verify=_context(verify), limits=limits, proxy=proxy
            )
    return httpx2.AsyncClient(
        transport=AiohttpTransport(limits=limits, verify=verify), mounts=mounts or None
    )


def _environment_proxies() -> dict[str, str | None]:
    """The proxies the environment asks for, as httpx2 reads them (URL pattern -> proxy)."""
    # httpx2's reading walks the whole environment twice (~150 us, on every run); where only
    # the environment can name a proxy (not macOS or Windows system settings), a glance for
    # a *_proxy variable settles the usual case first.
    if sys.platform not in ("darwin", "win32") and not any(
        name[-6:].lower() == "_proxy" for name in os.environ
    ):
        return {}
    return get_environment_proxies()


def _context(verify: Verify) -> ssl.SSLContext | bool:
    return verify() if callable(verify) else verify


@functools.lru_cache(maxsize=64)
def _client_timeout(
    connect: float | None, read: float | None, pool: float | None
) -> aiohttp.ClientTimeout:
    # httpx2's ``pool`` bounds getting a connection: aiohttp's ``connect`` (waiting for a free
    # slot, then opening one); httpx2's ``connect`` the opening alone: ``sock_connect``;
    # ``sock_read`` bounds each read, the head's included, so a stream that stalls between
    # chunks fails after ``read`` seconds whatever its length.
    return aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that sends over an aiohttp connection pool and streams the body.

    The aiohttp session is opened on the first request (inside the running event loop) and
    closed by ``aclose`` (``httpx2.AsyncClient.aclose`` calls it). A response's connection goes
    back to the pool when its body was read to the end, and is closed otherwise.

    Args:
        limits: ``max_connections`` caps the pool (``None``: no cap); ``keepalive_expiry``
            closes idle connections after that many seconds.
        verify: as ``new_client``'s.
        proxy: an ``http://`` proxy URL for every request, credentials in the URL allowed.
    """

    def __init__(
        self,
        *,
        limits: httpx2.Limits = httpx2.Limits(),  # noqa: B008 - a frozen value object
        verify: Verify = True,
        proxy: str | None = None,
    ) -> None:
        self._limits = limits
        self._verify = verify
        self._ssl: ssl.SSLContext | bool | None = None
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        expiry = self._limits.keepalive_expiry
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=DEFAULT_KEEPALIVE_S if expiry is None else expiry,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # httpx2 owns cookies, redirects and content decoding; aiohttp only moves bytes.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _ssl_for(self, scheme: str) -> ssl.SSLContext | bool:
        if scheme != "https":
            return True  # unused without TLS
        if self._ssl is None:
            verify = self._verify
            if verify is True:
                self._ssl = httpx2.create_ssl_context()
            else:
                self._ssl = _context(verify)
        return self._ssl

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request``; the response's body streams from the connection."""
        session = self._session or self._open()
        timeout = request.extensions.get("timeout") or {}
        url = request.url
        try:
            content = request.content
        except httpx2.RequestNotRead:
            content = await request.aread()
        try:
            response = await session.request(
                request.method,
                URL(str(url), encoded=True),
                headers=CIMultiDict(request.headers.multi_items()),
                data=content or None,
                allow_redirects=False,
                timeout=_client_timeout(
                    timeout.get("connect"), timeout.get("read"), timeout.get("pool")
                ),
                ssl=self._ssl_for(url.scheme),
                server_hostname=request.extensions.get("sni_hostname"),
                proxy=self._proxy,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _mapped(exc, request, connecting=True) from exc
        reason = response.reason
        return httpx2.Response(
            response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": reason.encode("latin-1", "replace") if reason else b"",
            },
        )

    async def aclose(self) -> None:
        """Close the pool and every connection in it."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _ResponseStream(httpx2.AsyncByteStream):
    """A response body as httpx2 reads it: whatever bytes have arrived, as they arrive."""

    __slots__ = ("_response", "_request")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            # Whatever has arrived, at most READ_SIZE at a time: returns as soon as any byte
            # is there, and SSE parsing runs faster on pieces this size than on the quarter
            # megabyte a fast stream buffers.
            while data := await content.read(READ_SIZE):
                yield data
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _mapped(exc, self._request, connecting=False) from exc

    async def aclose(self) -> None:
        # Back to the pool if the body was read to its end; aiohttp closes it otherwise.
        self._response.release()


def _mapped(exc: BaseException, request: httpx2.Request, *, connecting: bool) -> Exception:
    """httpx2's exception for an aiohttp (or socket) failure."""
    message = str(exc) or type(exc).__name__
    cls: type[httpx2.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        cls = httpx2.ConnectTimeout
    elif isinstance(exc, TimeoutError):  # SocketTimeoutError (sock_read) and plain timeouts
        cls = httpx2.ConnectTimeout if connecting else httpx2.ReadTimeout
        if isinstance(exc, aiohttp.SocketTimeoutError):
            cls = httpx2.ReadTimeout
    elif isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        cls = httpx2.ProxyError
    elif isinstance(exc, aiohttp.ServerFingerprintMismatch):
        cls = httpx2.ConnectError
    elif isinstance(exc, aiohttp.ClientConnectorError):
        cls = httpx2.ConnectError  # refused, DNS, TLS: the "network" kind, retried
        if type(exc) in (aiohttp.ClientConnectorError, aiohttp.ClientConnectorDNSError):
            reason = exc.os_error.strerror or str(exc.os_error)  # not aiohttp's ssl:<repr>
            message = f"cannot connect to {exc.host}:{exc.port}: {reason}"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        cls = httpx2.RemoteProtocolError
        if connecting:
            message = "server disconnected without sending a response"
    elif isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        cls = httpx2.RemoteProtocolError  # a broken chunked body, a short body, a bad head
    elif isinstance(exc, aiohttp.NonHttpUrlClientError | aiohttp.InvalidURL):
        cls = httpx2.UnsupportedProtocol
    else:  # a reset or another socket error on an open connection
        cls = httpx2.ConnectError if connecting else httpx2.ReadError
    return cls(message, request=request)


__all__ = [
    "TRANSPORTS",
    "TRANSPORT_ENV",
    "AiohttpTransport",
    "TransportName",
    "new_client",
    "transport_name",
]
