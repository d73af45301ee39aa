"""``POST /v1/messages/count_tokens``: the Quart adapter of
:func:`saferouter.gateway.count_tokens.count_tokens`. Every answer is in Anthropic's
shape, errors included — a body too large, a bug — since only Anthropic clients call it."""

from __future__ import annotations

from quart import Blueprint, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import ApiError, PayloadTooLarge, ServiceUnavailable, unexpected_error
from ..gateway.auth import presented_key
from ..gateway.count_tokens import COUNT_TOKENS_PATH, count_tokens
from ..gateway.dialects.messages import MESSAGES
from ..state import app_state

blueprint = Blueprint("count_tokens", __name__)


@blueprint.post(COUNT_TOKENS_PATH)
async def count_messages_tokens() -> Response:
    ports = app_state().ports
    try:
        if ports is None:  # not serving yet (the app starts its ports first)
            raise ServiceUnavailable("The gateway is starting; retry shortly.")
        authorization = presented_key(
            request.headers.get("Authorization"), request.headers.get("x-api-key")
        )
        try:
            body = await request.get_data(cache=False, as_text=False)
        except RequestEntityTooLarge:
            raise PayloadTooLarge("The request body is larger than this gateway accepts.") from None
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers.items()
        ]
        assert isinstance(body, bytes)
        answer = await count_tokens(ports, authorization=authorization, body=body, headers=headers)
    except ApiError as error:
        return _anthropic_error(error)
    except Exception as error:  # a bug: Anthropic's 500, the log where it happened
        request_id = getattr(g, "request_id", "unknown")
        return _anthropic_error(
            unexpected_error(error, method="POST", path=COUNT_TOKENS_PATH, request_id=request_id)
        )
    return Response(answer, content_type="application/json")


def _anthropic_error(error: ApiError) -> Response:
    status, headers, body = MESSAGES.error_reply(error)
    return Response(body, status=status, headers=headers)
