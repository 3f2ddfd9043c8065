"""``LOG_FORMAT=json``: every line one JSON object, with the record's extra fields."""

from __future__ import annotations

import json
import logging
import sys

from livebase.logs import JsonFormatter, log_config


def _record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("livebase.realtime")
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, "dropped %s", ("sid-1",), None, extra=extra
    )


def test_a_line_holds_time_level_logger_message_and_the_extra_fields() -> None:
    line = JsonFormatter().format(_record(event="slow_consumer_disconnect", queued_bytes=12))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "livebase.realtime"
    assert entry["message"] == "dropped sid-1"
    assert entry["time"].endswith("+00:00")
    assert entry["event"] == "slow_consumer_disconnect" and entry["queued_bytes"] == 12
    assert "args" not in entry and "msg" not in entry


def test_a_stack_trace_stays_on_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record()
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


def test_json_applies_to_uvicorns_formatters_too() -> None:
    config = log_config("info", "json")
    assert {f["()"] for f in config["formatters"].values()} == {"livebase.logs.JsonFormatter"}
    text = log_config("info", "text")
    assert "livebase.logs.JsonFormatter" not in json.dumps(text["formatters"])
    assert config["loggers"]["livebase"]["level"] == "INFO"
