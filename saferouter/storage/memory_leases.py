"""The memory store's leases and reservation rows: :mod:`.leases` (SQL) answered in
Python, written only through the shared :class:`~.journal.Journal`. Which owners are
gone is decided by :func:`.rules.owner_is_gone`, as SQLite's recovery does."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from . import rules
from .journal import Journal


@attrs.frozen
class Reservation:
    request_id: str
    key_id: str
    amount_micro_usd: int
    owner: str | None
    created_at: float


class LeaseTable:
    """Each owner's lease (its expiry), and the open reservations, by request id."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._expiries: dict[str, float] = {}
        self._reservations: dict[str, Reservation] = {}

    def renew(self, owner: str, until: float) -> None:
        self._journal.set(self._expiries, owner, until)

    def end(self, owner: str) -> None:
        if owner in self._expiries:
            self._journal.delete(self._expiries, owner)

    def hold(self, reservation: Reservation) -> None:
        if reservation.amount_micro_usd <= 0:  # SQLite's CHECK
            raise ValueError("a reservation holds a positive amount")
        if reservation.request_id in self._reservations:  # SQLite's PRIMARY KEY
            raise ValueError(f"request {reservation.request_id} holds a reservation")
        self._journal.set(self._reservations, reservation.request_id, reservation)

    def let_go(self, request_id: str) -> None:
        if request_id in self._reservations:
            self._journal.delete(self._reservations, request_id)

    def abandoned(
        self, pending_owners: Iterable[str | None], now: float, replica: str | None
    ) -> list[str | None]:
        """The owners gone at ``now`` among those holding reservations or pending
        receipts (``pending_owners``); their lapsed leases are deleted on the way."""
        holders = {r.owner for r in self._reservations.values()} | set(pending_owners)
        gone = [
            owner
            for owner in holders
            if rules.owner_is_gone(
                owner, None if owner is None else self._expiries.get(owner), now, replica=replica
            )
        ]
        for owner, expires_at in list(self._expiries.items()):
            if rules.owner_is_gone(owner, expires_at, now, replica=replica):
                self.end(owner)
        return gone

    def held_by(self, owners: Iterable[str | None]) -> list[Reservation]:
        wanted = set(owners)
        return [r for r in self._reservations.values() if r.owner in wanted]

    def reserved_micro_usd(self, key_id: str) -> int:
        """The sum of the key's open reservation rows."""
        return sum(r.amount_micro_usd for r in self._reservations.values() if r.key_id == key_id)
