"""Cold start: what importing each Lambda handler module costs, and proof that import does no AWS work.

For every ``functions/<name>/app.py`` a fresh interpreter runs ``python -X importtime -c "import
functions.<name>.app"`` from the repository root; the figure is the sum of the cumulative times of
the top-level imports the statement caused (interpreter start-up excluded), median of N runs,
interleaved with the baseline (``bench/bare_handler.py``: a powertools handler importing only
Logger) so both see the same noise, and with a floor (``bench/floor_handler.py``: Logger, Tracer,
boto3 and pydantic, what any thin task handler of this design imports). A second fresh
interpreter per module counts, during the import only, boto3/botocore clients created, sockets
connected and FORMICA_* environment reads: the handler contract says all three are zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO, BenchError, Figure, median, standalone

BENCHMARK = "cold start"
BASELINE_MODULE = "bench.bare_handler"
CONTROL_MODULE = "bench.probe_control"
FLOOR_MODULE = "bench.floor_handler"
MARK = "@@formica-bench-mark@@"
HEAVY_MODULES = ("boto3", "botocore", "httpx", "jinja2", "yaml", "moto")
"""Libraries worth noting when a handler pulls them in at import (each costs tens of ms)."""

# Run in a fresh interpreter: hooks are installed first (importing botocore and boto3 themselves),
# then only the module's own import is watched.
_PROBE = r"""
import json, os, socket, sys
import boto3.session, botocore.client
counts = {"boto3_clients": 0, "botocore_clients": 0, "socket_connects": 0, "formica_env_reads": [],
          "botocore_services": []}
watching = False

def wrap(owner, name, key):
    original = getattr(owner, name)
    def wrapper(self, *args, **kwargs):
        if watching:
            counts[key] += 1
        return original(self, *args, **kwargs)
    setattr(owner, name, wrapper)

wrap(boto3.session.Session, "client", "boto3_clients")
wrap(boto3.session.Session, "resource", "boto3_clients")
_client_init = botocore.client.BaseClient.__init__
def client_init(self, *args, **kwargs):
    _client_init(self, *args, **kwargs)
    if watching:
        counts["botocore_clients"] += 1
        counts["botocore_services"].append(self.meta.service_model.service_name)
botocore.client.BaseClient.__init__ = client_init
wrap(socket.socket, "connect", "socket_connects")
wrap(socket.socket, "connect_ex", "socket_connects")
_getitem = os._Environ.__getitem__
def getitem(self, key):
    if watching and str(key).startswith("FORMICA_"):
        counts["formica_env_reads"].append(str(key))
    return _getitem(self, key)
os._Environ.__getitem__ = getitem

watching = True
__import__(sys.argv[1])
watching = False
print(json.dumps(counts))
"""


class ColdStartError(BenchError):
    """A handler module failed to import in a fresh interpreter."""


@dataclass(frozen=True)
class ImportEntry:
    """One line of ``-X importtime`` output."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int


@dataclass(frozen=True)
class ImportProbe:
    """What a module's import did besides taking time."""

    boto3_clients: int
    botocore_clients: int
    socket_connects: int
    formica_env_reads: tuple[str, ...]
    botocore_services: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (
            self.boto3_clients or self.botocore_clients or self.socket_connects or self.formica_env_reads
        )


def handler_modules(repo: Path = REPO) -> list[str]:
    """``functions.<name>.app`` for every function folder that has an app.py, sorted."""
    return sorted(f"functions.{path.parent.name}.app" for path in (repo / "functions").glob("*/app.py"))


def parse_importtime(stderr: str, mark: str | None = MARK) -> list[ImportEntry]:
    """The entries printed after ``mark`` (every entry when ``mark`` is None)."""
    lines = stderr.splitlines()
    if mark is not None:
        try:
            lines = lines[lines.index(mark) + 1 :]
        except ValueError as exc:
            raise ColdStartError("the importtime output has no start mark") from exc
    entries = []
    for line in lines:
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the column header
        name_field = fields[2]
        indent = len(name_field) - len(name_field.lstrip(" ")) - 1
        entries.append(
            ImportEntry(
                module=name_field.strip(),
                self_us=int(fields[0]),
                cumulative_us=int(fields[1]),
                depth=max(0, indent // 2),
            )
        )
    return entries


def top_level_seconds(entries: Iterable[ImportEntry]) -> float:
    """Seconds spent in the top-level imports (their cumulative times include every nested one)."""
    return sum(entry.cumulative_us for entry in entries if entry.depth == 0) / 1e6


def _clean_env() -> dict[str, str]:
    # The handler contract: importing needs no FORMICA_* or AWS_* setting. Run without any.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FORMICA_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    # Should a module break the rule, its client must not go looking for credentials off this host.
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def time_import(module: str) -> tuple[float, list[ImportEntry]]:
    """(seconds, entries) of one import of ``module`` in a fresh interpreter."""
    code = f"import sys; sys.stderr.write({MARK!r} + '\\n'); sys.stderr.flush(); import {module}"
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise ColdStartError(f"import {module} failed:\n{completed.stderr[-2000:]}")
    entries = parse_importtime(completed.stderr)
    return top_level_seconds(entries), entries


def probe_import(module: str) -> ImportProbe:
    """Count clients, connections and FORMICA_* reads made while ``module`` is imported."""
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise ColdStartError(f"probe of {module} failed:\n{completed.stderr[-2000:]}")
    data = json.loads(completed.stdout.strip().splitlines()[-1])
    return ImportProbe(
        boto3_clients=int(data["boto3_clients"]),
        botocore_clients=int(data["botocore_clients"]),
        socket_connects=int(data["socket_connects"]),
        formica_env_reads=tuple(data["formica_env_reads"]),
        botocore_services=tuple(data["botocore_services"]),
    )


def heavy_imports(entries: Iterable[ImportEntry], heavy: Sequence[str] = HEAVY_MODULES) -> list[str]:
    """Which of the heavy libraries an import pulled in (top packages only)."""
    names = {entry.module.split(".")[0] for entry in entries}
    return [name for name in heavy if name in names]


def biggest_imports(entries: Sequence[ImportEntry], count: int = 3) -> list[tuple[str, float]]:
    """The first-party and third-party modules below the top level that cost the most, in ms."""
    inner = [entry for entry in entries if entry.depth == 1]
    inner.sort(key=lambda entry: entry.cumulative_us, reverse=True)
    return [(entry.module, entry.cumulative_us / 1000) for entry in inner[:count]]


def probe_note(probe: ImportProbe) -> str:
    """How to read a probe: sockets, env reads, and the clients libraries made (not Formica's code)."""
    reads = ",".join(probe.formica_env_reads)
    note = f"sockets {probe.socket_connects}; FORMICA_* env reads {len(probe.formica_env_reads)} {reads}"
    note = note.rstrip()
    others = probe.botocore_clients - probe.boto3_clients
    if others:
        services = ",".join(sorted(set(probe.botocore_services)))
        note += f"; botocore clients made by libraries: {others} ({services})"
        if "xray" in services:
            note += ": the X-Ray SDK's sampler, built when powertools' Tracer imports aws_xray_sdk"
    return note


@dataclass(frozen=True)
class ModuleResult:
    module: str
    seconds: float
    probe: ImportProbe
    heavy: list[str]
    biggest: list[tuple[str, float]]


def measure(
    repeats: int = 7, modules: Sequence[str] | None = None
) -> tuple[float, float, list[ModuleResult]]:
    """(baseline seconds, floor seconds, per-module results), medians of ``repeats`` interleaved runs."""
    targets = list(modules if modules is not None else handler_modules())
    everything = [BASELINE_MODULE, FLOOR_MODULE, *targets]
    samples: dict[str, list[float]] = {name: [] for name in everything}
    last_entries: dict[str, list[ImportEntry]] = {}
    for name in everything:  # warm-up: byte-compile once, outside the samples
        time_import(name)
    for _ in range(repeats):
        for name in everything:
            seconds, entries = time_import(name)
            samples[name].append(seconds)
            last_entries[name] = entries
    results = [
        ModuleResult(
            module=name,
            seconds=median(samples[name]),
            probe=probe_import(name),
            heavy=heavy_imports(last_entries[name]),
            biggest=biggest_imports(last_entries[name]),
        )
        for name in targets
    ]
    return median(samples[BASELINE_MODULE]), median(samples[FLOOR_MODULE]), results


def run(quick: bool = False) -> list[Figure]:
    baseline, floor, results = measure(repeats=2 if quick else 7)
    figures = [
        Figure(
            BENCHMARK,
            "floor: Logger+Tracer+boto3+pydantic handler",
            floor * 1000,
            "ms",
            baseline="bare powertools Logger handler",
            baseline_value=baseline * 1000,
            note="bench/floor_handler.py: what any thin task handler of this design must import",
        )
    ]
    for result in results:
        name = result.module.removeprefix("functions.").removesuffix(".app")
        biggest = ", ".join(f"{module} {ms:.0f} ms" for module, ms in result.biggest)
        note = (
            f"{abs(result.seconds - floor) * 1000:.0f} ms {'above' if result.seconds >= floor else 'below'} "
            "the floor; "
            f"imports {'+'.join(result.heavy) or 'no heavy library'}; biggest: {biggest}"
        )
        figures.append(
            Figure(
                BENCHMARK,
                f"{name} import",
                result.seconds * 1000,
                "ms",
                baseline="bare powertools Logger handler",
                baseline_value=baseline * 1000,
                note=note,
            )
        )
    for result in results:
        name = result.module.removeprefix("functions.").removesuffix(".app")
        probe = result.probe
        figures.append(
            Figure(
                BENCHMARK,
                f"{name}: boto3 clients at import",
                probe.boto3_clients,
                "clients",
                baseline="contract: 0",
                note=probe_note(probe),
            )
        )
    control = probe_import(CONTROL_MODULE)
    figures.append(
        Figure(
            BENCHMARK,
            "probe control: clients at import",
            control.boto3_clients,
            "clients",
            baseline="expected: 1",
            baseline_value=1,
            note=(
                "bench/probe_control.py creates one client and reads one FORMICA_* variable on purpose: "
                f"counted {control.boto3_clients} client(s), {len(control.formica_env_reads)} read(s), "
                "so the zeros above are measured, not assumed"
            ),
        )
    )
    return figures


def main() -> None:
    standalone(run, __doc__ or BENCHMARK)


if __name__ == "__main__":
    main()
