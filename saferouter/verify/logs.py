"""The verifier's log steps: the startup log, the latest start, history, the receipt log.

Every checkpoint is verified under an origin the verifier pins (:mod:`.origin`), never
the ``origin`` the server's JSON names (that is read only to explain a failure). Proofs
follow RFC 9162: the newest startup entry's inclusion proof (§2.1.3.2) against its
signed checkpoint, and consistency proofs (§2.1.4.2) from the heads remembered in
``--state`` to the heads seen now — a rewritten or forked log shows there.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx

from ..translog import merkle, note
from ..translog.entry import entry_hash, verify_entry
from .evidence import CheckFailed, Evidence, get_json
from .origin import log_origin
from .state import TreeHead, load_state, load_states

PAGE = 1000


def verify_signed_checkpoint(
    checkpoint: str, identity: bytes, origin: str, served_origin: object = None
) -> note.Checkpoint:
    """The checkpoint, once the identity's signature under the pinned ``origin`` holds."""
    try:
        parsed = note.verify_checkpoint(checkpoint, [note.ed25519_verifier(origin, identity)])
    except note.NoteError as exc:
        hint = ""
        if isinstance(served_origin, str) and served_origin != origin:
            audience = served_origin.rpartition("/")[0]
            hint = (
                f" (the gateway signs for {served_origin!r}: its audience is {audience!r};"
                " pass --audience if that is the gateway you mean)"
            )
        raise CheckFailed(f"the checkpoint is not signed for origin {origin!r}{hint}") from exc
    if parsed.origin != origin:  # the signature binds the name; the text must agree
        raise CheckFailed(f"the checkpoint names origin {parsed.origin!r}, not {origin!r}")
    return parsed


def _head(client: httpx.Client, ev: Evidence, log: str, path: str) -> note.Checkpoint:
    head = get_json(client, path)
    origin = log_origin(ev.authority, log)
    return verify_signed_checkpoint(
        head["checkpoint"], ev.attested_identity(), origin, head.get("origin")
    )


def startup_log(client: httpx.Client, ev: Evidence) -> str:
    """(8) every entry signed and chained, the root the signed checkpoint's, and the
    newest entry's inclusion proof against that checkpoint."""
    identity = ev.attested_identity()
    checkpoint = _head(client, ev, "startup", "/attestation/transparency/head")
    bodies: list[bytes] = []
    while True:  # every entry served, not only those the head covers
        page = get_json(client, "/attestation/transparency", start=len(bodies), limit=PAGE)
        for served in page["data"]:
            if served["index"] != len(bodies):
                raise CheckFailed(f"entry {len(bodies)} is missing from the log")
            bodies.append(base64.b64decode(served["body"]))
        # one entry past the signed head already fails, so read no further: a server
        # that serves a full page for every start would otherwise be read forever
        if len(bodies) > checkpoint.size:
            raise CheckFailed(
                f"the log serves more than the {checkpoint.size} entries its head says"
            )
        if len(page["data"]) < PAGE:
            break
    if len(bodies) != checkpoint.size:
        raise CheckFailed(f"the log serves {len(bodies)} entries, its head says {checkpoint.size}")
    if not bodies:
        raise CheckFailed("the startup log is empty")
    previous: bytes | None = None
    for index, body in enumerate(bodies):
        try:
            entry = verify_entry(body, identity)
        except note.NoteError as exc:
            raise CheckFailed(f"entry {index}: {exc}") from exc
        link = entry["spec"].get("prev_entry_hash")
        if link != (entry_hash(previous) if previous is not None else None):
            raise CheckFailed(f"entry {index} does not link to entry {index - 1}")
        previous = body
    root = merkle.root_hash([merkle.leaf_hash(b) for b in bodies])
    if root != checkpoint.root_hash:
        raise CheckFailed("the entries do not hash to the signed checkpoint's root")
    _newest_included(client, ev, len(bodies) - 1, bodies[-1])
    ev.startup_bodies = bodies
    ev.heads["startup"] = TreeHead(checkpoint.size, checkpoint.root_hash)
    return (
        f"{checkpoint.size} entries under origin {log_origin(ev.authority, 'startup')!r}: "
        f"signatures, chain, root and entry {len(bodies) - 1}'s inclusion proof verified"
    )


def _newest_included(client: httpx.Client, ev: Evidence, index: int, body: bytes) -> None:
    """The served Rekor-shaped entry is this body, included in a signed checkpoint."""
    served = get_json(client, f"/attestation/transparency/{index}")
    if base64.b64decode(served["body"]) != body or served["logIndex"] != index:
        raise CheckFailed(f"entry {index} is served differently on its own")
    proof = served["verification"]["inclusionProof"]
    checkpoint = verify_signed_checkpoint(
        proof["checkpoint"], ev.attested_identity(), log_origin(ev.authority, "startup")
    )
    if checkpoint.size != proof["treeSize"] or proof["logIndex"] != index:
        raise CheckFailed(f"entry {index}'s inclusion proof is not for its checkpoint")
    try:
        merkle.verify_inclusion(
            index,
            checkpoint.size,
            merkle.leaf_hash(body),
            [bytes.fromhex(h) for h in proof["hashes"]],
            checkpoint.root_hash,
        )
    except merkle.ProofError as exc:
        raise CheckFailed(f"entry {index}'s inclusion proof: {exc}") from exc


def latest_start(ev: Evidence) -> str:
    """(9) the newest start is the identity and measurement the quote attested, and the
    TLS key and BYOK public key it claims are the ones that start logged (an entry of a
    build before either names none). A quote from one process over a log of another —
    two instances sharing an identity, one holding a BYOK key of its own — fails here."""
    bodies = ev.startup_bodies
    spec = json.loads(bodies[-1])["spec"]
    if spec["identity"] != ev.attested_identity().hex() or spec["measurement"] != ev.measurement:
        raise CheckFailed("the newest start is not this identity and measurement")
    if spec.get("tls_spki_sha256", ev.tls_spki_sha256) != ev.tls_spki_sha256:
        raise CheckFailed("the newest start attests another TLS key than the quote")
    claimed = _byok_claim(ev.quote["claims"])
    if spec.get("byok_public_key", claimed) != claimed:
        raise CheckFailed("the newest start logged another BYOK public key than the quote's")
    ev.byok_public_key = claimed
    return f"entry {len(bodies) - 1}, {spec['tee_mode']}, {spec['build']}"


def _byok_claim(claims: dict[str, Any]) -> str | None:
    """The quote's ``byok_public_key``: 64 lowercase hex (an X25519 key), or absent."""
    claimed = claims.get("byok_public_key")
    if claimed is None:
        return None
    if not isinstance(claimed, str) or re.fullmatch("[0-9a-f]{64}", claimed) is None:
        raise CheckFailed("the quote's byok_public_key is not 64 lowercase hex")
    return claimed


def history(client: httpx.Client, ev: Evidence) -> str:
    """(10) the startup log is consistent with the head remembered in --state for this
    replica (its identity: replicas are remembered apart, so landing on another one
    behind a load balancer is a first visit of that one, while a fork of one replica's
    log still fails here)."""
    identity = ev.attested_identity()
    if ev.state_path is not None:
        ev.remembered = load_state(ev.state_path, identity)
    old = ev.remembered
    if old is None:
        if ev.state_path is None:
            return "no remembered checkpoint"
        others = len(load_states(ev.state_path))
        seen = f"; {others} other replica(s) remembered" if others else ""
        return f"first visit of replica {identity.hex()[:16]}…{seen}; remembering this one"
    remembered = old.heads.get("startup")
    if remembered is not None:
        consistent(client, "/attestation/transparency/proof", remembered, ev.heads["startup"])
    size = remembered.size if remembered else 0
    return f"consistent with size {size} seen before"


def receipt_log(client: httpx.Client, ev: Evidence) -> str:
    """(11) the receipt log's checkpoint is signed under the pinned origin, and
    consistent with the head remembered in --state."""
    checkpoint = _head(client, ev, "receipts", "/attestation/receipts/head")
    current = TreeHead(checkpoint.size, checkpoint.root_hash)
    remembered = ev.remembered.heads.get("receipts") if ev.remembered else None
    if remembered is not None:
        consistent(client, "/attestation/receipts/proof", remembered, current)
    ev.heads["receipts"] = current
    seen = f", consistent with size {remembered.size} seen before" if remembered else ""
    return f"{checkpoint.size} receipts, checkpoint signed by the identity{seen}"


def consistent(client: httpx.Client, path: str, old: TreeHead, new: TreeHead) -> None:
    """Fetch and verify the consistency proof that ``old`` is a prefix of ``new``.
    Raises CheckFailed (a log that shrank included)."""
    if old.size > new.size:
        raise CheckFailed(f"the log shrank from {old.size} to {new.size} entries")
    proof: dict[str, Any] = get_json(client, path, first=old.size, second=new.size)
    try:
        merkle.verify_consistency(
            old.size,
            new.size,
            [bytes.fromhex(h) for h in proof["hashes"]],
            old.root_hash,
            new.root_hash,
        )
    except merkle.ProofError as exc:
        raise CheckFailed(f"not consistent with the remembered checkpoint: {exc}") from exc
