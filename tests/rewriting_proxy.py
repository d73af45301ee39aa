"""A real HTTP server in front of a gateway that rewrites its JSON answers: how tests
make a gateway lie at the HTTP level, nothing of its code patched (the verifier page's
tests and the BYOK verification tests use it)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

Rewrite = Callable[[str, Any], None]


@contextmanager
def rewriting_proxy(target: str, rewrite: Rewrite) -> Iterator[str]:
    """A real HTTP server in front of the gateway that rewrites its JSON answers in place:
    ``rewrite(path, data)``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = httpx.request(
                self.command,
                target + self.path,
                content=body,
                headers={"Content-Type": "application/json"},
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

        do_GET = do_POST = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


__all__ = ["Rewrite", "rewriting_proxy"]
