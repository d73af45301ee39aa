"""A request's signed receipt, ``GET /v1/receipts/{id}``, and the audit samples,
``GET /v1/audit/samples`` — both key-scoped (an admin sees every key's).

A receipt is shown to the key that made the request and to admins. Anyone else gets the
404 an unknown id gets, word for word, so receipt ids cannot be probed. A request whose
response has not ended answers 409 ``receipt_pending`` (the pending row is written at
admission, so every worker sharing the store says so); one that was in flight when the
gateway was killed answers 410 ``receipt_lost``: its response bytes were never known
in full, so no receipt will ever be signed for it.

Replicas sharing a database each sign their own receipt log; any of them serves any
receipt. One of this replica's is proved against its current head; one of another's
(``signer``: whose it is) against that replica's newest *published* head (only it can
sign one), and is ``409 receipt_pending`` until a head covering it has been published —
at that replica's next heartbeat. Such a receipt's signature and inclusion can be
checked against the signer's key; its attestation is not this replica's to prove.
"""

from __future__ import annotations

import base64
import json
import re

from quart import Blueprint, Response, request

from ..client_input import parse_count
from ..errors import InvalidRequest, NotFound
from ..state import app_state, json_response
from ..storage import KeyIdentity, ReceiptState, StoredReceipt
from ..translog.log import inclusion_proof, log_name, log_signer
from .attestation import service
from .auth import authenticate

blueprint = Blueprint("receipts", __name__)

# a replica's identity as /attestation writes it: a raw Ed25519 public key, in hex
_IDENTITY_HEX = re.compile(r"[0-9a-fA-F]{64}")

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
    size, checkpoint, origin = await _covering_head(stored)
    proof = await inclusion_proof(state.store, stored.log, stored.log_index, size)
    return json_response(
        {
            "receipt": json.loads(stored.body),
            "signature": base64.b64encode(stored.signature).decode(),
            "log_index": stored.log_index,
            "inclusion_proof": [h.hex() for h in proof],
            "tree_size": size,
            "checkpoint": checkpoint,
            "origin": origin,
            "signer": log_signer(stored.log),
        }
    )


async def _covering_head(stored: StoredReceipt) -> tuple[int, str, str]:
    """The head to prove the receipt against: (size, checkpoint, origin) — this
    replica's own now, or the newest its signer published."""
    log = service().receipts
    if stored.log == log.name:
        head = await log.head()
        return head.size, head.checkpoint, log.origin
    assert stored.log_index is not None
    published = await app_state().store.published_head(stored.log)
    if published is None or published.size <= stored.log_index:
        raise InvalidRequest(
            f"{stored.receipt_id}: signed by replica {log_signer(stored.log)}, which has not "
            "yet published a head of its receipt log covering it; it publishes one at its "
            "next heartbeat. Try again shortly.",
            status=409,
            code="receipt_pending",
        )
    # The head is read from the shared database, which anyone able to write it can forge:
    # one claiming more entries than the log holds cannot be proved here (no 500 for it).
    if published.size > await app_state().store.log_size(stored.log):
        raise InvalidRequest(
            f"{stored.receipt_id}: signed by replica {log_signer(stored.log)}, whose published "
            "head claims more of its receipt log than the shared database holds; verify the "
            "receipt by connecting to that replica.",
            status=409,
            code="receipt_unprovable",
        )
    # a checkpoint's first line is the origin it is signed under (C2SP tlog-checkpoint)
    return published.size, published.checkpoint, published.checkpoint.partition("\n")[0]


@blueprint.get("/v1/audit/samples")
async def audit_samples() -> Response:
    """The receipts drawn as audit samples (``SAFEROUTER_AUDIT_RATE``) of one replica's
    receipt log (``replica``: its identity; this one's by default), by index in that
    log from ``start``. A page never mixes logs: each replica's indexes start at 0."""
    state = app_state()
    key = await authenticate(state)
    identity = await _sampled_replica(request.args.get("replica"))
    start = parse_count(request.args, "start", default=0)
    limit = min(parse_count(request.args, "limit", default=100), 500)
    log = log_name("receipts", bytes.fromhex(identity))
    rows = await state.store.sampled_receipts(
        log, start, limit, key_id=None if key.is_admin else key.id
    )
    data = [
        {
            "index": r.log_index,
            "log": r.log,
            "signer": log_signer(r.log),
            "request_id": r.request_id,
            "key_id": r.key_id,
            "receipt_id": r.receipt_id,
            "receipt": json.loads(r.body) if r.body is not None else None,
        }
        for r in rows
    ]
    return json_response({"object": "list", "replica": identity, "data": data})


async def _sampled_replica(text: str | None) -> str:
    """The hex identity of the replica whose samples are asked for: this one's when
    ``text`` is absent, else one that shares the database (``/attestation`` lists them)."""
    mine = service().identity.hex()
    if text is None or text == "":
        return mine
    if _IDENTITY_HEX.fullmatch(text) is None:
        raise InvalidRequest(
            "'replica' must be a replica's identity: 64 hex digits, as /attestation names it.",
            param="replica",
            code="invalid_value",
        )
    identity = text.lower()
    if identity != mine and identity not in {
        r.identity for r in await app_state().store.replicas()
    }:
        raise NotFound(
            f"No replica {identity} shares this gateway's database (see /attestation).",
            param="replica",
            code="replica_not_found",
        )
    return identity


def _may_read(key: KeyIdentity, stored: StoredReceipt) -> bool:
    return key.is_admin or stored.key_id == key.id
