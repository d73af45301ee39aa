"""A request's signed receipt, ``GET /v1/receipts/{id}``, and the audit samples,
``GET /v1/audit/samples`` — both key-scoped (an admin sees every key's).

A receipt is shown to the key that made the request and to admins. Anyone else gets the
404 an unknown id gets, word for word, so receipt ids cannot be probed. A request whose
response has not ended answers 409 ``receipt_pending`` (the pending row is written at
admission, so every worker sharing the store says so); one that was in flight when the
gateway was killed answers 410 ``receipt_lost``: its response bytes were never known
in full, so no receipt will ever be signed for it.
"""

from __future__ import annotations

import base64
import json

from quart import Blueprint, Response, request

from ..client_input import parse_count
from ..errors import InvalidRequest, NotFound
from ..state import app_state, json_response
from ..storage import KeyIdentity, ReceiptState, StoredReceipt
from .attestation import service
from .auth import authenticate

blueprint = Blueprint("receipts", __name__)

# a receipt not signed (yet, or ever): the answer for its state
_NOT_SIGNED = {
    ReceiptState.PENDING: (
        409,
        "receipt_pending",
        "the response has not ended yet; its receipt is signed when it does. Try again shortly.",
    ),
    ReceiptState.LOST: (
        410,
        "receipt_lost",
        "the gateway stopped while the response was going out, so what the client was sent "
        "is unknown and no receipt was signed for it.",
    ),
}


@blueprint.get("/v1/receipts/<receipt_id>")
async def receipt(receipt_id: str) -> Response:
    state = app_state()
    key = await authenticate(state)
    stored = await state.store.receipt(receipt_id)
    if stored is None or not _may_read(key, stored):
        raise NotFound(f"No receipt {receipt_id!r} for this key.", code="receipt_not_found")
    if stored.state in _NOT_SIGNED:
        status, code, why = _NOT_SIGNED[stored.state]
        raise InvalidRequest(f"{receipt_id}: {why}", status=status, code=code)
    assert stored.body is not None and stored.signature is not None
    assert stored.log_index is not None
    log = service().receipts
    head = await log.head()
    proof = await log.inclusion(stored.log_index, head.size)
    return json_response(
        {
            "receipt": json.loads(stored.body),
            "signature": base64.b64encode(stored.signature).decode(),
            "log_index": stored.log_index,
            "inclusion_proof": [h.hex() for h in proof],
            "tree_size": head.size,
            "checkpoint": head.checkpoint,
            "origin": log.origin,
        }
    )


@blueprint.get("/v1/audit/samples")
async def audit_samples() -> Response:
    """The receipts drawn as audit samples (``SAFEROUTER_AUDIT_RATE``), by log index."""
    state = app_state()
    key = await authenticate(state)
    start = parse_count(request.args, "start", default=0)
    limit = min(parse_count(request.args, "limit", default=100), 500)
    rows = await state.store.sampled_receipts(start, limit, key_id=None if key.is_admin else key.id)
    data = [
        {
            "index": r.log_index,
            "request_id": r.request_id,
            "key_id": r.key_id,
            "receipt_id": r.receipt_id,
            "receipt": json.loads(r.body) if r.body is not None else None,
        }
        for r in rows
    ]
    return json_response({"object": "list", "data": data})


def _may_read(key: KeyIdentity, stored: StoredReceipt) -> bool:
    return key.is_admin or stored.key_id == key.id
