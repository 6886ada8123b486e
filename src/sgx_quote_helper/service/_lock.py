"""Exclusive locks that keep a second daemon off a state directory or socket.

Two daemons on one state directory would race on the attestation key (both
generate one; the key served is not the key persisted), and two on one socket
path would unlink each other's socket. Each daemon therefore holds an
``flock`` on a lock file for as long as it runs; the kernel releases it when
the process exits, however it exits, so a crash never leaves a stale lock.
The lock file holds the owner's pid, for the message the second daemon gives.
Lock files are never removed: unlinking a locked file would let a third
daemon lock a new file of the same name while the first still runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from sgx_quote_helper.errors import SgxQuoteHelperError


class LockHeldError(SgxQuoteHelperError):
    """Another process holds the lock."""


class ExclusiveLock:
    """An ``flock(LOCK_EX)`` on ``path``, taken without waiting."""

    def __init__(self, path: Path, what: str, remedy: str) -> None:
        self.path = path
        self._what = what
        self._remedy = remedy
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`LockHeldError` naming the holder's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                pid = int(os.pread(fd, 32, 0).decode().strip())
                holder = f" (pid {pid})"
            os.close(fd)
            raise LockHeldError(
                f"another quote helper{holder} is using {self._what}; {self._remedy}"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None
