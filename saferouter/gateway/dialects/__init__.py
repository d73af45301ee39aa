"""The dialects the gateway serves, by client path (see :mod:`saferouter.gateway.dialect`).

Each dialect module registers itself here with one line.
"""

from __future__ import annotations

from ..dialect import Dialect
from .chat import CHAT

DIALECTS: dict[str, Dialect] = {
    CHAT.path: CHAT,
}
