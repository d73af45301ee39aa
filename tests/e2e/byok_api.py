"""What the ``/v1/byok`` end-to-end tests share: one real `saferouter serve` per test
module (the shipped catalog: deepseek and zai take a bearer key, demo none), a key
per test made by `saferouter keys create`, and a client that checks every answer for
the canary and every error for OpenAI's shape."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nacl.public
import pytest
import trio

from saferouter.byok import sealing
from saferouter.keys import generate_key, hash_key
from saferouter.storage import ByokKey
from saferouter.storage.sqlite import SQLiteStore

from ..processes import Served, serving

CANARY = "sk-byok-canary-7f3a9c1e5b2d4068"  # a provider key no answer may ever hold


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("byok") / "data"


@pytest.fixture(scope="module")
def served(data_dir: Path) -> Iterator[Served]:
    with serving(data_dir) as gateway:
        yield gateway
    assert CANARY not in gateway.output


@pytest.fixture(scope="module")
def attested(served: Served) -> dict[str, Any]:
    status: dict[str, Any] = httpx.get(served.url + "/attestation", timeout=30).json()
    return status


def new_user(data_dir: Path) -> tuple[str, str]:
    """A key made in the serving gateway's database through a store of the test's own
    (another process's connection, as `saferouter keys create` makes one, without a
    second interpreter's start-up per test): its id and its secret."""
    secret = generate_key()

    async def create() -> str:
        store = SQLiteStore.in_data_dir(data_dir)
        try:
            record = await store.create_key(
                name="byok user", role="user", key_hash=secret.hash, prefix=secret.display_prefix
            )
        finally:
            await store.close()
        return record.id

    return trio.run(create), secret.secret


class Api:
    """One key's client: every answer is checked for the canary and, when it is an
    error, for OpenAI's shape."""

    def __init__(self, served: Served, secret: str) -> None:
        self.secret = secret
        self.http = httpx.Client(
            base_url=served.url, timeout=30, headers={"Authorization": f"Bearer {secret}"}
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def __call__(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = self.http.request(method, path, **options)
        assert CANARY not in response.text
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/json"
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        return response

    def put(self, provider: str, sealed: bytes | str, **fields: Any) -> httpx.Response:
        text = sealed if isinstance(sealed, str) else base64.b64encode(sealed).decode()
        return self("PUT", f"/v1/byok/{provider}", json={"sealed_key": text, **fields})


@pytest.fixture
def user(served: Served, data_dir: Path) -> Iterator[tuple[str, Api]]:
    key_id, secret = new_user(data_dir)
    with Api(served, secret) as api:
        yield key_id, api


def sealed_for(
    attested: dict[str, Any], api: Api, provider: str, provider_key: str = CANARY
) -> bytes:
    """``provider_key`` sealed as a client seals it: to the gateway's attested BYOK key,
    bound to ``api``'s SafeRouter key and to ``provider``."""
    binding = sealing.Binding(hash_key(api.secret), provider)
    return sealing.seal(bytes.fromhex(attested["byok_public_key"]), provider_key, binding)


def error(response: httpx.Response) -> tuple[int, str, str | None]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["param"]


def other_public_key() -> bytes:
    return bytes(nacl.public.PrivateKey.generate().public_key)


def sealed_raw(attested: dict[str, Any], plaintext: bytes) -> bytes:
    """A box `sealing.seal` would refuse to make (it checks the key first)."""
    public = nacl.public.PublicKey(bytes.fromhex(attested["byok_public_key"]))
    return nacl.public.SealedBox(public).encrypt(plaintext)


def stored(data_dir: Path, key_id: str) -> list[ByokKey]:
    """The key's rows, read from the database file by a connection of this test's."""
    db = sqlite3.connect(data_dir / "saferouter.db")
    try:
        rows = db.execute(
            "SELECT key_id, provider, sealed_key, sealed_to, measurement, fingerprint, "
            "fallback, created_at, updated_at FROM byok_keys WHERE key_id = ? ORDER BY provider",
            (key_id,),
        ).fetchall()
    finally:
        db.close()
    return [ByokKey(*row) for row in rows]
