"""The one atomic-write helper (``sgx_quote_helper._fs``), used by every layer that persists."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sgx_quote_helper._fs import (
    InputTooLargeError,
    atomic_write,
    open_regular_limited,
    read_limited,
    read_stream_limited,
)
from sgx_quote_helper.errors import UsageError


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


def test_read_limited_returns_a_file_of_exactly_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "input"
    path.write_bytes(b"x" * 16)
    assert read_limited(path, 16, "sixteen bytes") == b"x" * 16


def test_read_limited_refuses_one_byte_more_naming_file_cap_and_contents(
    tmp_path: Path,
) -> None:
    path = tmp_path / "input"
    path.write_bytes(b"x" * 17)
    with pytest.raises(InputTooLargeError) as caught:
        read_limited(path, 16, "a quote (raw, hex or base64)")
    assert isinstance(caught.value, UsageError)  # exits 2 from the CLI
    text = caught.value.diagnostics()
    assert f"{path} is larger than 16 bytes" in text
    assert "a quote (raw, hex or base64)" in text
    # Caps in whole mebibytes are written as such.
    with pytest.raises(InputTooLargeError, match="stdin is larger than 1 MiB"):
        read_stream_limited(_Endless(), 1 << 20, name="stdin", what="TOML")  # type: ignore[arg-type]


class _Endless:
    """A stream without end (``/dev/zero``, a FIFO whose writer never stops)."""

    def __init__(self) -> None:
        self.requested: list[int] = []

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise AssertionError("an unbounded read of an endless stream")
        self.requested.append(size)
        return bytes(size)


def test_an_endless_stream_is_read_only_to_the_cap_plus_one() -> None:
    stream = _Endless()
    with pytest.raises(InputTooLargeError, match="stdin is larger than 100 bytes"):
        read_stream_limited(stream, 100, name="stdin", what="collateral")  # type: ignore[arg-type]
    assert sum(stream.requested) == 101


def test_dev_zero_is_refused() -> None:
    with pytest.raises(InputTooLargeError, match="/dev/zero is larger than 4096 bytes"):
        read_limited("/dev/zero", 4096, "a policy")


def test_open_regular_limited_gives_the_size_and_refuses_devices_and_fifos(
    tmp_path: Path,
) -> None:
    path = tmp_path / "code"
    path.write_bytes(b"abc")
    with open_regular_limited(path, 3, "code") as (handle, size):
        assert size == 3
        assert handle.read() == b"abc"
    with (
        pytest.raises(InputTooLargeError, match="larger than 2 bytes"),
        open_regular_limited(path, 2, "code"),
    ):
        pass
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Refused at once: opening the FIFO does not wait for a writer that never comes.
    for special in ("/dev/zero", fifo, tmp_path):
        with (
            pytest.raises(UsageError, match="is not a regular file; code must be one"),
            open_regular_limited(special, 1 << 30, "code"),
        ):
            pass
