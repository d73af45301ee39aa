"""The measured figures per model: medians over the last samples, what is not measured,
and bounded memory whatever ids clients name."""

from __future__ import annotations

from saferouter.gateway.route_stats import Figures, RouteStats


def test_unmeasured_model_has_no_figures() -> None:
    assert RouteStats().figures("glm-4.7") is None


def test_figures_are_medians_robust_to_one_slow_request() -> None:
    stats = RouteStats()
    for ttfb_s in (0.2, 0.3, 9.0):  # one outlier does not move a median
        stats.record("glm-4.7", ttfb_s=ttfb_s, output_tokens=100, generation_s=2.0)
    assert stats.figures("glm-4.7") == Figures(ttfb_s=0.3, output_tokens_per_s=50.0, samples=3)


def test_only_the_last_samples_count() -> None:
    stats = RouteStats(samples_per_model=2)
    for ttfb_s in (5.0, 1.0, 3.0):
        stats.record("m", ttfb_s=ttfb_s, output_tokens=10, generation_s=1.0)
    figures = stats.figures("m")
    assert figures is not None
    assert figures.ttfb_s == 2.0  # (1 + 3) / 2: the 5 s one is gone
    assert figures.samples == 2


def test_no_tokens_or_no_generation_time_measures_latency_only() -> None:
    stats = RouteStats()
    stats.record("m", ttfb_s=0.5, output_tokens=0, generation_s=3.0)
    stats.record("m", ttfb_s=0.7, output_tokens=40, generation_s=0.0)  # one chunk
    assert stats.figures("m") == Figures(ttfb_s=0.6, output_tokens_per_s=None, samples=2)


def test_models_past_the_bound_are_forgotten_least_recent_first() -> None:
    stats = RouteStats(max_models=2)
    stats.record("a", ttfb_s=1.0, output_tokens=1, generation_s=1.0)
    stats.record("b", ttfb_s=1.0, output_tokens=1, generation_s=1.0)
    stats.record("a", ttfb_s=1.0, output_tokens=1, generation_s=1.0)  # a: recent again
    stats.record("c", ttfb_s=1.0, output_tokens=1, generation_s=1.0)
    assert len(stats) == 2
    assert stats.figures("b") is None
    assert stats.figures("a") is not None and stats.figures("c") is not None


def test_a_thousand_made_up_ids_stay_bounded() -> None:
    stats = RouteStats()
    for i in range(1000):
        stats.record(f"zai/made-up-{i}", ttfb_s=0.1, output_tokens=5, generation_s=0.5)
    assert len(stats) == 256
