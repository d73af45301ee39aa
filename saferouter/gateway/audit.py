"""One sampled request's audit entry: reserved when the request starts (so the response
can name its index), filled with hashes when the response has been sent."""

from __future__ import annotations

import attrs

from ..attestation.service import AttestationService


@attrs.define
class AuditSample:
    service: AttestationService
    index: int
    request_id: str
    model: str
    provider: str
    request_body: bytes = attrs.field(repr=False)
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
        return cls(
            service=service,
            index=index,
            request_id=request_id,
            model=model,
            provider=provider,
            request_body=request_body,
        )

    @property
    def header(self) -> dict[str, str]:
        return {"X-SafeRouter-Audit-Sample": str(self.index)}

    async def finish(self, response_sha256: str, status: int) -> None:
        if self.done:
            return
        self.done = True
        await self.service.fill_sample(
            self.index,
            request_id=self.request_id,
            model=self.model,
            provider=self.provider,
            request_body=self.request_body,
            response_sha256=response_sha256,
            status=status,
        )
