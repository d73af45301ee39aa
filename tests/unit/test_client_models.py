"""OpenRouter's ``models``: the first known id is the requested model, unknown ids are
skipped with the reason in a note, and only a list of none known is a 404."""

from __future__ import annotations

import pytest

from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.errors import ModelNotFound
from saferouter.gateway.routing import Candidates, choose_candidates

CATALOG = load_catalog(DEFAULT_CATALOG_PATH)


def ids(chosen: Candidates) -> list[str]:
    return [m.id for m in chosen.chain]


def test_without_models_the_model_and_its_catalog_fallbacks() -> None:
    chosen = choose_candidates(CATALOG, "glm-4.7", None)
    assert chosen.requested.id == "glm-4.7"
    assert ids(chosen) == ["glm-4.7", "glm-5.3", "deepseek-flash", "glm-4.6"]
    assert chosen.notes == ()


def test_models_alone_the_first_known_is_requested_and_the_rest_fall_back() -> None:
    chosen = choose_candidates(CATALOG, None, ["nope-1", "glm-4.7", "acme/x", "deepseek-flash"])
    assert chosen.requested.id == "glm-4.7"
    assert ids(chosen) == ["glm-4.7", "deepseek-flash"]  # not glm-4.7's catalog fallbacks
    assert chosen.notes == (
        "skipped models: nope-1 (not in the catalog), acme/x (not in the catalog)",
    )


def test_model_and_models_the_model_first_then_models() -> None:
    chosen = choose_candidates(CATALOG, "deepseek-flash", ["glm-4.7", "deepseek-flash"])
    assert ids(chosen) == ["deepseek-flash", "glm-4.7"]  # once each


def test_an_unknown_model_beside_models_is_skipped_too() -> None:
    chosen = choose_candidates(CATALOG, "gpt-4o", ["glm-4.7"])
    assert chosen.requested.id == "glm-4.7"
    assert chosen.notes == ("skipped models: gpt-4o (not in the catalog)",)


def test_prefix_claimed_and_provider_named_ids_are_known() -> None:
    chosen = choose_candidates(CATALOG, None, ["glm-made-up", "deepseek/deepseek-v9"])
    assert ids(chosen) == ["glm-made-up", "deepseek/deepseek-v9"]
    assert not chosen.requested.listed


def test_a_provider_without_default_price_is_the_reason_given() -> None:
    chosen = choose_candidates(CATALOG, None, ["demo/other", "demo"])
    assert chosen.notes == (
        "skipped models: demo/other (provider demo has no default price to bill it by)",
    )


def test_none_known_is_a_404_listing_why() -> None:
    with pytest.raises(ModelNotFound) as caught:
        choose_candidates(CATALOG, None, ["nope-1", "demo/other"])
    assert caught.value.status == 404
    assert caught.value.param == "models"
    assert "nope-1 (not in the catalog)" in caught.value.message


def test_an_unknown_model_without_models_is_still_a_404() -> None:
    with pytest.raises(ModelNotFound):
        choose_candidates(CATALOG, "nope-1", None)
