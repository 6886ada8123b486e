"""Two ways to run a target: atheris (coverage-guided) or a seeded mutation loop.

``atheris`` (libFuzzer for Python, the ``fuzz`` extra) keeps the inputs that
reach new code in a corpus directory and mutates those: that is ``make fuzz``.
The mutation loop needs nothing installed, is deterministic for a seed, and
is what ``make test`` runs for a bounded number of inputs: it mutates the
real seed messages (bit flips, byte runs, truncation, insertion, splicing,
interesting integers at random offsets).
"""

from __future__ import annotations

import random
import struct
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field

from fuzz.targets import Target

_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


@dataclass
class Finding:
    data: bytes
    error: str


@dataclass
class Report:
    target: str
    executed: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    findings: list[Finding] = field(default_factory=list)


def mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    """One to four stacked mutations of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(9)
        if choice == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and buf:  # set a byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice == 2 and buf:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif choice == 3:  # insert random bytes
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        elif choice == 4 and len(buf) > 1:  # delete a run
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 32)]
        elif choice == 5 and len(buf) >= 4:  # an interesting integer
            i = rng.randrange(len(buf) - 3)
            value = rng.choice(_INTERESTING)
            fmt = rng.choice(("<I", ">I", "<H", ">H", "B"))
            packed = struct.pack(
                fmt, value & {4: 0xFFFFFFFF, 2: 0xFFFF, 1: 0xFF}[struct.calcsize(fmt)]
            )
            buf[i : i + len(packed)] = packed
        elif choice == 6 and seeds:  # splice with another seed
            other = rng.choice(seeds)
            cut = rng.randrange(len(buf) + 1)
            buf = buf[:cut] + other[rng.randrange(len(other) + 1) :]
        elif choice == 7 and buf:  # duplicate a run
            i = rng.randrange(len(buf))
            buf[i:i] = buf[i : i + rng.randint(1, 64)]
        else:  # fresh random bytes
            buf = bytearray(rng.randbytes(rng.randint(0, 64)))
    return bytes(buf)


def run_mutations(target: Target, runs: int, *, seed: int = 0) -> Report:
    """``runs`` inputs: the seeds first, then mutations of them."""
    rng = random.Random(seed)
    seeds = list(target.seeds())
    report = Report(target.name)
    started = time.perf_counter()
    for index in range(runs):
        data = seeds[index] if index < len(seeds) else mutate(rng, rng.choice(seeds), seeds)
        before = time.perf_counter()
        try:
            target.run(data)
        except Exception:  # the property: only our own errors, caught by the target
            report.findings.append(Finding(data, traceback.format_exc(limit=6)))
        report.slowest = max(report.slowest, time.perf_counter() - before)
        report.executed += 1
    report.seconds = time.perf_counter() - started
    return report
