"""Settings: built once from the catalog TOML, command-line values and the environment.

Nothing else in SafeRouter reads ``os.environ``: the CLI passes a ``Mapping`` of the
environment to :func:`load_settings`, and the frozen :class:`Settings` is handed to
``create_app``. Provider keys are kept out of ``repr`` so they never reach a log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import attrs

from .catalog import DEFAULT_CATALOG_PATH, Api, Catalog, Provider, load_catalog
from .cors import parse_origin
from .errors import ConfigError
from .verify.origin import authority

N = TypeVar("N", int, float)


DEMO_URL = "http://demo.invalid"


@attrs.frozen
class UpstreamEndpoint:
    """Where and how to reach one provider, after the environment is applied."""

    provider: Provider
    base_url: str
    api_key: str | None = attrs.field(repr=False)
    anthropic_base_url: str = ""  # where ``messages`` goes; "" when the provider has none

    def url(self, api: Api) -> str:
        """The base URL ``api``'s upstream path goes under (the dialect's
        ``upstream_path`` is appended): ``anthropic_base_url`` for messages, ``base_url``
        for the OpenAI APIs. The demo's are names its in-process transport never
        resolves."""
        if self.provider.kind == "demo":
            return DEMO_URL if api is Api.MESSAGES else DEMO_URL + "/v1"
        return self.anthropic_base_url if api is Api.MESSAGES else self.base_url

    @property
    def available(self) -> bool:
        """Demo is always there; a keyed provider only once its key is set."""
        if self.provider.kind == "demo":
            return True
        return self.provider.api_key_env is None or bool(self.api_key)


@attrs.frozen
class Timeouts:
    connect_s: float = 10.0
    first_byte_s: float = 120.0  # reasoning models can think for a while before a byte
    idle_s: float = 120.0  # between two stream chunks
    total_s: float = 900.0  # non-streaming request, whole
    request_deadline_s: float = 300.0  # all attempts together, until a first byte


@attrs.frozen
class BreakerPolicy:
    """When a provider's circuit opens and for how long (``gateway.breaker`` applies it).

    It lives here, not beside the breaker, because it is a setting: config sits below
    the gateway and must not import it (``tests/unit/test_import_boundaries.py``)."""

    failures_to_open: int = 5
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    no_balance_cooldown_s: float = 300.0
    max_backoff_s: float = 60.0  # the longest a Retry-After is believed


@attrs.frozen
class Settings:
    catalog: Catalog
    endpoints: Mapping[str, UpstreamEndpoint]
    data_dir: Path
    catalog_path: Path
    # the shared store (storage/opening.py): postgresql://… for replicas, sqlite:///path
    # for a file of one's choosing; None is the SQLite file in the data dir. It may hold a
    # password: it is never printed, logged or measured.
    database_url: str | None = attrs.field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    # client connections one worker holds open; past it the longest-idle one is closed
    max_connections: int = 1000
    http2: bool = False  # cleartext HTTP/2 (prior knowledge and Upgrade: h2c); ALPN h2 on TLS
    # /metrics without an admin key, for a scraper that cannot send one (it holds counts
    # and the catalog's names only: no key, no prompt)
    metrics_public: bool = False
    # HTTPS with the process's own TLS key (tls/); the served chain, when not self-signed
    tls: bool = False
    tls_cert: Path | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    timeouts: Timeouts = Timeouts()
    # a client that accepts no byte of its response for this long is cut off (and, for a
    # stream, its upstream closed): slow readers must not hold connections forever
    send_timeout_s: float = 60.0
    max_upstream_connections: int = 1000
    max_keepalive_connections: int = 200
    max_attempts: int = 3  # attempts per request along the fallback chain (hedges count)
    breaker: BreakerPolicy = attrs.Factory(BreakerPolicy)
    # Billing and activity (reserve, settle, record); off only to measure their cost.
    accounting: bool = True
    activity_retention_days: float = 30.0
    # probability a request is sampled into the audit log, in parts per million
    audit_rate_ppm: int = 50_000
    # each serving process holds a lease on what it has reserved, renewed every third of
    # this (heartbeat.py); once it lapses, any replica's heartbeat releases what is held
    lease_s: float = 30.0
    # a signed receipt per request (gateway/receipts.py); off only to measure its cost
    receipts: bool = True
    # who the logs and quotes are for: the origin prefix of the checkpoints. A verifier
    # pins it from the URL it was given (verify/origin.py), so the default is the
    # listen authority; set SAFEROUTER_AUDIENCE to the public host name behind a proxy
    audience: str = attrs.field(
        default=attrs.Factory(lambda s: authority(s.host, s.port), takes_self=True)
    )
    # where each request's spans go (OTLP/HTTP protobuf, telemetry.py): the full URL of
    # the collector's traces endpoint; None exports nothing and imports no OpenTelemetry.
    # It is measured: a verifier sees whether, and where, request metadata leaves.
    otel_traces_url: str | None = None
    # the browser origins whose apps may call /v1/* (cors.py); none: CORS is off
    cors_origins: tuple[str, ...] = ()


def load_settings(
    environ: Mapping[str, str],
    *,
    config: str | Path | None = None,
    host: str | None = None,
    port: int | None = None,
    data_dir: str | Path | None = None,
    workers: int | None = None,
    max_connections: int | None = None,
    http2: bool | None = None,
    tls: bool | None = None,
    tls_cert: str | Path | None = None,
    database: str | None = None,
    otel_endpoint: str | None = None,
    cors_origins: Sequence[str] | None = None,
    metrics_public: bool | None = None,
) -> Settings:
    """Settings from explicit values, falling back to the environment, then defaults."""
    catalog_path = Path(config or environ.get("SAFEROUTER_CONFIG") or DEFAULT_CATALOG_PATH)
    catalog = load_catalog(catalog_path)
    data = Path(
        data_dir or environ.get("SAFEROUTER_DATA_DIR") or Path.home() / ".saferouter"
    ).expanduser()
    n_workers = workers if workers is not None else 1
    if n_workers < 1:
        raise ConfigError("--workers must be at least 1")
    n_connections = (
        max_connections
        if max_connections is not None
        else _int_env(environ, "SAFEROUTER_MAX_CONNECTIONS", 1000)
    )
    if n_connections < 1:
        raise ConfigError("--max-connections (SAFEROUTER_MAX_CONNECTIONS) must be at least 1")
    max_body = _int_env(environ, "SAFEROUTER_MAX_BODY_BYTES", 8 * 1024 * 1024)
    listen_host = host or environ.get("SAFEROUTER_HOST") or "127.0.0.1"
    listen_port = port if port is not None else _int_env(environ, "SAFEROUTER_PORT", 8080)
    cert = tls_cert or environ.get("SAFEROUTER_TLS_CERT") or None
    # a certificate to serve means serving TLS: no need to say --tls as well
    serve_tls = cert is not None or (
        tls if tls is not None else _flag_env(environ, "SAFEROUTER_TLS", False)
    )
    return Settings(
        catalog=catalog,
        endpoints=endpoints_from_env(catalog, environ),
        data_dir=data,
        catalog_path=catalog_path,
        database_url=database or environ.get("SAFEROUTER_DATABASE_URL") or None,
        host=listen_host,
        port=listen_port,
        workers=n_workers,
        max_connections=n_connections,
        http2=http2 if http2 is not None else _flag_env(environ, "SAFEROUTER_HTTP2", False),
        metrics_public=metrics_public
        if metrics_public is not None
        else _flag_env(environ, "SAFEROUTER_METRICS_PUBLIC", False),
        tls=serve_tls,
        tls_cert=Path(cert).expanduser() if cert else None,
        max_body_bytes=max_body,
        send_timeout_s=_send_timeout(environ),
        accounting=environ.get("SAFEROUTER_ACCOUNTING", "on").lower() not in ("off", "0", "false"),
        activity_retention_days=_float_env(environ, "SAFEROUTER_ACTIVITY_RETENTION_DAYS", 30.0),
        audit_rate_ppm=_audit_rate(environ),
        lease_s=_lease(environ),
        receipts=_flag_env(environ, "SAFEROUTER_RECEIPTS", True),
        audience=_audience(environ, authority(listen_host, listen_port)),
        otel_traces_url=_otel_traces_url(environ, otel_endpoint),
        cors_origins=_cors_origins(environ, cors_origins),
    )


def _cors_origins(environ: Mapping[str, str], given: Sequence[str] | None) -> tuple[str, ...]:
    """--cors-origin (repeated), else SAFEROUTER_CORS_ORIGINS (separated by spaces or
    commas): each as a browser serializes an origin, to compare with its Origin header."""
    listed = (
        given
        if given is not None
        else environ.get("SAFEROUTER_CORS_ORIGINS", "").replace(",", " ").split()
    )
    return tuple(dict.fromkeys(parse_origin(text) for text in listed))


def _audience(environ: Mapping[str, str], listen_authority: str) -> str:
    """SAFEROUTER_AUDIENCE: the ``host[:port]`` the logs' origins start with (no spaces,
    no +); by default the listen authority, which a verifier given the listen URL pins."""
    audience = environ.get("SAFEROUTER_AUDIENCE") or listen_authority
    if any(c in audience for c in " +\n") or not audience.isprintable():
        raise ConfigError("SAFEROUTER_AUDIENCE must be a host name (no spaces, no '+')")
    return audience


def _otel_traces_url(environ: Mapping[str, str], endpoint: str | None) -> str | None:
    """Where spans go, by the OpenTelemetry exporter specification's variables, or None.

    ``--otel-endpoint`` / OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL, to
    which the signal path ``v1/traces`` is appended; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    is the traces URL itself. OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn
    it off. Only the SDK's default protocol is built in (http/protobuf): a collector
    expecting gRPC would get nothing, so asking for another stops the start instead.
    """
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or exporter == "none":
        return None
    if endpoint:
        name, url = "--otel-endpoint", endpoint.rstrip("/") + "/v1/traces"
    elif environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        url = environ[name]
    elif environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        name = "OTEL_EXPORTER_OTLP_ENDPOINT"
        url = environ[name].rstrip("/") + "/v1/traces"
    else:
        return None
    if exporter not in ("", "otlp"):
        raise ConfigError("OTEL_TRACES_EXPORTER must be otlp or none")
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol.strip().lower() != "http/protobuf":
        raise ConfigError(
            f"OpenTelemetry is exported over OTLP http/protobuf only, not {protocol} "
            "(a collector's port 4318)"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL")
    # the URL is measured (served at /attestation/measurement) and logged: a collector's
    # credentials go in headers instead — a query's token as much as a user and password
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ConfigError(
            f"{name} must not hold credentials or a query; put them in OTEL_EXPORTER_OTLP_HEADERS"
        )
    return url


def _send_timeout(environ: Mapping[str, str]) -> float:
    """SAFEROUTER_SEND_TIMEOUT_S, seconds a response may wait on a client (default 60)."""
    timeout_s = _float_env(environ, "SAFEROUTER_SEND_TIMEOUT_S", 60.0)
    if not 0.0 < timeout_s < float("inf"):
        raise ConfigError("SAFEROUTER_SEND_TIMEOUT_S must be a positive number of seconds")
    return timeout_s


def _lease(environ: Mapping[str, str]) -> float:
    """SAFEROUTER_LEASE_SECONDS, how long a process's hold on its reservations outlives
    its last renewal (default 30): at least 1 s, so renewing every third of it is no
    busy loop, and finite, so a dead process's reservations are released at all."""
    lease_s = _float_env(environ, "SAFEROUTER_LEASE_SECONDS", 30.0)
    if not 1.0 <= lease_s < float("inf"):
        raise ConfigError("SAFEROUTER_LEASE_SECONDS must be a number of seconds, at least 1")
    return lease_s


def _audit_rate(environ: Mapping[str, str]) -> int:
    """SAFEROUTER_AUDIT_RATE, a probability (default 0.05), held as parts per million."""
    rate = _float_env(environ, "SAFEROUTER_AUDIT_RATE", 0.05)
    if not 0.0 <= rate <= 1.0:
        raise ConfigError("SAFEROUTER_AUDIT_RATE must be between 0 and 1")
    return round(rate * 1_000_000)


def endpoints_from_env(catalog: Catalog, environ: Mapping[str, str]) -> dict[str, UpstreamEndpoint]:
    endpoints = {}
    for pid, provider in catalog.providers.items():
        key = environ.get(provider.api_key_env) if provider.api_key_env else None
        endpoints[pid] = UpstreamEndpoint(
            provider=provider,
            base_url=_url_env(environ, provider.base_url_env, provider.base_url),
            api_key=key or None,
            anthropic_base_url=_url_env(
                environ, provider.anthropic_base_url_env, provider.anthropic_base_url
            ),
        )
    return endpoints


def _url_env(environ: Mapping[str, str], name: str | None, default: str) -> str:
    """The URL the environment variable ``name`` sets, when set, else ``default``."""
    if not name or not environ.get(name):
        return default
    url = environ[name].rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL")
    return url


def _flag_env(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """on/off, 1/0, true/false, yes/no (any case); unset or empty is ``default``."""
    value = environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise ConfigError(f"{name} must be on or off")


def _int_env(environ: Mapping[str, str], name: str, default: int) -> int:
    return _number_env(environ, name, default, int, "an integer")


def _float_env(environ: Mapping[str, str], name: str, default: float) -> float:
    return _number_env(environ, name, default, float, "a number")


def _number_env(
    environ: Mapping[str, str], name: str, default: N, kind: Callable[[str], N], what: str
) -> N:
    value = environ.get(name)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {what}") from exc
