"""In-process or out-of-process quoting: the choice, and keeping it for the process.

DCAP's rule (spec aesm-wire.md section 8): ``SGX_AESM_ADDR`` *present*, even
empty, selects out-of-process quoting; absent selects in-process. DCAP reads it
once, when its library is loaded, so changing it later has no effect. Here it
is read once, the first time the client library is used (the first call of an
entry point), and never again.

Our one extension (DESIGN.md section 4): when the value is an absolute path, or
``unix:`` followed by an absolute path, that path is the socket. Any other value
(``1``, ``true``, a relative path...) means the default socket,
``/var/run/aesmd/aesm.socket``, because Intel's libraries ignore the value and
always use that path: a container must keep working with both.

The first mode used fixes the process's mode. Using the other one afterwards
raises :class:`ModeConflictError`: in-process and out-of-process quoting are
mutually exclusive within an application, as with Intel's DCAP library and the
AKS quote helper. The low-level :class:`~sgx_quote_helper.client.AesmClient`
stays outside this rule, as ``libsgx_quote_ex`` never reads the variable.
"""

from __future__ import annotations

import enum
import logging
import os
import posixpath
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sgx_quote_helper.client._errors import InvalidParameterError, ModeConflictError

_log = logging.getLogger("sgx_quote_helper.client")

#: The environment variable of DCAP's out-of-process switch.
ENV_VAR = "SGX_AESM_ADDR"
#: Where Intel's aesmd listens (``CONFIG_SOCKET_PATH``), and the quote helper by default.
DEFAULT_SOCKET_PATH = "/var/run/aesmd/aesm.socket"
#: The directory a container must mount to reach the default socket.
DEFAULT_SOCKET_DIRECTORY = posixpath.dirname(DEFAULT_SOCKET_PATH)

#: How a container reaches the node's socket: the one statement of this advice,
#: used by the client's errors, ``doctor`` and ``explain``.
SOCKET_MOUNT_ADVICE = (
    f"In a container, mount the host directory {DEFAULT_SOCKET_DIRECTORY} (hostPath type "
    f"DirectoryOrCreate, or docker -v {DEFAULT_SOCKET_DIRECTORY}:{DEFAULT_SOCKET_DIRECTORY}), "
    "never the socket file: the daemon recreates the socket when it restarts and a file "
    "mount keeps the old one."
)
_UNIX_PREFIX = "unix:"


class Mode(enum.Enum):
    """How a process quotes."""

    #: The process hosts QE3 and the PCE itself (DCAP's default).
    IN_PROCESS = "in-process"
    #: The process sends its REPORT to the quote helper over the AESM socket.
    OUT_OF_PROCESS = "out-of-process"


@dataclass(frozen=True)
class ModeChoice:
    """What the environment says: the mode, the socket, and why."""

    mode: Mode
    #: The socket for out-of-process mode (``None`` in process).
    socket_path: str | None
    #: For messages: ``"SGX_AESM_ADDR is set to '1'"`` and the like.
    reason: str
    #: The value looks like a socket path but is not absolute, so it was ignored.
    value_ignored: bool = False
    #: The variable's value as read (``None`` when absent).
    value: str | None = None


def _parse_value(value: str) -> tuple[str, bool]:
    """The socket a value names, and whether a path-like value had to be ignored."""
    text = value.strip()
    explicit = text.startswith(_UNIX_PREFIX)
    candidate = text[len(_UNIX_PREFIX) :] if explicit else text
    if candidate and os.path.isabs(candidate):
        return candidate, False
    return DEFAULT_SOCKET_PATH, explicit or "/" in candidate


def socket_path_from_value(value: str) -> str:
    """The socket an ``SGX_AESM_ADDR`` value names (our extension), else the default."""
    return _parse_value(value)[0]


def choice_from_environ(environ: Mapping[str, str]) -> ModeChoice:
    """The mode and socket ``environ`` selects (pure; the process reads it once)."""
    value = environ.get(ENV_VAR)
    if value is None:
        return ModeChoice(Mode.IN_PROCESS, None, f"{ENV_VAR} is not set")
    path, ignored = _parse_value(value)
    reason = f"{ENV_VAR} is set to {value!r}"
    if ignored:
        reason += " (not an absolute path, so the default socket is used)"
    return ModeChoice(Mode.OUT_OF_PROCESS, path, reason, value_ignored=ignored, value=value)


@dataclass(frozen=True)
class _Fixed:
    mode: Mode
    by: str


class _ModeState:
    """The process-wide state: the environment as first read, and the fixed mode."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.environment: ModeChoice | None = None
        self.fixed: _Fixed | None = None
        #: Called by :func:`_reset_mode_for_tests` (the in-process quoter cache).
        self.reset_hooks: list[Callable[[], None]] = []


_STATE = _ModeState()


def environment_choice() -> ModeChoice:
    """What ``SGX_AESM_ADDR`` selected when the library was first used.

    The variable is read on the first call and the answer kept: later changes
    to the environment have no effect, as with DCAP.
    """
    with _STATE.lock:
        if _STATE.environment is None:
            choice = choice_from_environ(os.environ)
            _STATE.environment = choice
            if choice.value_ignored:
                _log.warning(
                    "%s; Intel's libraries always use %s", choice.reason, DEFAULT_SOCKET_PATH
                )
        return _STATE.environment


def current_mode() -> Mode | None:
    """The mode this process is fixed to, or ``None`` before any quoter was made."""
    with _STATE.lock:
        return None if _STATE.fixed is None else _STATE.fixed.mode


def check_mode(mode: Mode, entry_point: str) -> None:
    """Raise :class:`ModeConflictError` if the process is fixed to the other mode."""
    with _STATE.lock:
        environment_choice()  # the first use of the library reads the environment
        fixed = _STATE.fixed
        if fixed is None or fixed.mode is mode:
            return
        raise ModeConflictError(
            f"{entry_point} asks for {mode.value} quoting, but this process already quotes "
            f"{fixed.mode.value} (fixed by {fixed.by}). In-process and out-of-process quoting "
            "are mutually exclusive within an application: Intel's DCAP library fixes its "
            f"mode once at load time from {ENV_VAR} (and answers calls of the other mode "
            "with SGX_QL_UNSUPPORTED_MODE 0xE03E), and the AKS quote helper documents the "
            f"same. Use one mode per process: set {ENV_VAR} (out-of-process, through the "
            "quote helper) or leave it unset (in-process) before the program starts, and "
            "call only the matching entry point."
        )


def fix_mode(mode: Mode, by: str) -> None:
    """Record that ``mode`` is in use (after :func:`check_mode` and a successful start)."""
    with _STATE.lock:
        check_mode(mode, by)
        if _STATE.fixed is None:
            _STATE.fixed = _Fixed(mode, by)


def add_reset_hook(hook: Callable[[], None]) -> None:
    with _STATE.lock:
        _STATE.reset_hooks.append(hook)


def _reset_mode_for_tests() -> None:
    """Forget the environment reading and the fixed mode (tests only)."""
    with _STATE.lock:
        _STATE.environment = None
        _STATE.fixed = None
        for hook in _STATE.reset_hooks:
            hook()


def check_socket_path(socket_path: object) -> str:
    """An explicit socket path as ``str``: a ``str``, ``bytes`` or ``os.PathLike``,
    not empty and without a NUL byte (which no file name holds)."""
    if not isinstance(socket_path, str | bytes | os.PathLike):
        raise InvalidParameterError(
            f"socket_path must be a path (str or os.PathLike), got {type(socket_path).__name__}"
        )
    try:
        path = os.fsdecode(socket_path)
    except TypeError as exc:  # an os.PathLike whose __fspath__ returns something else
        raise InvalidParameterError(f"socket_path is not a usable path: {exc}") from None
    if not path:
        raise InvalidParameterError("socket_path is empty: name the daemon's socket")
    if "\0" in path:
        raise InvalidParameterError(f"socket_path {path!r} contains a NUL byte")
    return path


def resolve_socket_path(socket_path: str | os.PathLike[str] | None) -> tuple[str, str]:
    """The socket to use and where it came from (for messages).

    An explicit path wins; otherwise ``SGX_AESM_ADDR`` as first read (when it
    names an absolute path), otherwise the default socket.
    """
    if socket_path is not None:
        return check_socket_path(socket_path), "given explicitly"
    choice = environment_choice()
    if choice.value is None:
        return DEFAULT_SOCKET_PATH, f"the default path; {ENV_VAR} is not set"
    setting = f"{ENV_VAR}={choice.value!r}"
    if choice.socket_path == DEFAULT_SOCKET_PATH and not os.path.isabs(
        choice.value.strip().removeprefix(_UNIX_PREFIX)
    ):
        return DEFAULT_SOCKET_PATH, f"the default path, as {setting} names no absolute path"
    return str(choice.socket_path), f"taken from {setting}"
