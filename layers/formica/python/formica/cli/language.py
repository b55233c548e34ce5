"""``formica`` subcommands of the job language: validate, graph, schema, render."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from formica.jobs.errors import DefinitionError, Problem
from formica.jobs.graph import to_mermaid
from formica.jobs.parsing import parse_definition
from formica.jobs.schema import fields_markdown, job_definition_schema_json
from formica.jobs.templates import render, validation_context


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def counted(count: int, noun: str) -> str:
    """``1 task``, ``2 tasks``: a count with its noun in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _validate_one(path: str) -> dict[str, Any]:
    """One file's result: ``ok`` with job_type and tasks, or the problems (as the API's details)."""
    try:
        job = parse_definition(_read(path))
    except DefinitionError as exc:
        return {"file": path, "ok": False, "problems": [problem.to_dict() for problem in exc.problems]}
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem(f"cannot read: {exc}")
        return {"file": path, "ok": False, "problems": [problem.to_dict()]}
    return {"file": path, "ok": True, "job_type": job.job_type, "tasks": len(job.tasks)}


def validate_command(args: argparse.Namespace) -> int:
    results = [_validate_one(path) for path in args.files]
    if args.json:
        print(json.dumps({"files": results}, indent=2, sort_keys=True))
    else:
        for result in results:
            if result["ok"]:
                summary = f"job_type {result['job_type']}, {counted(result['tasks'], 'task')}"
                print(f"{result['file']}: OK ({summary})")
            for problem in result.get("problems", []):
                print(f"{result['file']}: {problem['text']}", file=sys.stderr)
    return 0 if all(result["ok"] for result in results) else 1


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
    validate.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: per file, ok with job_type and tasks, or its problems",
    )
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
