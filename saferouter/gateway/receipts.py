"""The receipt stage: a signed account of one admitted request, in the public receipt log.

At admission the request gets a receipt id (``rcpt_`` + 24 hex: its second, then 64
bits from the CSPRNG), written pending in the admission's own transaction, so any worker
answers ``409 receipt_pending`` for it until its response has ended. Then
:class:`Receipt` is drawn: a fresh 32-byte salt, the commitment
``sha256(salt ‖ request body bytes)`` (the bytes as received, so the client
can open it with the body it sent; the salt is in the receipt, which only that key and
admins can read), and the audit-sample draw. While the response goes out it is fed every
byte the client is handed (:meth:`Receipt.sent`: the body, each relayed stream chunk,
or the error body), and it is told every attempt of the race — hedges, fallbacks,
losers, the cut ones: exactly who saw the prompt.

When the response has ended, :meth:`Receipt.seal` turns the settlement's
:class:`~.books.Charge` into the receipt (the field list is in README "Receipts"),
encodes it once, signs those bytes with the identity (``translog/receipt.py``) and hashes
them into the log leaf. A non-stream reply (or an error) is sealed inside its settlement
and written in the same transaction, before the reply is returned; a stream settles before
its ``[DONE]`` and its receipt is written after the last byte was handed over (or the
client left), so a receipt never delays a first byte.

Encoding cost: RFC 8785 in pure Python (``canonical_json``) took ~220 µs for a receipt on
the loaded bench machine, twice the whole per-request budget (issue 12 §6). The receipt
holds only ints, bools, None, str-keyed dicts and lists, and ASCII strings almost always;
for such a value ``json.dumps(sort_keys=True, separators=(",", ":"))`` writes exactly the
RFC 8785 bytes (code-point order is UTF-16 order for ASCII keys, escapes agree), in C.
Anything else (a non-ASCII model name) falls back to ``canonical_json``; the provider's
usage object is made portable first (floats and huge ints as their JSON text).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..canonical import canonical_json
from ..storage import NewReceipt, Store
from ..translog import merkle
from ..translog.receipt import RECEIPT_VERSION, sign_receipt_bytes
from .attempt import Attempt
from .books import Charge

if TYPE_CHECKING:
    from hashlib import _Hash

    from ..attestation.service import AttestationService

RECEIPT_HEADER = "X-SafeRouter-Receipt"
SAMPLE_HEADER = "X-SafeRouter-Audit-Sample"
SALT_BYTES = 32
_MAX_SAFE_INT = 2**53 - 1  # beyond it a JSON number is not portable (RFC 8785 §3.2.2.3)


def new_receipt_id(wall_s: float) -> str:
    """A fresh receipt id: the second it was drawn (8 hex), then 64 bits from the CSPRNG.

    Unguessable, so ids cannot be probed (and a guess would still need the key that made
    the request). The time prefix is for the store: ids are the receipts table's key, and
    ids in the order they are drawn insert at the right edge of its B-tree — a few hot
    pages per commit — where purely random ones land on a random leaf each, so every
    request dirtied (and wrote to the WAL) pages of its own, twice (pending, then done).
    """
    return f"rcpt_{int(wall_s) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


@attrs.frozen
class Notary:
    """Who signs receipts, and what every receipt says about this gateway."""

    key: ed25519.Ed25519PrivateKey = attrs.field(repr=False)
    measurement_hex: str
    tls_spki_sha256: str | None
    audit_rate_ppm: int  # the audit-sample draw's rate, parts per million
    receipt_log: str  # the store's name of this replica's receipt log
    identity_hex: str = attrs.field(init=False)

    @identity_hex.default
    def _identity(self) -> str:
        return self.key.public_key().public_bytes_raw().hex()

    @classmethod
    def of(cls, service: AttestationService) -> Notary:
        """The attestation service's identity, measurement and TLS key claim."""
        return cls(
            key=service.key,
            measurement_hex=service.measurement.hex,
            tls_spki_sha256=service.tls_spki_sha256,
            audit_rate_ppm=service.settings.audit_rate_ppm,
            receipt_log=service.receipts.name,
        )

    def sampled(self) -> bool:
        """CSPRNG draw at the audit rate: is this request an audit sample?"""
        return secrets.randbelow(1_000_000) < self.audit_rate_ppm


@attrs.define
class Receipt:
    """One request's receipt while its response goes out; sealed once it has ended."""

    notary: Notary
    store: Store
    receipt_id: str
    request_id: str
    key_id: str
    time_s: int
    requested_model: str
    stream: bool
    audit_sample: bool
    salt: bytes = attrs.field(repr=False)
    request_commitment: str
    response: _Hash = attrs.field(repr=False)
    response_bytes: int = 0
    attempts: list[dict[str, Any]] = attrs.Factory(list)
    usage: Mapping[str, Any] | None = None  # as the provider reported it
    sealed: NewReceipt | None = None

    @classmethod
    def draw(
        cls,
        notary: Notary,
        store: Store,
        *,
        receipt_id: str,
        request_id: str,
        key_id: str,
        body: bytes,
        requested_model: str,
        stream: bool,
        wall_s: float,
    ) -> Receipt:
        """The receipt of an admitted request: salt, request commitment, sample draw."""
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(
            notary=notary,
            store=store,
            receipt_id=receipt_id,
            request_id=request_id,
            key_id=key_id,
            time_s=int(wall_s),
            requested_model=requested_model,
            stream=stream,
            audit_sample=notary.sampled(),
            salt=salt,
            request_commitment=hashlib.sha256(salt + body).hexdigest(),
            response=hashlib.sha256(),
        )

    @property
    def headers(self) -> dict[str, str]:
        """The response headers naming this receipt (and the sample, if it is one)."""
        if self.audit_sample:
            return {RECEIPT_HEADER: self.receipt_id, SAMPLE_HEADER: self.receipt_id}
        return {RECEIPT_HEADER: self.receipt_id}

    def sent(self, data: bytes) -> None:
        """Bytes of the response body, in the order they were handed to the client."""
        self.response.update(data)
        self.response_bytes += len(data)

    def record_attempts(self, attempts: list[Attempt]) -> None:
        """Every attempt of the race, each upstream that was sent the prompt."""
        self.attempts = [
            {
                "number": a.number,
                "provider": a.model.provider,
                "model": a.model.id,
                "outcome": str(a.outcome),
                "status": (a.error.status if a.error is not None else a.status) or None,
                "byok": a.byok,
            }
            for a in attempts
        ]

    def seal(self, charge: Charge) -> NewReceipt:
        """The signed receipt of the ended response (made once; its bytes never change)."""
        if self.sealed is not None:
            return self.sealed
        plan, price = charge.plan, charge.price
        model = plan.model if plan is not None else None
        receipt = {
            "version": RECEIPT_VERSION,
            "receipt_id": self.receipt_id,
            "request_id": self.request_id,
            "time": self.time_s,
            "key_id": self.key_id,
            "salt": self.salt.hex(),
            "request_commitment": self.request_commitment,
            "response_sha256": self.response.hexdigest(),
            "response_bytes": self.response_bytes,
            "status": charge.status,
            "stream": self.stream,
            "outcome": str(charge.outcome),
            "requested_model": self.requested_model,
            "served_model": model.id if model is not None else None,
            "provider": model.provider if model is not None else None,
            # whose provider key served: the client's own (billed at the BYOK fee) or not
            "byok": plan is not None and plan.own_key is not None,
            "attempts": self.attempts,
            "usage": portable(self.usage),
            "prices": None
            if price is None or model is None
            else {
                "model": model.id,
                "input_micro_usd_per_mtok": price.input,
                "cached_input_micro_usd_per_mtok": price.cached_input,
                "cache_write_micro_usd_per_mtok": price.cache_write,
                "output_micro_usd_per_mtok": price.output,
            },
            "cost_micro_usd": charge.cost_micro_usd,
            "estimated": charge.estimated,
            "measurement": self.notary.measurement_hex,
            "identity": self.notary.identity_hex,
            "tls_spki_sha256": self.notary.tls_spki_sha256,
            "audit_sample": self.audit_sample,
        }
        data = encode_receipt(receipt)
        self.sealed = NewReceipt(
            receipt_id=self.receipt_id,
            request_id=self.request_id,
            key_id=self.key_id,
            body=data,
            leaf_hash=merkle.leaf_hash(data),
            signature=sign_receipt_bytes(data, self.notary.key),
            audit_sample=self.audit_sample,
            created_at=float(self.time_s),
            log=self.notary.receipt_log,
        )
        return self.sealed

    async def finish(self, charge: Charge) -> None:
        """Seal and save the receipt, unless its settlement already carried it (shielded:
        a receipt whose response went out is written even if the request is cancelled)."""
        if self.sealed is not None:
            return
        sealed = self.seal(charge)
        with trio.CancelScope(shield=True):
            await self.store.save_receipt(sealed)


def encode_receipt(receipt: dict[str, Any]) -> bytes:
    """The receipt's RFC 8785 bytes (equal to ``translog.receipt.receipt_bytes``), in C
    when it is ASCII: see the module docstring for why that is the same encoding."""
    text = json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if text.isascii():
        return text.encode()
    return canonical_json(receipt)


def portable(value: Any) -> Any:
    """A provider's JSON value (as ``json.loads`` made it) with only what RFC 8785 encodes
    alike everywhere: floats and integers beyond 2^53 become their JSON text, as strings."""
    kind = type(value)
    if kind is dict:
        return {str(k): portable(v) for k, v in value.items()}
    if kind is list:
        return [portable(v) for v in value]
    if kind is int and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
        return value
    if kind is str or kind is bool or value is None:
        return value
    return json.dumps(value)  # a float, a huge int
