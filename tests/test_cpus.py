"""Usable CPUs: the affinity mask lowered to the cgroup's CPU quota (v1 and v2)."""

from __future__ import annotations

import os
from pathlib import Path

from sgx_quote_helper._cpus import cgroup_cpu_limit, usable_cpus


def _v2(tmp_path: Path, path: str, limits: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for directory, text in limits.items():
        (root / directory).mkdir(parents=True, exist_ok=True)
        (root / directory / "cpu.max").write_text(text + "\n")
    (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(f"0::{path}\n")
    return root, proc


def test_v2_quota_of_the_process_cgroup(tmp_path: Path) -> None:
    root, proc = _v2(
        tmp_path, "/kubepods/pod1", {"": "max 100000", "kubepods/pod1": "150000 100000"}
    )
    assert cgroup_cpu_limit(root=root, proc_cgroup=proc) == 1.5
    assert usable_cpus(root=root, proc_cgroup=proc) == min(2, len(os.sched_getaffinity(0)))


def test_v2_tightest_ancestor_wins(tmp_path: Path) -> None:
    root, proc = _v2(
        tmp_path, "/a/b", {"": "max 100000", "a": "50000 100000", "a/b": "400000 100000"}
    )
    assert cgroup_cpu_limit(root=root, proc_cgroup=proc) == 0.5
    assert usable_cpus(root=root, proc_cgroup=proc) == 1


def test_v2_no_quota_and_namespaced_path(tmp_path: Path) -> None:
    root, proc = _v2(tmp_path, "/", {"": "max 100000"})
    assert cgroup_cpu_limit(root=root, proc_cgroup=proc) is None
    assert usable_cpus(root=root, proc_cgroup=proc) == len(os.sched_getaffinity(0))
    # A path from outside the container's cgroup namespace that is not mounted here.
    proc.write_text("0::/elsewhere/not/mounted\n")
    (root / "cpu.max").write_text("200000 100000\n")
    assert cgroup_cpu_limit(root=root, proc_cgroup=proc) == 2.0


def test_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    cpu = root / "cpu,cpuacct" / "docker" / "abc"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("250000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cgroup_cpu_limit(root=root, proc_cgroup=proc) == 2.5
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(root=root, proc_cgroup=proc) is None


def test_unreadable_or_malformed_counts_as_no_limit(tmp_path: Path) -> None:
    root, proc = _v2(tmp_path, "/x", {"x": "garbage"})
    assert cgroup_cpu_limit(root=root, proc_cgroup=proc) is None
    assert cgroup_cpu_limit(root=root, proc_cgroup=tmp_path / "missing") is None
    assert usable_cpus(root=root, proc_cgroup=tmp_path / "missing") >= 1
