"""File helpers: bounded reads of user-named files, and atomic, durable writes.

Reads: every file a user names (a quote, collateral, a policy, a config, a
manifest, a key) is read with :func:`read_limited`, which reads at most its
cap plus one byte, so ``/dev/zero``, an endless FIFO or a huge file cannot
exhaust memory, and refuses a larger input with a :class:`InputTooLargeError`
(a usage error) that names the file, the cap and what the file should hold.
Each reader declares its cap beside its format (``MAX_..._SIZE``).

Writes: a reader must never see a half-written secret or sealed key, and a
crash must leave either the old or the new file: write a temporary file in the
same directory (so the rename stays on one file system), set its mode and group
*before* any secret byte is written, fsync it, rename it over the target, then
fsync the directory so that the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sgx_quote_helper.errors import UsageError

#: A mebibyte, the unit the input caps are written in.
MiB = 1 << 20


class InputTooLargeError(UsageError):
    """A file given to a command is larger than anything of its kind can be."""


def _size_text(size: int) -> str:
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    return f"{size} bytes"


def too_large(name: str, limit: int, what: str) -> InputTooLargeError:
    """The error for ``name`` exceeding ``limit`` bytes; ``what`` says what it should be."""
    return InputTooLargeError(
        f"{name} is larger than {_size_text(limit)}, the most accepted for {what}",
        hints=(f"that {name} is the right file: it should hold {what}",),
    )


def read_stream_limited(stream: BinaryIO, limit: int, *, name: str, what: str) -> bytes:
    """All of ``stream`` if it holds at most ``limit`` bytes; never reads more than limit + 1."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise too_large(name, limit, what)
    return data


def read_limited(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of ``path``, refused with :class:`InputTooLargeError` beyond ``limit``.

    ``what`` names what the file should hold ("a policy file (TOML)"), for the
    message. ``OSError`` (missing, unreadable, a directory) propagates: each
    caller says which of its inputs could not be read.
    """
    with open(path, "rb") as handle:
        return read_stream_limited(handle, limit, name=os.fspath(path), what=what)


def parse_toml(data: bytes | str) -> dict[str, Any]:
    """A TOML document a user wrote (a policy, a config, a manifest).

    Every way it can be unreadable is a :class:`ValueError` whose text says
    why: not UTF-8, a syntax error, or arrays and tables nested so deeply that
    the parser would exhaust the stack (``RecursionError`` otherwise).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return tomllib.loads(text)
    except RecursionError:
        raise ValueError("arrays or tables nested too deeply") from None


@contextlib.contextmanager
def open_regular_limited(
    path: str | os.PathLike[str], limit: int, what: str
) -> Iterator[tuple[BinaryIO, int]]:
    """Open a regular file of at most ``limit`` bytes to stream it: ``(handle, size)``.

    For inputs too large to hold in memory, whose size must be known before
    they are read (a length-prefixed hash). Devices and FIFOs are refused: their
    size is unknown until read. The reader must check that it read ``size``
    bytes, as the file may change meanwhile.
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer before it is refused.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise UsageError(f"{os.fspath(path)} is not a regular file; {what} must be one")
        if status.st_size > limit:
            raise too_large(os.fspath(path), limit, what)
        os.set_blocking(fd, True)
        handle = open(fd, "rb")  # noqa: SIM115 (closed below, after the yield)
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle, status.st_size


def fsync_directory(directory: Path) -> None:
    """Make a completed rename or creation in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int, gid: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets exactly ``mode``.

    ``gid`` (if given) becomes the file's group before the data is written.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never follow or reuse a file someone else placed there. Start at
    # 0600 so no other user can open the temp file before its final mode is set.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            if gid is not None:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, mode)  # explicit: the umask must not change it
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_directory(directory)


def make_directory(path: Path, mode: int) -> bool:
    """Create ``path`` (and missing parents) with exactly ``mode``; True if it was created.

    ``mkdir(mode=...)`` is masked by the umask (0777 under umask 000, 0700
    under 077, which would lock applications out of ``enclave.secret``), so the
    mode is set explicitly afterwards. An existing directory is left as it is:
    its owner chose its mode. Created parents get ``mode`` too.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent creator won
            directory.mkdir(mode=0o700)
            os.chmod(directory, mode)
    return bool(missing)
