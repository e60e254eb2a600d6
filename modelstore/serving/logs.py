"""azmlinfsrv's logging conventions: logger names, line format, print() redirection, tree dump.

Users grep their Azure logs for these exact shapes (``azmlinfsrv.print`` lines, the
``<METHOD> <path> <status> <ms>ms <length>`` request line), so local logs keep them.
"""

from __future__ import annotations

import builtins
import json
import logging
import logging.config
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SERVER_LOGGER = "azmlinfsrv"
SCRIPT_LOGGER = "azmlinfsrv.user_script"
SWAGGER_LOGGER = "azmlinfsrv.swagger"
PRINT_LOGGER = "azmlinfsrv.print"
LOG_FORMAT = "%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"
MODEL_TREE_LINE_LIMIT = 200

_builtin_print = builtins.print


class UtcFormatter(logging.Formatter):
    """azmlinfsrv's formatter: its format string, timestamps in UTC."""

    converter = staticmethod(time.gmtime)

    def __init__(self, fmt: str = LOG_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt=fmt, datefmt=datefmt)
        self._second_text: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``logging.Formatter``'s text, with the ``strftime`` of the current second reused: the
        server logs a line per request, many per second."""
        if datefmt or not self.default_msec_format:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached_second, text = self._second_text
        if second != cached_second:
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second_text = (second, text)
        return self.default_msec_format % (text, record.msecs)


def make_print_to_logger() -> Callable[..., None]:
    """A ``print`` that sends what would go to stdout to the ``azmlinfsrv.print`` logger.

    Output meant for another file (``file=sys.stderr``) is printed as usual, like azmlinfsrv's hook.
    """
    logger = logging.getLogger(PRINT_LOGGER)

    def print_to_logger(
        *objects: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        target = file if file is not None else sys.stdout
        if target is sys.stdout:
            logger.info((" " if sep is None else sep).join(map(str, objects)))
        else:
            _builtin_print(*objects, sep=sep, end=end, file=target, flush=flush)

    return print_to_logger


def redirect_print_process_wide() -> None:
    """Replace ``builtins.print`` for the whole process, as azmlinfsrv's workers do.

    The app itself only redirects the entry script's own ``print`` (see the loader), which is safe
    inside a test process; a dedicated server process calls this for full fidelity.
    """
    builtins.print = make_print_to_logger()


def configure_logging(*folders: Path, level: str | int | None = None) -> Path | None:
    """Install the default azmlinfsrv handler, or the first ``logging.json`` found in ``folders``.

    ``level`` (e.g. ``$AZUREML_LOG_LEVEL``, which azmlinfsrv parses but ignores)
    sets the ``azmlinfsrv`` logger's level; default INFO. Returns the ``logging.json`` used, if
    any. Meant for server processes, not test processes.
    """
    for folder in folders:
        candidate = folder / "logging.json"
        if candidate.is_file():
            with open(candidate, encoding="utf-8") as handle:
                logging.config.dictConfig(json.load(handle))
            logging.getLogger(SERVER_LOGGER).info("Loaded logging config from %s", candidate)
            return candidate
    if not logging.root.handlers:
        # azmlinfsrv's process has a root handler in logging's basic format, so a script's own
        # `logging.getLogger("mine").warning("x")` prints "WARNING:mine:x"; without one, Python's
        # last-resort handler would print the bare message.
        logging.basicConfig()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(UtcFormatter())
    server = logging.getLogger(SERVER_LOGGER)
    server.handlers[:] = [handler]
    server.setLevel(logging.INFO if level is None else _level(level))
    server.propagate = False
    return None


def walk_tree(path: str, depth: int = 0, indent: int = 4) -> Iterator[str]:
    """Lines of an indented listing of ``path`` (folders end with the separator), sorted names."""
    path = os.path.normpath(path)
    name = os.path.basename(path.rstrip(os.sep))
    pad = " " * depth * indent
    if os.path.isdir(path):
        yield f"{pad}{name}{os.sep}"
        for child in sorted(os.listdir(path)):
            yield from walk_tree(os.path.join(path, child), depth + 1, indent)
    else:
        yield f"{pad}{name}"


def log_model_dir_tree(logger: logging.Logger, model_dir: str | None) -> None:
    """After a failed ``init()``: show what the script could see, up to 200 lines (azmlinfsrv)."""
    if not model_dir or not os.path.exists(model_dir):
        return
    logger.info("Model Directory Contents:")
    lines = walk_tree(model_dir)
    for count, line in enumerate(lines):
        if count == MODEL_TREE_LINE_LIMIT:
            logger.info("Output Truncated. First %d lines shown.", MODEL_TREE_LINE_LIMIT)
            break
        logger.info(line)


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        from modelstore.errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return value
