"""A damaged BYOK key file, as `saferouter serve` meets it at start: one line naming the
file and exit status 2 (a data dir that cannot be used), never a traceback; the file is
left as it is (it is what the users' sealed provider keys were sealed to)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..processes import cli, free_port, serving


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_byok_key_file_stops_the_start_with_one_clear_line(
    tmp_path: Path, damage: str
) -> None:
    data, port = tmp_path / "data", free_port()  # the port is part of the measurement
    with serving(data, port=port):
        pass
    (key_file,) = data.glob("byok-*.key")
    damaged = key_file.read_bytes()[:10] if damage == "truncated" else b""
    key_file.write_bytes(damaged)
    started = cli(data, "serve", "--port", str(port))
    assert started.returncode == 2, started.stdout + started.stderr
    assert "Traceback" not in started.stdout + started.stderr
    assert started.stderr.strip().splitlines() == [
        f"saferouter: the key file {key_file} cannot be used: PrivateKey must be created "
        "from a 32 bytes long raw secret key"
    ]
    assert key_file.read_bytes() == damaged
