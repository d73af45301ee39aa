"""Which origins a verifier expects a gateway's checkpoints to be signed under (pure).

A checkpoint names its log by origin (c2sp.org/tlog-checkpoint); a verifier that read the
origin from the server's own JSON would accept a log signed for anything — a log of
another deployment of the same identity, say. So the verifier pins it: a log ``name`` of
the gateway at ``URL`` has the origin ``<authority>/<name>``, where the authority is the
URL's ``host[:port]`` as given (the port left out when it is the scheme's default), or an
audience named explicitly. The gateway's default audience is its listen authority made
by the same :func:`authority`, so the two meet when the URL is the listen address.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import ParseError

DEFAULT_PORTS = {"http": 80, "https": 443}


def authority(host: str, port: int | None, *, scheme: str | None = None) -> str:
    """``host:port`` (IPv6 hosts in brackets); no port when it is ``scheme``'s default."""
    shown = f"[{host}]" if ":" in host else host
    if port is None or (scheme is not None and DEFAULT_PORTS.get(scheme) == port):
        return shown
    return f"{shown}:{port}"


def url_authority(url: str) -> str:
    """The authority of an http(s) URL, lower-cased host, as a verifier pins it."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ParseError(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ParseError(f"the port of {url!r} is not a number") from None
    return authority(parts.hostname, port, scheme=parts.scheme)


def log_origin(pinned_authority: str, log: str) -> str:
    """The origin the checkpoints of ``log`` must be signed under."""
    return f"{pinned_authority}/{log}"
