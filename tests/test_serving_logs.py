"""Server-process logging helpers: azmlinfsrv's format in UTC, logging.json, levels, print()."""

from __future__ import annotations

import builtins
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelstore.errors import InvalidArgumentError
from modelstore.serving.logs import (
    LOG_FORMAT,
    UtcFormatter,
    configure_logging,
    redirect_print_process_wide,
)


@pytest.fixture
def server_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("azmlinfsrv")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        yield logger
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_formatter_uses_the_azmlinfsrv_layout_in_utc() -> None:
    record = logging.LogRecord("azmlinfsrv", logging.WARNING, __file__, 1, "hello", None, None)
    record.created = 0.0
    record.msecs = 0.0
    line = UtcFormatter().format(record)
    assert re.fullmatch(r"1970-01-01 00:00:00,000 W \[\d+\] azmlinfsrv - hello", line)


def test_default_configuration_logs_info_to_stderr(
    server_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    assert configure_logging() is None
    logging.getLogger("azmlinfsrv.user_script").info("visible")
    logging.getLogger("azmlinfsrv").debug("hidden")
    err = capsys.readouterr().err
    assert " I [" in err and "azmlinfsrv.user_script - visible" in err
    assert "hidden" not in err


def test_log_level_can_be_raised_and_bad_levels_are_refused(
    server_logger: logging.Logger,
) -> None:
    configure_logging(level="warning")
    assert server_logger.level == logging.WARNING
    with pytest.raises(InvalidArgumentError, match="unknown log level 'loud'"):
        configure_logging(level="loud")


def test_logging_json_in_a_folder_replaces_the_default(
    tmp_path: Path, server_logger: logging.Logger
) -> None:
    (tmp_path / "logging.json").write_text(
        '{"version": 1, "disable_existing_loggers": false,'
        ' "loggers": {"azmlinfsrv": {"level": "ERROR"}}}'
    )
    assert configure_logging(tmp_path / "missing", tmp_path) == tmp_path / "logging.json"
    assert server_logger.level == logging.ERROR


def test_process_wide_print_redirect_sends_stdout_prints_to_the_print_logger(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builtins, "print", builtins.print)
    caplog.set_level(logging.INFO, logger="azmlinfsrv.print")
    redirect_print_process_wide()
    print("a", 1, sep="-")
    assert [r.getMessage() for r in caplog.records if r.name == "azmlinfsrv.print"] == ["a-1"]


def test_formatter_time_follows_each_record_across_seconds_and_milliseconds() -> None:
    formatter = UtcFormatter()
    reference = logging.Formatter(LOG_FORMAT)
    reference.converter = time.gmtime
    for created in (0.0, 0.25, 0.999, 1.0, 61.5, 1.002, 1_700_000_000.123):
        record = logging.LogRecord("azmlinfsrv", logging.INFO, __file__, 1, "x", None, None)
        record.created = created
        record.msecs = (created - int(created)) * 1000
        assert formatter.format(record) == reference.format(record)
