"""What ``saferouter verify --state FILE`` remembers between runs, and reads back.

The file holds what a passed verification established — the gateway's pinned authority,
its identity and measurement, which root the report chained to, the attested TLS key —
and the head of each log (size and root hash), so that the next run can ask for a
consistency proof (RFC 9162 §2.1.4) and ``verify-receipt --state`` can check a receipt
offline against the identity attested here. Files written before the receipt log
existed carry an ``audit`` head instead of ``receipts``: it is ignored (the audit log is
now a view of the receipt log), never an error.
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


def load_state(path: Path) -> VerifyState | None:
    """The remembered state, or None when the file does not exist. Raises ParseError."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
        identity = bytes.fromhex(value["identity"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ParseError(f"{path} is not a saferouter verify state file") from None
    text = {k: value.get(k) for k in ("authority", "measurement", "root", "tls_spki_sha256")}
    if not all(v is None or isinstance(v, str) for v in text.values()):
        raise ParseError(f"{path} is not a saferouter verify state file")
    heads = {name: TreeHead.from_json(value[name]) for name in LOGS if value.get(name)}
    return VerifyState(identity=identity, heads=heads, **text)


def save_state(path: Path, state: VerifyState) -> None:
    """Write the state file (the whole file, replaced)."""
    path.write_text(json.dumps(state.to_json(), indent=2) + "\n")
