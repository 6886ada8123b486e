"""``sgx-quote-helper demo``: out-of-process attestation and the update story, end to end.

The orchestration is the package :mod:`sgx_quote_helper._demo`; this module prints it.
"""

from __future__ import annotations

import argparse
import json
import sys

from sgx_quote_helper._demo import STEPS, DemoReport, StepOutcome, run_demo


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="show out-of-process attestation and a TCB recovery, end to end (simulated)",
        description="In a temporary directory, with loopback ports and nothing to configure: a "
        "simulated platform, the PCCS and the quote helper daemon; two application enclaves "
        "that attest each other through the daemon; a TCB recovery that makes in-process "
        "applications with an old QE OutOfDate; a daemon update after which the unchanged "
        "applications verify UpToDate. Everything started is stopped at the end.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document with every step")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, quotes) for a look"
    )
    parser.set_defaults(func=_demo)


def _print_step(outcome: StepOutcome) -> None:
    number = [name for name, _, _ in STEPS].index(outcome.name) + 1
    mark = "" if outcome.ok else "  FAILED"
    print(f"\n[{number}/{len(STEPS)}] {outcome.title}  ({outcome.seconds:.1f} s){mark}")
    for line in outcome.lines:
        print(f"    {line}")
    sys.stdout.flush()


def _print_summary(report: DemoReport) -> None:
    print()
    if report.ok:
        outcomes = report.outcomes
        print(f"demo passed in {report.seconds:.1f} s (simulated SGX; nothing here is Intel's):")
        print(
            f"  - out of process, before the recovery:        "
            f"{outcomes.get('out_of_process_before_recovery')}"
        )
        print(
            f"  - in process with the old QE, after it:       "
            f"{outcomes.get('in_process_old_qe_after_recovery')}"
        )
        print(
            f"  - out of process after one daemon update:     "
            f"{outcomes.get('out_of_process_after_daemon_update')} (no application rebuilt)"
        )
        print("  - provisioning secret: only in the daemon; one QE3+PCE for all applications")
    else:
        print(f"demo FAILED at step {report.failed_step} after {report.seconds:.1f} s:")
        print(f"  {report.error}")
    if report.work_dir:
        print(f"work directory kept: {report.work_dir}")


def _demo(args: argparse.Namespace) -> int:
    if args.json:
        report = run_demo(keep=args.keep)
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("sgx-quote-helper demo: out-of-process SGX attestation, end to end (simulated)")
        report = run_demo(on_step=_print_step, keep=args.keep)
        _print_summary(report)
    return 0 if report.ok else 1
