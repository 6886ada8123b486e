"""``python -m fuzz [TARGET ...] [--runs N] [--engine atheris|mutate]``.

Runs each target (default: all) for ``--runs`` inputs, seeded from real
messages, and prints one line per target: inputs executed, time, findings.
With atheris (``pip install -e '.[fuzz]'``; ``make fuzz``) the run is
coverage-guided and its corpus grows in ``.fuzz/<target>/`` (gitignored), so a
later run continues from it; a finding stops that target and leaves
``.fuzz/crash-<target>-*`` with the input. Exit status 1 if anything was found.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fuzz.engine import run_mutations
from fuzz.targets import TARGETS

CORPUS_ROOT = Path(__file__).resolve().parent.parent / ".fuzz"


def _atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _atheris_child(name: str, runs: int, timeout: int, max_seconds: int) -> None:
    """Run in a child process: libFuzzer owns the process and exits when done."""
    import atheris

    target = TARGETS[name]
    corpus = CORPUS_ROOT / name
    corpus.mkdir(parents=True, exist_ok=True)
    # Instrument the project's modules only (all of Python would take minutes):
    # they are imported lazily by the seeds, which run the same code paths.
    with atheris.instrument_imports(include=["sgx_quote_helper"]):
        seeds = target.seeds()
        target.run(seeds[0])
    for index, seed in enumerate(seeds):
        (corpus / f"seed-{index}").write_bytes(seed)
    argv = [
        sys.argv[0],
        f"-runs={runs}",
        f"-timeout={timeout}",
        f"-max_total_time={max_seconds}",
        "-rss_limit_mb=4096",
        f"-max_len={target.max_len}",
        f"-artifact_prefix={CORPUS_ROOT}/crash-{name}-",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(argv, target.run)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(TARGETS))
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    parser.add_argument("--timeout", type=int, default=10, help="seconds per input (atheris)")
    parser.add_argument(
        "--max-seconds", type=int, default=0, help="stop a target after this long (0: no limit)"
    )
    parser.add_argument("--seed", type=int, default=0, help="mutation engine seed")
    parser.add_argument("--atheris-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.atheris_child:
        _atheris_child(args.atheris_child, args.runs, args.timeout, args.max_seconds)
        return 0
    names = args.targets or list(TARGETS)
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _atheris_available() else "mutate"
    failed = False
    for name in names:
        started = time.monotonic()
        if engine == "atheris":
            command = [sys.executable, "-m", "fuzz", "--atheris-child", name]
            command += ["--runs", str(args.runs), "--timeout", str(args.timeout)]
            command += ["--max-seconds", str(args.max_seconds)]
            result = subprocess.run(command, env={**os.environ, "PYTHONHASHSEED": "0"})
            elapsed = time.monotonic() - started
            status = "ok" if result.returncode == 0 else f"FINDING (exit {result.returncode})"
            print(f"fuzz {name}: atheris, up to {args.runs} runs, {elapsed:.0f} s: {status}")
            failed |= result.returncode != 0
            continue
        report = run_mutations(TARGETS[name], args.runs, seed=args.seed)
        print(
            f"fuzz {name}: mutate, {report.executed} inputs in {report.seconds:.0f} s "
            f"(slowest {report.slowest * 1000:.0f} ms): {len(report.findings)} findings"
        )
        for finding in report.findings[:3]:
            print(f"  input {finding.data[:64].hex()}...\n{finding.error}")
        failed |= bool(report.findings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
