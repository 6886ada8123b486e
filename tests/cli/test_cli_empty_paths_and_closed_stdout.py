"""An empty path is a usage error; a closed stdout fails cleanly.

``Path("")`` is ``.``, and an option whose absence means "the default" took an
empty value for absent: ``inspect ''`` and ``quote -o ''`` said "'.' is a
directory", ``doctor --socket ''`` checked the default socket. And with stdout
closed (``>&-``) ``sys.stdout`` is ``None``: writing a result ended in an
``AttributeError`` traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from sgx_quote_helper._cli import _args, build_parser, main

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = str(ASSETS / "intel-sgx-quote-v3.bin")
COLLATERAL = str(ASSETS / "intel-sgx-quote-v3.collateral.json")

#: How options that name a file or directory are shown in the help.
PATH_METAVARS = {"FILE", "DIR", "PATH", "OUT", "PATH_OR_NAME"}


def _subparsers(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _subparsers(sub, f"{prefix}{name} ")


def test_every_path_option_refuses_an_empty_value() -> None:
    checked = []
    for name, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if action.metavar in PATH_METAVARS:
                where = f"{name} {action.option_strings or action.dest}"
                assert action.type in (_args.path, _args.path_text), where
                checked.append(f"{name} {(action.option_strings or [action.dest])[-1]}")
    assert {
        "inspect file",
        "quote --output",
        "quote --platform",
        "quote --enclave",
        "doctor --socket",
        "doctor --platform",
        "verify file",
        "verify --root-ca",
        "serve --config",
        "serve --socket",
        "serve --platform",
        "serve --state-dir",
        "sim init dir",
        "pccs --sim",
    } <= set(checked)


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["inspect", ""], "FILE"),
        (["quote", "--report-data", "00", "-o", ""], "-o/--output"),
        (["doctor", "--socket", ""], "--socket"),
        (["doctor", "--platform", ""], "--platform"),
        (["verify", "", "--collateral", COLLATERAL], "FILE"),
        (["verify", QUOTE, "--collateral", ""], "--collateral"),
        (["serve", "--config", ""], "--config"),
        (["serve", "--state-dir", ""], "--state-dir"),
        (["sim", "init", ""], "DIR"),
    ],
)
def test_an_empty_path_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], option: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"argument {option}: expected a path, got an empty string" in err
    assert "'.'" not in err
    assert "Traceback" not in err
