"""The upstream client: one connection pool (``pool.py``), the demo transport, and the
translation of every transport failure into SafeRouter's ``UpstreamError`` family.

httpcore is used directly rather than httpx: httpx's request/response model costs about
0.6 ms a request on this hardware (../shared/reference/stack-spike.md §3), more than the
gateway's whole budget. Both transports expose ``handle_async_request``, so a real
provider and the demo go through the same code.

Timeouts are trio deadlines held by the caller (first byte, idle between chunks);
httpcore's own timeout only bounds the connect.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
import httpcore
import trio

from .. import __version__
from ..catalog import Api
from ..config import Settings, Timeouts, UpstreamEndpoint
from ..errors import (
    ByokKeyRejected,
    UpstreamBadGateway,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .demo import DemoTransport
from .pool import ConnectionPool
from .redact import Redactor
from .routing import ZAI_NO_BALANCE

MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
USER_AGENT = f"SafeRouter/{__version__}".encode()
KEEPALIVE_EXPIRY_S = 30.0  # an idle upstream connection older than this is closed, not reused


class Transport(Protocol):
    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response: ...

    async def aclose(self) -> None: ...


class Upstreams:
    """The transports for every provider; open in the server's trio loop, close on exit."""

    def __init__(
        self, settings: Settings, *, transports: Mapping[str, Transport] | None = None
    ) -> None:
        """``transports`` serve the named providers in process (tests' scripted upstreams);
        the others go through the pool, the demo provider through its own transport."""
        self._settings = settings
        self._pool = ConnectionPool(
            max_connections=settings.max_upstream_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
            keepalive_expiry_s=KEEPALIVE_EXPIRY_S,
        )
        self._in_process: dict[str, Transport] = {
            pid: DemoTransport(chunk_delay_s=ep.provider.demo_chunk_delay_ms / 1000)
            for pid, ep in settings.endpoints.items()
            if ep.provider.kind == "demo"
        }
        self._in_process.update(transports or {})

    def transport(self, endpoint: UpstreamEndpoint) -> Transport:
        return self._in_process.get(endpoint.provider.id, self._pool)

    async def aclose(self) -> None:
        await self._pool.aclose()

    def connection_counts(self) -> tuple[int, int]:
        """Pooled connections to real providers: (serving a request, idle)."""
        return self._pool.connection_counts()

    async def open(
        self,
        endpoint: UpstreamEndpoint,
        body: bytes,
        *,
        path: UpstreamPath,
        stream: bool,
        timeouts: Timeouts,
    ) -> httpcore.Response:
        """Send a request to ``path`` of ``endpoint`` and return once the response
        headers arrived.

        The body is not read. An error status is returned as is (the caller decides);
        a failure to get any answer raises an :class:`UpstreamError`."""
        request = build_request(
            endpoint, body, path=path, stream=stream, connect_timeout_s=timeouts.connect_s
        )
        name = endpoint.provider.name
        with trio.move_on_after(timeouts.first_byte_s) as scope:
            try:
                return await self.transport(endpoint).handle_async_request(request)
            except httpcore.TimeoutException as exc:
                raise UpstreamTimeout(f"{name} did not answer in time ({_kind(exc)})") from exc
            except (httpcore.ConnectError, httpcore.PoolTimeout) as exc:
                raise UpstreamUnavailable(f"Could not connect to {name}") from exc
            except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
                raise UpstreamBadGateway(f"{name} closed the connection before answering") from exc
        assert scope.cancelled_caught
        raise UpstreamTimeout(
            f"{name} sent no response within {timeouts.first_byte_s:g} s",
            code="upstream_first_byte_timeout",
        )


@attrs.frozen
class UpstreamPath:
    """Where under a provider an API's requests go, and the headers its API asks for
    (auth included) given the key an attempt carries: what a dialect contributes."""

    api: Api
    path: str  # appended to the endpoint's base URL for ``api``
    auth_headers: Callable[[str | None], list[tuple[bytes, bytes]]]


def build_request(
    endpoint: UpstreamEndpoint,
    body: bytes,
    *,
    path: UpstreamPath,
    stream: bool,
    connect_timeout_s: float,
) -> httpcore.Request:
    """The HTTP request of one attempt: ``body`` to ``path`` under ``endpoint``."""
    url = endpoint.url(path.api) + path.path
    parts = urlsplit(url)
    headers: list[tuple[bytes, bytes]] = [
        (b"host", parts.netloc.encode()),
        (b"content-type", b"application/json"),
        (b"accept", b"text/event-stream" if stream else b"application/json"),
        (b"user-agent", USER_AGENT),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += path.auth_headers(endpoint.api_key)
    headers += [(k.encode(), v.encode()) for k, v in endpoint.provider.headers.items()]
    return httpcore.Request(
        b"POST",
        url,
        headers=headers,
        content=body,
        extensions={
            "timeout": {
                "connect": connect_timeout_s,
                "read": None,
                "write": connect_timeout_s,
                "pool": connect_timeout_s,
            }
        },
    )


async def read_error_body(response: httpcore.Response, provider_name: str) -> bytes:
    """Read (at most MAX_ERROR_BODY_BYTES of) an error response and close it."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_stream():
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_ERROR_BODY_BYTES:
                break
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException):
        pass  # what arrived is all the provider will say
    finally:
        with trio.CancelScope(shield=True):
            await response.aclose()
    return b"".join(chunks)[:MAX_ERROR_BODY_BYTES]


async def read_body(
    response: httpcore.Response, provider_name: str, timeout_s: float, max_bytes: int
) -> bytes:
    """Read a whole (non-stream) body within ``timeout_s``, and close the response."""
    chunks: list[bytes] = []
    size = 0
    try:
        with trio.fail_after(timeout_s):
            async for chunk in response.aiter_stream():
                size += len(chunk)
                if size > max_bytes:
                    raise UpstreamBadGateway(f"{provider_name} sent a response over the limit")
                chunks.append(chunk)
    except trio.TooSlowError:
        raise UpstreamTimeout(
            f"{provider_name} did not finish its answer in {timeout_s:g} s"
        ) from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException) as exc:
        raise UpstreamBadGateway(f"{provider_name} broke off its answer") from exc
    finally:
        with trio.CancelScope(shield=True):
            await response.aclose()
    return b"".join(chunks)


def header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def upstream_error(
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    provider_name: str,
    *,
    redactor: Redactor,
    own_key_fingerprint: str | None = None,
) -> UpstreamError:
    """The error a client gets for an upstream error status.

    A 4xx caused by the request itself goes back with its status and the provider's
    message (its JSON is read whatever the content type: DeepSeek labels its errors
    ``application/octet-stream``). 401/403, 402 and Z.AI's 429 code 1113 are the
    operator's problem (the gateway's provider key, the gateway's provider balance), not
    the client's: passing them on would tell the client its own key or balance failed,
    so they become 502, without the provider's text (it can quote part of the key).
    5xx becomes 502, except 503/504 which keep their meaning.

    Every piece of the provider's text is redacted (``redactor``, required so no caller
    can forget it): a provider or a proxy may quote the gateway's key back.

    With the client's own provider key (``own_key_fingerprint``: the attempt carried
    it), the same refusals are the client's to fix: a 403 ``byok_key_rejected`` naming
    the key by its fingerprint and the provider's status (still not its text).
    """
    message, code, param, error_type = _describe(body, redactor)
    retry_after = _retry_after(headers)
    extra = {"Retry-After": retry_after} if retry_after else {}
    no_balance = status == 402 or (status == 429 and code == ZAI_NO_BALANCE)
    if own_key_fingerprint is not None and (status in (401, 403) or no_balance):
        why = "has no balance" if no_balance else "is not accepted"
        return ByokKeyRejected(
            f"{provider_name} refused your own provider key (fingerprint "
            f"{own_key_fingerprint}): status {status}, the key {why}. Fix it at "
            f"{provider_name} or add another (saferouter byok add); byok_fallback lets the "
            "gateway's own key for it, if it has one, serve when yours is refused."
        )
    if status in (401, 403):
        return UpstreamBadGateway(
            f"{provider_name} rejected SafeRouter's credentials for it ({status}); "
            "the operator must fix the provider key.",
            code="upstream_auth_failed",
        )
    if no_balance:
        # DeepSeek says 402, Z.AI says 429 with business code 1113: no money upstream
        return UpstreamBadGateway(
            f"{provider_name} refused the request: the gateway's account there is out of balance.",
            code="upstream_insufficient_balance",
        )
    if 400 <= status < 500:
        rejected = UpstreamRejected(
            message or f"{provider_name} rejected the request ({status})",
            code=code,
            param=param,
            status=status,
            headers=extra,
        )
        if error_type:
            rejected.error_type = error_type  # type: ignore[misc]
        return rejected
    detail = f": {message}" if message else ""
    if status == 503:
        return UpstreamUnavailable(f"{provider_name} is unavailable (503){detail}", headers=extra)
    if status == 504:
        return UpstreamTimeout(f"{provider_name} timed out (504){detail}")
    return UpstreamBadGateway(f"{provider_name} failed ({status}){detail}")


def _retry_after(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The provider's ``Retry-After``, passed on only when it is one (RFC 9110 §10.2.3:
    delay-seconds or an HTTP-date). It is the one upstream header a client gets, and a
    careless provider or proxy may put anything there — the key it was sent included."""
    value = next((v for k, v in headers if k.lower() == b"retry-after"), b"").strip()
    if value.replace(b".", b"", 1).isdigit():  # seconds (some providers send "1.5")
        return value.decode("ascii")
    try:
        when = parsedate_to_datetime(value.decode("ascii"))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None  # not a time: nothing of it reaches the client
    # the date as we write it, not as it came: the parser skips what it does not know
    return format_datetime(when.replace(tzinfo=when.tzinfo or dt.UTC).astimezone(dt.UTC), True)


def _describe(
    body: bytes, redactor: Redactor
) -> tuple[str | None, str | None, str | None, str | None]:
    """Message, code, param and type from a provider's error body, whatever its shape,
    each redacted."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        # redacted whole, then cut: a cut first could split a key, and its first part
        # would no longer match the key's forms (only keys shaped sk-… would be caught)
        text = redactor.text(body.decode("utf-8", errors="replace").strip())
        return (text[:500] or None, None, None, None)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return error, None, None, None
    if not isinstance(error, dict):
        error = data if isinstance(data, dict) else {}
    message = error.get("message") if isinstance(error.get("message"), str) else None
    code = error.get("code")
    param = error.get("param")
    error_type = error.get("type")
    fields = (
        message,
        str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
        param if isinstance(param, str) else None,
        error_type if isinstance(error_type, str) else None,
    )
    message, code, param, error_type = (redactor.optional(t) for t in fields)
    return message, code, param, error_type


def _kind(exc: httpcore.TimeoutException) -> str:
    return "connect" if isinstance(exc, httpcore.ConnectTimeout) else "read"
