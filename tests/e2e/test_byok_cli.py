"""`saferouter byok add|list|remove` as a user runs it, against real `saferouter serve`
processes: the provider key leaves the client only sealed, and only once every check of
`saferouter verify` passed."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from pathlib import Path

import httpx
import nacl.public
import pytest

from saferouter.byok import sealing
from saferouter.keys import hash_key

from ..processes import CLI, clean_env, new_key, serving
from ..rewriting_proxy import Sent, rewriting_proxy


def byok(*args: str, key: str | None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`saferouter byok ...` with ``key`` as SAFEROUTER_API_KEY (None: unset)."""
    env = clean_env() | ({"SAFEROUTER_API_KEY": key} if key is not None else {})
    return subprocess.run(
        [*CLI, "byok", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def canary() -> str:
    return "sk-CANARY" + secrets.token_hex(16)


def listed(url: str, key: str, **client: object) -> list[dict[str, object]]:
    """What the gateway's own API says this key holds."""
    answer = httpx.get(url + "/v1/byok", headers={"Authorization": f"Bearer {key}"}, **client)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    data: list[dict[str, object]] = answer.json()["data"]
    return data


def test_add_uploads_only_the_sealed_key_and_list_and_remove_see_it(tmp_path: Path) -> None:
    data, provider_key = tmp_path / "data", canary()
    sent: list[Sent] = []
    with serving(data) as served, rewriting_proxy(served.url, sent=sent) as proxy:
        user = new_key(data, "--name", "user")
        trust = ["--allow-demo", "--audience", served.url.removeprefix("http://")]
        added = byok(
            "add", "--gateway", proxy, "--provider", "deepseek", *trust,
            key=user, stdin=provider_key + "\n",
        )  # fmt: skip
        held = listed(served.url, user)
        status = httpx.get(served.url + "/attestation").json()
        shown = byok("list", "--gateway", proxy, *trust, key=user)
        removed = byok("remove", "--gateway", proxy, "--provider", "deepseek", *trust, key=user)
        after = listed(served.url, user)
        again = byok("remove", "--gateway", proxy, "--provider", "deepseek", *trust, key=user)
    assert added.returncode == 0, added.stdout + added.stderr
    mine = sealing.fingerprint(provider_key)
    assert "✓ (11) receipt log" in added.stdout and "VERIFIED (DEMO root" in added.stdout
    assert f"added deepseek key {mine}" in added.stdout
    # where the key goes, read from the measured configuration before it was sealed
    assert "deepseek requests with this key go to https://api.deepseek.com (as measured)" in (
        added.stdout
    )
    assert f"sealed for measurement {status['measurement']}" in added.stdout
    assert [(k["provider"], k["fingerprint"], k["usable"]) for k in held] == [
        ("deepseek", mine, True)
    ]
    (upload,) = [body for method, _, body in sent if method == "PUT"]
    assert provider_key.encode() not in upload
    sealed = base64.b64decode(json.loads(upload)["sealed_key"])
    (key_file,) = data.glob("byok-*.key")  # demo mode: the gateway's key, a plain file
    private = nacl.public.PrivateKey(key_file.read_bytes())
    binding = sealing.Binding(hash_key(user), "deepseek")  # bound to the uploading key
    assert sealing.open_sealed(private, sealed, binding) == provider_key  # sealed to the gateway
    assert json.loads(upload)["byok_fallback"] is False
    for method, _, body in sent:
        assert provider_key.encode() not in body, method
    for result in (added, shown, removed, again):
        assert provider_key not in result.stdout + result.stderr
    assert shown.returncode == 0, shown.stderr
    assert f"deepseek         {mine}  off       usable" in shown.stdout
    assert removed.returncode == 0 and "removed deepseek key" in removed.stdout
    assert after == []
    assert again.returncode == 1 and "the gateway answered 404" in again.stderr


def test_a_demo_gateway_is_refused_without_allow_demo(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data) as served:
        user = new_key(data, "--name", "user")
        refused = byok(
            "add", "--gateway", served.url, "--provider", "deepseek", key=user, stdin=canary()
        )
        held = listed(served.url, user)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    lines = refused.stdout.strip().splitlines()
    assert lines[-2].startswith("✗ (3) report and chain") and "DEMO root" in lines[-2]
    assert lines[-1] == "FAILED" and "nothing was sent" in refused.stderr
    assert held == []


@pytest.mark.parametrize(
    ("extra", "failed"),
    [
        (["--expect-measurement", "00" * 32], "✗ (7) measurement"),
        (["--audience", "elsewhere.example"], "✗ (8) startup log"),
    ],
)
def test_a_failed_step_uploads_nothing(tmp_path: Path, extra: list[str], failed: str) -> None:
    data, sent = tmp_path / "data", list[Sent]()
    with serving(data) as served, rewriting_proxy(served.url, sent=sent) as proxy:
        user = new_key(data, "--name", "user")
        audience = ["--audience", served.url.removeprefix("http://")]
        result = byok(
            "add", "--gateway", proxy, "--provider", "deepseek", "--allow-demo",
            *audience, *extra, key=user, stdin=canary(),
        )  # fmt: skip
        held = listed(served.url, user)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-2].startswith(failed)
    assert held == [] and not [path for _, path, _ in sent if path.startswith("/v1/")]


def test_bad_input_here_is_exit_2_before_anything_is_sent(tmp_path: Path) -> None:
    sent: list[Sent] = []
    with serving(tmp_path / "data") as served, rewriting_proxy(served.url, sent=sent) as proxy:
        no_key = byok("add", "--gateway", proxy, "--provider", "deepseek", key=None, stdin="k")
        empty = byok("add", "--gateway", proxy, "--provider", "deepseek", key="sk-x", stdin="\n")
        spaced = byok("add", "--gateway", proxy, "--provider", "deepseek", key="sk", stdin="a b")
        listing = byok("list", "--gateway", proxy, key="")
    assert no_key.returncode == 2 and "set SAFEROUTER_API_KEY" in no_key.stderr
    assert listing.returncode == 2 and "set SAFEROUTER_API_KEY" in listing.stderr
    assert empty.returncode == 2 and "the provider key is empty" in empty.stderr
    assert spaced.returncode == 2 and "space" in spaced.stderr
    assert sent == []


def test_the_gateways_error_is_printed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data) as served:
        user = new_key(data, "--name", "user")
        unknown = byok(
            "add", "--gateway", served.url, "--provider", "nosuch", "--allow-demo",
            key=user, stdin=canary(),
        )  # fmt: skip
        wrong_key = byok("list", "--gateway", served.url, "--allow-demo", key="sk-sr-wrong")
    assert unknown.returncode == 1  # refused from the measured configuration, before sealing
    assert "the attested build has no provider 'nosuch'; nothing was sent" in unknown.stderr
    assert wrong_key.returncode == 1 and "the gateway answered 401" in wrong_key.stderr


def test_an_https_gateway_is_used_through_the_pinned_channel(tmp_path: Path) -> None:
    data, provider_key = tmp_path / "data", canary()
    with serving(data, "--tls") as served:
        user = new_key(data, "--name", "user")
        added = byok(
            "add", "--gateway", served.url, "--provider", "zai", "--fallback", "--allow-demo",
            key=user, stdin=provider_key,
        )  # fmt: skip
        held = listed(served.url, user, verify=served.trust())
    assert added.returncode == 0, added.stdout + added.stderr
    assert "✓ (5) TLS key: the quote came over TLS to the attested key" in added.stdout
    assert "byok_fallback on" in added.stdout
    assert [(k["provider"], k["fingerprint"], k["byok_fallback"]) for k in held] == [
        ("zai", sealing.fingerprint(provider_key), True)
    ]


def test_a_build_that_would_send_the_key_in_the_clear_gets_nothing(tmp_path: Path) -> None:
    """The operator points DeepSeek at a plain-http host: the measurement covers it, and
    `add` reads it from the measured document and refuses before sealing anything."""
    data = tmp_path / "data"
    with serving(data, env={"DEEPSEEK_BASE_URL": "http://collector.example/v1"}) as served:
        user = new_key(data, "--name", "user")
        added = byok(
            "add", "--gateway", served.url, "--provider", "deepseek", "--allow-demo",
            key=user, stdin=canary(),
        )  # fmt: skip
        held = listed(served.url, user)
    assert added.returncode == 1
    assert "sends deepseek requests to http://collector.example/v1" in added.stderr
    assert "nothing was sent" in added.stderr and held == []
