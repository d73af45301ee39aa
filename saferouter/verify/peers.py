"""The verifier's last step: the other replicas the connected one names (issue 14).

Replicas behind one load balancer share a database; each is a TEE of its own identity,
and ``/attestation`` lists the others as read from that database. Nothing here proves
them — only connecting to each one does — so the step names them, and checks only
what their own signatures can say: each one's newest startup entry is signed by the
identity it is listed under, and so is its published startup head (under the origin
of the audience that entry names). A listing that fails that was not written by those
replicas: the step fails.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from ..translog import note
from ..translog.entry import verify_entry
from .evidence import CheckFailed, Evidence
from .logs import verify_signed_checkpoint
from .origin import log_origin


def peers(ev: Evidence) -> str:
    """(12) name the other replicas; their listed entries and heads are their own."""
    listed: list[Any] = ev.status.get("replicas") or []  # absent before replicas
    if not listed:
        return "no other replica serves from this gateway's database"
    named = [_peer(peer, ev.authority) for peer in listed]
    return (
        f"{len(listed)} other replica(s) in the shared database, not attested by this "
        f"connection (verify each by connecting to it): {'; '.join(named)}"
    )


def _peer(peer: dict[str, Any], pinned_authority: str) -> str:
    hex_identity = peer["identity"]
    identity = bytes.fromhex(hex_identity)
    short = f"{hex_identity[:16]}…"
    seen = f"last seen {max(0, int(time.time() - peer['last_seen']))} s ago"
    entry, head = peer.get("latest_startup"), peer.get("startup_head")
    if entry is None or head is None:
        return f"{short} ({seen}, no published startup head)"
    try:
        spec = verify_entry(base64.b64decode(entry["body"]), identity)["spec"]
    except note.NoteError as exc:
        raise CheckFailed(f"replica {short}'s listed startup entry: {exc}") from exc
    audience = spec.get("audience", pinned_authority)
    checkpoint = verify_signed_checkpoint(
        head["checkpoint"], identity, log_origin(audience, "startup")
    )
    other = "" if audience == pinned_authority else f", signing for audience {audience!r}"
    measurement = str(spec.get("measurement"))[:16]
    return (
        f"{short} ({seen}, {spec.get('tee_mode')}, measurement {measurement}…, "
        f"startup log of {checkpoint.size} signed by it{other})"
    )
