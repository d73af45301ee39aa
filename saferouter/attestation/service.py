"""The attestation service: identity, measurement, quotes, the startup and receipt logs.

A quote binds a client's nonce to this gateway: its REPORT_DATA is the SHA-512 of the
canonical JSON (RFC 8785) of the claims ``{nonce, identity, measurement, build,
audience, time, tls_spki_sha256, byok_public_key}`` (``tls_spki_sha256`` binds the quote
to the TLS key served on the connection it came over, ``null`` without TLS;
``byok_public_key`` is the X25519 key users seal their provider keys to, so a verified
quote says which build holds its private half). Every start appends a signed,
hash-chained entry to the startup log; every admitted request's signed receipt goes into
the receipt log (``gateway/receipts.py``: the log holds only leaf hashes; the audit
sampler is a view of it). Both logs are this replica's own (``startup/<identity>``,
``receipts/<identity>``), even when replicas share a database: :meth:`announce`
publishes their heads for the others.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import attrs
import nacl.public
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .. import __version__
from ..byok import sealing
from ..canonical import canonical_json
from ..config import Settings
from ..storage import LogEntry, Store
from ..tls.certificates import spki_sha256
from ..translog.entry import entry_hash
from ..translog.log import SignedLog, log_name
from .attester import Attester, open_attester, open_sealer
from .identity import IDENTITY, TLS_KEY, byok_key_kind, load_or_create_key, public_bytes
from .measurement import Measurement, measure

STARTUP_KIND = "saferouter-startup"
MIN_NONCE_BYTES, MAX_NONCE_BYTES = 16, 64


def report_data_for(claims: dict[str, Any]) -> bytes:
    """REPORT_DATA of a quote: SHA-512 of the claims' canonical JSON (64 bytes)."""
    return hashlib.sha512(canonical_json(claims)).digest()


def demo_launch_measurement(measurement: Measurement) -> bytes:
    """What the demo report carries as MEASUREMENT (a launch digest is 48 bytes)."""
    return hashlib.sha384(b"saferouter demo launch\n" + measurement.digest).digest()


@attrs.define
class AttestationService:
    settings: Settings
    store: Store
    key: ed25519.Ed25519PrivateKey
    measurement: Measurement
    attester: Attester
    startup: SignedLog
    receipts: SignedLog  # the audit sampler is a view of it (gateway/receipts.py)
    byok_key: nacl.public.PrivateKey = attrs.field(repr=False)  # this build's: identity.py
    tls_key: ec.EllipticCurvePrivateKey | None = None  # the served key, with --tls

    @classmethod
    async def open(
        cls, settings: Settings, store: Store, *, tls_key: ec.EllipticCurvePrivateKey | None = None
    ) -> AttestationService:
        """The service, its keys loaded (or created) from the data dir. ``tls_key``: the
        key this process serves TLS with, when the caller holds it already (a worker,
        handed it by the parent); with ``settings.tls`` and none given, the data dir's."""
        measurement = measure(settings)
        attester = open_attester(
            settings.data_dir, measurement=demo_launch_measurement(measurement)
        )
        sealer = await open_sealer(attester)
        key = load_or_create_key(IDENTITY, settings.data_dir, sealer)
        # every worker loads the file the parent made before they started: one key pair
        byok_key = load_or_create_key(byok_key_kind(measurement), settings.data_dir, sealer)
        if tls_key is None and settings.tls:
            tls_key = load_or_create_key(TLS_KEY, settings.data_dir, sealer)
        audience, identity = settings.audience, public_bytes(key)
        # each replica's own logs (the origins name the audience, the key the replica)
        startup, receipts = (
            SignedLog(store, name=log_name(kind, identity), origin=f"{audience}/{kind}", key=key)
            for kind in ("startup", "receipts")
        )
        return cls(
            settings=settings,
            store=store,
            key=key,
            measurement=measurement,
            attester=attester,
            startup=startup,
            receipts=receipts,
            byok_key=byok_key,
            tls_key=tls_key,
        )

    @property
    def build(self) -> str:
        return f"saferouter/{__version__}"

    @property
    def identity(self) -> bytes:
        return public_bytes(self.key)

    @property
    def tls_spki_sha256(self) -> str | None:
        """Hex SHA-256 of the served TLS key's SubjectPublicKeyInfo; ``None`` without TLS."""
        return None if self.tls_key is None else spki_sha256(self.tls_key.public_key())

    @property
    def byok_public_key(self) -> str:
        """Hex X25519 public key users seal their provider keys to (64 characters)."""
        return bytes(self.byok_key.public_key).hex()

    def open_sealed(self, sealed: bytes, binding: sealing.Binding) -> str:
        """The provider key a user sealed to :attr:`byok_public_key`, bound to
        ``binding``; raises :class:`~saferouter.byok.sealing.SealedKeyError` when it does
        not open here, or is another key's or provider's."""
        return sealing.open_sealed(self.byok_key, sealed, binding)

    def claims(self, nonce: bytes, now: float) -> dict[str, Any]:
        return {
            "nonce": nonce.hex(),
            "identity": self.identity.hex(),
            "measurement": self.measurement.hex,
            "build": self.build,
            "audience": self.settings.audience,
            "time": int(now),
            "tls_spki_sha256": self.tls_spki_sha256,
            "byok_public_key": self.byok_public_key,
        }

    async def quote(self, nonce: bytes) -> dict[str, Any]:
        if not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
            raise ValueError(f"the nonce is {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES} bytes")
        claims = self.claims(nonce, time.time())
        report_data = report_data_for(claims)
        report = await self.attester.report(report_data)
        return {
            "mode": self.attester.mode,
            "claims": claims,
            "report_data": report_data.hex(),
            "report": report.hex(),
            "certificates": await self.attester.chain_pem(),
        }

    async def record_startup(self) -> LogEntry:
        """Append this start to the startup log, with a quote over a random nonce."""
        quote = await self.quote(secrets.token_bytes(32))
        spec = {
            "measurement": self.measurement.hex,
            "identity": self.identity.hex(),
            "build": self.build,
            "audience": self.settings.audience,
            "tee_mode": self.attester.mode,
            "quote_digest": hashlib.sha256(bytes.fromhex(quote["report"])).hexdigest(),
            "time": int(time.time()),
            "tls_spki_sha256": self.tls_spki_sha256,
            "byok_public_key": self.byok_public_key,
        }
        return await self.startup.append(STARTUP_KIND, spec)

    async def announce(self, now: float) -> None:
        """Tell the replicas sharing the store that this one lives at ``now`` (wall
        time), and publish both logs' current heads: at start, then every heartbeat
        round, so that what a replica leaves behind when it dies is its newest heads."""
        await self.store.see_replica(self.identity.hex(), now)
        await self.startup.publish()
        await self.receipts.publish()


__all__ = ["AttestationService", "entry_hash", "report_data_for"]
