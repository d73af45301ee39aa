"""`/v1/models`, `/v1/models/{id}`, `/health`, `/ready`."""

from __future__ import annotations

import httpx

from ..servers import Gateway


async def test_models_list_shape_and_extras(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/v1/models")  # public: no key
    assert response.status_code == 200
    listing = response.json()
    assert listing["object"] == "list"
    by_id = {m["id"]: m for m in listing["data"]}
    flash = by_id["deepseek-flash"]
    assert flash["object"] == "model" and flash["owned_by"] == "deepseek"
    assert flash["context_length"] == 1_000_000 and flash["max_output_tokens"] == 384_000
    assert flash["pricing"]["input"] == "0.15" and flash["pricing"]["cached_input"] == "0.003"
    assert flash["pricing"]["peak"]["output"] == "1.2"
    assert flash["pricing"]["cache_write"] == "0.15"  # no cache-write price: the input's
    assert flash["pricing"]["peak_hours_utc"] == ["01:00-04:00 weekdays", "06:00-10:00 weekdays"]
    assert flash["available"] is False
    assert "DEEPSEEK_API_KEY" in flash["availability"]
    assert set(flash["capabilities"]) == {"reasoning", "tools", "json"}
    assert by_id["demo"]["available"] is True and by_id["demo"]["demo"] is True
    assert by_id["glm-4.7"]["provider"] == "zai"
    assert by_id["deepseek-chat"]["deprecated"] == "2026-07-24"
    for model in listing["data"]:
        for fallback in model["fallbacks"]:
            assert set(model["capabilities"]) <= set(by_id[fallback]["capabilities"])


async def test_one_model_and_unknown_model(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        one = await client.get("/v1/models/glm-5.3")
        missing = await client.get("/v1/models/glm-9")
    assert one.status_code == 200 and one.json()["id"] == "glm-5.3"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


async def test_health_and_ready(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "store": "ok"}


async def test_the_models_that_work_come_first_then_by_provider(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        listed = (await client.get("/v1/models")).json()["data"]
    available = [m["available"] for m in listed]
    assert True in available and False in available  # both kinds, or the test shows nothing
    assert available == sorted(available, reverse=True), "an unavailable model came first"
    catalog = list(gateway.settings.catalog.models)
    for kind in (True, False):
        group = [m for m in listed if m["available"] is kind]
        names = [m["provider_name"].casefold() for m in group]
        assert names == sorted(names), f"available={kind}: not grouped by provider"
        for provider in set(names):  # within a provider: the catalog's order
            ids = [m["id"] for m in group if m["provider_name"].casefold() == provider]
            assert ids == sorted(ids, key=catalog.index)
    ids = [m["id"] for m in listed]
    # the fake providers' models come after DeepSeek's and Z.AI's in the catalog, and
    # `hedged` (Fake upstream) after `chain-b` (Fake upstream two): now the other way
    assert ids.index("chain-a") < ids.index("deepseek-flash")
    assert ids.index("hedged") < ids.index("chain-b")
