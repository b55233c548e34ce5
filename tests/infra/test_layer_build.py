"""The layer build: pip's target flags, the library copied in, cached by a fingerprint; the lock.

pip itself is replaced by a fake interpreter (a script that records its arguments and installs a
dummy package into --target), so these tests need no network.
"""

from __future__ import annotations

import stat
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cdk.layer_build import (
    LOCK_FILE,
    PYPROJECT,
    LayerBuildError,
    build_layer,
    layer_fingerprint,
    read_lock,
    render_lock,
)

FAKE_PIP = """#!{python}
import sys, pathlib
args = sys.argv[1:]
log = pathlib.Path({log!r})
log.write_text(log.read_text() + " ".join(args) + "\\n" if log.exists() else " ".join(args) + "\\n")
if {fail!r}:
    sys.stderr.write("ERROR: No matching distribution found for nothing==0\\n")
    sys.exit(1)
target = pathlib.Path(args[args.index("--target") + 1])
(target / "somepkg").mkdir(parents=True)
(target / "somepkg" / "__init__.py").write_text("")
(target / "bin").mkdir()
(target / "bin" / "somecli").write_text("#!/usr/bin/python")
"""


@pytest.fixture
def library(tmp_path: Path) -> Path:
    package = tmp_path / "src" / "formica"
    (package / "jobs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "jobs" / "models.py").write_text("X = 1\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "models.cpython-311.pyc").write_bytes(b"\0")
    return package


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text("pyyaml==6.0.4 --hash=sha256:" + "0" * 64 + "\n")
    return path


def fake_python(tmp_path: Path, *, fail: bool = False) -> tuple[str, Path]:
    log = tmp_path / "pip-calls.log"
    script = tmp_path / "fake-python"
    script.write_text(FAKE_PIP.format(python=sys.executable, log=str(log), fail=fail))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


def test_build_installs_the_lock_for_lambda_and_copies_the_library(
    tmp_path: Path, library: Path, lock: Path
) -> None:
    python, log = fake_python(tmp_path)
    output = build_layer(lock_file=lock, library_dir=library, build_root=tmp_path / "build", python=python)

    arguments = log.read_text().split()
    for expected in (
        "--platform manylinux2014_aarch64",
        "--only-binary=:all:",
        "--python-version 3.12",
        "--implementation cp",
        "--no-deps",
        "--require-hashes",
    ):
        assert expected in " ".join(arguments)
    target = Path(arguments[arguments.index("--target") + 1])
    # pip fills a staging directory next to the build, renamed into place once complete.
    assert target.name == "python"
    assert target.parent.parent == output.parent
    assert target.parent.name.startswith(output.name) and target.parent.name.endswith(".tmp")
    assert arguments[arguments.index("--requirement") + 1] == str(lock)
    assert (output / "python" / "somepkg" / "__init__.py").is_file()
    assert (output / "python" / "formica" / "jobs" / "models.py").read_text() == "X = 1\n"
    assert not (output / "python" / "formica" / "__pycache__").exists()
    assert not (output / "python" / "bin").exists()


def test_unchanged_inputs_reuse_the_build_and_changes_rebuild(
    tmp_path: Path, library: Path, lock: Path
) -> None:
    python, log = fake_python(tmp_path)
    build_root = tmp_path / "build"
    first = build_layer(lock_file=lock, library_dir=library, build_root=build_root, python=python)
    again = build_layer(lock_file=lock, library_dir=library, build_root=build_root, python=python)
    assert again == first
    assert len(log.read_text().splitlines()) == 1

    (library / "jobs" / "models.py").write_text("X = 2\n")
    rebuilt = build_layer(lock_file=lock, library_dir=library, build_root=build_root, python=python)
    assert rebuilt != first
    assert len(log.read_text().splitlines()) == 2
    assert sorted(path.name for path in build_root.iterdir()) == [rebuilt.name], "stale builds are removed"


def test_fingerprint_ignores_caches_but_not_sources_or_the_lock(library: Path, lock: Path) -> None:
    before = layer_fingerprint(lock_file=lock, library_dir=library)
    (library / "__pycache__" / "other.pyc").write_bytes(b"\1")
    assert layer_fingerprint(lock_file=lock, library_dir=library) == before
    (library / "new.py").write_text("")
    with_file = layer_fingerprint(lock_file=lock, library_dir=library)
    assert with_file != before
    lock.write_text(lock.read_text().replace("6.0.4", "6.0.3"))
    assert layer_fingerprint(lock_file=lock, library_dir=library) != with_file


def test_pip_failure_is_a_layer_build_error_and_leaves_no_build(
    tmp_path: Path, library: Path, lock: Path
) -> None:
    python, _ = fake_python(tmp_path, fail=True)
    build_root = tmp_path / "build"
    with pytest.raises(LayerBuildError, match="No matching distribution"):
        build_layer(lock_file=lock, library_dir=library, build_root=build_root, python=python)
    assert list(build_root.iterdir()) == []


def test_rendered_lock_reads_back(tmp_path: Path) -> None:
    text = render_lock(
        {"pyyaml": "6.0.4", "six": "1.17.0"}, {"pyyaml": ["a" * 64], "six": ["b" * 64, "c" * 64]}
    )
    assert "six==1.17.0 --hash=sha256:" + "b" * 64 + " --hash=sha256:" + "c" * 64 in text
    path = tmp_path / "requirements.lock"
    path.write_text(text)
    assert read_lock(path) == {"pyyaml": "6.0.4", "six": "1.17.0"}


def test_project_lock_pins_every_runtime_dependency_with_hashes() -> None:
    with PYPROJECT.open("rb") as handle:
        runtime = [Requirement(text) for text in tomllib.load(handle)["project"]["dependencies"]]
    pins = read_lock(LOCK_FILE)
    for requirement in runtime:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} missing from {LOCK_FILE.name}: run `python -m cdk.layer_build lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    for line in LOCK_FILE.read_text().splitlines():
        if line and not line.startswith("#"):
            assert "==" in line and "--hash=sha256:" in line, line
