"""The live flow page (``/ui/``): brokers, triggers and their subscribers as a graph with live counts, recent
events and their histories, dead letters and their redrive."""

from ripple.console.app import ConsoleSource, create_console_app

__all__ = ["ConsoleSource", "create_console_app"]
