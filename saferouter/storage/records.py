"""The values the store takes and returns, and the states they carry.

States are :class:`enum.StrEnum` members: each *is* its string, so the values written to
SQLite and rendered in JSON are the same strings as before, while a misspelt state fails
where it is made. Records convert on construction (``ActivityEntry(outcome="ok")`` holds
``ActivityOutcome.OK``; an unknown value raises ``ValueError``), so no path — a SQLite
row, a memory store, a caller still passing strings — can carry a state that is not one.

A record read from SQLite is built from a SELECT of its own field names
(:func:`columns`), so adding a column to the SELECT means adding a field: the two
cannot drift apart by position. A field marked :data:`STORED_APART` (a key's BYOK keys)
lives in a table of its own and is left out of that SELECT.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs


class ActivityOutcome(enum.StrEnum):
    """How one attempt of a request ended, as the activity log records it."""

    OK = "ok"
    ERROR = "error"  # the upstream (or the gateway) failed it
    CLIENT_CLOSED = "client_closed"  # the client went away
    CLIENT_STALLED = "client_stalled"  # the client stopped reading a stream
    CANCELLED = "cancelled"  # a losing attempt of a race, or a fallback not needed
    REJECTED = "rejected"  # refused at admission (attempt 0): see ``Refusal``


class Refusal(enum.StrEnum):
    """Why admission refused a request (also the activity entry's ``error_type``)."""

    REVOKED = "revoked"
    UNSUPPORTED_CONTENT = "unsupported_content"  # a metered key, input with no cost bound
    REQUESTS_PER_MINUTE = "requests_per_minute"
    TOKENS_PER_MINUTE = "tokens_per_minute"
    INSUFFICIENT_QUOTA = "insufficient_quota"


class ReceiptState(enum.StrEnum):
    """Where a request's receipt is: written at admission as ``pending``, ``done`` once
    signed and in the receipt log, ``lost`` when the server stopped before it ended."""

    PENDING = "pending"
    DONE = "done"
    LOST = "lost"


class KeyRole(enum.StrEnum):
    ADMIN = "admin"
    USER = "user"


class LedgerKind(enum.StrEnum):
    """The kind of a ledger entry; every kind but ``OVERRUN`` moves a key's balance."""

    TOPUP = "topup"
    METERING = "metering"  # writes off what a key spent while unmetered
    RESERVE = "reserve"
    RELEASE = "release"
    CHARGE = "charge"
    OVERRUN = "overrun"  # billed beyond the charge: the operator's loss


# metadata of a field read from a table of its own, not from the record's own row
STORED_APART = {"stored_apart": True}


def stored_fields(record: type[attrs.AttrsInstance]) -> list[str]:
    """The names of ``record``'s fields that are columns of its own row, in field order:
    all but those :data:`STORED_APART` (keyword-only, so a row fills the rest in order)."""
    return [f.name for f in attrs.fields(record) if not f.metadata.get("stored_apart")]


def columns(record: type[attrs.AttrsInstance], *, table: str = "") -> str:
    """The SELECT list that reads ``record``: its :func:`stored_fields`, each qualified
    by ``table`` when given (``k.id``, in a join)."""
    prefix = f"{table}." if table else ""
    return ", ".join(prefix + name for name in stored_fields(record))


# Members by value: a dict lookup, where ``KeyRole(value)`` (Enum.__call__) costs about a
# microsecond, on the per-request key read.
_ROLES = {role.value: role for role in KeyRole}


def _role(value: str) -> KeyRole:
    role = _ROLES.get(value)
    if role is None:
        raise ValueError(f"{value!r} is not a KeyRole")
    return role


def _outcome(value: str) -> ActivityOutcome:
    return ActivityOutcome(value)


def _refusal(value: str | None) -> Refusal | None:
    return None if value is None else Refusal(value)


def _by_provider(keys: Iterable[ByokKey]) -> tuple[ByokKey, ...]:
    return tuple(sorted(keys, key=lambda k: k.provider))


@attrs.frozen
class ByokKey:
    """A provider key a SafeRouter key brought (issue 13), as the store keeps it: only
    sealed, to the gateway's BYOK public key (:mod:`saferouter.byok.sealing`). One per
    (key, provider); the plaintext is never a field of anything stored."""

    key_id: str
    provider: str
    sealed_key: bytes = attrs.field(repr=False)  # the sealed box, as uploaded
    sealed_to: str  # hex X25519 public key it is sealed to (the gateway's at upload)
    measurement: str  # hex measurement of the gateway build that accepted it
    fingerprint: str  # sealing.fingerprint of the provider key
    # byok_fallback: may the operator's key serve when the provider refuses this one
    fallback: bool = attrs.field(default=False, converter=bool)  # SQLite gives 0 / 1
    created_at: float = 0.0
    updated_at: float = 0.0

    def sealed_for(self, public_key_hex: str) -> bool:
        """Whether it is sealed to ``public_key_hex``, a gateway's BYOK public key: only
        that gateway can open it (another build, another key pair, shows it unusable)."""
        return self.sealed_to == public_key_hex


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
    role: KeyRole = attrs.field(converter=_role)
    created_at: float
    revoked_at: float | None
    metered: bool = attrs.field(default=False, converter=bool)  # SQLite gives 0 / 1
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    # its BYOK keys, by provider: every change to them moves the key generation too, so
    # the pipeline reads them from the cached identity with no read of its own
    byok: tuple[ByokKey, ...] = attrs.field(
        default=(), converter=_by_provider, kw_only=True, metadata=STORED_APART
    )

    @property
    def is_admin(self) -> bool:
        return self.role is KeyRole.ADMIN

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
    outcome: ActivityOutcome = attrs.field(converter=_outcome)
    latency_ms: float | None = None
    ttfb_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micro_usd: int = 0
    streamed: bool = attrs.field(default=False, converter=bool)
    estimated: bool = attrs.field(default=False, converter=bool)
    error_type: str | None = None
    # what the provider billed beyond the charge (``cost_micro_usd``): the operator's loss
    overrun_micro_usd: int = 0
    byok: bool = attrs.field(default=False, converter=bool)  # served with the key's own key
    # issue 15: which API the client spoke ("chat", "responses", "messages": the dialect's
    # ``Api`` value; a string here, the storage layer knows no gateway types)
    api: str = "chat"
    response_id: str | None = None  # the upstream's id of the response this attempt served
    finish_reason: str | None = None  # as the API says it (stop, completed, end_turn …)
    app_title: str | None = None  # the calling app, as it named itself (X-Title)
    app_referer: str | None = None  # and its URL (HTTP-Referer)
    note: str | None = None  # what routing did that the client should know (skipped models)
    cache_write_tokens: int = 0  # of prompt_tokens, written to the provider's prompt cache
    id: int | None = None

    @property
    def app(self) -> str | None:
        """The app that sent the request: the title it gave, else its URL."""
        return self.app_title if self.app_title is not None else self.app_referer


@attrs.frozen
class AdmissionRequest:
    key_id: str
    request_id: str
    reserve_micro_usd: int | None  # None: no upper bound (non-text input); refused if metered
    now: float
    # recorded in the activity log only when the request is refused
    requested_model: str = ""
    streamed: bool = False
    # an admitted request's receipt, recorded pending in the admission's transaction
    receipt_id: str | None = None
    # the worst case of the attempts with the key's own provider keys alone: reserved
    # instead when the whole one does not fit the credits (None: no narrower set)
    own_keys_reserve_micro_usd: int | None = None
    # what a refusal's entry says of the request, as every entry of it does
    api: str = "chat"
    app_title: str | None = None
    app_referer: str | None = None
    note: str | None = None


@attrs.frozen
class Admission:
    admitted: bool
    reserved_micro_usd: int = 0
    own_keys_only: bool = False  # admitted for the attempts with its own keys only
    refusal: Refusal | None = attrs.field(default=None, converter=_refusal)
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
    receipt: NewReceipt | None = None  # written in the same transaction


@attrs.frozen
class NewReceipt:
    """A signed receipt as the store keeps it: its canonical bytes (the receipt log's
    entry), the leaf hash the log above computed, and the identity's signature."""

    receipt_id: str
    request_id: str
    key_id: str
    body: bytes
    leaf_hash: bytes
    signature: bytes
    audit_sample: bool
    created_at: float
    log: str  # the receipt log it goes into: its signer's (translog.log.log_name)


@attrs.frozen
class StoredReceipt:
    """A receipt as read back; ``body``, ``signature`` and ``log_index`` are None
    unless it is ``done``. ``log`` is the receipt log it is in (once done): the log of
    the replica that signed it, which need not be the one reading it."""

    receipt_id: str
    request_id: str
    key_id: str
    state: ReceiptState = attrs.field(converter=ReceiptState)
    log_index: int | None
    body: bytes | None
    signature: bytes | None
    log: str


@attrs.frozen
class PublishedHead:
    """A log's newest head as its replica published it to the shared store: what any
    replica proves that replica's entries against (``checkpoint``: the signed note)."""

    log: str
    size: int
    checkpoint: str
    published_at: float


@attrs.frozen
class Replica:
    """A replica (by its hex identity) that has served from the shared store: when it
    first started, and when its heartbeat was last seen."""

    identity: str
    started_at: float
    last_seen: float


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
    app: str | None = None  # the calling app (ActivityEntry.app: its title, else its URL)
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
