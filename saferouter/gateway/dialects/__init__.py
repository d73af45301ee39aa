"""The dialects the gateway serves, by client path (see :mod:`saferouter.gateway.dialect`).

Each dialect module registers itself here with one line.
"""

from __future__ import annotations

from ..dialect import Dialect
from .chat import CHAT
from .messages import MESSAGES
from .responses import RESPONSES

DIALECTS: dict[str, Dialect] = {
    CHAT.path: CHAT,
    MESSAGES.path: MESSAGES,
    RESPONSES.path: RESPONSES,
}
