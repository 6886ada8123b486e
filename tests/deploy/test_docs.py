"""docs/kubernetes.md's troubleshooting table quotes `doctor` as it really is.

Each backticked item of its "`doctor` says" column is a check name, a status code as
doctor labels it, an option `doctor --help` lists, a path, or a message fragment that is
in the doctor's source (paths and "…" stand for what the message fills in). A reworded
doctor message then fails here instead of leaving the docs quoting something that no
longer exists.
"""

from __future__ import annotations

import re
import subprocess
import sys

from deploy_support import ROOT

from sgx_quote_helper.doctor import StatusCode
from sgx_quote_helper.sgx import AesmError, Quote3Error, SgxStatus

DOC = ROOT / "docs" / "kubernetes.md"
DOCTOR_SOURCE = ROOT / "src" / "sgx_quote_helper" / "doctor"
CHECKS = {"environment", "socket", "daemon", "quote", "pccs", "tcb"}


def _doctor_column() -> list[tuple[str, list[str]]]:
    """(row number, the backticked items of its `doctor` column) of the troubleshooting table."""
    section = DOC.read_text().split("\n## Troubleshooting\n")[1].split("\n## ")[0]
    rows = []
    for line in section.splitlines():
        if re.match(r"\| \d+ \|", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            rows.append((cells[0], re.findall(r"`([^`]+)`", cells[2])))
    return rows


def _fragments(quote: str) -> list[str]:
    """The literal parts of a quoted message: paths and "…" are what the message fills in."""
    parts = re.split(r"…|/[\w./-]+", quote)
    return [part.strip() for part in parts if len(part.strip()) >= 4]


def test_troubleshooting_quotes_what_doctor_really_says() -> None:
    rows = _doctor_column()
    assert len(rows) == 16  # every report of the project's Kubernetes notes (spec section 6)
    source = "\n".join(path.read_text() for path in sorted(DOCTOR_SOURCE.glob("*.py")))
    members: list[SgxStatus | AesmError | Quote3Error] = [*SgxStatus, *AesmError, *Quote3Error]
    labels = {StatusCode.of(member).label() for member in members}
    options = subprocess.run(
        [sys.executable, "-m", "sgx_quote_helper", "doctor", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wrong = []
    for number, quotes in rows:
        for quote in quotes:
            if quote in CHECKS or quote in labels or quote.startswith("/"):
                continue
            if quote.startswith("--"):
                ok = quote.split()[0] in options
            else:
                fragments = _fragments(quote)
                ok = bool(fragments) and all(fragment in source for fragment in fragments)
            if not ok:
                wrong.append(f"#{number}: {quote}")
    assert not wrong, f"docs/kubernetes.md quotes doctor output that does not exist: {wrong}"
