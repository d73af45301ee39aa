"""A real HTTP server in front of a gateway that rewrites its JSON answers: how tests
make a gateway lie at the HTTP level, nothing of its code patched (the verifier page's
tests and the BYOK verification tests use it)."""

from __future__ import annotations

import http.server
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from .threaded_http import serving_on_a_thread

Rewrite = Callable[[str, Any], None]
Sent = tuple[str, str, bytes]  # method, path, body of a request the proxy forwarded


@contextmanager
def rewriting_proxy(
    target: str, rewrite: Rewrite = lambda path, data: None, *, sent: list[Sent] | None = None
) -> Iterator[str]:
    """A real HTTP server in front of the gateway that rewrites its JSON answers in place:
    ``rewrite(path, data)``. Each request it forwards is appended to ``sent``; its
    ``Authorization`` is passed on."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if sent is not None:
                sent.append((self.command, self.path, body or b""))
            headers = {"Content-Type": "application/json"}
            if "Authorization" in self.headers:
                headers["Authorization"] = self.headers["Authorization"]
            upstream = httpx.request(
                self.command, target + self.path, content=body, headers=headers
            )
            content = upstream.content
            if upstream.headers.get("content-type", "").startswith("application/json"):
                data = json.loads(content)
                rewrite(self.path.split("?")[0], data)
                content = json.dumps(data).encode()
            self.send_response(upstream.status_code)
            for name in ("content-type", "content-security-policy"):
                if name in upstream.headers:
                    self.send_header(name, upstream.headers[name])
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_DELETE = _forward

        def log_message(self, *args: object) -> None:
            pass

    with serving_on_a_thread(Handler) as url:
        yield url


__all__ = ["Rewrite", "Sent", "rewriting_proxy"]
