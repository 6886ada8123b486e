"""An empty path is a usage error; a closed stdout fails cleanly (exit 1, one line).

``Path("")`` is ``.``, and an option whose absence means "the default" took an
empty value for absent: ``inspect ''`` and ``quote -o ''`` said "'.' is a
directory", ``doctor --socket ''`` checked the default socket. And with stdout
closed (``>&-``) ``sys.stdout`` is ``None``: writing a result ended in an
``AttributeError`` traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import subparsers

from sgx_quote_helper._cli import _args, build_parser, main

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = str(ASSETS / "intel-sgx-quote-v3.bin")
COLLATERAL = str(ASSETS / "intel-sgx-quote-v3.collateral.json")

#: How options that name a file or directory are shown in the help.
PATH_METAVARS = {"FILE", "DIR", "PATH", "OUT", "PATH_OR_NAME"}


def test_every_path_option_refuses_an_empty_value() -> None:
    checked = []
    for name, parser in subparsers(build_parser()):
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


def _close(*fds: int) -> Callable[[], None]:
    def close() -> None:
        for fd in fds:
            os.close(fd)

    return close


def _run_closed(argv: list[str], *fds: int) -> subprocess.CompletedProcess[str]:
    """The CLI as ``sgx-quote-helper ARGV >&-`` (and ``2>&-``) would run it."""
    return subprocess.run(
        [sys.executable, "-m", "sgx_quote_helper", *argv],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_close(*fds),
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "argv", [["inspect", QUOTE], ["inspect", QUOTE, "--json"], ["--version"], ["--help"]]
)
def test_a_closed_stdout_fails_with_one_line(argv: list[str]) -> None:
    result = _run_closed(argv, 1)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("sgx-quote-helper: error: standard output is closed")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_quote_to_a_closed_stdout_fails_with_one_line(sim: Path) -> None:
    argv = ["quote", "--platform", str(sim / "platform"), "--report-data", "00", "-o", "-"]
    result = _run_closed(argv, 1)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("sgx-quote-helper: error: standard output is closed")
    assert "Traceback" not in result.stderr


def test_closed_stdout_and_stderr_exit_1_quietly(tmp_path: Path) -> None:
    marker = tmp_path / "opened"
    # Whatever the CLI opens later must not land on descriptor 1 or 2.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from sgx_quote_helper._cli import main\n"
            "code = main(['inspect', sys.argv[1]])\n"
            "fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT)\n"
            "os.write(os.open(sys.argv[2] + '.fd', os.O_WRONLY | os.O_CREAT), str(fd).encode())\n"
            "sys.exit(code)\n",
            QUOTE,
            str(marker),
        ],
        stdout=subprocess.DEVNULL,
        preexec_fn=_close(1, 2),
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert int((tmp_path / "opened.fd").read_text()) > 2
