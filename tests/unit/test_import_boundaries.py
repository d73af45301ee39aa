"""Import boundaries, checked in a fresh interpreter so that nothing imported by another
test (or by pytest's plugins: pytest-trio loads trio) can hide a forbidden import.

Each module below is imported alone by ``python -c``; a meta-path hook records which
module first asked for each new import, and the check fails on any forbidden package in
``sys.modules``, naming the chain (``saferouter.verify.client -> saferouter.translog.log
-> saferouter.storage -> ... -> sqlite3``).

Which modules are cores (no framework, and no I/O library: trio, httpx, httpcore,
sqlite3 — the time, the bytes and the collaborators are parameters):

- the issue's list: ``sse``, ``accounting``, ``catalog``, ``canonical``,
  ``gateway.dialect/dialects/upstream_body/routing/breaker``, ``translog.merkle/note``,
  ``tee.abi/kds/verify/validate``;
- ``translog.entry``: encoding and verifying a signed log entry, shared by the log and
  by ``saferouter verify``;
- ``client_input``: turns untrusted JSON into typed values or ``InvalidRequest``, bytes
  in and values out; ``json_object`` adds where each member of a JSON object body sits;
- ``gateway.redact``: scrubs secrets out of upstream error text, a pure function of
  strings;
- ``storage.rules`` (the store's decisions, shared by SQLite and memory) and
  ``storage.memory`` (the Store in memory, for tests: its clock is a parameter).

Not cores: ``connections`` (its ``ConnectionTable`` is pure, but the module also holds
the trio shell that closes connections, so importing it imports trio — split the table
out before listing it), ``datadir`` (it creates directories and writes files: it *is*
I/O, even though it imports nothing forbidden) and ``config`` (it reads the TOML and
catalog files; it is instead held to the layering rule below).

The request pipeline (``gateway.pipeline``) and every stage it runs are
``FRAMEWORK_FREE``: they may use trio, httpcore and the store, but not Quart, hypercorn
or the app state — the HTTP layer is an adapter in front of them.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import saferouter

FRAMEWORK = ("quart", "quart_trio", "hypercorn", "werkzeug", "saferouter.state")
IO = ("trio", "httpx", "httpcore", "sqlite3", "_sqlite3")

CORES = (
    "saferouter.sse",
    "saferouter.accounting",
    "saferouter.catalog",
    "saferouter.canonical",
    "saferouter.client_input",
    "saferouter.json_object",
    "saferouter.gateway.dialect",
    "saferouter.gateway.dialects",
    "saferouter.gateway.dialects.chat",
    "saferouter.gateway.upstream_body",
    "saferouter.gateway.routing",
    "saferouter.gateway.breaker",
    "saferouter.gateway.redact",
    "saferouter.gateway.checkout",
    "saferouter.gateway.attribution",
    "saferouter.translog.merkle",
    "saferouter.translog.note",
    "saferouter.translog.entry",
    "saferouter.tee.abi",
    "saferouter.tee.kds",
    "saferouter.tee.verify",
    "saferouter.tee.validate",
    "saferouter.tls.certificates",
    "saferouter.storage.rules",
    "saferouter.storage.memory",
)

FRAMEWORK_FREE: tuple[str, ...] = (
    "saferouter.gateway.pipeline",
    "saferouter.gateway.auth",
    "saferouter.gateway.race",
    "saferouter.gateway.attempt",
    "saferouter.gateway.relay",
    "saferouter.gateway.books",
    "saferouter.gateway.receipts",
    "saferouter.gateway.upstream",
    "saferouter.clock",
    "saferouter.delivery",
)

# The store keeps rows, and the log's tree as rows: it may use the pure tree math
# (translog.merkle: how nodes combine), but what a leaf hash is, entries, notes and
# signatures belong to the log above it — every other translog module, present or future.
LOG_ABOVE_THE_STORE = tuple(
    f"saferouter.translog.{m.name}"
    for m in pkgutil.iter_modules([str(Path(saferouter.__file__).parent / "translog")])
    if m.name != "merkle"
)

# Arrows that point up a layer: the lower module must not import the upper one.
LAYERS = {
    # Settings sit below everything that reads them.
    "saferouter.config": ("saferouter.gateway", "saferouter.storage", "saferouter.attestation"),
    "saferouter.storage": LOG_ABOVE_THE_STORE,
    "saferouter.storage.sqlite": (*LOG_ABOVE_THE_STORE, "saferouter.attestation"),
    "saferouter.storage.memory": LOG_ABOVE_THE_STORE,
    # The log signs with a key it is given; where the key lives is attestation's business.
    "saferouter.translog.log": ("saferouter.attestation", "saferouter.tee"),
    # The client side checks a gateway from the outside: no server storage, no device.
    "saferouter.verify.client": (
        "saferouter.storage",
        "sqlite3",
        "_sqlite3",
        "saferouter.tee.device",
        *FRAMEWORK,
    ),
}


def _rules() -> dict[str, tuple[str, ...]]:
    rules: dict[str, tuple[str, ...]] = {}
    for module in CORES:
        rules[module] = FRAMEWORK + IO
    for module in FRAMEWORK_FREE:
        rules[module] = FRAMEWORK
    for module, forbidden in LAYERS.items():
        rules[module] = rules.get(module, ()) + forbidden
    return rules


# Runs in the child: import argv[1] with a hook that records who imported what, then
# print every forbidden module found with the chain that brought it in, as JSON.
CHECKER = r"""
import importlib.abc, json, sys

wanted, forbidden = sys.argv[1], json.loads(sys.argv[2])
imported_by = {}

class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        frame = sys._getframe(1)
        while frame is not None:
            who = frame.f_globals.get("__name__", "")
            if not who.startswith("importlib") and who != "__main__":
                break
            frame = frame.f_back
        # No importer outside importlib: a parent package the target's import needed.
        imported_by.setdefault(name, who if frame is not None else wanted)
        return None  # only watching: the real finders do the import

sys.meta_path.insert(0, Recorder())
before = set(sys.modules)
__import__(wanted)

def chain(name):
    links = [name]
    while links[-1] in imported_by and links[-1] != wanted and len(links) < 50:
        links.append(imported_by[links[-1]])
    return " -> ".join(reversed(links))

def banned(name):
    return any(name == f or name.startswith(f + ".") for f in forbidden)

found = sorted(n for n in set(sys.modules) - before if banned(n))
# Report only the outermost forbidden module of each chain (``trio`` rather than
# ``trio._core._run`` too).
found = [n for n in found if not any(n.startswith(o + ".") for o in found if o != n)]
print(json.dumps([chain(n) for n in found]))
"""


def forbidden_imports(module: str, forbidden: tuple[str, ...]) -> list[str]:
    """The import chain of each forbidden module that importing ``module`` pulls in."""
    root = str(Path(saferouter.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", CHECKER, module, json.dumps(forbidden)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    chains: list[str] = json.loads(done.stdout)
    return chains


@pytest.mark.parametrize(
    ("module", "forbidden"), [pytest.param(m, f, id=m) for m, f in sorted(_rules().items())]
)
def test_module_imports_nothing_forbidden(module: str, forbidden: tuple[str, ...]) -> None:
    chains = forbidden_imports(module, forbidden)
    assert not chains, f"{module} imports what it must not:\n  " + "\n  ".join(chains)


def test_the_check_sees_a_forbidden_import_and_names_its_chain() -> None:
    # connections holds a trio shell: the check must catch it, or it proves nothing.
    assert forbidden_imports("saferouter.connections", IO) == ["saferouter.connections -> trio"]
    chains = forbidden_imports("saferouter.app", ("sqlite3",))
    assert len(chains) == 1
    assert chains[0].startswith("saferouter.app -> ")
    assert chains[0].endswith(" -> sqlite3")
