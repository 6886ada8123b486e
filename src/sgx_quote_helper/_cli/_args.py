"""Argument types shared by every command: the one range check of CLI numbers and URLs.

Each factory returns an argparse ``type=`` callable. A value out of range is
refused by argparse itself, so every command reports it the same way: the
usage line, ``argument --flag: <what is wrong>``, exit status 2. Nothing
numeric reaches the library unchecked (a timeout of ``inf`` or ``nan`` would
otherwise end in a traceback from ``socket.settimeout``, an SVN of 70000 in
one from ``int.to_bytes``). Every option that names an HTTP service takes
:func:`base_url`, so a malformed URL is refused the same way before any request;
file and directory arguments take :func:`path`, which refuses an empty one.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sgx_quote_helper._net import http_base_url
from sgx_quote_helper.errors import UsageError

#: Timeouts above a day are mistakes, and would overflow the event loop's and
#: the socket layer's timers (the daemon's configuration uses the same bound).
MAX_SECONDS = 86400.0
#: An SVN, ISVPRODID or PCESVN is a 16-bit field in every SGX structure.
U16_MAX = 0xFFFF
#: The latest instant ``datetime`` can represent, as Unix seconds.
_MAX_UNIX_SECONDS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


def integer(minimum: int, maximum: int) -> Callable[[str], int]:
    """A decimal integer in ``minimum..maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be an integer {minimum}..{maximum}, got {value}"
            )
        return value

    parse.__name__ = "integer"  # argparse names the type in its fallback message
    return parse


def u16() -> Callable[[str], int]:
    """An SVN, ISVPRODID or PCESVN: ``0..65535``."""
    return integer(0, U16_MAX)


def number(minimum: float, maximum: float) -> Callable[[str], float]:
    """A finite decimal number in ``minimum..maximum`` (no ``nan``, no ``inf``)."""

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be a number {minimum:g}..{maximum:g}, got {value:g}"
            )
        return value

    parse.__name__ = "number"
    return parse


def seconds(maximum: float = MAX_SECONDS) -> Callable[[str], float]:
    """A timeout: a positive, finite number of seconds up to ``maximum``.

    Zero is refused too: it would make every connection fail at once, and the
    error would then blame the peer (a PCCS "down", a daemon "not answering").
    """

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number of seconds, got {text!r}"
            ) from None
        if not math.isfinite(value) or not 0 < value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be a number of seconds above 0 and at most {maximum:g}, got {text!r}"
            )
        return value

    parse.__name__ = "seconds"
    return parse


def unix_seconds(text: str) -> datetime:
    """Unix seconds as an aware UTC time, refused beyond what ``datetime`` represents."""
    value = int(text)
    if not 0 <= value <= _MAX_UNIX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"Unix seconds must be 0..{_MAX_UNIX_SECONDS} (up to 9999-12-31), got {value}"
        )
    return datetime.fromtimestamp(value, UTC)


def path(text: str) -> Path:
    """A file or directory named on the command line (``type=Path`` that refuses ``''``).

    ``Path("")`` is ``.``, and an option whose absence means "the default" would
    take an empty value for absent: ``inspect ''`` would read the current
    directory, ``doctor --socket ''`` check the default socket. An empty path
    is always a mistake (an unset shell variable), so it is a usage error.
    """
    return Path(path_text(text))


def path_text(text: str) -> str:
    """:func:`path` for options kept as text (``-`` for stdin/stdout, or a name)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def base_url(text: str) -> str:
    """The base URL of an HTTP service: ``http(s)://HOST[:PORT][/PATH]`` (``_net``'s check)."""
    try:
        return http_base_url(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
