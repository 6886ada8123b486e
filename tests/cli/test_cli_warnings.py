"""A short command's warnings say what failed and where, as the daemon's log lines do.

Without a handler, Python's last resort printed a bare event name
(``pck_chain.cache_write_failed``) for an in-process ``quote`` whose PCK cache
could not be written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sgx_quote_helper._cli import main
from sgx_quote_helper._logging import LOGGER_NAME


@pytest.fixture(autouse=True)
def fresh_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package logger as a new process has it (a daemon test may have configured it)."""
    monkeypatch.setattr(logging.getLogger(LOGGER_NAME), "handlers", [])


def test_an_unwritable_pck_cache_is_a_warning_with_path_and_error(
    sim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "pck-cache").write_text("")  # a file where the cache directory belongs
    out = tmp_path / "q.bin"
    argv = ["quote", "--platform", str(sim / "platform"), "--state-dir", str(state)]
    assert main([*argv, "--report-data", "00", "-o", str(out)]) == 0
    assert out.stat().st_size > 0  # the cache costs resilience, not the quote
    lines = [line for line in capsys.readouterr().err.splitlines() if "pck_chain" in line]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("sgx-quote-helper: warning: pck_chain.cache_write_failed path=")
    assert f"path={state / 'pck-cache'}/" in line
    assert 'error="Not a directory"' in line
    assert "--state-dir" in line


def test_the_command_handler_is_removed_after_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "0x4001"]) == 0
    assert logging.getLogger(LOGGER_NAME).handlers == []
