"""Public attestation endpoints (CORS open: a verifier page may live anywhere): quotes,
the startup log and the receipt log (``/attestation/audit/…`` answers as its alias: the
audit sampler is a view of the receipt log). The key-scoped receipt endpoints are in
:mod:`.receipts`."""

from __future__ import annotations

import base64
import time
from collections import deque

from quart import Blueprint, Response, request

from ..attestation.peers import REPLICAS_NOTE, other_replicas
from ..attestation.service import AttestationService
from ..client_input import parse_count
from ..errors import InvalidRequest, NotFound, RateLimited
from ..state import app_state, json_response
from ..translog import merkle
from ..translog.entry import decode_entry
from ..translog.log import SignedLog
from .body import json_object

blueprint = Blueprint("attestation", __name__)

QUOTES_PER_MINUTE = 60  # per client address


def service() -> AttestationService:
    svc = app_state().attestation
    if svc is None:
        raise NotFound("Attestation is not running on this gateway.", code="no_attestation")
    return svc


@blueprint.get("/attestation")
async def status() -> Response:
    svc = service()
    latest = None
    size = (await svc.startup.head()).size
    if size:
        (entry,) = await svc.store.log_entries(svc.startup.name, size - 1, 1)
        assert entry.body is not None
        latest = {"index": entry.index, **decode_entry(entry.body)["spec"]}
    return json_response(
        {
            "mode": svc.attester.mode,
            "measurement": svc.measurement.hex,
            "identity": svc.identity.hex(),
            "build": svc.build,
            "audience": svc.settings.audience,
            "tls_spki_sha256": svc.tls_spki_sha256,
            "byok_public_key": svc.byok_public_key,
            "audit_rate": svc.settings.audit_rate_ppm / 1_000_000,
            "latest_startup": latest,
            "startup_log_size": size,
            # the replica that answered; the others sharing its database, as read there
            "replica": svc.identity.hex(),
            "replicas": await other_replicas(svc.store, svc.identity),
            "replicas_note": REPLICAS_NOTE,
        }
    )


@blueprint.get("/attestation/measurement")
async def measurement() -> Response:
    """The document the measurement is the SHA-256 of: code manifest and configuration
    (no secrets: provider key *names*, header names). Nothing here is trusted by itself;
    a client hashes it and compares with the measurement a verified quote attests."""
    svc = service()
    return json_response(
        {"measurement": svc.measurement.hex, "document": svc.measurement.document()}
    )


@blueprint.get("/attestation/verifying-key")
async def verifying_key() -> Response:
    svc = service()
    return json_response(
        {
            "public_key": svc.identity.hex(),
            "algorithm": "ed25519",
            "startup_log_vkey": svc.startup.verifier.vkey(),
            "receipt_log_vkey": svc.receipts.verifier.vkey(),
            "audit_log_vkey": svc.receipts.verifier.vkey(),  # the audit log's alias
        }
    )


@blueprint.post("/attestation/quote")
async def quote() -> Response:
    svc = service()
    _rate_limit(request.remote_addr or "unknown")
    data = await json_object()
    nonce_hex = data.get("nonce")
    try:
        nonce = bytes.fromhex(nonce_hex) if isinstance(nonce_hex, str) else b""
    except ValueError:
        nonce = b""
    if not 16 <= len(nonce) <= 64:
        raise InvalidRequest(
            "'nonce' must be 16 to 64 bytes as hex.", param="nonce", code="invalid_value"
        )
    return json_response(await svc.quote(nonce))


@blueprint.get("/attestation/transparency")
async def startup_entries() -> Response:
    return await _entries(service().startup)


@blueprint.get("/attestation/transparency/head")
async def startup_head() -> Response:
    return await _head(service().startup)


@blueprint.get("/attestation/transparency/proof")
async def startup_proof() -> Response:
    return await _proof(service().startup)


@blueprint.get("/attestation/transparency/<int:index>")
async def startup_entry(index: int) -> Response:
    return await _entry(service().startup, index)


@blueprint.get("/attestation/receipts/head")
@blueprint.get("/attestation/audit/head", endpoint="audit_head")
async def receipts_head() -> Response:
    return await _head(service().receipts)


@blueprint.get("/attestation/receipts/proof")
@blueprint.get("/attestation/audit/proof", endpoint="audit_proof")
async def receipts_proof() -> Response:
    return await _proof(service().receipts)


@blueprint.get("/attestation/receipts/<int:index>")
@blueprint.get("/attestation/audit/<int:index>", endpoint="audit_entry")
async def receipts_entry(index: int) -> Response:
    """A receipt's leaf (never its bytes) with its inclusion proof in the current head."""
    log = service().receipts
    head = await log.head()
    if index >= head.size:
        raise NotFound(f"No entry {index} in the receipts log.", code="entry_not_found")
    (entry,) = await log.store.log_entries(log.name, index, 1)
    assert entry.body is not None
    proof = await log.inclusion(index, head.size)
    return json_response(
        {
            "index": index,
            "leaf_hash": merkle.leaf_hash(entry.body).hex(),
            "inclusion_proof": {
                "tree_size": head.size,
                "root_hash": head.root_hash.hex(),
                "hashes": [h.hex() for h in proof],
                "checkpoint": head.checkpoint,
            },
        }
    )


async def _entries(log: SignedLog) -> Response:
    start = parse_count(request.args, "start", default=0)
    limit = min(parse_count(request.args, "limit", default=100), 1000)
    rows = await log.store.log_entries(log.name, start, limit)
    data = [
        {
            "index": e.index,
            "integratedTime": int(e.created_at),
            "body": base64.b64encode(e.body).decode(),
        }
        for e in rows
        if e.body is not None
    ]
    return json_response({"object": "list", "origin": log.origin, "data": data})


async def _head(log: SignedLog) -> Response:
    head = await log.head()
    return json_response(
        {
            "origin": log.origin,
            "tree_size": head.size,
            "root_hash": head.root_hash.hex(),
            "checkpoint": head.checkpoint,
            "vkey": log.verifier.vkey(),
        }
    )


async def _entry(log: SignedLog, index: int) -> Response:
    entry = await log.rekor_entry(index)
    if entry is None:
        raise NotFound(f"No entry {index} in the {log.name} log.", code="entry_not_found")
    return json_response(entry)


async def _proof(log: SignedLog) -> Response:
    first = parse_count(request.args, "first", default=0)
    proof = await log.consistency(first, parse_count(request.args, "second", default=None))
    if proof is None:
        raise InvalidRequest("0 ≤ first ≤ second ≤ the log's size.", code="invalid_value")
    return json_response(proof)


def _rate_limit(client: str) -> None:
    now = time.monotonic()
    times = app_state().quote_times.setdefault(client, deque())
    while times and times[0] < now - 60:
        times.popleft()
    if len(times) >= QUOTES_PER_MINUTE:
        retry = int(times[0] + 60 - now) + 1
        raise RateLimited(
            f"At most {QUOTES_PER_MINUTE} quotes a minute from one address.",
            headers={"Retry-After": str(retry)},
        )
    times.append(now)


def cors(response: Response) -> Response:
    """Public attestation data may be read by a verifier page hosted anywhere."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return response
