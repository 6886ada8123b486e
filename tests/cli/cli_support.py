"""What the CLI tests share: walking every subcommand's parser."""

from __future__ import annotations

import argparse
from collections.abc import Iterator


def subparsers(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand's parser under ``parser``, with its full name (``sim init``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from subparsers(sub, f"{prefix}{name} ")
