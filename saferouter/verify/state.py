"""What ``saferouter verify --state FILE`` remembers between runs, and reads back.

The file holds what a passed verification established — the gateway's pinned authority,
its identity and measurement, which root the report chained to, the attested TLS key —
and the head of each log (size and root hash), so that the next run can ask for a
consistency proof (RFC 9162 §2.1.4) and ``verify-receipt --state`` can check a receipt
offline against the identity attested here. Files written before the receipt log
existed carry an ``audit`` head instead of ``receipts``: it is ignored (the audit log is
now a view of the receipt log), never an error.

Replicas behind one load balancer are each a TEE of its own identity with logs of its
own, so the file remembers each replica apart, by identity (``{"replicas": [...]}``,
the one verified last, last): a run that lands on another replica compares with what
was seen of *that* one, and a replica never seen before is a first visit — not a fork.
A file written before replicas (one state at the top level) reads as one replica.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from ..errors import ParseError

LOGS = ("startup", "receipts")


@attrs.frozen
class TreeHead:
    """A log's verified head: its size and root hash."""

    size: int
    root_hash: bytes

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept in the state file."""
        return {"size": self.size, "root": self.root_hash.hex()}

    @classmethod
    def from_json(cls, value: Any) -> TreeHead:
        """Parse a head from the state file. Raises ParseError."""
        try:
            size, root = value["size"], bytes.fromhex(value["root"])
        except (KeyError, TypeError, ValueError):
            raise ParseError("a log head in the state file is {size, root}") from None
        if not isinstance(size, int) or size < 0 or len(root) != 32:
            raise ParseError("a log head in the state file is {size, root}")
        return cls(size, root)


@attrs.frozen
class VerifyState:
    """What a verifier remembers of a gateway. Fields other than the identity are
    optional because older files lack them."""

    identity: bytes
    authority: str | None = None
    measurement: str | None = None
    root: str | None = None
    tls_spki_sha256: str | None = None
    heads: dict[str, TreeHead] = attrs.Factory(dict)

    def to_json(self) -> dict[str, Any]:
        """The state file's JSON."""
        return {
            "identity": self.identity.hex(),
            "authority": self.authority,
            "measurement": self.measurement,
            "root": self.root,
            "tls_spki_sha256": self.tls_spki_sha256,
            **{name: head.to_json() for name, head in self.heads.items()},
        }


def load_states(path: Path) -> list[VerifyState]:
    """Every replica remembered, the one verified last, last; none when the file does
    not exist. Raises ParseError."""
    if not path.exists():
        return []
    try:
        value = json.loads(path.read_text())
        listed = value.get("replicas", [value])  # a file from before replicas: one state
        if not isinstance(listed, list):
            raise TypeError
        return [_state(item) for item in listed]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ParseError(f"{path} is not a saferouter verify state file") from None


def load_state(path: Path, identity: bytes | None = None) -> VerifyState | None:
    """What is remembered of the replica ``identity`` (default: the one verified
    last), or None when nothing is. Raises ParseError."""
    states = load_states(path)
    if identity is None:
        return states[-1] if states else None
    return next((s for s in states if s.identity == identity), None)


def save_state(path: Path, state: VerifyState) -> None:
    """Remember ``state`` as its replica's (replacing what was remembered of it, and
    keeping the other replicas'); the whole file is rewritten."""
    others = [s for s in load_states(path) if s.identity != state.identity]
    replicas = [s.to_json() for s in (*others, state)]
    path.write_text(json.dumps({"replicas": replicas}, indent=2) + "\n")


def _state(value: Any) -> VerifyState:
    identity = bytes.fromhex(value["identity"])
    text = {k: value.get(k) for k in ("authority", "measurement", "root", "tls_spki_sha256")}
    if not all(v is None or isinstance(v, str) for v in text.values()):
        raise TypeError("a text field is not text")
    try:
        heads = {name: TreeHead.from_json(value[name]) for name in LOGS if value.get(name)}
    except ParseError as exc:
        raise ValueError(str(exc)) from None
    return VerifyState(identity=identity, heads=heads, **text)
