"""The values the store takes and returns."""

from __future__ import annotations

import attrs


@attrs.frozen
class KeyIdentity:
    """What a key is and may do: every field that changes only with the store's key
    generation (:meth:`~saferouter.storage.Store.key_generation`), so a copy stays true
    for as long as the generation is unchanged. What moves with traffic (balance,
    reservations, last use) is in :class:`KeyRecord` only, so it cannot be read stale
    from a cache."""

    id: str
    name: str
    prefix: str
    role: str
    created_at: float
    revoked_at: float | None
    metered: bool = False
    rpm_limit: int | None = None
    tpm_limit: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@attrs.frozen
class KeyRecord(KeyIdentity):
    """A key as stored, with what its traffic changes."""

    last_used_at: float | None = None
    balance_micro_usd: int = 0  # available: the ledger's sum, net of open reservations
    reserved_micro_usd: int = 0

    def identity(self) -> KeyIdentity:
        """The fields the key generation covers, without the ones traffic moves."""
        return KeyIdentity(**{f.name: getattr(self, f.name) for f in attrs.fields(KeyIdentity)})


@attrs.frozen
class RateLimits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@attrs.frozen
class ActivityEntry:
    """One attempt of one request (attempt 0: refused before any upstream was asked)."""

    request_id: str
    attempt: int
    created_at: float
    key_id: str
    requested_model: str
    served_model: str | None
    provider: str | None
    original_model: str | None
    status: int
    outcome: str  # ok | error | client_closed | client_stalled | cancelled | rejected
    latency_ms: float | None = None
    ttfb_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micro_usd: int = 0
    streamed: bool = False
    estimated: bool = False
    error_type: str | None = None
    # what the provider billed beyond the charge (``cost_micro_usd``): the operator's loss
    overrun_micro_usd: int = 0
    id: int | None = None


@attrs.frozen
class AdmissionRequest:
    key_id: str
    request_id: str
    reserve_micro_usd: int | None  # None: no upper bound (non-text input); refused if metered
    now: float
    # recorded in the activity log only when the request is refused
    requested_model: str = ""
    streamed: bool = False


@attrs.frozen
class Admission:
    admitted: bool
    reserved_micro_usd: int = 0
    # "insufficient_quota" | "requests_per_minute" | "tokens_per_minute" | "unsupported_content"
    refusal: str | None = None
    balance_micro_usd: int = 0
    rate_limit: int | None = None  # the limit that applies to the headers (rpm)
    rate_remaining: int | None = None
    rate_reset_s: float = 0.0
    retry_after_s: int = 0


@attrs.frozen
class Settlement:
    key_id: str
    request_id: str
    reserved_micro_usd: int
    cost_micro_usd: int
    tokens: int
    attempts: tuple[ActivityEntry, ...]
    now: float


@attrs.frozen
class Books:
    metered: bool
    balance_micro_usd: int
    reserved_micro_usd: int
    spent_micro_usd: int
    topped_up_micro_usd: int
    overrun_micro_usd: int = 0  # billed beyond the charges, borne by the operator


@attrs.frozen
class ModelUsage:
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_micro_usd: int


@attrs.frozen
class ActivityFilter:
    key_id: str | None = None  # None: every key (admin)
    model: str | None = None
    provider: str | None = None
    status: str | None = None  # "ok" | "error" | an HTTP status | an outcome
    since: float | None = None
    until: float | None = None
    before_id: int | None = None  # pagination cursor
    limit: int = 50


@attrs.frozen
class LogEntry:
    log: str
    index: int
    body: bytes | None  # None while an audit entry is pending
    created_at: float
    key_id: str | None = None
    request_id: str | None = None


@attrs.frozen
class NewLogEntry:
    """An entry's bytes with its Merkle leaf hash, both made by the log that writes it."""

    body: bytes
    leaf_hash: bytes
