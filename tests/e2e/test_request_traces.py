"""A live gateway (hypercorn in this process, the fake upstream) hands its observers one
trace per request, whatever answered it: the API pipeline (also under OpenRouter's
/api/v1 prefix), a Quart route, an error before the body, a URL no route has. The route
is a template, never the raw path; the request id is the one the client was sent."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import trio

from saferouter.observe import Observers, RequestTrace

from ..servers import Gateway


class Recorder:
    """An observer keeping what it is handed, and telling when it has ``n`` traces."""

    def __init__(self) -> None:
        self.traces: list[RequestTrace] = []
        self._changed = trio.Event()

    def request_done(self, trace: RequestTrace) -> None:
        self.traces.append(trace)
        self._changed.set()

    async def wait_for(self, n: int) -> list[RequestTrace]:
        """The traces once there are ``n`` (handed over after the last byte, so possibly
        after the client has its answer)."""
        with trio.fail_after(30):
            while len(self.traces) < n:
                self._changed = trio.Event()
                await self._changed.wait()
        return self.traces


def observed(gateway: Gateway) -> Recorder:
    """A recorder added to the gateway's observers."""
    assert gateway.state is not None
    recorder = Recorder()
    gateway.state.observers = Observers((*gateway.state.observers.observers, recorder))
    return recorder


def by_request_id(traces: list[RequestTrace]) -> Iterator[tuple[str, RequestTrace]]:
    return ((trace.request_id, trace) for trace in traces)


async def test_every_request_yields_one_trace_with_its_route_template(gateway: Gateway) -> None:
    recorder = observed(gateway)
    admin = {"Authorization": f"Bearer {gateway.admin_key}"}
    chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        responses = [
            await client.post("/v1/chat/completions", json=chat, headers=admin),
            await client.post("/api/v1/chat/completions", json=chat, headers=admin),
            await client.post("/v1/chat/completions", json=chat),  # no key
            await client.get("/v1/models/demo"),
            await client.get("/v1/keys", headers=admin),
            await client.get("/no/such/page"),
        ]
    traces = dict(by_request_id(await recorder.wait_for(len(responses))))
    seen = [
        (t.method, t.route, t.status, t.error_type)
        for t in (traces[r.headers["x-saferouter-request-id"]] for r in responses)
    ]
    assert seen == [
        ("POST", "/v1/chat/completions", 200, None),
        ("POST", "/v1/chat/completions", 200, None),
        ("POST", "/v1/chat/completions", 401, "missing_api_key"),
        ("GET", "/v1/models/<path:model_id>", 200, None),
        ("GET", "/v1/keys", 200, None),
        ("GET", "unmatched", 404, "unknown_url"),
    ]
    await trio.sleep(0.2)  # nothing more comes: one trace per request
    assert len(recorder.traces) == len(responses)
    for trace in recorder.traces:
        assert trace.ended_s is not None and trace.first_byte_s is not None
        assert trace.started_s <= trace.first_byte_s <= trace.ended_s
