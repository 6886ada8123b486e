"""The one atomic-write helper (``sgx_quote_helper._fs``), used by every layer that persists."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sgx_quote_helper._fs import atomic_write


def test_atomic_write_replaces_whole_file_with_exact_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"old contents that are longer")
    old_umask = os.umask(0o077)  # the mode must not depend on the umask
    try:
        atomic_write(target, b"new", mode=0o644)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]  # no temp left


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(target, "not bytes", mode=0o600)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]
