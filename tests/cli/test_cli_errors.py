"""The CLI's last-resort error handling: one line, never a traceback."""

from __future__ import annotations

import argparse

import pytest

from sgx_quote_helper._cli import _explain, main


def test_unanticipated_os_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise PermissionError(13, "Permission denied", "/some/where")

    monkeypatch.setattr(_explain, "_run", fail)
    assert main(["explain", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sgx-quote-helper: error: Permission denied: /some/where; check")
    assert err.count("\n") == 1
