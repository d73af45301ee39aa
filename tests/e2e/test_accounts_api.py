"""Keys, credits and activity over HTTP, as an admin and as a user."""

from __future__ import annotations

import httpx
import pytest
import trio

from ..servers import Gateway

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}


def client(gateway: Gateway, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gateway.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    )


async def test_key_lifecycle(gateway: Gateway) -> None:
    async with client(gateway, gateway.admin_key) as admin:
        created = await admin.post(
            "/v1/keys",
            json={"name": "alice", "credits_usd": "0.25", "rpm_limit": 100, "tpm_limit": 50000},
        )
        assert created.status_code == 201
        alice = created.json()
        assert alice["key"].startswith("sk-sr-") and alice["prefix"] == alice["key"][:10]
        assert alice["metered"] is True and alice["balance_micro_usd"] == 250_000
        assert alice["balance_usd"] == "0.25"

        async with client(gateway, alice["key"]) as user:
            assert (await user.post("/v1/chat/completions", json=CHAT)).status_code == 200
            for call in (
                user.get("/v1/keys"),
                user.post("/v1/keys", json={"name": "x"}),
                user.patch(f"/v1/keys/{alice['id']}", json={"name": "y"}),
                user.delete(f"/v1/keys/{alice['id']}"),
                user.post("/v1/credits/topup", json={"key_id": alice["id"], "amount_usd": 1}),
            ):
                response = await call
                assert response.status_code == 403
                assert response.json()["error"]["type"] == "permission_error"

        listing = (await admin.get("/v1/keys")).json()["data"]
        row = next(k for k in listing if k["id"] == alice["id"])
        assert "key" not in row and row["usage"]["requests"] == 1
        assert row["last_used_at"] is not None
        assert row["balance_micro_usd"] == 250_000 - row["usage"]["cost_micro_usd"]

        patched = await admin.patch(
            f"/v1/keys/{alice['id']}", json={"name": "alice2", "rpm_limit": None}
        )
        assert patched.json()["name"] == "alice2" and patched.json()["rpm_limit"] is None
        assert patched.json()["tpm_limit"] == 50000
        misspelt = await admin.patch(f"/v1/keys/{alice['id']}", json={"rpm_limt": 5})
        assert misspelt.status_code == 400, misspelt.text  # refused, not silently ignored
        assert misspelt.json()["error"]["code"] == "invalid_body"
        assert misspelt.json()["error"]["message"] == "Unknown field(s): rpm_limt."

        topped = await admin.post(
            "/v1/credits/topup", json={"key_id": alice["id"], "amount_usd": "1.5"}
        )
        assert topped.json()["added_micro_usd"] == 1_500_000

        revoked = await admin.delete(f"/v1/keys/{alice['id']}")
        assert revoked.json()["revoked"] is True
        async with client(gateway, alice["key"]) as user:
            assert (await user.post("/v1/chat/completions", json=CHAT)).status_code == 401

        assert (await admin.delete("/v1/keys/key_missing")).status_code == 404
        assert (await admin.patch("/v1/keys/key_missing", json={})).status_code == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "a", "role": "root"}, "role"),
        ({"name": "a", "role": ["admin"]}, "role"),  # unhashable: was a 500
        ({"name": "a", "role": None}, "role"),
        ({"name": "a", "credits_usd": -1}, "credits_usd"),
        ({"name": "a", "credits_usd": "0.0000001"}, "credits_usd"),
        ({"name": "a", "credits_usd": "NaN"}, "credits_usd"),
        ({"name": "a", "rpm_limit": 0}, "rpm_limit"),
        ({"name": "a", "tpm_limit": "5"}, "tpm_limit"),
    ],
)
async def test_key_creation_checks_its_input(
    gateway: Gateway, body: dict[str, object], param: str
) -> None:
    async with client(gateway, gateway.admin_key) as admin:
        response = await admin.post("/v1/keys", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_credits_report_balance_reserved_spent_and_models(gateway: Gateway) -> None:
    secret = await gateway.create_key(credits_micro_usd=100_000)
    async with client(gateway, secret) as user:
        for model in ("demo", "demo", "demo-mini"):
            assert (
                await user.post("/v1/chat/completions", json={**CHAT, "model": model})
            ).status_code == 200
        credits = (await user.get("/v1/credits")).json()
    by_model = {m["model"]: m for m in credits["by_model"]}
    assert by_model["demo"]["requests"] == 2 and by_model["demo-mini"]["requests"] == 1
    spent = sum(m["cost_micro_usd"] for m in credits["by_model"])
    assert spent > 0 and credits["spent_micro_usd"] == spent
    assert credits["balance_micro_usd"] == 100_000 - spent
    assert credits["reserved_micro_usd"] == 0 and credits["metered"] is True


async def test_unmetered_key_is_never_refused_and_its_spend_is_recorded(gateway: Gateway) -> None:
    async with client(gateway, gateway.admin_key) as admin:
        assert (await admin.post("/v1/chat/completions", json=CHAT)).status_code == 200
        credits = (await admin.get("/v1/credits")).json()
    assert credits["metered"] is False
    assert credits["spent_micro_usd"] > 0
    # no balance to show: its spend is recorded, not limited
    assert credits["balance_micro_usd"] is None and credits["balance_usd"] is None


async def test_activity_is_own_for_users_and_all_for_admins(gateway: Gateway) -> None:
    alice = await gateway.create_key("alice")
    bob = await gateway.create_key("bob")
    async with client(gateway, alice) as a, client(gateway, bob) as b:
        for _ in range(3):
            assert (await a.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert (
            await b.post(
                "/v1/chat/completions", json={**CHAT, "model": "demo-mini", "stream": True}
            )
        ).status_code == 200
        mine = (await a.get("/v1/activity")).json()["data"]
        page = (await a.get("/v1/activity", params={"limit": 2})).json()
        rest = (
            await a.get("/v1/activity", params={"limit": 2, "before": page["next_before"]})
        ).json()
        bobs = (await b.get("/v1/activity")).json()["data"]
    async with client(gateway, gateway.admin_key) as admin:
        everything = (await admin.get("/v1/activity")).json()["data"]
        streamed = (await admin.get("/v1/activity", params={"model": "demo-mini"})).json()
        failed = (await admin.get("/v1/activity", params={"status": "error"})).json()
        stats = (await admin.get("/v1/activity/stats", params={"window": "1h"})).json()
        bad = await admin.get("/v1/activity/stats", params={"window": "forever"})
    assert len(mine) == 3 and {e["key_id"] for e in mine} == {mine[0]["key_id"]}
    assert [e["id"] for e in mine] == sorted((e["id"] for e in mine), reverse=True)
    assert page["has_more"] and len(page["data"]) == 2
    assert len(rest["data"]) == 1 and not rest["has_more"]
    assert len(bobs) == 1 and bobs[0]["streamed"] is True
    assert len(everything) == 4
    entry = mine[0]
    assert entry["status"] == 200 and entry["outcome"] == "ok" and entry["attempt"] == 1
    assert entry["served_model"] == "demo" and entry["provider"] == "demo"
    assert entry["prompt_tokens"] > 0 and entry["completion_tokens"] > 0
    assert entry["reasoning_tokens"] > 0 and entry["cost_micro_usd"] > 0
    assert entry["latency_ms"] > 0 and entry["ttfb_ms"] is not None
    assert [e["requested_model"] for e in streamed["data"]] == ["demo-mini"]
    assert failed["data"] == []
    assert stats["total"] == 4 and stats["success_rate"] == 1.0
    assert set(stats["by_model"]) == {"demo", "demo-mini"}
    assert stats["by_provider"]["demo"]["total"] == 4
    assert stats["latency_ms"]["p50"] <= stats["latency_ms"]["p95"]
    assert bad.status_code == 400


async def test_the_last_admin_key_cannot_be_revoked_over_http(gateway: Gateway) -> None:
    async with client(gateway, gateway.admin_key) as admin:
        (me,) = [k for k in (await admin.get("/v1/keys")).json()["data"] if k["role"] == "admin"]
        refused = await admin.delete(f"/v1/keys/{me['id']}")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "last_admin_key"
        other = (await admin.post("/v1/keys", json={"name": "ops", "role": "admin"})).json()
        assert (await admin.delete(f"/v1/keys/{me['id']}")).json()["revoked"] is True
    async with client(gateway, other["key"]) as second:
        assert (await second.get("/v1/keys")).status_code == 200


async def test_two_admins_revoking_each_other_at_once_leave_one(gateway: Gateway) -> None:
    """The last-admin check and the revocation are one store transaction: however the
    two requests interleave, exactly one of them wins and one admin stays active."""
    survivor = gateway.admin_key
    for number in range(20):
        async with client(gateway, survivor) as admin:
            made = await admin.post("/v1/keys", json={"name": f"ops{number}", "role": "admin"})
            assert made.status_code == 201, made.text
            keys = (await admin.get("/v1/keys")).json()["data"]
        newcomer = made.json()
        (old,) = [
            k
            for k in keys
            if k["role"] == "admin" and not k["revoked"] and k["id"] != newcomer["id"]
        ]
        pair = [(survivor, newcomer["id"]), (newcomer["key"], old["id"])]
        if number % 2:
            pair.reverse()  # both orders of sending
        statuses: dict[str, int] = {}
        async with trio.open_nursery() as nursery:
            for secret, target in pair:
                nursery.start_soon(_revoke, gateway, secret, target, statuses)
        active = [k for k in await gateway.store.list_keys() if k.is_admin and k.active]
        assert len(active) == 1, (number, statuses)
        assert sorted(statuses.values()) in ([200, 401], [200, 409]), (number, statuses)
        survivor = survivor if active[0].id == old["id"] else newcomer["key"]


async def _revoke(gateway: Gateway, secret: str, target: str, statuses: dict[str, int]) -> None:
    async with client(gateway, secret) as admin:
        statuses[target] = (await admin.delete(f"/v1/keys/{target}")).status_code


@pytest.mark.parametrize("field", ["rpm", "admin", "credits"])
async def test_key_creation_refuses_a_field_it_does_not_know(gateway: Gateway, field: str) -> None:
    """A misspelt limit or role is refused, never silently dropped (a key made without
    the limit its maker asked for)."""
    async with client(gateway, gateway.admin_key) as admin:
        response = await admin.post("/v1/keys", json={"name": "a", field: 5})
        listed = (await admin.get("/v1/keys")).json()["data"]
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_body"
    assert field in response.json()["error"]["message"]
    assert [k for k in listed if k["name"] == "a"] == []
