"""``POST /v1/messages/count_tokens``: how many input tokens a Messages request would
use, asked of the provider the catalog routes its model to (plain trio, ports passed in).

Claude Code calls it to size its context, so it must answer or fail cleanly, never 500.
It is authenticated like every API call (``Authorization`` or ``x-api-key``) but not
billed and not reserved for: Anthropic does not bill it, and no provider's answer here
spends tokens. It still makes the gateway send a request on the operator's account, so
it counts against the key's requests per minute — the window its other requests count
in (:meth:`~saferouter.storage.Store.count_request`: no reservation) — and is refused
429 when they are used up, before anything goes upstream. It records no activity and
leaves the circuit breaker alone (a provider that does not count says nothing about its
messages).

The request goes to ``/v1/messages/count_tokens`` under the routed model's Anthropic
base URL with the Messages headers (:class:`~.dialects.messages.MessagesDialect`), the
body as sent but ``model`` (the catalog's upstream name) and the stripped fields. The
provider's answer comes back as it is; its errors as for a message (Anthropic's shape,
rendered by the caller), except a 404, which is read as "this provider does not count
tokens" — DeepSeek's and Z.AI's Anthropic endpoints are not documented to — and said so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..catalog import Api
from ..errors import InvalidRequest, NotFound, UpstreamBadGateway, UpstreamUnavailable
from .books import refused_for_key_or_rate
from .dialects.messages import MESSAGES
from .dialects.messages_request import parse_count_tokens_request
from .pipeline import Ports
from .redact import Redactor
from .routing import choose_candidates
from .upstream import UpstreamPath, read_body, read_error_body, upstream_error

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
MAX_COUNT_BODY_BYTES = 64 * 1024  # an answer is {"input_tokens": n}: far below this


async def count_tokens(
    ports: Ports,
    *,
    authorization: str | None,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]],
) -> bytes:
    """The provider's count for the Messages request in ``body`` (its JSON bytes).
    Raises ``ApiError``: 401, 400 for bad input or a model whose provider does not serve
    Messages, 404 for an unknown model or a provider that does not count, 429 when the
    key's requests per minute are used up, and the upstream errors of a message."""
    settings = ports.settings
    key = await ports.keys.authenticate(authorization)
    request = parse_count_tokens_request(body, headers)
    # the model routing would serve: OpenRouter's ``models`` with unknown ids skipped
    model = choose_candidates(settings.catalog, request.model, request.client_models).requested
    endpoint = settings.endpoints[model.provider]
    provider = endpoint.provider
    if Api.MESSAGES not in provider.apis:
        raise InvalidRequest(
            f"{model.id} is served by {provider.name}, which does not speak the Anthropic "
            "Messages API.",
            param="model",
            code="unsupported_api",
        )
    if not endpoint.available:
        raise UpstreamUnavailable(
            f"{provider.name} is not configured (the operator has not set {provider.api_key_env})",
            code="provider_not_configured",
        )
    if settings.accounting:  # the store keeps the rate windows (off: no limits at all)
        admission = await ports.store.count_request(key.id, ports.clock.wall())
        if not admission.admitted:
            raise refused_for_key_or_rate(admission)
    path = UpstreamPath(
        Api.MESSAGES, COUNT_TOKENS_PATH, lambda key: MESSAGES.upstream_headers(request, key)
    )
    upstream = MESSAGES.upstream_body(request).for_model(model)
    timeouts = settings.timeouts
    response = await ports.upstreams.open(
        endpoint, upstream, path=path, stream=False, timeouts=timeouts
    )
    redactor = Redactor.for_key(endpoint.api_key)
    if response.status == 404:
        await read_error_body(response, provider.name)
        raise NotFound(
            f"{provider.name} does not count tokens (it answered 404 to {COUNT_TOKENS_PATH} "
            f"for {model.id}).",
            code="count_tokens_unsupported",
        )
    if not 200 <= response.status < 300:
        error_body = await read_error_body(response, provider.name)
        raise upstream_error(
            response.status, error_body, response.headers, provider.name, redactor=redactor
        )
    answer = redactor.known(
        await read_body(response, provider.name, timeouts.total_s, MAX_COUNT_BODY_BYTES)
    )
    try:
        counted = json.loads(answer)
    except (ValueError, RecursionError):
        counted = None
    if not isinstance(counted, dict) or not isinstance(counted.get("input_tokens"), int):
        raise UpstreamBadGateway(
            f"{provider.name} answered {COUNT_TOKENS_PATH} without a token count",
            code="upstream_invalid_json",
        )
    return answer
