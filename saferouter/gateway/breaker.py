"""Circuit breaking per provider (and per provider model), pure: the time is a parameter.

closed ──N consecutive failures──▶ open ──cooldown elapsed──▶ half-open
  ▲                                  ▲                          │ one probe let through
  └──────────── probe succeeds ──────┴──── probe fails (cooldown doubles, capped) ◀┘

A failure that says "no money here" (DeepSeek 402, Z.AI 1113) opens the circuit at once,
for the long cooldown: retrying cannot help until someone pays. State lives in each
worker process (a restart forgets it, which only costs one probe).
"""

from __future__ import annotations

import attrs

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@attrs.frozen
class BreakerPolicy:
    failures_to_open: int = 5
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    no_balance_cooldown_s: float = 300.0


@attrs.define
class _Circuit:
    failures: int = 0
    state: str = CLOSED
    opened_at: float = 0.0
    cooldown_s: float = 0.0
    probing: bool = False


class CircuitBreaker:
    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._circuits: dict[str, _Circuit] = {}

    def state(self, key: str, now: float) -> str:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state == CLOSED:
            return CLOSED
        if circuit.state == OPEN and now >= circuit.opened_at + circuit.cooldown_s:
            return HALF_OPEN
        return circuit.state

    def retry_at(self, key: str) -> float | None:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state == CLOSED:
            return None
        return circuit.opened_at + circuit.cooldown_s

    def allow(self, key: str, now: float) -> bool:
        """May a request go to ``key`` now? In half-open, only one probe at a time."""
        state = self.state(key, now)
        if state == CLOSED:
            return True
        if state == OPEN:
            return False
        circuit = self._circuits[key]
        if circuit.probing:
            return False
        circuit.state = HALF_OPEN
        circuit.probing = True
        return True

    def succeeded(self, key: str) -> None:
        self._circuits.pop(key, None)

    def failed(self, key: str, now: float, *, no_balance: bool = False) -> None:
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        p = self.policy
        if no_balance:
            self._open(circuit, now, max(p.no_balance_cooldown_s, circuit.cooldown_s))
        elif circuit.state == HALF_OPEN:
            self._open(circuit, now, min(circuit.cooldown_s * 2, p.max_cooldown_s))
        elif circuit.state == CLOSED and circuit.failures >= p.failures_to_open:
            self._open(circuit, now, p.cooldown_s)

    def released(self, key: str) -> None:
        """A probe ended without a verdict (cancelled): let another one through."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.probing = False

    def snapshot(self, now: float) -> dict[str, str]:
        return {key: self.state(key, now) for key in self._circuits}

    @staticmethod
    def _open(circuit: _Circuit, now: float, cooldown_s: float) -> None:
        circuit.state = OPEN
        circuit.opened_at = now
        circuit.cooldown_s = cooldown_s
        circuit.probing = False
