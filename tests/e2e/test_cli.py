"""The `saferouter` command as a user runs it: serve (1 and 2 workers) and keys."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import httpx

from ..processes import CHAT, cli, new_key, serving


def test_first_start_prints_an_admin_key_once_and_chats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data) as served:
        pass
    first = served.output
    assert served.process.returncode == 0, first  # SIGTERM is a clean, graceful stop
    admin = [line for line in first.splitlines() if line.startswith("sk-sr-")]
    assert len(admin) == 1 and len(admin[0]) == len("sk-sr-") + 43
    with serving(data) as served:
        reply = httpx.post(
            served.url + "/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {admin[0]}"},
            timeout=10,
        )
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"].startswith('You said: "hi"')
    assert "sk-sr-" not in served.output  # shown only on the first start
    assert (data / "saferouter.db").exists()


def test_keys_commands(tmp_path: Path) -> None:
    created = cli(tmp_path, "keys", "create", "--name", "ci bot")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-sr-")
    admin = cli(tmp_path, "keys", "create", "--name", "root", "--admin")
    listing = cli(tmp_path, "keys", "list").stdout
    assert "ci bot" in listing and "root" in listing and secret not in listing
    key_id = next(line.split()[0] for line in listing.splitlines() if "ci bot" in line)
    assert cli(tmp_path, "keys", "rename", key_id, "nightly").returncode == 0
    assert cli(tmp_path, "keys", "revoke", key_id).returncode == 0
    listing = cli(tmp_path, "keys", "list").stdout
    assert "nightly" in listing and "revoked" in listing
    assert cli(tmp_path, "keys", "revoke", "key_nope").returncode == 1
    assert admin.returncode == 0


def test_topup_never_meters_a_key_silently(tmp_path: Path) -> None:
    created = cli(tmp_path, "keys", "create", "--name", "free").stdout  # unmetered
    key_id = created.split()[3]
    refused = cli(tmp_path, "keys", "topup", key_id, "5")
    assert refused.returncode == 1
    assert "unmetered" in refused.stderr and "--make-metered" in refused.stderr
    assert "Traceback" not in refused.stderr
    row = next(line for line in cli(tmp_path, "keys", "list").stdout.splitlines() if key_id in line)
    assert "unmetered" in row
    made = cli(tmp_path, "keys", "topup", key_id, "5", "--make-metered")
    assert made.returncode == 0, made.stderr
    assert "balance 5 USD" in made.stdout
    row = next(line for line in cli(tmp_path, "keys", "list").stdout.splitlines() if key_id in line)
    assert "unmetered" not in row and " 5 " in row


def test_revocation_holds_in_every_worker(tmp_path: Path) -> None:
    """Each worker caches the keys it has seen; a revocation over HTTP (made in one
    worker) and one by the CLI (another process) both hold in every worker from its very
    next request, and a key created in one worker is known to the other."""
    data = tmp_path / "data"
    admin = new_key(data, "--name", "root", "--admin")
    with serving(data, "--workers", "2") as served:
        url = served.url
        made = httpx.post(
            url + "/v1/keys",
            json={"name": "over http"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=10,
        ).json()
        by_cli = cli(data, "keys", "create", "--name", "by cli").stdout.split()
        keys = {
            "http": (made["id"], made["key"]),
            "cli": (by_cli[3], by_cli[-1]),
        }
        for how, (key_id, secret) in keys.items():
            before = _until_both_workers_served(url, secret)
            assert {status for status, _ in before} == {(200, None)}, (how, before)
            if how == "http":
                revoked = httpx.delete(
                    f"{url}/v1/keys/{key_id}",
                    headers={"Authorization": f"Bearer {admin}"},
                    timeout=10,
                )
                assert revoked.json()["revoked"] is True
            else:
                assert cli(data, "keys", "revoke", key_id).returncode == 0
            after = _until_both_workers_served(url, secret)
            assert {status for status, _ in after} == {(401, "revoked_api_key")}, (how, after)
    assert served.process.returncode == 0, served.output


def _until_both_workers_served(url: str, secret: str) -> list[tuple[tuple[int, str | None], int]]:
    """Chat on fresh connections (the kernel spreads them across the workers) until
    each worker has answered at least five, the worker named by a /health on the same
    connection: ((status, error code), worker pid) per request."""
    answers: list[tuple[tuple[int, str | None], int]] = []
    for _ in range(400):
        with httpx.Client(base_url=url, timeout=10) as client:
            reply = client.post(
                "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {secret}"}
            )
            code = reply.json()["error"]["code"] if reply.status_code != 200 else None
            answers.append(((reply.status_code, code), client.get("/health").json()["worker"]))
        served = Counter(pid for _, pid in answers)
        if len(served) == 2 and min(served.values()) >= 5:
            return answers
    raise AssertionError(f"both workers did not answer: {Counter(p for _, p in answers)}")


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.x]\nname = "X"\nbase_url = "ftp://x"\n')
    result = cli(tmp_path, "keys", "list", "--config", str(bad))
    assert result.returncode == 2
    assert "http(s) base_url" in result.stderr and "Traceback" not in result.stderr


def test_a_worker_that_dies_alone_stops_the_service_with_an_error(tmp_path: Path) -> None:
    """With --workers 2, one worker killed (a crash, the OOM killer) was never noticed:
    the parent went on waiting, the service ran on one worker without a word, and the
    reservations of the dead worker's requests stayed held until a restart that no
    service manager had a reason to make. The parent must stop and exit non-zero."""
    with serving(tmp_path / "data", "--workers", "2") as served:
        worker = httpx.get(served.url + "/health", timeout=10).json()["worker"]
        assert worker != served.process.pid
        os.kill(worker, signal.SIGKILL)
        try:
            code = served.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        assert code not in (None, 0), "the parent did not notice its worker died"
