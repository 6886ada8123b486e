"""How many CPUs this process may really use: its affinity and its cgroup's CPU limit.

``os.cpu_count()`` and the affinity mask see every core of the node, but a
container with a CPU limit (Kubernetes ``resources.limits.cpu``) is throttled
to that many cores' worth of time by the cgroup's CFS quota. A daemon that
starts one worker per core must count the quota too, or a pod limited to one
CPU would run a worker per node core, each throttled, each taking memory.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(*, root: Path = CGROUP_ROOT, proc_cgroup: Path = _PROC_CGROUP) -> int:
    """CPUs in the affinity mask, lowered to the cgroup CPU quota rounded up (at least 1)."""
    cpus = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_limit(root=root, proc_cgroup=proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cgroup_cpu_limit(*, root: Path = CGROUP_ROOT, proc_cgroup: Path = _PROC_CGROUP) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup and its ancestors; None if none.

    cgroup v2: ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD") in the process's
    cgroup directory and each parent up to the root. cgroup v1: the ``cpu``
    controller's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: no quota).
    Anything unreadable or malformed counts as no limit.
    """
    limits: list[float] = []
    for directory in _cgroup_dirs(root, proc_cgroup):
        limit = _v2_limit(directory) if (directory / "cpu.max").exists() else _v1_limit(directory)
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """The process's cgroup directories (v2 unified, v1 cpu controller), innermost first."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    found: list[Path] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base = root
        elif "cpu" in controllers.split(","):
            base = next(
                (root / name for name in (controllers, "cpu") if (root / name).is_dir()), root
            )
        else:
            continue
        directory = base / path.lstrip("/")
        # Inside a container's cgroup namespace the path is "/", or names a
        # directory that is not mounted there: walk up to what exists.
        while directory != base and not directory.is_dir():
            directory = directory.parent
        while True:
            found.append(directory)
            if directory == base:
                break
            directory = directory.parent
    if not found and (root / "cpu.max").exists():
        found.append(root)
    return found


def _v2_limit(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period
