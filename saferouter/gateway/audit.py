"""One sampled request's audit entry: reserved when the request starts (so the response
can name its index), filled with commitments when the response has been sent.

The entry is public, so it must not let anyone confirm a guess of what was asked or
answered: a plain SHA-256 of the request bytes would (hash the guessed prompt, compare).
It holds commitments instead, ``sha256(salt ‖ bytes)`` (:data:`COMMITMENT_SCHEME`),
with a fresh 32-byte salt from the CSPRNG for each sampled request. The salt goes to the
client that made the request, in the ``X-SafeRouter-Audit-Salt`` response header, and
nowhere else: it is not stored, logged or put in the entry, so only that client can open
its commitments (and show a third party, by revealing salt and bytes, what it sent and
got). The request is committed to as soon as the sample is drawn; the response
commitment is a SHA-256 seeded with the salt, fed every byte as it is sent.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

import attrs

from ..attestation.service import AttestationService

if TYPE_CHECKING:
    from hashlib import _Hash

COMMITMENT_SCHEME = "sha256(salt||bytes)"
SALT_BYTES = 32
SAMPLE_HEADER = "X-SafeRouter-Audit-Sample"
SALT_HEADER = "X-SafeRouter-Audit-Salt"


def commit(salt: bytes, data: bytes) -> str:
    """The commitment to ``data`` under ``salt``: hex SHA-256 of salt then data."""
    return hashlib.sha256(salt + data).hexdigest()


@attrs.define
class AuditSample:
    service: AttestationService
    index: int
    request_id: str
    model: str
    provider: str
    salt: bytes = attrs.field(repr=False)
    request_commitment: str
    response: _Hash = attrs.field(repr=False)
    done: bool = False

    @classmethod
    async def maybe(
        cls,
        service: AttestationService | None,
        *,
        key_id: str,
        request_id: str,
        model: str,
        provider: str,
        request_body: bytes,
    ) -> AuditSample | None:
        """A sample, when the CSPRNG draw says this request is one."""
        if service is None or not service.sampled():
            return None
        index = await service.store.log_reserve(service.audit.name, key_id, request_id)
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(
            service=service,
            index=index,
            request_id=request_id,
            model=model,
            provider=provider,
            salt=salt,
            request_commitment=commit(salt, request_body),
            response=hashlib.sha256(salt),
        )

    @property
    def header(self) -> dict[str, str]:
        """The response headers naming the entry and (to this client only) its salt."""
        return {SAMPLE_HEADER: str(self.index), SALT_HEADER: self.salt.hex()}

    def sent(self, data: bytes) -> None:
        """Bytes of the response body, in the order they went to the client."""
        self.response.update(data)

    async def finish(self, status: int) -> None:
        """Fill the entry with both commitments, once (later calls do nothing)."""
        if self.done:
            return
        self.done = True
        await self.service.fill_sample(
            self.index,
            request_id=self.request_id,
            model=self.model,
            provider=self.provider,
            commitments={
                "commitment": COMMITMENT_SCHEME,
                "request_commitment": self.request_commitment,
                "response_commitment": self.response.hexdigest(),
            },
            status=status,
        )
