"""/metrics text: label values escaped per the Prometheus text format, checked with the
reference parser (prometheus_client)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from saferouter.metrics_text import encode_family, escape_label_value

INJECTION = '"}\nfake 42'


@pytest.mark.parametrize(
    "value",
    [INJECTION, "back\\slash", 'quo"te', "new\nline", "\\n", '\\"}', "fake/glm-4.7", ""],
)
def test_any_label_value_round_trips_through_the_reference_parser(value: str) -> None:
    text = encode_family("saferouter_circuit_state", "gauge", "Help.", [({"key": value}, 2)])
    (family,) = text_string_to_metric_families(text)
    (sample,) = family.samples
    assert (family.name, sample.labels, sample.value) == (
        "saferouter_circuit_state",
        {"key": value},
        2,
    )


def test_an_injected_line_stays_inside_its_label() -> None:
    text = encode_family(
        "saferouter_upstream_attempts_total",
        "counter",
        "Attempts.",
        [({"provider": INJECTION, "outcome": "won"}, 1), ({"provider": "p", "outcome": "x"}, 3)],
    )
    assert len(text.splitlines()) == 4  # HELP, TYPE and two samples: no line of its own
    assert not any(line.startswith("fake") for line in text.splitlines())
    names = [f.name for f in text_string_to_metric_families(text)]
    assert names == ["saferouter_upstream_attempts"]  # the parser drops _total of a counter


def test_the_escapes_are_exactly_the_three_the_format_names() -> None:
    assert escape_label_value('a\\b"c\nd\te') == 'a\\\\b\\"c\\nd\te'
