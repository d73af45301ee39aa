"""`saferouter byok add` given odd input on this machine, against a real `serve` behind a
recording proxy: refused with exit 2 and one line, before anything is sent, and no
secret in what it prints."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from ..processes import CLI, clean_env, new_key, serving
from ..rewriting_proxy import Sent, rewriting_proxy


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[Sent]]]:
    """The proxy's URL, a user key of the gateway behind it, and what the proxy sent."""
    data, sent = tmp_path_factory.mktemp("byok-cli") / "data", list[Sent]()
    with serving(data) as served, rewriting_proxy(served.url, sent=sent) as proxy:
        yield proxy, new_key(data, "--name", "user"), sent


def add(proxy: str, key: str, stdin: bytes, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`byok add` (all its checks would pass): the exit status and all it printed."""
    done = subprocess.run(
        [*CLI, "byok", "add", "--gateway", proxy, "--provider", "deepseek", "--allow-demo"],
        input=stdin,
        capture_output=True,
        timeout=120,
        env=clean_env() | {"SAFEROUTER_API_KEY": key} | (env or {}),
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


@pytest.mark.parametrize("odd", ["\n", "\r\n", " ", "\t", "\x00", "é"])
def test_an_api_key_that_cannot_be_a_header_is_refused_and_never_printed(
    gateway: tuple[str, str, list[Sent]], odd: str
) -> None:
    proxy, user, sent = gateway
    sent.clear()
    if odd == "\x00":  # an environment cannot hold a NUL: the nearest control character
        odd = "\x01"
    status, printed = add(proxy, user + odd + "X-Injected: 1", b"sk-provider-key\n")
    assert status == 2, printed
    assert printed.strip() == (
        "saferouter: SAFEROUTER_API_KEY holds a space, a control or a non-ASCII character "
        "(a newline?)"
    )
    assert user not in printed
    assert sent == []  # not even the checks: nothing could be uploaded


@pytest.mark.parametrize("locale_errors", ["strict", "surrogateescape"])
def test_binary_on_stdin_is_refused_before_anything_is_sent(
    gateway: tuple[str, str, list[Sent]], locale_errors: str
) -> None:
    proxy, user, sent = gateway
    sent.clear()
    env = {"PYTHONIOENCODING": f"utf-8:{locale_errors}"}
    status, printed = add(proxy, user, b"\xff\xfe\x00sk-abc\n", env)
    assert status == 2, printed
    assert "Traceback" not in printed and printed.startswith("saferouter: the provider key")
    assert sent == []
