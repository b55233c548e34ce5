"""Build the Lambda layer (the ``formica`` library and its dependencies) without Docker.

The layer's third-party packages come from ``layers/requirements.lock``: exact versions with the
sha256 of the wheel pip picks for CPython 3.12 on manylinux2014 aarch64, installed by pip with
``--platform ... --only-binary=:all: --no-deps --require-hashes`` so the same lock always gives
the same layer. The local ``formica`` package is copied in next to them.

A build lands in ``.layer-build/<fingerprint>/python``; the fingerprint hashes the lock and every
library source file, so an unchanged tree reuses the previous build and ``cdk synth`` stays fast.

Two commands::

    python -m cdk.layer_build lock    # regenerate the lock from pyproject + the versions in .venv
    python -m cdk.layer_build build   # build (or reuse) the layer and print its directory
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = REPO_ROOT / "layers" / "requirements.lock"
LIBRARY_DIR = REPO_ROOT / "layers" / "formica" / "python" / "formica"
BUILD_ROOT = REPO_ROOT / ".layer-build"
PYPROJECT = REPO_ROOT / "pyproject.toml"

# The Lambda runtime the layer is built for: python3.12 on Graviton (Amazon Linux 2023, glibc 2.34).
TARGET_PYTHON_VERSION = "3.12"
TARGET_PLATFORM = "manylinux2014_aarch64"
TARGET_IMPLEMENTATION = "cp"
# Environment markers of that runtime, to evaluate the dependencies' conditional requirements.
TARGET_MARKERS: dict[str, str] = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "extra": "",
}
_COMPLETE_MARKER = ".complete"
_SKIPPED_NAMES = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".tmp")


class LayerBuildError(RuntimeError):
    """The layer could not be built or locked (pip failed, a package is missing, ...)."""


def _pip_target_args() -> list[str]:
    return [
        "--platform",
        TARGET_PLATFORM,
        "--only-binary=:all:",
        "--python-version",
        TARGET_PYTHON_VERSION,
        "--implementation",
        TARGET_IMPLEMENTATION,
    ]


def _library_files(library_dir: Path) -> Iterator[Path]:
    for path in sorted(library_dir.rglob("*")):
        relative = path.relative_to(library_dir)
        if any(part in _SKIPPED_NAMES or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIPPED_SUFFIXES):
            yield path


def layer_fingerprint(*, lock_file: Path = LOCK_FILE, library_dir: Path = LIBRARY_DIR) -> str:
    """A sha256 over the lock file and every library source file (names and contents).

    Parameters
    ----------
    lock_file
        The pinned requirements of the layer.
    library_dir
        The ``formica`` package directory copied into the layer.
    """
    digest = hashlib.sha256()
    digest.update(b"target:" + " ".join(_pip_target_args()).encode())
    digest.update(b"lock:" + lock_file.read_bytes())
    for path in _library_files(library_dir):
        digest.update(b"file:" + path.relative_to(library_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _copy_library(library_dir: Path, destination: Path) -> None:
    for source in _library_files(library_dir):
        target = destination / source.relative_to(library_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def build_layer(
    *,
    lock_file: Path = LOCK_FILE,
    library_dir: Path = LIBRARY_DIR,
    build_root: Path = BUILD_ROOT,
    python: str = sys.executable,
) -> Path:
    """Build the layer directory (``<dir>/python/...``), or reuse the build for the same inputs.

    Returns
    -------
    Path
        The directory to hand to ``aws_lambda.Code.from_asset``.

    Raises
    ------
    LayerBuildError
        When pip fails (no network, a version without an aarch64 wheel, a hash mismatch).
    """
    if not lock_file.is_file():
        raise LayerBuildError(f"layer lock file missing: {lock_file}")
    if not (library_dir / "__init__.py").is_file():
        raise LayerBuildError(f"formica library not found: {library_dir}")
    fingerprint = layer_fingerprint(lock_file=lock_file, library_dir=library_dir)[:20]
    output = build_root / fingerprint
    if (output / _COMPLETE_MARKER).is_file():
        return output

    build_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{fingerprint}.", suffix=".tmp", dir=build_root))
    try:
        site = staging / "python"
        command = [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--no-deps",
            "--require-hashes",
            *_pip_target_args(),
            "--target",
            str(site),
            "--requirement",
            str(lock_file),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LayerBuildError(f"pip could not build the layer: {result.stderr.strip()[-2000:]}")
        # Console scripts are of no use in a layer and point at this machine's interpreter.
        shutil.rmtree(site / "bin", ignore_errors=True)
        _copy_library(library_dir, site / "formica")
        (staging / _COMPLETE_MARKER).write_text(fingerprint + "\n")
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_stale_builds(build_root, keep=output)
    return output


def _remove_stale_builds(build_root: Path, *, keep: Path) -> None:
    for entry in build_root.iterdir():
        if entry != keep and entry.is_dir() and not entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True)


def runtime_closure(requirements: Iterable[str]) -> dict[str, str]:
    """Every distribution the requirements need on the Lambda runtime, with its installed version.

    Versions are read from this interpreter's installed distributions (the project's .venv), and
    conditional requirements are evaluated for python3.12 on linux aarch64.

    Raises
    ------
    LayerBuildError
        When a needed distribution is not installed here, or its version breaks a specifier.
    """
    pinned: dict[str, str] = {}
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET_MARKERS):
            continue
        name = canonicalize_name(requirement.name)
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise LayerBuildError(f"{requirement.name} is needed by the layer but not installed") from exc
        if not requirement.specifier.contains(version, prereleases=True):
            raise LayerBuildError(f"installed {requirement.name} {version} breaks {requirement}")
        if name in pinned:
            continue
        pinned[name] = version
        pending.extend(Requirement(text) for text in importlib.metadata.requires(requirement.name) or [])
    return dict(sorted(pinned.items()))


def project_runtime_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The ``[project].dependencies`` of pyproject.toml."""
    with pyproject.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return list(project["dependencies"])


def _wheel_hashes(pins: dict[str, str], python: str) -> dict[str, list[str]]:
    """Download the wheels pip would pick for the target and hash them."""
    with tempfile.TemporaryDirectory(prefix="formica-lock-") as scratch:
        spec = Path(scratch) / "pins.txt"
        spec.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
        wheels = Path(scratch) / "wheels"
        command = [
            python,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            *_pip_target_args(),
            "--dest",
            str(wheels),
            "--requirement",
            str(spec),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LayerBuildError(
                f"pip could not download the layer's wheels: {result.stderr.strip()[-2000:]}"
            )
        hashes: dict[str, list[str]] = {}
        for wheel in sorted(wheels.glob("*.whl")):
            name = canonicalize_name(wheel.name.split("-")[0])
            hashes.setdefault(name, []).append(hashlib.sha256(wheel.read_bytes()).hexdigest())
    missing = sorted(set(pins) - set(hashes))
    if missing:
        raise LayerBuildError(f"no wheel downloaded for: {', '.join(missing)}")
    return hashes


def render_lock(pins: dict[str, str], hashes: dict[str, list[str]]) -> str:
    """The lock file's text: a header, then ``name==version`` with its wheel hashes."""
    lines = [
        "# The Lambda layer's third-party packages, for CPython 3.12 on manylinux2014 aarch64.",
        "# Generated by `python -m cdk.layer_build lock` from pyproject's [project].dependencies",
        "# and the versions installed in .venv; do not edit by hand.",
    ]
    for name, version in pins.items():
        digests = " ".join(f"--hash=sha256:{digest}" for digest in hashes[name])
        lines.append(f"{name}=={version} {digests}")
    return "\n".join(lines) + "\n"


def write_lock(
    *, pyproject: Path = PYPROJECT, lock_file: Path = LOCK_FILE, python: str = sys.executable
) -> Path:
    """Regenerate the lock file from pyproject's runtime dependencies and the installed versions."""
    pins = runtime_closure(project_runtime_requirements(pyproject))
    lock_file.write_text(render_lock(pins, _wheel_hashes(pins, python)))
    return lock_file


def read_lock(lock_file: Path = LOCK_FILE) -> dict[str, str]:
    """``{canonical name: version}`` of every package pinned in the lock."""
    pins: dict[str, str] = {}
    for raw in lock_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line.split(" --hash", 1)[0])
        (specifier,) = tuple(requirement.specifier)
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdk.layer_build", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["lock", "build"])
    arguments = parser.parse_args(argv)
    if arguments.command == "lock":
        print(write_lock())
    else:
        print(build_layer())
    return 0


if __name__ == "__main__":
    sys.exit(main())
