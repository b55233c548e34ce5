"""`make bench`: run every benchmark, print one table, rewrite the figures block of bench/README.md.

Each benchmark runs alone too (``python -m bench.cold_start`` ...). A benchmark that fails is
reported in the table and the notes instead of stopping the others. ``--quick`` is a smoke run
with fewer repetitions; ``--no-write`` leaves the README alone; ``--only NAME`` runs some and
replaces only their figures in the README.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from bench.common import README, Figure, table, write_figures

BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("states", "bench.states_per_attempt"),
    ("cost", "bench.cost"),
    ("walk", "bench.walk_local"),
    ("cold_start", "bench.cold_start"),
    ("language", "bench.language"),
    ("api", "bench.api_load"),
    ("sandbox", "bench.sandbox"),
    ("forks", "bench.forks"),
    ("approvals", "bench.approvals"),
    ("task_fanout", "bench.task_fanout"),
    ("package_sizes", "bench.package_sizes"),
)
"""(name, module with ``run(quick) -> list[Figure]``), in the order they run and print.

``bench.states_per_attempt`` is D's (the walk's owner): it is called through ``figures_of`` whatever
shape its entry point has, and reported absent when the file is not there.
"""


def figures_of(name: str, module: Any, quick: bool) -> tuple[list[Figure], list[str]]:
    """Run one benchmark module: ``run(quick)``, else ``measure()``, else ``main()`` (its output kept)."""
    run = getattr(module, "run", None)
    if callable(run):
        return list(run(quick)), list(getattr(module, "NOTES", ()))
    measure = getattr(module, "measure", None)
    if callable(measure):
        return _as_figures(name, measure()), list(getattr(module, "NOTES", ()))
    main = getattr(module, "main", None)
    if callable(main):
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            main()
        text = output.getvalue().strip()
        print(text)
        return [], [f"{name}: see its own output above (no run() or measure() to tabulate)"]
    raise AttributeError(f"{module.__name__} has no run(), measure() or main()")


def _as_figures(name: str, result: Any) -> list[Figure]:
    if isinstance(result, list) and all(isinstance(item, Figure) for item in result):
        return result
    if isinstance(result, Mapping):
        return [
            Figure(name, str(key), float(value), "", note="as reported by the module")
            for key, value in result.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
    return [Figure(name, "result", None, "", note=repr(result)[:300])]


def run_all(names: Sequence[str], quick: bool) -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    notes: list[str] = []
    for name, module_name in BENCHMARKS:
        if names and name not in names:
            continue
        started = time.monotonic()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            figures.append(Figure(name, "not measured", None, "", note=f"skipped: {module_name} is absent"))
            notes.append(f"{name}: skipped, {module_name.replace('.', '/')}.py is absent")
            continue
        try:
            produced, module_notes = figures_of(name, module, quick)
            notes += module_notes
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            produced = [Figure(name, "not measured", None, "", note=f"{type(exc).__name__}: {exc}"[:300])]
            notes.append(f"{name}: not measured in this run ({type(exc).__name__}: {str(exc)[:200]})")
        figures += produced
        print(f"bench: {name} done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return figures, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {README.name}")
    parser.add_argument(
        "--only", action="append", default=[], choices=[name for name, _ in BENCHMARKS], help="run only these"
    )
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    figures, notes = run_all(arguments.only, arguments.quick)
    seconds = time.monotonic() - started
    print(table(figures))
    for note in notes:
        print(f"- {note}")
    print(f"\n{len(figures)} figures in {seconds:.0f} s")
    if not arguments.no_write:
        # --only keeps the other benchmarks' figures (they were not measured in this run)
        write_figures(figures, seconds, notes, rerun=arguments.only)
        print(f"figures written to {README}")
    return 0 if all(figure.value is not None or "skipped" in figure.note for figure in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
