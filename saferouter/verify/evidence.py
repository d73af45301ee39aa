"""What the verifier's steps share: a step's outcome, its failure, and the evidence each
step adds for the next.

The steps run in order and each reads only what earlier steps established (a field is
None until the step that checks it passed), so no step can rely on something unchecked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx

from ..errors import SafeRouterError
from .state import TreeHead, VerifyState


class CheckFailed(SafeRouterError):
    """A gateway failed one of the verifier's checks; ``.step`` names it when known."""

    def __init__(self, message: str, *, step: Step | None = None) -> None:
        super().__init__(message)
        self.step = step


# What a step's failure may look like: ours, a transport's, or malformed JSON
# (a missing member, a wrong type, bad hex) — anything else is a bug and propagates.
# A wrong type shows as an AttributeError as often as a TypeError (``None.encode()``).
CHECK_ERRORS = (SafeRouterError, httpx.HTTPError, KeyError, ValueError, TypeError, AttributeError)


@attrs.frozen
class Step:
    number: int
    name: str
    ok: bool
    detail: str


@attrs.define
class Evidence:
    """Filled in step by step by :func:`saferouter.verify.client.run_checks`."""

    authority: str  # pinned: from the URL given, or the audience named
    secure: bool  # https: the quote's connection is TLS
    allow_demo: bool
    expect_measurement: str | None
    state_path: Path | None
    remembered: VerifyState | None = None
    status: dict[str, Any] = attrs.Factory(dict)
    quote: dict[str, Any] = attrs.Factory(dict)
    nonce: bytes = b""
    peer_spki_sha256: str | None = None  # of the connection the quote came over
    report_data: bytes = b""  # of the report, once its signature and chain verified
    root: str | None = None  # "AMD" | "DEMO", decided by the verifier
    tls_spki_sha256: str | None = None
    identity: bytes | None = None
    measurement: str | None = None
    byok_public_key: str | None = None  # the quote's claim, once the newest start agrees
    startup_bodies: list[bytes] = attrs.Factory(list)
    heads: dict[str, TreeHead] = attrs.Factory(dict)

    def attested_identity(self) -> bytes:
        if self.identity is None:
            raise CheckFailed("the identity step has not passed")
        return self.identity

    def new_state(self) -> VerifyState:
        """What to remember once every step passed."""
        return VerifyState(
            identity=self.attested_identity(),
            authority=self.authority,
            measurement=self.measurement,
            root=self.root,
            tls_spki_sha256=self.tls_spki_sha256,
            heads=dict(self.heads),
        )


def run_steps(
    checks: Sequence[tuple[str, Callable[[], str]]], on_step: Callable[[Step], None] | None
) -> list[Step]:
    """Run ``(name, check)`` pairs in order, numbered from 1, until one fails: a check
    returns its detail or raises one of :data:`CHECK_ERRORS` (anything else is a bug)."""
    steps: list[Step] = []
    for number, (name, check) in enumerate(checks, start=1):
        try:
            step = Step(number, name, True, check())
        except CHECK_ERRORS as exc:
            step = Step(number, name, False, f"{type(exc).__name__}: {exc}")
        steps.append(step)
        if on_step is not None:
            on_step(step)
        if not step.ok:
            break
    return steps


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    """GET a public endpoint's JSON; anything but a 200 fails the step."""
    response = client.get(path, params=params)
    if response.status_code != 200:
        raise CheckFailed(f"GET {path} answered {response.status_code}")
    return response.json()
