"""saferouter/web/vendor/ holds exactly the files its README names, each with the SHA-256 recorded
there (the bytes of the npm package): an edit to vendored crypto cannot pass unseen."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[2] / "saferouter" / "web" / "vendor"
ROW = re.compile(r"^\| `([^`]+)` \| `package/[^`]+` \| `([0-9a-f]{64})` \|$", re.MULTILINE)


def test_every_vendored_file_is_listed_with_its_sha256() -> None:
    listed = dict(ROW.findall((VENDOR / "README.md").read_text()))
    present = {
        p.relative_to(VENDOR).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in VENDOR.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert listed == present
    assert {name.split("/")[0] for name in listed} == {"tweetnacl", "noble-hashes"}
    assert all(
        (VENDOR / package / "LICENSE").is_file() for package in ("tweetnacl", "noble-hashes")
    )
