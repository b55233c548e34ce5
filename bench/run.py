"""`make bench`: run every benchmark, print one table, rewrite the figures block of bench/README.md.

Each benchmark runs alone too (``python -m bench.cold_start`` ...). A benchmark that fails is
reported in the table and the notes instead of stopping the others. ``--quick`` is a smoke run
with fewer repetitions; ``--no-write`` leaves the README alone; ``--only NAME`` runs some.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from bench.common import README, Figure, table, write_figures

BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("cost", "bench.cost"),
    ("walk", "bench.walk_local"),
    ("cold_start", "bench.cold_start"),
    ("language", "bench.language"),
    ("api", "bench.api_load"),
)
"""(name, module with ``run(quick) -> list[Figure]``), in the order they run and print."""


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
            run: Callable[[bool], list[Figure]] = module.run
            produced = run(quick)
            notes += list(getattr(module, "NOTES", ()))
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
        write_figures(figures, seconds, notes)
        print(f"figures written to {README}")
    return 0 if all(figure.value is not None or "skipped" in figure.note for figure in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
