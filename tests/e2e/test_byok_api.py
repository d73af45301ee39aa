"""``/v1/byok`` against a real `saferouter serve`: a key puts, lists, switches and
removes its own sealed provider keys, and nobody else's; a revoked key's are gone; a
row sealed to another build shows unusable; the plaintext is in no answer and no file."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx

from saferouter.byok import sealing
from saferouter.keys import hash_key
from saferouter.storage import ActivityEntry, ByokKey, Settlement
from saferouter.storage.sqlite import SQLiteStore

from ..processes import Served, cli, serving
from .byok_api import (
    CANARY,
    Api,
    attested,
    data_dir,
    error,
    new_user,
    other_public_key,
    sealed_for,
    served,
    stored,
    user,
)

__all__ = ["attested", "data_dir", "served", "user"]  # the fixtures this module uses


def test_put_list_switch_and_delete(
    user: tuple[str, Api], attested: dict[str, Any], data_dir: Path
) -> None:
    key_id, api = user
    sealed = sealed_for(attested, api, "deepseek")
    put = api.put("deepseek", sealed)
    assert put.status_code == 200, put.text
    added = put.json()
    assert added == {
        "object": "byok_key",
        "provider": "deepseek",
        "fingerprint": sealing.fingerprint(CANARY),
        "byok_fallback": False,
        "sealed_to": attested["byok_public_key"],
        "sealed_for_measurement": attested["measurement"],
        "usable": True,
        "created_at": added["created_at"],
        "updated_at": added["created_at"],
    }
    assert abs(added["created_at"] - time.time()) < 60
    listed = api("GET", "/v1/byok").json()
    assert listed == {
        "object": "list",
        "data": [added],
        "providers": [{"id": "deepseek", "name": "DeepSeek"}, {"id": "zai", "name": "Z.AI (GLM)"}],
        "byok_public_key": attested["byok_public_key"],
        "measurement": attested["measurement"],
    }
    # the store holds the bytes as they were sent, nothing opened
    rows = stored(data_dir, key_id)
    assert [(k.provider, k.sealed_key) for k in rows] == [("deepseek", sealed)]
    switched = api("PATCH", "/v1/byok/deepseek", json={"byok_fallback": True})
    assert switched.status_code == 200
    assert {**switched.json(), "updated_at": 0} == {**added, "byok_fallback": True, "updated_at": 0}
    assert api("GET", "/v1/byok").json()["data"][0]["byok_fallback"] is True
    deleted = api("DELETE", "/v1/byok/deepseek")
    assert deleted.json() == {"object": "byok_key", "provider": "deepseek", "deleted": True}
    assert api("GET", "/v1/byok").json()["data"] == []
    assert stored(data_dir, key_id) == []
    for method, options in (("DELETE", {}), ("PATCH", {"json": {"byok_fallback": False}})):
        gone = api(method, "/v1/byok/deepseek", **options)
        assert error(gone) == (404, "byok_key_not_found", None)


def test_a_key_sees_and_changes_only_its_own(
    served: Served, data_dir: Path, attested: dict[str, Any]
) -> None:
    (_, alice_secret), (bob_id, bob_secret) = new_user(data_dir), new_user(data_dir)
    with Api(served, alice_secret) as alice, Api(served, bob_secret) as bob:
        assert alice.put("deepseek", sealed_for(attested, alice, "deepseek")).status_code == 200
        assert bob("GET", "/v1/byok").json()["data"] == []
        assert error(bob("DELETE", "/v1/byok/deepseek")) == (404, "byok_key_not_found", None)
        patched = bob("PATCH", "/v1/byok/deepseek", json={"byok_fallback": True})
        assert error(patched) == (404, "byok_key_not_found", None)
        assert (
            bob.put(
                "deepseek", sealed_for(attested, bob, "deepseek", "sk-bobs-own-key")
            ).status_code
            == 200
        )
        [mine] = alice("GET", "/v1/byok").json()["data"]
    assert (mine["fingerprint"], mine["byok_fallback"]) == (sealing.fingerprint(CANARY), False)
    assert [k.fingerprint for k in stored(data_dir, bob_id)] == [
        sealing.fingerprint("sk-bobs-own-key")
    ]


def test_a_revoked_key_is_refused_and_its_keys_are_gone(
    user: tuple[str, Api], data_dir: Path, attested: dict[str, Any]
) -> None:
    key_id, api = user
    assert api.put("zai", sealed_for(attested, api, "zai")).status_code == 200
    revoked = cli(data_dir, "keys", "revoke", key_id)  # another process, as an operator would
    assert revoked.returncode == 0, revoked.stderr
    assert stored(data_dir, key_id) == []
    for method, options in (
        ("GET", {}),
        (
            "PUT",
            {"json": {"sealed_key": base64.b64encode(sealed_for(attested, api, "zai")).decode()}},
        ),
        ("PATCH", {"json": {"byok_fallback": True}}),
        ("DELETE", {}),
    ):
        path = "/v1/byok" if method == "GET" else "/v1/byok/zai"
        assert error(api(method, path, **options)) == (401, "revoked_api_key", None)
    assert stored(data_dir, key_id) == []


def test_a_replaced_key_keeps_created_at_and_moves_the_fingerprint(
    user: tuple[str, Api], attested: dict[str, Any]
) -> None:
    _, api = user
    first = api.put(
        "zai", sealed_for(attested, api, "zai", "sk-first-zai-key"), byok_fallback=True
    ).json()
    deadline = time.monotonic() + 30
    while int(time.time()) <= first["created_at"] and time.monotonic() < deadline:
        time.sleep(0.05)  # until the clock shows a later second than the first put's
    second = api.put("zai", sealed_for(attested, api, "zai", "sk-second-zai-key")).json()
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]
    assert (first["fingerprint"], second["fingerprint"]) == (
        sealing.fingerprint("sk-first-zai-key"),
        sealing.fingerprint("sk-second-zai-key"),
    )
    assert second["byok_fallback"] is False  # a put says the whole key: default off
    assert [k["fingerprint"] for k in api("GET", "/v1/byok").json()["data"]] == [
        second["fingerprint"]
    ]


async def test_a_key_sealed_to_another_build_shows_unusable(
    user: tuple[str, Api], data_dir: Path, attested: dict[str, Any]
) -> None:
    key_id, api = user
    elsewhere = other_public_key()
    store = SQLiteStore.in_data_dir(data_dir)  # a row as another build would have left it
    try:
        await store.put_byok_key(
            ByokKey(
                key_id=key_id,
                provider="deepseek",
                sealed_key=sealing.seal(
                    elsewhere, CANARY, sealing.Binding(hash_key(api.secret), "deepseek")
                ),
                sealed_to=elsewhere.hex(),
                measurement="ab" * 32,
                fingerprint=sealing.fingerprint(CANARY),
                created_at=1_700_000_000.5,
                updated_at=1_700_000_000.5,
            )
        )
    finally:
        await store.close()
    assert api.put("zai", sealed_for(attested, api, "zai")).status_code == 200
    old, new = api("GET", "/v1/byok").json()["data"]
    assert (old["provider"], old["usable"], old["sealed_to"]) == (
        "deepseek",
        False,
        elsewhere.hex(),
    )
    assert (old["sealed_for_measurement"], old["created_at"]) == ("ab" * 32, 1_700_000_000)
    assert (new["provider"], new["usable"]) == ("zai", True)


def test_the_data_dir_never_holds_the_provider_key(tmp_path: Path) -> None:
    """A gateway of its own, stopped before its files are read: the database, its WAL
    and every other file of the data dir hold the sealed box, never the key."""
    data = tmp_path / "data"
    with serving(data) as gateway:
        _, secret = new_user(data)
        status = httpx.get(gateway.url + "/attestation", timeout=30).json()
        with Api(gateway, secret) as api:
            assert api.put("deepseek", sealed_for(status, api, "deepseek")).status_code == 200
            assert api("GET", "/v1/byok").json()["data"][0]["usable"] is True
    assert CANARY not in gateway.output
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name == "saferouter.db" for p in files)
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path


async def test_activity_entries_say_whether_byok_served(
    user: tuple[str, Api], data_dir: Path
) -> None:
    """The pipeline fills ``byok``; the activity API shows it on every entry."""
    key_id, api = user
    chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    assert api("POST", "/v1/chat/completions", json=chat).status_code == 200
    store = SQLiteStore.in_data_dir(data_dir)  # an entry as a BYOK attempt leaves it
    try:
        await store.settle(
            Settlement(
                key_id=key_id,
                request_id="req_byok_served",
                reserved_micro_usd=0,
                cost_micro_usd=0,
                tokens=0,
                attempts=(
                    ActivityEntry(
                        request_id="req_byok_served",
                        attempt=1,
                        created_at=time.time(),
                        key_id=key_id,
                        requested_model="deepseek-chat",
                        served_model="deepseek-chat",
                        provider="deepseek",
                        original_model=None,
                        status=200,
                        outcome="ok",
                        byok=True,
                    ),
                ),
                now=time.time(),
            )
        )
    finally:
        await store.close()
    entries = api("GET", "/v1/activity").json()["data"]
    assert [(e["provider"], e["byok"]) for e in entries] == [("deepseek", True), ("demo", False)]
