"""``create_app(settings)``: the QuartTrio application, its state and error handling."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from functools import partial

import trio
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound as UnknownUrl
from werkzeug.routing import IntegerConverter, ValidationError

from .api_asgi import REQUEST_ID_HEADER, ApiEndpoint
from .asgi import UNMATCHED, ClientGuard, new_request_id, trace_of
from .attestation.service import AttestationService
from .byok.keyring import Keyring
from .client_input import COUNT_PATTERN, MAX_COUNT, validate_storable
from .clock import TrioClock
from .config import Settings
from .cors import CorsLayer, CorsPolicy
from .datadir import replica_id
from .errors import (
    ApiError,
    ConfigError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    unexpected_error,
)
from .gateway.auth import Authenticator
from .gateway.breaker import CircuitBreaker
from .gateway.pipeline import Ports
from .gateway.receipts import Notary
from .gateway.upstream import Upstreams
from .heartbeat import ROUND_STEPS, Heartbeat
from .metrics_registry import MetricsRegistry
from .metrics_share import SharedMetrics
from .observe import Observer, Observers
from .paths import ApiPrefix, not_found
from .routes import (
    activity,
    attestation,
    byok,
    count_tokens,
    credits,
    health,
    keys,
    metrics,
    models,
    openrouter,
    receipts,
    web,
)
from .state import EXTENSION, AppState, app_state, error_response
from .storage import Store
from .storage.leases import new_owner
from .storage.opening import open_store

log = logging.getLogger("saferouter")

BODY_TIMEOUT_S = 60.0  # for a request body to arrive, read or drained


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    tls_key: EllipticCurvePrivateKey | None = None,
) -> QuartTrio:
    """The gateway application. Without ``store``, the configured one (by default the
    SQLite store in the data dir), for an owner of this data dir's replica; ``tls_key``:
    the key TLS is served with (attested), when the server holds it. While it serves,
    its store's owner holds a lease (:mod:`.heartbeat`)."""
    app = QuartTrio("saferouter", static_folder=None)
    # Quart cuts any response after RESPONSE_TIMEOUT (60 s) without a word: streams of a
    # thinking model run longer. Idle and first-byte timeouts are enforced per stream.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT_S
    # "/v1//models" is an unknown URL (404), not a 308 redirect with an HTML body: that
    # is no OpenAI-shaped answer, and an API client should not resend a POST elsewhere.
    app.url_map.merge_slashes = False
    app.url_map.converters["int"] = CountConverter
    store = store or open_store(settings, owner=new_owner(replica_id(settings.data_dir)))
    app_state = AppState(
        breaker=CircuitBreaker(settings.breaker),
        settings=settings,
        store=store,
        authenticator=Authenticator(store),
        metrics=MetricsRegistry(known_models=frozenset(settings.catalog.models)),
    )
    app_state.observers = Observers((app_state.metrics,))
    if settings.workers > 1:  # a scrape reaches one worker: it shows them all
        app_state.shared_metrics = SharedMetrics.in_data_dir(app_state.metrics, settings.data_dir)
    app.extensions[EXTENSION] = app_state
    open_traces = _trace_opener(settings)  # a missing ``otel`` extra stops the start here
    traces = ExitStack()  # the trace exporter while serving; closing it sends the last spans
    heartbeat = Heartbeat(
        store,
        lease_s=settings.lease_s,
        steps=[(step.__name__, partial(step, app_state)) for step in ROUND_STEPS],
        wall=TrioClock().wall,
    )
    # Quart's middleware hook: hypercorn, the CLI and the tests all serve it this way.
    # The API paths (DIALECTS) are answered in front of Quart, by ApiEndpoint; the rest by Quart.
    # Twice the body limit may be drained: a body just over it (a 413) keeps its
    # keep-alive connection; a far bigger one is answered with Connection: close.
    # OpenRouter's /api/v1 prefix is rewritten before either routes (paths.py).
    app.asgi_app = ClientGuard(  # type: ignore[method-assign]
        ApiPrefix(
            ApiEndpoint(
                app.asgi_app,
                ports=lambda: app_state.ports,
                max_body_bytes=settings.max_body_bytes,
                body_timeout_s=BODY_TIMEOUT_S,
            )
        ),
        send_timeout_s=settings.send_timeout_s,
        drain_limit_bytes=2 * settings.max_body_bytes,
        body_timeout_s=BODY_TIMEOUT_S,
        observers=lambda: app_state.observers,
    )
    if settings.cors_origins:  # outermost: it sees the response's final headers (cors.py)
        policy = CorsPolicy(frozenset(settings.cors_origins))
        app.asgi_app = CorsLayer(app.asgi_app, policy)  # type: ignore[method-assign]

    @app.before_serving
    async def _open_upstreams() -> None:
        app_state.upstreams = Upstreams(settings)
        app_state.attestation = await AttestationService.open(
            settings, app_state.store, tls_key=tls_key
        )
        service = app_state.attestation
        app_state.ports = Ports(
            settings=settings,
            store=app_state.store,
            keys=app_state.authenticator,
            upstreams=app_state.upstreams,
            breaker=app_state.breaker,
            clock=TrioClock(),
            keyring=Keyring(
                open_sealed=service.open_sealed,
                public_key_hex=service.byok_public_key,
                measurement_hex=service.measurement.hex,
                endpoints=settings.endpoints,
            ),
            notary=Notary.of(app_state.attestation) if settings.receipts else None,
            open_streams=app_state.metrics.open_streams,
            unsettled=app_state.unsettled,
        )
        if open_traces is not None:
            exporter = traces.enter_context(open_traces())
            app_state.observers = Observers((*app_state.observers.observers, exporter))
            log.info("OpenTelemetry traces go to %s", settings.otel_traces_url)
        # the lease before the first request: nothing is admitted without one
        await heartbeat.take_lease()
        await app.nursery.start(heartbeat.run)
        if app_state.shared_metrics is not None:
            app.nursery.start_soon(app_state.shared_metrics.run)

    @app.after_serving
    async def _close() -> None:
        # hypercorn runs this once the requests in flight have ended (or were cut off at
        # the graceful timeout): what those left open is for the next sweep to release.
        # Each has handed its trace over: the export thread posts what is queued, then
        # stops (in a thread: it waits on the collector).
        await trio.to_thread.run_sync(traces.close)
        await heartbeat.stop()
        if app_state.upstreams is not None:
            await app_state.upstreams.aclose()
        await app_state.store.close()

    @app.before_request
    async def _start() -> None:
        trace = trace_of(request.scope)
        g.request_id = trace.request_id if trace is not None else new_request_id()
        if trace is not None:  # the rule's template, never the raw path (a 404: none)
            trace.route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        g.started = trio.current_time()  # the pipeline's clock (clock.TrioClock)
        # What may reach the store holds no NUL (client_input.validate_storable): no
        # resource is named with one (404), and a query value with one is bad input.
        if "\x00" in request.path:
            raise UnknownUrl()
        for name, value in request.args.items(multi=True):
            validate_storable(value, param=name)

    @app.after_request
    async def _stamp(response: Response) -> Response:
        request_id = getattr(g, "request_id", None)
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        if request.path.startswith("/attestation"):
            attestation.cors(response)
        return response

    @app.errorhandler(ApiError)
    async def _client_error(error: ApiError) -> Response:
        return _traced_error(error)

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response:
        return _traced_error(_from_http(error))

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        request_id = getattr(g, "request_id", "unknown")
        return _traced_error(
            unexpected_error(error, method=request.method, path=request.path, request_id=request_id)
        )

    app.register_blueprint(models.blueprint)
    app.register_blueprint(count_tokens.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(keys.blueprint)
    app.register_blueprint(credits.blueprint)
    app.register_blueprint(activity.blueprint)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(attestation.blueprint)
    app.register_blueprint(receipts.blueprint)
    app.register_blueprint(byok.blueprint)
    app.register_blueprint(openrouter.blueprint)
    app.register_blueprint(web.blueprint)
    return app


class CountConverter(IntegerConverter):
    """``<int:…>`` in a route: the strict count of :func:`client_input.parse_count`.

    Werkzeug's own matches ``\\d+``, which takes other scripts' digits ("١٢") and any
    length (an integer SQLite cannot bind: a 500); anything else is now a 404.
    """

    regex = COUNT_PATTERN

    def to_python(self, value: str) -> int:
        number: int = super().to_python(value)
        if number > MAX_COUNT:
            raise ValidationError()
        return number


def _trace_opener(settings: Settings) -> Callable[[], AbstractContextManager[Observer]] | None:
    """``telemetry.open_trace_exporter`` for the traces URL, when there is one. Imported
    only then: with none, OpenTelemetry is not even imported (tests/e2e/test_otel.py)."""
    url = settings.otel_traces_url
    if url is None:
        return None
    try:
        from .telemetry import open_trace_exporter
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise ConfigError(
            "OpenTelemetry traces need the otel extra: pip install 'saferouter[otel]'"
        ) from exc
    return partial(open_trace_exporter, url)


def _traced_error(error: ApiError) -> Response:
    """The error's response, its code noted in the request's trace."""
    trace = trace_of(request.scope)
    if trace is not None:
        trace.error_type = error.code or error.error_type
    return error_response(error)


def _from_http(error: HTTPException) -> ApiError:
    """Werkzeug's routing and body errors, in OpenAI's shape."""
    code = error.code or 500
    if code == 404:
        return not_found(request.method, request.path)
    if code == 405:
        allowed = getattr(error, "valid_methods", None) or []
        headers = {"Allow": ", ".join(sorted(allowed))} if allowed else {}
        return MethodNotAllowed(
            f"Method {request.method} is not allowed for {request.path}."
            + (f" Allowed: {', '.join(sorted(allowed))}." if allowed else ""),
            headers=headers,
        )
    if code == 413:
        return PayloadTooLarge(
            "The request body is larger than this gateway accepts "
            f"({app_state().settings.max_body_bytes} bytes)."
        )
    if 400 <= code < 500:
        return InvalidRequest(error.description or "Bad request", status=code)
    return InternalError("The server had an error while processing your request.")
