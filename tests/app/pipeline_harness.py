"""The chat pipeline in process: real settings and catalog, the in-memory store, the
scripted upstream, and trio's ``MockClock`` for every wait (see tests/app/test_pipeline.py).

Nothing of the pipeline is replaced: :func:`saferouter.gateway.pipeline.serve` runs with
its production collaborators except the two outside it — the store (``MemoryStore``,
which passes the same contract suite as SQLite) and the upstream (in process, no socket).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import nacl.public
import trio
from cryptography.hazmat.primitives.asymmetric import ed25519

from saferouter.byok import sealing
from saferouter.byok.keyring import Keyring
from saferouter.catalog import Model
from saferouter.config import Settings
from saferouter.errors import ApiError
from saferouter.gateway.auth import Authenticator
from saferouter.gateway.breaker import CircuitBreaker
from saferouter.gateway.dialects.chat import CHAT
from saferouter.gateway.pipeline import ApiCall, Ports, Reply, serve
from saferouter.gateway.receipts import Notary
from saferouter.gateway.upstream import Upstreams
from saferouter.keys import generate_key, hash_key
from saferouter.observe import RequestTrace
from saferouter.storage import ByokKey
from saferouter.storage.memory import MemoryStore
from saferouter.timing import RequestTiming
from saferouter.translog.log import log_name

from ..scripted import ScriptedUpstream
from ..servers import gateway_settings

EPOCH_S = 1_800_000_000.0  # the wall clock at mock time 0: a whole minute
MEASUREMENT = "5e" * 32  # the build the harness's receipts and keyring name
notary_key = ed25519.Ed25519PrivateKey.generate()  # the identity signing its receipts
RECEIPT_LOG = log_name("receipts", notary_key.public_key().public_bytes_raw())


@attrs.frozen
class MockWallClock:
    """The pipeline's clock on trio's mock clock: the wall starts at :data:`EPOCH_S`."""

    def now(self) -> float:
        return trio.current_time()

    def wall(self) -> float:
        return EPOCH_S + trio.current_time()


@attrs.define
class Harness:
    ports: Ports
    store: MemoryStore
    upstream: ScriptedUpstream
    byok_key: nacl.public.PrivateKey  # the gateway's BYOK key pair (attestation's, in prod)
    secret: str = ""
    sent: list[bytes] = attrs.Factory(list)  # every request body, as sent

    async def new_key(self, **options: Any) -> str:
        new = generate_key()
        await self.store.create_key(
            name="user", role="user", key_hash=new.hash, prefix=new.display_prefix, **options
        )
        return new.secret

    async def key_id(self, secret: str) -> str:
        """The id of the key whose secret is ``secret``."""
        record = await self.store.key_by_hash(hash_key(secret))
        assert record is not None
        return record.id

    async def bring_key(
        self,
        secret: str,
        provider: str,
        provider_key: str,
        *,
        fallback: bool = False,
        sealed_to: nacl.public.PublicKey | None = None,
        measurement: str = MEASUREMENT,
    ) -> ByokKey:
        """Store ``provider_key`` as the key's own for ``provider``, sealed as a client
        seals it: to this gateway's BYOK public key, or to ``sealed_to`` (another build's)."""
        public_key = sealed_to or self.byok_key.public_key
        record = ByokKey(
            key_id=await self.key_id(secret),
            provider=provider,
            sealed_key=sealing.seal(
                bytes(public_key), provider_key, sealing.Binding(hash_key(secret), provider)
            ),
            sealed_to=bytes(public_key).hex(),
            measurement=measurement,
            fingerprint=sealing.fingerprint(provider_key),
            fallback=fallback,
        )
        await self.store.put_byok_key(record)
        return record

    async def send(
        self,
        model: str | None,
        *,
        stream: bool = False,
        key: str = "",
        while_uploading: Callable[[], Awaitable[object]] | None = None,
        trace: RequestTrace | None = None,
        **fields: Any,
    ) -> Reply:
        """One request through the pipeline, started now on the mock clock;
        ``while_uploading`` runs after authentication, while the body is read; ``trace``
        is filled as the HTTP layer's is."""
        named = {"model": model} if model is not None else {}  # None: OpenRouter's models
        body = json.dumps(
            named | {"messages": [{"role": "user", "content": "hi"}], "stream": stream} | fields
        ).encode()

        self.sent.append(body)

        async def read_body() -> bytes:
            if while_uploading is not None:
                await while_uploading()
            return body

        call = ApiCall(
            dialect=CHAT,
            authorization=f"Bearer {key or self.secret}",
            read_body=read_body,
            request_id="req_" + secrets.token_hex(6),
            started_s=trio.current_time(),
            timing=RequestTiming(started_s=trio.current_time()),
            trace=trace,
        )
        return await serve(self.ports, call)

    async def error(self, model: str | None, **options: Any) -> ApiError:
        """The error a request ends in (it must end in one)."""
        try:
            await self.send(model, **options)
        except ApiError as error:
            return error
        raise AssertionError(f"{model}: expected an error, got a reply")


async def read_all(reply: Reply) -> bytes:
    """A streamed reply's whole body, as a client that reads to the end gets it."""
    assert reply.stream is not None
    parts = [chunk async for chunk in reply.stream]
    await reply.stream.aclose()
    return b"".join(parts)


def with_models(settings: Settings, **models: Model) -> Settings:
    catalog = attrs.evolve(settings.catalog, models={**settings.catalog.models, **models})
    return attrs.evolve(settings, catalog=catalog)


def fake_model(settings: Settings, model_id: str, upstream: str, **changes: Any) -> Model:
    """A catalog model of the fake provider served by the scripted ``upstream``."""
    listed = settings.catalog.models["hedged"]
    options: dict[str, Any] = {"hedge_after_ms": None, "fallbacks": ()} | changes
    return attrs.evolve(listed, id=model_id, name=model_id, upstream=upstream, **options)


@asynccontextmanager
async def running_pipeline(
    tmp_path: Path,
    configure: Callable[[Settings], Settings] | None = None,
    *,
    store: MemoryStore | None = None,
) -> AsyncIterator[Harness]:
    """A pipeline whose fake providers are the scripted upstream, on settings the test
    may ``configure`` (``attrs.evolve`` its breaker, timeouts, catalog …); receipts are
    signed by a fresh identity at the settings' audit rate (off: ``receipts=False``)."""
    settings = gateway_settings(tmp_path, "http://scripted.invalid")
    if configure is not None:
        settings = configure(settings)
    upstream = ScriptedUpstream()
    store = store or MemoryStore()
    upstreams = Upstreams(settings, transports={"fake": upstream, "fake2": upstream})
    clock = MockWallClock()
    byok_key = nacl.public.PrivateKey.generate()
    ports = Ports(
        settings=settings,
        store=store,
        keys=Authenticator(store, wall_clock=clock.wall),
        upstreams=upstreams,
        breaker=CircuitBreaker(settings.breaker),
        clock=clock,
        keyring=Keyring(
            open_sealed=partial(sealing.open_sealed, byok_key),
            public_key_hex=bytes(byok_key.public_key).hex(),
            measurement_hex=MEASUREMENT,
            endpoints=settings.endpoints,
        ),
        notary=Notary(
            key=notary_key,
            measurement_hex=MEASUREMENT,
            tls_spki_sha256=None,
            audit_rate_ppm=settings.audit_rate_ppm,
            receipt_log=RECEIPT_LOG,
        )
        if settings.receipts
        else None,
    )
    harness = Harness(ports=ports, store=store, upstream=upstream, byok_key=byok_key)
    harness.secret = await harness.new_key(credits_micro_usd=10_000_000)
    try:
        yield harness
    finally:
        await upstreams.aclose()
