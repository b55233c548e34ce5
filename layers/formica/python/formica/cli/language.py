"""``formica`` subcommands of the job language: validate, graph, schema, render."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from formica.jobs.errors import DefinitionError
from formica.jobs.graph import to_mermaid
from formica.jobs.parsing import parse_definition
from formica.jobs.schema import fields_markdown, job_definition_schema_json
from formica.jobs.templates import render, validation_context


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def validate_command(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            job = parse_definition(_read(path))
        except DefinitionError as exc:
            failed = True
            for problem in exc.problems:
                print(f"{path}: {problem}", file=sys.stderr)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            failed = True
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            continue
        print(f"{path}: OK (job_type {job.job_type}, {len(job.tasks)} tasks)")
    return 1 if failed else 0


def graph_command(args: argparse.Namespace) -> int:
    job = parse_definition(_read(args.file))
    sys.stdout.write(to_mermaid(job))
    return 0


def schema_command(args: argparse.Namespace) -> int:
    sys.stdout.write(fields_markdown() if args.markdown else job_definition_schema_json())
    return 0


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise DefinitionError(f"--param takes NAME=VALUE, got {pair!r}")
        params[name] = value
    return params


def render_command(args: argparse.Namespace) -> int:
    text = _read(args.file)
    sys.stdout.write(render(text, validation_context(params=_parse_params(args.param or []))))
    return 0


def register(subparsers: Any) -> None:
    """Add the job-language subcommands to the ``formica`` parser."""
    validate = subparsers.add_parser(
        "validate", help="validate job definitions", description="Validate job definition YAML files."
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML file ('-' reads stdin)")
    validate.set_defaults(handler=validate_command)

    graph = subparsers.add_parser(
        "graph",
        help="print a job's task flow as Mermaid",
        description="Print the task flow as a Mermaid flowchart.",
    )
    graph.add_argument("file", metavar="FILE")
    graph.set_defaults(handler=graph_command)

    schema = subparsers.add_parser("schema", help="print the JSON schema of job definitions")
    schema.add_argument(
        "--markdown", action="store_true", help="print the field reference of the docs instead"
    )
    schema.set_defaults(handler=schema_command)

    render_parser = subparsers.add_parser(
        "render", help="render a definition's templates with validation values (debugging)"
    )
    render_parser.add_argument("file", metavar="FILE")
    render_parser.add_argument("--param", action="append", metavar="NAME=VALUE", help="a request param")
    render_parser.set_defaults(handler=render_command)
