"""The buckets of ``/v1/activity/stats``' series: which width each window gets, how
many points, aligned to the width, ending with the bucket the present is in; and the
nearest-rank percentile both the SQL and the Python pick."""

from __future__ import annotations

import math

import pytest

from saferouter.routes.activity import MAX_BUCKETS, bucket_grid
from saferouter.storage.activity_series import BucketGrid, nearest_rank

NOW = 1_800_000_123.25  # 2 min 3.25 s past a quarter hour (1_800_000_000 is one)


@pytest.mark.parametrize(
    ("window_s", "width_s", "count"),
    [
        (15 * 60, 60, 15),
        (3600, 60, 60),
        (86400, 900, 96),
        (7 * 86400, 3 * 3600, 56),
        (30, 60, 1),
        (90, 60, 2),
        (30 * 86400, 86400, 30),
        (0, 60, 0),
    ],
)
def test_each_window_gets_its_buckets(window_s: int, width_s: int, count: int) -> None:
    grid = bucket_grid(window_s, NOW)
    assert (grid.width_s, grid.count) == (width_s, count)
    if count:
        assert grid.start % width_s == 0
        assert grid.end - width_s <= NOW < grid.end  # the last bucket is the present's
        assert NOW - window_s < grid.start + width_s  # it reaches back to the window


@pytest.mark.parametrize("days", [97, 365, 999_999])
def test_a_long_window_is_whole_days_never_more_than_the_maximum(days: int) -> None:
    grid = bucket_grid(days * 86400, NOW)
    assert grid.width_s % 86400 == 0
    assert grid.count <= MAX_BUCKETS
    assert grid.count * grid.width_s >= days * 86400


def test_an_instant_is_in_the_bucket_that_holds_it() -> None:
    grid = BucketGrid(start=600, width_s=60, count=3)
    assert [grid.index(t) for t in (600, 659.999, 660, 719.5, 779.999)] == [0, 0, 1, 1, 2]
    assert grid.index(math.nextafter(780.0, 0)) == 2


@pytest.mark.parametrize("count", range(1, 41))
@pytest.mark.parametrize("pct", [1, 50, 95, 99, 100])
def test_nearest_rank_is_the_ceiling_of_the_share(count: int, pct: int) -> None:
    assert nearest_rank(count, pct) == max(1, math.ceil(pct * count / 100))
