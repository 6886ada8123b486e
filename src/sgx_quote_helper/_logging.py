"""Structured log lines for long-running commands (daemon, PCCS); shared by both.

Each record is one line: an event name plus key=value fields, either as text
(``2026-01-01T00:00:00Z info quote.served type=GetQuoteEx uid=1000``) or as one
JSON object. Secrets are never passed to the logger; callers log sizes, ids and
hashes only. Short commands (``quote``, ``verify``...) show warnings the same
way, as ``sgx-quote-helper: warning: EVENT key=value`` (:func:`cli_logging`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

LOGGER_NAME = "sgx_quote_helper"


class _StructuredFormatter(logging.Formatter):
    def __init__(self, as_json: bool, *, program: str | None = None) -> None:
        """``program``: a command's line (``PROGRAM: LEVEL: EVENT k=v``), not a daemon's."""
        super().__init__()
        self.as_json = as_json
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        stamp += f".{int(record.msecs):03d}Z"
        if self.as_json:
            document = {
                "ts": stamp,
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": record.getMessage(),
                **fields,
            }
            if record.exc_info:
                document["exception"] = self.formatException(record.exc_info)
            return json.dumps(document, default=str, separators=(",", ":"))
        if self.program is not None:
            parts = [f"{self.program}: {record.levelname.lower()}: {record.getMessage()}"]
        else:
            parts = [stamp, record.levelname.lower(), record.getMessage()]
        parts += [f"{key}={_text_value(value)}" for key, value in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


def configure_logging(log_format: str = "text", level: str = "info") -> logging.Logger:
    """Send the package's log records to stderr as structured lines."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StructuredFormatter(as_json=log_format == "json"))
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


#: What ``exc_info`` takes: an exception, or the triple of ``sys.exc_info()``.
ExcInfo = (
    BaseException
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (as logging's lastResort)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextlib.contextmanager
def cli_logging(program: str) -> Iterator[None]:
    """While a command runs, show its warnings and errors on stderr with their fields.

    Without a handler, Python's last resort prints the bare event name
    (``pck_chain.cache_write_failed``) and drops what failed and where. A
    long-running command replaces this with :func:`configure_logging`.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if logger.handlers:  # configured already (a daemon, or a program using the library)
        yield
        return
    handler = _StderrHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_StructuredFormatter(as_json=False, program=program))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def log_event(
    logger: logging.Logger,
    level: int,
    event: str,
    /,
    *,
    exc_info: ExcInfo = None,
    **fields: Any,
) -> None:
    """Log ``event`` with structured ``fields`` (kept apart from the message).

    ``exc_info`` is for a bug only (its traceback is logged); an expected failure
    is a field that says what went wrong.
    """
    if logger.isEnabledFor(level):
        logger.log(level, event, exc_info=exc_info, extra={"fields": fields})


class RateLimitedLog:
    """Per-event rate limiting: at most ``burst`` lines of one event per ``interval``.

    A peer that can make the daemon log (a refused uid connecting in a loop, a
    flood of malformed frames) must not be able to flood the log: past the
    burst, lines of that event are counted instead of written, and one
    ``log.suppressed`` line says how many were left out once the interval is
    over (at the next line of that event, or at :meth:`flush`, which the
    daemon calls periodically and when it stops).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 10,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self._clock = clock
        # event -> [window start, lines written, lines suppressed, highest level suppressed]
        self._windows: dict[str, list[float]] = {}

    def log(self, level: int, event: str, /, *, exc_info: ExcInfo = None, **fields: Any) -> None:
        """Log ``event`` unless its burst for this interval is used up."""
        if not self.logger.isEnabledFor(level):
            return
        now = self._clock()
        window = self._windows.get(event)
        if window is None:
            window = self._windows[event] = [now, 0, 0, level]
        elif now - window[0] >= self.interval:
            self._summarise(event, window)
            window[:] = [now, 0, 0, level]
        if window[1] < self.burst:
            window[1] += 1
            log_event(self.logger, level, event, exc_info=exc_info, **fields)
        else:
            window[2] += 1
            window[3] = max(window[3], level)

    def flush(self, *, force: bool = False) -> None:
        """Write the summary of every interval that is over (all of them with ``force``)."""
        now = self._clock()
        for event, window in list(self._windows.items()):
            if force or now - window[0] >= self.interval:
                self._summarise(event, window)
                del self._windows[event]

    def _summarise(self, event: str, window: list[float]) -> None:
        if window[2]:
            log_event(
                self.logger,
                int(window[3]),
                "log.suppressed",
                event=event,
                suppressed=int(window[2]),
                interval=f"{self.interval:g}s",
            )
