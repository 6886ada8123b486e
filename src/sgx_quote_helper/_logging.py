"""Structured log lines for long-running commands (daemon, PCCS); shared by both.

Each record is one line: an event name plus key=value fields, either as text
(``2026-01-01T00:00:00Z info quote.served type=GetQuoteEx uid=1000``) or as one
JSON object. Secrets are never passed to the logger; callers log sizes, ids and
hashes only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER_NAME = "sgx_quote_helper"


class _StructuredFormatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

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


def log_event(logger: logging.Logger, level: int, event: str, /, **fields: Any) -> None:
    """Log ``event`` with structured ``fields`` (kept apart from the message)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})
