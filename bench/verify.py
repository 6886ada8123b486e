"""``python -m bench.verify``: only the verification part of ``make bench``, repeatable.

Makes a simulated manufacturer and platform (``sim init``) and starts its PCCS
in a temporary directory, then runs ``bench.harness.verification`` (the
function ``make bench`` uses for ``verify_qps``/``verify_ratio``) ``--runs``
times and prints each run with the load average around it, and the median.

``--profile N`` instead runs N warm ``Verifier.verify`` calls under cProfile and
prints where the time goes; ``--loop N`` runs N warm calls of ``--side``
(``ours`` or ``engine``) and nothing else, for an external profiler, e.g.
``valgrind --tool=callgrind .venv/bin/python -m bench.verify --loop 300``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import _pccs, verification, verification_inputs


def _loop(work: Path, url: str, count: int, side: str) -> None:
    import dcap_qvl

    from sgx_quote_helper.verify import UnsafeNoAppraisal, Verifier

    quote, collateral, anchor = verification_inputs(work, url)
    root = anchor.certificate_der
    policy = UnsafeNoAppraisal()
    with Verifier(anchor, pccs=url) as verifier:
        verifier.verify(quote, policy=policy)
        start = time.process_time()
        if side == "ours":
            for _ in range(count):
                verifier.verify(quote, policy=policy)
        else:
            for _ in range(count):
                dcap_qvl.verify_with_root_ca(quote, collateral, root, int(time.time()))
        spent = time.process_time() - start
    print(f"{side}: {count} verifications, {spent / count * 1e6:.1f} µs CPU each")


def _profile(work: Path, url: str, count: int) -> None:
    from sgx_quote_helper.verify import UnsafeNoAppraisal, Verifier

    quote, _, anchor = verification_inputs(work, url)
    policy = UnsafeNoAppraisal()
    with Verifier(anchor, pccs=url) as verifier:
        verifier.verify(quote, policy=policy)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            verifier.verify(quote, policy=policy)
        profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    print(text.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="measurements (default 3)")
    parser.add_argument("--seconds", type=float, default=6.0, help="per run (as make bench)")
    parser.add_argument("--profile", type=int, metavar="N", help="cProfile N verifications")
    parser.add_argument("--loop", type=int, metavar="N", help="N verifications, nothing else")
    parser.add_argument("--side", choices=("ours", "engine"), default="ours")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sqh-bench-verify-"))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            from sgx_quote_helper._cli import main as cli_main

            cli_main(["sim", "init", str(work / "sim")])
        with _pccs(work) as url:
            if args.profile:
                _profile(work, url, args.profile)
                return 0
            if args.loop:
                _loop(work, url, args.loop, args.side)
                return 0
            runs = []
            for _ in range(args.runs):
                before = os.getloadavg()[0]
                row = verification(work, url, args.seconds)
                row["load_1min"] = [round(before, 2), round(os.getloadavg()[0], 2)]
                print(json.dumps(row), flush=True)
                runs.append(row)
            ratios = [row["verify_ratio"] for row in runs]
            print(json.dumps({"median_verify_ratio": statistics.median(ratios), "runs": ratios}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
