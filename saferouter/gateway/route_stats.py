"""Measured latency and throughput of each model, per worker (pure, no I/O).

OpenRouter's ``provider.sort`` by ``latency`` or ``throughput`` (and its soft
``preferred_max_latency`` / ``preferred_min_throughput``) needs figures, and the only
honest ones a gateway has are its own: what its attempts measured. Each worker keeps
them in memory (:class:`RouteStats`, on the pipeline's ports), fed where a request
settles with what its serving attempt took:

* **latency** — the serving attempt's time to first byte, from that attempt's start (not
  the request's: a failed first candidate or a hedge delay is not the model's latency);
* **throughput** — output tokens per second between the first byte and the end.

Only a streamed response that completed with a usage report is measured: it alone shows
both when generation began and when it ended (a whole body's first byte is its last), and
an estimate is no measurement. Figures are medians over each model's last
``samples_per_model`` samples, robust to the odd slow request, and forgotten model by
model (least recently measured first) past ``max_models``: memory stays bounded whatever
ids clients name. Workers do not share figures; each sorts by what it saw.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict, deque

import attrs

SAMPLES_PER_MODEL = 32
MAX_MODELS = 256
# below this, a stream's generation time is the transport's timing, not the model's
MIN_GENERATION_S = 0.001


@attrs.frozen
class Figures:
    """What was measured of one model: medians (None: nothing of that kind yet)."""

    ttfb_s: float | None
    output_tokens_per_s: float | None
    samples: int


@attrs.define
class _Samples:
    ttfb_s: deque[float]
    tokens_per_s: deque[float]


class RouteStats:
    """Each model's recent time to first byte and output tokens per second."""

    def __init__(
        self, *, samples_per_model: int = SAMPLES_PER_MODEL, max_models: int = MAX_MODELS
    ) -> None:
        self._samples_per_model = samples_per_model
        self._max_models = max_models
        self._models: OrderedDict[str, _Samples] = OrderedDict()

    def record(
        self, model_id: str, *, ttfb_s: float, output_tokens: int, generation_s: float
    ) -> None:
        """One served stream of ``model_id``: its first byte ``ttfb_s`` after its
        attempt started, then ``output_tokens`` in ``generation_s``."""
        samples = self._models.get(model_id)
        if samples is None:
            samples = _Samples(
                deque(maxlen=self._samples_per_model), deque(maxlen=self._samples_per_model)
            )
            self._models[model_id] = samples
            while len(self._models) > self._max_models:
                self._models.popitem(last=False)  # the least recently measured
        else:
            self._models.move_to_end(model_id)
        if ttfb_s >= 0:
            samples.ttfb_s.append(ttfb_s)
        if output_tokens > 0 and generation_s >= MIN_GENERATION_S:
            samples.tokens_per_s.append(output_tokens / generation_s)

    def figures(self, model_id: str) -> Figures | None:
        """The medians measured of ``model_id``; None when it was never measured here."""
        samples = self._models.get(model_id)
        if samples is None:
            return None
        return Figures(
            ttfb_s=_median(samples.ttfb_s),
            output_tokens_per_s=_median(samples.tokens_per_s),
            samples=len(samples.ttfb_s),
        )

    def __len__(self) -> int:
        return len(self._models)


def _median(values: deque[float]) -> float | None:
    return statistics.median(values) if values else None
