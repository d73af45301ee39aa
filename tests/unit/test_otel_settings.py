"""Where traces go (``Settings.otel_traces_url``), by the OpenTelemetry exporter
specification's variables, and the settings that stop a start with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from saferouter.attestation.measurement import measure
from saferouter.cli import main
from saferouter.config import load_settings
from saferouter.errors import ConfigError

BASE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


@pytest.mark.parametrize(
    ("environ", "flag", "url"),
    [
        ({}, None, None),
        ({BASE: "http://collector:4318"}, None, "http://collector:4318/v1/traces"),
        ({BASE: "https://otel.example/base/"}, None, "https://otel.example/base/v1/traces"),
        # the signal's own variable is the whole URL, and wins over the base
        ({BASE: "http://a:4318", TRACES: "http://b:9/custom"}, None, "http://b:9/custom"),
        # the flag wins over both
        ({TRACES: "http://b:9/custom"}, "http://c:4318", "http://c:4318/v1/traces"),
        # off switches of the specification
        ({BASE: "http://a:4318", "OTEL_SDK_DISABLED": "true"}, None, None),
        ({BASE: "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, None, None),
        ({BASE: "http://a:4318", "OTEL_TRACES_EXPORTER": "otlp"}, None, "http://a:4318/v1/traces"),
        (
            {BASE: "http://a:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            None,
            "http://a:4318/v1/traces",
        ),
        # the other OTEL_* variables of a collector-less setup do not turn it on
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "x"}, None, None),
    ],
)
def test_the_traces_url(
    tmp_path: Path, environ: dict[str, str], flag: str | None, url: str | None
) -> None:
    settings = load_settings(environ, data_dir=tmp_path, otel_endpoint=flag)
    assert settings.otel_traces_url == url


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({BASE: "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL"),
        ({TRACES: "grpc://c:4317"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http(s) URL"),
        ({BASE: "http://user:pw@c:4318"}, "must not hold credentials"),
        # a token in the query would be published with the measurement (attack16)
        ({TRACES: "https://c/v1/traces?api_key=secret"}, "must not hold credentials or a query"),
        ({BASE: "https://c:4318/?token=secret"}, "must not hold credentials or a query"),
        ({TRACES: "https://c/v1/traces#secret"}, "must not hold credentials or a query"),
        ({BASE: "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
        ({BASE: "http://c", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "not http/json"),
        ({BASE: "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, "must be otlp or none"),
    ],
)
def test_a_setting_that_would_export_nothing_stops_the_start(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ, data_dir=tmp_path)


def test_where_traces_go_is_measured(tmp_path: Path) -> None:
    """Spans are request metadata leaving the gateway: a verifier sees whether they do,
    and where to; ``saferouter measure --otel-endpoint`` measures what serve runs."""
    off = measure(load_settings({}, data_dir=tmp_path))
    on = measure(load_settings({BASE: "http://c:4318"}, data_dir=tmp_path))
    assert off.config["settings"]["otel_traces_url"] is None
    assert on.config["settings"]["otel_traces_url"] == "http://c:4318/v1/traces"
    assert on.digest != off.digest
    flagged = load_settings({}, data_dir=tmp_path, otel_endpoint="http://c:4318")
    assert measure(flagged).digest == on.digest


def test_the_cli_flag_reaches_the_measurement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (BASE, TRACES, "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    args = ["measure", "--data-dir", str(tmp_path)]
    assert main(args) == 0
    off = capsys.readouterr().out.strip()
    assert main([*args, "--otel-endpoint", "http://c:4318"]) == 0
    on = capsys.readouterr().out.strip()
    expected = measure(load_settings({}, data_dir=tmp_path, otel_endpoint="http://c:4318"))
    assert on == expected.hex != off
    assert main([*args, "--otel-endpoint", "c:4318"]) == 2
    assert "--otel-endpoint must be an http(s) URL" in capsys.readouterr().err
