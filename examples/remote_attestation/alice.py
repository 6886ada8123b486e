"""The remote attestation sample's alice: quote, verify bob, exchange encrypted messages.

A thin launcher: the code is `sgx_quote_helper.samples.remote_attestation`
(installed with the package); this file only names alice's enclave manifest and
the one it expects from bob. Every other option is passed through; see README.md.
"""

import sys
from pathlib import Path

from sgx_quote_helper.samples.remote_attestation import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    manifests = ["--manifest", str(HERE / "alice.toml"), "--peer-manifest", str(HERE / "bob.toml")]
    raise SystemExit(main([*manifests, *sys.argv[1:]]))
