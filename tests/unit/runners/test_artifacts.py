"""Artifact collection, the `when` rule, uploads and dependency downloads (in-memory blob store)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from formica.jobs.models import TaskDefinition
from formica.runners.artifacts import (
    ERR_ARTIFACT_PATH,
    ArtifactError,
    ArtifactPathError,
    attach_artifacts,
    collect_artifacts,
    download_dependencies,
    normalize_when,
    should_upload,
    upload_artifacts,
)
from formica.runners.base import TaskOutcome
from formica.store.blobs import BlobStoreError
from formica.store.schema import artifact_key, log_key

from tests.fakes.blobs import InMemoryBlobStore
from tests.unit.runners.conftest import make_context


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    (root / "reports" / "deep").mkdir(parents=True)
    (root / "date.txt").write_text("today\n")
    (root / "out.json").write_text("{}")
    (root / "reports" / "a.xml").write_text("<a/>")
    (root / "reports" / "deep" / "b.txt").write_text("b")
    (root / ".hidden").write_text("h")
    return root


def names(paths: list[Path], root: Path) -> list[str]:
    return [path.relative_to(root).as_posix() for path in paths]


def test_plain_file_directory_and_globs(workdir: Path) -> None:
    assert names(collect_artifacts(workdir, ["date.txt"]), workdir) == ["date.txt"]
    assert names(collect_artifacts(workdir, ["reports"]), workdir) == ["reports/a.xml", "reports/deep/b.txt"]
    assert names(collect_artifacts(workdir, ["*.txt"]), workdir) == ["date.txt"]
    assert names(collect_artifacts(workdir, ["**/*.txt"]), workdir) == ["date.txt", "reports/deep/b.txt"]


def test_each_file_once_and_unmatched_patterns_reported(workdir: Path) -> None:
    unmatched: list[str] = []

    found = collect_artifacts(workdir, ["date.txt", "*.txt", "missing.log", "nothing/*"], unmatched=unmatched)

    assert names(found, workdir) == ["date.txt"]
    assert unmatched == ["missing.log", "nothing/*"]


@pytest.mark.parametrize("pattern", ["../secret", "reports/../../x", "/etc/passwd", "~/x", "  "])
def test_escaping_patterns_are_refused(workdir: Path, pattern: str) -> None:
    with pytest.raises(ArtifactPathError):
        collect_artifacts(workdir, [pattern])


@pytest.mark.parametrize(
    "patterns", [["link.txt"], ["reports"], ["*.txt"], ["reports/linkdir/x.txt"], ["reports/linkdir"]]
)
def test_symlinks_pointing_outside_are_refused(workdir: Path, tmp_path: Path, patterns: list[str]) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (tmp_path / "outside-dir").mkdir()
    (tmp_path / "outside-dir" / "x.txt").write_text("x")
    os.symlink(outside, workdir / "link.txt")
    os.symlink(tmp_path / "outside-dir", workdir / "reports" / "linkdir")

    with pytest.raises(ArtifactPathError, match="leaves the working directory"):
        collect_artifacts(workdir, patterns)


def test_symlinks_that_stay_inside_are_collected(workdir: Path) -> None:
    os.symlink(workdir / "date.txt", workdir / "inside-link.txt")
    os.symlink(workdir / "reports" / "deep", workdir / "reports" / "inside-dir")

    found = names(collect_artifacts(workdir, ["*.txt", "reports"]), workdir)

    assert "inside-link.txt" in found
    assert not any("inside-dir" in name for name in found)  # symlinked directories are not followed


@pytest.mark.parametrize(
    ("when", "succeeded", "expected"),
    [
        ("onSuccess", True, True),
        ("onSuccess", False, False),
        ("ONSUCCESS", True, True),
        ("onFailed", False, True),
        ("onfailed", True, False),
        ("always", True, True),
        ("Always", False, True),
        ("never", True, False),
    ],
)
def test_should_upload(when: str, succeeded: bool, expected: bool) -> None:
    assert should_upload(when, succeeded) is expected


def test_unknown_when_is_refused() -> None:
    with pytest.raises(ValueError, match="onSuccess, onFailed or always"):
        normalize_when("sometimes")
    assert normalize_when(" on_failure ") == "onFailed"


def test_upload_records_keys_sizes_hashes_and_content_types(workdir: Path) -> None:
    store = InMemoryBlobStore()
    ctx = make_context(task_type="third")
    files = collect_artifacts(workdir, ["date.txt", "out.json", "reports"])

    infos = upload_artifacts(store, workdir, files, ctx)

    by_name = {info.name: info for info in infos}
    assert set(by_name) == {"date.txt", "out.json", "reports/a.xml", "reports/deep/b.txt"}
    date = by_name["date.txt"]
    assert date.key == "acme/req-1/third/artifacts/date.txt"
    assert date.size == 6
    assert date.sha256 == hashlib.sha256(b"today\n").hexdigest()
    assert date.content_type == "text/plain"
    assert by_name["out.json"].content_type == "application/json"
    assert store.get_bytes("acme/req-1/third/artifacts/reports/deep/b.txt") == b"b"
    assert store.content_type("acme/req-1/third/artifacts/date.txt") == "text/plain"


def test_upload_failure_is_an_artifact_error(workdir: Path) -> None:
    class RefusingStore(InMemoryBlobStore):
        def put_file(self, key: str, path: Path, content_type: str = "x") -> tuple[int, str]:
            raise BlobStoreError("bucket says no")

    with pytest.raises(ArtifactError, match="bucket says no") as info:
        upload_artifacts(RefusingStore(), workdir, [workdir / "date.txt"], make_context())
    assert isinstance(info.value.__cause__, BlobStoreError)


def test_keys_follow_the_s3_layout() -> None:
    assert artifact_key("o", "r", "t", "a/b.txt") == "o/r/t/artifacts/a/b.txt"
    assert log_key("o", "r", "t", 3) == "o/r/t/logs/attempt-3.log"


def test_download_dependencies_into_workdir(tmp_path: Path) -> None:
    store = InMemoryBlobStore()
    store.put_bytes("acme/req-1/build/artifacts/bin/app", b"\x7fELF")
    store.put_bytes("acme/req-1/third/artifacts/date.txt", b"today")
    work = tmp_path / "w"
    work.mkdir()

    written = download_dependencies(
        store, ["acme/req-1/build/artifacts/bin/app", "acme/req-1/third/artifacts/date.txt"], work
    )

    assert written == [work / "bin" / "app", work / "date.txt"]
    assert (work / "bin" / "app").read_bytes() == b"\x7fELF"


def test_download_refuses_keys_that_escape_and_reports_missing(tmp_path: Path) -> None:
    store = InMemoryBlobStore()
    store.put_bytes("o/r/t/artifacts/../../evil", b"x")
    work = tmp_path / "w"
    work.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, work / "sub")
    store.put_bytes("o/r/t/artifacts/sub/file", b"x")

    with pytest.raises(ArtifactPathError):
        download_dependencies(store, ["o/r/t/artifacts/../../evil"], work)
    with pytest.raises(ArtifactPathError):
        download_dependencies(store, ["o/r/t/artifacts/sub/file"], work)
    assert list(outside.iterdir()) == []
    with pytest.raises(ArtifactError, match="o/r/t/artifacts/absent"):
        download_dependencies(store, ["o/r/t/artifacts/absent"], work)


def artifact_task(when: str = "onSuccess", *paths: str) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {"task_type": "third", "script": ["true"], "artifacts": {"paths": list(paths), "when": when}}
    )


def test_attach_uploads_on_success_and_notes_unmatched_paths(workdir: Path) -> None:
    store = InMemoryBlobStore()
    outcome = TaskOutcome(exit_code="0", log="ran\n")

    attach_artifacts(
        outcome,
        artifact_task("onSuccess", "date.txt", "nope.txt"),
        make_context(task_type="third"),
        workdir=workdir,
        store=store,
    )

    assert [artifact.name for artifact in outcome.artifacts] == ["date.txt"]
    assert "acme/req-1/third/artifacts/date.txt" in store.blobs
    assert outcome.warnings == ["artifact path 'nope.txt' matched no file"]
    assert outcome.error_code is None
    assert "[artifact date.txt: 6 bytes, sha256 " in outcome.log


def test_attach_honours_when_and_the_callers_success_verdict(workdir: Path) -> None:
    store = InMemoryBlobStore()
    failed = TaskOutcome(exit_code="3")

    attach_artifacts(
        failed, artifact_task("onSuccess", "date.txt"), make_context(), workdir=workdir, store=store
    )
    assert store.blobs == {}

    attach_artifacts(
        failed,
        artifact_task("onSuccess", "date.txt"),
        make_context(),
        workdir=workdir,
        store=store,
        succeeded=True,
    )
    assert len(store.blobs) == 1

    on_failed = TaskOutcome(exit_code="1")
    attach_artifacts(
        on_failed, artifact_task("onFailed", "out.json"), make_context(), workdir=workdir, store=store
    )
    assert [artifact.name for artifact in on_failed.artifacts] == ["out.json"]


def test_attach_skips_cancelled_attempts(workdir: Path) -> None:
    store = InMemoryBlobStore()
    outcome = TaskOutcome(error_code="ERR_TASK_CANCELLED")

    attach_artifacts(
        outcome, artifact_task("always", "date.txt"), make_context(), workdir=workdir, store=store
    )

    assert store.blobs == {}


def test_attach_turns_a_refused_path_into_a_failed_attempt(workdir: Path) -> None:
    outcome = TaskOutcome(exit_code="0")

    attach_artifacts(
        outcome, artifact_task("always", "../x"), make_context(), workdir=workdir, store=InMemoryBlobStore()
    )

    assert outcome.exit_code == ""
    assert outcome.error_code == ERR_ARTIFACT_PATH
    assert "'..'" in (outcome.error_message or "")
    assert "(the script exited 0)" in (outcome.error_message or "")
