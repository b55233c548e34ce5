"""``formica``: the command line.

Subcommands live in their own modules, each with ``register(subparsers)`` adding parsers whose
``handler(args) -> int`` does the work. To add commands, add the module to COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence

from formica.jobs.errors import DefinitionError

COMMAND_MODULES: tuple[str, ...] = (
    "formica.cli.language",
    "formica.cli.dev",
    "formica.cli.remote",
    "formica.cli.worker",
    "formica.cli.messaging",
)
"""Modules that register subcommands, in help order."""


def formica_version() -> str:
    """The installed distribution's version ("unknown" where Formica runs from a copied tree)."""
    try:
        return importlib.metadata.version("formica")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="formica",
        description="Formica: formicary-style YAML jobs on AWS serverless, and locally.",
    )
    parser.add_argument("--version", action="version", version=f"formica {formica_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status. Errors are messages, never tracebacks."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.handler(args))
    except DefinitionError as exc:
        for problem in exc.problems:
            print(f"formica: {problem}", file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        print(f"formica: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
