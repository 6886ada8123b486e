"""The file-system facts behind the socket check: permissions by mode bits, mount points.

Pure where it can be: :func:`may_access` decides from ``st_mode``/owner and an
:class:`Identity`, the way the kernel's DAC check does, so it can be tested as
any user; ``os.access`` cannot stand in for it because root passes every test.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

#: Permission bits asked for (as in ``rwx``).
READ, WRITE, SEARCH = 4, 2, 1

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Identity:
    """Who connects: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()

    @classmethod
    def current(cls) -> Identity:
        return cls(os.getuid(), os.getgid(), frozenset(os.getgroups()))

    @property
    def all_groups(self) -> frozenset[int]:
        return self.groups | {self.gid}

    def describe(self) -> str:
        groups = ",".join(str(g) for g in sorted(self.all_groups))
        return f"uid {self.uid}, gid {self.gid}, groups [{groups}]"

    def to_dict(self) -> dict[str, object]:
        return {"uid": self.uid, "gid": self.gid, "groups": sorted(self.all_groups)}


def permission_class(st_uid: int, st_gid: int, who: Identity) -> str:
    """Which rwx triplet applies to ``who``: ``owner``, ``group`` or ``other``.

    The kernel uses the owner bits for the owner even when group or other bits
    allow more, and the group bits for a member of the file's group.
    """
    if who.uid == st_uid:
        return "owner"
    if st_gid in who.all_groups:
        return "group"
    return "other"


def may_access(st_mode: int, st_uid: int, st_gid: int, who: Identity, want: int) -> bool:
    """Whether ``who`` has the ``want`` bits on a file with this mode and owner.

    uid 0 passes (``CAP_DAC_OVERRIDE``), except that searching a non-directory
    needs some ``x`` bit, which does not arise for the sockets and directories
    checked here.
    """
    if who.uid == 0:
        return True
    shift = {"owner": 6, "group": 3, "other": 0}[permission_class(st_uid, st_gid, who)]
    bits = (st_mode >> shift) & 0o7
    return bits & want == want


def ancestors(path: str) -> list[str]:
    """The directories above ``path``, outermost first (``/``, ``/var``, ``/var/run``...)."""
    parents = list(PurePosixPath(os.path.abspath(path)).parents)
    return [str(p) for p in reversed(parents)]


@dataclass(frozen=True)
class Blocked:
    """A directory above the socket that ``who`` may not search."""

    directory: str
    mode: int
    uid: int
    gid: int


def first_unsearchable(path: str, who: Identity) -> Blocked | None:
    """The outermost directory above ``path`` that ``who`` cannot search (``x``), if any.

    Stats each directory as this process (which may see more than ``who``);
    directories that do not exist end the walk.
    """
    for directory in ancestors(path):
        try:
            info = os.stat(directory)
        except OSError:
            return None
        if not may_access(info.st_mode, info.st_uid, info.st_gid, who, SEARCH):
            return Blocked(directory, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    return None


def file_kind(st_mode: int) -> str:
    """``socket``, ``directory``, ``regular file``... for messages."""
    for test, name in (
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISREG, "regular file"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(st_mode):
            return name
    return "unknown file type"


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo (proc(5)).
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mount_points(text: str) -> frozenset[str]:
    """The mount points listed in ``/proc/<pid>/mountinfo`` text (field 5 of each line)."""
    points: set[str] = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) >= 5:
            points.add(_unescape(fields[4]))
    return frozenset(points)


def read_mount_points(path: str = MOUNTINFO) -> frozenset[str] | None:
    """This process's mount points, or ``None`` where ``/proc`` is not available."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return parse_mount_points(handle.read())
    except OSError:
        return None


def sockets_in(directory: str, limit: int = 10) -> list[str]:
    """Names of the sockets in ``directory`` (sorted, at most ``limit``)."""
    try:
        entries: Iterable[os.DirEntry[str]] = list(os.scandir(directory))
    except OSError:
        return []
    names: list[str] = []
    for entry in entries:
        try:
            if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                names.append(entry.name)
        except OSError:
            continue
    return sorted(names)[:limit]
