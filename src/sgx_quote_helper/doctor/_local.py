"""Checks 1 and 2: ``SGX_AESM_ADDR`` and the mode it selects; the socket on disk."""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Mapping
from typing import Any

from sgx_quote_helper.client import (
    DEFAULT_SOCKET_PATH,
    ENV_VAR,
    SOCKET_MOUNT_ADVICE,
    Mode,
    ModeChoice,
    choice_from_environ,
)
from sgx_quote_helper.doctor._fs import (
    WRITE,
    Blocked,
    Identity,
    file_kind,
    first_unsearchable,
    may_access,
    permission_class,
    read_mount_points,
    sockets_in,
)
from sgx_quote_helper.doctor._result import CheckResult, CheckStatus, codes_of
from sgx_quote_helper.sgx import Quote3Error, SgxStatus

_LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
_QUOTE_EX_LIBRARY = "libsgx_quote_ex.so.1"
_SGX_DEVICES = ("/dev/sgx_enclave", "/dev/sgx_provision")
_CONTAINER_MARKS = ("/.dockerenv", "/run/.containerenv")


def find_quote_ex_library(environ: Mapping[str, str]) -> str | None:
    """Where ``libsgx_quote_ex.so.1`` is, in ``LD_LIBRARY_PATH`` or the usual directories."""
    directories = [d for d in environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    directories += list(_LIBRARY_DIRS)
    for directory in directories:
        for candidate in glob.glob(os.path.join(glob.escape(directory), _QUOTE_EX_LIBRARY)):
            return candidate
    return None


def check_environment(
    environ: Mapping[str, str], socket_override: str | None = None
) -> tuple[CheckResult, str]:
    """``SGX_AESM_ADDR``, the mode it selects, and the socket the next checks examine."""
    choice = choice_from_environ(environ)
    socket_path = socket_override or choice.socket_path or DEFAULT_SOCKET_PATH
    details = _environment_details(environ, choice, socket_override, socket_path)
    return _mode_verdict(choice, socket_path, details), socket_path


def _environment_details(
    environ: Mapping[str, str],
    choice: ModeChoice,
    socket_override: str | None,
    socket_path: str,
) -> dict[str, Any]:
    """What the environment says: the variable, the mode, the library, the devices."""
    library = find_quote_ex_library(environ)
    details: dict[str, Any] = {
        "variable": ENV_VAR,
        "value": choice.value,
        "mode": choice.mode.value,
        "mode_socket": choice.socket_path,
        "checked_socket": socket_path,
        "socket_from": "--socket" if socket_override else ENV_VAR,
        "intel_quote_ex_library": library,
        "devices": {device: os.path.exists(device) for device in _SGX_DEVICES},
    }
    notes: list[str] = []
    if socket_override and choice.socket_path and socket_override != choice.socket_path:
        notes.append(
            f"checking {socket_override} (--socket); applications here would use "
            f"{choice.socket_path}"
        )
    if choice.mode is Mode.OUT_OF_PROCESS and library is None:
        notes.append(
            f"{_QUOTE_EX_LIBRARY} was not found: applications that quote through Intel's DCAP "
            "library (Open Enclave, Gramine's DCAP path...) need it with SGX_AESM_ADDR set "
            "(libsgx-quote-ex package); this project's client does not"
        )
    details["notes"] = notes
    return details


def _mode_verdict(choice: ModeChoice, socket_path: str, details: dict[str, Any]) -> CheckResult:
    """In process (WARN), a value that is ignored or only we read (WARN), or the default."""
    name = "environment"
    if choice.mode is Mode.IN_PROCESS:
        provision = details["devices"]["/dev/sgx_provision"]
        return CheckResult.make(
            name,
            CheckStatus.WARN,
            f"{ENV_VAR} is not set: applications here quote in process (DCAP's default) "
            f"and need their own QE3/PCE and /dev/sgx_provision "
            f"({'present' if provision else 'absent'}); checking the quote helper socket "
            f"{socket_path} anyway",
            fix=[
                f"For out-of-process quoting through the quote helper set {ENV_VAR} "
                "(any value, e.g. 1: presence is the flag, read once when the quote "
                "library loads) and reach its socket; on Kubernetes the admission "
                "webhook or device plugin injects both.",
                SOCKET_MOUNT_ADVICE,
                "In process without /dev/sgx_provision, loading the PCE/QE3 fails with "
                "SGX_ERROR_SERVICE_INVALID_PRIVILEGE 0x4004 (DCAP 0xE035).",
            ],
            details=details,
        )
    value = choice.value or ""
    if choice.value_ignored:
        return CheckResult.make(
            name,
            CheckStatus.WARN,
            f"{ENV_VAR}={value!r}: out-of-process, but the value is not an absolute path "
            f"and is ignored; the socket is the default {DEFAULT_SOCKET_PATH}",
            fix=[
                f"Set {ENV_VAR}=1 for the default socket, or an absolute path "
                "(unix:/path/to/aesm.socket) to name another one for this project's "
                "client; relative paths are never used."
            ],
            details=details,
        )
    if choice.socket_path != DEFAULT_SOCKET_PATH:
        return CheckResult.make(
            name,
            CheckStatus.WARN,
            f"{ENV_VAR}={value!r}: out-of-process through {choice.socket_path}, a path only "
            f"this project's client reads; Intel's libsgx_quote_ex and DCAP ignore the "
            f"value and always connect to {DEFAULT_SOCKET_PATH}",
            fix=[
                f"If the application (or a library it loads) uses Intel's quote "
                f"libraries, make the quote helper reachable at {DEFAULT_SOCKET_PATH} too "
                "(serve --socket, or mount its directory there); otherwise keep this "
                "only for clients of this project."
            ],
            details=details,
        )
    return CheckResult.make(
        name,
        CheckStatus.PASS,
        f"{ENV_VAR}={value!r}: out-of-process through {choice.socket_path}, the path "
        "Intel's libraries use too",
        details=details,
    )


# ---------------------------------------------------------------------------
# 2. socket
# ---------------------------------------------------------------------------

_UNAVAILABLE = codes_of(SgxStatus.ERROR_SERVICE_UNAVAILABLE, Quote3Error.SERVICE_UNAVAILABLE)


def _is_container(environ: Mapping[str, str]) -> bool:
    return "KUBERNETES_SERVICE_HOST" in environ or any(
        os.path.exists(mark) for mark in _CONTAINER_MARKS
    )


def check_socket(
    path: str,
    who: Identity,
    *,
    mount_points: frozenset[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> CheckResult:
    """The socket file: exists, is a socket, its directory and mounts, connectable by ``who``.

    Connecting to a Unix socket needs write permission on the socket and search
    permission on every directory above it; the verdict is computed from the mode
    bits and owners for ``who`` (root passes), not with ``os.access``.
    """
    env = os.environ if environ is None else environ
    parent = os.path.dirname(os.path.abspath(path))
    mounts = read_mount_points() if mount_points is None else mount_points
    details: dict[str, Any] = {
        "path": path,
        "directory": parent,
        "identity": who.to_dict(),
        # mountinfo lists canonical paths (/var/run is usually a link to /run).
        "directory_is_mount": None if mounts is None else os.path.realpath(parent) in mounts,
        "socket_is_mount": None if mounts is None else os.path.realpath(path) in mounts,
    }
    # Only the standard directory is expected to come from the host.
    expect_host_mount = (
        os.path.realpath(parent) == os.path.realpath(os.path.dirname(DEFAULT_SOCKET_PATH))
        and _is_container(env)
        and details["directory_is_mount"] is False
    )
    blocked = first_unsearchable(path, who)
    if blocked is not None:
        return _unsearchable(path, who, blocked, details)
    try:
        info = os.stat(path)
    except OSError as exc:
        return _missing_socket(path, parent, exc, details, expect_host_mount=expect_host_mount)
    mode = stat.S_IMODE(info.st_mode)
    details.update(
        kind=file_kind(info.st_mode), mode=f"{mode:04o}", owner=info.st_uid, group=info.st_gid
    )
    if not stat.S_ISSOCK(info.st_mode):
        return _not_a_socket(path, info, details)
    refused = _may_not_connect(path, info, who, details)
    if refused is not None:
        return refused
    return _socket_usable(path, info, who, details, expect_host_mount=expect_host_mount)


def _unsearchable(
    path: str, who: Identity, blocked: Blocked, details: dict[str, Any]
) -> CheckResult:
    details["blocked_directory"] = blocked.directory
    return CheckResult.make(
        "socket",
        CheckStatus.FAIL,
        f"{who.describe()} cannot reach {path}: directory {blocked.directory} (mode "
        f"{blocked.mode:04o}, owner {blocked.uid}:{blocked.gid}) is not searchable",
        fix=[
            f"Connecting needs search (x) permission on every directory above the socket: "
            f"chmod o+x {blocked.directory} (aesmd's installer creates /var/run/aesmd with "
            "mode 0755), or run as a uid/group that may search it.",
        ],
        details=details,
        codes=_UNAVAILABLE,
    )


def _not_a_socket(path: str, info: os.stat_result, details: dict[str, Any]) -> CheckResult:
    """A directory (what a socket-file mount leaves) or another kind of file."""
    if stat.S_ISDIR(info.st_mode):
        return CheckResult.make(
            "socket",
            CheckStatus.FAIL,
            f"{path} is a directory, not a socket",
            fix=[
                "This is what mounting the socket *file* leaves behind when the host path did "
                "not exist yet: docker -v .../aesm.socket:... or a hostPath volume of type "
                "DirectoryOrCreate on the socket path creates an empty directory there, and "
                "the daemon cannot bind its socket.",
                SOCKET_MOUNT_ADVICE,
                f"On the host, stop the daemon, remove the empty directory {path}, and start "
                "the daemon again.",
            ],
            details=details,
            codes=_UNAVAILABLE,
        )
    kind = details["kind"]
    return CheckResult.make(
        "socket",
        CheckStatus.FAIL,
        f"{path} is a {kind}, not a socket",
        fix=[
            f"Nothing can connect to a {kind}. Remove it and (re)start the quote helper, "
            "which creates its socket there (serve --socket PATH); check that no other "
            "program writes to this path.",
            SOCKET_MOUNT_ADVICE,
        ],
        details=details,
        codes=_UNAVAILABLE,
    )


def _may_not_connect(
    path: str, info: os.stat_result, who: Identity, details: dict[str, Any]
) -> CheckResult | None:
    """FAIL when ``who`` lacks write permission on the socket (mode bits, then ACLs)."""
    klass = permission_class(info.st_uid, info.st_gid, who)
    allowed = may_access(info.st_mode, info.st_uid, info.st_gid, who, WRITE)
    details.update(permission_class=klass, connectable=allowed)
    if not allowed and who == Identity.current() and os.access(path, os.W_OK):
        allowed = True  # an ACL grants what the mode bits do not
        details.update(connectable=True, granted_by_acl=True)
    if allowed:
        return None
    return CheckResult.make(
        "socket",
        CheckStatus.FAIL,
        f"{who.describe()} may not connect to {path}: the socket is mode "
        f"{stat.S_IMODE(info.st_mode):04o}, owner {info.st_uid}:{info.st_gid}, and the "
        f"{klass} bits lack write (w) permission",
        fix=[
            "Connecting to a Unix socket needs write permission on it. Start the daemon "
            "with a wider --socket-mode (aesmd uses 0777), or --socket-group set to a "
            f"group this process is in (it runs as {who.describe()}), or run the "
            "application with the socket's uid or group (pod securityContext "
            "runAsUser/supplementalGroups).",
        ],
        details=details,
        codes=_UNAVAILABLE,
    )


def _socket_usable(
    path: str,
    info: os.stat_result,
    who: Identity,
    details: dict[str, Any],
    *,
    expect_host_mount: bool,
) -> CheckResult:
    """PASS, or WARN when the socket file itself is mounted (stale after a restart)."""
    notes: list[str] = []
    status = CheckStatus.PASS
    fix: list[str] = []
    summary = (
        f"{path} is a socket (mode {stat.S_IMODE(info.st_mode):04o}, owner "
        f"{info.st_uid}:{info.st_gid}), connectable by {who.describe()}"
    )
    if who.uid == 0:
        notes.append("running as root: permission bits do not apply; run as the application's uid")
    if details["socket_is_mount"]:
        status = CheckStatus.WARN
        summary += ", but the socket file itself is a mount point"
        fix = [
            "A mounted socket file keeps pointing at the old socket after the daemon "
            "restarts (it creates a new one): connections then fail with ECONNREFUSED.",
            SOCKET_MOUNT_ADVICE,
        ]
    elif expect_host_mount:
        notes.append(
            f"{details['directory']} is not a mount point although this looks like a "
            "container: the socket is the container's own, not the node's quote helper"
        )
    details["notes"] = notes
    return CheckResult.make("socket", status, summary, fix=fix, details=details)


def _no_directory(path: str, parent: str, details: dict[str, Any]) -> CheckResult:
    details["directory_exists"] = False
    return CheckResult.make(
        "socket",
        CheckStatus.FAIL,
        f"no socket at {path}: its directory {parent} does not exist",
        fix=[
            SOCKET_MOUNT_ADVICE,
            "On AKS the confcom add-on needs the quote helper enabled explicitly "
            "(--enable-sgxquotehelper); with kind, add /var/run/aesmd to extraMounts.",
            "On the node itself: is the quote helper (sgx-quote-helper serve) or aesmd "
            "installed and running?",
        ],
        details=details,
        codes=_UNAVAILABLE,
    )


def _missing_socket(
    path: str,
    parent: str,
    exc: OSError,
    details: dict[str, Any],
    *,
    expect_host_mount: bool,
) -> CheckResult:
    name = "socket"
    details["kind"] = "missing"
    if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
        return CheckResult.make(
            name,
            CheckStatus.FAIL,
            f"cannot stat {path}: {exc.strerror}",
            fix=[f"Check that {path} is the quote helper's socket and readable by this process."],
            details=details,
            codes=_UNAVAILABLE,
        )
    if not os.path.isdir(parent):
        return _no_directory(path, parent, details)
    details["directory_exists"] = True
    others = [n for n in sockets_in(parent) if n != os.path.basename(path)]
    details["other_sockets"] = others
    fix = [
        "Is the quote helper (sgx-quote-helper serve) or aesmd running on this node? Check "
        "the DaemonSet pod on this node or the service status and its log.",
        f"The directory {parent} exists but has no socket: a container sees an empty "
        "directory when the host directory was not mounted (or the quote helper is not "
        "enabled: on AKS --enable-sgxquotehelper).",
    ]
    if others:
        fix.insert(
            0,
            f"{parent} holds other sockets ({', '.join(others)}): a daemon listening under "
            "another name (aesm.sock instead of aesm.socket?) must be given the path clients "
            "use (serve --socket), or point this check at it with --socket.",
        )
    if expect_host_mount:
        fix.insert(0, f"{parent} is not a mount point in this container. {SOCKET_MOUNT_ADVICE}")
    return CheckResult.make(
        name,
        CheckStatus.FAIL,
        f"no socket at {path}",
        fix=fix,
        details=details,
        codes=_UNAVAILABLE,
    )
