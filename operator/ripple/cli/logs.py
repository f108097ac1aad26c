"""Log lines for people watching a component run: deliveries and scaling, the rest from warnings up."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(*, every_delivery: bool = False) -> None:
    """Deliveries that were retried or dead-lettered, and scaling, in full; every successful delivery too when
    ``every_delivery`` (``ripple dev`` and ``ripple dispatcher --log-deliveries``). A line per success is what a
    person watching wants and what a busy cluster does not: at thousands of deliveries a second it was a fifth
    of the dispatcher's CPU (profiled), and as much again in the cluster's log pipeline."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    levels = {"ripple.delivery": logging.DEBUG if every_delivery else logging.INFO, "ripple.scaling": logging.INFO}
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
