"""``ripple crds``: write the CustomResourceDefinitions generated from the models."""

from __future__ import annotations

import argparse

from ripple.api.crds import write_crds

__all__ = ["run"]


async def run(args: argparse.Namespace) -> int:
    for path in write_crds(args.output):
        print(path)
    return 0
