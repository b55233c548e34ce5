"""What every benchmark shares: the Figure row, statistics, the table, the machine, the README block.

A benchmark module exposes ``run(quick: bool = False) -> list[Figure]`` and a ``main()`` that
prints its own table, so each one runs alone (``python -m bench.cold_start``) or through
``python -m bench.run``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SEED_JOB_MD = SHARED / "seed-sensor-job.md"
README = REPO / "bench" / "README.md"
FIGURES_START = "<!-- bench:figures:start -->"
FIGURES_END = "<!-- bench:figures:end -->"


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to (a server that did not start, ...)."""


@dataclass(frozen=True)
class Figure:
    """One measured figure with what it is compared against.

    ``baseline`` names the comparison (and its value, in ``baseline_value``, in the same unit);
    ``ratio`` is value / baseline_value when both exist. ``note`` says how to read it.
    """

    benchmark: str
    name: str
    value: float | None
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value


def median(values: Sequence[float]) -> float:
    if not values:
        raise BenchError("no samples")
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    if not values:
        raise BenchError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def fmt_number(value: float | None) -> str:
    """A compact human form: 3 significant digits, thousands separated, no exponent below 1e-6."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.3g}" if magnitude < 100 else f"{value:.0f}"
    if magnitude >= 1e-6:
        digits = 2 - math.floor(math.log10(magnitude))
        return f"{value:.{digits}f}"
    return f"{value:.2e}"


def fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table of the figures (also readable as plain text)."""
    header = "| benchmark | figure | value | unit | baseline | ratio | how to read it |"
    lines = [header, "|---|---|---:|---|---|---:|---|"]
    for figure in figures:
        baseline = figure.baseline
        if figure.baseline_value is not None:
            baseline = f"{baseline} ({fmt_number(figure.baseline_value)})"
        lines.append(
            "| "
            + " | ".join(
                [
                    figure.benchmark,
                    figure.name,
                    fmt_number(figure.value),
                    figure.unit,
                    baseline or "-",
                    fmt_ratio(figure.ratio),
                    figure.note.replace("|", "/"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def machine() -> str:
    """One line naming the machine the figures were taken on."""
    uname = platform.uname()
    return (
        f"{uname.system} {uname.release} {uname.machine}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )


def figures_block(figures: Sequence[Figure], seconds: float, notes: Sequence[str] = ()) -> str:
    """The text that goes between the README's markers."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        FIGURES_START,
        f"Taken {stamp} on {machine()}; the whole run took {seconds:.0f} s.",
        "",
        table(figures),
    ]
    if notes:
        parts += ["", *[f"- {note}" for note in notes]]
    parts.append(FIGURES_END)
    return "\n".join(parts)


def replace_block(text: str, block: str) -> str:
    """``text`` with its figures block replaced by ``block`` (appended when there are no markers)."""
    start = text.find(FIGURES_START)
    end = text.find(FIGURES_END)
    if start == -1 or end == -1 or end < start:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    return text[:start] + block + text[end + len(FIGURES_END) :]


def merged_block(
    text: str, figures: Sequence[Figure], seconds: float, notes: Sequence[str], rerun: Sequence[str]
) -> str:
    """The figures block of ``text`` with only the ``rerun`` benchmarks' rows and notes replaced.

    Rows and notes of every other benchmark stay as they were, and so does the line saying when
    the whole run was taken; a line says what was re-run and when. New rows go where that
    benchmark's rows were (at the end of the table when it had none).
    """
    start, end = text.find(FIGURES_START), text.find(FIGURES_END)
    if start == -1 or end == -1 or end < start:
        return figures_block(figures, seconds, notes)
    lines = text[start + len(FIGURES_START) : end].strip("\n").splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| benchmark |")]
    stamps = [line for line in lines if line.startswith(("Taken ", "Re-run "))]
    kept_notes = [line for line in lines if line.startswith("- ")]

    def benchmark_of(row: str) -> str:
        return row.split("|")[1].strip()

    new_rows = table(figures).splitlines()[2:]
    merged: list[str] = []
    for row in rows:
        if benchmark_of(row) not in rerun:
            merged.append(row)
        elif new_rows:
            merged += new_rows
            new_rows = []
    merged += new_rows
    kept_notes = [line for line in kept_notes if line[2:].split(":", 1)[0] not in rerun]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    stamps.append(f"Re-run {stamp} on {machine()}: {', '.join(rerun)} ({seconds:.0f} s).")
    parts = [FIGURES_START, "  \n".join(stamps), "", *table([]).splitlines(), *merged]
    if kept_notes or notes:
        parts += ["", *kept_notes, *[f"- {note}" for note in notes]]
    parts.append(FIGURES_END)
    return "\n".join(parts)


def write_figures(
    figures: Sequence[Figure],
    seconds: float,
    notes: Sequence[str] = (),
    path: Path = README,
    *,
    rerun: Sequence[str] = (),
) -> None:
    """Write the figures block of the README: the whole block, or with ``rerun`` (the names of the
    benchmarks that ran) only their rows and notes, keeping every other benchmark's."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Formica benchmarks\n"
    block = (
        merged_block(text, figures, seconds, notes, rerun)
        if rerun
        else figures_block(figures, seconds, notes)
    )
    path.write_text(replace_block(text, block), encoding="utf-8")


def standalone(run: Callable[[bool], list[Figure]], description: str) -> None:
    """The ``main()`` of a benchmark module: parse ``--quick``, run, print the table."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    arguments = parser.parse_args()
    figures = run(arguments.quick)
    print(table(figures))
    sys.stdout.flush()
