"""The command line's own documentation: every command listed, every argument
explained, a version to report, and no reStructuredText markup leaking into a terminal."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from importlib import metadata

import pytest

from saferouter.cli import _parser, main

COMMANDS = ("serve", "keys", "tee", "tls", "verify", "verify-receipt", "byok", "measure")


def _parsers(
    parser: argparse.ArgumentParser, path: str = "saferouter"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the tree, named by its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_the_tree_is_walked_whole() -> None:
    """(So that the checks below cannot pass by seeing too little.)"""
    paths = {path for path, _ in _parsers(_parser())}
    assert {"saferouter keys create", "saferouter byok remove", "saferouter tls csr"} <= paths
    assert len(paths) >= 20


def test_every_argument_of_every_command_has_help_without_backticks() -> None:
    missing, marked = [], []
    for path, parser in _parsers(_parser()):
        texts = [parser.description or ""]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    if not choice.help:
                        missing.append(f"{path} {choice.dest}")
                    texts.append(choice.help or "")
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
            texts.append(action.help or "")
        marked += [f"{path}: {text}" for text in texts if "`" in text]
    assert missing == []
    assert marked == []


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    listed = [line.split()[0] for line in shown.splitlines() if line.startswith("    ")]
    assert [c for c in COMMANDS if c not in listed] == []
    assert "`" not in shown


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"saferouter {metadata.version('saferouter')}\n"
