"""A real HTTP server (the standard library's) on a thread of its own, for synchronous
tests: a proxy that rewrites answers, a page on another origin."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Handler = Callable[..., http.server.BaseHTTPRequestHandler]


@contextmanager
def serving_on_a_thread(handler: Handler) -> Iterator[str]:
    """``handler`` served on an ephemeral 127.0.0.1 port; yields the server's origin
    (``http://127.0.0.1:port``) and stops the server when the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """Files of a folder (pass ``directory=`` with functools.partial), no access log."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
