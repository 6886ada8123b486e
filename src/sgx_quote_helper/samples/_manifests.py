"""The two sample applications' enclave manifests (``docs/enclave-manifest.md``).

They live here so that the installed ``sgx-quote-helper demo`` has them; the
copies in ``examples/remote_attestation/`` are the same text (a test keeps them
equal). Both applications are signed by one team (same ``signer`` seed, so the
same MRSIGNER) and differ in code (so in MRENCLAVE).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from sgx_quote_helper.platform import EnclaveIdentity, parse_manifest

ALICE_MANIFEST = """\
# Remote attestation sample: the first application enclave (simulated).
# Its MRENCLAVE is derived from `code` and the attributes; its MRSIGNER from `signer`.
name = "ra-sample-alice"
code = { text = "sgx-quote-helper remote attestation sample: alice v1" }
signer = { seed = "sgx-quote-helper remote attestation sample signer" }
isv_prod_id = 7
isv_svn = 1
attributes = ["MODE64BIT"]
"""

BOB_MANIFEST = """\
# Remote attestation sample: the second application enclave (simulated).
# Same signer as alice (same MRSIGNER), other code (other MRENCLAVE).
name = "ra-sample-bob"
code = { text = "sgx-quote-helper remote attestation sample: bob v1" }
signer = { seed = "sgx-quote-helper remote attestation sample signer" }
isv_prod_id = 7
isv_svn = 1
attributes = ["MODE64BIT"]
"""

#: File name -> manifest text, as in ``examples/remote_attestation/``.
MANIFESTS = MappingProxyType({"alice.toml": ALICE_MANIFEST, "bob.toml": BOB_MANIFEST})


def sample_identity(file_name: str) -> EnclaveIdentity:
    """The identity a bundled manifest (``alice.toml`` or ``bob.toml``) derives."""
    return parse_manifest(MANIFESTS[file_name], base_dir=Path("."), source=file_name)


def write_manifests(directory: Path) -> dict[str, Path]:
    """Write both manifests into ``directory``; returns file name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for file_name, text in MANIFESTS.items():
        path = directory / file_name
        path.write_text(text, encoding="utf-8")
        paths[file_name] = path
    return paths
