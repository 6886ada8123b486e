"""`--version` reports the release and the QE/PCE SVNs it hosts."""

import pytest

from sgx_quote_helper import PCE_SVN, QE_SVN, __version__
from sgx_quote_helper._cli import main


def test_version_names_release_and_hosted_svns(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert __version__ in out
    assert f"QE3 ISVSVN {QE_SVN}" in out
    assert f"PCE ISVSVN {PCE_SVN}" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
