"""Log lines: uvicorn's format as text, or one JSON object a line (``LOG_FORMAT=json``).

Noteworthy realtime decisions (a slow consumer disconnected, a recovery
refused, the change log relay taken over, Redis lost or back) are logged
with ``extra`` fields, the first of them ``event`` naming the decision;
in JSON they are keys of the line's object (docs/operations.md, "Logs").
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JsonFormatter", "log_config"]

# A LogRecord's own attributes; anything else on a record came as ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields}``, one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def log_config(level: str, log_format: str) -> dict[str, Any]:
    """uvicorn's logging set-up, with livebase's own loggers at ``level`` and in the
    same format (otherwise Python shows only their warnings, unformatted), and
    with every formatter JSON for ``log_format`` ``json``."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["livebase"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    # Other libraries' warnings, in the same format rather than Python's bare last resort.
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    if log_format == "json":
        json_formatter = {"()": f"{__name__}.JsonFormatter"}
        config["formatters"] = {name: json_formatter for name in config["formatters"]}
    return config
