"""What the HTTP layer learnt about delivering a response, for the code that records why
a response ended (kept apart from :mod:`saferouter.asgi` so the pipeline, which reads it,
imports nothing of the server)."""

from __future__ import annotations

import attrs


@attrs.define
class ClientDelivery:
    """What the ASGI layer learnt about delivering this response (in the request scope's
    ``extensions``, for the code that must record why a response ended)."""

    stalled: bool = False  # the client accepted nothing for send_timeout_s; cut off
