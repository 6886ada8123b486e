"""Atomic, durable file writes with an explicit mode.

A reader must never see a half-written secret or sealed key, and a crash must
leave either the old or the new file: write a temporary file in the same
directory (so the rename stays on one file system), set its mode and group
*before* any secret byte is written, fsync it, rename it over the target, then
fsync the directory so that the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


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
