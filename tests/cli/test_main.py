"""``ripple``: every command the parser offers runs from its own module, ``ripple.cli.<command>``."""

from __future__ import annotations

import argparse
import importlib
import inspect
from pathlib import Path

import pytest

from ripple.api.crds import KINDS, render
from ripple.api.models import GROUP
from ripple.cli import main
from ripple.cli.parser import build_parser

COMMANDS = {"dev", "send", "function", "ingress", "dispatcher", "autoscaler", "operator", "crds", "status", "dlq",
            "source", "events", "replay", "console"}


def commands() -> set[str]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(action.choices)


def test_the_parser_offers_every_command():
    assert commands() == COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_a_module_with_an_async_run(command: str):
    module = importlib.import_module(f"ripple.cli.{command}")
    assert inspect.iscoroutinefunction(module.run)
    assert list(inspect.signature(module.run).parameters) == ["args"]


def test_main_runs_the_chosen_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["crds", "--output", str(tmp_path / "crds")]) == 0
    written = {tmp_path / "crds" / f"{GROUP}_{info.plural}.yaml": info for info in KINDS}
    assert sorted(capsys.readouterr().out.split()) == sorted(str(path) for path in written)
    for path, info in written.items():
        assert path.read_text() == render(info)
