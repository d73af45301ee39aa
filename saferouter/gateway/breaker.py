"""Circuit breaking per provider (and per catalog model), pure: the time is a parameter.

closed ──N consecutive failures──▶ open ──cooldown elapsed──▶ half-open
  ▲                                  ▲                          │ one probe let through
  └──────────── probe succeeds ──────┴──── probe fails (cooldown doubles, capped) ◀┘

A failure that says "no money here" (DeepSeek 402, Z.AI 1113) opens the circuit at once,
for the long cooldown: retrying cannot help until someone pays. A rate limit is not an
outage: the upstream answered, so the circuit hears a success, and the key only *backs
off* for the ``Retry-After`` it was given (capped), then serves again.

Leave to send a request is an :class:`Admission`, a context manager: it holds the
half-open probe of each key it took one for, and its exit gives back whatever probe no
verdict settled — the attempt was cancelled, raised, or never reached the upstream — so
no path can leave a circuit probing forever. State lives in each worker process (a
restart forgets it, which only costs one probe).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from types import TracebackType

import attrs

from ..config import BreakerPolicy


class CircuitState(enum.StrEnum):
    """What a key's circuit lets through, from most to least open."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"  # one probe at a time
    BACKING_OFF = "backing_off"  # the upstream asked to wait (a 429's Retry-After)
    OPEN = "open"


CLOSED, HALF_OPEN, BACKING_OFF, OPEN = (
    CircuitState.CLOSED,
    CircuitState.HALF_OPEN,
    CircuitState.BACKING_OFF,
    CircuitState.OPEN,
)
_SEVERITY = list(CircuitState)


class Outcome(enum.StrEnum):
    """What one attempt says about the health of the keys it was admitted to."""

    SUCCESS = "success"  # the upstream answered (even with the client's own error)
    FAILURE = "failure"  # counts toward opening the key's circuit
    NO_BALANCE = "no_balance"  # opens the key's circuit at once, for long
    RATE_LIMITED = "rate_limited"  # up, but asked to wait: the key backs off
    NO_VERDICT = "no_verdict"  # says nothing about the upstream (cancelled, client's fault)


@attrs.frozen
class Standing:
    """The worst state over some keys, and when a request may go to all of them again
    (None: now, or as soon as a probe in flight ends)."""

    state: CircuitState
    retry_at: float | None


@attrs.define
class _Circuit:
    failures: int = 0
    state: CircuitState = CLOSED
    opened_at: float = 0.0
    cooldown_s: float = 0.0
    prober: Admission | None = None  # who holds the half-open probe


class CircuitBreaker:
    """Circuits for provider ids and catalog model keys (``provider/model``).

    Only keys that failed get state, and the gateway only reports failures against
    provider ids and catalog models, so a client's made-up model names never become
    state here (nor metric labels)."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._circuits: dict[str, _Circuit] = {}
        self._backoff_until: dict[str, float] = {}

    def state(self, key: str, now: float) -> CircuitState:
        """The state of one key at ``now``."""
        circuit = self._circuits.get(key)
        if circuit is not None and circuit.state == OPEN and now < _reopens_at(circuit):
            return OPEN
        if self._backoff_until.get(key, -math.inf) > now:
            return BACKING_OFF
        if circuit is not None and circuit.state != CLOSED:
            return HALF_OPEN
        return CLOSED

    def standing(self, keys: Iterable[str], now: float) -> Standing:
        """The worst state over ``keys``; a request needs every one of them."""
        keys = tuple(keys)
        state = max((self.state(k, now) for k in keys), key=_SEVERITY.index, default=CLOSED)
        times = [t for t in (self._retry_at(k, now) for k in keys) if t is not None]
        return Standing(state=state, retry_at=max(times) if times else None)

    def admit(self, keys: Iterable[str], now: float) -> Admission | None:
        """Leave to send one request to ``keys`` at ``now``, or None when one refuses.

        A half-open key lets one probe through: the admission takes it, for every such
        key or for none (a refusal by a later key must not strand an earlier probe)."""
        keys = tuple(dict.fromkeys(keys))
        probes = []
        for key in keys:
            state = self.state(key, now)
            if state in (OPEN, BACKING_OFF):
                return None
            if state == HALF_OPEN:
                if self._circuits[key].prober is not None:
                    return None
                probes.append(key)
        admission = Admission(self, keys)
        for key in probes:
            circuit = self._circuits[key]
            circuit.state, circuit.prober = HALF_OPEN, admission
        return admission

    def snapshot(self, now: float) -> dict[str, CircuitState]:
        """Every key with state, and its state at ``now`` (expired backoffs dropped)."""
        self._backoff_until = {k: t for k, t in self._backoff_until.items() if t > now}
        return {key: self.state(key, now) for key in {*self._circuits, *self._backoff_until}}

    def _retry_at(self, key: str, now: float) -> float | None:
        circuit = self._circuits.get(key)
        reopens = _reopens_at(circuit) if circuit is not None and circuit.state == OPEN else 0.0
        until = max(reopens, self._backoff_until.get(key, 0.0))
        return until if until > now else None

    def _settle(
        self, admission: Admission, outcome: Outcome, now: float, key: str, retry_after_s: float
    ) -> None:
        p = self.policy
        if outcome in (Outcome.SUCCESS, Outcome.RATE_LIMITED):
            for k in admission.keys:
                self._circuits.pop(k, None)
        if outcome == Outcome.RATE_LIMITED:
            until = now + min(max(retry_after_s, 0.0), p.max_backoff_s)
            self._backoff_until[key] = max(until, self._backoff_until.get(key, until))
        elif outcome in (Outcome.FAILURE, Outcome.NO_BALANCE):
            circuit = self._circuits.setdefault(key, _Circuit())
            circuit.failures += 1
            if outcome == Outcome.NO_BALANCE:
                _open(circuit, now, max(p.no_balance_cooldown_s, circuit.cooldown_s))
            elif circuit.state == HALF_OPEN:
                _open(circuit, now, min(circuit.cooldown_s * 2, p.max_cooldown_s))
            elif circuit.state == CLOSED and circuit.failures >= p.failures_to_open:
                _open(circuit, now, p.cooldown_s)
        self._release(admission)

    def _release(self, admission: Admission) -> None:
        """Give back the probes ``admission`` still holds: another request may probe."""
        for key in admission.keys:
            circuit = self._circuits.get(key)
            if circuit is not None and circuit.prober is admission:
                circuit.prober = None


@attrs.define(eq=False)
class Admission:
    """Leave for one attempt to go to ``keys``, settled exactly once: by the first
    :meth:`settle`, or by leaving the ``with`` block, which settles with no verdict."""

    _breaker: CircuitBreaker
    keys: tuple[str, ...]
    settled: bool = False

    def settle(
        self, outcome: Outcome, now: float, *, key: str = "", retry_after_s: float = 0.0
    ) -> None:
        """Report what the attempt showed. ``key`` is the one a failure counts against or
        that backs off (one of :attr:`keys`); later calls change nothing."""
        if self.settled:
            return
        if outcome not in (Outcome.SUCCESS, Outcome.NO_VERDICT) and key not in self.keys:
            raise ValueError(f"{outcome} must name one of {self.keys}, not {key!r}")
        self.settled = True
        self._breaker._settle(self, outcome, now, key, retry_after_s)

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.settle(Outcome.NO_VERDICT, 0.0)


def _reopens_at(circuit: _Circuit) -> float:
    return circuit.opened_at + circuit.cooldown_s


def _open(circuit: _Circuit, now: float, cooldown_s: float) -> None:
    circuit.state = OPEN
    circuit.opened_at = now
    circuit.cooldown_s = cooldown_s
    circuit.prober = None
