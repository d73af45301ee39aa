"""RFC 8785 canonical JSON, and what moves the service measurement."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from saferouter.attestation.measurement import code_manifest, measure
from saferouter.canonical import canonical_json
from saferouter.catalog import DEFAULT_CATALOG_PATH, load_catalog
from saferouter.config import load_settings


def test_canonical_json_rules() -> None:
    assert (
        canonical_json({"b": 1, "a": [True, None, "é\n"], "A": {}})
        == '{"A":{},"a":[true,null,"é\\n"],"b":1}'.encode()
    )
    # members sort by UTF-16 code units: U+FB01 (one unit) sorts after U+1F600 (surrogates)
    assert canonical_json({"\ufb01": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ufb01":1}'.encode()
    doc = {"nonce": "00ff", "time": 1795714882, "list": [1, 2]}
    assert json.loads(canonical_json(doc)) == doc
    for bad in (1.5, 2**60, {1: "x"}, object()):
        with pytest.raises(TypeError):
            canonical_json(bad)


def test_measurement_moves_with_prices_routing_and_code(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=tmp_path)
    base = measure(settings)
    assert measure(settings) == base and len(base.digest) == 32
    assert "saferouter/gateway/pipeline.py" in base.code
    assert all(len(h) == 64 for h in code_manifest().values())
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    flash = catalog.models["deepseek-flash"]
    cheaper = attrs.evolve(
        catalog,
        models={
            **catalog.models,
            "deepseek-flash": attrs.evolve(
                flash,
                pricing=attrs.evolve(
                    flash.pricing,
                    base=attrs.evolve(flash.pricing.base, output=flash.pricing.base.output - 1),
                ),
            ),
        },
    )
    assert measure(attrs.evolve(settings, catalog=cheaper)).digest != base.digest
    rerouted = attrs.evolve(
        catalog,
        models={**catalog.models, "deepseek-flash": attrs.evolve(flash, fallbacks=("glm-4.7",))},
    )
    assert measure(attrs.evolve(settings, catalog=rerouted)).digest != base.digest
    assert measure(attrs.evolve(settings, audit_rate_ppm=1)).digest != base.digest
    with_fee = attrs.evolve(catalog, byok_fee_bp=1)  # a price too: what own keys pay
    assert measure(attrs.evolve(settings, catalog=with_fee)).digest != base.digest
    # provider keys are not part of it: a key is a secret, not configuration
    keyed = load_settings({"DEEPSEEK_API_KEY": "sk-secret"}, data_dir=tmp_path)
    assert measure(keyed).digest == base.digest
    assert "sk-secret" not in json.dumps(measure(keyed).config)
