"""Every option that names an HTTP service takes one checked base URL (audit of URL handling).

A malformed ``--pccs-url``, ``--admin-url`` or ``--api-server`` is a usage error (exit 2)
that says what is wrong with the URL, raised while the arguments are parsed: before a
request is sent (no "PCCS has no PCK CRL" for a URL whose query swallowed the path, no
"Connection refused" for port 99999) and before a doctor check runs. Listen addresses
(``--admin-listen``, ``--listen``) are refused the same way when their brackets are wrong.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cli_support import subparsers

from sgx_quote_helper._cli import _args, build_parser, main

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = str(ASSETS / "intel-sgx-quote-v3.bin")

#: One bad URL per way a URL went wrong in the audit, with what the error must say.
BAD_URLS = [
    ("http://[::1", "without its partner"),  # ValueError: Invalid IPv6 URL
    ("http://127.0.0.1:\udcff", "port must be a number 1..65535"),  # httpx.InvalidURL
    ("http://127.0.0.1:9?x=1", "it has a query"),  # sent as ...:9?ca=processor&...
    ("http://127.0.0.1:9#frag", "it has a fragment"),  # sent as ...?ca=...#frag/sgx/...
    ("http://127.0.0.1:99999", "got '99999'"),  # reported as "Connection refused"
    ("http://user:pw@127.0.0.1:9", "user:password@ is not supported"),
]

#: Each command and option that takes a URL, with the rest of a valid command line.
URL_OPTIONS = [
    (["verify", QUOTE], "--pccs-url"),
    (["doctor", "--socket", "/nonexistent/aesm.socket"], "--pccs-url"),
    (["doctor", "--socket", "/nonexistent/aesm.socket"], "--admin-url"),
    (["quote", "--platform", "/nonexistent", "--report-data", "00", "-o", "-"], "--pccs-url"),
    (["device-plugin"], "--api-server"),
    (["sim", "register-nodes", "/nonexistent"], "--api-server"),
]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """The exit status as the process would have it, argparse's SystemExit included."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize(("command", "option"), URL_OPTIONS)
@pytest.mark.parametrize(("url", "reason"), BAD_URLS)
def test_a_malformed_url_is_a_usage_error_naming_what_is_wrong(
    capsys: pytest.CaptureFixture[str], command: list[str], option: str, url: str, reason: str
) -> None:
    code, out, err = _run(capsys, [*command, option, url])
    assert code == 2, err
    assert f"argument {option}: {url!r} is not a usable base URL: " in err
    assert reason in err
    assert out == ""  # doctor: no check ran (no "[FAIL] pccs ... SGX_QL_MESSAGE_ERROR")


@pytest.mark.parametrize(("url", "reason"), BAD_URLS)
def test_serve_refuses_a_malformed_pccs_url_before_starting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str, reason: str
) -> None:
    argv = ["serve", "--platform", str(tmp_path), "--socket", str(tmp_path / "s")]
    code, _, err = _run(capsys, [*argv, "--pccs-url", url])
    assert code == 2, err
    assert f"invalid value for --pccs-url from the command line: {url!r}" in err
    assert reason in err
    assert not (tmp_path / "s").exists()


def test_serve_refuses_an_unpaired_bracket_in_admin_listen(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Was bound as host "[:" and failed at startup (exit 1, "Name or service not known").
    argv = ["serve", "--platform", str(tmp_path), "--socket", str(tmp_path / "s")]
    code, _, err = _run(capsys, [*argv, "--admin-listen", "[::1"])
    assert code == 2, err
    assert "invalid value for --admin-listen from the command line" in err
    assert "an IPv6 host goes in a pair of brackets" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["pccs", "--sim", "/nonexistent", "--listen", "[::1"],
        ["webhook", "--listen", "[::1", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
        ["device-plugin", "--metrics-listen", "[::1"],
    ],
)
def test_listen_addresses_with_unpaired_brackets_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = _run(capsys, argv)
    assert code == 2, err
    assert "'[::1': an IPv6 host goes in a pair of brackets" in err


#: A URL option not checked here: ``sim init`` writes its URL into certificates and
#: checks it on its own path (it may take ``_args.base_url`` too).
NOT_A_SERVICE_URL = {"sim init --pccs-url"}


def _is_url_option(action: argparse.Action) -> bool:
    names = action.option_strings
    return action.metavar == "URL" or any(n.endswith(("-url", "--api-server")) for n in names)


def test_every_url_option_takes_the_one_checked_type() -> None:
    """A new URL option joins by using ``_args.base_url`` (``serve``'s: its config table)."""
    url_options = {
        f"{name} {action.option_strings[0]}"
        for name, parser in subparsers(build_parser())
        for action in parser._actions
        if _is_url_option(action) and name != "serve"
    }
    checked = {
        f"{name} {action.option_strings[0]}"
        for name, parser in subparsers(build_parser())
        for action in parser._actions
        if action.type is _args.base_url
    }
    assert url_options - NOT_A_SERVICE_URL == checked - NOT_A_SERVICE_URL
    assert checked >= {
        "verify --pccs-url",
        "doctor --pccs-url",
        "doctor --admin-url",
        "quote --pccs-url",
        "device-plugin --api-server",
        "sim register-nodes --api-server",
    }
