"""``python -m fuzz.soak --quotes N``: a long run of valid quotes with faults mixed in.

Many quote clients (one connection per request, as Intel's client) and, every
``--fault-every`` quotes, one fault on its own connection: a disconnect in the
middle of a frame, a malformed or mutated frame, an oversized length header,
or a client that stalls after one byte. Pass criteria, checked here: every
quote succeeds and checks out (report data, one attestation key; a sample is
fully verified), the daemon is still running, and its RSS at the end is less
than 10% above the RSS after warm-up (a tenth of the run, at most 20,000
quotes). Prints the figures as JSON; exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import sys

from fuzz.network import run

MAX_RSS_GROWTH = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.soak", description=__doc__)
    parser.add_argument("--quotes", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--fault-every", type=int, default=2000)
    parser.add_argument("--verify-every", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    figures = run(
        quotes=args.quotes,
        quote_clients=args.clients,
        hostile_clients=0,
        fault_every=args.fault_every,
        verify_every=args.verify_every,
        seed=args.seed,
    )
    data = figures.as_dict()
    growth = figures.rss_end_kb / figures.rss_warm_kb - 1 if figures.rss_warm_kb else 0.0
    data["passed"] = (
        not figures.failures and figures.daemon_exit is None and growth < MAX_RSS_GROWTH
    )
    print(json.dumps(data, indent=2))
    return 0 if data["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
