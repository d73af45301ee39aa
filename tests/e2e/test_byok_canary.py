"""The canary (issue 13 §5): a provider key brought by a client reaches the provider in
``Authorization`` and nothing else — no file of the data dir (database, WAL and shared
memory, key files, anything), no line the server prints, no HTTP response (errors
included: a refusal whose upstream body quotes the key, a stream whose answer, usage and
in-band error hold it), no metric, no receipt, no activity entry. Stream and non-stream,
with one worker and with two.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
import trio

from ..processes import new_key
from .test_byok_use import (
    authorizations,
    bearer,
    byok_gateway,
    canary,
    chat,
    in_thread,
    sdk,
    upload,
)

# (model, stream): answers, a refusal quoting the key (401 → 403), a stream that quotes
# it in its text, its usage and an in-band error event
REQUESTS = [
    ("fake/delay:0", False),
    ("fake/delay:0", True),
    ("fake/leak:401", False),
    ("fake/leak:401", True),
    ("fake/leak:stream", True),
]
MESSAGES = [{"role": "user", "content": "hi"}]
RECEIPT_WAIT_S = 30  # a stream's receipt is written after its last byte


def no_canary(where: str, data: bytes | str, needles: tuple[bytes, ...]) -> None:
    blob = data.encode() if isinstance(data, str) else data
    found = [n for n in needles if n in blob]
    assert not found, f"the provider key is in {where}"


def scan_data_dir(data: Path, needles: tuple[bytes, ...]) -> int:
    """Every file under the data dir, whatever it is; how many were read."""
    files = [p for p in data.rglob("*") if p.is_file()]
    for path in files:
        try:
            no_canary(str(path), path.read_bytes(), needles)
        except FileNotFoundError:  # a -shm or -wal gone between the listing and the read
            continue
    return len(files)


async def receipt(client: httpx.AsyncClient, receipt_id: str, key: str) -> httpx.Response:
    with trio.fail_after(RECEIPT_WAIT_S):
        while True:
            response = await client.get(f"/v1/receipts/{receipt_id}", headers=bearer(key))
            if response.status_code != 409:  # receipt_pending until the stream has ended
                return response
            await trio.sleep(0.05)


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_canary_key_reaches_the_provider_and_nothing_else(
    tmp_path: Path, workers: int
) -> None:
    own = canary()
    # the key as is, and its random half (a prefix changed or cut still shows it)
    needles = (own.encode(), own.removeprefix("sk-canary-").encode())
    seen: list[httpx.Response] = []
    async with byok_gateway(tmp_path, workers=workers) as (upstream, data, start):
        user = new_key(data, "--name", "canary")
        admin = new_key(data, "--name", "ops", "--admin")  # /metrics is admin-only
        with start() as served:
            added = await upload(served.url, user, own)
            assert added["fingerprint"] and added["usable"] is True
            for model, stream in REQUESTS * 2:  # a new connection each: both workers serve
                async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
                    body = {"model": model, "stream": stream, "messages": MESSAGES}
                    seen.append(
                        await client.post("/v1/chat/completions", json=body, headers=bearer(user))
                    )
            statuses = [r.status_code for r in seen]
            assert statuses == [200, 200, 403, 403, 200] * 2, statuses
            refused = [r for r in seen if r.status_code == 403]
            assert all(r.json()["error"]["code"] == "byok_key_rejected" for r in refused)
            # through the SDK too, its errors included
            with sdk(served, user) as client:
                assert await in_thread(lambda: chat(client, "fake/anything")) == "fake answer"
                with pytest.raises(openai.APIError) as broken:  # its in-band error event
                    await in_thread(lambda: chat(client, "fake/leak:stream", stream=True))
                no_canary("an SDK stream's error", f"{broken.value}{broken.value.body}", needles)
                with pytest.raises(openai.PermissionDeniedError) as error:
                    await in_thread(lambda: chat(client, "fake/leak:401"))
                no_canary("an SDK error", str(error.value) + repr(error.value.body), needles)
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
                for response in list(seen):
                    if "x-saferouter-receipt" in response.headers:
                        receipt_id = response.headers["x-saferouter-receipt"]
                        seen.append(await receipt(client, receipt_id, user))
                        assert seen[-1].json()["receipt"]["byok"] is (response.status_code == 200)
                log = await client.get("/v1/activity?limit=500", headers=bearer(user))
                seen += [log, await client.get("/v1/byok", headers=bearer(user))]
                for _ in range(2 * workers):  # each worker's metrics, most likely
                    async with httpx.AsyncClient(base_url=served.url) as fresh:
                        seen.append(await fresh.get("/metrics", headers=bearer(admin)))
                        assert seen[-1].status_code == 200
            entries = log.json()["data"]
            assert entries and all(e["byok"] for e in entries if e["provider"] == "fake")
            assert scan_data_dir(data, needles) >= 3  # the database, its WAL and -shm
        # every request the provider got carried the canary, and only the canary
        assert set(authorizations(upstream)) == {f"Bearer {own}"}
        assert len(upstream.requests) == len(REQUESTS) * 2 + 3
    for response in seen:
        no_canary(f"{response.request.url}", response.content, needles)
        headers = json.dumps(list(response.headers.items()))
        no_canary(f"{response.request.url}'s headers", headers, needles)
    no_canary("the server's output", served.output, needles)
    scan_data_dir(data, needles)  # and after shutdown (the WAL checkpointed)
