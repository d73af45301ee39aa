"""Odd ``--database`` URLs: each one a clear one-line refusal (exit 2) before any
connection is tried, never a traceback, and never the password echoed (libpq's own
parse errors quote the token they choke on, the password included)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from saferouter import cli

PASSWORD = "s3cretpw"

ODD_URLS = [
    # (URL, what the refusal names)
    (f"postgresql://u:{PASSWORD}@[::1/db", "not a valid URL"),
    (f"postgresql://u:{PASSWORD}@127.0.0.1:99999/db", "port"),
    (f"postgresql://u:{PASSWORD}@127.0.0.1:abc/db", "port"),
    (f"postgresql://u:{PASSWORD}@127.0.0.1:0/db", "port"),
    (f"postgresql://u:{PASSWORD}%zz@127.0.0.1:5432/db", "not a valid PostgreSQL URL"),
    (f"postgresql://u:{PASSWORD}%00@127.0.0.1:5432/db", "not a valid PostgreSQL URL"),
    (f"postgresql://u:{PASSWORD}@127.0.0.1:5432/db?bogus=1", "not a valid PostgreSQL URL"),
    (f"postgres://u:{PASSWORD}@h:5432,h2:x/db", "port"),
    (f"mysql://u:{PASSWORD}@h/db", "mysql"),
    ("sqlite:///tmp/x%00y.db", "NUL"),
    ("sqlite:///", "sqlite:///path"),
]


@pytest.mark.parametrize(("url", "named"), ODD_URLS)
def test_an_odd_database_url_is_refused_in_one_line(
    url: str,
    named: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    code = cli.main(["keys", "list", "--data-dir", str(tmp_path), "--database", url])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("saferouter: ") and err.count("\n") == 1, err
    assert named in err
    assert "Traceback" not in out + err
    assert PASSWORD not in out + err + caplog.text


@pytest.mark.parametrize("name", ["a-directory", "missing/folder/../.."])
def test_a_sqlite_url_that_names_no_file_is_refused_in_one_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-directory").mkdir()
    code = cli.main(
        ["keys", "list", "--data-dir", str(tmp_path), "--database", f"sqlite://{tmp_path}/{name}"]
    )
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("saferouter: cannot open the database") and err.count("\n") == 1, err
