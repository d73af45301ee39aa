"""``saferouter verify-receipt``: check one request's signed receipt, step by step.

The input is the body of ``GET /v1/receipts/{id}``: ``{"receipt", "signature",
"log_index", "inclusion_proof", "tree_size", "checkpoint", "origin", "signer"}``. The
steps:

  (1) signature          Ed25519 over the receipt's canonical bytes (translog/receipt.py),
                         by the key the receipt names
  (2) attested identity  the gateway's, from its quote (``--gateway``: every check of
                         ``saferouter verify``) or as ``verify --state`` saved it
  (3) identity           the receipt's identity and measurement are the attested ones —
                         or the receipt is another replica's (one the gateway lists as
                         sharing its database): then its signature and inclusion are checked
                         against that replica's key, and the verdict says that replica's
                         attestation is not what this verification proved
  (4) inclusion          the receipt's leaf is in the tree of a checkpoint signed by the
                         signer under the pinned origin ``<authority>/receipts``
                         (RFC 9162 §2.1.3.2)
  (5) consistency        that checkpoint and the attested (or remembered) head are one
                         log (RFC 9162 §2.1.4.2): with ``--gateway`` by a proof it serves;
                         from a state file alone only when the sizes are equal; not for
                         another replica's receipt (no head of its log was attested)
  (6) response           with ``--response``, the saved bytes hash to ``response_sha256``
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import httpx

from ..translog import merkle
from ..translog.receipt import receipt_leaf_hash, response_digest, verify_receipt_signature
from .channel import tls_context
from .client import run_checks
from .evidence import CheckFailed, Step, run_steps
from .logs import consistent, verify_signed_checkpoint
from .origin import log_origin
from .state import TreeHead, load_state


@attrs.frozen
class Source:
    """Where the attested identity comes from: a live gateway or a saved state file."""

    gateway: str | None = None
    state_path: Path | None = None
    allow_demo: bool = False
    audience: str | None = None
    cafile: str | None = None


@attrs.define
class _Found:
    identity: bytes | None = None
    measurement: str | None = None
    authority: str | None = None
    head: TreeHead | None = None  # the receipt log's attested or remembered head
    via: str = ""
    checkpoint: TreeHead | None = None  # the receipt's own checkpoint
    # another replica's identity when the receipt is its (signature and inclusion are
    # checked against it; its attestation is not what this verification proved)
    other_replica: bytes | None = None
    peers: tuple[str, ...] = ()  # the replicas the attested gateway listed


@attrs.frozen
class ReceiptChecked:
    """The steps run, and whose attestation the receipt rests on: None when it is the
    attested gateway's own, else the hex identity of the other replica that signed it."""

    steps: tuple[Step, ...]
    other_replica: str | None = None


def check_receipt(
    document: dict[str, Any],
    source: Source,
    *,
    response: bytes | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> tuple[Step, ...]:
    """Every step, in order, stopping at the first failure."""
    return verify_receipt(document, source, response=response, on_step=on_step).steps


def verify_receipt(
    document: dict[str, Any],
    source: Source,
    *,
    response: bytes | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> ReceiptChecked:
    """Every step, in order, stopping at the first failure, and whose receipt it is."""
    base_url = source.gateway.rstrip("/") if source.gateway else ""
    with httpx.Client(base_url=base_url, timeout=30, verify=tls_context(source.cafile)) as client:
        found = _Found()
        checks: list[tuple[str, Callable[[], str]]] = [
            ("signature", lambda: _signature(document)),
            ("attested identity", lambda: _attested(client, source, found, document)),
            ("identity", lambda: _identity(document, found)),
            ("inclusion", lambda: _inclusion(document, found)),
            ("consistency", lambda: _consistency(client, source, found)),
            ("response", lambda: _response(document["receipt"], response)),
        ]
        steps = tuple(run_steps(checks, on_step))
        other = found.other_replica.hex() if found.other_replica is not None else None
        return ReceiptChecked(steps, other)


def _signature(document: dict[str, Any]) -> str:
    receipt = document.get("receipt")
    if not isinstance(receipt, dict):
        raise CheckFailed("the file has no 'receipt' object")
    try:
        signature = base64.b64decode(document["signature"], validate=True)
        named = bytes.fromhex(receipt["identity"])
    except (binascii.Error, TypeError):
        raise CheckFailed("the signature is not base64") from None
    verify_receipt_signature(receipt, signature, named)
    return f"{receipt['receipt_id']}, signed by {named.hex()[:16]}…"


def _attested(client: httpx.Client, source: Source, found: _Found, document: dict[str, Any]) -> str:
    if source.gateway is not None:
        url = source.gateway.rstrip("/")
        checked = run_checks(
            url, allow_demo=source.allow_demo, audience=source.audience, http=client
        )
        attested = checked.require()
        found.identity, found.measurement = attested.identity, attested.measurement
        found.authority, found.head = attested.authority, attested.heads["receipts"]
        found.peers = attested.peers
        found.via = url
        return f"{attested.identity.hex()[:16]}…, verified now at {url} ({attested.root} root)"
    if source.state_path is None:
        raise CheckFailed("give --gateway URL or --state FILE: whose identity to trust")
    # the receipt's signer, if remembered; else the replica verified last
    named = bytes.fromhex(document["receipt"]["identity"])
    state = load_state(source.state_path, named) or load_state(source.state_path)
    if state is None:
        raise CheckFailed(f"no state file at {source.state_path}")
    if state.root != "AMD" and not source.allow_demo:  # the trust decision is made anew
        raise CheckFailed(
            f"the gateway saved in {source.state_path} chained to a {state.root} root, not "
            "AMD's: no hardware guarantee (--allow-demo to accept it)"
        )
    authority = source.audience or state.authority
    if authority is None:
        raise CheckFailed("the state file names no authority (verify again with --state)")
    found.identity, found.measurement = state.identity, state.measurement
    found.authority, found.head = authority, state.heads.get("receipts")
    found.via = str(source.state_path)
    return f"{state.identity.hex()[:16]}…, as saved in {source.state_path} ({state.root} root)"


def _identity(document: dict[str, Any], found: _Found) -> str:
    receipt = document["receipt"]
    assert found.identity is not None
    # another replica's receipt only if the attested gateway lists it as sharing its
    # database: a receipt of any other gateway is not its to serve
    if receipt["identity"] != found.identity.hex() and receipt["identity"] in found.peers:
        found.other_replica = bytes.fromhex(receipt["identity"])
        return (
            f"signed by another replica, {receipt['identity'][:16]}…, not the attested "
            f"{found.identity.hex()[:16]}…: its signature and inclusion are checked against "
            "its own key, but its attestation is NOT what this verification proved "
            "(verify it by connecting to that replica)"
        )
    if receipt["identity"] != found.identity.hex():
        raise CheckFailed(
            f"the receipt is signed by {receipt['identity'][:16]}…, not by the attested "
            f"identity {found.identity.hex()[:16]}… (another gateway's receipt?)"
        )
    if found.measurement is not None and receipt["measurement"] != found.measurement:
        raise CheckFailed(f"the receipt was made by measurement {receipt['measurement']}")
    return "the receipt's identity and measurement are the attested ones"


def _inclusion(document: dict[str, Any], found: _Found) -> str:
    assert found.identity is not None and found.authority is not None
    origin = log_origin(found.authority, "receipts")
    signer = found.other_replica or found.identity  # whose log the receipt is in
    checkpoint = verify_signed_checkpoint(
        document["checkpoint"], signer, origin, document.get("origin")
    )
    index, size = document["log_index"], document["tree_size"]
    if checkpoint.size != size:
        raise CheckFailed(f"the proof is for {size} receipts, the checkpoint has {checkpoint.size}")
    try:
        merkle.verify_inclusion(
            index,
            size,
            receipt_leaf_hash(document["receipt"]),
            [bytes.fromhex(h) for h in document["inclusion_proof"]],
            checkpoint.root_hash,
        )
    except merkle.ProofError as exc:
        raise CheckFailed(f"the inclusion proof does not hold: {exc}") from exc
    found.checkpoint = TreeHead(checkpoint.size, checkpoint.root_hash)
    return f"receipt {index} of {size}, checkpoint signed under {origin!r}"


def _consistency(client: httpx.Client, source: Source, found: _Found) -> str:
    mine, head = found.checkpoint, found.head
    assert mine is not None
    if found.other_replica is not None:
        return (
            f"not checked: the receipt is in replica {found.other_replica.hex()[:16]}…'s log, "
            f"whose head {found.via} did not attest (the receipt's checkpoint is that "
            "replica's published head)"
        )
    if head is None:
        raise CheckFailed(f"{found.via} holds no receipt-log head to compare with")
    if mine.size == head.size:
        if mine.root_hash != head.root_hash:
            raise CheckFailed("the receipt's checkpoint and the attested head fork")
        return f"the same head of {head.size} receipts as {found.via}"
    if source.gateway is None:
        return (
            f"not checked offline: the receipt's checkpoint has {mine.size} receipts, "
            f"the saved head {head.size} (give --gateway for a consistency proof)"
        )
    older, newer = (mine, head) if mine.size < head.size else (head, mine)
    consistent(client, "/attestation/receipts/proof", older, newer)
    return f"consistent with the head of {head.size} receipts at {found.via}"


def _response(receipt: dict[str, Any], response: bytes | None) -> str:
    if response is None:
        return "no saved response given (--response FILE)"
    digest = response_digest(response)
    if digest != receipt["response_sha256"] or len(response) != receipt["response_bytes"]:
        raise CheckFailed(
            f"the saved response ({len(response)} bytes, sha256 {digest[:16]}…) is not the "
            f"one the receipt covers ({receipt['response_bytes']} bytes, "
            f"{receipt['response_sha256'][:16]}…)"
        )
    return f"{len(response)} bytes, sha256 {digest[:16]}… as the receipt says"


def attempts_text(receipt: dict[str, Any]) -> list[str]:
    """Who saw the prompt: one line per attempt, from the (verified) receipt."""
    return [
        f"attempt {a['number']}: {a['provider']} / {a['model']}: {a['outcome']}"
        + (f" ({a['status']})" if a.get("status") is not None else "")
        for a in receipt.get("attempts", [])
    ]
