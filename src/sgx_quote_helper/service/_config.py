"""The daemon's configuration, declared once.

:class:`ServiceConfig` is the table: each field is one setting, declared with
:func:`setting` (its kind, default and help). Everything else is derived from
that entry and nowhere listed again by name: the ``serve`` flag (``--socket-mode``),
the environment variable (``SGX_QUOTE_HELPER_SOCKET_MODE``), the TOML key
(``socket-mode``, or ``socket_mode``), the help text and the configuration
table of ``docs/daemon.md`` (``python tools/gen_daemon_docs.py``). Adding an
option is adding one field.

Precedence (DESIGN.md section 4): command-line flags, then the environment,
then an optional ``--config FILE`` (TOML), then the defaults. Every value,
whatever its source, is converted and range-checked in one place
(:func:`_convert`); rules across settings are in :func:`_validate`.
"""

from __future__ import annotations

import dataclasses
import grp
import math
import os
import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeAlias, TypeVar

from sgx_quote_helper._cpus import usable_cpus
from sgx_quote_helper._fs import InputTooLargeError, MiB, parse_toml, read_limited
from sgx_quote_helper._net import host_port, http_base_url
from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.backends import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_UPSTREAM_TIMEOUT,
    BackendOptions,
    DcapOptions,
    check_backend_options,
)
from sgx_quote_helper.errors import UsageError

DEFAULT_SOCKET = Path("/var/run/aesmd/aesm.socket")
DEFAULT_STATE_DIR = Path("/var/lib/sgx-quote-helper")
ENV_PREFIX = "SGX_QUOTE_HELPER_"

#: The file of settings: not a setting itself (it cannot name itself).
CONFIG_FILE_FLAG = "--config"
CONFIG_FILE_ENV = ENV_PREFIX + "CONFIG"
CONFIG_FILE_HELP = "a TOML file of settings, keys spelled like the flags"
#: The largest config file read; a real one is a few KB of TOML.
MAX_CONFIG_FILE_SIZE = 1 * MiB

#: Where the admin HTTP listener binds: ``(host, port)`` or a Unix socket path.
AdminAddress: TypeAlias = tuple[str, int] | Path
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

#: The largest uid or gid; ``(uid_t)-1`` means "unchanged" to ``chown``.
_MAX_ID = 2**32 - 2
#: Timeouts above a day are mistakes, and would overflow the event loop's timers.
_MAX_SECONDS = 86400.0
#: ``--workers 0`` runs one worker per usable core, at most this many.
_AUTO_WORKERS_MAX = 4

_T = TypeVar("_T")
_SETTING_KEY = "sgx_quote_helper.setting"


class ConfigError(UsageError):
    """A configuration value is missing, malformed or contradictory."""


# -- kinds: how a value is read, checked and shown ----------------------------------------


@dataclass(frozen=True)
class Kind(Generic[_T]):
    """How a setting's text (flag, environment) or TOML value becomes a checked value.

    ``parse`` raises ``ValueError`` with a short reason; :func:`_convert` adds
    which setting and which source.
    """

    #: The flag's argument in help and docs (``OCTAL``, ``text|json``).
    metavar: str
    parse: Callable[[object], _T]
    #: The value as a user would write it (for the default in help and docs).
    show: Callable[[_T], str]
    #: Accepted values, when more than the metavar says (``1..65535``).
    note: str = ""
    #: Repeatable flag; a list in TOML, a comma- or space-separated list in the environment.
    repeatable: bool = False
    #: A flag without a value (``--pccs-insecure``); ``true``/``false`` elsewhere.
    switch: bool = False


def _text(value: object) -> str:
    if isinstance(value, bool | int | float | str | Path):
        return str(value).strip()
    raise ValueError(f"expected a string, got {value!r}")


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected an integer, got {value!r}")
    try:
        return int(value) if isinstance(value, int) else int(value.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _check_range(number: float, minimum: float, maximum: float, unit: str) -> None:
    """The one range check of every number."""
    if number < minimum:
        raise ValueError(f"must be at least {_number(minimum)}{unit}, got {_number(number)}")
    if number > maximum:
        raise ValueError(f"must be at most {_number(maximum)}{unit}, got {_number(number)}")


def integer(minimum: int, maximum: int, *, metavar: str = "N", what: str = "") -> Kind[int]:
    """An integer in ``minimum..maximum``; ``what`` names it in errors (``an SVN``)."""

    def parse(value: object) -> int:
        number = _integer(value)
        try:
            _check_range(number, minimum, maximum, "")
        except ValueError as exc:
            raise ValueError(f"{what} {exc}" if what else str(exc)) from None
        return number

    return Kind(metavar, parse, str, note=f"{minimum}..{maximum}")


def seconds(maximum: float = _MAX_SECONDS) -> Kind[float]:
    """A positive, finite number of seconds up to ``maximum``."""

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a number of seconds, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number of seconds, got {value!r}")
        if number <= 0:
            raise ValueError(f"must be a positive number of seconds, got {value!r}")
        _check_range(number, 0, maximum, " seconds")
        return number

    return Kind("SECONDS", parse, lambda number: f"{number:g}", note=f"> 0, at most {maximum:g}")


def choice(options: tuple[str, ...]) -> Kind[str]:
    def parse(value: object) -> str:
        text = _text(value).lower()
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return Kind("|".join(options), parse, str)


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _parse_socket(value: object) -> Path:
    text = _text(value)
    if not text:
        raise ValueError("the socket path is empty")
    return Path(text)


def _parse_path(value: object) -> Path:
    text = _text(value)
    if not text:
        raise ValueError("the path is empty")
    return Path(text)


def _parse_library(value: object) -> str:
    """A shared library: a file name the dynamic loader searches, or a path."""
    text = _text(value)
    if not text:
        raise ValueError("the library name is empty")
    return text


def _parse_optional_path(value: object) -> Path | None:
    text = _text(value)
    return Path(text) if text else None


def _parse_mode(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):  # TOML: 0o660
        mode = value
    elif isinstance(value, str):
        try:
            mode = int(value.strip().lower().removeprefix("0o"), 8)
        except ValueError:
            raise ValueError(f"expected an octal mode such as 0660, got {value!r}") from None
    else:
        raise ValueError(f"expected an octal mode such as 0660, got {value!r}")
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{mode:o} is not a permission mode (0..777 octal)")
    return mode


def _parse_url(value: object) -> str | None:
    """An HTTP service's base URL, checked as every ``--pccs-url`` is (``_net``)."""
    try:
        return http_base_url(_text(value))
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def parse_admin_listen(text: str) -> AdminAddress:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) or ``unix:PATH``."""
    if text.startswith("unix:"):
        if not text[5:]:
            raise ValueError("unix: needs a socket path, as in unix:/run/sgx-quote-helper/admin")
        return Path(text[5:])
    try:
        return host_port(text)
    except UsageError as exc:
        raise ValueError(f"{exc}; expected HOST:PORT or unix:PATH, got {text!r}") from None


def _parse_admin_listen(value: object) -> str | None:
    text = _text(value)
    if not text:
        return None
    parse_admin_listen(text)
    return text


def _account(lookup: Callable[[str], int], what: str) -> Callable[[object], int | None]:
    def parse(value: object) -> int:
        text = _text(value)
        if text.isdigit():
            number = int(text)
            _check_range(number, 0, _MAX_ID, "")
            return number
        try:
            return lookup(text)
        except KeyError:
            raise ValueError(f"no such {what}: {text!r}") from None

    return parse


_parse_uid = _account(lambda name: pwd.getpwnam(name).pw_uid, "user")
_parse_gid = _account(lambda name: grp.getgrnam(name).gr_gid, "group")


def _optional(show: Callable[[_T], str]) -> Callable[[_T | None], str]:
    return lambda value: "" if value is None else show(value)


def _listed(parse_one: Callable[[object], int | None]) -> Callable[[object], tuple[int, ...]]:
    def parse(value: object) -> tuple[int, ...]:
        items: list[object] = []
        if isinstance(value, list | tuple):
            items.extend(value)
        else:
            items.extend(_text(value).replace(",", " ").split())
        return tuple(number for number in map(parse_one, items) if number is not None)

    return parse


SOCKET_PATH: Kind[Path] = Kind("PATH", _parse_socket, str)
MODE: Kind[int] = Kind("OCTAL", _parse_mode, lambda mode: f"{mode:04o}")
USER: Kind[int | None] = Kind("USER", _parse_uid, _optional(str))
GROUP: Kind[int | None] = Kind("GROUP", _parse_gid, _optional(str))
USERS: Kind[tuple[int, ...]] = Kind(
    "USER", _listed(_parse_uid), lambda ids: ",".join(map(str, ids)), repeatable=True
)
GROUPS: Kind[tuple[int, ...]] = Kind(
    "GROUP", _listed(_parse_gid), lambda ids: ",".join(map(str, ids)), repeatable=True
)
DIRECTORY: Kind[Path | None] = Kind("DIR", _parse_optional_path, _optional(str))
FILE: Kind[Path | None] = Kind("FILE", _parse_optional_path, _optional(str))
URL: Kind[str | None] = Kind("URL", _parse_url, _optional(str))
SWITCH: Kind[bool] = Kind("", _parse_bool, lambda on: "on" if on else "off", switch=True)
LISTEN_ADDRESS: Kind[str | None] = Kind("HOST:PORT|unix:PATH", _parse_admin_listen, _optional(str))
SVN: Kind[int] = integer(0, 0xFFFF, what="a 16-bit SVN")
SOCKET: Kind[Path | None] = Kind("PATH", _parse_optional_path, _optional(str))
DEVICE: Kind[Path] = Kind("PATH", _parse_path, str)
LIBRARY: Kind[str] = Kind("LIB", _parse_library, str)
#: A library that may be switched off: empty means "none".
OPTIONAL_LIBRARY: Kind[str | None] = Kind("LIB", _text, _optional(str))


# -- the table ------------------------------------------------------------------------------

#: The dcap backend's defaults, shown in the table.
_DCAP = DcapOptions()


@dataclass(frozen=True)
class Setting:
    """What a :class:`ServiceConfig` field declares besides its type and default."""

    parse: Callable[[object], object]
    help: str
    #: The default as help and docs show it.
    default_text: str
    metavar: str
    note: str
    repeatable: bool
    switch: bool
    #: The backend the setting belongs to ("" for the daemon's own), for ``--help``.
    group: str = ""


def setting(
    kind: Kind[_T],
    *,
    default: _T,
    help: str,
    default_text: str | None = None,
    group: str = "",
) -> _T:
    """Declare one setting (a :class:`ServiceConfig` field) of ``kind``.

    ``default_text`` says what the default means when the value alone would not
    (``None`` for the socket owner is "the daemon's uid"); ``group`` names the
    backend that reads it.
    """
    entry = Setting(
        parse=kind.parse,
        help=help,
        default_text=kind.show(default) if default_text is None else default_text,
        metavar=kind.metavar,
        note=kind.note,
        repeatable=kind.repeatable,
        switch=kind.switch,
        group=group,
    )
    value: _T = dataclasses.field(default=default, metadata={_SETTING_KEY: entry})
    return value


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``serve`` needs, validated: the table of settings."""

    socket: Path = setting(
        SOCKET_PATH,
        default=DEFAULT_SOCKET,
        help="the AESM socket (Intel's clients always use the default path)",
    )
    socket_mode: int = setting(
        MODE, default=0o777, help="mode of the socket file; aesmd makes it world-connectable"
    )
    socket_owner: int | None = setting(
        USER,
        default=None,
        default_text="the daemon's uid",
        help="owner of the socket file (name or uid)",
    )
    socket_group: int | None = setting(
        GROUP,
        default=None,
        default_text="the daemon's gid",
        help="group of the socket file (name or gid)",
    )
    allow_uid: tuple[int, ...] = setting(
        USERS,
        default=(),
        default_text="everyone",
        help="serve only peers with these uids (name or uid); others are closed without a reply",
    )
    allow_gid: tuple[int, ...] = setting(
        GROUPS,
        default=(),
        default_text="everyone",
        help="... or peers with these primary gids (name or gid)",
    )
    backend: str = setting(
        choice(tuple(BACKENDS)),
        default=DEFAULT_BACKEND,
        help="the QuoteBackend that hosts QE3 and the PCE: "
        + "; ".join(f"{name} = {factory.summary}" for name, factory in BACKENDS.items()),
    )
    platform: Path | None = setting(
        DIRECTORY,
        default=None,
        default_text="none",
        help="simulated platform directory (DIR/platform of `sim init`)",
        group="sim",
    )
    pccs_url: str | None = setting(
        URL,
        default=None,
        default_text="embedded manufacturer",
        help="PCCS for the PCK certificate chain: its base URL, http(s)://HOST[:PORT][/PATH]",
        group="sim",
    )
    pccs_insecure: bool = setting(
        SWITCH, default=False, help="do not verify the PCCS's TLS certificate", group="sim"
    )
    pccs_ca_file: Path | None = setting(
        FILE,
        default=None,
        default_text="system CAs",
        help="CA bundle for the PCCS's TLS certificate",
        group="sim",
    )
    state_dir: Path | None = setting(
        DIRECTORY,
        default=None,
        default_text=f"PLATFORM/state, else {DEFAULT_STATE_DIR}",
        help="directory for the sealed attestation key and the PCK chain cache",
        group="sim",
    )
    admin_listen: str | None = setting(
        LISTEN_ADDRESS,
        default=None,
        default_text="off",
        help="listener for /metrics, /healthz and /readyz ([::1]:9464 for IPv6; port 0 picks one)",
    )
    log_format: str = setting(choice(LOG_FORMATS), default="text", help="log line format")
    log_level: str = setting(choice(LOG_LEVELS), default="info", help="least severe level logged")
    drain_timeout: float = setting(
        seconds(), default=10.0, help="how long SIGTERM waits for open connections"
    )
    #: Counted from the accept: Intel's client writes its request right after
    #: connecting, so a short deadline costs honest clients nothing and frees a
    #: stalled connection's slot soon (docs/daemon.md, "Admission").
    read_timeout: float = setting(
        seconds(),
        default=2.0,
        help="how long a client has, from the accept, to send its whole request (and to "
        "take its whole reply)",
    )
    max_connections: int = setting(
        integer(1, 1_000_000),
        default=256,
        help="open client connections; at the limit the oldest stalled one is evicted",
    )
    max_connections_per_uid: int = setting(
        integer(1, 1_000_000),
        default=128,
        help="open client connections of one peer uid; at the limit its oldest stalled one "
        "is evicted",
    )
    max_inflight: int = setting(
        integer(1, 4096),
        default=64,
        help="requests answered at once by a blocking backend, in worker threads",
    )
    workers: int = setting(
        integer(0, 64),
        default=0,
        default_text="0 (one per usable core, at most 4)",
        help="worker processes accepting on the one socket (0: one per core this process "
        "may use, its CPU affinity and cgroup CPU limit counted, at most 4); admission "
        "limits are divided among them, and a backend that cannot be shared (anything but "
        "sim) runs one",
    )
    qe_svn: int = setting(
        SVN,
        default=QE_SVN,
        default_text=f"{QE_SVN} (the release's)",
        help="ISVSVN of the QE3 this (simulated) release hosts",
        group="sim",
    )
    pce_svn: int = setting(
        SVN,
        default=PCE_SVN,
        default_text=f"{PCE_SVN} (the release's)",
        help="ISVSVN of the PCE this (simulated) release hosts",
        group="sim",
    )
    upstream: Path | None = setting(
        SOCKET,
        default=None,
        default_text="none",
        help="the upstream AESM socket (host aesmd or another quote helper)",
        group="proxy",
    )
    upstream_timeout: float = setting(
        seconds(),
        default=DEFAULT_UPSTREAM_TIMEOUT,
        help="one exchange with the upstream; beyond it the client gets "
        "AESM_SERVICE_UNAVAILABLE (30)",
        group="proxy",
    )
    dcap_library: str = setting(
        LIBRARY,
        default=_DCAP.library,
        help="Intel's quote library (a name ld.so searches, or a path)",
        group="dcap",
    )
    dcap_qe3_logic_library: str | None = setting(
        OPTIONAL_LIBRARY,
        default=None,
        default_text="found through --dcap-library",
        help="the library with sgx_ql_get_quote, for requests with qe_report_info "
        "(empty: none; such requests are then refused)",
        group="dcap",
    )
    dcap_quote_provider: str = setting(
        LIBRARY,
        default=_DCAP.quote_provider,
        help="the quote provider library checked at start-up (Intel QPL or az-dcap-client)",
        group="dcap",
    )
    dcap_qe3_path: Path | None = setting(
        FILE,
        default=None,
        default_text="the library's",
        help="the QE3 enclave (libsgx_qe3.signed.so), for sgx_ql_set_path",
        group="dcap",
    )
    dcap_pce_path: Path | None = setting(
        FILE,
        default=None,
        default_text="the library's",
        help="the PCE enclave (libsgx_pce.signed.so), for sgx_ql_set_path",
        group="dcap",
    )
    dcap_qpl_path: Path | None = setting(
        FILE,
        default=None,
        default_text="the library's",
        help="the quote provider library the quote library loads, for sgx_ql_set_path",
        group="dcap",
    )
    dcap_ide_path: Path | None = setting(
        FILE,
        default=None,
        default_text="the library's",
        help="the ID enclave (libsgx_id_enclave.signed.so), for sgx_ql_set_path",
        group="dcap",
    )
    sgx_enclave_device: Path = setting(
        DEVICE,
        default=_DCAP.enclave_device,
        help="the SGX enclave device, checked at start-up",
        group="dcap",
    )
    sgx_provision_device: Path = setting(
        DEVICE,
        default=_DCAP.provision_device,
        help="the SGX provisioning device, checked at start-up",
        group="dcap",
    )
    dcap_queue_depth: int = setting(
        integer(1, 100_000),
        default=_DCAP.queue_depth,
        help="callers that may wait for the single-threaded quoting enclave; beyond, AESM_BUSY",
        group="dcap",
    )
    dcap_queue_timeout: float = setting(
        seconds(),
        default=_DCAP.queue_timeout,
        help="how long a caller waits for its turn at the quoting enclave; then AESM_BUSY",
        group="dcap",
    )

    def admin_address(self) -> AdminAddress | None:
        """``--admin-listen`` parsed; ``None`` when the admin listener is off."""
        return parse_admin_listen(self.admin_listen) if self.admin_listen else None

    def effective_workers(self) -> int:
        """How many worker processes ``serve`` runs (1: the daemon is one process).

        ``0`` means one per core this process may use (:func:`usable_cpus`), at
        most 4; a backend that is not shareable gets one; and never more than
        ``max_connections_per_uid`` (and ``max_connections``), so that each
        worker's share of them is at least 1.
        """
        wanted = self.workers or min(usable_cpus(), _AUTO_WORKERS_MAX)
        if not BACKENDS[self.backend].shareable:
            return 1
        return max(1, min(wanted, self.max_connections_per_uid, self.max_connections))

    def effective_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        if self.platform is not None:
            return self.platform / "state"
        return DEFAULT_STATE_DIR

    def backend_options(self) -> BackendOptions:
        """What the configured backend is built from (the daemon adds the PCK source)."""
        return BackendOptions(
            platform_dir=self.platform,
            state_dir=self.effective_state_dir(),
            qe_svn=self.qe_svn,
            pce_svn=self.pce_svn,
            upstream=self.upstream,
            upstream_timeout=self.upstream_timeout,
            dcap=DcapOptions(
                library=self.dcap_library,
                qe3_logic_library=self.dcap_qe3_logic_library,
                quote_provider=self.dcap_quote_provider,
                qe3_path=self.dcap_qe3_path,
                pce_path=self.dcap_pce_path,
                qpl_path=self.dcap_qpl_path,
                ide_path=self.dcap_ide_path,
                enclave_device=self.sgx_enclave_device,
                provision_device=self.sgx_provision_device,
                queue_depth=self.dcap_queue_depth,
                queue_timeout=self.dcap_queue_timeout,
            ),
        )


# -- the derived views ------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One setting with the names derived from its field name."""

    #: The :class:`ServiceConfig` attribute (``socket_mode``).
    name: str
    setting: Setting

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def toml_key(self) -> str:
        return self.name.replace("_", "-")

    @property
    def help(self) -> str:
        """The help text with the accepted values, when the metavar does not say them."""
        return (
            f"{self.setting.help} ({self.setting.note})" if self.setting.note else self.setting.help
        )


def _options() -> tuple[Option, ...]:
    options = []
    for field in dataclasses.fields(ServiceConfig):
        entry = field.metadata.get(_SETTING_KEY)
        if not isinstance(entry, Setting):
            raise TypeError(f"ServiceConfig.{field.name} is not declared with setting()")
        options.append(Option(field.name, entry))
    return tuple(options)


#: Every setting, in table order.
OPTIONS: tuple[Option, ...] = _options()
_BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}


def _convert(option: Option, value: object, source: str) -> object:
    """The one place a value from anywhere becomes a checked setting."""
    try:
        return option.setting.parse(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid value for {option.flag} from {source}: {exc}") from None


def _read_file(config_file: Path) -> dict[str, object]:
    try:
        data = read_limited(config_file, MAX_CONFIG_FILE_SIZE, "daemon settings (TOML)")
        document: dict[str, object] = parse_toml(data)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
    except InputTooLargeError as exc:
        raise ConfigError(exc.message, hints=exc.hints) from None
    except ValueError as exc:
        raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
    return document


def load_config(
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    validate: bool = True,
) -> ServiceConfig:
    """Merge flags (field names to raw values; ``None`` = not given), environment and file.

    Raises :class:`ConfigError` naming the setting and where its bad value came
    from. ``validate=False`` skips the checks across settings (a backend's
    required options), for ``serve --version``.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}

    if config_file is not None:
        for key, value in _read_file(config_file).items():
            option = _BY_NAME.get(key.replace("-", "_"))
            if option is None:
                raise ConfigError(f"unknown setting {key!r} in {config_file}")
            values[option.name] = _convert(option, value, str(config_file))

    for option in OPTIONS:
        if option.env in env:
            values[option.name] = _convert(option, env[option.env], f"${option.env}")

    for name, value in flags.items():
        option = _BY_NAME.get(name)
        if option is None:
            raise ConfigError(f"unknown setting {name!r}")
        if value is None or (isinstance(value, list | tuple) and not value):
            continue
        values[name] = _convert(option, value, "the command line")

    # Each value has its field's type: setting() ties a field's kind to its annotation.
    config = ServiceConfig(**values)  # type: ignore[arg-type]
    if validate:
        _validate(config)
    return config


def _validate(config: ServiceConfig) -> None:
    """Rules across settings; each value's own range is checked by :func:`_convert`."""
    try:
        check_backend_options(config.backend, config.backend_options())
    except UsageError as exc:
        raise ConfigError(str(exc)) from None
