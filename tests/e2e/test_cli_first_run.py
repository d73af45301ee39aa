"""What a new operator reads: the banner and every ``keys`` command name the data dir
and store they used, the banner says how to make another admin key (and that command
works as printed), and a reader that leaves early is no error."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import httpx
import pytest

from ..processes import CLI, clean_env, cli, serving


def test_the_banner_says_where_the_keys_are_and_how_to_make_another_admin_key(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data dir"  # a space: the printed command must still be one argument
    with serving(data) as served:
        pass
    lines = served.output.splitlines()
    assert f"data dir {data}, keys in SQLite at {data / 'saferouter.db'}" in lines
    advice = next(line for line in lines if line.startswith("another admin key: "))
    command = shlex.split(advice.removeprefix("another admin key: "))
    assert command[:2] == ["saferouter", "keys"]
    # run exactly what the banner says (with this checkout's interpreter for "saferouter")
    made = subprocess.run(
        [*CLI, *command[1:]], capture_output=True, text=True, env=clean_env(), check=False
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.splitlines()[-1]
    with serving(data) as served:
        listed = httpx.get(
            served.url + "/v1/keys", headers={"Authorization": f"Bearer {secret}"}, timeout=10
        )
    assert listed.status_code == 200  # an admin key of the server's own store
    assert [k["name"] for k in listed.json()["data"]] == ["admin", "me"]


def test_the_banner_never_repeats_a_database_url(tmp_path: Path) -> None:
    """A database URL may hold a password: the banner names the store and says to pass
    the same --database, without quoting it."""
    db = tmp_path / "elsewhere" / "gw.db"
    db.parent.mkdir()
    url = f"sqlite://{db}"
    with serving(tmp_path / "data", "--database", url) as served:
        pass
    assert f"keys in SQLite at {db}" in served.output
    assert "--admin --data-dir " in served.output and "the same --database" in served.output
    assert url not in served.output


@pytest.mark.parametrize(
    "command",
    [
        ("keys", "create", "--name", "x"),
        ("keys", "list"),
        ("keys", "rename", "key_none", "y"),
        ("keys", "revoke", "key_none"),
        ("keys", "topup", "key_none", "1"),
    ],
)
def test_every_keys_command_says_which_data_dir_it_used(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = cli(tmp_path, *command)
    assert done.stderr.splitlines()[0] == (
        f"saferouter: data dir {tmp_path}, keys in SQLite at {tmp_path / 'saferouter.db'}"
    )
    assert "Traceback" not in done.stderr


def test_keys_on_another_database_say_so(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    done = cli(tmp_path, "keys", "list", "--database", f"sqlite://{db}")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == f"saferouter: data dir {tmp_path}, keys in SQLite at {db}"


def test_a_reader_that_leaves_early_is_no_error(tmp_path: Path) -> None:
    """``saferouter measure --parts | head -1``: the pipe's reader is gone before the
    output is written (its read end closed before the command starts, so the write
    fails every time, whatever the pipe's buffer size); the command exits 0, silently."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [*CLI, "measure", "--parts", "--data-dir", str(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_head_of_the_parts_is_their_first_line(tmp_path: Path) -> None:
    """The same through a shell pipeline with ``pipefail``, as a user types it."""
    command = shlex.join([*CLI, "measure", "--parts", "--data-dir", str(tmp_path)])
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} | head -1"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "{\n", "")
