"""The daemon's configuration: one typed object from flags, environment and file.

Precedence (DESIGN.md section 4): command-line flags, then environment variables
``SGX_QUOTE_HELPER_<FLAG>`` (upper case, dashes as underscores), then an optional
``--config FILE`` (TOML, keys spelled like the flags, with dashes or
underscores), then the defaults below.
"""

from __future__ import annotations

import grp
import math
import os
import pwd
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.errors import UsageError

DEFAULT_SOCKET = Path("/var/run/aesmd/aesm.socket")
ENV_PREFIX = "SGX_QUOTE_HELPER_"

BACKENDS = ("sim", "dcap", "proxy")

#: Where the admin HTTP listener binds: ``(host, port)`` or a Unix socket path.
AdminAddress: TypeAlias = tuple[str, int] | Path
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(UsageError):
    """A configuration value is missing, malformed or contradictory."""


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``serve`` needs, validated."""

    socket: Path = DEFAULT_SOCKET
    #: Mode of the socket file. Intel's aesmd makes it world-connectable (0777).
    socket_mode: int = 0o777
    socket_owner: int | None = None
    socket_group: int | None = None
    #: When either list is non-empty, only peers whose uid (or gid) is listed
    #: may use the service; others are refused (closed without reply) and counted.
    allow_uid: tuple[int, ...] = ()
    allow_gid: tuple[int, ...] = ()
    backend: str = "sim"
    platform: Path | None = None
    pccs_url: str | None = None
    pccs_insecure: bool = False
    pccs_ca_file: Path | None = None
    upstream: Path | None = None
    #: Seconds one exchange with the upstream AESM (proxy backend) may take.
    upstream_timeout: float = 10.0
    # dcap backend: Intel's quote library, its enclaves and the SGX devices.
    dcap_library: str = "libsgx_dcap_ql.so.1"
    #: None: found through dcap_library; "": do not use the QE3 logic library.
    dcap_qe3_logic_library: str | None = None
    dcap_quote_provider: str = "libdcap_quoteprov.so.1"
    dcap_qe3_path: Path | None = None
    dcap_pce_path: Path | None = None
    dcap_qpl_path: Path | None = None
    dcap_ide_path: Path | None = None
    sgx_enclave_device: Path = Path("/dev/sgx_enclave")
    sgx_provision_device: Path = Path("/dev/sgx_provision")
    #: Callers that may wait for the quoting enclave; beyond, AESM_BUSY.
    dcap_queue_depth: int = 64
    #: Seconds a caller waits for its turn at the quoting enclave.
    dcap_queue_timeout: float = 30.0
    state_dir: Path | None = None
    admin_listen: str | None = None
    log_format: str = "text"
    log_level: str = "info"
    #: Seconds to let in-flight requests finish after SIGTERM.
    drain_timeout: float = 10.0
    #: Seconds a client has to send its whole request frame.
    read_timeout: float = 15.0
    max_connections: int = 256
    #: Quote requests processed at once; more wait (backpressure), never queue unboundedly.
    max_inflight: int = 64
    qe_svn: int = QE_SVN
    pce_svn: int = PCE_SVN

    def admin_address(self) -> AdminAddress | None:
        """``--admin-listen`` parsed; ``None`` when the admin listener is off."""
        return parse_admin_listen(self.admin_listen) if self.admin_listen else None

    def effective_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        if self.platform is not None:
            return self.platform / "state"
        return Path("/var/lib/sgx-quote-helper")


def parse_admin_listen(text: str) -> AdminAddress:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) or ``unix:PATH``."""
    if text.startswith("unix:"):
        if not text[5:]:
            raise ValueError("unix: needs a socket path, as in unix:/run/sgx-quote-helper/admin")
        return Path(text[5:])
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT or unix:PATH, got {text!r}")
    return host, int(port)


# name -> converter from a string (environment, file) or native TOML value
def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number of seconds, got {value!r}")
    return number


def _positive_seconds(value: Any) -> float:
    number = _to_float(value)
    if number <= 0:
        raise ValueError(f"must be a positive number of seconds, got {value!r}")
    return number


def _at_least_one(value: Any) -> int:
    number = _to_int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, got {value!r}")
    return number


def _to_svn(value: Any) -> int:
    number = _to_int(value)
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"an SVN is a 16-bit number (0..65535), got {value!r}")
    return number


def _to_url(value: Any) -> str:
    text = str(value).strip()
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return text


def _to_socket(value: Any) -> Path:
    text = str(value).strip()
    if not text:
        raise ValueError("the socket path is empty")
    return Path(text)


def _to_mode(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an octal mode such as 0660, got {value!r}")
    if isinstance(value, int):  # TOML: write 0o660 (or the string "0660")
        mode = value
    else:
        text = str(value).strip().lower().removeprefix("0o")
        try:
            mode = int(text, 8)
        except ValueError:
            raise ValueError(f"expected an octal mode such as 0660, got {value!r}") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{mode:o} is not a permission mode (0..777 octal)")
    return mode


def _admin_listen(value: Any) -> str:
    text = str(value).strip()
    if text:
        parse_admin_listen(text)
    return text


def _to_uid(value: Any) -> int:
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise ValueError(f"no such user: {text!r}") from None


def _to_gid(value: Any) -> int:
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValueError(f"no such group: {text!r}") from None


def _to_list(convert: Any) -> Any:
    def inner(value: Any) -> tuple[Any, ...]:
        items = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
        return tuple(convert(item) for item in items)

    return inner


def _choice(options: tuple[str, ...]) -> Any:
    def inner(value: Any) -> str:
        text = str(value).lower()
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return inner


def _optional_path(value: Any) -> Path | None:
    return Path(str(value)) if str(value) else None


def _to_library(value: Any) -> str:
    """A shared library: a file name the dynamic loader searches, or a path."""
    text = str(value).strip()
    if not text:
        raise ValueError("the library name is empty")
    return text


def _to_optional_library(value: Any) -> str:
    """Like :func:`_to_library`, but empty means "none" (not "the default")."""
    return str(value).strip()


_CONVERTERS: dict[str, Any] = {
    "socket": _to_socket,
    "socket_mode": _to_mode,
    "socket_owner": _to_uid,
    "socket_group": _to_gid,
    "allow_uid": _to_list(_to_uid),
    "allow_gid": _to_list(_to_gid),
    "backend": _choice(BACKENDS),
    "platform": _optional_path,
    "pccs_url": _to_url,
    "pccs_insecure": _to_bool,
    "pccs_ca_file": _optional_path,
    "upstream": _optional_path,
    "upstream_timeout": _positive_seconds,
    "dcap_library": _to_library,
    "dcap_qe3_logic_library": _to_optional_library,
    "dcap_quote_provider": _to_library,
    "dcap_qe3_path": _optional_path,
    "dcap_pce_path": _optional_path,
    "dcap_qpl_path": _optional_path,
    "dcap_ide_path": _optional_path,
    "sgx_enclave_device": _to_socket,
    "sgx_provision_device": _to_socket,
    "dcap_queue_depth": _at_least_one,
    "dcap_queue_timeout": _positive_seconds,
    "state_dir": _optional_path,
    "admin_listen": _admin_listen,
    "log_format": _choice(LOG_FORMATS),
    "log_level": _choice(LOG_LEVELS),
    "drain_timeout": _positive_seconds,
    "read_timeout": _positive_seconds,
    "max_connections": _at_least_one,
    "max_inflight": _at_least_one,
    "qe_svn": _to_svn,
    "pce_svn": _to_svn,
}

OPTION_NAMES: tuple[str, ...] = tuple(_CONVERTERS)


def _convert(name: str, value: Any, source: str) -> Any:
    try:
        return _CONVERTERS[name](value)
    except (ValueError, TypeError) as exc:
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"invalid value for {flag} from {source}: {exc}") from None


def load_config(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    validate: bool = True,
) -> ServiceConfig:
    """Merge flags (values already parsed; ``None`` = not given), environment and file.

    Raises :class:`ConfigError` naming the setting and where its bad value came
    from. ``validate=False`` skips the checks across settings (a backend's
    required options), for ``serve --version``.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    if config_file is not None:
        try:
            document = tomllib.loads(config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        for key, value in document.items():
            name = key.replace("-", "_")
            if name not in _CONVERTERS:
                raise ConfigError(f"unknown setting {key!r} in {config_file}")
            values[name] = _convert(name, value, str(config_file))

    for name in _CONVERTERS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in env:
            values[name] = _convert(name, env[env_name], f"${env_name}")

    for name, value in flags.items():
        if value is None or name not in _CONVERTERS:
            continue
        if isinstance(value, list | tuple) and not value:
            continue
        values[name] = _convert(name, value, "the command line")

    config = ServiceConfig(**values)
    if validate:
        _validate(config)
    return config


def _validate(config: ServiceConfig) -> None:
    """Rules across settings; each value's own range is checked by its converter."""
    if config.backend == "sim" and config.platform is None:
        raise ConfigError("the sim backend needs --platform DIR (a directory from `sim init`)")
    if config.backend == "proxy" and config.upstream is None:
        raise ConfigError("the proxy backend needs --upstream PATH (the upstream AESM socket)")
