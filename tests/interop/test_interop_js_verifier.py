"""A second, independent verifier accepts the simulated platform's quotes.

``@phala/dcap-qvl`` (npm, pure JavaScript, dcap-quote.md section 11.3) shares
no code with the Python ``dcap-qvl`` the project uses as its engine: it parses
the quote, re-serializes the signed collateral with ``JSON.stringify`` and
hashes a fixed 96-byte QE auth buffer. It fetches the collateral from the
running simulated PCCS (``getCollateral``) and verifies with the simulated root
passed explicitly (``QuoteVerifier.newWithRootCa``).

The package is installed once from the npm registry into the virtual
environment (``.venv/interop-node``). Without ``node``/``npm`` on the machine
the test is skipped with that reason (never silently).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sgx_quote_helper._cli import main
from sgx_quote_helper.backends import SimBackend
from sgx_quote_helper.pcs import serve_in_thread
from sgx_quote_helper.platform import Platform, demo_app_identity
from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID

PACKAGE = "@phala/dcap-qvl@0.3.9"

_SCRIPT = """
const qvl = require('@phala/dcap-qvl');
const fs = require('fs');
(async () => {
  const [quotePath, rootPath, url, now] = process.argv.slice(2);
  const quote = fs.readFileSync(quotePath);
  const collateral = await qvl.getCollateral(url, quote);
  const verifier = qvl.QuoteVerifier.newWithRootCa(fs.readFileSync(rootPath));
  const report = await verifier.verify(quote, collateral, Number(now));
  console.log(JSON.stringify({status: report.status, advisory_ids: report.advisory_ids}));
})().catch((e) => { console.log(JSON.stringify({error: String(e && e.message || e)})); });
"""


@pytest.fixture(scope="module")
def node_verifier() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the JavaScript verifier cannot run")
    prefix = Path(sys.prefix) / "interop-node"
    if not (prefix / "node_modules" / "@phala" / "dcap-qvl").is_dir():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PACKAGE],
            check=True,
            capture_output=True,
            timeout=300,
        )
    script = prefix / "verify.js"
    script.write_text(_SCRIPT)
    return script


def _verify_with_node(script: Path, quote: Path, root: Path, url: str) -> dict[str, object]:
    now = int(__import__("time").time())
    result = subprocess.run(
        ["node", str(script), str(quote), str(root), url, str(now)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=script.parent,
        env={**os.environ, "NODE_PATH": str(script.parent / "node_modules")},
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return document


def _quote(sim: Path, state: Path, qe_svn: int, pck_source: object) -> bytes:
    backend = SimBackend(sim / "platform", state, pck_source=pck_source, qe_svn=qe_svn)  # type: ignore[arg-type]
    key_id = DEFAULT_ECDSA_ATT_KEY_ID.base
    target = backend.init_quote(key_id).target_info
    cpu = Platform.load(sim / "platform", need_provisioning=False).cpu()
    report = cpu.ereport(demo_app_identity(), target, b"interop".ljust(64, b"\0"))
    return backend.get_quote(report.to_bytes(), key_id, None).quote


def test_javascript_verifier_accepts_simulated_quotes(node_verifier: Path, tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    assert main(["sim", "init", str(sim)]) == 0
    with serve_in_thread(sim) as service:
        source = service.manufacturer.issue_pck_certificate
        quote_path = tmp_path / "quote.bin"
        quote_path.write_bytes(_quote(sim, tmp_path / "qe10", 10, source))
        root = sim / "pcs" / "root-ca.der"
        assert _verify_with_node(node_verifier, quote_path, root, service.url) == {
            "status": "UpToDate",
            "advisory_ids": [],
        }

        # After a TCB recovery the same independent verifier sees the old QE
        # as OutOfDate, and a quote from the updated QE as UpToDate.
        assert main(["sim", "tcb-recovery", str(sim), "--qe-svn", "11"]) == 0
        outdated = _verify_with_node(node_verifier, quote_path, root, service.url)
        assert outdated["status"] == "OutOfDate"
        quote_path.write_bytes(_quote(sim, tmp_path / "qe11", 11, source))
        updated = _verify_with_node(node_verifier, quote_path, root, service.url)
        assert updated["status"] == "UpToDate"

        # A flipped byte of the ISV report body is refused.
        tampered = bytearray(quote_path.read_bytes())
        tampered[48 + 320] ^= 0x01
        quote_path.write_bytes(bytes(tampered))
        refused = _verify_with_node(node_verifier, quote_path, root, service.url)
        assert "error" in refused
