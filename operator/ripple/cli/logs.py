"""Log lines for people watching a component run: deliveries and scaling, the rest from warnings up; as text, or
as one JSON object per line (``--log-format json``) for a cluster's log pipeline."""

from __future__ import annotations

import logging
import sys

from ripple.logformat import JsonFormatter

__all__ = ["LOG_FORMATS", "announce", "configure_logging", "configure_root"]

LOG_FORMATS = ("text", "json")
ROOT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_style = {"format": "text", "component": "ripple"}


def _formatter(text: str) -> logging.Formatter:
    if _style["format"] == "json":
        return JsonFormatter(_style["component"])
    return logging.Formatter(text, datefmt="%H:%M:%S")


def configure_root(*, log_format: str = "text", component: str = "ripple", verbose: bool = False) -> None:
    """The root logger's handler on stderr, in ``log_format``; every later :func:`configure_logging` follows it."""
    _style.update(format=log_format, component=component)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(ROOT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


def configure_logging(*, every_delivery: bool = False) -> None:
    """Deliveries that were retried or dead-lettered, and scaling, in full; every successful delivery too when
    ``every_delivery`` (``ripple dev`` and ``ripple dispatcher --log-deliveries``). A line per success is what a
    person watching wants and what a busy cluster does not: at thousands of deliveries a second it was a fifth
    of the dispatcher's CPU (profiled), and as much again in the cluster's log pipeline."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_formatter("%(asctime)s %(message)s"))
    levels = {"ripple.delivery": logging.DEBUG if every_delivery else logging.INFO, "ripple.scaling": logging.INFO}
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    if not logging.getLogger().handlers:
        configure_root(log_format=_style["format"], component=_style["component"])


def announce(text: str) -> None:
    """A line that says a component is up (``ingress listening on ...``) on stdout: as it is in the text format, as
    an info record in the JSON one, so that every line of a JSON log parses."""
    if _style["format"] == "json":
        record = logging.LogRecord("ripple.cli", logging.INFO, __file__, 0, text, None, None)
        text = JsonFormatter(_style["component"]).format(record)
    print(text, flush=True)
