"""One fresh application process's first quote, in or out of process.

``python -m bench._first_quote inproc|outproc --platform DIR --where PATH``
imports the client library (interpreter and import time are not counted),
then times from its first call to the finished quote: choosing the quoter,
the QE's target info, the enclave's EREPORT (simulated) and the quote. In
process that includes loading the QE3 and PCE and certifying a new attestation
key (``--where`` is a fresh state directory); out of process the daemon on
socket ``--where`` has done that already. Prints the milliseconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sgx_quote_helper import client
from sgx_quote_helper.client import Quoter
from sgx_quote_helper.platform import Platform, demo_app_identity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._first_quote")
    parser.add_argument("mode", choices=("inproc", "outproc"))
    parser.add_argument("--platform", required=True, type=Path)
    parser.add_argument("--where", required=True, type=Path)
    args = parser.parse_args(argv)
    cpu = Platform.load(args.platform, need_provisioning=False).cpu()  # the app's own CPU
    began = time.perf_counter()
    quoter: Quoter
    if args.mode == "inproc":
        quoter = client.in_process(args.platform, state_dir=args.where)
    else:
        quoter = client.out_of_process(args.where)
    target = quoter.get_target_info()
    report = cpu.ereport(demo_app_identity(), target, b"first".ljust(64, b"\0"))
    quote = quoter.get_quote(report)
    elapsed = time.perf_counter() - began
    if len(quote) < 1000:
        raise SystemExit(f"a {len(quote)}-byte quote is not a quote")
    print(round(elapsed * 1e3, 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
